//! The per-core log-structured object store.
//!
//! Each core owns a shard of the objects and keeps them in its own append-only log of segment
//! files (O_DIRECT, written from registered buffers; format in engine/docs/format.md). Writes
//! that arrive together form one batch: one write and one fdatasync, after which every put in
//! it is acknowledged. Batching adapts to load without a timer: whatever arrives while a batch
//! is being written and synced forms the next one. An in-memory index maps each key to its
//! latest record; every read verifies the record's checksum.
//!
//! The log is designed to become a placement group's Raft log: frames carry group, term and
//! index, and a tail that was never synced is dropped (logically truncated) at recovery.

mod checkpoint;
pub mod index;
pub mod manifest;
pub mod raft;
mod raft_entries;
pub mod record;
mod recovery;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::arena::FixedBuf;
use crate::env::{Env, File, OpenMode, Storage};
use crate::error::{IoError, OpenError};
use index::{Index, Location};
use record::{HEADER_BYTES, Header, Kind};

pub use manifest::{CHUNK_BUCKET, ChunkRead, Extent, Manifest, is_internal_bucket};
pub use raft::{RaftCompacted, RaftEntryLoc, RaftGroup, RaftHardState, RaftIndex, RaftRecord};
pub use raft_entries::RaftEntries;
pub use recovery::RecoveryReport;

/// Default size of a segment file.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1 << 30;
/// Default size of a batch buffer: the largest group commit, and (until large objects are
/// chunked) the largest record.
pub const BATCH_BYTES_DEFAULT: usize = 1 << 20;
/// Records one batch may hold.
pub const BATCH_RECORDS_MAX: usize = 4096;
/// Batch writes in flight at once, at most. With two, a batch starts its durable write while
/// the one before is still on its way to the disk, instead of waiting behind it: under load a
/// record then waits for its own write, not for the rest of someone else's. Acknowledgements
/// stay in log order, and each frame says below which lsn everything was durable when it was
/// written (`Header::durable_lsn`), which is what recovery needs to tell a torn pair from damage.
pub const WRITES_IN_FLIGHT_MAX: usize = 2;
/// Buffers of `batch_bytes` a store takes from the arena: one filling, one per write in flight.
pub const BATCH_BUFFERS: usize = 1 + WRITES_IN_FLIGHT_MAX;
/// Keys `put_chunked` may delete in its batch.
pub const ALSO_DELETE_MAX: usize = 8;

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub batch_bytes: usize,
}

impl StoreConfig {
    pub fn new(dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig { dir: dir.into(), segment_bytes: SEGMENT_BYTES_DEFAULT, batch_bytes: BATCH_BYTES_DEFAULT }
    }

    fn validate(&self) -> Result<(), StoreError> {
        let sector = crate::SECTOR_SIZE;
        let ok = self.batch_bytes >= 2 * sector
            && self.batch_bytes.is_multiple_of(sector)
            && self.segment_bytes.is_multiple_of(sector as u64)
            && self.segment_bytes >= self.batch_bytes as u64
            && self.segment_bytes <= u32::MAX as u64 * sector as u64;
        if !ok {
            return Err(StoreError::Config(format!("{self:?}: batch and segment sizes must be sector multiples, segment >= batch")));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("corrupt record in {path} at offset {offset}: {what}")]
    Corrupt { path: PathBuf, offset: u64, what: String },
    #[error("{op} {object}: {bytes} bytes exceed the largest record ({max} bytes)")]
    TooLarge { op: &'static str, object: String, bytes: usize, max: usize },
    #[error("{op} {object}: {cause}")]
    Batch { op: &'static str, object: String, errno: Option<i32>, cause: String },
    #[error("the store stopped accepting writes after a failed write or sync ({cause}); restart to recover")]
    Failed { cause: String },
    #[error("store configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// The errno behind this error, if it came from the OS (ENOSPC, EIO, EROFS...).
    pub fn errno(&self) -> Option<i32> {
        match self {
            StoreError::Io(e) => e.errno(),
            StoreError::Open(e) => e.source.raw_os_error(),
            StoreError::Batch { errno, .. } => *errno,
            _ => None,
        }
    }

    /// Names the object a failed batch write was for (`Appended` does not know it).
    fn for_object(self, object: impl FnOnce() -> String) -> StoreError {
        match self {
            StoreError::Batch { op, errno, cause, .. } => StoreError::Batch { op, object: object(), errno, cause },
            e => e,
        }
    }
}

fn object_name(bucket: &[u8], key: &[u8]) -> String {
    format!("{}/{}", String::from_utf8_lossy(bucket), String::from_utf8_lossy(key))
}

/// A record's key field: `u16 bucket length | bucket | key`.
fn key_field_len(bucket: &[u8], key: &[u8]) -> usize {
    2 + bucket.len() + key.len()
}

fn split_key_field(field: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u16::from_le_bytes([*field.first()?, *field.get(1)?]) as usize;
    let rest = &field[2..];
    (rest.len() >= n).then(|| rest.split_at(n))
}

/// The part of a record that applying it needs besides its key: a manifest's, chunk drop's or
/// hard state's data, a Raft entry's metadata (its first byte is kept: `RaftEntryLoc::kind`).
fn aux_data<'a>(kind: Kind, meta: &'a [u8], data: &'a [u8]) -> &'a [u8] {
    match kind {
        Kind::Manifest | Kind::DropChunks | Kind::HardState => data,
        Kind::RaftEntry | Kind::RaftMove => meta,
        _ => &[],
    }
}

/// Whether compaction may have to carry this record forward rather than drop it: a tombstone
/// or a chunk drop. Such frames weigh on a segment like live data when choosing what to compact.
fn may_carry(kind: Kind) -> bool {
    matches!(kind, Kind::Delete | Kind::DropChunks)
}

/// Where a `Put` or `Manifest` record lies, as the index holds it: `at` gives the frame's place
/// and the record's data length; a manifest lists its object's size instead and is flagged.
fn location_of(kind: Kind, aux: &[u8], at: Location) -> Location {
    match kind {
        Kind::Manifest => {
            let size = manifest::Manifest::size_of(aux).expect("a checksummed manifest has a size");
            Location { data_len: size, chunked: true, ..at }
        }
        _ => Location { chunked: false, ..at },
    }
}

/// Applies one committed record to the index. The writer (once a batch is durable) and
/// recovery (replaying the log) share this one rule, so both reach the same index.
/// `defer(id)` may keep a dropped chunk id in the index for now (readers still hold it).
fn apply_record(index: &mut Index, kind: Kind, key_field: &[u8], aux: &[u8], at: Location, defer: &mut dyn FnMut(u64) -> bool) {
    let Some((bucket, key)) = split_key_field(key_field) else { return };
    match kind {
        Kind::Put | Kind::Manifest => index.put(bucket, key, location_of(kind, aux, at)),
        Kind::Delete => {
            index.delete(bucket, key);
        }
        Kind::DropChunks => {
            for id in manifest::decode_ids(aux).expect("a checksummed DropChunks record holds ids") {
                if !defer(id) {
                    index.delete_prefix(CHUNK_BUCKET, &id.to_be_bytes());
                }
            }
        }
        Kind::Void | Kind::Truncate | Kind::RaftEntry | Kind::HardState | Kind::RaftCompact | Kind::RaftMove | Kind::Checkpoint => {}
    }
}

/// An object as read back and verified: its frame, still in the registered buffer it was read
/// into (no copy; the S3 front end sends straight from it).
pub struct Object {
    buf: FixedBuf,
    meta: std::ops::Range<usize>,
    data: std::ops::Range<usize>,
    pub lsn: u64,
    chunked: bool,
    /// A large object's chunks stay readable while its `Object` lives.
    pin: Option<ChunkPin>,
}

impl Object {
    pub fn meta(&self) -> &[u8] {
        &self.buf.as_slice()[self.meta.clone()]
    }

    /// The object's data; a large object's data lies in chunks (`manifest`).
    pub fn data(&self) -> &[u8] {
        assert!(!self.chunked, "a large object's data is in its chunks: read them through its manifest");
        &self.buf.as_slice()[self.data.clone()]
    }

    /// For a large object, the manifest naming its chunks.
    pub fn manifest(&self) -> Option<Manifest> {
        if !self.chunked {
            return None;
        }
        Some(Manifest::decode(&self.buf.as_slice()[self.data.clone()]).expect("a checksummed manifest decodes"))
    }

    /// The object's size.
    pub fn size(&self) -> u64 {
        match self.manifest() {
            Some(m) => m.size,
            None => self.data.len() as u64,
        }
    }

    /// Keeps the chunks readable after the object (its manifest frame) is dropped.
    pub fn take_pin(&mut self) -> Option<ChunkPin> {
        self.pin.take()
    }

    /// The registered buffer and the data's range in it, for sending with a fixed-buffer op.
    pub fn into_parts(self) -> (FixedBuf, std::ops::Range<usize>) {
        assert!(!self.chunked, "a large object's data is in its chunks");
        (self.buf, self.data)
    }
}

/// An object's verified head (`Store::head`): its metadata and size, not its data.
pub struct ObjectHead {
    buf: FixedBuf,
    meta: std::ops::Range<usize>,
    pub lsn: u64,
    /// The object's size (a large object's, from its manifest).
    pub size: u64,
    /// Whether it is a large object (its data in chunks).
    pub chunked: bool,
}

impl ObjectHead {
    pub fn meta(&self) -> &[u8] {
        &self.buf.as_slice()[self.meta.clone()]
    }
}

/// Bytes `Store::head` reads at least from a frame's start: a frame starting near its sector's
/// end reads into the next sector rather than reading twice.
const HEAD_READ_BYTES_MIN: usize = 1024;

/// Whether the frame read for `loc` is the record the index names for `bucket`/`key` (its lsn,
/// key and kind); the error says what was found instead.
fn check_located(op: &str, header: &Header, key_field: &[u8], bucket: &[u8], key: &[u8], loc: &Location) -> Result<(), String> {
    let (b, k) = split_key_field(key_field).ok_or_else(|| format!("{op} {}: bad key field", object_name(bucket, key)))?;
    let expected_kind = if loc.chunked { Kind::Manifest } else { Kind::Put };
    if header.lsn != loc.lsn || b != bucket || k != key || header.kind != expected_kind {
        return Err(format!("{op} {}: index points at lsn {}, found lsn {} of another record", object_name(bucket, key), loc.lsn, header.lsn));
    }
    Ok(())
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object").field("lsn", &self.lsn).field("meta_len", &self.meta.len()).field("data_len", &self.data.len()).finish()
    }
}

/// Relocations one compaction keeps in flight (they share batches with foreground writes).
pub const COMPACTION_IN_FLIGHT_MAX: usize = 32;

/// Index keys a compaction looks at before letting other tasks run (about 100 µs of work).
const COMPACTION_INDEX_STEP_KEYS: usize = 4096;

/// Live frames further apart than this are read separately, not in one read with the gap.
const COMPACTION_READ_GAP_BYTES_MAX: u64 = 32 << 10;

/// A targeted compaction reads at most this much at once (a frame larger than this is read
/// whole): a long read delays the foreground's writes and syncs queued behind it on the disk.
const COMPACTION_READ_BYTES_MAX: usize = 128 << 10;

/// The foreground's write rate is measured over at least this long.
const COMPACTION_RATE_WINDOW: std::time::Duration = std::time::Duration::from_millis(200);

/// How fast one compaction pass may go, in bytes a second of each kind of work.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Segment bytes read (a targeted pass reads little more than it relocates).
    pub read_bytes_per_s: u64,
    /// Frames appended to the tail: the writes that share batches with foreground puts, and so
    /// the throttle that keeps foreground latency.
    pub relocate_bytes_per_s: u64,
}

impl Pace {
    /// Both kinds at `bytes_per_s`.
    pub fn uniform(bytes_per_s: u64) -> Pace {
        Pace { read_bytes_per_s: bytes_per_s, relocate_bytes_per_s: bytes_per_s }
    }
}

/// One compaction pass's relocations in flight and pacing.
struct Pass {
    in_flight: VecDeque<crate::JoinHandle<Result<u64, StoreError>>>,
    start: crate::time::Instant,
    read_bytes: u64,
    relocated_bytes: u64,
    pace: Pace,
}

impl Pass {
    /// Throttle: never read or relocate faster than the pace since the pass began.
    async fn pace(&self) {
        let secs = |bytes: u64, per_s: u64| bytes as f64 / per_s.max(1) as f64;
        let s = secs(self.read_bytes, self.pace.read_bytes_per_s).max(secs(self.relocated_bytes, self.pace.relocate_bytes_per_s));
        let due = self.start.saturating_add(std::time::Duration::from_secs_f64(s));
        if crate::time::now() < due {
            crate::sleep_until(due).await;
        }
    }
}

/// The foreground's write rate (log growth less compaction's own relocations), over windows of
/// at least `COMPACTION_RATE_WINDOW`.
struct RateMeter {
    since: crate::time::Instant,
    bytes_then: u64,
    bytes_per_s: f64,
}

impl RateMeter {
    fn new(bytes: u64) -> RateMeter {
        RateMeter { since: crate::time::now(), bytes_then: bytes, bytes_per_s: 0.0 }
    }

