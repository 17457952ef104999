//! Application-level heartbeats with deadlines. (Issue 5.)
