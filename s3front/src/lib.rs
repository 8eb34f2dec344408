//! s3front: the only crate that speaks HTTP, S3 XML and SigV4.
//!
//! Not built yet (see the S3 issue). It turns requests into calls on the owning core's store and
//! errors into S3 error bodies; it must never be a dependency of engine, net or raftlog.
