//! Rebuilding the index from the log at start-up, and finding where the log ends.
//!
//! Batches are all-or-nothing: a batch counts only if every frame of it is present, valid and
//! in sequence. The first batch that does not is the end of the log *unless* a valid frame
//! written after it proves it durable: each frame says below which lsn every record was durable
//! when its batch was written (`Header::durable_lsn`). With no such proof the broken batch was
//! never acknowledged (acknowledgement follows the durable write of the whole batch and of every
//! batch before it), so dropping it loses nothing promised. Later batches that were in flight
//! beside it are dropped with it, and erased, so that the log growing again over the cut can
//! never find them in sequence and bring them back. With the proof, the bad frame is corruption
//! of acknowledged data, not a torn write, and open fails with its location rather than serve
//! stale versions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::index::{Index, Location};
use super::record::{self, FRAME_ALIGN_BYTES, HEADER_BYTES, Header, Invalid, Kind};
use super::{StoreConfig, StoreError};
use crate::arena::FixedBuf;
use crate::env::{Env, File, OpenMode, Storage};
use crate::limits::SECTOR_SIZE;

/// What recovery found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub batches: u64,
    pub records: u64,
    /// Where the log was cut, if a torn or unsynced tail was dropped: (segment, offset).
    pub cut_at: Option<(u32, u64)>,
    /// The first lsn dropped with the cut. Only an unacknowledged batch is cut, unless a bit
    /// flipped at rest in the very last batch: with one copy that looks exactly like a torn
    /// write (raftlog's replicas will tell the two apart).
    pub cut_lsn: Option<u64>,
    /// Segment files after the tail that held nothing valid and were removed.
    pub segments_removed: usize,
    /// Objects loaded from the index checkpoint (then only the log after it was replayed).
    pub checkpoint_objects: Option<u64>,
    /// Why a checkpoint present was not used, if so.
    pub checkpoint_unused: Option<String>,
    /// Checkpoint entries dropped because compaction removed their segment since.
    pub checkpoint_entries_gone: u64,
    /// Raft groups loaded from the checkpoint, and their live entries dropped because
    /// compaction removed their segment since.
    pub checkpoint_raft_groups: Option<u64>,
    pub checkpoint_raft_entries_gone: u64,
    /// Bytes erased past the cut: valid frames of batches written after the broken one, while it
    /// was still in flight, and so never acknowledged (`erase_unproven`).
    pub erased_bytes: u64,
    /// Records whose data was damaged at rest but whose head (format 2 or later) still verified, in
    /// batches a later batch proves were synced: indexed as they were, so that a read of one
    /// fails with its location while everything else is served (before, the store refused to
    /// open). Only puts (and voided relocations) are taken so: any other record's effect lies in
    /// its data.
    pub damaged: Vec<super::ScrubFinding>,
}

pub(super) struct Recovered<F> {
    pub index: Index,
    pub raft: super::raft::RaftIndex,
    pub files: BTreeMap<u32, Rc<F>>,
    /// (segment, offset, next lsn)
    pub tail: (u32, u64, u64),
    /// Where the batches of each segment before the tail's end.
    pub ends: BTreeMap<u32, u64>,
    /// Bytes of tombstones and chunk drops per segment replayed (`super::may_carry`).
    pub carry_bytes: BTreeMap<u32, u64>,
    /// Segments not replayed from their start (covered by the checkpoint): their carry unknown.
    pub carry_unknown: BTreeSet<u32>,
    /// Above every chunk id the replayed log or the checkpoint names.
    pub next_chunk_id: u64,
    /// Compacted segment files kept for reuse (`free-*.log`).
    pub free: Vec<PathBuf>,
    pub report: RecoveryReport,
}

pub(super) fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("seg-{id:08}.log"))
}

/// A compacted segment's file, kept for a later roll to reuse.
pub(super) fn free_path(dir: &Path, name: u64) -> PathBuf {
    dir.join(format!("free-{name:016}.log"))
}

pub(super) fn free_name(path: &Path) -> Option<u64> {
    numbered(path, "free-", 16)
}

pub(super) fn segment_id(path: &Path) -> Option<u32> {
    numbered(path, "seg-", 8)
}

