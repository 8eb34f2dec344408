//! The log the core reads through, and an in-memory implementation.
//!
//! The core never writes storage: it hands out entries and hard state in a `Ready`, and the
//! driver writes them (in production, into the core's shared segment log, where one write and one
//! fdatasync cover every group's batch). Before the driver calls into the node again, the storage
//! must already *show* what the last `Ready` handed out (durable or not): the core tracks
//! durability separately, through `RawNode::on_persisted`.

use crate::membership::Membership;
use crate::types::{Entry, EntryKind, HardState, Index, Payload, Term};

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("entry {index} was compacted into a snapshot")]
    Compacted { index: Index },
    /// Not at hand now (a durable log that keeps only the recent tail in memory); the core
    /// tries again later.
    #[error("entry {index} is not available now")]
    Unavailable { index: Index },
}

/// Where the log starts: everything up to `index` lives in a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub index: Index,
    pub term: Term,
}

/// The state machine's image at `meta.index` (opaque to the core) and the group's membership
/// there (the configuration entries it replaces).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    /// Empty (no voters) only for the empty snapshot at index 0: the configured membership holds.
    pub membership: Membership,
    pub data: Payload,
}

/// The term of entry `index` in a log that starts after `snapshot`, whose `i`-th live entry
/// (index `snapshot.index + 1 + i`) has the term `live_term(i)` when it is at hand.
pub fn term_after_snapshot(snapshot: SnapshotMeta, index: Index, live_term: impl FnOnce(usize) -> Option<Term>) -> Result<Term, StorageError> {
    if index < snapshot.index {
        return Err(StorageError::Compacted { index });
    }
    if index == snapshot.index {
        return Ok(snapshot.term);
    }
    live_term((index - snapshot.index - 1) as usize).ok_or(StorageError::Unavailable { index })
}

pub trait Storage {
    /// The hard state as last written (durable or not).
    fn hard_state(&self) -> HardState;
    fn snapshot_meta(&self) -> SnapshotMeta;
    /// The latest snapshot, streamed to followers that need entries already compacted.
    fn snapshot(&self) -> Result<Snapshot, StorageError>;
    /// `snapshot_meta().index + 1` when the log is empty.
    fn first_index(&self) -> Index;
    /// `snapshot_meta().index` when the log is empty.
    fn last_index(&self) -> Index;
    /// Term of entry `index`, for `snapshot_meta().index <= index <= last_index()`.
    fn term(&self, index: Index) -> Result<Term, StorageError>;
    /// Appends entries `lo..hi` to `out`, for `first_index() <= lo <= hi <= last_index() + 1`.
    fn entries(&self, lo: Index, hi: Index, out: &mut Vec<Entry>) -> Result<(), StorageError>;
    /// The last configuration entry in `(lo, hi]`, for `snapshot_meta().index <= lo` and
    /// `hi <= last_index()`. Always answered (never `Unavailable`): the configuration in force
    /// decides who votes, so a storage that holds only a tail of its entries in memory must keep
    /// its configuration entries there too.
    fn last_conf_entry(&self, lo: Index, hi: Index) -> Option<Entry>;
}

/// A log in memory: the simulator's storage view, and a model for the durable one.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    snapshot: Snapshot,
    /// Entries from `snapshot.meta.index + 1` on.
    entries: Vec<Entry>,
}

impl MemStorage {
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    pub fn set_hard_state(&mut self, hard_state: HardState) {
        assert!(hard_state.term >= self.hard_state.term);
        self.hard_state = hard_state;
    }

    /// Appends `entries`, first dropping every entry at or after the first one's index (a
    /// follower's conflicting suffix).
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        assert!(first.index > self.snapshot.meta.index);
        assert!(first.index <= self.last_index() + 1);
        for pair in entries.windows(2) {
            assert!(pair[1].index == pair[0].index + 1);
            assert!(pair[1].term >= pair[0].term);
        }
        self.entries.truncate((first.index - self.snapshot.meta.index - 1) as usize);
        let last_term = self.entries.last().map_or(self.snapshot.meta.term, |entry| entry.term);
        assert!(last_term <= first.term);
        self.entries.extend_from_slice(entries);
    }

    /// The state machine has applied through `index` and produced `data`: entries up to
    /// `index` are dropped, the snapshot stands in for them.
    pub fn compact(&mut self, index: Index, membership: Membership, data: Payload) {
        membership.check();
        assert!(index > self.snapshot.meta.index);
        assert!(index <= self.last_index());
        let term = self.entries[(index - self.snapshot.meta.index - 1) as usize].term;
        self.entries.drain(..(index - self.snapshot.meta.index) as usize);
        self.snapshot = Snapshot { meta: SnapshotMeta { index, term }, membership, data };
    }

    /// A snapshot received from the leader replaces the whole log.
    pub fn install(&mut self, snapshot: Snapshot) {
        assert!(snapshot.meta.index > self.snapshot.meta.index);
        self.entries.clear();
        self.snapshot = snapshot;
    }

    /// The entries after the snapshot.
    pub fn all_entries(&self) -> &[Entry] {
        &self.entries
    }
}

