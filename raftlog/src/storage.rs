//! The log the core reads through, and an in-memory implementation.
//!
//! The core never writes storage: it hands out entries and hard state in a `Ready`, and the
//! driver writes them (in production, into the core's shared segment log, where one write and one
//! fdatasync cover every group's batch). Before the driver calls into the node again, the storage
//! must already *show* what the last `Ready` handed out (durable or not): the core tracks
//! durability separately, through `RawNode::on_persisted`.

use crate::types::{Entry, HardState, Index, Term};

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

pub trait Storage {
    /// The hard state as last written (durable or not) and the log's snapshot point.
    fn hard_state(&self) -> HardState;
    fn snapshot_meta(&self) -> SnapshotMeta;
    /// `snapshot_meta().index + 1` when the log is empty.
    fn first_index(&self) -> Index;
    /// `snapshot_meta().index` when the log is empty.
    fn last_index(&self) -> Index;
    /// Term of entry `index`, for `snapshot_meta().index <= index <= last_index()`.
    fn term(&self, index: Index) -> Result<Term, StorageError>;
    /// Appends entries `lo..hi` to `out`, for `first_index() <= lo <= hi <= last_index() + 1`.
    fn entries(&self, lo: Index, hi: Index, out: &mut Vec<Entry>) -> Result<(), StorageError>;
}

/// A log in memory: the simulator's storage view, and a model for the durable one.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
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
        assert!(first.index >= 1);
        assert!(first.index <= self.last_index() + 1);
        for pair in entries.windows(2) {
            assert!(pair[1].index == pair[0].index + 1);
            assert!(pair[1].term >= pair[0].term);
        }
        self.entries.truncate((first.index - 1) as usize);
        if let Some(last) = self.entries.last() {
            assert!(last.term <= first.term);
        }
        self.entries.extend_from_slice(entries);
    }

    /// Drops every entry after `index` (what a crash does to an unsynced tail).
    pub fn truncate_after(&mut self, index: Index) {
        self.entries.truncate(index as usize);
    }

    pub fn all_entries(&self) -> &[Entry] {
        &self.entries
    }
}

impl Storage for MemStorage {
    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        SnapshotMeta::default()
    }

    fn first_index(&self) -> Index {
        1
    }

    fn last_index(&self) -> Index {
        self.entries.len() as Index
    }

    fn term(&self, index: Index) -> Result<Term, StorageError> {
        if index == 0 {
            return Ok(0);
        }
        match self.entries.get((index - 1) as usize) {
            Some(entry) => Ok(entry.term),
            None => Err(StorageError::Unavailable { index }),
        }
    }

    fn entries(&self, lo: Index, hi: Index, out: &mut Vec<Entry>) -> Result<(), StorageError> {
        assert!(lo >= 1);
        assert!(lo <= hi);
        if hi > self.last_index() + 1 {
            return Err(StorageError::Unavailable { index: hi - 1 });
        }
        out.extend_from_slice(&self.entries[(lo - 1) as usize..(hi - 1) as usize]);
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
}
