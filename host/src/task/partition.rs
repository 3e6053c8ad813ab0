//! What travels between tasks ([`Message`]) and where a task's output batches go
//! ([`Output`]): forward, rebalance, broadcast, or by key group (see
//! [`crate::state::key_group`]).

use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::record::Batch;
use crate::state::{instance_for_key_group, key_group};
use crate::time::TimeSignal;

/// How records are spread over the next operator's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioning {
    /// Instance `i` sends to instance `i` (same parallelism); order is kept.
    Forward,
    /// Whole batches round-robin over the instances.
    Rebalance,
    /// Each record to the instance owning its key's key group.
    KeyGroups { max_parallelism: u16 },
    /// Every batch to every instance (the broadcast side of a connected stream, or
    /// `partition: broadcast`).
    Broadcast,
    /// Each record to an instance drawn at random (Flink's `shuffle()`).
    Shuffle,
    /// Whole batches round-robin over a subset of the instances: with `upstream` sending
    /// instances, instance `i` feeds its own share of the downstream ones, so no channel
    /// crosses between shares (Flink's `rescale()`).
    Rescale { upstream: usize },
    /// Everything to the first instance (Flink's `global()`).
    Global,
}

impl Partitioning {
    /// As the job file names it.
    pub fn name(&self) -> &'static str {
        match self {
            Partitioning::Forward => "forward",
            Partitioning::Rebalance => "rebalance",
            Partitioning::KeyGroups { .. } => "by key group",
            Partitioning::Broadcast => "broadcast",
            Partitioning::Shuffle => "shuffle",
            Partitioning::Rescale { .. } => "rescale",
            Partitioning::Global => "global",
        }
    }
}

/// The downstream side of a channel closed: the job is shutting down.
#[derive(Debug)]
pub struct Disconnected;

/// What travels in a channel, in order: data, event-time progress and checkpoint barriers.
/// End of stream is the channel's closure, which comes after everything sent before it.
/// `from` is the sending instance's index among its siblings.
#[derive(Debug)]
pub enum Message {
    Data {
        from: usize,
        batch: Batch,
    },
    /// Event time at the sending instance `from` (its index among its siblings): a
    /// watermark (it will send no record with an earlier timestamp), or that it went idle
    /// or active again.
    Time {
        from: usize,
        signal: TimeSignal,
    },
    /// Checkpoint barrier `id`: everything before it is in the checkpoint, nothing after.
    Barrier {
        from: usize,
        id: u64,
    },
    /// Instance `from` ended: it sends nothing more. (The channel closes when every sender
    /// has ended; this tells a task with several inputs, such as a union of sources, that one
    /// of them will bring no more barriers and no more event time.)
    End {
        from: usize,
    },
}

impl Message {
    /// The index of the instance that sent it.
    pub fn from(&self) -> usize {
        match self {
            Message::Data { from, .. }
            | Message::Time { from, .. }
            | Message::Barrier { from, .. }
            | Message::End { from } => *from,
        }
    }
}

/// One task's output: senders to every downstream instance of every task reading it (a
/// stream read by several is sent to each), and the time spent blocked on full channels
/// (backpressure).
pub struct Output {
    edges: Vec<Edge>,
    pub blocked: Duration,
}

/// The output to one downstream task (a stage's instances, or a sink).
struct Edge {
    senders: Vec<mpsc::Sender<Message>>,
    partitioning: Partitioning,
    /// This task's index among the downstream task's senders: `from` of its messages, and
    /// where `Forward` and `Rescale` send.
    from: usize,
    next: usize,
    /// The shuffle's random state (never 0).
    random: u64,
}

/// The downstream instances sending instance `index` of `upstream` feeds under `rescale`:
/// `(first, count)`. With more downstream instances than upstream ones each sender gets its
/// own run of them; with fewer, runs of senders share one.
fn rescale_share(index: usize, upstream: usize, downstream: usize) -> (usize, usize) {
    if downstream >= upstream {
        let first = index * downstream / upstream;
        let end = (index + 1) * downstream / upstream;
        (first, (end - first).max(1))
    } else {
        (index * downstream / upstream, 1)
    }
}

impl Output {
    /// Output into one downstream task, as sender `index` (also its index among its
    /// siblings).
    pub fn new(senders: Vec<mpsc::Sender<Message>>, partitioning: Partitioning, index: usize) -> Self {
        Self::fan_out([(senders, partitioning, index)], index)
    }

