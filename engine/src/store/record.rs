//! The record frame: the unit of the per-core log (engine/docs/format.md has the byte layout).
//!
//! A frame is a header, the payload (key, metadata, data) and zero padding, in a multiple of
//! `FRAME_ALIGN_BYTES`. Frames are packed back to back inside a batch, and only the batch is
//! sector-aligned: a 1 KiB Raft entry takes 1.1 KiB of log, not a whole sector (`place` says
//! where the next frame goes).
//!
//! Three formats, all read, only the last written:
//! - format 1: an 88-byte header whose xxh3-64 checksum covers the header (without the checksum
//!   field) and the whole payload;
//! - format 2: a 96-byte header with two checksums: one of the data, and one of the header
//!   (data checksum included), key and metadata. A frame's *head* (header, key, metadata) then
//!   verifies on its own, so a HEAD or a listing reads a sector, not the whole object
//!   (`decode_head`), while a full read still verifies every byte;
//! - format 3: a 104-byte header, format 2's with `durable_lsn` before the checksums: every
//!   record below it was durable when this frame's batch was written. The writer keeps two
//!   batch writes in flight, so a batch no longer proves the one before it durable; recovery
//!   reads this field instead (recovery.rs). Older frames read as `durable_lsn =
//!   batch_first_lsn`, which is what one write in flight guaranteed.
//!
//! Either way a torn write, a stale sector or a flipped bit fails verification.

use xxhash_rust::xxh3::Xxh3;

use crate::limits::SECTOR_SIZE;

pub const MAGIC: u32 = u32::from_le_bytes(*b"CSR1");
/// The format the writer writes (formats 1 and 2 are still read).
pub const VERSION: u16 = 3;
/// Header bytes of the format written, the longest; older formats' are shorter.
pub const HEADER_BYTES: usize = 104;
pub const HEADER_BYTES_V1: usize = 88;
pub const HEADER_BYTES_V2: usize = 96;
/// The fields every format shares end here.
const COMMON_BYTES: usize = 80;
/// Format 1: the one checksum, over [0, 80) and the payload.
const CHECKSUM_OFFSET_V1: usize = 80;
/// Format 3: `durable_lsn`.
const DURABLE_LSN_OFFSET: usize = 80;
const _: () = assert!(HEADER_BYTES <= SECTOR_SIZE);
const _: () = assert!(CHECKSUM_OFFSET_V1 + 8 == HEADER_BYTES_V1 && DURABLE_LSN_OFFSET == COMMON_BYTES);
/// Frames start and end on multiples of this inside a batch: small enough that padding costs
/// little, large enough that a header never straddles a cache line it need not.
pub const FRAME_ALIGN_BYTES: usize = 64;
const _: () = assert!(SECTOR_SIZE.is_multiple_of(FRAME_ALIGN_BYTES) && HEADER_BYTES <= SECTOR_SIZE);

/// What a record says. Values are stable on disk: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    Put = 1,
    Delete = 2,
    /// raftlog: entries of `group` from `index` on are superseded (store/raft.rs).
    Truncate = 3,
    /// raftlog: entry `index` of `group`, opaque to the store (store/raft.rs).
    RaftEntry = 4,
    /// Does nothing: a relocation (compaction) whose object changed before it was sealed keeps
    /// its place in the batch so frames stay contiguous.
    Void = 5,
    /// A frame of an index checkpoint file (never in a segment).
    Checkpoint = 6,
    /// A put of a large object: the data is a manifest (store/manifest.rs) naming the chunks,
    /// which are ordinary `Put` records in the internal chunk bucket.
    Manifest = 7,
    /// Deletes every chunk of the chunk ids listed in the data (u64 big-endian each): the
    /// chunks of an object that was deleted or replaced, or of an abandoned upload.
    DropChunks = 8,
    /// raftlog: a group's term, vote and commit index (store/raft.rs).
    HardState = 9,
    /// raftlog: entries of `group` through `index` are covered by a snapshot (their last term
    /// in `term`); the metadata is the snapshot's, opaque to the store (store/raft.rs).
    RaftCompact = 10,
    /// raftlog: live entry `index` of `group` copied forward by compaction: the same entry
    /// (term, metadata, payload) at a new place. Unlike `RaftEntry` it drops nothing after it
    /// (store/raft.rs).
    RaftMove = 11,
}

