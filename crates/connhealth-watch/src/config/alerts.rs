//! `[[alerts.webhook]]`, `[alerts.alertmanager]` and `[[maintenance]]`: who is told of a
//! transition, and when no one is. The plan types, and their reading from the TOML tree,
//! each problem at its place with what to write.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};

use super::file_sd::parse_url;
use super::keys::{self, Section};
use super::raw::{Entry, Node, Value};
use super::span::{Report, Source};
use super::values;

/// `[alerts]`: the receivers, in the order written (webhooks first, then Alertmanager).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertsPlan {
    /// Every receiver; names unique.
    pub receivers: Vec<ReceiverPlan>,
}

/// One receiver: a webhook or an Alertmanager.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverPlan {
    /// The `receiver` label of `connhealth_alerts_*_total`: `name`, else `webhook`,
    /// `webhook-2`, ..., or `alertmanager`.
    pub name: String,
    /// `for`: how long a state must hold before it is sent (0: at once).
    pub hold: Duration,
    /// Where and how it is told.
    pub kind: ReceiverKind,
}

/// What a receiver is.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverKind {
    /// `[[alerts.webhook]]`: one JSON POST per transition to `url`, with `headers`.
    Webhook {
        /// `url`, http or https.
        url: Uri,
        /// `headers`, sent with every POST.
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// `[alerts.alertmanager]`: alerts posted to `url` (the base URL with
    /// `/api/v2/alerts` appended).
    Alertmanager {
        /// The full URL of Alertmanager's alerts API.
        url: Uri,
    },
}

/// One `[[maintenance]]` window: from `start` (UTC) for `duration`, on `days`, for the
/// targets that `matchers` take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenancePlan {
    /// `name`, else `maintenance-N` (N its 1-based rank in the file).
    pub name: String,
    /// `start`, in minutes after midnight UTC.
    pub start_minute: u32,
    /// `duration`.
    pub duration: Duration,
    /// `days`: bit 0 is Monday, bit 6 Sunday; every day when not written.
    pub days: u8,
    /// `match`: every pair must hold; the key `target` is the target's name, any other
    /// key one of its labels. Empty: every target.
    pub matchers: BTreeMap<String, String>,
}

/// The day names `days` takes, Monday first (bit 0).
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The full day names, also taken.
const LONG_DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Where a problem goes.
pub(crate) struct Reader<'a, 'r> {
    pub(crate) source: Source<'a>,
    pub(crate) report: &'r mut Report,
}

impl Reader<'_, '_> {
    fn error(&mut self, at: usize, message: impl Into<String>) {
        self.report.error(&self.source, at, message);
    }

    fn unknown(&mut self, entry: &Entry, section: Section) {
        self.error(entry.key_at, keys::unknown_key(&entry.key, section));
    }
}

const WEBHOOK_EXAMPLE: &str =
    "[[alerts.webhook]] with url = \"https://hooks.example/connhealth\" below it";
const ALERTMANAGER_EXAMPLE: &str =
    "[alerts.alertmanager] with url = \"http://127.0.0.1:9093\" below it";