    /// Output of sibling `index` into several downstream tasks: for each, its senders, how
    /// they are fed, and this task's index among that task's senders.
    pub fn fan_out(
        downstream: impl IntoIterator<Item = (Vec<mpsc::Sender<Message>>, Partitioning, usize)>,
        index: usize,
    ) -> Self {
        let random = 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let edges = downstream
            .into_iter()
            .map(|(senders, partitioning, from)| Edge {
                senders,
                partitioning,
                from,
                next: from,
                random: random.max(1),
            })
            .collect();
        Self { edges, blocked: Duration::ZERO }
    }

    /// Send a batch from a blocking (non-async) task: to each downstream task (a copy to
    /// all but the last).
    pub fn send_blocking(&mut self, batch: Batch) -> Result<(), Disconnected> {
        let Some(last) = self.edges.len().checked_sub(1) else { return Ok(()) };
        if batch.is_empty() {
            return Ok(());
        }
        for e in 0..last {
            let routed = self.edges[e].route(batch.clone());
            self.send_routed(e, routed)?;
        }
        let routed = self.edges[last].route(batch);
        self.send_routed(last, routed)
    }

    fn send_routed(&mut self, e: usize, routed: Vec<(usize, Batch)>) -> Result<(), Disconnected> {
        let from = self.edges[e].from;
        for (target, b) in routed {
            self.send_to(e, target, Message::Data { from, batch: b })?;
        }
        Ok(())
    }

    /// Send a message made for each downstream instance (`from` is this task's index among
    /// that task's senders) to every one of them.
    fn send_everywhere(&mut self, make: impl Fn(usize) -> Message) -> Result<(), Disconnected> {
        for e in 0..self.edges.len() {
            for target in 0..self.edges[e].senders.len() {
                let message = make(self.edges[e].from);
                self.send_to(e, target, message)?;
            }
        }
        Ok(())
    }

    /// Send a time signal to every downstream instance: event time is per channel,
    /// whatever the partitioning of the data.
    pub fn broadcast_time(&mut self, signal: TimeSignal) -> Result<(), Disconnected> {
        self.send_everywhere(|from| Message::Time { from, signal })
    }

    /// Send checkpoint barrier `id` to every downstream instance, after everything sent so far.
    pub fn broadcast_barrier(&mut self, id: u64) -> Result<(), Disconnected> {
        self.send_everywhere(|from| Message::Barrier { from, id })
    }

    /// Tell every downstream instance that this task ended, after everything it sent.
    pub fn end(&mut self) -> Result<(), Disconnected> {
        self.send_everywhere(|from| Message::End { from })
    }

    fn send_to(&mut self, edge: usize, target: usize, message: Message) -> Result<(), Disconnected> {
        let sender = &self.edges[edge].senders[target];
        match sender.try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed(_)) => Err(Disconnected),
            Err(TrySendError::Full(m)) => {
                let started = Instant::now();
                sender.blocking_send(m).map_err(|_| Disconnected)?;
                self.blocked += started.elapsed();
                Ok(())
            }
        }
    }
}

