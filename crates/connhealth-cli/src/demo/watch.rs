//! Demo part: the watch daemon sees a server killed and restarted. One target holds a
//! connection to it (`hold`), one probes it half-open every interval, as HAProxy and
//! blackbox_exporter do; the transitions print with their times after the kill and the
//! restart, next to what `interval × fall` would have taken.
//!
//! The server is this program run again as a child process (`connhealth demo-server`), so
//! that the kill is a real SIGKILL of a real process: its kernel closes the connections.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use connhealth_watch::config::Options;
use connhealth_watch::config::{Check, CheckKind, CheckPlan, Plan, TargetPlan};
use connhealth_watch::daemon::Daemon;
use connhealth_watch::state::{Health, Transition};

const INTERVAL: Duration = Duration::from_secs(1);
const FAST_INTERVAL: Duration = Duration::from_millis(300);
const RISE: u32 = 2;
const FALL: u32 = 3;

pub(crate) fn run() -> io::Result<()> {
    super::heading("connhealth watch: a server killed with SIGKILL, then restarted");
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = Server::start(port)?;

    let schedule = CheckPlan {
        interval: INTERVAL,
        fast_interval: FAST_INTERVAL,
        down_interval: INTERVAL,
        timeout: Duration::from_millis(500),
        rise: RISE,
        fall: FALL,
        jitter: 0.0,
        ..CheckPlan::default()
    };
    let target = |name: &str, kind| {
        let check = CheckPlan {
            check: Check::from(kind),
            ..schedule.clone()
        };
        TargetPlan::new(name, addr.to_string(), BTreeMap::new(), check).map_err(io::Error::other)
    };
    let plan = Plan {
        source: PathBuf::from("(demo)"),
        defaults: schedule.clone(),
        targets: vec![
            target("hold", CheckKind::Hold)?,
            target("half-open", CheckKind::HalfOpen)?,
        ],
        ..Plan::empty()
    };
    let options = Options {
        config: PathBuf::from("(demo)"),
        listen: "127.0.0.1:0".into(),
        check_config: false,
        shard: None,
        log_format: Default::default(),
        max_in_flight: None,
        web_config: None,
        data_dir: None,
    };
    let daemon = Daemon::start(options, plan).map_err(io::Error::other)?;
    println!(
        "Two targets watch one server on {addr}: `hold` keeps a connection open to it, `half-open`\n\
         probes it as HAProxy does. Both: interval {INTERVAL:?}, fast_interval {FAST_INTERVAL:?}, rise {RISE}, fall {FALL}."
    );
    if !wait_all(&daemon, Health::Up, Duration::from_secs(5)) {
        return Err(io::Error::other("the targets did not come up"));
    }
    // Let the hold connect, and both settle into their interval.
    std::thread::sleep(Duration::from_millis(400));

    println!("\nkill -9 the server:");
    let killed = SystemTime::now();
    server.kill()?;
    let down = print_transitions(&daemon, killed, Health::Down);
    println!(
        "  (interval x fall, the worst case of a checker that only asks: {:?}; HAProxy: up to \
         inter + (fall - 1) x fastinter = {:?})",
        INTERVAL * FALL,
        INTERVAL + FAST_INTERVAL * (FALL - 1)
    );

    println!("\nrestart the server:");
    let restarted = SystemTime::now();
    server = Server::start(port)?;
    let up = print_transitions(&daemon, restarted, Health::Up);
    daemon.stop();
    drop(server);
    if !(down && up) {
        return Err(io::Error::other("a transition did not come within 10 s"));
    }
    Ok(())
}

/// Prints each target's transition to `to` after `since`, in the order they happened.
fn print_transitions(daemon: &Daemon, since: SystemTime, to: Health) -> bool {
    let all = wait_all(daemon, to, Duration::from_secs(10));
    let mut seen: Vec<(String, Transition)> = daemon
        .shared()
        .fleet()
        .targets
        .iter()
        .filter_map(|t| {
            let status = t.state();
            let last = status.transitions.back()?.clone();
            (last.to == to && last.at >= since).then(|| (t.plan.name.clone(), last))
        })
        .collect();
    seen.sort_by_key(|(_, t)| t.at);
    for (name, transition) in &seen {
        let after = transition.at.duration_since(since).unwrap_or_default();
        println!(
            "  {:>9.1} ms  {name:<9}  {} -> {:<5}  {}",
            after.as_secs_f64() * 1e3,
            transition.from.name(),
            transition.to.name(),
            transition.why
        );
    }
    all
}

fn wait_all(daemon: &Daemon, health: Health, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        let fleet = daemon.shared().fleet();
        if fleet.targets.iter().all(|t| t.state().health == health) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// The demo's server: this program, run as `connhealth demo-server PORT`.
struct Server(Child);

impl Server {
    fn start(port: u16) -> io::Result<Server> {
        let child = Command::new(std::env::current_exe()?)
            .args(["demo-server", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut server = Server(child);
        // It says "ready" once it listens.
        let mut ready = [0u8; 6];
        if let Some(out) = server.0.stdout.as_mut() {
            out.read_exact(&mut ready)?;
        }
        Ok(server)
    }

    fn kill(&mut self) -> io::Result<()> {
        self.0.kill()?;
        self.0.wait().map(drop)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `connhealth demo-server PORT`: listens on 127.0.0.1:PORT, and holds every connection
/// open, reading and dropping what comes, until killed.
pub(crate) fn serve(port: u16) -> io::Result<()> {
    use std::io::Write;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let mut stdout = io::stdout();
    stdout.write_all(b"ready\n")?;
    stdout.flush()?;
    for conn in listener.incoming() {
        let mut conn = conn?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        });
    }
    Ok(())
}