/// `[alerts]`: `webhook` (an array of tables) and `alertmanager` (a table).
pub(crate) fn alerts(reader: &mut Reader<'_, '_>, node: &Node) -> AlertsPlan {
    let mut plan = AlertsPlan::default();
    let Value::Table(entries) = &node.value else {
        reader.error(
            node.at,
            format!(
                "`alerts` must be a table, not {}; write e.g. {WEBHOOK_EXAMPLE}",
                node.value.type_name()
            ),
        );
        return plan;
    };
    // Where each name is written, for a duplicate.
    let mut named: Vec<(String, usize)> = Vec::new();
    let mut webhooks = 0;
    for entry in entries {
        match entry.key.as_str() {
            "webhook" => {
                let Value::Array(items) = &entry.value.value else {
                    reader.error(
                        entry.value.at,
                        format!(
                            "`alerts.webhook` must be an array of tables, not {}; write {WEBHOOK_EXAMPLE} (two brackets: there may be several)",
                            entry.value.value.type_name()
                        ),
                    );
                    continue;
                };
                for item in items {
                    webhooks += 1;
                    let default = if webhooks == 1 {
                        "webhook".to_owned()
                    } else {
                        format!("webhook-{webhooks}")
                    };
                    if let Some((receiver, at)) = receiver(reader, item, true, default) {
                        named.push((receiver.name.clone(), at));
                        plan.receivers.push(receiver);
                    }
                }
            }
            "alertmanager" => {
                if matches!(entry.value.value, Value::Array(_)) {
                    reader.error(
                        entry.value.at,
                        format!("there is one Alertmanager receiver: write {ALERTMANAGER_EXAMPLE} (one bracket), and list Alertmanager's peers in its own config"),
                    );
                    continue;
                }
                if let Some((receiver, at)) =
                    receiver(reader, &entry.value, false, "alertmanager".to_owned())
                {
                    named.push((receiver.name.clone(), at));
                    plan.receivers.push(receiver);
                }
            }
            _ => reader.unknown(entry, Section::Alerts),
        }
    }
    for (i, (name, at)) in named.iter().enumerate() {
        if named[..i].iter().any(|(earlier, _)| earlier == name) {
            reader.error(
                *at,
                format!("a receiver named `{name}` is already defined above; give this one another name, e.g. name = \"{name}-2\" (it is the receiver label of connhealth_alerts_sent_total)"),
            );
        }
    }
    // Webhooks first, then Alertmanager, whatever the order written: a stable order for
    // the metrics.
    plan.receivers
        .sort_by_key(|r| matches!(r.kind, ReceiverKind::Alertmanager { .. }));
    plan
}

/// One receiver's table; with where its name is written (or the table), for a
/// duplicate.
fn receiver(
    reader: &mut Reader<'_, '_>,
    node: &Node,
    webhook: bool,
    default_name: String,
) -> Option<(ReceiverPlan, usize)> {
    let (section, example) = if webhook {
        (Section::Webhook, WEBHOOK_EXAMPLE)
    } else {
        (Section::Alertmanager, ALERTMANAGER_EXAMPLE)
    };
    let Value::Table(entries) = &node.value else {
        reader.error(
            node.at,
            format!(
                "{} must be a table, not {}; write {example}",
                section.place().trim_start_matches("in "),
                node.value.type_name()
            ),
        );
        return None;
    };
    let mut name = None;
    let mut url = None;
    let mut hold = Duration::ZERO;
    let mut headers = Vec::new();
    let mut broken = false;
    for entry in entries {
        let value = &entry.value;
        match entry.key.as_str() {
            "name" => match &value.value {
                Value::String(s) if !s.trim().is_empty() => name = Some((s.clone(), value.at)),
                Value::String(_) => {
                    broken = true;
                    reader.error(value.at, "`name` is empty; write e.g. name = \"ops-chat\", or remove it for the default");
                }
                other => {
                    broken = true;
                    reader.error(
                        value.at,
                        keys::wrong_type("name", "a string", other.type_name()),
                    );
                }
            },
            "url" => match &value.value {
                Value::String(s) => match parse_url(s) {
                    Ok(parsed) if webhook => url = Some(parsed),
                    // Alertmanager's API under the base URL; its query, if any, dropped.
                    Ok(parsed) => match alertmanager_api(&parsed) {
                        Some(api) => url = Some(api),
                        None => {
                            broken = true;
                            reader.error(
                                value.at,
                                format!("{s:?} cannot take /api/v2/alerts after its path; write Alertmanager's base URL, e.g. url = \"http://127.0.0.1:9093\""),
                            );
                        }
                    },
                    Err(why) => {
                        broken = true;
                        // parse_url speaks of an http check; say what a receiver takes.
                        let why = why.replace("an http check takes", "a receiver takes");
                        let why = why.replace(
                            "\"https://api.internal:8443/healthz\"",
                            if webhook {
                                "\"https://hooks.example/connhealth\""
                            } else {
                                "\"http://127.0.0.1:9093\""
                            },
                        );
                        reader.error(value.at, why);
                    }
                },
                other => {
                    broken = true;
                    reader.error(
                        value.at,
                        format!(
                            "`url` must be a string, not {}; write e.g. url = \"{}\"",
                            other.type_name(),
                            if webhook {
                                "https://hooks.example/connhealth"
                            } else {
                                "http://127.0.0.1:9093"
                            }
                        ),
                    );
                }
            },
            "for" => match hold_duration(value) {
                Ok(d) => hold = d,
                Err(why) => {
                    broken = true;
                    reader.error(value.at, why);
                }
            },
            "headers" if webhook => match header_table(reader, value) {
                Some(read) => headers = read,
                None => broken = true,
            },
            _ => {
                broken = true;
                reader.unknown(entry, section);
            }
        }
    }
    let Some(url) = url else {
        if !broken {
            reader.error(
                node.at,
                format!("this receiver has no `url`; add one: {example}"),
            );
        }
        return None;
    };
    if broken {
        return None;
    }
    let kind = if webhook {
        ReceiverKind::Webhook { url, headers }
    } else {
        ReceiverKind::Alertmanager { url }
    };
    let (name, at) = name.unwrap_or((default_name, node.at));
    Some((ReceiverPlan { name, hold, kind }, at))
}

