//! The dispatcher: drains the hand-off in batches, encodes each payload once, and gives the same
//! batch to every sink through a queue and a task of the sink's own, so that a slow or failing
//! sink never delays another.
//!
//! ```text
//! Handoff ──recv_many──▶ Dispatcher ──Arc<[EncodedPayload]>──┬──▶ queue ──▶ task ──▶ StoreSink
//!                        (batch, encode once)                └──▶ queue ──▶ task ──▶ KafkaDelivery
//! ```
//!
//! Each sink's queue is bounded in payloads (queued or being written): a sink may fall behind
//! by as many payloads as the hand-off holds. When a batch comes:
//! - every sink with room takes it (an empty queue always has room, whatever the batch's size);
//! - for a sink whose queue is full the batch is **dropped and counted** under the sink's
//!   [`PayloadSink::queue_full`] reason (`store_queue_full`, `kafka_queue_full`); the other sinks
//!   get it without waiting;
//! - when no sink has room, the dispatcher **waits** for the first that has: dropping would gain
//!   nothing, and the hand-off fills instead (and drops as `handoff_full` at the offer, so the
//!   request path still never waits). With one sink, this is how delivery always behaved.
//!
//! On shutdown the hand-off refuses new offers, what it still holds is queued for every sink
//! whatever its bound (the bound is then the hand-off's capacity), the queues are closed, and
//! `run` returns once every sink's task has written all it was given.
//!
//! A sink that fell behind takes what queued up meanwhile as one batch (up to `max_batch`), so
//! its writes grow with its backlog: the group commit adapts to each sink's own pace. Only that
//! path copies the payloads' descriptors; a sink that keeps up writes the shared batch itself.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use insights_payload::Payload;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Backlog, EncodedPayload, HandoffReceiver, Outcome, PayloadSink};

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Payloads taken from the hand-off at once and written to each sink as one batch.
    pub max_batch: usize,
    /// How long a batch that is not full waits for more payloads before it is written: a group
    /// commit, so that a steady trickle costs one write per interval rather than one per payload.
    pub linger: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            max_batch: 1024,
            linger: Duration::from_millis(5),
        }
    }
}

/// Drains the hand-off into every sink, batch by batch.
pub struct Dispatcher {
    rx: HandoffReceiver,
    sinks: Vec<Arc<dyn PayloadSink>>,
    config: DispatcherConfig,
}

impl Dispatcher {
    pub fn new(
        rx: HandoffReceiver,
        sinks: Vec<Arc<dyn PayloadSink>>,
        config: DispatcherConfig,
    ) -> Self {
        Self { rx, sinks, config }
    }

    /// Runs until `shutdown` is cancelled, then stops taking new payloads, delivers every
    /// payload already handed over to every sink, and returns once each sink has written it.
    pub async fn run(self, shutdown: CancellationToken) {
        let Dispatcher {
            mut rx,
            sinks,
            config,
        } = self;
        let max = config.max_batch;
        // Every sink task says when it has written a batch; only the dispatcher waits on it.
        let room = Arc::new(Notify::new());
        let capacity = rx.max_capacity();
        let mut queues: Vec<SinkQueue> = sinks
            .into_iter()
            .map(|sink| {
                let backlog = sink.backlog().unwrap_or_else(|| rx.backlog.clone());
                SinkQueue::start(sink, capacity, max, room.clone(), backlog)
            })
            .collect();
        let mut batch = Vec::with_capacity(max);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                n = rx.recv_many(&mut batch, max) => {
                    if n == 0 {
                        break; // every Handoff was dropped and the queue is empty
                    }
                    linger(&mut rx, &mut batch, &config).await;
                    deliver(&mut queues, &room, &mut batch).await;
                    // Delivery's backlog takes the fullest queue reporting to it; a sink with a
                    // backlog of its own settles that one with its queue alone.
                    let mut fullest = 0;
                    for q in &queues {
                        if Arc::ptr_eq(&q.backlog, &rx.backlog) {
                            fullest = fullest.max(q.held());
                        } else {
                            q.backlog.settle(0, q.held(), capacity);
                        }
                    }
                    rx.backlog.settle(rx.len(), fullest, capacity);
                }
            }
        }
        // Refuse new offers (they are counted as dropped), then deliver what was accepted.
        rx.close();
        while rx.recv_many(&mut batch, max).await > 0 {
            let encoded = encode(&mut batch);
            for queue in &mut queues {
                queue.push(&encoded);
            }
        }
        for queue in queues {
            queue.finish().await;
        }
    }
}

