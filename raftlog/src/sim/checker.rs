//! Raft's safety properties (Raft paper, figure 3), checked beside the workload from what each
//! node shows after every step: the checker sees nodes from outside and trusts nothing they say
//! about each other.

use crate::node::RawNode;
use crate::storage::Storage;
use crate::types::{Entry, Index, NodeId, Role, Term};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two leaders in one term.
    ElectionSafety { term: Term, leaders: (NodeId, NodeId) },
    /// Two logs hold an entry with the same index and term but differ at or before it.
    LogMatching { nodes: (NodeId, NodeId), index: Index },
    /// A leader lacks an entry committed in an earlier term.
    LeaderCompleteness { leader: NodeId, term: Term, index: Index },
    /// Two different entries committed or applied at one index.
    StateMachineSafety { node: NodeId, index: Index },
    /// The clients' history of the key-value store is not linearizable.
    Linearizability { key: u8, ops: usize },
    /// The linearizability search gave up (too many concurrent or timed-out operations).
    LinearizabilityUndecided { key: u8, ops: usize },
    /// The cluster did not serve a single write after every fault was healed.
    NoProgress,
    /// A panic (a failed assertion in the core or the simulator).
    Panic(String),
}

/// What identifies an entry for the comparisons: term and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    term: Term,
    payload: Vec<u8>,
}

fn fingerprint(entry: &Entry) -> Fingerprint {
    Fingerprint { term: entry.term, payload: entry.payload.to_vec() }
}

#[derive(Default)]
pub struct SafetyChecker {
    leaders: BTreeMap<Term, NodeId>,
    /// Every committed index: its entry and the term of the leader that first committed it.
    committed: BTreeMap<Index, (Fingerprint, Term)>,
    /// Per node, the commit index already recorded (reset on restart).
    commit_seen: BTreeMap<NodeId, Index>,
    applied: BTreeMap<Index, Fingerprint>,
    /// The state machine's image after applying each index (or installing a snapshot at it).
    states: BTreeMap<Index, Vec<u8>>,
    /// Checks made, for the report.
    pub checks: u64,
}

impl SafetyChecker {
    /// Called after every step of `node`: election safety, leader completeness on taking
    /// office, and the entries a leader's commit index passed.
    pub fn observe<S: Storage>(&mut self, node: &RawNode<S>) -> Result<(), Violation> {
        self.checks += 1;
        if node.role() != Role::Leader {
            return Ok(());
        }
        let (id, term) = (node.id(), node.term());
        match self.leaders.get(&term) {
            Some(&other) if other != id => return Err(Violation::ElectionSafety { term, leaders: (other, id) }),
            Some(_) => {}
            None => {
                self.leaders.insert(term, id);
                self.check_leader_completeness(node)?;
            }
        }
        self.record_commits(node)
    }

    fn check_leader_completeness<S: Storage>(&self, node: &RawNode<S>) -> Result<(), Violation> {
        for (&index, (entry, commit_term)) in &self.committed {
            // Compacted entries live in the snapshot, checked through the state images.
            if *commit_term >= node.term() || index <= node.snapshot_index() {
                continue;
            }
            let has = node.log_entries(index, index + 1).first().map(fingerprint);
            if has.as_ref() != Some(entry) {
                return Err(Violation::LeaderCompleteness { leader: node.id(), term: node.term(), index });
            }
        }
        Ok(())
    }

    fn record_commits<S: Storage>(&mut self, node: &RawNode<S>) -> Result<(), Violation> {
        let seen = self.commit_seen.get(&node.id()).copied().unwrap_or(0).max(node.snapshot_index());
        let commit = node.commit_index();
        if commit <= seen {
            return Ok(());
        }
        for entry in node.log_entries(seen + 1, commit + 1) {
            let print = fingerprint(&entry);
            match self.committed.get(&entry.index) {
                Some((known, _)) if *known != print => {
                    return Err(Violation::StateMachineSafety { node: node.id(), index: entry.index });
                }
                Some(_) => {}
                None => {
                    self.committed.insert(entry.index, (print, node.term()));
                }
            }
        }
        self.commit_seen.insert(node.id(), commit);
        Ok(())
    }

