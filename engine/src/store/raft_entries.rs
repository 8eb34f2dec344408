//! One Raft group's live entries by index, as the store keeps them (`RaftGroup::entries`).
//!
//! The writer keeps a group's log contiguous: each entry follows the last, a truncation drops a
//! suffix, a compaction drops a prefix (`assert_entry_order`). So the entries live in one ring
//! buffer addressed by `index - first`: a lookup is an offset, an entry costs its 56 bytes and
//! nothing more, and a compaction drops its prefix by walking contiguous memory and moving the
//! buffer's head. In a `BTreeMap` the same compaction walked and freed tree nodes entry by entry:
//! 9.8 ms on the core for 2^18 entries, a stall the core's other groups waited behind.
//!
//! Replay alone may meet a hole (`RaftIndex::apply` says when): then the group's entries turn
//! sparse, a `BTreeMap`, so that a hole of any width costs nothing, and turn back into a ring
//! buffer once replay ends with them contiguous (`RaftEntries::make_dense`).

use std::collections::{BTreeMap, VecDeque, btree_map, vec_deque};

use super::raft::RaftEntryLoc;

/// A ring buffer this many times larger than the log it held before a compaction (and larger
/// than `DENSE_CAPACITY_KEPT`) is shrunk after it (`RaftEntries::shrink`).
const DENSE_SHRINK_FACTOR: usize = 4;
/// Capacity a ring buffer keeps however few entries it holds, so a busy group does not grow it
/// again after every compaction.
const DENSE_CAPACITY_KEPT: usize = 1024;

/// A group's live entries (see the module's comment).
#[derive(Clone, Debug)]
pub struct RaftEntries {
    repr: Repr,
}

#[derive(Clone, Debug)]
enum Repr {
    /// Entry `first + i` is `slots[i]`. `first` means nothing while `slots` is empty.
    Dense { first: u64, slots: VecDeque<RaftEntryLoc> },
    /// Replay met a hole.
    Sparse(BTreeMap<u64, RaftEntryLoc>),
}

impl Default for RaftEntries {
    fn default() -> Self {
        RaftEntries { repr: Repr::Dense { first: 0, slots: VecDeque::new() } }
    }
}

/// The same entries at the same indexes, however they are held (a start-up from a checkpoint
/// is compared with a whole-log replay).
impl PartialEq for RaftEntries {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for RaftEntries {}

impl RaftEntries {
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Dense { slots, .. } => slots.len(),
            Repr::Sparse(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the entries are held in a ring buffer (always, outside replay).
    pub fn is_dense(&self) -> bool {
        matches!(self.repr, Repr::Dense { .. })
    }

    pub fn get(&self, index: u64) -> Option<&RaftEntryLoc> {
        match &self.repr {
            Repr::Dense { first, slots } => slots.get(usize::try_from(index.checked_sub(*first)?).ok()?),
            Repr::Sparse(map) => map.get(&index),
        }
    }

    pub fn first_index(&self) -> Option<u64> {
        match &self.repr {
            Repr::Dense { first, slots } => (!slots.is_empty()).then_some(*first),
            Repr::Sparse(map) => map.first_key_value().map(|(i, _)| *i),
        }
    }

    pub fn last_index(&self) -> Option<u64> {
        match &self.repr {
            Repr::Dense { first, slots } => (!slots.is_empty()).then(|| first + (slots.len() as u64 - 1)),
            Repr::Sparse(map) => map.last_key_value().map(|(i, _)| *i),
        }
    }

    /// Entries in index order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Dense { first, slots } => Iter(IterRepr::Dense(*first, slots.iter())),
            Repr::Sparse(map) => Iter(IterRepr::Sparse(map.iter())),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(index, _)| index)
    }

