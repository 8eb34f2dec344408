//! The simulator's storage for one node: what the node sees (everything written) and what is
//! durable (everything synced), with crashes that keep a random prefix of the unsynced writes
//! and may tear the last one (its surviving entries cut at a random point, as the durable log's
//! recovery cuts a torn tail by checksum).

use crate::storage::{MemStorage, Snapshot, SnapshotMeta, Storage, StorageError};
use crate::membership::Membership;
use crate::types::Payload;
use crate::types::{Entry, HardState, Index, Term};
use engine::rng::Prng;

/// One `Ready`'s write: the hard state and entries the driver wrote together.
#[derive(Clone, Debug)]
struct Write {
    seq: u64,
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
}

pub struct SimStorage {
    view: MemStorage,
    durable: MemStorage,
    unsynced: Vec<Write>,
    /// Sequence number of the last write, and of the last one that is durable.
    pub seq_written: u64,
    pub seq_durable: u64,
}

impl SimStorage {
    pub fn new() -> SimStorage {
        SimStorage { view: MemStorage::new(), durable: MemStorage::new(), unsynced: Vec::new(), seq_written: 0, seq_durable: 0 }
    }

    /// Writes (not yet durable). Returns the write's sequence number, or None if nothing to write.
    pub fn write(&mut self, hard_state: Option<HardState>, entries: &[Entry]) -> Option<u64> {
        if hard_state.is_none() && entries.is_empty() {
            return None;
        }
        apply(&mut self.view, hard_state, entries);
        self.seq_written += 1;
        self.unsynced.push(Write { seq: self.seq_written, hard_state, entries: entries.to_vec() });
        Some(self.seq_written)
    }

    /// An fdatasync that started when `seq` was the last write returned: everything up to it
    /// is durable. Returns the last entry it made durable, if any.
    pub fn sync(&mut self, seq: u64) -> Option<(Index, Term)> {
        assert!(seq <= self.seq_written);
        let mut last = None;
        while self.unsynced.first().is_some_and(|write| write.seq <= seq) {
            let write = self.unsynced.remove(0);
            apply(&mut self.durable, write.hard_state, &write.entries);
            if let Some(entry) = write.entries.last() {
                last = Some((entry.index, entry.term));
            }
        }
        self.seq_durable = self.seq_durable.max(seq);
        last
    }

    /// Power loss: what is left on disk. A random prefix of the unsynced writes reached the
    /// disk; the next one may have been torn (a prefix of its entries survives, the cut one
    /// dropped by recovery) and its hard state may or may not have landed.
    pub fn crash(&self, prng: &mut Prng) -> SimStorage {
        let survived = prng.below(self.unsynced.len() as u64 + 1) as usize;
        self.crash_keeping(survived, true, prng)
    }

    /// Power loss where exactly the first `survived` unsynced writes reached the disk (and the
    /// next one, if `tear`, may be torn).
    pub fn crash_keeping(&self, survived: usize, tear: bool, prng: &mut Prng) -> SimStorage {
        let mut disk = self.durable.clone();
        let survived = survived.min(self.unsynced.len());
        for write in &self.unsynced[..survived] {
            apply(&mut disk, write.hard_state, &write.entries);
        }
        if let Some(torn) = self.unsynced.get(survived).filter(|_| tear) {
            let kept = prng.below(torn.entries.len() as u64 + 1) as usize;
            let hard_state = if prng.chance(500_000) { torn.hard_state } else { None };
            apply(&mut disk, hard_state, &torn.entries[..kept]);
        }
        // What recovery read back is treated as durable from here on.
        SimStorage { view: disk.clone(), durable: disk, unsynced: Vec::new(), seq_written: 0, seq_durable: 0 }
    }

    pub fn all_entries(&self) -> &[Entry] {
        self.view.all_entries()
    }

