//! Whom a `tls` check trusts, and what it reads from the chain the peer sent.
//!
//! Every check wraps its trust in a [`ChainRecorder`], which reads the `notAfter` of each
//! certificate the peer sent before it hands the chain to the real verifier: the expiry
//! is known even when verification then fails; once verification succeeded, it reads
//! what blackbox reports of the chain (see [`super::chain`]). The trust itself is built
//! once: the system roots once per process, on first use; a CA file once per path,
//! looked at again at most every [`super::files::RECHECK`] and re-read when its size or
//! mtime changed.
//!
//! A CA file's CA:TRUE certificates are also pinned: one of them presented byte for byte as
//! the server's own certificate is trusted, as curl (OpenSSL) and blackbox (Go's
//! crypto/x509) trust it. That is what `openssl req -x509` makes, and webpki refuses it
//! as `CaUsedAsEndEntity`. See [`verify_pinned`].

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_rustls::rustls;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use x509_parser::certificate::X509Certificate;

use super::chain::{self, Anchor, ChainCert, GO_ZERO_TIME};
use super::files::FileCache;
use crate::checks::ChainInfo;
use crate::config::TlsPlan;

/// The crypto provider of every `tls` check: ring.
pub(super) fn provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// What a chain must lead to.
#[derive(Debug, Clone)]
pub(super) enum Trust {
    /// One of these roots, with the server's name in the leaf; or one of the `pinned`
    /// certificates itself.
    Roots {
        /// webpki's full verification against the roots.
        verifier: Arc<WebPkiServerVerifier>,
        /// The CA file's CA:TRUE certificates, trusted also as the server's own
        /// certificate (see [`verify_pinned`]); none for the system roots.
        pinned: Arc<[CertificateDer<'static>]>,
        /// The roots again, as chain building reads them (their dates, which the
        /// verifier does not keep), for the last chain's expiry.
        anchors: Arc<[Anchor]>,
    },
    /// `insecure`: any chain, any name. The handshake's signature is still checked
    /// against the leaf's key, as Go's `InsecureSkipVerify` and `curl -k` do: the peer
    /// proves it holds the key of the certificate it shows.
    Anything,
    /// The system roots could not be loaded, so nothing verifies; says why.
    NoRoots(Arc<str>),
}

/// The trust of `plan`: anything when `insecure`, else its CA file or the system roots.
/// An unreadable or unusable CA file is an error, a sentence naming the file.
pub(super) async fn trust(plan: &TlsPlan) -> Result<Trust, String> {
    if plan.insecure {
        return Ok(Trust::Anything);
    }
    match &plan.ca_file {
        Some(path) => ca_file(path).await,
        None => Ok(system_roots().await),
    }
}

/// The system roots (rustls-native-certs: `/etc/ssl/certs` and `SSL_CERT_FILE` on
/// Linux), loaded on a blocking thread at first use and kept for the process's life.
async fn system_roots() -> Trust {
    static SYSTEM: tokio::sync::OnceCell<Trust> = tokio::sync::OnceCell::const_new();
    SYSTEM
        .get_or_init(|| async {
            tokio::task::spawn_blocking(load_system_roots)
                .await
                .unwrap_or_else(|err| {
                    Trust::NoRoots(format!("loading the system roots failed: {err}").into())
                })
        })
        .await
        .clone()
}

fn load_system_roots() -> Trust {
    let loaded = rustls_native_certs::load_native_certs();
    let anchors: Arc<[Anchor]> = loaded.certs.iter().filter_map(Anchor::of).collect();
    let mut roots = RootCertStore::empty();
    let (added, _unusable) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let why = if loaded.errors.is_empty() {
            "none found".to_string()
        } else {
            let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
            errors.join("; ")
        };
        return Trust::NoRoots(format!("no system root certificates ({why})").into());
    }
    match verifier(roots) {
        Ok(verifier) => Trust::Roots {
            verifier,
            pinned: Arc::new([]),
            anchors,
        },
        Err(why) => Trust::NoRoots(why.into()),
    }
}

/// The parsed CA files, by path.
static CA_FILES: FileCache<Trust> = FileCache::new();

