//! The seam for sinks: every transition reaches each sink in order, and a slow sink loses
//! its own events (counted) but never delays a check.

mod support;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use connhealth_watch::checks::{CheckResult, Outcome};
use connhealth_watch::config::{Check, CheckPlan, TargetPlan};
use connhealth_watch::daemon::Daemon;
use connhealth_watch::sinks::{Event, Sink, Sinks};
use connhealth_watch::state::{Health, Watched};
use support::{get, options, plan, status, target};

/// A sink that takes `delay` over each event, and counts what it was told.
struct Slow {
    delay: Duration,
    told: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Health>>>,
}

impl Sink for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }

    fn deliver(&mut self, event: Event) {
        std::thread::sleep(self.delay);
        if let Event::Changed { transition, .. } = event {
            self.told.fetch_add(1, Ordering::SeqCst);
            self.seen.lock().unwrap().push(transition.to);
        }
    }
}

fn flapping(rise_fall: u32) -> CheckPlan {
    CheckPlan {
        check: Check::HalfOpen,
        interval: Duration::from_millis(20),
        fast_interval: Duration::from_millis(20),
        down_interval: Duration::from_millis(20),
        timeout: Duration::from_millis(200),
        rise: rise_fall,
        fall: rise_fall,
        jitter: 0.0,
    }
}

#[test]
fn a_slow_sink_never_delays_a_check() {
    // A listener opened and closed every 60 ms: the target changes state about every
    // 60 ms, and the sink takes a second over each change.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let stop = Arc::new(AtomicBool::new(false));
    let flapper = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            while !stop.load(Ordering::Relaxed) {
                let open = TcpListener::bind(addr);
                std::thread::sleep(Duration::from_millis(60));
                drop(open);
                std::thread::sleep(Duration::from_millis(60));
            }
        }
    });
    let told = Arc::new(AtomicUsize::new(0));
    let slow = Slow {
        delay: Duration::from_secs(1),
        told: Arc::clone(&told),
        seen: Arc::default(),
    };
    let daemon = Daemon::start_with(
        options("(test)".into()),
        plan(vec![target("flap", addr, flapping(1))]),
        vec![Box::new(slow)],
    )
    .unwrap();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let state = status(&daemon, "flap");
    let late = daemon.shared().sinks.late_checks();
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    flapper.join().unwrap();
    // Checks went on at their 20 ms interval: about 100 in 2 s, never waiting for the
    // sink, which had been told of at most 2 or 3 of the changes by then.
    let checks = state.total_checks();
    let expected = (elapsed.as_millis() / 20) as u64;
    assert!(
        checks * 10 >= expected * 8,
        "{checks} checks, {expected} due"
    );
    assert!(state.state_changes >= 10, "{} changes", state.state_changes);
    assert!(told.load(Ordering::SeqCst) <= 3, "the sink kept up?");
    assert!(late * 10 <= checks, "{late} of {checks} checks late");
    // Nor a stop: the sink, still a second per event behind, is not waited for.
    let stopping = Instant::now();
    daemon.stop();
    assert!(
        stopping.elapsed() < Duration::from_millis(900),
        "stop took {:?}",
        stopping.elapsed()
    );
}

#[test]
fn a_full_queue_drops_the_sinks_own_events_and_counts_them() {
    let told = Arc::new(AtomicUsize::new(0));
    let slow = Slow {
        delay: Duration::from_millis(300),
        told: Arc::clone(&told),
        seen: Arc::default(),
    };
    let sinks = Sinks::with_capacity(vec![Box::new(slow)], 4).unwrap();
    let plan = TargetPlan::new("web", "127.0.0.1:1", Default::default(), flapping(1)).unwrap();
    let web = Arc::new(Watched::new(plan, SystemTime::now()));
    let started = Instant::now();
    for i in 0..100 {
        let outcome = if i % 2 == 0 {
            Outcome::Ok
        } else {
            Outcome::Refused
        };
        sinks.record(&web, CheckResult::new(outcome, Duration::ZERO));
    }
    // 100 transitions recorded at once: the state has every one of them.
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "record waited"
    );
    assert_eq!(web.state().state_changes, 100);
    let dropped = sinks.dropped();
    assert_eq!(dropped.len(), 1);
    let (name, lost) = dropped[0];
    assert_eq!(name, "slow");
    // The one being delivered and the 4 queued got through; the rest were dropped.
    assert!((94..=96).contains(&lost), "{lost} dropped");
}

