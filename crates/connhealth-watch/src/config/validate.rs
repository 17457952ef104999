//! The walk over the TOML tree: each section's keys and types checked, each problem
//! reported where it is written, and what is valid turned into plans. file_sd files and
//! name uniqueness are the caller's (they span several files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::alerts::{self, AlertsPlan, MaintenancePlan};
use super::file_sd::{glob_problem, parse_address, parse_url};
use super::keys::{self, Section};
use super::labels;
use super::plan::{
    parse_network, AllowList, CheckKind, CheckPlan, Endpoint, Module, ProbePlan, TargetPlan,
    BUILT_IN_MODULES,
};
use super::raw::{Entry, Node, Value};
use super::settings::{self, Owner, Settings};
use super::span::{Report, Source};

/// What the TOML says, checked: everything but file_sd's files and name uniqueness.
#[derive(Debug, Default)]
pub(crate) struct Document {
    /// `[defaults]` as written.
    pub(crate) defaults: Settings,
    /// The `[[targets]]` that are valid, in file order.
    pub(crate) targets: Vec<TomlTarget>,
    /// `[modules.NAME]`.
    pub(crate) modules: BTreeMap<String, Module>,
    /// Where each `[modules.NAME]`'s name is written.
    pub(crate) module_at: BTreeMap<String, usize>,
    /// `blackbox_config`, when set.
    pub(crate) blackbox_config: Option<BlackboxConfig>,
    /// `[probe]`.
    pub(crate) probe: ProbePlan,
    /// `[alerts]`.
    pub(crate) alerts: AlertsPlan,
    /// `[[maintenance]]`.
    pub(crate) maintenance: Vec<MaintenancePlan>,
    /// The `[[file_sd]]` blocks.
    pub(crate) file_sd: Vec<FileSdBlock>,
}

/// `blackbox_config = "PATH"`.
#[derive(Debug)]
pub(crate) struct BlackboxConfig {
    /// As written.
    pub(crate) written: String,
    /// Joined to the config's folder.
    pub(crate) path: PathBuf,
    /// Where the value is.
    pub(crate) at: usize,
}

/// A valid `[[targets]]` table.
#[derive(Debug)]
pub(crate) struct TomlTarget {
    /// The plan.
    pub(crate) plan: TargetPlan,
    /// Where the name is: its `name` value, or its `address` when it has no name.
    pub(crate) name_at: usize,
    /// Whether `name` is written (or the name is the address).
    pub(crate) named: bool,
}

/// A `[[file_sd]]` block.
#[derive(Debug)]
pub(crate) struct FileSdBlock {
    /// The globs as written (the valid ones).
    pub(crate) files: Vec<String>,
    /// `labels`, for every target of its files.
    pub(crate) labels: BTreeMap<String, String>,
    /// The check of its targets.
    pub(crate) check: CheckPlan,
}

/// What the walk needs at every step: where relative paths start, and where errors go.
struct Walk<'a, 'r> {
    base: &'a Path,
    source: Source<'a>,
    report: &'r mut Report,
}

impl<'a> Walk<'a, '_> {
    /// The reader of `[alerts]` and `[[maintenance]]`, reporting where this walk does.
    fn reader(&mut self) -> alerts::Reader<'a, '_> {
        alerts::Reader {
            source: self.source,
            report: self.report,
        }
    }

    fn error(&mut self, at: usize, message: impl Into<String>) {
        self.report.error(&self.source, at, message);
    }

    fn wrong_type(&mut self, key: &str, expected: &str, node: &Node) {
        let message = keys::wrong_type(key, expected, node.value.type_name());
        self.error(node.at, message);
    }

    fn unknown(&mut self, entry: &Entry, section: Section) {
        self.error(entry.key_at, keys::unknown_key(&entry.key, section));
    }

    /// Reads a check setting; reports `entry` as unknown in `section` if it is not one.
    fn setting(&mut self, settings: &mut Settings, entry: &Entry, section: Section) {
        if !settings.read(entry, self.base, &self.source, self.report) {
            self.unknown(entry, section);
        }
    }
}

