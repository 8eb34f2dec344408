//! http: not built yet.
