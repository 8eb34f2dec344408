//! Object versions as they run on the owning core: where a version lies, and the writes of a
//! versioned bucket (each a new entry in its versions namespace, `crate::versioning`).

use std::rc::Rc;

use engine::store::{Body, Expected, Extent};

use super::Shard;
use super::meta::ObjectMeta;
use super::objects::{begin_bucket_write, internal, store_error};
use crate::error::{ErrorCode, S3Error};
use crate::versioning::{self as v, Kind, VersionId, Versioning};

/// Where one version of an object lies in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The store's bucket and key: the object's own (written before versioning, or in an
    /// unversioned bucket) or its versions namespace's.
    pub bucket: String,
    pub key: String,
    /// A delete marker (no data; a GET of it is refused).
    pub marker: bool,
    /// Its id; `None` in a bucket that never had versioning.
    pub version: Option<VersionId>,
    /// The lsn of its record when located (`None` when not looked up): a GET on this core
    /// checks its cache with it instead of a second index lookup.
    pub lsn: Option<u64>,
}

/// The bucket's versioning state on this core's copy of the bucket table.
pub fn versioning(shard: &Shard, bucket: &str) -> Option<Versioning> {
    shard.buckets.borrow().get(bucket).and_then(|b| b.versioning)
}

/// Where `version` (or, with `None`, the current version) of `bucket`/`key` lies; `None` if
/// there is no such version (for the current one: the key has no version at all, or only
/// older ones with no current, which cannot happen). An in-memory lookup.
pub fn locate(shard: &Shard, bucket: &str, key: &str, version: Option<VersionId>) -> Option<Located> {
    let plain = || Located { bucket: bucket.to_string(), key: key.to_string(), marker: false, version: None, lsn: None };
    let versioned = versioning(shard, bucket).is_some();
    let plain_lsn = || shard.store.lsn_of(bucket.as_bytes(), key.as_bytes()).map(|(lsn, _)| lsn);
    let ns = v::store_bucket(bucket);
    let found = |prefix: &str, want: &dyn Fn(&v::Stored) -> bool| {
        shard.store.list(ns.as_bytes(), prefix.as_bytes(), None, usize::MAX).into_iter().find_map(|l| {
            let stored = v::parse_version_key(&l.key).filter(|s| want(s))?;
            let key = String::from_utf8(l.key.into()).ok()?;
            Some(Located { bucket: ns.clone(), key, marker: stored.kind.marker, version: Some(stored.version_id()), lsn: Some(l.lsn) })
        })
    };
    match version {
        None if !versioned => Some(plain()),
        None => {
            // The hot path of a versioned bucket's GET: the newest entry's suffix alone is read.
            let newest = shard.store.list(ns.as_bytes(), v::key_prefix(key).as_bytes(), None, 1).pop();
            match newest {
                Some(l) => {
                    let (stamp, kind) = v::stamp_and_kind(&l.key)?;
                    let key = String::from_utf8(l.key.into_vec()).ok()?;
                    Some(Located { bucket: ns, key, marker: kind.marker, version: Some(kind.version_id(stamp)), lsn: Some(l.lsn) })
                }
                None => plain_lsn().map(|lsn| Located { version: Some(VersionId::Null), lsn: Some(lsn), ..plain() }),
            }
        }
        Some(VersionId::Null) => {
            if let Some(lsn) = plain_lsn() {
                return Some(Located { version: Some(VersionId::Null), lsn: Some(lsn), ..plain() });
            }
            found(&v::key_prefix(key), &|s| s.kind.null)
        }
        Some(VersionId::Stamp(stamp)) => found(&v::stamp_prefix(key, stamp), &|s| !s.kind.null),
    }
}

/// Every null version of `bucket`/`key` now: at most one, unless a crash interrupted an old
/// bug; all are superseded together.
fn null_versions(shard: &Shard, bucket: &str, key: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if shard.store.lsn_of(bucket.as_bytes(), key.as_bytes()).is_some() {
        found.push((bucket.to_string(), key.to_string()));
    }
    let ns = v::store_bucket(bucket);
    for l in shard.store.list(ns.as_bytes(), v::key_prefix(key).as_bytes(), None, usize::MAX) {
        if v::parse_version_key(&l.key).is_some_and(|s| s.kind.null)
            && let Ok(k) = String::from_utf8(l.key.into())
        {
            found.push((ns.clone(), k));
        }
    }
    found
}

/// The most keys one write supersedes (null versions, an upload's record: the store's
/// one-batch limit).
const NULL_VERSIONS_MAX: usize = engine::store::ALSO_DELETE_MAX;

