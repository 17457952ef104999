//! The Unix half of the test kit: root and Debian packages, network namespaces,
//! iptables and `ss -K`, a real `redis-server`, CPU pinning, the C floor, seccomp-failed
//! syscalls and descriptor limits.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crate::{free_port, in_ci, tcp_pair, wait_until};

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
        "taskset" | "setpriv" => "util-linux",
        "promtool" => "prometheus",
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

    /// A connected TCP pair made inside the namespace on its `127.0.0.1` (the client end,
    /// the accepted end), and the listener's port, the one to drop or kill.
    pub fn tcp_pair(&self) -> io::Result<(TcpStream, TcpStream, u16)> {
        self.enter(|| {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let port = listener.local_addr()?.port();
            let (client, server) = tcp_pair(&listener)?;
            Ok((client, server, port))
        })?
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

    /// Silently drops every TCP segment sent to `ip` inside the namespace, at every port:
    /// a filtered target, whose SYNs get no answer at all (no RST, no ICMP), so that a
    /// probe of it holds its place until its timeout. Nothing need listen there. Loopback
    /// addresses only (such as `127.0.0.2`): nothing here ever aims elsewhere.
    pub fn drop_tcp_to(&self, ip: std::net::IpAddr) -> io::Result<()> {
        if !ip.is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{ip} is not a loopback address; tests aim at loopback only"),
            ));
        }
        let iptables = if ip.is_ipv4() {
            "iptables"
        } else {
            "ip6tables"
        };
        let ip = ip.to_string();
        self.exec(
            iptables,
            &["-I", "INPUT", "-p", "tcp", "-d", &ip, "-j", "DROP"],
        )
        .map(drop)
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

    /// Makes `dest` (a CIDR inside 127.0.0.0/8, such as `127.77.0.0/16`) unreachable in
    /// the namespace: a route of type `unreachable` in the local table, more specific
    /// than its `127.0.0.0/8`, so a connect fails at once with `EHOSTUNREACH` and no
    /// packet is sent. Only loopback addresses: nothing here ever aims elsewhere.
    pub fn unreachable_route(&self, dest: &str) -> io::Result<()> {
        if !dest.starts_with("127.") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{dest} is not a loopback range; tests aim at loopback only"),
            ));
        }
        self.exec(
            "ip",
            &["route", "add", "unreachable", dest, "table", "local"],
        )
        .map(drop)
    }

    /// Gives programs run with [`Netns::exec`] or [`Netns::rerun_test_inside`] (through
    /// `ip netns exec`, which bind-mounts `/etc/netns/NAME/hosts` over `/etc/hosts`) their
    /// own hosts file: a name that resolves to addresses a test chooses.
    pub fn set_hosts(&self, contents: &str) -> io::Result<()> {
        let dir = Path::new("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("hosts"), contents)
    }

    /// Gives programs run with [`Netns::exec`] (through `ip netns exec`, which bind-mounts
    /// `/etc/netns/NAME/resolv.conf` over `/etc/resolv.conf`) their own resolver
    /// configuration, for example a nameserver on the namespace's own loopback.
    pub fn set_resolv_conf(&self, contents: &str) -> io::Result<()> {
        let dir = Path::new("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("resolv.conf"), contents)
    }

    /// Runs the test `test` of the current test binary again, as a child process inside
    /// the namespace (`ip netns exec`), with `CONNHEALTH_IN_NETNS` set to the namespace's
    /// name so that the child knows to do the work. An error unless the child passed.
    pub fn rerun_test_inside(&self, test: &str) -> io::Result<()> {
        self.rerun_test_inside_under(&[], test)
    }

    /// As [`Netns::rerun_test_inside`], with the child started through `wrapper`, a
    /// program and its arguments that run the rest of the command line: for example
    /// `["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw"]`, a child without
    /// `CAP_NET_RAW` although it runs as root.
    pub fn rerun_test_inside_under(&self, wrapper: &[&str], test: &str) -> io::Result<()> {
        let exe = std::env::current_exe()?;
        let exe = exe
            .to_str()
            .ok_or_else(|| io::Error::other("test binary path"))?;
        let output = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(wrapper)
            .args([exe, test])
            .args(["--exact", "--nocapture", "--test-threads=1"])
            .env("CONNHEALTH_IN_NETNS", &self.name)
            .output()?;
        // A passing run that ran nothing would prove nothing.
        if output.status.success() && String::from_utf8_lossy(&output.stdout).contains("1 passed") {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{test} failed inside {}: {}{}",
                self.name,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )))
        }
    }

    /// Adds `addr` (a CIDR) to the namespace's loopback, to have more local addresses.
    pub fn add_address(&self, addr: &str) -> io::Result<()> {
        self.exec("ip", &["addr", "add", addr, "dev", "lo"])
            .map(drop)
    }
}

/// Inside a child started by [`Netns::rerun_test_inside`]: the namespace's name.
pub fn inside_netns() -> Option<String> {
    std::env::var("CONNHEALTH_IN_NETNS").ok()
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&self.name));
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

