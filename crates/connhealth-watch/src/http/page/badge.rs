//! `GET /badge/NAME.svg`: a small badge, `NAME | ▲ up`, for a README or a wiki.
//!
//! The state is written out as a word with its shape (▲ up, ▼ down, ● unknown), never by
//! colour alone; the colours (green, red, grey) only repeat it. `Cache-Control: no-cache`,
//! so that an image proxy (GitHub's camo) asks again each time. An unknown target is a
//! 404 whose body is a badge too (`NAME | no such target`), so that a broken link shows
//! as such where the badge should be, rather than as a broken image.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::reload::Shared;
use crate::state::Health;

/// The `Content-Type` of a badge.
const SVG: &str = "image/svg+xml; charset=utf-8";

/// `GET /badge/{*file}`: `file` is the target's name and `.svg`.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
) -> Response {
    let Some(name) = file.strip_suffix(".svg") else {
        return crate::http::text(
            StatusCode::NOT_FOUND,
            format!("no such badge: {file:?}; ask for /badge/NAME.svg\n"),
        );
    };
    let fleet = shared.fleet();
    let health = fleet
        .targets
        .iter()
        .find(|target| target.plan.name == name)
        .map(|target| target.state().health);
    match health {
        Some(health) => svg(StatusCode::OK, name, health_text(health), colour(health)),
        None => svg(StatusCode::NOT_FOUND, name, "no such target", "#6e7781"),
    }
}

/// The state as the badge says it: shape and word.
pub(crate) fn health_text(health: Health) -> &'static str {
    match health {
        Health::Up => "▲ up",
        Health::Down => "▼ down",
        Health::Unknown => "● unknown",
    }
}

fn colour(health: Health) -> &'static str {
    match health {
        Health::Up => "#1a7f37",
        Health::Down => "#cf222e",
        Health::Unknown => "#6e7781",
    }
}

fn svg(status: StatusCode, name: &str, value: &str, colour: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, SVG),
            (header::CACHE_CONTROL, "no-cache, max-age=0"),
        ],
        badge(name, value, colour),
    )
        .into_response()
}

/// The badge's SVG: `name` on grey, `value` on `colour`, in the flat style shields.io
/// made familiar.
pub(crate) fn badge(name: &str, value: &str, colour: &str) -> String {
    const PAD: u32 = 6;
    let left = text_width(name) + 2 * PAD;
    let right = text_width(value) + 2 * PAD;
    let width = left + right;
    let (name_xml, value_xml) = (escape(name), escape(value));
    let mut svg = String::with_capacity(1024);
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{name_xml}: {value_xml}"><title>{name_xml}: {value_xml}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" fill="{colour}"/><rect width="{width}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="15" fill="#010101" fill-opacity=".3">{name_xml}</text><text x="{lx}" y="14">{name_xml}</text><text x="{rx}" y="15" fill="#010101" fill-opacity=".3">{value_xml}</text><text x="{rx}" y="14">{value_xml}</text></g></svg>"##,
        lx = f64::from(left) / 2.0,
        rx = f64::from(left) + f64::from(right) / 2.0,
    );
    svg.push('\n');
    svg
}

/// The width of `text` in 11 px Verdana, near enough: the badge is drawn without
/// measuring fonts, so each character is given the width of its kind.
fn text_width(text: &str) -> u32 {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 4,
            'f' | 't' | 'r' | ' ' | '-' | '(' | ')' | '[' | ']' | '/' => 5,
            'm' | 'w' | 'M' | 'W' => 10,
            '▲' | '▼' | '●' => 8,
            _ => 7,
        })
        .sum()
}

/// `text` with XML's special characters escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_escaped() {
        let svg = badge("a<b>&\"c\"", "▲ up", "#1a7f37");
        assert!(svg.contains("a&lt;b&gt;&amp;&quot;c&quot;"));
        assert!(!svg.contains("a<b>"));
    }
}
