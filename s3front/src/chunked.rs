//! chunked: not built yet.
