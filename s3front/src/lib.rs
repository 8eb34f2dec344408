//! s3front: the only crate that speaks HTTP, S3 XML and SigV4 (and SigV2).
//!
//! It turns requests into calls on the owning core's store and errors into S3 error bodies; it
//! must never be a dependency of engine, net or raftlog. The codecs (`acl`, `http`, `lifecycle`, `policy`, `sigv4`, `sigv2`, `chunked`,
//! `checksum`, `multipart_checksum`, `xml`, `names`, `tagging`, `post`, `cors`) are sans-IO: bytes in, values or errors out, so that cargo fuzz
//! and property tests drive them without sockets.

pub mod acl;
pub mod checksum;
pub mod chunked;
pub mod cors;
pub mod error;
pub mod files;
pub mod http;
pub mod lifecycle;
pub mod multipart_checksum;
pub mod names;
pub mod object_lock;
pub mod policy;
pub mod post;
pub mod sigv2;
pub mod sigv4;
pub mod sse;
pub mod server;
pub mod tagging;
pub mod versioning;
pub mod xml;
