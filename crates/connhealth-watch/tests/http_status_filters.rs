//! `/status?state=...&target=...`: the filters. `state` takes `up`, `down` and `unknown`,
//! several separated by commas (or the parameter repeated); `target` takes one exact
//! name, repeated for several (a name may hold a comma). Given together, a target is
//! listed when it passes both. Each listed target is exactly what `/status` shows of it
//! unfiltered, in config order.

mod http_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use connhealth_watch::config::CheckKind;
use http_support::{fleet, mixed_fleet, plan, target_after, Server};
use serde_json::Value;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_764_621_699_250)
}

/// The JSON of a 200 to `GET path`.
async fn status(server: &Server, path: &str) -> Value {
    let reply = server.get(path).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    serde_json::from_str(&reply.body).unwrap_or_else(|err| panic!("{err}: {}", reply.body))
}

/// The names `GET path` lists, in order.
async fn names(server: &Server, path: &str) -> Vec<String> {
    status(server, path).await["targets"]
        .as_array()
        .expect("a list of targets")
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// mixed_fleet's targets are, in config order: cache-a up, cache-b down, held unknown,
/// web up, redis down (its last result a mismatch, with fall = 1).
#[tokio::test]
async fn no_filter_lists_every_target_as_before() {
    let server = Server::start(mixed_fleet(now())).await;
    assert_eq!(
        names(&server, "/status").await,
        ["cache-a", "cache-b", "held", "web", "redis"]
    );
    // An empty value is no filter, as an empty `target=` always was.
    assert_eq!(
        status(&server, "/status?state=&target=").await,
        status(&server, "/status").await
    );
}

#[tokio::test]
async fn by_state() {
    let server = Server::start(mixed_fleet(now())).await;
    assert_eq!(
        names(&server, "/status?state=down").await,
        ["cache-b", "redis"]
    );
    assert_eq!(names(&server, "/status?state=up").await, ["cache-a", "web"]);
    assert_eq!(names(&server, "/status?state=unknown").await, ["held"]);
    // Several: a comma-separated list, or the parameter repeated; config order either way.
    assert_eq!(
        names(&server, "/status?state=unknown,up").await,
        ["cache-a", "held", "web"]
    );
    assert_eq!(
        names(&server, "/status?state=down&state=unknown").await,
        ["cache-b", "held", "redis"]
    );
    assert_eq!(
        names(&server, "/status?state=up,down,unknown").await,
        ["cache-a", "cache-b", "held", "web", "redis"]
    );
}

#[tokio::test]
async fn a_filtered_target_is_shown_exactly_as_unfiltered() {
    let server = Server::start(mixed_fleet(now())).await;
    let all = status(&server, "/status").await;
    let down = status(&server, "/status?state=down").await;
    assert_eq!(down["targets"][0], all["targets"][1]);
    assert_eq!(down["targets"][1], all["targets"][4]);
    assert_eq!(down.as_object().unwrap().len(), 1, "only `targets`: {down}");
}

#[tokio::test]
async fn by_target() {
    let server = Server::start(mixed_fleet(now())).await;
    assert_eq!(names(&server, "/status?target=web").await, ["web"]);
    // Several: the parameter repeated; config order, whatever the query's order.
    assert_eq!(
        names(&server, "/status?target=web&target=cache-a").await,
        ["cache-a", "web"]
    );
}

#[tokio::test]
async fn a_target_name_may_hold_a_comma() {
    let targets = vec![
        target_after(
            plan("a,b", "127.0.0.1:1", CheckKind::HalfOpen, &[]),
            &[],
            now(),
        ),
        target_after(
            plan("a", "127.0.0.1:2", CheckKind::HalfOpen, &[]),
            &[],
            now(),
        ),
        target_after(
            plan("b", "127.0.0.1:3", CheckKind::HalfOpen, &[]),
            &[],
            now(),
        ),
    ];
    let server = Server::start(fleet(targets)).await;
    assert_eq!(names(&server, "/status?target=a%2Cb").await, ["a,b"]);
    assert_eq!(
        names(&server, "/status?target=b&target=a%2Cb").await,
        ["a,b", "b"]
    );
}

#[tokio::test]
async fn by_state_and_target_both_must_hold() {
    let server = Server::start(mixed_fleet(now())).await;
    assert_eq!(
        names(&server, "/status?state=up&target=cache-a&target=cache-b").await,
        ["cache-a"]
    );
    assert_eq!(
        names(
            &server,
            "/status?target=redis&target=held&state=down,unknown"
        )
        .await,
        ["held", "redis"]
    );
    // A target that exists but is in another state: an empty list, not a 404.
    assert_eq!(
        status(&server, "/status?target=web&state=down").await,
        serde_json::json!({"targets": []})
    );
}

#[tokio::test]
async fn an_unknown_state_is_a_400_that_says_what_is_accepted() {
    let server = Server::start(mixed_fleet(now())).await;
    let accepted = "state takes up, down or unknown, several separated by commas \
                    (state=down,unknown)\n";
    for (query, why) in [
        ("state=sideways", "unknown state \"sideways\""),
        ("state=up,sideways", "unknown state \"sideways\""),
        ("state=up&state=Sideways", "unknown state \"Sideways\""),
        ("state=up,,down", "an empty state in \"up,,down\""),
        ("state=down,", "an empty state in \"down,\""),
    ] {
        let reply = server.get(&format!("/status?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(reply.body, format!("{why}; {accepted}"), "{query}");
    }
}

#[tokio::test]
async fn an_unknown_parameter_is_a_400_that_lists_the_parameters() {
    let server = Server::start(mixed_fleet(now())).await;
    let reply = server.get("/status?status=down").await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.body,
        "unknown parameter \"status\"; /status takes target, state\n"
    );
}

#[tokio::test]
async fn an_unknown_target_name_is_a_404_that_names_each_missing_one() {
    let server = Server::start(mixed_fleet(now())).await;
    let reply = server.get("/status?target=nope&state=up").await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.body,
        "no target named \"nope\"; GET /status lists every target\n"
    );
    let reply = server.get("/status?target=web&target=zz&target=nope").await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.body,
        "no target named \"nope\", \"zz\"; GET /status lists every target\n"
    );
}

/// At 50k targets the filters are applied while rendering: a filter for a handful of
/// targets renders a handful, and the answer stays small.
#[tokio::test]
async fn a_filter_over_a_large_fleet_renders_only_what_passes() {
    let n = 50_000;
    let server = Server::start(http_support::synthetic_fleet(n)).await;
    let listed = names(
        &server,
        "/status?state=down&target=cache-000001&target=cache-000004&target=cache-049993",
    )
    .await;
    // synthetic_fleet: i % 10 in 1..=3 is down, 0 unknown, the rest up.
    assert_eq!(listed, ["cache-000001", "cache-049993"]);
    let unknown = status(&server, "/status?state=unknown").await;
    assert_eq!(unknown["targets"].as_array().unwrap().len(), n / 10);
}
