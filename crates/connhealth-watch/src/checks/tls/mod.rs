//! The `tls` check: a TLS handshake, the chain verified and its earliest expiry read, then
//! a graceful close.
//!
//! On the wire:
//!
//! 1. SYN, SYN-ACK, ACK;
//! 2. a ClientHello for the versions from `min_version` to `max_version` (TLS 1.2 and
//!    1.3 by default), with SNI = `server_name`, else the target's host (no SNI for an
//!    IP address, as RFC 6066 says; the certificate must then name the IP), and no
//!    session ticket: resumption is off, so every check sees the whole chain;
//! 3. the server's flight; the chain is verified against `ca_file` or the system roots
//!    (or not at all, with `insecure`), and a CA:TRUE certificate of `ca_file` presented
//!    byte for byte as the server's own is trusted as it is (still checked for its dates
//!    and names: what `openssl req -x509` makes, as curl and blackbox trust it); the
//!    checker's `client_cert` when the server asks for one (an empty Certificate
//!    without it); the checker's Finished;
//! 4. a close_notify alert, then a FIN;
//! 5. the checker reads (through TLS) until the server's close_notify or FIN, within
//!    what remains of the timeout and at most 64 KiB: the TLS 1.3 session tickets that
//!    the server sends after the handshake are read, so the close is a FIN, never an RST.
//!
//! No application data is sent. When the handshake fails, rustls's alert goes out (when
//! there is one), then a FIN, and the checker waits for the server's FIN the same way.
//!
//! The reported duration runs from the connect to the end of the handshake. The expiry
//! is the earliest `notAfter` among the certificates the peer sent, as blackbox's
//! `probe_ssl_earliest_cert_expiry`: it is reported whenever a chain arrived, also when
//! verification failed or the handshake timed out after it. Once the handshake
//! completed, the result also carries what blackbox reports of the verified chain
//! ([`crate::checks::ChainInfo`]: the leaf's fingerprint, names and SANs, and the
//! earliest expiry along the verified chain).

mod chain;
mod client;
mod client_auth;
mod files;
mod go_name;
mod verify;

pub(crate) use self::client::{TlsClient, Verified};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::rustls;

use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ProtocolVersion, SupportedProtocolVersion};

use self::verify::ChainRecorder;
use super::close::{close_gracefully, close_now, DISCARD_CAP};
use super::{CheckResult, Outcome};
use crate::config::{TlsPlan, TlsVersion};
use crate::human::Rounded;

/// Connects to `addr`, completes a TLS handshake with `host` as the SNI (unless
/// `plan.server_name` overrides it), verifies the chain, reports its earliest expiry
/// and the negotiated version, and closes with close_notify then FIN, all within
/// `timeout` (loading the trusted roots included).
///
/// `Ok` with the time from the connect to the end of the handshake; `Tls` when the
/// handshake fails, the chain does not verify, or a certificate expires within
/// `cert_min_days`; `Timeout`; connect errors as [`Outcome::of_io_error`] maps them;
/// `Error` for a bad server name, CA file or client certificate, or no version between
/// `min_version` and `max_version` (the checker's configuration, not the peer).
pub async fn check(addr: SocketAddr, host: &str, plan: &TlsPlan, timeout: Duration) -> CheckResult {
    let deadline = Instant::now() + timeout;
    let client = match TlsClient::new(plan, host, deadline, timeout).await {
        Ok(client) => client,
        Err(failed) => return failed,
    };

    let start = Instant::now();
    let mut tcp = match timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(err)) => {
            let detail = format!("connect: {err}");
            return CheckResult::failed(Outcome::of_io_error(&err), start.elapsed(), detail);
        }
        Err(_) => {
            let detail = format!("no connection within {}", Rounded(timeout));
            return CheckResult::failed(Outcome::Timeout, start.elapsed(), detail);
        }
    };
    // Each flight goes out at once, and so do close_notify and the FIN.
    let _ = tcp.set_nodelay(true);

    // The TLS stream borrows `tcp`, so that the socket outlives a handshake that fails
    // or times out, and is closed with a FIN all the same.
    let mut result = match timeout_at(deadline, client.handshake(&mut tcp, start)).await {
        Ok(Ok(mut tls)) => {
            let took = start.elapsed();
            let mut result = judge(&client.verified(tls.get_ref().1), took, plan);
            result.chain = client.chain_info().map(Box::new);
            close_tls(&mut tls, deadline).await;
            drop(tls);
            close_now(&tcp);
            result
        }
        Ok(Err(failed)) => {
            close_gracefully(&mut tcp, deadline).await;
            failed
        }
        Err(_) => {
            close_now(&tcp);
            let detail = format!("no TLS handshake within {}", Rounded(timeout));
            CheckResult::failed(Outcome::Timeout, start.elapsed(), detail)
        }
    };
    result.cert_expiry = client.cert_expiry();
    result
}

