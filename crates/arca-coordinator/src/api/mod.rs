//! The coordinator's network face: the client REST API, the mesh gRPC API, the metrics endpoint, and the
//! TLS server that carries the first two.

pub(crate) mod client;
pub(crate) mod mesh;
pub(crate) mod server;

/// Turns, first come first served, for CPU-bound work (handshakes, activations): a few per core run at once,
/// the rest wait in arrival order — a burst then finishes one after the other instead of all late together.
/// Not a lock: nobody waits longer than the turns' `max_wait`, then goes ahead without one.
#[derive(Clone)]
pub(crate) struct Turns {
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    max_wait: std::time::Duration,
}

impl Turns {
    /// `per_core` turns for each core of this machine, waited for at most `max_wait`.
    pub(crate) fn per_core(per_core: usize, max_wait: std::time::Duration) -> Turns {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Turns {
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(per_core * cores)),
            max_wait,
        }
    }

    /// Waits for a turn (held until the permit is dropped); `None` when `max_wait` ran out first.
    pub(crate) async fn take(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        tokio::time::timeout(self.max_wait, self.slots.acquire())
            .await
            .ok()
            .and_then(Result::ok)
    }
}
