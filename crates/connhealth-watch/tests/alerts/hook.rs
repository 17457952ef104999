//! A webhook receiver on a loopback port: a plain HTTP/1.1 server on std's sockets that
//! records what it took, and answers as the test scripts it (slowly, failing at first).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Script {
    /// The first this many requests are answered 500.
    pub fail_first: usize,
    /// Each answer waits this long first.
    pub delay: Duration,
}

/// One request the receiver took (answered 200).
#[derive(Debug, Clone)]
pub struct Taken {
    pub body: serde_json::Value,
    pub headers: Vec<(String, String)>,
}

/// The receiver; stops on drop.
pub struct Hook {
    pub addr: SocketAddr,
    taken: Arc<Mutex<Vec<Taken>>>,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Hook {
    /// A receiver on a free loopback port.
    pub fn start(script: Script) -> Hook {
        Hook::on(TcpListener::bind("127.0.0.1:0").unwrap(), script)
    }

    /// A receiver on `listener`.
    pub fn on(listener: TcpListener, script: Script) -> Hook {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let taken = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        std::thread::spawn({
            let (taken, requests, stop) = (taken.clone(), requests.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).unwrap();
                            serve(stream, script, &taken, &requests);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }
        });
        Hook {
            addr,
            taken,
            requests,
            stop,
        }
    }

    /// What it took so far.
    pub fn taken(&self) -> Vec<Taken> {
        self.taken.lock().unwrap().clone()
    }

    /// The `to` of each body taken, in order.
    pub fn states(&self) -> Vec<String> {
        self.taken()
            .iter()
            .map(|t| t.body["to"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    /// Requests seen, failed ones included.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Waits until it took `n` requests; false if not within `limit`.
    pub fn wait_for(&self, n: usize, limit: Duration) -> bool {
        connhealth_testkit::wait_until(limit, || self.taken().len() >= n).is_some()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One connection, one request (the daemon opens a connection per POST).
fn serve(stream: TcpStream, script: Script, taken: &Mutex<Vec<Taken>>, requests: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || !line.starts_with("POST ") {
        return;
    }
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.trim().split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
            if name == "content-length" {
                length = value.parse().unwrap_or(0);
            }
            headers.push((name, value));
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let n = requests.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(script.delay);
    let mut stream = stream;
    if n < script.fail_first {
        let _ = stream.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot today",
        );
        return;
    }
    taken.lock().unwrap().push(Taken {
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        headers,
    });
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
}
