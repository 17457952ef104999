//! The check kinds' own settings. Each kind that has settings has one file here: its
//! keys, how each key's value is read, and how the kind's plan is built from them.
//! [`build`] is the one place that turns a kind's name into its plan.
//!
//! A key belongs to the kinds that read it ([`KindKey::readers`]): `expect` to
//! `send-expect` and `http`, the tls keys to `tls` and `http`. A table that sets a key its
//! kind does not read is an error ([`super::settings::check_kind`]); `[defaults]` may set
//! any, for the targets of the kinds that read them.

use std::path::{Path, PathBuf};

use super::keys::Written as WrittenAs;
use super::plan::{Check, CheckKind, Pattern, StatusRange};
use super::raw::Node;
use super::settings::Written;

pub(crate) mod http;
pub(crate) mod send_expect;
pub(crate) mod tls;

/// A setting of one or more kinds.
#[derive(Debug)]
pub(crate) struct KindKey {
    /// The key in the TOML.
    pub(crate) name: &'static str,
    /// The kinds that read it.
    pub(crate) readers: &'static [CheckKind],
    /// Reads its value (relative paths are relative to the folder given).
    pub(crate) read: fn(&Node, &Path) -> Result<KindValue, String>,
    /// How it is written, for messages about a value TOML could not read.
    pub(crate) written: Option<WrittenAs>,
    /// An example of it written right.
    pub(crate) example: &'static str,
}

/// Every kind's keys, each once, in the order the docs list them.
pub(crate) fn keys() -> impl Iterator<Item = &'static KindKey> + Clone {
    send_expect::KEYS
        .iter()
        .chain(&tls::KEYS)
        .chain(&http::KEYS)
}

/// The kind key named `name`.
pub(crate) fn key(name: &str) -> Option<&'static KindKey> {
    keys().find(|key| key.name == name)
}

/// A kind setting's value, read.
#[derive(Debug, Clone)]
pub(crate) enum KindValue {
    /// `send`, `quit`, `body`.
    Bytes(Vec<u8>),
    /// `expect`.
    Regex(Pattern),
    /// `ca_file`, joined to the config's folder.
    Path(PathBuf),
    /// `insecure`, `follow_redirects`, `reuse_connection`.
    Bool(bool),
    /// `cert_min_days`.
    Count(u32),
    /// `server_name`.
    Text(String),
    /// `method`.
    Method(::http::Method),
    /// `headers`.
    Headers(Vec<(::http::HeaderName, ::http::HeaderValue)>),
    /// `valid_status`.
    Statuses(Vec<StatusRange>),
}

/// The kind settings one table sets, in the order written.
#[derive(Debug, Clone, Default)]
pub(crate) struct KindSettings {
    values: Vec<(&'static str, Written<KindValue>)>,
}

impl KindSettings {
    /// Sets `key` to `value` (a later one wins).
    pub(crate) fn set(&mut self, key: &'static str, value: Written<KindValue>) {
        self.values.retain(|(name, _)| *name != key);
        self.values.push((key, value));
    }

    /// The value of `key`, when this table sets it.
    pub(crate) fn get(&self, key: &str) -> Option<&Written<KindValue>> {
        self.values
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value)
    }
}

/// The layers a plan is built from, lowest first (`[defaults]`, then the table's own):
/// a key's value is the last layer's that sets it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layers<'a>(pub(crate) &'a [&'a KindSettings]);

impl Layers<'_> {
    fn get(&self, key: &str) -> Option<&KindValue> {
        self.0
            .iter()
            .rev()
            .find_map(|layer| layer.get(key))
            .map(|written| &written.value)
    }

    fn bytes(&self, key: &str) -> Option<Vec<u8>> {
        match self.get(key)? {
            KindValue::Bytes(bytes) => Some(bytes.clone()),
            _ => None,
        }
    }

    fn regex(&self, key: &str) -> Option<Pattern> {
        match self.get(key)? {
            KindValue::Regex(pattern) => Some(pattern.clone()),
            _ => None,
        }
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        match self.get(key)? {
            KindValue::Path(path) => Some(path.clone()),
            _ => None,
        }
    }

    fn boolean(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            KindValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn count(&self, key: &str) -> Option<u32> {
        match self.get(key)? {
            KindValue::Count(n) => Some(*n),
            _ => None,
        }
    }

    fn text(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            KindValue::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

/// The plan of `kind`, its settings taken from `layers`: the one match on the kind.
pub(crate) fn build(kind: CheckKind, layers: Layers<'_>) -> Check {
    match kind {
        CheckKind::HalfOpen => Check::HalfOpen,
        CheckKind::Connect => Check::Connect,
        CheckKind::Hold => Check::Hold,
        CheckKind::Tls => Check::Tls(tls::build(layers)),
        CheckKind::SendExpect => Check::SendExpect(send_expect::build(layers)),
        CheckKind::Http => Check::Http(Box::new(http::build(layers))),
        // Only a blackbox module file has it (a config cannot name it): its defaults.
        CheckKind::Tcp => Check::Tcp(Box::default()),
    }
}

/// The keys `kind` cannot do without, each with what it is for, for the error when a
/// table of that kind leaves one out.
pub(crate) fn required(kind: CheckKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        CheckKind::SendExpect => &send_expect::REQUIRED,
        _ => &[],
    }
}
