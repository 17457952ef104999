//! The one request a scenario sends to each exporter: `GET /probe?…` over HTTP/1.1 on a
//! connection of its own, read to the end (chunked answers decoded).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// An exporter's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

/// `GET path` to `addr`, with Prometheus' scrape timeout header when `scrape_timeout` is
/// given. An I/O error is an answer with status 0 and the error as its body.
pub fn get(addr: SocketAddr, path: &str, scrape_timeout: Option<&str>) -> Answer {
    match try_get(addr, path, scrape_timeout) {
        Ok(answer) => answer,
        Err(err) => Answer {
            status: 0,
            content_type: None,
            body: format!("no answer: {err}"),
        },
    }
}

fn try_get(addr: SocketAddr, path: &str, scrape_timeout: Option<&str>) -> std::io::Result<Answer> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(seconds) = scrape_timeout {
        head.push_str(&format!(
            "X-Prometheus-Scrape-Timeout-Seconds: {seconds}\r\n"
        ));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)?;
    parse(&raw).ok_or_else(|| {
        std::io::Error::other(format!(
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&raw)
        ))
    })
}

fn parse(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let rest = &raw[split + 4..];
    let body = match header("transfer-encoding") {
        Some(coding) if coding.contains("chunked") => dechunk(rest)?,
        _ => rest.to_vec(),
    };
    Some(Answer {
        status,
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&rest[..end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}
