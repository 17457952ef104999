//! Reload and `blackbox_config`: a reload (`POST /-/reload`, SIGHUP) reads the blackbox
//! file again, so a changed module is what `/probe` runs next; a blackbox file that does
//! not load, or is gone, changes nothing and says where, as a config that does not load.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use connhealth_watch::config::{self, Check};
use connhealth_watch::daemon::Daemon;
use support::{get, http, options, temp_dir};

/// `banner`, a tcp module with `timeout`, and whatever `more` adds.
fn blackbox(timeout: &str, more: &str) -> String {
    format!("modules:\n  banner:\n    prober: tcp\n    timeout: {timeout}\n{more}")
}

fn timeout_of(daemon: &Daemon, module: &str) -> Option<Duration> {
    daemon.shared().fleet().modules[module].timeout
}

#[test]
fn a_changed_blackbox_file_is_read_at_reload_and_a_broken_one_changes_nothing() {
    let dir = temp_dir("reload-blackbox");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let path = dir.write("watch.toml", "blackbox_config = \"blackbox.yml\"\n");
    let yaml = dir.write("blackbox.yml", blackbox("3s", ""));
    let plan = config::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
    let daemon = Daemon::start(options(path.clone()), plan).expect("the daemon starts");
    assert_eq!(timeout_of(&daemon, "banner"), Some(Duration::from_secs(3)));
    let probe = format!("/probe?target={addr}&module=banner");
    let answer = get(daemon.listen(), &probe);
    assert!(answer.contains("probe_success 1"), "{answer}");

    // Changed: the new timeout, a new module, and one connhealth does not run.
    std::fs::write(
        &yaml,
        blackbox(
            "2s",
            "  banner_tls:\n    prober: tcp\n    tcp: {tls: true}\n  ping:\n    prober: icmp\n",
        ),
    )
    .unwrap();
    let (code, body) = http(daemon.listen(), "POST", "/-/reload").unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(timeout_of(&daemon, "banner"), Some(Duration::from_secs(2)));
    match &daemon.shared().fleet().modules["banner_tls"].check {
        Check::Tcp(tcp) => assert!(tcp.tls),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        daemon.shared().fleet().unsupported_modules["ping"],
        "blackbox's icmp prober"
    );
    let (code, body) = http(
        daemon.listen(),
        "GET",
        &format!("/probe?target={addr}&module=ping"),
    )
    .unwrap();
    assert_eq!(code, 400, "{body}");

    // Broken: the old modules go on, and the error is where it is in the blackbox file.
    std::fs::write(
        &yaml,
        "modules:\n  banner:\n    prober: tcp\n    timeot: 1s\n",
    )
    .unwrap();
    let errors = daemon.reload().expect_err("a misspelt key does not load");
    assert_eq!(errors.0.len(), 1, "{errors}");
    let first = &errors.0[0];
    assert_eq!(first.file, yaml, "{errors}");
    assert_eq!((first.line, first.column), (4, 5), "{errors}");
    assert!(
        first.message.contains("did you mean `timeout`?"),
        "{errors}"
    );
    assert!(!daemon.shared().reload_state().successful);
    assert_eq!(timeout_of(&daemon, "banner"), Some(Duration::from_secs(2)));
    assert!(daemon.shared().fleet().modules.contains_key("banner_tls"));
    let (code, body) = http(daemon.listen(), "POST", "/-/reload").unwrap();
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("blackbox.yml:4:5: "), "{body}");
    let answer = get(daemon.listen(), &probe);
    assert!(answer.contains("probe_success 1"), "{answer}");

    // Gone: an error at `blackbox_config` in the config.
    std::fs::remove_file(&yaml).unwrap();
    let errors = daemon.reload().expect_err("a missing file does not load");
    assert_eq!(errors.0[0].file, path, "{errors}");
    assert_eq!((errors.0[0].line, errors.0[0].column), (1, 19), "{errors}");
    assert_eq!(timeout_of(&daemon, "banner"), Some(Duration::from_secs(2)));

    // Back: it loads again.
    std::fs::write(&yaml, blackbox("1s", "")).unwrap();
    daemon.reload().unwrap_or_else(|errors| panic!("{errors}"));
    assert!(daemon.shared().reload_state().successful);
    assert_eq!(timeout_of(&daemon, "banner"), Some(Duration::from_secs(1)));
    assert!(!daemon.shared().fleet().modules.contains_key("banner_tls"));
    assert!(daemon.shared().fleet().unsupported_modules.is_empty());
    drop(listener);
    daemon.stop();
}
