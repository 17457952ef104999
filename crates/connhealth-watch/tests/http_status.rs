//! `/status`: every target as JSON, in config order, with its state, since when, its
//! last check, its counters and its last transitions; `?target=NAME` for one.

mod http_support;

use std::time::{Duration, UNIX_EPOCH};

use http_support::{mixed_fleet, Server};
use serde_json::Value;

fn now() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_764_621_699_250)
}

async fn status(server: &Server, path: &str) -> Value {
    let reply = server.get(path).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    serde_json::from_str(&reply.body).unwrap_or_else(|err| panic!("{err}: {}", reply.body))
}

#[tokio::test]
async fn every_target_in_config_order_with_its_state_and_history() {
    let server = Server::start(mixed_fleet(now())).await;
    let json = status(&server, "/status").await;
    let targets = json["targets"].as_array().expect("a list of targets");
    let names: Vec<&str> = targets
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cache-a", "cache-b", "held", "web", "redis"]);

    let down = &targets[1];
    assert_eq!(down["address"], "127.0.0.1:6380");
    assert_eq!(down["check"], "connect");
    assert_eq!(down["labels"], serde_json::json!({"service": "cache"}));
    assert_eq!(down["state"], "down");
    assert_eq!(
        down["since"],
        serde_json::json!({"rfc3339": "2025-12-01T20:41:39.250Z", "unix": 1764621699.25})
    );
    assert_eq!(
        down["last_check"],
        serde_json::json!({
            "at": {"rfc3339": "2025-12-01T20:41:39.250Z", "unix": 1764621699.25},
            "result": "refused",
            "duration_seconds": 0.0,
            "detail": "a refused failure",
        })
    );
    assert_eq!(down["counters"]["state_changes"], 2);
    assert_eq!(down["counters"]["failures_in_a_row"], 1);
    assert_eq!(down["counters"]["successes_in_a_row"], 0);
    let checks = down["counters"]["checks"].as_object().unwrap();
    let results: Vec<&str> = checks.keys().map(String::as_str).collect();
    assert_eq!(results.len(), 10, "every result listed: {results:?}");
    assert_eq!(checks["ok"], 1);
    assert_eq!(checks["refused"], 1);
    assert_eq!(checks["timeout"], 0);
    let transitions = down["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 2);
    assert_eq!(
        transitions[1],
        serde_json::json!({
            "from": "up",
            "to": "down",
            "at": {"rfc3339": "2025-12-01T20:41:39.250Z", "unix": 1764621699.25},
            "why": "1 failure: refused",
            "detail": "a refused failure",
            "check_seconds": 0.0,
        })
    );

    let unknown = &targets[2];
    assert_eq!(unknown["state"], "unknown");
    assert_eq!(unknown["last_check"], Value::Null);
    assert_eq!(unknown["transitions"], serde_json::json!([]));
    assert!(unknown.get("cert_expiry").is_none());

    let tls = &targets[3];
    assert_eq!(tls["cert_expiry"]["unix"], 1_800_000_000.0);
    assert_eq!(tls["last_check"]["detail"], Value::Null);
}

#[tokio::test]
async fn one_target_by_name() {
    let server = Server::start(mixed_fleet(now())).await;
    let json = status(&server, "/status?target=web").await;
    let targets = json["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["name"], "web");
}

#[tokio::test]
async fn an_unknown_name_is_a_404_and_a_bad_query_a_400() {
    let server = Server::start(mixed_fleet(now())).await;
    let reply = server.get("/status?target=nope").await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.body,
        "no target named \"nope\"; GET /status lists every target\n"
    );
    let reply = server.get("/status?name=web").await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.body,
        "unknown parameter \"name\"; /status takes target, state\n"
    );
}

#[tokio::test]
async fn an_empty_fleet_is_an_empty_list() {
    let server = Server::start(http_support::fleet(Vec::new())).await;
    assert_eq!(
        status(&server, "/status").await,
        serde_json::json!({"targets": []})
    );
}
