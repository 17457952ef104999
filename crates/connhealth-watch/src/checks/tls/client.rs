//! One TLS client connection, verified as the `tls` kind verifies: shared by the `tls`
//! kind, which closes it after the handshake, and by `http`'s https, which keeps it.
//!
//! The trust is the `tls` kind's ([`super::verify`]): `ca_file` (its CA:TRUE certificates
//! also pinned as a server's own), the system roots, or anything with `insecure`. Each
//! connection has its own [`ChainRecorder`], so the expiry read is that connection's
//! chain, and no resumption: a resumed handshake carries no certificate. (A kept https
//! connection keeps its session all the same: that is what keeping it saves.)

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{timeout_at, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConnection;
use tokio_rustls::TlsConnector;

use super::verify::{self, ChainRecorder, Expiry};
use super::version_name;
use super::{client_auth, client_config, handshake_failed, offered_versions, server_name};
use crate::checks::{ChainInfo, CheckResult, Outcome};
use crate::config::TlsPlan;
use crate::human::Rounded;

/// A TLS client for one connection to one server name.
pub(crate) struct TlsClient {
    connector: TlsConnector,
    recorder: Arc<ChainRecorder>,
    name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("name", &self.name)
            .field("recorder", &self.recorder)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// A client that sends `plan.server_name`, else `host`, as SNI (none for an IP
    /// address, bare or in brackets, as RFC 6066 says) and verifies the chain for that
    /// name, offering the versions from `plan.min_version` to `plan.max_version` and
    /// presenting `plan.client_cert` when asked, loading the trust and the client
    /// certificate by `deadline`.
    ///
    /// A bad server name, CA file or client certificate, or an empty version range, is
    /// an `Error` result (the checker's configuration, not the peer); files that do not
    /// load in time are a `Timeout` that says so.
    pub(crate) async fn new(
        plan: &TlsPlan,
        host: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<TlsClient, CheckResult> {
        let failed = |outcome, detail: String| CheckResult::failed(outcome, Duration::ZERO, detail);
        let name = server_name(plan.server_name.as_deref().unwrap_or(host))
            .map_err(|detail| failed(Outcome::Error, detail))?;
        let versions = offered_versions(plan).map_err(|detail| failed(Outcome::Error, detail))?;
        let trust = match timeout_at(deadline, verify::trust(plan)).await {
            Ok(Ok(trust)) => trust,
            Ok(Err(detail)) => return Err(failed(Outcome::Error, detail)),
            Err(_) => {
                let detail = format!("the trusted roots did not load within {}", Rounded(timeout));
                return Err(failed(Outcome::Timeout, detail));
            }
        };
        let client_cert = match &plan.client_cert {
            None => None,
            Some(files) => match timeout_at(deadline, client_auth::load(files)).await {
                Ok(Ok(key)) => Some(key),
                Ok(Err(detail)) => return Err(failed(Outcome::Error, detail)),
                Err(_) => {
                    let detail = format!(
                        "the client certificate did not load within {}",
                        Rounded(timeout)
                    );
                    return Err(failed(Outcome::Timeout, detail));
                }
            },
        };
        let recorder = Arc::new(ChainRecorder::new(trust));
        let config = client_config(Arc::clone(&recorder), versions, client_cert)
            .map_err(|detail| failed(Outcome::Error, detail))?;
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            recorder,
            name,
        })
    }

    /// The handshake over `io`, with no time limit of its own (the caller's). A failure is
    /// `Tls` with rustls's reason, or the I/O error's outcome; its duration is the time
    /// since `start`.
    pub(crate) async fn handshake<IO>(
        &self,
        io: IO,
        start: Instant,
    ) -> Result<TlsStream<IO>, CheckResult>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.connector
            .connect(self.name.clone(), io)
            .await
            .map_err(|err| handshake_failed(&err, start.elapsed()))
    }

    /// What the handshake on `conn`, this client's, showed.
    pub(crate) fn verified(&self, conn: &ClientConnection) -> Verified {
        Verified {
            earliest: self.recorder.earliest().cloned(),
            version: conn.protocol_version().and_then(version_name),
        }
    }

    /// What blackbox reports of the chain besides its earliest expiry, once a handshake
    /// completed (strictly: once the peer's certificate verified and its leaf parsed, so
    /// ask after the handshake).
    pub(crate) fn chain_info(&self) -> Option<ChainInfo> {
        self.recorder.info().cloned()
    }

    /// The earliest `notAfter` of the chain the peer sent, once it sent one (also when
    /// verification then failed).
    pub(crate) fn cert_expiry(&self) -> Option<SystemTime> {
        self.recorder.earliest().map(Expiry::not_after)
    }
}

/// What a completed handshake showed. A kept connection keeps it, and its certificate is
/// judged against `cert_min_days` again at every check: time runs on while the
/// connection stays.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    earliest: Option<Expiry>,
    version: Option<&'static str>,
}

impl Verified {
    /// The earliest `notAfter` of the chain.
    pub(crate) fn cert_expiry(&self) -> Option<SystemTime> {
        self.earliest.as_ref().map(Expiry::not_after)
    }

    /// The negotiated version, as blackbox names it (`TLS 1.3`).
    pub(crate) fn version(&self) -> Option<&'static str> {
        self.version
    }

    /// The failure's detail when a certificate of the chain expires within
    /// `plan.cert_min_days` from now.
    pub(crate) fn expires_too_soon(&self, plan: &TlsPlan) -> Option<String> {
        let days = plan.cert_min_days?;
        let expiry = self.earliest.as_ref()?;
        let horizon = SystemTime::now() + Duration::from_secs(u64::from(days) * 86_400);
        if expiry.not_after() > horizon {
            return None;
        }
        let when = if expiry.not_after() <= SystemTime::now() {
            "expired"
        } else {
            "expires"
        };
        Some(format!(
            "certificate {} {when} {}, within cert_min_days = {days}",
            expiry.subject,
            expiry.date()
        ))
    }
}
