//! A scenario: a name, the servers it probes (started when it runs, stopped after), and
//! the one `/probe` request sent to both exporters.

use std::sync::Arc;

use tokio_rustls::rustls::ServerConfig;

use super::listener::Listeners;

/// What the scenarios share: the certificate their TLS servers serve.
pub struct Env {
    pub tls: Arc<ServerConfig>,
}

/// What of the two answers is compared (a non-200 answer: only the status, always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// The status, then every series and its value.
    Series,
    /// The status and the Content-Type (`debug=true`, whose body is a log).
    StatusAndContentType,
}

/// A scenario, ready to run.
pub struct Probe {
    /// What follows `/probe?`, already escaped.
    pub query: String,
    /// `X-Prometheus-Scrape-Timeout-Seconds`, or none.
    pub scrape_timeout: Option<&'static str>,
    pub compare: Compare,
    /// Kept until the scenario is done.
    pub servers: Vec<Listeners>,
}

impl Probe {
    /// `GET /probe?{query}` with a scrape timeout of 3 s, series compared.
    pub fn new(query: impl Into<String>) -> Probe {
        Probe {
            query: query.into(),
            scrape_timeout: Some("3"),
            compare: Compare::Series,
            servers: Vec::new(),
        }
    }

    /// Keeps `server` up while the scenario runs.
    pub fn with(mut self, server: Listeners) -> Probe {
        self.servers.push(server);
        self
    }

    /// Sends this scrape timeout header, or none.
    pub fn scrape_timeout(mut self, seconds: Option<&'static str>) -> Probe {
        self.scrape_timeout = seconds;
        self
    }

    pub fn compare(mut self, compare: Compare) -> Probe {
        self.compare = compare;
        self
    }
}

/// A scenario: its name, and how to set it up.
pub struct Case {
    pub name: &'static str,
    pub setup: fn(&Env) -> Probe,
}

/// A port where nothing listens.
pub fn closed_port() -> u16 {
    connhealth_testkit::closed_port().port()
}
