//! `--web.config.file`: Prometheus exporter-toolkit's web config, as it is, so that a
//! scrape config written for node_exporter (`scheme: https`, `tls_config`, `basic_auth`)
//! works against the daemon unchanged.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt        # the chain, leaf first (PEM); or `cert:` inline
//!   key_file: server.key         # PKCS#8, PKCS#1 or SEC1 (PEM); or `key:` inline
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.crt       # or `client_ca:` inline
//!   min_version: TLS12           # TLS12 (the default) or TLS13
//!   max_version: TLS13           # TLS12 or TLS13 (the default)
//! http_server_config:
//!   http2: true                  # read and set aside: the daemon speaks HTTP/1.1
//!   headers:                     # the five exporter-toolkit allows
//!     X-Content-Type-Options: nosniff
//! basic_auth_users:
//!   alice: $2y$10$...            # bcrypt
//! ```
//!
//! Read as exporter-toolkit reads it: a key it does not know is an error; relative paths
//! are relative to the web config's folder; a `tls_server_config` with no certificate,
//! key or client CA at all means plain HTTP. What connhealth does not implement is an
//! error at its line rather than silently ignored: `cipher_suites` and
//! `curve_preferences` (rustls chooses; both accepted when empty), `client_allowed_sans`
//! (accepted when empty), `rate_limit`, and TLS versions below 1.2 (rustls has none).
//! `prefer_server_cipher_suites` and `http2` are read and have no effect worth saying:
//! rustls picks by the server's order of suites, and HTTP/2 is not offered (ALPN offers
//! `http/1.1` only, which every Prometheus speaks).
//!
//! Every problem is `FILE:LINE:COLUMN: message`, as for the TOML config. The file is
//! read at start and at every reload (SIGHUP, `POST /-/reload`); a reload that cannot
//! read it keeps the web config in force.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_saphyr::{Error, Location, Spanned};

use super::yaml::{without_place, Ordered};
use tokio_rustls::rustls;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};

use super::{ConfigError, ConfigErrors};

/// A web config, read and checked: what the HTTP side serves with.
#[derive(Debug)]
pub struct WebConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// TLS, when `tls_server_config` names a certificate.
    pub tls: Option<Arc<ServerConfig>>,
    /// Basic auth, when `basic_auth_users` has a user.
    pub basic_auth: Option<BasicAuth>,
    /// `http_server_config.headers`: added to every answer.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// Reads and checks the web config at `path`: every problem as `FILE:LINE:COLUMN: message`.
pub fn load_web(path: &Path) -> Result<WebConfig, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigErrors::one(path, format!("cannot read the web config file: {err}"))
    })?;
    parse_web(path, &text)
}

/// Checks `text` as if it were the web config at `path` (relative files are read from
/// its folder).
pub fn parse_web(path: &Path, text: &str) -> Result<WebConfig, ConfigErrors> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    // An empty file is a config with nothing in it, as exporter-toolkit reads it.
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        serde_saphyr::from_str_with_options::<Option<File>>(text, options)
            .map_err(|err| ConfigErrors(vec![yaml_error(path, &err)]))?
            .unwrap_or_default()
    };
    let mut read = Read {
        path,
        base: path.parent().unwrap_or(Path::new("")),
        errors: Vec::new(),
    };
    let tls = file.tls_server_config.and_then(|tls| read.tls(tls));
    let mut headers = Vec::new();
    if let Some(http) = file.http_server_config {
        // `http2`: exporter-toolkit's default is true; either way HTTP/1.1 is served.
        let _ = http.http2;
        for (name, value) in http.headers.map(|h| h.0).unwrap_or_default() {
            if let Some(header) = read.header(name, value) {
                headers.push(header);
            }
        }
    }
    if let Some(rate_limit) = file.rate_limit {
        read.error(
            &rate_limit.referenced,
            "`rate_limit` is not supported by connhealth watch; remove it (limit the rate in front of the daemon if you need to)",
        );
    }
    let mut users = Vec::new();
    for (user, hash) in file.basic_auth_users.map(|u| u.0).unwrap_or_default() {
        match bcrypt_cost(&hash.value) {
            Some(cost) => users.push((user.value, hash.value, cost)),
            None => read.error(
                &hash.referenced,
                format!(
                    "the password of `{}` is not a bcrypt hash ($2y$10$ and 53 characters); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`",
                    user.value
                ),
            ),
        }
    }
    if !read.errors.is_empty() {
        return Err(ConfigErrors(read.errors));
    }
    Ok(WebConfig {
        path: path.to_owned(),
        tls,
        basic_auth: (!users.is_empty()).then(|| BasicAuth::new(users)),
        headers,
    })
}