/// Cores whose stamps `new_stamp` keeps apart (its low byte is the core).
const STAMP_CORES_MAX: u64 = 256;

/// A stamp for a new version of `key`: after this core's last one and after the key's newest
/// (a clock stepped back across a restart must not order a new version below an old one), with
/// this core in its low byte, so that no two versions on one node share an id.
fn new_stamp(shard: &Shard, bucket: &str, key: &str) -> u64 {
    let core = shard.core as u64;
    assert!(core < STAMP_CORES_MAX, "version stamps name at most {STAMP_CORES_MAX} cores");
    let ns = v::store_bucket(bucket);
    let newest = shard.store.list(ns.as_bytes(), v::key_prefix(key).as_bytes(), None, 1);
    let newest = newest.first().and_then(|l| v::parse_version_key(&l.key)).map_or(0, |s| s.stamp);
    let at_least = (super::unix_now_ms().saturating_mul(1_000_000)).max(shard.last_stamp.get() + 1).max(newest + 1);
    let stamp = at_least + (core + STAMP_CORES_MAX - at_least % STAMP_CORES_MAX) % STAMP_CORES_MAX;
    assert_eq!(stamp % STAMP_CORES_MAX, core);
    shard.last_stamp.set(stamp);
    stamp
}

/// What a write in a versioned bucket returns: the new version's id, and whether it is a
/// delete marker.
#[derive(Clone, Debug)]
pub struct Written {
    pub version: VersionId,
    pub marker: bool,
}

/// Writes a new version of `bucket`/`key` in a bucket whose versioning is `state`: a new
/// entry in its versions namespace, the current one from then on. With `Suspended` it is the
/// "null" version, and the null version it replaces goes in the same batch. `body` `None`
/// writes a delete marker.
#[allow(clippy::too_many_arguments)]
async fn write_version(
    shard: &Rc<Shard>,
    state: Versioning,
    bucket: &str,
    key: &str,
    meta: ObjectMeta,
    body: Option<Body<'_>>,
    release: &[u64],
    also_delete: &[(&[u8], &[u8])],
) -> Result<Written, S3Error> {
    let _lock = shard.version_lock(bucket, key).await;
    write_version_locked(shard, state, bucket, key, meta, body, release, also_delete).await
}

/// `write_version` with the key's version lock held.
#[allow(clippy::too_many_arguments)]
async fn write_version_locked(
    shard: &Rc<Shard>,
    state: Versioning,
    bucket: &str,
    key: &str,
    mut meta: ObjectMeta,
    body: Option<Body<'_>>,
    release: &[u64],
    also_delete: &[(&[u8], &[u8])],
) -> Result<Written, S3Error> {
    let null = state == Versioning::Suspended;
    let kind = Kind { null, marker: body.is_none() };
    let stamp = new_stamp(shard, bucket, key);
    let version = if null { VersionId::Null } else { VersionId::Stamp(stamp) };
    meta.version_id = Some(version.to_string());
    let replaced = if null { null_versions(shard, bucket, key) } else { Vec::new() };
    if replaced.len() + also_delete.len() > NULL_VERSIONS_MAX {
        return Err(internal(format!("{bucket}/{key} has {} null versions", replaced.len())));
    }
    // An upload's record is small: deleting it among the replaced keys drops no chunk.
    let replaces: Vec<(&[u8], &[u8])> = replaced.iter().map(|(b, k)| (b.as_bytes(), k.as_bytes())).chain(also_delete.iter().copied()).collect();
    let (ns, vkey) = (v::store_bucket(bucket), v::version_key(key, stamp, kind));
    let body = body.unwrap_or(Body::Inline(&[]));
    shard.store.commit(ns.as_bytes(), vkey.as_bytes(), &meta.encode(), body, release, &replaces).await.map_err(|e| store_error("put", e))?;
    Ok(Written { version, marker: kind.marker })
}

/// A conditional write's condition on the object it replaces (S3's conditional PutObject):
/// `If-None-Match` (the current object's ETag is none of these, or there is none; `*` matches
/// every ETag, so `If-None-Match: *` asks for no object under the key; ETags on a write are
/// taken as on a GET, as Ceph RGW takes them) or `If-Match` (the current object's ETag is one
/// of these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteCondition {
    NoneMatch(String),
    Match(String),
}

impl WriteCondition {
    /// The request's condition, if it has one.
    pub fn of(req: &super::conn::Request) -> Option<WriteCondition> {
        if let Some(list) = req.header("if-none-match") {
            return Some(WriteCondition::NoneMatch(list.trim().to_string()));
        }
        req.header("if-match").map(|m| WriteCondition::Match(m.to_string()))
    }

