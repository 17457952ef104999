//! The status page: `GET /` (one HTML page, its CSS and JavaScript embedded in the
//! binary), the rows it shows (`GET /api/targets`, [`api`]), its live events
//! (`GET /events`, Server-Sent Events, fed by [`crate::sinks::events`]) and badges
//! (`GET /badge/NAME.svg`, [`badge`]).
//!
//! The page is plain HTML, CSS and a little JavaScript, kept as files beside this one
//! (`index.html`, `page.css`, `page.js`) and put together once, at first use, into one
//! answer: one request paints the page, and nothing is fetched from elsewhere (no font,
//! no CDN). It asks `/api/targets` for one page of rows at a time, so a fleet of 10k
//! targets is a table of 50 rows; it listens on `/events` and, on a transition, updates
//! the rows it shows and asks again for them and the counts (debounced).

use std::sync::{Arc, LazyLock};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use crate::reload::Shared;
use crate::sinks::events::refetch_message;

pub(crate) mod api;
pub(crate) mod badge;
pub(crate) mod extras;

/// The page, its CSS and JavaScript put in at their markers.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    include_str!("index.html")
        .replace("/*PAGE_CSS*/", include_str!("page.css"))
        .replace("/*PAGE_JS*/", include_str!("page.js"))
});

/// `GET /`.
pub(crate) async fn index() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page is small and changes with the binary: always ask again.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE.as_str(),
    )
        .into_response()
}

/// How long a browser waits before it reconnects to `/events` after the stream broke.
const RETRY: &[u8] = b"retry: 2000\n\n";

/// `GET /events`: Server-Sent Events. The first message sets the browser's reconnect
/// delay; then every message the events sink publishes, as it was framed (one buffer
/// shared by every viewer); `event: refetch` for a viewer that fell behind. The stream
/// ends when the daemon stops.
pub(crate) async fn events(State(shared): State<Arc<Shared>>) -> Response {
    let Some(receiver) = shared.live().subscribe() else {
        return super::text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    };
    let first = Some(Bytes::from_static(RETRY));
    let stream =
        futures_util::stream::unfold((receiver, first), |(mut receiver, first)| async move {
            if let Some(first) = first {
                return Some((Ok::<_, std::io::Error>(first), (receiver, None)));
            }
            let message = match receiver.recv().await {
                Ok(message) => message,
                // What it missed is gone: the page reloads its rows instead.
                Err(RecvError::Lagged(missed)) => refetch_message("lagged", missed),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(message), (receiver, None)))
        });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx buffers a proxied answer unless told not to: events would arrive in bursts.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
