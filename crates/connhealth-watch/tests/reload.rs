//! Reload: unchanged targets keep their state, counters and transitions; ones whose
//! address or check kind changed start again as unknown (a change of settings alone is
//! `reload_settings.rs`); removed ones disappear; a config that does not load changes
//! nothing; file_sd changes are picked up within 5 s, with no reload asked for.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use connhealth_watch::config;
use connhealth_watch::daemon::Daemon;
use connhealth_watch::state::Health;
use support::{find, get, http, options, status, temp_dir, wait_health};

fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

const FAST: &str = "[defaults]\ninterval = \"100ms\"\nfast_interval = \"20ms\"\nrise = 1\nfall = 1\njitter = 0.0\n";

fn target(name: &str, addr: SocketAddr, extra: &str) -> String {
    format!("\n[[targets]]\nname = \"{name}\"\naddress = \"{addr}\"\n{extra}")
}

fn start(path: &Path) -> Daemon {
    let plan = config::load(path).unwrap_or_else(|errors| panic!("{errors}"));
    Daemon::start(options(path.to_owned()), plan).expect("the daemon starts")
}

fn names(daemon: &Daemon) -> Vec<String> {
    let fleet = daemon.shared().fleet();
    fleet.targets.iter().map(|t| t.plan.name.clone()).collect()
}

#[test]
fn unchanged_targets_keep_their_state_changed_ones_start_again_removed_ones_go() {
    let dir = temp_dir("reload-keeps");
    let path = dir.join("watch.toml");
    let ((_a, a), (_b, b), (_c, c), (_d, d)) = (listener(), listener(), listener(), listener());
    let first = format!(
        "{FAST}{}{}{}",
        target("kept", a, ""),
        target("changed", b, ""),
        target("removed", d, "")
    );
    std::fs::write(&path, first).unwrap();
    let daemon = start(&path);
    for name in ["kept", "changed", "removed"] {
        wait_health(&daemon, name, Health::Up, Duration::from_secs(3)).expect("up");
    }
    std::thread::sleep(Duration::from_millis(300));
    let kept_before = find(&daemon, "kept");
    let checks_before = kept_before.state().total_checks();

    let second = format!(
        "{FAST}{}{}{}",
        target("kept", a, ""),
        target("changed", b, "check = \"connect\"\n"),
        target("added", c, "")
    );
    std::fs::write(&path, second).unwrap();
    assert_eq!(daemon.reload(), Ok(3));
    assert_eq!(names(&daemon), ["kept", "changed", "added"]);

    let kept = find(&daemon, "kept");
    assert!(Arc::ptr_eq(&kept, &kept_before), "kept is the same target");
    let kept_status = kept.state().clone();
    assert_eq!(kept_status.health, Health::Up);
    assert_eq!(kept_status.state_changes, 1);
    assert_eq!(kept_status.transitions.len(), 1);
    assert!(kept_status.total_checks() >= checks_before);
    let changed = status(&daemon, "changed");
    assert!(
        changed.transitions.len() <= 1 && changed.total_checks() <= 3,
        "changed starts again: {changed:?}"
    );
    wait_health(&daemon, "added", Health::Up, Duration::from_secs(3)).expect("added is up");
    // The kept target goes on being checked, on its old schedule.
    std::thread::sleep(Duration::from_millis(500));
    assert!(status(&daemon, "kept").total_checks() >= checks_before + 3);

    let metrics = get(daemon.listen(), "/metrics");
    assert!(metrics.contains("target=\"added\""), "{metrics}");
    assert!(
        !metrics.contains("target=\"removed\""),
        "removed's series remain:\n{metrics}"
    );
    daemon.stop();
}

#[test]
fn a_config_that_does_not_load_changes_nothing_and_says_where() {
    let dir = temp_dir("reload-bad");
    let path = dir.join("watch.toml");
    let (_a, a) = listener();
    std::fs::write(&path, format!("{FAST}{}", target("web", a, ""))).unwrap();
    let daemon = start(&path);
    wait_health(&daemon, "web", Health::Up, Duration::from_secs(3)).expect("up");
    let before = find(&daemon, "web");

    std::fs::write(&path, format!("{FAST}{}rise = 0\n", target("web", a, ""))).unwrap();
    let errors = daemon.reload().expect_err("rise = 0 does not load");
    let first = &errors.0[0];
    assert_eq!((first.line, first.column), (11, 8), "{errors}");
    assert!(!daemon.shared().reload_state().successful);
    assert!(
        Arc::ptr_eq(&find(&daemon, "web"), &before),
        "the old config goes on"
    );
    let metrics = get(daemon.listen(), "/metrics");
    assert!(
        metrics.contains("connhealth_config_last_reload_successful 0"),
        "{metrics}"
    );

    // POST /-/reload answers 500 with the errors, and 200 once the file is fixed.
    let (code, body) = http(daemon.listen(), "POST", "/-/reload").unwrap();
    assert_eq!(code, 500, "{body}");
    assert!(body.contains(":11:8: "), "{body}");
    std::fs::write(&path, format!("{FAST}{}", target("web", a, ""))).unwrap();
    let (code, body) = http(daemon.listen(), "POST", "/-/reload").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(daemon.shared().reload_state().successful);
    assert!(
        Arc::ptr_eq(&find(&daemon, "web"), &before),
        "still the same target"
    );
    daemon.stop();
}

#[test]
fn file_sd_changes_are_picked_up_within_5_s() {
    let dir = temp_dir("reload-file-sd");
    std::fs::create_dir_all(dir.join("sd")).unwrap();
    let path = dir.join("watch.toml");
    let ((_a, a), (_b, b)) = (listener(), listener());
    std::fs::write(
        &path,
        format!("{FAST}\n[[file_sd]]\nfiles = [\"sd/*.json\"]\n"),
    )
    .unwrap();
    let group = |addr: SocketAddr, team: &str| {
        format!("[{{\"targets\": [\"{addr}\"], \"labels\": {{\"team\": \"{team}\"}}}}]")
    };
    std::fs::write(dir.join("sd/one.json"), group(a, "red")).unwrap();
    let daemon = start(&path);
    assert_eq!(names(&daemon), [a.to_string()]);
    wait_health(&daemon, &a.to_string(), Health::Up, Duration::from_secs(3)).expect("up");
    let before = find(&daemon, &a.to_string());

    let wait_for = |what: &str, cond: &dyn Fn(&Daemon) -> bool| {
        let start = Instant::now();
        while !cond(&daemon) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{what} not seen within 5 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    std::fs::write(dir.join("sd/two.json"), group(b, "blue")).unwrap();
    wait_for("a new file", &|d| names(d).len() == 2);
    std::fs::write(dir.join("sd/one.json"), group(a, "green")).unwrap();
    wait_for("a changed label", &|d| {
        find(d, &a.to_string())
            .plan
            .labels
            .get("team")
            .map(String::as_str)
            == Some("green")
    });
    // Only its labels changed: it keeps its state and counters.
    let relabelled = status(&daemon, &a.to_string());
    assert_eq!(relabelled.transitions, before.state().transitions);
    std::fs::remove_file(dir.join("sd/two.json")).unwrap();
    wait_for("a removed file", &|d| names(d).len() == 1);
    daemon.stop();
}
