//! Raft records in the per-core log: what raftlog's durable storage writes through the store's
//! group commit, and the per-group view of them that the writer and recovery keep.
//!
//! Many Raft groups share a core's log, so one batch (one write, durable on completion) covers
//! every group's entries, truncations and hard states of a driver turn. The store never
//! interprets an entry's payload; it keeps, per group, where each live entry lies and the last
//! hard state, applying records in lsn order at the same place (`RaftIndex::apply`) whether the
//! batch was just written or is replayed at start-up. Byte layout: engine/docs/format.md, "Raft
//! records".

use std::collections::{BTreeMap, HashMap};

use super::index::Location;
use super::raft_entries::RaftEntries;
use super::record::Kind;

/// Bytes of a hard state record's data: `u64 vote` (0: none).
pub const HARD_STATE_DATA_BYTES: usize = 8;

/// One Raft record to append. All of a call's records go into one batch, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftRecord<'a> {
    /// Entry `index` of `group`. It must follow the group's last live entry (or start an empty
    /// log): a conflicting suffix goes first with `Truncate`.
    Entry { group: u64, term: u64, index: u64, meta: &'a [u8], data: &'a [u8] },
    /// Entries of `group` from `from_index` on are dropped.
    Truncate { group: u64, from_index: u64 },
    /// The group's term, vote (0: none) and commit index, superseding earlier ones.
    HardState { group: u64, state: RaftHardState },
    /// Entries of `group` through `index` (whose term is `term`) are in a snapshot of the state
    /// machine and leave the log; `meta` describes the snapshot (raftlog: its membership) and
    /// `data` is its image, if it fits one record (opaque to the store); both are kept until a
    /// later compaction supersedes them. `index` never goes back.
    Compact { group: u64, index: u64, term: u64, meta: &'a [u8], data: &'a [u8] },
}

impl RaftRecord<'_> {
    pub fn group(&self) -> u64 {
        match *self {
            RaftRecord::Entry { group, .. }
            | RaftRecord::Truncate { group, .. }
            | RaftRecord::HardState { group, .. }
            | RaftRecord::Compact { group, .. } => group,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftHardState {
    pub term: u64,
    /// 0: no vote.
    pub vote: u64,
    pub commit: u64,
}

/// The header fields a Raft frame carries (format.md: group, term, index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RaftTag {
    pub group: u64,
    pub term: u64,
    pub index: u64,
}

/// A live entry: its term, where its frame lies, and the first byte of its metadata (0 if it
/// has none). The store does not interpret that byte; raftlog writes the entry's kind there, so
/// it finds its configuration entries at start-up without reading every entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftEntryLoc {
    pub term: u64,
    pub at: Location,
    pub kind: u8,
}

/// Where a group's log was last compacted: entries through `index` (term `term`) are gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftCompacted {
    pub index: u64,
    pub term: u64,
    /// The `Compact` record (its metadata is the snapshot's description).
    pub at: Location,
}

/// One group's durable log as the store knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftGroup {
    /// Live entries by index: contiguous (each appended entry follows the last), after
    /// `compacted` if the log was compacted.
    pub entries: RaftEntries,
    pub hard_state: Option<RaftHardState>,
    /// Where the last hard state's frame lies.
    pub hard_state_at: Option<Location>,
    pub compacted: Option<RaftCompacted>,
}

impl RaftGroup {
    pub fn last_index(&self) -> Option<u64> {
        self.entries.last_index()
    }

    /// The index the next entry follows: the last entry's, else the compaction point's.
    pub fn log_end(&self) -> Option<u64> {
        self.last_index().or(self.compacted.map(|c| c.index))
    }
}

/// Every group's log on this core, and which segments its frames keep from being compacted.
///
/// A segment is held while it has a frame replay still needs that cannot move: a Truncate while
/// an older segment still holds entry frames (live or dead) it may supersede (copied forward,
/// it would land after entries it must not drop). Live entries, a group's last hard state and
/// its last compaction record keep their segment only until compaction copies them forward
/// (`entry_at`, `pinned_at`; an entry as a `RaftMove`), so an idle group does not keep an old
/// segment forever. Dead entries and superseded hard states and compactions hide nothing, so
/// dropping them with their segment leaves replay's result unchanged.
#[derive(Clone, Debug, Default)]
pub struct RaftIndex {
    groups: HashMap<u64, RaftGroup>,
    /// Live entries per segment: (entries, frame bytes).
    live_entries_by_segment: BTreeMap<u32, (u64, u64)>,
    /// Last hard states and last compaction records per segment.
    pins_by_segment: BTreeMap<u32, u64>,
    /// Every entry frame ever written per segment, live or not.
    entry_frames_by_segment: BTreeMap<u32, u64>,
    truncates_by_segment: BTreeMap<u32, u64>,
}