/// The number in a file name `{prefix}{digits}.log` with exactly `digits` decimal digits.
fn numbered<T: std::str::FromStr>(path: &Path, prefix: &str, digits: usize) -> Option<T> {
    let name = path.file_name()?.to_str()?;
    let number = name.strip_prefix(prefix)?.strip_suffix(".log")?;
    (number.len() == digits && number.bytes().all(|b| b.is_ascii_digit())).then(|| number.parse().ok())?
}

/// Bytes of the sectors a frame of `frame_len` at `offset` spans.
fn sectors_len(offset: u64, len: usize) -> usize {
    let (start, end) = record::sector_span(offset, len);
    (end - start) as usize
}

/// Reads a segment in chunks of one batch buffer; bytes past the end of the file read as zeros.
pub(super) struct Reader<'a, F: File> {
    file: &'a F,
    buf: Option<FixedBuf>,
    chunk_start: u64,
    chunk_len: usize,
}

impl<'a, F: File> Reader<'a, F> {
    pub(super) fn new(file: &'a F, buf: FixedBuf) -> Self {
        Reader { file, buf: Some(buf), chunk_start: 0, chunk_len: 0 }
    }

    pub(super) fn into_buf(mut self) -> Option<FixedBuf> {
        self.buf.take()
    }

    /// Reads `[offset, offset + len)` (sector-aligned, at most the buffer's capacity) and no more,
    /// so that the frames inside it can then be taken without reading again.
    pub(super) async fn load(&mut self, offset: u64, len: usize) -> Result<(), StoreError> {
        let buf = self.buf.take().expect("reader buffer");
        assert!(len <= buf.capacity() && len.is_multiple_of(SECTOR_SIZE) && offset.is_multiple_of(SECTOR_SIZE as u64));
        let (res, mut buf) = self.file.read_at(buf, offset, len).await;
        let n = match res {
            Ok(n) => n,
            Err(e) => {
                self.buf = Some(buf);
                return Err(e.into());
            }
        };
        buf.set_len(len);
        buf.as_mut_capacity()[n..len].fill(0);
        self.buf = Some(buf);
        self.chunk_start = offset;
        self.chunk_len = len;
        Ok(())
    }

    /// The bytes `[offset, offset + len)`; they fit in the buffer from the sector holding
    /// `offset` (`fits`).
    pub(super) async fn bytes(&mut self, offset: u64, len: usize) -> Result<&[u8], StoreError> {
        let inside = offset >= self.chunk_start && offset + len as u64 <= self.chunk_start + self.chunk_len as u64;
        if !inside {
            assert!(self.fits(offset, len));
            let cap = self.buf.as_ref().expect("reader buffer").capacity();
            self.load(record::sector_span(offset, 0).0, cap).await?;
        }
        let at = (offset - self.chunk_start) as usize;
        Ok(&self.buf.as_ref().expect("reader buffer").as_slice()[at..at + len])
    }

    /// Whether `[offset, offset + len)` fits in one load of the buffer.
    fn fits(&self, offset: u64, len: usize) -> bool {
        sectors_len(offset, len) <= self.buf.as_ref().expect("reader buffer").capacity()
    }

    /// The head of the frame at `offset` (header, key, metadata), verified on its own where the
    /// format allows (`record::decode_head`): what the scrubber can still say of a frame whose
    /// data is damaged.
    pub(super) async fn head(&mut self, offset: u64, max_frame: usize) -> Result<Result<record::Head<'_>, Invalid>, StoreError> {
        let head = self.bytes(offset, HEADER_BYTES).await?;
        let len = match record::peek(head) {
            Ok(h) if sectors_len(offset, h.frame_len as usize) <= max_frame && self.fits(offset, h.head_len()) => h.head_len(),
            Ok(_) => return Ok(Err(Invalid::BadHeader)),
            Err(e) => return Ok(Err(e)),
        };
        let bytes = self.bytes(offset, len).await?;
        Ok(record::decode_head(bytes))
    }

    /// The frame at `offset`, verified once and borrowed from the reader's buffer: callers copy
    /// only the parts they keep.
    pub(super) async fn frame(&mut self, offset: u64, max_frame: usize) -> Result<Result<record::Frame<'_>, Invalid>, StoreError> {
        let head = self.bytes(offset, HEADER_BYTES).await?;
        let header = match record::peek(head) {
            // A frame lies inside its batch, so the sectors it spans do too.
            Ok(h) if sectors_len(offset, h.frame_len as usize) <= max_frame && self.fits(offset, h.frame_len as usize) => h,
            Ok(_) => return Ok(Err(Invalid::BadHeader)),
            Err(e) => return Ok(Err(e)),
        };
        let bytes = self.bytes(offset, header.frame_len as usize).await?;
        Ok(record::decode(bytes))
    }
}

