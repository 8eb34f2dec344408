//! One page of a bucket's index: entries sorted by key, packed into one byte vector.
//!
//! An entry is `key_len | key | location`: the key's length as a LEB128 varint, the key's bytes,
//! and the location as five varints: segment, offset and frame length in units of
//! `FRAME_ALIGN_BYTES`, data length, lsn. A lookup walks the page from its start; a page is bounded (`PAGE_BYTES_MAX`), so
//! the walk costs a constant, and every edit is one splice of a byte range.
//!
//! Keys are stored whole, not front-coded against the previous key, so that `Index::iter` can
//! lend them (`&[u8]`) without copying; front coding would save the shared prefix of sorted
//! neighbours (a few bytes for random keys, most of the key for path-like ones) at the price of
//! owned keys there.

use std::cmp::Ordering;
use std::ops::{Deref, Range};

use super::Location;
use crate::store::record::FRAME_ALIGN_BYTES;

/// A page past this many bytes is split in two (unless it holds a single entry). Measured with a
/// million 16-byte keys (engine/tests/index_memory.rs): 2 KiB pages cost 17 bytes per object
/// beyond the key and look up faster than the `BTreeMap` they replaced; 4 KiB pages cost 15.5
/// bytes but walk twice as far, and looked up sequential keys about a fifth slower than it.
#[cfg(not(test))]
pub(super) const PAGE_BYTES_MAX: usize = 2048;
/// Unit tests use small pages so that a few hundred keys split and merge many times.
#[cfg(test)]
pub(super) const PAGE_BYTES_MAX: usize = 256;
/// A page that shrinks below this many bytes is merged with a neighbour...
pub(super) const PAGE_BYTES_MERGE_BELOW: usize = PAGE_BYTES_MAX / 4;
/// ...when the two together hold at most this many, so that a merge is not split straight back.
pub(super) const PAGE_BYTES_MERGED_MAX: usize = PAGE_BYTES_MAX * 3 / 4;
/// A page's vector has one of a few capacities: multiples of this step, then one size for a full
/// page (`PAGE_FULL_CAPACITY`). Few sizes let the allocator hand a chunk one page gave back to
/// the next page that grows: when every page grew by its own 128 bytes, half of the heap the
/// index took was free fragments (1,000,000 keys: 33 MB live, 31 MB free, 39.5 resident bytes
/// per object beyond the key instead of 17).
const PAGE_CAPACITY_STEP: usize = PAGE_BYTES_MAX / 8;
/// Room above `PAGE_BYTES_MAX` for the entry that makes a page split.
const PAGE_GROW_BYTES: usize = 128;
/// Capacity of a page about to split.
const PAGE_FULL_CAPACITY: usize = PAGE_BYTES_MAX + PAGE_GROW_BYTES;

const _: () = assert!(PAGE_BYTES_MERGE_BELOW < PAGE_BYTES_MERGED_MAX);
const _: () = assert!(PAGE_BYTES_MERGED_MAX < PAGE_BYTES_MAX);

/// The capacity a page of `len` bytes gets (see `PAGE_CAPACITY_STEP`).
fn capacity_for(len: usize) -> usize {
    if len > PAGE_FULL_CAPACITY {
        // Past a full page only with an entry of a long key, until the page splits.
        len + PAGE_GROW_BYTES
    } else if len > PAGE_FULL_CAPACITY - 2 * PAGE_CAPACITY_STEP {
        PAGE_FULL_CAPACITY
    } else {
        len.next_multiple_of(PAGE_CAPACITY_STEP).max(PAGE_CAPACITY_STEP)
    }
}

/// Varints in a packed location.
const LOCATION_FIELDS: usize = 5;
/// Longest LEB128 encoding of a u64.
const VARINT_BYTES_MAX: usize = 10;

/// A location unpacked from a page. It derefs to `Location`, so that `Index::iter`'s callers,
/// written when the index held `Location`s and lent `&Location`, read it the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unpacked(pub Location);

impl Deref for Unpacked {
    type Target = Location;

    fn deref(&self) -> &Location {
        &self.0
    }
}

/// A few varints encoded on the stack.
struct Varints {
    bytes: [u8; LOCATION_FIELDS * VARINT_BYTES_MAX],
    len: usize,
}

impl Varints {
    fn new() -> Varints {
        Varints { bytes: [0; LOCATION_FIELDS * VARINT_BYTES_MAX], len: 0 }
    }

