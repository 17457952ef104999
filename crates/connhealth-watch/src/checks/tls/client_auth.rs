//! The client certificate a check presents when the server asks for one (blackbox's
//! `tls_config` `cert_file` and `key_file`): a PEM chain, leaf first, and its private key
//! (PKCS#8, PKCS#1 or SEC1). Both files are read, and the key loaded, once per pair of
//! paths, and again when either changes (see [`super::files`]); each check's config then
//! takes the loaded key as `with_client_auth_cert` would make it, without parsing it
//! again.

use std::sync::Arc;

use tokio_rustls::rustls;

use rustls::pki_types::CertificateDer;
use rustls::sign::{CertifiedKey, SingleCertAndKey};

use super::files::FileCache;
use super::verify::provider;
use crate::config::ClientCert;

/// The loaded client certificates, by their two paths.
static CLIENT_CERTS: FileCache<Arc<CertifiedKey>> = FileCache::new();

/// The certificate and key of `files`, loaded. An unreadable or unusable file is an
/// error naming it.
pub(super) async fn load(files: &ClientCert) -> Result<Arc<CertifiedKey>, String> {
    let paths = [
        (files.cert_file.as_path(), "client certificate file"),
        (files.key_file.as_path(), "client key file"),
    ];
    CLIENT_CERTS
        .get(&paths, |contents| parse(files, &contents[0], &contents[1]))
        .await
}

fn parse(files: &ClientCert, cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let cert_file = files.cert_file.display();
    let key_file = files.key_file.display();
    let chain = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<CertificateDer<'static>>, _>>()
        .map_err(|err| format!("client certificate file {cert_file}: bad PEM: {err}"))?;
    if chain.is_empty() {
        return Err(format!(
            "client certificate file {cert_file}: no CERTIFICATE in it"
        ));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|err| format!("client key file {key_file}: bad PEM: {err}"))?
        .ok_or_else(|| {
            format!("client key file {key_file}: no private key in it (PKCS#8, PKCS#1 or SEC1)")
        })?;
    // What `with_client_auth_cert` does: load the key, and check it is the leaf's.
    let certified = CertifiedKey::from_der(chain, key, provider()).map_err(|err| {
        format!("client key file {key_file} with certificate file {cert_file}: {err}")
    })?;
    Ok(Arc::new(certified))
}

/// The resolver of a config that presents `key`: what `with_client_auth_cert` installs.
pub(super) fn resolver(key: Arc<CertifiedKey>) -> Arc<SingleCertAndKey> {
    Arc::new(SingleCertAndKey::from(key))
}
