//! Alerts: webhooks and a real Alertmanager told of transitions, `for`, silences and
//! maintenance windows, the outbox across a restart, and the config's errors.
//!
//! Every server is on loopback, started by the test on a free port: the webhook
//! receivers in this process (`alerts/hook.rs`), Alertmanager as Debian's
//! `prometheus-alertmanager` (`scripts/test` installs it).
//!
//! Run: `cargo test -p connhealth-watch --test alerts`

mod support;

#[path = "alerts/alertmanager.rs"]
mod alertmanager;
#[path = "alerts/hook.rs"]
mod hook;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use connhealth_testkit::{wait_until, TempDir};
use connhealth_watch::config::{self, Options};
use connhealth_watch::daemon::Daemon;
use connhealth_watch::sinks::alerts::Muted;
use connhealth_watch::state::Health;
use hook::{Hook, Script};
use support::{find, get, http, wait_health};

/// A target's server that the test turns on and off: a listener on a fixed loopback
/// port while up (a half-open check succeeds); while down, a socket bound to the port
/// without listening, so that a connect is refused and no other test's listener can
/// take the port meanwhile.
struct Switch {
    addr: SocketAddr,
    listener: Option<TcpListener>,
    reserved: Option<socket2::Socket>,
}

/// A socket bound to `addr` (`127.0.0.1:0` for any port), not listening, without
/// SO_REUSEADDR: the port stays this test's, and refuses connections.
fn reserve(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

impl Switch {
    fn up() -> Switch {
        let mut switch = Switch::down();
        switch.on();
        switch
    }

    fn down() -> Switch {
        let reserved = reserve("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = reserved.local_addr().unwrap().as_socket().unwrap();
        Switch {
            addr,
            listener: None,
            reserved: Some(reserved),
        }
    }

    fn on(&mut self) {
        if self.listener.is_none() {
            self.reserved = None;
            self.listener = Some(TcpListener::bind(self.addr).expect("the port again"));
        }
    }

    fn off(&mut self) {
        if self.listener.take().is_some() {
            // No connection was ever accepted, so nothing lingers in TIME_WAIT.
            self.reserved = Some(reserve(self.addr).expect("the port again"));
        }
    }
}

/// Taken for writing by the test that counts late checks, for reading by the others:
/// it runs alone in this process, so that only what it tests can make a check late.
static QUIET: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared_cpu() -> std::sync::RwLockReadGuard<'static, ()> {
    QUIET
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A target block checked every 50 ms, up or down at the first result.
fn target(name: &str, addr: SocketAddr, labels: &str) -> String {
    format!(
        "[[targets]]\nname = \"{name}\"\naddress = \"{addr}\"\nlabels = {{ {labels} }}\n\
         interval = \"50ms\"\nfast_interval = \"50ms\"\ndown_interval = \"50ms\"\n\
         timeout = \"500ms\"\nrise = 1\nfall = 1\njitter = 0.0\n\n"
    )
}

/// A daemon of `toml` (written to `dir/watch.toml`), with `data_dir` if given.
fn start(dir: &TempDir, toml: &str, data_dir: Option<&Path>) -> Daemon {
    let path = dir.write("watch.toml", toml);
    let plan = config::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
    let options = Options {
        data_dir: data_dir.map(Path::to_path_buf),
        ..support::options(path)
    };
    Daemon::start(options, plan).expect("the daemon starts")
}

/// The value of the series `name{receiver="receiver"}` in `/metrics`.
fn alerts_metric(daemon: &Daemon, name: &str, receiver: &str) -> f64 {
    let metrics = get(daemon.listen(), "/metrics");
    let prefix = format!("{name}{{receiver=\"{receiver}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_slow_failing_webhook_gets_every_transition_in_order_and_no_check_is_late() {
    let _alone = QUIET
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = TempDir::new("alerts-slow-webhook");
    // Each answer takes 300 ms, and the first two are 500s: the receiver stalls for the
    // backoff (1 s, then 2 s) while the target goes on flapping.
    let hook = Hook::start(Script {
        fail_first: 2,
        delay: Duration::from_millis(300),
    });
    let mut web = Switch::up();
    let toml = format!(
        "[[alerts.webhook]]\nurl = \"http://{}/hook\"\nheaders = {{ Authorization = \"Bearer s3cret\" }}\n\n{}",
        hook.addr,
        // Every 100 ms: a check is late beyond 10 ms, a tenth of its interval.
        target("web", web.addr, "service = \"web\"").replace("50ms", "100ms")
    );
    let daemon = start(&dir, &toml, None);
    assert!(wait_health(&daemon, "web", Health::Up, Duration::from_secs(5)).is_some());
    for _ in 0..3 {
        web.off();
        assert!(wait_health(&daemon, "web", Health::Down, Duration::from_secs(5)).is_some());
        std::thread::sleep(Duration::from_millis(150));
        web.on();
        assert!(wait_health(&daemon, "web", Health::Up, Duration::from_secs(5)).is_some());
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(
        hook.wait_for(6, Duration::from_secs(20)),
        "the receiver took {:?}",
        hook.states()
    );
    std::thread::sleep(Duration::from_millis(500)); // nothing more comes
    let taken = hook.taken();
    assert_eq!(
        hook.states(),
        ["down", "up", "down", "up", "down", "up"],
        "unknown -> up is not sent; every transition between up and down is, in order"
    );
    // Exactly the target's transitions, in its order, shaped as /status shows them.
    let transitions = support::status(&daemon, "web").transitions;
    let sent: Vec<_> = transitions
        .iter()
        .filter(|t| t.from != Health::Unknown)
        .collect();
    assert_eq!(sent.len(), 6);
    for (body, transition) in taken.iter().map(|t| &t.body).zip(&sent) {
        assert_eq!(body["target"], "web");
        assert_eq!(body["address"], web.addr.to_string());
        assert_eq!(body["check"], "half-open");
        assert_eq!(body["labels"]["service"], "web");
        assert_eq!(body["from"], transition.from.name());
        assert_eq!(body["to"], transition.to.name());
        assert_eq!(body["why"], transition.why.as_str());
        let at = body["at"]["rfc3339"].as_str().unwrap();
        assert_eq!(
            at,
            humantime::format_rfc3339_millis(transition.at).to_string()
        );
    }
    assert!(taken[0]
        .headers
        .contains(&("authorization".into(), "Bearer s3cret".into())));
    assert_eq!(hook.requests(), 8, "two failed tries, then six taken");
    assert_eq!(
        alerts_metric(&daemon, "connhealth_alerts_sent_total", "webhook"),
        6.0
    );
    assert_eq!(
        alerts_metric(&daemon, "connhealth_alerts_failed_total", "webhook"),
        2.0
    );
    let checks = support::status(&daemon, "web").total_checks();
    assert_eq!(
        daemon.shared().sinks.late_checks(),
        0,
        "a check was late while the receiver stalled ({checks} checks)"
    );
    daemon.stop();
}

#[test]
fn a_flap_shorter_than_for_sends_nothing() {
    let _cpu = shared_cpu();
    let dir = TempDir::new("alerts-for");
    let hook = Hook::start(Script::default());
    let mut web = Switch::up();
    let toml = format!(
        "[[alerts.webhook]]\nurl = \"http://{}/\"\nfor = \"1s\"\n\n{}",
        hook.addr,
        target("web", web.addr, "")
    );
    let daemon = start(&dir, &toml, None);
    assert!(wait_health(&daemon, "web", Health::Up, Duration::from_secs(5)).is_some());
    // Down for 300 ms, well short of `for`.
    web.off();
    assert!(wait_health(&daemon, "web", Health::Down, Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_millis(300));
    web.on();
    assert!(wait_health(&daemon, "web", Health::Up, Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        hook.states(),
        Vec::<String>::new(),
        "a flap shorter than `for`"
    );
    // Down for longer: sent once it has held for `for`, not before.
    web.off();
    assert!(wait_health(&daemon, "web", Health::Down, Duration::from_secs(5)).is_some());
    let down_at = support::became(&daemon, "web", Health::Down).unwrap();
    assert!(
        hook.wait_for(1, Duration::from_secs(5)),
        "the held down was not sent"
    );
    let held = SystemTime::now().duration_since(down_at).unwrap();
    assert!(
        held >= Duration::from_secs(1),
        "sent {held:?} after the transition"
    );
    web.on();
    assert!(hook.wait_for(2, Duration::from_secs(5)));
    assert_eq!(hook.states(), ["down", "up"]);
    daemon.stop();
}

#[test]
fn alertmanager_receives_the_alert_then_sees_it_resolved() {
    let _cpu = shared_cpu();
    let dir = TempDir::new("alerts-alertmanager");
    let am = alertmanager::Alertmanager::start(&dir);
    let mut db = Switch::up();
    let mut cache = Switch::up();
    let toml = format!(
        "[alerts.alertmanager]\nurl = \"http://{}\"\n\n{}{}",
        am.addr,
        target("db", db.addr, "service = \"db\", team = \"storage\""),
        target("cache", cache.addr, "service = \"cache\""),
    );
    let daemon = start(&dir, &toml, None);
    assert!(wait_health(&daemon, "db", Health::Up, Duration::from_secs(5)).is_some());
    assert!(wait_health(&daemon, "cache", Health::Up, Duration::from_secs(5)).is_some());
    // Both down at once: their alerts may share a POST.
    db.off();
    cache.off();
    let firing = wait_until(Duration::from_secs(10), || {
        !am.alerts("db").is_empty() && !am.alerts("cache").is_empty()
    });
    assert!(firing.is_some(), "Alertmanager never got both alerts");
    let alert = am.alerts("db").remove(0);
    let labels = &alert["labels"];
    assert_eq!(labels["alertname"], "ConnhealthTargetDown");
    assert_eq!(labels["target"], "db");
    assert_eq!(labels["address"], db.addr.to_string());
    assert_eq!(labels["check"], "half-open");
    assert_eq!(labels["service"], "db");
    assert_eq!(labels["team"], "storage");
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(am.alerts("cache")[0]["labels"]["service"], "cache");
    // db back up: its alert is resolved, cache's still fires.
    db.on();
    let resolved = wait_until(Duration::from_secs(10), || am.alerts("db").is_empty());
    assert!(
        resolved.is_some(),
        "Alertmanager still lists the alert: {:?}",
        am.alerts("db")
    );
    assert_eq!(am.alerts("cache").len(), 1);
    cache.on();
    let resolved = wait_until(Duration::from_secs(10), || am.alerts("cache").is_empty());
    assert!(resolved.is_some(), "{:?}", am.alerts("cache"));
    assert_eq!(
        alerts_metric(&daemon, "connhealth_alerts_sent_total", "alertmanager"),
        4.0
    );
    assert_eq!(
        alerts_metric(&daemon, "connhealth_alerts_failed_total", "alertmanager"),
        0.0
    );
    daemon.stop();
}

#[test]
fn a_silence_holds_back_every_notification_until_lifted() {
    let _cpu = shared_cpu();
    let dir = TempDir::new("alerts-silence");
    let hook = Hook::start(Script::default());
    let mut web = Switch::up();
    let toml = format!(
        "[[alerts.webhook]]\nurl = \"http://{}/\"\n\n{}",
        hook.addr,
        target("web", web.addr, "")
    );
    let data = dir.join("data");
    let daemon = start(&dir, &toml, Some(&data));
    let addr = daemon.listen();
    assert!(wait_health(&daemon, "web", Health::Up, Duration::from_secs(5)).is_some());

    let (code, body) = http(addr, "POST", "/api/silence?target=web&for=half-an-hour").unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("for=30m"), "{body}");
    let (code, body) = http(addr, "POST", "/api/silence?target=nope&for=30m").unwrap();
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("\"nope\""), "{body}");
    let (code, body) = http(addr, "POST", "/api/silence?target=web&for=30m").unwrap();
    assert_eq!(code, 200, "{body}");
    let silences = get(addr, "/api/silences");
    assert!(silences.contains("\"target\":\"web\""), "{silences}");
    let web_target = find(&daemon, "web");
    assert!(matches!(
        daemon
            .shared()
            .alerts()
            .mutes
            .muted(&web_target, SystemTime::now()),
        Some(Muted::Silenced { .. })
    ));

    // Down and up again while silenced: nothing.
    web.off();
    assert!(wait_health(&daemon, "web", Health::Down, Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_millis(300));
    web.on();
    assert!(wait_health(&daemon, "web", Health::Up, Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        hook.requests(),
        0,
        "a notification went out under a silence"
    );

    // Lifted: the next transition is sent.
    let (code, body) = http(addr, "POST", "/api/silence?target=web&for=0s").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(get(addr, "/api/silences").contains("[]"));
    web.off();
    assert!(hook.wait_for(1, Duration::from_secs(5)));
    assert_eq!(hook.states(), ["down"]);
    daemon.stop();
}

#[test]
fn a_silence_is_kept_in_the_data_dir() {
    let _cpu = shared_cpu();
    let dir = TempDir::new("alerts-silence-kept");
    let web = Switch::up();
    let toml = format!(
        "[[alerts.webhook]]\nurl = \"http://127.0.0.1:9/\"\n\n{}",
        target("web", web.addr, "")
    );
    let data = dir.join("data");
    let daemon = start(&dir, &toml, Some(&data));
    let (code, body) = http(daemon.listen(), "POST", "/api/silence?target=web&for=1h").unwrap();
    assert_eq!(code, 200, "{body}");
    daemon.stop();
    let daemon = start(&dir, &toml, Some(&data));
    let silences = get(daemon.listen(), "/api/silences");
    assert!(silences.contains("\"target\":\"web\""), "{silences}");
    daemon.stop();
}

/// `HH:MM` of `at`, UTC, and the seconds since that minute began.
fn minute_of(at: SystemTime) -> (String, u64) {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let of_day = secs % 86_400;
    (
        format!("{:02}:{:02}", of_day / 3600, of_day % 3600 / 60),
        of_day % 60,
    )
}

#[test]
fn a_maintenance_window_holds_back_its_targets_and_sends_what_still_holds_after() {
    let _cpu = shared_cpu();
    let dir = TempDir::new("alerts-maintenance");
    let hook = Hook::start(Script::default());
    let db = Switch::down();
    let web = Switch::down();
    // A window that began this minute and ends 4 s from now, for the db service only.
    let now = SystemTime::now();
    let (start_at, into_minute) = minute_of(now);
    let whole = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let window_ends = SystemTime::UNIX_EPOCH + Duration::from_secs(whole + 4);
    let toml = format!(
        "[[alerts.webhook]]\nurl = \"http://{}/\"\n\n\
         [[maintenance]]\nname = \"db patching\"\nstart = \"{start_at}\"\nduration = \"{}s\"\n\
         match = {{ service = \"db\" }}\n\n{}{}",
        hook.addr,
        into_minute + 4,
        target("db", db.addr, "service = \"db\""),
        target("web", web.addr, "service = \"web\""),
    );
    let daemon = start(&dir, &toml, None);
    let db_target = find(&daemon, "db");
    match daemon
        .shared()
        .alerts()
        .mutes
        .muted(&db_target, SystemTime::now())
    {
        Some(Muted::Maintenance { window, until }) => {
            assert_eq!(window, "db patching");
            let off = until
                .duration_since(window_ends)
                .unwrap_or_else(|e| e.duration());
            assert!(off < Duration::from_secs(1), "{until:?}");
        }
        other => panic!("db is not under maintenance: {other:?}"),
    }
    assert_eq!(
        daemon
            .shared()
            .alerts()
            .mutes
            .muted(&find(&daemon, "web"), SystemTime::now()),
        None
    );
    // Both go down at once; only web is told while the window holds.
    assert!(hook.wait_for(1, Duration::from_secs(3)));
    while SystemTime::now() < window_ends - Duration::from_millis(300) {
        let targets: Vec<String> = hook
            .taken()
            .iter()
            .map(|t| t.body["target"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            targets,
            ["web"],
            "a notification went out during the window"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still down when the window ends: the receiver is told then.
    assert!(hook.wait_for(2, Duration::from_secs(8)));
    let last = hook.taken().pop().unwrap();
    assert_eq!(last.body["target"], "db");
    assert_eq!(last.body["to"], "down");
    daemon.stop();
}

#[test]
fn a_pending_notification_survives_a_restart() {
    let _cpu = shared_cpu();
    let dir = TempDir::new("alerts-restart");
    let data = dir.join("data");
    // The receiver's port is known, but nothing listens there yet: every POST fails.
    let hook_port = reserve("127.0.0.1:0".parse().unwrap()).unwrap();
    let hook_addr = hook_port.local_addr().unwrap().as_socket().unwrap();
    let db = Switch::down();
    let toml = format!(
        "[[alerts.webhook]]\nurl = \"http://{hook_addr}/\"\n\n{}",
        target("db", db.addr, "")
    );
    let first = start(&dir, &toml, Some(&data));
    assert!(wait_health(&first, "db", Health::Down, Duration::from_secs(5)).is_some());
    let down_at = support::became(&first, "db", Health::Down).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || {
            alerts_metric(&first, "connhealth_alerts_failed_total", "webhook") >= 1.0
        })
        .is_some(),
        "the first POST did not fail"
    );
    first.stop();

    // The receiver is up now; the daemon starts again, the target resumes down (its
    // saved state), and nothing new is sent: only the pending notification.
    drop(hook_port);
    let hook = Hook::on(TcpListener::bind(hook_addr).unwrap(), Script::default());
    let started = Instant::now();
    let second = start(&dir, &toml, Some(&data));
    assert!(
        hook.wait_for(1, Duration::from_secs(10)),
        "the pending notification was lost"
    );
    assert!(wait_health(&second, "db", Health::Down, Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_millis(1500));
    let taken = hook.taken();
    assert_eq!(taken.len(), 1, "{:?}", hook.states());
    assert_eq!(
        taken[0].body["at"]["rfc3339"],
        humantime::format_rfc3339_millis(down_at).to_string(),
        "the notification is the first run's"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    second.stop();

    // And what was delivered is not sent again.
    let third = start(&dir, &toml, Some(&data));
    assert!(wait_health(&third, "db", Health::Down, Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(hook.taken().len(), 1, "{:?}", hook.states());
    third.stop();

    // Back up across a restart: the receiver, last told down, is told up: the target
    // resumed down, and went up.
    let mut db = db;
    db.on();
    let fourth = start(&dir, &toml, Some(&data));
    assert!(
        hook.wait_for(2, Duration::from_secs(5)),
        "{:?}",
        hook.states()
    );
    let up = hook.taken().pop().unwrap();
    assert_eq!(
        (up.body["from"].as_str(), up.body["to"].as_str()),
        (Some("down"), Some("up"))
    );
    fourth.stop();
}

#[test]
fn a_reload_moves_a_webhook_to_its_new_url() {
    let _cpu = shared_cpu();
    let dir = TempDir::new("alerts-reload");
    let old = Hook::start(Script::default());
    let new = Hook::start(Script::default());
    let mut web = Switch::up();
    let web_addr = web.addr;
    let config = |hook: &Hook| {
        format!(
            "[[alerts.webhook]]\nurl = \"http://{}/\"\nheaders = {{ X-Config = \"{}\" }}\n\n{}",
            hook.addr,
            hook.addr.port(),
            target("web", web_addr, "")
        )
    };
    let daemon = start(&dir, &config(&old), None);
    assert!(wait_health(&daemon, "web", Health::Up, Duration::from_secs(5)).is_some());
    web.off();
    assert!(old.wait_for(1, Duration::from_secs(5)));
    dir.write("watch.toml", config(&new));
    daemon.reload().unwrap_or_else(|errors| panic!("{errors}"));
    web.on();
    assert!(
        new.wait_for(1, Duration::from_secs(5)),
        "the new URL got nothing"
    );
    let taken = new.taken();
    assert_eq!(taken[0].body["to"], "up");
    let port = new.addr.port().to_string();
    assert!(taken[0].headers.contains(&("x-config".into(), port)));
    assert_eq!(old.states(), ["down"]);
    daemon.stop();
}

#[test]
fn config_errors_are_at_their_line_with_what_to_write() {
    let _cpu = shared_cpu();
    let text = r#"[[alerts.webhook]]
url = "ftp://hooks.example/x"
for = "soon"

[[alerts.webhook]]
url = "https://hooks.example/y"
headers = { "Bad Header" = "x" }
retries = 3

[alerts.alertmanager]
for = "1m"

[[maintenance]]
start = "25:00"
duration = "1h"
days = ["mon", "someday"]
match = { address = "x" }

[[maintenance]]
duration = "1h"
"#;
    let errors = config::parse(Path::new("watch.toml"), text).unwrap_err();
    let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    let expect = [
        ("watch.toml:2:7:", "a receiver takes http:// or https://"),
        ("watch.toml:3:7:", "is not a duration"),
        ("watch.toml:7:13:", "is not an HTTP header name"),
        (
            "watch.toml:8:1:",
            "unknown key `retries` in [[alerts.webhook]]",
        ),
        ("watch.toml:10:1:", "this receiver has no `url`"),
        ("watch.toml:14:9:", "\"HH:MM\""),
        ("watch.toml:16:16:", "\"someday\" is not a day"),
        ("watch.toml:17:11:", "`match` cannot use `address`"),
        ("watch.toml:19:1:", "has no `start`"),
    ];
    for (at, says) in expect {
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with(at) && line.contains(says)),
            "no {at} ... {says} among:\n{}",
            lines.join("\n")
        );
    }
    assert_eq!(lines.len(), expect.len(), "{}", lines.join("\n"));
}

#[test]
fn receivers_are_named_and_their_for_read() {
    let _cpu = shared_cpu();
    let text = r#"[[alerts.webhook]]
url = "https://hooks.example/a"
for = "0s"

[[alerts.webhook]]
name = "ops-chat"
url = "http://127.0.0.1:8080/b"
for = "1m30s"

[alerts.alertmanager]
url = "http://127.0.0.1:9093/"

[[maintenance]]
start = "02:00"
duration = "1h"
days = ["sat", "Sunday"]
match = { target = "db-1" }
"#;
    let plan = config::parse(Path::new("watch.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = plan
        .alerts
        .receivers
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["webhook", "ops-chat", "alertmanager"]);
    assert_eq!(plan.alerts.receivers[1].hold, Duration::from_secs(90));
    match &plan.alerts.receivers[2].kind {
        config::ReceiverKind::Alertmanager { url } => {
            assert_eq!(url.to_string(), "http://127.0.0.1:9093/api/v2/alerts")
        }
        other => panic!("{other:?}"),
    }
    let window = &plan.maintenance[0];
    assert_eq!(window.start_minute, 120);
    assert_eq!(window.days, 0b110_0000);
    assert_eq!(window.name, "maintenance-1");
}
