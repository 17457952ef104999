//! Checkouts and returns on different cores. A connection returned with no one waiting
//! is parked in its CPU's lane, where the next checkout on that CPU takes it without the
//! shared lock. These tests prove that a parked connection is never out of reach: a
//! checkout on another core takes it rather than open a new one, and a waiter that
//! queues just as a connection is parked gets it, whichever of the two comes first.
//!
//! Each test runs two threads, each pinned to its own CPU and driving its own
//! single-threaded runtime; the pool's background task runs on a third runtime.

mod pool_support;

use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use connhealth::pool::Pool;
use connhealth_testkit::pin_thread_to_cpu;
use pool_support::Fakes;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Builds a pool on a runtime of its own, which is returned to keep its task alive. Its
/// idle watcher is off: it moves connections parked for 20 ms to the waiters, and would
/// hide a parked connection that the return and the checkout both missed.
fn pool(max_size: usize) -> (tokio::runtime::Runtime, Fakes, Pool<Fakes>) {
    let home = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fakes = Fakes::default();
    let pool = home
        .block_on(
            Pool::builder()
                .max_size(max_size)
                .get_timeout(Duration::from_secs(5))
                .watch_idle(false)
                .build(fakes.clone()),
        )
        .unwrap();
    (home, fakes, pool)
}

/// Two CPUs to pin to, one odd and one even, so that they map to different lanes (the
/// pool has a power of two of them, indexed by CPU number), or `None` when this process
/// may not use two such CPUs.
#[cfg(unix)]
fn two_cpus() -> Option<[usize; 2]> {
    // The threads are pinned with util-linux's taskset.
    connhealth_testkit::ensure_command("taskset").expect("taskset, to pin threads to CPUs");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("one CPU: the threads cannot run on two cores at once");
        return None;
    }
    // The first two CPUs of this process's affinity mask.
    let mask = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = mask
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))?
        .trim()
        .to_owned();
    let mut ids = list.split(',').flat_map(|range| {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let (lo, hi) = (lo.parse::<usize>().unwrap(), hi.parse::<usize>().unwrap());
        lo..=hi
    });
    let first = ids.next()?;
    let second = ids.find(|id| id % 2 != first % 2)?;
    Some([first, second])
}

/// Windows: CPUs 0 and 1 (`SetThreadAffinityMask`), when this process may use two.
#[cfg(windows)]
fn two_cpus() -> Option<[usize; 2]> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("one CPU: the threads cannot run on two cores at once");
        return None;
    }
    Some([0, 1])
}

#[test]
fn a_checkout_on_another_core_takes_the_connection_parked_on_this_one() {
    let Some([first, second]) = two_cpus() else {
        return;
    };
    let (_home, fakes, pool) = pool(8);
    let returned = std::thread::scope(|scope| {
        let pool = &pool;
        let id = scope
            .spawn(move || {
                assert!(pin_thread_to_cpu(first), "could not pin to CPU {first}");
                let conn = current_thread().block_on(pool.get()).unwrap();
                conn.id // parked in this CPU's lane when dropped
            })
            .join()
            .unwrap();
        let taken = scope
            .spawn(move || {
                assert!(pin_thread_to_cpu(second), "could not pin to CPU {second}");
                current_thread().block_on(pool.get()).unwrap().id
            })
            .join()
            .unwrap();
        (id, taken)
    });
    assert_eq!(
        returned.0, returned.1,
        "the parked connection, not a new one"
    );
    assert_eq!(fakes.made.load(std::sync::atomic::Ordering::SeqCst), 1);
    let stats = pool.stats();
    assert_eq!((stats.size(), stats.idle()), (1, 1));
    assert_eq!((stats.requests(), stats.successes()), (2, 2));
}

#[test]
fn a_waiter_on_one_core_gets_the_connection_returned_on_another_as_it_queues() {
    // A connection passed back and forth: each round, one thread returns it at the
    // moment the other asks for it, each after a random spin of up to a few
    // microseconds, so that the return lands before, inside and after the window in
    // which the checkout queues. A connection parked where the queued waiter cannot
    // see it would leave that waiter hanging: the round would fail after 2 s.
    const ROUNDS: usize = 3000;
    let Some(cpus) = two_cpus() else {
        return;
    };
    // Two slots, so that the pool has a lane per thread; one is held throughout, so
    // that the other connection is the only one going round, with the pool at its
    // max_size: a checkout that misses it must queue.
    let (_home, fakes, pool) = pool(2);
    let _held = current_thread().block_on(pool.get()).unwrap();
    let (start, end) = (Barrier::new(2), Barrier::new(2));
    // A failed round ends both threads' loops, rather than leave one at a barrier.
    let failed = Mutex::new(None::<String>);
    let first = current_thread().block_on(pool.get()).unwrap();
    let slowest = std::thread::scope(|scope| {
        let threads: Vec<_> = [Some(first), None]
            .into_iter()
            .zip(cpus)
            .enumerate()
            .map(|(me, (mut held, cpu))| {
                let (pool, start, end, failed) = (&pool, &start, &end, &failed);
                scope.spawn(move || {
                    let pinned = pin_thread_to_cpu(cpu);
                    let rt = current_thread();
                    let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ me as u64;
                    let mut slowest = Duration::ZERO;
                    for round in 0..ROUNDS {
                        start.wait();
                        spin(&mut seed);
                        if !pinned {
                            *failed.lock().unwrap() = Some(format!("could not pin to CPU {cpu}"));
                        } else if round % 2 == me {
                            drop(held.take());
                        } else {
                            let asked = Instant::now();
                            let got = rt.block_on(async {
                                tokio::time::timeout(Duration::from_secs(2), pool.get()).await
                            });
                            slowest = slowest.max(asked.elapsed());
                            match got {
                                Ok(Ok(conn)) => held = Some(conn),
                                Ok(Err(err)) => {
                                    *failed.lock().unwrap() = Some(format!("round {round}: {err}"))
                                }
                                Err(_) => {
                                    *failed.lock().unwrap() =
                                        Some(format!("round {round}: the waiter hung"))
                                }
                            }
                        }
                        end.wait();
                        if failed.lock().unwrap().is_some() {
                            break;
                        }
                    }
                    slowest
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .max()
            .unwrap()
    });
    if let Some(failure) = failed.into_inner().unwrap() {
        panic!("{failure}");
    }
    assert_eq!(fakes.made.load(std::sync::atomic::Ordering::SeqCst), 2);
    let stats = pool.stats();
    assert_eq!(stats.size(), 2);
    assert_eq!(stats.timeouts(), 0);
    eprintln!("slowest hand-off: {slowest:?}");
}

/// Spins for a pseudo-random 0 to ~4 µs.
fn spin(seed: &mut u64) {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    for _ in 0..(*seed % 4096) {
        std::hint::spin_loop();
    }
}