    /// Whether a write may replace the object whose ETag is `current` (`None`: no object).
    pub fn check(&self, current: Option<&str>) -> Result<(), S3Error> {
        let failed = || S3Error::new(ErrorCode::PreconditionFailed, "At least one of the pre-conditions you specified did not hold");
        match (self, current) {
            (WriteCondition::NoneMatch(_), None) => Ok(()),
            (WriteCondition::NoneMatch(list), Some(etag)) => (!super::handlers::etag_matches(list, etag)).then_some(()).ok_or_else(failed),
            (WriteCondition::Match(_), None) => Err(S3Error::new(ErrorCode::NoSuchKey, "The specified key does not exist.")),
            (WriteCondition::Match(list), Some(etag)) => super::handlers::etag_matches(list, etag).then_some(()).ok_or_else(failed),
        }
    }
}

/// How many times a conditional write reads the key again because another write landed
/// between its check and its own write, before answering ConditionalRequestConflict.
const CONDITIONAL_TRIES_MAX: usize = 8;

fn conflict() -> S3Error {
    S3Error::new(ErrorCode::ConditionalRequestConflict, "A conflicting operation occurred. If using PutObject you can retry the request.")
}

/// The lsn and ETag of the object under `bucket`/`key` now (an unversioned bucket's).
async fn current_etag(shard: &Shard, bucket: &str, key: &str) -> Result<Option<(u64, String)>, S3Error> {
    let Some((lsn, _)) = shard.store.lsn_of(bucket.as_bytes(), key.as_bytes()) else { return Ok(None) };
    if let Some((cached, _)) = shard.cache.borrow_mut().get_meta(bucket, key, lsn) {
        return Ok(Some((lsn, cached.meta.etag.clone())));
    }
    let Some(h) = shard.store.head(bucket.as_bytes(), key.as_bytes()).await.map_err(|e| store_error("head", e))? else { return Ok(None) };
    let meta = ObjectMeta::decode(h.meta()).ok_or_else(|| internal(format!("{bucket}/{key}: its stored metadata does not decode (damaged, or written by a newer corestore)")))?;
    Ok(Some((h.lsn, meta.etag)))
}

/// The ETag of the current version of `bucket`/`key` in a versioned bucket (`None`: no
/// version, or a delete marker). Call with the key's version lock held.
async fn current_version_etag(shard: &Shard, bucket: &str, key: &str) -> Result<Option<String>, S3Error> {
    let Some(at) = locate(shard, bucket, key, None) else { return Ok(None) };
    if at.marker {
        return Ok(None);
    }
    Ok(current_etag(shard, &at.bucket, &at.key).await?.map(|(_, etag)| etag))
}

/// The store's expectation for a conditional write in an unversioned bucket, once `cond` holds
/// for what is there now.
async fn expected_now(shard: &Shard, bucket: &str, key: &str, cond: &WriteCondition) -> Result<Expected, S3Error> {
    let current = current_etag(shard, bucket, key).await?;
    cond.check(current.as_ref().map(|(_, etag)| etag.as_str()))?;
    Ok(current.map_or(Expected::Absent, |(lsn, _)| Expected::At(lsn)))
}

/// Stores a small object in `bucket`, versioned or not; the new version's id if versioned.
/// With `cond`, only if it holds for the object the write replaces, checked atomically with
/// the write.
pub async fn put_small(
    shard: &Rc<Shard>,
    bucket: &str,
    key: &str,
    meta: ObjectMeta,
    data: &[u8],
    cond: Option<&WriteCondition>,
) -> Result<Option<VersionId>, S3Error> {
    put_body(shard, bucket, key, meta, Body::Inline(data), &[], &[], cond).await
}

/// Commits a large object from `extents` in `bucket`, versioned or not, releasing `release`
/// and deleting `also_delete` (small records: an upload's) in the same batch; `cond` as for
/// [`put_small`].
#[allow(clippy::too_many_arguments)]
pub async fn put_large(
    shard: &Rc<Shard>,
    bucket: &str,
    key: &str,
    meta: ObjectMeta,
    extents: Vec<Extent>,
    release: &[u64],
    also_delete: &[(&[u8], &[u8])],
    cond: Option<&WriteCondition>,
) -> Result<Option<VersionId>, S3Error> {
    put_body(shard, bucket, key, meta, Body::Chunked(extents), release, also_delete, cond).await
}

