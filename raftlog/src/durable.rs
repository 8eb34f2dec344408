//! `DurableStorage`: one group's log on the core's shared segment log (the engine store's Raft
//! records, engine/src/store/raft.rs).
//!
//! The core reads storage synchronously, so every term and the recent tail of entries live in
//! memory; the store holds every live entry durably. `stage` applies a `Ready` to the in-memory
//! view at once (the core's contract: storage *shows* what the last `Ready` handed out) and
//! queues the records the driver writes, with every other group's, in one store batch.
//!
//! Entries older than the cached tail answer `Unavailable`: the storage remembers the request
//! with the lowest start, and the driver reads that run from the store (`fetch`, at most
//! `FETCH_ENTRIES_MAX`, into a side buffer the next fetch replaces) after the turn's write; the
//! core retries (apply on a later `Ready`, replication on the next heartbeat answer). One run at
//! a time keeps memory bounded; a follower far behind and a lagging apply take turns.
//!
//! Snapshots: `compact` (the state machine's image at an applied index) and `install` (one
//! received from the leader) write a `Compact` record holding the snapshot's membership and
//! image, after which the store drops the entries it covers; `open` starts the log after it.
//! The image must fit one store record (`snapshot_bytes_max`); larger state machines (a
//! placement group's objects) will describe rather than carry their image.

use std::cell::Cell;
use std::collections::VecDeque;

use engine::Env;
use engine::store::{RaftHardState, RaftRecord, Store, StoreError};

use crate::membership::Membership;
use crate::storage::{Snapshot, SnapshotMeta, Storage, StorageError};
use crate::types::{Entry, EntryKind, GroupId, HardState, Index, Payload, Term};

/// Entries kept in memory behind the last one, however far apply lags: the synchronous tail.
pub const CACHED_ENTRIES_MAX: usize = 4096;
/// Entries read back per group at open: a core holds many groups, and reading each one's whole
/// cached tail would make start-up read `groups × CACHED_ENTRIES_MAX` frames; older ones come
/// through `fetch` when the core asks.
pub const OPEN_CACHED_ENTRIES: usize = 64;
const _: () = assert!(OPEN_CACHED_ENTRIES <= CACHED_ENTRIES_MAX);
/// Entries one `fetch` reads from the store: at least the most the core asks for at once (a
/// batch to apply, an AppendEntries message), so any one request can be met.
pub const FETCH_ENTRIES_MAX: usize = 1024;
const _: () = assert!(FETCH_ENTRIES_MAX <= CACHED_ENTRIES_MAX);
const _: () = assert!(FETCH_ENTRIES_MAX >= crate::config::APPLY_BATCH_MAX);
const _: () = assert!(FETCH_ENTRIES_MAX >= crate::config::APPEND_ENTRIES_MAX);

/// A record queued for the driver's next store batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Staged {
    Truncate { from_index: Index },
    Entry(Entry),
    HardState { state: HardState, commit: Index },
    /// The log up to the snapshot's index is replaced by the snapshot.
    Compact { meta: SnapshotMeta, membership: Vec<u8>, data: Payload },
}

pub struct DurableStorage {
    group: GroupId,
    hard_state: HardState,
    /// The latest snapshot (index 0: none); the log starts after it.
    snapshot: Snapshot,
    /// Term of every live entry, from `snapshot.meta.index + 1`.
    terms: Vec<Term>,
    /// Entries `cache_first..=last_index()`.
    cache: VecDeque<Entry>,
    /// The request (lo..hi) with the lowest `lo` that memory could not meet.
    wanted: Cell<Option<(Index, Index)>>,
    /// A run of older entries read back for such a request: `fetched_first..` (replaced by the
    /// next fetch, dropped by a truncation).
    fetched: Vec<Entry>,
    fetched_first: Index,
    staged: Vec<Staged>,
    /// Conflicting suffixes dropped (Truncate records staged), for tests and stats.
    truncations: u64,
    /// Every configuration entry after the snapshot, oldest first: kept whatever the cached
    /// tail holds (`Storage::last_conf_entry`). Few: one per membership change.
    confs: Vec<Entry>,
}

