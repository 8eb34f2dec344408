//! Linearizable reads.
//!
//! ReadIndex (Raft thesis §6.4): a read is linearizable once the leader, after receiving it,
//! confirmed with a quorum that it is still leader, and the state machine applied the commit
//! index it had when the read came in. No clock is involved.
//!
//! Lease reads (thesis §6.4.1, optional, `Config::lease_read`): the leader skips the round when
//! a quorum acknowledged a heartbeat it sent less than `lease_ticks()` ago. **Clock
//! assumption:** every node's tick period is within `LEASE_CLOCK_DRIFT_PERCENT` of the nominal
//! one. Then no other leader can exist during the lease: a voter that acknowledged the
//! heartbeat refuses votes until a whole election timeout of its own ticks has passed
//! (check-quorum's lease, `in_lease`), which takes longer than the lease by the leader's clock. A
//! node that restarts refuses votes for an election timeout too (it may have acknowledged a
//! heartbeat just before it crashed), and a leader that sent TimeoutNow stops serving leases
//! (transfer votes ignore the lease). Lease reads need check-quorum. The driver must tick once
//! per period its monotonic clock says elapsed, catching up on the ticks a stalled core missed
//! before it handles anything else: a tick count that lags real time would stretch the lease
//! (shown by the simulator's `regression_lease_read_after_a_stall_needs_tick_catch_up`).

use crate::config::{LEASE_CLOCK_DRIFT_PERCENT, READS_PENDING_MAX};
use crate::error::ProposeError;
use crate::membership::Membership;
use crate::node::RawNode;
use crate::storage::Storage;
use crate::types::{Index, NodeId, ReadState, Role};
use std::collections::VecDeque;

/// Heartbeat rounds remembered for lease accounting (sequence, tick sent); an answer to an older
/// round no longer extends the lease.
const HEARTBEATS_REMEMBERED: usize = 64;

struct PendingRead {
    /// The first heartbeat round sent after the read arrived: its answers confirm it.
    round: u64,
    ctx: u64,
    index: Index,
    /// Voters whose answer covered this read (the leader counts too).
    acks: Vec<NodeId>,
}

/// Reads waiting for their quorum, oldest first, and the heartbeat rounds that confirm them.
pub(crate) struct ReadQueue {
    pending: VecDeque<PendingRead>,
    /// Sequence of the last heartbeat round sent; answers echo it.
    round_last: u64,
    sent: VecDeque<(u64, u64)>,
}

impl ReadQueue {
    pub(crate) fn new() -> ReadQueue {
        ReadQueue { pending: VecDeque::new(), round_last: 0, sent: VecDeque::with_capacity(HEARTBEATS_REMEMBERED) }
    }

    /// A heartbeat round leaves at `tick`: returns its sequence number.
    pub(crate) fn next_round(&mut self, tick: u64) -> u64 {
        self.round_last += 1;
        if self.sent.len() == HEARTBEATS_REMEMBERED {
            self.sent.pop_front();
        }
        self.sent.push_back((self.round_last, tick));
        self.round_last
    }

    /// When round `round` was sent, if still remembered.
    pub(crate) fn sent_at(&self, round: u64) -> Option<u64> {
        self.sent.iter().find(|(seq, _)| *seq == round).map(|(_, tick)| *tick)
    }

    fn push(&mut self, ctx: u64, index: Index) {
        let round = self.round_last + 1;
        self.pending.push_back(PendingRead { round, ctx, index, acks: Vec::new() });
    }

    /// Voter `from` answered round `round`; returns the reads that now have a quorum of the
    /// voters in force now (an answer from a node removed since does not count).
    pub(crate) fn ack(&mut self, from: NodeId, round: u64, membership: &Membership) -> Vec<ReadState> {
        for read in self.pending.iter_mut().take_while(|read| read.round <= round) {
            if !read.acks.contains(&from) {
                read.acks.push(from);
            }
        }
        let mut ready = Vec::new();
        let quorum = membership.quorum();
        let confirmed = |read: &PendingRead| read.acks.iter().filter(|&&id| membership.is_voter(id)).count() + 1 >= quorum;
        while self.pending.front().is_some_and(confirmed) {
            let Some(read) = self.pending.pop_front() else { break };
            ready.push(ReadState { ctx: read.ctx, index: read.index });
        }
        ready
    }

    /// Leadership ended: the pending reads cannot complete, the rounds mean nothing.
    pub(crate) fn drain_contexts(&mut self) -> Vec<u64> {
        self.sent.clear();
        self.pending.drain(..).map(|read| read.ctx).collect()
    }
}

/// How long a lease lasts, in the leader's ticks, for an election timeout of `election_ticks`.
/// A follower's timer starts anywhere within a tick and its ticks may run fast by the drift
/// bound while the leader's run slow: one tick off for each granularity, then the drift ratio.
pub fn lease_ticks(election_ticks: u32) -> u64 {
    let ticks = election_ticks.saturating_sub(2) as u64;
    ticks * (100 - LEASE_CLOCK_DRIFT_PERCENT as u64) / (100 + LEASE_CLOCK_DRIFT_PERCENT as u64)
}

impl<S: Storage> RawNode<S> {
    /// Asks for a linearizable read point. `ctx` comes back in a `ReadState` (or in
    /// `reads_dropped` if leadership is lost first).
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader_hint: self.leader });
        }
        let committed = self.log.committed;
        if self.log.term(committed) != Some(self.term) {
            return Err(ProposeError::LeaderNotReady);
        }
        if self.reads.pending.len() >= READS_PENDING_MAX {
            return Err(ProposeError::Busy);
        }
        if self.config.bugs.read_without_quorum || self.quorum() == 1 || self.lease_valid() {
            self.read_states.push(ReadState { ctx, index: committed });
            return Ok(());
        }
        self.reads.push(ctx, committed);
        // Reads that arrive together share the next heartbeat round.
        self.heartbeat_pending = true;
        Ok(())
    }

    /// Whether a quorum acknowledged a heartbeat sent within the lease.
    fn lease_valid(&self) -> bool {
        if !self.config.lease_read || !self.config.check_quorum || self.transferee.is_some() || self.ticks < self.lease_blocked_until {
            return false;
        }
        let mut sent: Vec<u64> = self
            .progress
            .iter()
            .filter(|(id, _)| self.membership.is_voter(**id))
            .filter_map(|(_, progress)| progress.lease_ack_tick)
            .collect();
        sent.push(self.ticks);
        sent.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&start) = sent.get(self.quorum() - 1) else { return false };
        self.ticks < start + lease_ticks(self.config.election_ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_need_answers_from_voters_in_force_and_from_rounds_after_them() {
        let mut queue = ReadQueue::new();
        let round = queue.next_round(0);
        queue.push(7, 3);
        let membership = Membership::new(vec![1, 2, 3], vec![]);
        assert!(queue.ack(2, round, &membership).is_empty(), "a round sent before the read");
        let round = queue.next_round(1);
        // Node 4 answered, then was removed: its answer does not count towards {1, 2, 3}.
        assert!(queue.ack(4, round, &membership).is_empty());
        assert_eq!(queue.ack(3, round, &membership), vec![ReadState { ctx: 7, index: 3 }]);
    }

    #[test]
    fn lease_is_shorter_than_the_election_timeout_by_the_drift_bound() {
        for (election_ticks, lease) in [(10, 6), (20, 14), (2, 0), (1, 0)] {
            assert_eq!(lease_ticks(election_ticks), lease, "{election_ticks}");
        }
    }
}