impl Storage for MemStorage {
    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        self.snapshot.meta
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        Ok(self.snapshot.clone())
    }

    fn first_index(&self) -> Index {
        self.snapshot.meta.index + 1
    }

    fn last_index(&self) -> Index {
        self.snapshot.meta.index + self.entries.len() as Index
    }

    fn term(&self, index: Index) -> Result<Term, StorageError> {
        term_after_snapshot(self.snapshot.meta, index, |i| self.entries.get(i).map(|e| e.term))
    }

    fn last_conf_entry(&self, lo: Index, hi: Index) -> Option<Entry> {
        assert!(lo >= self.snapshot.meta.index && hi <= self.last_index());
        let base = self.snapshot.meta.index + 1;
        let live = &self.entries[(lo + 1 - base) as usize..(hi + 1 - base).max(lo + 1 - base) as usize];
        live.iter().rev().find(|e| e.kind == EntryKind::ConfChange).cloned()
    }

    fn entries(&self, lo: Index, hi: Index, out: &mut Vec<Entry>) -> Result<(), StorageError> {
        assert!(lo <= hi);
        if lo <= self.snapshot.meta.index {
            return Err(StorageError::Compacted { index: lo });
        }
        if hi > self.last_index() + 1 {
            return Err(StorageError::Unavailable { index: hi - 1 });
        }
        let base = self.snapshot.meta.index + 1;
        out.extend_from_slice(&self.entries[(lo - base) as usize..(hi - base) as usize]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryKind;

    fn entry(index: Index, term: Term) -> Entry {
        Entry { term, index, kind: EntryKind::Normal, payload: vec![index as u8].into() }
    }

    fn check(appends: &[&[(Index, Term)]], expected: &[(Index, Term)]) {
        let mut storage = MemStorage::new();
        for batch in appends {
            let entries: Vec<Entry> = batch.iter().map(|&(i, t)| entry(i, t)).collect();
            storage.append(&entries);
        }
        let got: Vec<(Index, Term)> = storage.all_entries().iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(got, expected);
        assert_eq!(storage.last_index(), expected.len() as Index);
    }

    #[test]
    fn append_truncates_conflicting_suffix() {
        check(&[&[(1, 1), (2, 1)]], &[(1, 1), (2, 1)]);
        check(&[&[(1, 1), (2, 1), (3, 1)], &[(2, 2)]], &[(1, 1), (2, 2)]);
        check(&[&[(1, 1)], &[(2, 1), (3, 2)], &[(4, 2)]], &[(1, 1), (2, 1), (3, 2), (4, 2)]);
        check(&[&[(1, 1), (2, 1)], &[(1, 3)]], &[(1, 3)]);
    }

    #[test]
    fn compaction_keeps_the_suffix_and_the_term_at_the_cut() {
        let mut storage = MemStorage::new();
        storage.append(&[entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)]);
        storage.compact(3, Membership::new(vec![1], vec![]), vec![9].into());
        assert_eq!(storage.first_index(), 4);
        assert_eq!(storage.last_index(), 4);
        assert_eq!(storage.term(3), Ok(2));
        assert_eq!(storage.term(2), Err(StorageError::Compacted { index: 2 }));
        let mut out = Vec::new();
        assert_eq!(storage.entries(3, 5, &mut out), Err(StorageError::Compacted { index: 3 }));
        assert_eq!(storage.entries(4, 5, &mut out), Ok(()));
        assert_eq!(out, vec![entry(4, 2)]);
        storage.append(&[entry(5, 3)]);
        let membership = Membership::new(vec![1], vec![]);
        storage.install(Snapshot { meta: SnapshotMeta { index: 10, term: 4 }, membership, data: vec![].into() });
        assert_eq!((storage.first_index(), storage.last_index()), (11, 10));
        storage.append(&[entry(11, 4)]);
        assert_eq!(storage.term(11), Ok(4));
    }
}
