//! The raft node's client protocol: length-prefixed little-endian frames over TCP.
//!
//! A frame is `u32 length | body`; a body is `u8 kind | u64 id | fields`. The client picks `id`
//! and the node echoes it, so a connection may have several requests in flight and replies may
//! come back in another order (proposals are answered when they commit).
//!
//! Requests name the Raft group they are for: `Propose { group }` (payload: the rest of the
//! body), `Status { group }`, `Read { group, index }`. A node runs its groups on several cores,
//! each core with its own client port; group `g` lives on core `core_of(g, cores)` of every
//! replica (`core_of`), and a request sent to another core is refused with an error naming the
//! owning core (no cross-core hop on the hot path: the client connects to the owner).
//! Replies: `Committed { index }` (applied at that index on this node, the leader),
//! `NotLeader { hint }` (0: no leader known), `Status`, `Entry { index, term, payload }`,
//! `Error { message }` (refused: busy, lost to a new leader, not yet applied, a read failed).
//!
//! Std only: the integration tests include this file as a module (`#[path]`) to speak the
//! same protocol as the bench, and the blocking `Client` below serves both.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use engine::latency::{LATENCY_BUCKETS, LatencyBuckets};

/// Bytes of the length prefix.
pub const LENGTH_BYTES: usize = 4;
/// Largest proposal payload the node accepts.
pub const PAYLOAD_BYTES_MAX: usize = 64 << 10;
/// Largest frame body: a payload plus the kind, id and entry fields.
pub const BODY_BYTES_MAX: usize = PAYLOAD_BYTES_MAX + 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Propose { id: u64, group: u64, payload: &'a [u8] },
    Status { id: u64, group: u64 },
    Read { id: u64, group: u64, index: u64 },
}

/// The core that owns Raft group `group` (1, 2, ...) on a node of `cores` cores: the same on
/// every replica, so a group's messages go from core `c` of one node to core `c` of another.
pub fn core_of(group: u64, cores: usize) -> usize {
    assert!(group > 0 && cores > 0, "group {group} on {cores} cores");
    ((group - 1) % cores as u64) as usize
}

/// A node's view of itself, as `Status` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: u64,
    pub is_leader: bool,
    pub term: u64,
    /// 0: none known.
    pub leader: u64,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    /// Durable writes of the node's store (each one write with RWF_DSYNC: one fdatasync).
    pub store_syncs: u64,
    pub store_records: u64,
    /// How long the store's durable batch writes took (`StoreStats::write_latency`).
    pub store_write: LatencyBuckets,
    /// The index the group's log was last compacted through (its snapshot), 0 if never.
    pub snapshot_index: u64,
    /// Snapshots this replica installed from a leader since it started.
    pub snapshots_installed: u64,
    /// The state machine's digest, chained over every entry applied through `applied`: two
    /// replicas at the same `applied` show the same digest only if they applied the same log.
    pub digest: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    Committed { id: u64, index: u64 },
    NotLeader { id: u64, hint: u64 },
    /// Boxed: a status carries a latency histogram, and the other replies are small.
    Status { id: u64, status: Box<NodeStatus> },
    Entry { id: u64, index: u64, term: u64, payload: &'a [u8] },
    Error { id: u64, message: &'a [u8] },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoError {
    TooLarge(usize),
    Truncated,
    Kind(u8),
    Trailing(usize),
    /// A latency bucket index past the last one.
    Bucket(u64),
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoError::TooLarge(n) => write!(f, "frame of {n} bytes exceeds {BODY_BYTES_MAX}"),
            ProtoError::Truncated => write!(f, "frame ends early"),
            ProtoError::Kind(k) => write!(f, "unknown frame kind {k}"),
            ProtoError::Trailing(n) => write!(f, "{n} bytes left over after the frame"),
            ProtoError::Bucket(i) => write!(f, "latency bucket {i} does not exist"),
        }
    }
}

const PROPOSE: u8 = 1;
const STATUS: u8 = 2;
const READ: u8 = 3;
const COMMITTED: u8 = 1;
const NOT_LEADER: u8 = 2;
const STATUS_REPLY: u8 = 3;
const ENTRY: u8 = 4;
const ERROR: u8 = 5;