/// [`put_small`] and [`put_large`]: in an unversioned bucket the store writes `body` under the
/// key itself, against the version `cond` was checked on (reading again if another write came
/// between); in a versioned one, a new version under the key's version lock.
#[allow(clippy::too_many_arguments)]
async fn put_body(
    shard: &Rc<Shard>,
    bucket: &str,
    key: &str,
    meta: ObjectMeta,
    body: Body<'_>,
    release: &[u64],
    also_delete: &[(&[u8], &[u8])],
    cond: Option<&WriteCondition>,
) -> Result<Option<VersionId>, S3Error> {
    let _write = begin_bucket_write(shard, bucket)?;
    if let Some(state) = versioning(shard, bucket) {
        let _lock = shard.version_lock(bucket, key).await;
        if let Some(cond) = cond {
            cond.check(current_version_etag(shard, bucket, key).await?.as_deref())?;
        }
        return write_version_locked(shard, state, bucket, key, meta, Some(body), release, also_delete).await.map(|w| Some(w.version));
    }
    let (b, k, encoded) = (bucket.as_bytes(), key.as_bytes(), meta.encode());
    for _ in 0..CONDITIONAL_TRIES_MAX {
        // Without a condition the store writes whatever is there: the first try lands.
        let expected = match cond {
            Some(cond) => Some(expected_now(shard, bucket, key, cond).await?),
            None => None,
        };
        let put = match &body {
            Body::Inline(data) => shard.store.put_if(b, k, &encoded, data, expected).await,
            Body::Chunked(extents) => shard.store.put_chunked_if(b, k, &encoded, extents.clone(), release, also_delete, expected).await,
        };
        if put.map_err(|e| store_error("put", e))?.is_some() {
            return Ok(None);
        }
    }
    Err(conflict())
}

/// S3's DeleteObject on the owning core. Without `version`: in an unversioned bucket the key
/// goes; in a versioned one a delete marker becomes its current version. With `version`, that
/// version goes for good (a missing one is no error, as in S3), unless Object Lock keeps it
/// (`bypass`: the request may bypass GOVERNANCE retention). The answer names the version
/// written or removed, and whether it is (was) a delete marker.
pub async fn delete(
    shard: Rc<Shard>,
    bucket: String,
    key: String,
    version: Option<VersionId>,
    owner: String,
    now_ms: u64,
    bypass: bool,
) -> Result<Option<Written>, S3Error> {
    let state = versioning(&shard, &bucket);
    match (version, state) {
        (None, None) => {
            shard.store.delete(bucket.as_bytes(), key.as_bytes()).await.map_err(|e| store_error("delete", e))?;
            Ok(None)
        }
        (None, Some(state)) => {
            let _write = begin_bucket_write(&shard, &bucket)?;
            let meta = ObjectMeta { modified_ms: now_ms, owner, ..ObjectMeta::default() };
            write_version(&shard, state, &bucket, &key, meta, None, &[], &[]).await.map(Some)
        }
        (Some(id), _) => {
            let _lock = shard.version_lock(&bucket, &key).await;
            let Some(at) = locate(&shard, &bucket, &key, Some(id)) else { return Ok(Some(Written { version: id, marker: false })) };
            check_lock(&shard, &at, now_ms, bypass).await?;
            shard.store.delete(at.bucket.as_bytes(), at.key.as_bytes()).await.map_err(|e| store_error("delete", e))?;
            Ok(Some(Written { version: id, marker: at.marker }))
        }
    }
}

/// Refuses to remove a version that Object Lock keeps (its retention, its legal hold); a
/// delete marker has neither.
async fn check_lock(shard: &Rc<Shard>, at: &Located, now_ms: u64, bypass: bool) -> Result<(), S3Error> {
    if at.marker {
        return Ok(());
    }
    let Some(info) = super::objects::head(shard.clone(), at.bucket.clone(), at.key.clone()).await? else { return Ok(()) };
    crate::object_lock::check_delete(info.meta.retention, info.meta.legal_hold, now_ms, bypass)
}

/// `locate` as a cross-core call.
pub async fn locate_owned(shard: Rc<Shard>, bucket: String, key: String, version: Option<VersionId>) -> Option<Located> {
    locate(&shard, &bucket, &key, version)
}

/// The error for a version that does not exist.
pub fn no_such_version(key: &str, version: &str) -> S3Error {
    S3Error::new(ErrorCode::NoSuchVersion, "The specified version does not exist.").with_extra("Key", key).with_extra("VersionId", version)
}

