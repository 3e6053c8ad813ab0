//! Barrier alignment (Flink's aligned checkpoints, Chandy-Lamport): a task snapshots when
//! barrier `n` has come from all its inputs; messages from inputs already past the barrier
//! wait, then go first.

use std::collections::VecDeque;

use super::Message;

/// Barrier alignment of a task's inputs (Flink's aligned checkpoints): once barrier `n` came
/// from an input, that input's later messages wait until `n` came from every input; then
/// the task snapshots, and the waiting messages go first.
pub(crate) struct Alignment {
    /// Which data inputs brought the barrier of the checkpoint being aligned.
    arrived: Vec<bool>,
    /// Which data inputs ended ([`Message::End`]): they bring no barrier any more.
    ended: Vec<bool>,
    /// A message came from a sender outside the inputs (logged once).
    miswired: bool,
    /// Whether the broadcast input brought it (or has none, or ended).
    broadcast_arrived: bool,
    current: Option<u64>,
    /// The last checkpoint aligned (0: none).
    last: u64,
    held: VecDeque<Message>,
    replay: VecDeque<Message>,
}

impl Alignment {
    pub(crate) fn new(inputs: usize) -> Self {
        Self {
            arrived: vec![false; inputs.max(1)],
            ended: vec![false; inputs.max(1)],
            miswired: false,
            broadcast_arrived: true,
            current: None,
            last: 0,
            held: VecDeque::new(),
            replay: VecDeque::new(),
        }
    }

    /// A message that waited during the last alignment, to handle before reading on.
    pub(crate) fn queued(&mut self) -> Option<Message> {
        self.replay.pop_front()
    }

    pub(crate) fn has_queued(&self) -> bool {
        !self.replay.is_empty()
    }

    /// A message of the data input: `Some` to handle now; `None` if it waits or was a barrier.
    pub(crate) fn on_data(&mut self, message: Message, broadcast_open: bool) -> Option<Message> {
        // A sender outside the inputs counted when the task was wired is a wiring bug (a
        // sink sized for one input fed by two sources lost records at barriers): say so.
        if message.from() >= self.arrived.len() && !self.miswired {
            self.miswired = true;
            tracing::error!(
                from = message.from(),
                inputs = self.arrived.len(),
                "a message from an input this task was not wired for; checkpoints may be wrong"
            );
        }
        let from = message.from().min(self.arrived.len() - 1);
        if self.current.is_some() && self.arrived[from] {
            self.held.push_back(message);
            return None;
        }
        match message {
            Message::Barrier { id, .. } => {
                if self.start(id, broadcast_open) {
                    self.arrived[from] = true;
                }
                None
            }
            Message::End { .. } => {
                self.ended[from] = true;
                if self.current.is_some() {
                    self.arrived[from] = true;
                }
                Some(message)
            }
            _ => Some(message),
        }
    }

    /// Barrier `id` of the broadcast input.
    pub(crate) fn on_broadcast_barrier(&mut self, id: u64) {
        if self.start(id, true) {
            self.broadcast_arrived = true;
        }
    }

    /// Every data input ended: none will bring a barrier any more.
    pub(crate) fn on_data_end(&mut self) {
        self.arrived.fill(true);
    }

    pub(crate) fn on_broadcast_end(&mut self) {
        self.broadcast_arrived = true;
    }

    /// Whether the broadcast input must wait (it brought the barrier being aligned).
    pub(crate) fn broadcast_blocked(&self) -> bool {
        self.current.is_some() && self.broadcast_arrived
    }

    /// Starts aligning `id` if nothing is; whether `id` is the one being aligned.
    fn start(&mut self, id: u64, broadcast_open: bool) -> bool {
        match self.current {
            None => {
                self.current = Some(id);
                self.arrived.clone_from(&self.ended);
                self.broadcast_arrived = !broadcast_open;
                true
            }
            Some(current) => current == id,
        }
    }

    /// The last checkpoint this task aligned and snapshotted (0: none).
    pub(crate) fn last_aligned(&self) -> u64 {
        self.last
    }

    /// The checkpoint whose barrier came from every input, once: snapshot now.
    pub(crate) fn take_aligned(&mut self) -> Option<u64> {
        let id = self.current?;
        if !(self.broadcast_arrived && self.arrived.iter().all(|a| *a)) {
            return None;
        }
        self.current = None;
        self.last = id;
        let mut held = std::mem::take(&mut self.held);
        held.append(&mut self.replay);
        self.replay = held;
        Some(id)
    }
}