    fn update(&mut self, bytes: u64) -> f64 {
        let now = crate::time::now();
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed >= COMPACTION_RATE_WINDOW {
            self.bytes_per_s = bytes.saturating_sub(self.bytes_then) as f64 / elapsed.as_secs_f64();
            (self.since, self.bytes_then) = (now, bytes);
        }
        self.bytes_per_s
    }
}

/// One read of a targeted compaction: `len` bytes from `offset`, holding `frames` (their offsets).
#[derive(Debug, PartialEq, Eq)]
struct ReadSpan {
    offset: u64,
    len: usize,
    frames: Vec<u64>,
}

/// Groups frames (offset, length; sorted, not overlapping) into sector-aligned reads of at most
/// `read_max` bytes, joining neighbours whose gap is small enough that one read beats two
/// (packed frames may share a sector).
fn read_spans(frames: &[(u64, u32)], read_max: usize) -> Vec<ReadSpan> {
    let mut spans: Vec<ReadSpan> = Vec::new();
    for &(offset, len) in frames {
        let (start, end) = record::sector_span(offset, len as usize);
        match spans.last_mut() {
            Some(s) if start <= s.offset + s.len as u64 + COMPACTION_READ_GAP_BYTES_MAX && end - s.offset <= read_max as u64 => {
                s.len = (end - s.offset) as usize;
                s.frames.push(offset);
            }
            _ => spans.push(ReadSpan { offset: start, len: (end - start) as usize, frames: vec![offset] }),
        }
    }
    spans
}

/// Compacted segment files kept for reuse; more are removed.
pub const SEGMENTS_FREE_MAX: usize = 4;

/// Compaction never takes a segment that would cost more than this share of it to copy: it
/// would free too little to be worth the writes.
pub const COMPACTION_LIVE_RATIO_MAX: f64 = 0.9;

/// How the background compactor (`Store::spawn_compactor`) chooses and paces its work.
#[derive(Clone, Copy, Debug)]
pub struct CompactionPolicy {
    /// Compact a segment once copying it forward writes at most this share of a segment.
    pub max_live_ratio: f64,
    /// A pass reads, and relocates, at most this fast while the store keeps up (and at least
    /// this fast however busy the foreground is).
    pub bytes_per_s: u64,
    /// Relocations write at most this share of the foreground's write rate (when that is more
    /// than `bytes_per_s`): relocated frames share batches with puts, so this bounds what
    /// compaction adds to put latency. Space amplification is what gives when writes outrun it.
    pub relocate_share: f64,
    /// Past this ratio of log bytes to live bytes, the compactor is behind: it takes the
    /// cheapest segment up to `COMPACTION_LIVE_RATIO_MAX` live, and reads at `catch_up` times
    /// the foreground's write rate, and relocates at `catch_up` times its share of it.
    pub space_amp_max: f64,
    pub catch_up: f64,
    /// Past this share of the live bytes, tombstones and chunk drops carried forward in full
    /// segments make the compactor take the oldest segment whatever its live data costs
    /// (`rotation_candidate`). They can go only once nothing older is left, so a cold oldest
    /// segment full of live data would otherwise keep them, and every copy of them, for ever.
    pub carry_share_max: f64,
    /// ... and once they add up to this many segments: rotating for less is not worth its
    /// writes.
    pub carry_segments_min: f64,
    /// How long to wait when there is nothing to compact.
    pub idle: std::time::Duration,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            max_live_ratio: 0.5,
            bytes_per_s: 64 << 20,
            relocate_share: 0.25,
            space_amp_max: 2.0,
            catch_up: 2.0,
            carry_share_max: 0.25,
            carry_segments_min: 1.0,
            idle: std::time::Duration::from_secs(1),
        }
    }
}

/// The compactor's next step (`Store::compaction_choice`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionChoice {
    /// The segment to compact, if any.
    pub segment: Option<u32>,
    /// Space amplification is past the policy's bound: compaction paces itself faster.
    pub behind: bool,
    /// The segment is the oldest, taken for the records it lets go (`rotation_candidate`).
    pub rotation: bool,
}

/// What one compaction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompactReport {
    pub segment: u32,
    pub records: u64,
    pub relocated: u64,
    pub bytes_relocated: u64,
    /// Of `relocated`, live Raft entries (copied forward as `RaftMove` frames).
    pub raft_entries_relocated: u64,
    pub bytes_reclaimed: u64,
}

/// What a scrub found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScrubReport {
    pub segments: u64,
    pub frames: u64,
    pub bytes: u64,
    pub unverified_bytes: u64,
    pub corrupt: Vec<ScrubFinding>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubFinding {
    pub path: PathBuf,
    pub offset: u64,
    pub what: String,
}

/// Disk held and live bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub segments: usize,
    /// Every segment at its full (preallocated) size, and the free ones kept for reuse.
    pub disk_bytes: u64,
    /// The full segments, and the tail up to its end: what the log holds.
    pub log_bytes: u64,
    pub live_bytes: u64,
    /// Tombstones and chunk drops in the log that compaction may have to carry forward (a
    /// segment started from an index checkpoint counts none until it is compacted).
    pub carried_bytes: u64,
}

impl Space {
    /// Log bytes per live byte (space amplification, not counting the tail's unused room).
    pub fn amplification(&self) -> f64 {
        self.log_bytes as f64 / self.live_bytes.max(1) as f64
    }
}

/// What [`Store::commit`] writes under its key: a small object's bytes, or a large object's
/// extents (written with [`ChunkWriter`]s; the manifest takes their chunks over).
pub enum Body<'a> {
    Inline(&'a [u8]),
    Chunked(Vec<Extent>),
}

/// The name a key is locked under: the bucket's length, the bucket, the key.
fn lock_field(bucket: &[u8], key: &[u8]) -> Vec<u8> {
    let mut field = Vec::with_capacity(key_field_len(bucket, key));
    field.extend_from_slice(&(bucket.len() as u16).to_le_bytes());
    field.extend_from_slice(bucket);
    field.extend_from_slice(key);
    field
}

/// One listed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: Box<[u8]>,
    pub size: u64,
    pub lsn: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tail {
    segment: u32,
    offset: u64,
    next_lsn: u64,
}

/// What a record that compaction copies forward (a relocation) requires when its batch is
/// sealed; otherwise it becomes `Void`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// A put or manifest: the object still lies where compaction found it.
    At(Location),
    /// A tombstone carried forward: its key is still deleted (a newer version must not be
    /// deleted by a copy that lands after it).
    Absent,
    /// A chunk drop carried forward: none of its ids has live chunks. An id can be used again
    /// after a restart (the next id comes from the index); a copy landing after the new
    /// chunks would drop them.
    ChunksDead,
    /// A Raft group's last hard state or compaction record: it still lies where compaction
    /// found it (a newer one supersedes it, and the copy must not land after that).
    RaftAt(Location),
    /// A Raft group's live entry, copied forward as a `RaftMove`: the entry at its index still
    /// lies where compaction found it (a Truncate or compaction that dropped it meanwhile must
    /// not be undone by a copy landing after it).
    RaftEntryAt(Location),
}

/// A record waiting in a batch; its payload is already in the batch buffer.
struct Pending {
    kind: Kind,
    /// Set for a relocation (compaction).
    expect: Option<Expect>,
    offset: u32,
    /// With the padding after it (`record::place`, and the batch's end for the last frame).
    frame_len: u32,
    key_len: u32,
    meta_len: u32,
    data_len: u64,
    /// A Raft record's header fields; `None` for the object store's records.
    raft: Option<raft::RaftTag>,
}

/// A record to append.
struct Rec<'a> {
    kind: Kind,
    bucket: &'a [u8],
    key: &'a [u8],
    meta: &'a [u8],
    data: &'a [u8],
    expect: Option<Expect>,
    raft: Option<raft::RaftTag>,
}

impl Rec<'_> {
    fn payload_len(&self) -> usize {
        key_field_len(self.bucket, self.key) + self.meta.len() + self.data.len()
    }
}

/// Chunk ids held by readers. A large object replaced or deleted while a reader streams it
/// keeps its chunks in the index until the reader lets go (as Ceph RGW defers deleting tail
/// objects); the `DropChunks` record is already durable, so a crash meanwhile just leaves
/// orphans for `collect_orphan_chunks`.
#[derive(Default)]
struct Pins {
    counts: HashMap<u64, u32>,
    deferred: std::collections::HashSet<u64>,
}

impl Pins {
    /// Whether dropping `id` must wait for its readers (it then waits in `deferred`).
    fn defer(&mut self, id: u64) -> bool {
        let held = self.counts.contains_key(&id);
        if held {
            self.deferred.insert(id);
        }
        held
    }
}

/// Keeps the chunks of one large object readable while held.
pub struct ChunkPin {
    pins: Rc<RefCell<Pins>>,
    index: Rc<RefCell<Index>>,
    ids: Vec<u64>,
}

impl ChunkPin {
    fn new(pins: Rc<RefCell<Pins>>, index: Rc<RefCell<Index>>, ids: Vec<u64>) -> ChunkPin {
        for id in &ids {
            *pins.borrow_mut().counts.entry(*id).or_default() += 1;
        }
        ChunkPin { pins, index, ids }
    }
}

impl Drop for ChunkPin {
    fn drop(&mut self) {
        let mut pins = self.pins.borrow_mut();
        for id in &self.ids {
            let count = pins.counts.get_mut(id).expect("a pinned id is counted");
            *count -= 1;
            if *count == 0 {
                pins.counts.remove(id);
                if pins.deferred.remove(id) {
                    self.index.borrow_mut().delete_prefix(CHUNK_BUCKET, &id.to_be_bytes());
                }
            }
        }
    }
}

/// How a batch ended, shared by every put in it.
#[derive(Default)]
struct Done {
    finished: Cell<bool>,
    first_lsn: Cell<u64>,
    error: RefCell<Option<(Option<i32>, String)>>,
    waiters: RefCell<Vec<Waker>>,
}

struct Batch {
    /// Taken out only while the write is in flight.
    buf: Option<FixedBuf>,
    used: usize,
    entries: Vec<Pending>,
    done: Rc<Done>,
}

impl Batch {
    fn new(buf: FixedBuf) -> Batch {
        Batch { buf: Some(buf), used: 0, entries: Vec::with_capacity(BATCH_RECORDS_MAX), done: Rc::new(Done::default()) }
    }
}

struct Inner<E: Env> {
    env: E,
    config: StoreConfig,
    index: Rc<RefCell<Index>>,
    /// Every Raft group's live entries and hard state on this core.
    raft: RefCell<RaftIndex>,
    /// Chunk ids that readers hold, and drops of them put off until they let go.
    pins: Rc<RefCell<Pins>>,
    files: RefCell<BTreeMap<u32, Rc<<E::Storage as Storage>::File>>>,
    /// The end of the last durable batch (every batch before it durable too): what the index
    /// holds, and what a checkpoint covers.
    tail: Cell<Tail>,
    /// Batch writes allowed in flight at once (1 to `WRITES_IN_FLIGHT_MAX`).
    writes_in_flight: Cell<usize>,
    /// Where the batches of each full (non-tail) segment end.
    segment_ends: RefCell<BTreeMap<u32, u64>>,
    /// Compacted segment files kept for reuse by the next rolls (`recycle`), and the number the
    /// next one is named by.
    free_segments: RefCell<Vec<PathBuf>>,
    next_free_name: Cell<u64>,
    /// The task giving the pool's excess back to the filesystem (`trim_free`), while it runs.
    trimmer: RefCell<Option<crate::JoinHandle<()>>>,
    /// The next segment's file, being made ready off the write path once the tail is half
    /// full: (its id, the task opening it), taken by the roll.
    next_segment: RefCell<Option<(u32, crate::JoinHandle<Result<Rc<<E::Storage as Storage>::File>, StoreError>>)>>,
    /// Bytes of tombstones and chunk drops per segment (`may_carry`), for choosing what to
    /// compact; segments missing here hold none. Unknown for the segments in `carry_unknown`
    /// (covered by the checkpoint start-up began from).
    carry_bytes: RefCell<BTreeMap<u32, u64>>,
    carry_unknown: RefCell<std::collections::BTreeSet<u32>>,
    filling: RefCell<Option<Batch>>,
    /// Batch buffers neither filling nor in flight.
    spares: RefCell<Vec<FixedBuf>>,
    /// Puts waiting for room in the filling batch.
    room_waiters: RefCell<Vec<Waker>>,
    writer_waker: RefCell<Option<Waker>>,
    failed: RefCell<Option<String>>,
    last_scrub: RefCell<Option<ScrubReport>>,
    /// Segments whose compaction found a damaged frame: a live record there cannot be copied
    /// forward, so the segment stays, and the compactor no longer takes it (it would fail again,
    /// and, being cheapest, stall every other compaction).
    uncompactable: RefCell<std::collections::BTreeSet<u32>>,
    closing: Cell<bool>,
    stats: Cell<StoreStats>,
    /// Keys with a write in progress, and the writes waiting for them.
    locks: crate::keylock::KeyLocks,
    /// The next chunk id: above every id in the index, so an id is never reused while a
    /// record of it may still be live.
    next_chunk_id: Cell<u64>,
}

/// Records submitted to a batch (`Store::submit`): resolves to the first record's lsn once the
/// batch, and every batch before it, is durable.
pub struct Appended {
    done: Rc<Done>,
    position: usize,
    op: &'static str,
}

impl Appended {
    /// Whether the batch is durable (or failed): awaiting it would not wait.
    pub fn is_durable(&self) -> bool {
        self.done.finished.get()
    }

    /// `is_durable`, and if not, wakes `cx` when it is.
    pub fn poll_durable(&self, cx: &mut std::task::Context<'_>) -> bool {
        if !self.done.finished.get() {
            self.done.waiters.borrow_mut().push(cx.waker().clone());
            return false;
        }
        true
    }
}

impl std::future::Future for Appended {
    type Output = Result<u64, StoreError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        if !self.poll_durable(cx) {
            return Poll::Pending;
        }
        let done = &self.done;
        Poll::Ready(match done.error.borrow().as_ref() {
            None => Ok(done.first_lsn.get() + self.position as u64),
            // Not written at all: an earlier batch had already stopped the store.
            Some((None, cause)) => Err(StoreError::Failed { cause: cause.clone() }),
            Some((errno, cause)) => Err(StoreError::Batch { op: self.op, object: String::new(), errno: *errno, cause: cause.clone() }),
        })
    }
}

/// Counters of the store's work.
#[derive(Default, Debug, Clone, Copy)]
pub struct StoreStats {
    pub batches: u64,
    pub records: u64,
    pub syncs: u64,
    pub bytes_written: u64,
    /// Of `bytes_written`, what compaction copied forward (relocations voided at commit
    /// included: they are throttled when sent).
    pub bytes_relocated: u64,
    pub compactions: u64,
    pub relocations_voided: u64,
    /// Live Raft entries compaction copied forward (`RaftMove` frames that landed, not voided).
    pub raft_entries_moved: u64,
    /// Free segment files the trimmer gave back to the filesystem (`trim_free`).
    pub segments_trimmed: u64,
    /// Compactions the background compactor took as rotations (`rotation_candidate`).
    pub rotations: u64,
    /// Batch writes started while an earlier one was still in flight (`WRITES_IN_FLIGHT_MAX`).
    pub writes_beside: u64,
    /// Each batch's durable write (RWF_DSYNC), from submission to completion as the core saw
    /// it: the device's write and flush, plus any wait for this core to run.
    pub write_latency: crate::latency::LatencyBuckets,
}

