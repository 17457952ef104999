//! The `tls` check. (Being written.)

use std::net::SocketAddr;
use std::time::Duration;

use super::{CheckResult, Outcome};
use crate::config::CheckPlan;

/// Connects to `addr`, completes a TLS handshake with `host` as the SNI (unless
/// `plan.tls.server_name` overrides it), and reports the chain's earliest expiry.
pub async fn check(
    addr: SocketAddr,
    host: &str,
    plan: &CheckPlan,
    timeout: Duration,
) -> CheckResult {
    let _ = (addr, host, plan, timeout);
    CheckResult::failed(Outcome::Error, Duration::ZERO, "not written yet")
}