fn kind_byte(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Noop => 0,
        EntryKind::Normal => 1,
        EntryKind::ConfChange => 2,
    }
}

fn kind_of(meta: &[u8]) -> Option<EntryKind> {
    match meta {
        [0] => Some(EntryKind::Noop),
        [1] => Some(EntryKind::Normal),
        [2] => Some(EntryKind::ConfChange),
        _ => None,
    }
}

impl DurableStorage {
    /// Rebuilds group `group`'s storage from what the store recovered: every term, the hard
    /// state, and the last `OPEN_CACHED_ENTRIES` entries read back (each verified by the store).
    /// Everything shown here was synced, so the core may treat it as persisted.
    pub async fn open<E: Env>(store: &Store<E>, group: GroupId) -> Result<DurableStorage, StoreError> {
        let mut storage = DurableStorage::empty(group);
        let Some(durable) = store.raft_group(group) else { return Ok(storage) };
        if let Some(hs) = durable.hard_state {
            storage.hard_state = HardState { term: hs.term, vote: (hs.vote != 0).then_some(hs.vote) };
        }
        if let Some((c, record)) = store.read_raft_compacted(group).await? {
            let corrupt = |what: &str| StoreError::Corrupt {
                path: "raft log".into(),
                offset: 0,
                what: format!("group {group} snapshot at {}: {what}", c.index),
            };
            let membership = Membership::decode(record.meta()).ok_or_else(|| corrupt("its membership does not decode"))?;
            let meta = SnapshotMeta { index: c.index, term: c.term };
            storage.snapshot = Snapshot { meta, membership, data: record.data().into() };
        }
        for (n, (index, entry)) in durable.entries.iter().enumerate() {
            // The store keeps the log contiguous after its compaction point.
            assert_eq!(index, storage.snapshot.meta.index + n as Index + 1, "group {group}: the durable log must follow its snapshot");
            storage.terms.push(entry.term);
            if kind_of(&[entry.kind]) == Some(EntryKind::ConfChange) {
                storage.confs.push(read_entry(store, group, index).await?);
            }
        }
        let last = storage.last_index();
        let first_cached = last.saturating_sub(OPEN_CACHED_ENTRIES as Index).max(storage.snapshot.meta.index) + 1;
        for index in first_cached..=last {
            storage.cache.push_back(read_entry(store, group, index).await?);
        }
        Ok(storage)
    }

