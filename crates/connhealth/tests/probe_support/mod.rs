//! Shared by the prober's tests.

/// The runtime the probe tests' callers run on: two workers, as a service would have.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