/// Lets a batch fill for up to `linger` (woken early only when it is full).
async fn linger(rx: &mut HandoffReceiver, batch: &mut Vec<Payload>, c: &DispatcherConfig) {
    let deadline = tokio::time::Instant::now() + c.linger;
    rx.fill(batch, c.max_batch, deadline).await;
}

/// Encodes (and empties) the batch: each payload's strings move into its encoding.
fn encode(batch: &mut Vec<Payload>) -> Arc<[EncodedPayload]> {
    batch.drain(..).map(EncodedPayload::from_payload).collect()
}

/// Gives the batch to every sink that has room, and drops it for the others; waits only while
/// no sink has room (see the module's doc).
async fn deliver(queues: &mut [SinkQueue], room: &Notify, batch: &mut Vec<Payload>) {
    let encoded = encode(batch);
    let n = encoded.len();
    while !queues.is_empty() && !queues.iter().any(|q| q.has_room(n)) {
        // A sink that wrote a batch meanwhile left a permit: no wake-up is lost.
        room.notified().await;
    }
    for queue in queues {
        if queue.has_room(n) {
            queue.push(&encoded);
        } else {
            queue.dropped(n, "it fell behind: its queue is full");
        }
    }
}

/// One sink's queue, and the task that writes what it holds.
struct SinkQueue {
    sink: Arc<dyn PayloadSink>,
    tx: mpsc::UnboundedSender<Arc<[EncodedPayload]>>,
    /// Payloads queued or being written: the bound is on this, not on batches, whose size
    /// varies.
    held: Arc<AtomicUsize>,
    capacity: usize,
    task: JoinHandle<()>,
    /// Told when this queue starts holding payloads and when a write finishes: delivery's, or
    /// the sink's own ([`PayloadSink::backlog`]).
    backlog: Arc<Backlog>,
    /// Drops for a full queue not logged yet: a sink that is stuck loses a batch every few
    /// milliseconds, and one line each would bury the rest of the log.
    unlogged: u64,
    last_log: Option<Instant>,
}

impl SinkQueue {
    fn start(
        sink: Arc<dyn PayloadSink>,
        capacity: usize,
        max_batch: usize,
        room: Arc<Notify>,
        backlog: Arc<Backlog>,
    ) -> SinkQueue {
        let (tx, rx) = mpsc::unbounded_channel();
        let held = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(write_all(
            sink.clone(),
            rx,
            held.clone(),
            max_batch,
            room,
            backlog.clone(),
        ));
        SinkQueue {
            sink,
            tx,
            held,
            backlog,
            capacity,
            task,
            unlogged: 0,
            last_log: None,
        }
    }

    /// Payloads queued or being written.
    fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// Room for `n` more payloads. (A task that has stopped has room: `push` counts what it
    /// cannot take, rather than the dispatcher waiting for it forever.)
    fn has_room(&self, n: usize) -> bool {
        let held = self.held.load(Ordering::Acquire);
        held == 0 || held + n <= self.capacity || self.tx.is_closed()
    }

    fn push(&mut self, batch: &Arc<[EncodedPayload]>) {
        if self.held.fetch_add(batch.len(), Ordering::AcqRel) == 0 {
            self.backlog.sink_busy();
        }
        if self.tx.send(batch.clone()).is_err() {
            let left = self.held.fetch_sub(batch.len(), Ordering::AcqRel) - batch.len();
            self.backlog.written(left == 0);
            self.dropped(batch.len(), "its task has stopped (a write panicked)");
        }
    }

    /// Counts a batch dropped for this sink, and says so at most once a second.
    fn dropped(&mut self, n: usize, why: &'static str) {
        self.sink.queue_full().count(n as u64);
        self.unlogged += n as u64;
        if self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            tracing::warn!(
                sink = self.sink.name(),
                reason = %self.sink.queue_full(),
                payloads = self.unlogged,
                "payloads dropped for a sink: {why}"
            );
            self.unlogged = 0;
            self.last_log = Some(Instant::now());
        }
    }

    /// Closes the queue and waits until the sink has written everything in it.
    async fn finish(self) {
        drop(self.tx);
        if let Err(e) = self.task.await {
            tracing::error!(sink = self.sink.name(), error = %e, "a sink's task failed");
        }
    }
}

