//! The two exporters, loading one module file: the real blackbox_exporter as a child
//! process, and connhealth's daemon in this process with `blackbox_config` pointing at it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use connhealth_watch::daemon::Daemon;
use connhealth_watch::{LogFormat, Options};

/// Debian's blackbox_exporter 0.23.
pub const BLACKBOX: &str = "/usr/bin/prometheus-blackbox-exporter";

/// How long blackbox may take to answer `/-/healthy` after it starts.
const START_LIMIT: Duration = Duration::from_secs(30);

/// blackbox_exporter on a free loopback port; killed on drop.
pub struct Blackbox {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Blackbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Blackbox {
    /// Starts blackbox_exporter on `config`, in `dir` (its log goes to `dir/blackbox.log`),
    /// and waits until `/-/healthy` answers 200. Panics with the log when it cannot start.
    pub fn start(dir: &Path, config: &Path) -> Blackbox {
        assert!(
            Path::new(BLACKBOX).is_file(),
            "{BLACKBOX} is missing: this test runs the real blackbox_exporter; \
             scripts/test installs it (Debian package prometheus-blackbox-exporter), \
             or run: apt-get install prometheus-blackbox-exporter"
        );
        let log_path = dir.join("blackbox.log");
        // A port free when asked may be taken before blackbox binds it: a few tries.
        for _ in 0..5 {
            let port = connhealth_testkit::free_port().expect("a free port");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let log = std::fs::File::create(&log_path).expect("the log file");
            let child = Command::new(BLACKBOX)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--web.listen-address={addr}"))
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("the log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|err| panic!("cannot run {BLACKBOX}: {err}"));
            let mut blackbox = Blackbox { child, addr };
            if blackbox.wait_healthy() {
                return blackbox;
            }
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if !log.contains("address already in use") {
                panic!("blackbox_exporter did not become healthy within {START_LIMIT:?}; its log:\n{log}");
            }
        }
        panic!("blackbox_exporter found its port taken five times");
    }

    /// Polls `/-/healthy` until 200; false when the process exited or the limit passed.
    fn wait_healthy(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < START_LIMIT {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok((200, _)) = connhealth_testkit::http(self.addr, "GET", "/-/healthy") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// connhealth's daemon of `dir/watch.toml`, which has only `blackbox_config`: no targets,
/// so it serves `/probe` alone. Panics with the config's errors when it does not load.
pub fn connhealth(dir: &Path, blackbox_yml: &str) -> Daemon {
    let path: PathBuf = dir.join("watch.toml");
    std::fs::write(&path, format!("blackbox_config = {blackbox_yml:?}\n"))
        .expect("write watch.toml");
    let plan = connhealth_watch::config::load(&path)
        .unwrap_or_else(|errors| panic!("connhealth does not load {}:\n{errors}", path.display()));
    let options = Options {
        config: path,
        listen: "127.0.0.1:0".into(),
        check_config: false,
        shard: None,
        log_format: LogFormat::Text,
        max_in_flight: None,
        web_config: None,
        data_dir: None,
    };
    Daemon::start(options, plan).expect("the daemon starts")
}