/// One core's store. Cheap to clone (a handle); `!Send`.
pub struct Store<E: Env> {
    inner: Rc<Inner<E>>,
    writer: Rc<RefCell<Option<crate::JoinHandle<()>>>>,
}

impl<E: Env> Clone for Store<E> {
    fn clone(&self) -> Self {
        Store { inner: self.inner.clone(), writer: self.writer.clone() }
    }
}

impl<E: Env + Clone> Store<E> {
    /// Opens (recovering) or creates the store in `config.dir`.
    pub async fn open(env: E, config: StoreConfig) -> Result<(Store<E>, RecoveryReport), StoreError> {
        config.validate()?;
        env.storage().create_dir(&config.dir)?;
        let recovered = recovery::recover(&env, &config).await?;
        let alloc = || {
            env.storage()
                .alloc(config.batch_bytes)
                .map_err(|e| StoreError::Config(format!("batch buffer: {e}: the arena needs {BATCH_BUFFERS} buffers of batch_bytes")))
        };
        let filling = alloc()?;
        let spares = (1..BATCH_BUFFERS).map(|_| alloc()).collect::<Result<Vec<_>, _>>()?;
        // Above every id in the index and every id the log still names (a dead id's chunks or
        // drop may survive in a segment), so no id is used twice while a record of it exists:
        // compaction carries a drop forward past the chunks of a reused id otherwise.
        let in_index = recovered.index.last_key(CHUNK_BUCKET).and_then(|k| manifest::chunk_id(&k)).map_or(1, |id| id + 1);
        let next_chunk_id = in_index.max(recovered.next_chunk_id);
        let inner = Rc::new(Inner {
            env,
            config,
            index: Rc::new(RefCell::new(recovered.index)),
            raft: RefCell::new(recovered.raft),
            pins: Rc::new(RefCell::new(Pins::default())),
            files: RefCell::new(recovered.files),
            tail: Cell::new(Tail { segment: recovered.tail.0, offset: recovered.tail.1, next_lsn: recovered.tail.2 }),
            writes_in_flight: Cell::new(WRITES_IN_FLIGHT_MAX),
            segment_ends: RefCell::new({
                assert!(recovered.ends.keys().all(|&id| id < recovered.tail.0), "an end recorded for the tail segment or past it");
                recovered.ends
            }),
            next_free_name: Cell::new(recovered.free.iter().filter_map(|p| recovery::free_name(p)).max().map_or(0, |n| n + 1)),
            free_segments: RefCell::new(recovered.free),
            trimmer: RefCell::new(None),
            next_segment: RefCell::new(None),
            carry_bytes: RefCell::new(recovered.carry_bytes),
            carry_unknown: RefCell::new(recovered.carry_unknown),
            filling: RefCell::new(Some(Batch::new(filling))),
            spares: RefCell::new(spares),
            room_waiters: RefCell::new(Vec::new()),
            writer_waker: RefCell::new(None),
            failed: RefCell::new(None),
            last_scrub: RefCell::new(None),
            uncompactable: RefCell::new(std::collections::BTreeSet::new()),
            closing: Cell::new(false),
            stats: Cell::new(StoreStats::default()),
            locks: crate::keylock::KeyLocks::default(),
            next_chunk_id: Cell::new(next_chunk_id),
        });
        let writer = crate::spawn(writer(inner.clone()));
        start_trimmer(&inner);
        Ok((Store { inner, writer: Rc::new(RefCell::new(Some(writer))) }, recovered.report))
    }
}

/// What a conditional write expects of its key when it lands (checked under the key's lock,
/// so no other write can come between the check and the write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// No object under the key.
    Absent,
    /// The object the caller read, by its record's lsn.
    At(u64),
}

impl<E: Env> Store<E> {
    /// Stores `data` under `bucket`/`key`; returns once the record is durable. `data` must fit
    /// one record (`inline_max`); larger objects go through [`Store::chunk_writer`] and
    /// [`Store::put_chunked`].
    pub async fn put(&self, bucket: &[u8], key: &[u8], meta: &[u8], data: &[u8]) -> Result<u64, StoreError> {
        let lsn = self.put_if(bucket, key, meta, data, None).await?;
        Ok(lsn.expect("an unconditional put always writes"))
    }

    /// [`Store::put`] if `expected` (when given) still holds for the key; `Ok(None)`, having
    /// written nothing, if it does not: read the key again and decide anew.
    pub async fn put_if(&self, bucket: &[u8], key: &[u8], meta: &[u8], data: &[u8], expected: Option<Expected>) -> Result<Option<u64>, StoreError> {
        let _lock = self.lock_key(bucket, key).await;
        if !self.holds(bucket, key, expected) {
            return Ok(None);
        }
        let drops = self.chunk_ids_of(bucket, key).await?;
        self.replace(Rec { kind: Kind::Put, bucket, key, meta, data, expect: None, raft: None }, "put", &drops).await.map(Some)
    }

    /// Whether `expected` holds for `bucket`/`key` now (none: always). Call with the key locked.
    fn holds(&self, bucket: &[u8], key: &[u8], expected: Option<Expected>) -> bool {
        let now = self.lsn_of(bucket, key).map(|(lsn, _)| lsn);
        match expected {
            None => true,
            Some(Expected::Absent) => now.is_none(),
            Some(Expected::At(lsn)) => now == Some(lsn),
        }
    }

    /// Writes `bucket`/`key` as [`Store::put`] (an `Inline` body) or [`Store::put_chunked`]
    /// (`Chunked`, dropping `release` as it does) does, and in the same batch deletes each key
    /// of `replaces`, dropping its chunks if it is a large object: all of it is durable, or
    /// none. A versioned bucket's
    /// write that supersedes another key (S3's one "null" version of a key) needs both to land
    /// together, or a crash between would leave two null versions, or none.
    ///
    /// Every key written or deleted is locked (in one order, so two commits never wait on
    /// each other). At most `ALSO_DELETE_MAX` keys in `replaces`.
    pub async fn commit(
        &self,
        bucket: &[u8],
        key: &[u8],
        meta: &[u8],
        body: Body<'_>,
        release: &[u64],
        replaces: &[(&[u8], &[u8])],
    ) -> Result<u64, StoreError> {
        assert!(replaces.len() <= ALSO_DELETE_MAX, "commit deletes at most {ALSO_DELETE_MAX} other keys");
        let mut fields: Vec<Vec<u8>> = std::iter::once((bucket, key)).chain(replaces.iter().copied()).map(|(b, k)| lock_field(b, k)).collect();
        fields.sort();
        fields.dedup();
        let mut guards = Vec::with_capacity(fields.len());
        for f in fields {
            guards.push(self.inner.locks.lock(f).await);
        }
        let mut drops = Vec::new();
        for (b, k) in replaces.iter().filter(|(b, k)| (*b, *k) != (bucket, key)) {
            drops.extend(self.chunk_ids_of(b, k).await?);
        }
        let deletes: Vec<Rec<'_>> = replaces
            .iter()
            .filter(|(b, k)| (*b, *k) != (bucket, key) && self.inner.index.borrow().get(b, k).is_some())
            .map(|(b, k)| Rec { kind: Kind::Delete, bucket: b, key: k, meta: &[], data: &[], expect: None, raft: None })
            .collect();
        match body {
            Body::Inline(data) => {
                drops.extend_from_slice(release);
                drops.extend(self.chunk_ids_of(bucket, key).await?);
                let mut records = vec![Rec { kind: Kind::Put, bucket, key, meta, data, expect: None, raft: None }];
                records.extend(deletes);
                let ids = manifest::encode_ids(&drops);
                if !drops.is_empty() {
                    records.push(Rec { kind: Kind::DropChunks, bucket: CHUNK_BUCKET, key: &[], meta: &[], data: &ids, expect: None, raft: None });
                }
                self.append("put", &records).await
            }
            Body::Chunked(extents) => {
                drops.extend_from_slice(release);
                self.commit_manifest(bucket, key, meta, extents, drops, deletes).await
            }
        }
    }

    /// Replaces the metadata of `bucket`/`key` and keeps its data: one record with the same
    /// data (a small object's bytes, or a large object's manifest, whose chunks stay where they
    /// are) and `meta`. A tag change on a 5 GiB object writes a few sectors, not 5 GiB.
    ///
    /// `expect_lsn` is the version the caller read the old metadata from. If the key maps to
    /// another version now (a write came between) or to none, nothing is written and the answer
    /// is `Ok(None)`: read again and retry. `Ok(Some(lsn))` is the new record's, once durable.
    pub async fn rewrite_meta(&self, bucket: &[u8], key: &[u8], expect_lsn: u64, meta: &[u8]) -> Result<Option<u64>, StoreError> {
        let _lock = self.lock_key(bucket, key).await;
        if self.lsn_of(bucket, key).map(|(lsn, _)| lsn) != Some(expect_lsn) {
            return Ok(None);
        }
        let Some(object) = self.get(bucket, key).await? else { return Ok(None) };
        assert_eq!(object.lsn, expect_lsn, "a locked key keeps its version");
        // A small object's bytes, or a large object's manifest: kept as they are.
        let data = &object.buf.as_slice()[object.data.clone()];
        let kind = if object.chunked { Kind::Manifest } else { Kind::Put };
        self.append("rewrite meta", &[Rec { kind, bucket, key, meta, data, expect: None, raft: None }]).await.map(Some)
    }

    /// Deletes `bucket`/`key` (a tombstone, and the chunks of a large object in the same
    /// batch); returns once the tombstone is durable.
    pub async fn delete(&self, bucket: &[u8], key: &[u8]) -> Result<u64, StoreError> {
        let _lock = self.lock_key(bucket, key).await;
        self.delete_locked(bucket, key).await
    }

    /// Deletes `bucket`/`key` as [`Store::delete`] does, but only the version the caller
    /// decided on (`expect_lsn`): if the key maps to another version now, or to none, nothing
    /// is written and the answer is `Ok(None)`. A background deleter (lifecycle expiry) that
    /// read an object's metadata never deletes a newer object written meanwhile.
    pub async fn delete_if(&self, bucket: &[u8], key: &[u8], expect_lsn: u64) -> Result<Option<u64>, StoreError> {
        let _lock = self.lock_key(bucket, key).await;
        if self.lsn_of(bucket, key).map(|(lsn, _)| lsn) != Some(expect_lsn) {
            return Ok(None);
        }
        self.delete_locked(bucket, key).await.map(Some)
    }

    /// A delete under the key's lock.
    async fn delete_locked(&self, bucket: &[u8], key: &[u8]) -> Result<u64, StoreError> {
        let drops = self.chunk_ids_of(bucket, key).await?;
        self.replace(Rec { kind: Kind::Delete, bucket, key, meta: &[], data: &[], expect: None, raft: None }, "delete", &drops).await
    }

    /// Commits a large object: a manifest of `extents` (written with [`ChunkWriter`]s) under
    /// `bucket`/`key`. In the same batch it drops the chunks of the object it replaces and of
    /// `release` (ids whose chunks are no longer wanted, e.g. parts left out of a multipart
    /// upload). Every chunk of `extents` must exist; the caller must not commit the same extent
    /// under two keys (ownership of chunks moves, it is never shared).
    ///
    /// `also_delete` names keys deleted in the same batch *without* dropping chunks (a
    /// multipart upload's record, whose parts' chunks this manifest takes over); at most
    /// `ALSO_DELETE_MAX`, none of them large objects.
    pub async fn put_chunked(
        &self,
        bucket: &[u8],
        key: &[u8],
        meta: &[u8],
        extents: Vec<Extent>,
        release: &[u64],
        also_delete: &[(&[u8], &[u8])],
    ) -> Result<u64, StoreError> {
        let lsn = self.put_chunked_if(bucket, key, meta, extents, release, also_delete, None).await?;
        Ok(lsn.expect("an unconditional put always writes"))
    }

    /// [`Store::put_chunked`] if `expected` (when given) still holds for the key; `Ok(None)`,
    /// having written nothing, if it does not (the extents' chunks are then still the caller's).
    #[allow(clippy::too_many_arguments)]
    pub async fn put_chunked_if(
        &self,
        bucket: &[u8],
        key: &[u8],
        meta: &[u8],
        extents: Vec<Extent>,
        release: &[u64],
        also_delete: &[(&[u8], &[u8])],
        expected: Option<Expected>,
    ) -> Result<Option<u64>, StoreError> {
        assert!(also_delete.len() <= ALSO_DELETE_MAX, "put_chunked deletes at most {ALSO_DELETE_MAX} other keys");
        let _lock = self.lock_key(bucket, key).await;
        if !self.holds(bucket, key, expected) {
            return Ok(None);
        }
        let deletes: Vec<Rec<'_>> = also_delete
            .iter()
            .map(|(b, k)| {
                assert!(!self.inner.index.borrow().get(b, k).is_some_and(|l| l.chunked), "also_delete names a large object");
                Rec { kind: Kind::Delete, bucket: b, key: k, meta: &[], data: &[], expect: None, raft: None }
            })
            .collect();
        self.commit_manifest(bucket, key, meta, extents, release.to_vec(), deletes).await.map(Some)
    }

