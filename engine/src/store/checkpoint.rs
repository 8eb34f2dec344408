//! Index checkpoints: the whole index at one batch boundary, so start-up replays only the log
//! written after it instead of every segment.
//!
//! File `index.ckpt`, written as `index.ckpt.tmp`, synced, renamed, directory synced. It is a
//! sequence of log frames (record.rs) of kind `Checkpoint` forming one batch: frame 0 carries
//! the header in its metadata, the others carry packed entries in their data. `batch_len`
//! covers the whole file, so a checkpoint counts only if every frame is present and valid.
//!
//! A checkpoint is used only while the segment holding its tail position exists. Compaction
//! deletes segments oldest first, so then every frame written after the checkpoint, tombstones
//! included, is still in the log; otherwise start-up replays the whole log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::StoreError;
use super::index::{Index, Location};
use super::raft::{RaftCheckpoint, RaftCompacted, RaftEntryLoc, RaftGroup, RaftHardState, RaftIndex};
use super::record::{self, HEADER_BYTES, Header, Kind};
use super::recovery::Reader;
use crate::env::{Env, File, OpenMode, Storage};

pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join("index.ckpt")
}

fn tmp_path(dir: &Path) -> PathBuf {
    dir.join("index.ckpt.tmp")
}

/// The log position a checkpoint covers: (segment, offset, next lsn), and each full segment's end.
pub(super) struct Loaded {
    pub index: Index,
    pub tail: (u32, u64, u64),
    pub ends: BTreeMap<u32, u64>,
    /// The store's next chunk id when the checkpoint was taken (0 in a checkpoint from before
    /// the field): every chunk id with records before the checkpoint is below it.
    pub next_chunk_id: u64,
    /// The Raft state at the checkpoint (empty in a checkpoint from before Raft state was kept,
    /// which was only ever taken while there was none).
    pub raft: RaftCheckpoint,
}

fn put_u16(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&u16::try_from(v).expect("fits in u16").to_le_bytes());
}

fn put_location(out: &mut Vec<u8>, loc: &Location) {
    out.extend_from_slice(&loc.segment.to_le_bytes());
    out.extend_from_slice(&loc.frame_len.to_le_bytes());
    out.extend_from_slice(&loc.offset.to_le_bytes());
    out.extend_from_slice(&loc.lsn.to_le_bytes());
    out.extend_from_slice(&(loc.data_len << 1 | loc.chunked as u64).to_le_bytes());
}

/// Packs records (each self-contained) into chunks that each fit one frame's data.
fn chunks_of(records: impl Iterator<Item = Vec<u8>>, chunk_max: usize) -> Vec<Vec<u8>> {
    let mut chunks = vec![Vec::new()];
    for e in records {
        assert!(e.len() <= chunk_max, "checkpoint record of {} bytes beyond a frame", e.len());
        let last = chunks.last_mut().expect("at least one chunk");
        if last.len() + e.len() > chunk_max {
            chunks.push(e);
        } else {
            last.extend_from_slice(&e);
        }
    }
    chunks.retain(|c| !c.is_empty());
    chunks
}

/// The index's entries, serialized synchronously (a consistent snapshot).
fn entry_records(index: &Index) -> impl Iterator<Item = Vec<u8>> + '_ {
    index.iter().map(|(bucket, key, loc)| {
        let loc: Location = *loc;
        let mut e = Vec::with_capacity(4 + bucket.len() + key.len() + 32);
        put_u16(&mut e, bucket.len());
        e.extend_from_slice(bucket);
        put_u16(&mut e, key.len());
        e.extend_from_slice(key);
        put_location(&mut e, &loc);
        e
    })
}

/// Raft record tags (format.md, "Index checkpoints").
const RAFT_GROUP: u8 = 1;
const RAFT_ENTRY: u8 = 2;
const RAFT_SEGMENT: u8 = 3;

