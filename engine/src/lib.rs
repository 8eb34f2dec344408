//! engine: corestore's thread-per-core foundation.
//!
//! One thread per core, pinned; one io_uring per core (SINGLE_ISSUER, DEFER_TASKRUN); a local
//! executor for `!Send` tasks with timers; a per-core arena of registered, 4 KiB-aligned buffers;
//! O_DIRECT files read and written with ReadFixed/WriteFixed; a bounded cross-core mesh; and
//! `route(key) -> core`. Storage, time and randomness sit behind [`Env`], implemented by
//! [`LinuxEnv`] and by the deterministic simulator in [`sim`].
//!
//! Architecture invariant: engine depends on no other corestore crate, and nothing in it but
//! `uring`, `dma`, `runtime`, `mesh` and `env::LinuxEnv` touches the OS.

pub mod arena;
pub mod dma;
pub mod env;
pub mod error;
pub mod executor;
pub mod keylock;
pub mod latency;
pub mod limits;
pub mod mesh;
pub mod rng;
pub mod route;
pub mod runtime;
pub mod sim;
pub mod store;
pub mod time;
pub mod uring;

pub use arena::{Arena, ArenaConfig, ClassConfig, FixedBuf};
pub use env::{Env, File, LinuxEnv, OpenMode, Storage};
pub use error::{IoError, OpenError, RuntimeError};
pub use executor::{Executor, JoinHandle, spawn, yield_now};
pub use limits::SECTOR_SIZE;
pub use route::route;
pub use runtime::{Core, RuntimeConfig, run};
pub use time::{Instant, sleep, sleep_until, timeout};
