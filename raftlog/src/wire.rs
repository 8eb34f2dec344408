//! Messages on the wire between nodes: FlatBuffers of `net`'s node schema
//! (`net/schema/node.fbs`), one per frame.
//!
//! A frame is `u32 length | FlatBuffer`, the buffer a `Message { group, from, to, term, body }`
//! whose body is a union of Raft's messages. Decoding never panics on what arrives: the
//! FlatBuffers verifier checks every offset and length first, then every field is checked as it
//! is converted to raftlog's types (an unknown message kind or entry kind, an invalid
//! membership); anything malformed is a `WireError` (the connection is then closed; Raft
//! retries whatever mattered), and `RawNode::step` still validates the message itself.
//!
//! Why FlatBuffers and not a hand-made layout: a table gains fields at its end and a union gains
//! kinds without breaking older readers, so nodes of two versions talk during a rolling
//! upgrade; and the schema, not this file, says what the bytes are.

use std::cell::RefCell;

use net::flatbuffers::{FlatBufferBuilder, InvalidFlatbuffer, VerifierOptions, WIPOffset};
use net::node_msg as fb;

use crate::membership::{MEMBERS_MAX, Membership};
use crate::types::{Body, Entry, EntryKind, Message, RejectHint, SnapshotMeta};

/// Largest frame body accepted: an AppendEntries of `APPEND_BYTES_MAX` payload plus headers, or
/// a snapshot chunk.
pub const MESSAGE_BYTES_MAX: usize = 2 * crate::config::APPEND_BYTES_MAX + (1 << 20);
/// Bytes of the length prefix.
pub const LENGTH_BYTES: usize = 4;
const _: () = assert!(MESSAGE_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(crate::config::SNAPSHOT_CHUNK_BYTES < MESSAGE_BYTES_MAX);
/// Tables one message may hold: the message, its body and its entries (an entry takes at least
/// a few dozen bytes, so a message within `MESSAGE_BYTES_MAX` holds far fewer).
const TABLES_MAX: usize = MESSAGE_BYTES_MAX / 16;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame of {0} bytes exceeds the largest message")]
    TooLarge(usize),
    #[error("not a node message: {0}")]
    Malformed(String),
    #[error("unknown message kind {0}")]
    Tag(u8),
    #[error("a {0} message without its body")]
    Missing(&'static str),
    #[error("unknown entry kind {0}")]
    EntryKind(u8),
    #[error("malformed membership")]
    Membership,
}

impl From<InvalidFlatbuffer> for WireError {
    fn from(e: InvalidFlatbuffer) -> WireError {
        WireError::Malformed(e.to_string())
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

thread_local! {
    /// One builder per thread (per core), reused: it keeps its buffer between messages.
    static BUILDER: RefCell<FlatBufferBuilder<'static>> = RefCell::new(FlatBufferBuilder::with_capacity(64 << 10));
}

/// Appends `message` as one frame to `out`.
pub fn encode(message: &Message, out: &mut Vec<u8>) {
    BUILDER.with_borrow_mut(|b| {
        b.reset();
        let (body_type, body) = encode_body(b, &message.body);
        let args = fb::MessageArgs { group: message.group, from: message.from, to: message.to, term: message.term, body_type, body: Some(body) };
        let root = fb::Message::create(b, &args);
        b.finish_minimal(root);
        let bytes = b.finished_data();
        assert!(bytes.len() <= MESSAGE_BYTES_MAX, "a {} message of {} bytes exceeds MESSAGE_BYTES_MAX", message.body.name(), bytes.len());
        out.reserve(LENGTH_BYTES + bytes.len());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    })
}

type Built = (fb::Body, WIPOffset<net::flatbuffers::UnionWIPOffset>);

/// A `[ubyte]` vector of `data`, copied in one piece (`create_vector` pushes a byte at a time;
/// the difference measured small: a 400 KiB AppendEntries encoded in 67 µs against 69). A byte
/// string is the same vector (length, then the bytes) with a zero byte after it, outside its
/// length.
fn bytes<'b>(b: &mut FlatBufferBuilder<'b>, data: &[u8]) -> WIPOffset<net::flatbuffers::Vector<'b, u8>> {
    WIPOffset::new(b.create_byte_string(data).value())
}

fn encode_body(b: &mut FlatBufferBuilder<'static>, body: &Body) -> Built {
    match body {
        Body::PreVote { last_index, last_term } => {
            let t = fb::PreVote::create(b, &fb::PreVoteArgs { last_index: *last_index, last_term: *last_term });
            (fb::Body::PreVote, t.as_union_value())
        }
        Body::PreVoteResponse { granted } => {
            (fb::Body::PreVoteResponse, fb::PreVoteResponse::create(b, &fb::PreVoteResponseArgs { granted: *granted }).as_union_value())
        }
        Body::Vote { last_index, last_term, transfer } => {
            let t = fb::Vote::create(b, &fb::VoteArgs { last_index: *last_index, last_term: *last_term, transfer: *transfer });
            (fb::Body::Vote, t.as_union_value())
        }
        Body::VoteResponse { granted } => {
            (fb::Body::VoteResponse, fb::VoteResponse::create(b, &fb::VoteResponseArgs { granted: *granted }).as_union_value())
        }
        Body::Append { prev_index, prev_term, entries, commit } => {
            let entries: Vec<_> = entries
                .iter()
                .map(|e| {
                    let payload = bytes(b, &e.payload);
                    let args = fb::EntryArgs { term: e.term, index: e.index, kind: kind_byte(e.kind), payload: Some(payload) };
                    fb::Entry::create(b, &args)
                })
                .collect();
            let entries = b.create_vector(&entries);
            let args = fb::AppendArgs { prev_index: *prev_index, prev_term: *prev_term, entries: Some(entries), commit: *commit };
            (fb::Body::Append, fb::Append::create(b, &args).as_union_value())
        }
        Body::AppendResponse { index, reject } => {
            let hint = reject.map(|h| fb::RejectHint::new(h.index, h.term));
            let t = fb::AppendResponse::create(b, &fb::AppendResponseArgs { index: *index, reject: hint.as_ref() });
            (fb::Body::AppendResponse, t.as_union_value())
        }
        Body::Heartbeat { commit, read_seq } => {
            (fb::Body::Heartbeat, fb::Heartbeat::create(b, &fb::HeartbeatArgs { commit: *commit, read_seq: *read_seq }).as_union_value())
        }
        Body::HeartbeatResponse { read_seq } => {
            let t = fb::HeartbeatResponse::create(b, &fb::HeartbeatResponseArgs { read_seq: *read_seq });
            (fb::Body::HeartbeatResponse, t.as_union_value())
        }
        Body::TimeoutNow => (fb::Body::TimeoutNow, fb::TimeoutNow::create(b, &fb::TimeoutNowArgs {}).as_union_value()),
        Body::InstallSnapshot { meta, membership, offset, data, done } => {
            let voters = b.create_vector(&membership.voters);
            let learners = b.create_vector(&membership.learners);
            let membership = fb::Membership::create(b, &fb::MembershipArgs { voters: Some(voters), learners: Some(learners) });
            let data = bytes(b, data);
            let args = fb::InstallSnapshotArgs {
                index: meta.index,
                term: meta.term,
                membership: Some(membership),
                offset: *offset,
                data: Some(data),
                done: *done,
            };
            (fb::Body::InstallSnapshot, fb::InstallSnapshot::create(b, &args).as_union_value())
        }
        Body::InstallSnapshotResponse { index, offset } => {
            let t = fb::InstallSnapshotResponse::create(b, &fb::InstallSnapshotResponseArgs { index: *index, offset: *offset });
            (fb::Body::InstallSnapshotResponse, t.as_union_value())
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
    if body.len() > MESSAGE_BYTES_MAX {
        return Err(WireError::TooLarge(body.len()));
    }
    let options = VerifierOptions { max_tables: TABLES_MAX, max_apparent_size: 2 * MESSAGE_BYTES_MAX, ..VerifierOptions::default() };
    let m = net::flatbuffers::root_with_opts::<fb::Message>(&options, body)?;
    Ok(Message { group: m.group(), from: m.from(), to: m.to(), term: m.term(), body: decode_body(&m)? })
}

fn decode_body(m: &fb::Message<'_>) -> Result<Body, WireError> {
    fn present<T>(body: Option<T>, name: &'static str) -> Result<T, WireError> {
        body.ok_or(WireError::Missing(name))
    }
    Ok(match m.body_type() {
        fb::Body::PreVote => {
            let b = present(m.body_as_pre_vote(), "PreVote")?;
            Body::PreVote { last_index: b.last_index(), last_term: b.last_term() }
        }
        fb::Body::PreVoteResponse => Body::PreVoteResponse { granted: present(m.body_as_pre_vote_response(), "PreVoteResponse")?.granted() },
        fb::Body::Vote => {
            let b = present(m.body_as_vote(), "Vote")?;
            Body::Vote { last_index: b.last_index(), last_term: b.last_term(), transfer: b.transfer() }
        }
        fb::Body::VoteResponse => Body::VoteResponse { granted: present(m.body_as_vote_response(), "VoteResponse")?.granted() },
        fb::Body::Append => {
            let b = present(m.body_as_append(), "Append")?;
            let entries = b
                .entries()
                .iter()
                .flatten()
                .map(|e| {
                    let payload = e.payload().map_or(&[][..], |p| p.bytes());
                    Ok(Entry { term: e.term(), index: e.index(), kind: kind_of(e.kind())?, payload: payload.into() })
                })
                .collect::<Result<Vec<_>, WireError>>()?;
            Body::Append { prev_index: b.prev_index(), prev_term: b.prev_term(), entries, commit: b.commit() }
        }
        fb::Body::AppendResponse => {
            let b = present(m.body_as_append_response(), "AppendResponse")?;
            Body::AppendResponse { index: b.index(), reject: b.reject().map(|h| RejectHint { index: h.index(), term: h.term() }) }
        }
        fb::Body::Heartbeat => {
            let b = present(m.body_as_heartbeat(), "Heartbeat")?;
            Body::Heartbeat { commit: b.commit(), read_seq: b.read_seq() }
        }
        fb::Body::HeartbeatResponse => Body::HeartbeatResponse { read_seq: present(m.body_as_heartbeat_response(), "HeartbeatResponse")?.read_seq() },
        fb::Body::TimeoutNow => {
            present(m.body_as_timeout_now(), "TimeoutNow")?;
            Body::TimeoutNow
        }
        fb::Body::InstallSnapshot => {
            let b = present(m.body_as_install_snapshot(), "InstallSnapshot")?;
            let membership = b.membership().ok_or(WireError::Membership)?;
            let list = |v: Option<net::flatbuffers::Vector<'_, u64>>| -> Result<Vec<u64>, WireError> {
                let v = v.unwrap_or_default();
                if v.len() > MEMBERS_MAX {
                    return Err(WireError::Membership);
                }
                Ok(v.iter().collect())
            };
            let membership = Membership::checked(list(membership.voters())?, list(membership.learners())?).ok_or(WireError::Membership)?;
            let data = b.data().map_or(&[][..], |d| d.bytes());
            Body::InstallSnapshot {
                meta: SnapshotMeta { index: b.index(), term: b.term() },
                membership,
                offset: b.offset(),
                data: data.into(),
                done: b.done(),
            }
        }
        fb::Body::InstallSnapshotResponse => {
            let b = present(m.body_as_install_snapshot_response(), "InstallSnapshotResponse")?;
            Body::InstallSnapshotResponse { index: b.index(), offset: b.offset() }
        }
        other => return Err(WireError::Tag(other.0)),
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
        // A cut frame is refused, never a panic, and never read as another message: a prefix
        // decodes only if what was cut is alignment padding at the buffer's end.
        for cut in 0..out.len() - LENGTH_BYTES {
            match decode(&out[LENGTH_BYTES..LENGTH_BYTES + cut]) {
                Err(_) => {}
                Ok(decoded) => assert_eq!(decoded, message, "{} cut at {cut} reads as another message", message.body.name()),
            }
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
