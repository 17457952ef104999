//! The servers every checker in the bench checks: loopback listeners that this process
//! opens, and one server that the detection run kills and restarts.
//!
//! Each listener accepts and drops what it is given, and counts it. HAProxy's and
//! blackbox_exporter's checks complete the handshake, so the count of a window is the
//! number of checks they really made; our half-open checks must leave it at 0.

use std::io::{self, ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Loopback listeners that accept and drop every connection, counting them.
pub struct Listeners {
    addrs: Vec<SocketAddr>,
    accepted: Arc<AtomicU64>,
    _runtime: tokio::runtime::Runtime,
}

impl Listeners {
    /// Opens `count` listeners on 127.0.0.1, each with a backlog of 1024 (tokio's), and
    /// an accept loop for each, all on one thread of their own.
    pub fn open(count: usize) -> io::Result<Listeners> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bench-accept")
            .enable_all()
            .build()?;
        let accepted = Arc::new(AtomicU64::new(0));
        let mut addrs = Vec::with_capacity(count);
        for _ in 0..count {
            let listener = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))?;
            addrs.push(listener.local_addr()?);
            let accepted = Arc::clone(&accepted);
            runtime.spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok(_dropped) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        // EMFILE and the like: wait for descriptors to come back.
                        Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
            });
        }
        Ok(Listeners {
            addrs,
            accepted,
            _runtime: runtime,
        })
    }

    /// Their addresses.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Connections accepted so far, over all listeners.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

/// One server that can be killed and restarted on the same port: it accepts and holds
/// every connection (as a real server holds its clients'), and its kill closes the
/// listener and every held connection at once, as the kernel does for a process killed
/// with SIGKILL: a FIN on each connection, an RST for every later SYN.
pub struct FlapServer {
    addr: SocketAddr,
    state: Arc<Mutex<FlapState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct FlapState {
    listener: Option<TcpListener>,
    held: Vec<TcpStream>,
}

impl FlapServer {
    /// Starts one on a free loopback port.
    pub fn start() -> io::Result<FlapServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(FlapState {
            listener: Some(listener),
            held: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("bench-flap".into())
            .spawn({
                let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
                move || serve(&state, &stop)
            })?;
        Ok(FlapServer {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// Its address, the same across restarts.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listener and every held connection, and returns the moment it began:
    /// a checker may see the first close before the last one is done.
    pub fn kill(&self) -> SystemTime {
        let mut state = lock(&self.state);
        let at = SystemTime::now();
        state.listener = None;
        state.held.clear();
        at
    }

    /// Listens on the same port again.
    pub fn restart(&self) -> io::Result<()> {
        // std sets SO_REUSEADDR, so the TIME_WAIT of the connections the kill closed
        // does not keep the port.
        let listener = TcpListener::bind(self.addr)?;
        listener.set_nonblocking(true)?;
        lock(&self.state).listener = Some(listener);
        Ok(())
    }

    /// Connections held now (a `hold` check's, and any check connection not yet closed
    /// by its checker).
    pub fn held(&self) -> usize {
        lock(&self.state).held.len()
    }
}

impl Drop for FlapServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(state: &Mutex<FlapState>) -> MutexGuard<'_, FlapState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Accepts every 2 ms and lets go of connections their client closed every 20 ms. How
/// quickly it accepts does not matter to a checker (the kernel completes the handshake),
/// and the kill does not wait for this loop.
fn serve(state: &Mutex<FlapState>, stop: &AtomicBool) {
    let mut scratch = [0u8; 1024];
    let mut pass = 0u64;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(2));
        pass += 1;
        let mut state = lock(state);
        let state = &mut *state;
        if let Some(listener) = &state.listener {
            while let Ok((conn, _)) = listener.accept() {
                if conn.set_nonblocking(true).is_ok() {
                    state.held.push(conn);
                }
            }
        }
        if pass.is_multiple_of(10) {
            state.held.retain_mut(|conn| match conn.read(&mut scratch) {
                Ok(0) => false,
                Ok(_) => true,
                Err(err) => err.kind() == ErrorKind::WouldBlock,
            });
        }
    }
}
