//! A starved engine thread still closes answered sockets before the delayed ACK: a
//! half-open probe never becomes a connection the server accepts, even with a backlog of
//! thousands behind a huge `max_in_flight` and a tenth of a core for the engine.
//!
//! The engine thread alone is put in a CPU cgroup of the test's own with a quota of 1 ms
//! every 10 ms (cgroup v1's `cpu.cfs_quota_us`, or v2's `cpu.max` in a threaded cgroup).
//! A turn that started every queued probe at once would then last far past the ~200 ms
//! delayed-ACK point (`TCP_DELACK_MAX`), and the kernel would complete the handshakes of
//! the sockets started early in it: the listeners, which this test drains from a thread
//! that is not starved, would accept them. With the per-turn start cap, a turn stays a
//! few tens of milliseconds long even so.
//!
//! A file of its own: it looks the engine thread up by name in its own process, and one
//! test per process keeps that to one prober.
#![cfg(target_os = "linux")] // needs a CPU cgroup for one thread, and /proc/self/task

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connhealth::Prober;
use connhealth_testkit::{require, Netns};
use socket2::{Domain, Socket, Type};

/// The engine's share of a core: 1 ms of CPU every 10 ms.
const QUOTA_US: u64 = 1_000;
const PERIOD_US: u64 = 10_000;

/// Probes queued at once, spread over the listeners.
const PROBES: usize = 4_096;
const LISTENERS: usize = 16;

/// A CPU cgroup made for one thread, removed on drop (once the thread has left it by
/// exiting).
struct CpuQuota {
    dir: PathBuf,
}

impl CpuQuota {
    /// Puts thread `tid` in a new cgroup limited to `quota_us` of CPU per `period_us`.
    fn confine(tid: u32, quota_us: u64, period_us: u64) -> io::Result<CpuQuota> {
        let name = format!("connhealth-starved-{}", std::process::id());
        // cgroup v1: a thread can join a cpu cgroup on its own (`tasks`).
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        if v1.join("tasks").exists() {
            let dir = v1.join(&name);
            fs::create_dir(&dir)?;
            let quota = CpuQuota { dir };
            fs::write(quota.dir.join("cpu.cfs_period_us"), period_us.to_string())?;
            fs::write(quota.dir.join("cpu.cfs_quota_us"), quota_us.to_string())?;
            fs::write(quota.dir.join("tasks"), tid.to_string())?;
            return Ok(quota);
        }
        // cgroup v2: only a threaded child of the process's own cgroup takes one thread.
        let own = fs::read_to_string("/proc/self/cgroup")?
            .lines()
            .find_map(|line| line.strip_prefix("0::").map(str::to_owned))
            .ok_or_else(|| io::Error::other("no cgroup v2 entry in /proc/self/cgroup"))?;
        let parent = Path::new("/sys/fs/cgroup").join(own.trim_start_matches('/'));
        let controllers = fs::read_to_string(parent.join("cgroup.controllers"))?;
        if !controllers.split_whitespace().any(|c| c == "cpu") {
            return Err(io::Error::other(format!(
                "the cpu controller is not available in {}",
                parent.display()
            )));
        }
        fs::write(parent.join("cgroup.subtree_control"), "+cpu")?;
        let dir = parent.join(&name);
        fs::create_dir(&dir)?;
        let quota = CpuQuota { dir };
        fs::write(quota.dir.join("cgroup.type"), "threaded")?;
        fs::write(quota.dir.join("cpu.max"), format!("{quota_us} {period_us}"))?;
        fs::write(quota.dir.join("cgroup.threads"), tid.to_string())?;
        Ok(quota)
    }

    /// How many periods found the cgroup out of quota: the proof that it was starved.
    fn throttled_periods(&self) -> u64 {
        // `nr_throttled` in both versions' cpu.stat.
        fs::read_to_string(self.dir.join("cpu.stat"))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("nr_throttled ")?.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        // Normally empty by now: its one thread, the engine, was joined when the prober
        // dropped. After a panic the engine may still run: it goes back to the parent,
        // so that the directory can go.
        for list in ["tasks", "cgroup.threads"] {
            let (Ok(tids), Some(parent)) =
                (fs::read_to_string(self.dir.join(list)), self.dir.parent())
            else {
                continue;
            };
            for tid in tids.lines() {
                let _ = fs::write(parent.join(list), tid);
            }
        }
        let _ = fs::remove_dir(&self.dir);
    }
}

