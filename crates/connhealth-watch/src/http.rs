//! The HTTP server. (Being written.)

use std::future::Future;
use std::io;
use std::sync::Arc;

use crate::daemon::Shared;

/// Serves every path on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let _ = (listener, shared);
    shutdown.await;
    Ok(())
}