impl Kind {
    /// A record of raftlog's (store/raft.rs), applied to the `RaftIndex`, not the object index.
    pub(super) fn is_raft(self) -> bool {
        matches!(self, Kind::RaftEntry | Kind::Truncate | Kind::HardState | Kind::RaftCompact | Kind::RaftMove)
    }

    fn from_u16(v: u16) -> Option<Kind> {
        match v {
            1 => Some(Kind::Put),
            2 => Some(Kind::Delete),
            3 => Some(Kind::Truncate),
            4 => Some(Kind::RaftEntry),
            5 => Some(Kind::Void),
            6 => Some(Kind::Checkpoint),
            7 => Some(Kind::Manifest),
            8 => Some(Kind::DropChunks),
            9 => Some(Kind::HardState),
            10 => Some(Kind::RaftCompact),
            11 => Some(Kind::RaftMove),
            _ => None,
        }
    }
}

/// The fixed fields of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The frame's format: `VERSION` for what the writer writes, 1 for older frames.
    pub version: u16,
    pub kind: Kind,
    /// Position in this core's log: contiguous from 1.
    pub lsn: u64,
    /// Random per batch: frames of one batch share it, so a stale frame left from an earlier
    /// (failed or torn) batch at the same offset can never pass as part of a later one.
    pub batch_nonce: u64,
    pub batch_first_lsn: u64,
    /// Records in the batch; a batch counts only if all of them are present and valid.
    pub batch_len: u32,
    /// Bytes of the whole frame with its padding: a multiple of `FRAME_ALIGN_BYTES`, at least
    /// `frame_len(payload)` and less than a sector more (`frame_len_valid`). The writer pads a
    /// frame so that the next one spans no more sectors than it must, and the last frame of a
    /// batch to the batch's sector-aligned end.
    pub frame_len: u32,
    /// Placement group (Raft group); 0 for the single-node store.
    pub group: u64,
    pub term: u64,
    /// Raft index within `group`; equals `lsn` for the single-node store.
    pub index: u64,
    pub key_len: u32,
    pub meta_len: u32,
    pub data_len: u64,
    /// Every record of a lower lsn was durable when this frame's batch was submitted: at most
    /// `batch_first_lsn`, less while an earlier batch's write was still in flight. What a later
    /// batch proves about the ones before it (recovery.rs). Formats 1 and 2 read as
    /// `batch_first_lsn` (their writer had one write in flight).
    pub durable_lsn: u64,
}

impl Header {
    pub fn payload_len(&self) -> usize {
        self.key_len as usize + self.meta_len as usize + self.data_len as usize
    }

    /// Where the payload starts.
    pub fn header_bytes(&self) -> usize {
        header_bytes(self.version)
    }

    /// Bytes from the frame's start that `decode_head` needs: the head from format 2 on, the
    /// whole frame (without padding) in format 1, whose one checksum covers the data too.
    pub fn head_len(&self) -> usize {
        match self.version {
            1 => HEADER_BYTES_V1 + self.payload_len(),
            v => header_bytes(v) + self.key_len as usize + self.meta_len as usize,
        }
    }
}

fn header_bytes(version: u16) -> usize {
    match version {
        1 => HEADER_BYTES_V1,
        2 => HEADER_BYTES_V2,
        _ => HEADER_BYTES,
    }
}

/// From format 2 on: where the data's checksum lies; the head's follows it and ends the header.
fn data_checksum_offset(version: u16) -> usize {
    assert!(version >= 2);
    header_bytes(version) - 16
}

fn head_checksum_offset(version: u16) -> usize {
    header_bytes(version) - 8
}

/// Bytes a frame with this payload occupies at least, in the format written (without padding
/// after it).
pub fn frame_len(payload_len: usize) -> usize {
    least_len(HEADER_BYTES, payload_len)
}

fn least_len(header_bytes: usize, payload_len: usize) -> usize {
    (header_bytes + payload_len).next_multiple_of(FRAME_ALIGN_BYTES)
}

/// Whether `frame_len` can be the length of a frame with this header size and payload: its
/// least length plus less than a sector of padding, on the frame alignment.
fn frame_len_valid(header_bytes: usize, payload_len: usize, frame_len: usize) -> bool {
    let least = least_len(header_bytes, payload_len);
    frame_len.is_multiple_of(FRAME_ALIGN_BYTES) && frame_len >= least && frame_len - least < SECTOR_SIZE
}

/// Sectors a frame of `len` bytes must span wherever it starts.
fn sectors_least(len: usize) -> usize {
    len.div_ceil(SECTOR_SIZE)
}