struct Scan {
    index: Index,
    raft: super::raft::RaftIndex,
    report: RecoveryReport,
    /// The end of the last complete batch: (segment, offset, next lsn).
    committed: (u32, u64, u64),
    /// Frames of the batch being read: (header, key field, data if the index needs it, segment,
    /// offset).
    pending: Vec<(Header, Vec<u8>, Vec<u8>, u32, u64)>,
    carry_bytes: BTreeMap<u32, u64>,
    /// Above every chunk id named by a replayed chunk or chunk drop.
    next_chunk_id: u64,
    /// Whether a put whose head verifies but whose data does not is taken (`damaged`).
    accept_damaged: bool,
    /// Such puts taken, with the last lsn of their batch.
    damaged: Vec<(super::ScrubFinding, u64)>,
    /// The lsns of records taken with damaged data (`take_damaged`): applied without it.
    damaged_lsns: std::collections::HashSet<u64>,
    /// The highest `durable_lsn` of the complete batches taken: every record below it is proven
    /// to have been durable (so acknowledged, if its writer asked).
    durable_max: u64,
}

impl Scan {
    /// Takes one valid frame; false if it does not continue the log.
    fn take(&mut self, h: Header, key: Vec<u8>, aux: Vec<u8>, segment: u32, offset: u64) -> bool {
        let expected = self.committed.2 + self.pending.len() as u64;
        let fits = h.lsn == expected
            && match self.pending.first() {
                None => h.batch_first_lsn == h.lsn,
                Some((first, ..)) => {
                    h.batch_nonce == first.batch_nonce && h.batch_first_lsn == first.batch_first_lsn && h.batch_len == first.batch_len
                }
            };
        if !fits {
            return false;
        }
        let end = offset + h.frame_len as u64;
        let complete = h.lsn == h.batch_first_lsn + h.batch_len as u64 - 1;
        self.pending.push((h, key, aux, segment, offset));
        if complete {
            self.apply();
            self.committed = (segment, end, h.lsn + 1);
            self.durable_max = self.durable_max.max(h.durable_lsn);
        }
        true
    }

    /// Whether a damaged record was taken in a batch that no later batch proves durable: then
    /// it may be a torn write of a batch never acknowledged, not damage at rest, and recovery
    /// must run again treating it as a break.
    fn damaged_unproven(&self) -> bool {
        self.damaged.iter().any(|(_, batch_last)| self.durable_max <= *batch_last)
    }

    fn apply(&mut self) {
        for (h, key, aux, segment, offset) in self.pending.drain(..) {
            let at = Location { segment, frame_len: h.frame_len, offset, lsn: h.lsn, data_len: h.data_len, chunked: false };
            if h.kind.is_raft() {
                let tag = super::raft::RaftTag { group: h.group, term: h.term, index: h.index };
                self.raft.apply(h.kind, tag, &aux, at);
            } else {
                // A record with damaged data (`take_damaged`) is applied without it.
                let damaged = self.damaged_lsns.contains(&h.lsn);
                if damaged {
                    apply_damaged(&mut self.index, h.kind, &key, at);
                } else {
                    super::apply_record(&mut self.index, h.kind, &key, &aux, at, &mut |_| false);
                }
                if super::may_carry(h.kind) {
                    *self.carry_bytes.entry(segment).or_default() += h.frame_len as u64;
                }
                // A chunk's id is in its key, which a damaged chunk's verified head still holds:
                // the next id must pass it, or a new chunk would take the id a manifest names.
                let named = match h.kind {
                    Kind::Put => super::split_key_field(&key)
                        .filter(|(b, _)| *b == super::CHUNK_BUCKET)
                        .and_then(|(_, k)| super::manifest::chunk_id(k)),
                    Kind::DropChunks if !damaged => super::manifest::decode_ids(&aux).and_then(|ids| ids.into_iter().max()),
                    _ => None,
                };
                if let Some(id) = named {
                    self.next_chunk_id = self.next_chunk_id.max(id + 1);
                }
            }
            self.report.records += 1;
        }
        self.report.batches += 1;
    }
}

