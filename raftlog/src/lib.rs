//! raftlog: a sans-IO Raft core and the driver that runs it on a core's ring.
//!
//! Not built yet (see the raftlog issue). The core will be a pure state machine generic over
//! storage, transport and clock; it must never name `IoUring` or depend on s3front, bench or tools.
