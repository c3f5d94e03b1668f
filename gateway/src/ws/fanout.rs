//! The thread that runs the hub's room tasks: each takes its room's messages from the
//! bus, encodes each once and queues it to every member socket.
//!
//! Why a thread of its own: under load every task woken on the gateway's runtime waits
//! behind the socket writers already queued there, several milliseconds when the
//! cores are busy. A room task on that runtime costs each message one such wait
//! before its fan-out and another for the writers. Here the room tasks wait for
//! nobody but each other, so a message pays the runtime's queue once, when the
//! writers run (BENCHMARKS.md, optimisation 20, has the measurements).

use std::io;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The fan-out thread. Dropping it stops the thread, and with it every task still
/// running there.
pub struct FanoutThread {
    handle: Handle,
    /// Dropped (never sent) to stop: the thread waits for the channel to close.
    _stop: oneshot::Sender<()>,
}

impl FanoutThread {
    /// Starts the thread and its single-threaded runtime (timers and I/O on, for the
    /// bus's gap-filling reads).
    pub fn start() -> io::Result<Self> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("chatx-fanout".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                // Dropping the runtime here cancels the tasks still on it.
            })?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }

    /// Where the hub spawns its room tasks.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn tasks_run_on_the_fanout_thread_and_stop_with_it() {
        let fanout = FanoutThread::start().expect("fan-out thread");
        let (name_tx, name_rx) = oneshot::channel();
        fanout.handle().spawn(async move {
            let name = std::thread::current().name().map(str::to_string);
            let _ = name_tx.send(name);
        });
        let name = tokio::time::timeout(Duration::from_secs(5), name_rx)
            .await
            .expect("the task ran")
            .expect("it answered");
        assert_eq!(name.as_deref(), Some("chatx-fanout"));

        // A task that never ends on its own is cancelled when the thread stops.
        let (_keep, never) = oneshot::channel::<()>();
        let forever = fanout.handle().spawn(async move {
            let _ = never.await;
        });
        drop(fanout);
        let ended = tokio::time::timeout(Duration::from_secs(5), forever)
            .await
            .expect("the task ended when the thread stopped");
        assert!(ended.expect_err("cancelled, not finished").is_cancelled());
    }
}
