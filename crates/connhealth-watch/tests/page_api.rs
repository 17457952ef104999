//! The status page's JSON (`GET /api/targets`): paging at 10k targets, the filters by
//! state, label and text, the counts by state; the page itself (`GET /`); badges
//! (`GET /badge/NAME.svg`). Against a fleet built by hand, whose states are known.

mod http_support;

use std::collections::HashSet;
use std::time::Instant;

use http_support::{synthetic_fleet, Server};
use serde_json::Value;

/// The JSON of a 200 to `GET path`.
async fn api(server: &Server, path: &str) -> Value {
    let reply = server.get(path).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    serde_json::from_str(&reply.body).unwrap_or_else(|err| panic!("{err}: {}", reply.body))
}

fn names(answer: &Value) -> Vec<&str> {
    answer["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| t["name"].as_str().expect("a name"))
        .collect()
}

/// `synthetic_fleet`: one in ten unknown (i % 10 == 0), three in ten down (1..=3), the
/// rest up; zones a, b, c by i % 3.
fn state_of(i: usize) -> &'static str {
    match i % 10 {
        0 => "unknown",
        1..=3 => "down",
        _ => "up",
    }
}

#[tokio::test]
async fn ten_thousand_targets_are_served_fifty_at_a_time() {
    let server = Server::start(synthetic_fleet(10_000)).await;
    let start = Instant::now();
    let first = api(&server, "/api/targets").await;
    let took = start.elapsed();
    eprintln!("/api/targets, 10k targets, first page: {took:?}");
    assert_eq!(first["total"], 10_000);
    assert_eq!(first["matched"], 10_000);
    assert_eq!(
        (first["offset"].as_u64(), first["limit"].as_u64()),
        (Some(0), Some(50))
    );
    assert_eq!(first["targets"].as_array().unwrap().len(), 50);
    assert_eq!(
        first["counts"],
        serde_json::json!({"up": 6000, "down": 3000, "unknown": 1000})
    );
    // Down first, in config order.
    let shown = names(&first);
    assert_eq!(
        &shown[..4],
        [
            "cache-000001",
            "cache-000002",
            "cache-000003",
            "cache-000011"
        ]
    );

    // Every row, page by page, once.
    let mut seen = HashSet::new();
    let mut offset = 0;
    while offset < 10_000 {
        let page = api(&server, &format!("/api/targets?offset={offset}&limit=500")).await;
        for name in names(&page) {
            assert!(seen.insert(name.to_owned()), "{name} twice");
        }
        offset += 500;
    }
    assert_eq!(seen.len(), 10_000);
    let last = api(&server, "/api/targets?offset=9990").await;
    assert_eq!(last["targets"].as_array().unwrap().len(), 10);
    let past = api(&server, "/api/targets?offset=20000").await;
    assert_eq!(past["targets"].as_array().unwrap().len(), 0);
    assert_eq!(past["matched"], 10_000);

    // In config order and by name, too.
    let config = api(&server, "/api/targets?sort=config&limit=3").await;
    assert_eq!(
        names(&config),
        ["cache-000000", "cache-000001", "cache-000002"]
    );
    let by_name = api(&server, "/api/targets?sort=name&offset=9999").await;
    assert_eq!(names(&by_name), ["cache-009999"]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_row_holds_the_state_its_time_uptime_last_hour_and_transitions() {
    let server = Server::start(synthetic_fleet(20)).await;
    let answer = api(&server, "/api/targets?q=cache-000001").await;
    let row = &answer["targets"][0];
    assert_eq!(row["name"], "cache-000001");
    assert_eq!(row["state"], "down");
    assert_eq!(row["check"], "half-open");
    assert_eq!(row["labels"]["zone"], "b");
    assert!(row["since"]["unix"].as_f64().unwrap() > 0.0);
    assert_eq!(row["last_check"]["result"], "refused");
    assert_eq!(row["rtt_seconds"], Value::Null, "the last check failed");
    // One success and one failure in the open minute.
    assert_eq!(row["uptime"]["1h"], 0.5);
    let minute = &row["last_hour"][0];
    assert_eq!(
        (minute["checks"].as_u64(), minute["failures"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(minute["rtt_avg_seconds"], 0.001);
    // Newest first, each as /status shows it.
    let transitions = row["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 2);
    assert_eq!(
        (&transitions[0]["from"], &transitions[0]["to"]),
        (&"up".into(), &"down".into())
    );
    assert_eq!(transitions[0]["why"], "1 failure: refused");
    assert_eq!(transitions[1]["to"], "up");
    assert_eq!(row["muted"], Value::Null);

    let up = api(&server, "/api/targets?q=cache-000004").await;
    let row = &up["targets"][0];
    assert_eq!(row["state"], "up");
    assert_eq!(row["rtt_seconds"], 0.001);
    assert_eq!(row["uptime"]["24h"], 1.0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn filters_by_state_label_and_text_and_counts_what_the_other_filters_keep() {
    let server = Server::start(synthetic_fleet(10_000)).await;
    let down = api(&server, "/api/targets?state=down&limit=500").await;
    assert_eq!(down["matched"], 3000);
    assert_eq!(down["total"], 10_000);
    for name in names(&down) {
        let i: usize = name["cache-".len()..].parse().unwrap();
        assert_eq!(state_of(i), "down", "{name}");
    }
    // Counts ignore the state filter: they are the page's state buttons.
    assert_eq!(down["counts"]["up"], 6000);

    let several = api(&server, "/api/targets?state=down,unknown").await;
    assert_eq!(several["matched"], 4000);
    let repeated = api(&server, "/api/targets?state=down&state=unknown").await;
    assert_eq!(repeated["matched"], 4000);

    // zone=a is i % 3 == 0: 3334 targets.
    let zone = api(&server, "/api/targets?label=zone%3Da&limit=500").await;
    assert_eq!(zone["matched"], 3334);
    for row in zone["targets"].as_array().unwrap() {
        assert_eq!(row["labels"]["zone"], "a");
    }
    let counts = &zone["counts"];
    let sum: u64 = ["up", "down", "unknown"]
        .iter()
        .map(|s| counts[s].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 3334);
    let both = api(&server, "/api/targets?label=zone=a&label=service=cache").await;
    assert_eq!(both["matched"], 3334);
    let none = api(&server, "/api/targets?label=zone=a&label=zone=b").await;
    assert_eq!(none["matched"], 0);
    assert_eq!(none["targets"].as_array().unwrap().len(), 0);

    // Name or address, in any case: cache-0099xx is 100 targets.
    let text = api(&server, "/api/targets?q=CACHE-0099").await;
    assert_eq!(text["matched"], 100);
    let address = api(&server, "/api/targets?q=127.0.39.15:").await;
    assert_eq!(names(&address), ["cache-009999"]);

    // All three at once.
    let all = api(&server, "/api/targets?state=up&label=zone=b&q=cache-00000").await;
    // cache-000000..=000009 with i % 3 == 1 (1, 4, 7) that are up (4, 7).
    assert_eq!(names(&all), ["cache-000004", "cache-000007"]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_query_is_a_400_that_says_what_to_write() {
    let server = Server::start(synthetic_fleet(3)).await;
    for (path, says) in [
        (
            "/api/targets?state=sideways",
            "state takes up, down or unknown",
        ),
        ("/api/targets?label=zone", "label takes NAME=VALUE"),
        ("/api/targets?limit=0", "limit takes 1 to 500"),
        ("/api/targets?limit=501", "limit takes 1 to 500"),
        ("/api/targets?offset=-1", "offset takes a whole number"),
        ("/api/targets?sort=size", "sort takes state, name or config"),
        ("/api/targets?page=2", "unknown parameter \"page\""),
        ("/api/targets?q=a&q=b", "q is given twice"),
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 400, "{path}");
        assert!(reply.body.contains(says), "{path}: {}", reply.body);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_page_is_one_html_answer_with_its_css_and_script() {
    let server = Server::start(synthetic_fleet(3)).await;
    let page = server.get("/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    for part in [
        "<table",
        "<th scope=\"col\"",
        "new EventSource('events')",
        "fetch('api/targets?'",
        ".pill.down",
        "aria-pressed",
    ] {
        assert!(page.body.contains(part), "the page holds {part:?}");
    }
    assert!(!page.body.contains("/*PAGE_"), "every part put in");
    // Nothing from elsewhere: no font, no CDN.
    for outside in ["https://", "http://", "//cdn", "@import", "url(http"] {
        let found = page
            .body
            .lines()
            .find(|line| line.contains(outside) && !line.contains("http://www.w3.org/2000/svg"));
        assert!(found.is_none(), "the page loads {outside}: {found:?}");
    }
    // The 404 lists the page's paths.
    let missing = server.get("/nowhere").await;
    assert_eq!(missing.status, 404);
    for path in ["GET  /\n", "/api/targets", "/events", "/badge/NAME.svg"] {
        assert!(missing.body.contains(path), "{path}: {}", missing.body);
    }
    assert_eq!(server.request("POST", "/", &[]).await.status, 405);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_badge_says_the_state_in_words_and_is_never_cached() {
    let server = Server::start(synthetic_fleet(3)).await;
    for (name, says) in [
        ("cache-000000", "● unknown"),
        ("cache-000001", "▼ down"),
        ("cache-000002", "▼ down"),
    ] {
        let badge = server.get(&format!("/badge/{name}.svg")).await;
        assert_eq!(badge.status, 200, "{name}");
        assert_eq!(
            badge.header("content-type"),
            Some("image/svg+xml; charset=utf-8")
        );
        assert!(badge.header("cache-control").unwrap().contains("no-cache"));
        assert!(badge
            .body
            .starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(
            badge
                .body
                .contains(&format!("<title>{name}: {says}</title>")),
            "{}",
            badge.body
        );
        assert!(badge.body.contains(&format!(">{says}</text>")));
    }
    let missing = server.get("/badge/nobody.svg").await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("nobody: no such target"),
        "{}",
        missing.body
    );
    let not_svg = server.get("/badge/cache-000000.png").await;
    assert_eq!(not_svg.status, 404);
    assert!(not_svg.body.contains("/badge/NAME.svg"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_badge_of_a_name_with_a_slash_or_a_space() {
    use connhealth_watch::config::CheckKind;
    use http_support::{fleet, plan, target_after};
    let now = std::time::SystemTime::now();
    let up = http_support::result(connhealth_watch::checks::Outcome::Ok, 1);
    let server = Server::start(fleet(vec![target_after(
        plan("eu/web 1", "127.0.0.1:80", CheckKind::HalfOpen, &[]),
        &[up],
        now,
    )]))
    .await;
    let badge = server.get("/badge/eu%2Fweb%201.svg").await;
    assert_eq!(badge.status, 200, "{}", badge.body);
    assert!(badge.body.contains("<title>eu/web 1: ▲ up</title>"));
    let raw = server.get("/badge/eu/web%201.svg").await;
    assert_eq!(raw.status, 200, "{}", raw.body);
    server.stop().await.unwrap();
}
