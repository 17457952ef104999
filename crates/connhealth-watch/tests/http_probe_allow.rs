//! `[probe]`: `allow` refuses a target any of whose addresses lies outside it (403 and
//! why, nothing sent), checked against the addresses the check would reach, names and
//! redirects included; `max_concurrent` answers 429 beyond it. Errors in the section are
//! reported at their place.

mod http_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use connhealth_watch::config;
use connhealth_watch::state::Fleet;
use http_support::{sample, Server};

fn fleet(toml: &str) -> Fleet {
    let plan = config::parse("watch.toml".as_ref(), toml).unwrap_or_else(|e| panic!("{e}"));
    Fleet::build(plan, None, SystemTime::now())
}

/// A listener that counts the connections it accepts (and holds them open).
fn counting_listener(bind: &str) -> Option<(u16, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind(bind).ok()?;
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    Some((port, accepted))
}

#[tokio::test]
async fn a_target_outside_allow_is_403_and_nothing_reaches_it() {
    let (port, accepted) = counting_listener("127.0.0.1:0").unwrap();
    let server = Server::start(fleet("[probe]\nallow = [\"10.0.0.0/8\", \"::1/128\"]\n")).await;
    for module in ["half_open", "connect", "tcp_connect"] {
        let reply = server
            .get(&format!("/probe?module={module}&target=127.0.0.1:{port}"))
            .await;
        assert_eq!(reply.status, 403, "{module}: {}", reply.body);
        assert!(
            reply
                .body
                .contains("127.0.0.1 is outside [probe] allow (10.0.0.0/8, ::1/128)"),
            "{}",
            reply.body
        );
    }
    // A name is refused for what it resolves to, looked up once.
    let reply = server
        .get(&format!("/probe?module=connect&target=localhost:{port}"))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("localhost resolves to 127.0.0.1, which is outside"),
        "{}",
        reply.body
    );
    // http too.
    let reply = server
        .get(&format!(
            "/probe?module=http_2xx&target=http://127.0.0.1:{port}/"
        ))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing was sent");
}

#[tokio::test]
async fn a_target_inside_allow_is_probed() {
    let (port, accepted) = counting_listener("127.0.0.1:0").unwrap();
    let server = Server::start(fleet("[probe]\nallow = [\"127.0.0.0/8\"]\n")).await;
    let reply = server
        .get(&format!("/probe?module=connect&target=127.0.0.1:{port}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(sample(&reply.body, "probe_success"), Some(1.0));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// An http server on 127.0.0.1 that redirects every request to `location`.
fn redirecting(location: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 2048];
            let _ = stream.read(&mut request);
            let answer = format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    port
}

#[tokio::test]
async fn a_redirect_outside_allow_is_403_before_it_is_followed() {
    let Some((v6_port, accepted)) = counting_listener("[::1]:0") else {
        assert!(
            !connhealth_testkit::in_ci(),
            "::1 must be available under CI"
        );
        eprintln!("skipping: no IPv6 loopback here");
        return;
    };
    let port = redirecting(format!("http://[::1]:{v6_port}/"));
    let server = Server::start(fleet("[probe]\nallow = [\"127.0.0.1\"]\n")).await;
    let reply = server
        .get(&format!(
            "/probe?module=http_2xx&target=http://127.0.0.1:{port}/"
        ))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("::1 is outside [probe] allow (127.0.0.1/32)"),
        "{}",
        reply.body
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn beyond_max_concurrent_a_probe_is_429_and_a_place_is_given_back() {
    // A server that accepts and stays silent: the module waits for a banner.
    let (port, _accepted) = counting_listener("127.0.0.1:0").unwrap();
    let toml = "[probe]\nmax_concurrent = 1\n\n[modules.banner]\ncheck = \"send-expect\"\nexpect = \"^220\"\ntimeout = \"1s\"\n";
    let server = Arc::new(Server::start(fleet(toml)).await);
    let slow = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            server
                .get(&format!("/probe?module=banner&target=127.0.0.1:{port}"))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = server
        .get(&format!("/probe?module=connect&target=127.0.0.1:{port}"))
        .await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.body.contains("max_concurrent"), "{}", refused.body);
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, 200, "{}", slow.body);
    let after = server
        .get(&format!("/probe?module=connect&target=127.0.0.1:{port}"))
        .await;
    assert_eq!(after.status, 200, "the place is given back: {}", after.body);
}

#[test]
fn bad_entries_are_errors_at_their_place() {
    let cases = [
        (
            "[probe]\nallow = [\"10.1.0.0/33\"]\n",
            "watch.toml:2:10: \"10.1.0.0/33\" is not a network",
        ),
        (
            "[probe]\nallow = [\"10.1.2.3/16\"]\n",
            "watch.toml:2:10: \"10.1.2.3/16\" has bits set past its prefix length; write the network, 10.1.0.0/16",
        ),
        ("[probe]\nallow = [8]\n", "watch.toml:2:10: each entry of `allow` must be a string"),
        ("[probe]\nallow = []\n", "watch.toml:2:9: `allow` is empty"),
        (
            "[probe]\nmax_concurrent = 0\n",
            "watch.toml:2:18: max_concurrent = 0 would refuse every /probe",
        ),
        ("[probe]\nallo = []\n", "did you mean `allow`?"),
        ("allow = [\"10.0.0.0/8\"]\n", "`allow` belongs in [probe]"),
    ];
    for (toml, expected) in cases {
        let errors = config::parse("watch.toml".as_ref(), toml)
            .expect_err(toml)
            .to_string();
        assert!(errors.contains(expected), "{toml:?}: {errors}");
    }
}