/// Where a frame of `frame` bytes (`frame_len`) goes in a batch filled up to `used`: right
/// there, unless it would then span more sectors than its length needs, in which case at the
/// next sector. So reading any frame costs the same sectors as when every frame was
/// sector-aligned, and only the space is saved. The bytes skipped pad the frame before.
pub fn place(used: usize, frame: usize) -> usize {
    assert!(used.is_multiple_of(FRAME_ALIGN_BYTES) && frame.is_multiple_of(FRAME_ALIGN_BYTES));
    let (start, end) = sector_span(used as u64, frame);
    if end as usize / SECTOR_SIZE - start as usize / SECTOR_SIZE > sectors_least(frame) { used.next_multiple_of(SECTOR_SIZE) } else { used }
}

/// The sector-aligned byte range `[start, end)` that holds `[offset, offset + len)`: what an
/// O_DIRECT read of a frame must fetch.
pub fn sector_span(offset: u64, len: usize) -> (u64, u64) {
    let sector = SECTOR_SIZE as u64;
    (offset / sector * sector, (offset + len as u64).next_multiple_of(sector))
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// No magic: never written (zeros) or not a frame start.
    NoFrame,
    /// Magic present but a field is impossible (version, kind, lengths).
    BadHeader,
    /// The frame runs past the bytes given.
    Truncated,
    /// The checksum does not match: torn, stale or corrupted.
    Checksum,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Format 1's checksum: [0, 80) and the payload.
fn checksum_v1(frame: &[u8], payload_len: usize) -> u64 {
    let mut h = Xxh3::new();
    h.update(&frame[..CHECKSUM_OFFSET_V1]);
    h.update(&frame[HEADER_BYTES_V1..HEADER_BYTES_V1 + payload_len]);
    h.digest()
}

/// The head checksum (formats 2 and 3): the header up to it (the data checksum included), key
/// and metadata.
fn head_checksum(frame: &[u8], version: u16, key_meta_len: usize) -> u64 {
    let at = header_bytes(version);
    let mut h = Xxh3::new();
    h.update(&frame[..head_checksum_offset(version)]);
    h.update(&frame[at..at + key_meta_len]);
    h.digest()
}

fn key_meta_len(header: &Header) -> usize {
    header.key_len as usize + header.meta_len as usize
}

/// Writes a frame for `header` and the payload parts into `out` (exactly `header.frame_len`
/// bytes).
pub fn encode(header: &Header, key: &[u8], meta: &[u8], data: &[u8], out: &mut [u8]) {
    assert_eq!(header.key_len as usize, key.len());
    assert_eq!(header.meta_len as usize, meta.len());
    assert_eq!(header.data_len as usize, data.len());
    let mut at = header.header_bytes();
    for part in [key, meta, data] {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    seal(header, out);
}

/// Writes the header and checksums of a frame whose payload is already in place after the
/// header, and zeroes the padding. The group-commit writer seals a batch's frames once it knows
/// their lsns. Formats 1 and 2 are written only by tests (of reading them).
pub fn seal(header: &Header, out: &mut [u8]) {
    let payload_len = header.payload_len();
    let at = header.header_bytes();
    assert!((1..=VERSION).contains(&header.version), "format {}", header.version);
    assert!(
        header.durable_lsn <= header.batch_first_lsn && (header.version == VERSION || header.durable_lsn == header.batch_first_lsn),
        "durable lsn {} for a batch from {} in format {}",
        header.durable_lsn,
        header.batch_first_lsn,
        header.version
    );
    assert!(frame_len_valid(at, payload_len, header.frame_len as usize), "frame length {} for a payload of {payload_len}", header.frame_len);
    assert_eq!(out.len(), header.frame_len as usize);
    out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4..6].copy_from_slice(&header.version.to_le_bytes());
    out[6..8].copy_from_slice(&(header.kind as u16).to_le_bytes());
    out[8..16].copy_from_slice(&header.lsn.to_le_bytes());
    out[16..24].copy_from_slice(&header.batch_nonce.to_le_bytes());
    out[24..32].copy_from_slice(&header.batch_first_lsn.to_le_bytes());
    out[32..36].copy_from_slice(&header.batch_len.to_le_bytes());
    out[36..40].copy_from_slice(&header.frame_len.to_le_bytes());
    out[40..48].copy_from_slice(&header.group.to_le_bytes());
    out[48..56].copy_from_slice(&header.term.to_le_bytes());
    out[56..64].copy_from_slice(&header.index.to_le_bytes());
    out[64..68].copy_from_slice(&header.key_len.to_le_bytes());
    out[68..72].copy_from_slice(&header.meta_len.to_le_bytes());
    out[72..80].copy_from_slice(&header.data_len.to_le_bytes());
    out[at + payload_len..].fill(0);
    if header.version == 1 {
        let sum = checksum_v1(out, payload_len);
        out[CHECKSUM_OFFSET_V1..HEADER_BYTES_V1].copy_from_slice(&sum.to_le_bytes());
        return;
    }
    if header.version >= 3 {
        out[DURABLE_LSN_OFFSET..DURABLE_LSN_OFFSET + 8].copy_from_slice(&header.durable_lsn.to_le_bytes());
    }
    let data_start = at + key_meta_len(header);
    let data_sum = xxhash_rust::xxh3::xxh3_64(&out[data_start..data_start + header.data_len as usize]);
    let (data_at, head_at) = (data_checksum_offset(header.version), head_checksum_offset(header.version));
    out[data_at..data_at + 8].copy_from_slice(&data_sum.to_le_bytes());
    let head_sum = head_checksum(out, header.version, key_meta_len(header));
    out[head_at..head_at + 8].copy_from_slice(&head_sum.to_le_bytes());
}

/// Parses the header at the start of `bytes` without checking the payload: enough to learn how
/// long the frame is. `bytes` must hold at least the header (`HEADER_BYTES` holds either
/// format's).
pub fn peek(bytes: &[u8]) -> Result<Header, Invalid> {
    if bytes.len() < 8 {
        return Err(Invalid::Truncated);
    }
    if u32_at(bytes, 0) != MAGIC {
        return Err(Invalid::NoFrame);
    }
    let version = u16_at(bytes, 4);
    if !(1..=VERSION).contains(&version) {
        return Err(Invalid::BadHeader);
    }
    if bytes.len() < header_bytes(version) {
        return Err(Invalid::Truncated);
    }
    let kind = Kind::from_u16(u16_at(bytes, 6)).ok_or(Invalid::BadHeader)?;
    let h = Header {
        version,
        kind,
        lsn: u64_at(bytes, 8),
        batch_nonce: u64_at(bytes, 16),
        batch_first_lsn: u64_at(bytes, 24),
        batch_len: u32_at(bytes, 32),
        frame_len: u32_at(bytes, 36),
        group: u64_at(bytes, 40),
        term: u64_at(bytes, 48),
        index: u64_at(bytes, 56),
        key_len: u32_at(bytes, 64),
        meta_len: u32_at(bytes, 68),
        data_len: u64_at(bytes, 72),
        durable_lsn: if version >= 3 { u64_at(bytes, DURABLE_LSN_OFFSET) } else { u64_at(bytes, 24) },
    };
    let payload = (h.key_len as u64).checked_add(h.meta_len as u64).and_then(|p| p.checked_add(h.data_len));
    let Some(payload) = payload else { return Err(Invalid::BadHeader) };
    if payload > u32::MAX as u64
        || !frame_len_valid(h.header_bytes(), payload as usize, h.frame_len as usize)
        || h.batch_len == 0
        || h.lsn < h.batch_first_lsn
        || h.lsn - h.batch_first_lsn >= h.batch_len as u64
        || h.durable_lsn > h.batch_first_lsn
    {
        return Err(Invalid::BadHeader);
    }
    Ok(h)
}

/// A verified frame: header and the three payload parts, borrowed from the bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub header: Header,
    pub key: &'a [u8],
    pub meta: &'a [u8],
    pub data: &'a [u8],
}

