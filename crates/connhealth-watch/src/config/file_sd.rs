//! Prometheus file_sd: the files a `[[file_sd]]` block's globs match, and the targets of
//! each, read from `[{"targets": ["host:port", ..], "labels": {..}}, ..]`.
//!
//! Only JSON is read. Prometheus also takes YAML; a `.yml` or `.yaml` file is refused with
//! a message saying so, rather than misread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::json::{self, JsonNode, JsonValue};
use super::keys::{self, Section};
use super::labels;
use super::plan::Endpoint;
use super::span::{self, Report, Source};

/// The files that `globs` match now, sorted and each once. A relative glob is relative
/// to the folder of `config`; a glob that is not valid matches nothing (the config's
/// checks report it). Only files are listed, not folders.
pub(crate) fn paths(config: &Path, globs: &[String]) -> Vec<PathBuf> {
    let folder = config.parent().unwrap_or(Path::new(""));
    let mut found: Vec<PathBuf> = globs
        .iter()
        .filter_map(|written| glob::glob(&pattern(folder, written)).ok())
        .flat_map(|paths| paths.filter_map(Result::ok))
        .filter(|path| path.is_file())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The glob to expand: `written` under `folder` unless absolute, the folder's own name
/// escaped so that a folder called `[x]` is not read as a pattern.
fn pattern(folder: &Path, written: &str) -> String {
    if Path::new(written).is_absolute() || folder.as_os_str().is_empty() {
        return written.to_owned();
    }
    let folder = glob::Pattern::escape(&folder.to_string_lossy());
    format!("{folder}/{written}")
}

/// What is wrong with a glob as written, if anything.
pub(crate) fn glob_problem(written: &str) -> Option<String> {
    if written.is_empty() {
        return Some(format!(
            "an empty glob matches nothing; write e.g. {}",
            keys::example("files")
        ));
    }
    glob::Pattern::new(written).err().map(|err| {
        format!(
            "{written:?} is not a valid glob ({err}); write e.g. {} (* and ? match within a folder, [..] a set of characters)",
            keys::example("files")
        )
    })
}

/// One file_sd file: its text and the targets it lists.
#[derive(Debug)]
pub(crate) struct SdFile {
    /// The path, as the glob matched it.
    pub(crate) path: PathBuf,
    /// The text (empty when the file could not be read).
    pub(crate) text: String,
    /// Its rank in the load, for the order of errors.
    pub(crate) seq: usize,
    /// Its targets, in the order listed.
    pub(crate) targets: Vec<SdTarget>,
}

impl SdFile {
    /// The file at `path` before its text is read: no text, no targets.
    fn unread(path: &Path, seq: usize) -> SdFile {
        SdFile {
            path: path.to_owned(),
            text: String::new(),
            seq,
            targets: Vec::new(),
        }
    }

    /// The file as a [`Source`] of errors.
    pub(crate) fn source(&self) -> Source<'_> {
        Source {
            path: &self.path,
            text: &self.text,
            seq: self.seq,
        }
    }
}

/// One target of a file_sd file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SdTarget {
    /// `host:port`, checked; also the target's name, unless another target has that
    /// name already (see [`later_name`]).
    pub(crate) address: String,
    /// The group's labels, without the `__` ones.
    pub(crate) labels: BTreeMap<String, String>,
    /// Where the address string starts.
    pub(crate) at: usize,
    /// The address, parsed: `host:port`, or a URL (for a block of http checks).
    pub(crate) endpoint: Endpoint,
    /// The 1-based rank of its group in the file.
    pub(crate) group: usize,
}

/// The name of a file_sd target whose address another target has taken as its name
/// already: `ADDRESS@FILE#GROUP`, FILE relative to the config's folder (`/` between
/// folders on every platform) and GROUP the 1-based rank of the group in it.
///
/// The same address in two groups, files or blocks is two targets, as it is to
/// Prometheus when their labels differ; and a name derived from where it is listed
/// stays the same across reloads while the file is not reordered, so its state is kept.
pub(crate) fn later_name(config: &Path, file: &Path, target: &SdTarget) -> String {
    let folder = config.parent().unwrap_or(Path::new(""));
    let relative = file.strip_prefix(folder).unwrap_or(file);
    let shown: Vec<String> = relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    format!("{}@{}#{}", target.address, shown.join("/"), target.group)
}

