//! The check settings of one table (`[defaults]`, a target, a module or a `[[file_sd]]`
//! block): each key's value checked (by [`super::values`]) and kept with where it was
//! written, then layered (built-in ← `[defaults]` ← the table) into a [`CheckPlan`], and
//! the rules that tie settings to the check kind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::bytes::Regex;

use super::keys::{self, example, SEND_EXPECT_SETTINGS, TLS_SETTINGS};
use super::plan::{CheckKind, CheckPlan, TlsPlan};
use super::raw::Entry;
use super::span::{Report, Source};
use super::values::{
    boolean, bytes, ca_file, count, days, duration, jitter, kind, regex, server_name,
};

/// A value as written: the value, and where it is.
#[derive(Debug, Clone)]
pub(crate) struct Written<T> {
    /// The checked value.
    pub(crate) value: T,
    /// Where the value starts.
    pub(crate) at: usize,
}

/// The settings one table sets, each field for the key of its name (`kind` for
/// `check`); unset ones are inherited.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub(crate) kind: Option<Written<CheckKind>>,
    pub(crate) interval: Option<Written<Duration>>,
    pub(crate) fast_interval: Option<Written<Duration>>,
    pub(crate) down_interval: Option<Written<Duration>>,
    pub(crate) timeout: Option<Written<Duration>>,
    pub(crate) rise: Option<Written<u32>>,
    pub(crate) fall: Option<Written<u32>>,
    pub(crate) jitter: Option<Written<f64>>,
    pub(crate) send: Option<Written<Vec<u8>>>,
    pub(crate) expect: Option<Written<Regex>>,
    pub(crate) quit: Option<Written<Vec<u8>>>,
    pub(crate) server_name: Option<Written<String>>,
    pub(crate) ca_file: Option<Written<PathBuf>>,
    pub(crate) insecure: Option<Written<bool>>,
    pub(crate) cert_min_days: Option<Written<u32>>,
    /// Every setting key the table has, good or bad, with where it is.
    written: Vec<(&'static str, usize)>,
    /// The keys whose value was bad (and reported): later checks stay quiet about them.
    broken: Vec<&'static str>,
}

/// What a settings table is, for the messages about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// `[defaults]`.
    Defaults,
    /// A `[[targets]]` table.
    Target,
    /// A `[modules.NAME]` table.
    Module,
    /// A `[[file_sd]]` table.
    FileSd,
}

impl Owner {
    fn this(self) -> &'static str {
        match self {
            Owner::Defaults => "[defaults]",
            Owner::Target => "this target",
            Owner::Module => "this module",
            Owner::FileSd => "this file_sd block",
        }
    }
}

impl Settings {
    /// Reads `entry` if its key is a setting, reporting a bad value; false when the key
    /// is not a setting at all.
    pub(crate) fn read(
        &mut self,
        entry: &Entry,
        base: &Path,
        source: &Source<'_>,
        report: &mut Report,
    ) -> bool {
        let Some(&key) = keys::SETTINGS.iter().find(|k| **k == entry.key) else {
            return false;
        };
        self.written.push((key, entry.key_at));
        let node = &entry.value;
        let ok = match key {
            "check" => store(&mut self.kind, entry, kind(node)),
            "interval" => store(&mut self.interval, entry, duration(key, node)),
            "fast_interval" => store(&mut self.fast_interval, entry, duration(key, node)),
            "down_interval" => store(&mut self.down_interval, entry, duration(key, node)),
            "timeout" => store(&mut self.timeout, entry, duration(key, node)),
            "rise" => store(
                &mut self.rise,
                entry,
                count(key, node, "up without a single success"),
            ),
            "fall" => store(
                &mut self.fall,
                entry,
                count(key, node, "down without a single failure"),
            ),
            "jitter" => store(&mut self.jitter, entry, jitter(node)),
            "send" => store(&mut self.send, entry, bytes(key, node)),
            "expect" => store(&mut self.expect, entry, regex(node)),
            "quit" => store(&mut self.quit, entry, bytes(key, node)),
            "server_name" => store(&mut self.server_name, entry, server_name(node)),
            "ca_file" => store(&mut self.ca_file, entry, ca_file(node, base)),
            "insecure" => store(&mut self.insecure, entry, boolean(key, node)),
            "cert_min_days" => store(&mut self.cert_min_days, entry, days(node)),
            _ => Ok(()),
        };
        if let Err(message) = ok {
            self.broken.push(key);
            report.error(source, node.at, message);
        }
        true
    }

    fn is_broken(&self, key: &str) -> bool {
        self.broken.contains(&key)
    }
}

fn store<T>(
    slot: &mut Option<Written<T>>,
    entry: &Entry,
    value: Result<T, String>,
) -> Result<(), String> {
    *slot = Some(Written {
        value: value?,
        at: entry.value.at,
    });
    Ok(())
}