impl Frame<'_> {
    /// The metadata's and the data's byte ranges in a buffer where the frame starts at `at`.
    pub fn ranges(&self, at: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let meta_start = at + self.header.header_bytes() + self.key.len();
        let data_start = meta_start + self.meta.len();
        (meta_start..data_start, data_start..data_start + self.data.len())
    }
}

/// A frame's verified head: header, key and metadata, borrowed from the bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Head<'a> {
    pub header: Header,
    pub key: &'a [u8],
    pub meta: &'a [u8],
}

impl Head<'_> {
    /// The metadata's byte range in a buffer where the frame starts at `at`.
    pub fn meta_range(&self, at: usize) -> std::ops::Range<usize> {
        let meta_start = at + self.header.header_bytes() + self.key.len();
        meta_start..meta_start + self.meta.len()
    }
}

/// Parses and verifies the frame at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Frame<'_>, Invalid> {
    let header = peek(bytes)?;
    if bytes.len() < header.frame_len as usize {
        return Err(Invalid::Truncated);
    }
    let (key, meta) = verify_head(bytes, &header)?;
    let m = header.header_bytes() + key_meta_len(&header);
    let data = &bytes[m..m + header.data_len as usize];
    // From format 2 on: the head is verified, so the data checksum it covers is the one written.
    if header.version != 1 && xxhash_rust::xxh3::xxh3_64(data) != u64_at(bytes, data_checksum_offset(header.version)) {
        return Err(Invalid::Checksum);
    }
    Ok(Frame { header, key, meta, data })
}