/// Reads the file at `path`, reporting every problem in it.
pub(crate) fn read(path: &Path, seq: usize, report: &mut Report) -> SdFile {
    let is_yaml = path
        .extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| ext.eq_ignore_ascii_case("yml") || ext.eq_ignore_ascii_case("yaml"));
    if is_yaml {
        report.whole_file(
            path,
            seq,
            "file_sd files are read as JSON only, not YAML; write this file as JSON, [{\"targets\": [\"host:port\"], \"labels\": {\"name\": \"value\"}}], name it .json, and make the glob match it",
        );
        return SdFile::unread(path, seq);
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) => {
            report.whole_file(
                path,
                seq,
                format!("cannot read this file_sd file ({err}); make it readable, or change the glob so that it does not match it"),
            );
            return SdFile::unread(path, seq);
        }
    };
    parse(path, seq, bytes, report)
}

/// The targets of `bytes`, the contents of the file at `path`, reporting every problem
/// in them. Apart from [`read`] so that the fuzz targets can give it any bytes without
/// a file.
pub(crate) fn parse(path: &Path, seq: usize, bytes: Vec<u8>, report: &mut Report) -> SdFile {
    let mut file = SdFile::unread(path, seq);
    file.text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let valid = err.utf8_error().valid_up_to();
            let bytes = err.into_bytes();
            // The valid prefix is enough to say where the bad byte is.
            let prefix =
                String::from_utf8_lossy(bytes.get(..valid).unwrap_or_default()).into_owned();
            let source = Source {
                path,
                text: &prefix,
                seq,
            };
            report.error(
                &source,
                valid,
                "this file is not UTF-8; file_sd files are JSON text: save it as UTF-8",
            );
            return file;
        }
    };
    let source = Source {
        path,
        text: &file.text,
        seq,
    };
    let root = match json::parse(&file.text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            report.error(&source, 0, "this JSON could not be followed (a bug in connhealth: please report it); file_sd files hold [{\"targets\": [\"host:port\"], \"labels\": {}}]");
            return file;
        }
        Err(err) => {
            let offset = span::offset_of(&file.text, err.line, err.byte_column);
            report.error(
                &source,
                offset,
                format!(
                    "this is not valid JSON: {}; a file_sd file holds [{{\"targets\": [\"host:port\"], \"labels\": {{\"name\": \"value\"}}}}]",
                    err.message
                ),
            );
            return file;
        }
    };
    let targets = groups(&root, &source, report);
    file.targets = targets;
    file
}

fn groups(root: &JsonNode, source: &Source<'_>, report: &mut Report) -> Vec<SdTarget> {
    let JsonValue::Array(groups) = &root.value else {
        report.error(
            source,
            root.at,
            format!(
                "a file_sd file holds a JSON array of groups, not {}; write e.g. [{{\"targets\": [\"10.0.0.1:9100\"], \"labels\": {{\"env\": \"prod\"}}}}]",
                root.value.type_name()
            ),
        );
        return Vec::new();
    };
    let mut targets = Vec::new();
    for (rank, group) in groups.iter().enumerate() {
        targets.extend(self::group(group, rank + 1, source, report));
    }
    targets
}

fn group(group: &JsonNode, rank: usize, source: &Source<'_>, report: &mut Report) -> Vec<SdTarget> {
    let JsonValue::Object(members) = &group.value else {
        report.error(
            source,
            group.at,
            format!(
                "each group of a file_sd file is an object, not {}; write e.g. {{\"targets\": [\"10.0.0.1:9100\"], \"labels\": {{\"env\": \"prod\"}}}}",
                group.value.type_name()
            ),
        );
        return Vec::new();
    };
    let mut addresses: Vec<(String, usize, Endpoint)> = Vec::new();
    let mut labels = BTreeMap::new();
    let mut seen: Vec<&str> = Vec::new();
    for member in members {
        if !Section::FileSdGroup.allows(&member.key) {
            report.error(
                source,
                member.key_at,
                keys::unknown_key(&member.key, Section::FileSdGroup),
            );
            continue;
        }
        if seen.contains(&member.key.as_str()) {
            report.error(
                source,
                member.key_at,
                format!(
                    "\"{}\" appears twice in this group; merge the two into one",
                    member.key
                ),
            );
            continue;
        }
        seen.push(&member.key);
        if member.key == "targets" {
            addresses = group_targets(&member.value, source, report);
        } else {
            labels = group_labels(&member.value, source, report);
        }
    }
    addresses
        .into_iter()
        .map(|(address, at, endpoint)| SdTarget {
            address,
            labels: labels.clone(),
            at,
            endpoint,
            group: rank,
        })
        .collect()
}

