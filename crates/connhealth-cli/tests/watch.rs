//! `connhealth watch` as an operator runs it: exit codes, `--check-config`, signals,
//! a taken listen address, shards, and one log line per state change.
#![cfg(unix)] // the daemon runs on Unix only, and these send it signals; tests/cli.rs checks what Windows says

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use connhealth_testkit::TempDir;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn temp_dir(test: &str) -> TempDir {
    TempDir::new(&format!("cli-watch-{test}"))
}

fn write_config(dir: &TempDir, text: &str) -> PathBuf {
    dir.write("watch.toml", text)
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn watch(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_connhealth"));
    command.arg("watch").args(args);
    command
}

/// A daemon running as its own process, its stderr lines sent to `lines`.
struct Daemon {
    child: Child,
    listen: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(config: &Path, extra: &[&str]) -> Daemon {
        let listen = free_addr();
        let listen_arg = listen.to_string();
        let mut args = vec![
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &listen_arg,
        ];
        args.extend_from_slice(extra);
        let mut child = watch(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start connhealth watch");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let daemon = Daemon {
            child,
            listen,
            lines,
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if daemon.get("/-/ready").is_some_and(|(code, _)| code == 200) {
                return daemon;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the daemon never got ready");
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        connhealth_testkit::http(self.listen, "GET", path).ok()
    }

    /// The next stderr line containing `needle`, within `limit`.
    fn line_with(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            if line.contains(needle) {
                return Some(line);
            }
        }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory effects; the child is ours and not yet reaped.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
            0
        );
    }

    /// Sends `signal` and waits for the exit: the code and how long it took.
    fn stop_with(mut self, signal: libc::c_int) -> (Option<i32>, Duration) {
        let sent = Instant::now();
        self.signal(signal);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), sent.elapsed());
            }
            if sent.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!("the daemon did not exit within 10 s of the signal");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A burst of SIGHUPs while a large config reloads: one reload runs, one more follows
/// with the newest files, and none queue behind them. Before, each SIGHUP queued a reload
/// of its own, so a loop of `kill -HUP` kept the daemon reloading long after it stopped.
#[test]
fn a_burst_of_sighups_coalesces_into_one_more_reload() {
    let dir = temp_dir("sighup-burst");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    // Big enough that one reload takes a good part of a second in a debug build; checked
    // rarely, and only at this test's own listener, so the fleet costs nothing else.
    let fleet = |last: &str| {
        let mut text = String::from("[defaults]\ninterval = \"10m\"\n");
        for i in 0..20_000 {
            text.push_str(&format!(
                "[[targets]]\nname = \"t{i}\"\naddress = \"{address}\"\n"
            ));
        }
        text.push_str(&format!(
            "[[targets]]\nname = \"{last}\"\naddress = \"{address}\"\n"
        ));
        text
    };
    let config = write_config(&dir, &fleet("first"));
    let daemon = Daemon::start(&config, &[]);

    let newest = fleet("newest");
    for i in 0..40 {
        if i == 20 {
            std::fs::write(&config, &newest).unwrap();
        }
        daemon.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(5));
    }
    let burst_end = Instant::now();
    let mut reloads = 0;
    while daemon
        .line_with("config reloaded", Duration::from_secs(4))
        .is_some()
    {
        reloads += 1;
        assert!(
            burst_end.elapsed() < Duration::from_secs(30),
            "the daemon is still reloading 30 s after 40 SIGHUPs ({reloads} reloads)"
        );
    }
    assert!(
        (1..=3).contains(&reloads),
        "40 SIGHUPs in 200 ms gave {reloads} reloads; a burst should coalesce into at most one running and one following"
    );
    let (code, status) = daemon
        .get("/status?target=newest")
        .expect("status after the burst");
    assert!(
        code == 200 && status.contains("\"newest\""),
        "the config written during the burst is the one in force: {}",
        &status[..status.len().min(300)]
    );
    let (code, _) = daemon.stop_with(libc::SIGTERM);
    assert_eq!(code, Some(0));
}

