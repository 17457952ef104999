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
