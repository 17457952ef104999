//! The check settings of one table (`[defaults]`, a target, a module or a `[[file_sd]]`
//! block): each key's value checked (by [`super::values`]) and kept with where it was
//! written, then layered (built-in ← `[defaults]` ← the table) into a [`CheckPlan`], and
//! the rules that tie settings to the check kind.

use std::path::Path;
use std::time::Duration;

use super::keys::{self, example};
use super::kinds::{self, KindSettings, Layers};
use super::plan::{CheckKind, CheckPlan};
use super::raw::Entry;
use super::span::{Report, Source};
use super::values::{count, duration, jitter, kind};

/// A value as written: the value, and where it is.
#[derive(Debug, Clone)]
pub(crate) struct Written<T> {
    /// The checked value.
    pub(crate) value: T,
    /// Where the value starts.
    pub(crate) at: usize,
}

/// The settings one table sets, each field for the key of its name (`kind` for
/// `check`), and the kinds' own ([`kinds`]); unset ones are inherited.
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
    /// The settings of the check kinds.
    pub(crate) of_kinds: KindSettings,
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
        let Some(key) = keys::settings().find(|k| *k == entry.key) else {
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
            _ => match kinds::key(key) {
                Some(of_kind) => (of_kind.read)(node, base).map(|value| {
                    let at = node.at;
                    self.of_kinds.set(key, Written { value, at });
                }),
                None => Ok(()),
            },
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
/// it. The kind's own settings are read by the kind ([`kinds::build`]), so a plan holds
/// the settings of its kind and no other.
pub(crate) fn resolve(layers: &[&Settings]) -> CheckPlan {
    let mut plan = CheckPlan::default();
    let mut kind = CheckKind::HalfOpen;
    let mut down_interval = None;
    for layer in layers {
        set(&mut kind, &layer.kind);
        set(&mut plan.interval, &layer.interval);
        set(&mut plan.fast_interval, &layer.fast_interval);
        set(&mut plan.timeout, &layer.timeout);
        set(&mut plan.rise, &layer.rise);
        set(&mut plan.fall, &layer.fall);
        set(&mut plan.jitter, &layer.jitter);
        set_some(&mut down_interval, &layer.down_interval);
    }
    plan.down_interval = down_interval.unwrap_or(plan.interval);
    let of_kinds: Vec<&KindSettings> = layers.iter().map(|layer| &layer.of_kinds).collect();
    plan.check = kinds::build(kind, Layers(&of_kinds));
    plan
}

/// Warns when `plan`, the plan of a table whose own settings are `own`, has a timeout
/// longer than its interval, at the table's `timeout` (or `interval`) if it sets one: a
/// table that inherits both is warned about where they are written. Such a check can
/// still run when the next is due; the next then starts when it ends, and counts late.
pub(crate) fn check_timeout(
    own: &Settings,
    plan: &CheckPlan,
    source: &Source<'_>,
    report: &mut Report,
) {
    if plan.timeout <= plan.interval {
        return;
    }
    let Some(at) = own.timeout.as_ref().or(own.interval.as_ref()).map(|w| w.at) else {
        return;
    };
    report.warn(
        source,
        at,
        format!(
            "timeout {} is longer than interval {}: a check can still be running when the next is due, which then starts late (connhealth_checks_late_total); make timeout at most the interval",
            crate::human::Rounded(plan.timeout),
            crate::human::Rounded(plan.interval),
        ),
    );
}

/// The kind a table checks with: its own `check`, else `[defaults]`', else half-open.
/// `None` when either `check` was written wrong (which kind was meant is unknown).
pub(crate) fn effective_kind(own: &Settings, defaults: &Settings) -> Option<CheckKind> {
    if own.is_broken("check") || defaults.is_broken("check") {
        return None;
    }
    Some(
        own.kind
            .as_ref()
            .or(defaults.kind.as_ref())
            .map_or(CheckKind::HalfOpen, |w| w.value),
    )
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
    let Some(kind) = effective_kind(own, defaults) else {
        return; // Which kind was meant is unknown, and already reported.
    };
    if owner != Owner::Defaults {
        for &(key, key_at) in &own.written {
            let Some(readers) = kinds::key(key).map(|k| k.readers) else {
                continue;
            };
            if !readers.contains(&kind) {
                let names: Vec<String> = readers
                    .iter()
                    .map(|reader| format!("check = \"{}\"", reader.name()))
                    .collect();
                let only = if names.len() == 1 { " only" } else { "" };
                report.error(
                    source,
                    key_at,
                    format!(
                        "`{key}` is read by {}{only}, and {} is checked with \"{kind}\"; remove `{key}`, or set {}",
                        names.join(" and "),
                        owner.this(),
                        names[0],
                        kind = kind.name(),
                    ),
                );
            }
        }
    }
    // Reported where `check = "..."` is written: a table that inherits the kind from
    // [defaults] inherits the error too, and [defaults] reports it once.
    let Some(check) = &own.kind else {
        return;
    };
    for &(key, what) in kinds::required(kind) {
        let written = own.of_kinds.get(key).is_some()
            || defaults.of_kinds.get(key).is_some()
            || own.is_broken(key)
            || defaults.is_broken(key);
        if !written {
            report.error(
                source,
                check.at,
                format!(
                    "check = \"{}\" needs `{key}`, {what}; add it to {}, e.g. {}",
                    kind.name(),
                    owner.this(),
                    example(key)
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