    fn push(&mut self, mut value: u64) -> &mut Varints {
        while value >= 0x80 {
            self.bytes[self.len] = value as u8 | 0x80;
            self.len += 1;
            value >>= 7;
        }
        self.bytes[self.len] = value as u8;
        self.len += 1;
        self
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn key_len(key: &[u8]) -> Varints {
        let mut v = Varints::new();
        v.push(key.len() as u64);
        v
    }

    fn location(l: &Location) -> Varints {
        let unit = FRAME_ALIGN_BYTES as u64;
        assert!(l.offset.is_multiple_of(unit), "indexed offset {} is not a multiple of the frame alignment", l.offset);
        assert!((l.frame_len as u64).is_multiple_of(unit), "indexed frame length {} is not a multiple of the frame alignment", l.frame_len);
        // The chunked flag rides in the size's low bit: sizes are far below 2^63.
        assert!(l.data_len < 1 << 62, "indexed size {} is out of range", l.data_len);
        let mut v = Varints::new();
        v.push(l.segment as u64).push(l.offset / unit).push(l.frame_len as u64 / unit).push(l.data_len << 1 | l.chunked as u64).push(l.lsn);
        v
    }
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    let first = bytes[*pos];
    *pos += 1;
    if first < 0x80 {
        return first as u64; // key lengths and most location fields
    }
    let mut value = (first & 0x7f) as u64;
    let mut shift = 7;
    loop {
        let b = bytes[*pos];
        *pos += 1;
        assert!(shift < 64, "index page holds a varint longer than a u64");
        value |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return value;
        }
        shift += 7;
    }
}

/// The end of the location that starts at `pos`: the byte after its last varint, each varint
/// ending at its first byte below 0x80. Walking a page mostly skips locations, which are mostly
/// 10 to 16 bytes long, so sixteen bytes are looked at in one word when the page has them.
fn location_end(bytes: &[u8], pos: usize) -> usize {
    if let Some(window) = bytes.get(pos..pos + 16) {
        let word = u128::from_le_bytes(window.try_into().expect("16 bytes"));
        // A set bit per byte that ends a varint; clear the first four, the fifth is the end.
        // (No count_ones: without POPCNT in the baseline target it is a dozen instructions.)
        let mut ends = !word & u128::from_le_bytes([0x80; 16]);
        for _ in 1..LOCATION_FIELDS {
            ends &= ends.wrapping_sub(1);
        }
        if ends != 0 {
            return pos + ends.trailing_zeros() as usize / 8 + 1;
        }
    }
    let (mut end, mut fields) = (pos, 0);
    while fields < LOCATION_FIELDS {
        fields += (bytes[end] < 0x80) as usize;
        end += 1;
    }
    end
}

/// Byte order of keys, eight bytes to a comparison: inlined, where a call to `memcmp` per entry
/// cost more than the comparison itself for keys of a few words.
fn compare(a: &[u8], b: &[u8]) -> Ordering {
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let x = u64::from_be_bytes(x.try_into().expect("8 bytes"));
        let y = u64::from_be_bytes(y.try_into().expect("8 bytes"));
        if x != y {
            return x.cmp(&y);
        }
    }
    let compared = a.len().min(b.len()) / 8 * 8;
    a[compared..].cmp(&b[compared..])
}

fn read_location(bytes: &[u8], mut pos: usize) -> Location {
    let unit = FRAME_ALIGN_BYTES as u64;
    let segment = read_varint(bytes, &mut pos);
    let offset = read_varint(bytes, &mut pos) * unit;
    let frame_len = read_varint(bytes, &mut pos) * unit;
    let size_flag = read_varint(bytes, &mut pos);
    let lsn = read_varint(bytes, &mut pos);
    Location {
        segment: u32::try_from(segment).expect("indexed segment fits u32"),
        frame_len: u32::try_from(frame_len).expect("indexed frame length fits u32"),
        offset,
        lsn,
        data_len: size_flag >> 1,
        chunked: size_flag & 1 == 1,
    }
}

/// Where one entry's parts lie in its page.
struct Entry {
    start: usize,
    key: Range<usize>,
    /// From the location's first byte to the entry's end.
    location: Range<usize>,
}

fn entry_at(bytes: &[u8], start: usize) -> Entry {
    let mut pos = start;
    let key_len = read_varint(bytes, &mut pos) as usize;
    let key = pos..pos + key_len;
    Entry { start, key: key.clone(), location: key.end..location_end(bytes, key.end) }
}

