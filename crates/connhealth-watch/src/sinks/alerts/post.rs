//! One HTTP/1.1 POST of a JSON body, over http or https (rustls, the system's roots),
//! within [`TIMEOUT`], on a small current-thread runtime owned by the receiver's thread:
//! a receiver that hangs holds up its own thread and no other.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;

/// The whole of one POST: connect, TLS, request and answer.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// At most this much of an answer's body is read (for the log).
const ANSWER_KEPT: usize = 512;

/// Posts JSON bodies, one at a time.
pub(crate) struct Poster {
    runtime: tokio::runtime::Runtime,
    /// Set up at the first https POST: the system's roots are read once per receiver,
    /// and only by one that needs them.
    tls: OnceLock<Result<tokio_rustls::TlsConnector, String>>,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster").finish_non_exhaustive()
    }
}

impl Poster {
    /// A poster, with its runtime.
    pub(crate) fn new() -> std::io::Result<Poster> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Poster {
            runtime,
            tls: OnceLock::new(),
        })
    }

    /// The TLS connector, trusting the system's roots (rustls-native-certs:
    /// `/etc/ssl/certs`, or `SSL_CERT_FILE` and `SSL_CERT_DIR` when set).
    fn tls(&self) -> Result<&tokio_rustls::TlsConnector, String> {
        let tls = self.tls.get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err("no system root certificates found to verify an https receiver with (install ca-certificates, or set SSL_CERT_FILE)".to_owned());
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("TLS setup: {err}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
        });
        tls.as_ref().map_err(Clone::clone)
    }

    /// POSTs `body` to `url` with `headers`: `Ok` on a 2xx answer, else why not.
    pub(crate) fn post(
        &self,
        url: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Vec<u8>,
    ) -> Result<(), String> {
        self.runtime.block_on(async {
            match tokio::time::timeout(TIMEOUT, self.send(url, headers, body)).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {}s", TIMEOUT.as_secs())),
            }
        })
    }

    async fn send(
        &self,
        url: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Vec<u8>,
    ) -> Result<(), String> {
        let https = url.scheme_str() == Some("https");
        let host = url.host().unwrap_or_default();
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = tokio::net::TcpStream::connect((bare, port))
            .await
            .map_err(|err| format!("cannot connect to {host}:{port}: {err}"))?;
        let _ = tcp.set_nodelay(true);
        if !https {
            return exchange(tcp, url, headers, body).await;
        }
        let tls = self.tls()?;
        let name = rustls::pki_types::ServerName::try_from(bare.to_owned())
            .map_err(|_| format!("{host:?} is not a valid TLS server name"))?;
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|err| format!("TLS handshake with {host}:{port}: {err}"))?;
        exchange(stream, url, headers, body).await
    }
}

/// The request and its answer, on a connected stream.
async fn exchange<S>(
    io: S,
    url: &Uri,
    headers: &[(HeaderName, HeaderValue)],
    body: Vec<u8>,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|err| format!("HTTP handshake: {err}"))?;
    let conn = tokio::spawn(conn);
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let authority = url.authority().map_or("", |a| a.as_str());
    let mut request = Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("connhealth/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(bytes_of(body)))
        .map_err(|err| format!("cannot build the request: {err}"))?;
    for (name, value) in headers {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    let answer = sender
        .send_request(request)
        .await
        .map_err(|err| format!("POST {url}: {err}"))?;
    let status = answer.status();
    let mut body = answer.into_body();
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            if kept.len() < ANSWER_KEPT {
                kept.extend_from_slice(&data[..data.len().min(ANSWER_KEPT - kept.len())]);
            }
        }
    }
    conn.abort();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "POST {url}: {status}: {}",
            String::from_utf8_lossy(&kept).trim()
        ))
    }
}

fn bytes_of(body: Vec<u8>) -> hyper::body::Bytes {
    hyper::body::Bytes::from(body)
}
