//! Errors the core returns. Messages that do not make sense are input, not invariants: they are
//! refused with a `StepError`, never asserted.

use crate::types::{GroupId, NodeId};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Carries the leader this node last heard from, so the client goes straight to it.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader { leader_hint: Option<NodeId> },
    #[error("too many uncommitted entries or pending reads; retry later")]
    Busy,
    #[error("leadership is being transferred to {to}")]
    Transferring { to: NodeId },
    /// A new leader must commit an entry of its term before it knows the commit index
    /// (Raft thesis §6.4); ReadIndex is refused until then.
    #[error("the leader has not yet committed an entry of its term")]
    LeaderNotReady,
    #[error("node {to} is not a voter of this group")]
    UnknownNode { to: NodeId },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("message for group {got}, this is group {expected}")]
    WrongGroup { expected: GroupId, got: GroupId },
    #[error("message addressed to node {to}, this is node {id}")]
    WrongNode { id: NodeId, to: NodeId },
    #[error("message from node {from}, which is not a peer in this group")]
    UnknownSender { from: NodeId },
    #[error("malformed {kind} from node {from}: {reason}")]
    Malformed { kind: &'static str, from: NodeId, reason: &'static str },
}
