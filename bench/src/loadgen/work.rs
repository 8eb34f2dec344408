//! What each connection does next, per mode: the shared description ([`Work`], read by every
//! core) and each core's own state ([`CoreWork`]: the live objects of `mixed`, the parts of a
//! multipart upload). Nothing here is shared between cores: `mixed` splits the objects by index
//! (object `i` belongs to core `i % cores`), so a core never GETs what another core deletes.

use std::sync::Arc;

use engine::rng::Prng;

use super::http::Response;
use super::op::Op;
use super::request::uri_encode;

/// Keys per ListObjectsV2 page (S3's maximum).
pub const LIST_PAGE_KEYS: usize = 1000;
/// Largest listing page or multi-delete answer kept for parsing.
pub const XML_BODY_BYTES_MAX: usize = 8 << 20;
/// Random picks a `mixed` DELETE tries for an object no GET or HEAD is reading.
const DELETE_PICKS_MAX: usize = 8;

/// Shares of `mixed`, in percent: GET, STAT, PUT, DELETE (warp's defaults 45/30/15/10).
#[derive(Clone, Copy, Debug)]
pub struct MixedShares {
    pub get: u32,
    pub stat: u32,
    pub put: u32,
    pub delete: u32,
}

impl MixedShares {
    fn total(&self) -> u32 {
        self.get + self.stat + self.put + self.delete
    }
}

/// A phase's work, the same for every core.
#[derive(Clone, Debug)]
pub enum Work {
    /// GET random objects of `keys`.
    Get { keys: Arc<[String]> },
    /// HEAD random objects of `keys`.
    Stat { keys: Arc<[String]> },
    /// PUT new objects named `<prefix><connection>-<n>`.
    Put { prefix: String },
    /// PUT every key once (the prepare phase).
    Fill { keys: Arc<[String]> },
    /// Delete every key once, `batch` keys per multi-delete request.
    Delete { keys: Arc<[String]>, batch: usize },
    /// List `prefixes[connection % len]` page after page, from the start again at its end.
    List { prefixes: Arc<[String]> },
    /// GET, STAT, PUT and DELETE in `shares`; new objects are named `<prefix>m<core>-<n>`.
    Mixed { keys: Arc<[String]>, shares: MixedShares, prefix: String },
    /// Upload parts 1..=parts of one multipart upload.
    Multipart { key: String, upload_id: String, parts: u32 },
}

/// One connection's own position in its work.
pub struct ConnState {
    /// Global connection number.
    pub index: usize,
    pub connections: usize,
    pub rng: Prng,
    cursor: usize,
    continuation: Option<String>,
    seq: u64,
}

impl ConnState {
    pub fn new(index: usize, connections: usize, seed: u64) -> ConnState {
        ConnState { index, connections, rng: Prng::new(seed), cursor: index, continuation: None, seq: 0 }
    }
}

/// What a request carries.
pub enum JobBody {
    None,
    /// Object data of the phase's object size.
    Object,
    Xml(Vec<u8>),
}

/// One request to make.
pub struct Job {
    pub op: Op,
    pub method: &'static str,
    /// Percent-encoded `/bucket/key`.
    pub path: String,
    pub query: String,
    pub body: JobBody,
    /// The response is to a HEAD.
    pub head: bool,
    /// Keep up to this many bytes of the body for [`CoreWork::complete`].
    pub keep_body_bytes_max: usize,
    /// The key (or prefix) for error reports.
    pub what: String,
    token: Token,
}

/// What completion bookkeeping a job needs.
enum Token {
    None,
    /// A `mixed` read of object `name` (index in the core's names).
    MixedRead(usize),
    MixedPut(usize),
    MixedDelete(usize),
    /// Objects in a multi-delete.
    Batch(u64),
    Part(u32),
}

/// How a request went.
pub enum Outcome {
    /// Object bytes moved and objects touched.
    Done { bytes: u64, objects: u64 },
    Failed(String),
}

