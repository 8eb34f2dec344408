//! error: not built yet.