/// Applies a record whose head verified but whose data did not (`take_damaged`): what the index
/// can learn without the data.
fn apply_damaged(index: &mut Index, kind: Kind, key_field: &[u8], at: Location) {
    let Some((bucket, key)) = super::split_key_field(key_field) else { return };
    match kind {
        // The key maps to this version, which reads as damaged (a get fails with the place).
        Kind::Put => index.put(bucket, key, Location { chunked: false, ..at }),
        // A large object whose manifest is damaged: its size and chunks are lost with it, so it
        // lists with size 0; reads and heads verify the whole manifest frame and fail.
        Kind::Manifest => index.put(bucket, key, Location { chunked: true, data_len: 0, ..at }),
        // A chunk drop whose ids are lost: the chunks stay, as orphans start-up collects
        // (`Store::collect_orphan_chunks`) once no readable manifest names them.
        Kind::DropChunks | Kind::Void => {}
        _ => unreachable!("take_damaged takes only puts, manifests, chunk drops and voids"),
    }
}

/// Takes the frame at `offset`, whose checksums fail, as a damaged record if its head still
/// verifies and the index can do without its data: a put, a large object's manifest, a chunk
/// drop or a voided relocation (Raft records, whose data is a vote or an entry Raft must not
/// lose silently, still stop start-up). Its frame length if it continued the log.
async fn take_damaged<F: File>(
    scan: &mut Scan,
    reader: &mut Reader<'_, F>,
    segment: u32,
    offset: u64,
    config: &StoreConfig,
) -> Result<Option<u32>, StoreError> {
    let Ok(head) = reader.head(offset, config.batch_bytes).await? else { return Ok(None) };
    let h = head.header;
    if !matches!(h.kind, Kind::Put | Kind::Void | Kind::Manifest | Kind::DropChunks) {
        return Ok(None);
    }
    let what = match (h.kind, super::split_key_field(head.key)) {
        (Kind::DropChunks, _) => format!("a chunk drop (lsn {}) does not match its checksum: its chunks stay until orphans are collected", h.lsn),
        (Kind::Manifest, Some((b, k))) => format!("the manifest of {} (lsn {}) does not match its checksum", super::object_name(b, k), h.lsn),
        (_, Some((b, k))) => format!("the data of {} (lsn {}) does not match its checksum", super::object_name(b, k), h.lsn),
        (_, None) => return Ok(None),
    };
    let key = head.key.to_vec();
    // Marked before `take`, which applies the batch when this frame completes it.
    scan.damaged_lsns.insert(h.lsn);
    if !scan.take(h, key, Vec::new(), segment, offset) {
        scan.damaged_lsns.remove(&h.lsn);
        return Ok(None);
    }
    let finding = super::ScrubFinding { path: segment_path(&config.dir, segment), offset, what };
    scan.damaged.push((finding, h.batch_first_lsn + h.batch_len as u64 - 1));
    Ok(Some(h.frame_len))
}

/// The lsn a segment's first batch starts at, if its first frame is valid.
async fn first_lsn<F: File>(file: &F, config: &StoreConfig, buf: FixedBuf) -> Result<(Option<u64>, FixedBuf), StoreError> {
    let mut reader = Reader::new(file, buf);
    let first = reader.frame(0, config.batch_bytes).await?.ok().map(|f| f.header.batch_first_lsn);
    Ok((first, reader.buf.take().expect("buffer")))
}

/// What one pass over the log found (`scan_log`).
struct Pass {
    scan: Scan,
    /// (position in ids, offset) of the first frame that does not continue the log.
    stop: Option<(usize, u64)>,
    /// Whether the log simply ends (zeros after a complete batch) rather than breaking off.
    clean_end: bool,
    /// Where the batches of each segment before the tail end.
    ends: BTreeMap<u32, u64>,
    /// Segments not replayed from their start (covered by the checkpoint).
    carry_unknown: BTreeSet<u32>,
    /// Segments the checkpoint named that compaction removed since, if one was used.
    checkpoint_gone: Option<BTreeSet<u32>>,
    buf: Option<FixedBuf>,
}

