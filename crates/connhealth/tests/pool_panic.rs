//! A panic while holding a connection neither leaks its slot nor poisons the pool. The
//! connection itself is closed: its protocol state is unknown after a panic mid-use. Nor
//! does a slot leak when a connection's own `Drop` panics, or when a `get` is polled
//! where tokio cannot run it.

mod pool_support;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering::SeqCst;
use std::task::{Context, Waker};
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
    let pool = fakes.pool(1).await;
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

#[tokio::test]
async fn a_connection_whose_drop_panics_still_frees_its_slot() {
    let fakes = Fakes::default();
    let pool = fakes.pool(1).await;
    // Closed on its return, marked unusable.
    fakes.panic_on_drop.store(true, SeqCst);
    let task = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.unwrap().mark_unusable() }
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(
        pool.stats().size(),
        0,
        "the returned connection's slot leaked"
    );
    // Closed at checkout, its check failed.
    let id = pool.get().await.unwrap().id; // and back to idle
    fakes.dead.lock().unwrap().push(id);
    fakes.panic_on_drop.store(true, SeqCst);
    let task = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(
        pool.stats().size(),
        0,
        "the checked-out connection's slot leaked"
    );
    assert!(pool.get().await.is_ok());
}

#[test]
fn a_get_polled_outside_the_runtime_leaks_no_slot() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fakes = Fakes::default();
    let pool = rt
        .block_on(Pool::builder().max_size(4).grow_by(4).build(fakes.clone()))
        .unwrap();
    // Polled here, outside the runtime: nothing is idle, so the pool grows by a batch of
    // four, but neither the background connects nor the caller's timer can run.
    let mut get = std::pin::pin!(pool.get());
    let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
        get.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }));
    assert!(polled.is_err(), "tokio's timer needs its runtime");
    assert_eq!(pool.stats().size(), 0, "slots leaked");
    // The pool still grows to its max_size on the runtime.
    rt.block_on(async {
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(pool.get().await.expect("a slot was lost"));
        }
    });
    assert_eq!(fakes.made.load(SeqCst), 4);
}
