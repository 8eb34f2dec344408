//! ReadIndex (Raft thesis §6.4): a read is linearizable once the leader, after receiving it,
//! confirmed with a quorum that it is still leader, and the state machine applied the commit
//! index it had when the read came in. No clock is involved.

use crate::config::READS_PENDING_MAX;
use crate::error::ProposeError;
use crate::node::RawNode;
use crate::storage::Storage;
use crate::types::{Index, NodeId, ReadState, Role};
use std::collections::VecDeque;

struct PendingRead {
    seq: u64,
    ctx: u64,
    index: Index,
    /// Peers whose heartbeat answer covered this read (the leader counts too).
    acks: Vec<NodeId>,
}

/// Reads waiting for their quorum, oldest first. A heartbeat carries the newest `seq` when it
/// leaves, so its answer confirms every read up to that `seq`.
pub(crate) struct ReadQueue {
    pending: VecDeque<PendingRead>,
    seq_last: u64,
}

impl ReadQueue {
    pub(crate) fn new() -> ReadQueue {
        ReadQueue { pending: VecDeque::new(), seq_last: 0 }
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.seq_last
    }

    fn push(&mut self, ctx: u64, index: Index) {
        self.seq_last += 1;
        self.pending.push_back(PendingRead { seq: self.seq_last, ctx, index, acks: Vec::new() });
    }

    /// `from` confirmed leadership as of `seq`; returns the reads that now have a quorum.
    pub(crate) fn ack(&mut self, from: NodeId, seq: u64, quorum: usize) -> Vec<ReadState> {
        for read in self.pending.iter_mut().take_while(|read| read.seq <= seq) {
            if !read.acks.contains(&from) {
                read.acks.push(from);
            }
        }
        let mut ready = Vec::new();
        while self.pending.front().is_some_and(|read| read.acks.len() + 1 >= quorum) {
            let Some(read) = self.pending.pop_front() else { break };
            ready.push(ReadState { ctx: read.ctx, index: read.index });
        }
        ready
    }

    pub(crate) fn drain_contexts(&mut self) -> Vec<u64> {
        self.pending.drain(..).map(|read| read.ctx).collect()
    }
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
        if self.config.bugs.read_without_quorum || self.quorum() == 1 {
            self.read_states.push(ReadState { ctx, index: committed });
            return Ok(());
        }
        self.reads.push(ctx, committed);
        // Reads that arrive together share the next heartbeat round.
        self.heartbeat_pending = true;
        Ok(())
    }
}