/// A sink's task: writes its batches in order, one at a time, until its queue is closed and
/// empty.
async fn write_all(
    sink: Arc<dyn PayloadSink>,
    mut rx: mpsc::UnboundedReceiver<Arc<[EncodedPayload]>>,
    held: Arc<AtomicUsize>,
    max_batch: usize,
    room: Arc<Notify>,
    backlog: Arc<Backlog>,
) {
    // Also when a write panics: the dispatcher may be waiting for room in this queue.
    let _wake = WakeOnDrop(room.clone());
    let mut waiting: VecDeque<Arc<[EncodedPayload]>> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(batch) => waiting.push_back(batch),
                None => return,
            }
        }
        while let Ok(batch) = rx.try_recv() {
            waiting.push_back(batch);
        }
        let batch = next_write(&mut waiting, max_batch);
        let n = batch.len();
        match sink.write(batch).await {
            Outcome::Delivered | Outcome::WillRetry | Outcome::Skipped => {}
            Outcome::Dropped { reason, error } => {
                reason.count(n as u64);
                tracing::error!(error = %error, payloads = n, "payloads dropped by a sink");
            }
        }
        let left = held.fetch_sub(n, Ordering::AcqRel) - n;
        backlog.written(left == 0);
        room.notify_one();
    }
}

/// The next batch to write: the first waiting, with those after it that fit in `max_batch`.
fn next_write(
    waiting: &mut VecDeque<Arc<[EncodedPayload]>>,
    max_batch: usize,
) -> Arc<[EncodedPayload]> {
    let first = waiting.pop_front().expect("a batch is waiting");
    let fits = |len: usize, next: Option<&Arc<[EncodedPayload]>>| {
        next.is_some_and(|b| len + b.len() <= max_batch)
    };
    if !fits(first.len(), waiting.front()) {
        return first; // the sink keeps up: it writes the batch every sink shares
    }
    let mut merged = first.to_vec();
    while fits(merged.len(), waiting.front()) {
        merged.extend_from_slice(&waiting.pop_front().expect("checked"));
    }
    merged.into()
}