fn count_up(map: &mut BTreeMap<u32, u64>, segment: u32) {
    *map.entry(segment).or_default() += 1;
}

fn count_down(map: &mut BTreeMap<u32, u64>, segment: u32) {
    let n = map.get_mut(&segment).expect("a counted frame");
    *n -= 1;
    if *n == 0 {
        map.remove(&segment);
    }
}

fn live_up(map: &mut BTreeMap<u32, (u64, u64)>, at: Location) {
    let live = map.entry(at.segment).or_default();
    live.0 += 1;
    live.1 += at.frame_len as u64;
}

/// Takes `entries` live entries of `bytes` frame bytes off `segment`'s count.
fn live_down_by(map: &mut BTreeMap<u32, (u64, u64)>, segment: u32, entries: u64, bytes: u64) {
    let live = map.get_mut(&segment).expect("a live entry is counted");
    live.0 -= entries;
    live.1 -= bytes;
    if live.0 == 0 {
        assert_eq!(live.1, 0, "segment {segment}: no live entry left but bytes counted");
        map.remove(&segment);
    }
}

/// Takes the `dropped` entries off the live counts (an append replaces some, a compaction or a
/// truncation drops thousands at once): one map update per run of entries in the same segment,
/// which consecutive entries mostly share.
/// Dropping 2^18 entries took 14 ms on the core with one update each in a `BTreeMap`, 9.8 ms so;
/// with the ring buffer of `RaftEntries` the whole drop takes 1.4 ms.
fn live_down_all(map: &mut BTreeMap<u32, (u64, u64)>, dropped: impl Iterator<Item = Location>) {
    let mut run: Option<(u32, u64, u64)> = None;
    for at in dropped {
        match &mut run {
            Some((segment, entries, bytes)) if *segment == at.segment => {
                *entries += 1;
                *bytes += at.frame_len as u64;
            }
            _ => {
                if let Some((segment, entries, bytes)) = run.replace((at.segment, 1, at.frame_len as u64)) {
                    live_down_by(map, segment, entries, bytes);
                }
            }
        }
    }
    if let Some((segment, entries, bytes)) = run {
        live_down_by(map, segment, entries, bytes);
    }
}

/// Whether an entry at `index` may follow a group whose last live entry is `last`.
pub(super) fn entry_follows(last: Option<u64>, index: u64) -> bool {
    match last {
        None => index >= 1,
        Some(last) => index == last + 1,
    }
}

impl RaftIndex {
    pub fn group(&self, group: u64) -> Option<&RaftGroup> {
        self.groups.get(&group)
    }