/// The length of the shortest prefix of `upper` that sorts above `lower` (`lower` < `upper`).
fn separator_len(lower: &[u8], upper: &[u8]) -> usize {
    assert!(lower < upper, "separator between unordered keys");
    lower.iter().zip(upper).take_while(|(a, b)| a == b).count() + 1
}

/// What a put did to a page.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Put {
    Replaced(Location),
    Inserted,
    /// Inserted after every key of the page, without walking it.
    Appended,
}

#[derive(Default)]
pub(super) struct Page {
    bytes: Vec<u8>,
    /// Where the last entry starts (0 when empty), so that a key sorting after every key of the
    /// page (ascending uploads, and a checkpoint loading, which puts every key in order) is
    /// appended without walking the page.
    last: usize,
}

impl Page {
    pub(super) fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn last_key(&self) -> Option<&[u8]> {
        (!self.bytes.is_empty()).then(|| &self.bytes[entry_at(&self.bytes, self.last).key])
    }

    /// The entry holding `key`, or the position where it would go.
    fn seek(&self, key: &[u8]) -> Result<Entry, usize> {
        self.load_ahead();
        let mut pos = 0;
        while pos < self.bytes.len() {
            let e = entry_at(&self.bytes, pos);
            match compare(&self.bytes[e.key.clone()], key) {
                Ordering::Less => pos = e.location.end,
                Ordering::Equal => return Ok(e),
                Ordering::Greater => return Err(pos),
            }
        }
        Err(pos)
    }

