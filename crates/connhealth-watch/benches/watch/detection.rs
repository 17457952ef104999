//! Detection beside HAProxy: one server killed (its listener and every connection closed
//! at once, as SIGKILL does) and restarted, several times at random phases, watched by
//! HAProxy and by our daemon at the same time with the same schedule.
//!
//! Each checker watches the server through `SERVERS` entries (HAProxy `server` lines;
//! our `half-open` and `hold` targets), which both spread evenly over the interval. A
//! kill's detection time is mostly the wait for each entry's next check, uniform over the
//! interval; averaging over evenly spread entries takes that phase out, so the means
//! compare the schedules and the checkers, not the luck of one kill's timing.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use connhealth_watch::config::CheckKind;
use connhealth_watch::state::Health;

use crate::listeners::FlapServer;
use crate::ours::{self, Ours, Schedule, TargetSpec};
use crate::peers::{Haproxy, HaproxyChecks, LogLine};
use crate::report::{below, Report};

/// Entries per checker and kind on the one server.
const SERVERS: usize = 50;
const KILLS: usize = 5;

fn schedule() -> Schedule {
    Schedule {
        interval: Duration::from_secs(1),
        fast_interval: Duration::from_millis(500),
        down_interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: 3,
        // HAProxy's default (`spread-checks 0`): no jitter, so the schedules are equal.
        jitter: 0.0,
    }
}

const HAPROXY_CHECKS: &str = "check inter 1s fastinter 500ms downinter 1s rise 2 fall 3";

/// The server a HAProxy state-change line names, and whether it says UP or DOWN.
fn haproxy_change(line: &str) -> Option<(&str, Health)> {
    let rest = line.strip_prefix("Server be/")?;
    let (server, rest) = rest.split_once(' ')?;
    let health = if rest.starts_with("is DOWN") {
        Health::Down
    } else if rest.starts_with("is UP") {
        Health::Up
    } else {
        return None;
    };
    Some((server, health))
}

/// The first time each HAProxy server became `health` in `lines`.
fn haproxy_first(lines: &[LogLine], health: Health) -> HashMap<String, SystemTime> {
    let mut first = HashMap::new();
    for (at, line) in lines {
        if let Some((server, h)) = haproxy_change(line) {
            if h == health {
                first.entry(server.to_owned()).or_insert(*at);
            }
        }
    }
    first
}

/// The first time each of our targets named `prefix*` became `health` at or after `since`.
fn ours_first(
    daemon: &mut Ours,
    prefix: &str,
    health: Health,
    since: SystemTime,
) -> io::Result<HashMap<String, SystemTime>> {
    let mut first = HashMap::new();
    for (name, to, at) in daemon.transitions(prefix)? {
        if to == health && at >= since {
            first.entry(name).or_insert(at);
        }
    }
    Ok(first)
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> io::Result<bool>) -> io::Result<bool> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done()? {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Detection times in ms, from the kill to each entry's down.
#[derive(Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn add(&mut self, killed: SystemTime, downs: &HashMap<String, SystemTime>) {
        self.0.extend(
            downs
                .values()
                .map(|at| millis(at.duration_since(killed).unwrap_or_default())),
        );
    }

    fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len().max(1) as f64
    }

    fn max(&self) -> f64 {
        self.0.iter().copied().fold(0.0, f64::max)
    }
}