/// Checks the config `root` (relative paths are relative to `base`), reporting every
/// problem in `source`.
pub(crate) fn document(
    root: &Node,
    base: &Path,
    source: Source<'_>,
    report: &mut Report,
) -> Document {
    let mut walk = Walk {
        base,
        source,
        report,
    };
    let mut document = Document::default();
    let Value::Table(sections) = &root.value else {
        return document;
    };
    // [defaults] first: every other table is layered on it, wherever it is written.
    for entry in sections.iter().filter(|e| e.key == "defaults") {
        document.defaults = defaults(&mut walk, &entry.value);
    }
    let defaults_plan = &document.defaults;
    for entry in sections {
        match entry.key.as_str() {
            "defaults" => {}
            "targets" => {
                for table in tables(&mut walk, "targets", &entry.value) {
                    if let Some(target) = target(&mut walk, table, defaults_plan) {
                        document.targets.push(target);
                    }
                }
            }
            "modules" => {
                (document.modules, document.module_at) =
                    modules(&mut walk, &entry.value, defaults_plan);
            }
            "blackbox_config" => {
                document.blackbox_config = blackbox_config(&mut walk, &entry.value)
            }
            "probe" => document.probe = probe(&mut walk, &entry.value),
            "alerts" => document.alerts = alerts::alerts(&mut walk.reader(), &entry.value),
            "maintenance" => {
                document.maintenance = alerts::maintenance(&mut walk.reader(), &entry.value)
            }
            "file_sd" => {
                for table in tables(&mut walk, "file_sd", &entry.value) {
                    document
                        .file_sd
                        .push(file_sd(&mut walk, table, defaults_plan));
                }
            }
            _ => walk.unknown(entry, Section::Root),
        }
    }
    document
}

/// The tables of an array of tables (`[[key]]`), reporting anything else.
fn tables<'n>(walk: &mut Walk<'_, '_>, key: &str, node: &'n Node) -> Vec<(&'n Node, &'n [Entry])> {
    let Value::Array(items) = &node.value else {
        walk.wrong_type(key, "an array of tables", node);
        return Vec::new();
    };
    let mut tables = Vec::new();
    for item in items {
        match &item.value {
            Value::Table(entries) => tables.push((item, entries.as_slice())),
            other => walk.error(
                item.at,
                format!(
                    "each entry of `{key}` must be a table, not {}; write e.g. {}",
                    other.type_name(),
                    keys::example(key)
                ),
            ),
        }
    }
    tables
}

fn defaults(walk: &mut Walk<'_, '_>, node: &Node) -> Settings {
    let mut settings = Settings::default();
    let Value::Table(entries) = &node.value else {
        walk.wrong_type("defaults", "a table", node);
        return settings;
    };
    for entry in entries {
        walk.setting(&mut settings, entry, Section::Defaults);
    }
    settings::check_kind(
        Owner::Defaults,
        &settings,
        &Settings::default(),
        &walk.source,
        walk.report,
    );
    settings
}

fn target(
    walk: &mut Walk<'_, '_>,
    (node, entries): (&Node, &[Entry]),
    defaults: &Settings,
) -> Option<TomlTarget> {
    let mut settings = Settings::default();
    let mut name: Option<(String, usize)> = None;
    // The address as written, where its value is, and it parsed.
    let mut address: Option<(String, usize, Endpoint)> = None;
    // The url as written, where its value is, where its key is, and it parsed.
    let mut url: Option<(String, usize, usize, http::Uri)> = None;
    let mut labels = BTreeMap::new();
    // A bad name or address is reported; the target is then left out of the plan (and
    // of the duplicate check), and a missing address is not reported on top.
    let mut broken = false;
    for entry in entries {
        let value = &entry.value;
        match entry.key.as_str() {
            "name" => match &value.value {
                Value::String(s) if s.is_empty() => {
                    broken = true;
                    walk.error(
                        value.at,
                        format!(
                            "`name` is empty; write a name, e.g. {}, or remove it to name the target by its address",
                            keys::example("name")
                        ),
                    );
                }
                Value::String(s) => name = Some((s.clone(), value.at)),
                _ => {
                    broken = true;
                    walk.wrong_type("name", "a string", value);
                }
            },
            "address" => match &value.value {
                Value::String(s) => match parse_address(s) {
                    Err(problem) => {
                        broken = true;
                        walk.error(value.at, problem);
                    }
                    Ok(target) => address = Some((s.clone(), value.at, Endpoint::Tcp(target))),
                },
                _ => {
                    broken = true;
                    walk.wrong_type("address", "a \"host:port\" string", value);
                }
            },
            "url" => match &value.value {
                Value::String(s) => match parse_url(s) {
                    Err(problem) => {
                        broken = true;
                        walk.error(value.at, problem);
                    }
                    Ok(parsed) => url = Some((s.clone(), value.at, entry.key_at, parsed)),
                },
                _ => {
                    broken = true;
                    walk.wrong_type("url", "a \"http://host/path\" string", value);
                }
            },
            "labels" => labels = own_labels(walk, value),
            _ => walk.setting(&mut settings, entry, Section::Target),
        }
    }
    settings::check_kind(
        Owner::Target,
        &settings,
        defaults,
        &walk.source,
        walk.report,
    );
    // An http target is aimed at its url, every other kind at its address.
    let http = settings::effective_kind(&settings, defaults) == Some(CheckKind::Http);
    match (&url, &address) {
        (Some((_, _, key_at, _)), _) if !http => {
            broken = true;
            walk.error(
                *key_at,
                "`url` is for check = \"http\"; write the address as address = \"host:port\", or set check = \"http\"",
            );
        }
        (Some(_), Some((_, address_at, _))) => {
            broken = true;
            walk.error(
                *address_at,
                "an http target has a `url`, not an `address`; remove `address`",
            );
        }
        _ => {}
    }
    if broken {
        return None;
    }
    let address = match (address, url) {
        (_, Some((url, url_at, _, parsed))) => (url, url_at, Endpoint::Url(parsed)),
        (Some(address), None) if !http => address,
        (Some((_, address_at, _)), None) => {
            walk.error(
                address_at,
                format!(
                    "an http target has a `url`, not an `address`; write e.g. {}",
                    keys::example("url")
                ),
            );
            return None;
        }
        (None, None) => {
            let key = if http { "url" } else { "address" };
            walk.error(
                node.at,
                format!(
                    "this target has no `{key}`; add one, e.g. {}",
                    keys::example(key)
                ),
            );
            return None;
        }
    };
    let (address, address_at, endpoint) = address;
    let check = settings::resolve(&[defaults, &settings]);
    settings::check_timeout(&settings, &check, &walk.source, walk.report);
    let named = name.is_some();
    let (name, name_at) = name.unwrap_or_else(|| (address.clone(), address_at));
    Some(TomlTarget {
        plan: TargetPlan {
            name,
            address,
            endpoint,
            labels,
            check,
        },
        name_at,
        named,
    })
}

