//! checksum: not built yet.
