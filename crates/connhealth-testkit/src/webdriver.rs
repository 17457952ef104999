//! A real browser for tests and benchmarks: Debian's `chromium`, headless, driven over
//! WebDriver by `chromedriver` on a free loopback port.
//!
//! WebDriver is JSON over HTTP; the few commands a test needs (open a page, run a
//! script, find elements, type, take a screenshot) are written here on a blocking
//! `TcpStream`, one request per connection, rather than pulling a WebDriver crate and
//! an HTTP client stack into the workspace.
//!
//! [`Browser::require`] says whether the browser is there: a test returns early without
//! it, except under CI (`CI=true`), where a missing browser fails the test.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{free_port, in_ci, TempDir};

/// The flags headless Chromium needs on a machine without a display, a sandbox or a
/// network: no GPU, no first-run, no background traffic of its own.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

/// The W3C WebDriver key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session, ended (and chromedriver stopped) on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: TempDir,
}

/// An element of the page, as WebDriver names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(String);

impl Browser {
    /// The paths of chromium and chromedriver, or why they cannot be used.
    pub fn installed() -> Result<(PathBuf, PathBuf), String> {
        let browser = ["chromium", "chromium-browser"]
            .iter()
            .find_map(|name| which(name))
            .ok_or("chromium is not installed (Debian: apt-get install chromium)")?;
        let driver = which("chromedriver")
            .ok_or("chromedriver is not installed (Debian: apt-get install chromium-driver)")?;
        Ok((browser, driver))
    }

    /// True when a browser test can run. Otherwise prints why and returns false, except
    /// under CI, where it panics: a browser test is never skipped there.
    pub fn require(what: &str) -> bool {
        match Browser::installed() {
            Ok(_) => true,
            Err(why) if in_ci() => panic!("{what} cannot run under CI: {why}"),
            Err(why) => {
                eprintln!("skipping {what}: {why}");
                false
            }
        }
    }

