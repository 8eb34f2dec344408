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
pub mod record;
mod recovery;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::arena::FixedBuf;
use crate::env::{Env, File, OpenMode, Storage};
use crate::error::{IoError, OpenError};
use index::{Index, Location};
use record::{HEADER_BYTES, Header, Kind};

pub use recovery::RecoveryReport;

/// Default size of a segment file.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1 << 30;
/// Default size of a batch buffer: the largest group commit, and (until large objects are
/// chunked) the largest record.
pub const BATCH_BYTES_DEFAULT: usize = 1 << 20;
/// Records one batch may hold.
pub const BATCH_RECORDS_MAX: usize = 4096;

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
            && self.batch_bytes % sector == 0
            && self.segment_bytes % sector as u64 == 0
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

/// An object as read back and verified: its frame, still in the registered buffer it was read
/// into (no copy; the S3 front end sends straight from it).
pub struct Object {
    buf: FixedBuf,
    meta: std::ops::Range<usize>,
    data: std::ops::Range<usize>,
    pub lsn: u64,
}

impl Object {
    pub fn meta(&self) -> &[u8] {
        &self.buf.as_slice()[self.meta.clone()]
    }

    pub fn data(&self) -> &[u8] {
        &self.buf.as_slice()[self.data.clone()]
    }

    /// The registered buffer and the data's range in it, for sending with a fixed-buffer op.
    pub fn into_parts(self) -> (FixedBuf, std::ops::Range<usize>) {
        (self.buf, self.data)
    }
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object").field("lsn", &self.lsn).field("meta_len", &self.meta.len()).field("data_len", &self.data.len()).finish()
    }
}

/// Relocations one compaction keeps in flight (they share batches with foreground writes).
pub const COMPACTION_IN_FLIGHT_MAX: usize = 32;

/// What one compaction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompactReport {
    pub segment: u32,
    pub records: u64,
    pub relocated: u64,
    pub bytes_relocated: u64,
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
    pub disk_bytes: u64,
    pub live_bytes: u64,
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

/// A record waiting in a batch; its payload is already in the batch buffer.
struct Pending {
    kind: Kind,
    /// For a relocation (compaction): the location the object must still have when the batch is
    /// sealed; otherwise the record becomes `Void`.
    expect: Option<Location>,
    offset: u32,
    key_len: u32,
    meta_len: u32,
    data_len: u64,
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
    index: RefCell<Index>,
    files: RefCell<BTreeMap<u32, Rc<<E::Storage as Storage>::File>>>,
    tail: Cell<Tail>,
    /// Where the batches of each full (non-tail) segment end.
    segment_ends: RefCell<BTreeMap<u32, u64>>,
    filling: RefCell<Option<Batch>>,
    spare: RefCell<Option<FixedBuf>>,
    /// Puts waiting for room in the filling batch.
    room_waiters: RefCell<Vec<Waker>>,
    writer_waker: RefCell<Option<Waker>>,
    failed: RefCell<Option<String>>,
    last_scrub: RefCell<Option<ScrubReport>>,
    closing: Cell<bool>,
    stats: Cell<StoreStats>,
}

/// Counters of the store's work.
#[derive(Default, Debug, Clone, Copy)]
pub struct StoreStats {
    pub batches: u64,
    pub records: u64,
    pub syncs: u64,
    pub bytes_written: u64,
    pub compactions: u64,
    pub relocations_voided: u64,
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
        let alloc = |what| {
            env.storage()
                .alloc(config.batch_bytes)
                .map_err(|e| StoreError::Config(format!("{what}: {e}: the arena needs two buffers of batch_bytes")))
        };
        let (a, b) = (alloc("batch buffer")?, alloc("batch buffer")?);
        let inner = Rc::new(Inner {
            env,
            config,
            index: RefCell::new(recovered.index),
            files: RefCell::new(recovered.files),
            tail: Cell::new(Tail { segment: recovered.tail.0, offset: recovered.tail.1, next_lsn: recovered.tail.2 }),
            segment_ends: RefCell::new(recovered.ends),
            filling: RefCell::new(Some(Batch::new(a))),
            spare: RefCell::new(Some(b)),
            room_waiters: RefCell::new(Vec::new()),
            writer_waker: RefCell::new(None),
            failed: RefCell::new(None),
            last_scrub: RefCell::new(None),
            closing: Cell::new(false),
            stats: Cell::new(StoreStats::default()),
        });
        let writer = crate::spawn(writer(inner.clone()));
        Ok((Store { inner, writer: Rc::new(RefCell::new(Some(writer))) }, recovered.report))
    }
}