    pub fn groups(&self) -> impl Iterator<Item = (&u64, &RaftGroup)> {
        self.groups.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Whether segment `id` holds a Raft frame replay still needs and compaction cannot move
    /// (then it is not compacted): a Truncate while an older segment holds entry frames.
    pub fn holds_segment(&self, id: u32) -> bool {
        self.truncates_by_segment.contains_key(&id) && self.entry_frames_by_segment.range(..id).next().is_some()
    }

    /// Frame bytes of the live entries in segment `id`, which compaction copies forward.
    pub fn live_entry_bytes(&self, id: u32) -> u64 {
        self.live_entries_by_segment.get(&id).map_or(0, |live| live.1)
    }

    /// Frame bytes of every live entry.
    pub fn live_entry_bytes_total(&self) -> u64 {
        self.live_entries_by_segment.values().map(|live| live.1).sum()
    }

    /// Whether segment `id` holds frames compaction copies forward: live entries, a group's last
    /// hard state or last compaction record.
    pub fn copies_from(&self, id: u32) -> bool {
        self.pins_segment(id) || self.live_entries_by_segment.contains_key(&id)
    }

    /// Where `group`'s live entry `index` lies.
    pub(super) fn entry_at(&self, group: u64, index: u64) -> Option<Location> {
        Some(self.groups.get(&group)?.entries.get(index)?.at)
    }

    /// The (offset, frame length) of every frame in segment `id` that compaction copies forward
    /// (`copies_from`). Walks every group, and every group's live entries if the segment holds
    /// some.
    pub(super) fn frames_in(&self, id: u32) -> Vec<(u64, u32)> {
        let mut frames = Vec::new();
        if !self.copies_from(id) {
            return frames;
        }
        let mut take = |at: &Location| {
            if at.segment == id {
                frames.push((at.offset, at.frame_len));
            }
        };
        let entries = self.live_entries_by_segment.contains_key(&id);
        for group in self.groups.values() {
            if entries {
                group.entries.values().for_each(|e| take(&e.at));
            }
            group.hard_state_at.iter().chain(group.compacted.as_ref().map(|c| &c.at)).for_each(&mut take);
        }
        frames
    }

    /// Whether segment `id` holds a group's last hard state or last compaction record, which
    /// compaction copies forward before the segment can go.
    pub fn pins_segment(&self, id: u32) -> bool {
        self.pins_by_segment.contains_key(&id)
    }

    /// Where `group`'s last record of `kind` (a hard state or a compaction) lies.
    pub(super) fn pinned_at(&self, kind: Kind, group: u64) -> Option<Location> {
        let g = self.groups.get(&group)?;
        match kind {
            Kind::HardState => g.hard_state_at,
            Kind::RaftCompact => g.compacted.map(|c| c.at),
            _ => None,
        }
    }

    /// After replay: every group's live entries are contiguous and start right after its
    /// compaction point, as the writer kept them. Otherwise frames replay needed are missing.
    pub(super) fn check_replayed(&self) -> Result<(), String> {
        for (id, group) in &self.groups {
            let mut expected = group.compacted.map(|c| c.index + 1);
            for index in group.entries.keys() {
                if expected.is_some_and(|e| e != index) {
                    return Err(format!("raft group {id}: entry {index} follows {expected:?} after replay: Raft records are missing"));
                }
                expected = Some(index + 1);
            }
        }
        Ok(())
    }

    /// After replay, once `check_replayed` passed: every group's entries back in a ring buffer
    /// (a hole in replay made some sparse, `RaftEntries`), as the writer keeps them.
    pub(super) fn make_dense(&mut self) {
        for (id, group) in &mut self.groups {
            assert!(group.entries.make_dense(), "raft group {id}: entries not contiguous after a replay that checked them");
        }
    }

    /// Forgets a segment compaction removed (it held no frame `holds_segment` counts, and every
    /// live entry and pin in it was copied forward).
    pub(super) fn forget_segment(&mut self, id: u32) {
        assert!(!self.holds_segment(id) && !self.copies_from(id), "segment {id} still holds Raft frames replay needs");
        self.entry_frames_by_segment.remove(&id);
        self.truncates_by_segment.remove(&id);
    }

    /// Applies one committed Raft frame. `aux` is a hard state's data, an entry's metadata. Both callers (the writer
    /// after a batch is durable, recovery replaying it) checked the entry order before: the
    /// writer asserts it before sealing, and a replayed batch was written by that writer.
    pub(super) fn apply(&mut self, kind: Kind, tag: RaftTag, aux: &[u8], at: Location) {
        let group = self.groups.entry(tag.group).or_default();
        match kind {
            Kind::RaftEntry | Kind::RaftMove => {
                // An appended entry: the writer checked the order before sealing
                // (`assert_entry_order`). Replay may find a gap before it (compaction removed a
                // segment of entries dead by the log's end) or stale entries at and after it (the
                // Truncate that superseded them went with such a segment, or is later): it
                // replaces them, and `check_replayed` makes sure the result is a contiguous log.
                //
                // A move: the writer copied the live entry forward (decided at seal: it was still
                // live there). Replay finds it where it lay, or finds no entry at `index` when its
                // old segment was removed since; either way the entry is now here. What follows
                // it stays: unlike an appended entry, a move supersedes nothing.
                if kind == Kind::RaftEntry {
                    live_down_all(&mut self.live_entries_by_segment, group.entries.drop_from(tag.index).map(|e| e.at));
                }
                let entry = RaftEntryLoc { term: tag.term, at, kind: aux.first().copied().unwrap_or(0) };
                if let Some(replaced) = group.entries.put(tag.index, entry) {
                    live_down_all(&mut self.live_entries_by_segment, std::iter::once(replaced.at));
                }
                live_up(&mut self.live_entries_by_segment, at);
                count_up(&mut self.entry_frames_by_segment, at.segment);
            }
            Kind::Truncate => {
                live_down_all(&mut self.live_entries_by_segment, group.entries.drop_from(tag.index).map(|e| e.at));
                count_up(&mut self.truncates_by_segment, at.segment);
            }
            Kind::HardState => {
                let vote = aux.get(..HARD_STATE_DATA_BYTES).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
                group.hard_state = Some(RaftHardState { term: tag.term, vote, commit: tag.index });
                if let Some(old) = group.hard_state_at.replace(at) {
                    count_down(&mut self.pins_by_segment, old.segment);
                }
                count_up(&mut self.pins_by_segment, at.segment);
            }
            Kind::RaftCompact => {
                assert!(group.compacted.is_none_or(|c| c.index <= tag.index), "group {}: compaction goes back to {}", tag.group, tag.index);
                let held_before = group.entries.len();
                live_down_all(&mut self.live_entries_by_segment, group.entries.drop_through(tag.index).map(|e| e.at));
                group.entries.shrink(held_before);
                if let Some(old) = group.compacted.replace(RaftCompacted { index: tag.index, term: tag.term, at }) {
                    count_down(&mut self.pins_by_segment, old.at.segment);
                }
                count_up(&mut self.pins_by_segment, at.segment);
            }
            _ => unreachable!("{kind:?} is not a Raft record"),
        }
    }
}

/// The Raft state an index checkpoint keeps, as checkpoint.rs reads it back (it writes it
/// straight from the `RaftIndex`): every group, and per segment the counts `holds_segment`
/// needs that the groups cannot give back (entry frames dead or alive, truncations). The other
/// counts follow from the groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct RaftCheckpoint {
    pub groups: BTreeMap<u64, RaftGroup>,
    /// (segment, entry frames, truncations).
    pub segments: Vec<(u32, u64, u64)>,
}