    /// Starts chromedriver on a free loopback port and opens a headless Chromium session
    /// with a fresh profile and a `width` x `height` window.
    pub fn start(width: u32, height: u32) -> io::Result<Browser> {
        let (browser, driver) = Browser::installed().map_err(io::Error::other)?;
        let port = free_port()?;
        let mut child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let start = Instant::now();
        loop {
            match call(addr, "GET", "/status", None) {
                Ok(status) if status["value"]["ready"] == true => break,
                _ if start.elapsed() > Duration::from_secs(20) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(io::Error::other("chromedriver did not start within 20 s"));
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let profile = TempDir::new("chromium-profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={width},{height}"));
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": browser, "args": args},
            }}
        });
        let created = match call(addr, "POST", "/session", Some(&capabilities)) {
            Ok(created) => created,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
        };
        let session = created["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| io::Error::other(format!("no session: {created}")))?
            .to_owned();
        Ok(Browser {
            driver: child,
            addr,
            session,
            _profile: profile,
        })
    }

    /// One command of this session: `path` below `/session/ID`.
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> io::Result<Value> {
        let path = format!("/session/{}{path}", self.session);
        let reply = call(self.addr, method, &path, body)?;
        Ok(reply["value"].clone())
    }

    /// Opens `url` and waits for its `load` event.
    pub fn goto(&self, url: &str) -> io::Result<()> {
        self.command("POST", "/url", Some(&json!({ "url": url })))
            .map(drop)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns what it
    /// returns.
    pub fn execute(&self, script: &str, args: &[Value]) -> io::Result<Value> {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// Runs `script` every 20 ms until it returns something neither `null` nor `false`,
    /// for at most `limit`: that value and the time it took, or `None`.
    pub fn wait_for(&self, script: &str, limit: Duration) -> io::Result<Option<(Value, Duration)>> {
        let start = Instant::now();
        loop {
            let value = self.execute(script, &[])?;
            if !value.is_null() && value != Value::Bool(false) {
                return Ok(Some((value, start.elapsed())));
            }
            if start.elapsed() > limit {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The elements that match the CSS `selector`, in document order.
    pub fn find_all(&self, selector: &str) -> io::Result<Vec<Element>> {
        let found = self.command(
            "POST",
            "/elements",
            Some(&json!({ "using": "css selector", "value": selector })),
        )?;
        Ok(found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT_KEY].as_str().map(|id| Element(id.to_owned())))
            .collect())
    }

    /// The one element that matches `selector`.
    pub fn find(&self, selector: &str) -> io::Result<Element> {
        self.find_all(selector)?
            .into_iter()
            .next()
            .ok_or_else(|| io::Error::other(format!("no element matches {selector:?}")))
    }

    /// The text of `element`, as rendered.
    pub fn text(&self, element: &Element) -> io::Result<String> {
        let value = self.command("GET", &format!("/element/{}/text", element.0), None)?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Clicks `element`.
    pub fn click(&self, element: &Element) -> io::Result<()> {
        self.command(
            "POST",
            &format!("/element/{}/click", element.0),
            Some(&json!({})),
        )
        .map(drop)
    }

    /// Types `text` into `element`, as a person at the keyboard would.
    pub fn type_into(&self, element: &Element, text: &str) -> io::Result<()> {
        self.command(
            "POST",
            &format!("/element/{}/value", element.0),
            Some(&json!({ "text": text })),
        )
        .map(drop)
    }

    /// Empties the form field `element`.
    pub fn clear(&self, element: &Element) -> io::Result<()> {
        self.command(
            "POST",
            &format!("/element/{}/clear", element.0),
            Some(&json!({})),
        )
        .map(drop)
    }

    /// Sends `keys` to whatever has the focus (WebDriver's key codes: `\u{E004}` is Tab).
    pub fn press(&self, keys: &str) -> io::Result<()> {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                let c = c.to_string();
                [
                    json!({"type": "keyDown", "value": c}),
                    json!({"type": "keyUp", "value": c}),
                ]
            })
            .collect();
        self.command(
            "POST",
            "/actions",
            Some(&json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .map(drop)
    }

    /// Runs a Chrome DevTools Protocol command (`Emulation.setEmulatedMedia`, say) and
    /// returns its result.
    pub fn devtools(&self, cmd: &str, params: Value) -> io::Result<Value> {
        self.command(
            "POST",
            "/goog/cdp/execute",
            Some(&json!({ "cmd": cmd, "params": params })),
        )
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> io::Result<Vec<u8>> {
        let value = self.command("GET", "/screenshot", None)?;
        let text = value
            .as_str()
            .ok_or_else(|| io::Error::other("the screenshot is not a string"))?;
        base64_decode(text).ok_or_else(|| io::Error::other("the screenshot is not base64"))
    }

    /// A PNG of the window, written to `path` (folders made on the way).
    pub fn save_screenshot(&self, path: &Path) -> io::Result<()> {
        let png = self.screenshot()?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, png)
    }

    /// Opens `url` and returns its first contentful paint (the Paint Timing API's
    /// `first-contentful-paint`, from the navigation's start), and, when the page sets a
    /// `performance.mark(mark)` (the status page marks `rows` once its first rows are in
    /// the table), the time of that mark, waiting up to 30 s for it.
    pub fn paint_times(&self, url: &str, mark: Option<&str>) -> io::Result<PaintTimes> {
        self.goto(url)?;
        let fcp = self
            .wait_for(
                "const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? e.startTime : null;",
                Duration::from_secs(30),
            )?
            .and_then(|(ms, _)| ms.as_f64())
            .ok_or_else(|| io::Error::other("no first-contentful-paint within 30 s"))?;
        let marked = match mark {
            None => None,
            Some(mark) => {
                let script = format!(
                    "const e = performance.getEntriesByName({}, 'mark')[0]; return e ? e.startTime : null;",
                    Value::from(mark)
                );
                self.wait_for(&script, Duration::from_secs(30))?
                    .and_then(|(ms, _)| ms.as_f64())
                    .map(millis)
            }
        };
        Ok(PaintTimes {
            first_contentful_paint: millis(fcp),
            marked,
        })
    }
}

/// What [`Browser::paint_times`] measured, from the navigation's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaintTimes {
    /// The first paint of text or an image.
    pub first_contentful_paint: Duration,
    /// The page's own mark, when asked for and set.
    pub marked: Option<Duration>,
}

/// First contentful paint of `url` in a fresh headless Chromium, for benchmarks: the
/// browser is started first and not counted.
pub fn first_contentful_paint(url: &str) -> io::Result<PaintTimes> {
    let browser = Browser::start(1400, 1000)?;
    browser.paint_times(url, Some("rows"))
}

fn millis(ms: f64) -> Duration {
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The first `name` on the PATH that is a file.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// One WebDriver request, on a connection of its own: the reply's JSON. A reply whose
/// `value` holds an `error` is an `Err` with WebDriver's message.
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> io::Result<Value> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(conn);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.trim().eq_ignore_ascii_case("chunked");
        }
    }
    let mut raw = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16).map_err(io::Error::other)?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            raw.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        raw.resize(length, 0);
        reader.read_exact(&mut raw)?;
    } else {
        reader.read_to_end(&mut raw)?;
    }
    let value: Value = serde_json::from_slice(&raw)
        .map_err(|err| io::Error::other(format!("{method} {path}: {status}: {err}")))?;
    if let Some(error) = value["value"]["error"].as_str() {
        let message = value["value"]["message"].as_str().unwrap_or_default();
        return Err(io::Error::other(format!(
            "{method} {path}: {error}: {message}"
        )));
    }
    Ok(value)
}

/// Standard base64, padded, as WebDriver sends a screenshot.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes() {
        assert_eq!(super::base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(super::base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(super::base64_decode("YWJj").unwrap(), b"abc");
    }
}