/// The Raft state as checkpoint records: each group (by id, so the file's bytes follow from
/// the state), its live entries, the segment counts.
fn raft_records(raft: &RaftIndex) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut groups: Vec<(&u64, &RaftGroup)> = raft.groups().collect();
    groups.sort_unstable_by_key(|(id, _)| **id);
    for (id, g) in groups {
        let mut r = vec![RAFT_GROUP];
        r.extend_from_slice(&id.to_le_bytes());
        let hard = g.hard_state.zip(g.hard_state_at);
        r.push(hard.is_some() as u8 | (g.compacted.is_some() as u8) << 1);
        if let Some((hs, at)) = hard {
            for v in [hs.term, hs.vote, hs.commit] {
                r.extend_from_slice(&v.to_le_bytes());
            }
            put_location(&mut r, &at);
        }
        if let Some(c) = g.compacted {
            r.extend_from_slice(&c.index.to_le_bytes());
            r.extend_from_slice(&c.term.to_le_bytes());
            put_location(&mut r, &c.at);
        }
        out.push(r);
        for (index, e) in &g.entries {
            let mut r = vec![RAFT_ENTRY];
            for v in [*id, index, e.term] {
                r.extend_from_slice(&v.to_le_bytes());
            }
            r.push(e.kind);
            put_location(&mut r, &e.at);
            out.push(r);
        }
    }
    for (segment, frames, truncates) in raft.segment_counts() {
        let mut r = vec![RAFT_SEGMENT];
        r.extend_from_slice(&segment.to_le_bytes());
        r.extend_from_slice(&frames.to_le_bytes());
        r.extend_from_slice(&truncates.to_le_bytes());
        out.push(r);
    }
    out
}

fn header_bytes(tail: (u32, u64, u64), objects: u64, ends: &BTreeMap<u32, u64>, next_chunk_id: u64, raft_frames: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&tail.0.to_le_bytes());
    h.extend_from_slice(&tail.1.to_le_bytes());
    h.extend_from_slice(&tail.2.to_le_bytes());
    h.extend_from_slice(&objects.to_le_bytes());
    h.extend_from_slice(&(ends.len() as u32).to_le_bytes());
    for (id, end) in ends {
        h.extend_from_slice(&id.to_le_bytes());
        h.extend_from_slice(&end.to_le_bytes());
    }
    h.extend_from_slice(&next_chunk_id.to_le_bytes());
    // Only with Raft state: a checkpoint without any stays readable by builds from before the
    // field, and one with Raft state fails their header check (they then replay the log).
    if raft_frames > 0 {
        h.extend_from_slice(&raft_frames.to_le_bytes());
    }
    h
}

/// A serialized index at one batch boundary, taken without awaiting so it is consistent.
pub(super) struct Snapshot {
    meta: Vec<u8>,
    /// The index's entries, then the Raft state's records (the header counts those).
    chunks: Vec<Vec<u8>>,
    objects: u64,
}

pub(super) fn snapshot(
    index: &Index,
    tail: (u32, u64, u64),
    ends: &BTreeMap<u32, u64>,
    next_chunk_id: u64,
    raft: &RaftIndex,
    batch_bytes: usize,
) -> Snapshot {
    let chunk_max = batch_bytes - HEADER_BYTES;
    let mut chunks = chunks_of(entry_records(index), chunk_max);
    let raft_chunks = chunks_of(raft_records(raft).into_iter(), chunk_max);
    let raft_frames = u32::try_from(raft_chunks.len()).expect("Raft frames fit in u32");
    chunks.extend(raft_chunks);
    let meta = header_bytes(tail, index.objects(), ends, next_chunk_id, raft_frames);
    assert!(meta.len() <= chunk_max, "checkpoint header too large");
    Snapshot { meta, chunks, objects: index.objects() }
}

