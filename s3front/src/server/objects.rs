//! Object operations as they run on the owning core: the far side of the cross-core calls.
//! Everything here takes and returns owned, `Send` values (they travel in mesh messages).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use engine::LinuxEnv;
use engine::store::{ChunkPin, ChunkWriter, Extent, Manifest, StoreError};

use super::Shard;
use super::meta::ObjectMeta;
use super::versions::WriteCondition;
use crate::error::{ErrorCode, S3Error};
use crate::versioning::VersionId;

/// Streams in progress on a core. Each has an id the connection's core names in later calls.
#[derive(Default)]
pub struct Sessions {
    next: u64,
    writes: HashMap<u64, ChunkWriter<LinuxEnv>>,
    reads: HashMap<u64, ChunkPin>,
}

impl Sessions {
    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

/// A stored object's description.
#[derive(Clone, Debug)]
pub struct Info {
    pub meta: ObjectMeta,
    pub size: u64,
    /// For a large object: its manifest (the chunks to read).
    pub manifest: Option<Manifest>,
}

pub fn internal(what: impl std::fmt::Display) -> S3Error {
    S3Error::new(ErrorCode::InternalError, format!("We encountered an internal error: {what}"))
}

pub(super) fn store_error(op: &str, e: StoreError) -> S3Error {
    match e.errno() {
        Some(libc::ENOSPC) => S3Error::new(ErrorCode::ServiceUnavailable, format!("{op}: the disk is full")),
        Some(libc::EROFS) => S3Error::new(ErrorCode::ServiceUnavailable, format!("{op}: the disk is read-only")),
        _ => internal(format!("{op}: {e}")),
    }
}

pub(super) fn decode_meta(bytes: &[u8]) -> Result<ObjectMeta, S3Error> {
    ObjectMeta::decode(bytes).ok_or_else(|| internal("stored metadata does not decode (damaged, or written by a newer corestore)"))
}

/// The metadata and size of `bucket`/`key`, or `None` (`Info::manifest` is `None` here: see
/// `describe`). From the cache, or from the object's frame head (`Store::head`: a sector, not
/// the object), which the cache then keeps.
pub async fn head(shard: Rc<Shard>, bucket: String, key: String) -> Result<Option<Info>, S3Error> {
    let Some((lsn, _)) = shard.store.lsn_of(bucket.as_bytes(), key.as_bytes()) else { return Ok(None) };
    let hit = shard.cache.borrow_mut().get_meta(&bucket, &key, lsn);
    if let Some((cached, size)) = hit {
        return Ok(Some(Info { meta: cached.meta.clone(), size, manifest: None }));
    }
    let Some(h) = shard.store.head(bucket.as_bytes(), key.as_bytes()).await.map_err(|e| store_error("head", e))? else {
        return Ok(None);
    };
    let meta = decode_meta(h.meta())?;
    shard.cache.borrow_mut().insert_meta(&bucket, &key, h.lsn, meta.clone(), h.size);
    Ok(Some(Info { meta, size: h.size, manifest: None }))
}

/// Most times `change_meta` reads an object again because a write replaced it meanwhile.
const CHANGE_META_TRIES_MAX: usize = 8;

/// Changes the metadata of `bucket`/`key` (its tags, its ACL) with `change`, keeping its data
/// and the rest (a large object's chunks are not rewritten: `Store::rewrite_meta`); `false` if
/// there is no such object. A write of the key between reading its metadata and the rewrite
/// makes the rewrite write nothing; the new version is then read and changed instead, so
/// `change` sees (and may refuse, with its error) the version it changes. `what` names the
/// operation in errors.
pub async fn change_meta(
    shard: Rc<Shard>,
    bucket: String,
    key: String,
    what: &'static str,
    change: impl Fn(&mut ObjectMeta) -> Result<(), S3Error>,
) -> Result<bool, S3Error> {
    let (b, k) = (bucket.as_bytes(), key.as_bytes());
    for _ in 0..CHANGE_META_TRIES_MAX {
        let Some(head) = shard.store.head(b, k).await.map_err(|e| store_error(what, e))? else { return Ok(false) };
        let mut meta = decode_meta(head.meta())?;
        let lsn = head.lsn;
        drop(head);
        change(&mut meta)?;
        if shard.store.rewrite_meta(b, k, lsn, &meta.encode()).await.map_err(|e| store_error(what, e))?.is_some() {
            return Ok(true);
        }
    }
    Err(S3Error::new(ErrorCode::OperationAborted, format!("{bucket}/{key} was replaced {CHANGE_META_TRIES_MAX} times while trying to {what}")))
}

/// Describes `bucket`/`key` as `head` does, and a large object with its manifest (its frame is
/// small and read whole): what a copy needs to read the source.
pub async fn describe(shard: Rc<Shard>, bucket: String, key: String) -> Result<Option<Info>, S3Error> {
    match shard.store.lsn_of(bucket.as_bytes(), key.as_bytes()) {
        None => return Ok(None),
        Some((_, false)) => {
            let info = head(shard.clone(), bucket.clone(), key.clone()).await?;
            // Replaced by a large object meanwhile: described below as it is now.
            if shard.store.lsn_of(bucket.as_bytes(), key.as_bytes()).is_none_or(|(_, chunked)| !chunked) {
                return Ok(info);
            }
        }
        Some((_, true)) => {}
    }
    let Some(o) = shard.store.get(bucket.as_bytes(), key.as_bytes()).await.map_err(|e| store_error("describe", e))? else {
        return Ok(None);
    };
    let meta = decode_meta(o.meta())?;
    Ok(Some(Info { meta, size: o.size(), manifest: o.manifest() }))
}

/// Reads `bucket`/`key` whole if it is small, or describes it if large (read its chunks with
/// `open_read`/`read_chunk`); with the data, `Info::manifest` may be `None` either way. A large object the cache can hold is also read whole here, on its
/// owner, and kept: a GET of it from another core then costs one call answered from memory, not
/// a disk read per chunk (with the connection on another core, as 7 in 8 are on 8 cores).
pub async fn get_small(shard: Rc<Shard>, bucket: String, key: String) -> Result<Option<(Info, Option<Arc<Vec<u8>>>)>, S3Error> {
    if let Some((lsn, _)) = shard.store.lsn_of(bucket.as_bytes(), key.as_bytes()) {
        let hit = shard.cache.borrow_mut().get(&bucket, &key, lsn);
        if let Some((meta, data)) = hit {
            // The whole object is here: callers need no manifest to read it.
            let info = Info { meta: meta.meta.clone(), size: data.len() as u64, manifest: None };
            return Ok(Some((info, Some(data))));
        }
    }
    let Some(mut o) = shard.store.get(bucket.as_bytes(), key.as_bytes()).await.map_err(|e| store_error("get", e))? else {
        return Ok(None);
    };
    let meta = decode_meta(o.meta())?;
    let manifest = o.manifest();
    let data = match &manifest {
        None => Some(Arc::new(o.data().to_vec())),
        Some(m) if m.size as usize <= super::cache::CACHE_OBJECT_BYTES_MAX => {
            let _pin = o.take_pin();
            let mut data = Vec::with_capacity(m.size as usize);
            for r in m.reads(0, m.size) {
                let chunk = shard.store.read_chunk(r.id, r.n).await.map_err(|e| store_error("get", e))?;
                data.extend_from_slice(&chunk.data()[r.skip as usize..(r.skip + r.len) as usize]);
            }
            Some(Arc::new(data))
        }
        Some(_) => None,
    };
    if let Some(d) = &data {
        shard.cache.borrow_mut().insert(&bucket, &key, o.lsn, meta.clone(), d.clone());
    }
    Ok(Some((Info { meta, size: o.size(), manifest }, data)))
}

/// Opens a large object for reading: its chunks stay readable until `close_read`, even if it
/// is replaced meanwhile. `None` if it is missing or not large.
pub async fn open_read(shard: Rc<Shard>, bucket: String, key: String) -> Result<Option<(Info, u64)>, S3Error> {
    let Some(mut o) = shard.store.get(bucket.as_bytes(), key.as_bytes()).await.map_err(|e| store_error("get", e))? else {
        return Ok(None);
    };
    let meta = decode_meta(o.meta())?;
    let Some(manifest) = o.manifest() else { return Ok(None) };
    let pin = o.take_pin().expect("a large object read holds its chunks");
    let mut sessions = shard.sessions.borrow_mut();
    let id = sessions.id();
    sessions.reads.insert(id, pin);
    Ok(Some((Info { meta, size: manifest.size, manifest: Some(manifest) }, id)))
}

pub async fn close_read(shard: Rc<Shard>, session: u64) {
    shard.sessions.borrow_mut().reads.remove(&session);
}

/// Bytes `[skip, skip + len)` of chunk `n` of `id`.
pub async fn read_chunk(shard: Rc<Shard>, id: u64, n: u32, skip: u64, len: u64) -> Result<Vec<u8>, S3Error> {
    let chunk = shard.store.read_chunk(id, n).await.map_err(|e| store_error("read chunk", e))?;
    let data = chunk.data();
    let end = (skip + len) as usize;
    if end > data.len() {
        return Err(internal(format!("chunk {n} of {id} holds {} bytes, the manifest needs {end}", data.len())));
    }
    Ok(data[skip as usize..end].to_vec())
}

/// Object writes in progress per bucket on this core, and the buckets a DeleteBucket is
/// emptying. A write begins only while its bucket exists here and is not being deleted, and a
/// delete waits for the writes that began before it: their records would otherwise land after
/// its emptiness check, in a bucket that no longer exists, and come back if the name is created
/// again.
#[derive(Default)]
pub struct BucketWrites {
    in_flight: HashMap<String, u32>,
    deleting: HashSet<String>,
}

/// A write into a bucket, counted until dropped.
pub struct BucketWrite {
    shard: Rc<Shard>,
    bucket: String,
}

impl Drop for BucketWrite {
    fn drop(&mut self) {
        let mut writes = self.shard.bucket_writes.borrow_mut();
        let n = writes.in_flight.get_mut(&self.bucket).expect("a counted bucket write");
        *n -= 1;
        if *n == 0 {
            writes.in_flight.remove(&self.bucket);
        }
    }
}

/// Starts a write into `bucket` on this (the owning) core, or says why it may not.
pub fn begin_bucket_write(shard: &Rc<Shard>, bucket: &str) -> Result<BucketWrite, S3Error> {
    if !shard.buckets.borrow().contains_key(bucket) {
        return Err(S3Error::new(ErrorCode::NoSuchBucket, "The specified bucket does not exist").with_extra("BucketName", bucket));
    }
    let mut writes = shard.bucket_writes.borrow_mut();
    if writes.deleting.contains(bucket) {
        return Err(S3Error::new(ErrorCode::OperationAborted, "The bucket is being deleted; try again").with_extra("BucketName", bucket));
    }
    *writes.in_flight.entry(bucket.to_string()).or_default() += 1;
    Ok(BucketWrite { shard: shard.clone(), bucket: bucket.to_string() })
}

/// Longest a DeleteBucket waits for the writes into the bucket that began before it.
const BUCKET_WRITES_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
const BUCKET_WRITES_POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// Marks `bucket` as being deleted on this core (no write into it begins), or unmarks it.
pub async fn set_bucket_deleting(shard: Rc<Shard>, bucket: String, deleting: bool) {
    let mut writes = shard.bucket_writes.borrow_mut();
    if deleting {
        writes.deleting.insert(bucket);
    } else {
        writes.deleting.remove(&bucket);
    }
}

/// Once the writes into `bucket` that began before it was marked deleting are done: whether
/// this core holds any key of it (user objects or multipart uploads).
pub async fn bucket_has_keys_settled(shard: Rc<Shard>, bucket: String) -> Result<bool, S3Error> {
    assert!(shard.bucket_writes.borrow().deleting.contains(&bucket), "bucket marked deleting before its writes settle");
    let deadline = engine::time::now().saturating_add(BUCKET_WRITES_WAIT);
    while shard.bucket_writes.borrow().in_flight.contains_key(&bucket) {
        if engine::time::now() >= deadline {
            return Err(S3Error::new(ErrorCode::OperationAborted, "writes into the bucket did not finish; try again").with_extra("BucketName", &bucket));
        }
        engine::sleep(BUCKET_WRITES_POLL).await;
    }
    Ok(bucket_has_keys(shard, bucket).await)
}

/// Stores a small object (the data fits one record); the new version's id in a versioned
/// bucket.
pub async fn put_small(
    shard: Rc<Shard>,
    bucket: String,
    key: String,
    meta: ObjectMeta,
    data: Vec<u8>,
    cond: Option<WriteCondition>,
) -> Result<Option<VersionId>, S3Error> {
    super::versions::put_small(&shard, &bucket, &key, meta, &data, cond.as_ref()).await
}

/// Starts an upload stream on this core.
pub async fn begin_write(shard: Rc<Shard>) -> u64 {
    let writer = shard.store.chunk_writer();
    let mut sessions = shard.sessions.borrow_mut();
    let id = sessions.id();
    sessions.writes.insert(id, writer);
    id
}

/// Appends `data` to upload stream `session`.
pub async fn write(shard: Rc<Shard>, session: u64, data: Vec<u8>) -> Result<(), S3Error> {
    let mut writer = shard.sessions.borrow_mut().writes.remove(&session).ok_or_else(|| internal("no such upload stream"))?;
    let r = writer.write(&data).await;
    shard.sessions.borrow_mut().writes.insert(session, writer);
    r.map_err(|e| store_error("write chunk", e))
}

/// Ends upload stream `session`: its chunks are durable; returns the extent to commit.
pub async fn finish_write(shard: Rc<Shard>, session: u64) -> Result<Extent, S3Error> {
    let writer = shard.sessions.borrow_mut().writes.remove(&session).ok_or_else(|| internal("no such upload stream"))?;
    writer.finish().await.map_err(|e| store_error("write chunks", e))
}

/// Drops upload stream `session` and what it wrote.
pub async fn abort_write(shard: Rc<Shard>, session: u64) {
    let writer = shard.sessions.borrow_mut().writes.remove(&session);
    if let Some(w) = writer {
        let _ = w.abort().await;
    }
}

/// Commits a large object from extents written on this core for it alone: if the commit fails
/// they are dropped (no manifest owns them). The new version's id in a versioned bucket.
pub async fn put_large(
    shard: Rc<Shard>,
    bucket: String,
    key: String,
    meta: ObjectMeta,
    extents: Vec<Extent>,
    release: Vec<u64>,
    cond: Option<WriteCondition>,
) -> Result<Option<VersionId>, S3Error> {
    let ids: Vec<u64> = extents.iter().map(|e| e.id).collect();
    let result = super::versions::put_large(&shard, &bucket, &key, meta, extents, &release, &[], cond.as_ref()).await;
    if result.is_err() {
        // Nothing took the new chunks over: drop them now rather than at the next start-up.
        let _ = shard.store.drop_chunks(&ids).await;
    }
    result
}

/// One listing entry from a core: a key (one of its versions, for ListObjectVersions) with
/// its size and metadata, or a common prefix.
#[derive(Clone, Debug)]
pub enum Entry {
    Key { key: String, size: u64, meta: ObjectMeta, version: Option<Listed> },
    Prefix(String),
}

/// A version as ListObjectVersions lists it.
#[derive(Clone, Debug)]
pub struct Listed {
    /// `null`, or the version's id.
    pub id: String,
    pub latest: bool,
    pub marker: bool,
    /// Its place among the key's versions, newest first (merging keeps it).
    pub rank: usize,
}

impl Entry {
    pub fn name(&self) -> &str {
        match self {
            Entry::Key { key, .. } => key,
            Entry::Prefix(p) => p,
        }
    }
}

/// A key a listing walks: where its current version (or, with `all`, each version) lies.
struct Walked {
    key: String,
    /// (store key, lsn, size, version) per version listed; the store key lies in the bucket's
    /// versions namespace when `version` is set and not the null version written before
    /// versioning, which lies under the key itself.
    versions: Vec<StoredVersion>,
}

#[derive(Clone)]
struct StoredVersion {
    in_versions: bool,
    store_key: String,
    lsn: u64,
    size: u64,
    /// `None` in an unversioned bucket; (id, is a delete marker) otherwise.
    version: Option<(VersionId, bool)>,
}

/// The keys of `bucket` under `prefix` after `cursor`, a page at a time: with each, its
/// current version (delete markers left out), or with `all` every version newest first. The
/// second answer is where the next page starts, if there is one: a page of the versions
/// namespace and one of the bucket's own keys are merged, and only the keys up to the end of
/// the shorter full one are known complete.
fn walk_page(shard: &Shard, bucket: &str, prefix: &str, cursor: Option<&[u8]>, all: bool) -> (Vec<Walked>, Option<Vec<u8>>) {
    let plain = shard.store.list(bucket.as_bytes(), prefix.as_bytes(), cursor, LIST_STEP);
    let plain_full = plain.len() == LIST_STEP;
    let as_plain = |l: &engine::store::Listed, versioned: bool| {
        Some(StoredVersion {
            in_versions: false,
            store_key: String::from_utf8(l.key.to_vec()).ok()?,
            lsn: l.lsn,
            size: l.size,
            version: versioned.then_some((VersionId::Null, false)),
        })
    };
    if super::versions::versioning(shard, bucket).is_none() && shard.store.list(crate::versioning::store_bucket(bucket).as_bytes(), b"", None, 1).is_empty() {
        let next = plain_full.then(|| plain.last().expect("a full page").key.to_vec());
        let walked = plain
            .iter()
            .filter_map(|l| Some(Walked { key: String::from_utf8(l.key.to_vec()).ok()?, versions: vec![as_plain(l, false)?] }))
            .collect();
        return (walked, next);
    }
    let ns = crate::versioning::store_bucket(bucket);
    // Past every version of the cursor's key: its escaped name, the terminator, then a byte
    // above any stamp digit (a cursor past a common prefix ends in 0xFF, which escapes as
    // itself and still sorts above all the prefix's keys).
    let ns_cursor = cursor.map(|c| {
        let mut e = Vec::with_capacity(c.len() + 3);
        crate::versioning::escape_into(&mut e, c);
        e.extend_from_slice(b"\0\0\xff");
        e
    });
    let versions = shard.store.list(ns.as_bytes(), crate::versioning::escape(prefix).as_bytes(), ns_cursor.as_deref(), LIST_STEP);
    let versions_full = versions.len() == LIST_STEP;
    // Keys up to `bound` are complete in both pages (with `all`, the last key of a full page
    // of versions may have more on the next page: it is read whole below).
    let mut bound: Option<String> = None;
    let mut tighten = |k: String| {
        if bound.as_ref().is_none_or(|b| k < *b) {
            bound = Some(k);
        }
    };
    if plain_full && let Some(last) = plain.last().and_then(|l| String::from_utf8(l.key.to_vec()).ok()) {
        tighten(last);
    }
    let last_versioned = versions.last().and_then(|l| crate::versioning::parse_version_key(&l.key)).filter(|_| versions_full);
    let mut versions = versions;
    if let Some(last) = &last_versioned {
        tighten(last.key.clone());
        if all {
            let whole = shard.store.list(ns.as_bytes(), crate::versioning::key_prefix(&last.key).as_bytes(), None, usize::MAX);
            versions.retain(|l| crate::versioning::parse_version_key(&l.key).is_none_or(|p| p.key != last.key));
            versions.extend(whole);
        }
    }
    let mut by_key: std::collections::BTreeMap<String, Vec<StoredVersion>> = std::collections::BTreeMap::new();
    for l in &versions {
        let Some(parsed) = crate::versioning::parse_version_key(&l.key) else { continue };
        let Ok(store_key) = String::from_utf8(l.key.to_vec()) else { continue };
        let list = by_key.entry(parsed.key.clone()).or_default();
        if all || list.is_empty() {
            list.push(StoredVersion { in_versions: true, store_key, lsn: l.lsn, size: l.size, version: Some((parsed.version_id(), parsed.kind.marker)) });
        }
    }
    for l in &plain {
        let Some(v) = as_plain(l, true) else { continue };
        let list = by_key.entry(v.store_key.clone()).or_default();
        // Written before versioning: older than every version in the namespace.
        if all || list.is_empty() {
            list.push(v);
        }
    }
    let within = |k: &String| bound.as_ref().is_none_or(|b| k <= b);
    let walked: Vec<Walked> = by_key
        .into_iter()
        .filter(|(k, _)| within(k))
        .filter(|(_, v)| all || !v[0].version.is_some_and(|(_, marker)| marker))
        .map(|(key, versions)| Walked { key, versions })
        .collect();
    (walked, bound.map(String::into_bytes))
}

/// A cursor that lists `key` itself next (`Store::list` starts after its cursor): its last
/// byte lowered, then 0xFF bytes, which no UTF-8 key holds (a last NUL is simply dropped).
fn cursor_below(mut key: Vec<u8>) -> Vec<u8> {
    match key.pop() {
        None => Vec::new(),
        Some(0) => key,
        Some(b) => {
            key.push(b - 1);
            key.extend_from_slice(&[0xFF; 4]);
            key
        }
    }
}

/// Up to `limit` entries of `bucket` after `after`, with keys under `prefix` rolled up at
/// `delimiter` into common prefixes, in order: each key's current version, or with `all`
/// (ListObjectVersions) each of its versions, the first key's starting after
/// `after_version` if given. With `with_meta`, each version's metadata is read (ETag,
/// Last-Modified: they live in the record, not the index).
#[allow(clippy::too_many_arguments)]
pub async fn list(
    shard: Rc<Shard>,
    bucket: String,
    prefix: String,
    delimiter: Option<String>,
    after: Option<String>,
    limit: usize,
    with_meta: bool,
    all: Option<Option<VersionId>>,
) -> Result<(Vec<Entry>, bool), S3Error> {
    let mut entries: Vec<Entry> = Vec::new();
    // Where each listed version lies in `entries`, and in the store.
    let mut stored: Vec<(usize, StoredVersion)> = Vec::new();
    let marker = after.clone();
    let mut truncated = false;
    let mut cursor: Option<Vec<u8>> = after.clone().map(String::into_bytes);
    // ListObjectVersions from inside a key: the rest of its versions come first.
    let mut resume: Option<(String, VersionId)> = match (all, &after) {
        (Some(Some(v)), Some(k)) => {
            cursor = Some(cursor_below(k.clone().into_bytes()));
            Some((k.clone(), v))
        }
        _ => None,
    };
    'outer: loop {
        let (page, next) = walk_page(&shard, &bucket, &prefix, cursor.as_deref(), all.is_some());
        for w in page {
            if !w.key.starts_with(prefix.as_str()) || cursor.as_deref().is_some_and(|c| w.key.as_bytes() <= c) && resume.is_none() {
                continue;
            }
            let mut versions = w.versions;
            // Versions of this key listed on an earlier page.
            let mut skipped = 0;
            if let Some((k, v)) = resume.take() {
                if k != w.key {
                    // The marker's key is gone: list from the keys after it.
                    if w.key <= k {
                        resume = Some((k, v));
                        continue;
                    }
                } else {
                    let Some(at) = versions.iter().position(|s| s.version.is_some_and(|(id, _)| id == v)) else {
                        cursor = Some(w.key.into_bytes());
                        continue;
                    };
                    versions.drain(..=at);
                    skipped = at + 1;
                }
            }
            let rest = &w.key[prefix.len()..];
            if let Some(d) = delimiter.as_deref().filter(|d| !d.is_empty())
                && let Some(at) = rest.find(d)
            {
                if entries.len() == limit {
                    truncated = true;
                    break 'outer;
                }
                let common = format!("{prefix}{}", &rest[..at + d.len()]);
                // Skip every key under this common prefix: UTF-8 keys never hold byte 0xFF.
                let mut skip = common.clone().into_bytes();
                skip.push(0xFF);
                // A marker inside or at a common prefix has already passed it (S3 lists a
                // common prefix only after the marker).
                if marker.as_deref().is_none_or(|m| common.as_str() > m) {
                    entries.push(Entry::Prefix(common));
                }
                cursor = Some(skip);
                continue 'outer;
            }
            for (rank, sv) in versions.into_iter().enumerate().map(|(i, sv)| (skipped + i, sv)) {
                if entries.len() == limit {
                    truncated = true;
                    break 'outer;
                }
                let version = all.map(|_| {
                    let (id, marker) = sv.version.unwrap_or((VersionId::Null, false));
                    Listed { id: id.to_string(), latest: rank == 0, marker, rank }
                });
                entries.push(Entry::Key { key: w.key.clone(), size: sv.size, meta: ObjectMeta::default(), version });
                stored.push((entries.len() - 1, sv));
            }
            cursor = Some(w.key.into_bytes());
        }
        match next {
            Some(n) if cursor.as_deref().is_none_or(|c| n.as_slice() > c) => cursor = Some(n),
            Some(_) => {}
            None => break,
        }
    }
    if with_meta {
        fill_meta(&shard, &bucket, &mut entries, &stored).await?;
    }
    Ok((entries, truncated))
}

