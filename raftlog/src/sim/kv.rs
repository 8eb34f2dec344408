//! The simulator's state machine: a map of small keys to u64 values (absent reads as 0), with
//! put, get and compare-and-set, and the encoding of its commands in entry payloads.

use std::collections::BTreeMap;

pub type Key = u8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOp {
    Put { key: Key, value: u64 },
    Get { key: Key },
    Cas { key: Key, from: u64, to: u64 },
}

impl KvOp {
    pub fn key(&self) -> Key {
        match *self {
            KvOp::Put { key, .. } | KvOp::Get { key } | KvOp::Cas { key, .. } => key,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvResult {
    Done,
    Value(u64),
    Swapped(bool),
}

/// The sequential specification of one key, shared by the state machine and the
/// linearizability checker.
pub fn step(value: u64, op: KvOp) -> (u64, KvResult) {
    match op {
        KvOp::Put { value: new, .. } => (new, KvResult::Done),
        KvOp::Get { .. } => (value, KvResult::Value(value)),
        KvOp::Cas { from, to, .. } if from == value => (to, KvResult::Swapped(true)),
        KvOp::Cas { .. } => (value, KvResult::Swapped(false)),
    }
}

#[derive(Clone, Debug, Default)]
pub struct Kv {
    values: BTreeMap<Key, u64>,
}

impl Kv {
    pub fn apply(&mut self, op: KvOp) -> KvResult {
        let value = self.values.get(&op.key()).copied().unwrap_or(0);
        let (next, result) = step(value, op);
        self.values.insert(op.key(), next);
        result
    }

    pub fn get(&self, key: Key) -> u64 {
        self.values.get(&key).copied().unwrap_or(0)
    }

    /// The snapshot image: (key, value) pairs in key order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.values.len() * 9);
        for (&key, value) in &self.values {
            out.push(key);
            out.extend_from_slice(&value.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Kv> {
        if !bytes.len().is_multiple_of(9) {
            return None;
        }
        let mut values = BTreeMap::new();
        for pair in bytes.chunks_exact(9) {
            values.insert(pair[0], u64::from_le_bytes(pair[1..9].try_into().ok()?));
        }
        Some(Kv { values })
    }
}

/// A client's command: who sent it (so the node it was proposed on can answer) and what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    pub client: u32,
    pub op_id: u64,
    pub op: KvOp,
}

const COMMAND_BYTES: usize = 4 + 8 + 1 + 1 + 8 + 8;

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        let (kind, key, a, b) = match self.op {
            KvOp::Put { key, value } => (1u8, key, value, 0),
            KvOp::Get { key } => (2, key, 0, 0),
            KvOp::Cas { key, from, to } => (3, key, from, to),
        };
        let mut out = Vec::with_capacity(COMMAND_BYTES);
        out.extend_from_slice(&self.client.to_le_bytes());
        out.extend_from_slice(&self.op_id.to_le_bytes());
        out.push(kind);
        out.push(key);
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Command> {
        if bytes.len() != COMMAND_BYTES {
            return None;
        }
        let u64_at = |at: usize| bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
        let client = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
        let op_id = u64_at(4)?;
        let key = bytes[13];
        let (a, b) = (u64_at(14)?, u64_at(22)?);
        let op = match bytes[12] {
            1 => KvOp::Put { key, value: a },
            2 => KvOp::Get { key },
            3 => KvOp::Cas { key, from: a, to: b },
            _ => return None,
        };
        Some(Command { client, op_id, op })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_garbage_is_refused() {
        for op in [KvOp::Put { key: 1, value: 7 }, KvOp::Get { key: 2 }, KvOp::Cas { key: 3, from: 4, to: u64::MAX }] {
            let command = Command { client: 9, op_id: 1 << 40, op };
            assert_eq!(Command::decode(&command.encode()), Some(command));
        }
        assert_eq!(Command::decode(&[]), None);
        let mut bad = Command { client: 1, op_id: 1, op: KvOp::Get { key: 0 } }.encode();
        bad[12] = 9;
        assert_eq!(Command::decode(&bad), None);
    }

    #[test]
    fn cas_swaps_only_on_match() {
        let mut kv = Kv::default();
        assert_eq!(kv.apply(KvOp::Cas { key: 1, from: 5, to: 6 }), KvResult::Swapped(false));
        assert_eq!(kv.apply(KvOp::Cas { key: 1, from: 0, to: 6 }), KvResult::Swapped(true));
        assert_eq!(kv.apply(KvOp::Get { key: 1 }), KvResult::Value(6));
        assert_eq!(kv.get(2), 0);
        let image = kv.encode();
        assert_eq!(Kv::decode(&image).map(|kv| kv.encode()), Some(image));
        assert!(Kv::decode(&[1, 2]).is_none());
    }
}
