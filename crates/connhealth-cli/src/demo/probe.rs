//! Demo part: half-open probes seen from the server. The listener accepts nothing in
//! half-open mode, and every probe in connect mode. (On Windows a half-open probe
//! completes the handshake and resets it, as connect mode does: the listener may accept
//! some of them, already reset.)

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use connhealth::{Mode, Prober};

const PROBES: usize = 500;

pub(crate) fn run() -> io::Result<()> {
    super::heading("Prober: half-open probes, seen from the server");
    let runtime = tokio::runtime::Runtime::new()?;
    for (mode, name) in [(Mode::HalfOpen, "half-open"), (Mode::Connect, "connect")] {
        let listener = deep_listener()?;
        let addr = listener.local_addr()?;
        // The server accepts all along, as a real one would, and at once: a server that
        // falls behind fills its accept queue, and the kernel then drops SYNs, which
        // come back only after the 1 s retransmission.
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let server = thread::spawn({
            let (accepted, stop) = (accepted.clone(), stop.clone());
            move || loop {
                match listener.accept() {
                    Ok(_) => {}
                    // A connection reset before it was accepted (Windows reports those).
                    Err(err)
                        if matches!(
                            err.kind(),
                            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                        ) && !stop.load(Ordering::Relaxed) =>
                    {
                        continue
                    }
                    Err(_) => break,
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        });

        let prober = Prober::builder().mode(mode).build();
        let start = Instant::now();
        let up = runtime.block_on(async {
            let mut results = prober.probe_many(vec![addr; PROBES], Duration::from_secs(2));
            let mut up = 0;
            while let Some((_, result)) = results.next().await {
                up += usize::from(result.is_ok());
            }
            up
        });
        let took = start.elapsed();
        // Past the kernel's delayed ACK (~200 ms): a probe socket left open would have
        // completed its handshake by now.
        thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(addr); // wakes the accept, which now sees `stop`
        let _ = server.join();
        println!(
            "{name:>9}: {PROBES} probes of {addr} in {:.1} ms, {up} up; the listener accepted {} connections",
            took.as_secs_f64() * 1e3,
            accepted.load(Ordering::Relaxed),
        );
    }
    #[cfg(not(windows))]
    println!("\nHalf-open: SYN, SYN-ACK, RST. The server application never sees a connection.");
    #[cfg(windows)]
    println!(
        "\nHalf-open on Windows: the handshake completes and is reset at once, as in connect \
         mode (Windows has no TCP_QUICKACK).\nThe server's kernel sees each connection; an \
         application that accepts quickly may see some, already reset. On Linux it sees none."
    );
    Ok(())
}

/// A loopback listener with a deep accept queue, as a busy server configures it: the
/// connect-mode burst must not overflow it while the accepting thread waits for a core.
fn deep_listener() -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}
