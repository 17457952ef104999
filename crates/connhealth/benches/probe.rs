//! Half-open probes against the C floor, in the same run.
//!
//! `cargo bench -p connhealth --bench probe`
//!
//! 200k probes against 64 loopback listeners, 128 in flight, first by the C floor (one
//! thread, epoll, close on writable: `limits.c probe 200000 128 64`), then by
//! `Prober::probe_many` with the caller on a current-thread runtime and on a 2-worker
//! multi-thread runtime, then by one `probe_addr` future per probe (128 tasks) on the
//! 2-worker runtime. The machine is shared and noisy, so the floor and each of ours run
//! alternately three times and the best of each is kept. Each line prints probes/s as a
//! ratio to the floor and the p50/p99 time from SYN to SYN-ACK (as the engine sees it:
//! from the SYN's send to the turn that saw the SYN-ACK), then the connections the
//! listeners accepted over every run, which must be 0.
//! Last, the heap per in-flight probe: the peak heap growth of a run with 4096 in flight,
//! divided by 4096 (kernel socket memory is not counted).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connhealth::Prober;
use connhealth_testkit::CountingAllocator;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

const TOTAL: usize = 200_000;
const IN_FLIGHT: usize = 128;
const LISTENERS: usize = 64;
const TIMEOUT: Duration = Duration::from_secs(5);
const ROUNDS: usize = 3;

struct Run {
    rate: f64,
    rtts: Vec<Duration>,
    failed: usize,
}

fn listeners() -> (Vec<TcpListener>, Vec<SocketAddr>) {
    let listeners: Vec<_> = (0..LISTENERS)
        .map(|_| {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            l
        })
        .collect();
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr"))
        .collect();
    (listeners, addrs)
}

/// Connections the listeners hold, counted after the delayed-ACK window (~200 ms) has
/// passed for every probe: a probe socket left open past it would be here.
fn accepted(listeners: &[TcpListener]) -> usize {
    std::thread::sleep(Duration::from_millis(300));
    listeners
        .iter()
        .map(|l| std::iter::from_fn(|| l.accept().ok()).count())
        .sum()
}

async fn many(prober: &Prober, addrs: &[SocketAddr], total: usize) -> Run {
    let mut rtts = Vec::with_capacity(total);
    let mut failed = 0;
    let start = Instant::now();
    let mut stream = prober.probe_many((0..total).map(|i| addrs[i % addrs.len()]), TIMEOUT);
    while let Some((_, result)) = stream.next().await {
        match result {
            Ok(rtt) => rtts.push(rtt),
            Err(_) => failed += 1,
        }
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    Run { rate, rtts, failed }
}

async fn futures(prober: &Prober, addrs: Arc<Vec<SocketAddr>>, total: usize) -> Run {
    let start = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|t| {
            let prober = prober.clone();
            let addrs = addrs.clone();
            tokio::spawn(async move {
                let mut rtts = Vec::with_capacity(total / IN_FLIGHT + 1);
                let mut failed = 0;
                for i in (t..total).step_by(IN_FLIGHT) {
                    match prober.probe_addr(addrs[i % addrs.len()], TIMEOUT).await {
                        Ok(rtt) => rtts.push(rtt),
                        Err(_) => failed += 1,
                    }
                }
                (rtts, failed)
            })
        })
        .collect();
    let mut run = Run {
        rate: 0.0,
        rtts: Vec::with_capacity(total),
        failed: 0,
    };
    for task in tasks {
        let (rtts, failed) = task.await.expect("task");
        run.rtts.extend(rtts);
        run.failed += failed;
    }
    run.rate = total as f64 / start.elapsed().as_secs_f64();
    run
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn report(name: &str, runs: Vec<Run>, floor: f64) {
    let mut best = runs
        .into_iter()
        .max_by(|a, b| a.rate.total_cmp(&b.rate))
        .expect("at least one run");
    best.rtts.sort();
    println!(
        "{name}: {:.0} probes/s = {:.2} x floor ({floor:.0} probes/s); p50 {:.1} us, p99 {:.1} us; failed {}",
        best.rate,
        best.rate / floor,
        percentile(&best.rtts, 0.50).as_secs_f64() * 1e6,
        percentile(&best.rtts, 0.99).as_secs_f64() * 1e6,
        best.failed,
    );
}

fn main() {
    let (listeners, addrs) = listeners();
    let prober = Prober::builder().max_in_flight(IN_FLIGHT).build();
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    current.block_on(many(&prober, &addrs, TOTAL / 10)); // warm-up

    // The machine is shared and noisy: alternate the floor and each of ours, and keep
    // the best of each.
    let (mut floor, mut floor_line) = (0.0, String::new());
    let (mut on_current, mut on_multi, mut single) = (Vec::new(), Vec::new(), Vec::new());
    let mut accepted_total = 0;
    for _ in 0..ROUNDS {
        let (rate, line) = connhealth_testkit::c_floor(&["probe", "200000", "128", "64"])
            .expect("the C floor (limits.c) did not run");
        if rate > floor {
            (floor, floor_line) = (rate, line);
        }
        on_current.push(current.block_on(many(&prober, &addrs, TOTAL)));
        accepted_total += accepted(&listeners);
        on_multi.push(multi.block_on({
            let prober = prober.clone();
            let addrs = addrs.clone();
            async move {
                tokio::spawn(async move { many(&prober, &addrs, TOTAL).await })
                    .await
                    .expect("task")
            }
        }));
        accepted_total += accepted(&listeners);
        single.push(multi.block_on(futures(&prober, Arc::new(addrs.clone()), TOTAL)));
        accepted_total += accepted(&listeners);
    }
    println!("floor: {floor_line} (best of {ROUNDS})");
    report("probe_many, current-thread runtime", on_current, floor);
    report("probe_many, 2-worker multi-thread runtime", on_multi, floor);
    report(
        "probe_addr x 128 tasks, 2-worker multi-thread runtime",
        single,
        floor,
    );
    println!(
        "accepted by the listeners over all {} probes: {accepted_total}{}",
        3 * ROUNDS * TOTAL,
        if accepted_total == 0 {
            ""
        } else {
            "  FAIL: half-open probes were accepted"
        }
    );
    drop(prober);

    // Memory: 4096 allowed in flight (64 per listener), 100k probes.
    let wide = Prober::builder().max_in_flight(4096).build();
    current.block_on(many(&wide, &addrs, 20_000)); // the engine's tables reach full size
    let base = ALLOC.current();
    ALLOC.reset_peak();
    let run = current.block_on(async {
        let mut stream = wide.probe_many((0..100_000).map(|i| addrs[i % LISTENERS]), TIMEOUT);
        let mut n = 0;
        while let Some((_, result)) = stream.next().await {
            n += usize::from(result.is_ok());
        }
        n
    });
    let grown = ALLOC.peak().saturating_sub(base);
    println!(
        "memory: {:.0} bytes of heap per in-flight probe (peak growth {} bytes over {} probes, \
         4096 in flight and 8192 handed to the engine; {} ok, accepted {})",
        grown as f64 / 4096.0,
        grown,
        100_000,
        run,
        accepted(&listeners),
    );
}