/// One core's mutable share of the work.
pub struct CoreWork {
    work: Work,
    bucket: String,
    object_bytes: u64,
    mixed: Option<MixedState>,
    /// (part number, ETag) of every part this core uploaded.
    pub parts: Vec<(u32, String)>,
}

struct MixedState {
    names: Vec<String>,
    /// Indexes into `names` of the objects that exist.
    live: Vec<usize>,
    /// Reads in flight per name.
    readers: Vec<u32>,
    core: usize,
    next_seq: u64,
}

impl CoreWork {
    pub fn new(work: &Work, bucket: &str, object_bytes: u64, core: usize, cores: usize) -> CoreWork {
        assert!(core < cores);
        let mixed = match work {
            Work::Mixed { keys, .. } => {
                let names: Vec<String> = keys.iter().skip(core).step_by(cores).cloned().collect();
                let live = (0..names.len()).collect();
                let readers = vec![0; names.len()];
                Some(MixedState { names, live, readers, core, next_seq: 0 })
            }
            _ => None,
        };
        CoreWork { work: work.clone(), bucket: bucket.to_string(), object_bytes, mixed, parts: Vec::new() }
    }

    fn path(&self, key: &str) -> String {
        format!("/{}/{}", uri_encode(&self.bucket, false), uri_encode(key, true))
    }

    fn object_job(&self, op: Op, key: &str, token: Token) -> Job {
        let (method, body, head) = match op {
            Op::Get => ("GET", JobBody::None, false),
            Op::Stat => ("HEAD", JobBody::None, true),
            Op::Put => ("PUT", JobBody::Object, false),
            Op::Delete => ("DELETE", JobBody::None, false),
            Op::List | Op::PutPart => unreachable!("not a single-object operation: {op:?}"),
        };
        Job { op, method, path: self.path(key), query: String::new(), body, head, keep_body_bytes_max: 0, what: key.to_string(), token }
    }

    /// The connection's next request, or `None` once its share of the work is done.
    pub fn next(&mut self, conn: &mut ConnState) -> Option<Job> {
        match &self.work {
            Work::Get { keys } => Some(self.object_job(Op::Get, &keys[conn.rng.below(keys.len() as u64) as usize], Token::None)),
            Work::Stat { keys } => Some(self.object_job(Op::Stat, &keys[conn.rng.below(keys.len() as u64) as usize], Token::None)),
            Work::Put { prefix } => {
                let key = format!("{prefix}{:04}-{:08}", conn.index, conn.seq);
                conn.seq += 1;
                Some(self.object_job(Op::Put, &key, Token::None))
            }
            Work::Fill { keys } => {
                let key = keys.get(conn.cursor)?;
                conn.cursor += conn.connections;
                Some(self.object_job(Op::Put, key, Token::None))
            }
            Work::Delete { keys, batch } => {
                let first = conn.cursor * batch;
                let batch_keys = keys.get(first..(first + batch).min(keys.len())).filter(|b| !b.is_empty())?;
                conn.cursor += conn.connections;
                Some(self.delete_job(batch_keys))
            }
            Work::List { prefixes } => Some(self.list_job(&prefixes[conn.index % prefixes.len()], conn.continuation.as_deref())),
            Work::Mixed { shares, prefix, .. } => {
                let (shares, prefix) = (*shares, prefix.clone());
                Some(self.mixed_job(conn, shares, &prefix))
            }
            Work::Multipart { key, upload_id, parts } => {
                let part = u32::try_from(conn.cursor + 1).ok().filter(|p| p <= parts)?;
                conn.cursor += conn.connections;
                let query = format!("partNumber={part}&uploadId={}", uri_encode(upload_id, false));
                let what = format!("{key} part {part}");
                Some(Job { op: Op::PutPart, method: "PUT", path: self.path(key), query, body: JobBody::Object, head: false, keep_body_bytes_max: 0, what, token: Token::Part(part) })
            }
        }
    }

