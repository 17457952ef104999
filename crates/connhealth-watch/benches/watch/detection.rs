//! Detection beside HAProxy: one server killed (its listener and every connection closed
//! at once, as SIGKILL does) and restarted, several times at random phases, watched by
//! HAProxy and by our daemon at the same time with the same schedule.
//!
//! Each checker watches the server through `SERVERS` entries (HAProxy `server` lines; our
//! `half-open` and `hold` targets). For a checker that checks every `inter` while up, a
//! kill's detection time is the wait for each entry's next check (its phase, uniform over
//! `inter` for a failure at a random time) plus the time from that first failed check to
//! down (`(fall - 1) x fastinter` and the checker's own delays). Our entries stay spread
//! evenly over the interval, so the mean of one kill is already close to the expectation;
//! HAProxy's bunch together (its 50 servers' checks fall within about 500 ms, wherever
//! the kill lands), so the plain mean of a few kills is mostly the luck of their timing
//! (±150 ms). The verdict therefore compares each checker's expectation for a failure at
//! a random time, `inter / 2 + the mean time from the first failed check to down`, both
//! measured the same way: HAProxy's failed checks and downs from its log as they arrive,
//! ours from the daemon's last check and transitions. The plain means are printed too.

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
const KILLS: usize = 8;
const INTER: Duration = Duration::from_secs(1);
const FASTINTER: Duration = Duration::from_millis(200);
const FALL: u32 = 3;

/// A `down_interval` apart from `interval`: a target checked on another grid while down
/// must come back to its own place in the interval once up, or the fleet's checks bunch
/// together after each recovery (what cost us 0.1 to 0.2 s here before).
fn schedule() -> Schedule {
    Schedule {
        interval: INTER,
        fast_interval: FASTINTER,
        down_interval: Duration::from_millis(500),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: FALL,
        // HAProxy's default (`spread-checks 0`): no jitter, so the schedules are equal.
        jitter: 0.0,
    }
}

const HAPROXY_CHECKS: &str = "check inter 1s fastinter 200ms downinter 500ms rise 2 fall 3";

/// What a HAProxy log line says about a server: a check failed, or it went UP or DOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HaproxyEvent {
    Failed,
    Became(Health),
}

fn haproxy_event(line: &str) -> Option<(&str, HaproxyEvent)> {
    if let Some(rest) = line.strip_prefix("Health check for server be/") {
        let (server, rest) = rest.split_once(' ')?;
        return rest
            .starts_with("failed")
            .then_some((server, HaproxyEvent::Failed));
    }
    let rest = line.strip_prefix("Server be/")?;
    let (server, rest) = rest.split_once(' ')?;
    let health = if rest.starts_with("is DOWN") {
        Health::Down
    } else if rest.starts_with("is UP") {
        Health::Up
    } else {
        return None;
    };
    Some((server, HaproxyEvent::Became(health)))
}

