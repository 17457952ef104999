//! `/probe` under the same wrk load as blackbox_exporter: the server's CPU per probe.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use crate::listeners::Listeners;
use crate::ours::{self, Ours, Schedule};
use crate::peers::{http_get, wrk, Blackbox, Nginx, WrkRun};
use crate::process::{Mark, Window};
use crate::report::{below, Report};

const SECONDS: u32 = 10;

/// One server under the load.
struct Loaded {
    run: WrkRun,
    window: Window,
    /// Connections the probed listener accepted during the load.
    accepted: u64,
}

impl Loaded {
    fn cpu_per_probe_us(&self) -> f64 {
        self.window.cpu.as_secs_f64() * 1e6 / self.run.requests.max(1) as f64
    }
}

/// `wrk` against `server`'s `/probe` of `target` with `module`, after one request that
/// must answer `probe_success 1`.
fn load(
    report: &mut Report,
    what: &str,
    pid: u32,
    server: SocketAddr,
    target: SocketAddr,
    module: &str,
    listeners: &Listeners,
) -> io::Result<Loaded> {
    load_target(
        report,
        what,
        pid,
        server,
        &target.to_string(),
        module,
        listeners,
    )
}

/// [`load`], of any target.
fn load_target(
    report: &mut Report,
    what: &str,
    pid: u32,
    server: SocketAddr,
    target: &str,
    module: &str,
    listeners: &Listeners,
) -> io::Result<Loaded> {
    let path = format!("/probe?target={target}&module={module}");
    let answer = http_get(server, &path)?;
    if !answer.lines().any(|line| line == "probe_success 1") {
        report.fail(format!(
            "{what}: GET {path} did not answer probe_success 1:\n{answer}"
        ));
    }
    let accepted = listeners.accepted();
    let mark = Mark::now(pid)?;
    let run = wrk(&format!("http://{server}{path}"), SECONDS)?;
    let window = mark.window()?;
    // The accept loop is a thread of this process: let it drain the backlog.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let accepted = listeners.accepted() - accepted;
    if run.requests < 1000 || run.non_2xx > 0 || run.errors > 0 {
        report.fail(format!(
            "{what}: wrk completed {} requests, {} not 2xx, {} socket errors",
            run.requests, run.non_2xx, run.errors
        ));
    }
    Ok(Loaded {
        run,
        window,
        accepted,
    })
}

