//! A group's log as the core sees it: the storage (everything handed out in earlier `Ready`s)
//! followed by the entries not yet handed out, with the commit, apply and durability marks.

use crate::storage::{SnapshotMeta, Storage, StorageError};
use crate::types::{Entry, EntryKind, Index, Term};

pub struct RaftLog<S: Storage> {
    pub storage: S,
    /// Entries from `unstable_offset` on, not yet handed out. Storage entries at or after
    /// `unstable_offset` are a conflicting suffix that the next `Ready` replaces.
    unstable: Vec<Entry>,
    unstable_offset: Index,
    /// A snapshot received but not yet handed out: the log starts after it.
    pending_snapshot: Option<SnapshotMeta>,
    /// Highest index known to be on a quorum; never decreases.
    pub committed: Index,
    /// Highest index handed to the state machine.
    pub applied: Index,
    /// Highest index whose entry, and every one before it, is durable in this node's log as it
    /// is now (a truncation lowers it: the durable entries beyond the cut are no longer ours).
    pub persisted: Index,
}

impl<S: Storage> RaftLog<S> {
    pub fn new(storage: S) -> RaftLog<S> {
        let snapshot: SnapshotMeta = storage.snapshot_meta();
        let last = storage.last_index();
        assert!(storage.first_index() == snapshot.index + 1);
        assert!(last >= snapshot.index);
        // What storage shows at start-up was read back from disk, so it is durable.
        RaftLog {
            storage,
            unstable: Vec::new(),
            unstable_offset: last + 1,
            pending_snapshot: None,
            committed: snapshot.index,
            applied: snapshot.index,
            persisted: last,
        }
    }

    pub fn last_index(&self) -> Index {
        match self.unstable.last() {
            Some(entry) => entry.index,
            None => self.unstable_offset - 1,
        }
    }

    pub fn last_term(&self) -> Term {
        let last = self.last_index();
        self.term(last).unwrap_or_else(|| panic!("last entry {last} has no term"))
    }

    /// The term of entry `index`, or None if it is beyond the log, compacted or unavailable.
    pub fn term(&self, index: Index) -> Option<Term> {
        let snapshot = self.snapshot_meta();
        if index == snapshot.index {
            return Some(snapshot.term);
        }
        if index < snapshot.index || index > self.last_index() {
            return None;
        }
        if index >= self.unstable_offset {
            return Some(self.unstable[(index - self.unstable_offset) as usize].term);
        }
        self.storage.term(index).ok()
    }

    /// The last configuration entry in `(lo, hi]` (`lo` at or after the snapshot): among the
    /// entries not yet handed out, else from storage, which always knows its own.
    pub fn last_conf_entry(&self, lo: Index, hi: Index) -> Option<Entry> {
        assert!(lo >= self.snapshot_meta().index && hi <= self.last_index());
        if hi >= self.unstable_offset {
            let from = lo.max(self.unstable_offset - 1) + 1;
            let found = (from..=hi).rev().map(|i| &self.unstable[(i - self.unstable_offset) as usize]).find(|e| e.kind == EntryKind::ConfChange);
            if let Some(entry) = found {
                return Some(entry.clone());
            }
        }
        // Storage entries at or after `unstable_offset` are a suffix the next `Ready` replaces.
        let stable_hi = hi.min(self.unstable_offset - 1).min(self.storage.last_index());
        if lo >= stable_hi {
            return None;
        }
        self.storage.last_conf_entry(lo, stable_hi)
    }

    /// Where the log starts (a received snapshot counts before the driver installed it).
    pub fn snapshot_meta(&self) -> SnapshotMeta {
        self.pending_snapshot.unwrap_or_else(|| self.storage.snapshot_meta())
    }

    pub fn matches(&self, index: Index, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Raft §5.4.1: a log is at least as up to date as ours if its last term is higher, or
    /// equal with an index at least ours.
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        let our_term = self.last_term();
        last_term > our_term || (last_term == our_term && last_index >= self.last_index())
    }

    /// Entries `lo..hi`, at most `bytes_max` payload bytes but always at least one.
    pub fn entries(&self, lo: Index, hi: Index, bytes_max: usize) -> Result<Vec<Entry>, StorageError> {
        assert!(lo >= 1);
        assert!(lo <= hi);
        assert!(hi <= self.last_index() + 1);
        if lo <= self.snapshot_meta().index {
            return Err(StorageError::Compacted { index: lo });
        }
        let mut out = Vec::with_capacity((hi - lo) as usize);
        let stable_hi = hi.min(self.unstable_offset);
        if lo < stable_hi {
            self.storage.entries(lo, stable_hi, &mut out)?;
        }
        let unstable_lo = lo.max(self.unstable_offset);
        if unstable_lo < hi {
            let from = (unstable_lo - self.unstable_offset) as usize;
            let to = (hi - self.unstable_offset) as usize;
            out.extend_from_slice(&self.unstable[from..to]);
        }
        assert!(out.len() == (hi - lo) as usize);
        let mut bytes = 0;
        let mut keep = 0;
        for entry in &out {
            bytes += entry.payload.len();
            if keep > 0 && bytes > bytes_max {
                break;
            }
            keep += 1;
        }
        out.truncate(keep);
        Ok(out)
    }