/// Starts a frame of `kind` for `id` in `out`; `finish` writes its length.
fn begin(out: &mut Vec<u8>, kind: u8, id: u64) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_BYTES]);
    out.push(kind);
    out.extend_from_slice(&id.to_le_bytes());
    start
}

fn finish(out: &mut [u8], start: usize) {
    let len = out.len() - start - LENGTH_BYTES;
    assert!(len <= BODY_BYTES_MAX, "a frame of {len} bytes exceeds BODY_BYTES_MAX");
    out[start..start + LENGTH_BYTES].copy_from_slice(&(len as u32).to_le_bytes());
}

fn put_u64s(out: &mut Vec<u8>, values: &[u64]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

pub fn encode_request(request: &Request<'_>, out: &mut Vec<u8>) {
    let start = match request {
        Request::Propose { id, group, payload } => {
            assert!(payload.len() <= PAYLOAD_BYTES_MAX, "a proposal of {} bytes exceeds PAYLOAD_BYTES_MAX", payload.len());
            let start = begin(out, PROPOSE, *id);
            put_u64s(out, &[*group]);
            out.extend_from_slice(payload);
            start
        }
        Request::Status { id, group } => {
            let start = begin(out, STATUS, *id);
            put_u64s(out, &[*group]);
            start
        }
        Request::Read { id, group, index } => {
            let start = begin(out, READ, *id);
            put_u64s(out, &[*group, *index]);
            start
        }
    };
    finish(out, start);
}

pub fn encode_reply(reply: &Reply<'_>, out: &mut Vec<u8>) {
    let start = match reply {
        Reply::Committed { id, index } => {
            let start = begin(out, COMMITTED, *id);
            put_u64s(out, &[*index]);
            start
        }
        Reply::NotLeader { id, hint } => {
            let start = begin(out, NOT_LEADER, *id);
            put_u64s(out, &[*hint]);
            start
        }
        Reply::Status { id, status: s } => {
            let start = begin(out, STATUS_REPLY, *id);
            out.push(s.is_leader as u8);
            put_u64s(out, &[s.id, s.term, s.leader, s.commit, s.applied, s.last_index, s.store_syncs, s.store_records]);
            put_u64s(out, &[s.snapshot_index, s.snapshots_installed, s.digest]);
            // The non-empty buckets only: (count, then index and value of each).
            put_u64s(out, &[s.store_write.nonzero().count() as u64]);
            for (i, c) in s.store_write.nonzero() {
                put_u64s(out, &[i as u64, c]);
            }
            start
        }
        Reply::Entry { id, index, term, payload } => {
            let start = begin(out, ENTRY, *id);
            put_u64s(out, &[*index, *term]);
            out.extend_from_slice(payload);
            start
        }
        Reply::Error { id, message } => {
            let start = begin(out, ERROR, *id);
            out.extend_from_slice(&message[..message.len().min(PAYLOAD_BYTES_MAX)]);
            start
        }
    };
    finish(out, start);
}

/// The length of the whole frame at the start of `bytes`, once its prefix has arrived.
pub fn frame_len(bytes: &[u8]) -> Result<Option<usize>, ProtoError> {
    let Some(prefix) = bytes.get(..LENGTH_BYTES) else { return Ok(None) };
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > BODY_BYTES_MAX {
        return Err(ProtoError::TooLarge(len));
    }
    Ok(Some(LENGTH_BYTES + len))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.0.len() < n {
            return Err(ProtoError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, ProtoError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
    fn end(&self) -> Result<(), ProtoError> {
        if self.0.is_empty() { Ok(()) } else { Err(ProtoError::Trailing(self.0.len())) }
    }
}

/// Decodes one request body (without its length prefix).
pub fn decode_request(body: &[u8]) -> Result<Request<'_>, ProtoError> {
    let mut r = Reader(body);
    let (kind, id) = (r.u8()?, r.u64()?);
    let request = match kind {
        PROPOSE => Request::Propose { id, group: r.u64()?, payload: r.rest() },
        STATUS => Request::Status { id, group: r.u64()? },
        READ => Request::Read { id, group: r.u64()?, index: r.u64()? },
        k => return Err(ProtoError::Kind(k)),
    };
    r.end()?;
    Ok(request)
}

/// Decodes one reply body (without its length prefix).
pub fn decode_reply(body: &[u8]) -> Result<Reply<'_>, ProtoError> {
    let mut r = Reader(body);
    let (kind, id) = (r.u8()?, r.u64()?);
    let reply = match kind {
        COMMITTED => Reply::Committed { id, index: r.u64()? },
        NOT_LEADER => Reply::NotLeader { id, hint: r.u64()? },
        STATUS_REPLY => {
            let is_leader = r.u8()? != 0;
            let mut status = NodeStatus {
                is_leader,
                id: r.u64()?,
                term: r.u64()?,
                leader: r.u64()?,
                commit: r.u64()?,
                applied: r.u64()?,
                last_index: r.u64()?,
                store_syncs: r.u64()?,
                store_records: r.u64()?,
                store_write: LatencyBuckets::default(),
                snapshot_index: r.u64()?,
                snapshots_installed: r.u64()?,
                digest: r.u64()?,
            };
            let buckets = r.u64()?;
            if buckets > LATENCY_BUCKETS as u64 {
                return Err(ProtoError::Bucket(buckets));
            }
            for _ in 0..buckets {
                let (i, c) = (r.u64()?, r.u64()?);
                if !status.store_write.add_bucket(usize::try_from(i).unwrap_or(usize::MAX), c) {
                    return Err(ProtoError::Bucket(i));
                }
            }
            Reply::Status { id, status: Box::new(status) }
        }
        ENTRY => Reply::Entry { id, index: r.u64()?, term: r.u64()?, payload: r.rest() },
        ERROR => Reply::Error { id, message: r.rest() },
        k => return Err(ProtoError::Kind(k)),
    };
    r.end()?;
    Ok(reply)
}

/// A reply as owned values, for the blocking client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Committed { index: u64 },
    NotLeader { hint: u64 },
    Status(Box<NodeStatus>),
    Entry { index: u64, term: u64, payload: Vec<u8> },
    Error(String),
}