fn group_targets(
    node: &JsonNode,
    source: &Source<'_>,
    report: &mut Report,
) -> Vec<(String, usize, Endpoint)> {
    let JsonValue::Array(items) = &node.value else {
        report.error(
            source,
            node.at,
            format!(
                "\"targets\" must be an array of \"host:port\" strings, not {}; write e.g. \"targets\": [\"10.0.0.1:9100\"]",
                node.value.type_name()
            ),
        );
        return Vec::new();
    };
    let mut addresses = Vec::new();
    for item in items {
        let JsonValue::String(address) = &item.value else {
            report.error(
                source,
                item.at,
                format!(
                    "a target must be a \"host:port\" string, not {}; write e.g. \"10.0.0.1:9100\"",
                    item.value.type_name()
                ),
            );
            continue;
        };
        // A URL too, for a block of http checks: the block's kind is checked by the
        // caller, which knows it.
        let endpoint = match parse_address(address) {
            Ok(target) => Endpoint::Tcp(target),
            Err(problem) => match parse_url(address) {
                Ok(url) => Endpoint::Url(url),
                Err(_) => {
                    report.error(source, item.at, problem);
                    continue;
                }
            },
        };
        addresses.push((address.clone(), item.at, endpoint));
    }
    addresses
}

fn group_labels(
    node: &JsonNode,
    source: &Source<'_>,
    report: &mut Report,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let JsonValue::Object(members) = &node.value else {
        report.error(
            source,
            node.at,
            format!(
                "\"labels\" must be an object of strings, not {}; write e.g. \"labels\": {{\"env\": \"prod\"}}",
                node.value.type_name()
            ),
        );
        return labels;
    };
    for member in members {
        // Prometheus' meta labels (`__meta_*`, `__address__`): dropped after relabelling
        // there, dropped here; but, as there, only once they are read as strings.
        let meta = member.key.starts_with("__");
        if !meta {
            if let Some(problem) = labels::problem(&member.key) {
                report.error(source, member.key_at, problem);
                continue;
            }
        }
        match &member.value.value {
            JsonValue::String(_) if meta => {}
            JsonValue::String(value) => {
                labels.insert(member.key.clone(), value.clone());
            }
            other => report.error(
                source,
                member.value.at,
                format!(
                    "label `{}` must have a string value, not {}; quote it, e.g. \"{}\": \"prod\"",
                    member.key,
                    other.type_name(),
                    member.key
                ),
            ),
        }
    }
    labels
}

/// What is wrong with `address` as a target, in [`connhealth::probe::Target::parse`]'s
/// words, if anything.
pub(crate) fn parse_address(address: &str) -> Result<connhealth::probe::Target, String> {
    connhealth::probe::Target::parse(address).map_err(|err| match err {
        connhealth::ProbeError::InvalidTarget { reason, .. } => {
            format!("address {address:?} is not host:port: {reason}")
        }
        other => format!(
            "address {address:?} is not host:port ({other}); write e.g. \"127.0.0.1:6379\" or \"[::1]:80\""
        ),
    })
}

/// `url`, an http target's: `http://` or `https://` with a host, as hyper takes it; the
/// port defaults to the scheme's. The reason, when it is not one.
pub fn parse_url(url: &str) -> Result<http::Uri, String> {
    const EXAMPLE: &str = "\"https://api.internal:8443/healthz\"";
    let uri: http::Uri = url
        .parse()
        .map_err(|err| format!("url {url:?} is not a URL ({err}); write e.g. {EXAMPLE}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "url {url:?} has the scheme {other:?}; an http check takes http:// or https://, e.g. {EXAMPLE}"
            ))
        }
        None => {
            return Err(format!(
                "url {url:?} has no scheme; start it with http:// or https://, e.g. {EXAMPLE}"
            ))
        }
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(uri),
        _ => Err(format!("url {url:?} has no host; write e.g. {EXAMPLE}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_globs_sit_under_the_config_folder() {
        assert_eq!(
            pattern(Path::new("/etc/ch"), "t/*.json"),
            "/etc/ch/t/*.json"
        );
        assert_eq!(pattern(Path::new("/etc/ch"), "/srv/*.json"), "/srv/*.json");
        assert_eq!(pattern(Path::new(""), "t/*.json"), "t/*.json");
        assert_eq!(pattern(Path::new("/a[1]"), "*.json"), "/a[[]1[]]/*.json");
    }

    #[test]
    fn bad_globs_say_so() {
        assert!(glob_problem("targets/*.json").is_none());
        assert!(glob_problem("targets/[.json")
            .unwrap()
            .contains("not a valid glob"));
        assert!(glob_problem("").is_some());
    }

    #[test]
    fn addresses_use_the_probe_rules() {
        assert!(parse_address("10.0.0.1:80").is_ok());
        assert!(parse_address("[::1]:80").is_ok());
        let problem = parse_address("10.0.0.1").unwrap_err();
        assert!(problem.contains("no port"), "{problem}");
    }
}
