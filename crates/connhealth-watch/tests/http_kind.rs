//! The `http` kind through the whole daemon: read from the config, scheduled with its
//! connection kept between checks, its failures named in `/status` and the log line's
//! transition, and `/probe?module=http_2xx` answering as blackbox's http prober does.
//! The check itself, against every kind of server, is `check_http.rs`.

mod http_servers;
mod support;

use std::time::Duration;

use connhealth_watch::config;
use connhealth_watch::daemon::Daemon;
use connhealth_watch::state::Health;
use http_servers::{Reply, Server};
use support::{get, options, status, temp_dir, wait_health};

/// Starts a daemon on `text`, a config written to a folder of the test's own.
fn daemon(test: &str, text: &str) -> (Daemon, connhealth_testkit::TempDir) {
    let dir = temp_dir(test);
    let path = dir.path().join("watch.toml");
    std::fs::write(&path, text).unwrap();
    let plan = config::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
    let daemon = Daemon::start(options(path), plan).unwrap();
    (daemon, dir)
}

const FAST: &str =
    "interval = \"100ms\"\nfast_interval = \"50ms\"\nrise = 1\nfall = 1\njitter = 0.0\n";

#[test]
fn a_scheduled_http_target_keeps_one_connection_between_its_checks() {
    let server = Server::http(|_| Reply::ok("ok"));
    let (daemon, _dir) = daemon(
        "http-kind-reuse",
        &format!(
            "[defaults]\n{FAST}\n[[targets]]\nname = \"api\"\ncheck = \"http\"\nurl = \"{}\"\n",
            server.url("/healthz")
        ),
    );
    wait_health(&daemon, "api", Health::Up, Duration::from_secs(3)).expect("up");
    std::thread::sleep(Duration::from_millis(600));
    let checks = status(&daemon, "api").total_checks();
    let metrics = get(daemon.listen(), "/metrics");
    daemon.stop();
    assert!(checks >= 5, "{checks} checks");
    assert!(server.stats.requests() as u64 >= checks);
    assert_eq!(
        server.stats.connections(),
        1,
        "{checks} checks on one connection"
    );
    // The `address` label holds the url.
    let up = format!(
        "connhealth_target_up{{target=\"api\",address=\"{}\",check=\"http\"}} 1",
        server.url("/healthz")
    );
    assert!(metrics.contains(&up), "{metrics}");
}

#[test]
fn without_reuse_every_check_opens_its_own_connection() {
    let server = Server::http(|_| Reply::ok("ok"));
    let (daemon, _dir) = daemon(
        "http-kind-no-reuse",
        &format!(
            "[defaults]\n{FAST}\n[[targets]]\nname = \"api\"\ncheck = \"http\"\nurl = \"{}\"\nreuse_connection = false\n",
            server.url("/")
        ),
    );
    wait_health(&daemon, "api", Health::Up, Duration::from_secs(3)).expect("up");
    std::thread::sleep(Duration::from_millis(400));
    daemon.stop();
    // A connection per request: the check under way at the stop may have connected
    // without its request counted yet.
    let (connections, requests) = (server.stats.connections(), server.stats.requests());
    assert!(requests >= 3, "{requests} requests");
    assert!(
        (requests..=requests + 1).contains(&connections),
        "{connections} connections for {requests} requests"
    );
}

#[test]
fn a_failing_status_goes_down_and_says_which_status_in_status_and_the_transition() {
    let server = Server::http(|_| Reply::new("500 Internal Server Error", "boom"));
    let (daemon, _dir) = daemon(
        "http-kind-500",
        &format!(
            "[defaults]\n{FAST}\n[[targets]]\nname = \"api\"\ncheck = \"http\"\nurl = \"{}\"\n",
            server.url("/")
        ),
    );
    wait_health(&daemon, "api", Health::Down, Duration::from_secs(3)).expect("down");
    let state = status(&daemon, "api");
    let json = get(daemon.listen(), "/status?target=api");
    daemon.stop();
    let last = state.last_check.expect("a check");
    assert_eq!(last.outcome.label(), "mismatch");
    let detail = last.detail.expect("a detail");
    assert!(detail.contains("status 500"), "{detail}");
    let down = state.transitions.back().expect("a transition");
    assert_eq!(down.why, "1 failure: mismatch");
    assert!(
        down.detail
            .as_deref()
            .is_some_and(|d| d.contains("status 500")),
        "{down:?}"
    );
    assert!(
        json.contains("status 500 Internal Server Error (expected 2xx)"),
        "{json}"
    );
}

#[test]
fn a_body_mismatch_shows_an_excerpt_of_the_body() {
    let server = Server::http(|_| Reply::ok("{\"status\":\"degraded\"}"));
    let (daemon, _dir) = daemon(
        "http-kind-body",
        &format!(
            "[defaults]\n{FAST}\n[[targets]]\nname = \"api\"\ncheck = \"http\"\nurl = \"{}\"\nexpect = '\"status\":\"up\"'\n",
            server.url("/")
        ),
    );
    wait_health(&daemon, "api", Health::Down, Duration::from_secs(3)).expect("down");
    let detail = status(&daemon, "api").last_check.unwrap().detail.unwrap();
    daemon.stop();
    assert!(detail.contains("degraded"), "{detail}");
}

#[test]
fn probe_http_2xx_answers_with_the_status_code() {
    let ok = Server::http(|_| Reply::ok("ok"));
    let failing = Server::http(|_| Reply::new("503 Service Unavailable", "no"));
    let (daemon, _dir) = daemon("http-kind-probe", "");
    let probe = |url: &str| {
        get(
            daemon.listen(),
            &format!("/probe?module=http_2xx&target={url}"),
        )
    };
    let answer = probe(&ok.url("/"));
    assert!(answer.contains("\nprobe_success 1\n"), "{answer}");
    assert!(
        answer.contains("\nprobe_http_status_code 200\n"),
        "{answer}"
    );
    assert!(answer.contains("\nprobe_http_ssl 0\n"), "{answer}");
    assert!(answer.contains("\nprobe_http_version 1.1\n"), "{answer}");
    assert!(
        answer.contains("probe_http_duration_seconds{phase=\"processing\"}"),
        "{answer}"
    );
    let answer = probe(&failing.url("/"));
    assert!(answer.contains("\nprobe_success 0\n"), "{answer}");
    assert!(
        answer.contains("\nprobe_http_status_code 503\n"),
        "{answer}"
    );
    // Without a scheme, as blackbox: http. (The server answers 200, so it was reached.)
    let bare = ok.url("/").trim_start_matches("http://").to_owned();
    let answer = probe(&bare);
    assert!(answer.contains("\nprobe_success 1\n"), "{answer}");
    // A target that is no URL at all answers 200 with probe_success 0, as blackbox does,
    // so that `probe_success == 0` fires for it.
    let (code, body) = connhealth_testkit::http(
        daemon.listen(),
        "GET",
        "/probe?module=http_2xx&target=http://",
    )
    .unwrap();
    daemon.stop();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\nprobe_success 0\n"), "{body}");
}