fn one_target(address: SocketAddr) -> String {
    format!(
        "[defaults]\ninterval = \"100ms\"\nfast_interval = \"20ms\"\nrise = 1\nfall = 1\n\n\
         [[targets]]\nname = \"web\"\naddress = \"{address}\"\n"
    )
}

#[test]
fn sigterm_and_sigint_exit_0_within_a_second() {
    let dir = temp_dir("signals");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = write_config(&dir, &one_target(listener.local_addr().unwrap()));
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let daemon = Daemon::start(&config, &[]);
        let (code, took) = daemon.stop_with(signal);
        assert_eq!(code, Some(0), "signal {signal}");
        assert!(took < Duration::from_secs(1), "exit took {took:?}");
    }
}

#[test]
fn a_taken_listen_address_exits_1_with_the_reason() {
    let dir = temp_dir("taken");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = write_config(&dir, &one_target(taken.local_addr().unwrap()));
    let output = watch(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        &taken.local_addr().unwrap().to_string(),
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot listen on") && stderr.contains("--listen"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("cannot listen on").count(),
        1,
        "once: {stderr}"
    );
}

#[test]
fn listen_takes_a_host_name() {
    let dir = temp_dir("listen-name");
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = write_config(&dir, &one_target(server.local_addr().unwrap()));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = watch(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        &format!("localhost:{port}"),
    ])
    .spawn()
    .unwrap();
    // localhost is ::1 or 127.0.0.1, whichever resolves first and binds.
    let answered = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        ["127.0.0.1", "[::1]"].iter().any(|host| {
            std::net::TcpStream::connect(format!("{host}:{port}")).is_ok_and(|mut conn| {
                use std::io::{Read, Write};
                let _ = conn
                    .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut reply = String::new();
                let _ = conn.read_to_string(&mut reply);
                reply.starts_with("HTTP/1.1 200")
            })
        })
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(answered, "nothing answered on localhost:{port}");
}

#[test]
fn a_listen_address_without_a_port_is_a_usage_error() {
    let dir = temp_dir("listen-no-port");
    let config = write_config(&dir, "");
    let output = watch(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "localhost",
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no port in \"localhost\""), "{stderr}");
}

#[test]
fn a_bad_config_exits_2_with_every_error_at_its_line_and_column() {
    let dir = temp_dir("bad");
    let config = write_config(
        &dir,
        "[defaults]\ninterval = \"soon\"\n\n[[targets]]\naddress = \"nohost\"\n",
    );
    let path = config.to_str().unwrap();
    for args in [
        vec!["--config", path, "--check-config"],
        vec!["--config", path],
    ] {
        let output = watch(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("{path}:2:12: ")), "{stderr}");
        assert!(stderr.contains(&format!("{path}:5:11: ")), "{stderr}");
    }
}

