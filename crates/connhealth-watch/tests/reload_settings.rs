//! Reload and a target's settings: a change of interval, fast_interval, down_interval,
//! timeout, jitter, labels, rise, fall or the check's own settings keeps the target's
//! state, counters and transitions, and the new settings apply from the next check; only a
//! change of address or check kind starts it again as unknown.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use connhealth_watch::config;
use connhealth_watch::daemon::Daemon;
use connhealth_watch::state::{Health, TargetState};
use support::{find, get, options, status, temp_dir, wait_health};

fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// `[defaults]` with `interval` as given: checks every `interval` once up.
fn defaults(interval: &str) -> String {
    format!(
        "[defaults]\ninterval = \"{interval}\"\nfast_interval = \"20ms\"\nrise = 1\nfall = 1\njitter = 0.0\n"
    )
}

fn target(name: &str, addr: SocketAddr, extra: &str) -> String {
    format!("\n[[targets]]\nname = \"{name}\"\naddress = \"{addr}\"\n{extra}")
}

fn start(path: &Path) -> Daemon {
    let plan = config::load(path).unwrap_or_else(|errors| panic!("{errors}"));
    Daemon::start(options(path.to_owned()), plan).expect("the daemon starts")
}

fn reload_with(daemon: &Daemon, path: &Path, text: String) {
    std::fs::write(path, text).unwrap();
    assert!(daemon.reload().is_ok(), "the new config loads");
}

/// The state, counters and transitions a reload must keep, equal before and after.
fn assert_kept(before: &TargetState, after: &TargetState) {
    assert_eq!(after.health, before.health, "{after:?}");
    assert_eq!(after.since, before.since);
    assert_eq!(after.state_changes, before.state_changes);
    assert_eq!(after.last_change, before.last_change);
    assert_eq!(after.transitions, before.transitions);
    assert!(
        after.total_checks() >= before.total_checks(),
        "checks counted before the reload were lost: {} then {}",
        before.total_checks(),
        after.total_checks()
    );
}

/// Every check counted, for one target, read while it is briefly not being checked.
fn checks(daemon: &Daemon, name: &str) -> u64 {
    status(daemon, name).total_checks()
}

#[test]
fn a_changed_defaults_interval_keeps_the_state_and_applies_from_the_next_wait() {
    let dir = temp_dir("reload-interval");
    let path = dir.join("watch.toml");
    let (_a, a) = listener();
    std::fs::write(
        &path,
        format!("{}{}", defaults("50ms"), target("web", a, "")),
    )
    .unwrap();
    let daemon = start(&path);
    wait_health(&daemon, "web", Health::Up, Duration::from_secs(3)).expect("up");
    std::thread::sleep(Duration::from_millis(200));
    let before = status(&daemon, "web");

    // Slower: the state stays, and the next check waits the new interval.
    reload_with(
        &daemon,
        &path,
        format!("{}{}", defaults("5s"), target("web", a, "")),
    );
    let after = status(&daemon, "web");
    assert_kept(&before, &after);
    assert_eq!(
        find(&daemon, "web").plan.check.interval,
        Duration::from_secs(5)
    );
    let at_reload = checks(&daemon, "web");
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        checks(&daemon, "web") <= at_reload + 1,
        "still checked every 50 ms after a reload to 5 s"
    );

    // Faster: not one old wait of 5 s more; checked at the new interval at once.
    let before = status(&daemon, "web");
    reload_with(
        &daemon,
        &path,
        format!("{}{}", defaults("50ms"), target("web", a, "")),
    );
    assert_kept(&before, &status(&daemon, "web"));
    let at_reload = checks(&daemon, "web");
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        checks(&daemon, "web") >= at_reload + 4,
        "the old 5 s wait ran on after a reload to 50 ms"
    );
    let last = status(&daemon, "web");
    assert_eq!(last.health, Health::Up);
    assert_eq!(last.state_changes, 1, "{last:?}");
    daemon.stop();
}