/// Alertmanager's alerts API under the base URL `base`: `/api/v2/alerts` appended to its
/// path (a base behind a proxy may have a path of its own).
fn alertmanager_api(base: &Uri) -> Option<Uri> {
    let path = base.path().trim_end_matches('/');
    let mut parts = base.clone().into_parts();
    parts.path_and_query = format!("{path}/api/v2/alerts").parse().ok();
    Uri::from_parts(parts).ok()
}

/// `for`: a duration, 0 allowed (send at once).
fn hold_duration(node: &Node) -> Result<Duration, String> {
    if let Value::String(text) = &node.value {
        if humantime::parse_duration(text.trim()).is_ok_and(|d| d.is_zero()) {
            return Ok(Duration::ZERO);
        }
    }
    values::duration("for", node).map_err(|why| {
        if matches!(node.value, Value::String(_)) {
            why
        } else {
            format!(
                "`for` must be a duration string, not {}; write e.g. for = \"1m\" (\"0s\" sends at once)",
                node.value.type_name()
            )
        }
    })
}

/// `headers = { Authorization = "Bearer ..." }`: names and values as HTTP takes them.
fn header_table(
    reader: &mut Reader<'_, '_>,
    node: &Node,
) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let Value::Table(entries) = &node.value else {
        reader.error(
            node.at,
            format!(
                "`headers` must be a table, not {}; write e.g. headers = {{ Authorization = \"Bearer TOKEN\" }}",
                node.value.type_name()
            ),
        );
        return None;
    };
    let mut headers = Vec::new();
    let mut ok = true;
    for entry in entries {
        let Ok(name) = HeaderName::try_from(entry.key.as_str()) else {
            ok = false;
            reader.error(
                entry.key_at,
                format!(
                    "{:?} is not an HTTP header name (letters, digits and -); write e.g. X-Token",
                    entry.key
                ),
            );
            continue;
        };
        let Value::String(text) = &entry.value.value else {
            ok = false;
            reader.error(
                entry.value.at,
                format!(
                    "header `{}` must have a string value, not {}; quote it, e.g. {} = \"value\"",
                    entry.key,
                    entry.value.value.type_name(),
                    entry.key
                ),
            );
            continue;
        };
        match HeaderValue::try_from(text.as_str()) {
            Ok(value) => headers.push((name, value)),
            Err(_) => {
                ok = false;
                reader.error(
                    entry.value.at,
                    format!("the value of header `{}` holds a character HTTP does not allow in a header (a line break?); write it on one line", entry.key),
                );
            }
        }
    }
    ok.then_some(headers)
}

