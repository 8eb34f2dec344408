//! Messages on the wire between nodes: a length-prefixed, little-endian encoding.
//!
//! A frame is `u32 length | body`, the body `u64 group | u64 from | u64 to | u64 term | u8 tag |
//! fields`. Entries are `u64 term | u64 index | u8 kind | u32 length | payload`. Decoding never
//! panics on what arrives: anything malformed is a `WireError` (the connection is then closed;
//! Raft retries whatever mattered), and `RawNode::step` still validates the message itself.

use crate::membership::Membership;
use crate::types::{Body, Entry, EntryKind, Message, RejectHint, SnapshotMeta};

/// Largest frame body accepted: an AppendEntries of `APPEND_BYTES_MAX` payload plus headers, or
/// a snapshot chunk.
pub const MESSAGE_BYTES_MAX: usize = 2 * crate::config::APPEND_BYTES_MAX + (1 << 20);
/// Bytes of the length prefix.
pub const LENGTH_BYTES: usize = 4;
const _: () = assert!(MESSAGE_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(crate::config::SNAPSHOT_CHUNK_BYTES < MESSAGE_BYTES_MAX);

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame of {0} bytes exceeds the largest message")]
    TooLarge(usize),
    #[error("message ends early")]
    Truncated,
    #[error("unknown message tag {0}")]
    Tag(u8),
    #[error("unknown entry kind {0}")]
    EntryKind(u8),
    #[error("malformed membership")]
    Membership,
    #[error("{0} bytes left over after the message")]
    Trailing(usize),
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(&(b.len() as u32).to_le_bytes());
        self.0.extend_from_slice(b);
    }
    fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn bool(&mut self) -> Result<bool, WireError> {
        Ok(self.u8()? != 0)
    }
}

fn kind_byte(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Noop => 0,
        EntryKind::Normal => 1,
        EntryKind::ConfChange => 2,
    }
}

fn kind_of(b: u8) -> Result<EntryKind, WireError> {
    match b {
        0 => Ok(EntryKind::Noop),
        1 => Ok(EntryKind::Normal),
        2 => Ok(EntryKind::ConfChange),
        _ => Err(WireError::EntryKind(b)),
    }
}

/// Appends `message` as one frame to `out`.
pub fn encode(message: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_BYTES]);
    let mut w = Writer(out);
    w.u64(message.group);
    w.u64(message.from);
    w.u64(message.to);
    w.u64(message.term);
    encode_body(&message.body, &mut w);
    let len = out.len() - start - LENGTH_BYTES;
    assert!(len <= MESSAGE_BYTES_MAX, "a {} message of {len} bytes exceeds MESSAGE_BYTES_MAX", message.body.name());
    out[start..start + LENGTH_BYTES].copy_from_slice(&(len as u32).to_le_bytes());
}

fn encode_body(body: &Body, w: &mut Writer<'_>) {
    match body {
        Body::PreVote { last_index, last_term } => {
            w.u8(1);
            w.u64(*last_index);
            w.u64(*last_term);
        }
        Body::PreVoteResponse { granted } => {
            w.u8(2);
            w.bool(*granted);
        }
        Body::Vote { last_index, last_term, transfer } => {
            w.u8(3);
            w.u64(*last_index);
            w.u64(*last_term);
            w.bool(*transfer);
        }
        Body::VoteResponse { granted } => {
            w.u8(4);
            w.bool(*granted);
        }
        Body::Append { prev_index, prev_term, entries, commit } => {
            w.u8(5);
            w.u64(*prev_index);
            w.u64(*prev_term);
            w.u64(*commit);
            w.0.extend_from_slice(&(entries.len() as u32).to_le_bytes());
            for e in entries {
                w.u64(e.term);
                w.u64(e.index);
                w.u8(kind_byte(e.kind));
                w.bytes(&e.payload);
            }
        }
        Body::AppendResponse { index, reject } => {
            w.u8(6);
            w.u64(*index);
            w.bool(reject.is_some());
            let hint = reject.unwrap_or(RejectHint { index: 0, term: 0 });
            w.u64(hint.index);
            w.u64(hint.term);
        }
        Body::Heartbeat { commit, read_seq } => {
            w.u8(7);
            w.u64(*commit);
            w.u64(*read_seq);
        }
        Body::HeartbeatResponse { read_seq } => {
            w.u8(8);
            w.u64(*read_seq);
        }
        Body::TimeoutNow => w.u8(9),
        Body::InstallSnapshot { meta, membership, offset, data, done } => {
            w.u8(10);
            w.u64(meta.index);
            w.u64(meta.term);
            w.bytes(&membership.encode());
            w.u64(*offset);
            w.bytes(data);
            w.bool(*done);
        }
        Body::InstallSnapshotResponse { index, offset } => {
            w.u8(11);
            w.u64(*index);
            w.u64(*offset);
        }
    }
}

/// The length of the frame at the start of `bytes`, once its prefix has arrived.
pub fn frame_len(bytes: &[u8]) -> Result<Option<usize>, WireError> {
    let Some(prefix) = bytes.get(..LENGTH_BYTES) else { return Ok(None) };
    let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
    if len > MESSAGE_BYTES_MAX {
        return Err(WireError::TooLarge(len));
    }
    Ok(Some(LENGTH_BYTES + len))
}

/// Decodes one frame body (without its length prefix).
pub fn decode(body: &[u8]) -> Result<Message, WireError> {
    let mut r = Reader(body);
    let (group, from, to, term) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
    let body = decode_body(&mut r)?;
    if !r.0.is_empty() {
        return Err(WireError::Trailing(r.0.len()));
    }
    Ok(Message { group, from, to, term, body })
}

