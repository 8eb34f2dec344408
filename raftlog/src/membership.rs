//! Group membership: voters, and learners that receive the log but neither vote nor count
//! towards a quorum. Changes are single-server (Raft thesis §4.1): each adds or removes one
//! member, so the old and new majorities always overlap and no joint configuration is needed. A
//! configuration takes effect as soon as its entry is in a node's log (committed or not), and a
//! leader proposes the next one only once the previous is committed.

use crate::config::VOTERS_MAX;
use crate::types::NodeId;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// Sorted, no duplicates, disjoint from `learners`.
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
}

/// One single-server change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChange {
    /// A new member that catches up before it may vote.
    AddLearner(NodeId),
    /// A learner becomes a voter (refused until it has caught up).
    Promote(NodeId),
    /// A voter or learner leaves.
    Remove(NodeId),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    #[error("node {0} is not a learner")]
    NotLearner(NodeId),
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    #[error("a group has at most {VOTERS_MAX} voters")]
    TooManyVoters,
    #[error("the last voter cannot be removed")]
    LastVoter,
    #[error("node id 0 is reserved")]
    ZeroId,
}

/// Members (voters and learners together) of one group at most: every member has a progress
/// entry on the leader.
pub const MEMBERS_MAX: usize = 2 * VOTERS_MAX;

impl Membership {
    pub fn new(voters: Vec<NodeId>, learners: Vec<NodeId>) -> Membership {
        let mut membership = Membership { voters, learners };
        membership.voters.sort_unstable();
        membership.learners.sort_unstable();
        membership
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.binary_search(&id).is_ok()
    }