impl RaftIndex {
    /// Per segment, (segment, entry frames, truncations): the counts a checkpoint keeps beside
    /// the groups (`RaftCheckpoint::segments`), by segment.
    pub(super) fn segment_counts(&self) -> Vec<(u32, u64, u64)> {
        let segments: std::collections::BTreeSet<u32> =
            self.entry_frames_by_segment.keys().chain(self.truncates_by_segment.keys()).copied().collect();
        let count = |m: &BTreeMap<u32, u64>, s: u32| m.get(&s).copied().unwrap_or(0);
        segments.into_iter().map(|s| (s, count(&self.entry_frames_by_segment, s), count(&self.truncates_by_segment, s))).collect()
    }

    /// The index a checkpoint describes, its derived counts rebuilt.
    pub(super) fn from_checkpoint(ck: RaftCheckpoint) -> RaftIndex {
        let mut index = RaftIndex { groups: ck.groups.into_iter().collect(), ..Default::default() };
        for (segment, frames, truncates) in ck.segments {
            if frames > 0 {
                index.entry_frames_by_segment.insert(segment, frames);
            }
            if truncates > 0 {
                index.truncates_by_segment.insert(segment, truncates);
            }
        }
        index.recount();
        index
    }

    /// Rebuilds the counts that follow from the groups: live entries and pins per segment.
    fn recount(&mut self) {
        self.live_entries_by_segment.clear();
        self.pins_by_segment.clear();
        for group in self.groups.values() {
            for e in group.entries.values() {
                live_up(&mut self.live_entries_by_segment, e.at);
            }
            for at in group.hard_state_at.iter().chain(group.compacted.as_ref().map(|c| &c.at)) {
                count_up(&mut self.pins_by_segment, at.segment);
            }
        }
    }

    /// Start-up from a checkpoint: forgets the entries that lay in segments compaction removed
    /// since it was taken; returns how many. A segment goes only once none of its entries is
    /// live, so each of these was moved after the checkpoint (replay meets the `RaftMove`, which
    /// puts it back at its new place) or dropped, and replay would drop it again:
    /// - by a `RaftCompact`: the group's last one is always copied forward, so replay meets it
    ///   or a later one;
    /// - by a `Truncate` still in the log: replay meets it;
    /// - by a `Truncate` whose segment went too: compaction takes such a segment only once no
    ///   older segment holds entry frames (`holds_segment`), so every entry it dropped lay in a
    ///   removed segment, and is forgotten here.
    ///
    /// A last hard state or compaction record in a removed segment was likewise copied forward
    /// or superseded after the checkpoint, so replay replaces it (`pinned_in` checks that).
    pub(super) fn forget_segments(&mut self, gone: &std::collections::BTreeSet<u32>) -> u64 {
        let mut forgotten = 0u64;
        for group in self.groups.values_mut() {
            let before = group.entries.len();
            group.entries.retain(|e| !gone.contains(&e.at.segment));
            forgotten += (before - group.entries.len()) as u64;
        }
        self.entry_frames_by_segment.retain(|s, _| !gone.contains(s));
        self.truncates_by_segment.retain(|s, _| !gone.contains(s));
        self.recount();
        forgotten
    }

