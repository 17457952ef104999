//! `check = "tls"`: `server_name`, `ca_file`, `insecure` and `cert_min_days`, which `http`
//! reads too, for https.

use super::{KindKey, KindValue, Layers};
use crate::config::keys::Written;
use crate::config::plan::{CheckKind, TlsPlan};
use crate::config::values;

const TLS_AND_HTTP: &[CheckKind] = &[CheckKind::Tls, CheckKind::Http];

pub(crate) const KEYS: [KindKey; 4] = [
    KindKey {
        name: "server_name",
        readers: TLS_AND_HTTP,
        read: |node, _| values::server_name(node).map(KindValue::Text),
        written: Some(Written::String),
        example: "server_name = \"example.com\"",
    },
    KindKey {
        name: "ca_file",
        readers: TLS_AND_HTTP,
        read: |node, base| values::ca_file(node, base).map(KindValue::Path),
        written: Some(Written::String),
        example: "ca_file = \"/etc/ssl/certs/ca.pem\"",
    },
    KindKey {
        name: "insecure",
        readers: TLS_AND_HTTP,
        read: |node, _| values::boolean("insecure", node).map(KindValue::Bool),
        written: Some(Written::Boolean),
        example: "insecure = true",
    },
    KindKey {
        name: "cert_min_days",
        readers: TLS_AND_HTTP,
        read: |node, _| values::days(node).map(KindValue::Count),
        written: Some(Written::Integer),
        example: "cert_min_days = 14",
    },
];

pub(crate) fn build(layers: Layers<'_>) -> TlsPlan {
    TlsPlan {
        server_name: layers.text("server_name"),
        ca_file: layers.path("ca_file"),
        insecure: layers.boolean("insecure").unwrap_or(false),
        cert_min_days: layers.count("cert_min_days"),
        ..TlsPlan::default()
    }
}
