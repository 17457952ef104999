//! The `send-expect` check. (Being written.)

use std::net::SocketAddr;
use std::time::Duration;

use super::{CheckResult, Outcome};
use crate::config::CheckPlan;

/// Connects to `addr`, sends `plan.send`, reads until the reply matches `plan.expect`,
/// sends `plan.quit` and closes gracefully.
pub async fn check(addr: SocketAddr, plan: &CheckPlan, timeout: Duration) -> CheckResult {
    let _ = (addr, plan, timeout);
    CheckResult::failed(Outcome::Error, Duration::ZERO, "not written yet")
}
