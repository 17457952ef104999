//! The `connhealth` command as a person runs it.

use std::process::Command;

fn connhealth(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_connhealth"))
        .args(args)
        .output()
        .expect("run connhealth")
}

#[test]
fn demo_runs_and_shows_the_check_seeing_fin_rst_and_data() {
    let out = connhealth(&["demo"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "peer sent a reply              open, data waiting",
        "peer sent a reply, then FIN    closed (peer closed)",
        "peer closed (FIN)              closed (peer closed)",
        "peer reset (RST)               closed (reset by peer)",
        "A ping that reads with a 1 ms deadline",
        "connhealth watch: a server killed with SIGKILL, then restarted",
        "hold       up -> down   the held connection closed and a probe was refused",
        "half-open  up -> down   3 failures: refused",
    ] {
        assert!(
            stdout.contains(line),
            "demo output lacks {line:?}:\n{stdout}"
        );
    }
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(connhealth(&["no-such-command"]).status.code(), Some(2));
}
