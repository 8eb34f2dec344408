//! The values the core takes in and hands out: entries, hard state and messages.

use crate::membership::Membership;
pub use crate::storage::SnapshotMeta;
use std::rc::Rc;

/// A node in the cluster (a machine's core that hosts replicas); 0 is never a node.
pub type NodeId = u64;
/// A Raft group (one per placement group).
pub type GroupId = u64;
pub type Term = u64;
/// Position in a group's log, contiguous from 1; 0 means "before the first entry".
pub type Index = u64;

/// An entry's bytes, opaque to the core. `Rc` because one payload goes to every follower and to
/// the log write; a group never leaves its core, so nothing here needs to be `Send`.
pub type Payload = Rc<[u8]>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Appended by a new leader so that it can commit entries of earlier terms (Raft §5.4.2).
    Noop,
    /// A proposal; its payload goes to the state machine.
    Normal,
    /// A membership change; its payload is the whole new `Membership`, in force from the moment
    /// the entry is in a node's log.
    ConfChange,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    pub kind: EntryKind,
    pub payload: Payload,
}

/// What must be durable before the node answers anything that depends on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub group: GroupId,
    pub from: NodeId,
    pub to: NodeId,
    /// The sender's term (for a pre-vote request: the term it would campaign in).
    pub term: Term,
    pub body: Body,
}

/// Where a follower's log may first agree with the leader's, so that the leader skips a whole
/// conflicting term per round trip instead of one entry (etcd's `findConflictByTerm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RejectHint {
    pub index: Index,
    pub term: Term,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    PreVote { last_index: Index, last_term: Term },
    PreVoteResponse { granted: bool },
    /// `transfer`: sent after TimeoutNow, so voters ignore their leader lease.
    Vote { last_index: Index, last_term: Term, transfer: bool },
    VoteResponse { granted: bool },
    Append { prev_index: Index, prev_term: Term, entries: Vec<Entry>, commit: Index },
    /// Success: `index` is the follower's last index known to match, durable. Rejection:
    /// `index` is the `prev_index` that did not match.
    AppendResponse { index: Index, reject: Option<RejectHint> },
    /// `commit` is at most the follower's match index, so the follower may commit it at once.
    /// `read_seq` numbers the heartbeat round; the answer echoes it, confirming leadership for
    /// the reads that arrived before the round left (and, with lease reads, since when).
    Heartbeat { commit: Index, read_seq: u64 },
    HeartbeatResponse { read_seq: u64 },
    /// Leadership transfer: campaign now, skipping pre-vote and the election timeout.
    TimeoutNow,
    /// One chunk of the leader's snapshot, for a follower that needs compacted entries. The
    /// follower answers `InstallSnapshotResponse` per chunk, and `AppendResponse` once the last
    /// one (`done`) made the snapshot its log's start.
    InstallSnapshot { meta: SnapshotMeta, membership: Membership, offset: u64, data: Payload, done: bool },
    /// The next offset the follower expects of snapshot `index` (lost or repeated chunks are
    /// answered the same way).
    InstallSnapshotResponse { index: Index, offset: u64 },
}

impl Body {
    /// The message kind, for errors, logs and per-kind counters.
    pub fn name(&self) -> &'static str {
        match self {
            Body::PreVote { .. } => "PreVote",
            Body::PreVoteResponse { .. } => "PreVoteResponse",
            Body::Vote { .. } => "Vote",
            Body::VoteResponse { .. } => "VoteResponse",
            Body::Append { .. } => "Append",
            Body::AppendResponse { .. } => "AppendResponse",
            Body::Heartbeat { .. } => "Heartbeat",
            Body::HeartbeatResponse { .. } => "HeartbeatResponse",
            Body::TimeoutNow => "TimeoutNow",
            Body::InstallSnapshot { .. } => "InstallSnapshot",
            Body::InstallSnapshotResponse { .. } => "InstallSnapshotResponse",
        }
    }
}

/// A piece of a snapshot being received, for the driver to write (a snapshot can be far larger
/// than a message, so the core never holds it whole). `offset == 0` starts a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    pub meta: SnapshotMeta,
    pub offset: u64,
    pub data: Payload,
    pub done: bool,
}

/// A ReadIndex request that is now safe to serve: once the state machine has applied `index`,
/// a read of it is linearizable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub ctx: u64,
    pub index: Index,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}
