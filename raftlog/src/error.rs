//! Errors the core returns. Messages that do not make sense are input, not invariants: they are
//! refused with a `StepError`, never asserted.

use crate::membership::MembershipError;
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
    #[error("the previous membership change is not committed yet")]
    ConfChangePending,
    #[error(transparent)]
    Membership(#[from] MembershipError),
    #[error("learner {id} has not caught up yet")]
    LearnerBehind { id: NodeId },
    /// Single-server changes never remove a majority at once; this also refuses a removal
    /// after which the voters that are caught up could not form a quorum.
    #[error("removing node {id} would leave too few caught-up voters for a quorum")]
    WouldLoseQuorum { id: NodeId },
    #[error("the leader cannot remove itself; transfer leadership first")]
    RemoveLeader,
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