    pub fn values(&self) -> impl Iterator<Item = &RaftEntryLoc> + '_ {
        self.iter().map(|(_, e)| e)
    }

    /// Puts `entry` at `index`, keeping every other entry; returns the one it replaces. Next to
    /// the entries (or replacing one) the buffer stays dense; beyond a hole, only replay's
    /// doing, the entries turn sparse.
    pub(super) fn put(&mut self, index: u64, entry: RaftEntryLoc) -> Option<RaftEntryLoc> {
        if let Repr::Dense { first, slots } = &mut self.repr {
            if slots.is_empty() {
                *first = index;
                slots.push_back(entry);
                return None;
            }
            let end = first.saturating_add(slots.len() as u64);
            if (*first..end).contains(&index) {
                return Some(std::mem::replace(&mut slots[(index - *first) as usize], entry));
            }
            if index == end {
                slots.push_back(entry);
                return None;
            }
            if index.checked_add(1) == Some(*first) {
                slots.push_front(entry);
                *first = index;
                return None;
            }
            self.make_sparse();
        }
        match &mut self.repr {
            Repr::Sparse(map) => map.insert(index, entry),
            Repr::Dense { .. } => unreachable!("made sparse above"),
        }
    }

    /// Drops the entries from `index` on; returns them.
    pub(super) fn drop_from(&mut self, index: u64) -> Dropped<'_> {
        match &mut self.repr {
            Repr::Dense { first, slots } => {
                let keep = index.saturating_sub(*first).min(slots.len() as u64) as usize;
                Dropped(DroppedRepr::Dense(slots.drain(keep..)))
            }
            Repr::Sparse(map) => Dropped(DroppedRepr::Sparse(map.split_off(&index).into_values())),
        }
    }

    /// Drops the entries through `index`; returns them. Then `shrink` decides whether the
    /// buffer is given back.
    pub(super) fn drop_through(&mut self, index: u64) -> Dropped<'_> {
        match &mut self.repr {
            Repr::Dense { first, slots } => {
                let dropped = (index.saturating_add(1).saturating_sub(*first)).min(slots.len() as u64) as usize;
                *first = first.saturating_add(dropped as u64);
                Dropped(DroppedRepr::Dense(slots.drain(..dropped)))
            }
            Repr::Sparse(map) => {
                let kept = map.split_off(&index.saturating_add(1));
                Dropped(DroppedRepr::Sparse(std::mem::replace(map, kept).into_values()))
            }
        }
    }

    /// After a compaction: gives back a ring buffer more than `DENSE_SHRINK_FACTOR` times larger
    /// than the log it held before (`held_before` entries; and larger than
    /// `DENSE_CAPACITY_KEPT`), keeping twice what is left. Such a buffer grew for a log much
    /// longer than the group now lets grow between its snapshots. A buffer sized for the
    /// group's usual log stays: freeing it took 2 ms for 2^18 entries (the walk of the dropped
    /// entries 1.35 ms), and the group would soon grow it again, copying its entries at each
    /// doubling. So a group keeps up to twice the entries it compacts at (56 bytes each).
    pub(super) fn shrink(&mut self, held_before: usize) {
        if let Repr::Dense { slots, .. } = &mut self.repr
            && slots.capacity() > DENSE_CAPACITY_KEPT
            && slots.capacity() / DENSE_SHRINK_FACTOR > held_before
        {
            slots.shrink_to((slots.len() * 2).max(DENSE_CAPACITY_KEPT));
        }
    }

    /// Keeps only the entries `keep` accepts. A hole this leaves turns the entries sparse.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&RaftEntryLoc) -> bool) {
        if self.values().all(&mut keep) {
            return;
        }
        self.make_sparse();
        if let Repr::Sparse(map) = &mut self.repr {
            map.retain(|_, e| keep(e));
        }
    }

    /// Back into a ring buffer, if the entries are contiguous (replay is over); returns whether
    /// they are now dense.
    pub(super) fn make_dense(&mut self) -> bool {
        let Repr::Sparse(map) = &self.repr else { return true };
        let first = map.first_key_value().map_or(0, |(i, _)| *i);
        if map.keys().zip(first..).any(|(index, expected)| *index != expected) {
            return false;
        }
        let slots: VecDeque<RaftEntryLoc> = map.values().copied().collect();
        self.repr = Repr::Dense { first, slots };
        true
    }

    fn make_sparse(&mut self) {
        if let Repr::Dense { first, slots } = &mut self.repr {
            let map = slots.drain(..).zip(*first..).map(|(e, index)| (index, e)).collect();
            self.repr = Repr::Sparse(map);
        }
    }
}

/// `RaftEntries::iter`: (index, entry) in index order.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    /// The next entry's index, and the entries from it on.
    Dense(u64, vec_deque::Iter<'a, RaftEntryLoc>),
    Sparse(btree_map::Iter<'a, u64, RaftEntryLoc>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (u64, &'a RaftEntryLoc);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Dense(next, slots) => {
                let entry = slots.next()?;
                let index = *next;
                *next = next.wrapping_add(1);
                Some((index, entry))
            }
            IterRepr::Sparse(map) => map.next().map(|(index, entry)| (*index, entry)),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IterRepr::Dense(_, slots) => slots.size_hint(),
            IterRepr::Sparse(map) => map.size_hint(),
        }
    }
}

impl<'a> IntoIterator for &'a RaftEntries {
    type Item = (u64, &'a RaftEntryLoc);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Entries `drop_from` or `drop_through` took out, in index order. Whatever is not read is
/// dropped with it.
pub(super) struct Dropped<'a>(DroppedRepr<'a>);

enum DroppedRepr<'a> {
    Dense(vec_deque::Drain<'a, RaftEntryLoc>),
    Sparse(btree_map::IntoValues<u64, RaftEntryLoc>),
}

impl Iterator for Dropped<'_> {
    type Item = RaftEntryLoc;

