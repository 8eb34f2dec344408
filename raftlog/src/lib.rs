//! raftlog: a sans-IO Raft core, and (later) the driver that runs it on a core's ring.
//!
//! The core (`RawNode`) is a pure state machine: messages, ticks and proposals in; a `Ready` of
//! log writes, messages, committed entries and read points out. It is generic over its
//! `Storage`, takes time as ticks and randomness as a seed, so the deterministic simulator
//! (`sim`) and the ring driver run the same code. Many groups live on one core, each a
//! `RawNode`, with no locks. It must never name `IoUring` or depend on s3front, bench or tools;
//! it depends on engine and net only. `DurableStorage` keeps a group's log in the engine store's
//! Raft records; `Driver` runs a core's groups on the engine runtime, with one store write per
//! turn for all of them (ARCHITECTURE.md, raftlog, "Integration").
//!
//! A driver's loop for one group, with `MemStorage` standing in for the durable log (which, on
//! the ring, batches every group's `Ready` of a loop turn into one write and one fdatasync):
//!
//! ```
//! use raftlog::{Config, MemStorage, RawNode, Role, Storage};
//!
//! let mut node = RawNode::new(Config::new(1, 7, vec![1], 42), MemStorage::new());
//! let mut applied = Vec::new();
//! for _ in 0..100 {
//!     node.tick(); // from the core's timer
//!     while node.has_ready() {
//!         let ready = node.take_ready();
//!         // 1. Write (here: at once; on the ring: queued into this turn's batch).
//!         if let Some(hard_state) = ready.hard_state {
//!             node.storage_mut().set_hard_state(hard_state);
//!         }
//!         node.storage_mut().append(&ready.entries);
//!         // 2. `ready.messages` go out now; `ready.messages_after_persist` once the
//!         //    fdatasync covering this and every earlier write returned. Then:
//!         if let Some(last) = ready.entries.last() {
//!             node.on_persisted(last.index, last.term);
//!         }
//!         // 3. Apply what is committed (and serve `ready.read_states` once applied).
//!         applied.extend(ready.committed_entries);
//!     }
//!     if node.role() == Role::Leader && applied.len() == 1 {
//!         node.propose(vec![b"put a=1".to_vec().into()]).expect("the leader accepts");
//!     }
//! }
//! assert_eq!(node.role(), Role::Leader);
//! assert_eq!(applied.last().map(|entry| &entry.payload[..]), Some(&b"put a=1"[..]));
//! assert_eq!(node.storage().last_index(), 2);
//! ```

mod conf;
pub mod config;
pub mod driver;
pub mod durable;
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
pub mod tcp;
pub mod types;
pub mod wire;

#[cfg(any(test, feature = "sim"))]
pub mod sim;

pub use config::{Bugs, Config};
pub use driver::{Driver, DriverStats, LocalBus, Transport};
pub use durable::DurableStorage;
pub use tcp::TcpTransport;
pub use error::{ProposeError, StepError};
pub use membership::{ConfChange, Membership};
pub use node::{RawNode, Ready};
pub use storage::{MemStorage, Snapshot, SnapshotMeta, Storage, StorageError};
pub use types::{
    Body, Entry, EntryKind, GroupId, HardState, Index, Message, NodeId, Payload, ReadState, RejectHint, Role, SnapshotChunk, Term,
};