impl Pass {
    /// Why the Raft state rebuilt from the checkpoint cannot be right, if it cannot: a group's
    /// log with a hole, or its last hard state or compaction record in a removed segment. Each
    /// would be a bug (`RaftIndex::forget_segments` says why neither happens); start-up then
    /// replays the whole log, which needs no argument.
    fn checkpoint_raft_doubt(&self) -> Option<String> {
        let gone = self.checkpoint_gone.as_ref()?;
        if self.scan.raft.pinned_in(gone) {
            return Some("a Raft hard state or compaction record it names lies in a segment removed since".into());
        }
        self.scan.raft.check_replayed().err().map(|e| format!("replayed after it, {e}"))
    }
}

/// Replays the log (after the index checkpoint, if one is usable) into a `Scan`, up to the first
/// frame that does not continue it; with `accept_damaged`, puts whose data alone is damaged
/// continue it (`take_damaged`).
async fn scan_log<F: File>(
    env: &impl Env,
    config: &StoreConfig,
    ids: &[u32],
    files: &BTreeMap<u32, Rc<F>>,
    mut buf: FixedBuf,
    accept_damaged: bool,
    use_checkpoint: bool,
) -> Result<Pass, StoreError> {
    let mut scan = Scan {
        index: Index::default(),
        raft: Default::default(),
        report: RecoveryReport { segments: ids.len(), ..Default::default() },
        committed: (ids[0], 0, 1),
        pending: Vec::new(),
        carry_bytes: BTreeMap::new(),
        next_chunk_id: 1,
        accept_damaged,
        damaged: Vec::new(),
        damaged_lsns: std::collections::HashSet::new(),
        durable_max: 0,
    };
    // Start at the checkpoint's tail, or, if compaction removed that segment, at the next one
    // (what followed the tail there was relocated or carried forward past it).
    let mut start = (0usize, 0u64);
    let mut ends = BTreeMap::new();
    let checkpoint = if use_checkpoint {
        super::checkpoint::load(env, &config.dir, config.batch_bytes).await?
    } else {
        Err("no checkpoint".into())
    };
    let checkpoint = match checkpoint {
        Ok(ck) => match ids.iter().position(|&id| id >= ck.tail.0) {
            Some(pos) => Some((pos, ck)),
            None => {
                scan.report.checkpoint_unused = Some(format!("no segment from its tail's ({}) on is left", ck.tail.0));
                None
            }
        },
        Err(reason) => {
            if reason != "no checkpoint" {
                scan.report.checkpoint_unused = Some(reason);
            }
            None
        }
    };
    let mut carry_unknown = BTreeSet::new();
    let mut checkpoint_gone = None;
    if let Some((pos, ck)) = checkpoint {
        scan.report.checkpoint_objects = Some(ck.index.objects());
        scan.index = ck.index;
        scan.next_chunk_id = ck.next_chunk_id.max(1);
        // Entries in segments compaction removed since: deleted or replaced after the checkpoint
        // (their tombstones may have gone with the oldest segment), or relocated past it.
        let existing: BTreeSet<u32> = ids.iter().copied().collect();
        let gone: BTreeSet<u32> = ck.ends.keys().chain([&ck.tail.0]).copied().filter(|id| !existing.contains(id)).collect();
        scan.report.checkpoint_entries_gone = scan.index.forget_segments(&gone);
        scan.report.checkpoint_raft_groups = Some(ck.raft.groups.len() as u64);
        scan.raft = super::raft::RaftIndex::from_checkpoint(ck.raft);
        scan.report.checkpoint_raft_entries_gone = scan.raft.forget_segments(&gone);
        checkpoint_gone = Some(gone);
        ends = ck.ends.into_iter().filter(|(id, _)| ids.contains(id)).collect();
        if ids[pos] == ck.tail.0 {
            scan.committed = ck.tail;
            start = (pos, ck.tail.1);
        } else {
            let (first, b) = first_lsn(&*files[&ids[pos]], config, buf).await?;
            buf = b;
            scan.committed = (ids[pos], 0, first.unwrap_or(ck.tail.2));
            start = (pos, 0);
        }
        carry_unknown = ids[..pos].iter().copied().chain((start.1 > 0).then_some(ids[pos])).collect();
    } else {
        // Compaction removes segments, so the log starts wherever its oldest batch does.
        let (first, b) = first_lsn(&*files[&ids[0]], config, buf).await?;
        buf = b;
        scan.committed.2 = first.unwrap_or(1);
    }
    let mut buf = Some(buf);
    // Set when the scan moved on to the next segment after a clean end; that segment's first
    // frame must then continue the log.
    let mut rolled = false;
    let mut stop: Option<(usize, u64)> = None; // (position in ids, offset) of the first frame that does not continue the log
    // Whether the log simply ends (zeros after a complete batch) rather than breaking off.
    let mut clean_end = false;
    'segments: for (pos, &id) in ids.iter().enumerate().skip(start.0) {
        let file = files[&id].clone();
        let size = file.size()?.min(config.segment_bytes);
        let mut reader = Reader::new(&*file, buf.take().expect("buffer"));
        let mut offset = if pos == start.0 { start.1 } else { 0 };
        // A segment after the first must begin with a new batch right where the last one ended.
        if pos > 0 && !scan.pending.is_empty() {
            clean_end = false;
            buf = reader.buf.take();
            stop = Some((pos, 0));
            break 'segments;
        }
        // Past segments compaction removed (a gap in the ids) the log goes on at a later lsn.
        if pos > start.0 && ids[pos - 1] + 1 != id {
            let (first, b) = first_lsn(&*file, config, reader.buf.take().expect("buffer")).await?;
            if let Some(lsn) = first
                && lsn > scan.committed.2
            {
                scan.committed.2 = lsn;
            }
            reader = Reader::new(&*file, b);
        }
        while offset < size {
            let frame = reader.frame(offset, config.batch_bytes).await?;
            // A file reused from the free pool still holds its earlier life's frames past the
            // log's end: valid, but of batches that began below the committed prefix's end
            // (lsns only grow, and a file is reused only after compaction emptied it).
            let earlier_life = matches!(&frame, Ok(f) if f.header.batch_first_lsn < scan.committed.2);
            clean_end = (matches!(frame, Err(Invalid::NoFrame)) || earlier_life) && scan.pending.is_empty();
            let taken = match frame {
                Ok(f) => scan
                    .take(f.header, f.key.to_vec(), super::aux_data(f.header.kind, f.meta, f.data).to_vec(), id, offset)
                    .then_some(f.header.frame_len),
                Err(Invalid::Checksum) if scan.accept_damaged => take_damaged(&mut scan, &mut reader, id, offset, config).await?,
                Err(_) => None,
            };
            match taken {
                Some(frame_len) => {
                    offset += frame_len as u64;
                    rolled = false;
                }
                None => {
                    // The log continues in the next segment only if this one ended cleanly
                    // (zeros right after a complete batch) and, checked there, the next one
                    // starts with exactly the expected batch. Any other break (a bad checksum,
                    // a frame out of sequence, a next segment that does not continue) goes to
                    // the later-batch check below.
                    if clean_end && !rolled && pos + 1 < ids.len() {
                        ends.insert(id, offset);
                        rolled = true;
                        break;
                    }
                    // Rolled into, but nothing of this life at its start: a clean end only if it
                    // is the last segment (made ready ahead of need, or rolled into just before
                    // the crash); before another segment it is a hole in the log.
                    clean_end &= !rolled || (offset == 0 && pos + 1 == ids.len());
                    buf = reader.buf.take();
                    stop = Some((pos, offset));
                    break 'segments;
                }
            }
        }
        if pos + 1 < ids.len() {
            ends.entry(id).or_insert(offset);
            // A segment used to its very end: the next one must continue the log too.
            rolled = true;
        }
        buf = reader.buf.take();
    }
    Ok(Pass { scan, stop, clean_end, ends, carry_unknown, checkpoint_gone, buf })
}