/// Writes `snap` durably as the checkpoint; returns its object count.
pub(super) async fn write<E: Env>(env: &E, dir: &Path, batch_bytes: usize, snap: Snapshot) -> Result<u64, StoreError> {
    let Snapshot { meta, chunks, objects } = snap;
    let frames = 1 + chunks.len();
    let nonce = env.random_u64();
    let storage = env.storage();
    let file = storage.open(&tmp_path(dir), OpenMode::Truncate)?;
    let mut buf = storage.arena().alloc_wait(batch_bytes).await.map_err(|e| StoreError::Config(format!("checkpoint buffer: {e}")))?;
    let (mut used, mut offset) = (0usize, 0u64);
    for i in 0..frames {
        let (m, d): (&[u8], &[u8]) = if i == 0 { (&meta, &[]) } else { (&[], &chunks[i - 1]) };
        // Each frame padded to a sector: the file is written in O_DIRECT pieces of whole frames.
        let len = record::frame_len(m.len() + d.len()).next_multiple_of(crate::SECTOR_SIZE);
        if used + len > batch_bytes {
            buf.set_len(used);
            let (r, b) = file.write_at(buf, offset).await;
            buf = b;
            r?;
            offset += used as u64;
            used = 0;
        }
        let header = Header {
            version: record::VERSION,
            kind: Kind::Checkpoint,
            lsn: 1 + i as u64,
            batch_nonce: nonce,
            batch_first_lsn: 1,
            batch_len: frames as u32,
            frame_len: len as u32,
            group: 0,
            term: 0,
            index: 0,
            key_len: 0,
            meta_len: m.len() as u32,
            data_len: d.len() as u64,
            durable_lsn: 1,
        };
        record::encode(&header, &[], m, d, &mut buf.as_mut_capacity()[used..used + len]);
        used += len;
    }
    buf.set_len(used);
    let (r, _) = file.write_at(buf, offset).await;
    r?;
    file.sync_data().await?;
    drop(file);
    storage.rename(&tmp_path(dir), &path(dir))?;
    storage.sync_dir(dir)?;
    Ok(objects)
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Some(head)
}

fn u16_(b: &mut &[u8]) -> Option<usize> {
    take(b, 2).map(|v| u16::from_le_bytes([v[0], v[1]]) as usize)
}
fn u32_(b: &mut &[u8]) -> Option<u32> {
    take(b, 4).map(|v| u32::from_le_bytes(v.try_into().expect("4")))
}
fn u64_(b: &mut &[u8]) -> Option<u64> {
    take(b, 8).map(|v| u64::from_le_bytes(v.try_into().expect("8")))
}

/// Loads the checkpoint, or says why there is none to use.
pub(super) async fn load<E: Env>(env: &E, dir: &Path, batch_bytes: usize) -> Result<Result<Loaded, String>, StoreError> {
    let storage = env.storage();
    let file = match storage.open(&path(dir), OpenMode::Existing) {
        Ok(f) => f,
        Err(e) if e.source.raw_os_error() == Some(libc::ENOENT) => return Ok(Err("no checkpoint".into())),
        Err(e) => return Err(e.into()),
    };
    let size = file.size()?;
    let buf = storage.arena().alloc_wait(batch_bytes).await.map_err(|e| StoreError::Config(format!("checkpoint buffer: {e}")))?;
    let mut reader = Reader::new(&file, buf);
    let mut index = Index::default();
    let mut raft = RaftCheckpoint::default();
    let (mut tail, mut ends, mut objects, mut next_chunk_id, mut raft_frames) = ((0, 0, 0), BTreeMap::new(), 0u64, 0u64, 0u32);
    let (mut offset, mut expected, mut first): (u64, u64, Option<Header>) = (0, 1, None);
    loop {
        if offset >= size {
            return Ok(Err("checkpoint ends before its last frame".into()));
        }
        let f = match reader.frame(offset, batch_bytes).await? {
            Ok(f) => f,
            Err(e) => return Ok(Err(format!("checkpoint frame at offset {offset}: {e:?}"))),
        };
        let frame = f.header;
        let consistent = frame.kind == Kind::Checkpoint
            && frame.lsn == expected
            && first.is_none_or(|f| f.batch_nonce == frame.batch_nonce && f.batch_len == frame.batch_len);
        if !consistent {
            return Ok(Err(format!("checkpoint frame at offset {offset} does not belong")));
        }
        let parsed = if expected == 1 {
            let parsed = parse_header(f.meta, &mut tail, &mut ends, &mut objects, &mut next_chunk_id, &mut raft_frames);
            parsed.filter(|_| (raft_frames as u64) < frame.batch_len as u64)
        } else if expected + raft_frames as u64 > frame.batch_len as u64 {
            parse_raft(f.data, &mut raft)
        } else {
            parse_entries(f.data, &mut index)
        };
        if parsed.is_none() {
            return Ok(Err(format!("checkpoint frame at offset {offset} does not parse")));
        }
        first.get_or_insert(frame);
        offset += frame.frame_len as u64;
        if expected == frame.batch_len as u64 {
            break;
        }
        expected += 1;
    }
    if index.objects() != objects {
        return Ok(Err(format!("checkpoint holds {} objects, its header says {objects}", index.objects())));
    }
    Ok(Ok(Loaded { index, tail, ends, next_chunk_id, raft }))
}