#[test]
fn every_sink_is_told_every_transition_in_order_and_metrics_count_drops() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let slow = Slow {
        delay: Duration::ZERO,
        told: Arc::default(),
        seen: Arc::clone(&seen),
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let daemon = Daemon::start_with(
        options("(test)".into()),
        plan(vec![target("web", addr, flapping(1))]),
        vec![Box::new(slow)],
    )
    .unwrap();
    support::wait_health(&daemon, "web", Health::Up, Duration::from_secs(3)).expect("up");
    drop(listener);
    support::wait_health(&daemon, "web", Health::Down, Duration::from_secs(3)).expect("down");
    let metrics = get(daemon.listen(), "/metrics");
    daemon.stop(); // the sinks deliver what they hold first
    assert_eq!(*seen.lock().unwrap(), [Health::Up, Health::Down]);
    for sink in ["log", "slow"] {
        let line = format!("connhealth_sink_events_dropped_total{{sink=\"{sink}\"}} 0");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

/// A sink that batches: it writes what it holds at its ticks, and at `finish`.
struct Batching {
    held: Vec<Health>,
    written: Arc<Mutex<Vec<Vec<Health>>>>,
    next: Option<Instant>,
}

impl Sink for Batching {
    fn name(&self) -> &'static str {
        "batching"
    }

    fn deliver(&mut self, event: Event) {
        if let Event::Changed { transition, .. } = event {
            self.held.push(transition.to);
        }
    }

    fn tick(&mut self, now: Instant) -> Option<Instant> {
        match self.next {
            Some(at) if now >= at => {
                if !self.held.is_empty() {
                    self.written
                        .lock()
                        .unwrap()
                        .push(std::mem::take(&mut self.held));
                }
                self.next = Some(now + Duration::from_millis(50));
            }
            None => self.next = Some(now + Duration::from_millis(50)),
            Some(_) => {}
        }
        self.next
    }

    fn finish(&mut self) {
        self.written
            .lock()
            .unwrap()
            .push(std::mem::take(&mut self.held));
    }
}

#[test]
fn a_sink_is_ticked_when_it_asks_and_finishes_at_stop() {
    let written = Arc::new(Mutex::new(Vec::new()));
    let sinks = Sinks::start(vec![Box::new(Batching {
        held: Vec::new(),
        written: Arc::clone(&written),
        next: None,
    })])
    .unwrap();
    let plan = TargetPlan::new("web", "127.0.0.1:1", Default::default(), flapping(1)).unwrap();
    let web = Arc::new(Watched::new(plan, SystemTime::now()));
    sinks.record(
        &web,
        CheckResult::new(Outcome::Ok, Duration::from_millis(1)),
    );
    // No further event: only a tick can write it.
    let start = Instant::now();
    while written.lock().unwrap().is_empty() && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(*written.lock().unwrap(), [vec![Health::Up]]);
    sinks.record(&web, CheckResult::new(Outcome::Refused, Duration::ZERO));
    assert!(sinks.stop(Duration::from_secs(2)).is_empty());
    let written = written.lock().unwrap();
    assert_eq!(written.concat(), [Health::Up, Health::Down], "{written:?}");
}

/// A target's name, and a minute's number, checks and failures.
type Seen = (String, u64, u32, u32);

/// Remembers the minutes it is handed.
struct Minutes(Arc<Mutex<Vec<Seen>>>);

impl Sink for Minutes {
    fn name(&self) -> &'static str {
        "minutes"
    }

    fn wants_minutes(&self) -> bool {
        true
    }

    fn deliver(&mut self, event: Event) {
        if let Event::Minute { target, minute } = event {
            let seen = (
                target.plan.name.clone(),
                minute.minute,
                minute.checks,
                minute.failures,
            );
            self.0.lock().unwrap().push(seen);
        }
    }
}

#[test]
fn a_sink_that_asks_is_handed_each_closed_minute() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sinks = Sinks::start(vec![Box::new(Minutes(Arc::clone(&seen)))]).unwrap();
    let plan = TargetPlan::new("web", "127.0.0.1:1", Default::default(), flapping(1)).unwrap();
    let web = Arc::new(Watched::new(plan, SystemTime::now()));
    // Two checks in this minute; then a later minute's check closes it.
    sinks.record(
        &web,
        CheckResult::new(Outcome::Ok, Duration::from_millis(1)),
    );
    sinks.record(&web, CheckResult::new(Outcome::Refused, Duration::ZERO));
    let this = web.state().minute.expect("open").minute;
    web.state().minute.as_mut().unwrap().minute = this - 1; // as if a minute had passed
    sinks.record(
        &web,
        CheckResult::new(Outcome::Ok, Duration::from_millis(1)),
    );
    sinks.stop(Duration::from_secs(2));
    assert_eq!(*seen.lock().unwrap(), [("web".to_owned(), this - 1, 2, 1)]);
}
