//! Real test conditions for connhealth, shared by the library's integration tests, its
//! benchmarks and the `connhealth demo`.
//!
//! * [`Netns`]: a private network namespace with only a loopback interface, where a test
//!   can make a peer vanish (iptables DROP), cut a route, or kill a socket (`ss -K`)
//!   without touching the host's network.
//! * [`Redis`]: a real `redis-server` on a free loopback port, stopped on drop.
//! * [`require`]: a test that needs root or a tool checks first; under CI (`CI=true`) a
//!   missing capability fails the test instead of skipping it.
//!
//! Traffic goes only to loopback and to namespaces made here.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// True when running under CI (`CI=true`), where a test that cannot run must fail.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Checks that the current process can run a test that needs `what` (root, and each of
/// the commands in `commands` on the PATH, installing Debian packages where missing).
///
/// Returns `true` when the test can run. Otherwise it prints why and returns `false`
/// (the caller returns early), except under CI, where it panics: a test that cannot run
/// in CI is a failure, not a skip.
pub fn require(what: &str, commands: &[&str]) -> bool {
    match check_requirements(commands) {
        Ok(()) => true,
        Err(why) if in_ci() => panic!("{what} cannot run under CI: {why}"),
        Err(why) => {
            eprintln!("skipping {what}: {why}");
            false
        }
    }
}

fn check_requirements(commands: &[&str]) -> Result<(), String> {
    if !is_root() {
        return Err("needs root (network namespaces, iptables, ss -K)".into());
    }
    for command in commands {
        ensure_command(command).map_err(|e| format!("`{command}` is not available: {e}"))?;
    }
    Ok(())
}

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The Debian package that provides each command the tests use.
fn package_of(command: &str) -> &str {
    match command {
        "ip" | "ss" => "iproute2",
        "redis-server" | "redis-cli" => "redis-server",
        other => other,
    }
}

/// Makes sure `command` is on the PATH, installing its Debian package when it is missing
/// and this is a Debian system where we are root.
pub fn ensure_command(command: &str) -> io::Result<()> {
    if on_path(command) {
        return Ok(());
    }
    if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("not on PATH; install the `{}` package", package_of(command)),
        ));
    }
    // One installer at a time: tests run in parallel and dpkg takes a lock.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if on_path(command) {
        return Ok(());
    }
    let package = package_of(command);
    let quiet = |c: &mut Command| {
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    };
    let _ = quiet(Command::new("apt-get").args(["update", "-qq"]));
    quiet(Command::new("apt-get").args(["install", "-y", "-qq", package]))?;
    if on_path(command) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("apt-get install {package} did not provide it"),
        ))
    }
}

fn on_path(command: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(command).is_file())
}