async fn ca_file(path: &Path) -> Result<Trust, String> {
    CA_FILES
        .get(&[(path, "CA file")], |contents| {
            parse_ca_pem(&contents[0]).map_err(|why| format!("CA file {}: {why}", path.display()))
        })
        .await
}

/// Every `CERTIFICATE` in `pem` becomes a trust anchor, and each CA:TRUE one is pinned
/// too; other PEM sections are skipped.
fn parse_ca_pem(pem: &[u8]) -> Result<Trust, String> {
    let mut roots = RootCertStore::empty();
    let mut pinned = Vec::new();
    let mut anchors = Vec::new();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        let cert = cert.map_err(|err| format!("bad PEM: {err}"))?;
        let anchor = Anchor::of(&cert);
        // A certificate without CA:TRUE presented as the leaf already verifies through
        // webpki against itself as the anchor, so only CA:TRUE ones need the pin.
        let is_ca = anchor.as_ref().is_some_and(Anchor::is_ca);
        anchors.extend(anchor);
        if is_ca {
            pinned.push(cert.clone());
        }
        roots
            .add(cert)
            .map_err(|err| format!("a certificate cannot be a trust anchor: {err}"))?;
    }
    if roots.is_empty() {
        return Err("no CERTIFICATE in it".into());
    }
    Ok(Trust::Roots {
        verifier: verifier(roots)?,
        pinned: pinned.into(),
        anchors: anchors.into(),
    })
}

fn verifier(roots: RootCertStore) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider()))
        .build()
        .map_err(|err| err.to_string())
}

/// The certificate of a chain that expires first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Expiry {
    /// Its `notAfter`, in Unix seconds (negative before 1970).
    pub(super) unix: i64,
    /// Its subject (RFC 4514), or its serial number when the subject is empty.
    pub(super) subject: String,
}

impl Expiry {
    /// `notAfter` as a `SystemTime`.
    pub(super) fn not_after(&self) -> SystemTime {
        let secs = Duration::from_secs(self.unix.unsigned_abs());
        if self.unix >= 0 {
            UNIX_EPOCH.checked_add(secs).unwrap_or(UNIX_EPOCH)
        } else {
            UNIX_EPOCH.checked_sub(secs).unwrap_or(UNIX_EPOCH)
        }
    }

    /// `notAfter` in RFC 3339 (`2030-06-01T00:00:00Z`).
    pub(super) fn date(&self) -> String {
        // humantime panics outside 1970..=9999; X.509 dates reach back to 1950.
        match u64::try_from(self.unix) {
            Ok(secs) if secs < 253_402_300_800 => {
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs))
                    .to_string()
            }
            _ => format!("Unix time {}", self.unix),
        }
    }
}

/// The earliest `notAfter` among `chain`'s certificates.
fn earliest_expiry<'a>(chain: impl IntoIterator<Item = &'a X509Certificate<'a>>) -> Option<Expiry> {
    chain
        .into_iter()
        .map(|cert| (cert.validity().not_after.timestamp(), cert))
        .min_by_key(|(unix, _)| *unix)
        .map(|(unix, cert)| {
            let subject = cert.subject().to_string();
            let subject = if subject.is_empty() {
                format!("serial {}", cert.raw_serial_as_string())
            } else {
                subject
            };
            Expiry { unix, subject }
        })
}

/// Verifies `end_entity`, a CA:TRUE certificate that is byte for byte one of the CA file's,
/// as the server's own certificate: trusted as it is, so no chain and no signature to
/// check, but it must be valid at `now`, allowed for TLS servers when it restricts its
/// extended key usage, and name `server_name`. That is what Go's crypto/x509 does when
/// the leaf is itself one of the roots, and what curl (OpenSSL) accepts. Each refusal
/// is the error webpki gives for the same fault, so the reason reads the same.
///
/// A CA:TRUE leaf that is not pinned is never seen here: webpki refuses it.
fn verify_pinned(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(end_entity.as_ref())
        .map_err(|_| CertificateError::BadEncoding)?;
    let validity = cert.validity();
    // X.509 dates reach back to 1950; UnixTime starts at 1970, so only the reason's
    // context is clamped, never the comparison.
    let unix_time = |secs: i64| {
        UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
    };
    let time = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    // The same comparisons as webpki's, so a certificate expires at the same second.
    if time < not_before {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before: unix_time(not_before),
        }
        .into());
    }
    if time > not_after {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after: unix_time(not_after),
        }
        .into());
    }
    match cert.extended_key_usage() {
        Ok(None) => {}
        Ok(Some(eku)) if eku.value.any || eku.value.server_auth => {}
        Ok(Some(_)) => return Err(CertificateError::InvalidPurpose.into()),
        Err(_) => return Err(CertificateError::BadEncoding.into()),
    }
    let parsed = ParsedCertificate::try_from(end_entity)?;
    rustls::client::verify_server_name(&parsed, server_name)?;
    Ok(ServerCertVerified::assertion())
}

