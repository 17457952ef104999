//! A `Heartbeat` against a real redis-server: PING, expect +PONG.
//!
//! ```text
//! cargo run -p connhealth --example heartbeat-redis            # starts its own redis-server
//! cargo run -p connhealth --example heartbeat-redis 127.0.0.1:6379
//! ```
//!
//! With its own server it shows the whole story in about three seconds: the server
//! answers, then hangs (SIGSTOP: its kernel still acknowledges every byte, so keepalive
//! and `check()` see nothing wrong), the heartbeat declares it dead within `interval +
//! misses × timeout`, the server resumes, and the heartbeat reconnects and reports it
//! alive. Against an address it prints five beats (or gives up after 10 s) and exits.
//!
//! Its own server needs Unix (testkit's `Redis` starts `redis-server`, and SIGSTOP hangs
//! it); elsewhere give it an address.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use connhealth::heartbeat::{Beat, Beats, Heartbeat, Ping};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Redis's PING over RESP, on a connection of its own, made on first use and remade
/// after any failure.
struct RedisPing {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    /// Set while a ping waits for its pong. Still set when the next ping starts means the
    /// heartbeat cancelled the last one at its deadline: its +PONG may still arrive and
    /// would be read as this ping's answer, so start on a fresh connection.
    in_flight: bool,
}

impl Ping for RedisPing {
    async fn ping(&mut self) -> io::Result<()> {
        if std::mem::replace(&mut self.in_flight, true) {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = Some(BufReader::new(TcpStream::connect(self.addr).await?));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let answer = async {
            conn.get_mut().write_all(b"*1\r\n$4\r\nPING\r\n").await?;
            let mut line = String::new();
            conn.read_line(&mut line).await?;
            if line == "+PONG\r\n" {
                Ok(())
            } else {
                Err(io::Error::other(format!("expected +PONG, got {line:?}")))
            }
        }
        .await;
        if answer.is_err() {
            self.conn = None;
        }
        self.in_flight = false;
        answer
    }
}

fn print(beat: &Beat, since: Instant) {
    let at = since.elapsed().as_secs_f64();
    match beat {
        Beat::Alive { rtt } => println!("{at:6.3} s  alive, PONG after {rtt:?}"),
        Beat::Missed { misses, reason } => {
            println!("{at:6.3} s  missed ({misses} in a row): {reason}")
        }
        Beat::Dead(reason) => println!("{at:6.3} s  DEAD: {reason}"),
        other => println!("{at:6.3} s  {other:?}"),
    }
}

async fn next<P: Ping + Send + 'static>(beats: &mut Beats<P>, since: Instant) -> Beat {
    let beat = beats.next_beat().await;
    print(&beat, since);
    beat
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let heartbeat = Heartbeat::builder()
        .interval(Duration::from_millis(300))
        .timeout(Duration::from_millis(150))
        .misses(2)
        .max_backoff(Duration::from_secs(1))
        .build()?;

    if let Some(addr) = std::env::args().nth(1) {
        let addr: SocketAddr = addr.parse()?;
        println!("heartbeat to redis at {addr}: ping after 300 ms of quiet, 150 ms deadline");
        let mut beats = heartbeat.run(RedisPing {
            addr,
            conn: None,
            in_flight: false,
        });
        let start = Instant::now();
        // After a death the heartbeat stays silent until a pong: bound the whole run.
        let five = async {
            for _ in 0..5 {
                next(&mut beats, start).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), five)
            .await
            .is_err()
        {
            println!(
                "{:6.3} s  no pong since; giving up",
                start.elapsed().as_secs_f64()
            );
        }
        return Ok(());
    }

    #[cfg(not(unix))]
    {
        println!(
            "without an address this example starts a local redis-server and hangs it with \
             SIGSTOP, which needs Unix; give it the address of a redis-server instead"
        );
        return Ok(());
    }
    #[cfg(unix)]
    return own_server(heartbeat).await;
}

/// The whole story against a redis-server of its own: alive, hung, dead, resumed, alive.
#[cfg(unix)]
async fn own_server(heartbeat: Heartbeat) -> Result<(), Box<dyn std::error::Error>> {
    let dead_within = heartbeat.dead_within();
    let redis = connhealth_testkit::Redis::start(&[])?;
    let addr = redis.addr();
    println!(
        "redis-server on {addr}; ping after 300 ms of quiet, 150 ms deadline, dead after 2 misses"
    );
    let mut beats = heartbeat.run(RedisPing {
        addr,
        conn: None,
        in_flight: false,
    });
    let start = Instant::now();
    for _ in 0..2 {
        next(&mut beats, start).await;
    }

    redis.pause()?;
    let hung = Instant::now();
    println!(
        "{:6.3} s  redis-server hangs (SIGSTOP): its kernel still ACKs, only a PONG can tell",
        start.elapsed().as_secs_f64()
    );
    while !matches!(next(&mut beats, start).await, Beat::Dead(_)) {}
    println!(
        "          declared dead {:?} after the hang (bound: {dead_within:?})",
        hung.elapsed()
    );

    redis.resume()?;
    println!(
        "{:6.3} s  redis-server resumes",
        start.elapsed().as_secs_f64()
    );
    while !matches!(next(&mut beats, start).await, Beat::Alive { .. }) {}
    Ok(())
}
