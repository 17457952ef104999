//! The one certificate of the TLS scenarios, as blackbox's `TestTCPConnectionWithTLS`
//! makes it: self-signed, CA:TRUE, and served as the leaf; pinned by `tls_config.ca_file`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use tokio_rustls::rustls;

use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// The certificate's PEM (the CA file's contents) and a server config serving it.
pub struct Pki {
    pub pem: String,
    pub server: Arc<ServerConfig>,
}

/// A fresh self-signed CA:TRUE certificate for `localhost`, 127.0.0.1 and ::1, valid from
/// a day ago for 90 days (whole seconds).
pub fn self_signed_ca() -> Pki {
    let key = KeyPair::generate().expect("a key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "connhealth blackbox differential");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(now - 86_400);
    params.not_after = epoch + Duration::from_secs(now + 90 * 86_400);
    let cert = params.self_signed(&key).expect("a self-signed certificate");
    let der: CertificateDer<'static> = cert.der().clone();
    let server =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![der],
                PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .expect("a server config");
    Pki {
        pem: cert.pem(),
        server: Arc::new(server),
    }
}
