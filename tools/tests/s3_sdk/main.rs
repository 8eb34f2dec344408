//! S3 conformance: a real `corestore serve` process driven by the AWS SDK for Rust (SigV4,
//! aws-chunked uploads with CRC32 trailers by default, the SDK's own XML parsing), plus raw
//! HTTP where the SDK hides what is being checked. The expected outcomes are those of AWS S3.
//!
//! Each test starts its own server on a fresh data directory (see `harness`), so tests are
//! independent and run in parallel.

mod harness;

mod acl;
mod auth;
mod buckets;
mod checksums;
mod conditionals;
mod copy;
mod cors;
mod delete_objects;
mod errors;
mod isolation;
mod lifecycle;
mod listing;
mod multipart;
mod object_lock;
mod objects;
mod persistence;
mod policy;
mod post_object;
mod presign;
mod ranges;
mod scrub;
mod sse;
mod tagging;
mod tls;
mod versioning;