struct WakeOnDrop(Arc<Notify>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::tests::payload;
    use crate::{BoxFuture, DropReason, Handoff};
    use std::sync::Mutex;
    use tokio::sync::Semaphore;

    /// Under paused time the clock moves only once every task waits, so this returns when the
    /// dispatcher and the sinks have done all they can.
    async fn settle() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    /// Request ids, as a sink saw them.
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);

    impl PayloadSink for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn queue_full(&self) -> DropReason {
            DropReason::StoreQueueFull // it plays the store in these tests
        }
        fn write(&self, batch: Arc<[EncodedPayload]>) -> BoxFuture<'_, Outcome> {
            Box::pin(async move {
                self.0
                    .lock()
                    .unwrap()
                    .extend(batch.iter().map(|p| p.request_id.clone()));
                Outcome::Delivered
            })
        }
    }

    impl Recording {
        fn ids(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    /// A sink whose writes never return until the test releases them, one permit each.
    struct Blocked {
        release: Semaphore,
        /// Each batch as its write begins.
        began: mpsc::UnboundedSender<Vec<String>>,
        written: Recording,
    }

    impl Blocked {
        fn new() -> (Arc<Blocked>, mpsc::UnboundedReceiver<Vec<String>>) {
            let (began, rx) = mpsc::unbounded_channel();
            let sink = Blocked {
                release: Semaphore::new(0),
                began,
                written: Recording::default(),
            };
            (Arc::new(sink), rx)
        }
    }

    impl PayloadSink for Blocked {
        fn name(&self) -> &'static str {
            "blocked"
        }
        fn queue_full(&self) -> DropReason {
            DropReason::KafkaQueueFull // it plays a remote sink in these tests
        }
        fn write(&self, batch: Arc<[EncodedPayload]>) -> BoxFuture<'_, Outcome> {
            Box::pin(async move {
                let ids = batch.iter().map(|p| p.request_id.clone()).collect();
                let _ = self.began.send(ids);
                self.release.acquire().await.unwrap().forget();
                self.written.write(batch).await
            })
        }
    }

    fn one_at_a_time() -> DispatcherConfig {
        DispatcherConfig {
            max_batch: 1,
            linger: Duration::from_millis(1),
        }
    }

    /// Offers a payload; returns its request id.
    fn offer(handoff: &Handoff) -> String {
        let p = payload();
        let id = p.request_id.to_string();
        handoff.offer(p);
        id
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_written_in_one_batch_per_linger_interval() {
        let (handoff, rx) = Handoff::channel(100);
        let sink = Arc::new(Batches(Mutex::new(Vec::new())));
        let shutdown = CancellationToken::new();
        let config = DispatcherConfig {
            max_batch: 100,
            linger: Duration::from_millis(10),
        };
        let task =
            tokio::spawn(Dispatcher::new(rx, vec![sink.clone()], config).run(shutdown.clone()));
        // Five payloads 1 ms apart fall into one 10 ms window; the sixth comes after it.
        for _ in 0..5 {
            handoff.offer(payload());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        handoff.offer(payload());
        tokio::time::sleep(Duration::from_millis(20)).await;
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(*sink.0.lock().unwrap(), [5, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_written_at_once_not_at_the_end_of_the_linger() {
        let (handoff, rx) = Handoff::channel(100);
        let (sink, mut began) = Blocked::new();
        let shutdown = CancellationToken::new();
        let config = DispatcherConfig {
            max_batch: 4,
            linger: Duration::from_secs(3600),
        };
        let task =
            tokio::spawn(Dispatcher::new(rx, vec![sink.clone()], config).run(shutdown.clone()));
        let start = tokio::time::Instant::now();
        // The first payload starts the linger; the fourth fills the batch and rings the bell.
        let mut first = vec![offer(&handoff)];
        while handoff.depth() > 0 {
            tokio::task::yield_now().await; // until the dispatcher has taken it and lingers
        }
        first.extend((0..3).map(|_| offer(&handoff)));
        assert_eq!(began.recv().await.unwrap(), first);
        // Under paused time a missed bell would have let the clock jump to the linger's end.
        assert!(
            start.elapsed() < Duration::from_secs(3600),
            "waited for the linger"
        );
        sink.release.add_permits(1);
        // A batch that does not fill still waits for the whole linger.
        let last = offer(&handoff);
        assert_eq!(began.recv().await.unwrap(), [last]);
        assert!(start.elapsed() >= Duration::from_secs(3600));
        sink.release.add_permits(1);
        shutdown.cancel();
        task.await.unwrap();
    }

    /// A sink whose queue reports to a backlog of its own (as Datadog's does).
    struct OwnBacklog<S>(Arc<S>, Arc<Backlog>);

    impl<S: PayloadSink> PayloadSink for OwnBacklog<S> {
        fn name(&self) -> &'static str {
            "own"
        }
        fn queue_full(&self) -> DropReason {
            DropReason::DatadogQueueFull
        }
        fn write(&self, batch: Arc<[EncodedPayload]>) -> BoxFuture<'_, Outcome> {
            self.0.write(batch)
        }
        fn backlog(&self) -> Option<Arc<Backlog>> {
            Some(self.1.clone())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_sink_with_a_backlog_of_its_own_puts_only_that_one_behind_and_is_not_put_behind_by_others()
     {
        // Its queue half full: its own backlog is behind, delivery's is not.
        let (handoff, rx) = Handoff::channel(8);
        let (blocked, mut began) = Blocked::new();
        let own = Arc::new(Backlog::default());
        let sinks: Vec<Arc<dyn PayloadSink>> = vec![
            Arc::new(OwnBacklog(blocked.clone(), own.clone())),
            Arc::new(Recording::default()),
        ];
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Dispatcher::new(rx, sinks, one_at_a_time()).run(shutdown.clone()));
        for _ in 0..4 {
            offer(&handoff);
            settle().await;
        }
        assert!(own.is_behind(), "its queue holds 4 of 8");
        assert!(!handoff.backlog().is_behind(), "the others keep up");
        began.recv().await.unwrap();
        blocked.release.add_permits(5);
        offer(&handoff);
        settle().await;
        assert!(!own.is_behind(), "drained under a quarter");
        shutdown.cancel();
        task.await.unwrap();

        // Another sink half full puts delivery behind, and not the sink with its own backlog.
        let (handoff, rx) = Handoff::channel(8);
        let (blocked, mut began) = Blocked::new();
        let own = Arc::new(Backlog::default());
        let sinks: Vec<Arc<dyn PayloadSink>> = vec![
            Arc::new(OwnBacklog(Arc::new(Recording::default()), own.clone())),
            blocked.clone(),
        ];
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Dispatcher::new(rx, sinks, one_at_a_time()).run(shutdown.clone()));
        for _ in 0..4 {
            offer(&handoff);
            settle().await;
        }
        assert!(handoff.backlog().is_behind());
        assert!(!own.is_behind());
        began.recv().await.unwrap();
        blocked.release.add_permits(5);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_sink_half_full_puts_delivery_behind_until_it_drains_under_a_quarter() {
        let (handoff, rx) = Handoff::channel(8);
        let backlog = handoff.backlog();
        let (sink, mut began) = Blocked::new();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            Dispatcher::new(rx, vec![sink.clone()], one_at_a_time()).run(shutdown.clone()),
        );
        // One write stuck in the sink, three waiting behind it: half of the 8 it may hold.
        for _ in 0..3 {
            offer(&handoff);
            settle().await;
            assert!(!backlog.is_behind());
        }
        offer(&handoff);
        settle().await;
        assert!(backlog.is_behind());
        began.recv().await.unwrap();
        sink.release.add_permits(4);
        settle().await;
        // The dispatcher sees the queue drained with the next batch it hands over.
        offer(&handoff);
        settle().await;
        sink.release.add_permits(1);
        settle().await;
        assert!(!backlog.is_behind());
        shutdown.cancel();
        task.await.unwrap();
    }

    struct Batches(Mutex<Vec<usize>>);

    impl PayloadSink for Batches {
        fn name(&self) -> &'static str {
            "batches"
        }
        fn queue_full(&self) -> DropReason {
            DropReason::StoreQueueFull // it plays the store in this test
        }
        fn write(&self, batch: Arc<[EncodedPayload]>) -> BoxFuture<'_, Outcome> {
            Box::pin(async move {
                self.0.lock().unwrap().push(batch.len());
                Outcome::Delivered
            })
        }
    }

    #[tokio::test]
    async fn shutdown_delivers_everything_already_handed_over() {
        let (handoff, rx) = Handoff::channel(100);
        let sink = Arc::new(Recording(Mutex::new(Vec::new())));
        let offered: Vec<String> = (0..50)
            .map(|_| {
                let p = payload();
                let id = p.request_id.to_string();
                handoff.offer(p);
                id
            })
            .collect();
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        Dispatcher::new(
            rx,
            vec![sink.clone()],
            DispatcherConfig {
                max_batch: 7,
                linger: Duration::from_millis(1),
            },
        )
        .run(shutdown)
        .await;
        assert_eq!(*sink.0.lock().unwrap(), offered);
        // After shutdown, an offer is refused at once rather than lost in a queue nobody reads.
        handoff.offer(payload());
        assert_eq!(handoff.depth(), 0);
    }

    /// Regression (issue 11): the dispatcher awaited its sinks one after another, so a sink
    /// that hung (a disk, a broker) held up the store's writes, and with them the admin API.
    #[tokio::test(start_paused = true)]
    async fn a_sink_that_never_returns_does_not_delay_the_store() {
        let (handoff, rx) = Handoff::channel(100);
        let (blocked, mut began) = Blocked::new();
        let store = Arc::new(Recording::default());
        let shutdown = CancellationToken::new();
        // The blocked sink first: in turn, the store would wait for it.
        let sinks: Vec<Arc<dyn PayloadSink>> = vec![blocked.clone(), store.clone()];
        let task = tokio::spawn(Dispatcher::new(rx, sinks, one_at_a_time()).run(shutdown.clone()));

        let first = offer(&handoff);
        assert_eq!(began.recv().await.unwrap(), [first.as_str()], "stuck in it");
        let more: Vec<String> = (0..3).map(|_| offer(&handoff)).collect();
        settle().await;
        let mut all = vec![first];
        all.extend(more);
        assert_eq!(
            store.ids(),
            all,
            "the store wrote while the other sink was stuck"
        );
        assert!(blocked.written.ids().is_empty());

        shutdown.cancel();
        settle().await;
        assert!(!task.is_finished(), "run waits for every sink to write");
        blocked.release.add_permits(all.len());
        task.await.unwrap();
        assert_eq!(blocked.written.ids(), all, "in order, nothing lost");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sink_whose_queue_is_full_loses_batches_the_others_still_get() {
        // A queue holds as many payloads as the hand-off: two.
        let (handoff, rx) = Handoff::channel(2);
        let (blocked, mut began) = Blocked::new();
        let store = Arc::new(Recording::default());
        let shutdown = CancellationToken::new();
        let sinks: Vec<Arc<dyn PayloadSink>> = vec![blocked.clone(), store.clone()];
        let task = tokio::spawn(Dispatcher::new(rx, sinks, one_at_a_time()).run(shutdown.clone()));

        let a = offer(&handoff);
        assert_eq!(began.recv().await.unwrap(), [a.as_str()]);
        let b = offer(&handoff); // queued behind the stuck write: the queue is full
        settle().await;
        let c = offer(&handoff); // dropped for the stuck sink, not waited for
        settle().await;
        assert_eq!(store.ids(), [a.clone(), b.clone(), c]);
        assert_eq!(handoff.depth(), 0, "the dispatcher did not wait");

        blocked.release.add_permits(3);
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(blocked.written.ids(), [a, b]);
    }

    #[tokio::test(start_paused = true)]
    async fn when_no_sink_has_room_the_dispatcher_waits_and_the_handoff_fills() {
        let (handoff, rx) = Handoff::channel(2);
        let (blocked, mut began) = Blocked::new();
        let shutdown = CancellationToken::new();
        let sinks: Vec<Arc<dyn PayloadSink>> = vec![blocked.clone()];
        let task = tokio::spawn(Dispatcher::new(rx, sinks, one_at_a_time()).run(shutdown.clone()));

        let mut kept = vec![offer(&handoff)];
        assert_eq!(began.recv().await.unwrap(), kept);
        // One queued behind the stuck write, one held by the waiting dispatcher, two in the
        // hand-off: then the hand-off is full and drops (as `handoff_full`).
        for _ in 0..4 {
            kept.push(offer(&handoff));
            settle().await;
        }
        assert_eq!(handoff.depth(), 2);
        let lost = offer(&handoff);
        assert_eq!(handoff.depth(), 2);

        shutdown.cancel();
        settle().await;
        assert!(!task.is_finished());
        blocked.release.add_permits(10);
        task.await.unwrap();
        assert_eq!(blocked.written.ids(), kept, "everything taken was written");
        assert!(!blocked.written.ids().contains(&lost));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_writes_what_the_handoff_holds_to_a_sink_that_is_behind() {
        let (handoff, rx) = Handoff::channel(2);
        let (blocked, mut began) = Blocked::new();
        let store = Arc::new(Recording::default());
        let shutdown = CancellationToken::new();
        let sinks: Vec<Arc<dyn PayloadSink>> = vec![blocked.clone(), store.clone()];
        let task = tokio::spawn(Dispatcher::new(rx, sinks, one_at_a_time()).run(shutdown.clone()));

        let mut all = vec![offer(&handoff)];
        assert_eq!(began.recv().await.unwrap(), all);
        all.push(offer(&handoff)); // the stuck sink's queue is full now
        settle().await;
        // Handed over, and shutdown begins before the dispatcher runs again: these are owed to
        // every sink, full queue or not.
        all.push(offer(&handoff));
        all.push(offer(&handoff));
        shutdown.cancel();
        settle().await;
        assert_eq!(
            store.ids(),
            all,
            "the store is not held up by the other sink"
        );
        assert!(!task.is_finished());
        blocked.release.add_permits(all.len());
        task.await.unwrap();
        assert_eq!(blocked.written.ids(), all);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sink_that_fell_behind_writes_its_backlog_in_batches_of_up_to_max_batch() {
        let (handoff, rx) = Handoff::channel(100);
        let (blocked, mut began) = Blocked::new();
        let shutdown = CancellationToken::new();
        let sinks: Vec<Arc<dyn PayloadSink>> = vec![blocked.clone()];
        let config = DispatcherConfig {
            max_batch: 3,
            linger: Duration::from_millis(1),
        };
        let task = tokio::spawn(Dispatcher::new(rx, sinks, config).run(shutdown.clone()));

        let first = offer(&handoff);
        assert_eq!(began.recv().await.unwrap(), [first]);
        // Four batches of one queue up while it is stuck.
        let mut backlog = Vec::new();
        for _ in 0..4 {
            backlog.push(offer(&handoff));
            settle().await;
        }
        blocked.release.add_permits(1);
        assert_eq!(
            began.recv().await.unwrap(),
            backlog[..3],
            "one write, not three"
        );
        blocked.release.add_permits(1);
        assert_eq!(began.recv().await.unwrap(), backlog[3..]);
        blocked.release.add_permits(1);
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(blocked.written.ids().len(), 5);
    }
}
