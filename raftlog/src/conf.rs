//! Membership changes on the core: proposing one (leader), and following the log's latest
//! configuration (everyone).

use crate::error::ProposeError;
use crate::membership::{ConfChange, Membership};
use crate::node::RawNode;
use crate::progress::Progress;
use crate::storage::Storage;
use crate::types::{Entry, EntryKind, Index, Role};

impl<S: Storage> RawNode<S> {
    /// Proposes one single-server change. Refused unless this node leads, has committed an entry
    /// of its term (Ongaro's fix for single-server changes, raft-dev 2015) and the previous change
    /// is committed; a learner is promoted only once it has caught up; a removal must leave a
    /// quorum of caught-up voters; the leader does not remove itself.
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<Index, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader_hint: self.leader });
        }
        if let Some(to) = self.transferee {
            return Err(ProposeError::Transferring { to });
        }
        if self.log.term(self.log.committed) != Some(self.term) {
            return Err(ProposeError::LeaderNotReady);
        }
        if self.conf_index > self.log.committed {
            return Err(ProposeError::ConfChangePending);
        }
        let next = self.membership.apply(change)?;
        match change {
            ConfChange::AddLearner(_) => {}
            ConfChange::Promote(id) => {
                let caught_up = self.progress.get(&id).is_some_and(|p| p.match_index >= self.log.committed);
                if !caught_up {
                    return Err(ProposeError::LearnerBehind { id });
                }
            }
            ConfChange::Remove(id) => {
                if id == self.config.id {
                    return Err(ProposeError::RemoveLeader);
                }
                let committed = self.log.committed;
                let caught_up = next
                    .voters
                    .iter()
                    .filter(|&&v| v == self.config.id || self.progress.get(&v).is_some_and(|p| p.match_index >= committed))
                    .count();
                if caught_up < next.quorum() {
                    return Err(ProposeError::WouldLoseQuorum { id });
                }
            }
        }
        let index = self.log.last_index() + 1;
        let entry = Entry { term: self.term, index, kind: EntryKind::ConfChange, payload: next.encode().into() };
        self.log.append(vec![entry]);
        self.conf_index = index;
        self.set_membership(next);
        self.append_pending = true;
        Ok(index)
    }

    /// The membership in force after entry `index` (at or after the snapshot): what the driver
    /// stores with a snapshot taken there.
    pub fn membership_at(&self, index: Index) -> Membership {
        let snapshot_index = self.log.snapshot_meta().index;
        assert!(index >= snapshot_index);
        assert!(index <= self.log.last_index());
        // No configuration entry after `index`: the one in force now is the one at `index`
        // (without scanning a log whose older entries a durable storage may not hold in memory).
        if self.conf_index <= index {
            return self.membership.clone();
        }
        match self.last_conf_entry(snapshot_index, index) {
            Some(entry) => decode(&entry),
            None => self.snapshot_membership(),
        }
    }

    /// The last configuration entry in `(lo, hi]`.
    fn last_conf_entry(&self, lo: Index, hi: Index) -> Option<Entry> {
        self.log.last_conf_entry(lo, hi)
    }

    fn snapshot_membership(&self) -> Membership {
        if let Some(pending) = &self.snapshot_membership_pending {
            return pending.clone();
        }
        match self.log.storage.snapshot() {
            Ok(snapshot) if !snapshot.membership.voters.is_empty() => snapshot.membership,
            _ => Membership::new(self.config.voters.clone(), self.config.learners.clone()),
        }
    }

    /// Finds the configuration in force from the log (at start, after a snapshot, after a
    /// conflict cut a configuration entry out).
    pub(crate) fn recompute_membership(&mut self) {
        let snapshot_index = self.log.snapshot_meta().index;
        let last = self.log.last_index();
        let (membership, conf_index) = match self.last_conf_entry(snapshot_index, last) {
            Some(entry) => (decode(&entry), entry.index),
            None => (self.snapshot_membership(), 0),
        };
        self.conf_index = conf_index;
        self.set_membership(membership);
    }

    /// Puts `membership` in force; a leader starts or stops tracking members.
    pub(crate) fn set_membership(&mut self, membership: Membership) {
        membership.check();
        if self.role == Role::Leader {
            let next_index = self.log.last_index() + 1;
            self.progress.retain(|id, _| membership.is_member(*id));
            for id in membership.others(self.config.id) {
                self.progress.entry(id).or_insert_with(|| Progress::new(next_index));
            }
        }
        self.membership = membership;
        if self.role != Role::Follower && !self.membership.is_voter(self.config.id) {
            // Removed while campaigning: stop (a leader is never removed, see above).
            let term = self.term;
            self.become_follower(term, None);
        }
    }
}

/// Configuration entries were validated on arrival (or written by this node).
fn decode(entry: &Entry) -> Membership {
    match Membership::decode(&entry.payload) {
        Some(membership) => membership,
        None => panic!("configuration entry {} does not decode", entry.index),
    }
}
