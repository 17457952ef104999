//! `connhealth probe`: exit status 0 when all targets are up, 1 when any is down, 2 on bad
//! usage; a table for people and JSON for programs.

use std::net::TcpListener;
use std::process::{Command, Stdio};
#[cfg(unix)]
use std::time::Instant;

#[cfg(unix)]
use connhealth_testkit::{require, Netns};

/// A timeout long enough to see a closed port refused: Windows retries a refused SYN for
/// about a second before it reports it, so the default 1s can read it as timed out there.
const SEES_REFUSAL: &str = if cfg!(windows) { "5s" } else { "1s" };

fn connhealth(args: &[&str]) -> (i32, String) {
    let output = connhealth_testkit::output(
        Command::new(env!("CARGO_BIN_EXE_connhealth")).args(args),
        "run connhealth",
    );
    (
        output.status.code().expect("exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn all_up_exits_0_any_down_exits_1_bad_usage_exits_2() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap().to_string();
    let down = connhealth_testkit::closed_port().to_string();

    let (code, table) = connhealth(&["probe", &up, "--timeout", "2s"]);
    assert_eq!(code, 0, "{table}");
    assert!(table.contains(&up) && table.contains(" up "), "{table}");

    let (code, table) = connhealth(&["probe", &up, &down, "--timeout", SEES_REFUSAL]);
    assert_eq!(code, 1, "{table}");
    assert!(table.contains("refused"), "{table}");

    let (code, json) = connhealth(&[
        "probe",
        "--json",
        "--mode",
        "connect",
        "--timeout",
        SEES_REFUSAL,
        &up,
        &down,
    ]);
    assert_eq!(code, 1);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["up"], true);
    assert_eq!(rows[1]["up"], false);
    assert_eq!(rows[1]["error"], "refused");

    assert_eq!(connhealth(&["probe", "::1:80"]).0, 2);
    assert_eq!(connhealth(&["probe"]).0, 2);
    assert_eq!(connhealth(&["probe", &up, "--mode", "syn"]).0, 2);
    assert_eq!(connhealth(&["probe", &up, "--timeout", "soon"]).0, 2);
}

/// Runs connhealth with `stdin` as its standard input: the exit code, stdout and stderr.
fn connhealth_with_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_connhealth"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run connhealth");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().expect("exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A file of targets, removed on drop.
struct TargetFile(std::path::PathBuf);

impl TargetFile {
    fn new(name: &str, contents: &str) -> TargetFile {
        let path = std::env::temp_dir().join(format!("connhealth-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TargetFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TargetFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn rows(json: &str) -> Vec<serde_json::Value> {
    let rows: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|err| panic!("{err}: {json}"));
    rows.as_array().expect("an array").clone()
}

#[test]
fn targets_come_from_a_file_after_the_arguments_skipping_blanks_and_comments() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap().to_string();
    let down = connhealth_testkit::closed_port().to_string();
    let file = TargetFile::new(
        "targets.txt",
        &format!("# the cache\n\n{up}\n   \n  {down}   # the old one\r\n# {down}\n"),
    );
    let (code, json) = connhealth(&[
        "probe",
        "--json",
        "--timeout",
        SEES_REFUSAL,
        &up,
        "--file",
        file.path(),
    ]);
    let rows = rows(&json);
    let targets: Vec<_> = rows.iter().map(|row| row["target"].as_str()).collect();
    assert_eq!(
        targets,
        [Some(up.as_str()), Some(&up), Some(&down)],
        "{json}"
    );
    assert_eq!(rows[1]["up"], true, "{json}");
    assert_eq!(rows[2]["error"], "refused", "{json}");
    assert_eq!(code, 1);
}

#[test]
fn targets_come_from_stdin_with_file_dash() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap();
    // A name too: resolved, then its addresses tried until one answers (localhost may be
    // ::1 first, where nothing listens).
    let stdin = format!("{up}\nlocalhost:{}\n", up.port());
    let (code, json, stderr) = connhealth_with_stdin(&["probe", "--json", "--file", "-"], &stdin);
    let rows = rows(&json);
    assert_eq!(rows.len(), 2, "{json}");
    assert_eq!(rows[0]["target"], up.to_string().as_str());
    assert_eq!(
        rows[1]["target"],
        format!("localhost:{}", up.port()).as_str()
    );
    assert!(rows.iter().all(|row| row["up"] == true), "{json}");
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_bad_line_in_a_file_is_bad_usage_naming_the_file_and_line() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap().to_string();
    let file = TargetFile::new("bad.txt", &format!("# ok\n{up}\n\n::1:80\n"));
    let (code, table) = connhealth(&["probe", "--file", file.path()]);
    assert_eq!(code, 2, "{table}");
    let line = table
        .lines()
        .find(|line| line.contains("::1:80"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains(&format!("{}:4: invalid target", file.path())) && line.contains("brackets"),
        "{line}"
    );
    // The good line was still probed.
    assert!(table.contains(&up) && table.contains(" up "), "{table}");

    // Stdin is named too.
    let (code, table, _) = connhealth_with_stdin(&["probe", "--file", "-"], "\nlocalhost\n");
    assert_eq!(code, 2);
    assert!(table.contains("<stdin>:2: invalid target"), "{table}");
}

#[test]
fn at_least_one_target_is_required_and_a_missing_file_is_bad_usage() {
    let empty = TargetFile::new("empty.txt", "# nothing yet\n\n");
    let (code, _, stderr) = connhealth_with_stdin(&["probe", "--file", empty.path()], "");
    assert_eq!(code, 2);
    assert!(stderr.contains("no targets"), "{stderr}");
    let (code, _, stderr) = connhealth_with_stdin(&["probe", "--file", "-"], "");
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) =
        connhealth_with_stdin(&["probe", "--file", "/nonexistent/targets.txt"], "");
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/targets.txt"), "{stderr}");
}

#[test]
fn help_shows_each_form_of_target() {
    let (code, help) = connhealth(&["probe", "--help"]);
    assert_eq!(code, 0);
    for form in ["--file targets.txt", "--file -", "[::1]:443", "# "] {
        assert!(help.contains(form), "{form:?} missing from:\n{help}");
    }
}

#[cfg(unix)] // `ip netns exec`
/// Runs `connhealth probe --json ARGS...` inside `netns` (its sockets live there) and
/// returns the exit code and the rows.
fn probe_json_inside(netns: &Netns, args: &[String]) -> (i32, Vec<serde_json::Value>) {
    let output = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns.name(),
            env!("CARGO_BIN_EXE_connhealth"),
        ])
        .args(["probe", "--json"])
        .args(args)
        .output()
        .expect("run connhealth");
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "{err}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (
        output.status.code().expect("exit code"),
        rows.as_array().expect("an array").clone(),
    )
}

