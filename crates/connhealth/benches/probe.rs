//! Half-open probes against the C floor, in the same run.
//!
//! `cargo bench -p connhealth --bench probe` runs every line (several minutes);
//! `cargo bench -p connhealth --bench probe -- in-flight` runs the in-flight lines alone,
//! `cargo bench -p connhealth --bench probe -- raw` the raw engine's.
//!
//! Every line but the raw engine's measures the socket engine (a socket per probe), the
//! engine the floor `limits.c probe` runs: its probers are built with `.raw(false)`,
//! since as root `Mode::HalfOpen` would run the raw engine instead.
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
//! Then the heap per in-flight probe: the peak heap growth of a run with 4096 in flight,
//! divided by 4096 (kernel socket memory is not counted).
//!
//! Then the cost of many in flight, in a network namespace of the bench's own (it needs
//! root, `ip` and `iptables`: installed when missing, as the tests do, or the lines say
//! they were skipped). `probe_many` on a current-thread runtime against the C floor run
//! at the same in-flight count (`limits.c probe 200000 N 64`, in the same namespace), at
//! 128, 1024 and 4096 in flight, so that any growth of the engine's cost with the count
//! shows. Then 4096 in flight of which 1024 are parked on a filtered address (iptables
//! DROP: their SYNs get no answer, and their 60 s timeout outlasts the round, so they
//! hold their places the whole time), leaving 3072 places to the live listeners. Its
//! throughput to the live targets is compared with the floor at 4096 in flight (the same
//! in-flight count: the bar, >= 0.95) and at 3072 (the number of live probes in
//! flight, since the floor has no filtered targets). Each floor run and each of ours
//! alternate, best of three.
//!
//! Last, the raw engine (`Mode::Raw`: SYNs from one raw socket, no socket per probe), in
//! a network namespace of its own (root, `ip`; the lines say they were skipped when
//! `Mode::Raw` cannot open raw sockets, and why). `probe_many` on a current-thread
//! runtime at 128, 1024 and 4096 in flight (64 per listener at 4096, the default
//! per-destination limit), each against the C floors at the same count in the same
//! namespace: `limits.c raw 200000 N 64` (SYNs batched with sendmmsg from one raw socket,
//! the ceiling of a raw engine; target >= 0.85 x it) and `limits.c probe 200000 N 64` (a
//! socket per probe). The three alternate, best of three; a raw prober lives only for its
//! own run, since the probers share their source ports and an idle one's sockets would
//! be woken by the running one's replies. Then the connections the listeners accepted
//! over all of the raw engine's probes, which must be 0.
//!
//! Linux only: its floor is an epoll prober in C (testkit's c_floor, limits.c), and its
//! in-flight and raw rounds need network namespaces (and iptables). Elsewhere it says so
//! and exits.

#[cfg(target_os = "linux")] // its floor is an epoll prober in C
mod linux {
    use std::net::{SocketAddr, TcpListener};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use connhealth::{Mode, ProbeEngine, Prober};
    use connhealth_testkit::{CountingAllocator, Netns};

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

    /// A prober on the socket engine, whatever the process may do: as root, `Mode::HalfOpen`
    /// runs the raw engine unless told not to, and the line would not measure what it says.
    fn sockets(in_flight: usize) -> Prober {
        let prober = Prober::builder()
            .raw(false)
            .max_in_flight(in_flight)
            .build();
        assert_eq!(
            prober.engine(),
            Some(ProbeEngine::Sockets),
            "a prober built with .raw(false) runs the socket engine"
        );
        prober
    }

