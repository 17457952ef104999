//! The daemon against its peers, measured in the same run.
//!
//! `cargo bench -p connhealth-watch` (about 4 minutes; as root, so that it can install
//! the peers and run in a network namespace of its own)
//!
//! This 2-core machine's speed drifts 3 x from day to day, so every line is a ratio to a
//! peer measured in the same run, one after the other (never at once). The bench installs
//! what is missing with apt-get (`haproxy`, `prometheus-blackbox-exporter`, `wrk`,
//! `nginx`), moves itself into a network namespace with only a loopback interface, and
//! opens 100 loopback listeners that accept and count whatever reaches `accept()`.
//!
//! Our daemon runs in a child process (this binary, run again as `__daemon CONFIG`), as
//! HAProxy and blackbox_exporter do, so all three are measured from outside in the same
//! way: CPU from `/proc/PID/stat` (utime + stime, every thread), memory from
//! `/proc/PID/status` (VmRSS). Checks are counted on the wire, as the SYNs delivered on
//! the namespace's loopback (an iptables rule that only counts, see `net.rs`), the same
//! for every checker and for both of our engines (a socket per probe, or the raw engine's
//! SYNs from one raw socket): HAProxy's connect check is half-open too and never reaches
//! `accept()`, and its stats count failures, not checks. Ours are also counted by the
//! daemon itself; the two must agree.
//!
//! As root the daemon's half-open checks run on the raw engine (`CAP_NET_RAW`); each
//! line of ours names the engine `/metrics` says ran them (`connhealth_probe_engine`).
//!
//! The lines:
//!
//! * `10k targets at 1 s, half-open`: HAProxy (`nbthread 1`, one backend of 10k `server`
//!   lines over the 100 listeners, `check inter 1s`), then our daemon on the same 10k
//!   addresses at `interval = "1s"`. After a 5 s warm-up, a 10 s window: CPU per check
//!   (CPU ÷ checks) as a ratio to HAProxy's (target <= 0.5 x); the daemon's late checks
//!   (`connhealth_checks_late_total`) as a share of its checks; RSS at the window's end.
//!   On the raw engine, a second line measures the same daemon started without
//!   `CAP_NET_RAW` (through `setpriv`), a socket per probe, as the packaged unit runs
//!   without its drop-in: its CPU per check, and the raw engine's as a ratio to it.
//! * `saturation, half-open at 1 s`: first `probe_many`'s throughput in this process
//!   (200k probes, 128 in flight, current-thread runtime, best of three, as
//!   `connhealth/benches/probe.rs`); then the daemon with N targets at 1 s, N from 0.8 x
//!   that rate up (or down) in steps of 0.2 x until it turns, then halving the gap
//!   between the largest N on time and the smallest late one down to 2.5 %, each with a 5 s window after a warm-up that lasts at least 3 s and until
//!   a second passes with at most 1 % late (at most 20 s: a fleet's first checks come at
//!   `fast_interval`, twice the steady rate, and near saturation that backlog takes
//!   seconds to drain; each trial's warm-up is printed). N is on time when at most 1 %
//!   of the window's checks were late and the checks sent kept the scheduled rate (N/s;
//!   exhausted ones are never sent). The line gives the largest N on time, as a ratio to
//!   the `probe_many` rate. `probe_many` and the daemon run the same engine (the one the
//!   library picks; the run fails if they differ), which the line names.
//! * `100k targets at 10 s`: the daemon's RSS after 12 s (every target up and on its
//!   interval), with its late checks and CPU per check over the 8 s after.
//! * `/probe`: blackbox_exporter (`tcp_connect` module) under `wrk -t2 -c32 -d10s`
//!   against `/probe?target=...&module=tcp_connect`, then the same load against ours,
//!   with `tcp_connect` (a socket per probe) and with `half_open` (on the engine the
//!   line names): the server's CPU ÷ the requests wrk
//!   completed, as a ratio to blackbox_exporter's. Then the same with `http_2xx` (a GET
//!   of one nginx URL over plain HTTP, a new connection per probe) on both.
//! * `detection`: one server killed and restarted 8 times at random phases (its
//!   listener and every accepted connection closed at once, as SIGKILL does), watched at
//!   once by HAProxy (`check inter 1s fastinter 200ms downinter 500ms rise 2 fall 3`, a
//!   fresh process for each kill, its failed checks and state changes read from its log
//!   as they arrive) and by our daemon with the same schedule (jitter 0), through 50
//!   entries each. `half-open` is compared by the expected detection of a failure at a
//!   random time, `inter/2 +` the mean time from the first failed check to down, as a
//!   ratio to HAProxy's (HAProxy's checks of its 50 servers bunch together, so the plain
//!   mean of 8 kills is mostly the luck of their timing; the plain means are printed
//!   too, see `detection.rs`), and by our plain mean from kill to down against the
//!   theory, `inter/2 + (fall - 1) x fastinter`; `hold` by its mean and max time from
//!   kill to down.
//!
//! * `https`: 1000 https URLs (`https://127.0.0.1:PORT/t/N`, `200 ok`) on one nginx
//!   (one process, 4096 connections, keep-alive 120 s and 100k requests, a certificate
//!   for 127.0.0.1 signed by a CA that rcgen makes for the run), checked once a second,
//!   one checker after the other: blackbox_exporter's `http_2xx` (trusting that CA),
//!   its `/probe` driven from this process at 1000 requests/s over 250 keep-alive
//!   connections, each URL once a second as Prometheus scraping 1k targets at 1 s
//!   would; then our daemon with 1000 `http` targets at `interval = "1s"`,
//!   `reuse_connection = true` (the default) and then `false`. Each gets a 10 s window
//!   after its warm-up (3 s for blackbox_exporter; ours until every target is up, then
//!   2 s): its CPU ÷ the checks it completed (blackbox's failed probes make the run
//!   `FAIL:`). Ours kept is compared with blackbox_exporter (target <= 0.2 x) and with
//!   ours not kept (what reuse saves, no target). nginx's `stub_status` must count one
//!   request per check, and, kept, about 1000 open connections and next to no new ones;
//!   not kept, one new connection per check. `WATCH_BENCH_ONLY=https cargo bench -p
//!   connhealth-watch` runs it alone (about 1 minute).
//!
//! * `state`: 10k flapping targets (a third of them changing state every second), run
//!   three times: plain, with `--data-dir`, and with 100 viewers on `GET /events`; the
//!   late checks and CPU per check of the last two as ratios to plain's (targets <= 1 %
//!   late, <= 1.1 x); `GET /` timed (target <= 50 ms) and Chromium's first paint of the
//!   status page over WebDriver (target <= 1 s). See `state.rs`. `WATCH_BENCH_ONLY=state`
//!   runs it alone (about 1.5 minutes).
//!
//! `WATCH_BENCH_ONLY=10k,saturation,100k,probe,detection,https,state` (any of them) runs
//! only those.
//!
//! Each line ends with its target; a missed one says `below target`. A run that did not
//! measure what it claims (checks missing from the wire, a half-open check accepted, a
//! peer that did not check) prints `FAIL:` and the bench exits 1.