fn parse_header(
    mut m: &[u8],
    tail: &mut (u32, u64, u64),
    ends: &mut BTreeMap<u32, u64>,
    objects: &mut u64,
    next_chunk_id: &mut u64,
    raft_frames: &mut u32,
) -> Option<()> {
    *tail = (u32_(&mut m)?, u64_(&mut m)?, u64_(&mut m)?);
    *objects = u64_(&mut m)?;
    for _ in 0..u32_(&mut m)? {
        ends.insert(u32_(&mut m)?, u64_(&mut m)?);
    }
    // Absent from checkpoints written before it existed.
    if !m.is_empty() {
        *next_chunk_id = u64_(&mut m)?;
    }
    // Absent without Raft state.
    if !m.is_empty() {
        *raft_frames = u32_(&mut m)?;
    }
    m.is_empty().then_some(())
}

fn location(d: &mut &[u8]) -> Option<Location> {
    let loc = Location { segment: u32_(d)?, frame_len: u32_(d)?, offset: u64_(d)?, lsn: u64_(d)?, data_len: 0, chunked: false };
    let size_flag = u64_(d)?;
    Some(Location { data_len: size_flag >> 1, chunked: size_flag & 1 == 1, ..loc })
}

/// Raft records (`raft_records`); a group's record comes before its entries, each entry once.
fn parse_raft(mut d: &[u8], raft: &mut RaftCheckpoint) -> Option<()> {
    while !d.is_empty() {
        match take(&mut d, 1)?[0] {
            RAFT_GROUP => {
                let id = u64_(&mut d)?;
                let flags = take(&mut d, 1)?[0];
                let mut g = RaftGroup::default();
                if flags & 1 != 0 {
                    g.hard_state = Some(RaftHardState { term: u64_(&mut d)?, vote: u64_(&mut d)?, commit: u64_(&mut d)? });
                    g.hard_state_at = Some(location(&mut d)?);
                }
                if flags & 2 != 0 {
                    g.compacted = Some(RaftCompacted { index: u64_(&mut d)?, term: u64_(&mut d)?, at: location(&mut d)? });
                }
                if flags & !3 != 0 || raft.groups.insert(id, g).is_some() {
                    return None;
                }
            }
            RAFT_ENTRY => {
                let (group, index, term) = (u64_(&mut d)?, u64_(&mut d)?, u64_(&mut d)?);
                let kind = take(&mut d, 1)?[0];
                let at = location(&mut d)?;
                let entries = &mut raft.groups.get_mut(&group)?.entries;
                if entries.put(index, RaftEntryLoc { term, at, kind }).is_some() {
                    return None;
                }
            }
            RAFT_SEGMENT => raft.segments.push((u32_(&mut d)?, u64_(&mut d)?, u64_(&mut d)?)),
            _ => return None,
        }
    }
    Some(())
}

fn parse_entries(mut d: &[u8], index: &mut Index) -> Option<()> {
    while !d.is_empty() {
        let bn = u16_(&mut d)?;
        let bucket = take(&mut d, bn)?;
        let kn = u16_(&mut d)?;
        let key = take(&mut d, kn)?;
        let loc = location(&mut d)?;
        if index.get(bucket, key).is_some() {
            return None;
        }
        index.put(bucket, key, loc);
    }
    Some(())
}