    /// Reads one byte of each cache line of the page before the walk. A page is mostly cold
    /// (one of many), and the walk's loads depend on each other (each entry's length is read to
    /// find the next), so without this the walk waits on one cache miss after another; these
    /// loads are independent and go to memory together. Measured: gets about 15% faster.
    fn load_ahead(&self) {
        const CACHE_LINE_BYTES: usize = 64;
        let touched = self.bytes.iter().step_by(CACHE_LINE_BYTES).fold(0u8, |t, b| t | b);
        std::hint::black_box(touched);
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<Location> {
        let e = self.seek(key).ok()?;
        Some(read_location(&self.bytes, e.location.start))
    }

    /// Sets `key`'s location. Asserts that it is later than the one it replaces.
    pub(super) fn put(&mut self, key: &[u8], location: &Location) -> Put {
        let packed = Varints::location(location);
        let key_len = Varints::key_len(key);
        let entry = [key_len.as_slice(), key, packed.as_slice()];
        if self.last_key().is_some_and(|last| compare(last, key) == Ordering::Less) {
            let end = self.bytes.len();
            self.splice(end..end, &entry);
            self.last = end;
            return Put::Appended;
        }
        match self.seek(key) {
            Ok(e) => {
                let old = read_location(&self.bytes, e.location.start);
                assert!(old.lsn < location.lsn, "index applied out of lsn order");
                if e.start < self.last {
                    self.last = self.last + packed.len - e.location.len();
                }
                self.splice(e.location, &[packed.as_slice()]);
                Put::Replaced(old)
            }
            Err(pos) => {
                // Before the last entry, or into an empty page.
                let added: usize = entry.iter().map(|p| p.len()).sum();
                self.last = if self.bytes.is_empty() { 0 } else { self.last + added };
                self.splice(pos..pos, &entry);
                Put::Inserted
            }
        }
    }

    /// Removes `key`; returns its location if it was there.
    pub(super) fn remove(&mut self, key: &[u8]) -> Option<Location> {
        let e = self.seek(key).ok()?;
        let old = read_location(&self.bytes, e.location.start);
        self.splice(e.start..e.location.end, &[]);
        if e.start < self.last {
            self.last -= e.location.end - e.start;
        } else {
            self.last = self.cursor().last_start();
        }
        if self.bytes.capacity() > capacity_for(self.bytes.len()) + PAGE_CAPACITY_STEP {
            self.bytes.shrink_to(capacity_for(self.bytes.len()));
        }
        Some(old)
    }

    /// Replaces `range` of the page with the concatenation of `parts`, growing the vector to the
    /// next capacity of `capacity_for` rather than doubling it.
    fn splice(&mut self, range: Range<usize>, parts: &[&[u8]]) {
        let added: usize = parts.iter().map(|p| p.len()).sum();
        let old_len = self.bytes.len();
        let new_len = old_len + added - range.len();
        if new_len > old_len {
            if new_len > self.bytes.capacity() {
                self.bytes.reserve_exact(capacity_for(new_len) - old_len);
            }
            self.bytes.resize(new_len, 0);
        }
        self.bytes.copy_within(range.end..old_len, range.start + added);
        self.bytes.truncate(new_len);
        let mut at = range.start;
        for p in parts {
            self.bytes[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
    }

    /// Whether the page holds more than one entry (so that it can be split).
    pub(super) fn has_entries_to_split(&self) -> bool {
        self.last > 0
    }

    /// Moves entries to a new page: those from the first that starts past the middle (or the
    /// last, never the first), or with `last_only` just the last one, which keeps this page full
    /// when keys arrive in ascending order. Returns the new page with the shortest separator that
    /// sorts above every key left here and not above any key moved, so the page map's keys stay
    /// short.
    pub(super) fn split(&mut self, last_only: bool) -> (Box<[u8]>, Page) {
        assert!(self.has_entries_to_split(), "splitting an index page with fewer than two entries");
        let half = if last_only { self.last } else { self.bytes.len() / 2 };
        let mut prev = entry_at(&self.bytes, 0);
        let at = loop {
            let e = entry_at(&self.bytes, prev.location.end);
            if e.start >= half || e.start == self.last {
                break e;
            }
            prev = e;
        };
        let (last, first) = (&self.bytes[prev.key], &self.bytes[at.key.clone()]);
        let separator: Box<[u8]> = first[..separator_len(last, first)].into();
        let mut right = Vec::with_capacity(capacity_for(self.bytes.len() - at.start));
        right.extend_from_slice(&self.bytes[at.start..]);
        let right = Page { bytes: right, last: self.last - at.start };
        self.bytes.truncate(at.start);
        self.bytes.shrink_to(capacity_for(self.bytes.len()));
        self.last = prev.start;
        (separator, right)
    }

    /// Appends `right`, whose keys all sort after this page's.
    pub(super) fn append(&mut self, right: Page) {
        if right.is_empty() {
            return;
        }
        if self.is_empty() {
            *self = right;
            return;
        }
        if let (Some(last), Some(first)) = (self.last_key(), right.cursor().next().map(|(k, _)| k)) {
            assert!(last < first, "merged index pages overlap");
        }
        let end = self.bytes.len();
        self.splice(end..end, &[&right.bytes]);
        self.last = end + right.last;
    }

    pub(super) fn cursor(&self) -> Cursor<'_> {
        Cursor { bytes: &self.bytes, pos: 0 }
    }

    /// The page's entries in key order from the first at or above `key`: a listing's start
    /// skips the entries before it without reading their locations.
    pub(super) fn cursor_from(&self, key: &[u8]) -> Cursor<'_> {
        let pos = match self.seek(key) {
            Ok(e) => e.start,
            Err(pos) => pos,
        };
        Cursor { bytes: &self.bytes, pos }
    }

    /// Checks what is kept beside the entries.
    #[cfg(test)]
    pub(super) fn check(&self) {
        assert_eq!(self.last, self.cursor().last_start(), "the last entry's start is tracked");
    }
}

/// A page's entries in key order.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// Where the last entry starts (0 when there is none).
    fn last_start(mut self) -> usize {
        let mut start = 0;
        while self.pos < self.bytes.len() {
            start = self.pos;
            self.pos = entry_at(self.bytes, self.pos).location.end;
        }
        start
    }
}

impl<'a> Iterator for Cursor<'a> {
    type Item = (&'a [u8], Location);

    fn next(&mut self) -> Option<(&'a [u8], Location)> {
        if self.pos == self.bytes.len() {
            return None;
        }
        let e = entry_at(self.bytes, self.pos);
        self.pos = e.location.end;
        Some((&self.bytes[e.key], read_location(self.bytes, e.location.start)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every page length fits its capacity, and pages up to a full one share a handful of
    /// capacities (the point of `PAGE_CAPACITY_STEP`: chunks freed by one page fit the next).
    #[test]
    fn page_capacities_fit_and_are_few() {
        let mut capacities = std::collections::BTreeSet::new();
        for len in 0..=PAGE_FULL_CAPACITY * 2 {
            let c = capacity_for(len);
            assert!(c >= len, "capacity {c} for {len} bytes");
            if len <= PAGE_FULL_CAPACITY {
                capacities.insert(c);
            }
        }
        assert!(capacities.len() <= PAGE_FULL_CAPACITY / PAGE_CAPACITY_STEP, "{capacities:?}");
        assert!(capacities.contains(&PAGE_FULL_CAPACITY));
    }
}