/// `scan_log`, twice if need be: damaged puts are taken on a first pass; if one is not followed
/// by a later batch, the pass is run again without taking them, so that such a batch is cut
/// like a torn one.
async fn scan_passes<F: File>(
    env: &impl Env,
    config: &StoreConfig,
    ids: &[u32],
    files: &BTreeMap<u32, Rc<F>>,
    buf: FixedBuf,
    use_checkpoint: bool,
) -> Result<Pass, StoreError> {
    let mut pass = scan_log(env, config, ids, files, buf, true, use_checkpoint).await?;
    if pass.scan.damaged_unproven() {
        let buf = pass.buf.take().expect("buffer");
        pass = scan_log(env, config, ids, files, buf, false, use_checkpoint).await?;
    }
    Ok(pass)
}

pub(super) async fn recover<E: Env>(env: &E, config: &StoreConfig) -> Result<Recovered<<E::Storage as Storage>::File>, StoreError> {
    let storage = env.storage();
    let listed = storage.list(&config.dir)?;
    let mut ids: Vec<u32> = listed.iter().filter_map(|p| segment_id(p)).collect();
    ids.sort_unstable();
    let mut free: Vec<PathBuf> = listed.iter().filter(|p| free_name(p).is_some()).cloned().collect();
    let mut files = BTreeMap::new();
    if ids.is_empty() {
        let file = storage.open(&segment_path(&config.dir, 1), OpenMode::Truncate)?;
        file.allocate(config.segment_bytes)?;
        storage.sync_dir(&config.dir)?;
        files.insert(1, Rc::new(file));
        let report = RecoveryReport { segments: 1, ..Default::default() };
        return Ok(Recovered {
            index: Index::default(),
            raft: Default::default(),
            files,
            tail: (1, 0, 1),
            ends: BTreeMap::new(),
            carry_bytes: BTreeMap::new(),
            carry_unknown: BTreeSet::new(),
            next_chunk_id: 1,
            free,
            report,
        });
    }
    for &id in &ids {
        files.insert(id, Rc::new(storage.open(&segment_path(&config.dir, id), OpenMode::Existing)?));
    }
    let buf = storage.alloc(config.batch_bytes).map_err(|e| StoreError::Config(format!("recovery buffer: {e}")))?;
    let mut pass = scan_passes(env, config, &ids, &files, buf, true).await?;
    if let Some(why) = pass.checkpoint_raft_doubt() {
        let buf = pass.buf.take().expect("buffer");
        pass = scan_passes(env, config, &ids, &files, buf, false).await?;
        pass.scan.report.checkpoint_unused = Some(why);
    }
    let Pass { mut scan, stop, clean_end, mut ends, carry_unknown, checkpoint_gone: _, mut buf } = pass;
    scan.report.damaged = scan.damaged.drain(..).map(|(finding, _)| finding).collect();
    let (seg, off, next) = scan.committed;
    if let Some((pos, offset)) = stop {
        let from = if scan.pending.is_empty() { (pos, offset) } else { (pos, scan.pending[0].4) };
        let later = later_batches(&files, &ids, from, next, config, buf.take().expect("buffer")).await?;
        buf = Some(later.buf);
        if let Some((at_seg, at_off, h)) = later.proof {
            let path = segment_path(&config.dir, ids[from.0]);
            return Err(StoreError::Corrupt {
                path,
                offset: from.1,
                what: format!(
                    "the log breaks here but a later batch (lsn {}, segment {at_seg} offset {at_off}) proves every record below lsn {} durable: acknowledged records are damaged, not a torn tail",
                    h.lsn, h.durable_lsn
                ),
            });
        }
        if !clean_end {
            scan.report.cut_at = Some((seg, off));
            scan.report.cut_lsn = Some(next);
        }
        let b = buf.take().expect("buffer");
        scan.report.erased_bytes = erase_unproven(&files, &later.unproven, b).await?;
    }
    // Segments past the tail's hold nothing valid (checked above): out of the log, into the
    // free pool (or removed once it is full), so a later roll starts clean.
    let stale: Vec<u32> = ids.iter().copied().filter(|&id| id > seg).collect();
    let mut free_next = free.iter().filter_map(|p| free_name(p)).max().map_or(0, |n| n + 1);
    for id in &stale {
        files.remove(id);
        let path = segment_path(&config.dir, *id);
        if free.len() < super::SEGMENTS_FREE_MAX {
            let to = free_path(&config.dir, free_next);
            storage.rename(&path, &to)?;
            free.push(to);
            free_next += 1;
        } else {
            storage.remove(&path)?;
        }
    }
    if !stale.is_empty() {
        storage.sync_dir(&config.dir)?;
    }
    scan.report.segments_removed = stale.len();
    // The scan records a segment's end when it moves on to the next; if nothing there continued
    // the log (an empty next segment, made ready ahead of need), that segment is the tail
    // after all, and grows from here: its end is not known yet.
    ends.retain(|&id, _| id < seg);
    scan.raft.check_replayed().map_err(|what| StoreError::Corrupt { path: config.dir.clone(), offset: 0, what })?;
    scan.raft.make_dense();
    Ok(Recovered {
        index: scan.index,
        raft: scan.raft,
        files,
        tail: (seg, off, next),
        ends,
        carry_bytes: scan.carry_bytes,
        carry_unknown,
        next_chunk_id: scan.next_chunk_id,
        free,
        report: scan.report,
    })
}

