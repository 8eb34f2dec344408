//! Lifecycle rules at work: every core, once per scan interval, deletes its own objects that
//! their bucket's rules have expired, and aborts its own multipart uploads that the rules have
//! timed out. Each core looks only at the keys it owns, so no scan crosses cores.
//!
//! An object is deleted only as the version whose metadata was read (`Store::delete_if`): one
//! written after the scan read it is a new object, with its own modification time, and stays.
//!
//! In a bucket with versioning, an expired current version gets a delete marker on top (S3's
//! Expiration), noncurrent versions go after their rules' days (NoncurrentVersionExpiration,
//! counted from when a newer version replaced them, keeping `NewerNoncurrentVersions`), and a
//! delete marker left alone goes if a rule says `ExpiredObjectDeleteMarker`
//! (`versions::expire`, which re-checks each decision under the key's version lock).

use std::rc::Rc;
use std::time::Duration;

use super::handlers::{UPLOADS_BUCKET, abort_if_open, upload_prefix};
use super::meta::ObjectMeta;
use super::objects::{self, Entry};
use super::versions::Expire;
use crate::versioning::VersionId;
use super::{Shard, unix_now_ms};
use crate::lifecycle::{self, Rule};

/// Scans per (lifecycle) day: objects go within about a day's twenty-fourth of their expiry.
const SCANS_PER_DAY: u32 = 24;
/// Bounds on the wait between scans, whatever the day's length.
const SCAN_INTERVAL_MIN: Duration = Duration::from_secs(1);
const SCAN_INTERVAL_MAX: Duration = Duration::from_secs(3600);
/// Keys read from the index at a time.
const SCAN_STEP: usize = 256;
/// Most object heads a core's scan reads per second: a bucket of ten million objects under
/// rules is a steady background read, never a burst that crowds out requests (a scan longer
/// than the interval simply runs on into the next).
const SCAN_HEADS_PER_S_MAX: u64 = 2000;

/// Runs this core's scans until the process stops.
pub(super) async fn run(shard: Rc<Shard>, day: Duration) {
    let day_ms = (day.as_millis() as u64).max(1);
    let interval = (day / SCANS_PER_DAY).clamp(SCAN_INTERVAL_MIN, SCAN_INTERVAL_MAX);
    loop {
        engine::sleep(interval).await;
        let buckets: Vec<(String, std::sync::Arc<Vec<Rule>>)> = shard
            .buckets
            .borrow()
            .iter()
            .filter_map(|(name, info)| info.lifecycle.as_ref().filter(|r| lifecycle::acts(r)).map(|r| (name.clone(), r.clone())))
            .collect();
        for (bucket, rules) in buckets {
            match expire_objects(&shard, &bucket, &rules, day_ms).await {
                Ok(0) => {}
                Ok(n) => eprintln!("corestore: core {}: lifecycle: {n} expired objects (or versions) deleted from {bucket}", shard.core),
                Err(e) => eprintln!("corestore: core {}: lifecycle: expiring objects of {bucket}: {e}", shard.core),
            }
            match abort_uploads(&shard, &bucket, &rules, day_ms).await {
                Ok(0) => {}
                Ok(n) => eprintln!("corestore: core {}: lifecycle: {n} incomplete multipart uploads aborted in {bucket}", shard.core),
                Err(e) => eprintln!("corestore: core {}: lifecycle: aborting uploads of {bucket}: {e}", shard.core),
            }
        }
    }
}

/// Deletes this core's objects of `bucket` that `rules` have expired; how many.
async fn expire_objects(shard: &Rc<Shard>, bucket: &str, rules: &[Rule], day_ms: u64) -> Result<usize, String> {
    if super::versions::versioning(shard, bucket).is_some() {
        return expire_versions(shard, bucket, rules, day_ms).await;
    }
    let expiring: Vec<&Rule> = rules.iter().filter(|r| r.enabled && r.expiration.is_some()).collect();
    if expiring.is_empty() {
        return Ok(0);
    }
    let mut deleted = 0;
    let mut pace = Pace { started: engine::time::now(), heads: 0 };
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = shard.store.list(bucket.as_bytes(), b"", cursor.as_deref(), SCAN_STEP);
        for listed in &page {
            let Ok(key) = std::str::from_utf8(&listed.key) else { continue };
            // A key under no rule's prefix needs no metadata read.
            if !expiring.iter().any(|r| r.filter.prefix.as_deref().is_none_or(|p| key.starts_with(p))) {
                continue;
            }
            pace.one_more().await;
            let Some(meta) = meta_of(shard, bucket, key, listed.lsn).await? else { continue };
            let Some((at_ms, _rule)) = lifecycle::expiry(rules, key, listed.size, &meta.tags, meta.modified_ms, day_ms) else { continue };
            if at_ms > unix_now_ms() {
                continue;
            }
            let gone = shard.store.delete_if(bucket.as_bytes(), &listed.key, listed.lsn).await.map_err(|e| format!("delete {bucket}/{key}: {e}"))?;
            deleted += gone.is_some() as usize;
        }
        if page.len() < SCAN_STEP {
            return Ok(deleted);
        }
        cursor = page.last().map(|l| l.key.to_vec());
    }
}