    fn percentile(sorted: &[Duration], p: f64) -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        sorted[((sorted.len() - 1) as f64 * p) as usize]
    }

    fn report(name: &str, runs: Vec<Run>, floor: f64) {
        let best = best(runs);
        println!(
        "{name}: {:.0} probes/s = {:.2} x floor ({floor:.0} probes/s); p50 {:.1} us, p99 {:.1} us; failed {}",
        best.rate,
        best.rate / floor,
        percentile(&best.rtts, 0.50).as_secs_f64() * 1e6,
        percentile(&best.rtts, 0.99).as_secs_f64() * 1e6,
        best.failed,
    );
    }

    pub(crate) fn main() {
        // `cargo bench -p connhealth --bench probe -- in-flight` runs the in-flight lines
        // alone, `-- raw` the raw engine's.
        if std::env::args().any(|arg| arg == "in-flight") {
            in_flight_lines();
            return;
        }
        if std::env::args().any(|arg| arg == "raw") {
            raw_lines();
            return;
        }
        let (listeners, addrs) = listeners();
        let prober = sockets(IN_FLIGHT);
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
        report(
            "socket engine, probe_many, current-thread runtime",
            on_current,
            floor,
        );
        report(
            "socket engine, probe_many, 2-worker multi-thread runtime",
            on_multi,
            floor,
        );
        report(
            "socket engine, probe_addr x 128 tasks, 2-worker multi-thread runtime",
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
        let wide = sockets(4096);
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
        "socket engine, memory: {:.0} bytes of heap per in-flight probe (peak growth {} bytes over {} probes, \
         4096 in flight and 8192 handed to the engine; {} ok, accepted {})",
        grown as f64 / 4096.0,
        grown,
        100_000,
        run,
        accepted(&listeners),
    );
        drop(wide);

        in_flight_lines();
        raw_lines();
    }

    /// The in-flight counts of the growth lines.
    const GROWTH: [usize; 3] = [128, 1024, 4096];
    /// Of the last line's 4096 in flight, this many are parked on a filtered address.
    const PARKED: usize = 1024;
    /// Longer than a round, so that no parked probe gives its place back during it.
    const PARKED_TIMEOUT: Duration = Duration::from_secs(60);

    /// The best run of one of the C floors at one in-flight count.
    struct Floor {
        /// limits.c's command: `probe` (a socket per probe) or `raw` (one raw socket).
        what: &'static str,
        rate: f64,
        line: String,
    }

    impl Floor {
        fn new(what: &'static str) -> Floor {
            Floor {
                what,
                rate: 0.0,
                line: String::new(),
            }
        }

        fn run(&mut self, in_flight: usize) {
            let in_flight = in_flight.to_string();
            let (rate, line) =
                connhealth_testkit::c_floor(&[self.what, "200000", &in_flight, "64"])
                    .expect("the C floor (limits.c) did not run");
            if rate > self.rate {
                (self.rate, self.line) = (rate, line);
            }
        }

        fn describe(&self, in_flight: usize) -> String {
            format!(
                "limits {} 200000 {in_flight} 64: {}",
                self.what,
                self.line.trim_start_matches(self.what).trim_start()
            )
        }
    }

    fn in_flight_lines() {
        if !connhealth_testkit::require(
            "the in-flight benchmark lines (a network namespace with iptables DROP)",
            &["ip", "iptables"],
        ) {
            println!("in flight: skipped (needs root, `ip` and `iptables`; see stderr)");
            return;
        }
        let netns = Netns::new().expect("a network namespace for the in-flight lines");
        let filtered = std::net::Ipv4Addr::new(127, 0, 0, 2);
        netns
            .drop_tcp_to(filtered.into())
            .expect("iptables DROP toward the filtered address");
        // Everything below runs on a thread inside the namespace: the listeners, the
        // probers' engine threads (a thread inherits its creator's namespace) and the C
        // floor's processes (so are they), with the same iptables rule in the path of every
        // packet of both.
        netns
            .enter(|| in_flight_lines_inside(filtered))
            .expect("enter the namespace");
    }

    fn in_flight_lines_inside(filtered: std::net::Ipv4Addr) {
        let (listeners, addrs) = listeners();
        // 64 filtered destinations, 16 parked probes each: under the default per-destination
        // limit, so that every parked probe holds a place in flight, none waits in the queue.
        let parked_addrs: Vec<SocketAddr> = (0..PARKED)
            .map(|i| SocketAddr::from((filtered, 20_000 + (i % 64) as u16)))
            .collect();
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let probers: Vec<Prober> = GROWTH.iter().map(|&n| sockets(n)).collect();
        for prober in &probers {
            current.block_on(many(prober, &addrs, TOTAL / 10)); // warm-up
        }
        let wide = probers.last().expect("a prober at 4096");

        let mut floors: Vec<Floor> = GROWTH.iter().map(|_| Floor::new("probe")).collect();
        let mut floor_live = Floor::new("probe");
        let mut ours: Vec<Vec<Run>> = GROWTH.iter().map(|_| Vec::new()).collect();
        let mut ours_parked = Vec::new();
        let mut parked_early = 0;
        let mut accepted_total = 0;
        for _ in 0..ROUNDS {
            for (i, &n) in GROWTH.iter().enumerate() {
                floors[i].run(n);
                ours[i].push(current.block_on(many(&probers[i], &addrs, TOTAL)));
                accepted_total += accepted(&listeners);
            }
            floor_live.run(GROWTH[2] - PARKED);
            let (run, early) = current.block_on(async {
                // First in the engine's FIFO queue, so they take their places first; the
                // live stream then has the other 3072.
                let mut parked = wide.feed();
                for &addr in &parked_addrs {
                    parked.push(0, addr, PARKED_TIMEOUT, None);
                }
                parked.flush();
                let run = many(wide, &addrs, TOTAL).await;
                // Any parked probe that finished during the round gave its place to a live
                // one: count them (they must be 0). A zero timeout polls once, without waiting.
                let mut finished = Vec::new();
                let _ = tokio::time::timeout(Duration::ZERO, parked.done(&mut finished)).await;
                (run, finished.len())
            });
            ours_parked.push(run);
            parked_early += early;
            accepted_total += accepted(&listeners);
        }
        for (i, &n) in GROWTH.iter().enumerate() {
            let best = best(std::mem::take(&mut ours[i]));
            println!(
            "socket engine, in flight {n}: probe_many {:.0} probes/s = {:.2} x floor at {n} ({}); p99 {:.1} us; \
             failed {}",
            best.rate,
            best.rate / floors[i].rate,
            floors[i].describe(n),
            percentile(&best.rtts, 0.99).as_secs_f64() * 1e6,
            best.failed,
        );
        }
        let live = GROWTH[2] - PARKED;
        let best = best(ours_parked);
        println!(
        "socket engine, in flight 4096, {PARKED} parked on dropped SYNs, {live} live: probe_many {:.0} probes/s \
         to the live targets = {:.2} x floor at 4096 ({}), {:.2} x floor at {live} ({}); \
         p99 {:.1} us; failed {}; parked that finished early {parked_early}{}",
        best.rate,
        best.rate / floors[2].rate,
        floors[2].describe(GROWTH[2]),
        best.rate / floor_live.rate,
        floor_live.describe(live),
        percentile(&best.rtts, 0.99).as_secs_f64() * 1e6,
        best.failed,
        if parked_early > 0 {
            "  FAIL: parked probes finished early, so fewer than 1024 were parked"
        } else if best.rate < 0.95 * floors[2].rate {
            "  FAIL: below 0.95 x the floor at 4096 in flight"
        } else {
            ""
        },
    );
        println!(
            "in flight: accepted by the listeners over all {} probes: {accepted_total}{}",
            (GROWTH.len() + 1) * ROUNDS * TOTAL,
            if accepted_total == 0 {
                ""
            } else {
                "  FAIL: half-open probes were accepted"
            }
        );
    }

    /// The raw engine's target, as a fraction of `limits.c raw` at the same in-flight count.
    const RAW_TARGET: f64 = 0.85;

    fn raw_lines() {
        // Mode::Raw has no engine when the raw sockets cannot be opened (no CAP_NET_RAW),
        // and then each probe says why.
        let prober = Prober::builder().mode(Mode::Raw).build();
        if prober.engine().is_none() {
            let why = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt")
                .block_on(prober.probe_addr(SocketAddr::from(([127, 0, 0, 1], 9)), TIMEOUT))
                .err()
                .map_or_else(|| "no error".to_string(), |err| err.to_string());
            if connhealth_testkit::in_ci() {
                panic!("the raw engine's lines cannot run under CI: {why}");
            }
            println!(
                "raw engine: skipped: Mode::Raw cannot open raw sockets (Prober::engine() is None): {why}"
            );
            return;
        }
        drop(prober);
        if !connhealth_testkit::require(
            "the raw engine's benchmark lines (a network namespace)",
            &["ip"],
        ) {
            println!("raw engine: skipped (needs root and `ip`; see stderr)");
            return;
        }
        // In a namespace of its own, as the in-flight lines: the raw sockets see every TCP
        // packet of the namespace (their filters keep only replies to their ports), so no
        // other traffic of the machine's reaches them, and the C floors' probes and ours
        // meet the same kernel path.
        let netns = Netns::new().expect("a network namespace for the raw engine's lines");
        netns.enter(raw_lines_inside).expect("enter the namespace");
    }

    fn raw_lines_inside() {
        let (listeners, addrs) = listeners();
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        // One raw prober at a time, built for its run and dropped after it: the probers
        // share the default source ports, and an idle one's sockets would be woken by the
        // replies to the running one's SYNs, on the same 2 cores.
        let raw_run = |in_flight: usize| {
            let prober = Prober::builder()
                .mode(Mode::Raw)
                .max_in_flight(in_flight)
                .build();
            assert_eq!(prober.engine(), Some(ProbeEngine::Raw), "Mode::Raw as root");
            current.block_on(many(&prober, &addrs, TOTAL / 10)); // warm-up
            current.block_on(many(&prober, &addrs, TOTAL))
        };

        let mut raw_floors: Vec<Floor> = GROWTH.iter().map(|_| Floor::new("raw")).collect();
        let mut probe_floors: Vec<Floor> = GROWTH.iter().map(|_| Floor::new("probe")).collect();
        let mut ours: Vec<Vec<Run>> = GROWTH.iter().map(|_| Vec::new()).collect();
        let mut accepted_total = 0;
        for _ in 0..ROUNDS {
            for (i, &n) in GROWTH.iter().enumerate() {
                raw_floors[i].run(n);
                ours[i].push(raw_run(n));
                accepted_total += accepted(&listeners);
                probe_floors[i].run(n);
            }
        }
        for (i, &n) in GROWTH.iter().enumerate() {
            let best = best(std::mem::take(&mut ours[i]));
            let ratio = best.rate / raw_floors[i].rate;
            println!(
                "raw engine, in flight {n}: probe_many {:.0} probes/s = {ratio:.2} x limits.c raw \
                 ({}), {:.2} x limits.c probe ({}); p99 {:.1} us; failed {}; \
                 target >= {RAW_TARGET} x limits.c raw: {}",
                best.rate,
                raw_floors[i].describe(n),
                best.rate / probe_floors[i].rate,
                probe_floors[i].describe(n),
                percentile(&best.rtts, 0.99).as_secs_f64() * 1e6,
                best.failed,
                if ratio >= RAW_TARGET {
                    "met"
                } else {
                    "NOT met"
                },
            );
        }
        println!(
            "raw engine: accepted by the listeners over all {} probes: {accepted_total}{}",
            GROWTH.len() * ROUNDS * TOTAL,
            if accepted_total == 0 {
                ""
            } else {
                "  FAIL: half-open probes were accepted"
            }
        );
    }

    /// The fastest of `runs`, its times to the SYN-ACK sorted.
    fn best(runs: Vec<Run>) -> Run {
        let mut best = runs
            .into_iter()
            .max_by(|a, b| a.rate.total_cmp(&b.rate))
            .expect("at least one run");
        best.rtts.sort();
        best
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
    #[cfg(not(target_os = "linux"))]
    println!("bench probe: Linux only: its floor is an epoll prober in C (testkit's c_floor, limits.c), and its in-flight rounds need network namespaces and iptables");
}