/// What lies past a break (`later_batches`).
struct Later {
    /// A valid frame whose `durable_lsn` is above the expected lsn: it proves the broken batch
    /// was durable, so the break is damage at rest. (segment, offset, header)
    proof: Option<(u32, u64, Header)>,
    /// Per segment, the byte range from the first to the end of the last valid frame of a batch
    /// that began after the expected lsn but proves nothing: written while the broken batch was
    /// still in flight, never acknowledged.
    unproven: BTreeMap<u32, (u64, u64)>,
    buf: FixedBuf,
}

/// Looks at every frame position (`FRAME_ALIGN_BYTES`) from `from` to the end of the log for
/// valid frames of batches that began after the committed prefix (`batch_first_lsn >
/// next_lsn`): any intact frame of a later batch counts, not only its first. Frames of the
/// broken batch itself (first lsn = `next_lsn`) and stale frames of older failed batches or an
/// earlier life do not. Such a frame proves the broken batch durable if its `durable_lsn` is
/// above `next_lsn`; one that does not was written while the broken batch was in flight.
async fn later_batches<F: File>(
    files: &BTreeMap<u32, Rc<F>>,
    ids: &[u32],
    from: (usize, u64),
    next_lsn: u64,
    config: &StoreConfig,
    buf: FixedBuf,
) -> Result<Later, StoreError> {
    let mut buf = Some(buf);
    let mut unproven = BTreeMap::new();
    for (pos, &id) in ids.iter().enumerate().skip(from.0) {
        let file = &files[&id];
        let size = file.size()?.min(config.segment_bytes);
        let mut reader = Reader::new(&**file, buf.take().expect("buffer"));
        let mut offset = if pos == from.0 { from.1 } else { 0 };
        while offset < size {
            if let Ok(f) = reader.frame(offset, config.batch_bytes).await?
                && f.header.batch_first_lsn > next_lsn
            {
                if f.header.durable_lsn > next_lsn {
                    let proof = Some((id, offset, f.header));
                    return Ok(Later { proof, unproven, buf: reader.buf.take().expect("buffer") });
                }
                let end = offset + f.header.frame_len as u64;
                unproven.entry(id).and_modify(|r: &mut (u64, u64)| r.1 = end).or_insert((offset, end));
            }
            offset += FRAME_ALIGN_BYTES as u64;
        }
        buf = reader.buf.take();
    }
    Ok(Later { proof: None, unproven, buf: buf.take().expect("buffer") })
}

/// Overwrites with zeros, durably, the sectors holding unacknowledged frames found past a cut
/// (`Later::unproven`). Left there, they could come back: the log grows again from the cut with
/// the same lsns, and a later batch of the same length would bring one of them exactly into
/// sequence at its old place. Erasing before any new write makes that impossible; a crash
/// while erasing leaves them unproven still, and the next start-up erases them again. Returns
/// the bytes erased.
async fn erase_unproven<F: File>(files: &BTreeMap<u32, Rc<F>>, unproven: &BTreeMap<u32, (u64, u64)>, mut buf: FixedBuf) -> Result<u64, StoreError> {
    let mut erased = 0;
    let cap = buf.capacity() as u64;
    for (id, &(start, end)) in unproven {
        let (start, end) = record::sector_span(start, (end - start) as usize);
        let file = &files[id];
        let mut at = start;
        while at < end {
            let len = (end - at).min(cap) as usize;
            buf.as_mut_capacity()[..len].fill(0);
            buf.set_len(len);
            let (res, b) = file.write_at_durable(buf, at).await;
            buf = b;
            res?;
            at += len as u64;
        }
        erased += end - start;
    }
    Ok(erased)
}
