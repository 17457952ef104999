//! A small HTTP/1.1 server for the http prober's scenarios, over plain TCP or TLS: one
//! request per connection, answered by path with bytes written by hand (so that the
//! scenarios control Content-Length, chunking and the version).

use std::io::{Read, Write};
use std::sync::Arc;

use tokio_rustls::rustls::ServerConfig;

use super::listener::{Listeners, Stream};

/// One request as the server read it.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("-", |(_, v)| v.as_str())
    }
}

/// Serves on 127.0.0.1 at a free port, over TLS when `tls` is given.
pub fn start(tls: Option<Arc<ServerConfig>>) -> Listeners {
    Listeners::ipv4(Arc::new(move |stream: Stream| {
        let stream = match &tls {
            Some(config) => match stream.into_tls(config) {
                Ok(stream) => stream,
                Err(_) => return,
            },
            None => stream,
        };
        serve(stream);
    }))
}

fn serve(mut stream: Stream) {
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    let answer = answer(&request);
    if stream
        .write_all(&answer)
        .and_then(|_| stream.flush())
        .is_ok()
    {
        stream.close();
    }
}

fn read_request(stream: &mut Stream) -> Option<Request> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let line = stream.read_line().ok()?;
        if line.is_empty() {
            return None;
        }
        head.extend_from_slice(&line);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// A whole HTTP/1.1 answer with a Content-Length.
fn reply(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

fn answer(request: &Request) -> Vec<u8> {
    let text = [("Content-Type", "text/plain; charset=utf-8")];
    match request.path.as_str() {
        "/ok" => reply("200 OK", &text, "hello, prober\n"),
        "/notfound" => reply("404 Not Found", &text, "not here\n"),
        "/echo" => {
            let body = String::from_utf8_lossy(&request.body);
            reply("200 OK", &text, &format!("{} {body}", request.method))
        }
        "/headers" => {
            let body = format!(
                "host={}\nx-custom={}\naccept-language={}\n",
                request.header("host"),
                request.header("x-custom"),
                request.header("accept-language"),
            );
            reply("200 OK", &text, &body)
        }
        "/redirect" => reply("302 Found", &[("Location", "/ok")], ""),
        "/redirect2" => reply("302 Found", &[("Location", "/redirect")], ""),
        "/loop" => reply("302 Found", &[("Location", "/loop")], ""),
        "/dberror" => reply("200 OK", &text, "Could not connect to database\n"),
        "/download" => reply("200 OK", &text, "Download the latest version here\n"),
        "/cors" => reply("200 OK", &[("Access-Control-Allow-Origin", "*")], "cors\n"),
        "/cookie" => reply(
            "200 OK",
            &[
                ("Set-Cookie", "session=1; Path=/"),
                ("Access-Control-Allow-Origin", "*"),
            ],
            "cookie\n",
        ),
        "/last-modified" => reply(
            "200 OK",
            &[("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")],
            "old\n",
        ),
        "/chunked" => b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\
              6\r\nhello,\r\n8\r\n prober\n\r\n0\r\n\r\n"
            .to_vec(),
        "/http10" => b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nolder\n".to_vec(),
        _ => reply(
            "500 Internal Server Error",
            &text,
            "no such path in the test\n",
        ),
    }
}
