//! `/metrics`: which series a scrape shows for each state, kind and result, with which
//! labels, rendered from the fleet alone; and the same through HTTP.

mod http_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use connhealth::ProbeEngine;
use connhealth_watch::sinks::metrics::ReloadState;
use connhealth_watch::sinks::metrics::{render_process, render_to_string, DaemonCounters};
use http_support::{fleet, mixed_fleet, sample, series, Server};

fn daemon() -> DaemonCounters {
    DaemonCounters {
        late_checks: 7,
        reload: ReloadState {
            successful: false,
            last_success: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        },
        sinks_dropped: Vec::new(),
        alerts: Vec::new(),
        probe_engine: Some(ProbeEngine::Sockets),
    }
}

const CACHE_A: &str = "target=\"cache-a\",address=\"127.0.0.1:6379\",check=\"half-open\",service=\"cache\",zone=\"a\"";
const CACHE_B: &str =
    "target=\"cache-b\",address=\"127.0.0.1:6380\",check=\"connect\",service=\"cache\"";
const HELD: &str = "target=\"held\",address=\"[::1]:5432\",check=\"hold\"";
const WEB: &str = "target=\"web\",address=\"localhost:8443\",check=\"tls\",note=\"a \\\"quoted\\\" \\\\ value\\nand a second line\"";
const REDIS: &str = "target=\"redis\",address=\"127.0.0.1:6381\",check=\"send-expect\"";