/// One check's verifier: notes the earliest expiry of the chain the peer sent, then
/// verifies as its [`Trust`] says, then (when it verified) notes what blackbox reports
/// of the chain.
#[derive(Debug)]
pub(super) struct ChainRecorder {
    trust: Trust,
    earliest: OnceLock<Expiry>,
    info: OnceLock<ChainInfo>,
}

impl ChainRecorder {
    /// A recorder that has seen no chain yet.
    pub(super) fn new(trust: Trust) -> ChainRecorder {
        ChainRecorder {
            trust,
            earliest: OnceLock::new(),
            info: OnceLock::new(),
        }
    }

    /// The earliest expiry of the chain the peer sent, once it sent one.
    pub(super) fn earliest(&self) -> Option<&Expiry> {
        self.earliest.get()
    }

    /// What blackbox reports of the chain, once it verified (and its leaf parsed).
    pub(super) fn info(&self) -> Option<&ChainInfo> {
        self.info.get()
    }

    /// Verifies as the [`Trust`] says.
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.trust {
            // Before webpki, which refuses every CA:TRUE leaf as `CaUsedAsEndEntity`.
            Trust::Roots { pinned, .. } if pinned.iter().any(|pin| pin == end_entity) => {
                verify_pinned(end_entity, server_name, now)
            }
            Trust::Roots { verifier, .. } => verifier.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            Trust::Anything => Ok(ServerCertVerified::assertion()),
            Trust::NoRoots(why) => Err(rustls::Error::General(why.to_string())),
        }
    }

    /// Go's `getLastChainExpiry` for a chain that verified (see [`super::chain`]): Go's
    /// zero time when nothing was verified (`insecure`).
    fn last_chain_expiry(
        &self,
        end_entity: &CertificateDer<'_>,
        leaf: &X509Certificate<'_>,
        intermediates: &[X509Certificate<'_>],
        now: UnixTime,
    ) -> i64 {
        let Trust::Roots { anchors, .. } = &self.trust else {
            return GO_ZERO_TIME;
        };
        let sent: Vec<ChainCert> = intermediates.iter().map(ChainCert::of).collect();
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        chain::last_chain_expiry(end_entity, &ChainCert::of(leaf), &sent, anchors, now)
            .or_else(|| {
                earliest_expiry(std::iter::once(leaf).chain(intermediates))
                    .map(|expiry| expiry.unix)
            })
            .unwrap_or(GO_ZERO_TIME)
    }
}

impl ServerCertVerifier for ChainRecorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Each certificate parsed once; one that does not parse is left out.
        fn parse<'a>(der: &'a CertificateDer<'_>) -> Option<X509Certificate<'a>> {
            x509_parser::parse_x509_certificate(der.as_ref())
                .ok()
                .map(|(_, cert)| cert)
        }
        let leaf = parse(end_entity);
        let rest: Vec<X509Certificate<'_>> = intermediates.iter().filter_map(parse).collect();
        if let Some(expiry) = earliest_expiry(leaf.iter().chain(&rest)) {
            let _ = self.earliest.set(expiry);
        }
        let verified = self.verify(end_entity, intermediates, server_name, ocsp_response, now)?;
        if let Some(leaf) = &leaf {
            let last = self.last_chain_expiry(end_entity, leaf, &rest, now);
            let _ = self.info.set(chain::chain_info(end_entity, leaf, last));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
