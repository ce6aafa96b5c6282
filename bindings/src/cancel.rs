//! `BraidCancelToken`: cancelling an async call from the foreign side.
//!
//! Kotlin cancels a suspended call by dropping its Rust future, but the Swift code uniffi
//! generates never does: a cancelled Swift task keeps waiting until the Rust work ends on
//! its own. The Swift layer therefore passes a token to each async call and cancels it from
//! `withTaskCancellationHandler`; the call then ends at once with `BraidError::Cancelled`.

use crate::error::BraidError;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;

/// Cancels the async calls it was passed to. Cancelling is final; a token cancelled before
/// the call starts makes the call end at once.
#[derive(uniffi::Object)]
pub struct BraidCancelToken {
    cancelled: watch::Sender<bool>,
}

#[uniffi::export]
impl BraidCancelToken {
    /// A token not cancelled yet.
    #[uniffi::constructor]
    #[allow(clippy::new_without_default)] // a uniffi constructor, not a Rust API
    pub fn new() -> Arc<Self> {
        Arc::new(BraidCancelToken {
            cancelled: watch::channel(false).0,
        })
    }

    /// Makes every call given this token end with `Cancelled` (unless it is already done).
    pub fn cancel(&self) {
        self.cancelled.send_replace(true);
    }

    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }
}

/// Runs `fut` until it finishes or `token` is cancelled. `fut` is polled first, so work
/// that completed is never thrown away for a cancel that came at the same moment (a read
/// returns its bytes rather than losing them); when cancelled, `fut` is dropped while
/// pending, which for reads and writes means nothing was taken or sent by that poll.
pub(crate) async fn cancellable<T>(
    token: Option<Arc<BraidCancelToken>>,
    fut: impl Future<Output = Result<T, BraidError>>,
) -> Result<T, BraidError> {
    let Some(token) = token else {
        return fut.await;
    };
    let mut rx = token.cancelled.subscribe();
    tokio::select! {
        biased;
        r = fut => r,
        _ = rx.wait_for(|c| *c) => Err(BraidError::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancel_ends_a_pending_call_and_a_finished_one_keeps_its_result() {
        let t = BraidCancelToken::new();
        let t2 = t.clone();
        let pending = tokio::spawn(cancellable(Some(t.clone()), async {
            std::future::pending::<Result<u8, BraidError>>().await
        }));
        tokio::task::yield_now().await;
        t2.cancel();
        assert!(matches!(pending.await.unwrap(), Err(BraidError::Cancelled)));
        assert!(t.is_cancelled());
        // Already cancelled, but the work is ready on its first poll: its result wins.
        assert_eq!(cancellable(Some(t), async { Ok(7u8) }).await.unwrap(), 7);
        assert_eq!(cancellable(None, async { Ok(8u8) }).await.unwrap(), 8);
    }
}
