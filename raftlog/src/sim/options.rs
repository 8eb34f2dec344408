//! What a simulation run does: cluster size, workload, faults, and how long.

use crate::config::Bugs;

/// Virtual microseconds.
pub type Micros = u64;

/// The base tick of every node's Raft clock; each node's real period drifts from it.
pub const TICK_US: Micros = 10_000;

#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Voters at the start.
    pub nodes: usize,
    /// Node slots beyond them, which membership changes add as learners, promote, remove.
    pub spares: usize,
    pub membership_changes: bool,
    /// Clients that issue operations in a loop (scripted tests use none and add their own).
    pub clients: usize,
    pub keys: u8,
    /// Faults are injected from the start until `fault_us`; then the network heals, every node
    /// restarts and the run goes on for `heal_us`, in which some write must succeed.
    pub fault_us: Micros,
    pub heal_us: Micros,
    pub loss_ppm: u32,
    pub duplicate_ppm: u32,
    pub delay_us: (Micros, Micros),
    /// Some messages take much longer (reordering well past a round trip).
    pub delay_long_ppm: u32,
    pub delay_long_us: Micros,
    pub partitions: bool,
    pub crashes: bool,
    /// A node's process stalls for a while (its clock goes on; it catches up on ticks).
    pub pauses: bool,
    /// The driver delivers the ticks missed during a stall (off: a driver bug, for a test).
    pub tick_catch_up: bool,
    /// Time between fault events.
    pub nemesis_us: (Micros, Micros),
    /// A crashed node stays down this long.
    pub down_us: (Micros, Micros),
    /// Each node's tick period is `TICK_US` off by up to this many parts per million.
    pub drift_ppm: u32,
    pub sync_us: (Micros, Micros),
    pub client_timeout_us: Micros,
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub lease_read: bool,
    pub bugs: Bugs,
}

impl SimOptions {
    /// The CI mix: every fault on, short runs.
    pub fn faulty(nodes: usize) -> SimOptions {
        SimOptions {
            nodes,
            spares: 2,
            membership_changes: true,
            clients: 4,
            keys: 3,
            fault_us: 4_000_000,
            heal_us: 1_500_000,
            loss_ppm: 30_000,
            duplicate_ppm: 20_000,
            delay_us: (200, 5_000),
            delay_long_ppm: 20_000,
            delay_long_us: 60_000,
            partitions: true,
            crashes: true,
            pauses: true,
            tick_catch_up: true,
            nemesis_us: (50_000, 400_000),
            down_us: (20_000, 600_000),
            drift_ppm: 100_000,
            sync_us: (100, 4_000),
            client_timeout_us: 400_000,
            pre_vote: true,
            check_quorum: true,
            lease_read: false,
            bugs: Bugs::default(),
        }
    }

    /// The CI mix with this seed's weather: how lossy, how slow the disks, which faults.
    pub fn vary(mut self, seed: u64) -> SimOptions {
        let mut prng = engine::rng::Prng::new(seed ^ 0x5EED_0F7E_A74E_5500);
        self.loss_ppm = prng.below(100_000) as u32;
        self.duplicate_ppm = prng.below(50_000) as u32;
        self.delay_us = (prng.range(50, 500), prng.range(1_000, 20_000));
        self.sync_us = (prng.range(50, 500), prng.range(1_000, 30_000));
        self.nemesis_us = (prng.range(10_000, 100_000), prng.range(150_000, 600_000));
        self.partitions = prng.below(8) != 0;
        self.crashes = prng.below(8) != 0;
        self.clients = prng.range(1, 6) as usize;
        self.membership_changes = prng.below(4) != 0;
        self.lease_read = prng.below(3) == 0;
        self
    }

    /// A quiet network and no nemesis: the scripted scenarios make their own faults.
    pub fn scripted(nodes: usize) -> SimOptions {
        SimOptions {
            clients: 0,
            fault_us: 0,
            heal_us: 0,
            loss_ppm: 0,
            duplicate_ppm: 0,
            delay_long_ppm: 0,
            partitions: false,
            crashes: false,
            pauses: false,
            spares: 0,
            membership_changes: false,
            ..SimOptions::faulty(nodes)
        }
    }
}