    /// Compaction after the state machine applied `index` (always durable: applied entries
    /// are). The snapshot file is written, synced and renamed into place before the log is cut.
    pub fn compact(&mut self, index: Index, membership: Membership, data: Payload) {
        assert!(self.durable.last_index() >= index);
        self.view.compact(index, membership.clone(), data.clone());
        self.durable.compact(index, membership, data);
    }

    /// A snapshot from the leader, installed atomically and durably; the writes before it are
    /// synced first (the install is a barrier, as the durable log's would be).
    pub fn install(&mut self, snapshot: Snapshot) {
        for write in std::mem::take(&mut self.unsynced) {
            apply(&mut self.durable, write.hard_state, &write.entries);
        }
        self.seq_durable = self.seq_written;
        self.view.install(snapshot.clone());
        self.durable.install(snapshot);
    }
}

impl Default for SimStorage {
    fn default() -> SimStorage {
        SimStorage::new()
    }
}

fn apply(storage: &mut MemStorage, hard_state: Option<HardState>, entries: &[Entry]) {
    if let Some(hard_state) = hard_state {
        storage.set_hard_state(hard_state);
    }
    storage.append(entries);
}

impl Storage for SimStorage {
    fn hard_state(&self) -> HardState {
        self.view.hard_state()
    }
    fn snapshot_meta(&self) -> SnapshotMeta {
        self.view.snapshot_meta()
    }
    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.view.snapshot()
    }
    fn first_index(&self) -> Index {
        self.view.first_index()
    }
    fn last_index(&self) -> Index {
        self.view.last_index()
    }
    fn term(&self, index: Index) -> Result<Term, StorageError> {
        self.view.term(index)
    }
    fn entries(&self, lo: Index, hi: Index, out: &mut Vec<Entry>) -> Result<(), StorageError> {
        self.view.entries(lo, hi, out)
    }
    fn last_conf_entry(&self, lo: Index, hi: Index) -> Option<Entry> {
        self.view.last_conf_entry(lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryKind;

    fn entries(first: Index, term: Term, count: u64) -> Vec<Entry> {
        (first..first + count).map(|index| Entry { term, index, kind: EntryKind::Normal, payload: vec![].into() }).collect()
    }

    fn hard_state(term: Term) -> Option<HardState> {
        Some(HardState { term, vote: Some(1) })
    }

    #[test]
    fn a_crash_keeps_the_synced_writes_and_a_prefix_of_the_rest() {
        let mut seen_lengths = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut disk = SimStorage::new();
            disk.write(hard_state(1), &entries(1, 1, 2));
            disk.sync(1);
            disk.write(hard_state(2), &entries(3, 2, 3));
            disk.write(None, &entries(6, 2, 3));
            let after = disk.crash(&mut Prng::new(seed));
            let last = after.last_index();
            // Synced: entries 1..=2 and term 1 always survive; nothing beyond what was written.
            assert!((2..=8).contains(&last), "seed {seed}: {last}");
            assert!(after.hard_state().term >= 1);
            // A prefix: contiguous, and no later write without the earlier one.
            assert_eq!(after.all_entries().len() as Index, last);
            seen_lengths.insert(last);
        }
        // Whole writes lost, kept, and torn in the middle all happen.
        assert!(seen_lengths.contains(&2));
        assert!(seen_lengths.contains(&8));
        assert!(seen_lengths.iter().any(|&l| l != 2 && l != 5 && l != 8));
    }

    #[test]
    fn a_crash_losing_everything_unsynced_keeps_exactly_the_durable_state() {
        let mut disk = SimStorage::new();
        disk.write(hard_state(1), &entries(1, 1, 2));
        disk.sync(1);
        disk.write(hard_state(3), &entries(2, 3, 2));
        let after = disk.crash_keeping(0, false, &mut Prng::new(1));
        assert_eq!(after.hard_state(), HardState { term: 1, vote: Some(1) });
        assert_eq!(after.all_entries(), &entries(1, 1, 2)[..]);
    }
}
