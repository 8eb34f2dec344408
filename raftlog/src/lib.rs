//! raftlog: a sans-IO Raft core, and (later) the driver that runs it on a core's ring.
//!
//! The core (`RawNode`) is a pure state machine: messages, ticks and proposals in; a `Ready` of
//! log writes, messages, committed entries and read points out. It is generic over its
//! `Storage`, takes time as ticks and randomness as a seed, so the deterministic simulator
//! (`sim`) and the ring driver run the same code. Many groups live on one core, each a
//! `RawNode`, with no locks. It must never name `IoUring` or depend on s3front, bench or tools;
//! it depends on engine and net only. The ring driver and the durable log on the engine's segment
//! files are not built yet (ARCHITECTURE.md, raftlog, "Integration").

mod conf;
pub mod config;
mod election;
pub mod error;
mod log;
pub mod membership;
pub mod node;
#[cfg(test)]
mod node_tests;
mod progress;
pub mod read_index;
mod replication;
pub mod storage;
pub mod types;

#[cfg(any(test, feature = "sim"))]
pub mod sim;

pub use config::{Bugs, Config};
pub use error::{ProposeError, StepError};
pub use membership::{ConfChange, Membership};
pub use node::{RawNode, Ready};
pub use storage::{MemStorage, Snapshot, SnapshotMeta, Storage, StorageError};
pub use types::{
    Body, Entry, EntryKind, GroupId, HardState, Index, Message, NodeId, Payload, ReadState, RejectHint, Role, SnapshotChunk, Term,
};