    fn empty(group: GroupId) -> DurableStorage {
        DurableStorage {
            group,
            hard_state: HardState::default(),
            snapshot: Snapshot::default(),
            terms: Vec::new(),
            cache: VecDeque::new(),
            wanted: Cell::new(None),
            fetched: Vec::new(),
            fetched_first: 0,
            staged: Vec::new(),
            truncations: 0,
            confs: Vec::new(),
        }
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    fn cache_first(&self) -> Index {
        self.last_index() + 1 - self.cache.len() as Index
    }

    /// The most image bytes a snapshot may carry: what fits one store record beside its
    /// description.
    pub fn snapshot_bytes_max<E: Env>(store: &Store<E>) -> usize {
        store.batch_bytes() - engine::store::record::HEADER_BYTES - SNAPSHOT_META_BYTES_MAX
    }

    /// Applies one `Ready`'s hard state and entries to the view at once and queues them for the
    /// driver's batch: a conflicting suffix first as a Truncate, then the entries, then the hard
    /// state (with `commit`, for tools; the core relearns commit from the leader).
    pub fn stage(&mut self, hard_state: Option<HardState>, entries: &[Entry], commit: Index) {
        if let Some(first) = entries.first() {
            assert!(first.index >= 1);
            assert!(first.index <= self.last_index() + 1, "entries must continue or overwrite the log");
            if first.index <= self.last_index() {
                self.staged.push(Staged::Truncate { from_index: first.index });
                self.fetched.clear();
                self.truncations += 1;
                let keep = (first.index - self.cache_first().min(first.index)) as usize;
                self.cache.truncate(keep);
                assert!(first.index > self.snapshot.meta.index, "a conflicting suffix never reaches into the snapshot");
                self.terms.truncate((first.index - self.snapshot.meta.index - 1) as usize);
                self.confs.retain(|e| e.index < first.index);
            }
            for entry in entries {
                assert_eq!(entry.index, self.last_index() + 1);
                self.terms.push(entry.term);
                if entry.kind == EntryKind::ConfChange {
                    self.confs.push(entry.clone());
                }
                self.cache.push_back(entry.clone());
                self.staged.push(Staged::Entry(entry.clone()));
            }
        }
        if let Some(state) = hard_state {
            assert!(state.term >= self.hard_state.term);
            self.hard_state = state;
            self.staged.push(Staged::HardState { state, commit });
        }
        self.trim(CACHED_ENTRIES_MAX);
    }

    /// The log through `index` (applied by the state machine, whose image at `index` is `data`)
    /// is replaced by a snapshot with `membership`, the configuration in force there.
    pub fn compact(&mut self, index: Index, membership: Membership, data: Payload) {
        assert!(index > self.snapshot.meta.index, "group {}: compaction at {index} does not move forward", self.group);
        assert!(index <= self.last_index());
        let term = self.term(index).unwrap_or_else(|e| unreachable!("every live entry's term is in memory: {e}"));
        let meta = SnapshotMeta { index, term };
        self.terms.drain(..(index - self.snapshot.meta.index) as usize);
        self.drop_cached_through(index);
        self.confs.retain(|e| e.index > index);
        self.staged.push(Staged::Compact { meta, membership: membership.encode(), data: data.clone() });
        self.snapshot = Snapshot { meta, membership, data };
    }

    /// A snapshot received from the leader replaces the whole log.
    pub fn install(&mut self, snapshot: Snapshot) {
        assert!(snapshot.meta.index > self.snapshot.meta.index, "group {}: an installed snapshot moves forward", self.group);
        if self.last_index() > self.snapshot.meta.index {
            self.staged.push(Staged::Truncate { from_index: self.snapshot.meta.index + 1 });
            self.truncations += 1;
        }
        self.terms.clear();
        self.cache.clear();
        self.fetched.clear();
        self.confs.clear();
        let data = snapshot.data.clone();
        self.staged.push(Staged::Compact { meta: snapshot.meta, membership: snapshot.membership.encode(), data });
        self.snapshot = snapshot;
    }

    fn drop_cached_through(&mut self, index: Index) {
        while self.cache.front().is_some_and(|e| e.index <= index) {
            self.cache.pop_front();
        }
        if self.fetched_first <= index {
            self.fetched.clear();
        }
    }

    /// Drops cached entries beyond `keep` behind the last one (they stay in the store).
    fn trim(&mut self, keep: usize) {
        while self.cache.len() > keep {
            self.cache.pop_front();
        }
    }

    /// Whether records wait for the driver's batch.
    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    /// The queued records; the driver writes them (with other groups') in one batch.
    pub fn take_staged(&mut self) -> Vec<Staged> {
        std::mem::take(&mut self.staged)
    }

    /// Reads the entries of the lowest request memory could not meet (the part below the
    /// cached tail, at most `FETCH_ENTRIES_MAX`) into the fetched run; the core's retry finds
    /// them there.
    pub async fn fetch<E: Env>(&mut self, store: &Store<E>) -> Result<usize, StoreError> {
        let Some((lo, hi)) = self.wanted.take() else { return Ok(0) };
        let first = self.cache_first();
        let hi = hi.min(first).min(lo + FETCH_ENTRIES_MAX as Index);
        if lo >= hi {
            return Ok(0);
        }
        let mut run = Vec::with_capacity((hi - lo) as usize);
        for index in lo..hi {
            run.push(read_entry(store, self.group, index).await?);
        }
        // Only a `stage` changes the log, and the driver never stages while it fetches.
        assert_eq!(self.cache_first(), first);
        self.fetched = run;
        self.fetched_first = lo;
        Ok((hi - lo) as usize)
    }

    /// Whether `lo..hi` can be served from memory: all in the cached tail, or starting in the
    /// fetched run and continuing (if it must) straight into the tail.
    fn in_memory(&self, lo: Index, hi: Index) -> bool {
        let first = self.cache_first();
        if lo >= first {
            return true;
        }
        let run_end = self.fetched_first + self.fetched.len() as Index;
        lo >= self.fetched_first && lo < run_end && (hi <= run_end || run_end >= first)
    }

    /// Whether the core asked for an entry that is not in memory.
    pub fn wants_fetch(&self) -> bool {
        self.wanted.get().is_some()
    }

    pub fn truncations(&self) -> u64 {
        self.truncations
    }

    /// Entries cached in memory (for tests and stats).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    fn want(&self, lo: Index, hi: Index) {
        if self.wanted.get().is_none_or(|(w, _)| lo < w) {
            self.wanted.set(Some((lo, hi)));
        }
    }
}

