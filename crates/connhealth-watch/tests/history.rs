//! `--data-dir`'s history: what the store writes comes back at the next start, minutes
//! older than 30 days go and transitions stay, the memory holds a bounded history per
//! target, the history's sink commits a transition within a second, and a file that is
//! not connhealth's (or is damaged, or newer) is refused with its path and left as it
//! was.
//!
//! The daemon's side across a `kill -9` is the cli's `tests/watch_history.rs`.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use connhealth_testkit::TempDir;
use connhealth_watch::checks::{CheckResult, Outcome};
use connhealth_watch::config::{CheckPlan, TargetPlan};
use connhealth_watch::sinks::history::{
    History, HistorySink, HOURS_KEPT, MINUTES_KEPT, TRANSITIONS_KEPT,
};
use connhealth_watch::sinks::{Sink, Sinks};
use connhealth_watch::state::{Health, MinuteAggregate, Transition, Watched};
use connhealth_watch::store::history::{self as tables, Batch, Identity, LastState, Writer};
use connhealth_watch::store::{Store, FILE_NAME};

fn transition(from: Health, to: Health, at: SystemTime) -> Transition {
    Transition {
        from,
        to,
        at,
        why: format!("to {}", to.name()),
        check_time: Duration::from_micros(321),
        detail: (to == Health::Down).then(|| "connection refused".to_owned()),
    }
}

fn minute(at: SystemTime, checks: u32, failures: u32) -> MinuteAggregate {
    let mut minute = MinuteAggregate::new(at);
    for i in 0..checks {
        minute.add(i >= failures, Duration::from_micros(200 + u64::from(i)));
    }
    minute
}

fn identity() -> Identity {
    Identity {
        address: "127.0.0.1:6379".into(),
        check: "half-open",
    }
}

/// Now, to the microsecond (what the file keeps).
fn now_us() -> SystemTime {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    UNIX_EPOCH + Duration::from_micros(since.as_micros() as u64)
}