    fn next(&mut self) -> Option<RaftEntryLoc> {
        match &mut self.0 {
            DroppedRepr::Dense(drain) => drain.next(),
            DroppedRepr::Sparse(values) => values.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::index::Location;

    fn entry(index: u64) -> RaftEntryLoc {
        let at = Location { segment: index as u32, frame_len: 4096, offset: index * 4096, lsn: index, data_len: 0, chunked: false };
        RaftEntryLoc { term: index * 10, at, kind: 0 }
    }

    fn indexes(entries: &RaftEntries) -> Vec<u64> {
        entries.keys().collect()
    }

    /// The same operations on a `BTreeMap` model, dense and sparse alike; lookups and the
    /// entries each drop returns agree with it.
    #[test]
    fn agrees_with_a_map_through_appends_truncations_compactions_moves_and_holes() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut sparse_seen = false;
        for _ in 0..200 {
            let (mut entries, mut model) = (RaftEntries::default(), BTreeMap::new());
            for _ in 0..200 {
                let last = model.last_key_value().map_or(0, |(i, _): (&u64, _)| *i);
                match next(7) {
                    0..=2 => {
                        let index = last + 1;
                        assert_eq!(entries.put(index, entry(index)), model.insert(index, entry(index)));
                    }
                    3 => {
                        let index = next(last + 3);
                        let dropped: Vec<_> = entries.drop_from(index).collect();
                        assert_eq!(dropped, model.split_off(&index).into_values().collect::<Vec<_>>());
                    }
                    4 => {
                        let index = next(last + 3);
                        let dropped: Vec<_> = entries.drop_through(index).collect();
                        let kept = model.split_off(&(index + 1));
                        assert_eq!(dropped, std::mem::replace(&mut model, kept).into_values().collect::<Vec<_>>());
                    }
                    5 => {
                        // A move, or replay's entry beyond a hole or before the first.
                        let index = next(last + 8);
                        let mut moved = entry(index);
                        moved.kind = 1;
                        assert_eq!(entries.put(index, moved), model.insert(index, moved));
                    }
                    _ => {
                        let segment = next(last + 2) as u32;
                        entries.retain(|e| e.at.segment != segment);
                        model.retain(|_, e: &mut RaftEntryLoc| e.at.segment != segment);
                    }
                }
                sparse_seen |= !entries.is_dense();
                assert_eq!(indexes(&entries), model.keys().copied().collect::<Vec<_>>());
                assert_eq!(
                    (entries.first_index(), entries.last_index()),
                    (model.first_key_value().map(|(i, _)| *i), model.last_key_value().map(|(i, _)| *i))
                );
                for index in 0..last + 3 {
                    assert_eq!(entries.get(index), model.get(&index), "entry {index}");
                }
                let contiguous = model.keys().zip(model.keys().skip(1)).all(|(a, b)| a + 1 == *b);
                assert_eq!(entries.make_dense(), contiguous);
                assert_eq!(entries.is_dense(), contiguous);
            }
        }
        assert!(sparse_seen, "the sequence never made a hole");
    }

    #[test]
    fn a_compaction_gives_back_a_buffer_only_when_it_is_far_larger_than_the_log_was() {
        let mut entries = RaftEntries::default();
        for index in 1..=1 << 16 {
            entries.put(index, entry(index));
        }
        // A log as long as the buffer keeps it: the group grows its log that long again.
        assert_eq!(entries.drop_through((1 << 16) - 10).count(), (1 << 16) - 10);
        entries.shrink(1 << 16);
        let capacity = |entries: &RaftEntries| match &entries.repr {
            Repr::Dense { slots, .. } => slots.capacity(),
            Repr::Sparse(_) => panic!("dense"),
        };
        assert!(capacity(&entries) >= 1 << 16);
        assert_eq!(indexes(&entries), ((1 << 16) - 9..=1 << 16).collect::<Vec<u64>>());
        // Then it compacts at 100 entries: the buffer is far larger than that log.
        for index in (1 << 16) + 1..=(1 << 16) + 90 {
            entries.put(index, entry(index));
        }
        assert_eq!(entries.drop_through((1 << 16) + 80).count(), 90);
        entries.shrink(100);
        assert!(capacity(&entries) < 4 * DENSE_CAPACITY_KEPT, "capacity {} kept", capacity(&entries));
        assert_eq!(indexes(&entries), ((1 << 16) + 81..=(1 << 16) + 90).collect::<Vec<u64>>());
    }

    #[test]
    fn a_hole_as_wide_as_the_index_space_costs_one_entry() {
        let mut entries = RaftEntries::default();
        entries.put(5, entry(5));
        entries.put(u64::MAX - 1, entry(6));
        assert_eq!(indexes(&entries), vec![5, u64::MAX - 1]);
        assert!(!entries.make_dense());
        assert_eq!(entries.drop_through(5).count(), 1);
        assert!(entries.make_dense());
        assert_eq!(entries.get(u64::MAX - 1), Some(&entry(6)));
        assert_eq!(entries.drop_through(u64::MAX).count(), 1);
        assert!(entries.is_empty());
    }
}