impl Edge {
    /// Split a batch into (target instance, batch) pairs.
    fn route(&mut self, batch: Batch) -> Vec<(usize, Batch)> {
        if batch.is_empty() || self.senders.is_empty() {
            return Vec::new();
        }
        let n = self.senders.len();
        match self.partitioning {
            Partitioning::Forward => vec![(self.from % n, batch)],
            Partitioning::Rebalance => {
                let target = self.next % n;
                self.next = self.next.wrapping_add(1);
                vec![(target, batch)]
            }
            Partitioning::KeyGroups { .. } | Partitioning::Shuffle if n == 1 => vec![(0, batch)],
            Partitioning::Global => vec![(0, batch)],
            Partitioning::Rescale { upstream } => {
                let (first, count) = rescale_share(self.from, upstream.max(1), n);
                let target = first + self.next % count;
                self.next = self.next.wrapping_add(1);
                vec![(target, batch)]
            }
            Partitioning::Shuffle => {
                let mut parts: Vec<Batch> = (0..n).map(|_| Batch::new()).collect();
                for i in 0..batch.len() {
                    // xorshift64: cheap, and good enough to spread records evenly.
                    self.random ^= self.random << 13;
                    self.random ^= self.random >> 7;
                    self.random ^= self.random << 17;
                    parts[(self.random % n as u64) as usize].push_record(batch.value(i), batch.meta(i));
                }
                parts.into_iter().enumerate().filter(|(_, b)| !b.is_empty()).collect()
            }
            Partitioning::Broadcast => (0..n).map(|target| (target, batch.clone())).collect(),
            Partitioning::KeyGroups { max_parallelism } => {
                let mut parts: Vec<Batch> = (0..n).map(|_| Batch::new()).collect();
                for i in 0..batch.len() {
                    let meta = batch.meta(i);
                    let target = meta
                        .key
                        .map_or(0, |k| instance_for_key_group(key_group(k, max_parallelism), n, max_parallelism));
                    parts[target].push_record(batch.value(i), meta);
                }
                parts.into_iter().enumerate().filter(|(_, b)| !b.is_empty()).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(partitioning: Partitioning, index: usize, downstream: usize, batches: usize) -> Vec<usize> {
        let (txs, _rxs): (Vec<_>, Vec<_>) = (0..downstream).map(|_| mpsc::channel::<Message>(1)).unzip();
        let mut out = Output::new(txs, partitioning, index);
        let mut batch = Batch::new();
        batch.push(b"x");
        (0..batches).flat_map(|_| out.edges[0].route(batch.clone()).into_iter().map(|(t, _)| t)).collect()
    }

    #[test]
    fn rescale_feeds_each_sender_its_own_share() {
        // 2 senders, 4 receivers: sender 0 feeds 0 and 1, sender 1 feeds 2 and 3.
        assert_eq!(targets(Partitioning::Rescale { upstream: 2 }, 0, 4, 4), [0, 1, 0, 1]);
        assert_eq!(targets(Partitioning::Rescale { upstream: 2 }, 1, 4, 4), [3, 2, 3, 2]);
        // 4 senders, 2 receivers: senders 0 and 1 feed 0, senders 2 and 3 feed 1.
        assert_eq!(targets(Partitioning::Rescale { upstream: 4 }, 1, 2, 2), [0, 0]);
        assert_eq!(targets(Partitioning::Rescale { upstream: 4 }, 2, 2, 2), [1, 1]);
    }

    #[test]
    fn global_sends_everything_to_the_first_instance_and_shuffle_spreads_records() {
        assert_eq!(targets(Partitioning::Global, 1, 3, 3), [0, 0, 0]);
        let (txs, _rxs): (Vec<_>, Vec<_>) = (0..4).map(|_| mpsc::channel::<Message>(1)).unzip();
        let mut out = Output::new(txs, Partitioning::Shuffle, 0);
        let mut batch = Batch::new();
        (0..4000u32).for_each(|i| batch.push(&i.to_be_bytes()));
        let parts = out.edges[0].route(batch);
        assert_eq!(parts.len(), 4, "every instance gets records");
        assert_eq!(parts.iter().map(|(_, b)| b.len()).sum::<usize>(), 4000, "none lost or repeated");
        assert!(
            parts.iter().all(|(_, b)| (800..1200).contains(&b.len())),
            "evenly: {:?}",
            parts.iter().map(|(_, b)| b.len()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn key_routing_sends_each_key_to_one_instance_and_keeps_order_per_key() {
        let (txs, mut rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| mpsc::channel::<Message>(16)).unzip();
        let mut out = Output::new(txs, Partitioning::KeyGroups { max_parallelism: 128 }, 0);
        let mut batch = Batch::new();
        for i in 0..300u32 {
            let key = format!("k{}", i % 7);
            batch.push_record(
                &i.to_be_bytes(),
                crate::record::RowMeta { key: Some(key.as_bytes()), timestamp: Some(i64::from(i)) },
            );
        }
        out.send_blocking(batch).unwrap();
        let mut seen: std::collections::HashMap<Vec<u8>, (usize, u32)> = Default::default();
        let mut total = 0;
        for (target, rx) in rxs.iter_mut().enumerate() {
            while let Ok(Message::Data { batch: b, .. }) = rx.try_recv() {
                for (v, k) in b.iter() {
                    let n = u32::from_be_bytes(v.try_into().unwrap());
                    let e = seen.entry(k.unwrap().to_vec()).or_insert((target, n));
                    assert_eq!(e.0, target, "a key went to two instances");
                    assert!(n >= e.1, "order per key broken");
                    e.1 = n;
                    total += 1;
                }
            }
        }
        assert_eq!(total, 300);
        assert_eq!(seen.len(), 7);
    }
}
