//! Half-open TCP probes: [`Prober`](crate::Prober). (Issue 3.)
