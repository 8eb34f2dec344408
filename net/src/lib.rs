//! net: TCP sockets on each core's io_uring, for the S3 front end and node-to-node messages, and
//! the FlatBuffers schema of those messages ([`node_msg`], from `schema/node.fbs`).
//!
//! Every core binds the same address ([`TcpListener::bind`], SO_REUSEPORT) and accepts on its own
//! ring; the kernel spreads connections over the cores. A [`TcpStream`] receives into a
//! [`RecvBuf`] and sends owned buffers (`Vec<u8>`, or an arena [`engine::FixedBuf`], optionally
//! zero-copy). Buffers move into the ring op and come back with its completion, so a dropped
//! future never leaves the kernel writing into freed memory; an op abandoned in flight poisons
//! its stream ([`NetError::Poisoned`]). Counters per core: [`stats`].
//!
//! A listener accepts through one multishot accept kept armed (`engine::uring::Multishot`).
//! Not yet: receive into provided buffers (a multishot receive on the same stream op).
//!
//! Depends only on `engine`; it must never depend on raftlog, s3front, bench or tools.

mod buf;
mod error;
mod frames;
mod listener;
mod stats;
mod stream;
mod sys;
mod tls;

pub use buf::{RECV_BUF_CAPACITY_BYTES, RECV_BUF_CAPACITY_MAX_BYTES, RecvBuf};
pub use error::NetError;
pub use frames::FrameReader;
pub use listener::{LISTEN_BACKLOG_DEFAULT, TcpListener};
pub use stats::{NetStats, stats};
pub use stream::TcpStream;
/// The FlatBuffers code flatc 25.12.19 generated from `schema/node.fbs` (`schema/generate.sh`;
/// never edited by hand).
#[allow(clippy::all, clippy::pedantic, clippy::unwrap_used, unsafe_op_in_unsafe_fn, unused_imports, dead_code, deprecated, non_camel_case_types)]
#[path = "generated/node_generated.rs"]
mod node_generated;
/// Node-to-node messages as FlatBuffers: builders and zero-copy readers of `schema/node.fbs`.
pub use node_generated::corestore::node as node_msg;
/// The FlatBuffers runtime the generated code is built on.
pub use flatbuffers;

pub use tls::{ALPN_HTTP_1_1, ServerCheck, ServerIdentity, Stream, TlsStream, client_config, pem_certificates};
/// The TLS library, for the configuration types in this crate's API.
pub use rustls;
