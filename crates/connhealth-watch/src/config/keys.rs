//! The keys each part of the config takes, and the messages for a key that is not one of
//! them: which keys are allowed there, the closest one when it looks like a typo, and the
//! right section when it belongs elsewhere.

use super::kinds;

/// The settings every kind reads: with the kinds' own ([`kinds::keys`]), the keys of
/// `[defaults]`, and of every target, module and `[[file_sd]]` block.
const COMMON_SETTINGS: [&str; 8] = [
    "check",
    "interval",
    "fast_interval",
    "down_interval",
    "timeout",
    "rise",
    "fall",
    "jitter",
];

/// Every check setting: the common ones, then each kind's, in the order the docs list
/// them.
pub(crate) fn settings() -> impl Iterator<Item = &'static str> + Clone {
    COMMON_SETTINGS
        .into_iter()
        .chain(kinds::keys().map(|key| key.name))
}

/// The keys of a target besides the settings: `url` for `check = "http"`, `address` for
/// the others.
const TARGET_KEYS: [&str; 4] = ["name", "address", "url", "labels"];

/// The keys of a `[[file_sd]]` block besides the settings.
const FILE_SD_KEYS: [&str; 2] = ["files", "labels"];

/// The top-level sections, and `blackbox_config`.
const ROOT_KEYS: [&str; 8] = [
    "defaults",
    "targets",
    "modules",
    "file_sd",
    "probe",
    "alerts",
    "maintenance",
    "blackbox_config",
];

/// The keys of `[probe]`.
const PROBE_KEYS: [&str; 2] = ["allow", "max_concurrent"];

/// The keys of `[alerts]`.
const ALERTS_KEYS: [&str; 2] = ["webhook", "alertmanager"];

/// The keys of one `[[alerts.webhook]]`.
const WEBHOOK_KEYS: [&str; 4] = ["url", "for", "headers", "name"];

/// The keys of `[alerts.alertmanager]`.
const ALERTMANAGER_KEYS: [&str; 3] = ["url", "for", "name"];

/// The keys of one `[[maintenance]]` window.
const MAINTENANCE_KEYS: [&str; 5] = ["start", "duration", "days", "match", "name"];

/// The keys of one group in a file_sd JSON file.
const GROUP_KEYS: [&str; 2] = ["targets", "labels"];

/// A place in the config (or in a file_sd file) that has a fixed set of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// The top level of the config.
    Root,
    /// `[defaults]`.
    Defaults,
    /// One `[[targets]]`.
    Target,
    /// One `[modules.NAME]`.
    Module,
    /// One `[[file_sd]]`.
    FileSd,
    /// One `{"targets": [..], "labels": {..}}` of a file_sd JSON file.
    FileSdGroup,
    /// `[probe]`.
    Probe,
    /// `[alerts]`.
    Alerts,
    /// One `[[alerts.webhook]]`.
    Webhook,
    /// `[alerts.alertmanager]`.
    Alertmanager,
    /// One `[[maintenance]]`.
    Maintenance,
}

