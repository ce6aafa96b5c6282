//! The tokio runtime the library owns.
//!
//! Apps call in from their own threads and executors (Swift concurrency, Kotlin coroutines,
//! asyncio); none of them is a tokio runtime. All Braid work runs here, and async exports
//! hand a `JoinHandle` back to the foreign side, which only waits for it.

use crate::error::BraidError;
use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The library's runtime, started on first use. Two workers: one connection's driver plus
/// app calls; phones have few cores and the engine is not CPU-bound at mobile rates.
pub fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("braid")
            .enable_all()
            .build()
            // Without a runtime nothing works; there is no error path to report this
            // through, and it only fails when the OS cannot create threads at all.
            .expect("braid: cannot start the tokio runtime")
    })
}

/// Aborts the task when the foreign side drops the future (coroutine or Task cancelled).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` on the library runtime and waits for it from any executor. Cancelling the
/// returned future cancels the work; a panic in the work becomes [`BraidError::Internal`].
pub async fn run<F, T>(fut: F) -> Result<T, BraidError>
where
    F: Future<Output = Result<T, BraidError>> + Send + 'static,
    T: Send + 'static,
{
    let handle = runtime().spawn(fut);
    let _abort = AbortOnDrop(handle.abort_handle());
    match handle.await {
        Ok(r) => r,
        Err(e) if e.is_cancelled() => Err(BraidError::Cancelled),
        Err(e) => Err(BraidError::Internal(format!("task failed: {e}"))),
    }
}