/// The engine thread's name, "connhealth-probe", as `comm` holds it: 15 bytes.
const ENGINE_COMM: &str = "connhealth-prob";

/// The threads of this process named `name`.
fn threads_named(name: &str) -> Vec<u32> {
    fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let task = task.ok()?;
            let comm = fs::read_to_string(task.path().join("comm")).ok()?;
            (comm.trim() == name).then(|| task.file_name().to_str()?.parse().ok())?
        })
        .collect()
}

/// A listener with room for every probe in its queues, so that a completed handshake is
/// queued (and counted), not dropped.
fn listener() -> TcpListener {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(4096).unwrap();
    socket.set_nonblocking(true).unwrap();
    socket.into()
}

#[test]
fn a_starved_engine_with_a_huge_backlog_closes_answered_sockets_before_the_delayed_ack() {
    if !require("a starved probe engine", &["ip"]) {
        return;
    }
    let _ = connhealth_testkit::set_open_files_limit(1 << 16);
    let netns = Netns::new().unwrap();
    let before = threads_named(ENGINE_COMM);
    let (listeners, prober) = netns
        .enter(|| {
            let listeners: Vec<_> = (0..LISTENERS).map(|_| listener()).collect();
            let prober = Prober::builder()
                .raw(false)
                .max_in_flight(1 << 20)
                .max_in_flight_per_destination(1 << 20)
                .build();
            (listeners, prober)
        })
        .unwrap();
    // A new thread names itself once it runs: look until it has.
    let mut engine = None;
    connhealth_testkit::wait_until(Duration::from_secs(5), || {
        engine = threads_named(ENGINE_COMM)
            .into_iter()
            .find(|tid| !before.contains(tid));
        engine.is_some()
    });
    let engine = engine.expect("the prober's engine thread");
    let quota = match CpuQuota::confine(engine, QUOTA_US, PERIOD_US) {
        Ok(quota) => quota,
        Err(err) if connhealth_testkit::in_ci() => panic!("cannot starve the engine: {err}"),
        Err(err) => {
            eprintln!("skipping: cannot put the engine thread in a CPU cgroup: {err}");
            return;
        }
    };

    // Every connection a listener accepts is a probe left open past the delayed ACK.
    let accepted = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let drain = std::thread::spawn({
        let (accepted, done) = (Arc::clone(&accepted), Arc::clone(&done));
        move || loop {
            let last = done.load(Ordering::Acquire);
            for listener in &listeners {
                while listener.accept().is_ok() {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
            if last {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });

    let start = Instant::now();
    let targets = (0..PROBES).map(|i| addrs[i % LISTENERS]);
    let answered = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut stream = prober.probe_many(targets, Duration::from_secs(10));
            let (mut answered, mut longest) = (0, Duration::ZERO);
            while let Some((addr, result)) = stream.next().await {
                // From just before the SYN to the turn that saw the answer, which closes
                // the socket: about how long it stayed open.
                let open_for = result.unwrap_or_else(|err| panic!("{addr}: {err:?}"));
                longest = longest.max(open_for);
                answered += 1;
            }
            (answered, longest)
        });
    let (answered, longest) = answered;
    let took = start.elapsed();
    // A delayed ACK still on its way arrives within its 200 ms.
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Release);
    drain.join().unwrap();
    let throttled = quota.throttled_periods();
    drop(prober);
    drop(quota);

    let accepted = accepted.load(Ordering::Relaxed);
    println!(
        "{answered} probes in {took:?} on a starved engine ({throttled} periods throttled): \
         the longest open {longest:?}, {accepted} accepted"
    );
    assert_eq!(answered, PROBES);
    assert!(
        throttled > 10,
        "the engine was not starved ({throttled} periods throttled): the test proves nothing"
    );
    assert_eq!(
        accepted, 0,
        "{accepted} probe sockets stayed open past the delayed-ACK window and were accepted"
    );
}