    pub fn is_member(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Every member but `id`.
    pub fn others(&self, id: NodeId) -> Vec<NodeId> {
        self.voters.iter().chain(&self.learners).copied().filter(|&member| member != id).collect()
    }

    /// Asserted wherever a membership is made or read back.
    pub fn check(&self) {
        assert!(!self.voters.is_empty());
        assert!(self.voters.len() <= VOTERS_MAX);
        assert!(self.voters.len() + self.learners.len() <= MEMBERS_MAX);
        assert!(self.voters.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(self.learners.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(self.learners.iter().all(|&learner| !self.is_voter(learner)));
        assert!(!self.is_member(0));
    }

    /// The membership after `change`, or why it is not allowed.
    pub fn apply(&self, change: ConfChange) -> Result<Membership, MembershipError> {
        let mut next = self.clone();
        match change {
            ConfChange::AddLearner(0) | ConfChange::Promote(0) | ConfChange::Remove(0) => return Err(MembershipError::ZeroId),
            ConfChange::AddLearner(id) => {
                if self.is_member(id) {
                    return Err(MembershipError::AlreadyMember(id));
                }
                if self.voters.len() + self.learners.len() >= MEMBERS_MAX {
                    return Err(MembershipError::TooManyVoters);
                }
                next.learners.push(id);
            }
            ConfChange::Promote(id) => {
                if !self.is_learner(id) {
                    return Err(MembershipError::NotLearner(id));
                }
                if self.voters.len() >= VOTERS_MAX {
                    return Err(MembershipError::TooManyVoters);
                }
                next.learners.retain(|&learner| learner != id);
                next.voters.push(id);
            }
            ConfChange::Remove(id) => {
                if !self.is_member(id) {
                    return Err(MembershipError::NotMember(id));
                }
                if self.voters == [id] {
                    return Err(MembershipError::LastVoter);
                }
                next.voters.retain(|&voter| voter != id);
                next.learners.retain(|&learner| learner != id);
            }
        }
        next.voters.sort_unstable();
        next.learners.sort_unstable();
        next.check();
        Ok(next)
    }

    /// The entry payload: voter count, voters, learner count, learners (u64 little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 8 * (self.voters.len() + self.learners.len()));
        for list in [&self.voters, &self.learners] {
            out.push(list.len() as u8);
            for id in list {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
        out
    }

    /// Decodes and validates a payload (it arrives from the network in AppendEntries).
    pub fn decode(bytes: &[u8]) -> Option<Membership> {
        let mut at = 0;
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let count = *bytes.get(at)? as usize;
            at += 1;
            for _ in 0..count {
                list.push(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
                at += 8;
            }
        }
        let [voters, learners] = lists;
        if at != bytes.len() {
            return None;
        }
        Membership::checked(voters, learners)
    }

    /// The membership of these lists, if they make a valid one (what `new` asserts); for lists
    /// that arrive from elsewhere (a peer's snapshot, a decoded record).
    pub fn checked(voters: Vec<NodeId>, learners: Vec<NodeId>) -> Option<Membership> {
        let membership = Membership { voters, learners };
        let valid = !membership.voters.is_empty()
            && membership.voters.len() <= VOTERS_MAX
            && membership.voters.len() + membership.learners.len() <= MEMBERS_MAX
            && membership.voters.windows(2).all(|pair| pair[0] < pair[1])
            && membership.learners.windows(2).all(|pair| pair[0] < pair[1])
            && membership.learners.iter().all(|&learner| !membership.is_voter(learner))
            && !membership.is_member(0);
        valid.then_some(membership)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(start: (&[NodeId], &[NodeId]), change: ConfChange, expected: Result<(&[NodeId], &[NodeId]), MembershipError>) {
        let membership = Membership::new(start.0.to_vec(), start.1.to_vec());
        let got = membership.apply(change);
        let expected = expected.map(|(voters, learners)| Membership::new(voters.to_vec(), learners.to_vec()));
        assert_eq!(got, expected, "{change:?}");
        if let Ok(next) = got {
            assert_eq!(Membership::decode(&next.encode()), Some(next));
        }
    }

    #[test]
    fn single_server_changes() {
        check((&[1, 2, 3], &[]), ConfChange::AddLearner(4), Ok((&[1, 2, 3], &[4])));
        check((&[1, 2, 3], &[4]), ConfChange::Promote(4), Ok((&[1, 2, 3, 4], &[])));
        check((&[1, 2, 3], &[4]), ConfChange::Remove(4), Ok((&[1, 2, 3], &[])));
        check((&[1, 2, 3], &[]), ConfChange::Remove(2), Ok((&[1, 3], &[])));
        check((&[1, 2, 3], &[]), ConfChange::AddLearner(2), Err(MembershipError::AlreadyMember(2)));
        check((&[1, 2, 3], &[]), ConfChange::Promote(4), Err(MembershipError::NotLearner(4)));
        check((&[1, 2, 3], &[]), ConfChange::Remove(4), Err(MembershipError::NotMember(4)));
        check((&[1], &[]), ConfChange::Remove(1), Err(MembershipError::LastVoter));
        check((&[1, 2, 3, 4, 5, 6, 7], &[8]), ConfChange::Promote(8), Err(MembershipError::TooManyVoters));
        check((&[1], &[]), ConfChange::AddLearner(0), Err(MembershipError::ZeroId));
    }

    #[test]
    fn decode_refuses_what_no_leader_would_write() {
        let good = Membership::new(vec![1, 2, 3], vec![4]);
        assert_eq!(Membership::decode(&good.encode()), Some(good.clone()));
        for bad in [
            Membership { voters: vec![], learners: vec![] },
            Membership { voters: vec![2, 1], learners: vec![] },
            Membership { voters: vec![1, 2], learners: vec![2] },
            Membership { voters: vec![0, 1], learners: vec![] },
        ] {
            assert_eq!(Membership::decode(&bad.encode()), None, "{bad:?}");
        }
        let mut truncated = good.encode();
        truncated.pop();
        assert_eq!(Membership::decode(&truncated), None);
        let mut trailing = good.encode();
        trailing.push(0);
        assert_eq!(Membership::decode(&trailing), None);
    }
}
