//! xml: not built yet.
