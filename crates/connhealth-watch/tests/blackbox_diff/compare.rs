//! What differs between blackbox's answer and ours to one scenario.

use super::client::Answer;
use super::differences::Divergence;
use super::exposition;
use super::scenario::Compare;

/// Series whose values are durations: compared by presence only.
const TIMINGS: [&str; 3] = [
    "probe_duration_seconds",
    "probe_dns_lookup_time_seconds",
    "probe_http_duration_seconds",
];

/// The divergences of one scenario, and how many series were compared.
pub fn compare(
    scenario: &'static str,
    how: Compare,
    blackbox: &Answer,
    ours: &Answer,
) -> (Vec<Divergence>, usize) {
    let diverged = |name: &str, item: &str, theirs: String, mine: String| Divergence {
        scenario,
        name: name.to_owned(),
        item: item.to_owned(),
        blackbox: theirs,
        ours: mine,
    };
    let mut found = Vec::new();
    if blackbox.status != ours.status {
        let say = |a: &Answer| match a.status {
            200 => "200".to_owned(),
            status => format!("{status} {}", a.body.trim()),
        };
        found.push(diverged("status", "status", say(blackbox), say(ours)));
        return (found, 0);
    }
    if blackbox.status != 200 {
        return (found, 0);
    }
    if how == Compare::StatusAndContentType {
        if blackbox.content_type != ours.content_type {
            let say = |a: &Answer| a.content_type.clone().unwrap_or_else(|| "(none)".into());
            found.push(diverged(
                "content_type",
                "content_type",
                say(blackbox),
                say(ours),
            ));
        }
        return (found, 0);
    }
    let theirs = exposition::parse(&blackbox.body);
    let mine = exposition::parse(&ours.body);
    let mut all: Vec<_> = theirs.keys().chain(mine.keys()).cloned().collect();
    all.sort();
    all.dedup();
    for series in &all {
        let timing = TIMINGS.contains(&series.name.as_str());
        let say = |v: Option<&exposition::Value>| match v {
            None => "(absent)".to_owned(),
            Some(_) if timing => "(present)".to_owned(),
            Some(v) => v.text.clone(),
        };
        let (a, b) = (theirs.get(series), mine.get(series));
        let same = match (a, b) {
            (Some(_), Some(_)) if timing => true,
            (Some(a), Some(b)) => a.same(b),
            _ => false,
        };
        if !same {
            found.push(diverged(&series.name, &series.full, say(a), say(b)));
        }
    }
    (found, all.len())
}
