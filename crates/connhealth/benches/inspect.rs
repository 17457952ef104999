//! `inspect()` against its floor, one `getsockopt(TCP_INFO)` from C, in the same run.
//!
//! ```text
//! cargo bench -p connhealth --bench inspect
//! ```
//!
//! Prints one line: `inspect: <ns>/op = <ratio> x floor (getsockopt(TCP_INFO) <ns>/op)`.
//! Each side is measured three times, alternating, and the best run of each is kept:
//! on a shared machine the best run is the one least disturbed by others.
//!
//! Linux only: its floor is getsockopt(TCP_INFO) in C (testkit's c_floor, limits.c).
//! Elsewhere it says so and exits.

#[cfg(target_os = "linux")] // its floor is getsockopt(TCP_INFO) in C
mod linux {
    use std::hint::black_box;
    use std::net::TcpListener;
    use std::time::Instant;

    const ITERATIONS: u32 = 2_000_000;

    pub(crate) fn main() -> std::io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let (conn, _peer) = connhealth_testkit::tcp_pair(&listener)?;

        let mut ours = f64::INFINITY;
        let mut floor = f64::INFINITY;
        for _ in 0..3 {
            let (ns, _line) = connhealth_testkit::c_floor(&["tcpinfo", &ITERATIONS.to_string()])?;
            floor = floor.min(ns);

            let start = Instant::now();
            for _ in 0..ITERATIONS {
                black_box(connhealth::inspect(black_box(&conn))?);
            }
            ours = ours.min(start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS));
        }
        println!(
            "inspect: {ours:.1} ns/op = {:.2} x floor (getsockopt(TCP_INFO) {floor:.1} ns/op)",
            ours / floor
        );
        Ok(())
    }
}

fn main() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    return linux::main();
    #[cfg(not(target_os = "linux"))]
    {
        println!("bench inspect: Linux only: its floor is getsockopt(TCP_INFO) in C (testkit's c_floor, limits.c)");
        Ok(())
    }
}
