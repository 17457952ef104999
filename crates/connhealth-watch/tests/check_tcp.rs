//! blackbox's `tcp` prober (`Check::Tcp`) against scripted loopback servers: lines
//! matched one at a time, `${1}` sent back, STARTTLS, TLS from the start, and the
//! regex flag set only when the peer closed without a match.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use connhealth::{Mode, Prober};
use connhealth_testkit::TempDir;
use connhealth_watch::checks::{tcp, CheckResult, Outcome};
use connhealth_watch::config::{Pattern, QueryStep, TcpPlan, TlsPlan};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

const TIMEOUT: Duration = Duration::from_secs(2);

fn step(expect: Option<&str>, send: &str, starttls: bool) -> QueryStep {
    QueryStep {
        expect: expect.map(|e| Pattern(regex::bytes::Regex::new(e).unwrap())),
        send: send.to_owned(),
        starttls,
    }
}

fn plan(steps: Vec<QueryStep>) -> TcpPlan {
    TcpPlan {
        query_response: steps,
        ..TcpPlan::default()
    }
}

async fn check(addr: SocketAddr, plan: &TcpPlan) -> CheckResult {
    let prober = Prober::builder().mode(Mode::Connect).build();
    tcp::check(addr, "127.0.0.1", plan, &prober, TIMEOUT).await
}

/// A server that runs `script` on its one connection, and reports what the script
/// returns.
async fn server<F, Fut, T>(script: F) -> (SocketAddr, oneshot::Receiver<T>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = tx.send(script(stream).await);
    });
    (addr, rx)
}

/// Reads one line (with its end), or "" at the peer's FIN.
async fn line<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) -> String {
    let mut line = String::new();
    let _ = reader.read_line(&mut line).await;
    line
}

/// Holds the connection open until the checker closes it.
async fn hold<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) {
    while !line(reader).await.is_empty() {}
}

#[tokio::test]
async fn an_smtp_banner_matches_its_own_line_with_anchors_at_both_ends() {
    let (addr, saw) = server(|stream| async move {
        let mut reader = BufReader::new(stream);
        reader
            .get_mut()
            .write_all(b"220 mail.example ESMTP Postfix (Debian)\r\n")
            .await
            .unwrap();
        let got = line(&mut reader).await;
        hold(&mut reader).await;
        got
    })
    .await;
    let plan = plan(vec![step(Some("^220 ([^ ]+) ESMTP (.+)$"), "QUIT", false)]);
    let result = check(addr, &plan).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert!(!result.regex_failed);
    assert_eq!(saw.await.unwrap(), "QUIT\n", "send goes with a newline");
}

#[tokio::test]
async fn a_later_line_matches_and_a_reply_split_across_writes_is_one_line() {
    let (addr, _saw) = server(|stream| async move {
        let mut reader = BufReader::new(stream);
        let out = reader.get_mut();
        out.write_all(b":irc.example NOTICE * :hello\r\n:irc.exa")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        out.write_all(b"mple 001 nick :Welcome\r\n").await.unwrap();
        hold(&mut reader).await;
    })
    .await;
    let result = check(addr, &plan(vec![step(Some("^:[^ ]+ 001"), "", false)])).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
}

#[tokio::test]
async fn the_match_is_expanded_into_what_is_sent_next() {
    let (addr, saw) = server(|stream| async move {
        let mut reader = BufReader::new(stream);
        reader
            .get_mut()
            .write_all(b"HELLO token=abc123 name=n1\n")
            .await
            .unwrap();
        let got = line(&mut reader).await;
        let answer: &[u8] = if got == "AUTH abc123 n1 $ \n" {
            b"OK\n"
        } else {
            b"NO\n"
        };
        reader.get_mut().write_all(answer).await.unwrap();
        hold(&mut reader).await;
        got
    })
    .await;
    let plan = plan(vec![
        step(
            Some("token=(\\w+) name=(?P<name>\\w+)"),
            "AUTH ${1} $name $$ $x",
            false,
        ),
        step(Some("^OK$"), "", false),
    ]);
    let result = check(addr, &plan).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert_eq!(
        saw.await.unwrap(),
        "AUTH abc123 n1 $ \n",
        "an unknown name is empty, as in Go"
    );
}

#[tokio::test]
async fn the_peer_closing_without_a_match_sets_the_regex_flag() {
    let (addr, _saw) = server(|mut stream| async move {
        stream.write_all(b"500 go away\r\n").await.unwrap();
    })
    .await;
    let result = check(addr, &plan(vec![step(Some("^220"), "", false)])).await;
    assert_eq!(result.outcome, Outcome::Mismatch, "{result:?}");
    assert!(result.regex_failed);
    let detail = result.detail.unwrap();
    assert!(detail.contains("500 go away"), "{detail}");
}

#[tokio::test]
async fn a_timeout_after_a_line_that_did_not_match_leaves_the_regex_flag_unset() {
    let (addr, _saw) = server(|stream| async move {
        let mut reader = BufReader::new(stream);
        reader.get_mut().write_all(b"500 no\r\n").await.unwrap();
        hold(&mut reader).await;
    })
    .await;
    let prober = Prober::builder().mode(Mode::Connect).build();
    let plan = plan(vec![step(Some("^220"), "", false)]);
    let timeout = Duration::from_millis(300);
    let result = tcp::check(addr, "127.0.0.1", &plan, &prober, timeout).await;
    assert_eq!(result.outcome, Outcome::Timeout, "{result:?}");
    assert!(!result.regex_failed, "blackbox sets the flag only at EOF");
}