impl Section {
    /// The keys allowed here, in the order the docs list them.
    pub(crate) fn keys(self) -> Vec<&'static str> {
        let own: &[&str] = match self {
            Section::Root => &ROOT_KEYS,
            Section::FileSdGroup => &GROUP_KEYS,
            Section::Defaults | Section::Module => &[],
            Section::Target => &TARGET_KEYS,
            Section::FileSd => &FILE_SD_KEYS,
            Section::Probe => &PROBE_KEYS,
            Section::Alerts => &ALERTS_KEYS,
            Section::Webhook => &WEBHOOK_KEYS,
            Section::Alertmanager => &ALERTMANAGER_KEYS,
            Section::Maintenance => &MAINTENANCE_KEYS,
        };
        let mut keys: Vec<&'static str> = own.to_vec();
        if matches!(
            self,
            Section::Defaults | Section::Target | Section::Module | Section::FileSd
        ) {
            keys.extend(settings());
        }
        keys
    }

    /// How a message says where: "in [defaults]".
    pub(crate) fn place(self) -> &'static str {
        match self {
            Section::Root => "at the top level",
            Section::Defaults => "in [defaults]",
            Section::Target => "in [[targets]]",
            Section::Module => "in a [modules.NAME] table",
            Section::FileSd => "in [[file_sd]]",
            Section::FileSdGroup => "in a file_sd group",
            Section::Probe => "in [probe]",
            Section::Alerts => "in [alerts]",
            Section::Webhook => "in [[alerts.webhook]]",
            Section::Alertmanager => "in [alerts.alertmanager]",
            Section::Maintenance => "in [[maintenance]]",
        }
    }

    /// How a message starts the list of this place's keys.
    fn keys_are(self) -> &'static str {
        match self {
            Section::Root => "The top-level keys are",
            Section::Defaults => "The keys of [defaults] are",
            Section::Target => "The keys of a target are",
            Section::Module => "The keys of a module are",
            Section::FileSd => "The keys of [[file_sd]] are",
            Section::FileSdGroup => "The keys of a group are",
            Section::Probe => "The keys of [probe] are",
            Section::Alerts => "The tables of [alerts] are",
            Section::Webhook => "The keys of [[alerts.webhook]] are",
            Section::Alertmanager => "The keys of [alerts.alertmanager] are",
            Section::Maintenance => "The keys of [[maintenance]] are",
        }
    }

    /// Whether `key` is one of this place's keys.
    pub(crate) fn allows(self, key: &str) -> bool {
        self.keys().contains(&key)
    }
}

/// The message for `key`, which `section` does not take.
pub(crate) fn unknown_key(key: &str, section: Section) -> String {
    let mut message = format!("unknown key `{key}` {}", section.place());
    if let Some(home) = belongs_in(key, section) {
        message.push_str(&format!(": `{key}` belongs {home}."));
    } else if let Some(near) = closest(key, section.keys()) {
        message.push_str(&format!("; did you mean `{near}`?"));
    } else {
        message.push('.');
    }
    message.push_str(&format!(
        " {}: {}",
        section.keys_are(),
        section.keys().join(", ")
    ));
    message
}

/// Where a key that is valid elsewhere in the config goes.
fn belongs_in(key: &str, section: Section) -> Option<&'static str> {
    if matches!(
        section,
        Section::FileSdGroup
            | Section::Alerts
            | Section::Webhook
            | Section::Alertmanager
            | Section::Maintenance
    ) {
        return None;
    }
    if PROBE_KEYS.contains(&key) && section != Section::Probe {
        return Some("in [probe]");
    }
    let home = if TARGET_KEYS.contains(&key) {
        "in a [[targets]] table"
    } else if FILE_SD_KEYS.contains(&key) {
        "in a [[file_sd]] table"
    } else if key == "blackbox_config" {
        "at the top level, above the first [section]"
    } else if ROOT_KEYS.contains(&key) {
        "at the top level, as its own section"
    } else if settings().any(|setting| setting == key) {
        "in [defaults], or in a [[targets]], [modules.NAME] or [[file_sd]] table"
    } else {
        return None;
    };
    Some(home)
}

