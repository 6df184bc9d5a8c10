//! The watch on a bridge that holds no partition. A bridge can sit in its group with nothing
//! assigned while messages pile up that nobody consumes: another member holds the partitions and
//! is stuck, or the broker did not rebalance after a member died (tansu 0.6.0 can leave a member
//! that joined while a SIGKILLed one was still in the group with nothing, for good; see
//! docs/bridge.md). Nothing fails in that state, so without this watch nothing would be logged and
//! `insights_bridge_consumer_lag` (which counts only the partitions held) would read 0. It says
//! so in the log and in `/metrics` (`insights_bridge_idle_with_backlog`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::run::BridgeStats;

/// One partition of the topic, from the group's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartitionLook {
    pub(crate) partition: i32,
    pub(crate) low: i64,
    pub(crate) high: i64,
    /// The group's committed offset, if it has one.
    pub(crate) committed: Option<i64>,
}

/// One look at the whole topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Look {
    /// Partitions this bridge held while it looked.
    pub(crate) held: u64,
    pub(crate) partitions: Vec<PartitionLook>,
}

impl Look {
    /// Messages beyond the group's committed offsets. Where the group committed nothing, it
    /// starts from the oldest message (the bridge's `auto.offset.reset` is `earliest`).
    pub(crate) fn backlog(&self) -> u64 {
        self.partitions
            .iter()
            .map(|p| {
                let from = p.committed.unwrap_or(p.low).max(p.low);
                (p.high - from).max(0) as u64
            })
            .sum()
    }

    fn committed(&self) -> Vec<(i32, Option<i64>)> {
        self.partitions
            .iter()
            .map(|p| (p.partition, p.committed))
            .collect()
    }
}

/// What a look means, given the one before.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// This bridge holds partitions, or nothing is waiting.
    Fine,
    /// It holds none while messages wait; whether someone else consumes them shows at the next
    /// look (in a group with more bridges than partitions, one holds none, legitimately).
    Watching,
    /// It holds none, messages wait, and the group's committed offsets did not move since the
    /// previous look (when it held none either): nobody consumes them.
    IdleWithBacklog { backlog: u64 },
}

pub(crate) fn judge(previous: Option<&Look>, now: &Look) -> Verdict {
    if now.held > 0 {
        return Verdict::Fine;
    }
    let backlog = now.backlog();
    if backlog == 0 {
        return Verdict::Fine;
    }
    match previous {
        Some(p) if p.held == 0 && p.committed() == now.committed() => {
            Verdict::IdleWithBacklog { backlog }
        }
        _ => Verdict::Watching,
    }
}

/// Looks every `interval` while this bridge holds no partition, until `stop`. It holds the
/// consumer weakly, so that a stopping bridge's consumer closes (and leaves the group) when the
/// bridge is done with it, not when a look in progress is.
pub(crate) async fn watch<C: ConsumerContext + 'static>(
    consumer: Weak<StreamConsumer<C>>,
    topic: String,
    group: String,
    interval: Duration,
    stats: Arc<BridgeStats>,
    stop: CancellationToken,
) {
    let gauge = metrics::gauge!("insights_bridge_idle_with_backlog");
    gauge.set(0.0);
    let mut previous: Option<Look> = None;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if stats.assigned_partitions.load(Ordering::Relaxed) > 0 {
            previous = None;
            gauge.set(0.0);
            continue;
        }
        let Some(c) = consumer.upgrade() else {
            return;
        };
        let t = topic.clone();
        let look = match tokio::task::spawn_blocking(move || look(&c, &t)).await {
            Ok(Ok(look)) => look,
            Ok(Err(error)) => {
                // Kafka being unreachable is already logged by the consumer's error callback.
                tracing::debug!(%error, "checking the group's committed offsets failed");
                continue;
            }
            Err(_) => continue,
        };
        let look = Look {
            // An assignment that arrived during the look counts.
            held: stats.assigned_partitions.load(Ordering::Relaxed),
            ..look
        };
        match judge(previous.as_ref(), &look) {
            Verdict::IdleWithBacklog { backlog } => {
                gauge.set(1.0);
                tracing::warn!(
                    backlog,
                    %topic,
                    %group,
                    checked_every_s = interval.as_secs_f64(),
                    "this bridge holds no partition while its topic has messages its group has not \
                     committed, and the group's committed offsets did not move since the last check: \
                     check whether another member of the group holds the partitions and is stuck, \
                     or whether the broker failed to rebalance after a member died (tansu 0.6.0 \
                     can fail to, for a member that joined while the dead one was still in the \
                     group); \
                     then restart this bridge once the old member's session has timed out (10 s), \
                     or give each bridge its own kafka.group_instance_id"
                );
            }
            Verdict::Fine | Verdict::Watching => gauge.set(0.0),
        }
        previous = Some(look);
    }
}

/// The topic's partitions with their watermarks and the group's committed offsets (blocking:
/// three kinds of request to the brokers).
fn look<C: ConsumerContext>(consumer: &StreamConsumer<C>, topic: &str) -> KafkaResult<Look> {
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let ids: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    for id in &ids {
        tpl.add_partition(topic, *id);
    }
    let committed = consumer.committed_offsets(tpl, timeout)?;
    let mut partitions = Vec::with_capacity(ids.len());
    for id in ids {
        let (low, high) = consumer.fetch_watermarks(topic, id, timeout)?;
        let committed = committed
            .find_partition(topic, id)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        partitions.push(PartitionLook {
            partition: id,
            low,
            high,
            committed,
        });
    }
    Ok(Look {
        held: 0,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(held: u64, partitions: &[(i64, i64, Option<i64>)]) -> Look {
        Look {
            held,
            partitions: partitions
                .iter()
                .enumerate()
                .map(|(i, &(low, high, committed))| PartitionLook {
                    partition: i as i32,
                    low,
                    high,
                    committed,
                })
                .collect(),
        }
    }

    #[test]
    fn backlog_counts_from_the_commit_or_else_from_the_oldest_message() {
        // 10 beyond the commit; 5 never committed (from the low watermark); a commit older than
        // the log's start (retention) counts from the start.
        let l = look(0, &[(0, 30, Some(20)), (5, 10, None), (50, 60, Some(3))]);
        assert_eq!(l.backlog(), 10 + 5 + 10);
        assert_eq!(look(0, &[(0, 7, Some(7))]).backlog(), 0);
    }

    #[test]
    fn idle_with_backlog_only_when_nobody_moves_the_committed_offsets() {
        let stuck = look(0, &[(0, 400, Some(40)), (0, 0, None)]);
        assert_eq!(
            judge(None, &stuck),
            Verdict::Watching,
            "one look is not enough"
        );
        assert_eq!(
            judge(Some(&stuck), &stuck),
            Verdict::IdleWithBacklog { backlog: 360 }
        );
        // Another member is consuming: its commits move.
        let moving = look(0, &[(0, 400, Some(90)), (0, 0, None)]);
        assert_eq!(judge(Some(&stuck), &moving), Verdict::Watching);
        // Holding partitions, or nothing to read: fine whatever came before.
        let holding = look(2, &[(0, 400, Some(40)), (0, 0, None)]);
        assert_eq!(judge(Some(&stuck), &holding), Verdict::Fine);
        let done = look(0, &[(0, 400, Some(400)), (0, 0, None)]);
        assert_eq!(judge(Some(&done), &done), Verdict::Fine);
        // The look before was taken while holding partitions: not yet known.
        assert_eq!(judge(Some(&holding), &stuck), Verdict::Watching);
    }
}