/// Applies `rules` to this core's versions of `bucket` (a bucket with versioning); how many
/// versions were marked deleted or removed.
async fn expire_versions(shard: &Rc<Shard>, bucket: &str, rules: &[Rule], day_ms: u64) -> Result<usize, String> {
    let mut acted = 0;
    let mut pace = Pace { started: engine::time::now(), heads: 0 };
    let mut after: Option<(String, VersionId)> = None;
    // The version listed last: a noncurrent version became so when the one before it (its
    // key's next newer) was written.
    let mut newer: Option<(String, u64)> = None;
    loop {
        let (key_marker, version_marker) = match &after {
            Some((k, v)) => (Some(k.clone()), Some(*v)),
            None => (None, None),
        };
        let listed = objects::list(shard.clone(), bucket.to_string(), String::new(), None, key_marker, SCAN_STEP, true, Some(version_marker)).await;
        let (entries, truncated) = listed.map_err(|e| format!("list versions: {}", e.message))?;
        for _ in 0..entries.len() {
            pace.one_more().await;
        }
        let now_ms = unix_now_ms();
        for e in &entries {
            let Entry::Key { key, size, meta, version: Some(v) } = e else { continue };
            let Some(id) = VersionId::parse(&v.id) else { continue };
            let what = if v.rank == 0 {
                if v.marker {
                    lifecycle::removes_lone_marker(rules, key).then_some(Expire::Remove(id))
                } else {
                    lifecycle::expiry(rules, key, *size, &meta.tags, meta.modified_ms, day_ms).filter(|(at, _)| *at <= now_ms).map(|_| Expire::Current(id))
                }
            } else {
                let since_ms = newer.as_ref().filter(|(k, _)| k == key).map(|(_, ms)| *ms);
                since_ms
                    .and_then(|ms| lifecycle::noncurrent_expiry(rules, key, *size, &meta.tags, ms, (v.rank - 1) as u32, day_ms))
                    .filter(|at| *at <= now_ms)
                    .map(|_| Expire::Remove(id))
            };
            if let Some(what) = what {
                let done = super::versions::expire(shard, bucket, key, what, now_ms).await.map_err(|e| format!("expire {bucket}/{key}: {}", e.message))?;
                acted += done as usize;
            }
            newer = Some((key.clone(), meta.modified_ms));
        }
        match entries.last() {
            Some(Entry::Key { key, version: Some(v), .. }) if truncated => {
                after = VersionId::parse(&v.id).map(|id| (key.clone(), id));
                if after.is_none() {
                    return Ok(acted);
                }
            }
            _ => return Ok(acted),
        }
    }
}

/// Keeps a scan's reads under `SCAN_HEADS_PER_S_MAX`.
struct Pace {
    started: engine::Instant,
    heads: u64,
}

impl Pace {
    async fn one_more(&mut self) {
        self.heads += 1;
        let due = self.started.saturating_add(Duration::from_millis(self.heads * 1000 / SCAN_HEADS_PER_S_MAX));
        let now = engine::time::now();
        if due > now {
            engine::sleep(due.saturating_duration_since(now)).await;
        }
    }
}

/// The metadata of `bucket`/`key` at version `lsn`: from the cache, else the record's head;
/// `None` if the key changed meanwhile (the next scan sees the new version).
async fn meta_of(shard: &Rc<Shard>, bucket: &str, key: &str, lsn: u64) -> Result<Option<ObjectMeta>, String> {
    if let Some((cached, _)) = shard.cache.borrow_mut().get_meta(bucket, key, lsn) {
        return Ok(Some(cached.meta.clone()));
    }
    let head = shard.store.head(bucket.as_bytes(), key.as_bytes()).await.map_err(|e| format!("read {bucket}/{key}: {e}"))?;
    let Some(head) = head.filter(|h| h.lsn == lsn) else { return Ok(None) };
    ObjectMeta::decode(head.meta()).map(Some).ok_or_else(|| format!("{bucket}/{key}: stored metadata does not decode (damaged, or written by a newer corestore)"))
}

/// Aborts this core's multipart uploads into `bucket` that `rules` have timed out; how many.
async fn abort_uploads(shard: &Rc<Shard>, bucket: &str, rules: &[Rule], day_ms: u64) -> Result<usize, String> {
    if !rules.iter().any(|r| r.enabled && r.abort_incomplete_upload_days.is_some()) {
        return Ok(0);
    }
    let prefix = upload_prefix(bucket);
    let mut aborted = 0;
    for listed in shard.store.list(UPLOADS_BUCKET, &prefix, None, usize::MAX) {
        // The record's key: bucket, 0, key, 0, upload ID.
        let rest = &listed.key[prefix.len()..];
        let Some(end) = rest.iter().rposition(|&b| b == 0) else { continue };
        let Ok(key) = std::str::from_utf8(&rest[..end]) else { continue };
        let started_ms = match shard.store.get(UPLOADS_BUCKET, &listed.key).await {
            Ok(Some(o)) => ObjectMeta::decode(o.meta()).map_or(0, |m| m.modified_ms),
            Ok(None) => continue,
            Err(e) => return Err(format!("read upload of {bucket}/{key}: {e}")),
        };
        if lifecycle::upload_expiry(rules, key, started_ms, day_ms).is_none_or(|at| at > unix_now_ms()) {
            continue;
        }
        let done = abort_if_open(shard, &listed.key).await.map_err(|e| format!("abort upload of {bucket}/{key}: {}", e.message))?;
        aborted += done as usize;
    }
    Ok(aborted)
}
