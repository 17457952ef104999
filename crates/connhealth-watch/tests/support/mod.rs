//! Shared by the daemon's integration tests: plans built in code, a daemon started in
//! this process on a free loopback port, and waits on a target's health.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use connhealth_watch::config::{CheckPlan, Plan, TargetPlan};
use connhealth_watch::daemon::Daemon;
use connhealth_watch::state::{Health, TargetState, Watched};
use connhealth_watch::Options;

/// A plan of `targets`, with the built-in defaults.
pub fn plan(targets: Vec<TargetPlan>) -> Plan {
    Plan {
        source: PathBuf::from("test.toml"),
        targets,
        ..Plan::empty()
    }
}

/// A target named `name` at `address`, checked as `check` says.
pub fn target(name: &str, address: impl ToString, check: CheckPlan) -> TargetPlan {
    TargetPlan::new(name, address.to_string(), BTreeMap::new(), check).expect("a valid address")
}

/// Options for a daemon of `config` listening on a free loopback port.
pub fn options(config: PathBuf) -> Options {
    Options {
        config,
        listen: "127.0.0.1:0".into(),
        check_config: false,
        shard: None,
        log_format: Default::default(),
        max_in_flight: None,
        web_config: None,
        data_dir: None,
    }
}

/// A daemon watching `plan`, started in this process.
pub fn start(plan: Plan) -> Daemon {
    Daemon::start(options(plan.source.clone()), plan).expect("the daemon starts")
}

/// The same, with each prober limited to `max_in_flight` probes in flight.
pub fn start_limited(plan: Plan, max_in_flight: usize) -> Daemon {
    let options = Options {
        max_in_flight: Some(max_in_flight),
        ..options(plan.source.clone())
    };
    Daemon::start(options, plan).expect("the daemon starts")
}

/// The target named `name`.
pub fn find(daemon: &Daemon, name: &str) -> Arc<Watched> {
    daemon
        .shared()
        .fleet()
        .targets
        .iter()
        .find(|t| t.plan.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no target {name}"))
}

/// A copy of the status of the target named `name`.
pub fn status(daemon: &Daemon, name: &str) -> TargetState {
    find(daemon, name).state().clone()
}

/// Waits until the target named `name` is `health`; the time that took, or None.
pub fn wait_health(
    daemon: &Daemon,
    name: &str,
    health: Health,
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if status(daemon, name).health == health {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// When the target named `name` last became `health`, as its transition says.
pub fn became(daemon: &Daemon, name: &str, health: Health) -> Option<SystemTime> {
    status(daemon, name)
        .transitions
        .iter()
        .rev()
        .find(|t| t.to == health)
        .map(|t| t.at)
}

/// A fresh folder for one test, removed on drop.
pub fn temp_dir(test: &str) -> connhealth_testkit::TempDir {
    connhealth_testkit::TempDir::new(test)
}

pub use connhealth_testkit::http;

/// `GET path`, expecting 200: the body.
pub fn get(addr: SocketAddr, path: &str) -> String {
    match http(addr, "GET", path) {
        Ok((200, body)) => body,
        Ok((code, body)) => panic!("GET {path}: {code} {body}"),
        Err(err) => panic!("GET {path}: {err}"),
    }
}