    /// Whether a group's last hard state or compaction record lies in one of `segments`.
    pub(super) fn pinned_in(&self, segments: &std::collections::BTreeSet<u32>) -> bool {
        segments.iter().any(|s| self.pins_by_segment.contains_key(s))
    }
}

/// The live range `(first, last)` of a group's entries after a Truncate from `from_index`.
fn truncated(range: Option<(u64, u64)>, from_index: u64) -> Option<(u64, u64)> {
    let (first, last) = range?;
    if from_index <= first {
        return None;
    }
    Some((first, last.min(from_index - 1)))
}

/// Checks, before a batch is sealed, that each group's entries follow its log as it will be
/// when the batch's earlier records are applied. A violation is a bug in the caller: assert
/// before a wrong byte is written.
pub(super) fn assert_entry_order(index: &RaftIndex, records: impl Iterator<Item = (Kind, RaftTag)>) {
    let mut ranges: HashMap<u64, Option<(u64, u64)>> = HashMap::new();
    for (kind, tag) in records {
        let range = ranges.entry(tag.group).or_insert_with(|| {
            let group = index.group(tag.group)?;
            match (group.entries.first_index(), group.compacted) {
                (Some(first), _) => Some((first, group.last_index()?)),
                // A compacted, empty log: the next entry follows the compaction point.
                (None, Some(c)) => Some((c.index + 1, c.index)),
                (None, None) => None,
            }
        });
        match kind {
            Kind::RaftEntry => {
                let last = range.map(|(_, last)| last);
                assert!(
                    entry_follows(last, tag.index),
                    "group {}: entry {} does not follow the last entry {last:?} (a conflicting suffix needs a Truncate first)",
                    tag.group,
                    tag.index,
                );
                *range = Some((range.map_or(tag.index, |(first, _)| first), tag.index));
            }
            Kind::Truncate => *range = truncated(*range, tag.index),
            Kind::RaftCompact => {
                let last = range.map_or(tag.index, |(_, last)| last.max(tag.index));
                *range = Some((tag.index + 1, last));
            }
            _ => {}
        }
    }
}

use super::{Object, Rec, Store, StoreError, split_key_field};
use crate::env::{Env, File};