/// The name to send as SNI and to verify: an IP address (bare or in brackets) or a DNS
/// name.
fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    let bare = name
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(name);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare)
        .map(|name| name.to_owned())
        .map_err(|_| format!("{name:?} is not a valid TLS server name"))
}

/// A client config of one check: `versions` with ring, `recorder` as the verifier,
/// `client_cert` presented when the server asks for a certificate, no resumption (a
/// resumed handshake carries no certificate, so no expiry).
fn client_config(
    recorder: Arc<ChainRecorder>,
    versions: &[&'static SupportedProtocolVersion],
    client_cert: Option<Arc<CertifiedKey>>,
) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(Arc::clone(verify::provider()))
        .with_protocol_versions(versions)
        .map_err(|err| format!("TLS client setup: {err}"))?
        .dangerous()
        .with_custom_certificate_verifier(recorder);
    let mut config = match client_cert {
        Some(key) => builder.with_client_cert_resolver(client_auth::resolver(key)),
        None => builder.with_no_client_auth(),
    };
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// The versions from `plan.min_version` (TLS 1.2 when unset) to `plan.max_version` (TLS
/// 1.3 when unset); none is an error that says so.
fn offered_versions(
    plan: &TlsPlan,
) -> Result<&'static [&'static SupportedProtocolVersion], String> {
    static TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
    static TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
    static BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
    let min = plan.min_version.unwrap_or(TlsVersion::Tls12);
    let max = plan.max_version.unwrap_or(TlsVersion::Tls13);
    match (min, max) {
        (TlsVersion::Tls12, TlsVersion::Tls12) => Ok(TLS12),
        (TlsVersion::Tls13, TlsVersion::Tls13) => Ok(TLS13),
        (TlsVersion::Tls12, TlsVersion::Tls13) => Ok(BOTH),
        (TlsVersion::Tls13, TlsVersion::Tls12) => Err(format!(
            "no TLS version to offer: min_version {} is above max_version {}",
            tls_version_name(min),
            tls_version_name(max)
        )),
    }
}

fn tls_version_name(version: TlsVersion) -> &'static str {
    match version {
        TlsVersion::Tls12 => "TLS 1.2",
        TlsVersion::Tls13 => "TLS 1.3",
    }
}

/// The result of a completed handshake: `Ok`, unless a certificate expires within
/// `cert_min_days`.
fn judge(verified: &Verified, took: Duration, plan: &TlsPlan) -> CheckResult {
    let mut result = CheckResult::new(Outcome::Ok, took);
    result.tls_version = verified.version();
    if let Some(detail) = verified.expires_too_soon(plan) {
        result.outcome = Outcome::Tls;
        result.detail = Some(detail);
    }
    result
}

/// The version as blackbox's `probe_tls_version_info` names it.
fn version_name(version: ProtocolVersion) -> Option<&'static str> {
    match version {
        ProtocolVersion::TLSv1_3 => Some("TLS 1.3"),
        ProtocolVersion::TLSv1_2 => Some("TLS 1.2"),
        ProtocolVersion::TLSv1_1 => Some("TLS 1.1"),
        ProtocolVersion::TLSv1_0 => Some("TLS 1.0"),
        _ => None,
    }
}

/// A failed handshake: rustls's reason as `Tls`; a peer that closed mid-handshake is a
/// TLS failure too (a server that refuses the ClientHello often just closes); other I/O
/// errors (a reset, mostly) as [`Outcome::of_io_error`] maps them.
fn handshake_failed(err: &std::io::Error, took: Duration) -> CheckResult {
    let rustls_error = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let (outcome, detail) = match rustls_error {
        Some(reason) => (Outcome::Tls, format!("TLS handshake: {reason}")),
        None if err.kind() == std::io::ErrorKind::UnexpectedEof => (
            Outcome::Tls,
            "TLS handshake: the peer closed the connection".to_string(),
        ),
        None => (Outcome::of_io_error(err), format!("TLS handshake: {err}")),
    };
    CheckResult::failed(outcome, took, detail)
}

/// Steps 4 and 5: close_notify and FIN (tokio-rustls's `shutdown` queues the alert,
/// writes it, then shuts the socket's write side), then read through TLS until the
/// peer's close_notify or FIN, `deadline`, or [`DISCARD_CAP`] bytes.
async fn close_tls(tls: &mut tokio_rustls::client::TlsStream<&mut TcpStream>, deadline: Instant) {
    if !matches!(timeout_at(deadline, tls.shutdown()).await, Ok(Ok(()))) {
        return;
    }
    let mut scratch = [0u8; 2048];
    let mut discarded = 0;
    while discarded < DISCARD_CAP {
        match timeout_at(deadline, tls.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            // close_notify (0), a FIN without it or a reset (errors), or out of time.
            _ => return,
        }
    }
}
