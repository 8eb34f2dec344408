//! names: not built yet.