#[test]
fn changed_labels_rise_fall_and_timeout_keep_the_state_with_new_series() {
    let dir = temp_dir("reload-labels");
    let path = dir.join("watch.toml");
    let (_a, a) = listener();
    let first = format!("{}{}", defaults("50ms"), target("web", a, ""));
    std::fs::write(&path, first).unwrap();
    let daemon = start(&path);
    wait_health(&daemon, "web", Health::Up, Duration::from_secs(3)).expect("up");
    std::thread::sleep(Duration::from_millis(200));
    let before = status(&daemon, "web");

    let extra =
        "labels = { team = \"red\" }\nrise = 3\nfall = 4\ntimeout = \"700ms\"\ndown_interval = \"80ms\"\n";
    reload_with(
        &daemon,
        &path,
        format!("{}{}", defaults("50ms"), target("web", a, extra)),
    );
    assert_kept(&before, &status(&daemon, "web"));
    let web = find(&daemon, "web");
    let check = &web.plan.check;
    assert_eq!((check.rise, check.fall), (3, 4));
    assert_eq!(check.timeout, Duration::from_millis(700));
    assert_eq!(web.plan.labels.get("team").map(String::as_str), Some("red"));

    // The series carry the new labels, with the kept values; the old ones are gone.
    let metrics = get(daemon.listen(), "/metrics");
    let up: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("connhealth_target_up{"))
        .collect();
    assert_eq!(up.len(), 1, "{metrics}");
    assert!(
        up[0].contains("team=\"red\"") && up[0].ends_with(" 1"),
        "{metrics}"
    );
    let changes = metrics
        .lines()
        .find(|line| line.starts_with("connhealth_target_state_changes_total{"))
        .expect("state changes");
    assert!(
        changes.contains("team=\"red\"") && changes.ends_with(" 1"),
        "{changes}"
    );

    // The target goes on being checked.
    let at_reload = checks(&daemon, "web");
    std::thread::sleep(Duration::from_millis(300));
    assert!(checks(&daemon, "web") > at_reload);
    assert_eq!(status(&daemon, "web").state_changes, 1);
    daemon.stop();
}