#[test]
fn what_the_store_writes_comes_back_at_the_next_start() {
    let dir = TempDir::new("history-round-trip");
    let now = now_us();
    let ago = |secs: u64| now - Duration::from_secs(secs);
    let transitions = vec![
        transition(Health::Unknown, Health::Up, ago(7200)),
        transition(Health::Up, Health::Down, ago(600)),
    ];
    {
        let store = Store::open(dir.path()).unwrap();
        let mut batch = Batch::default();
        let state = LastState {
            health: Health::Down,
            since: ago(600),
            last_change: Some(ago(600)),
            state_changes: 2,
        };
        batch
            .targets
            .insert("cache".into(), (identity(), Some(state)));
        batch.targets.insert("quiet".into(), (identity(), None));
        for t in &transitions {
            batch.transitions.push(("cache".into(), t.clone()));
        }
        // Two hours of minutes, each with one failure in four checks.
        for m in (1..=120).rev() {
            batch
                .minutes
                .push(("cache".into(), minute(ago(60 * m), 4, 1)));
        }
        let mut conn = store.lock();
        Writer::new(&conn)
            .unwrap()
            .write(&mut conn, &batch)
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let loaded = store.load_history(now).unwrap();
    assert_eq!(loaded.len(), 2);
    let cache = loaded.iter().find(|t| t.name == "cache").unwrap();
    assert_eq!(cache.saved.health, Health::Down);
    assert_eq!(cache.saved.since, ago(600));
    assert_eq!(cache.saved.state_changes, 2);
    assert_eq!(cache.saved.address, "127.0.0.1:6379");
    assert_eq!(cache.saved.check, "half-open");
    assert_eq!(cache.saved.transitions, transitions);
    assert!(
        (60..=61).contains(&cache.minutes.len()),
        "{}",
        cache.minutes.len()
    );
    let hour_checks: u64 = cache.hours.iter().map(|h| h.checks).sum();
    assert_eq!(hour_checks, 480, "every minute rolled up into its hour");
    let quiet = loaded.iter().find(|t| t.name == "quiet").unwrap();
    assert_eq!(quiet.saved.health, Health::Unknown);

    // The in-memory history starts with it.
    let history = History::loaded(&loaded);
    assert_eq!(history.transitions("cache", 10), transitions);
    assert_eq!(history.transitions("cache", 1), transitions[1..]);
    let hour = history.last_hour("cache", now);
    assert!((59..=60).contains(&hour.len()), "{}", hour.len());
    assert!(hour.windows(2).all(|w| w[0].minute < w[1].minute));
    for window in [1, 24, 7 * 24] {
        let uptime = history
            .uptime("cache", Duration::from_secs(3600 * window), now)
            .unwrap();
        assert!((uptime - 0.75).abs() < 1e-9, "{window} h: {uptime}");
    }
    assert_eq!(
        history.uptime("quiet", Duration::from_secs(3600), now),
        None
    );

    // /api/history's read: the window's transitions and minutes.
    let conn = store.lock();
    let window = tables::window(&conn, "cache", ago(3600)).unwrap().unwrap();
    assert_eq!(window.transitions, transitions[1..]);
    assert!((60..=61).contains(&window.minutes.len()));
    assert!(tables::window(&conn, "nobody", ago(3600))
        .unwrap()
        .is_none());
}

#[test]
fn minutes_older_than_30_days_go_and_every_transition_stays() {
    let dir = TempDir::new("history-retention");
    let store = Store::open(dir.path()).unwrap();
    let now = now_us();
    let day = |days: u64| now - Duration::from_secs(days * 24 * 3600);
    let mut batch = Batch::default();
    let state = LastState {
        health: Health::Up,
        since: day(40),
        last_change: Some(day(40)),
        state_changes: 1,
    };
    for t in 0..600 {
        let name = format!("t{t}");
        batch
            .targets
            .insert(name.clone(), (identity(), Some(state)));
        batch.transitions.push((
            name.clone(),
            transition(Health::Unknown, Health::Up, day(40)),
        ));
        let hour = Duration::from_secs(3600);
        for at in [day(31), day(30) - hour, day(29), day(1)] {
            batch.minutes.push((name.clone(), minute(at, 2, 0)));
        }
    }
    let mut conn = store.lock();
    let mut writer = Writer::new(&conn).unwrap();
    writer.write(&mut conn, &batch).unwrap();
    // 600 targets: more than one step's worth, so the pass takes two.
    assert!(!writer.prune_step(&mut conn, now).unwrap());
    assert!(writer.prune_step(&mut conn, now).unwrap());
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM minutes"), 600 * 2);
    let oldest: i64 = count("SELECT min(minute) FROM minutes");
    let limit = now - tables::RETENTION;
    let limit_minute = (limit.duration_since(UNIX_EPOCH).unwrap().as_secs() / 60) as i64;
    assert!(
        oldest >= limit_minute,
        "a minute older than 30 days is left"
    );
    assert_eq!(count("SELECT count(*) FROM transitions"), 600);
    assert_eq!(
        count("SELECT count(*) FROM hours WHERE checks > 0"),
        600 * 2
    );
}

#[test]
fn memory_keeps_a_bounded_history_per_target() {
    let history = History::new();
    let now = now_us();
    // Ten days of minutes, and 1000 transitions.
    for m in (1..=10 * 24 * 60).rev() {
        history.record_minute("t", minute(now - Duration::from_secs(60 * m), 1, 0));
    }
    for i in (1..=1000).rev() {
        let at = now - Duration::from_secs(i);
        history.record_transition("t", transition(Health::Up, Health::Down, at));
    }
    assert!(history.last_hour("t", now).len() <= MINUTES_KEPT);
    let kept = history.transitions("t", usize::MAX);
    assert_eq!(kept.len(), TRANSITIONS_KEPT);
    assert_eq!(kept.last().unwrap().at, now - Duration::from_secs(1));
    // 7 days are there, and not more: the week's uptime counts about 7 days of checks.
    assert_eq!(
        history.uptime("t", Duration::from_secs(7 * 24 * 3600), now),
        Some(1.0)
    );
    let debug = format!("{history:?}");
    assert!(debug.contains("targets: 1"), "{debug}");
    assert_eq!(HOURS_KEPT, 7 * 24 + 1);
}

#[test]
fn the_sink_commits_a_transition_within_a_second() {
    let dir = TempDir::new("history-sink");
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let history = History::new();
    let sink = HistorySink::new(history.clone(), Some(Arc::clone(&store)));
    assert!(sink.wants_minutes());
    let sinks = Sinks::start(vec![Box::new(sink)]).unwrap();
    let check = CheckPlan {
        rise: 1,
        fall: 1,
        ..CheckPlan::default()
    };
    let plan = TargetPlan::new("web", "127.0.0.1:80", BTreeMap::new(), check).unwrap();
    let web = Arc::new(Watched::new(plan, SystemTime::now()));
    sinks.record(
        &web,
        CheckResult::new(Outcome::Ok, Duration::from_millis(1)),
    );
    sinks.record(&web, CheckResult::new(Outcome::Refused, Duration::ZERO));
    let file = dir.join(FILE_NAME);
    let reader = rusqlite::Connection::open(&file).unwrap();
    let committed = connhealth_testkit::wait_until(Duration::from_secs(1), || {
        reader
            .query_row("SELECT count(*) FROM transitions", [], |row| {
                row.get::<_, i64>(0)
            })
            .unwrap()
            == 2
    });
    assert!(
        committed.is_some(),
        "two transitions committed within a second"
    );
    let (health, changes): (String, i64) = reader
        .query_row(
            "SELECT health, state_changes FROM targets WHERE name = 'web'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((health.as_str(), changes), ("down", 2));
    assert_eq!(history.transitions("web", 10).len(), 2);
    sinks.stop(Duration::from_secs(1));
}

/// Refused at open with its path in the message, and left byte for byte as it was.
fn refused_untouched(dir: &TempDir, what: &str) -> String {
    let file = dir.join(FILE_NAME);
    let before = std::fs::read(&file).unwrap();
    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&file.display().to_string()), "{what}: {err}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "{what}: the file changed"
    );
    assert!(
        !dir.join("state.sqlite-wal").exists(),
        "{what}: a WAL was made"
    );
    err
}