/// Room left in a snapshot's record for its membership (and the key field).
const SNAPSHOT_META_BYTES_MAX: usize = 4096;

/// The store record of a queued one; `kind` (from `kind_meta`) is the entry's metadata.
pub fn record_of<'a>(group: GroupId, staged: &'a Staged, kind: &'a [u8; 1]) -> RaftRecord<'a> {
    match staged {
        Staged::Compact { meta, membership, data } => {
            RaftRecord::Compact { group, index: meta.index, term: meta.term, meta: membership, data }
        }
        Staged::Truncate { from_index } => RaftRecord::Truncate { group, from_index: *from_index },
        Staged::Entry(entry) => RaftRecord::Entry { group, term: entry.term, index: entry.index, meta: kind, data: &entry.payload },
        Staged::HardState { state, commit } => {
            RaftRecord::HardState { group, state: RaftHardState { term: state.term, vote: state.vote.unwrap_or(0), commit: *commit } }
        }
    }
}

/// The kind byte stored as an entry's metadata.
pub fn kind_meta(staged: &Staged) -> [u8; 1] {
    match staged {
        Staged::Entry(entry) => [kind_byte(entry.kind)],
        _ => [0],
    }
}

async fn read_entry<E: Env>(store: &Store<E>, group: GroupId, index: Index) -> Result<Entry, StoreError> {
    let corrupt =
        |what: &str| StoreError::Corrupt { path: "raft log".into(), offset: 0, what: format!("group {group} entry {index}: {what}") };
    let (term, object) = store.read_raft_entry(group, index).await?.ok_or_else(|| corrupt("not in the store"))?;
    let kind = kind_of(object.meta()).ok_or_else(|| corrupt("unknown entry kind"))?;
    Ok(Entry { term, index, kind, payload: object.data().into() })
}

