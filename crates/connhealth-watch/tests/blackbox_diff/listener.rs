//! Loopback listeners of the scenarios' servers: each accepted connection is served on a
//! thread of its own, over plain TCP that may turn into TLS (STARTTLS), until the
//! listener is dropped.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tokio_rustls::rustls::{ServerConfig, ServerConnection, StreamOwned};

/// How long a server waits for the prober's next bytes before it gives up.
const READ_LIMIT: Duration = Duration::from_secs(10);

/// A server's connection: plain TCP, or TLS over it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    /// The same connection with a TLS handshake done on it, as the server.
    pub fn into_tls(self, config: &Arc<ServerConfig>) -> io::Result<Stream> {
        let Stream::Plain(mut tcp) = self else {
            return Err(io::Error::other("TLS already"));
        };
        let mut conn = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)?;
        }
        Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
    }

    /// One line, with its `\n` when it had one; empty at the end of the stream.
    pub fn read_line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.read(&mut byte) {
                Ok(0) => return Ok(line),
                Ok(_) => {
                    line.push(byte[0]);
                    if byte[0] == b'\n' {
                        return Ok(line);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Reads until the prober closes (or resets, or says nothing for [`READ_LIMIT`]).
    pub fn wait_close(&mut self) {
        let mut buf = [0u8; 512];
        while matches!(self.read(&mut buf), Ok(n) if n > 0) {}
    }

    /// Ends the connection: close_notify over TLS, then a FIN.
    pub fn close(self) {
        let tcp = match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(mut tls) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                tls.sock
            }
        };
        let _ = tcp.shutdown(Shutdown::Write);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// Listening sockets that serve each connection with one function; stopped on drop.
pub struct Listeners {
    addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
}

/// What a connection is served with.
pub type Serve = Arc<dyn Fn(Stream) + Send + Sync>;

impl Listeners {
    /// Serves on 127.0.0.1 at a free port.
    pub fn ipv4(serve: Serve) -> Listeners {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        Listeners::serve(vec![listener], serve)
    }

    /// Serves on 127.0.0.1 and ::1 at the same free port.
    pub fn dual(serve: Serve) -> Listeners {
        for _ in 0..50 {
            let v4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
            let port = v4.local_addr().expect("its address").port();
            match TcpListener::bind(("::1", port)) {
                Ok(v6) => return Listeners::serve(vec![v4, v6], serve),
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => continue,
                Err(err) => panic!("bind [::1]:{port}: {err} (the IPv6 scenarios need ::1)"),
            }
        }
        panic!("no port free on both 127.0.0.1 and ::1 in 50 tries");
    }

    fn serve(listeners: Vec<TcpListener>, serve: Serve) -> Listeners {
        let stop = Arc::new(AtomicBool::new(false));
        let addrs = listeners
            .iter()
            .map(|l| l.local_addr().expect("its address"))
            .collect();
        for listener in listeners {
            let (stop, serve) = (Arc::clone(&stop), Arc::clone(&serve));
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let _ = conn.set_read_timeout(Some(READ_LIMIT));
                    let _ = conn.set_nodelay(true);
                    let serve = Arc::clone(&serve);
                    thread::spawn(move || serve(Stream::Plain(conn)));
                }
            });
        }
        Listeners { addrs, stop }
    }

    /// The port (the same on every address).
    pub fn port(&self) -> u16 {
        self.addrs[0].port()
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for addr in &self.addrs {
            // Wakes the accept loop, which then sees the flag.
            let _ = TcpStream::connect_timeout(addr, Duration::from_secs(1));
        }
    }
}