const MAINTENANCE_EXAMPLE: &str = "[[maintenance]] with start = \"02:00\", duration = \"1h\", days = [\"sun\"], match = { service = \"db\" } below it";

/// `[[maintenance]]`: each window, in file order.
pub(crate) fn maintenance(reader: &mut Reader<'_, '_>, node: &Node) -> Vec<MaintenancePlan> {
    let Value::Array(items) = &node.value else {
        reader.error(
            node.at,
            format!(
                "`maintenance` must be an array of tables, not {}; write {MAINTENANCE_EXAMPLE} (two brackets: there may be several)",
                node.value.type_name()
            ),
        );
        return Vec::new();
    };
    let mut windows = Vec::new();
    for (rank, item) in items.iter().enumerate() {
        if let Some(window) = window(reader, item, rank + 1) {
            windows.push(window);
        }
    }
    windows
}

fn window(reader: &mut Reader<'_, '_>, node: &Node, rank: usize) -> Option<MaintenancePlan> {
    let Value::Table(entries) = &node.value else {
        reader.error(
            node.at,
            format!(
                "each entry of `maintenance` must be a table, not {}; write {MAINTENANCE_EXAMPLE}",
                node.value.type_name()
            ),
        );
        return None;
    };
    let mut name = format!("maintenance-{rank}");
    let mut start = None;
    let mut duration = None;
    let mut days = 0x7f;
    let mut matchers = BTreeMap::new();
    let mut broken = false;
    for entry in entries {
        let value = &entry.value;
        let read = match entry.key.as_str() {
            "name" => match &value.value {
                Value::String(s) if !s.trim().is_empty() => {
                    name = s.clone();
                    Ok(())
                }
                _ => Err("`name` must be a non-empty string; write e.g. name = \"db patching\", or remove it".to_owned()),
            },
            "start" => start_minute(value).map(|m| start = Some(m)),
            "duration" => values::duration("duration", value)
                .map(|d| duration = Some(d))
                .map_err(|why| {
                    if matches!(value.value, Value::String(_)) {
                        why
                    } else {
                        format!(
                            "`duration` must be a duration string, not {}; write e.g. duration = \"1h30m\"",
                            value.value.type_name()
                        )
                    }
                }),
            "days" => match day_set(reader, value) {
                Some(set) => {
                    days = set;
                    Ok(())
                }
                None => {
                    broken = true;
                    Ok(())
                }
            },
            "match" => match match_table(reader, value) {
                Some(read) => {
                    matchers = read;
                    Ok(())
                }
                None => {
                    broken = true;
                    Ok(())
                }
            },
            _ => {
                broken = true;
                reader.unknown(entry, Section::Maintenance);
                Ok(())
            }
        };
        if let Err(why) = read {
            broken = true;
            reader.error(value.at, why);
        }
    }
    for (missing, example) in [
        (start.is_none(), "start = \"02:00\" (UTC)"),
        (duration.is_none(), "duration = \"1h\""),
    ] {
        if missing && !broken {
            let key = example.split(' ').next().unwrap_or_default();
            reader.error(
                node.at,
                format!("this [[maintenance]] window has no `{key}`; add one, e.g. {example}"),
            );
        }
    }
    if broken {
        return None;
    }
    Some(MaintenancePlan {
        name,
        start_minute: start?,
        duration: duration?,
        days,
        matchers,
    })
}

