//! Out of descriptors: `EMFILE` is the prober's own problem, reported as `Exhausted`, and
//! the prober slows down instead of failing everything.
//!
//! A file of its own because it lowers RLIMIT_NOFILE, which is process-wide: each file in
//! `tests/` is its own process, and this file holds one test.
#![cfg(target_os = "linux")] // needs RLIMIT_NOFILE (setrlimit) and /proc/self/fd

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use connhealth::{ProbeError, Prober};

fn open_fds() -> usize {
    // Minus the descriptor that reads the directory.
    std::fs::read_dir("/proc/self/fd").unwrap().count() - 1
}

fn set_nofile(limit: u64) {
    connhealth_testkit::set_open_files_limit(limit).unwrap();
}

/// Takes every descriptor left under the limit.
fn fill(from: &OwnedFd) -> Vec<OwnedFd> {
    let mut held = Vec::new();
    while let Ok(fd) = from.try_clone() {
        held.push(fd);
    }
    held
}

#[test]
fn out_of_descriptors_is_exhausted_and_the_prober_slows_down() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_addr = other.local_addr().unwrap();
    // Everything that needs descriptors is made before they run out: the runtime and
    // the prober's engine (an epoll instance and an eventfd).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prober = Prober::builder().raw(false).max_in_flight(256).build();
    let one_per_destination = Prober::builder()
        .raw(false)
        .max_in_flight(256)
        .max_in_flight_per_destination(1)
        .build();
    let before = open_fds();
    set_nofile(before as u64 + 64);
    let source = OwnedFd::from(server.try_clone().unwrap());
    let mut held = fill(&source);
    assert!(!held.is_empty());

    // No descriptor left, nothing of ours in flight to give one back: Exhausted, at once.
    let start = Instant::now();
    let result = rt.block_on(prober.probe_addr(addr, Duration::from_secs(5)));
    match &result {
        Err(ProbeError::Exhausted(err)) => assert_eq!(err.raw_os_error(), Some(libc::EMFILE)),
        other => panic!("expected Exhausted(EMFILE), got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_millis(500));
    assert!(
        !result.unwrap_err().is_down(),
        "exhaustion says nothing about the target"
    );

    // Four descriptors for 256 probes allowed in flight: the engine waits for its own
    // probes to give descriptors back, and every probe succeeds.
    held.truncate(held.len() - 4);
    let ok = rt.block_on(async {
        let mut stream = prober.probe_many(vec![addr; 2_000], Duration::from_secs(5));
        let mut ok = 0;
        while let Some((_, result)) = stream.next().await {
            assert!(result.is_ok(), "{result:?}");
            ok += 1;
        }
        ok
    });
    assert_eq!(ok, 2_000);

    // One descriptor, two destinations, one place each: while a probe to one is in
    // flight, a start toward the other stalls on EMFILE. The stalled start must give its
    // destination's place back, or every later probe there parks behind a place that
    // nobody holds, and waits for ever.
    held.extend(fill(&source));
    held.truncate(held.len() - 1);
    let ok = rt.block_on(async {
        let alternating = (0..200).map(|i| if i % 2 == 0 { addr } else { other_addr });
        let mut stream = one_per_destination.probe_many(alternating, Duration::from_secs(5));
        let mut ok = 0;
        let all = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some((_, result)) = stream.next().await {
                assert!(result.is_ok(), "{result:?}");
                ok += 1;
            }
        });
        assert!(all.await.is_ok(), "stuck after {ok} of 200 probes");
        ok
    });
    assert_eq!(ok, 200);
    drop((held, source));
    set_nofile(1 << 20);

    // The failures leaked no descriptor.
    assert!(open_fds() <= before, "{} open, {before} before", open_fds());
}
