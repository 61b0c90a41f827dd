//! A store's background thread (the SQLite writer, the PostgreSQL count committer) that
//! can be waited for with a bound, through `&self`.
//!
//! Why not just `join` in `Drop`: at shutdown the runtime may abandon a blocking task
//! that still holds the store (a retention prune waiting on a lock), so the store is
//! never dropped and its last counts never committed. The binary closes the store
//! explicitly instead, and must not hang on it: `JoinHandle` has no timed join, so the
//! thread carries a sender that disconnects when it ends, and waiting is a timed receive.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

pub struct Background {
    /// Disconnects when the thread ends, panics included; `None` once it has been joined.
    ended: Mutex<Option<Receiver<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Background {
    /// Starts `work` on a thread named `name`.
    pub fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> std::io::Result<Self> {
        let (ended_tx, ended) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _ended = ended_tx;
                work();
            })?;
        Ok(Background {
            ended: Mutex::new(Some(ended)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread
            .lock()
            .as_ref()
            .is_none_or(JoinHandle::is_finished)
    }

    /// Waits at most `within` for the thread to end (and joins it); true when it has.
    pub fn wait(&self, within: Duration) -> bool {
        let mut ended = self.ended.lock();
        let Some(receiver) = ended.as_ref() else {
            return true;
        };
        match receiver.recv_timeout(within) {
            Err(RecvTimeoutError::Disconnected) => {
                *ended = None;
                self.join();
                true
            }
            // Nothing is ever sent: only the end of the thread answers.
            Ok(()) | Err(RecvTimeoutError::Timeout) => false,
        }
    }

    /// Waits for the thread to end, however long that takes.
    pub fn join(&self) {
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}
