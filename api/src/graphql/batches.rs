//! When a request's DataLoader batches run: when its execution can go no
//! further without them.
//!
//! async-graphql's DataLoader collects the keys its resolvers ask for and
//! hands a batch to a spawner, expecting it to start "a moment" later. A
//! moment measured in time (its 1 ms default) or in turns of the scheduler
//! cuts a list's keys into several statements whenever the list takes
//! longer to resolve than the moment — a list of more than 32 items is
//! resolved over several polls, and on a busy or multi-threaded runtime
//! those polls are spread out. Here the batches are not spawned: they are
//! queued and run inside the request's own task, started only when the
//! execution is waiting on something without having asked to be polled
//! again — every resolver that could run has run and asked for its keys.
//! So a level of the response is one statement per relation, whatever the
//! machine's load, and statements per request stay flat in the length of
//! the lists.
//!
//! Written here because no crate drives DataLoader batches this way; it is
//! a small poll loop over the futures crate's `FuturesUnordered`.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;

/// Polls of a yielding execution answered at once, before its wake goes
/// through the runtime's queue.
const REPOLLS: usize = 8;

/// One request's batches: queued by its loaders, then running.
#[derive(Clone, Default)]
pub struct Batches {
    queued: Arc<Mutex<Vec<BoxFuture<'static, ()>>>>,
    /// Kept across the operations of a request: a batch that an operation
    /// finished without (a failed sibling field stops waiting for it)
    /// still runs in the next one, so its keys are never stranded.
    running: Arc<Mutex<FuturesUnordered<BoxFuture<'static, ()>>>>,
}

impl Batches {
    /// The spawner the request's DataLoaders are built with.
    pub fn queue(&self, batch: BoxFuture<'static, ()>) {
        self.queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(batch);
    }

    fn take(&self) -> Vec<BoxFuture<'static, ()>> {
        std::mem::take(&mut *self.queued.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs `execution` and, in the same task, the batches its loaders
    /// queue. Every DataLoader call of the request must happen inside it
    /// (a batch queued outside would never start).
    pub async fn drive<F: Future>(&self, execution: F) -> F::Output {
        let mut execution = pin!(execution);
        // One waker for the execution while the task's own stays the same:
        // a new one each poll would make every future inside it register
        // its waker again.
        let mut flag: Option<(Arc<WokenFlag>, Waker)> = None;
        poll_fn(|cx| {
            let (woken, waker) = match &flag {
                Some((f, w)) if f.task.will_wake(cx.waker()) => (f.clone(), w.clone()),
                _ => {
                    let f = Arc::new(WokenFlag {
                        woken: AtomicBool::new(false),
                        task: cx.waker().clone(),
                    });
                    let w = Waker::from(f.clone());
                    flag = Some((f.clone(), w.clone()));
                    (f, w)
                }
            };
            // A yield, or a batch's answer, is taken up at once, a few times,
            // rather than through the runtime's queue (behind every other
            // request): a long list is resolved in rounds of 32, and each
            // round trip would cost a turn of the whole queue.
            for _ in 0..REPOLLS {
                woken.woken.store(false, Ordering::Release);
                if let Poll::Ready(out) = execution.as_mut().poll(&mut Context::from_waker(&waker))
                {
                    return Poll::Ready(out);
                }
                // Woken while it was polled: it yielded (a long list, or the
                // runtime's budget) or news arrived; it has more to do before
                // its keys are all asked for.
                if woken.woken.load(Ordering::Acquire) {
                    continue;
                }
                if !self.run_batches(cx) {
                    return Poll::Pending;
                }
            }
            // Still busy: go on after the other tasks had their turn.
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await
    }

    /// Starts the queued batches and polls the running ones. True when one
    /// answered or a batch queued another: the execution can go on at once.
    fn run_batches(&self, cx: &mut Context<'_>) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.extend(self.take());
        // Batches still waiting on the database wake this task when their
        // answer comes.
        let mut answered = false;
        while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {
            answered = true;
        }
        answered
            || !self
                .queued
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
    }
}

/// A waker that notes whether it was woken, and wakes the task.
struct WokenFlag {
    woken: AtomicBool,
    task: Waker,
}

impl Wake for WokenFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;

    use async_graphql::dataloader::{DataLoader, Loader};

    use super::*;

    /// Counts its batches; every key maps to itself.
    struct Counting(Arc<AtomicUsize>);

    impl Loader<u32> for Counting {
        type Value = u32;
        type Error = String;

        async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, u32>, String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(keys.iter().map(|k| (*k, *k)).collect())
        }
    }

    fn loader(batches: &Batches, count: &Arc<AtomicUsize>) -> DataLoader<Counting> {
        let batches = batches.clone();
        DataLoader::new(Counting(count.clone()), move |f| batches.queue(f))
            .delay(std::time::Duration::ZERO)
    }

    /// A list of 500 resolved concurrently (which the futures crate polls
    /// in rounds of 32, yielding in between), each item asking for its key
    /// after some work of its own: one batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_list_asks_for_all_its_keys_in_one_batch() {
        let batches = Batches::default();
        let count = Arc::new(AtomicUsize::new(0));
        let loader = loader(&batches, &count);
        let items = (0..500u32).map(|i| {
            let loader = &loader;
            async move {
                for _ in 0..(i % 7) {
                    tokio::task::yield_now().await;
                }
                loader.load_one(i).await
            }
        });
        let values = batches
            .drive(futures::future::join_all(items))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .expect("every key loads");
        assert_eq!(values.len(), 500);
        assert!(values.iter().enumerate().all(|(i, v)| *v == Some(i as u32)));
        assert_eq!(count.load(Ordering::SeqCst), 1, "batches");
    }

    /// Keys asked for after a first batch answered (the next level of a
    /// response) make a second batch, not one each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_level_is_one_batch() {
        let batches = Batches::default();
        let count = Arc::new(AtomicUsize::new(0));
        let loader = loader(&batches, &count);
        let items = (0..100u32).map(|i| {
            let loader = &loader;
            async move {
                let first = loader.load_one(i).await?.unwrap_or_default();
                loader.load_one(first + 1000).await
            }
        });
        let values = batches
            .drive(futures::future::try_join_all(items))
            .await
            .expect("every key loads");
        assert_eq!(values.len(), 100);
        assert_eq!(count.load(Ordering::SeqCst), 2, "batches");
    }
}
