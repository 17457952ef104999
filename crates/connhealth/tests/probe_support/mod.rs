//! Shared by the prober's tests.

/// The runtime the probe tests' callers run on: two workers, as a service would have.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A namespace with a prober built by `builder`, a listener whose SYNs are dropped (the
/// first address), and one that answers (the second); the listeners are non-blocking and
/// accept nothing unless a test asks them to.
#[allow(dead_code)] // not every test file that shares this module drops SYNs
pub fn dropping_and_live(
    builder: connhealth::ProberBuilder,
) -> (
    connhealth_testkit::Netns,
    connhealth::Prober,
    std::net::SocketAddr,
    std::net::SocketAddr,
    [std::net::TcpListener; 2],
) {
    let listener = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        listener
    };
    let netns = connhealth_testkit::Netns::new().unwrap();
    let (dropping, live, prober) = netns
        .enter(|| (listener(), listener(), builder.build()))
        .unwrap();
    let (dead, up) = (dropping.local_addr().unwrap(), live.local_addr().unwrap());
    netns.drop_tcp_port(dead.port()).unwrap();
    (netns, prober, dead, up, [dropping, live])
}