/// `labels = { .. }` of a target or a `[[file_sd]]` block: Prometheus label names, not
/// reserved ones, each with a string.
fn own_labels(walk: &mut Walk<'_, '_>, node: &Node) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let Value::Table(entries) = &node.value else {
        walk.wrong_type("labels", "a table of strings", node);
        return labels;
    };
    for entry in entries {
        if let Some(problem) = labels::problem(&entry.key) {
            walk.error(entry.key_at, problem);
            continue;
        }
        let quoted = match &entry.value.value {
            Value::String(value) => {
                labels.insert(entry.key.clone(), value.clone());
                continue;
            }
            Value::Integer(i) => format!("\"{i}\""),
            Value::Float(f) => format!("\"{f}\""),
            Value::Boolean(b) => format!("\"{b}\""),
            _ => "\"cache\"".to_owned(),
        };
        walk.error(
            entry.value.at,
            format!(
                "label `{key}` must have a string value, not {}; quote it, e.g. {key} = {quoted}",
                entry.value.value.type_name(),
                key = entry.key,
            ),
        );
    }
    labels
}

/// `[probe]`: `allow`, a list of networks; `max_concurrent`, at least 1.
fn probe(walk: &mut Walk<'_, '_>, node: &Node) -> ProbePlan {
    let mut plan = ProbePlan::default();
    let Value::Table(entries) = &node.value else {
        walk.wrong_type("probe", "a table: [probe] with its keys below it", node);
        return plan;
    };
    for entry in entries {
        match entry.key.as_str() {
            "allow" => {
                let Value::Array(items) = &entry.value.value else {
                    walk.wrong_type("allow", "an array of networks", &entry.value);
                    continue;
                };
                let mut networks = Vec::new();
                for item in items {
                    match &item.value {
                        Value::String(written) => match parse_network(written) {
                            Ok(net) => networks.push(net),
                            Err(why) => walk.error(item.at, why),
                        },
                        other => walk.error(
                            item.at,
                            format!(
                                "each entry of `allow` must be a string, not {}; write e.g. {}",
                                other.type_name(),
                                keys::example("allow")
                            ),
                        ),
                    }
                }
                if items.is_empty() {
                    walk.error(
                        entry.value.at,
                        "`allow` is empty, which would refuse every /probe; list the networks \
                         /probe may reach, e.g. allow = [\"127.0.0.0/8\"], or remove `allow` to \
                         allow any",
                    );
                }
                plan.allow = Some(AllowList(networks));
            }
            "max_concurrent" => match &entry.value.value {
                Value::Integer(n) if *n >= 1 => {
                    plan.max_concurrent = usize::try_from(*n).unwrap_or(usize::MAX)
                }
                Value::Integer(n) => walk.error(
                    entry.value.at,
                    format!(
                        "max_concurrent = {n} would refuse every /probe; write at least 1, e.g. {}",
                        keys::example("max_concurrent")
                    ),
                ),
                _ => walk.wrong_type("max_concurrent", "a whole number", &entry.value),
            },
            _ => walk.unknown(entry, Section::Probe),
        }
    }
    plan
}

