//! sigv4: not built yet.