/// Keys the index lists at a time while rolling up prefixes.
const LIST_STEP: usize = 256;

/// Heads a listing reads at once: a page of 1000 cold keys is 1000 reads, which one at a time
/// would leave the device idle between them.
const LIST_HEADS_IN_FLIGHT: usize = 32;

/// Fills in the metadata of the listed versions (`stored`: entry position, where it lies) from
/// the cache, else from each frame's head, `LIST_HEADS_IN_FLIGHT` at a time; what was read is
/// cached (metadata only). The cache is asked before anything yields, so with the versions
/// listed; a key replaced while the heads are read shows its new metadata (S3 listings are no
/// snapshot), one deleted meanwhile empty metadata.
async fn fill_meta(shard: &Rc<Shard>, bucket: &str, entries: &mut [Entry], stored: &[(usize, StoredVersion)]) -> Result<(), S3Error> {
    let ns = crate::versioning::store_bucket(bucket);
    let store_bucket = |s: &StoredVersion| if s.in_versions { ns.as_str() } else { bucket };
    let mut missing = Vec::new();
    for (at, sv) in stored {
        let Entry::Key { meta, .. } = &mut entries[*at] else { unreachable!("stored names keys") };
        let hit = shard.cache.borrow_mut().get_meta(store_bucket(sv), &sv.store_key, sv.lsn);
        match hit {
            Some((cached, _)) => *meta = cached.meta.clone(),
            None => missing.push((*at, sv)),
        }
    }
    for batch in missing.chunks(LIST_HEADS_IN_FLIGHT) {
        let reads: Vec<_> = batch
            .iter()
            .map(|(_, sv)| {
                let store = shard.store.clone();
                let (b, k) = (store_bucket(sv).as_bytes().to_vec(), sv.store_key.as_bytes().to_vec());
                engine::spawn(async move {
                    let head = store.head(&b, &k).await?;
                    Ok::<_, StoreError>(head.map(|h| (h.meta().to_vec(), h.lsn, h.size)))
                })
            })
            .collect();
        for ((at, sv), read) in batch.iter().zip(reads) {
            let Some((bytes, lsn, size)) = read.await.map_err(|e| store_error("list", e))? else { continue };
            let decoded = decode_meta(&bytes)?;
            let Entry::Key { meta, .. } = &mut entries[*at] else { unreachable!("missing names keys") };
            shard.cache.borrow_mut().insert_meta(store_bucket(sv), &sv.store_key, lsn, decoded.clone(), size);
            *meta = decoded;
        }
    }
    Ok(())
}

/// Whether this core holds any key of `bucket` (user objects or multipart uploads).
pub async fn bucket_has_keys(shard: Rc<Shard>, bucket: String) -> bool {
    !shard.store.list(bucket.as_bytes(), b"", None, 1).is_empty()
        || !shard.store.list(crate::versioning::store_bucket(&bucket).as_bytes(), b"", None, 1).is_empty()
        || !shard.store.list(super::handlers::UPLOADS_BUCKET, &super::handlers::upload_prefix(&bucket), None, 1).is_empty()
}