#[test]
fn the_daemon_series() {
    let text = render_to_string(&mixed_fleet(SystemTime::now()), &daemon());
    assert_eq!(sample(&text, "connhealth_targets"), Some(5.0));
    assert_eq!(sample(&text, "connhealth_checks_late_total"), Some(7.0));
    assert_eq!(
        sample(&text, "connhealth_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "connhealth_config_last_reload_success_timestamp_seconds"
        ),
        Some(1_700_000_000.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(
                "connhealth_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0)
    );
    // One series per engine, 1 for the one that runs.
    assert_eq!(
        sample(&text, "connhealth_probe_engine{engine=\"sockets\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "connhealth_probe_engine{engine=\"raw\"}"),
        Some(0.0)
    );
    // (The CPU time counts clock ticks at best: a test's first 10 ms may read as 0.)
    assert!(sample(&text, "process_cpu_seconds_total").is_some_and(|v| v >= 0.0));
    for process in ["process_resident_memory_bytes", "process_open_fds"] {
        assert!(
            sample(&text, process).is_some_and(|v| v > 0.0),
            "{process}:\n{text}"
        );
    }
}

/// This process's CPU time so far, user and system, from getrusage (microseconds).
fn cpu_seconds() -> f64 {
    // SAFETY: rusage is plain integers, for which all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the struct it is given and has no other effect.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

#[test]
fn process_cpu_seconds_total_counts_fractions_of_a_second() {
    let scraped = || {
        let mut out = Vec::new();
        render_process(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        sample(&text, "process_cpu_seconds_total").expect("process_cpu_seconds_total")
    };
    let (measured_before, scraped_before) = (cpu_seconds(), scraped());
    // About 150 ms of CPU: whole seconds would show it as 0 (or, across a second's
    // boundary, as 1).
    let mut spin = 0u64;
    while cpu_seconds() - measured_before < 0.15 {
        for i in 0..10_000u64 {
            spin = std::hint::black_box(spin.wrapping_mul(31).wrapping_add(i));
        }
    }
    let (scraped_after, measured_after) = (scraped(), cpu_seconds());
    let scraped = scraped_after - scraped_before;
    let measured = measured_after - measured_before;
    assert!(
        (scraped - measured).abs() < 0.05,
        "process_cpu_seconds_total went from {scraped_before} to {scraped_after} \
         ({scraped:.3} s) while getrusage counted {measured:.3} s"
    );
}

#[test]
fn up_is_1_or_0_and_absent_while_unknown() {
    let text = render_to_string(&mixed_fleet(SystemTime::now()), &daemon());
    let up = |labels| sample(&text, &format!("connhealth_target_up{{{labels}}}"));
    assert_eq!(up(CACHE_A), Some(1.0));
    assert_eq!(up(CACHE_B), Some(0.0));
    assert_eq!(up(HELD), None, "unknown: no series\n{text}");
    assert_eq!(up(WEB), Some(1.0));
}

#[test]
fn state_changes_and_the_last_change() {
    let now = UNIX_EPOCH + Duration::from_millis(1_764_621_699_250);
    let text = render_to_string(&mixed_fleet(now), &daemon());
    let changes = |labels| {
        sample(
            &text,
            &format!("connhealth_target_state_changes_total{{{labels}}}"),
        )
    };
    let last = |labels| {
        sample(
            &text,
            &format!("connhealth_target_last_change_timestamp_seconds{{{labels}}}"),
        )
    };
    assert_eq!(changes(CACHE_A), Some(1.0));
    assert_eq!(changes(CACHE_B), Some(2.0));
    assert_eq!(changes(HELD), Some(0.0));
    assert_eq!(last(CACHE_B), Some(1_764_621_699.25));
    assert_eq!(last(HELD), None, "no change yet: no series\n{text}");
}

#[test]
fn checks_by_result_show_every_result_at_0_from_the_first_scrape() {
    // Prometheus' increase() and rate() need a sample before the first failure: a
    // series that appears at 1 shows no increase at all.
    let text = render_to_string(&mixed_fleet(SystemTime::now()), &daemon());
    let checks = |labels: &str, result: &str| {
        sample(
            &text,
            &format!("connhealth_target_checks_total{{{labels},result=\"{result}\"}}"),
        )
    };
    let every = [
        "ok",
        "refused",
        "timeout",
        "unreachable",
        "resolve",
        "exhausted",
        "closed",
        "mismatch",
        "tls",
        "error",
    ];
    for result in every {
        assert_eq!(
            checks(HELD, result),
            Some(0.0),
            "never checked: {result}\n{text}"
        );
    }
    assert_eq!(checks(CACHE_B, "ok"), Some(1.0));
    assert_eq!(checks(CACHE_B, "refused"), Some(1.0));
    assert_eq!(checks(CACHE_B, "timeout"), Some(0.0));
    assert_eq!(checks(WEB, "tls"), Some(0.0));
    for result in every {
        let expected = if result == "mismatch" { 2.0 } else { 1.0 };
        assert_eq!(checks(REDIS, result), Some(expected), "{result}");
    }
    let per_target = series(&text)
        .into_iter()
        .filter(|s| s.starts_with("connhealth_target_checks_total{"))
        .count();
    assert_eq!(
        per_target,
        5 * every.len(),
        "every result of every target, once"
    );
}

#[test]
fn the_last_check_duration_and_the_cert_expiry() {
    let text = render_to_string(&mixed_fleet(SystemTime::now()), &daemon());
    let duration = |labels| {
        sample(
            &text,
            &format!("connhealth_target_last_check_duration_seconds{{{labels}}}"),
        )
    };
    assert_eq!(duration(CACHE_A), Some(0.001));
    assert_eq!(duration(WEB), Some(0.003));
    assert_eq!(duration(HELD), None, "never checked: no series");
    let expiries: Vec<&str> = series(&text)
        .into_iter()
        .filter(|s| s.starts_with("connhealth_target_ssl_earliest_cert_expiry_seconds"))
        .collect();
    assert_eq!(
        expiries,
        [format!(
            "connhealth_target_ssl_earliest_cert_expiry_seconds{{{WEB}}}"
        )]
    );
    assert_eq!(
        sample(&text, expiries[0]),
        Some(1_800_000_000.0),
        "tls only, and only when known"
    );
}

#[test]
fn every_family_has_help_and_its_type_once() {
    let text = render_to_string(&mixed_fleet(SystemTime::now()), &daemon());
    let families = [
        ("connhealth_build_info", "gauge"),
        ("connhealth_targets", "gauge"),
        ("connhealth_checks_late_total", "counter"),
        ("connhealth_probe_engine", "gauge"),
        ("connhealth_config_last_reload_successful", "gauge"),
        (
            "connhealth_config_last_reload_success_timestamp_seconds",
            "gauge",
        ),
        ("connhealth_target_up", "gauge"),
        ("connhealth_target_state_changes_total", "counter"),
        ("connhealth_target_last_change_timestamp_seconds", "gauge"),
        ("connhealth_target_checks_total", "counter"),
        ("connhealth_target_last_check_duration_seconds", "gauge"),
        (
            "connhealth_target_ssl_earliest_cert_expiry_seconds",
            "gauge",
        ),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
    ];
    for (name, kind) in families {
        let type_line = format!("# TYPE {name} {kind}");
        assert_eq!(
            text.lines().filter(|l| *l == type_line).count(),
            1,
            "{type_line}"
        );
        let help = format!("# HELP {name} ");
        assert_eq!(
            text.lines().filter(|l| l.starts_with(&help)).count(),
            1,
            "{help}"
        );
    }
}

#[test]
fn an_empty_fleet_has_the_daemon_series_only() {
    let text = render_to_string(&fleet(Vec::new()), &daemon());
    assert_eq!(sample(&text, "connhealth_targets"), Some(0.0));
    assert!(!text.contains("connhealth_target_"), "{text}");
}

#[tokio::test]
async fn get_metrics_serves_the_rendering_in_the_text_format() {
    let server = Server::start(mixed_fleet(SystemTime::now())).await;
    let reply = server.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(
        sample(&reply.body, &format!("connhealth_target_up{{{CACHE_A}}}")),
        Some(1.0)
    );
    assert!(sample(&reply.body, "process_open_fds").is_some());
    assert_eq!(
        sample(&reply.body, "connhealth_config_last_reload_successful"),
        Some(1.0)
    );
}