#[test]
fn connhealth_target_up_is_never_absent_when_scraped_every_50_ms_across_a_reload_of_the_interval() {
    let dir = temp_dir("reload-scraped");
    let path = dir.join("watch.toml");
    let (_a, a) = listener();
    // rise = 2 at a fast_interval of 100 ms: a target that started again would be absent
    // for at least 100 ms, two scrapes.
    let defaults = |interval: &str| {
        format!(
            "[defaults]\ninterval = \"{interval}\"\nfast_interval = \"100ms\"\nrise = 2\nfall = 2\njitter = 0.0\n"
        )
    };
    std::fs::write(
        &path,
        format!("{}{}", defaults("100ms"), target("web", a, "")),
    )
    .unwrap();
    let daemon = start(&path);
    wait_health(&daemon, "web", Health::Up, Duration::from_secs(3)).expect("up");

    let listen = daemon.listen();
    let done = Arc::new(AtomicBool::new(false));
    let scraper = std::thread::spawn({
        let done = Arc::clone(&done);
        move || {
            let (mut scrapes, mut absent) = (0, Vec::new());
            while !done.load(Ordering::Relaxed) {
                let metrics = get(listen, "/metrics");
                let up = metrics
                    .lines()
                    .any(|line| line.starts_with("connhealth_target_up{") && line.ends_with(" 1"));
                if !up {
                    absent.push(metrics);
                }
                scrapes += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (scrapes, absent)
        }
    });
    let started = Instant::now();
    for interval in ["150ms", "1s", "100ms", "250ms"] {
        std::thread::sleep(Duration::from_millis(150));
        reload_with(
            &daemon,
            &path,
            format!("{}{}", defaults(interval), target("web", a, "")),
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    let (scrapes, absent) = scraper.join().unwrap();
    assert!(
        scrapes >= 10,
        "{scrapes} scrapes in {:?}",
        started.elapsed()
    );
    assert!(
        absent.is_empty(),
        "connhealth_target_up was absent or not 1 in {} of {scrapes} scrapes; the first:\n{}",
        absent.len(),
        absent[0]
    );
    assert_eq!(status(&daemon, "web").state_changes, 1);
    daemon.stop();
}

#[test]
fn a_changed_address_or_check_kind_starts_the_target_again_as_unknown() {
    let dir = temp_dir("reload-identity");
    let path = dir.join("watch.toml");
    let ((_a, a), (_b, b)) = (listener(), listener());
    let first = format!(
        "{}{}{}",
        defaults("50ms"),
        target("moved", a, ""),
        target("rekinded", a, "")
    );
    std::fs::write(&path, first).unwrap();
    let daemon = start(&path);
    for name in ["moved", "rekinded"] {
        wait_health(&daemon, name, Health::Up, Duration::from_secs(3)).expect("up");
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = [status(&daemon, "moved"), status(&daemon, "rekinded")];
    let reloaded_at = SystemTime::now();

    let second = format!(
        "{}{}{}",
        defaults("50ms"),
        target("moved", b, ""),
        target("rekinded", a, "check = \"connect\"\n")
    );
    reload_with(&daemon, &path, second);
    for (name, before) in ["moved", "rekinded"].into_iter().zip(before) {
        let after = status(&daemon, name);
        assert!(
            after.since >= reloaded_at,
            "{name} kept its state: {after:?}"
        );
        assert!(
            after.transitions.iter().all(|t| t.at >= reloaded_at),
            "{name} kept its transitions: {after:?}"
        );
        assert!(
            after.total_checks() < before.total_checks(),
            "{name} kept its counters: {after:?}"
        );
        wait_health(&daemon, name, Health::Up, Duration::from_secs(3)).expect("up again");
    }
    daemon.stop();
}

/// Accepts every connection to `listener` on a thread of its own, keeping them.
fn accept_all(listener: TcpListener) -> Arc<std::sync::Mutex<Vec<std::net::TcpStream>>> {
    let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
    std::thread::spawn({
        let accepted = Arc::clone(&accepted);
        move || {
            for stream in listener.incoming().flatten() {
                accepted.lock().unwrap().push(stream);
            }
        }
    });
    accepted
}

/// True when the peer closed `stream` within `within` (a FIN or an RST).
fn closed(stream: &std::net::TcpStream, within: Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    match (&*stream).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => !matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn a_hold_target_whose_settings_change_keeps_its_state_and_holds_a_new_connection() {
    let dir = temp_dir("reload-hold");
    let path = dir.join("watch.toml");
    let (server, a) = listener();
    let accepted = accept_all(server);
    let held = |timeout: &str| {
        format!(
            "{}{}",
            defaults("100ms"),
            target(
                "web",
                a,
                &format!("check = \"hold\"\ntimeout = \"{timeout}\"\n")
            )
        )
    };
    std::fs::write(&path, held("500ms")).unwrap();
    let daemon = start(&path);
    wait_health(&daemon, "web", Health::Up, Duration::from_secs(3)).expect("up");
    let deadline = Instant::now() + Duration::from_secs(3);
    while accepted.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no held connection");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = status(&daemon, "web");

    reload_with(&daemon, &path, held("700ms"));
    assert_kept(&before, &status(&daemon, "web"));
    let first = accepted.lock().unwrap()[0].try_clone().unwrap();
    assert!(
        closed(&first, Duration::from_secs(2)),
        "the connection held with the old settings is still open"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while accepted.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no connection held with the new settings"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = accepted.lock().unwrap()[1].try_clone().unwrap();
    assert!(
        !closed(&second, Duration::from_millis(300)),
        "the new connection closed"
    );
    std::thread::sleep(Duration::from_millis(300));
    let after = status(&daemon, "web");
    assert_eq!(
        (after.health, after.state_changes),
        (Health::Up, 1),
        "{after:?}"
    );
    daemon.stop();
}
