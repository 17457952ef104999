//! `[[alerts.webhook]]`: one POST per notification, its body the [`Notice`] as JSON,
//! with the configured headers.

use http::{HeaderName, HeaderValue, Uri};

use super::notice::Notice;
use super::post::Poster;

/// POSTs `notice` to `url` with `headers`.
pub(crate) fn send(
    poster: &Poster,
    url: &Uri,
    headers: &[(HeaderName, HeaderValue)],
    notice: &Notice,
) -> Result<(), String> {
    poster.post(url, headers, notice.json().into_bytes())
}