fn decode_body(r: &mut Reader<'_>) -> Result<Body, WireError> {
    Ok(match r.u8()? {
        1 => Body::PreVote { last_index: r.u64()?, last_term: r.u64()? },
        2 => Body::PreVoteResponse { granted: r.bool()? },
        3 => Body::Vote { last_index: r.u64()?, last_term: r.u64()?, transfer: r.bool()? },
        4 => Body::VoteResponse { granted: r.bool()? },
        5 => {
            let (prev_index, prev_term, commit) = (r.u64()?, r.u64()?, r.u64()?);
            let n = r.u32()? as usize;
            // Each entry takes at least 21 bytes: a count beyond what arrived is malformed, and
            // must not size an allocation.
            let mut entries = Vec::with_capacity(n.min(r.0.len() / 21));
            for _ in 0..n {
                let (term, index, kind) = (r.u64()?, r.u64()?, kind_of(r.u8()?)?);
                entries.push(Entry { term, index, kind, payload: r.bytes()?.into() });
            }
            Body::Append { prev_index, prev_term, entries, commit }
        }
        6 => {
            let index = r.u64()?;
            let rejected = r.bool()?;
            let hint = RejectHint { index: r.u64()?, term: r.u64()? };
            Body::AppendResponse { index, reject: rejected.then_some(hint) }
        }
        7 => Body::Heartbeat { commit: r.u64()?, read_seq: r.u64()? },
        8 => Body::HeartbeatResponse { read_seq: r.u64()? },
        9 => Body::TimeoutNow,
        10 => {
            let meta = SnapshotMeta { index: r.u64()?, term: r.u64()? };
            let membership = Membership::decode(r.bytes()?).ok_or(WireError::Membership)?;
            let offset = r.u64()?;
            let data = r.bytes()?.into();
            Body::InstallSnapshot { meta, membership, offset, data, done: r.bool()? }
        }
        11 => Body::InstallSnapshotResponse { index: r.u64()?, offset: r.u64()? },
        tag => return Err(WireError::Tag(tag)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: Body) {
        let message = Message { group: 7, from: 1, to: 2, term: 3, body };
        let mut out = Vec::new();
        encode(&message, &mut out);
        assert_eq!(frame_len(&out), Ok(Some(out.len())));
        assert_eq!(decode(&out[LENGTH_BYTES..]), Ok(message.clone()));
        // Every strict prefix is refused, never a panic.
        for cut in 0..out.len() - LENGTH_BYTES {
            assert!(decode(&out[LENGTH_BYTES..LENGTH_BYTES + cut]).is_err(), "{} cut at {cut}", message.body.name());
        }
    }

    /// One message of every kind (and the variants of some).
    fn samples() -> Vec<Body> {
        let entry = |index, kind| Entry { term: 2, index, kind, payload: vec![index as u8; index as usize].into() };
        vec![
            Body::PreVote { last_index: 5, last_term: 2 },
            Body::PreVoteResponse { granted: true },
            Body::Vote { last_index: 5, last_term: 2, transfer: true },
            Body::VoteResponse { granted: false },
            Body::Append { prev_index: 4, prev_term: 1, entries: vec![], commit: 3 },
            Body::Append {
                prev_index: 4,
                prev_term: 1,
                entries: vec![entry(5, EntryKind::Noop), entry(6, EntryKind::Normal), entry(7, EntryKind::ConfChange)],
                commit: 3,
            },
            Body::AppendResponse { index: 9, reject: None },
            Body::AppendResponse { index: 9, reject: Some(RejectHint { index: 4, term: 1 }) },
            Body::Heartbeat { commit: 8, read_seq: 11 },
            Body::HeartbeatResponse { read_seq: 11 },
            Body::TimeoutNow,
            Body::InstallSnapshot {
                meta: SnapshotMeta { index: 10, term: 2 },
                membership: Membership::new(vec![1, 2, 3], vec![4]),
                offset: 4096,
                data: vec![1, 2, 3].into(),
                done: true,
            },
            Body::InstallSnapshotResponse { index: 10, offset: 8192 },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for body in samples() {
            check(body);
        }
    }

    /// The fuzzer's seeds (`raftlog/fuzz/corpus/wire_decode`) are the bodies of `samples`, so it
    /// starts from every kind of message; they must still decode as the format evolves.
    /// `RAFTLOG_WRITE_CORPUS=1` writes them afresh.
    #[test]
    fn the_fuzz_corpus_holds_every_kind_of_message() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wire_decode");
        for (i, body) in samples().into_iter().enumerate() {
            let name = format!("{i:02}-{}", body.name());
            let message = Message { group: 7, from: 1, to: 2, term: 3, body };
            let mut out = Vec::new();
            encode(&message, &mut out);
            let path = dir.join(name);
            if std::env::var_os("RAFTLOG_WRITE_CORPUS").is_some() {
                std::fs::create_dir_all(&dir).expect("corpus directory");
                std::fs::write(&path, &out[LENGTH_BYTES..]).expect("writing a seed");
            }
            let seed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (RAFTLOG_WRITE_CORPUS=1 writes the seeds)", path.display()));
            assert_eq!(decode(&seed), Ok(message), "{} no longer decodes to its message", path.display());
        }
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let mut rng = engine::rng::Prng::new(7);
        for _ in 0..20_000 {
            let len = rng.below(80) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            let _ = decode(&bytes);
            let _ = frame_len(&bytes);
        }
        assert_eq!(frame_len(&u32::MAX.to_le_bytes()), Err(WireError::TooLarge(u32::MAX as usize)));
        assert_eq!(decode(&[0; 33]), Err(WireError::Tag(0)));
    }
}
