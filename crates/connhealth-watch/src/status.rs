//! `/status`. (Being written.)

use crate::daemon::LogFormat;

/// Sets up logging to stderr; keep the guard alive while the daemon runs.
pub fn init_logging(format: LogFormat) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let _ = format;
    None
}

/// Logs one state change (stub; the HTTP side writes the real one).
pub fn log_transition(target: &crate::config::TargetPlan, transition: &crate::state::Transition) {
    tracing::info!(target = %target.name, from = transition.from.name(), to = transition.to.name(), why = %transition.why, "state change");
}