impl<E: Env> Store<E> {
    /// Appends `records` to one batch (all or none of them durable, with the batch's one write)
    /// and waits until it is durable; returns the first record's lsn. Records of other callers
    /// may share the batch: a driver that calls this once per turn for all its groups pays one
    /// write and one sync for all of them.
    pub async fn append_raft(&self, records: &[RaftRecord<'_>]) -> Result<u64, StoreError> {
        self.submit_raft(records).await?.await
    }

    /// `append_raft` without waiting for durability: copies the records into a batch (waiting
    /// only for room) and returns what resolves once that batch and every one before it are
    /// durable. A driver submits its next turn's records while this turn's are being written;
    /// batches are written, and become durable, in submission order.
    pub async fn submit_raft(&self, records: &[RaftRecord<'_>]) -> Result<super::Appended, StoreError> {
        let vote_bytes: Vec<[u8; HARD_STATE_DATA_BYTES]> = records
            .iter()
            .map(|r| match r {
                RaftRecord::HardState { state, .. } => state.vote.to_le_bytes(),
                _ => [0; HARD_STATE_DATA_BYTES],
            })
            .collect();
        let recs: Vec<Rec<'_>> = records.iter().zip(&vote_bytes).map(|(r, vote)| rec_of(r, vote)).collect();
        self.submit("raft append", &recs).await
    }

    /// Bytes of one batch: a caller splitting its records across batches needs it (a frame
    /// takes `record::frame_len` and at most `record::place`'s padding before it).
    pub fn batch_bytes(&self) -> usize {
        self.inner.config.batch_bytes
    }

    /// Group `group`'s live entries and last hard state, as durable (a copy).
    pub fn raft_group(&self, group: u64) -> Option<RaftGroup> {
        self.inner.raft.borrow().group(group).cloned()
    }

    /// Ids of every group with a record in the log.
    pub fn raft_group_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.inner.raft.borrow().groups().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids
    }

    /// Entry `index` of `group`, read back and verified like every store read: its checksum,
    /// and that the frame is that entry. `Ok(None)` if the entry is not live.
    pub async fn read_raft_entry(&self, group: u64, index: u64) -> Result<Option<(u64, Object)>, StoreError> {
        let Some(live) = self.inner.raft.borrow().group(group).and_then(|g| g.entries.get(index).copied()) else {
            return Ok(None);
        };
        let object = self.read_raft_frame(Kind::RaftEntry, RaftTag { group, term: live.term, index }, live.at).await?;
        Ok(Some((live.term, object)))
    }

    /// `group`'s last compaction point and its `Compact` record (`meta()` and `data()`: the
    /// snapshot's description and image), read back and verified. `Ok(None)` if the log was
    /// never compacted.
    pub async fn read_raft_compacted(&self, group: u64) -> Result<Option<(RaftCompacted, Object)>, StoreError> {
        let Some(c) = self.inner.raft.borrow().group(group).and_then(|g| g.compacted) else { return Ok(None) };
        let object = self.read_raft_frame(Kind::RaftCompact, RaftTag { group, term: c.term, index: c.index }, c.at).await?;
        Ok(Some((c, object)))
    }

    /// The Raft frame at `loc`, verified to be record `kind` with `tag`.
    async fn read_raft_frame(&self, kind: Kind, tag: RaftTag, loc: Location) -> Result<Object, StoreError> {
        let RaftTag { group, term, index } = tag;
        let what = if kind == Kind::RaftEntry { "entry" } else { "compaction record" };
        let (buf, skip, file) = self.read_sectors(&loc).await?;
        let corrupt = |what: String| StoreError::Corrupt { path: file.path().to_path_buf(), offset: loc.offset, what };
        let frame = super::record::decode(&buf.as_slice()[skip..])
            .map_err(|e| corrupt(format!("raft {what} {index} of group {group}: {e:?} (lsn {})", loc.lsn)))?;
        let h = frame.header;
        // An entry compaction copied forward is a `RaftMove` frame of the same entry.
        let kind_matches = h.kind == kind || (kind == Kind::RaftEntry && h.kind == Kind::RaftMove);
        if !kind_matches || h.lsn != loc.lsn || h.group != group || h.index != index || h.term != term {
            return Err(corrupt(format!("raft {what} {index} of group {group}: the frame at lsn {} is another record", h.lsn)));
        }
        split_key_field(frame.key).ok_or_else(|| corrupt("bad key field".into()))?;
        let (meta, data) = frame.ranges(skip);
        Ok(Object { buf, meta, data, lsn: loc.lsn, chunked: false, pin: None })
    }
}

/// The store record for a Raft record: empty bucket and key (the key field is `u16 0`); the
/// group, term and index go into the frame header.
fn rec_of<'a>(record: &RaftRecord<'a>, vote: &'a [u8; HARD_STATE_DATA_BYTES]) -> Rec<'a> {
    let (kind, tag, meta, data): (Kind, RaftTag, &[u8], &[u8]) = match *record {
        RaftRecord::Entry { group, term, index, meta, data } => (Kind::RaftEntry, RaftTag { group, term, index }, meta, data),
        RaftRecord::Truncate { group, from_index } => (Kind::Truncate, RaftTag { group, term: 0, index: from_index }, &[], &[]),
        RaftRecord::HardState { group, state } => (Kind::HardState, RaftTag { group, term: state.term, index: state.commit }, &[], vote),
        RaftRecord::Compact { group, index, term, meta, data } => (Kind::RaftCompact, RaftTag { group, term, index }, meta, data),
    };
    Rec { kind, bucket: &[], key: &[], meta, data, expect: None, raft: Some(tag) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_ranges() {
        let check = |range, from, expected| assert_eq!(truncated(range, from), expected, "{range:?} from {from}");
        check(None, 3, None);
        check(Some((1, 5)), 3, Some((1, 2)));
        check(Some((1, 5)), 1, None);
        check(Some((4, 5)), 2, None);
        check(Some((1, 5)), 9, Some((1, 5)));
    }
}