    fn delete_job(&self, keys: &[String]) -> Job {
        let mut xml = String::from("<Delete><Quiet>true</Quiet>");
        for k in keys {
            xml.push_str("<Object><Key>");
            xml.push_str(&xml_escape(k));
            xml.push_str("</Key></Object>");
        }
        xml.push_str("</Delete>");
        let what = format!("{} objects from {}", keys.len(), keys.first().map_or("", String::as_str));
        Job {
            op: Op::Delete,
            method: "POST",
            path: format!("/{}", uri_encode(&self.bucket, false)),
            query: "delete=".to_string(),
            body: JobBody::Xml(xml.into_bytes()),
            head: false,
            keep_body_bytes_max: XML_BODY_BYTES_MAX,
            what,
            token: Token::Batch(keys.len() as u64),
        }
    }

    fn list_job(&self, prefix: &str, continuation: Option<&str>) -> Job {
        let mut query = format!("list-type=2&max-keys={LIST_PAGE_KEYS}&prefix={}", uri_encode(prefix, false));
        if let Some(token) = continuation {
            query.push_str("&continuation-token=");
            query.push_str(&uri_encode(token, false));
        }
        Job {
            op: Op::List,
            method: "GET",
            path: format!("/{}", uri_encode(&self.bucket, false)),
            query,
            body: JobBody::None,
            head: false,
            keep_body_bytes_max: XML_BODY_BYTES_MAX,
            what: format!("prefix {prefix}"),
            token: Token::None,
        }
    }

    fn mixed_job(&mut self, conn: &mut ConnState, shares: MixedShares, prefix: &str) -> Job {
        let state = self.mixed.as_mut().expect("mixed work has mixed state");
        let draw = conn.rng.below(u64::from(shares.total())) as u32;
        let wanted = if draw < shares.get {
            Op::Get
        } else if draw < shares.get + shares.stat {
            Op::Stat
        } else if draw < shares.get + shares.stat + shares.put {
            Op::Put
        } else {
            Op::Delete
        };
        // With nothing to read or delete (every object of this core deleted), the only thing to
        // do is to put one.
        let op = if state.live.is_empty() { Op::Put } else { wanted };
        match op {
            Op::Get | Op::Stat => {
                let name = state.live[conn.rng.below(state.live.len() as u64) as usize];
                state.readers[name] += 1;
                let key = state.names[name].clone();
                self.object_job(op, &key, Token::MixedRead(name))
            }
            Op::Delete => match pick_unread(state, &mut conn.rng) {
                Some(position) => {
                    let name = state.live.swap_remove(position);
                    let key = state.names[name].clone();
                    self.object_job(Op::Delete, &key, Token::MixedDelete(name))
                }
                None => self.mixed_put(prefix),
            },
            _ => self.mixed_put(prefix),
        }
    }

    fn mixed_put(&mut self, prefix: &str) -> Job {
        let state = self.mixed.as_mut().expect("mixed work has mixed state");
        let key = format!("{prefix}m{}-{:08}", state.core, state.next_seq);
        state.next_seq += 1;
        state.names.push(key.clone());
        state.readers.push(0);
        let name = state.names.len() - 1;
        self.object_job(Op::Put, &key, Token::MixedPut(name))
    }

    /// Settles `job` with its response (`None`: the request failed on the wire, `error` says
    /// how): the outcome to count, and the core's state updated.
    pub fn complete(&mut self, job: &Job, response: Result<&Response, &str>, conn: &mut ConnState) -> Outcome {
        let outcome = match response {
            Err(e) => Outcome::Failed(e.to_string()),
            Ok(r) if !(200..300).contains(&r.status) => Outcome::Failed(format!("status {}: {}", r.status, error_text(&r.body_start))),
            Ok(r) => self.success(job, r, conn),
        };
        self.settle_mixed(job, matches!(outcome, Outcome::Done { .. }));
        outcome
    }