/// The users of `basic_auth_users` and their bcrypt hashes, with the successful logins
/// already verified: bcrypt costs 50-100 ms at cost 10, and a scrape every 15 s should
/// not pay it each time. The cache belongs to this config: a reload starts a new one.
pub struct BasicAuth {
    users: Vec<(String, String)>,
    /// A hash of a password no one has, at the highest cost of the users: an unknown
    /// user is verified against it, so that a failure costs the same either way.
    dummy: String,
    /// SHA-256 of user, hash and password, for every login that succeeded.
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(user, _)| user.as_str()).collect();
        f.debug_struct("BasicAuth").field("users", &users).finish()
    }
}

/// Logins remembered at most; past it the cache starts again (a user who logs in with
/// many passwords, or very many users).
const VERIFIED_MAX: usize = 1024;

impl BasicAuth {
    fn new(users: Vec<(String, String, u32)>) -> BasicAuth {
        let cost = users.iter().map(|(_, _, cost)| *cost).max().unwrap_or(10);
        let dummy = bcrypt::hash_with_salt("connhealth: no such user", cost, [7; 16])
            .map(|hash| hash.format_for_version(bcrypt::Version::TwoY))
            .unwrap_or_default();
        BasicAuth {
            users: users
                .into_iter()
                .map(|(user, hash, _)| (user, hash))
                .collect(),
            dummy,
            verified: Mutex::new(HashSet::new()),
        }
    }

    /// True when `user` and `password` were verified before (cheap: call it first).
    pub fn cached(&self, user: &str, password: &[u8]) -> bool {
        let Some(hash) = self.hash_of(user) else {
            return false;
        };
        let key = cache_key(user, hash, password);
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key)
    }

    /// Verifies `user` and `password` with bcrypt (slow: run it on a blocking thread).
    /// An unknown user is verified against a dummy hash of the same cost, so a failure
    /// takes as long whether the user exists or not.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        let Some(hash) = self.hash_of(user) else {
            let _ = bcrypt::verify(password, &self.dummy);
            return false;
        };
        if !bcrypt::verify(password, hash).unwrap_or(false) {
            return false;
        }
        let key = cache_key(user, hash, password);
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        verified.insert(key);
        true
    }

    fn hash_of(&self, user: &str) -> Option<&str> {
        self.users
            .iter()
            .find(|(name, _)| name == user)
            .map(|(_, hash)| hash.as_str())
    }
}

fn cache_key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user.as_bytes(), hash.as_bytes(), password] {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    let mut key = [0; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

/// The cost of a bcrypt hash, when it is one (`$2a$`, `$2b$`, `$2x$`, `$2y$`).
fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.parse::<bcrypt::HashParts>()
        .ok()
        .map(|parts| parts.get_cost())
}

/// Reading a checked file: where errors go.
struct Read<'a> {
    path: &'a Path,
    base: &'a Path,
    errors: Vec<ConfigError>,
}