/// Pins the calling thread to one CPU, with util-linux `taskset` on its thread id, so
/// that threads pinned to different CPUs really run at once. Returns `false` when it
/// could not (no `taskset`, or a CPU this process may not use).
pub fn pin_thread_to_cpu(cpu: usize) -> bool {
    let Ok(me) = std::fs::read_link("/proc/thread-self") else {
        return false;
    };
    let Some(tid) = me.file_name().and_then(|name| name.to_str()) else {
        return false;
    };
    Command::new("taskset")
        .args(["-pc", &cpu.to_string(), tid])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A `redis-server` on a free loopback port, with no persistence, stopped on drop.
#[derive(Debug)]
pub struct Redis {
    child: Child,
    addr: SocketAddr,
    args: Vec<String>,
}

impl Redis {
    /// Starts `redis-server` (installing the Debian package if it is missing) with the
    /// extra configuration `args` (for example `["--timeout", "1"]`), and waits until it
    /// answers PING.
    pub fn start(args: &[&str]) -> io::Result<Redis> {
        ensure_command("redis-server")?;
        let port = free_port()?;
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let child = Redis::spawn(port, &args)?;
        let redis = Redis {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            args,
        };
        redis.wait_ready()?;
        Ok(redis)
    }

    fn spawn(port: u16, args: &[String]) -> io::Result<Child> {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    fn wait_ready(&self) -> io::Result<()> {
        wait_until(Duration::from_secs(10), || self.ping().is_ok())
            .map(drop)
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "redis-server did not start"))
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until it is gone: its
    /// kernel has closed every connection and the listener.
    pub fn kill(&mut self) -> io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(drop)
    }

    /// Starts a [`Redis::kill`]ed server again, on the same port with the same
    /// configuration, and waits until it answers PING.
    pub fn restart(&mut self) -> io::Result<()> {
        self.child = Redis::spawn(self.addr.port(), &self.args)?;
        self.wait_ready()
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Freezes the server process (SIGSTOP): its kernel still accepts connections and
    /// acknowledges data, but nothing answers. A hung server, as a heartbeat sees it.
    pub fn pause(&self) -> io::Result<()> {
        self.signal(libc::SIGSTOP)
    }

    /// Lets a [`Redis::pause`]d server run again (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        self.signal(libc::SIGCONT)
    }

    fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: kill has no memory effects; `pid` is our own child, not yet reaped
        // (it is reaped only in Drop), so the pid cannot have been reused.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
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
/// `args` (`["peek"]`, `["tcpinfo"]`, `["probe", "200000", "128", "64"]`,
/// `["raw", "200000", "128", "64"]`; `raw` needs `CAP_NET_RAW`).
///
/// Returns the figure it printed (ns/op, or probes/s) and its whole line. A `probe` or
/// `raw` run that saw an accepted connection or a failed probe exits 1; its line is still
/// returned.
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

/// Runs `f` on a new thread where the kernel fails the system calls `syscalls` (numbers
/// from `libc::SYS_*`) with `errno`, through a seccomp filter that applies to that thread
/// only. It lets a test see how real code behaves when the kernel answers `EINTR`,
/// `ENOMEM` or `ENOBUFS`, conditions that are otherwise hard to provoke.
#[cfg(target_os = "linux")]
pub fn with_failing_syscalls<T: Send>(
    syscalls: &[libc::c_long],
    errno: i32,
    f: impl FnOnce() -> T + Send,
) -> io::Result<T> {
    // seccomp_data: the syscall number is the first u32.
    let mut program = vec![bpf(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0)];
    for (i, nr) in syscalls.iter().enumerate() {
        // On a match, jump to the ERRNO return at the end; otherwise to the next test.
        let to_errno = (syscalls.len() - i) as u8;
        program.push(bpf(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            to_errno,
            0,
            *nr as u32,
        ));
    }
    program.push(bpf(
        libc::BPF_RET | libc::BPF_K,
        0,
        0,
        libc::SECCOMP_RET_ALLOW,
    ));
    program.push(bpf(
        libc::BPF_RET | libc::BPF_K,
        0,
        0,
        libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA),
    ));
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    let fprog_addr = &fprog as *const libc::sock_fprog as usize;
    thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes integer arguments only; the
                // seccomp call reads `fprog`, which outlives this scoped thread. Without
                // SECCOMP_FILTER_FLAG_TSYNC the filter binds this thread alone, which ends
                // after `f`.
                unsafe {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                        || libc::prctl(
                            libc::PR_SET_SECCOMP,
                            libc::SECCOMP_MODE_FILTER,
                            fprog_addr as *const libc::sock_fprog,
                        ) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(target_os = "linux")]
fn bpf(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Sets this process's soft limit on open descriptors (`RLIMIT_NOFILE`), capped at the
/// hard limit, and returns the previous soft limit. Process-wide: use it only in a test
/// file of its own.
pub fn set_open_files_limit(limit: u64) -> io::Result<u64> {
    let mut rlim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a live rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let previous: u64 = rlim.rlim_cur;
    rlim.rlim_cur = limit.min(rlim.rlim_max);
    // SAFETY: setrlimit reads a live, initialised rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rlim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(previous)
}

/// Turns `IP_RECVERR` on, as some applications do: an ICMP error then reaches the socket
/// at once, as a socket error and in its error queue, while TCP goes on retrying.
pub fn set_recverr(sock: &impl std::os::fd::AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads a live c_int of the size given, on a descriptor the caller
    // keeps open.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_RECVERR,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
