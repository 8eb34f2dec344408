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
}

impl RaftRecord<'_> {
    pub fn group(&self) -> u64 {
        match *self {
            RaftRecord::Entry { group, .. } | RaftRecord::Truncate { group, .. } | RaftRecord::HardState { group, .. } => group,
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

/// A live entry: its term and where its frame lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftEntryLoc {
    pub term: u64,
    pub at: Location,
}

/// One group's durable log as the store knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftGroup {
    /// Live entries by index: contiguous (each appended entry follows the last).
    pub entries: BTreeMap<u64, RaftEntryLoc>,
    pub hard_state: Option<RaftHardState>,
}

impl RaftGroup {
    pub fn last_index(&self) -> Option<u64> {
        self.entries.last_key_value().map(|(index, _)| *index)
    }
}

/// Every group's log on this core, plus how many Raft frames each segment holds (compaction
/// leaves such segments alone: it relocates only what the object index points at).
#[derive(Clone, Debug, Default)]
pub struct RaftIndex {
    groups: HashMap<u64, RaftGroup>,
    frames_by_segment: BTreeMap<u32, u64>,
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

    /// Whether segment `id` holds any Raft frame (then it is not compacted).
    pub fn holds_segment(&self, id: u32) -> bool {
        self.frames_by_segment.contains_key(&id)
    }

    /// Applies one committed Raft frame. `aux` is a hard state's data. Both callers (the writer
    /// after a batch is durable, recovery replaying it) checked the entry order before: the
    /// writer asserts it before sealing, and a replayed batch was written by that writer.
    pub(super) fn apply(&mut self, kind: Kind, tag: RaftTag, aux: &[u8], at: Location) {
        let group = self.groups.entry(tag.group).or_default();
        match kind {
            Kind::RaftEntry => {
                assert!(entry_follows(group.last_index(), tag.index), "group {} entry {} out of order", tag.group, tag.index);
                group.entries.insert(tag.index, RaftEntryLoc { term: tag.term, at });
            }
            Kind::Truncate => {
                group.entries.split_off(&tag.index);
            }
            Kind::HardState => {
                let vote = aux.get(..HARD_STATE_DATA_BYTES).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
                group.hard_state = Some(RaftHardState { term: tag.term, vote, commit: tag.index });
            }
            _ => unreachable!("{kind:?} is not a Raft record"),
        }
        *self.frames_by_segment.entry(at.segment).or_default() += 1;
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
            Some((*group.entries.first_key_value()?.0, group.last_index()?))
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
        let vote_bytes: Vec<[u8; HARD_STATE_DATA_BYTES]> = records
            .iter()
            .map(|r| match r {
                RaftRecord::HardState { state, .. } => state.vote.to_le_bytes(),
                _ => [0; HARD_STATE_DATA_BYTES],
            })
            .collect();
        let recs: Vec<Rec<'_>> = records.iter().zip(&vote_bytes).map(|(r, vote)| rec_of(r, vote)).collect();
        self.append("raft append", &recs).await
    }

    /// Bytes of one batch: a caller splitting its records across batches needs it (every frame
    /// takes at least a sector, `record::frame_len`).
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
        let Some(live) = self.inner.raft.borrow().group(group).and_then(|g| g.entries.get(&index).copied()) else {
            return Ok(None);
        };
        let loc = live.at;
        let file = self.inner.files.borrow().get(&loc.segment).cloned().expect("a live entry's segment is open");
        let buf = self.buffer(loc.frame_len as usize).await?;
        let (res, buf) = file.read_at(buf, loc.offset, loc.frame_len as usize).await;
        res?;
        let corrupt = |what: String| StoreError::Corrupt { path: file.path().to_path_buf(), offset: loc.offset, what };
        let frame = super::record::decode(buf.as_slice())
            .map_err(|e| corrupt(format!("raft entry {index} of group {group}: {e:?} (lsn {})", loc.lsn)))?;
        let h = frame.header;
        if h.kind != Kind::RaftEntry || h.lsn != loc.lsn || h.group != group || h.index != index || h.term != live.term {
            return Err(corrupt(format!("raft entry {index} of group {group}: the frame at lsn {} is another record", h.lsn)));
        }
        split_key_field(frame.key).ok_or_else(|| corrupt("bad key field".into()))?;
        let meta_start = super::HEADER_BYTES + frame.key.len();
        let data_start = meta_start + frame.meta.len();
        let (meta, data) = (meta_start..data_start, data_start..data_start + frame.data.len());
        Ok(Some((live.term, Object { buf, meta, data, lsn: loc.lsn, chunked: false, pin: None })))
    }
}

/// The store record for a Raft record: empty bucket and key (the key field is `u16 0`); the
/// group, term and index go into the frame header.
fn rec_of<'a>(record: &RaftRecord<'a>, vote: &'a [u8; HARD_STATE_DATA_BYTES]) -> Rec<'a> {
    let (kind, tag, meta, data): (Kind, RaftTag, &[u8], &[u8]) = match *record {
        RaftRecord::Entry { group, term, index, meta, data } => (Kind::RaftEntry, RaftTag { group, term, index }, meta, data),
        RaftRecord::Truncate { group, from_index } => (Kind::Truncate, RaftTag { group, term: 0, index: from_index }, &[], &[]),
        RaftRecord::HardState { group, state } => (Kind::HardState, RaftTag { group, term: state.term, index: state.commit }, &[], vote),
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