impl Read<'_> {
    fn error(&mut self, at: &Location, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.path.to_owned(),
            line: usize::try_from(at.line()).unwrap_or(1).max(1),
            column: usize::try_from(at.column()).unwrap_or(1).max(1),
            message: message.into(),
        });
    }

    /// The text of a PEM given inline or as a file (relative to the web config's
    /// folder); `what` names it in messages. None when neither is given.
    fn pem(
        &mut self,
        inline: Option<Spanned<String>>,
        file: Option<Spanned<String>>,
        inline_key: &str,
        file_key: &str,
    ) -> Option<(Location, Vec<u8>)> {
        match (inline, file) {
            (Some(inline), Some(_)) => {
                self.error(
                    &inline.referenced,
                    format!("`{inline_key}` and `{file_key}` are both given; keep one of them"),
                );
                None
            }
            (Some(inline), None) if !inline.value.is_empty() => {
                Some((inline.referenced, inline.value.into_bytes()))
            }
            (None, Some(file)) if !file.value.is_empty() => {
                let path = self.base.join(&file.value);
                match std::fs::read(&path) {
                    Ok(bytes) => Some((file.referenced, bytes)),
                    Err(err) => {
                        self.error(
                            &file.referenced,
                            format!("cannot read {file_key} {}: {err}", path.display()),
                        );
                        None
                    }
                }
            }
            _ => None,
        }
    }

    fn tls(&mut self, tls: TlsYaml) -> Option<Arc<ServerConfig>> {
        for (key, list) in [
            ("cipher_suites", &tls.cipher_suites),
            ("curve_preferences", &tls.curve_preferences),
            ("client_allowed_sans", &tls.client_allowed_sans),
        ] {
            if let Some(list) = list.as_ref().filter(|list| !list.value.is_empty()) {
                let why = if key == "client_allowed_sans" {
                    "connhealth watch does not match client certificates' SANs; remove it, or sign client certificates with a CA of their own and give it as client_ca_file"
                } else {
                    "rustls chooses from its own safe list, TLS 1.2 and later; remove it"
                };
                self.error(&list.referenced, format!("`{key}` is not supported: {why}"));
            }
        }
        let versions = self.versions(tls.min_version.as_ref(), tls.max_version.as_ref());
        let has_cert = tls.cert.as_ref().is_some_and(|c| !c.value.is_empty())
            || tls.cert_file.as_ref().is_some_and(|c| !c.value.is_empty());
        let has_key = tls.key.as_ref().is_some_and(|k| !k.value.is_empty())
            || tls.key_file.as_ref().is_some_and(|k| !k.value.is_empty());
        let at = tls
            .cert_file
            .as_ref()
            .or(tls.cert.as_ref())
            .map(|c| c.referenced);
        let cert = self.pem(tls.cert, tls.cert_file, "cert", "cert_file");
        let key = self.pem(tls.key, tls.key_file, "key", "key_file");
        let client_ca = self.pem(
            tls.client_ca,
            tls.client_ca_file,
            "client_ca",
            "client_ca_file",
        );
        if !has_cert && !has_key && client_ca.is_none() {
            // exporter-toolkit: no TLS config at all is plain HTTP. It also ignores a
            // client_auth_type then; here that is an error, since whoever wrote it
            // expects client certificates and would get plain HTTP.
            if let Some(kind) = tls
                .client_auth_type
                .filter(|k| !matches!(k.value.as_str(), "" | "NoClientCert"))
            {
                self.error(&kind.referenced, format!("client_auth_type {} without a certificate would serve plain HTTP; give cert_file and key_file (and client_ca_file)", kind.value));
            }
            return None;
        }
        let client_auth = self.client_auth(tls.client_auth_type, client_ca);
        let at = at.unwrap_or(Location::UNKNOWN);
        if !has_cert {
            self.error(&at, "tls_server_config has no certificate: give cert_file (PEM, the chain with the leaf first)");
        }
        if !has_key {
            self.error(&at, "tls_server_config has no key: give key_file (PEM)");
        }
        let (cert, key, versions, client_auth) = (cert?, key?, versions?, client_auth?);
        let chain = self.certificates(&cert, "cert_file")?;
        let key = match rustls_pemfile::private_key(&mut key.1.as_slice()) {
            Ok(Some(key)) => key,
            Ok(None) => {
                self.error(&key.0, "no private key (PEM: PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in key_file");
                return None;
            }
            Err(err) => {
                self.error(&key.0, format!("cannot read the key as PEM: {err}"));
                return None;
            }
        };
        self.server_config(
            cert.0,
            chain,
            key,
            versions,
            client_auth,
            tls.prefer_server_cipher_suites,
        )
    }

    fn server_config(
        &mut self,
        at: Location,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        versions: &'static [&'static rustls::SupportedProtocolVersion],
        client_auth: Arc<dyn ClientCertVerifier>,
        prefer_server: Option<Spanned<bool>>,
    ) -> Option<Arc<ServerConfig>> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|err| self.error(&at, format!("cannot set the TLS versions: {err}")))
            .ok()?;
        let mut config = match builder
            .with_client_cert_verifier(client_auth)
            .with_single_cert(chain, key)
        {
            Ok(config) => config,
            Err(err) => {
                self.error(
                    &at,
                    format!("the certificate and the key do not make a TLS server: {err}; check that key_file is the key of cert_file's first certificate"),
                );
                return None;
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.ignore_client_order = prefer_server.is_none_or(|prefer| prefer.value);
        Some(Arc::new(config))
    }

    fn certificates(
        &mut self,
        pem: &(Location, Vec<u8>),
        key: &str,
    ) -> Option<Vec<CertificateDer<'static>>> {
        let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.1.as_slice()).collect();
        match certs {
            Ok(certs) if !certs.is_empty() => Some(certs),
            Ok(_) => {
                self.error(
                    &pem.0,
                    format!("no certificate (PEM: BEGIN CERTIFICATE) in {key}"),
                );
                None
            }
            Err(err) => {
                self.error(
                    &pem.0,
                    format!("cannot read {key} as PEM certificates: {err}"),
                );
                None
            }
        }
    }

    fn versions(
        &mut self,
        min: Option<&Spanned<String>>,
        max: Option<&Spanned<String>>,
    ) -> Option<&'static [&'static rustls::SupportedProtocolVersion]> {
        static TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
        static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        static BOTH: &[&rustls::SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        let mut read = |version: Option<&Spanned<String>>, key: &str, default: u8| {
            let Some(version) = version else {
                return Some(default);
            };
            match version.value.as_str() {
                "TLS12" => Some(12),
                "TLS13" => Some(13),
                "TLS10" | "TLS11" => {
                    self.error(&version.referenced, format!("{key} {} is not supported: connhealth watch (rustls) speaks TLS 1.2 and 1.3 only; write TLS12 or TLS13", version.value));
                    None
                }
                other => {
                    self.error(
                        &version.referenced,
                        format!("unknown TLS version {other:?} for {key}; write TLS12 or TLS13"),
                    );
                    None
                }
            }
        };
        let (low, high) = (read(min, "min_version", 12), read(max, "max_version", 13));
        match (low?, high?) {
            (12, 12) => Some(TLS12),
            (13, 13) => Some(TLS13),
            (12, 13) => Some(BOTH),
            _ => {
                let at = min.map_or(Location::UNKNOWN, |m| m.referenced);
                self.error(
                    &at,
                    "min_version is above max_version; no TLS version is left",
                );
                None
            }
        }
    }

    /// The client certificate policy of `client_auth_type`, as close to Go's as rustls
    /// allows:
    ///
    /// * `NoClientCert` (the default): none asked for;
    /// * `RequestClientCert`: asked for, optional, not verified against a CA (but the
    ///   client must still prove it holds the certificate's key, as in Go);
    /// * `RequireAnyClientCert` (and its old name `RequireClientCert`): required, not
    ///   verified against a CA (the same proof of the key);
    /// * `VerifyClientCertIfGiven`: optional; one given must chain to `client_ca_file`
    ///   (rustls's `WebPkiClientVerifier` with unauthenticated clients allowed);
    /// * `RequireAndVerifyClientCert`: required, and must chain to `client_ca_file`
    ///   (`WebPkiClientVerifier`). The one to use for client authentication.
    ///
    /// The two verifying policies need `client_ca_file` (Go would fall back to the
    /// system's roots, which is almost never meant: here it is an error); a client CA
    /// with `NoClientCert` is an error, as in exporter-toolkit.
    fn client_auth(
        &mut self,
        kind: Option<Spanned<String>>,
        ca: Option<(Location, Vec<u8>)>,
    ) -> Option<Arc<dyn ClientCertVerifier>> {
        let name = kind.as_ref().map_or("", |k| k.value.as_str());
        let at = kind.as_ref().map_or(Location::UNKNOWN, |k| k.referenced);
        let roots = match &ca {
            Some(pem) => {
                let certs = self.certificates(pem, "client_ca_file")?;
                let mut roots = RootCertStore::empty();
                for cert in certs {
                    if let Err(err) = roots.add(cert) {
                        self.error(
                            &pem.0,
                            format!("a client CA certificate cannot be used: {err}"),
                        );
                        return None;
                    }
                }
                Some(Arc::new(roots))
            }
            None => None,
        };
        let verify = |optional: bool, this: &mut Self| {
            let Some(roots) = roots.clone() else {
                this.error(&at, format!("client_auth_type {name} verifies client certificates against client_ca_file: give it"));
                return None;
            };
            let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider());
            if optional {
                builder = builder.allow_unauthenticated();
            }
            builder
                .build()
                .map_err(|err| this.error(&at, format!("cannot verify client certificates: {err}")))
                .ok()
        };
        match name {
            "" | "NoClientCert" => {
                if let Some((at, _)) = &ca {
                    self.error(at, "a client CA is given without a client_auth_type; add client_auth_type: RequireAndVerifyClientCert");
                    return None;
                }
                Some(WebPkiClientVerifier::no_client_auth())
            }
            "RequestClientCert" => Some(Arc::new(AnyClientCert::new(false))),
            "RequireAnyClientCert" | "RequireClientCert" => {
                Some(Arc::new(AnyClientCert::new(true)))
            }
            "VerifyClientCertIfGiven" => verify(true, self),
            "RequireAndVerifyClientCert" => verify(false, self),
            other => {
                self.error(&at, format!("unknown client_auth_type {other:?}; write NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"));
                None
            }
        }
    }

    fn header(
        &mut self,
        name: Spanned<String>,
        value: Spanned<String>,
    ) -> Option<(http::HeaderName, http::HeaderValue)> {
        const ALLOWED: [&str; 5] = [
            "Content-Security-Policy",
            "X-Frame-Options",
            "X-Content-Type-Options",
            "X-XSS-Protection",
            "Strict-Transport-Security",
        ];
        let Some(canonical) = ALLOWED.iter().find(|a| a.eq_ignore_ascii_case(&name.value)) else {
            self.error(
                &name.referenced,
                format!(
                    "header {:?} cannot be set here; exporter-toolkit allows {}",
                    name.value,
                    ALLOWED.join(", ")
                ),
            );
            return None;
        };
        if value.value.is_empty() {
            return None; // "Unset if blank"
        }
        let allowed_values: &[&str] = match *canonical {
            "X-Frame-Options" => &["deny", "sameorigin"],
            "X-Content-Type-Options" => &["nosniff"],
            _ => &[],
        };
        if !allowed_values.is_empty()
            && !allowed_values
                .iter()
                .any(|v| v.eq_ignore_ascii_case(&value.value))
        {
            self.error(
                &value.referenced,
                format!("{canonical} takes {}", allowed_values.join(" or ")),
            );
            return None;
        }
        match http::HeaderValue::from_str(&value.value) {
            Ok(header) => Some((http::HeaderName::from_static(lowercase(canonical)), header)),
            Err(_) => {
                self.error(
                    &value.referenced,
                    "this header value holds a character HTTP does not allow (a line break, say)",
                );
                None
            }
        }
    }
}

