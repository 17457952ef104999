//! What the demo's dead-peer part needs from the system, written for the shipped binary:
//! whether it runs as root, whether `ip` and `iptables` are there (on Debian, as root, it
//! installs their packages; elsewhere it says what to install), and a private network
//! namespace where iptables can make a peer vanish without touching the host's network.
//! Linux only.
//!
//! The test kit (crates/connhealth-testkit) has a fuller `Netns` for the tests; this is
//! the little of it the demo uses.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::thread;

/// True when running as root.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when `command` is on the PATH (or in /usr/sbin or /sbin, where a user's PATH
/// may not look but `ip` and `iptables` live).
pub(crate) fn on_path(command: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(command).is_file())
}

/// True on a Debian-like system whose packages `apt_install` can install.
pub(crate) fn is_debian() -> bool {
    std::path::Path::new("/usr/bin/apt-get").exists()
}

/// Installs Debian `packages` (as root), quietly: `apt-get update`, then `install`.
pub(crate) fn apt_install(packages: &[&str]) -> io::Result<()> {
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        run(&mut command)
    };
    apt(&["update", "-qq"])?;
    apt(&[&["install", "-y", "-qq"][..], packages].concat())?;
    Ok(())
}

fn run(command: &mut Command) -> io::Result<Output> {
    let output = command.output()?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(io::Error::other(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// A private network namespace, `connhealth-demo-<pid>`, with its loopback up, deleted
/// on drop. Sockets made inside it ([`Netns::enter`]) stay in it, whichever thread uses
/// them afterwards.
#[derive(Debug)]
pub(crate) struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings its loopback up. Needs root and `ip`.
    pub(crate) fn new() -> io::Result<Netns> {
        let name = format!("connhealth-demo-{}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let netns = Netns { name };
        netns.exec("ip", &["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// Runs `f` on a thread that has entered the namespace, and returns its result.
    pub(crate) fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let ns = File::open(format!("/var/run/netns/{}", self.name))?;
        thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: `ns` is an open namespace file; setns changes only this
                    // thread's network namespace, and the thread ends after `f`.
                    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Runs `program args...` inside the namespace; an error if it fails.
    fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args))
    }

    /// Silently drops every IPv4 TCP segment to or from `port` inside the namespace: the
    /// peer vanishes, no FIN, no RST, no ICMP.
    pub(crate) fn drop_tcp_port(&self, port: u16) -> io::Result<()> {
        let port = port.to_string();
        for dir in ["--dport", "--sport"] {
            self.exec(
                "iptables",
                &["-I", "INPUT", "-p", "tcp", dir, &port, "-j", "DROP"],
            )?;
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}