/// What a request for one version of an object found on its core.
#[derive(Debug)]
pub enum Found<T> {
    /// No such version (or, asked for the current one, no such key).
    Missing,
    /// A delete marker: it has an id and no data.
    Marker(VersionId),
    Object(Located, T),
}

/// The metadata and size of a version of `bucket`/`key` (`objects::head` of where it lies).
pub async fn head(shard: Rc<Shard>, bucket: String, key: String, version: Option<VersionId>) -> Result<Found<super::objects::Info>, S3Error> {
    read_version(shard, &bucket, &key, version, super::objects::head).await
}

/// `objects::describe` of a version: what a copy needs to read it.
pub async fn describe(shard: Rc<Shard>, bucket: String, key: String, version: Option<VersionId>) -> Result<Found<super::objects::Info>, S3Error> {
    read_version(shard, &bucket, &key, version, super::objects::describe).await
}

/// `read` (an `objects` reader) of where a version lies, unless it is missing or a marker.
async fn read_version<Fut>(
    shard: Rc<Shard>,
    bucket: &str,
    key: &str,
    version: Option<VersionId>,
    read: impl FnOnce(Rc<Shard>, String, String) -> Fut,
) -> Result<Found<super::objects::Info>, S3Error>
where
    Fut: std::future::Future<Output = Result<Option<super::objects::Info>, S3Error>>,
{
    let Some(at) = locate(&shard, bucket, key, version) else { return Ok(Found::Missing) };
    if at.marker {
        return Ok(Found::Marker(at.version.expect("a marker has a version")));
    }
    match read(shard, at.bucket.clone(), at.key.clone()).await? {
        Some(info) => Ok(Found::Object(at, info)),
        None => Ok(Found::Missing),
    }
}

/// `objects::change_meta` of a version (its ACL, its tags).
pub async fn change_meta(
    shard: Rc<Shard>,
    bucket: String,
    key: String,
    version: Option<VersionId>,
    what: &'static str,
    change: impl Fn(&mut ObjectMeta) -> Result<(), S3Error>,
) -> Result<Found<()>, S3Error> {
    let Some(at) = locate(&shard, &bucket, &key, version) else { return Ok(Found::Missing) };
    if at.marker {
        return Ok(Found::Marker(at.version.expect("a marker has a version")));
    }
    if super::objects::change_meta(shard, at.bucket.clone(), at.key.clone(), what, change).await? {
        Ok(Found::Object(at, ()))
    } else {
        Ok(Found::Missing)
    }
}

/// What lifecycle does to one version it found due, if it still is what the scan read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expire {
    /// The current version `0` expired: a delete marker goes on top of it.
    Current(VersionId),
    /// A noncurrent version, or a delete marker that is its key's only version: removed.
    Remove(VersionId),
}

/// Applies `what` to `bucket`/`key` under its version lock, only if the key is still as the
/// scan saw it (a version written since is newer than anything the scan decided on): the
/// current version is still `Current`'s, or the version to remove is still not the current
/// one (or, for a lone marker, still alone). Whether it acted.
pub async fn expire(shard: &Rc<Shard>, bucket: &str, key: &str, what: Expire, now_ms: u64) -> Result<bool, S3Error> {
    let Some(state) = versioning(shard, bucket) else { return Ok(false) };
    let _lock = shard.version_lock(bucket, key).await;
    let current = locate(shard, bucket, key, None);
    match what {
        Expire::Current(id) => {
            if current.as_ref().is_none_or(|c| c.marker || c.version != Some(id)) {
                return Ok(false);
            }
            let meta = ObjectMeta { modified_ms: now_ms, ..ObjectMeta::default() };
            write_version_locked(shard, state, bucket, key, meta, None, &[], &[]).await?;
            Ok(true)
        }
        Expire::Remove(id) => {
            let Some(at) = locate(shard, bucket, key, Some(id)) else { return Ok(false) };
            let is_current = current.as_ref() == Some(&at);
            if is_current {
                // Only a delete marker with nothing under it goes while current.
                let ns = v::store_bucket(bucket);
                let alone = shard.store.list(ns.as_bytes(), v::key_prefix(key).as_bytes(), None, 2).len() == 1
                    && shard.store.lsn_of(bucket.as_bytes(), key.as_bytes()).is_none();
                if !(at.marker && alone) {
                    return Ok(false);
                }
            }
            // Lifecycle never removes what Object Lock keeps.
            if check_lock(shard, &at, now_ms, false).await.is_err() {
                return Ok(false);
            }
            shard.store.delete(at.bucket.as_bytes(), at.key.as_bytes()).await.map_err(|e| store_error("expire", e))?;
            Ok(true)
        }
    }
}
