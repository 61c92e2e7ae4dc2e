//! Concurrent requests for the same thing, served together. Requests join the
//! queue of their key; the first one starts a task that takes everything
//! queued, serves it with one piece of work (one transaction, one query),
//! answers each request, and starts over as soon as that work is done, until
//! the queue is empty. A request alone is served at once; under load, a batch
//! is whatever arrived while the previous one was being served. Every request
//! is served by work that started after it arrived, never by older work.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The queues of one instance, one per key; cheap to clone.
pub struct Batches<K, T, O> {
    queues: Arc<Mutex<HashMap<K, Vec<Member<T, O>>>>>,
    max_batch: usize,
}

impl<K, T, O> Clone for Batches<K, T, O> {
    fn clone(&self) -> Self {
        Batches { queues: self.queues.clone(), max_batch: self.max_batch }
    }
}

/// One queued request, to be answered by the batch's work.
pub struct Member<T, O> {
    pub item: T,
    answer: oneshot::Sender<O>,
}

impl<T, O> Member<T, O> {
    pub fn answer(self, outcome: O) {
        // The requester may have gone (client hung up); the work is done either way.
        let _ = self.answer.send(outcome);
    }
}

impl<K, T, O> Batches<K, T, O>
where
    K: Eq + Hash + Clone + Send + 'static,
    T: Send + 'static,
    O: Send + 'static,
{
    /// At most `max_batch` requests per batch; more wait for the next one.
    pub fn new(max_batch: usize) -> Self {
        Batches { queues: Arc::default(), max_batch: max_batch.max(1) }
    }

    /// Queues `item` under `key` and waits for its answer. If no batch of this
    /// key is being served, starts serving with `serve`, which must answer
    /// every member it is given. `None` if the serving task died first.
    pub async fn join<F, Fut>(&self, key: K, item: T, serve: F) -> Option<O>
    where
        F: FnMut(K, Vec<Member<T, O>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queues = self.queues.lock().expect("batch queues poisoned");
            // A key is present exactly while its serving task runs.
            match queues.get_mut(&key) {
                Some(queue) => {
                    queue.push(Member { item, answer });
                    false
                }
                None => {
                    queues.insert(key.clone(), vec![Member { item, answer }]);
                    true
                }
            }
        };
        if start {
            // Its own task: a client hanging up must not cancel work that answers others.
            tokio::spawn(self.clone().serve_until_empty(key, serve));
        }
        answered.await.ok()
    }

    async fn serve_until_empty<F, Fut>(self, key: K, mut serve: F)
    where
        F: FnMut(K, Vec<Member<T, O>>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut guard = Guard { queues: &self.queues, key: Some(key.clone()) };
        loop {
            let batch: Vec<_> = {
                let mut queues = self.queues.lock().expect("batch queues poisoned");
                let queue = queues.get_mut(&key).expect("a serving task's queue exists");
                if queue.is_empty() {
                    queues.remove(&key);
                    guard.key = None;
                    return;
                }
                let n = queue.len().min(self.max_batch);
                queue.drain(..n).collect()
            };
            serve(key.clone(), batch).await;
        }
    }
}

/// If a serving task dies (panic, runtime shutdown), its queue must not wait
/// forever: the queued requests are dropped, which answers them `None`.
struct Guard<'a, K: Eq + Hash, T, O> {
    queues: &'a Mutex<HashMap<K, Vec<Member<T, O>>>>,
    key: Option<K>,
}

impl<K: Eq + Hash, T, O> Drop for Guard<'_, K, T, O> {
    fn drop(&mut self) {
        if let (Some(key), Ok(mut queues)) = (self.key.take(), self.queues.lock()) {
            queues.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::future::join_all;

    use super::*;

    #[tokio::test]
    async fn concurrent_requests_share_one_batch_and_each_gets_its_answer() {
        let batches: Batches<u8, u32, u32> = Batches::new(100);
        let served = Arc::new(AtomicUsize::new(0));
        let serve = |served: Arc<AtomicUsize>| {
            move |_key: u8, batch: Vec<Member<u32, u32>>| {
                served.fetch_add(1, Ordering::SeqCst);
                async move {
                    batch.into_iter().for_each(|m| {
                        let x = m.item;
                        m.answer(x * 10)
                    })
                }
            }
        };
        // Single-threaded runtime: all five are queued before the serving task first runs.
        let answers = join_all((1..=5).map(|i| batches.join(7, i, serve(served.clone())))).await;
        assert_eq!(answers, [Some(10), Some(20), Some(30), Some(40), Some(50)]);
        assert_eq!(served.load(Ordering::SeqCst), 1);
        assert!(batches.queues.lock().unwrap().is_empty(), "the task stops when its queue is empty");
    }

    #[tokio::test]
    async fn batches_are_capped_and_later_ones_follow() {
        let batches: Batches<u8, u32, usize> = Batches::new(2);
        let answers = join_all((0..5).map(|i| {
            batches.join(1, i, |_, batch: Vec<Member<u32, usize>>| async move {
                let size = batch.len();
                batch.into_iter().for_each(|m| m.answer(size));
            })
        }))
        .await;
        assert_eq!(answers, [Some(2), Some(2), Some(2), Some(2), Some(1)]);
    }

    #[tokio::test]
    async fn a_dying_server_answers_none_and_the_key_recovers() {
        let batches: Batches<u8, u32, u32> = Batches::new(10);
        let died = batches.join(1, 1, |_, _batch: Vec<Member<u32, u32>>| async move { panic!("serving failed") }).await;
        assert_eq!(died, None);
        let fine = batches
            .join(1, 2, |_, batch: Vec<Member<u32, u32>>| async move { batch.into_iter().for_each(|m| m.answer(0)) })
            .await;
        assert_eq!(fine, Some(0));
    }
}