    /// Writes the manifest of `extents` under the locked `bucket`/`key` with `deletes`, and
    /// drops in the same batch the chunks of the object it replaces and `drops` (but never a
    /// chunk of `extents`).
    async fn commit_manifest(
        &self,
        bucket: &[u8],
        key: &[u8],
        meta: &[u8],
        extents: Vec<Extent>,
        mut drops: Vec<u64>,
        deletes: Vec<Rec<'_>>,
    ) -> Result<u64, StoreError> {
        for e in &extents {
            let found = self.inner.index.borrow().list(CHUNK_BUCKET, &e.id.to_be_bytes(), None, usize::MAX).len();
            if found != e.chunks() as usize {
                return Err(StoreError::Config(format!(
                    "put_chunked {}: extent {} has {found} chunks stored, its manifest says {}",
                    object_name(bucket, key),
                    e.id,
                    e.chunks()
                )));
            }
        }
        drops.extend(self.chunk_ids_of(bucket, key).await?);
        drops.retain(|id| extents.iter().all(|e| e.id != *id));
        drops.sort_unstable();
        drops.dedup();
        let manifest = Manifest::new(extents).encode();
        let mut records = vec![Rec { kind: Kind::Manifest, bucket, key, meta, data: &manifest, expect: None, raft: None }];
        records.extend(deletes);
        let data = manifest::encode_ids(&drops);
        if !drops.is_empty() {
            records.push(Rec { kind: Kind::DropChunks, bucket: CHUNK_BUCKET, key: &[], meta: &[], data: &data, expect: None, raft: None });
        }
        self.append("put", &records).await
    }

    /// Deletes `bucket`/`key` without dropping its chunks: for a record whose chunks another
    /// manifest has taken over (a completed upload's parts).
    pub async fn delete_keeping_chunks(&self, bucket: &[u8], key: &[u8]) -> Result<u64, StoreError> {
        let _lock = self.lock_key(bucket, key).await;
        self.append("delete", &[Rec { kind: Kind::Delete, bucket, key, meta: &[], data: &[], expect: None, raft: None }]).await
    }

    /// Drops the chunks of ids no manifest owns (an abandoned upload, a failed put).
    pub async fn drop_chunks(&self, ids: &[u64]) -> Result<u64, StoreError> {
        let data = manifest::encode_ids(ids);
        self.append(
            "drop chunks",
            &[Rec { kind: Kind::DropChunks, bucket: CHUNK_BUCKET, key: &[], meta: &[], data: &data, expect: None, raft: None }],
        )
        .await
    }

