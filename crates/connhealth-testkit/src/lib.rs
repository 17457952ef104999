//! Real test conditions for connhealth, shared by the library's integration tests, its
//! benchmarks and the `connhealth demo`.
//!
//! On every platform: loopback servers and pairs ([`silent_server`], [`tcp_pair`]), a
//! temporary folder, polling with a limit, and a counting allocator.
//!
//! On Unix (`unix.rs`):
//!
//! * `Netns`: a private network namespace with only a loopback interface, where a test
//!   can make a peer vanish (iptables DROP), cut a route, or kill a socket (`ss -K`)
//!   without touching the host's network.
//! * `Redis`: a real `redis-server` on a free loopback port, stopped on drop.
//! * `require`: a test that needs root or a tool checks first; under CI (`CI=true`) a
//!   missing capability fails the test instead of skipping it.
//!
//! A real browser ([`webdriver`]): headless Chromium driven over WebDriver, for the
//! status page's tests and its first-paint benchmark.
//!
//! On Windows (`windows.rs`): `is_wine`, for the tests whose expectation differs between
//! Windows as documented and Wine, where the Windows tests run.
//!
//! Traffic goes only to loopback and to namespaces made here.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub mod webdriver;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use self::unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use self::windows::*;

/// True when running under CI (`CI=true`), where a test that cannot run must fail.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A fresh, empty folder for one test under the system's temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: std::path::PathBuf,
}

impl TempDir {
    /// Creates `connhealth-TEST-PID-N` under the temp dir (N counts within the process).
    pub fn new(test: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "connhealth-{test}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", path.display()));
        TempDir { path }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside the folder.
    pub fn join(&self, name: impl AsRef<Path>) -> std::path::PathBuf {
        self.path.join(name)
    }

    /// Writes `contents` to `name` inside the folder, creating folders on the way, and
    /// returns its path.
    pub fn write(&self, name: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> std::path::PathBuf {
        let path = self.path.join(name);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::write(&path, contents)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// One HTTP/1.0 request to `addr` on a connection of its own: the status code and the
/// body. HTTP/1.0, so that the answer comes whole (not chunked) and the connection closes
/// after it: enough for the daemon's and Prometheus' answers.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> io::Result<(u16, String)> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        conn,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP response: {head:?}")))?;
    Ok((code, body.to_owned()))
}

/// Runs `command` to its end, as `Command::output` does, and panics naming `what` when it
/// cannot start. Under Wine a process creation now and then fails with
/// `ERROR_INTERNAL_ERROR` (1359), which Windows itself does not do: that start is tried
/// again, up to three times. Only the start is retried, never a result.
pub fn output(command: &mut std::process::Command, what: &str) -> std::process::Output {
    const WINE_INTERNAL_ERROR: i32 = 1359;
    let mut tries = 0;
    loop {
        match command.output() {
            Err(err)
                if cfg!(windows)
                    && err.raw_os_error() == Some(WINE_INTERNAL_ERROR)
                    && tries < 3 =>
            {
                tries += 1;
            }
            result => return result.unwrap_or_else(|err| panic!("{what}: {err}")),
        }
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; bind it soon).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A loopback address where nothing listens: a connect there is refused at once.
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address")
}

/// A loopback server that accepts one connection and then says nothing for `silence`,
/// reading nothing: a check against it can only time out.
pub fn silent_server(silence: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("its address");
    thread::spawn(move || {
        if let Ok((conn, _)) = listener.accept() {
            thread::sleep(silence);
            drop(conn);
        }
    });
    addr
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

/// A global allocator that counts live heap bytes and their peak, for benchmarks that
/// report memory per operation, and the allocations each thread makes ([`allocations`]),
/// for benchmarks that show a path allocates nothing:
///
/// ```
/// use connhealth_testkit::CountingAllocator;
///
/// #[global_allocator]
/// static ALLOC: CountingAllocator = CountingAllocator::new();
///
/// fn main() {
///     ALLOC.reset_peak();
///     let baseline = ALLOC.current();
///     let buffer = vec![0u8; 4096];
///     assert!(ALLOC.peak() - baseline >= 4096);
///     drop(buffer);
///     assert!(ALLOC.current() < baseline + 4096);
/// }
/// ```
#[derive(Debug)]
pub struct CountingAllocator {
    current: AtomicUsize,
    peak: AtomicUsize,
}

impl CountingAllocator {
    /// A counter at zero.
    pub const fn new() -> Self {
        CountingAllocator {
            current: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Live heap bytes now.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// The most live heap bytes since the last [`reset_peak`](Self::reset_peak).
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Restarts the peak from the current figure.
    pub fn reset_peak(&self) {
        self.peak.store(self.current(), Ordering::Relaxed);
    }

    fn grew(&self, bytes: usize) {
        count_allocation();
        let now = self.current.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
}

impl Default for CountingAllocator {
    fn default() -> Self {
        Self::new()
    }
}

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

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// only bookkeeping beside it.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which System requires too.
        let ptr = unsafe { std::alloc::System.alloc(layout) };
        if !ptr.is_null() {
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from this allocator, that is from System, with `layout`.
        unsafe { std::alloc::System.dealloc(ptr, layout) };
        self.current.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from System with `layout`; the caller upholds the rest.
        let new = unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            self.current.fetch_sub(layout.size(), Ordering::Relaxed);
            self.grew(new_size);
        }
        new
    }
}