#[test]
fn a_foreign_garbage_or_newer_file_is_refused_and_left_untouched() {
    let foreign = TempDir::new("history-foreign");
    {
        let conn = rusqlite::Connection::open(foreign.join(FILE_NAME)).unwrap();
        conn.execute_batch("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('mine');")
            .unwrap();
    }
    let err = refused_untouched(&foreign, "foreign");
    assert!(err.contains("another program"), "{err}");

    let garbage = TempDir::new("history-garbage");
    let bytes: Vec<u8> = (0..8192u32).map(|i| (i * 7919 % 251) as u8).collect();
    garbage.write(FILE_NAME, bytes);
    let err = refused_untouched(&garbage, "garbage");
    assert!(err.contains("is damaged or is not a SQLite file"), "{err}");

    let newer = TempDir::new("history-newer");
    drop(Store::open(newer.path()).unwrap());
    {
        let conn = rusqlite::Connection::open(newer.join(FILE_NAME)).unwrap();
        conn.execute_batch("PRAGMA user_version = 99; PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
        conn.execute_batch("PRAGMA journal_mode = DELETE;").unwrap();
    }
    let err = refused_untouched(&newer, "newer");
    assert!(err.contains("newer connhealth"), "{err}");
}

#[test]
fn a_minute_under_way_is_kept_and_folded_in_at_the_next_start() {
    let dir = TempDir::new("history-open-minute");
    let now = now_us();
    let this_minute = minute(now, 5, 2);
    let last_minute = minute(now - Duration::from_secs(60), 3, 0);
    {
        let store = Store::open(dir.path()).unwrap();
        let mut conn = store.lock();
        let mut writer = Writer::new(&conn).unwrap();
        let mut batch = Batch::default();
        batch.targets.insert("a".into(), (identity(), None));
        batch.targets.insert("b".into(), (identity(), None));
        // a: seen under way, then closed: only the closed minute counts.
        batch.open_minutes.push(("a".into(), last_minute));
        batch.minutes.push(("a".into(), last_minute));
        // b: under way when the process died.
        batch.open_minutes.push(("b".into(), this_minute));
        writer.write(&mut conn, &batch).unwrap();
        let open: i64 = conn
            .query_row("SELECT count(*) FROM open_minutes", [], |row| row.get(0))
            .unwrap();
        assert_eq!(
            open, 1,
            "a closed minute clears its target's minute under way"
        );
    }
    let store = Store::open(dir.path()).unwrap();
    let loaded = store.load_history(now + Duration::from_secs(1)).unwrap();
    let minutes = |name: &str| {
        loaded
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .minutes
            .clone()
    };
    assert_eq!(minutes("a"), [last_minute]);
    assert_eq!(minutes("b"), [this_minute]);
    let hours: u64 = loaded.iter().flat_map(|t| &t.hours).map(|h| h.checks).sum();
    assert_eq!(hours, 8);
    // Folded once: a second start finds the same.
    drop(store);
    let again = Store::open(dir.path()).unwrap().load_history(now).unwrap();
    let b = again.iter().find(|t| t.name == "b").unwrap();
    assert_eq!(b.minutes, [this_minute]);
}

#[test]
fn without_a_data_dir_api_history_answers_from_memory() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let check = CheckPlan {
        rise: 1,
        fall: 1,
        interval: Duration::from_millis(100),
        fast_interval: Duration::from_millis(50),
        ..CheckPlan::default()
    };
    let addr = listener.local_addr().unwrap();
    let daemon = support::start(support::plan(vec![support::target("web", addr, check)]));
    support::wait_health(&daemon, "web", Health::Up, Duration::from_secs(3)).expect("up");
    let history = daemon.shared().history().clone();
    let told = connhealth_testkit::wait_until(Duration::from_secs(1), || {
        history.transitions("web", 10).len() == 1
    });
    assert!(told.is_some(), "the history's sink took the transition");
    let (code, body) =
        connhealth_testkit::http(daemon.listen(), "GET", "/api/history?target=web").unwrap();
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["target"], "web");
    assert_eq!(json["transitions"][0]["from"], "unknown");
    assert_eq!(json["transitions"][0]["to"], "up");
    assert!(json["transitions"][0]["at"]["rfc3339"].is_string());
    // The minute under way, so far: at least the check that made it up.
    let open = &json["aggregates"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(open["checks"].as_u64().unwrap() >= 1, "{open}");
    assert!(open["rtt_avg_seconds"].as_f64().unwrap() > 0.0, "{open}");
    // The uptime counts the minute under way too.
    let uptime = history.uptime("web", Duration::from_secs(3600), SystemTime::now());
    assert_eq!(uptime, Some(1.0));
    for (path, code, says) in [
        ("/api/history?target=nobody", 404, "\"nobody\""),
        ("/api/history?target=web&window=0s", 400, "above 0"),
        ("/api/history?target=web&window=45d", 400, "at most 30d"),
        ("/api/history", 400, "target=NAME"),
        (
            "/api/history?target=web&color=red",
            400,
            "unknown parameter",
        ),
    ] {
        let (got, body) = connhealth_testkit::http(daemon.listen(), "GET", path).unwrap();
        assert_eq!(got, code, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    let (code, body) = connhealth_testkit::http(daemon.listen(), "GET", "/nowhere").unwrap();
    assert_eq!(code, 404);
    assert!(body.contains("/api/history?target=NAME"), "{body}");
    daemon.stop();
}

/// Every log line of this test binary, for the test that reads them.
fn captured_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    Arc::clone(LOGS.get_or_init(|| {
        let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = {
            let logs = Arc::clone(&logs);
            move || Capture(Arc::clone(&logs))
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        logs
    }))
}

struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_write_is_logged_once_and_the_batch_written_when_it_can_be() {
    let logs = captured_logs();
    let dir = TempDir::new("history-failing");
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let sinks = Sinks::start(vec![Box::new(HistorySink::new(
        History::new(),
        Some(Arc::clone(&store)),
    ))])
    .unwrap();
    // Another program's connection makes every insert of a transition fail, as a full
    // disk would.
    let other = rusqlite::Connection::open(dir.join(FILE_NAME)).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER fail BEFORE INSERT ON transitions
             BEGIN SELECT RAISE(ABORT, 'the disk is on fire'); END;",
        )
        .unwrap();
    let check = CheckPlan {
        rise: 1,
        fall: 1,
        ..CheckPlan::default()
    };
    let plan = TargetPlan::new("burning", "127.0.0.1:80", BTreeMap::new(), check).unwrap();
    let target = Arc::new(Watched::new(plan, SystemTime::now()));
    let ok = || CheckResult::new(Outcome::Ok, Duration::from_millis(1));
    let refused = || CheckResult::new(Outcome::Refused, Duration::ZERO);
    for _ in 0..3 {
        sinks.record(&target, ok());
        sinks.record(&target, refused());
        std::thread::sleep(Duration::from_millis(600));
    }
    let text = || String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let failures = text().matches("cannot write the history to").count();
    assert_eq!(failures, 1, "logged once: {}", text());
    let logged = text();
    assert!(
        logged.contains(&store.path().display().to_string()),
        "{logged}"
    );
    assert!(logged.contains("the disk is on fire"), "{logged}");
    assert!(logged.contains("free space"), "{logged}");
    // The cause goes: what was batched meanwhile is written at the next try.
    other.execute_batch("DROP TRIGGER fail").unwrap();
    let count = || -> i64 {
        other
            .query_row("SELECT count(*) FROM transitions", [], |row| row.get(0))
            .unwrap()
    };
    let written = connhealth_testkit::wait_until(Duration::from_secs(3), || count() == 6);
    assert!(written.is_some(), "{} of 6 transitions written", count());
    assert!(
        connhealth_testkit::wait_until(Duration::from_secs(1), || text().contains("is written to"))
            .is_some(),
        "{}",
        text()
    );
    sinks.stop(Duration::from_secs(1));
}

#[test]
fn a_target_whose_address_changed_is_saved_unknown_until_it_changes_state() {
    let dir = TempDir::new("history-identity");
    let store = Store::open(dir.path()).unwrap();
    let now = now_us();
    let mut conn = store.lock();
    let mut writer = Writer::new(&conn).unwrap();
    let up = LastState {
        health: Health::Up,
        since: now,
        last_change: Some(now),
        state_changes: 1,
    };
    let saved = |conn: &rusqlite::Connection| -> (String, String, i64) {
        conn.query_row(
            "SELECT address, health, state_changes FROM targets WHERE name = 'web'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap()
    };
    for known in [false, true] {
        // Written by a new writer (the id unknown to it), then by the same one.
        if !known {
            writer = Writer::new(&conn).unwrap();
        }
        let mut batch = Batch::default();
        batch.targets.insert("web".into(), (identity(), Some(up)));
        writer.write(&mut conn, &batch).unwrap();
        assert_eq!(saved(&conn), ("127.0.0.1:6379".into(), "up".into(), 1));
        // Its minutes alone, same address: the state stays.
        let mut batch = Batch::default();
        batch.targets.insert("web".into(), (identity(), None));
        writer.write(&mut conn, &batch).unwrap();
        assert_eq!(saved(&conn).1, "up");
        // A reload moved it: saved unknown, as the daemon holds it.
        let moved = Identity {
            address: "127.0.0.1:6380".into(),
            check: "half-open",
        };
        let mut batch = Batch::default();
        batch.targets.insert("web".into(), (moved, None));
        if known {
            writer.write(&mut conn, &batch).unwrap();
        } else {
            Writer::new(&conn)
                .unwrap()
                .write(&mut conn, &batch)
                .unwrap();
        }
        assert_eq!(saved(&conn), ("127.0.0.1:6380".into(), "unknown".into(), 0));
    }
}
