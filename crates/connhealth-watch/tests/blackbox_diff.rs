//! The blackbox differential: the real blackbox_exporter 0.23 (Debian's
//! `prometheus-blackbox-exporter`) and connhealth's daemon load ONE blackbox module file
//! (`tests/blackbox_diff/blackbox.yml`; connhealth through `blackbox_config`), and every
//! scenario sends both the same `/probe` request against the same loopback servers. The
//! answers are compared: the status; for a 200, every series (name and labels) and its
//! value, timings by presence only.
//!
//! Divergences are allowed only where docs/blackbox.md's table under "Differences from
//! blackbox_exporter" lists them; the test fails on any other, and on a listed one that
//! no longer diverges.
//!
//! Run it alone: `cargo test -p connhealth-watch --test blackbox_diff -- --nocapture`
//! (with `BLACKBOX_DIFF_SHOW=1`, it prints both answers of every scenario).

#[path = "blackbox_diff/client.rs"]
mod client;
#[path = "blackbox_diff/compare.rs"]
mod compare;
#[path = "blackbox_diff/differences.rs"]
mod differences;
#[path = "blackbox_diff/exporters.rs"]
mod exporters;
#[path = "blackbox_diff/exposition.rs"]
mod exposition;
#[path = "blackbox_diff/http_scenarios.rs"]
mod http_scenarios;
#[path = "blackbox_diff/http_server.rs"]
mod http_server;
#[path = "blackbox_diff/listener.rs"]
mod listener;
#[path = "blackbox_diff/pki.rs"]
mod pki;
#[path = "blackbox_diff/request_scenarios.rs"]
mod request_scenarios;
#[path = "blackbox_diff/scenario.rs"]
mod scenario;
#[path = "blackbox_diff/script_server.rs"]
mod script_server;
#[path = "blackbox_diff/tcp_scenarios.rs"]
mod tcp_scenarios;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use differences::{Divergence, Listed};
use scenario::{Case, Env};

/// The scenarios where blackbox's probe succeeds, in the order of their files.
const SUCCEEDS: [&[&str]; 3] = [
    tcp_scenarios::SUCCEEDS,
    http_scenarios::SUCCEEDS,
    request_scenarios::SUCCEEDS,
];

/// The module file both exporters load; `@DIR@` is the test's folder.
const MODULES: &str = include_str!("blackbox_diff/blackbox.yml");

#[test]
fn blackbox_exporter_and_connhealth_answer_probes_alike() {
    let started = Instant::now();
    let cases: Vec<Case> = [
        tcp_scenarios::cases(),
        http_scenarios::cases(),
        request_scenarios::cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "two scenarios have one name");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/blackbox.md");
    let listed = differences::read(&docs);
    for row in &listed {
        assert!(
            names.contains(row.scenario.as_str()),
            "docs/blackbox.md:{}: no scenario is named {:?}",
            row.line,
            row.scenario
        );
    }
    let expected = SUCCEEDS.iter().chain([&request_scenarios::EITHER]);
    for name in expected.flat_map(|list| list.iter()) {
        assert!(
            names.contains(name),
            "SUCCEEDS or EITHER name no scenario {name:?}"
        );
    }
    services_name_is_known();

    let dir = connhealth_testkit::TempDir::new("blackbox-diff");
    let pki = pki::self_signed_ca();
    dir.write("ca.pem", &pki.pem);
    let folder = dir.path().to_str().expect("a UTF-8 temp path");
    let config = dir.write("blackbox.yml", MODULES.replace("@DIR@", folder));
    let blackbox = exporters::Blackbox::start(dir.path(), &config);
    let daemon = exporters::connhealth(dir.path(), "blackbox.yml");
    let ours = daemon.listen();
    let env = Env { tls: pki.server };

    // BLACKBOX_DIFF_SHOW=1 prints both answers of every scenario.
    let show = std::env::var_os("BLACKBOX_DIFF_SHOW").is_some();
    let mut found: Vec<Divergence> = Vec::new();
    let mut broken: Vec<String> = Vec::new();
    let mut compared = 0;
    for case in &cases {
        let at = Instant::now();
        let probe = (case.setup)(&env);
        let path = format!("/probe?{}", probe.query);
        let (theirs, mine) = std::thread::scope(|s| {
            let theirs = s.spawn(|| client::get(blackbox.addr, &path, probe.scrape_timeout));
            let mine = client::get(ours, &path, probe.scrape_timeout);
            (theirs.join().expect("blackbox's request"), mine)
        });
        if show {
            println!(
                "--- {} ({path})\nblackbox {theirs:#?}\nconnhealth {mine:#?}",
                case.name
            );
        }
        let how = probe.compare;
        drop(probe); // its servers
        if how == scenario::Compare::Series {
            broken.extend(blackbox_as_expected(case.name, &theirs));
        }
        let (divergences, series) = compare::compare(case.name, how, &theirs, &mine);
        compared += series;
        found.extend(divergences);
        if at.elapsed().as_secs_f64() > 4.0 {
            println!("note: scenario {} took {:.1?}", case.name, at.elapsed());
        }
    }
    daemon.stop();
    drop(blackbox);

    for why in &broken {
        println!("BROKEN:   {why}");
    }
    let (unlisted, stale) = report(&cases, &listed, &found, compared, started);
    assert!(
        unlisted == 0 && stale == 0 && broken.is_empty(),
        "{unlisted} divergences from blackbox_exporter are not in docs/blackbox.md's table, \
         {stale} rows of it are stale, {} scenarios are broken (see above)",
        broken.len()
    );
}

