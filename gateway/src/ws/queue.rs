//! A socket's outbound queue: bounded, many senders, one receiver (the socket's
//! writer), with the server's request to close the socket kept next to the items.
//!
//! The writer wakes up once per delivery, and everything it looks at then (the items,
//! whether a close was requested, whether any sender is left, where its waker is) sits
//! in this one allocation behind one lock. With a tokio channel plus a separate close
//! signal, each wake-up touched the channel's block list, its semaphore and waker, and
//! the close signal: cold cache lines on every socket.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

/// Why an item was not queued; the item comes back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The queue holds its capacity.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// What the receiver found.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Items were moved out (at least one).
    Items,
    /// A close was requested; items still queued stay for [`Receiver::drain`].
    CloseRequested,
    /// Every sender is gone and nothing is queued.
    Ended,
}

struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    senders: usize,
    receiver_alive: bool,
    close_requested: bool,
    /// The receiver's task, while it waits.
    waker: Option<Waker>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Tells [`Sender::closed`] that the receiver is gone.
    receiver_gone: Notify,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A poisoned lock only means a panic mid-update of plain data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A queue of at most `capacity` items (at least one).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            senders: 1,
            receiver_alive: true,
            close_requested: false,
            waker: None,
        }),
        receiver_gone: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

impl<T> Sender<T> {
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let waker = {
            let mut state = self.shared.lock();
            if !state.receiver_alive {
                return Err(TrySendError::Closed(item));
            }
            if state.items.len() >= state.capacity {
                return Err(TrySendError::Full(item));
            }
            state.items.push_back(item);
            state.waker.take()
        };
        // Woken outside the lock; a receiver already awake is not woken again.
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Asks the receiver to stop: its next poll answers [`Received::CloseRequested`],
    /// ahead of anything queued.
    pub fn request_close(&self) {
        let waker = {
            let mut state = self.shared.lock();
            state.close_requested = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Resolves once the receiver is gone.
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.receiver_gone.notified();
            tokio::pin!(notified);
            // Registered before the check: a drop between the two still wakes us.
            notified.as_mut().enable();
            if !self.shared.lock().receiver_alive {
                return;
            }
            notified.await;
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            if state.senders > 0 {
                return;
            }
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// Moves up to `max` queued items into `into`, or says why there are none. Waits
    /// (registers the task) only when nothing is queued and nothing ended.
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        into: &mut Vec<T>,
        max: usize,
    ) -> Poll<Received> {
        let mut state = self.shared.lock();
        if state.close_requested {
            return Poll::Ready(Received::CloseRequested);
        }
        if !state.items.is_empty() {
            let n = state.items.len().min(max.max(1));
            into.extend(state.items.drain(..n));
            return Poll::Ready(Received::Items);
        }
        if state.senders == 0 {
            return Poll::Ready(Received::Ended);
        }
        register(&mut state.waker, cx);
        Poll::Pending
    }

    /// Resolves once a close was requested; for the receiver's task while it is busy
    /// with something else (a write that does not complete).
    pub fn poll_close_requested(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.shared.lock();
        if state.close_requested {
            return Poll::Ready(());
        }
        register(&mut state.waker, cx);
        Poll::Pending
    }

    /// Everything still queued, without waiting.
    pub fn drain(&mut self, into: &mut Vec<T>) {
        into.extend(self.shared.lock().items.drain(..));
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let dropped = {
            let mut state = self.shared.lock();
            state.receiver_alive = false;
            state.waker = None;
            std::mem::take(&mut state.items)
        };
        // Items are dropped outside the lock.
        drop(dropped);
        self.shared.receiver_gone.notify_waiters();
    }
}

fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use super::*;

    async fn recv(rx: &mut Receiver<u32>, max: usize) -> (Received, Vec<u32>) {
        let mut items = Vec::new();
        let received = poll_fn(|cx| rx.poll_recv(cx, &mut items, max)).await;
        (received, items)
    }

    #[tokio::test]
    async fn items_come_out_in_order_at_most_max_at_a_time() {
        let (tx, mut rx) = channel(8);
        for i in 0..5 {
            tx.try_send(i).expect("queued");
        }
        assert_eq!(recv(&mut rx, 3).await, (Received::Items, vec![0, 1, 2]));
        assert_eq!(recv(&mut rx, 3).await, (Received::Items, vec![3, 4]));
    }

    #[tokio::test]
    async fn a_full_queue_hands_the_item_back() {
        let (tx, mut rx) = channel(2);
        tx.try_send(1).expect("queued");
        tx.try_send(2).expect("queued");
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        assert_eq!(recv(&mut rx, 10).await, (Received::Items, vec![1, 2]));
        tx.try_send(3).expect("room again");
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_send_from_another_task() {
        let (tx, mut rx) = channel(4);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.try_send(7).expect("queued");
            tx
        });
        let got = tokio::time::timeout(Duration::from_secs(5), recv(&mut rx, 4))
            .await
            .expect("woken");
        assert_eq!(got, (Received::Items, vec![7]));
        drop(sender.await.expect("sender task"));
    }

    #[tokio::test]
    async fn a_close_request_comes_before_queued_items_which_stay_for_drain() {
        let (tx, mut rx) = channel(4);
        tx.try_send(1).expect("queued");
        tx.request_close();
        assert_eq!(recv(&mut rx, 4).await, (Received::CloseRequested, vec![]));
        let mut rest = Vec::new();
        rx.drain(&mut rest);
        assert_eq!(rest, vec![1]);
    }

    #[tokio::test]
    async fn a_close_request_wakes_a_receiver_waiting_for_it() {
        let (tx, mut rx) = channel::<u32>(4);
        let closer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.request_close();
            tx
        });
        tokio::time::timeout(
            Duration::from_secs(5),
            poll_fn(|cx| rx.poll_close_requested(cx)),
        )
        .await
        .expect("woken by the close request");
        drop(closer.await.expect("closer task"));
    }

    #[tokio::test]
    async fn the_queue_ends_when_the_last_sender_is_dropped_after_its_items() {
        let (tx, mut rx) = channel(4);
        let other = tx.clone();
        tx.try_send(1).expect("queued");
        drop(tx);
        other.try_send(2).expect("queued by the clone");
        let waiter = tokio::spawn(async move {
            let first = recv(&mut rx, 4).await;
            let second = recv(&mut rx, 4).await;
            (first, second)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(other);
        let (first, second) = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("ended in time")
            .expect("receiver task");
        assert_eq!(first, (Received::Items, vec![1, 2]));
        assert_eq!(second, (Received::Ended, vec![]));
    }

    #[tokio::test]
    async fn senders_learn_that_the_receiver_is_gone() {
        let (tx, rx) = channel(4);
        let waiting = tx.clone();
        let watcher = tokio::spawn(async move { waiting.closed().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .expect("told in time")
            .expect("watcher task");
        assert_eq!(tx.try_send(1), Err(TrySendError::Closed(1)));
        // Already gone: resolves at once.
        tokio::time::timeout(Duration::from_secs(1), tx.closed())
            .await
            .expect("at once");
    }
}
