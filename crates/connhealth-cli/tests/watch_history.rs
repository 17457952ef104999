//! `connhealth watch --data-dir`: the real binary, a target flapped by opening and closing
//! a real listener, then `kill -9` and a restart on the same data dir. Every transition
//! older than a second is still in `/api/history`, the target resumes in its last state
//! (`connhealth_target_up` is there, unchanged, at the first scrape), no success is lost
//! from the uptime, and SQLite finds the file whole. A data dir that cannot be used is
//! exit 2 naming the path.
//!
//! The store's own tests (retention, bounds, refused files) are the daemon crate's
//! `tests/history.rs`.
#![cfg(target_os = "linux")]

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use connhealth_testkit::{http, wait_until, TempDir};
use serde_json::Value;

/// A daemon started with `--data-dir`.
struct Daemon {
    child: Child,
    listen: SocketAddr,
}

impl Daemon {
    fn start(config: &Path, data_dir: &Path, log: &Path) -> Daemon {
        let listen = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_connhealth"))
            .args(["watch", "--config", config.to_str().unwrap()])
            .args(["--listen", &listen.to_string()])
            .args(["--data-dir", data_dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start connhealth watch");
        Daemon { child, listen }
    }

    /// The first answer of `GET path` once the daemon serves, within 10 s.
    fn first_answer(&self, path: &str) -> String {
        let mut body = None;
        wait_until(Duration::from_secs(10), || {
            body = http(self.listen, "GET", path)
                .ok()
                .filter(|(code, _)| *code == 200)
                .map(|(_, body)| body);
            body.is_some()
        });
        body.unwrap_or_else(|| panic!("GET {path}: no answer within 10 s"))
    }

    fn json(&self, path: &str) -> Value {
        let (code, body) = http(self.listen, "GET", path).unwrap();
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|err| panic!("GET {path}: {err}: {body}"))
    }

    fn state(&self, target: &str) -> String {
        let status = self.json(&format!("/status?target={target}"));
        status["targets"][0]["state"].as_str().unwrap().to_owned()
    }

    fn wait_state(&self, target: &str, state: &str) {
        let reached = wait_until(Duration::from_secs(10), || self.state(target) == state);
        assert!(reached.is_some(), "{target} not {state} within 10 s");
    }

    /// SIGKILL, and the process reaped.
    fn kill_9(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the series of `name` for `target` in a `/metrics` answer.
fn series(metrics: &str, name: &str, target: &str) -> Option<String> {
    let prefix = format!("{name}{{target=\"{target}\",");
    metrics
        .lines()
        .find(|line| line.starts_with(&prefix))
        .and_then(|line| line.rsplit(' ').next())
        .map(str::to_owned)
}

/// Each transition as (from, to, at's Unix time).
fn transitions(list: &Value) -> Vec<(String, String, f64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap().to_owned(),
                t["to"].as_str().unwrap().to_owned(),
                t["at"]["unix"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The checks and the successes of every aggregate `/api/history` gives, read until two
/// reads in a row agree (a minute closed that moment is on its way to the file).
fn checks_and_successes(daemon: &Daemon, target: &str) -> (u64, u64) {
    let read = || {
        let history = daemon.json(&format!("/api/history?target={target}"));
        let mut sums = (0, 0);
        for minute in history["aggregates"].as_array().unwrap() {
            let checks = minute["checks"].as_u64().unwrap();
            sums.0 += checks;
            sums.1 += checks - minute["failures"].as_u64().unwrap();
        }
        sums
    };
    let mut last = read();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = read();
        if now.1 == last.1 {
            return now;
        }
        last = now;
    }
}

#[test]
fn a_flapping_target_is_remembered_across_kill_9() {
    let dir = TempDir::new("cli-watch-history");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let config = dir.write(
        "watch.toml",
        format!(
            "[defaults]\ninterval = \"100ms\"\nfast_interval = \"50ms\"\ntimeout = \"100ms\"\n\
             rise = 1\nfall = 1\n\n[[targets]]\nname = \"flappy\"\naddress = \"{address}\"\n"
        ),
    );
    let data = dir.join("data");
    let log = dir.join("daemon.log");
    let daemon = Daemon::start(&config, &data, &log);
    daemon.first_answer("/-/healthy");

    // up, down, up, down: a real listener opened and closed.
    daemon.wait_state("flappy", "up");
    drop(listener);
    daemon.wait_state("flappy", "down");
    let listener = TcpListener::bind(address).expect("bind the same port again");
    daemon.wait_state("flappy", "up");
    drop(listener);
    daemon.wait_state("flappy", "down");
    // Older than a second, and the minute under way saved since the last success.
    std::thread::sleep(Duration::from_secs(6));

    let before = daemon.json("/status?target=flappy");
    let before = transitions(&before["targets"][0]["transitions"]);
    assert_eq!(before.len(), 4, "{before:?}");
    let metrics = daemon.first_answer("/metrics");
    assert_eq!(
        series(&metrics, "connhealth_target_up", "flappy").as_deref(),
        Some("0")
    );
    let (checks_before, successes_before) = checks_and_successes(&daemon, "flappy");
    assert!(successes_before > 0 && checks_before > successes_before);
    daemon.kill_9();

    // The file, as the killed process left it, is whole.
    {
        let file = data.join("state.sqlite");
        let conn = rusqlite::Connection::open(&file).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    let daemon = Daemon::start(&config, &data, &log);
    // The first scrape that answers: the target is down, as it was, and its changes
    // counted on.
    let metrics = daemon.first_answer("/metrics");
    assert_eq!(
        series(&metrics, "connhealth_target_up", "flappy").as_deref(),
        Some("0"),
        "{metrics}"
    );
    assert_eq!(
        series(&metrics, "connhealth_target_state_changes_total", "flappy").as_deref(),
        Some("4")
    );
    let history = daemon.json("/api/history?target=flappy");
    assert_eq!(history["target"], "flappy");
    let after = transitions(&history["transitions"]);
    assert_eq!(after.len(), before.len(), "{after:?}");
    for (saved, seen) in after.iter().zip(&before) {
        assert_eq!((&saved.0, &saved.1), (&seen.0, &seen.1));
        assert!(
            (saved.2 - seen.2).abs() < 1e-3,
            "{saved:?} against {seen:?}"
        );
    }
    // /status's transitions resumed too.
    let status = daemon.json("/status?target=flappy");
    assert_eq!(status["targets"][0]["state"], "down");
    assert_eq!(transitions(&status["targets"][0]["transitions"]).len(), 4);
    // The uptime: not one success lost; of the failures, at most those of the last
    // 5 s before the kill (the minute under way is saved every 5 s), while new ones add.
    let (checks_after, successes_after) = checks_and_successes(&daemon, "flappy");
    assert_eq!(successes_after, successes_before);
    assert!(
        checks_after + 80 >= checks_before,
        "{checks_after} checks after the restart, {checks_before} before"
    );
    let aggregate = &history["aggregates"][0];
    for key in [
        "checks",
        "failures",
        "rtt_min_seconds",
        "rtt_avg_seconds",
        "rtt_max_seconds",
    ] {
        assert!(aggregate.get(key).is_some(), "{key} missing: {aggregate}");
    }
    assert!(aggregate["at"]["rfc3339"].is_string() && aggregate["at"]["unix"].is_number());

    // A name the daemon does not know, and a bad window.
    let (code, body) = http(daemon.listen, "GET", "/api/history?target=nobody").unwrap();
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("\"nobody\""), "{body}");
    let (code, body) = http(
        daemon.listen,
        "GET",
        "/api/history?target=flappy&window=31d",
    )
    .unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("at most 30d"), "{body}");
    let (code, body) = http(
        daemon.listen,
        "GET",
        "/api/history?target=flappy&window=soon",
    )
    .unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("1h, 24h or 7d"), "{body}");
    daemon.kill_9();
}

/// `connhealth watch --data-dir DIR`'s exit code and stderr.
fn refused(data_dir: &Path) -> (Option<i32>, String) {
    let dir = TempDir::new("cli-watch-history-refused");
    let config = dir.write("watch.toml", "[defaults]\ninterval = \"2s\"\n");
    let output = Command::new(env!("CARGO_BIN_EXE_connhealth"))
        .args(["watch", "--config", config.to_str().unwrap()])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

#[test]
fn a_data_dir_that_cannot_be_used_is_exit_2_naming_the_path() {
    let dir = TempDir::new("cli-watch-history-bad");
    // Garbage where state.sqlite should be: refused, and left as it was.
    let garbage = dir.write("data/state.sqlite", "not a database, but someone's notes\n");
    let (code, stderr) = refused(&dir.join("data"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(garbage.to_str().unwrap()), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&garbage).unwrap(),
        "not a database, but someone's notes\n"
    );
    // A file where the data dir should be.
    let file = dir.write("not-a-dir", "a file\n");
    let (code, stderr) = refused(&file);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(file.to_str().unwrap()), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "a file\n");
}

/// A read-only file system, which stops root too: a data dir there, with or without a
/// `state.sqlite` of connhealth's, is exit 2 naming the path (a bind mount of the test's
/// own folder, remounted read-only).
#[test]
fn a_data_dir_on_a_read_only_file_system_is_exit_2_naming_the_path() {
    if !connhealth_testkit::require("a read-only bind mount", &["mount", "umount"]) {
        return;
    }
    let dir = TempDir::new("cli-watch-history-ro");
    let mount = dir.join("ro");
    std::fs::create_dir_all(mount.join("empty")).unwrap();
    // A file of connhealth's, made while the folder was writable.
    let kept = mount.join("kept");
    let (code, _) = refused_after(&kept, Duration::from_millis(1500));
    assert_eq!(code, None, "the daemon ran until killed");
    let file = kept.join("state.sqlite");
    assert!(file.exists());
    let m = mount.to_str().unwrap();
    let run = |args: &[&str]| {
        let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
        assert!(status.success(), "{args:?}");
    };
    run(&["mount", "--bind", m, m]);
    struct Unmount<'a>(&'a str);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(m);
    run(&["mount", "-o", "remount,bind,ro", m]);
    let empty = mount.join("empty");
    let (code, stderr) = refused(&empty);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(empty.to_str().unwrap()), "{stderr}");
    let (code, stderr) = refused(&kept);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(file.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("read-only"), "{stderr}");
}

/// Starts `connhealth watch --data-dir DIR` and kills it after `run`, unless it ended
/// before: its exit code (None when killed) and stderr.
fn refused_after(data_dir: &Path, run: Duration) -> (Option<i32>, String) {
    let dir = TempDir::new("cli-watch-history-run");
    let config = dir.write("watch.toml", "[defaults]\ninterval = \"2s\"\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_connhealth"))
        .args(["watch", "--config", config.to_str().unwrap()])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(run);
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}