/// The first time each HAProxy server logged `event` in `lines`.
fn haproxy_first(lines: &[LogLine], event: HaproxyEvent) -> HashMap<String, SystemTime> {
    let mut first = HashMap::new();
    for (at, line) in lines {
        if let Some((server, e)) = haproxy_event(line) {
            if e == event {
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
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One entry's detection of one kill, in ms from the kill.
#[derive(Debug, Clone, Copy)]
struct Detection {
    /// To its first failed check.
    failed: f64,
    /// To down.
    down: f64,
}

/// Every entry's detections of every kill.
#[derive(Default)]
struct Detections(Vec<Detection>);

impl Detections {
    /// The entries of one kill: their downs, and their first failed checks (an entry
    /// without one, `hold`'s, is down at its first failure).
    fn add(
        &mut self,
        killed: SystemTime,
        downs: &HashMap<String, SystemTime>,
        failed: &HashMap<String, SystemTime>,
    ) -> Detections {
        let since = |at: &SystemTime| millis(at.duration_since(killed).unwrap_or_default());
        let kill = Detections(
            downs
                .iter()
                .map(|(name, down)| Detection {
                    failed: failed.get(name).map_or(since(down), since),
                    down: since(down),
                })
                .collect(),
        );
        self.0.extend(&kill.0);
        kill
    }

    fn mean(&self, f: impl Fn(&Detection) -> f64) -> f64 {
        self.0.iter().map(f).sum::<f64>() / self.0.len().max(1) as f64
    }

    fn mean_down(&self) -> f64 {
        self.mean(|d| d.down)
    }

    fn max_down(&self) -> f64 {
        self.0.iter().map(|d| d.down).fold(0.0, f64::max)
    }

    fn min_down(&self) -> f64 {
        self.0.iter().map(|d| d.down).fold(f64::INFINITY, f64::min)
    }

    /// The mean wait for the first failed check: `inter / 2` in expectation.
    fn mean_phase(&self) -> f64 {
        self.mean(|d| d.failed)
    }

    /// The mean time from the first failed check to down: the checker's own part.
    fn mean_after_failure(&self) -> f64 {
        self.mean(|d| d.down - d.failed)
    }

    /// The expected detection of a failure at a random time.
    fn expected(&self) -> f64 {
        millis(INTER) / 2.0 + self.mean_after_failure()
    }
}

/// `Detection beside HAProxy on one flapping server with the same schedule`.
pub fn detection(dir: &Path, report: &mut Report) -> io::Result<()> {
    let server = FlapServer::start()?;
    let addr = server.addr();
    let haproxy_checks = HaproxyChecks {
        options: HAPROXY_CHECKS.into(),
        log: true,
    };
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

    let (mut theirs, mut half_open, mut hold) = Default::default();
    let mut spans = Vec::new();
    let mut rng = fastrand::Rng::new();
    for kill in 0..KILLS {
        // A HAProxy of its own for each kill, started with its servers up: the
        // bunching of its checks then owes nothing to the last restart.
        let haproxy = Haproxy::start(
            dir,
            &format!("haproxy-detection-{kill}"),
            &vec![addr; SERVERS],
            &haproxy_checks,
        )?;
        // Every entry checked at `interval` (ours since the last restart, HAProxy's since
        // its start), then a random phase.
        std::thread::sleep(Duration::from_millis(1500 + rng.u64(0..1000)));
        if haproxy.servers_up()? != (SERVERS, 0) {
            report.fail(format!(
                "detection, kill {kill}: HAProxy's servers were not all UP"
            ));
        }
        let seen = haproxy.peer().lines().len();
        let killed = server.kill();
        // Our first failed checks, seen by polling each target's last check (a check
        // lasts until the next, 500 ms later at the least).
        let mut ours_failed: HashMap<String, SystemTime> = HashMap::new();
        let haproxy_since = |event| haproxy_first(&haproxy.peer().lines()[seen..], event);
        let everyone_down = wait_until(Duration::from_secs(6), || {
            for (name, ok, at) in daemon.last_checks("half-open-")? {
                if !ok && at >= killed {
                    ours_failed.entry(name).or_insert(at);
                }
            }
            Ok(
                haproxy_since(HaproxyEvent::Became(Health::Down)).len() == SERVERS
                    && all(&mut daemon, Health::Down)?,
            )
        })?;
        if !everyone_down {
            report.fail(format!(
                "detection, kill {kill}: within 6 s HAProxy saw {} of {SERVERS} down, ours {:?} {:?}",
                haproxy_since(HaproxyEvent::Became(Health::Down)).len(),
                daemon.health("half-open-")?,
                daemon.health("hold-")?,
            ));
        }
        let h = Detections::add(
            &mut theirs,
            killed,
            &haproxy_since(HaproxyEvent::Became(Health::Down)),
            &haproxy_since(HaproxyEvent::Failed),
        );
        let o = Detections::add(
            &mut half_open,
            killed,
            &ours_first(&mut daemon, "half-open-", Health::Down, killed)?,
            &ours_failed,
        );
        spans.push(format!(
            "{:.0}-{:.0} / {:.0}-{:.0}",
            h.min_down(),
            h.max_down(),
            o.min_down(),
            o.max_down()
        ));
        let downs = ours_first(&mut daemon, "hold-", Health::Down, killed)?;
        Detections::add(&mut hold, killed, &downs, &HashMap::new());
        haproxy.stop();

        server.restart()?;
        if !wait_until(Duration::from_secs(6), || all(&mut daemon, Health::Up))? {
            report.fail(format!(
                "detection, restart {kill}: our targets not all up within 6 s"
            ));
            break;
        }
    }
    let held = server.held();
    daemon.stop()?;
    if held < SERVERS {
        report.fail(format!(
            "detection: the server held {held} connections, {SERVERS} expected (hold)"
        ));
    }
    let expected = KILLS * SERVERS;
    for (who, d) in [
        ("HAProxy", &theirs),
        ("half-open", &half_open),
        ("hold", &hold),
    ] {
        if d.0.len() != expected {
            report.fail(format!(
                "detection: {} of {expected} downs seen for {who}",
                d.0.len()
            ));
        }
    }
    let phase_off = (half_open.mean_phase() - millis(INTER) / 2.0).abs();
    if phase_off > 0.1 * millis(INTER) {
        // Ours are spread evenly: a mean phase far from inter/2 means our checks while
        // up do not come every `interval`, and the expectation above would flatter us.
        report.fail(format!(
            "detection: our mean wait for the first failed check was {:.0} ms, not about {:.0}",
            half_open.mean_phase(),
            millis(INTER) / 2.0
        ));
    }

    let ratio = half_open.expected() / theirs.expected();
    // Half an interval to the first failed check, then fall - 1 fast intervals.
    let theory = millis(INTER) / 2.0 + f64::from(FALL - 1) * millis(FASTINTER);
    println!(
        "detection, one server killed {KILLS} times (inter 1 s, fastinter 200 ms, downinter 500 ms, \
         rise 2, fall 3): half-open {:.0} ms = {ratio:.2} x HAProxy ({:.0} ms; target <= 1.0){}; \
         hold {:.1} ms mean, {:.1} ms max (target <= 50 ms){}",
        half_open.expected(),
        theirs.expected(),
        below(ratio <= 1.0),
        hold.mean_down(),
        hold.max_down(),
        below(hold.max_down() <= 50.0),
    );
    println!(
        "  expected for a failure at a random time: inter/2 + first failed check to down \
         (HAProxy {:.1} ms, ours {:.1} ms); observed over {SERVERS} entries x {KILLS} kills: \
         HAProxy {:.0} ms (first failed check after {:.0} ms), ours {:.0} ms ({:.0} ms); \
         each kill's span, HAProxy / ours: {} ms",
        theirs.mean_after_failure(),
        half_open.mean_after_failure(),
        theirs.mean_down(),
        theirs.mean_phase(),
        half_open.mean_down(),
        half_open.mean_phase(),
        spans.join(", ")
    );
    let plain = half_open.mean_down() / theory;
    println!(
        "  ours from kill to down: {:.0} ms = {plain:.2} x the theory's {theory:.0} ms \
         (inter/2 + (fall - 1) x fastinter; target <= 1.05){}",
        half_open.mean_down(),
        below(plain <= 1.05),
    );
    report.target("detection: half-open <= 1.0 x HAProxy", ratio <= 1.0);
    report.target("detection: ours within 5 % of the theory", plain <= 1.05);
    report.target("detection: hold <= 50 ms", hold.max_down() <= 50.0);
    Ok(())
}
