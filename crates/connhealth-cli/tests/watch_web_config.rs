//! `connhealth watch --web.config.file`: what the command line does with it (the daemon's
//! side is crates/connhealth-watch/tests/web_config.rs).
#![cfg(unix)]

use std::process::Command;

use connhealth_testkit::TempDir;

fn watch(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_connhealth"));
    command.arg("watch").args(args);
    command
}

#[test]
fn a_bad_web_config_exits_2_with_its_line_and_column() {
    let dir = TempDir::new("cli-watch-web-config-bad");
    let config = dir.write("watch.toml", "[defaults]\ninterval = \"2s\"\n");
    let web = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_fil: server.key\n",
    );
    let (config, web) = (config.to_str().unwrap(), web.to_str().unwrap());
    for extra in [&["--check-config"][..], &["--listen", "127.0.0.1:0"][..]] {
        let mut args = vec!["--config", config, "--web.config.file", web];
        args.extend_from_slice(extra);
        let output = watch(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("{web}:3:3: ")), "{stderr}");
        assert!(stderr.contains("key_fil"), "{stderr}");
    }
}

#[test]
fn help_explains_the_web_config_with_an_example() {
    let output = watch(&["--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--web.config.file <FILE>"), "{help}");
    assert!(help.contains("tls_server_config:"), "{help}");
    assert!(help.contains("basic_auth_users:"), "{help}");
}

/// The daemon's stderr up to its "started" line, listening at `listen`.
fn start_lines(listen: &str, extra: &[&str]) -> String {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("cli-watch-web-config-warn");
    let config = dir.write("watch.toml", "[defaults]\ninterval = \"2s\"\n");
    let mut args = vec!["--config", config.to_str().unwrap(), "--listen", listen];
    args.extend_from_slice(extra);
    let mut child = watch(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("connhealth watch started") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}

#[test]
fn listening_beyond_loopback_without_a_web_config_is_a_warning() {
    let open = start_lines("0.0.0.0:0", &[]);
    assert!(
        open.contains("WARN") && open.contains("--web.config.file"),
        "{open}"
    );
    let loopback = start_lines("127.0.0.1:0", &[]);
    assert!(
        loopback.contains("started") && !loopback.contains("WARN"),
        "{loopback}"
    );
}
