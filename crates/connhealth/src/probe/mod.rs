//! Half-open TCP probes. (Issue 3.)
