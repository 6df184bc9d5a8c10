//! The bridge loop: consume a batch, encode it, write it (retrying until InfluxDB takes it),
//! dead-letter what can never be written, and only then mark the batch's offsets consumed.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::BridgeConfig;
use crate::writer::{InfluxWriter, WriteError};
use crate::{Mapping, Rejection};

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("the Kafka consumer could not be created: {0}")]
    Consumer(String),
    #[error("the dead-letter file could not be written: {0}")]
    DeadLetter(std::io::Error),
    /// librdkafka's consumer cannot go on (it would answer every poll with an error). For a
    /// consumer the usual cause is fencing: a broker that implements static membership refuses
    /// a member whose `group.instance.id` another member has taken over.
    #[error(
        "the Kafka consumer failed for good: {0} (with kafka.group_instance_id set: is another bridge running with the same id?)"
    )]
    Fatal(String),
}

/// Reports consumer lag (messages behind the end of each partition) from librdkafka's
/// statistics, every 5 s.
struct LagContext {
    stats: Arc<BridgeStats>,
}

impl rdkafka::ClientContext for LagContext {
    /// librdkafka keeps reconnecting by itself; this says so, in the bridge's words (the default
    /// would log the bare error).
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka is unreachable or failing; the bridge keeps retrying");
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        metrics::gauge!("insights_bridge_consumer_lag").set(lag as f64);
    }
}

impl rdkafka::consumer::ConsumerContext for LagContext {
    /// Records what the bridge holds after each rebalance, and says which kind it was: an
    /// assignment, a revocation, or an error (after which librdkafka's handler has unassigned
    /// everything, so the bridge holds nothing until the group's next rebalance).
    fn post_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        use rdkafka::consumer::Rebalance;
        // What the consumer holds now, not what this event moved: the two differ under the
        // cooperative protocol, where an event moves only some partitions.
        let held = match rebalance {
            Rebalance::Error(_) => 0,
            _ => consumer.assignment().map(|a| a.count()).unwrap_or(0) as u64,
        };
        self.stats
            .assigned_partitions
            .store(held, Ordering::Relaxed);
        metrics::gauge!("insights_bridge_assigned_partitions").set(held as f64);
        match rebalance {
            Rebalance::Assign(partitions) => tracing::info!(
                partitions = partitions.count(),
                which = %partition_numbers(partitions),
                held,
                "partitions assigned"
            ),
            Rebalance::Revoke(partitions) => tracing::info!(
                partitions = partitions.count(),
                which = %partition_numbers(partitions),
                held,
                "partitions revoked"
            ),
            Rebalance::Error(error) => tracing::warn!(
                %error,
                held,
                "the group's rebalance failed: this bridge holds no partition until the next one \
                 (librdkafka rejoins by itself); if it does not come, check the broker's log"
            ),
        }
    }
}