    fn success(&mut self, job: &Job, r: &Response, conn: &mut ConnState) -> Outcome {
        match (&job.token, job.op) {
            (Token::Batch(n), _) => match multi_delete_errors(&r.body_start) {
                0 => Outcome::Done { bytes: 0, objects: *n },
                failed => Outcome::Failed(format!("{failed} of {n} keys not deleted: {}", error_text(&r.body_start))),
            },
            (Token::Part(part), _) => match &r.etag {
                Some(etag) => {
                    self.parts.push((*part, etag.clone()));
                    Outcome::Done { bytes: self.object_bytes, objects: 1 }
                }
                None => Outcome::Failed("the part's response has no ETag".into()),
            },
            (_, Op::List) => match parse_list_page(&r.body_start) {
                Ok(page) => {
                    conn.continuation = page.next_token;
                    Outcome::Done { bytes: 0, objects: page.key_count }
                }
                Err(e) => Outcome::Failed(e),
            },
            (_, Op::Get) => Outcome::Done { bytes: r.body_bytes, objects: 1 },
            (_, Op::Put) => Outcome::Done { bytes: self.object_bytes, objects: 1 },
            _ => Outcome::Done { bytes: 0, objects: 1 },
        }
    }

    fn settle_mixed(&mut self, job: &Job, ok: bool) {
        let Some(state) = self.mixed.as_mut() else { return };
        match job.token {
            Token::MixedRead(name) => {
                assert!(state.readers[name] > 0, "a read of {} settled twice", state.names[name]);
                state.readers[name] -= 1;
            }
            Token::MixedPut(name) if ok => state.live.push(name),
            // A failed DELETE most likely left the object in place: it can be read again.
            Token::MixedDelete(name) if !ok => state.live.push(name),
            _ => {}
        }
    }
}

/// A position in `live` of an object no read is in flight for.
fn pick_unread(state: &MixedState, rng: &mut Prng) -> Option<usize> {
    (0..DELETE_PICKS_MAX).map(|_| rng.below(state.live.len() as u64) as usize).find(|&p| state.readers[state.live[p]] == 0)
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// An S3 error body's code and message, or its first bytes.
pub fn error_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match (xml_value(&text, "Code"), xml_value(&text, "Message")) {
        (Some(code), Some(message)) => format!("{code}: {}", xml_unescape(message)),
        (Some(code), None) => code.to_string(),
        _ => text.chars().take(200).collect(),
    }
}

/// The text of the first `<tag>` element of `xml` (no attributes, no nesting).
pub fn xml_value<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// Failed keys in a multi-delete answer.
fn multi_delete_errors(body: &[u8]) -> usize {
    String::from_utf8_lossy(body).matches("<Error>").count()
}

/// What a ListObjectsV2 page says.
#[derive(Debug, PartialEq, Eq)]
pub struct ListPage {
    pub key_count: u64,
    pub keys: Vec<String>,
    /// The token of the next page; `None` at the end.
    pub next_token: Option<String>,
}