/// Parses and verifies the head of the frame at the start of `bytes`, which must hold at least
/// `peek(bytes)?.head_len()` bytes (`Truncated` otherwise): from format 2 on the data need not
/// be there and is not checked; in format 1 the whole frame is verified.
pub fn decode_head(bytes: &[u8]) -> Result<Head<'_>, Invalid> {
    let header = peek(bytes)?;
    if bytes.len() < header.head_len() {
        return Err(Invalid::Truncated);
    }
    let (key, meta) = verify_head(bytes, &header)?;
    Ok(Head { header, key, meta })
}

/// Checks the head of a frame whose bytes hold at least `header.head_len()` (format 1: the one
/// checksum, over the whole payload; later formats: the head checksum) and returns its key and
/// metadata.
fn verify_head<'a>(bytes: &'a [u8], header: &Header) -> Result<(&'a [u8], &'a [u8]), Invalid> {
    let valid = match header.version {
        1 => checksum_v1(bytes, header.payload_len()) == u64_at(bytes, CHECKSUM_OFFSET_V1),
        v => head_checksum(bytes, v, key_meta_len(header)) == u64_at(bytes, head_checksum_offset(v)),
    };
    if !valid {
        return Err(Invalid::Checksum);
    }
    let k = header.header_bytes() + header.key_len as usize;
    Ok((&bytes[header.header_bytes()..k], &bytes[k..k + header.meta_len as usize]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header_in(version: u16, key: &[u8], meta: &[u8], data: &[u8]) -> Header {
        let payload = key.len() + meta.len() + data.len();
        Header {
            version,
            kind: Kind::Put,
            lsn: 7,
            batch_nonce: 0xDEAD_BEEF,
            batch_first_lsn: 6,
            batch_len: 2,
            frame_len: least_len(header_bytes(version), payload) as u32,
            group: 0,
            term: 0,
            index: 7,
            key_len: key.len() as u32,
            meta_len: meta.len() as u32,
            data_len: data.len() as u64,
            // An earlier batch still in flight when this one was written (format 3 only).
            durable_lsn: if version == VERSION { 4 } else { 6 },
        }
    }

    #[test]
    fn frame_lengths() {
        let check = |payload: usize, expected: usize| assert_eq!(frame_len(payload), expected, "payload {payload}");
        check(0, HEADER_BYTES.next_multiple_of(FRAME_ALIGN_BYTES));
        check(4096 - HEADER_BYTES, 4096);
        check(4096 - HEADER_BYTES + 1, 4096 + FRAME_ALIGN_BYTES);
        check(1024, 1152);
        check(1 << 20, (1 << 20) + 128);
        let valid = |payload, len| frame_len_valid(HEADER_BYTES, payload, len);
        assert!(valid(1024, 1152) && valid(1024, 1152 + 4096 - 64));
        assert!(!valid(1024, 1088) && !valid(1024, 1152 + 4096) && !valid(1024, 1160));
        // Older formats' shorter headers: 88 + 1064 fits 1152, 104 + 1064 does not.
        assert!(frame_len_valid(HEADER_BYTES_V1, 1064, 1152) && !frame_len_valid(HEADER_BYTES, 1064, 1152));
        assert!(frame_len_valid(HEADER_BYTES_V2, 1056, 1152) && !frame_len_valid(HEADER_BYTES, 1056, 1152));
    }

    #[test]
    fn place_packs_frames_but_never_adds_a_sector_to_a_read() {
        // Small frames pack until one would straddle a sector boundary.
        assert_eq!(place(0, 1152), 0);
        assert_eq!(place(3 * 1152, 1152), 4096, "3456 + 1152 crosses 4096: next sector");
        assert_eq!(place(2 * 1152, 1152), 2304);
        // A frame just over a sector needs two wherever it starts, except near a sector's end.
        assert_eq!(place(4096 + 2048, 4160), 4096 + 2048);
        assert_eq!(place(4096 + 4032, 4160), 4096 + 4032, "ends exactly on a sector");
        assert_eq!(place(4096 + 4032, 4224), 8192);
        assert_eq!(place(0, 4096), 0);
        assert_eq!(place(64, 4096), 4096);
    }

    proptest! {
        #[test]
        fn a_placed_frame_spans_its_least_sectors(used in 0usize..1 << 16, frame in 1usize..1 << 15) {
            let (used, frame) = (used * FRAME_ALIGN_BYTES, frame * FRAME_ALIGN_BYTES);
            let at = place(used, frame);
            prop_assert!(at >= used && at - used < SECTOR_SIZE);
            prop_assert!(at == used || at.is_multiple_of(SECTOR_SIZE));
            let (start, end) = sector_span(at as u64, frame);
            prop_assert_eq!((end - start) as usize / SECTOR_SIZE, frame.div_ceil(SECTOR_SIZE));
        }
    }

    #[test]
    fn zeros_are_no_frame_and_garbage_is_rejected() {
        assert_eq!(decode(&[0u8; 4096]), Err(Invalid::NoFrame));
        let mut b = vec![0u8; 4096];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        assert_eq!(decode(&b), Err(Invalid::BadHeader), "version 0");
    }

    #[test]
    fn a_frame_cannot_claim_its_own_batch_durable() {
        let (key, meta, data) = (b"k", b"m", [7u8; 100]);
        let mut h = header_in(VERSION, key, meta, &data);
        h.durable_lsn = h.batch_first_lsn;
        let mut buf = vec![0u8; h.frame_len as usize];
        encode(&h, key, meta, &data, &mut buf);
        assert_eq!(decode(&buf).map(|f| f.header.durable_lsn), Ok(h.batch_first_lsn));
        // Forged past the batch's first lsn (and resealed): impossible, so not a frame.
        buf[DURABLE_LSN_OFFSET..DURABLE_LSN_OFFSET + 8].copy_from_slice(&(h.batch_first_lsn + 1).to_le_bytes());
        assert_eq!(decode(&buf), Err(Invalid::BadHeader));
        // Older formats have no such field: they read as proving every batch before theirs.
        let old = header_in(2, key, meta, &data);
        let mut buf = vec![0u8; old.frame_len as usize];
        encode(&old, key, meta, &data, &mut buf);
        assert_eq!(decode(&buf).map(|f| f.header.durable_lsn), Ok(old.batch_first_lsn));
    }

    proptest! {
        #[test]
        fn roundtrip_and_any_flip_is_caught(key in proptest::collection::vec(any::<u8>(), 0..64),
                                             meta in proptest::collection::vec(any::<u8>(), 0..64),
                                             data in proptest::collection::vec(any::<u8>(), 0..9000),
                                             version in 1u16..=VERSION,
                                             flip in any::<u64>()) {
            let v1 = version == 1;
            let h = header_in(version, &key, &meta, &data);
            let mut buf = vec![0xAAu8; h.frame_len as usize];
            encode(&h, &key, &meta, &data, &mut buf);
            let f = decode(&buf).expect("valid frame");
            prop_assert_eq!(f.header, h);
            prop_assert_eq!((f.key, f.meta, f.data), (&key[..], &meta[..], &data[..]));
            let at = h.header_bytes();
            prop_assert_eq!(&buf[f.ranges(0).1], &data[..]);
            let head = decode_head(&buf[..h.head_len()]).expect("valid head");
            prop_assert_eq!((head.header, head.key, head.meta), (h, &key[..], &meta[..]));
            prop_assert_eq!(&buf[head.meta_range(0)], &meta[..]);
            prop_assert_eq!(decode_head(&buf[..h.head_len() - 1]), Err(Invalid::Truncated));
            // Flip one bit inside header or payload (padding is not covered, on purpose).
            let covered = (at + h.payload_len()) as u64 * 8;
            let bit = flip % covered;
            buf[(bit / 8) as usize] ^= 1 << (bit % 8);
            prop_assert!(decode(&buf).is_err(), "flip of bit {} not detected", bit);
            // The head alone catches every flip in the head; from format 2 on a flip in the data
            // leaves the head valid (the full read catches it, above).
            let in_data = !v1 && (bit / 8) as usize >= at + key.len() + meta.len();
            prop_assert_eq!(decode_head(&buf).is_ok(), in_data, "flip of bit {} (format {})", bit, version);
        }

        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let _ = decode(&bytes);
        }
    }
}