/// The plan of a table: the built-in defaults, then each layer in order (`[defaults]`,
/// then the table's own). `down_interval` is the effective `interval` unless a layer sets
/// it. Kind-specific settings are kept only for the kind that reads them, so that two
/// plans of one kind compare equal exactly when the check would behave the same.
pub(crate) fn resolve(layers: &[&Settings]) -> CheckPlan {
    let mut plan = CheckPlan::default();
    let mut down_interval = None;
    for layer in layers {
        set(&mut plan.kind, &layer.kind);
        set(&mut plan.interval, &layer.interval);
        set(&mut plan.fast_interval, &layer.fast_interval);
        set(&mut plan.timeout, &layer.timeout);
        set(&mut plan.rise, &layer.rise);
        set(&mut plan.fall, &layer.fall);
        set(&mut plan.jitter, &layer.jitter);
        set_some(&mut plan.send, &layer.send);
        set_some(&mut plan.expect, &layer.expect);
        set_some(&mut plan.quit, &layer.quit);
        set_some(&mut plan.tls.server_name, &layer.server_name);
        set_some(&mut plan.tls.ca_file, &layer.ca_file);
        set(&mut plan.tls.insecure, &layer.insecure);
        set_some(&mut plan.tls.cert_min_days, &layer.cert_min_days);
        set_some(&mut down_interval, &layer.down_interval);
    }
    plan.down_interval = down_interval.unwrap_or(plan.interval);
    if plan.kind != CheckKind::SendExpect {
        plan.send = None;
        plan.expect = None;
        plan.quit = None;
    }
    if plan.kind != CheckKind::Tls {
        plan.tls = TlsPlan::default();
    }
    plan
}

fn set<T: Clone>(target: &mut T, written: &Option<Written<T>>) {
    if let Some(written) = written {
        *target = written.value.clone();
    }
}

fn set_some<T: Clone>(target: &mut Option<T>, written: &Option<Written<T>>) {
    if let Some(written) = written {
        *target = Some(written.value.clone());
    }
}

/// Reports what the effective kind of a table cannot use: settings of another kind set in
/// the table itself (in `[defaults]` they serve whichever target has that kind), and a
/// `send-expect` check with no `expect`.
pub(crate) fn check_kind(
    owner: Owner,
    own: &Settings,
    defaults: &Settings,
    source: &Source<'_>,
    report: &mut Report,
) {
    if own.is_broken("check") || defaults.is_broken("check") {
        return; // Which kind was meant is unknown, and already reported.
    }
    let kind = own
        .kind
        .as_ref()
        .or(defaults.kind.as_ref())
        .map_or(CheckKind::HalfOpen, |w| w.value);
    if owner != Owner::Defaults {
        for &(key, key_at) in &own.written {
            let reader = if SEND_EXPECT_SETTINGS.contains(&key) {
                CheckKind::SendExpect
            } else if TLS_SETTINGS.contains(&key) {
                CheckKind::Tls
            } else {
                continue;
            };
            if reader != kind {
                report.error(
                    source,
                    key_at,
                    format!(
                        "`{key}` is read by check = \"{reader}\" only, and {} is checked with \"{kind}\"; remove `{key}`, or set check = \"{reader}\"",
                        owner.this(),
                        reader = reader.name(),
                        kind = kind.name(),
                    ),
                );
            }
        }
    }
    let expect_written = own.expect.is_some()
        || defaults.expect.is_some()
        || own.is_broken("expect")
        || defaults.is_broken("expect");
    // Reported where `check = "send-expect"` is written: a table that inherits the kind
    // from [defaults] inherits the error too, and [defaults] reports it once.
    if kind == CheckKind::SendExpect && !expect_written {
        if let Some(check) = &own.kind {
            report.error(
                source,
                check.at,
                format!(
                    "check = \"send-expect\" needs `expect`, the regex the reply must match; add it to {}, e.g. {}",
                    owner.this(),
                    example("expect")
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Option<Written<Duration>> {
        Some(Written {
            value: Duration::from_secs(n),
            at: 0,
        })
    }

    #[test]
    fn down_interval_follows_the_effective_interval() {
        let mut defaults = Settings {
            interval: secs(5),
            ..Settings::default()
        };
        let own = Settings {
            interval: secs(7),
            ..Settings::default()
        };
        assert_eq!(resolve(&[&defaults]).down_interval, Duration::from_secs(5));
        let plan = resolve(&[&defaults, &own]);
        assert_eq!(plan.down_interval, Duration::from_secs(7));
        defaults.down_interval = secs(1);
        let plan = resolve(&[&defaults, &own]);
        assert_eq!(plan.down_interval, Duration::from_secs(1));
    }
}