/// `blackbox_config`: a path, relative to the config's folder.
fn blackbox_config(walk: &mut Walk<'_, '_>, node: &Node) -> Option<BlackboxConfig> {
    match &node.value {
        Value::String(written) if written.is_empty() => {
            walk.error(
                node.at,
                format!(
                    "`blackbox_config` is empty; write the path of blackbox_exporter's module file, e.g. {}, or remove it",
                    keys::example("blackbox_config")
                ),
            );
            None
        }
        Value::String(written) => Some(BlackboxConfig {
            written: written.clone(),
            path: walk.base.join(written),
            at: node.at,
        }),
        _ => {
            walk.wrong_type("blackbox_config", "a string (a path)", node);
            None
        }
    }
}

/// `[modules.NAME]`: the valid modules, and where each name is written.
fn modules(
    walk: &mut Walk<'_, '_>,
    node: &Node,
    defaults: &Settings,
) -> (BTreeMap<String, Module>, BTreeMap<String, usize>) {
    let mut modules = BTreeMap::new();
    let mut module_at = BTreeMap::new();
    let Value::Table(entries) = &node.value else {
        walk.wrong_type("modules", "a table of modules", node);
        return (modules, module_at);
    };
    for entry in entries {
        let name = entry.key.as_str();
        let Value::Table(keys) = &entry.value.value else {
            walk.error(
                entry.value.at,
                format!(
                    "module `{name}` must be a table, not {}; write [modules.{name}] and its settings below it, e.g. check = \"connect\"",
                    entry.value.value.type_name()
                ),
            );
            continue;
        };
        let mut name_ok = true;
        if BUILT_IN_MODULES.contains(&name) {
            name_ok = false;
            walk.error(
                entry.key_at,
                format!(
                    "`{name}` is a built-in /probe module ({} are built in); name this one differently, e.g. [modules.my_{name}]",
                    BUILT_IN_MODULES.join(", ")
                ),
            );
        } else if name.is_empty() {
            name_ok = false;
            walk.error(
                entry.key_at,
                "a module name cannot be empty (it is /probe's module=NAME); write e.g. [modules.redis_ping]",
            );
        }
        let mut settings = Settings::default();
        for entry in keys {
            walk.setting(&mut settings, entry, Section::Module);
        }
        settings::check_kind(
            Owner::Module,
            &settings,
            defaults,
            &walk.source,
            walk.report,
        );
        if name_ok {
            let plan = settings::resolve(&[defaults, &settings]);
            settings::check_timeout(&settings, &plan, &walk.source, walk.report);
            // A timeout written here or in [defaults] is the module's; without one, the
            // scrape's decides, as for blackbox.
            let timeout =
                (settings.timeout.is_some() || defaults.timeout.is_some()).then_some(plan.timeout);
            modules.insert(
                name.to_owned(),
                Module {
                    check: plan.check,
                    timeout,
                },
            );
            module_at.insert(name.to_owned(), entry.key_at);
        }
    }
    (modules, module_at)
}

fn file_sd(
    walk: &mut Walk<'_, '_>,
    (node, entries): (&Node, &[Entry]),
    defaults: &Settings,
) -> FileSdBlock {
    let mut settings = Settings::default();
    let mut files = None;
    let mut labels = BTreeMap::new();
    for entry in entries {
        match entry.key.as_str() {
            "files" => files = Some(globs(walk, &entry.value)),
            "labels" => labels = own_labels(walk, &entry.value),
            _ => walk.setting(&mut settings, entry, Section::FileSd),
        }
    }
    settings::check_kind(
        Owner::FileSd,
        &settings,
        defaults,
        &walk.source,
        walk.report,
    );
    if files.is_none() {
        walk.error(
            node.at,
            format!(
                "this [[file_sd]] block has no `files`; add the globs of its JSON files, e.g. {}",
                keys::example("files")
            ),
        );
    }
    let check = settings::resolve(&[defaults, &settings]);
    settings::check_timeout(&settings, &check, &walk.source, walk.report);
    FileSdBlock {
        files: files.unwrap_or_default(),
        labels,
        check,
    }
}

fn globs(walk: &mut Walk<'_, '_>, node: &Node) -> Vec<String> {
    let Value::Array(items) = &node.value else {
        walk.wrong_type("files", "an array of glob strings", node);
        return Vec::new();
    };
    let mut globs = Vec::new();
    for item in items {
        match &item.value {
            Value::String(glob) => match glob_problem(glob) {
                Some(problem) => walk.error(item.at, problem),
                None => globs.push(glob.clone()),
            },
            other => walk.error(
                item.at,
                format!(
                    "each entry of `files` must be a glob string, not {}; write e.g. {}",
                    other.type_name(),
                    keys::example("files")
                ),
            ),
        }
    }
    globs
}