pub fn parse_list_page(body: &[u8]) -> Result<ListPage, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the listing is not UTF-8".to_string())?;
    if !text.contains("<ListBucketResult") {
        return Err(format!("not a ListBucketResult: {}", text.chars().take(200).collect::<String>()));
    }
    let keys: Vec<String> = text.split("<Contents>").skip(1).filter_map(|c| xml_value(c, "Key")).map(xml_unescape).collect();
    let truncated = xml_value(text, "IsTruncated") == Some("true");
    let next_token = xml_value(text, "NextContinuationToken").filter(|_| truncated).map(xml_unescape);
    if truncated && next_token.is_none() {
        return Err("a truncated listing without NextContinuationToken".into());
    }
    let key_count = match xml_value(text, "KeyCount") {
        Some(n) => n.parse().map_err(|_| format!("KeyCount {n:?}"))?,
        None => keys.len() as u64,
    };
    Ok(ListPage { key_count, keys, next_token })
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_page(body: &str, expected: Result<ListPage, ()>) {
        assert_eq!(parse_list_page(body.as_bytes()).map_err(|_| ()), expected, "{body}");
    }

    #[test]
    fn parses_listing_pages() {
        check_page(
            "<ListBucketResult><KeyCount>2</KeyCount><IsTruncated>false</IsTruncated><Contents><Key>a&amp;b</Key></Contents><Contents><Key>c</Key></Contents></ListBucketResult>",
            Ok(ListPage { key_count: 2, keys: vec!["a&b".into(), "c".into()], next_token: None }),
        );
        check_page(
            "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>t1</NextContinuationToken><Contents><Key>a</Key></Contents></ListBucketResult>",
            Ok(ListPage { key_count: 1, keys: vec!["a".into()], next_token: Some("t1".into()) }),
        );
        check_page("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", Err(()));
        check_page("<Error><Code>AccessDenied</Code></Error>", Err(()));
    }

    #[test]
    fn reads_error_bodies() {
        assert_eq!(error_text(b"<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>"), "SignatureDoesNotMatch: no");
        assert_eq!(error_text(b"plain"), "plain");
        assert_eq!(multi_delete_errors(b"<DeleteResult><Error><Key>a</Key></Error><Error></Error></DeleteResult>"), 2);
    }

    /// Every connection's share of an each-once work, together, is every key exactly once.
    #[test]
    fn fill_and_delete_cover_every_key_once() {
        // 100 keys in batches of 10: the last batch ends exactly at the end (no empty batch).
        let keys: Arc<[String]> = (0..100).map(|i| format!("k{i}")).collect::<Vec<_>>().into();
        let mut seen = Vec::new();
        let works = [(Work::Fill { keys: keys.clone() }, 7), (Work::Delete { keys: keys.clone(), batch: 10 }, 3), (Work::Delete { keys: keys.clone(), batch: 7 }, 4)];
        for (work, connections) in works {
            let mut core = CoreWork::new(&work, "b", 1, 0, 1);
            let mut objects = 0;
            for c in 0..connections {
                let mut conn = ConnState::new(c, connections, 1);
                while let Some(job) = core.next(&mut conn) {
                    match job.body {
                        JobBody::Xml(xml) => {
                            let text = String::from_utf8(xml).expect("utf8");
                            assert!(text.contains("<Key>"), "an empty multi-delete: {text}");
                            objects += text.matches("<Key>").count();
                        }
                        _ => {
                            seen.push(job.what);
                            objects += 1;
                        }
                    }
                }
            }
            assert_eq!(objects, keys.len(), "{work:?}");
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), keys.len());
    }

    /// A `mixed` DELETE never takes an object a read is in flight for, and shares follow the
    /// weights.
    #[test]
    fn mixed_follows_shares_and_never_deletes_what_is_read() {
        let keys: Arc<[String]> = (0..40).map(|i| format!("k{i}")).collect::<Vec<_>>().into();
        let shares = MixedShares { get: 45, stat: 30, put: 15, delete: 10 };
        let work = Work::Mixed { keys, shares, prefix: "p/".into() };
        let mut core = CoreWork::new(&work, "b", 1, 1, 2);
        let mut conn = ConnState::new(0, 1, 7);
        let mut counts = [0u32; crate::loadgen::op::OP_COUNT];
        let mut reading: Vec<Job> = Vec::new();
        let ok = Response { status: 200, body_bytes: 1, close: false, body_start: Vec::new(), etag: None };
        for i in 0..20_000 {
            let job = core.next(&mut conn).expect("mixed never ends");
            counts[job.op.index()] += 1;
            if job.op == Op::Delete {
                assert!(reading.iter().all(|r| r.what != job.what), "deleting {} while it is read", job.what);
            }
            if matches!(job.op, Op::Get | Op::Stat) && i % 3 == 0 {
                reading.push(job);
            } else {
                core.complete(&job, Ok(&ok), &mut conn);
            }
            if reading.len() > 10 {
                let job = reading.remove(0);
                core.complete(&job, Ok(&ok), &mut conn);
            }
        }
        let share = |op: Op| f64::from(counts[op.index()]) / 20_000.0;
        for (op, want) in [(Op::Get, 0.45), (Op::Stat, 0.30), (Op::Put, 0.15), (Op::Delete, 0.10)] {
            assert!((share(op) - want).abs() < 0.02, "{op:?}: {} vs {want}", share(op));
        }
    }
}