/// `/probe`: blackbox_exporter's `tcp_connect`, then ours with `tcp_connect` and
/// `half_open`, each under `wrk -t2 -c32 -d10s`.
pub fn probe(listeners: &Listeners, dir: &Path, report: &mut Report) -> io::Result<()> {
    let target = listeners.addrs()[0];
    let blackbox = Blackbox::start(dir)?;
    let theirs = load(
        report,
        "blackbox_exporter /probe",
        blackbox.peer().pid(),
        blackbox.listen(),
        target,
        "tcp_connect",
        listeners,
    )?;
    blackbox.stop();

    // No targets: the daemon serves /probe alone, as blackbox_exporter does.
    let toml = ours::config_toml(&Schedule::every(std::time::Duration::from_secs(1)), &[]);
    let daemon = Ours::start(dir, "ours-probe", &toml)?;
    // half_open runs on the engine the daemon picked (the raw one as root); tcp_connect
    // always on a socket per probe, as blackbox_exporter's.
    let engine = daemon.engine()?;
    let connect = load(
        report,
        "our /probe tcp_connect",
        daemon.pid(),
        daemon.listen(),
        target,
        "tcp_connect",
        listeners,
    )?;
    let half_open = load(
        report,
        "our /probe half_open",
        daemon.pid(),
        daemon.listen(),
        target,
        "half_open",
        listeners,
    )?;
    daemon.stop()?;

    // A connect probe is accepted once per request; a half-open one never.
    for (what, loaded, connects) in [
        ("blackbox_exporter tcp_connect", &theirs, true),
        ("our tcp_connect", &connect, true),
        ("our half_open", &half_open, false),
    ] {
        let requests = loaded.run.requests;
        // wrk counts the requests answered; a few connections are still in the backlog
        // or were made for requests cut off at the end.
        let slack = (requests / 100).max(64);
        let right = if connects {
            loaded.accepted.abs_diff(requests) <= slack
        } else {
            loaded.accepted == 0
        };
        if !right {
            report.fail(format!(
                "{what}: the probed listener accepted {} connections for {requests} probes",
                loaded.accepted
            ));
        }
    }

    let base = theirs.cpu_per_probe_us();
    let half_open_module = format!("half_open ({engine} engine)");
    for (module, label, ours) in [
        ("tcp_connect", "tcp_connect", &connect),
        ("half_open", half_open_module.as_str(), &half_open),
    ] {
        let ratio = ours.cpu_per_probe_us() / base;
        println!(
            "/probe under wrk -t2 -c32 -d{SECONDS}s, {label}: {:.1} us CPU per probe = {ratio:.2} x \
             blackbox_exporter tcp_connect ({base:.0} us; target <= 0.2){}",
            ours.cpu_per_probe_us(),
            below(ratio <= 0.2),
        );
        report.target(
            &format!("/probe {module} <= 0.2 x blackbox_exporter"),
            ratio <= 0.2,
        );
    }
    println!(
        "  probes/s: blackbox_exporter {:.0} on {:.2} cores; ours tcp_connect {:.0} on {:.2} cores, \
         half_open {:.0} on {:.2} cores",
        theirs.run.requests as f64 / theirs.window.wall.as_secs_f64(),
        theirs.window.cores(),
        connect.run.requests as f64 / connect.window.wall.as_secs_f64(),
        connect.window.cores(),
        half_open.run.requests as f64 / half_open.window.wall.as_secs_f64(),
        half_open.window.cores(),
    );
    probe_http(listeners, dir, report)
}

/// `/probe` with blackbox's `http_2xx` (a GET wanting a 2xx, a new connection per probe)
/// of one nginx URL, blackbox_exporter then ours, each under `wrk -t2 -c32 -d10s`. Only
/// the probing server's CPU is counted, not nginx's.
fn probe_http(listeners: &Listeners, dir: &Path, report: &mut Report) -> io::Result<()> {
    let pki = crate::http::pki(dir)?;
    let nginx = Nginx::start(dir, &pki.chain, &pki.key)?;
    let url = format!("http://{}/t/1", nginx.http());
    let blackbox = Blackbox::start_with(
        dir,
        "blackbox-probe-http",
        "modules:\n  http_2xx:\n    prober: http\n",
    )?;
    let theirs = load_target(
        report,
        "blackbox_exporter /probe http_2xx",
        blackbox.peer().pid(),
        blackbox.listen(),
        &url,
        "http_2xx",
        listeners,
    )?;
    blackbox.stop();
    let toml = ours::config_toml(&Schedule::every(std::time::Duration::from_secs(1)), &[]);
    let daemon = Ours::start(dir, "ours-probe-http", &toml)?;
    let ours = load_target(
        report,
        "our /probe http_2xx",
        daemon.pid(),
        daemon.listen(),
        &url,
        "http_2xx",
        listeners,
    )?;
    daemon.stop()?;
    nginx.stop();
    let base = theirs.cpu_per_probe_us();
    let ratio = ours.cpu_per_probe_us() / base;
    println!(
        "/probe under wrk -t2 -c32 -d{SECONDS}s, http_2xx: {:.1} us CPU per probe = {ratio:.2} x \
         blackbox_exporter http_2xx ({base:.0} us; target <= 0.2){}",
        ours.cpu_per_probe_us(),
        below(ratio <= 0.2),
    );
    println!(
        "  probes/s: blackbox_exporter {:.0} on {:.2} cores; ours {:.0} on {:.2} cores",
        theirs.run.requests as f64 / theirs.window.wall.as_secs_f64(),
        theirs.window.cores(),
        ours.run.requests as f64 / ours.window.wall.as_secs_f64(),
        ours.window.cores(),
    );
    report.target("/probe http_2xx <= 0.2 x blackbox_exporter", ratio <= 0.2);
    Ok(())
}