impl<E: Env> Store<E> {
    /// Stores `data` under `bucket`/`key`; returns once the record is durable.
    pub async fn put(&self, bucket: &[u8], key: &[u8], meta: &[u8], data: &[u8]) -> Result<u64, StoreError> {
        self.append(Kind::Put, "put", bucket, key, meta, data, None).await
    }

    /// Deletes `bucket`/`key` (a tombstone); returns once the tombstone is durable.
    pub async fn delete(&self, bucket: &[u8], key: &[u8]) -> Result<u64, StoreError> {
        self.append(Kind::Delete, "delete", bucket, key, &[], &[], None).await
    }

    /// The latest acknowledged version of `bucket`/`key`, verified against its checksum.
    pub async fn get(&self, bucket: &[u8], key: &[u8]) -> Result<Option<Object>, StoreError> {
        let Some(loc) = self.inner.index.borrow().get(bucket, key) else { return Ok(None) };
        let file = self.inner.files.borrow().get(&loc.segment).cloned().expect("indexed segment is open");
        let buf = self.buffer(loc.frame_len as usize).await?;
        let (res, buf) = file.read_at(buf, loc.offset, loc.frame_len as usize).await;
        res?;
        let corrupt = |what: String| StoreError::Corrupt { path: file.path().to_path_buf(), offset: loc.offset, what };
        let frame =
            record::decode(buf.as_slice()).map_err(|e| corrupt(format!("get {}: {e:?} (lsn {})", object_name(bucket, key), loc.lsn)))?;
        let (b, k) = split_key_field(frame.key).ok_or_else(|| corrupt("bad key field".into()))?;
        if frame.header.lsn != loc.lsn || b != bucket || k != key || frame.header.kind != Kind::Put {
            return Err(corrupt(format!(
                "get {}: index points at lsn {}, found lsn {} of another record",
                object_name(bucket, key),
                loc.lsn,
                frame.header.lsn
            )));
        }
        let meta_start = HEADER_BYTES + frame.key.len();
        let data_start = meta_start + frame.meta.len();
        let (meta, data) = (meta_start..data_start, data_start..data_start + frame.data.len());
        Ok(Some(Object { buf, meta, data, lsn: loc.lsn }))
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
        if self.inner.failed.borrow().is_some() {
            return Ok(()); // recovery must rescan what the failed batch may have left
        }
        self.checkpoint().await.map(|_| ())
    }

    /// Writes an index checkpoint at the current tail; returns the objects it holds. Start-up
    /// then replays only the log after it.
    pub async fn checkpoint(&self) -> Result<u64, StoreError> {
        let tail = self.inner.tail.get();
        let snap = checkpoint::snapshot(
            &self.inner.index.borrow(),
            (tail.segment, tail.offset, tail.next_lsn),
            &self.inner.segment_ends.borrow(),
            self.inner.config.batch_bytes,
        );
        checkpoint::write(&self.inner.env, &self.inner.config.dir, self.inner.config.batch_bytes, snap).await
    }

    /// A read buffer; waits while the arena is exhausted (bounded by in-flight reads).
    async fn buffer(&self, len: usize) -> Result<FixedBuf, StoreError> {
        self.inner.env.storage().arena().alloc_wait(len).await.map_err(|e| StoreError::Config(format!("read buffer: {e}")))
    }