/// `0,1,2`: the partitions of a rebalance, for the log.
fn partition_numbers(partitions: &rdkafka::TopicPartitionList) -> String {
    partitions
        .elements()
        .iter()
        .map(|e| e.partition().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// One message of a batch, encoded or not.
struct Entry {
    partition: i32,
    offset: i64,
    /// Byte range of its line in the batch body, if it encoded.
    line: Option<std::ops::Range<usize>>,
    payload: Vec<u8>,
}

/// What the bridge has done so far (also recorded as `insights_bridge_*` metrics).
#[derive(Debug, Default)]
pub struct BridgeStats {
    pub consumed: AtomicU64,
    pub points_written: AtomicU64,
    pub write_retries: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Partitions this bridge holds right now (several bridges in a group share them).
    pub assigned_partitions: AtomicU64,
}

/// Runs until `shutdown`; then finishes the batch in hand, commits, and leaves the group.
pub async fn run(config: BridgeConfig, shutdown: CancellationToken) -> Result<(), BridgeError> {
    run_with_stats(config, shutdown, Arc::new(BridgeStats::default())).await
}

/// [`run`], counting into `stats`.
pub async fn run_with_stats(
    config: BridgeConfig,
    shutdown: CancellationToken,
    stats: Arc<BridgeStats>,
) -> Result<(), BridgeError> {
    let mut client = config.kafka.client_config();
    client
        .set("group.id", &config.group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        // A batch held through an InfluxDB outage stops the polling. Past five minutes the
        // bridge leaves the group, so that a rebalance (another bridge joining) is not held up
        // for as long as the outage lasts; it rejoins at its next poll. What it held was not
        // committed, so whoever gets the partitions reads it again (at least once, and the
        // payloads' own timestamps make the rewrite idempotent).
        .set("max.poll.interval.ms", "300000");
    if let Some(id) = &config.group_instance_id {
        // Static membership (KIP-345): a restart with the same id takes the old member's place
        // and its partitions at once, instead of waiting for its session to time out and a
        // rebalance (which tansu 0.6.0 can fail to run after a SIGKILL; see docs/bridge.md).
        client.set("group.instance.id", id);
    }
    client.set("statistics.interval.ms", "5000");
    let consumer: Arc<StreamConsumer<LagContext>> = Arc::new(
        client
            .create_with_context(LagContext {
                stats: stats.clone(),
            })
            .map_err(|e| BridgeError::Consumer(insights_kafka::redacted(&e)))?,
    );
    consumer
        .subscribe(&[config.kafka.topic.as_str()])
        .map_err(|e| BridgeError::Consumer(e.to_string()))?;
    let mapping = Mapping::new(&config.measurement);
    let writer = InfluxWriter::new(&config.influx_url, config.influx_api.clone());
    let dead_letter_producer: Option<rdkafka::producer::FutureProducer> = match &config
        .dead_letter_topic
    {
        Some(_) => Some(
            config
                .kafka
                .client_config()
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .create()
                .map_err(|e| BridgeError::Consumer(insights_kafka::redacted(&e)))?,
        ),
        None => {
            std::fs::create_dir_all(&config.dead_letter_dir).map_err(BridgeError::DeadLetter)?;
            None
        }
    };
    let dead_letter_path = config.dead_letter_dir.join("dead-letter.jsonl");
    tracing::info!(topic = %config.kafka.topic, group = %config.group, group_instance_id = config.group_instance_id.as_deref().unwrap_or(""), influxdb = %config.influx_url, "bridge running");
    // Ends with this function, however it ends.
    let watching = CancellationToken::new();
    let _stop_watching = watching.clone().drop_guard();
    tokio::spawn(crate::idle::watch(
        Arc::downgrade(&consumer),
        config.kafka.topic.as_str().to_string(),
        config.group.clone(),
        config.idle_check_interval,
        stats.clone(),
        watching,
    ));

    loop {
        // Collect a batch: up to max_points, or what came within max_wait of the first one.
        let mut batch: Vec<Entry> = Vec::new();
        let mut body: Vec<u8> = Vec::new();
        let mut dead: Vec<(Entry, String)> = Vec::new();
        let first = tokio::select! {
            () = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let deadline = tokio::time::Instant::now() + config.max_wait;
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Ok(m) => take(&mapping, &m, &mut batch, &mut body, &mut dead),
                Err(e) => {
                    // The batch in hand is not committed, so whoever reads on reads it again.
                    if let Some((_, reason)) = consumer.client().fatal_error() {
                        return Err(BridgeError::Fatal(reason));
                    }
                    tracing::warn!(error = %e, "Kafka consumer error");
                }
            }
            if batch.len() + dead.len() >= config.max_points {
                break;
            }
            next = tokio::select! {
                () = shutdown.cancelled() => None,
                () = tokio::time::sleep_until(deadline) => None,
                m = consumer.recv() => Some(m),
            };
        }

        stats
            .consumed
            .fetch_add((batch.len() + dead.len()) as u64, Ordering::Relaxed);
        metrics::counter!("insights_bridge_messages_consumed_total")
            .increment((batch.len() + dead.len()) as u64);
        if write_batch(&writer, &mut batch, &mut body, &mut dead, &stats, &shutdown)
            .await
            .is_err()
        {
            tracing::warn!(
                messages = batch.len() + dead.len(),
                "stopping while InfluxDB does not take the batch in hand: its offsets are not committed, so the next start reads it again"
            );
            break;
        }
        stats
            .points_written
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        metrics::counter!("insights_bridge_points_written_total").increment(batch.len() as u64);
        if !dead.is_empty() {
            let sink = DeadLetterSink {
                topic: config.kafka.topic.as_str(),
                producer: dead_letter_producer
                    .as_ref()
                    .zip(config.dead_letter_topic.as_ref().map(|t| t.as_str())),
                file: &dead_letter_path,
            };
            if sink.write(&dead, &shutdown).await?.is_err() {
                tracing::warn!(
                    messages = batch.len() + dead.len(),
                    "stopping while the dead-letter topic does not take the batch's dead letters: its offsets are not committed, so the next start reads it again"
                );
                break;
            }
            stats
                .dead_lettered
                .fetch_add(dead.len() as u64, Ordering::Relaxed);
            for (_, reason) in &dead {
                let label = reason.split(':').next().unwrap_or("unknown").to_string();
                metrics::counter!("insights_bridge_dead_lettered_total", "reason" => label)
                    .increment(1);
            }
        }
        // Written (or dead-lettered): now, and only now, their offsets may be committed. One
        // store per partition, of the highest offset: every message of the batch up to it is
        // done, and storing in another order could move a partition's offset backwards.
        let mut done: std::collections::BTreeMap<i32, i64> = std::collections::BTreeMap::new();
        for e in batch.iter().chain(dead.iter().map(|(e, _)| e)) {
            let highest = done.entry(e.partition).or_insert(e.offset);
            *highest = (*highest).max(e.offset);
        }
        for (partition, offset) in done {
            if let Err(err) = consumer.store_offset(config.kafka.topic.as_str(), partition, offset)
            {
                tracing::warn!(error = %err, "storing an offset failed; the message may be read again");
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
    }
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::warn!(error = %e, "the final commit failed; the last batch may be read again");
    }
    consumer.unsubscribe();
    tracing::info!("bridge stopped");
    Ok(())
}

fn take(
    mapping: &Mapping,
    m: &BorrowedMessage<'_>,
    batch: &mut Vec<Entry>,
    body: &mut Vec<u8>,
    dead: &mut Vec<(Entry, String)>,
) {
    let payload = m.payload().unwrap_or_default().to_vec();
    let mut entry = Entry {
        partition: m.partition(),
        offset: m.offset(),
        line: None,
        payload,
    };
    let start = body.len();
    match mapping.encode(&entry.payload, body) {
        Ok(_) => {
            entry.line = Some(start..body.len());
            batch.push(entry);
        }
        Err(rejection) => dead.push((entry, reason(&rejection))),
    }
}

fn reason(r: &Rejection) -> String {
    format!("{}: {r}", r.label())
}

/// Writes the batch, retrying with backoff while InfluxDB is unavailable. A refused batch is
/// split in halves until the refused points are found; they move to `dead`.
async fn write_batch(
    writer: &InfluxWriter,
    batch: &mut Vec<Entry>,
    body: &mut [u8],
    dead: &mut Vec<(Entry, String)>,
    stats: &BridgeStats,
    shutdown: &CancellationToken,
) -> Result<(), Stopping> {
    // A batch in hand is written even during shutdown (its messages are already consumed),
    // but not retried then: a stop must not wait for InfluxDB to come back.
    // Ranges of `batch` still to write; a refused range is split in two.
    let mut pending: Vec<std::ops::Range<usize>> = Vec::new();
    pending.push(0..batch.len());
    let mut refused: Vec<(usize, String)> = Vec::new();
    while let Some(range) = pending.pop() {
        if range.is_empty() {
            continue;
        }
        let bytes: Vec<u8> = batch[range.clone()]
            .iter()
            .flat_map(|e| body[e.line.clone().expect("encoded")].iter().copied())
            .collect();
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = std::time::Instant::now();
            let written = writer.write(bytes.clone()).await;
            metrics::histogram!("insights_bridge_write_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            match written {
                Ok(()) => break,
                Err(WriteError::Retriable(message)) => {
                    stats.write_retries.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("insights_bridge_batches_retried_total").increment(1);
                    tracing::warn!(error = %message, retry_in_ms = backoff.as_millis() as u64, "writing to InfluxDB failed; retrying");
                    pause(&mut backoff, shutdown).await?;
                }
                Err(WriteError::Rejected { status, message }) => {
                    if range.len() == 1 {
                        refused.push((
                            range.start,
                            format!("influxdb_rejected: {status} {message}"),
                        ));
                    } else {
                        let mid = range.start + range.len() / 2;
                        pending.push(mid..range.end);
                        pending.push(range.start..mid);
                    }
                    break;
                }
            }
        }
    }
    refused.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    for (i, reason) in refused {
        let e = batch.remove(i);
        dead.push((e, reason));
    }
    Ok(())
}

/// The bridge is stopping with work in hand that could not be finished.
#[derive(Debug)]
struct Stopping;

/// Waits `backoff` plus jitter (up to a quarter, from the clock's nanoseconds) before a retry,
/// then doubles it (at most 30 s). A stop ends the wait, and the retrying.
async fn pause(backoff: &mut Duration, shutdown: &CancellationToken) -> Result<(), Stopping> {
    let jitter = Duration::from_nanos(
        (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0))
            % (backoff.as_nanos() as u64 / 4 + 1),
    );
    let wait = *backoff + jitter;
    *backoff = (*backoff * 2).min(Duration::from_secs(30));
    tokio::select! {
        () = shutdown.cancelled() => Err(Stopping),
        () = tokio::time::sleep(wait) => Ok(()),
    }
}

/// Where dead letters go: a Kafka topic (each acknowledged before the offsets move past it),
/// else a JSONL file. A letter the topic can never take (too large, not authorized) goes to
/// the file instead, so that one message cannot stall the stream.
struct DeadLetterSink<'a> {
    topic: &'a str,
    producer: Option<(&'a rdkafka::producer::FutureProducer, &'a str)>,
    file: &'a std::path::Path,
}