    /// Drops the chunks of every id below `below_id` that no manifest names: extents written
    /// but never committed before a crash. Run it at start-up before serving writes (it reads
    /// every manifest; a commit moving chunks between manifests meanwhile could hide an owner)
    /// with `below_id = next_chunk_id()` as open left it. Returns the ids dropped.
    pub async fn collect_orphan_chunks(&self, below_id: u64) -> Result<Vec<u64>, StoreError> {
        let mut stored = Vec::new();
        let mut after: Option<[u8; 12]> = None;
        loop {
            let next = self.inner.index.borrow().list(CHUNK_BUCKET, &[], after.as_ref().map(|a| &a[..]), 1);
            let Some(id) = next.first().and_then(|(k, _)| manifest::chunk_id(k)) else { break };
            if id >= below_id {
                break;
            }
            stored.push(id);
            after = Some(manifest::chunk_key(id, u32::MAX));
        }
        if stored.is_empty() {
            return Ok(stored);
        }
        let manifests: Vec<(Box<[u8]>, Box<[u8]>)> =
            self.inner.index.borrow().iter().filter(|(_, _, l)| l.chunked).map(|(b, k, _)| (b.into(), k.into())).collect();
        let mut owned = std::collections::HashSet::new();
        for (bucket, key) in manifests {
            match self.get(&bucket, &key).await {
                Ok(o) => owned.extend(o.and_then(|o| o.manifest()).into_iter().flat_map(|m| m.extents).map(|e| e.id)),
                // A manifest damaged at rest names chunks nobody can tell now: drop none rather
                // than one it owns (the space comes back once the key is written or deleted).
                Err(StoreError::Corrupt { .. }) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        stored.retain(|id| !owned.contains(id));
        if !stored.is_empty() {
            self.drop_chunks(&stored).await?;
        }
        Ok(stored)
    }

    /// The id the next chunk writer gets.
    pub fn next_chunk_id(&self) -> u64 {
        self.inner.next_chunk_id.get()
    }

    /// Chunk records in the index (counts them: for tests and tools).
    pub fn chunks_stored(&self) -> u64 {
        self.inner.index.borrow().list(CHUNK_BUCKET, &[], None, usize::MAX).len() as u64
    }

    /// Starts writing the chunks of one extent under a new id.
    pub fn chunk_writer(&self) -> ChunkWriter<E> {
        let id = self.inner.next_chunk_id.get();
        self.inner.next_chunk_id.set(id + 1);
        ChunkWriter {
            store: self.clone(),
            id,
            chunk_bytes: self.chunk_bytes(),
            staged: Vec::new(),
            chunks: 0,
            bytes: 0,
            in_flight: Default::default(),
        }
    }

    /// Data bytes per chunk: a chunk record fills one batch.
    pub fn chunk_bytes(&self) -> usize {
        self.inner.config.batch_bytes - crate::SECTOR_SIZE
    }

    /// The most data one `put` of `bucket`/`key` with `meta` can hold.
    pub fn inline_max(&self, bucket: &[u8], key: &[u8], meta: &[u8]) -> usize {
        (self.inner.config.batch_bytes - HEADER_BYTES).saturating_sub(key_field_len(bucket, key) + meta.len())
    }

    /// `record`, plus a `DropChunks` of `drops` in the same batch, so that replacing or deleting
    /// a large object frees its chunks atomically with it.
    async fn replace(&self, record: Rec<'_>, op: &'static str, drops: &[u64]) -> Result<u64, StoreError> {
        if drops.is_empty() {
            return self.append(op, &[record]).await;
        }
        let data = manifest::encode_ids(drops);
        let drop = Rec { kind: Kind::DropChunks, bucket: CHUNK_BUCKET, key: &[], meta: &[], data: &data, expect: None, raft: None };
        self.append(op, &[record, drop]).await
    }

    /// The chunk ids of the large object now stored under `bucket`/`key` (none for a small one).
    /// Call with the key locked, so the answer stays true until the caller's write.
    async fn chunk_ids_of(&self, bucket: &[u8], key: &[u8]) -> Result<Vec<u64>, StoreError> {
        let chunked = self.inner.index.borrow().get(bucket, key).is_some_and(|l| l.chunked);
        if !chunked {
            return Ok(Vec::new());
        }
        let object = match self.get(bucket, key).await {
            Ok(o) => o.expect("a locked key stays indexed"),
            // A damaged manifest must not pin its key forever: the write goes ahead, and its
            // chunks, which nothing can read any more, stay until someone repairs or drops them.
            Err(StoreError::Corrupt { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let manifest = object.manifest().expect("a chunked location holds a manifest");
        Ok(manifest.extents.iter().map(|e| e.id).collect())
    }

    /// Serialises writes to one key: a write that replaces a large object reads its manifest
    /// first, and must not race another write of the same key.
    async fn lock_key(&self, bucket: &[u8], key: &[u8]) -> crate::keylock::KeyGuard {
        self.inner.locks.lock(lock_field(bucket, key)).await
    }

    /// The latest acknowledged version of `bucket`/`key`, verified against its checksum. For a
    /// large object this is its manifest (`Object::manifest`); read its data with
    /// [`Store::read_chunk`].
    pub async fn get(&self, bucket: &[u8], key: &[u8]) -> Result<Option<Object>, StoreError> {
        loop {
            let Some(loc) = self.inner.index.borrow().get(bucket, key) else { return Ok(None) };
            let mut object = self.read_object(bucket, key, loc).await?;
            let Some(manifest) = object.manifest() else { return Ok(Some(object)) };
            // Hold the chunks, then make sure they were not dropped while the manifest was read:
            // if the key still points at this manifest, nothing has replaced it yet, and from
            // now on a replacement leaves the chunks until the pin goes.
            let pin = ChunkPin::new(self.inner.pins.clone(), self.inner.index.clone(), manifest.extents.iter().map(|e| e.id).collect());
            if self.inner.index.borrow().get(bucket, key).map(|l| l.lsn) == Some(loc.lsn) {
                object.pin = Some(pin);
                return Ok(Some(object));
            }
        }
    }

    /// The sectors holding the frame at `loc` (frames are packed, so it need not start on one):
    /// the buffer, where the frame starts in it, and the segment's file.
    async fn read_sectors(&self, loc: &Location) -> Result<(FixedBuf, usize, Rc<<E::Storage as Storage>::File>), StoreError> {
        self.read_frame_start(loc, loc.frame_len as usize).await
    }

    /// The sectors holding the first `len` bytes of the frame at `loc`, as `read_sectors`.
    async fn read_frame_start(&self, loc: &Location, len: usize) -> Result<(FixedBuf, usize, Rc<<E::Storage as Storage>::File>), StoreError> {
        let file = self.inner.files.borrow().get(&loc.segment).cloned().expect("a located frame's segment is open");
        let (start, end) = record::sector_span(loc.offset, len);
        let len = (end - start) as usize;
        let buf = self.buffer(len).await?;
        let (res, mut buf) = file.read_at(buf, start, len).await;
        let n = res?;
        // Past the end of the file reads as zeros, as recovery reads it: a packed frame's
        // padding may lie beyond the last byte a torn write left, its checksummed part not.
        buf.set_len(len);
        buf.as_mut_capacity()[n..len].fill(0);
        Ok((buf, (loc.offset - start) as usize, file))
    }

    async fn read_object(&self, bucket: &[u8], key: &[u8], loc: Location) -> Result<Object, StoreError> {
        let (buf, skip, file) = self.read_sectors(&loc).await?;
        let corrupt = |what: String| StoreError::Corrupt { path: file.path().to_path_buf(), offset: loc.offset, what };
        let frame = record::decode(&buf.as_slice()[skip..])
            .map_err(|e| corrupt(format!("get {}: {e:?} (lsn {})", object_name(bucket, key), loc.lsn)))?;
        check_located("get", &frame.header, frame.key, bucket, key, &loc).map_err(corrupt)?;
        let (meta, data) = frame.ranges(skip);
        Ok(Object { buf, meta, data, lsn: loc.lsn, chunked: loc.chunked, pin: None })
    }

    /// The metadata and size of `bucket`/`key`, verified, without reading its data where the
    /// frame's format allows: from format 2 on a frame's head (header, key, metadata) is
    /// checksummed apart from its data, so a HEAD or a listing of 1 MiB objects reads a sector each, not the
    /// objects. A format-1 frame is read and verified whole.
    pub async fn head(&self, bucket: &[u8], key: &[u8]) -> Result<Option<ObjectHead>, StoreError> {
        let Some(loc) = self.inner.index.borrow().get(bucket, key) else { return Ok(None) };
        if loc.chunked && loc.data_len == 0 {
            // A large object indexed with size 0: an empty one, or one whose manifest recovery
            // found damaged (its size was in the data). Verified whole, so the damaged one fails
            // here as its reads do rather than answering a size of 0; other manifests, which may
            // list thousands of extents, are not read for a head.
            let object = self.read_object(bucket, key, loc).await?;
            let size = object.size();
            return Ok(Some(ObjectHead { buf: object.buf, meta: object.meta, lsn: loc.lsn, size, chunked: true }));
        }
        let frame_len = loc.frame_len as usize;
        // The rest of the frame's first sector, or a little more where it starts near the
        // sector's end: one read almost always holds the head.
        let in_sector = crate::SECTOR_SIZE - (loc.offset % crate::SECTOR_SIZE as u64) as usize;
        let first = frame_len.min(in_sector.max(HEAD_READ_BYTES_MIN));
        let (mut buf, mut skip, mut file) = self.read_frame_start(&loc, first).await?;
        // A head longer than the first read (large metadata, or format 1), read again whole;
        // a header that does not parse is reported by `decode_head` below.
        let needed = record::peek(&buf.as_slice()[skip..]).map(|h| h.head_len()).unwrap_or(0);
        if needed > first {
            drop(buf);
            (buf, skip, file) = self.read_frame_start(&loc, needed.min(frame_len)).await?;
        }
        let corrupt = |what: String| StoreError::Corrupt { path: file.path().to_path_buf(), offset: loc.offset, what };
        let head = record::decode_head(&buf.as_slice()[skip..])
            .map_err(|e| corrupt(format!("head {}: {e:?} (lsn {})", object_name(bucket, key), loc.lsn)))?;
        check_located("head", &head.header, head.key, bucket, key, &loc).map_err(corrupt)?;
        let meta = head.meta_range(skip);
        Ok(Some(ObjectHead { buf, meta, lsn: loc.lsn, size: loc.data_len, chunked: loc.chunked }))
    }

    /// Chunk `n` of `id`, verified. A missing chunk of a committed manifest is corruption.
    pub async fn read_chunk(&self, id: u64, n: u32) -> Result<Object, StoreError> {
        self.get(CHUNK_BUCKET, &manifest::chunk_key(id, n)).await?.ok_or_else(|| StoreError::Corrupt {
            path: self.inner.config.dir.clone(),
            offset: 0,
            what: format!("chunk {n} of chunk id {id} is missing"),
        })
    }

    /// The whole object under `bucket`/`key`, small or large (for tests and tools: it holds the
    /// object in memory).
    pub async fn read_all(&self, bucket: &[u8], key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        let Some(object) = self.get(bucket, key).await? else { return Ok(None) };
        let meta = object.meta().to_vec();
        let Some(manifest) = object.manifest() else { return Ok(Some((meta, object.data().to_vec()))) };
        let mut data = Vec::with_capacity(manifest.size as usize);
        for r in manifest.reads(0, manifest.size) {
            let chunk = self.read_chunk(r.id, r.n).await?;
            data.extend_from_slice(&chunk.data()[r.skip as usize..(r.skip + r.len) as usize]);
        }
        Ok(Some((meta, data)))
    }

    /// The lsn of the record `bucket`/`key` now maps to, and whether it is a large object: an
    /// in-memory lookup, for caches keyed by version.
    pub fn lsn_of(&self, bucket: &[u8], key: &[u8]) -> Option<(u64, bool)> {
        self.inner.index.borrow().get(bucket, key).map(|l| (l.lsn, l.chunked))
    }

    /// Keys of `bucket` starting with `prefix`, after `start_after`, at most `limit`.
    pub fn list(&self, bucket: &[u8], prefix: &[u8], start_after: Option<&[u8]>, limit: usize) -> Vec<Listed> {
        self.inner
            .index
            .borrow()
            .list(bucket, prefix, start_after, limit)
            .into_iter()
            .map(|(key, l)| Listed { key, size: l.data_len, lsn: l.lsn })
            .collect()
    }

    pub fn objects(&self) -> u64 {
        self.inner.index.borrow().objects()
    }

    /// Allows at most `n` batch writes in flight at once (1 to `WRITES_IN_FLIGHT_MAX`, the
    /// default): one is how the store wrote before, kept for comparing the two in benchmarks.
    pub fn set_writes_in_flight(&self, n: usize) {
        assert!((1..=WRITES_IN_FLIGHT_MAX).contains(&n), "{n} writes in flight");
        self.inner.writes_in_flight.set(n);
    }

    pub fn stats(&self) -> StoreStats {
        self.inner.stats.get()
    }

    /// Finishes the batches in flight, stops the writer and writes an index checkpoint, so the
    /// next start-up replays nothing.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.inner.closing.set(true);
        wake(&self.inner.writer_waker);
        let writer = self.writer.borrow_mut().take();
        if let Some(w) = writer {
            w.await;
        }
        // A next segment made ready but not rolled into goes back to the free pool, so that a
        // clean start-up finds the log ending in its tail (recovery copes if it does not).
        let next = self.inner.next_segment.borrow_mut().take();
        if let Some((_, opening)) = next
            && let Ok(file) = opening.await
        {
            let path = file.path().to_path_buf();
            drop(file);
            retire(&self.inner, &path).await?;
            self.inner.env.storage().sync_dir_async(&self.inner.config.dir).await?;
        }
        // Stops between two steps (`closing`): a store opened next on this directory must not
        // find its free files changing under it.
        let trimmer = self.inner.trimmer.borrow_mut().take();
        if let Some(t) = trimmer {
            t.await;
        }
        if self.inner.failed.borrow().is_some() {
            return Ok(()); // recovery must rescan what the failed batch may have left
        }
        self.checkpoint().await.map(|_| ())
    }

    /// Writes an index checkpoint at the current tail; returns the objects it holds. Start-up
    /// then replays only the log after it. It holds the Raft state too: each group's live
    /// entries, hard state and compaction point (format.md, "Index checkpoints").
    pub async fn checkpoint(&self) -> Result<u64, StoreError> {
        let tail = self.inner.tail.get();
        let snap = checkpoint::snapshot(
            &self.inner.index.borrow(),
            (tail.segment, tail.offset, tail.next_lsn),
            &self.inner.segment_ends.borrow(),
            self.inner.next_chunk_id.get(),
            &self.inner.raft.borrow(),
            self.inner.config.batch_bytes,
        );
        checkpoint::write(&self.inner.env, &self.inner.config.dir, self.inner.config.batch_bytes, snap).await
    }

    /// A read buffer; waits while the arena is exhausted (bounded by in-flight reads).
    async fn buffer(&self, len: usize) -> Result<FixedBuf, StoreError> {
        self.inner.env.storage().arena().alloc_wait(len).await.map_err(|e| StoreError::Config(format!("read buffer: {e}")))
    }

    /// Appends `records` to one batch (all or none of them are durable) and waits until it is
    /// durable; returns the first record's lsn.
    async fn append(&self, op: &'static str, records: &[Rec<'_>]) -> Result<u64, StoreError> {
        let object = || object_name(records[0].bucket, records[0].key);
        let appended = self.submit(op, records).await?;
        appended.await.map_err(|e| e.for_object(object))
    }

    /// Copies `records` into the filling batch (all of them into one batch: all or none are
    /// durable), waiting only for room; the returned future resolves once the batch is durable.
    /// Records submitted one after another are written in that order.
    async fn submit(&self, op: &'static str, records: &[Rec<'_>]) -> Result<Appended, StoreError> {
        assert!(!records.is_empty());
        let object = || object_name(records[0].bucket, records[0].key);
        for r in records {
            if r.bucket.len() > u16::MAX as usize {
                return Err(StoreError::TooLarge { op, object: object(), bytes: r.bucket.len(), max: u16::MAX as usize });
            }
        }
        // Where the records' frames would end in a batch filled up to `used`.
        let end_from = |used: usize| records.iter().map(|r| record::frame_len(r.payload_len())).fold(used, |u, f| record::place(u, f) + f);
        if end_from(0) > self.inner.config.batch_bytes || records.len() > BATCH_RECORDS_MAX {
            let payload = records.iter().map(Rec::payload_len).sum();
            return Err(StoreError::TooLarge { op, object: object(), bytes: payload, max: self.inner.config.batch_bytes - HEADER_BYTES });
        }
        let (done, position) = self.reserve(&end_from, records.len()).await.map_err(|cause| StoreError::Failed { cause })?;
        {
            let mut filling = self.inner.filling.borrow_mut();
            let batch = filling.as_mut().expect("reserve left a filling batch");
            for r in records {
                let frame = record::frame_len(r.payload_len());
                let start = record::place(batch.used, frame);
                if start > batch.used {
                    // The skipped bytes pad the frame before (a batch's first frame is at 0).
                    let before = batch.entries.last_mut().expect("only a frame is followed by padding");
                    before.frame_len += (start - batch.used) as u32;
                }
                let buf = batch.buf.as_mut().expect("a filling batch holds its buffer");
                let out = &mut buf.as_mut_capacity()[start + HEADER_BYTES..start + frame];
                let mut at = 0;
                for part in [&(r.bucket.len() as u16).to_le_bytes()[..], r.bucket, r.key, r.meta, r.data] {
                    out[at..at + part.len()].copy_from_slice(part);
                    at += part.len();
                }
                batch.entries.push(Pending {
                    kind: r.kind,
                    expect: r.expect,
                    offset: start as u32,
                    frame_len: frame as u32,
                    key_len: key_field_len(r.bucket, r.key) as u32,
                    meta_len: r.meta.len() as u32,
                    data_len: r.data.len() as u64,
                    raft: r.raft,
                });
                batch.used = start + frame;
            }
        }
        wake(&self.inner.writer_waker);
        Ok(Appended { done, position, op })
    }

    /// Disk held by segments and bytes of live records in them (space amplification =
    /// disk / live).
    pub fn space(&self) -> Space {
        let segments = self.inner.files.borrow().len();
        let free = self.inner.free_segments.borrow().len() + self.inner.next_segment.borrow().is_some() as usize;
        let segment_bytes = self.inner.config.segment_bytes;
        Space {
            segments,
            disk_bytes: (segments + free) as u64 * segment_bytes,
            log_bytes: (segments as u64).saturating_sub(1) * segment_bytes + self.inner.tail.get().offset,
            live_bytes: self.inner.index.borrow().live_bytes_total() + self.inner.raft.borrow().live_entry_bytes_total(),
            carried_bytes: self.inner.carry_bytes.borrow().values().sum(),
        }
    }

    /// Ids of the segment files, oldest first.
    pub fn segment_ids(&self) -> Vec<u32> {
        self.inner.files.borrow().keys().copied().collect()
    }

    /// Bytes compacting segment `id` would write: its live data (objects and Raft entries), plus
    /// its tombstones and chunk drops unless it is the oldest segment (there nothing older can
    /// hold what they hide).
    fn compaction_cost(&self, id: u32, oldest: u32) -> u64 {
        let live = self.inner.index.borrow().live_bytes(id) + self.inner.raft.borrow().live_entry_bytes(id);
        if id == oldest {
            return live;
        }
        live + self.inner.carry_bytes.borrow().get(&id).copied().unwrap_or(0)
    }

    /// The full segment (not the tail, not held by a Truncate) cheapest to compact, if compacting
    /// it would write at most `max_live_ratio` of a segment. Ties go to the older segment.
    pub fn compaction_candidate(&self, max_live_ratio: f64) -> Option<u32> {
        let files = self.inner.files.borrow();
        let oldest = *files.keys().next()?;
        let mut best: Option<(u64, u32)> = None;
        for &id in files.keys() {
            if !self.may_take(id) {
                continue;
            }
            let cost = self.compaction_cost(id, oldest);
            if best.is_none_or(|(c, _)| cost < c) {
                best = Some((cost, id));
            }
        }
        let (cost, id) = best?;
        (cost as f64 <= max_live_ratio * self.inner.config.segment_bytes as f64).then_some(id)
    }

    /// Whether the compactor may take segment `id`: not the tail, not held by a Raft Truncate
    /// (`RaftIndex::holds_segment`), not known to hold a damaged frame.
    fn may_take(&self, id: u32) -> bool {
        id != self.inner.tail.get().segment && !self.inner.raft.borrow().holds_segment(id) && !self.inner.uncompactable.borrow().contains(&id)
    }

    /// The oldest segment, if the tombstones and chunk drops in full segments add up to more
    /// than `carry_share_max` of the live bytes and to at least `carry_segments_min` segments
    /// (`CompactionPolicy`). They are carried forward until they reach the oldest segment, so
    /// compaction that only ever takes the cheapest segment lets them pile up behind an oldest
    /// segment full of cold live data: taking the oldest whatever it costs moves that boundary,
    /// and compacting the segments that become oldest drops what they carry. Rotating once
    /// through the live data ahead of them costs at most `1 / carry_share_max` bytes written
    /// per byte they free.
    pub fn rotation_candidate(&self, carry_share_max: f64, carry_segments_min: f64) -> Option<u32> {
        let oldest = *self.inner.files.borrow().keys().next()?;
        if !self.may_take(oldest) {
            return None;
        }
        let tail = self.inner.tail.get().segment;
        // The tail's do not count: rotating cannot reach them.
        let carried: u64 = self.inner.carry_bytes.borrow().iter().filter(|(id, _)| **id != tail).map(|(_, b)| b).sum();
        let live = self.inner.index.borrow().live_bytes_total();
        let many = carried as f64 > carry_share_max * live as f64
            && carried as f64 >= carry_segments_min * self.inner.config.segment_bytes as f64;
        many.then_some(oldest)
    }

    /// What the background compactor takes next under `policy`: the oldest segment while
    /// carried records pile up (`rotation_candidate`), else the cheapest
    /// (`compaction_candidate`, with a higher bound on its live share while space amplification
    /// is past `space_amp_max`).
    pub fn compaction_choice(&self, policy: &CompactionPolicy) -> CompactionChoice {
        let behind = self.space().amplification() > policy.space_amp_max;
        if let Some(id) = self.rotation_candidate(policy.carry_share_max, policy.carry_segments_min) {
            return CompactionChoice { segment: Some(id), behind, rotation: true };
        }
        let max_live_ratio = if behind { COMPACTION_LIVE_RATIO_MAX } else { policy.max_live_ratio };
        CompactionChoice { segment: self.compaction_candidate(max_live_ratio), behind, rotation: false }
    }

    /// Compacts the cheapest segment (`compaction_candidate`), if any.
    pub async fn compact_next(&self, bytes_per_s: u64) -> Result<Option<CompactReport>, StoreError> {
        let Some(id) = self.compaction_candidate(1.0) else { return Ok(None) };
        self.compact_segment(id, bytes_per_s).await
    }

    /// Copies what must survive of full segment `id` to the tail (reading at most `bytes_per_s`),
    /// then deletes the segment; `None` if `id` is not a full segment, holds Raft frames replay
    /// needs, or still holds chunks a reader pins (of an object replaced meanwhile).
    /// - live objects are relocated (each conditional: see `decide_relocations`);
    /// - unless `id` is the oldest segment, tombstones of keys still deleted and chunk drops are
    ///   carried forward: an older segment may hold a version they hide, which replay would
    ///   otherwise bring back. In the oldest segment they are dropped.
    ///
    /// Dead versions need nothing: whatever replaced them lies later in the log. A segment with
    /// nothing live and nothing to carry is deleted without being read. On any error the
    /// segment stays.
    pub async fn compact_segment(&self, id: u32, bytes_per_s: u64) -> Result<Option<CompactReport>, StoreError> {
        self.compact_segment_paced(id, Pace::uniform(bytes_per_s)).await
    }

    /// `compact_segment` with reads and relocations each paced by `pace`.
    pub async fn compact_segment_paced(&self, id: u32, pace: Pace) -> Result<Option<CompactReport>, StoreError> {
        let Some(oldest) = self.inner.files.borrow().keys().next().copied() else { return Ok(None) };
        let Some(end) = self.inner.segment_ends.borrow().get(&id).copied() else { return Ok(None) };
        if id == self.inner.tail.get().segment || self.inner.raft.borrow().holds_segment(id) {
            return Ok(None);
        }
        let file = self.inner.files.borrow()[&id].clone();
        let mut report = CompactReport { segment: id, ..Default::default() };
        let carries_nothing =
            id == oldest || (!self.inner.carry_unknown.borrow().contains(&id) && !self.inner.carry_bytes.borrow().contains_key(&id));
        let raft_live = self.inner.raft.borrow().copies_from(id);
        if self.inner.index.borrow().live_bytes(id) > 0 || !carries_nothing || raft_live {
            let copied = self.copy_forward(id, oldest, end, &file, pace, carries_nothing, &mut report).await;
            if let Err(StoreError::Corrupt { .. }) = &copied {
                self.inner.uncompactable.borrow_mut().insert(id);
            }
            copied?;
        }
        // Each pin and live entry was copied forward, or a newer record superseded the copy
        // (moved the pin, dropped the entry).
        assert!(
            !self.inner.raft.borrow().copies_from(id),
            "segment {id} still holds a live Raft entry, hard state or compaction record after compaction"
        );
        if self.inner.index.borrow().live_bytes(id) > 0 {
            // Only chunks a reader still pins may remain: their object was replaced or deleted
            // (so their relocation did not go ahead), but the drop waits for the reader. The
            // segment stays until a later pass.
            let pins = self.inner.pins.borrow();
            let index = self.inner.index.borrow();
            for (bucket, key, l) in index.iter().filter(|(_, _, l)| l.segment == id) {
                let pinned = bucket == CHUNK_BUCKET && manifest::chunk_id(key).is_some_and(|c| pins.deferred.contains(&c));
                assert!(pinned, "segment {id} still holds a live record after compaction: {:?} at {:?}", object_name(bucket, key), *l);
            }
            return Ok(None);
        }
        self.inner.files.borrow_mut().remove(&id);
        self.inner.segment_ends.borrow_mut().remove(&id);
        self.inner.carry_bytes.borrow_mut().remove(&id);
        self.inner.carry_unknown.borrow_mut().remove(&id);
        self.inner.raft.borrow_mut().forget_segment(id);
        retire(&self.inner, file.path()).await?;
        report.bytes_reclaimed = self.inner.config.segment_bytes;
        let mut stats = self.inner.stats.get();
        stats.compactions += 1;
        self.inner.stats.set(stats);
        Ok(Some(report))
    }

    /// `compact_segment`'s pass over segment `id` up to `end`. When only live objects need
    /// copying (`targeted`: nothing to carry, or the oldest segment, where carried records are
    /// dropped), the index names their frames (the `RaftIndex` its live entries and pins) and
    /// only those are read: a mostly dead segment costs the disk a few reads instead of a whole
    /// scan that competes with foreground writes.
    /// Otherwise every frame is read, to find the tombstones and chunk drops to carry.
    #[allow(clippy::too_many_arguments)]
    async fn copy_forward(
        &self,
        id: u32,
        oldest: u32,
        end: u64,
        file: &Rc<<E::Storage as Storage>::File>,
        pace: Pace,
        targeted: bool,
        report: &mut CompactReport,
    ) -> Result<(), StoreError> {
        let buf = self.buffer(self.inner.config.batch_bytes).await?;
        let mut reader = recovery::Reader::new(&**file, buf);
        let mut pass = Pass { in_flight: VecDeque::new(), start: crate::time::now(), read_bytes: 0, relocated_bytes: 0, pace };
        if targeted {
            let mut frames = self.live_frames(id).await;
            let raft_frames = self.inner.raft.borrow().frames_in(id);
            if !raft_frames.is_empty() {
                frames.extend(raft_frames);
                frames.sort_unstable();
            }
            for span in read_spans(&frames, COMPACTION_READ_BYTES_MAX.min(self.inner.config.batch_bytes)) {
                reader.load(span.offset, span.len).await?;
                pass.read_bytes += span.len as u64;
                for &offset in &span.frames {
                    self.copy_frame(&mut reader, id, oldest, offset, file, &mut pass, report).await?;
                    pass.pace().await;
                }
            }
        } else {
            let mut offset = 0u64;
            while offset < end {
                let frame_len = self.copy_frame(&mut reader, id, oldest, offset, file, &mut pass, report).await?;
                offset += frame_len as u64;
                pass.read_bytes = offset;
                pass.pace().await;
            }
        }
        for h in pass.in_flight {
            h.await?;
        }
        Ok(())
    }

    /// The (offset, frame length) of every live object in segment `id`, by offset. Walks the
    /// index a slice at a time, yielding between slices, and stops once the frames found add up
    /// to the segment's live bytes (which only fall while the walk goes on).
    async fn live_frames(&self, id: u32) -> Vec<(u64, u32)> {
        let mut frames = Vec::new();
        let (mut after, mut found) = (None, 0u64);
        loop {
            let counted = frames.len();
            after = self.inner.index.borrow().frames_in(id, after.as_ref(), COMPACTION_INDEX_STEP_KEYS, &mut frames);
            found += frames[counted..].iter().map(|&(_, len)| len as u64).sum::<u64>();
            if after.is_none() || found >= self.inner.index.borrow().live_bytes(id) {
                break;
            }
            crate::yield_now().await;
        }
        frames.sort_unstable();
        frames
    }

    /// Reads the frame at `offset` of segment `id` and, if it must survive, appends a copy to the
    /// tail (conditionally: see `decide_relocations`). Returns the frame's length.
    #[allow(clippy::too_many_arguments)]
    async fn copy_frame(
        &self,
        reader: &mut recovery::Reader<'_, <E::Storage as Storage>::File>,
        id: u32,
        oldest: u32,
        offset: u64,
        file: &Rc<<E::Storage as Storage>::File>,
        pass: &mut Pass,
        report: &mut CompactReport,
    ) -> Result<u32, StoreError> {
        let corrupt = |offset, what: String| StoreError::Corrupt { path: file.path().to_path_buf(), offset, what };
        let f = reader
            .frame(offset, self.inner.config.batch_bytes)
            .await?
            .map_err(|e| corrupt(offset, format!("compaction found {e:?} inside the synced part of the segment")))?;
        report.records += 1;
        let header = f.header;
        let kind = header.kind;
        let (bucket, k) = split_key_field(f.key).ok_or_else(|| corrupt(offset, "bad key field".into()))?;
        // Where this frame lies, as the index or the Raft pins would name it.
        let at = Location { segment: id, frame_len: header.frame_len, offset, lsn: header.lsn, data_len: header.data_len, chunked: false };
        let expect = match kind {
            Kind::Put | Kind::Manifest => {
                let loc = location_of(kind, aux_data(kind, f.meta, f.data), at);
                (self.inner.index.borrow().get(bucket, k) == Some(loc)).then_some(Expect::At(loc))
            }
            Kind::Delete if id != oldest => self.inner.index.borrow().get(bucket, k).is_none().then_some(Expect::Absent),
            Kind::DropChunks if id != oldest => Some(Expect::ChunksDead),
            Kind::HardState | Kind::RaftCompact => {
                (self.inner.raft.borrow().pinned_at(kind, header.group) == Some(at)).then_some(Expect::RaftAt(at))
            }
            Kind::RaftEntry | Kind::RaftMove => {
                (self.inner.raft.borrow().entry_at(header.group, header.index) == Some(at)).then_some(Expect::RaftEntryAt(at))
            }
            _ => None,
        };
        // A live entry goes forward as a move: replayed, it replaces the entry at its index and
        // drops nothing after it.
        let kind = if matches!(expect, Some(Expect::RaftEntryAt(_))) { Kind::RaftMove } else { kind };
        if let Some(expect) = expect {
            let (bucket, k, meta, data) = (bucket.to_vec(), k.to_vec(), f.meta.to_vec(), f.data.to_vec());
            let raft = matches!(expect, Expect::RaftAt(_) | Expect::RaftEntryAt(_)).then_some(raft::RaftTag {
                group: header.group,
                term: header.term,
                index: header.index,
            });
            let store = self.clone();
            pass.in_flight.push_back(crate::spawn(async move {
                let record = Rec { kind, bucket: &bucket, key: &k, meta: &meta, data: &data, expect: Some(expect), raft };
                store.append("relocate", &[record]).await
            }));
            report.relocated += 1;
            report.raft_entries_relocated += (kind == Kind::RaftMove) as u64;
            report.bytes_relocated += header.frame_len as u64;
            pass.relocated_bytes += header.frame_len as u64;
            let mut stats = self.inner.stats.get();
            stats.bytes_relocated += header.frame_len as u64;
            self.inner.stats.set(stats);
            if pass.in_flight.len() >= COMPACTION_IN_FLIGHT_MAX {
                pass.in_flight.pop_front().expect("non-empty").await?;
            }
        }
        Ok(header.frame_len)
    }

    /// Re-reads every synced frame of every segment, verifying checksums, at most
    /// `bytes_per_s`. A damaged frame is reported with its file and offset; the rest of that
    /// segment is counted as unverified (past a damaged frame its length is unknown, and
    /// resynchronising on anything that looks like a frame could be fooled by object data).
    pub async fn scrub(&self, bytes_per_s: u64) -> Result<ScrubReport, StoreError> {
        let segments: Vec<(u32, Rc<<E::Storage as Storage>::File>)> =
            self.inner.files.borrow().iter().map(|(id, f)| (*id, f.clone())).collect();
        let mut report = ScrubReport::default();
        let start = crate::time::now();
        let mut pace_bytes = 0u64;
        let mut buf = Some(self.buffer(self.inner.config.batch_bytes).await?);
        for (id, file) in segments {
            // The synced part: up to the recorded end, or the tail for the tail segment.
            let tail = self.inner.tail.get();
            let end = match self.inner.segment_ends.borrow().get(&id) {
                Some(e) => *e,
                None if id == tail.segment => tail.offset,
                None => continue, // removed by compaction meanwhile
            };
            let mut reader = recovery::Reader::new(&*file, buf.take().expect("buffer"));
            let (mut offset, mut last_lsn) = (0, 0);
            while offset < end {
                let max_frame = self.inner.config.batch_bytes;
                let checked = match reader.frame(offset, max_frame).await? {
                    Ok(f) => Ok((f.header.lsn, f.header.frame_len as u64)),
                    Err(e) => Err(e),
                };
                match checked {
                    Ok((lsn, len)) => {
                        report.frames += 1;
                        last_lsn = lsn;
                        offset += len;
                        pace_bytes += len;
                    }
                    Err(e) => {
                        let (what, next) = scrub_damage(&mut reader, offset, end, last_lsn, max_frame, e).await?;
                        report.corrupt.push(ScrubFinding { path: file.path().to_path_buf(), offset, what });
                        // A frame whose head still verifies is known to end where its header says;
                        // past any other damage nothing is verified until the next good frame.
                        report.unverified_bytes += next.skipped;
                        pace_bytes += next.at - offset;
                        offset = next.at;
                        last_lsn = next.lsn.unwrap_or(last_lsn);
                    }
                }
                let due = start.saturating_add(std::time::Duration::from_secs_f64(pace_bytes as f64 / bytes_per_s.max(1) as f64));
                if crate::time::now() < due {
                    crate::sleep_until(due).await;
                }
            }
            report.segments += 1;
            report.bytes += offset.min(end);
            buf = reader.into_buf();
        }
        *self.inner.last_scrub.borrow_mut() = Some(report.clone());
        Ok(report)
    }

    /// Segments the compactor no longer takes: compacting them found a damaged frame (the
    /// error said where).
    pub fn uncompactable_segments(&self) -> Vec<u32> {
        self.inner.uncompactable.borrow().iter().copied().collect()
    }

    /// The last scrub's findings.
    pub fn last_scrub(&self) -> Option<ScrubReport> {
        self.inner.last_scrub.borrow().clone()
    }

    /// Scrubs at `bytes_per_s`, first after `first_after`, then `every` after each pass ends,
    /// until `close`; `on_pass` hears each pass's report (or why it failed) and how long it took.
    pub fn spawn_scrubber(
        &self,
        bytes_per_s: u64,
        first_after: std::time::Duration,
        every: std::time::Duration,
        on_pass: impl Fn(Result<&ScrubReport, &StoreError>, std::time::Duration) + 'static,
    ) -> crate::JoinHandle<()> {
        let store = self.clone();
        crate::spawn(async move {
            crate::sleep(first_after).await;
            while !store.inner.closing.get() {
                let started = crate::time::now();
                let result = store.scrub(bytes_per_s).await;
                on_pass(result.as_ref(), crate::time::now().saturating_duration_since(started));
                crate::sleep(every).await;
            }
        })
    }

    /// Writes an index checkpoint whenever `log_bytes` more have been written since the last
    /// one (checked every `idle`), so start-up after a crash replays at most about that much.
    /// Stops with `close`.
    pub fn spawn_checkpointer(&self, log_bytes: u64, idle: std::time::Duration) -> crate::JoinHandle<u64> {
        let store = self.clone();
        crate::spawn(async move {
            let (mut last, mut written) = (store.stats().bytes_written, 0u64);
            while !store.inner.closing.get() && store.inner.failed.borrow().is_none() {
                crate::sleep(idle).await;
                let now = store.stats().bytes_written;
                if now - last >= log_bytes && store.checkpoint().await.is_ok() {
                    last = now;
                    written += 1;
                }
            }
            written
        })
    }

    /// Runs compaction in the background by `policy` until `close`; returns what it did.
    pub fn spawn_compactor(&self, policy: CompactionPolicy) -> crate::JoinHandle<Vec<CompactReport>> {
        let store = self.clone();
        crate::spawn(async move {
            let mut done: Vec<CompactReport> = Vec::new();
            let foreground = |s: StoreStats| s.bytes_written.saturating_sub(s.bytes_relocated);
            let mut meter = RateMeter::new(foreground(store.stats()));
            while !store.inner.closing.get() && store.inner.failed.borrow().is_none() {
                let foreground_bytes_per_s = meter.update(foreground(store.stats()));
                let CompactionChoice { segment, behind, rotation } = store.compaction_choice(&policy);
                let Some(id) = segment else {
                    crate::sleep(policy.idle).await;
                    continue;
                };
                let boost = if behind { policy.catch_up } else { 1.0 };
                let pace = Pace {
                    read_bytes_per_s: if behind { (boost * foreground_bytes_per_s) as u64 } else { 0 }.max(policy.bytes_per_s),
                    relocate_bytes_per_s: ((boost * policy.relocate_share * foreground_bytes_per_s) as u64).max(policy.bytes_per_s),
                };
                match store.compact_segment_paced(id, pace).await {
                    Ok(Some(r)) => {
                        if rotation {
                            let mut stats = store.inner.stats.get();
                            stats.rotations += 1;
                            store.inner.stats.set(stats);
                        }
                        done.push(r)
                    }
                    // Not removable now (chunks a reader pins): wait before trying again.
                    Ok(None) | Err(_) => crate::sleep(policy.idle).await,
                }
            }
            done
        })
    }

    /// Waits for room in the filling batch: `end_from(used)` is where the records would end.
    async fn reserve(&self, end_from: &dyn Fn(usize) -> usize, records: usize) -> Result<(Rc<Done>, usize), String> {
        std::future::poll_fn(|cx| {
            if let Some(cause) = self.inner.failed.borrow().as_ref() {
                return Poll::Ready(Err(cause.clone()));
            }
            if self.inner.closing.get() {
                return Poll::Ready(Err("the store is closing".to_string()));
            }
            let filling = self.inner.filling.borrow();
            if let Some(b) = filling.as_ref()
                && end_from(b.used) <= self.inner.config.batch_bytes
                && b.entries.len() + records <= BATCH_RECORDS_MAX
            {
                return Poll::Ready(Ok((b.done.clone(), b.entries.len())));
            }
            self.inner.room_waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// Where the scrub goes on after damage at `offset`.
struct ScrubResume {
    /// The next frame to check (`end` if none).
    at: u64,
    /// Bytes from `offset` to `at` whose frames could not be verified.
    skipped: u64,
    /// The lsn of the frame at `at`, if one was found by searching.
    lsn: Option<u64>,
}

/// Says what is damaged at `offset` and where the scrub goes on. If the frame's head still
/// verifies (format 2 or later: only its data is damaged), the finding names the record and the scrub
/// goes on right after the frame. Otherwise the frame's length cannot be trusted: the scrub
/// goes on at the next 64-byte position, up to `end`, holding a valid frame of a later lsn than
/// the last good one (frames of one segment's life only grow in lsn), and the bytes in between
/// are unverified.
async fn scrub_damage<F: File>(
    reader: &mut recovery::Reader<'_, F>,
    offset: u64,
    end: u64,
    last_lsn: u64,
    max_frame: usize,
    e: record::Invalid,
) -> Result<(String, ScrubResume), StoreError> {
    if let Ok(head) = reader.head(offset, max_frame).await? {
        let h = head.header;
        let record = match split_key_field(head.key) {
            Some((b, k)) if !b.is_empty() || !k.is_empty() => format!("{:?} {} (lsn {})", h.kind, object_name(b, k), h.lsn),
            _ => format!("{:?} of group {} index {} (lsn {})", h.kind, h.group, h.index, h.lsn),
        };
        let next = ScrubResume { at: offset + h.frame_len as u64, skipped: h.frame_len as u64, lsn: Some(h.lsn) };
        return Ok((format!("{e:?}: the data of {record} does not match its checksum"), next));
    }
    let mut at = offset + record::FRAME_ALIGN_BYTES as u64;
    while at < end {
        if let Ok(f) = reader.frame(at, max_frame).await?
            && f.header.lsn > last_lsn
        {
            return Ok((format!("{e:?}: no valid frame for {} bytes", at - offset), ScrubResume { at, skipped: at - offset, lsn: None }));
        }
        at += record::FRAME_ALIGN_BYTES as u64;
    }
    Ok((format!("{e:?}: no valid frame from here to the end of the synced log ({} bytes)", end - offset), ScrubResume { at: end, skipped: end - offset, lsn: None }))
}

fn wake(slot: &RefCell<Option<Waker>>) {
    let w = slot.borrow_mut().take();
    if let Some(w) = w {
        w.wake();
    }
}

fn wake_all(list: &RefCell<Vec<Waker>>) {
    let ws = std::mem::take(&mut *list.borrow_mut());
    for w in ws {
        w.wake();
    }
}

/// A batch whose durable write is in flight.
struct Flight {
    batch: Batch,
    /// Where it is written: segment, offset and first lsn.
    at: Tail,
    write: crate::JoinHandle<(Result<usize, IoError>, FixedBuf)>,
    submitted: crate::time::Instant,
}

impl Flight {
    /// Where the batch after this one goes.
    fn end(&self) -> Tail {
        Tail { segment: self.at.segment, offset: self.at.offset + self.batch.used as u64, next_lsn: self.at.next_lsn + self.batch.entries.len() as u64 }
    }
}

/// Where the next batch goes: past the last write in flight, or at the tail when none is.
fn cursor<E: Env>(inner: &Inner<E>, flights: &VecDeque<Flight>) -> Tail {
    flights.back().map_or(inner.tail.get(), Flight::end)
}

/// What the writer waits for.
enum Turn {
    /// The oldest write in flight completed.
    Landed((Result<usize, IoError>, FixedBuf)),
    /// Records wait and another write may start.
    Start,
    Close,
}

/// The group-commit loop: takes whatever records have gathered and writes them with one durable
/// write, up to `writes_in_flight` writes at once; acknowledges each batch once it and every
/// batch before it are durable.
async fn writer<E: Env>(inner: Rc<Inner<E>>) {
    let mut flights: VecDeque<Flight> = VecDeque::new();
    // Set when a batch failed while later ones were in flight: they fail too, and nothing new
    // starts until they have all landed (the next batch then goes at the tail).
    let mut broken = false;
    loop {
        let turn = std::future::poll_fn(|cx| {
            if let Some(f) = flights.front_mut()
                && let Poll::Ready(out) = std::pin::Pin::new(&mut f.write).poll(cx)
            {
                return Poll::Ready(Turn::Landed(out));
            }
            let filling = inner.filling.borrow();
            let pending = filling.as_ref().is_some_and(|b| !b.entries.is_empty());
            if pending && !broken && may_start(&inner, filling.as_ref().expect("filling batch"), &flights) {
                return Poll::Ready(Turn::Start);
            }
            if !pending && flights.is_empty() && inner.closing.get() {
                return Poll::Ready(Turn::Close);
            }
            *inner.writer_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        match turn {
            Turn::Close => return,
            Turn::Start => start(&inner, &mut flights).await,
            Turn::Landed((res, buf)) => {
                let flight = flights.pop_front().expect("a write landed");
                landed(&inner, flight, res, buf, &mut broken, !flights.is_empty());
                broken &= !flights.is_empty();
            }
        }
        let tail = inner.tail.get();
        if tail.offset >= inner.config.segment_bytes / 2 && inner.next_segment.borrow().is_none() {
            let (inner2, id) = (inner.clone(), tail.segment + 1);
            let opening = crate::spawn(async move { prepare_segment(&inner2, id).await });
            *inner.next_segment.borrow_mut() = Some((id, opening));
        }
    }
}

/// Whether the filling batch may start its write beside the `flying` ones. Beside another write
/// it must not roll to a new segment (a batch of the next segment is never written before the
/// last one of this segment is durable, so recovery only meets a pair in flight inside one
/// segment) nor hold relocations (they are decided against the index, which must hold every
/// batch before them: `decide_relocations`).
///
/// And it must have gathered at least as many bytes as the write it would follow. Below that,
/// waiting for the write in flight costs its records less than splitting the batch: measured in
/// an open loop at half the peak rate, starting a second write for whatever had arrived made
/// more, smaller writes, each slower, and raised p50 and p99 (kernel-notes.md). A backlog as
/// large as the write in flight is load the group commit can no longer absorb by batching alone.
fn may_start<E: Env>(inner: &Inner<E>, batch: &Batch, flying: &VecDeque<Flight>) -> bool {
    let Some(last) = flying.back() else { return true };
    let padded = batch.used.next_multiple_of(crate::SECTOR_SIZE) as u64;
    flying.len() < inner.writes_in_flight.get()
        && padded >= last.batch.used as u64
        && inner.failed.borrow().is_none()
        && last.end().offset + padded <= inner.config.segment_bytes
        && batch.entries.iter().all(|p| p.expect.is_none())
}

/// Seals the filling batch and starts its durable write (or fails it at once after a fatal
/// failure, or if the roll to a new segment fails).
async fn start<E: Env>(inner: &Rc<Inner<E>>, flights: &mut VecDeque<Flight>) {
    // Swap buffers: new records gather in a spare while this batch is written.
    let spare = inner.spares.borrow_mut().pop().expect("a spare buffer for each write not in flight");
    let mut batch = inner.filling.borrow_mut().replace(Batch::new(spare)).expect("filling batch");
    wake_all(&inner.room_waiters);
    // After a fatal failure nothing more is written, not even records that were already
    // waiting: the failed batch may still reach the disk whole, and a later batch reusing its
    // lsns would then be cut away at recovery after being acknowledged.
    let failed = inner.failed.borrow().clone();
    if let Some(cause) = failed {
        finish(inner, batch, Err((None, cause, true)));
        return;
    }
    match seal(inner, &mut batch, flights).await {
        Err(e) => finish(inner, batch, Err(e)),
        Ok((at, file)) => {
            let mut buf = batch.buf.take().expect("batch buffer");
            buf.set_len(batch.used);
            if !flights.is_empty() {
                let mut s = inner.stats.get();
                s.writes_beside += 1;
                inner.stats.set(s);
            }
            let submitted = inner.env.now();
            // One operation, durable on completion (RWF_DSYNC): no separate fdatasync, which
            // io_uring would hand to a worker thread.
            let write = crate::spawn(async move { file.write_at_durable(buf, at.offset).await });
            flights.push_back(Flight { batch, at, write, submitted });
        }
    }
}

/// Takes the outcome of the oldest write in flight. `more` says later writes are still in
/// flight. A failed write leaves the tail where it was (the next batch overwrites the garbage);
/// ENOSPC is survivable. Any other failure stops writes: like a failed fdatasync (fsyncgate),
/// what reached the disk is unknown until recovery rescans it. A batch in flight behind a failed
/// one fails too; if its own write succeeded, it lies on disk past a hole, and writes stop until
/// recovery erases it.
fn landed<E: Env>(inner: &Inner<E>, flight: Flight, res: Result<usize, IoError>, buf: FixedBuf, broken: &mut bool, more: bool) {
    let Flight { mut batch, at, submitted, .. } = flight;
    batch.buf = Some(buf);
    let result = match res {
        Ok(_) if *broken => Err((None, "a batch written before this one failed, and this one reached the disk behind it".to_string(), true)),
        Ok(_) => {
            let mut s = inner.stats.get();
            s.batches += 1;
            s.records += batch.entries.len() as u64;
            s.syncs += 1;
            s.bytes_written += batch.used as u64;
            s.write_latency.record_ns(inner.env.now().ns.saturating_sub(submitted.ns));
            inner.stats.set(s);
            Ok(at)
        }
        Err(e) => {
            *broken |= more;
            Err((e.errno(), e.to_string(), e.errno() != Some(libc::ENOSPC)))
        }
    };
    finish(inner, batch, result);
}

/// Makes segment `id`'s file ready to write: a free one reused (renamed) or a new one, its
/// space reserved and its name durable. Every step runs on the ring, so the filesystem's
/// journal waits never stall this core.
async fn prepare_segment<E: Env>(inner: &Inner<E>, id: u32) -> Result<Rc<<E::Storage as Storage>::File>, StoreError> {
    let (storage, dir) = (inner.env.storage(), &inner.config.dir);
    let path = recovery::segment_path(dir, id);
    // A reused file still holds its earlier life's frames: start-up tells them from this one's
    // by their lsns, which are all below any this one writes (recovery.rs).
    let reused = inner.free_segments.borrow_mut().pop();
    let file = match reused {
        Some(free) => {
            storage.rename_async(&free, &path).await?;
            storage.open_async(&path, OpenMode::Existing).await?
        }
        None => storage.open_async(&path, OpenMode::Truncate).await?,
    };
    file.allocate_async(inner.config.segment_bytes).await?;
    storage.sync_dir_async(dir).await?;
    Ok(Rc::new(file))
}

/// Takes a compacted segment's file out of the log: renamed into the pool the next rolls
/// reuse. Reuse spares the filesystem the work of freeing the file's blocks and allocating new
/// ones, which on ext4 (freeing extents, discards at journal commit) delays the foreground's
/// fdatasyncs: measured in kernel-notes.md. Past `SEGMENTS_FREE_MAX` files the trimmer gives
/// the space back a step at a time.
async fn retire<E: Env>(inner: &Rc<Inner<E>>, path: &Path) -> Result<(), StoreError> {
    let (storage, dir) = (inner.env.storage(), &inner.config.dir);
    let name = inner.next_free_name.get();
    inner.next_free_name.set(name + 1);
    let to = recovery::free_path(dir, name);
    storage.rename_async(path, &to).await?;
    inner.free_segments.borrow_mut().push(to);
    // Not synced here: if the rename is lost in a crash, the segment comes back whole, as if
    // never compacted, and everything in it is older than what replaced it. The preparation
    // that reuses the file, and the trimmer before it cuts one, sync the directory first.
    start_trimmer(inner);
    Ok(())
}

/// Free files are cut this much at a time, so that each journal commit frees (and, with the
/// `discard` mount option, discards) a small extent rather than a whole segment.
const TRIM_STEP_BYTES: u64 = 256 << 10;
/// At most this fast: one step per `TRIM_STEP_BYTES / TRIM_BYTES_PER_S` (16 ms). Space comes
/// back at about 1 GiB a minute; meanwhile the files wait in the pool. Measured against 64 MiB/s
/// in 1 MiB steps and against removing whole files: kernel-notes.md.
const TRIM_BYTES_PER_S: u64 = 16 << 20;

/// Starts the trimmer if the pool holds more than `SEGMENTS_FREE_MAX` files and none runs.
fn start_trimmer<E: Env>(inner: &Rc<Inner<E>>) {
    let running = inner.trimmer.borrow().as_ref().is_some_and(|t| !t.is_finished());
    if running || inner.free_segments.borrow().len() <= SEGMENTS_FREE_MAX || inner.closing.get() {
        return;
    }
    let task_inner = inner.clone();
    *inner.trimmer.borrow_mut() = Some(crate::spawn(async move {
        // A failure leaves the file where it is (back in the pool): the next start tries again.
        let _ = trim_free(&task_inner).await;
    }));
}

/// Gives the pool's oldest files back to the filesystem while it holds more than
/// `SEGMENTS_FREE_MAX`: each is cut a step at a time, paced, then removed (empty, so removing
/// frees nothing more). A free file that comes back after a crash is taken up again.
async fn trim_free<E: Env>(inner: &Inner<E>) -> Result<(), StoreError> {
    let (storage, dir) = (inner.env.storage(), &inner.config.dir);
    let step_pause = std::time::Duration::from_secs_f64(TRIM_STEP_BYTES as f64 / TRIM_BYTES_PER_S as f64);
    while !inner.closing.get() {
        let path = {
            let mut free = inner.free_segments.borrow_mut();
            if free.len() <= SEGMENTS_FREE_MAX {
                return Ok(());
            }
            free.remove(0)
        };
        let trimmed = async {
            // Its free name must be durable before it loses frames: a lost rename would bring
            // back a segment cut short, which recovery would take for damage.
            storage.sync_dir_async(dir).await?;
            let file = storage.open_async(&path, OpenMode::Existing).await?;
            let mut len = file.size()?;
            while len > 0 {
                if inner.closing.get() {
                    return Ok(false);
                }
                len = (len - 1) / TRIM_STEP_BYTES * TRIM_STEP_BYTES;
                file.truncate_async(len).await?;
                crate::sleep(step_pause).await;
            }
            drop(file);
            // Not synced: an empty free file that comes back is harmless.
            storage.remove_async(&path).await?;
            let mut stats = inner.stats.get();
            stats.segments_trimmed += 1;
            inner.stats.set(stats);
            Ok::<bool, StoreError>(true)
        }
        .await;
        if !matches!(trimmed, Ok(true)) {
            // Stopped for close, or failed: the file stays in the pool, cut short or whole.
            inner.free_segments.borrow_mut().insert(0, path);
            return trimmed.map(drop);
        }
    }
    Ok(())
}

/// Seals one batch to follow the `flights` (`cursor`), rolling to a new segment if needed (only
/// with no write in flight: `may_start`). Returns where it goes and the segment's file.
async fn seal<E: Env>(
    inner: &Inner<E>,
    batch: &mut Batch,
    flights: &VecDeque<Flight>,
) -> Result<(Tail, Rc<<E::Storage as Storage>::File>), (Option<i32>, String, bool)> {
    // The batch ends on a sector: its last frame carries the padding, so frames stay contiguous.
    let padded = batch.used.next_multiple_of(crate::SECTOR_SIZE);
    batch.entries.last_mut().expect("a batch has records").frame_len += (padded - batch.used) as u32;
    batch.used = padded;
    let mut at = cursor(inner, flights);
    if at.offset + batch.used as u64 > inner.config.segment_bytes {
        assert!(flights.is_empty(), "a roll waits for the writes in flight");
        at = roll(inner, at).await.map_err(|e| (e.errno(), e.to_string(), false))?;
    }
    decide_relocations(inner, batch);
    // Entries of the batches in flight come first: the raft index does not hold them yet.
    let earlier = flights.iter().flat_map(|f| f.batch.entries.iter());
    let raft_tags = |p: &Pending| Some((p.kind, p.raft?));
    raft::assert_entry_order(&inner.raft.borrow(), earlier.filter_map(raft_tags).chain(batch.entries.iter().filter_map(raft_tags)));
    let nonce = inner.env.random_u64();
    let first = at.next_lsn;
    // Everything below the tail is durable; batches between it and this one are in flight.
    let durable_lsn = inner.tail.get().next_lsn;
    let n = batch.entries.len();
    let buf = batch.buf.as_mut().expect("batch buffer");
    let bytes = buf.as_mut_capacity();
    for (i, p) in batch.entries.iter().enumerate() {
        let header = Header {
            version: record::VERSION,
            kind: p.kind,
            lsn: first + i as u64,
            batch_nonce: nonce,
            batch_first_lsn: first,
            batch_len: n as u32,
            frame_len: p.frame_len,
            group: p.raft.map_or(0, |t| t.group),
            term: p.raft.map_or(0, |t| t.term),
            index: p.raft.map_or(first + i as u64, |t| t.index),
            key_len: p.key_len,
            meta_len: p.meta_len,
            data_len: p.data_len,
            durable_lsn,
        };
        let start = p.offset as usize;
        record::seal(&header, &mut bytes[start..start + header.frame_len as usize]);
    }
    let file = inner.files.borrow().get(&at.segment).cloned().expect("the next batch's segment is open");
    Ok((at, file))
}

/// A relocation goes ahead only if its condition (`Expect`) still holds when its batch is sealed
/// and no earlier record of this batch touches the same key; otherwise it becomes `Void`.
/// Deciding here, before lsns are fixed, makes replay at recovery reach the same result as the
/// running store.
fn decide_relocations<E: Env>(inner: &Inner<E>, batch: &mut Batch) {
    if batch.entries.iter().all(|p| p.expect.is_none()) {
        return;
    }
    let bytes = batch.buf.as_ref().expect("batch buffer").as_slice_capacity();
    let key_of = |p: &Pending| {
        let start = p.offset as usize + HEADER_BYTES;
        &bytes[start..start + p.key_len as usize]
    };
    let index = inner.index.borrow();
    // Decided in order: a record voided here no longer counts for the records after it.
    let mut void = vec![false; batch.entries.len()];
    for (i, p) in batch.entries.iter().enumerate() {
        let Some(expect) = p.expect else { continue };
        let field = key_of(p);
        let (bucket, key) = split_key_field(field).expect("we encoded this key field");
        let earlier = || batch.entries[..i].iter().zip(&void).filter(|(q, v)| q.kind != Kind::Void && !**v).map(|(q, _)| q);
        let touched = earlier().any(|q| key_of(q) == field);
        let holds = match expect {
            Expect::At(loc) => {
                // A chunk whose id an earlier record of this batch drops must not come back after it.
                let dropped = bucket == CHUNK_BUCKET
                    && manifest::chunk_id(key)
                        .is_some_and(|id| earlier().any(|q| q.kind == Kind::DropChunks && dropped_ids(bytes, q).contains(&id)));
                index.get(bucket, key) == Some(loc) && !touched && !dropped
            }
            Expect::Absent => index.get(bucket, key).is_none() && !touched,
            Expect::ChunksDead => dropped_ids(bytes, p).iter().all(|id| index.list(CHUNK_BUCKET, &id.to_be_bytes(), None, 1).is_empty()),
            Expect::RaftAt(loc) => {
                // Every Raft record has the same (empty) key field: compare groups and kinds.
                let group = p.raft.expect("a Raft relocation carries its tag").group;
                let superseded = earlier().any(|q| q.kind == p.kind && q.raft.is_some_and(|t| t.group == group));
                inner.raft.borrow().pinned_at(p.kind, group) == Some(loc) && !superseded
            }
            Expect::RaftEntryAt(loc) => {
                let tag = p.raft.expect("a Raft relocation carries its tag");
                let dropped = earlier().any(|q| q.raft.is_some_and(|t| t.group == tag.group && drops_entry(q.kind, t.index, tag.index)));
                inner.raft.borrow().entry_at(tag.group, tag.index) == Some(loc) && !dropped
            }
        };
        void[i] = !holds;
    }
    drop(index);
    let mut stats = inner.stats.get();
    stats.relocations_voided += void.iter().filter(|v| **v).count() as u64;
    inner.stats.set(stats);
    for (p, _) in batch.entries.iter_mut().zip(void).filter(|(_, v)| *v) {
        p.kind = Kind::Void;
    }
}

/// Whether a Raft record of `kind` whose header index is `at` drops the same group's entry
/// `index`: a Truncate from it or before, a compaction through it or after, or an entry at it or
/// before (which follows a Truncate).
fn drops_entry(kind: Kind, at: u64, index: u64) -> bool {
    match kind {
        Kind::Truncate | Kind::RaftEntry => at <= index,
        Kind::RaftCompact => at >= index,
        _ => false,
    }
}

/// The ids a pending `DropChunks` record drops.
fn dropped_ids(bytes: &[u8], p: &Pending) -> Vec<u64> {
    let start = p.offset as usize + HEADER_BYTES + p.key_len as usize + p.meta_len as usize;
    manifest::decode_ids(&bytes[start..start + p.data_len as usize]).expect("we encoded these ids")
}

/// Starts the next segment file: created, space reserved, directory entry made durable.
async fn roll<E: Env>(inner: &Inner<E>, tail: Tail) -> Result<Tail, StoreError> {
    let segment = tail.segment + 1;
    let next = inner.next_segment.borrow_mut().take();
    let file = match next {
        Some((id, opening)) => {
            assert_eq!(id, segment, "the next segment was prepared for the tail's successor");
            opening.await?
        }
        None => prepare_segment(inner, segment).await?,
    };
    inner.files.borrow_mut().insert(segment, file);
    inner.segment_ends.borrow_mut().insert(tail.segment, tail.offset);
    let t = Tail { segment, offset: 0, next_lsn: tail.next_lsn };
    inner.tail.set(t);
    Ok(t)
}

/// Applies a committed batch to the index (or records its failure) and wakes its puts.
fn finish<E: Env>(inner: &Inner<E>, batch: Batch, result: Result<Tail, (Option<i32>, String, bool)>) {
    let Batch { buf, used, entries, done } = batch;
    let buf = buf.expect("a finished batch holds its buffer");
    match result {
        Ok(at) => {
            let bytes = buf.as_slice();
            let mut index = inner.index.borrow_mut();
            for (i, p) in entries.iter().enumerate() {
                let start = p.offset as usize + HEADER_BYTES;
                let key_field = &bytes[start..start + p.key_len as usize];
                let meta_start = start + p.key_len as usize;
                let data_start = meta_start + p.meta_len as usize;
                let aux = aux_data(p.kind, &bytes[meta_start..data_start], &bytes[data_start..data_start + p.data_len as usize]);
                let frame_len = p.frame_len;
                let lsn = at.next_lsn + i as u64;
                let loc = Location {
                    segment: at.segment,
                    frame_len,
                    offset: at.offset + p.offset as u64,
                    lsn,
                    data_len: p.data_len,
                    chunked: false,
                };
                assert!(p.kind != Kind::Checkpoint, "the store's writer never writes checkpoint frames");
                if let Some(tag) = p.raft {
                    // A voided Raft relocation is no Raft record any more.
                    if p.kind != Kind::Void {
                        inner.raft.borrow_mut().apply(p.kind, tag, aux, loc);
                    }
                    if p.kind == Kind::RaftMove {
                        let mut stats = inner.stats.get();
                        stats.raft_entries_moved += 1;
                        inner.stats.set(stats);
                    }
                    continue;
                }
                let mut pins = inner.pins.borrow_mut();
                apply_record(&mut index, p.kind, key_field, aux, loc, &mut |id| pins.defer(id));
                if may_carry(p.kind) {
                    *inner.carry_bytes.borrow_mut().entry(at.segment).or_default() += frame_len as u64;
                }
            }
            inner.tail.set(Tail { segment: at.segment, offset: at.offset + used as u64, next_lsn: at.next_lsn + entries.len() as u64 });
            done.first_lsn.set(at.next_lsn);
        }
        Err((errno, cause, fatal)) => {
            if fatal {
                *inner.failed.borrow_mut() = Some(cause.clone());
                wake_all(&inner.room_waiters);
            }
            *done.error.borrow_mut() = Some((errno, cause));
        }
    }
    inner.spares.borrow_mut().push(buf);
    done.finished.set(true);
    wake_all(&done.waiters);
    // Puts that found the filling batch full retry now that the spare is back.
    wake_all(&inner.room_waiters);
}

/// Chunks of a large object written while its data arrives (an S3 body is streamed, never held
/// whole). Each full chunk is appended through group commit; up to `CHUNK_WRITES_IN_FLIGHT_MAX`
/// are in flight. The chunks are invisible until a manifest naming the extent is committed
/// (`Store::put_chunked`); `abort` drops them, and an extent never committed (a crash) is left
/// for `Store::collect_orphan_chunks`.
pub struct ChunkWriter<E: Env> {
    store: Store<E>,
    id: u64,
    chunk_bytes: usize,
    staged: Vec<u8>,
    chunks: u32,
    bytes: u64,
    in_flight: VecDeque<crate::JoinHandle<Result<u64, StoreError>>>,
}

/// Chunk appends one writer keeps in flight.
pub const CHUNK_WRITES_IN_FLIGHT_MAX: usize = 4;

impl<E: Env> ChunkWriter<E> {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Adds `data` to the extent, appending every chunk it fills.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        while !data.is_empty() {
            if self.staged.capacity() == 0 {
                self.staged.reserve_exact(self.chunk_bytes);
            }
            let take = (self.chunk_bytes - self.staged.len()).min(data.len());
            self.staged.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.bytes += take as u64;
            if self.staged.len() == self.chunk_bytes {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), StoreError> {
        let chunk = std::mem::take(&mut self.staged);
        let (store, key) = (self.store.clone(), manifest::chunk_key(self.id, self.chunks));
        self.chunks += 1;
        self.in_flight.push_back(crate::spawn(async move {
            let record = Rec { kind: Kind::Put, bucket: CHUNK_BUCKET, key: &key, meta: &[], data: &chunk, expect: None, raft: None };
            store.append("put chunk", &[record]).await
        }));
        if self.in_flight.len() >= CHUNK_WRITES_IN_FLIGHT_MAX {
            self.in_flight.pop_front().expect("non-empty").await?;
        }
        Ok(())
    }

    /// Appends the last (short) chunk and waits until every chunk is durable.
    pub async fn finish(mut self) -> Result<Extent, StoreError> {
        if !self.staged.is_empty() {
            self.flush().await?;
        }
        while let Some(h) = self.in_flight.pop_front() {
            h.await?;
        }
        Ok(Extent { id: self.id, bytes: self.bytes, chunk_bytes: self.chunk_bytes as u32 })
    }

    /// Drops what was written.
    pub async fn abort(mut self) -> Result<(), StoreError> {
        while let Some(h) = self.in_flight.pop_front() {
            let _ = h.await;
        }
        if self.chunks > 0 {
            self.store.drop_chunks(&[self.id]).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_spans_join_near_frames_up_to_the_read_size() {
        let k = 4096u64;
        let frames = [(0, 4096), (k, 8192), (3 * k, 4096), (3 * k + COMPACTION_READ_GAP_BYTES_MAX + k, 4096), (100 * k, 4096)];
        let spans = read_spans(&frames, 1 << 20);
        // The fourth frame starts exactly the largest gap past the third's end: still joined.
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].offset, 0);
        assert_eq!(spans[0].frames, vec![0, k, 3 * k, 3 * k + COMPACTION_READ_GAP_BYTES_MAX + k]);
        assert_eq!(spans[0].len as u64, 3 * k + COMPACTION_READ_GAP_BYTES_MAX + 2 * k);
        assert_eq!(spans[1], ReadSpan { offset: 100 * k, len: 4096, frames: vec![100 * k] });
        // A read never passes read_max: a small one splits what the gap rule would join.
        let small = read_spans(&frames, 8192);
        assert_eq!(small.iter().map(|s| s.frames.len()).collect::<Vec<_>>(), vec![1, 1, 1, 1, 1]);
        assert!(small.iter().all(|s| s.len <= 8192));
        assert!(read_spans(&[], 8192).is_empty());
    }
}
