//! Per-core counters of the TCP layer. A core is one thread, so a thread-local is per-core and
//! needs no atomics; read it from the core's own tasks with [`stats`].

use std::cell::Cell;

/// What this core's sockets did since the thread started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub accepted: u64,
    pub connected: u64,
    pub recv_bytes: u64,
    pub sent_bytes: u64,
    /// SEND_ZC ops, and the notifications among them that said the kernel copied the data after
    /// all (`IORING_NOTIF_USAGE_ZC_COPIED`: always so on loopback, see kernel-notes.md).
    pub zc_sends: u64,
    pub zc_notifs: u64,
    pub zc_notifs_copied: u64,
    pub recv_timeouts: u64,
    /// Send ops that did not complete within the stream's send timeout.
    pub send_timeouts: u64,
    /// Ops abandoned in flight (timeouts, dropped futures): each poisoned its stream.
    pub ops_abandoned: u64,
}

thread_local! {
    static STATS: Cell<NetStats> = Cell::new(NetStats::default());
}

/// This core's counters.
pub fn stats() -> NetStats {
    STATS.with(Cell::get)
}

pub(crate) fn count(f: impl FnOnce(&mut NetStats)) {
    STATS.with(|cell| {
        let mut s = cell.get();
        f(&mut s);
        cell.set(s);
    });
}
