//! Demo part: half-open probes seen from the server. The listener accepts nothing in
//! half-open mode, and every probe in connect mode.

use std::io;
use std::net::TcpListener;
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
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        // The server accepts all along, as a real one would.
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let server = thread::spawn({
            let (accepted, stop) = (accepted.clone(), stop.clone());
            move || loop {
                match listener.accept() {
                    Ok(_) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) if stop.load(Ordering::Relaxed) => return,
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
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
        let _ = server.join();
        println!(
            "{name:>9}: {PROBES} probes of {addr} in {:.1} ms, {up} up; the listener accepted {} connections",
            took.as_secs_f64() * 1e3,
            accepted.load(Ordering::Relaxed),
        );
    }
    println!("\nHalf-open: SYN, SYN-ACK, RST. The server application never sees a connection.");
    Ok(())
}
