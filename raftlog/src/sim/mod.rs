//! The deterministic simulator: a cluster of `RawNode`s in virtual time with a lossy,
//! reordering, partitionable network, crashing nodes with torn unsynced writes, drifting clocks
//! and key-value clients, all from one seed; and the checkers that watch it (Raft's safety
//! properties and linearizability of the clients' history).

pub mod checker;
pub mod disk;
pub mod kv;
pub mod linearizability;
pub mod options;
pub mod world;

#[cfg(test)]
mod tests;

pub use checker::Violation;
pub use options::SimOptions;
pub use world::{RunStats, World};