/// `start = "HH:MM"`, UTC: minutes after midnight.
fn start_minute(node: &Node) -> Result<u32, String> {
    const WRITE: &str =
        "write the time of day it begins, UTC, as \"HH:MM\" on a 24-hour clock, e.g. start = \"02:30\"";
    let Value::String(text) = &node.value else {
        return Err(format!(
            "`start` must be a string, not {}; {WRITE}",
            node.value.type_name()
        ));
    };
    let parsed = text.trim().split_once(':').and_then(|(h, m)| {
        let ok = |s: &str| (1..=2).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        if !ok(h) || m.len() != 2 || !ok(m) {
            return None;
        }
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    });
    parsed.ok_or_else(|| format!("{text:?} is not a time of day; {WRITE}"))
}

/// `days = ["mon", "fri"]`: a bit per day, Monday bit 0.
fn day_set(reader: &mut Reader<'_, '_>, node: &Node) -> Option<u8> {
    const WRITE: &str = "write e.g. days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"], or remove `days` for every day";
    let Value::Array(items) = &node.value else {
        reader.error(
            node.at,
            format!(
                "`days` must be an array of day names, not {}; {WRITE}",
                node.value.type_name()
            ),
        );
        return None;
    };
    if items.is_empty() {
        reader.error(
            node.at,
            format!("`days` is empty, so the window would never begin; {WRITE}"),
        );
        return None;
    }
    let mut set = 0u8;
    let mut ok = true;
    for item in items {
        let found = match &item.value {
            Value::String(day) => {
                let day = day.trim().to_ascii_lowercase();
                DAY_NAMES
                    .iter()
                    .zip(LONG_DAY_NAMES)
                    .position(|(short, long)| day == *short || day == long)
            }
            _ => None,
        };
        match found {
            Some(i) => set |= 1 << i,
            None => {
                ok = false;
                let written = match &item.value {
                    Value::String(day) => format!("{day:?}"),
                    other => other.type_name().to_owned(),
                };
                reader.error(
                    item.at,
                    format!(
                        "{written} is not a day; days are {}; {WRITE}",
                        DAY_NAMES.join(", ")
                    ),
                );
            }
        }
    }
    ok.then_some(set)
}

/// `match = { service = "db", target = "db-1" }`.
fn match_table(reader: &mut Reader<'_, '_>, node: &Node) -> Option<BTreeMap<String, String>> {
    let Value::Table(entries) = &node.value else {
        reader.error(
            node.at,
            format!(
                "`match` must be a table of label values, not {}; write e.g. match = {{ service = \"db\" }} (or {{ target = \"db-1\" }} for one target)",
                node.value.type_name()
            ),
        );
        return None;
    };
    let mut matchers = BTreeMap::new();
    let mut ok = true;
    for entry in entries {
        if entry.key != "target" {
            let problem = if super::labels::RESERVED.contains(&entry.key.as_str()) {
                Some(format!(
                    "`match` cannot use `{}`: no target has it as a label of its own; match one of the target's labels (e.g. service = \"db\"), or its name with target = \"db-1\"",
                    entry.key
                ))
            } else {
                super::labels::problem(&entry.key).map(|problem| {
                    format!(
                        "{problem}; `match` takes a target's own labels, and `target` for its name"
                    )
                })
            };
            if let Some(problem) = problem {
                ok = false;
                reader.error(entry.key_at, problem);
                continue;
            }
        }
        match &entry.value.value {
            Value::String(value) => {
                matchers.insert(entry.key.clone(), value.clone());
            }
            other => {
                ok = false;
                reader.error(
                    entry.value.at,
                    format!(
                        "`{key}` in `match` must be a string, not {}; quote it, e.g. {key} = \"db\"",
                        other.type_name(),
                        key = entry.key
                    ),
                );
            }
        }
    }
    ok.then_some(matchers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alertmanager_api_is_under_the_base() {
        let api = |base: &str| {
            alertmanager_api(&base.parse().unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(
            api("http://127.0.0.1:9093"),
            "http://127.0.0.1:9093/api/v2/alerts"
        );
        assert_eq!(
            api("https://am.example/proxy/"),
            "https://am.example/proxy/api/v2/alerts"
        );
    }
}
