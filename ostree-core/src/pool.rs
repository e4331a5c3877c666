//! A small process-wide pool of reusable values (buffers, compressor states).
//!
//! Work runs on tokio's blocking pool, which grows to dozens of threads on a busy machine; a
//! value kept per thread would be allocated once per thread and never shared. A [`Pool`] keeps
//! at most a few idle values, so memory follows the number of values in use at once.
//!
//! ```
//! use ostree_core::pool::Pool;
//! static BUFS: Pool<Vec<u8>> = Pool::new(4);
//! let mut buf = BUFS.take().unwrap_or_else(|| vec![0; 4096]);
//! buf[0] = 1;
//! BUFS.give(buf);
//! assert_eq!(BUFS.take().map(|b| b.len()), Some(4096));
//! ```

use std::sync::Mutex;

/// Idle values, at most `max` of them.
#[derive(Debug)]
pub struct Pool<T> {
    idle: Mutex<Vec<T>>,
    max: usize,
}

impl<T> Pool<T> {
    /// An empty pool keeping at most `max` idle values.
    pub const fn new(max: usize) -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
            max,
        }
    }

    /// An idle value, if any.
    pub fn take(&self) -> Option<T> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Keep `value` for a later [`take`](Pool::take), or drop it when `max` are idle already.
    pub fn give(&self, value: T) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max {
            idle.push(value);
        }
    }
}