    #[allow(clippy::too_many_arguments)] // the parts of one record
    async fn append(
        &self,
        kind: Kind,
        op: &'static str,
        bucket: &[u8],
        key: &[u8],
        meta: &[u8],
        data: &[u8],
        expect: Option<Location>,
    ) -> Result<u64, StoreError> {
        let object = || object_name(bucket, key);
        if bucket.len() > u16::MAX as usize {
            return Err(StoreError::TooLarge { op, object: object(), bytes: bucket.len(), max: u16::MAX as usize });
        }
        let payload = key_field_len(bucket, key) + meta.len() + data.len();
        let frame = record::frame_len(payload);
        if frame > self.inner.config.batch_bytes {
            return Err(StoreError::TooLarge { op, object: object(), bytes: payload, max: self.inner.config.batch_bytes - HEADER_BYTES });
        }
        let (done, position) = self.reserve(frame).await.map_err(|cause| StoreError::Failed { cause })?;
        {
            let mut filling = self.inner.filling.borrow_mut();
            let batch = filling.as_mut().expect("reserve left a filling batch");
            let start = batch.used;
            let buf = batch.buf.as_mut().expect("a filling batch holds its buffer");
            let out = &mut buf.as_mut_capacity()[start + HEADER_BYTES..start + frame];
            let mut at = 0;
            for part in [&(bucket.len() as u16).to_le_bytes()[..], bucket, key, meta, data] {
                out[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            batch.entries.push(Pending {
                kind,
                expect,
                offset: start as u32,
                key_len: key_field_len(bucket, key) as u32,
                meta_len: meta.len() as u32,
                data_len: data.len() as u64,
            });
            batch.used += frame;
        }
        wake(&self.inner.writer_waker);
        std::future::poll_fn(|cx| {
            if done.finished.get() {
                return Poll::Ready(());
            }
            done.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await;
        match done.error.borrow().as_ref() {
            None => Ok(done.first_lsn.get() + position as u64),
            // Not written at all: an earlier batch had already stopped the store.
            Some((None, cause)) => Err(StoreError::Failed { cause: cause.clone() }),
            Some((errno, cause)) => Err(StoreError::Batch { op, object: object(), errno: *errno, cause: cause.clone() }),
        }
    }

    /// Disk held by segments and bytes of live records in them (space amplification =
    /// disk / live).
    pub fn space(&self) -> Space {
        let segments = self.inner.files.borrow().len();
        Space {
            segments,
            disk_bytes: segments as u64 * self.inner.config.segment_bytes,
            live_bytes: self.inner.index.borrow().live_bytes_total(),
        }
    }

    /// Ids of the segment files, oldest first.
    pub fn segment_ids(&self) -> Vec<u32> {
        self.inner.files.borrow().keys().copied().collect()
    }

    /// The oldest segment, if it is full (not the tail) and at most `max_live_ratio` of it is
    /// live. Only the oldest: a tombstone may be dropped only once no older segment could hold
    /// a version it deletes.
    pub fn compaction_candidate(&self, max_live_ratio: f64) -> Option<u32> {
        let oldest = *self.inner.files.borrow().keys().next()?;
        if oldest == self.inner.tail.get().segment {
            return None;
        }
        let live = self.inner.index.borrow().live_bytes(oldest) as f64;
        (live <= max_live_ratio * self.inner.config.segment_bytes as f64).then_some(oldest)
    }

    /// Copies the live records of the oldest full segment to the tail (at most `bytes_per_s`
    /// read), then deletes the segment. Relocations go through group commit beside the
    /// foreground writes and are conditional (see `decide_relocations`). On any error the
    /// segment stays.
    pub async fn compact_oldest(&self, bytes_per_s: u64) -> Result<Option<CompactReport>, StoreError> {
        let Some(id) = self.compaction_candidate(1.0) else { return Ok(None) };
        let end = *self.inner.segment_ends.borrow().get(&id).expect("a full segment has a known end");
        let file = self.inner.files.borrow()[&id].clone();
        let buf = self.buffer(self.inner.config.batch_bytes).await?;
        let mut reader = recovery::Reader::new(&*file, buf);
        let mut report = CompactReport { segment: id, ..Default::default() };
        let mut in_flight: std::collections::VecDeque<crate::JoinHandle<Result<u64, StoreError>>> = std::collections::VecDeque::new();
        let start = crate::time::now();
        let mut offset = 0u64;
        while offset < end {
            let f = reader.frame(offset, self.inner.config.batch_bytes).await?.map_err(|e| StoreError::Corrupt {
                path: file.path().to_path_buf(),
                offset,
                what: format!("compaction found {e:?} inside the synced part of the segment"),
            })?;
            report.records += 1;
            let header = f.header;
            let loc = Location { segment: id, frame_len: header.frame_len, offset, lsn: header.lsn, data_len: header.data_len };
            let (bucket, k) = split_key_field(f.key).ok_or_else(|| StoreError::Corrupt {
                path: file.path().to_path_buf(),
                offset,
                what: "bad key field".into(),
            })?;
            if header.kind == Kind::Put && self.inner.index.borrow().get(bucket, k) == Some(loc) {
                let (bucket, k, meta, data) = (bucket.to_vec(), k.to_vec(), f.meta.to_vec(), f.data.to_vec());
                let store = self.clone();
                in_flight.push_back(crate::spawn(async move {
                    store.append(Kind::Put, "relocate", &bucket, &k, &meta, &data, Some(loc)).await
                }));
                report.relocated += 1;
                report.bytes_relocated += header.frame_len as u64;
                if in_flight.len() >= COMPACTION_IN_FLIGHT_MAX {
                    in_flight.pop_front().expect("non-empty").await?;
                }
            }
            offset += header.frame_len as u64;
            // Throttle: never read faster than bytes_per_s since the pass began.
            let due = start.saturating_add(std::time::Duration::from_secs_f64(offset as f64 / bytes_per_s.max(1) as f64));
            if crate::time::now() < due {
                crate::sleep_until(due).await;
            }
        }
        for h in in_flight {
            h.await?;
        }
        let still_live = self.inner.index.borrow().live_bytes(id);
        assert_eq!(still_live, 0, "segment {id} still holds live records after compaction");
        self.inner.files.borrow_mut().remove(&id);
        self.inner.segment_ends.borrow_mut().remove(&id);
        self.inner.env.storage().remove(file.path())?;
        self.inner.env.storage().sync_dir(&self.inner.config.dir)?;
        report.bytes_reclaimed = self.inner.config.segment_bytes;
        let mut stats = self.inner.stats.get();
        stats.compactions += 1;
        self.inner.stats.set(stats);
        Ok(Some(report))
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
            let mut offset = 0;
            while offset < end {
                match reader.frame(offset, self.inner.config.batch_bytes).await? {
                    Ok(f) => {
                        report.frames += 1;
                        offset += f.header.frame_len as u64;
                        pace_bytes += f.header.frame_len as u64;
                    }
                    Err(e) => {
                        report.corrupt.push(ScrubFinding { path: file.path().to_path_buf(), offset, what: format!("{e:?}") });
                        report.unverified_bytes += end - offset;
                        break;
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

    /// The last scrub's findings.
    pub fn last_scrub(&self) -> Option<ScrubReport> {
        self.inner.last_scrub.borrow().clone()
    }

    /// Scrubs every `every` at `bytes_per_s` until `close`.
    pub fn spawn_scrubber(&self, bytes_per_s: u64, every: std::time::Duration) -> crate::JoinHandle<()> {
        let store = self.clone();
        crate::spawn(async move {
            while !store.inner.closing.get() {
                let _ = store.scrub(bytes_per_s).await;
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

    /// Runs compaction in the background: whenever the oldest full segment is at most
    /// `max_live_ratio` live, it is compacted at `bytes_per_s`. Stops with `close`.
    pub fn spawn_compactor(
        &self,
        max_live_ratio: f64,
        bytes_per_s: u64,
        idle: std::time::Duration,
    ) -> crate::JoinHandle<Vec<CompactReport>> {
        let store = self.clone();
        crate::spawn(async move {
            let mut done = Vec::new();
            while !store.inner.closing.get() && store.inner.failed.borrow().is_none() {
                if store.compaction_candidate(max_live_ratio).is_some() {
                    match store.compact_oldest(bytes_per_s).await {
                        Ok(Some(r)) => done.push(r),
                        Ok(None) => {}
                        Err(_) => crate::sleep(idle).await,
                    }
                } else {
                    crate::sleep(idle).await;
                }
            }
            done
        })
    }

    /// Waits for room for a `frame`-byte record in the filling batch.
    async fn reserve(&self, frame: usize) -> Result<(Rc<Done>, usize), String> {
        std::future::poll_fn(|cx| {
            if let Some(cause) = self.inner.failed.borrow().as_ref() {
                return Poll::Ready(Err(cause.clone()));
            }
            if self.inner.closing.get() {
                return Poll::Ready(Err("the store is closing".to_string()));
            }
            let filling = self.inner.filling.borrow();
            if let Some(b) = filling.as_ref() {
                if b.used + frame <= self.inner.config.batch_bytes && b.entries.len() < BATCH_RECORDS_MAX {
                    return Poll::Ready(Ok((b.done.clone(), b.entries.len())));
                }
            }
            self.inner.room_waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
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

/// The group-commit loop: takes whatever records have gathered, writes them with one write and
/// one fdatasync, then acknowledges them all.
async fn writer<E: Env>(inner: Rc<Inner<E>>) {
    loop {
        let has_work = std::future::poll_fn(|cx| {
            let pending = inner.filling.borrow().as_ref().is_some_and(|b| !b.entries.is_empty());
            if pending {
                return Poll::Ready(true);
            }
            if inner.closing.get() {
                return Poll::Ready(false);
            }
            *inner.writer_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        if !has_work {
            return;
        }
        // Swap buffers: new records gather in the spare while this batch is written.
        let spare = inner.spare.borrow_mut().take().expect("the spare buffer is free between batches");
        let mut batch = inner.filling.borrow_mut().replace(Batch::new(spare)).expect("filling batch");
        wake_all(&inner.room_waiters);
        // After a fatal failure nothing more is written, not even records that were already
        // waiting: the failed batch may still reach the disk whole, and a later batch reusing
        // its lsns would then be cut away at recovery after being acknowledged.
        let failed = inner.failed.borrow().clone();
        let result = match failed {
            Some(cause) => Err((None, cause, true)),
            None => commit(&inner, &mut batch).await,
        };
        finish(&inner, batch, result);
    }
}

/// Seals, writes and syncs one batch at the log's tail, rolling to a new segment if needed.
async fn commit<E: Env>(inner: &Inner<E>, batch: &mut Batch) -> Result<Tail, (Option<i32>, String, bool)> {
    let mut tail = inner.tail.get();
    if tail.offset + batch.used as u64 > inner.config.segment_bytes {
        tail = roll(inner, tail).map_err(|e| (e.errno(), e.to_string(), false))?;
    }
    decide_relocations(inner, batch);
    let nonce = inner.env.random_u64();
    let first = tail.next_lsn;
    let n = batch.entries.len();
    let mut buf = batch.buf.take().expect("batch buffer");
    let bytes = buf.as_mut_capacity();
    for (i, p) in batch.entries.iter().enumerate() {
        let payload = p.key_len as usize + p.meta_len as usize + p.data_len as usize;
        let header = Header {
            kind: p.kind,
            lsn: first + i as u64,
            batch_nonce: nonce,
            batch_first_lsn: first,
            batch_len: n as u32,
            frame_len: record::frame_len(payload) as u32,
            group: 0,
            term: 0,
            index: first + i as u64,
            key_len: p.key_len,
            meta_len: p.meta_len,
            data_len: p.data_len,
        };
        let start = p.offset as usize;
        record::seal(&header, &mut bytes[start..start + header.frame_len as usize]);
    }
    let file = inner.files.borrow().get(&tail.segment).cloned().expect("tail segment is open");
    buf.set_len(batch.used);
    // One operation, durable on completion (RWF_DSYNC): no separate fdatasync, which io_uring
    // would hand to a worker thread.
    let (res, buf) = file.write_at_durable(buf, tail.offset).await;
    batch.buf = Some(buf);
    // A failed write leaves the tail where it was (the next batch overwrites the garbage); ENOSPC
    // is survivable. Any other failure stops writes: like a failed fdatasync (fsyncgate), what
    // reached the disk is unknown until recovery rescans it.
    res.map_err(|e| (e.errno(), e.to_string(), e.errno() != Some(libc::ENOSPC)))?;
    let mut s = inner.stats.get();
    s.batches += 1;
    s.records += n as u64;
    s.syncs += 1;
    s.bytes_written += batch.used as u64;
    inner.stats.set(s);
    Ok(Tail { segment: tail.segment, offset: tail.offset, next_lsn: first })
}

/// A relocation goes ahead only if its object still lies where compaction found it and no
/// earlier record of this batch touches the same key; otherwise it becomes `Void`. Deciding here,
/// before lsns are fixed, makes replay at recovery reach the same result as the running store.
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
    let mut void = Vec::new();
    for (i, p) in batch.entries.iter().enumerate() {
        let Some(expect) = p.expect else { continue };
        let field = key_of(p);
        let (bucket, key) = split_key_field(field).expect("we encoded this key field");
        let current = index.get(bucket, key) == Some(expect);
        let touched = batch.entries[..i].iter().any(|q| q.kind != Kind::Void && key_of(q) == field);
        if !current || touched {
            void.push(i);
        }
    }
    drop(index);
    let mut stats = inner.stats.get();
    stats.relocations_voided += void.len() as u64;
    inner.stats.set(stats);
    for i in void {
        let p = &mut batch.entries[i];
        p.kind = Kind::Void;
    }
}

/// Starts the next segment file: created, space reserved, directory entry made durable.
fn roll<E: Env>(inner: &Inner<E>, tail: Tail) -> Result<Tail, StoreError> {
    let segment = tail.segment + 1;
    let path = recovery::segment_path(&inner.config.dir, segment);
    let file = inner.env.storage().open(&path, OpenMode::Truncate)?;
    file.allocate(inner.config.segment_bytes)?;
    inner.env.storage().sync_dir(&inner.config.dir)?;
    inner.files.borrow_mut().insert(segment, Rc::new(file));
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
                let (bucket, key) = split_key_field(&bytes[start..start + p.key_len as usize]).expect("we encoded this key field");
                let lsn = at.next_lsn + i as u64;
                match p.kind {
                    Kind::Put => {
                        let frame_len = record::frame_len(p.key_len as usize + p.meta_len as usize + p.data_len as usize) as u32;
                        let loc =
                            Location { segment: at.segment, frame_len, offset: at.offset + p.offset as u64, lsn, data_len: p.data_len };
                        index.put(bucket, key, loc);
                    }
                    Kind::Delete => {
                        index.delete(bucket, key);
                    }
                    Kind::Void => {}
                    Kind::Truncate | Kind::RaftEntry | Kind::Checkpoint => unreachable!("the store's writer never writes {:?}", p.kind),
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
    *inner.spare.borrow_mut() = Some(buf);
    done.finished.set(true);
    wake_all(&done.waiters);
    // Puts that found the filling batch full retry now that the spare is back.
    wake_all(&inner.room_waiters);
}