impl Storage for DurableStorage {
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
        self.snapshot.meta.index + self.terms.len() as Index
    }

    fn term(&self, index: Index) -> Result<Term, StorageError> {
        crate::storage::term_after_snapshot(self.snapshot.meta, index, |i| self.terms.get(i).copied())
    }

    fn last_conf_entry(&self, lo: Index, hi: Index) -> Option<Entry> {
        assert!(lo >= self.snapshot.meta.index && hi <= self.last_index());
        self.confs.iter().rev().find(|e| e.index > lo && e.index <= hi).cloned()
    }

    fn entries(&self, lo: Index, hi: Index, out: &mut Vec<Entry>) -> Result<(), StorageError> {
        assert!(lo >= 1);
        assert!(lo <= hi);
        if lo <= self.snapshot.meta.index {
            return Err(StorageError::Compacted { index: lo });
        }
        if hi > self.last_index() + 1 {
            return Err(StorageError::Unavailable { index: hi - 1 });
        }
        if !self.in_memory(lo, hi) {
            self.want(lo, hi);
            return Err(StorageError::Unavailable { index: lo });
        }
        let first = self.cache_first();
        let run_hi = hi.min(first);
        if lo < run_hi {
            let at = (lo - self.fetched_first) as usize;
            out.extend_from_slice(&self.fetched[at..at + (run_hi - lo) as usize]);
        }
        let cache_lo = lo.max(first);
        if cache_lo < hi {
            out.extend(self.cache.range((cache_lo - first) as usize..(hi - first) as usize).cloned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: Index, term: Term) -> Entry {
        Entry { term, index, kind: EntryKind::Normal, payload: index.to_le_bytes().to_vec().into() }
    }

    fn entries(lo: Index, hi: Index, term: Term) -> Vec<Entry> {
        (lo..hi).map(|i| entry(i, term)).collect()
    }

    /// What `entries(lo, hi)` answers: the indexes served, or the index reported unavailable.
    fn check(storage: &DurableStorage, lo: Index, hi: Index, expected: Result<(Index, Index), Index>) {
        let mut out = Vec::new();
        let got = storage.entries(lo, hi, &mut out).map(|()| (out.first().map_or(lo, |e| e.index), out.len() as Index));
        let expected = expected.map_err(|index| StorageError::Unavailable { index });
        assert_eq!(got, expected, "entries({lo}, {hi})");
        for (k, e) in out.iter().enumerate() {
            assert_eq!(e.index, lo + k as Index);
        }
    }

    #[test]
    fn the_tail_stays_in_memory_and_older_requests_are_remembered() {
        let mut s = DurableStorage::empty(7);
        let n = CACHED_ENTRIES_MAX as Index + 1000;
        s.stage(Some(HardState { term: 1, vote: Some(1) }), &entries(1, n + 1, 1), 0);
        assert_eq!((s.last_index(), s.cached()), (n, CACHED_ENTRIES_MAX));
        assert_eq!(s.term(1), Ok(1), "every term stays in memory");
        check(&s, n - 10, n + 1, Ok((n - 10, 11)));
        check(&s, 1001, 1011, Ok((1001, 10)));
        assert!(!s.wants_fetch());
        check(&s, 500, 600, Err(500));
        check(&s, 900, 950, Err(900));
        check(&s, 300, 310, Err(300));
        assert_eq!(s.wanted.get(), Some((300, 310)), "the lowest request is fetched first");
        // A fetched run serves requests inside it, and ones running on into the tail.
        s.fetched = entries(990, 1001, 1);
        s.fetched_first = 990;
        check(&s, 990, 1001, Ok((990, 11)));
        check(&s, 995, 1010, Ok((995, 15)));
        check(&s, 980, 1000, Err(980));
        let staged = s.take_staged();
        assert_eq!(staged.len() as Index, n + 1, "every entry and the hard state are queued");
        assert!(matches!(staged.last(), Some(Staged::HardState { .. })));
    }

    #[test]
    fn a_conflicting_suffix_is_truncated_first() {
        let mut s = DurableStorage::empty(7);
        s.stage(None, &entries(1, 11, 1), 0);
        s.take_staged();
        s.fetched = entries(1, 3, 1);
        s.fetched_first = 1;
        s.stage(Some(HardState { term: 2, vote: None }), &entries(6, 8, 2), 3);
        assert_eq!(s.last_index(), 7);
        assert_eq!((s.term(5), s.term(6), s.term(8)), (Ok(1), Ok(2), Err(StorageError::Unavailable { index: 8 })));
        assert!(s.fetched.is_empty(), "a truncation drops the fetched run");
        let staged = s.take_staged();
        assert_eq!(staged[0], Staged::Truncate { from_index: 6 });
        assert_eq!(staged[1..3], [Staged::Entry(entry(6, 2)), Staged::Entry(entry(7, 2))]);
        assert_eq!(staged[3], Staged::HardState { state: HardState { term: 2, vote: None }, commit: 3 });
        assert_eq!(s.truncations(), 1);
        check(&s, 1, 8, Ok((1, 7)));
    }
}