mod detection;
mod fleet;
mod http;
mod listeners;
mod net;
mod ours;
mod peers;
mod probe_load;
mod process;
mod report;
mod state;

use std::path::Path;
use std::process::ExitCode;

use listeners::Listeners;
use report::Report;

/// One part of the bench: prints its lines, records its verdicts.
type Part<'a> = dyn Fn(&mut Report) -> std::io::Result<()> + 'a;

/// The loopback listeners the fleets are spread over.
const LISTENERS: usize = 100;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(ours::DAEMON_MODE) {
        let Some(config) = args.get(2) else {
            eprintln!("usage: {} {} CONFIG [DATA_DIR]", args[0], ours::DAEMON_MODE);
            return ExitCode::from(2);
        };
        return ours::child_main(Path::new(config), args.get(3).map(Path::new));
    }

    if let Err(why) = peers::ensure_installed() {
        eprintln!("watch bench: cannot run without its peers: {why}");
        return ExitCode::FAILURE;
    }
    // Before any thread starts: the namespace is the calling thread's, and every thread
    // and child started after inherit it.
    match net::isolate() {
        Ok(()) => {}
        Err(err) => {
            eprintln!(
                "watch bench: needs root, ip and iptables for a network namespace of its own and \
                 the rule that counts its SYNs ({err}): without one, other programs' connections \
                 would be counted as checks"
            );
            return ExitCode::FAILURE;
        }
    }
    // 100k targets and HAProxy's 10k servers: every listener and child needs room.
    if let Err(err) = connhealth_testkit::set_open_files_limit(1 << 20) {
        eprintln!("watch bench: cannot raise the descriptor limit: {err}");
    }
    let scratch = connhealth_testkit::TempDir::new("watch-bench");
    let dir = scratch.path().to_owned();
    let listeners = match Listeners::open(LISTENERS) {
        Ok(listeners) => listeners,
        Err(err) => {
            eprintln!("watch bench: cannot open the listeners: {err}");
            return ExitCode::FAILURE;
        }
    };

    let mut report = Report::default();
    let parts: [(&str, &Part); 7] = [
        ("10k", &|r| fleet::ten_k(&listeners, &dir, r)),
        ("saturation", &|r| fleet::saturation(&listeners, &dir, r)),
        ("100k", &|r| fleet::hundred_k(&listeners, &dir, r)),
        ("probe", &|r| probe_load::probe(&listeners, &dir, r)),
        ("detection", &|r| detection::detection(&dir, r)),
        ("https", &|r| http::https(&dir, r)),
        ("state", &|r| state::state(&dir, r)),
    ];
    // `WATCH_BENCH_ONLY=10k,detection` runs only those parts (to profile one, say).
    let only = std::env::var("WATCH_BENCH_ONLY").ok();
    for (name, part) in parts {
        if only
            .as_deref()
            .is_some_and(|only| !only.split(',').any(|o| o == name))
        {
            continue;
        }
        let start = std::time::Instant::now();
        if let Err(err) = part(&mut report) {
            report.fail(format!("{name}: {err}"));
        }
        eprintln!(
            "watch bench: {name} took {:.0} s",
            start.elapsed().as_secs_f64()
        );
    }
    if report.failed() {
        println!("configs and logs of this run: {}", dir.display());
        std::mem::forget(scratch); // kept, to be read
    }
    report.finish()
}