/// The candidate nearest to `word`, if it is near enough to be a typo of it: one edit
/// for short words, two for longer ones; `-` and `_` and case are not told apart.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let normal = |s: &str| s.to_lowercase().replace('-', "_");
    let word_normal = normal(word);
    let limit = if word.chars().count() <= 4 { 1 } else { 2 };
    candidates
        .into_iter()
        .map(|candidate| {
            let distance = strsim::levenshtein(&word_normal, &normal(candidate));
            (distance, candidate)
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// An example of `key` written right, for a message that says what to write.
pub(crate) fn example(key: &str) -> &'static str {
    match key {
        "check" => "check = \"half-open\"",
        "interval" => "interval = \"2s\"",
        "fast_interval" => "fast_interval = \"500ms\"",
        "down_interval" => "down_interval = \"2s\"",
        "timeout" => "timeout = \"1s\"",
        "rise" => "rise = 2",
        "fall" => "fall = 3",
        "jitter" => "jitter = 0.1",
        "name" => "name = \"cache-a\"",
        "address" => "address = \"127.0.0.1:6379\"",
        "url" => "url = \"https://api.internal:8443/healthz\"",
        "labels" => "labels = { service = \"cache\" }",
        "files" => "files = [\"targets/*.json\"]",
        "defaults" => "[defaults] with interval = \"2s\" below it",
        "targets" => "[[targets]] (two brackets) before each target's keys",
        "modules" => "[modules.NAME] before each module's keys",
        "file_sd" => "[[file_sd]] (two brackets) with files = [\"targets/*.json\"] below it",
        "blackbox_config" => "blackbox_config = \"blackbox.yml\"",
        "probe" => "[probe] with allow = [\"127.0.0.0/8\", \"::1/128\"] below it",
        "allow" => "allow = [\"127.0.0.0/8\", \"::1/128\", \"10.1.0.0/16\"]",
        "max_concurrent" => "max_concurrent = 256",
        "alerts" => "[[alerts.webhook]] with url = \"https://hooks.example/connhealth\" below it",
        "maintenance" => "[[maintenance]] with start = \"02:00\" and duration = \"1h\" below it",
        _ => kinds::key(key).map_or("", |key| key.example),
    }
}

/// What a key's value is written as, for a message about a value TOML could not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Digits: `rise = 2`.
    Integer,
    /// A number, a fraction allowed: `jitter = 0.1`.
    Number,
    /// A quoted humantime string: `interval = "2s"`.
    Duration,
    /// A quoted string: `check = "hold"`.
    String,
    /// `true` or `false`.
    Boolean,
}

/// How the value of the setting or target key `key` is written; `None` for sections,
/// tables, arrays and keys the config does not take.
pub(crate) fn written(key: &str) -> Option<Written> {
    Some(match key {
        "rise" | "fall" => Written::Integer,
        "jitter" => Written::Number,
        "interval" | "fast_interval" | "down_interval" | "timeout" => Written::Duration,
        "check" | "name" | "address" | "url" | "blackbox_config" => Written::String,
        _ => return kinds::key(key)?.written,
    })
}

/// The message for `key` holding a value of the wrong type.
pub(crate) fn wrong_type(key: &str, expected: &str, found: &str) -> String {
    let example = example(key);
    if example.is_empty() {
        format!("`{key}` must be {expected}, not {found}")
    } else {
        format!("`{key}` must be {expected}, not {found}; write e.g. {example}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_key() {
        let settings = settings();
        assert_eq!(closest("intervall", settings.clone()), Some("interval"));
        assert_eq!(
            closest("fast-interval", settings.clone()),
            Some("fast_interval")
        );
        assert_eq!(closest("Timeout", settings.clone()), Some("timeout"));
        assert_eq!(closest("servername", settings.clone()), Some("server_name"));
        assert_eq!(closest("colour", settings), None);
    }

    #[test]
    fn a_key_from_elsewhere_says_where_it_goes() {
        let message = unknown_key("labels", Section::Defaults);
        assert!(message.contains("in a [[targets]] table"), "{message}");
        let message = unknown_key("intervl", Section::Target);
        assert!(message.contains("did you mean `interval`?"), "{message}");
        assert!(
            message.contains("name, address, url, labels, check"),
            "{message}"
        );
    }

    #[test]
    fn every_setting_says_how_it_is_written() {
        for key in settings().chain(["name", "address", "url"]) {
            // A table or an array is written as itself, with no quoting to get wrong.
            if !matches!(key, "headers" | "valid_status") {
                assert!(written(key).is_some(), "{key}");
            }
        }
        assert_eq!(written("labels"), None);
    }

    #[test]
    fn every_key_has_an_example() {
        for section in [Section::Root, Section::Target, Section::FileSd] {
            for key in section.keys() {
                assert!(!example(key).is_empty(), "{key}");
            }
        }
    }
}
