//! Freeing used preprocessing off the online phase's critical path.
//!
//! A comparison layer's material is large (2 KB of DCF keys per element in one-round mode), and
//! giving hundreds of megabytes back to the operating system is not free: measured on 100,000
//! ReLUs, dropping the party's 206 MB of used material took 12–17 ms, as long as the DCF
//! evaluation itself. A party does not need that memory back before its next step, so a
//! protocol hands what it has used to a [`Reclaimer`], whose thread frees it while the online
//! phase goes on (and mostly while the party waits for its peer).
//!
//! The queue is bounded ([`PENDING`] items): a party that outruns its reclaimer waits for it,
//! so used material never piles up beyond a few layers' worth. Dropping the reclaimer waits
//! until everything handed to it is freed, so memory is back when the context is gone.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Items handed over but not yet freed, at most.
pub const PENDING: usize = 2;

type Item = Box<dyn Send>;

/// A background thread that drops what it is given (started on first use).
#[derive(Debug, Default)]
pub struct Reclaimer {
    worker: Option<(SyncSender<Item>, JoinHandle<()>)>,
    /// No thread could be started: drop in place from then on.
    inline: bool,
}

impl Reclaimer {
    /// Frees `item` on the reclaimer's thread (in place if no thread can be started).
    pub fn retire<V: Send + 'static>(&mut self, item: V) {
        if self.inline {
            return drop(item);
        }
        if self.worker.is_none() {
            let (tx, rx) = sync_channel::<Item>(PENDING);
            match std::thread::Builder::new().name("masq-reclaim".into()).spawn(move || drain(rx)) {
                Ok(handle) => self.worker = Some((tx, handle)),
                Err(_) => {
                    self.inline = true;
                    return drop(item);
                }
            }
        }
        let (tx, _) = self.worker.as_ref().expect("started above");
        if let Err(back) = tx.send(Box::new(item)) {
            // The thread is gone (it cannot panic on a drop of plain buffers, but be safe).
            self.inline = true;
            drop(back.0);
        }
    }
}

fn drain(rx: Receiver<Item>) {
    while let Ok(item) = rx.recv() {
        drop(item);
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        if let Some((tx, handle)) = self.worker.take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn everything_handed_over_is_freed_by_the_time_the_reclaimer_is_dropped() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut r = Reclaimer::default();
        for _ in 0..50 {
            r.retire(Counted(dropped.clone()));
            r.retire(vec![0u64; 1 << 16]);
        }
        // At most PENDING items wait in the queue and one is being dropped.
        assert!(dropped.load(Ordering::SeqCst) >= 50 - PENDING - 1);
        drop(r);
        assert_eq!(dropped.load(Ordering::SeqCst), 50);
    }

    #[test]
    fn the_worker_thread_does_the_dropping() {
        let mut r = Reclaimer::default();
        let (tx, rx) = std::sync::mpsc::channel();
        struct Tell(std::sync::mpsc::Sender<std::thread::ThreadId>);
        impl Drop for Tell {
            fn drop(&mut self) {
                let _ = self.0.send(std::thread::current().id());
            }
        }
        r.retire(Tell(tx));
        drop(r);
        assert_ne!(rx.recv().unwrap(), std::thread::current().id());
    }
}
