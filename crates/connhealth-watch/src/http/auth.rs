//! Basic auth and the web config's response headers, in front of every path.
//!
//! As exporter-toolkit does it: with `basic_auth_users`, a request without
//! `Authorization: Basic`, with one that does not decode (not base64, no colon), or with
//! a wrong user or password is a 401 with `WWW-Authenticate: Basic`. A password is
//! checked with bcrypt on a blocking thread (a few at once, so that a flood of wrong
//! passwords cannot take every core), against a dummy hash when the user is unknown, so
//! that a failure takes as long either way; a login that succeeded is remembered
//! ([`crate::config::BasicAuth`]) and the next scrape pays no bcrypt.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use tokio::sync::Semaphore;

use crate::config::WebConfig;
use crate::reload::Shared;

/// bcrypt verifications running at once; more wait their turn.
static VERIFYING: Semaphore = Semaphore::const_new(2);

/// The middleware: lets `request` through to `next` when the web config in force lets it.
pub(super) async fn guard(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(web) = shared.web() else {
        return next.run(request).await;
    };
    let mut response = if web.basic_auth.is_none() || authorized(&web, request.headers()).await {
        next.run(request).await
    } else {
        unauthorized()
    };
    let headers = response.headers_mut();
    for (name, value) in &web.headers {
        headers.insert(name.clone(), value.clone());
    }
    response
}

fn unauthorized() -> Response {
    let mut response = super::text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    response
}

/// True when `headers` hold a user and password of `web`'s `basic_auth_users`.
async fn authorized(web: &Arc<WebConfig>, headers: &HeaderMap) -> bool {
    let Some(auth) = &web.basic_auth else {
        return true;
    };
    let Some((user, password)) = credentials(headers) else {
        return false;
    };
    if auth.cached(&user, &password) {
        return true;
    }
    let Ok(_turn) = VERIFYING.acquire().await else {
        return false;
    };
    let web = Arc::clone(web);
    tokio::task::spawn_blocking(move || {
        web.basic_auth
            .as_ref()
            .is_some_and(|auth| auth.verify(&user, &password))
    })
    .await
    .unwrap_or(false)
}

/// The user and password of `Authorization: Basic BASE64(user:password)`, as Go's
/// `Request.BasicAuth` reads it (the scheme in any case, standard base64 with padding);
/// None when there is none or it does not decode. A user that is not UTF-8 is no user
/// of the file, which is YAML and so UTF-8.
pub(crate) fn credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    const SCHEME: &[u8] = b"basic ";
    if value.len() < SCHEME.len() || !value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&value[SCHEME.len()..])
        .ok()?;
    let colon = decoded.iter().position(|&byte| byte == b':')?;
    let user = std::str::from_utf8(&decoded[..colon]).ok()?.to_owned();
    Some((user, decoded[colon + 1..].to_vec()))
}