fn run(command: &mut Command) -> io::Result<Output> {
    let output = command.output()?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(io::Error::other(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// A private network namespace with its loopback up, deleted on drop.
///
/// Sockets made inside it ([`Netns::enter`]) keep the namespace for their lifetime, and
/// can be used from any thread afterwards: the namespace is fixed when a socket is
/// created. Addresses inside are the namespace's own `127.0.0.1` and `::1`.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `connhealth-<pid>-<n>` and brings its loopback up. Needs root and `ip`.
    pub fn new() -> io::Result<Netns> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "connhealth-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let netns = Netns { name };
        netns.exec("ip", &["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a thread that has entered the namespace, and returns its result.
    /// Sockets `f` creates belong to the namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let ns = File::open(format!("/var/run/netns/{}", self.name))?;
        thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: `ns` is an open namespace file; setns changes only this
                    // thread's network namespace, and the thread ends after `f`.
                    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Runs `program args...` inside the namespace; an error if it fails.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args))
    }

    /// Silently drops every TCP segment to or from `port` inside the namespace, both
    /// directions: the peer vanishes, no FIN, no RST, no ICMP.
    pub fn drop_tcp_port(&self, port: u16) -> io::Result<()> {
        let port = port.to_string();
        for ip in ["iptables", "ip6tables"] {
            for dir in ["--dport", "--sport"] {
                self.exec(ip, &["-I", "INPUT", "-p", "tcp", dir, &port, "-j", "DROP"])?;
            }
        }
        Ok(())
    }

    /// Removes the rules [`Netns::drop_tcp_port`] added: the peer is back.
    pub fn restore_tcp_port(&self, port: u16) -> io::Result<()> {
        let port = port.to_string();
        for ip in ["iptables", "ip6tables"] {
            for dir in ["--dport", "--sport"] {
                self.exec(ip, &["-D", "INPUT", "-p", "tcp", dir, &port, "-j", "DROP"])?;
            }
        }
        Ok(())
    }

    /// Kills every TCP socket with local or remote port `port` in the namespace, as an
    /// administrator would with `ss -K`. The kernel reports `ECONNABORTED` on them.
    pub fn kill_tcp_port(&self, port: u16) -> io::Result<()> {
        let filter = format!("( sport = :{port} or dport = :{port} )");
        self.exec("ss", &["-K", "-t", &filter]).map(drop)
    }

    /// Adds a route to `dest` (a CIDR) of type `unreachable`: connects fail at once with
    /// `EHOSTUNREACH`.
    pub fn unreachable_route(&self, dest: &str) -> io::Result<()> {
        self.exec("ip", &["route", "add", "unreachable", dest])
            .map(drop)
    }

    /// Adds `addr` (a CIDR) to the namespace's loopback, to have more local addresses.
    pub fn add_address(&self, addr: &str) -> io::Result<()> {
        self.exec("ip", &["addr", "add", addr, "dev", "lo"])
            .map(drop)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Kills every TCP socket on the host with local or remote port `port` (`ss -K`). Use it
/// only on loopback ports the caller opened.
pub fn kill_tcp_port(port: u16) -> io::Result<()> {
    let filter = format!("( sport = :{port} or dport = :{port} )");
    run(Command::new("ss").args(["-K", "-t", &filter])).map(drop)
}

/// A free TCP port on 127.0.0.1 (free when asked; bind it soon).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Connects to `addr` and returns both ends: the client stream and the accepted stream.
pub fn tcp_pair(listener: &TcpListener) -> io::Result<(TcpStream, TcpStream)> {
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

/// Polls `cond` every millisecond until it holds or `limit` passes; returns the time it
/// took, or `None` when it never held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// A `redis-server` on a free loopback port, with no persistence, stopped on drop.
#[derive(Debug)]
pub struct Redis {
    child: Child,
    addr: SocketAddr,
}

impl Redis {
    /// Starts `redis-server` (installing the Debian package if it is missing) with the
    /// extra configuration `args` (for example `["--timeout", "1"]`), and waits until it
    /// answers PING.
    pub fn start(args: &[&str]) -> io::Result<Redis> {
        ensure_command("redis-server")?;
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let redis = Redis {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        wait_until(Duration::from_secs(10), || redis.ping().is_ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "redis-server did not start"))?;
        Ok(redis)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One PING on a fresh connection.
    pub fn ping(&self) -> io::Result<()> {
        let mut conn = TcpStream::connect(self.addr)?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        conn.write_all(b"PING\r\n")?;
        let mut line = String::new();
        BufReader::new(conn.take(64)).read_line(&mut line)?;
        if line.starts_with("+PONG") {
            Ok(())
        } else {
            Err(io::Error::other(format!("unexpected reply {line:?}")))
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The C floor that benchmarks are measured against (`floor/limits.c`, a copy of the
/// project's `shared/bench/limits.c`): compiled with `cc -O2` on first use, then run with
/// `args` (`["peek"]`, `["tcpinfo"]`, `["probe", "200000", "128", "64"]`).
///
/// Returns the figure it printed (ns/op, or probes/s) and its whole line. A `probe` run
/// that saw an accepted connection or a failed probe exits 1; its line is still returned.
pub fn c_floor(args: &[&str]) -> io::Result<(f64, String)> {
    const SOURCE: &str = include_str!("../floor/limits.c");
    let dir = std::env::temp_dir().join(format!("connhealth-floor-{}", SOURCE.len()));
    std::fs::create_dir_all(&dir)?;
    let binary = dir.join("limits");
    if !binary.exists() {
        let source = dir.join("limits.c");
        std::fs::write(&source, SOURCE)?;
        let tmp = dir.join(format!("limits.{}", std::process::id()));
        run(Command::new("cc")
            .arg("-O2")
            .arg("-o")
            .arg(&tmp)
            .arg(&source))?;
        std::fs::rename(&tmp, &binary)?;
    }
    let output = Command::new(&binary).args(args).output()?;
    let line = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let figure = line
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse::<f64>().ok())
        .ok_or_else(|| {
            io::Error::other(format!(
                "limits {args:?} printed {line:?}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        })?;
    Ok((figure, line))
}

/// A global allocator that counts the allocations made by each thread, for benchmarks
/// that show a path allocates nothing. Install it in a bench binary with
/// `#[global_allocator] static A: CountingAllocator = CountingAllocator;` and read the
/// current thread's count with [`allocations`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Allocations (and reallocations) made so far by the current thread, when
/// [`CountingAllocator`] is the global allocator.
pub fn allocations() -> u64 {
    ALLOCATIONS.with(std::cell::Cell::get)
}

fn count_allocation() {
    // A const-initialised Cell: the count itself never allocates, and during thread
    // teardown (no thread-local left) the allocation simply goes uncounted.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// GlobalAlloc contract; counting touches only a thread-local Cell.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded with the caller's layout, which the caller made valid.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from this allocator, that is from System, with `layout`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded with the caller's arguments, valid for System as above.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}