impl DeadLetterSink<'_> {
    async fn write(
        &self,
        dead: &[(Entry, String)],
        shutdown: &CancellationToken,
    ) -> Result<Result<(), Stopping>, BridgeError> {
        let letters: Vec<String> = dead
            .iter()
            .map(|(e, reason)| letter(self.topic, e, reason))
            .collect();
        let Some((producer, topic)) = self.producer else {
            append_lines(self.file, &letters).map_err(BridgeError::DeadLetter)?;
            tracing::warn!(messages = letters.len(), file = %self.file.display(), "messages dead-lettered");
            return Ok(Ok(()));
        };
        let mut refused = Vec::new();
        for letter in &letters {
            let mut backoff = Duration::from_millis(100);
            loop {
                let record =
                    rdkafka::producer::FutureRecord::<(), str>::to(topic).payload(letter.as_str());
                match producer.send(record, Duration::from_secs(30)).await {
                    Ok(_) => break,
                    Err((e, _)) if is_permanent(&e) => {
                        tracing::error!(error = %e, file = %self.file.display(), "the dead-letter topic refuses this letter; writing it to the file instead");
                        refused.push(letter.clone());
                        break;
                    }
                    Err((e, _)) => {
                        tracing::warn!(error = %e, "writing a dead letter to Kafka failed; retrying");
                        if pause(&mut backoff, shutdown).await.is_err() {
                            return Ok(Err(Stopping));
                        }
                    }
                }
            }
        }
        if !refused.is_empty() {
            append_lines(self.file, &refused).map_err(BridgeError::DeadLetter)?;
        }
        tracing::warn!(messages = letters.len(), topic = %topic, "messages dead-lettered");
        Ok(Ok(()))
    }
}

/// Errors no retry can mend: the letter itself is too large, or the topic is not ours to write.
fn is_permanent(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidRecord
                | C::InvalidMessage
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
        )
    )
}

/// One dead letter: the reason, where the message was, and the message itself (as text when it
/// is UTF-8; otherwise also exactly, in base64).
fn letter(topic: &str, e: &Entry, reason: &str) -> String {
    let mut letter = json!({
        "reason": reason,
        "topic": topic,
        "partition": e.partition,
        "offset": e.offset,
        "message": String::from_utf8_lossy(&e.payload),
    });
    if std::str::from_utf8(&e.payload).is_err() {
        use base64::Engine as _;
        letter["message_base64"] = base64::engine::general_purpose::STANDARD
            .encode(&e.payload)
            .into();
    }
    letter.to_string()
}

/// Appends `lines` with one write (so a crash leaves no half line and other writers' lines do
/// not interleave with ours), then makes them durable, with the directory entry of a new file.
fn append_lines(path: &std::path::Path, lines: &[String]) -> std::io::Result<()> {
    let mut buf = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        buf.push_str(l);
        buf.push('\n');
    }
    let new = !path.exists();
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(buf.as_bytes())?;
    f.sync_data()?;
    if new && let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