fn lowercase(name: &str) -> &'static str {
    match name {
        "Content-Security-Policy" => "content-security-policy",
        "X-Frame-Options" => "x-frame-options",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "strict-transport-security",
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `RequestClientCert` and `RequireAnyClientCert`: a certificate is asked for (and,
/// `required`, must be given) but not verified against a CA; the client still proves
/// it holds its key by signing the handshake, as Go's `crypto/tls` has it prove.
#[derive(Debug)]
struct AnyClientCert {
    required: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyClientCert {
    fn new(required: bool) -> AnyClientCert {
        AnyClientCert {
            required,
            algorithms: provider().signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A serde error at its place, in the web config's words.
fn yaml_error(path: &Path, err: &Error) -> ConfigError {
    let (line, column) = err.location().map_or((1, 1), |at| {
        (
            usize::try_from(at.line()).unwrap_or(1).max(1),
            usize::try_from(at.column()).unwrap_or(1).max(1),
        )
    });
    let message = match err {
        Error::Message { msg, .. } => msg.clone(),
        Error::SerdeUnknownField {
            field, expected, ..
        } => format!(
            "`{field}` is not a key exporter-toolkit's web config has here; write one of {}",
            expected.join(", ")
        ),
        Error::DuplicateMappingKey { key, .. } => format!(
            "`{}` is written twice in one mapping; keep one of them",
            key.as_deref().unwrap_or("this key")
        ),
        other => {
            let text = without_place(other);
            format!(
                "cannot read this as exporter-toolkit's web config ({}); see docs/web-config.md for the format",
                text.lines().map(str::trim).collect::<Vec<_>>().join(" ")
            )
        }
    };
    ConfigError {
        file: path.to_owned(),
        line,
        column,
        message,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsYaml>,
    http_server_config: Option<HttpYaml>,
    basic_auth_users: Option<Ordered<Spanned<String>, Spanned<String>>>,
    rate_limit: Option<Spanned<IgnoredAny>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsYaml {
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    client_ca: Option<Spanned<String>>,
    cert_file: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    client_auth_type: Option<Spanned<String>>,
    client_ca_file: Option<Spanned<String>>,
    client_allowed_sans: Option<Spanned<Vec<String>>>,
    min_version: Option<Spanned<String>>,
    max_version: Option<Spanned<String>>,
    cipher_suites: Option<Spanned<Vec<String>>>,
    prefer_server_cipher_suites: Option<Spanned<bool>>,
    curve_preferences: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpYaml {
    http2: Option<bool>,
    headers: Option<Ordered<Spanned<String>, Spanned<String>>>,
}
