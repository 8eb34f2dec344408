//! A group's configuration and the core's limits.

use crate::types::{GroupId, NodeId};

/// AppendEntries messages in flight to one follower in the replicate state: the flow-control
/// window of pipelining. A full window pauses that follower until an answer frees a slot.
pub const INFLIGHT_MAX: usize = 64;
/// Entries in one AppendEntries message.
pub const APPEND_ENTRIES_MAX: usize = 256;
/// Payload bytes in one AppendEntries message (at least one entry is always sent).
pub const APPEND_BYTES_MAX: usize = 1 << 20;
/// Entries a leader holds beyond its commit index; a proposal beyond it is refused (`Busy`),
/// so a leader cut off from its followers does not grow its log without bound.
pub const UNCOMMITTED_ENTRIES_MAX: u64 = 8192;
/// ReadIndex requests waiting for their quorum; more are refused (`Busy`).
pub const READS_PENDING_MAX: usize = 4096;
/// Committed entries handed out in one `Ready`.
pub const APPLY_BATCH_MAX: usize = 1024;
/// Bytes of snapshot per InstallSnapshot message (the default of `Config::snapshot_chunk_bytes`).
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Lease reads assume every node's tick period is within this many percent of the nominal one.
pub const LEASE_CLOCK_DRIFT_PERCENT: u32 = 10;
/// Members of a group (replication factor); sizes the vote and progress tables.
pub const VOTERS_MAX: usize = 7;

const _: () = assert!(INFLIGHT_MAX >= 1);
const _: () = assert!(APPEND_ENTRIES_MAX >= 1);
const _: () = assert!(VOTERS_MAX % 2 == 1);

#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    pub group: GroupId,
    /// The membership the group starts with (before any configuration entry or snapshot): every
    /// voter, and learners. This node is one of them.
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// The election timeout is drawn from `[election_ticks, 2 * election_ticks)` at each reset.
    pub election_ticks: u32,
    pub heartbeat_ticks: u32,
    /// Pre-vote (Raft thesis §9.6): a node that cannot win does not bump the term, so a node
    /// that comes back from a partition does not depose a healthy leader.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout steps down, and a
    /// follower that heard from a leader within one refuses to vote (leader lease).
    pub check_quorum: bool,
    /// Serve reads on the leader's lease, without a heartbeat round (see `read_index.rs` for the
    /// clock assumption). Needs `check_quorum`.
    pub lease_read: bool,
    pub snapshot_chunk_bytes: usize,
    /// Seeds the election-timeout randomness; the core reads no global randomness.
    pub seed: u64,
    /// Deliberate bugs, so that tests can show the checkers catch them. All off in production.
    pub bugs: Bugs,
}

/// Each flag breaks one rule of Raft on purpose (mutation testing of the simulator's checkers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Answer votes before the vote is durable.
    pub vote_before_persist: bool,
    /// Acknowledge appended entries before they are durable.
    pub append_ack_before_persist: bool,
    /// A leader counts its own entries towards the quorum before its write is durable.
    pub leader_counts_unpersisted: bool,
    /// Grant votes without the up-to-date check on the candidate's log (Raft §5.4.1).
    pub vote_ignores_log: bool,
    /// Serve ReadIndex without confirming leadership with a quorum (a stale leader's read).
    pub read_without_quorum: bool,
}

impl Config {
    pub fn new(id: NodeId, group: GroupId, voters: Vec<NodeId>, seed: u64) -> Config {
        Config {
            id,
            group,
            voters,
            learners: Vec::new(),
            election_ticks: 10,
            heartbeat_ticks: 2,
            pre_vote: true,
            check_quorum: true,
            lease_read: false,
            snapshot_chunk_bytes: SNAPSHOT_CHUNK_BYTES,
            seed,
            bugs: Bugs::default(),
        }
    }

    /// Asserted at start: a wrong configuration is a programming error, not input.
    pub fn validate(&self) {
        assert!(self.id != 0);
        assert!(!self.voters.is_empty());
        assert!(self.voters.len() <= VOTERS_MAX);
        assert!(self.voters.contains(&self.id) || self.learners.contains(&self.id));
        assert!(!self.voters.contains(&0));
        assert!(self.heartbeat_ticks >= 1);
        assert!(self.snapshot_chunk_bytes >= 1);
        assert!(!self.lease_read || self.check_quorum);
        assert!(self.election_ticks > self.heartbeat_ticks);
        let mut sorted = self.voters.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert!(sorted.len() == self.voters.len());
    }
}
