//! The buffers ranged transfers receive into: one pool per download, shared by the files fetched
//! at the same time, so memory stays fixed by the connection budget whatever the number of files
//! and the relative speeds of the network, the disk and the hash. A buffer goes network -> writer
//! -> hasher -> back here; nothing holds one while waiting for another, so sharing cannot
//! deadlock: a short pool only slows the connections that wait.

use std::sync::Mutex;
use tokio::sync::Semaphore;

/// One buffer of the pool.
pub const BUFFER: usize = 128 << 10;
/// Buffers beyond two per connection: what the writer and the hasher may have queued. Two per
/// connection, not one: with one, connections of a three-file download waited on the pool often
/// enough to cost 10% more CPU and wall time (measured); per-file pools cost 1.5 MiB more.
pub const SLACK: usize = 4;

pub struct Pool {
    free: Mutex<Vec<Vec<u8>>>,
    permits: Semaphore,
}

impl Pool {
    /// At most `n` buffers, allocated on first use.
    pub fn new(n: usize) -> Self {
        Pool {
            free: Mutex::new(Vec::new()),
            permits: Semaphore::new(n),
        }
    }

    /// An empty buffer of `BUFFER` capacity, once one is free.
    pub async fn get(&self) -> Vec<u8> {
        // The semaphore is never closed.
        if let Ok(p) = self.permits.acquire().await {
            p.forget();
        }
        let mut b = self
            .free
            .lock()
            .unwrap()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUFFER));
        b.clear();
        b
    }

    pub fn put(&self, b: Vec<u8>) {
        self.free.lock().unwrap().push(b);
        self.permits.add_permits(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_pool_waits_for_a_buffer_to_come_back() {
        let pool = std::sync::Arc::new(Pool::new(2));
        let a = pool.get().await;
        let b = pool.get().await;
        assert!(a.capacity() >= BUFFER && b.is_empty());
        let third = tokio::time::timeout(Duration::from_millis(50), pool.get()).await;
        assert!(third.is_err(), "a third buffer was handed out");
        let p = pool.clone();
        let waiter = tokio::spawn(async move { p.get().await });
        let mut a = a;
        a.extend_from_slice(b"used");
        pool.put(a);
        let c = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the returned buffer reached the waiter")
            .unwrap();
        assert!(c.is_empty(), "buffers come back cleared");
        assert!(c.capacity() >= BUFFER);
    }
}
