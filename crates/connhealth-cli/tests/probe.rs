//! `connhealth probe`: exit status 0 when all targets are up, 1 when any is down, 2 on bad
//! usage; a table for people and JSON for programs.

use std::net::TcpListener;
use std::process::Command;

fn connhealth(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_connhealth"))
        .args(args)
        .output()
        .expect("run connhealth");
    (
        output.status.code().expect("exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn all_up_exits_0_any_down_exits_1_bad_usage_exits_2() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap().to_string();
    let down = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();

    let (code, table) = connhealth(&["probe", &up, "--timeout", "2s"]);
    assert_eq!(code, 0, "{table}");
    assert!(table.contains(&up) && table.contains(" up "), "{table}");

    let (code, table) = connhealth(&["probe", &up, &down]);
    assert_eq!(code, 1, "{table}");
    assert!(table.contains("refused"), "{table}");

    let (code, json) = connhealth(&["probe", "--json", "--mode", "connect", &up, &down]);
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