/// One request at a time on a std socket: the bench's control path (waiting for a leader,
/// elections) and the integration tests. The load itself runs on the engine's runtime.
pub struct Client {
    stream: TcpStream,
    addr: SocketAddr,
    next_id: u64,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Client, String> {
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect to {addr}: {e}"))?;
        stream.set_read_timeout(Some(timeout)).map_err(|e| format!("{addr}: set_read_timeout: {e}"))?;
        stream.set_write_timeout(Some(timeout)).map_err(|e| format!("{addr}: set_write_timeout: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(Client { stream, addr, next_id: 1, buf: Vec::new() })
    }

    pub fn call(&mut self, request: &Request<'_>) -> Result<Answer, String> {
        self.buf.clear();
        encode_request(request, &mut self.buf);
        self.stream.write_all(&self.buf).map_err(|e| format!("{}: send: {e}", self.addr))?;
        let mut prefix = [0u8; LENGTH_BYTES];
        self.stream.read_exact(&mut prefix).map_err(|e| format!("{}: receive: {e}", self.addr))?;
        let len = frame_len(&prefix).map_err(|e| format!("{}: {e}", self.addr))?.unwrap_or(LENGTH_BYTES) - LENGTH_BYTES;
        self.buf.resize(len, 0);
        self.stream.read_exact(&mut self.buf).map_err(|e| format!("{}: receive: {e}", self.addr))?;
        let reply = decode_reply(&self.buf).map_err(|e| format!("{}: {e}", self.addr))?;
        Ok(match reply {
            Reply::Committed { index, .. } => Answer::Committed { index },
            Reply::NotLeader { hint, .. } => Answer::NotLeader { hint },
            Reply::Status { status, .. } => Answer::Status(status),
            Reply::Entry { index, term, payload, .. } => Answer::Entry { index, term, payload: payload.to_vec() },
            Reply::Error { message, .. } => Answer::Error(String::from_utf8_lossy(message).into_owned()),
        })
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn propose(&mut self, group: u64, payload: &[u8]) -> Result<Answer, String> {
        let id = self.id();
        self.call(&Request::Propose { id, group, payload })
    }

    /// `group`'s status on the core this client is connected to.
    pub fn status(&mut self, group: u64) -> Result<NodeStatus, String> {
        let id = self.id();
        match self.call(&Request::Status { id, group })? {
            Answer::Status(s) => Ok(*s),
            other => Err(format!("{}: status answered {other:?}", self.addr)),
        }
    }

    #[allow(dead_code)] // the process tests read entries back; the bench does not
    pub fn read(&mut self, group: u64, index: u64) -> Result<Answer, String> {
        let id = self.id();
        self.call(&Request::Read { id, group, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_request(request: Request<'_>) {
        let mut out = Vec::new();
        encode_request(&request, &mut out);
        assert_eq!(frame_len(&out), Ok(Some(out.len())));
        assert_eq!(decode_request(&out[LENGTH_BYTES..]), Ok(request.clone()));
    }

    fn check_reply(reply: Reply<'_>) {
        let mut out = Vec::new();
        encode_reply(&reply, &mut out);
        assert_eq!(frame_len(&out), Ok(Some(out.len())));
        assert_eq!(decode_reply(&out[LENGTH_BYTES..]), Ok(reply.clone()));
        // A fixed-size reply cut short is refused, never a panic.
        if !matches!(reply, Reply::Entry { .. } | Reply::Error { .. }) {
            for cut in 0..out.len() - LENGTH_BYTES {
                assert!(decode_reply(&out[LENGTH_BYTES..LENGTH_BYTES + cut]).is_err(), "{reply:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn every_frame_round_trips() {
        check_request(Request::Propose { id: 7, group: 1, payload: &[1, 2, 3] });
        check_request(Request::Propose { id: 7, group: 3, payload: &[] });
        check_request(Request::Status { id: 8, group: 2 });
        check_request(Request::Read { id: 9, group: 1, index: 1 << 40 });
        check_reply(Reply::Committed { id: 1, index: 99 });
        check_reply(Reply::NotLeader { id: 2, hint: 3 });
        let status = NodeStatus {
            id: 2,
            is_leader: true,
            term: 4,
            leader: 2,
            commit: 100,
            applied: 99,
            last_index: 101,
            store_syncs: 50,
            store_records: 300,
            store_write: LatencyBuckets::default(),
            snapshot_index: 64,
            snapshots_installed: 1,
            digest: 0xDEAD_BEEF,
        };
        check_reply(Reply::Status { id: 3, status: Box::new(status) });
        let mut timed = status;
        timed.store_write.record_ns(450_000);
        timed.store_write.record_ns(450_000);
        timed.store_write.record_ns(1_500_000);
        check_reply(Reply::Status { id: 3, status: Box::new(timed) });
        check_reply(Reply::Entry { id: 4, index: 5, term: 6, payload: b"entry" });
        check_reply(Reply::Error { id: 5, message: b"busy" });
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let mut state = 7u64;
        for _ in 0..20_000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = (state >> 58) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (state >> (i % 56)) as u8).collect();
            let _ = decode_request(&bytes);
            let _ = decode_reply(&bytes);
            let _ = frame_len(&bytes);
        }
        assert_eq!(frame_len(&u32::MAX.to_le_bytes()), Err(ProtoError::TooLarge(u32::MAX as usize)));
        assert_eq!(decode_request(&[9, 0, 0, 0, 0, 0, 0, 0, 0]), Err(ProtoError::Kind(9)));
        assert_eq!(decode_request(&[3, 0, 0, 0, 0, 0, 0, 0, 0, 1]), Err(ProtoError::Truncated));
        // A proposal without its group is cut short, not a proposal of group 0 with no payload.
        assert_eq!(decode_request(&[1, 0, 0, 0, 0, 0, 0, 0, 0]), Err(ProtoError::Truncated));
    }

    #[test]
    fn groups_spread_round_robin_over_the_cores() {
        assert_eq!((1..=5).map(|g| core_of(g, 2)).collect::<Vec<_>>(), [0, 1, 0, 1, 0]);
        assert!((1..=9).all(|g| core_of(g, 1) == 0));
    }
}