    /// A node restarted: its commit index starts again from its snapshot.
    pub fn on_restart(&mut self, node: NodeId) {
        self.commit_seen.remove(&node);
    }

    /// Every node applies the same entry at each index.
    pub fn on_apply(&mut self, node: NodeId, entry: &Entry) -> Result<(), Violation> {
        self.checks += 1;
        let print = fingerprint(entry);
        match self.applied.get(&entry.index) {
            Some(known) if *known != print => Err(Violation::StateMachineSafety { node, index: entry.index }),
            Some(_) => Ok(()),
            None => {
                self.applied.insert(entry.index, print);
                Ok(())
            }
        }
    }

    /// Every node's state machine is the same after the same index, whether it got there by
    /// applying entries or by installing a snapshot.
    pub fn on_state(&mut self, node: NodeId, index: Index, image: Vec<u8>) -> Result<(), Violation> {
        self.checks += 1;
        match self.states.get(&index) {
            Some(known) if *known != image => Err(Violation::StateMachineSafety { node, index }),
            Some(_) => Ok(()),
            None => {
                self.states.insert(index, image);
                Ok(())
            }
        }
    }

    pub fn committed_count(&self) -> usize {
        self.committed.len()
    }
}

/// Log matching (Raft §5.3) over whole logs: below the highest index where two logs hold the
/// same term, they must be identical. Each log is its entries after its snapshot (contiguous).
pub fn check_log_matching(a: (NodeId, &[Entry]), b: (NodeId, &[Entry])) -> Result<(), Violation> {
    let (log_a, log_b) = (a.1, b.1);
    let (Some(first_a), Some(first_b)) = (log_a.first(), log_b.first()) else { return Ok(()) };
    let at = |log: &[Entry], first: Index, index: Index| -> Entry {
        let entry = log[(index - first) as usize].clone();
        assert!(entry.index == index);
        entry
    };
    let lo = first_a.index.max(first_b.index);
    let hi = (first_a.index + log_a.len() as Index).min(first_b.index + log_b.len() as Index);
    let Some(top) = (lo..hi).rev().find(|&i| at(log_a, first_a.index, i).term == at(log_b, first_b.index, i).term) else {
        return Ok(());
    };
    for index in lo..=top {
        if at(log_a, first_a.index, index) != at(log_b, first_b.index, index) {
            return Err(Violation::LogMatching { nodes: (a.0, b.0), index });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryKind;

    fn log(entries: &[(Term, u8)]) -> Vec<Entry> {
        entries
            .iter()
            .enumerate()
            .map(|(i, &(term, byte))| Entry { term, index: i as Index + 1, kind: EntryKind::Normal, payload: vec![byte].into() })
            .collect()
    }

    #[test]
    fn log_matching_catches_a_differing_prefix() {
        type Log<'a> = &'a [(Term, u8)];
        let cases: &[(Log, Log, bool)] = &[
            (&[(1, 1), (1, 2)], &[(1, 1), (1, 2), (2, 3)], true),
            (&[(1, 1), (2, 2)], &[(1, 1), (3, 2)], true),
            (&[], &[(1, 1)], true),
            // Same term at index 2, different payload at index 1.
            (&[(1, 1), (2, 2)], &[(1, 9), (2, 2)], false),
            // Same index and term, different payload.
            (&[(1, 1), (2, 2)], &[(1, 1), (2, 3)], false),
        ];
        for (a, b, ok) in cases {
            let (a, b) = (log(a), log(b));
            assert_eq!(check_log_matching((1, &a), (2, &b)).is_ok(), *ok, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn apply_catches_two_entries_at_one_index() {
        let mut checker = SafetyChecker::default();
        let a = log(&[(1, 1)]);
        let b = log(&[(1, 2)]);
        assert!(checker.on_apply(1, &a[0]).is_ok());
        assert!(checker.on_apply(2, &a[0]).is_ok());
        assert_eq!(checker.on_apply(3, &b[0]), Err(Violation::StateMachineSafety { node: 3, index: 1 }));
    }
}
