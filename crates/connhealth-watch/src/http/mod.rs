//! The HTTP server, on `--listen`. It only reads the state, except `POST /-/reload`.
//!
//! | path | answer |
//! |---|---|
//! | `GET /` | the status page: every target's state, uptime, last hour and transitions, paged, filtered, updated live (see [the status page](#the-status-page)) |
//! | `GET /api/targets?state=&label=NAME=VALUE&q=&sort=&offset=&limit=` | JSON: one page of the status page's rows, the number that matched, counts by state |
//! | `GET /events` | Server-Sent Events: each transition (coalesced every 250 ms), a keep-alive comment every 15 s ([`crate::sinks::events`]) |
//! | `GET /badge/NAME.svg` | an SVG badge, `NAME \| ▲ up`; 404 (a badge too) for an unknown target |
//! | `GET /metrics` | the fleet's and the daemon's series ([`crate::sinks::metrics`]), gzipped if asked |
//! | `GET /probe?target=HOST:PORT&module=NAME` | one check now, in blackbox_exporter's format ([`probe`]) |
//! | `GET /status[?state=STATE[,STATE...]][&target=NAME...]` | JSON: every target's state, last check and transitions ([`crate::sinks::status`]); `state` (`up`, `down`, `unknown`) and `target` (an exact name, repeated for several) keep the targets that pass both |
//! | `GET /api/history?target=NAME[&window=24h]` | JSON: one target's transitions (each as `/status` shows it) and per-minute aggregates over the window, 24 h by default, 30 days at most (`http/history.rs`); from `--data-dir`'s file, or from memory |
//! | `POST /api/silence?target=NAME&for=30m` | no notification for that target until then (`for=0s` lifts it); 400 for a bad duration, 404 for an unknown target |
//! | `GET /api/silences` | JSON: the silences in force |
//! | `POST /-/reload` | re-reads the config: 200, or 500 and every error as `FILE:LINE:COLUMN: message` |
//! | `GET /-/healthy` | 200 while the process serves HTTP |
//! | `GET /-/ready` | 200 once a config is loaded, 503 before |
//!
//! With `--web.config.file` ([`crate::config::WebConfig`], exporter-toolkit's format),
//! every path, the health paths and `POST /-/reload` included, is served over TLS
//! (optionally with client certificates) and behind basic auth (`http/auth.rs`).
//!
//! # The status page
//!
//! `GET /` is one page (HTML, CSS and a little JavaScript, embedded in the binary) that
//! asks `/api/targets` for 50 rows at a time, whatever the fleet's size, and listens on
//! `/events` to update them without a reload. See `docs/status-page.md`.
//!
//! Anything else is a 404 that lists these paths; a wrong method is a 405 that names the
//! right one; a bad query string is a 400 that says what to write.
//!
//! The server runs on the daemon's HTTP runtime, apart from the checks' ([`crate::daemon`]).
//! Large answers (`/metrics`, `/status`) are rendered on a blocking thread and streamed,
//! so a scrape of 100k targets neither stalls other requests nor holds its whole answer
//! in memory. Each connection has bounds on what a slow or hostile client can hold:
//! a header read timeout of 10 s (idle keep-alive too), a write stall timeout of 30 s,
//! and at most 1024 connections at once.

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;

use crate::reload::Shared;

mod auth;
mod body;
mod conn;
mod history;
mod page;
pub mod probe;
mod silence;
mod status;

/// Serves every path on `listener` until `shutdown` completes; then lets the responses
/// under way finish for a moment and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let tls = {
        let shared = Arc::clone(&shared);
        move || shared.web().and_then(|web| web.tls.clone())
    };
    conn::serve(listener, router(shared), tls, shutdown).await
}

/// The paths, for the 404 answer.
const PATHS: &str = "\
GET  /
GET  /api/targets?state=up|down|unknown[,...]&label=NAME=VALUE&q=TEXT&sort=state|name|config&offset=N&limit=N
GET  /events
GET  /badge/NAME.svg
GET  /metrics
GET  /probe?target=HOST:PORT&module=NAME
GET  /probe?target=URL&module=http_2xx
GET  /status
GET  /status?state=up|down|unknown[,...]&target=NAME[&target=NAME...]
GET  /api/history?target=NAME[&window=24h]
POST /api/silence?target=NAME&for=30m
GET  /api/silences
POST /-/reload
GET  /-/healthy
GET  /-/ready
";

/// Every path the daemon serves, as an axum router.
pub fn router(shared: Arc<Shared>) -> Router {
    let read = |path: &'static str, handler: MethodRouter<Arc<Shared>>| {
        handler.fallback(move |method: Method| async move { wrong_method(&method, "GET", path) })
    };
    Router::new()
        .route("/", read("/", get(page::index)))
        .route("/api/targets", read("/api/targets", get(page::api::handle)))
        .route("/events", read("/events", get(page::events)))
        .route(
            "/badge/{*file}",
            read("/badge/NAME.svg", get(page::badge::handle)),
        )
        .route("/metrics", read("/metrics", get(metrics)))
        .route("/probe", read("/probe", get(probe::handle)))
        .route("/status", read("/status", get(status::handle)))
        .route("/api/history", read("/api/history", get(history::handle)))
        .route(
            "/api/silence",
            post(silence::silence).fallback(|method: Method| async move {
                wrong_method(&method, "POST", "/api/silence")
            }),
        )
        .route("/api/silences", read("/api/silences", get(silence::list)))
        .route(
            "/-/reload",
            post(reload).fallback(|method: Method| async move {
                wrong_method(&method, "POST", "/-/reload")
            }),
        )
        .route("/-/healthy", read("/-/healthy", get(healthy)))
        .route("/-/ready", read("/-/ready", get(ready)))
        .fallback(not_found)
        // Every path, the 404s too: basic auth and the web config's headers.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            auth::guard,
        ))
        .with_state(shared)
}