#[test]
fn check_config_prints_a_summary_and_exits_0() {
    let dir = temp_dir("good");
    let config = write_config(&dir, &one_target(free_addr()));
    let output = watch(&["--config", config.to_str().unwrap(), "--check-config"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ok, 1 target(s)"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}

#[test]
fn shards_split_the_targets_between_instances() {
    let dir = temp_dir("shards");
    let mut text = String::new();
    for i in 0..30 {
        text.push_str(&format!(
            "[[targets]]\nname = \"t{i}\"\naddress = \"127.0.0.1:{}\"\n",
            10000 + i
        ));
    }
    let config = write_config(&dir, &text);
    let mut total = 0;
    for shard in ["1/3", "2/3", "3/3"] {
        let output = watch(&[
            "--config",
            config.to_str().unwrap(),
            "--check-config",
            "--shard",
            shard,
        ])
        .output()
        .unwrap();
        assert_eq!(output.status.code(), Some(0));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mine: usize = stdout
            .rsplit("watches ")
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(mine > 0, "shard {shard} got nothing");
        total += mine;
    }
    assert_eq!(total, 30);
    let bad = watch(&["--config", config.to_str().unwrap(), "--shard", "4/3"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn each_state_change_is_one_log_line_in_text_and_in_json() {
    let dir = temp_dir("log");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let config = write_config(&dir, &one_target(address));
    for format in ["text", "json"] {
        let daemon = Daemon::start(&config, &["--log-format", format]);
        let up = daemon
            .line_with("web", Duration::from_secs(5))
            .expect("a line for web going up");
        if format == "json" {
            let line: serde_json::Value =
                serde_json::from_str(&up).expect("one JSON object per line");
            let text = line.to_string();
            for field in ["web", &address.to_string(), "unknown", "up"] {
                assert!(text.contains(field), "{field} missing from {text}");
            }
        } else {
            for field in ["web", &address.to_string(), "unknown", "up", "1 success"] {
                assert!(up.contains(field), "{field} missing from {up}");
            }
        }
        let (code, _) = daemon.stop_with(libc::SIGTERM);
        assert_eq!(code, Some(0));
    }
}

/// A target going down is a WARN line, to the millisecond; in JSON it names the check
/// kind and carries the target's own labels as an object.
#[test]
fn a_target_going_down_is_a_warning_with_its_check_and_labels() {
    let dir = temp_dir("log-down");
    for format in ["text", "json"] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let config = write_config(
            &dir,
            &format!(
                "{}labels = {{ service = \"cache\" }}\n",
                one_target(address)
            ),
        );
        let daemon = Daemon::start(&config, &["--log-format", format]);
        daemon
            .line_with("web", Duration::from_secs(5))
            .expect("a line for web going up");
        drop(listener);
        let down = daemon
            .line_with("-> down", Duration::from_secs(5))
            .expect("a line for web going down");
        if format == "json" {
            let line: serde_json::Value =
                serde_json::from_str(&down).expect("one JSON object per line");
            assert_eq!(line["level"], "WARN", "{line}");
            assert_eq!(line["check"], "half-open", "{line}");
            assert_eq!(
                line["labels"],
                serde_json::json!({"service": "cache"}),
                "{line}"
            );
        } else {
            let (time, rest) = down.split_once("  ").expect("a time, then the level");
            assert_eq!(time.len(), 24, "a time to the millisecond: {down}");
            assert!(rest.starts_with("WARN target web"), "{down}");
        }
        let (code, _) = daemon.stop_with(libc::SIGTERM);
        assert_eq!(code, Some(0));
    }
}

/// The log level is set by RUST_LOG: `connhealth watch --help` says so, and how.
#[test]
fn watch_help_documents_rust_log() {
    let help = watch(&["--help"]).output().unwrap();
    assert!(help.status.success(), "{help:?}");
    let help = String::from_utf8(help.stdout).unwrap();
    for needed in ["RUST_LOG", "RUST_LOG=connhealth_watch=debug", "WARN"] {
        assert!(help.contains(needed), "{needed:?} missing from:\n{help}");
    }
}

#[test]
fn sighup_reloads_the_config_keeping_the_state_of_unchanged_targets() {
    let dir = temp_dir("sighup");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let config = write_config(&dir, &one_target(address));
    let daemon = Daemon::start(&config, &[]);
    daemon
        .line_with("web", Duration::from_secs(5))
        .expect("web goes up");
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let added = format!(
        "{}\n[[targets]]\nname = \"api\"\naddress = \"{}\"\n",
        one_target(address),
        other.local_addr().unwrap()
    );
    std::fs::write(&config, added).unwrap();
    daemon.signal(libc::SIGHUP);
    daemon
        .line_with("api", Duration::from_secs(5))
        .expect("api is watched after SIGHUP");
    let (code, status) = daemon.get("/status").unwrap();
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let web = &status["targets"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["state"], "up");
    assert_eq!(
        web["counters"]["state_changes"], 1,
        "web kept its state: {web}"
    );
    assert_eq!(status["targets"][1]["name"], "api");

    // A config that does not load: logged with its line and column, and nothing changes.
    std::fs::write(&config, "[defaults]\nrise = 0\n").unwrap();
    daemon.signal(libc::SIGHUP);
    let error = daemon
        .line_with("watch.toml:2:8", Duration::from_secs(5))
        .expect("the reload error is logged with its line and column");
    assert!(error.contains("rise"), "{error}");
    let (_, metrics) = daemon.get("/metrics").unwrap();
    assert!(
        metrics.contains("connhealth_config_last_reload_successful 0"),
        "{metrics}"
    );
    let (_, status) = daemon.get("/status").unwrap();
    assert!(
        status.contains("\"api\""),
        "the old config goes on: {status}"
    );
    let (code, _) = daemon.stop_with(libc::SIGTERM);
    assert_eq!(code, Some(0));
}

/// Whether this process may open raw sockets: `CAP_NET_RAW` (bit 13) in its effective
/// set, which root has unless a container or `setpriv` took it away. The daemon, started
/// from here, has it too.
fn has_net_raw() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|caps| u64::from_str_radix(caps.trim(), 16).ok())
        .expect("CapEff in /proc/self/status");
    effective & (1 << 13) != 0
}

/// `/metrics` and the log say which engine sends the half-open checks' SYNs: the raw
/// engine with `CAP_NET_RAW` (as root), else a socket per probe; said once at start,
/// not again at a reload. A half-open check on it works: the target is up, and the
/// server application never saw a connection.
#[test]
fn metrics_and_the_log_say_which_engine_runs_half_open_checks() {
    let dir = temp_dir("engine");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let config = write_config(&dir, &one_target(address));
    let daemon = Daemon::start(&config, &[]);
    let raw = has_net_raw();
    // SAFETY: geteuid has no memory effects and cannot fail.
    if unsafe { libc::geteuid() } == 0 && std::env::var("CI").as_deref() == Ok("true") {
        assert!(
            raw,
            "root under CI without CAP_NET_RAW: the raw engine goes untested"
        );
    }
    let (running, idle) = if raw {
        ("raw", "sockets")
    } else {
        ("sockets", "raw")
    };
    let said = daemon
        .line_with("half-open checks run", Duration::from_secs(5))
        .expect("the engine is logged at start");
    let expected = if raw {
        "on the raw engine"
    } else {
        "a socket per probe"
    };
    assert!(said.contains(expected), "{said}");

    let up = format!(
        "connhealth_target_up{{target=\"web\",address=\"{address}\",check=\"half-open\"}} 1"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let (code, metrics) = daemon.get("/metrics").expect("a scrape");
        assert_eq!(code, 200);
        if metrics.lines().any(|line| line == up) || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        metrics.lines().any(|line| line == up),
        "{up} missing:\n{metrics}"
    );
    for (engine, value) in [(running, 1), (idle, 0)] {
        let series = format!("connhealth_probe_engine{{engine=\"{engine}\"}} {value}");
        assert!(
            metrics.lines().any(|line| line == series),
            "{series} missing:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("# HELP connhealth_probe_engine "),
        "{metrics}"
    );
    match listener.accept() {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a half-open check reached accept(): {other:?}"),
    }

    // Said once: a reload builds no new prober and says nothing more.
    daemon.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("the reload is logged");
        let line = daemon
            .lines
            .recv_timeout(left)
            .expect("the reload is logged");
        assert!(!line.contains("half-open checks run"), "said again: {line}");
        if line.contains("config reloaded") {
            break;
        }
    }
    let (code, _) = daemon.stop_with(libc::SIGTERM);
    assert_eq!(code, Some(0));
}