/// `Detection beside HAProxy on one flapping server with the same schedule`.
pub fn detection(dir: &Path, report: &mut Report) -> io::Result<()> {
    let server = FlapServer::start()?;
    let addr = server.addr();
    let haproxy = Haproxy::start(
        dir,
        "haproxy-detection",
        &vec![addr; SERVERS],
        &HaproxyChecks {
            options: HAPROXY_CHECKS.into(),
            log: true,
        },
    )?;
    // Interleaved, so that each kind spreads over the whole interval.
    let targets: Vec<TargetSpec> = (0..SERVERS)
        .flat_map(|i| {
            let target = |name: String, check| TargetSpec {
                name,
                address: addr,
                check,
            };
            [
                target(format!("half-open-{i}"), CheckKind::HalfOpen),
                target(format!("hold-{i}"), CheckKind::Hold),
            ]
        })
        .collect();
    let mut daemon = Ours::start(
        dir,
        "ours-detection",
        &ours::config_toml(&schedule(), &targets),
    )?;
    let all = |daemon: &mut Ours, health: Health| -> io::Result<bool> {
        let (a, b) = (daemon.health("half-open-")?, daemon.health("hold-")?);
        Ok(match health {
            Health::Up => a.up == SERVERS && b.up == SERVERS,
            _ => a.down == SERVERS && b.down == SERVERS,
        })
    };
    if !wait_until(Duration::from_secs(10), || all(&mut daemon, Health::Up))? {
        report.fail("detection: our targets never all came up".into());
        return Ok(());
    }

    let (mut theirs, mut half_open, mut hold) =
        (Samples::default(), Samples::default(), Samples::default());
    let mut rng = fastrand::Rng::new();
    for kill in 0..KILLS {
        // Every entry back at `interval`, then a random phase.
        std::thread::sleep(Duration::from_millis(1000 + rng.u64(0..1000)));
        let seen = haproxy.peer().lines().len();
        let killed = server.kill();
        let haproxy_down = || haproxy_first(&haproxy.peer().lines()[seen..], Health::Down);
        let everyone_down = wait_until(Duration::from_secs(6), || {
            Ok(haproxy_down().len() == SERVERS && all(&mut daemon, Health::Down)?)
        })?;
        if !everyone_down {
            report.fail(format!(
                "detection, kill {kill}: within 6 s HAProxy saw {} of {SERVERS} down, ours {:?} {:?}",
                haproxy_down().len(),
                daemon.health("half-open-")?,
                daemon.health("hold-")?,
            ));
        }
        theirs.add(killed, &haproxy_down());
        half_open.add(
            killed,
            &ours_first(&mut daemon, "half-open-", Health::Down, killed)?,
        );
        hold.add(
            killed,
            &ours_first(&mut daemon, "hold-", Health::Down, killed)?,
        );

        let seen = haproxy.peer().lines().len();
        server.restart()?;
        let everyone_up = wait_until(Duration::from_secs(6), || {
            let up = haproxy_first(&haproxy.peer().lines()[seen..], Health::Up);
            Ok(up.len() == SERVERS && all(&mut daemon, Health::Up)?)
        })?;
        if !everyone_up {
            report.fail(format!(
                "detection, restart {kill}: not everyone up within 6 s"
            ));
            break;
        }
    }
    let held = server.held();
    daemon.stop()?;
    haproxy.stop();
    if held < SERVERS {
        report.fail(format!(
            "detection: the server held {held} connections, {SERVERS} expected (hold)"
        ));
    }
    let expected = KILLS * SERVERS;
    for (who, samples) in [
        ("HAProxy", &theirs),
        ("half-open", &half_open),
        ("hold", &hold),
    ] {
        if samples.0.len() != expected {
            report.fail(format!(
                "detection: {} of {expected} downs seen for {who}",
                samples.0.len()
            ));
        }
    }

    let ratio = half_open.mean() / theirs.mean();
    println!(
        "detection, one server killed {KILLS} times (inter 1 s, fastinter 500 ms, downinter 1 s, rise 2, \
         fall 3): half-open {:.0} ms = {ratio:.2} x HAProxy ({:.0} ms; target <= 1.0){}; hold {:.1} ms \
         mean, {:.1} ms max (target <= 50 ms){}",
        half_open.mean(),
        theirs.mean(),
        below(ratio <= 1.0),
        hold.mean(),
        hold.max(),
        below(hold.max() <= 50.0),
    );
    println!(
        "  {SERVERS} entries per checker on the server; HAProxy's schedule gives inter/2 + (fall - 1) x \
         fastinter = 1500 ms on average; max: HAProxy {:.0} ms, half-open {:.0} ms",
        theirs.max(),
        half_open.max(),
    );
    report.target("detection: half-open <= 1.0 x HAProxy", ratio <= 1.0);
    report.target("detection: hold <= 50 ms", hold.max() <= 50.0);
    Ok(())
}
