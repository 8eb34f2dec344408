//! What a leader knows about one follower: how far it matches, what to send next, and how many
//! AppendEntries are in flight to it.

use crate::config::INFLIGHT_MAX;
use crate::types::Index;
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Where the follower's log matches is unknown: one AppendEntries at a time, backing off on
    /// each rejection.
    Probe,
    /// The follower matched: send optimistically, up to `INFLIGHT_MAX` messages in flight.
    Replicate,
    /// The follower needs entries we compacted: the snapshot at `index` is being streamed, one
    /// chunk in flight; appends wait until it is installed.
    Snapshot { index: Index },
}

#[derive(Clone, Debug)]
pub struct Progress {
    pub match_index: Index,
    pub next_index: Index,
    pub state: ProgressState,
    /// In the probe state: an AppendEntries was sent and not answered (or heartbeat-released).
    pub probe_sent: bool,
    /// Last index of each AppendEntries in flight, oldest first (replicate state).
    pub inflight: VecDeque<Index>,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// Snapshot state: the offset of the chunk in flight (resent if its answer is lost).
    pub snapshot_offset: u64,
    /// When (leader's ticks) the latest heartbeat round this follower answered was sent.
    pub lease_ack_tick: Option<u64>,
}

impl Progress {
    pub fn new(next_index: Index) -> Progress {
        Progress {
            match_index: 0,
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            inflight: VecDeque::with_capacity(INFLIGHT_MAX),
            recent_active: false,
            snapshot_offset: 0,
            lease_ack_tick: None,
        }
    }

    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflight.len() >= INFLIGHT_MAX,
            ProgressState::Snapshot { .. } => true,
        }
    }

    /// An AppendEntries whose last entry is `last` went out.
    pub fn on_sent(&mut self, last: Option<Index>) {
        match self.state {
            ProgressState::Snapshot { .. } => unreachable!("appends wait while a snapshot streams"),
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Replicate => {
                if let Some(last) = last {
                    assert!(last >= self.next_index);
                    assert!(self.inflight.len() < INFLIGHT_MAX);
                    self.next_index = last + 1;
                    self.inflight.push_back(last);
                }
            }
        }
    }

    /// The follower matches through `index`. Returns whether that is news.
    pub fn on_match(&mut self, index: Index) -> bool {
        if let ProgressState::Snapshot { index: pending } = self.state {
            if index < pending {
                return false;
            }
            // Installed (or the follower caught up another way): probe from there.
            self.become_probe();
        }
        let news = index > self.match_index;
        if news {
            self.match_index = index;
            self.probe_sent = false;
        }
        self.next_index = self.next_index.max(index + 1);
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        if self.state == ProgressState::Probe && news {
            self.become_replicate();
        }
        news
    }

    fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index + 1;
        self.inflight.clear();
    }

    pub fn become_snapshot(&mut self, index: Index) {
        self.state = ProgressState::Snapshot { index };
        self.snapshot_offset = 0;
        self.inflight.clear();
    }

    pub fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// The follower rejected an AppendEntries at `rejected`; `hint` is where the leader's log
    /// may first agree with it. Returns false for a stale rejection (already past it).
    pub fn on_reject(&mut self, rejected: Index, hint: Index) -> bool {
        if matches!(self.state, ProgressState::Snapshot { .. }) {
            return false;
        }
        if self.state == ProgressState::Replicate {
            if rejected <= self.match_index {
                return false;
            }
            self.become_probe();
        } else if rejected != self.next_index - 1 {
            return false;
        }
        self.next_index = rejected.min(hint + 1).max(self.match_index + 1);
        self.probe_sent = false;
        assert!(self.next_index >= 1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_pauses_and_answers_free_it() {
        let mut progress = Progress::new(1);
        assert!(!progress.on_match(0));
        progress.on_sent(Some(1));
        assert!(progress.is_paused());
        assert!(progress.on_match(1));
        assert_eq!(progress.state, ProgressState::Replicate);
        for i in 0..INFLIGHT_MAX as Index {
            assert!(!progress.is_paused());
            progress.on_sent(Some(2 + i));
        }
        assert!(progress.is_paused());
        assert!(progress.on_match(3));
        assert_eq!(progress.inflight.len(), INFLIGHT_MAX - 2);
        assert!(!progress.is_paused());
    }

    #[test]
    fn rejections_back_off_to_the_hint_and_stale_ones_are_ignored() {
        let mut progress = Progress::new(11);
        progress.on_sent(Some(10));
        assert!(progress.on_reject(10, 4));
        assert_eq!(progress.next_index, 5);
        assert!(!progress.on_reject(10, 2), "an answer to an earlier probe");
        progress.on_sent(None);
        assert!(progress.on_match(4));
        progress.on_sent(Some(8));
        assert!(!progress.on_reject(3, 0), "below the match index");
        assert!(progress.on_reject(8, 6));
        assert_eq!(progress.state, ProgressState::Probe);
        assert_eq!(progress.next_index, 7);
    }
}