    /// Appends entries that follow the last one (a leader's proposals).
    pub fn append(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            assert!(entry.index == self.last_index() + 1);
            assert!(entry.term >= self.last_term());
            self.unstable.push(entry);
        }
    }

    /// A follower's AppendEntries, already checked to match at `entries[0].index - 1`. Skips the
    /// entries we already have, cuts our log at the first conflict and appends the rest.
    /// Returns the index of the last entry the message carried, and where the log was cut.
    pub fn append_after_match(&mut self, entries: Vec<Entry>) -> (Index, Option<Index>) {
        let Some(first) = entries.first() else { unreachable!("append_after_match with no entries") };
        let last_new = first.index + entries.len() as Index - 1;
        let conflict = entries.iter().position(|entry| !self.matches(entry.index, entry.term));
        let Some(conflict) = conflict else { return (last_new, None) };
        let conflict_index = entries[conflict].index;
        // Raft's log matching and leader completeness: a committed entry never conflicts.
        assert!(conflict_index > self.committed);
        self.truncate_from(conflict_index);
        self.append(entries.into_iter().skip(conflict).collect());
        (last_new, Some(conflict_index))
    }

    fn truncate_from(&mut self, index: Index) {
        assert!(index >= 1);
        assert!(index <= self.last_index() + 1);
        if index >= self.unstable_offset {
            self.unstable.truncate((index - self.unstable_offset) as usize);
        } else {
            self.unstable.clear();
            self.unstable_offset = index;
        }
        self.persisted = self.persisted.min(index - 1);
    }

    /// A snapshot from the leader replaces the log (every entry we had is at or below its index,
    /// or unknown to be committed: Raft §7 discards the whole log in that case).
    pub fn restore(&mut self, meta: SnapshotMeta) {
        assert!(meta.index > self.committed);
        self.unstable.clear();
        self.unstable_offset = meta.index + 1;
        self.pending_snapshot = Some(meta);
        self.committed = meta.index;
        self.applied = meta.index;
        self.persisted = meta.index;
    }

    /// Hands a restored snapshot to the driver, which installs it before the entries.
    pub fn take_snapshot(&mut self) -> Option<SnapshotMeta> {
        self.pending_snapshot.take()
    }

    /// Hands the unstable entries to the driver, which writes them to storage (and shows them
    /// through it) before the next call into the node.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        let taken = std::mem::take(&mut self.unstable);
        self.unstable_offset = self.last_index_after_take(&taken);
        taken
    }

    fn last_index_after_take(&self, taken: &[Entry]) -> Index {
        match taken.last() {
            Some(entry) => entry.index + 1,
            None => self.unstable_offset,
        }
    }

    /// What storage must show after the driver wrote everything handed out.
    pub fn expected_storage_last(&self) -> Index {
        assert!(self.unstable.is_empty());
        self.unstable_offset - 1
    }

    /// The driver's write of entries up to `index` (with term `term`) is durable. A stale
    /// acknowledgement (the entry was replaced since) is ignored.
    pub fn persisted_to(&mut self, index: Index, term: Term) {
        if index < self.unstable_offset && self.matches(index, term) && index > self.persisted {
            self.persisted = index;
        }
    }

    pub fn commit_to(&mut self, index: Index) {
        if index > self.committed {
            assert!(index <= self.last_index());
            self.committed = index;
        }
    }

    /// Committed entries that may be applied: only durable ones here, so a node never applies
    /// an entry that a crash could take back from its own log.
    pub fn next_to_apply(&self, count_max: usize) -> Vec<Entry> {
        let hi = self.committed.min(self.persisted);
        if hi <= self.applied {
            return Vec::new();
        }
        let hi = hi.min(self.applied + count_max as Index);
        // Unavailable now (a durable log's evicted tail): applied on a later `Ready`.
        self.entries(self.applied + 1, hi + 1, usize::MAX).unwrap_or_default()
    }

    /// etcd's findConflictByTerm: the last index at or below `index` whose term is at most
    /// `term`, and that term.
    pub fn find_conflict_by_term(&self, index: Index, term: Term) -> (Index, Term) {
        let mut index = index.min(self.last_index());
        loop {
            match self.term(index) {
                Some(our_term) if our_term <= term => return (index, our_term),
                Some(_) if index > 0 => index -= 1,
                // Below the snapshot: the hint cannot be refined further.
                _ => return (index, 0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
    use crate::types::EntryKind;

    fn entry(index: Index, term: Term) -> Entry {
        Entry { term, index, kind: EntryKind::Normal, payload: vec![index as u8, term as u8].into() }
    }

    /// A log whose storage holds `stored` (terms of entries 1..) and which then appended
    /// `unstable` (terms of the following entries) without handing them out.
    fn log(stored: &[Term], unstable: &[Term]) -> RaftLog<MemStorage> {
        let mut storage = MemStorage::new();
        let entries: Vec<Entry> = stored.iter().enumerate().map(|(i, &t)| entry(i as Index + 1, t)).collect();
        storage.append(&entries);
        let mut log = RaftLog::new(storage);
        let base = stored.len() as Index;
        log.append(unstable.iter().enumerate().map(|(i, &t)| entry(base + i as Index + 1, t)).collect());
        log
    }

    fn terms(log: &RaftLog<MemStorage>) -> Vec<Term> {
        log.entries(1, log.last_index() + 1, usize::MAX).map(|es| es.iter().map(|e| e.term).collect()).unwrap_or_default()
    }

    #[test]
    fn reads_span_storage_and_unstable() {
        let log = log(&[1, 1, 2], &[2, 3]);
        assert_eq!(log.last_index(), 5);
        assert_eq!(log.last_term(), 3);
        assert_eq!((log.term(0), log.term(3), log.term(4), log.term(6)), (Some(0), Some(2), Some(2), None));
        assert_eq!(terms(&log), vec![1, 1, 2, 2, 3]);
        // The byte limit keeps at least one entry.
        assert_eq!(log.entries(2, 6, 1).map(|es| es.len()), Ok(1));
        assert_eq!(log.entries(2, 6, 4).map(|es| es.len()), Ok(2));
        // Up to date: a higher last term wins, then a longer log.
        assert!(log.is_up_to_date(1, 4));
        assert!(log.is_up_to_date(5, 3));
        assert!(!log.is_up_to_date(4, 3));
        assert!(!log.is_up_to_date(9, 2));
    }

    struct ConflictCase {
        stored: &'static [Term],
        unstable: &'static [Term],
        /// Appended after a match: first index and terms.
        first: Index,
        new: &'static [Term],
        expected: &'static [Term],
        persisted: Index,
    }

    #[test]
    fn a_conflict_cuts_into_storage_and_lowers_the_persisted_mark() {
        let cases = [
            ConflictCase { stored: &[1, 1, 1], unstable: &[], first: 2, new: &[1, 1], expected: &[1, 1, 1], persisted: 3 },
            ConflictCase { stored: &[1, 1, 1], unstable: &[], first: 3, new: &[2], expected: &[1, 1, 2], persisted: 2 },
            ConflictCase { stored: &[1, 1, 1], unstable: &[1], first: 2, new: &[2, 2, 2], expected: &[1, 2, 2, 2], persisted: 1 },
            ConflictCase { stored: &[1], unstable: &[1, 1], first: 3, new: &[2], expected: &[1, 1, 2], persisted: 1 },
        ];
        for case in cases {
            let mut log = log(case.stored, case.unstable);
            let entries = case.new.iter().enumerate().map(|(i, &t)| entry(case.first + i as Index, t)).collect();
            log.append_after_match(entries);
            assert_eq!(terms(&log), case.expected, "{:?} {:?} {:?}", case.stored, case.unstable, case.new);
            assert_eq!(log.persisted, case.persisted, "{:?} {:?} {:?}", case.stored, case.unstable, case.new);
        }
    }

    #[test]
    fn stale_persistence_acknowledgements_are_ignored() {
        let mut log = log(&[1], &[1, 1]);
        let handed = log.take_unstable();
        log.storage.append(&handed);
        log.persisted_to(3, 1);
        assert_eq!(log.persisted, 3);
        // Entries 2..=3 replaced by term 2: an acknowledgement of the old write means nothing.
        log.append_after_match(vec![entry(2, 2), entry(3, 2)]);
        assert_eq!(log.persisted, 1);
        log.persisted_to(3, 1);
        assert_eq!(log.persisted, 1);
        let handed = log.take_unstable();
        log.storage.append(&handed);
        log.persisted_to(3, 2);
        assert_eq!(log.persisted, 3);
    }

    #[test]
    fn apply_waits_for_local_durability() {
        let mut log = log(&[1], &[1, 1]);
        log.commit_to(3);
        assert_eq!(log.next_to_apply(10).len(), 1, "only entry 1 is durable here");
        let handed = log.take_unstable();
        log.storage.append(&handed);
        log.persisted_to(3, 1);
        assert_eq!(log.next_to_apply(10).len(), 3);
        assert_eq!(log.next_to_apply(2).len(), 2);
    }

    #[test]
    fn conflict_hints_skip_whole_terms() {
        let log = log(&[1, 1, 2, 2, 2, 4, 4], &[]);
        for ((index, term), expected) in [((7, 3), (5, 2)), ((7, 4), (7, 4)), ((5, 1), (2, 1)), ((9, 2), (5, 2)), ((3, 0), (0, 0))] {
            assert_eq!(log.find_conflict_by_term(index, term), expected, "{index} {term}");
        }
    }
}