#[cfg(unix)] // needs a network namespace and iptables DROP
#[test]
fn targets_queued_behind_silent_ones_still_get_their_full_timeout() {
    if !require("targets whose SYNs are dropped", &["ip", "iptables"]) {
        return;
    }
    // 512 targets whose SYNs are dropped fill all of the prober's 512 places (64 to each
    // of 8 addresses, the limit per destination) for the whole default timeout of 1 s.
    // The live targets given after them wait that long for a place: their timeouts must
    // run from their own SYNs, not from the start, or they are reported not probed.
    let netns = Netns::new().unwrap();
    let servers = netns
        .enter(|| {
            (0..4)
                .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
                .collect::<Vec<_>>()
        })
        .unwrap();
    let dead_port = connhealth_testkit::free_port().unwrap();
    netns.drop_tcp_port(dead_port).unwrap();
    let mut targets: Vec<String> = (0..512)
        .map(|i| format!("127.0.0.{}:{dead_port}", 1 + i % 8))
        .collect();
    let live = (0..1_000).map(|i| servers[i % 4].local_addr().unwrap().to_string());
    targets.extend(live);
    let start = Instant::now();
    let (code, rows) = probe_json_inside(&netns, &targets);
    let took = start.elapsed();
    assert_eq!(rows.len(), targets.len());
    assert_eq!(code, 1, "the silent targets are down");
    for (row, target) in rows.iter().zip(&targets).take(512) {
        assert_eq!(row["target"], target.as_str());
        assert_eq!(row["error"], "timed out", "{row}");
    }
    let not_up: Vec<_> = rows[512..].iter().filter(|row| row["up"] != true).collect();
    assert!(
        not_up.is_empty(),
        "{} of 1000 live targets not up after {took:?}, e.g. {}",
        not_up.len(),
        not_up[0]
    );
}

#[cfg(unix)] // 60,000 arguments: far past Windows' 32,767-character command line
#[test]
fn sixty_thousand_targets_with_the_default_timeout_are_all_up() {
    // Far more targets than the prober keeps in flight (512): the last ones wait for a
    // place longer than the 1 s timeout, which must not count against them.
    let servers: Vec<_> = (0..16)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<_> = servers
        .iter()
        .map(|s| s.local_addr().unwrap().to_string())
        .collect();
    let mut args = vec!["probe".to_owned(), "--json".to_owned()];
    args.extend((0..60_000).map(|i| addrs[i % addrs.len()].clone()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = Instant::now();
    let (code, json) = connhealth(&args);
    let took = start.elapsed();
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 60_000);
    let not_up: Vec<_> = rows.iter().filter(|row| row["up"] != true).collect();
    assert!(
        not_up.is_empty(),
        "{} of 60000 not up after {took:?}, e.g. {}",
        not_up.len(),
        not_up[0]
    );
    assert_eq!(code, 0);
}

/// `--mode raw` probes on raw sockets as root, and without CAP_NET_RAW says why, once,
/// and exits 2 (bad usage for this process) rather than reporting every target down.
#[test]
#[cfg(target_os = "linux")]
fn mode_raw_runs_as_root_and_without_cap_net_raw_says_why() {
    if !require("raw probes and a process without CAP_NET_RAW", &["setpriv"]) {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap().to_string();
    let down = connhealth_testkit::closed_port().to_string();
    let (code, table) = connhealth(&["probe", "--mode", "raw", &up, &down]);
    assert_eq!(code, 1, "{table}");
    assert!(
        table.contains(" up ") && table.contains("refused"),
        "{table}"
    );

    let without = |args: &[&str]| {
        let output = connhealth_testkit::output(
            Command::new("setpriv")
                .args(["--inh-caps=-net_raw", "--bounding-set=-net_raw"])
                .arg(env!("CARGO_BIN_EXE_connhealth"))
                .args(args),
            "run connhealth without CAP_NET_RAW",
        );
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code().expect("exit code"), stdout, stderr)
    };
    let (code, stdout, stderr) = without(&["probe", "--mode", "raw", &up]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("CAP_NET_RAW"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "said once: {stderr}");
    // half-open falls back to a socket per probe.
    let (code, stdout, stderr) = without(&["probe", &up]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}