/// `GET /metrics`, gzipped when the scraper's `Accept-Encoding` takes gzip: Prometheus
/// asks for it on every scrape, and 50k targets are 37 MB of text.
async fn metrics(State(shared): State<Arc<Shared>>, request: HeaderMap) -> Response {
    let fleet = shared.fleet();
    let daemon = shared.counters();
    let gzip = accepts_gzip(&request);
    let mut response = body::streamed(crate::sinks::metrics::CONTENT_TYPE, move |out| {
        if gzip {
            // The fastest level: the text is so repetitive that it still shrinks more
            // than tenfold, for a fraction of the CPU the default level takes.
            let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            crate::sinks::metrics::render(&fleet, &daemon, &mut gz)?;
            crate::sinks::metrics::render_process(&mut gz)?;
            gz.finish().map(drop)
        } else {
            crate::sinks::metrics::render(&fleet, &daemon, out)?;
            crate::sinks::metrics::render_process(out)
        }
    });
    let headers = response.headers_mut();
    // Plain or not, the answer depends on the header: a cache must key on it.
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// True when `Accept-Encoding` takes gzip: `gzip` (or `x-gzip`), or else `*`, with a
/// q above 0. `gzip;q=0` means "not gzip", and a q that does not parse is taken as 0:
/// plain text is never wrong.
fn accepts_gzip(request: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    let values = request.get_all(header::ACCEPT_ENCODING).iter();
    for item in values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut params = item.split(';');
        let coding = params.next().unwrap_or_default().trim();
        let q = params
            .find_map(|param| {
                let (name, value) = param.split_once('=')?;
                let q = name.trim().eq_ignore_ascii_case("q");
                q.then(|| value.trim().parse::<f32>().unwrap_or(0.0))
            })
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(q);
        } else if coding == "*" {
            any = Some(q);
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

async fn reload(State(shared): State<Arc<Shared>>) -> Response {
    match shared.reload("POST /-/reload").await {
        Ok(targets) => text(
            StatusCode::OK,
            format!("config reloaded: {targets} target(s)\n"),
        ),
        Err(errors) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{errors}\n")),
    }
}

async fn healthy() -> Response {
    text(StatusCode::OK, "OK")
}

async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    if shared.is_ready() {
        text(StatusCode::OK, "OK")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the config is not loaded yet\n",
        )
    }
}

async fn not_found(uri: Uri) -> Response {
    text(
        StatusCode::NOT_FOUND,
        format!(
            "no such path: {}\nconnhealth watch serves:\n{PATHS}",
            uri.path()
        ),
    )
}

fn wrong_method(method: &Method, allowed: &'static str, path: &str) -> Response {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed here: use {allowed} {path}\n"),
    );
    let allow = if allowed == "GET" {
        "GET, HEAD"
    } else {
        allowed
    };
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// A plain-text answer.
fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// A 400 with `why`.
fn bad_request(why: impl std::fmt::Display) -> Response {
    text(StatusCode::BAD_REQUEST, format!("{why}\n"))
}

/// A query string's parameters.
#[derive(Debug)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Checks the parameters of `path` against `known`, each given at most once but those
    /// in `repeatable` (read them with [`Params::get_all`]); for a bad query, the 400's
    /// reason.
    pub(crate) fn parse_repeating(
        path: &str,
        query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
        known: &[&str],
        repeatable: &[&str],
    ) -> Result<Params, String> {
        let Params(pairs) = Params::lenient(path, query)?;
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                return Err(format!(
                    "unknown parameter {name:?}; {path} takes {}",
                    known.join(", ")
                ));
            }
            if !repeatable.contains(&name.as_str())
                && pairs[..i].iter().any(|(earlier, _)| earlier == name)
            {
                return Err(format!("{name} is given twice; give it once"));
            }
        }
        Ok(Params(pairs))
    }

    /// Every parameter as given, in the query's order, as blackbox reads a query: none is
    /// refused (read them with [`Params::first`]). The reason of a query that cannot be
    /// read at all.
    pub(crate) fn lenient(
        path: &str,
        query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
    ) -> Result<Params, String> {
        let Query(pairs) = query.map_err(|err| {
            format!(
                "cannot read the query string of {path}: {}",
                err.body_text()
            )
        })?;
        Ok(Params(pairs))
    }

    /// The first value of `name`, empty or not, as Go's `url.Values.Get`.
    pub(crate) fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(given, _)| given == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name` that is not empty, in the query's order.
    pub(crate) fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(given, value)| given == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }
}
