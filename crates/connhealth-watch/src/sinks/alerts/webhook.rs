//! `[[alerts.webhook]]`: one POST per notification, its body the [`Notice`] as JSON,
//! with the configured headers.

use http::{HeaderName, HeaderValue, Uri};

use super::notice::Notice;
use super::post::Poster;

/// A webhook's URL and headers.
#[derive(Debug)]
pub(crate) struct Webhook {
    pub(crate) url: Uri,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

impl Webhook {
    /// POSTs `notice`.
    pub(crate) fn send(&self, poster: &Poster, notice: &Notice) -> Result<(), String> {
        poster.post(&self.url, &self.headers, notice.json().into_bytes())
    }
}
