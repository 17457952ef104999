//! A panic while holding a connection neither leaks its slot nor poisons the pool. The
//! connection itself is closed: its protocol state is unknown after a panic mid-use.

mod pool_support;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use connhealth::pool::{Pool, TcpManager};
use pool_support::{eventually, roundtrip, Echo, Fakes};

#[tokio::test]
async fn a_task_that_panics_holding_a_connection_frees_its_slot() {
    let server = Echo::start(None).await;
    let pool = Pool::builder()
        .max_size(1)
        .get_timeout(Duration::from_secs(1))
        .build(TcpManager::new(server.addr.clone()))
        .await
        .unwrap();
    for _ in 0..3 {
        let task = tokio::spawn({
            let pool = pool.clone();
            async move {
                let mut conn = pool.get().await.unwrap();
                roundtrip(&mut conn).await.unwrap();
                panic!("the application panics mid-request (expected by the test)");
            }
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(pool.stats().size(), 0, "slot leaked");
    }
    // Closed, not returned; and the pool works on.
    let ended = eventually(Duration::from_secs(1), || server.ended.load(SeqCst) == 3).await;
    assert!(ended.is_some());
    let mut conn = pool.get().await.expect("the pool is usable after panics");
    roundtrip(&mut conn).await.unwrap();
}

#[test]
fn a_thread_that_panics_holding_a_connection_does_not_poison_the_pool() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fakes = Fakes::default();
    let pool = rt
        .block_on(Pool::builder().max_size(1).build(fakes.clone()))
        .unwrap();
    let conn = rt.block_on(pool.get()).unwrap();
    let panicked = std::thread::spawn(move || {
        let _conn = conn; // dropped while unwinding
        panic!("a worker thread panics (expected by the test)");
    })
    .join();
    assert!(panicked.is_err());
    assert_eq!(pool.stats().size(), 0);
    assert_eq!(fakes.open.load(SeqCst), 0);
    assert!(rt.block_on(pool.get()).is_ok());
}

#[tokio::test]
async fn a_manager_check_that_panics_leaves_the_pool_whole() {
    let fakes = Fakes::default();
    let pool = Pool::builder()
        .max_size(1)
        .build(fakes.clone())
        .await
        .unwrap();
    drop(pool.get().await.unwrap()); // one idle connection
    fakes.panic_on_check.store(true, SeqCst);
    let task = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    assert!(task.await.unwrap_err().is_panic());
    fakes.panic_on_check.store(false, SeqCst);
    // The connection was already in its guard: closed by the unwind, slot freed.
    assert_eq!(pool.stats().size(), 0);
    assert!(pool.get().await.is_ok());
    assert_eq!(pool.stats().size(), 1);
}