/// Why blackbox's answer to scenario `name` is not what the scenario is written for, if
/// it is not: a 200 whose `probe_success` is 1 exactly for the scenarios listed as
/// succeeding.
fn blackbox_as_expected(name: &str, answer: &client::Answer) -> Option<String> {
    if answer.status != 200 || request_scenarios::EITHER.contains(&name) {
        return None;
    }
    let want = if SUCCEEDS.iter().any(|list| list.contains(&name)) {
        "1"
    } else {
        "0"
    };
    let success = exposition::parse(&answer.body)
        .into_iter()
        .find(|(series, _)| series.full == "probe_success")
        .map(|(_, value)| value.text);
    (success.as_deref() != Some(want)).then(|| {
        format!(
            "{name}: blackbox's probe_success is {}, the scenario is written for {want}: \
             its server or module is wrong (BLACKBOX_DIFF_SHOW=1 prints the answers)",
            success.as_deref().unwrap_or("absent")
        )
    })
}

/// Prints every divergence, every listed one that did not occur (stale) and the summary
/// line; returns the counts of unlisted divergences and of stale rows.
fn report(
    cases: &[Case],
    listed: &[Listed],
    found: &[Divergence],
    compared: usize,
    started: Instant,
) -> (usize, usize) {
    let mut unlisted = 0;
    for d in found {
        let allowed = listed.iter().any(|row| row.allows(d));
        if !allowed {
            unlisted += 1;
        }
        println!(
            "{} {} / {}: blackbox {} | connhealth {}",
            if allowed { "listed:  " } else { "UNLISTED:" },
            d.scenario,
            d.item,
            d.blackbox,
            d.ours
        );
    }
    let stale: Vec<&Listed> = listed
        .iter()
        .filter(|row| !found.iter().any(|d| row.allows(d)))
        .collect();
    for row in &stale {
        println!(
            "STALE:    docs/blackbox.md:{}: {} / {} no longer diverges; remove the row",
            row.line, row.scenario, row.item
        );
    }
    println!(
        "blackbox differential: {} scenarios, {compared} series compared, {} listed differences, {unlisted} unlisted ({:.1?})",
        cases.len(),
        listed.len(),
        started.elapsed()
    );
    (unlisted, stale.len())
}

/// `localhost:finger` is the service-name scenario: /etc/services must name port 79.
fn services_name_is_known() {
    let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
    let known = services.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next() == Some("finger") && words.next() == Some("79/tcp")
    });
    assert!(
        known,
        "/etc/services does not map finger to 79/tcp (Debian's netbase does): \
         the scenario tcp_service_name_port needs it"
    );
}
