//! net: sockets on each core's ring and the node-to-node message layer (flatbuffers).
//!
//! Not built yet: this crate holds its place in the dependency chain
//! (engine ← net ← raftlog ← s3front) until the S3 and raftlog issues fill it.
//! It depends only on `engine`; it must never depend on raftlog, s3front, bench or tools.