#[tokio::test]
async fn a_reply_without_a_line_end_waits_for_the_rest_or_the_close() {
    // Held open: the partial line is not matched yet, so the check times out.
    let (addr, _saw) = server(|stream| async move {
        let mut reader = BufReader::new(stream);
        reader.get_mut().write_all(b"220 partial").await.unwrap();
        hold(&mut reader).await;
    })
    .await;
    let prober = Prober::builder().mode(Mode::Connect).build();
    let plan_220 = plan(vec![step(Some("^220"), "", false)]);
    let timeout = Duration::from_millis(300);
    let result = tcp::check(addr, "127.0.0.1", &plan_220, &prober, timeout).await;
    assert_eq!(result.outcome, Outcome::Timeout, "{result:?}");

    // Closed after it: the rest is the last line, and it matches.
    let (addr, _saw) = server(|mut stream| async move {
        stream.write_all(b"220 partial").await.unwrap();
    })
    .await;
    let result = check(addr, &plan_220).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
}

#[tokio::test]
async fn a_line_longer_than_64_kib_fails_the_check() {
    let (addr, _saw) = server(|stream| async move {
        let mut reader = BufReader::new(stream);
        let long = vec![b'x'; tcp::MAX_LINE + 100];
        let _ = reader.get_mut().write_all(&long).await;
        hold(&mut reader).await;
    })
    .await;
    let result = check(addr, &plan(vec![step(Some("^220"), "", false)])).await;
    assert_eq!(result.outcome, Outcome::Error, "{result:?}");
    assert!(!result.regex_failed);
}

#[tokio::test]
async fn nothing_to_send_or_read_is_a_connect_and_a_closed_port_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let result = check(addr, &TcpPlan::default()).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    drop(listener);
    let result = check(addr, &TcpPlan::default()).await;
    assert_eq!(result.outcome, Outcome::Refused, "{result:?}");
}

/// A self-signed CA:TRUE certificate for 127.0.0.1 (what `openssl req -x509` makes), its
/// PEM in a file, and a TLS acceptor serving it.
struct Tls {
    _dir: TempDir,
    ca_file: std::path::PathBuf,
    acceptor: TlsAcceptor,
}

fn tls() -> Tls {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "mail");
    let cert = params.self_signed(&key).unwrap();
    let dir = TempDir::new("check-tcp");
    let ca_file = dir.write("ca.pem", cert.pem());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    )
    .unwrap();
    Tls {
        _dir: dir,
        ca_file,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    }
}

fn trusting(tls: &Tls) -> TlsPlan {
    TlsPlan {
        ca_file: Some(tls.ca_file.clone()),
        ..TlsPlan::default()
    }
}

async fn hold_tls<S: AsyncRead + AsyncWrite + Unpin>(reader: &mut BufReader<S>) {
    hold(reader).await;
}

#[tokio::test]
async fn starttls_upgrades_the_connection_and_the_dialogue_goes_on_over_tls() {
    let tls = tls();
    let acceptor = tls.acceptor.clone();
    let (addr, saw) = server(move |stream| async move {
        let mut reader = BufReader::new(stream);
        reader.get_mut().write_all(b"220 ready\r\n").await.unwrap();
        let first = line(&mut reader).await;
        reader
            .get_mut()
            .write_all(b"220 go ahead\r\n")
            .await
            .unwrap();
        let tcp = reader.into_inner();
        let mut secure = acceptor.accept(tcp).await.unwrap();
        secure.write_all(b"250 secure\r\n").await.unwrap();
        let mut reader = BufReader::new(secure);
        let second = line(&mut reader).await;
        hold_tls(&mut reader).await;
        (first, second)
    })
    .await;
    let plan = TcpPlan {
        tls_config: trusting(&tls),
        query_response: vec![
            step(Some("^220"), "STARTTLS", false),
            step(Some("^220"), "", true),
            step(Some("^250 secure$"), "QUIT", false),
        ],
        ..TcpPlan::default()
    };
    let result = check(addr, &plan).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert!(result.tls_version.is_some());
    assert!(result.cert_expiry.is_some());
    let (first, second) = saw.await.unwrap();
    assert_eq!(first, "STARTTLS\n");
    assert_eq!(second, "QUIT\n", "sent over TLS");
}

#[tokio::test]
async fn tls_from_the_start_with_a_banner_over_it() {
    let tls = tls();
    let acceptor = tls.acceptor.clone();
    let (addr, _saw) = server(move |stream| async move {
        let mut secure = acceptor.accept(stream).await.unwrap();
        secure.write_all(b"+OK POP3 ready\r\n").await.unwrap();
        hold_tls(&mut BufReader::new(secure)).await;
    })
    .await;
    let plan = TcpPlan {
        tls: true,
        tls_config: trusting(&tls),
        query_response: vec![step(Some("^\\+OK"), "", false)],
        ..TcpPlan::default()
    };
    let result = check(addr, &plan).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert_eq!(result.tls_version, Some("TLS 1.3"));
}

#[tokio::test]
async fn tls_against_an_untrusted_certificate_fails_as_tls() {
    let tls = tls();
    let acceptor = tls.acceptor.clone();
    let (addr, _saw) = server(move |stream| async move {
        let _ = acceptor.accept(stream).await;
    })
    .await;
    let plan = TcpPlan {
        tls: true,
        ..TcpPlan::default()
    };
    let result = check(addr, &plan).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
}
