//! Limits, named once. Every pool and queue in the engine is sized from these or from the
//! configuration at start-up; nothing on a hot path grows past them.

/// Sector size of every DMA transfer: O_DIRECT offsets, lengths and buffer addresses are
/// multiples of it. 4 KiB is the logical block size of every NVMe drive and ext4/xfs block size
/// we target; see kernel-notes.md for the per-filesystem rules.
pub const SECTOR_SIZE: usize = 4096;

/// Submission queue entries per ring by default. The completion queue is twice as large so that
/// the bounded set of in-flight operations (below) never overflows it.
pub const RING_ENTRIES_DEFAULT: u32 = 256;

/// Largest ring we build; the kernel caps SQ entries at 32768.
pub const RING_ENTRIES_MAX: u32 = 32768;

/// Operations in flight per ring are bounded by the completion queue size; a task that asks for
/// more waits for a slot instead of letting the kernel spill CQEs to its overflow list.
pub const CQ_ENTRIES_PER_SQ_ENTRY: u32 = 2;

/// Registered file slots per ring (IORING_REGISTER_FILES sparse table).
pub const FILES_REGISTERED_MAX: u32 = 1024;

/// Ready tasks polled per loop turn before the loop reaps completions again; bounds how long
/// completions (and the timers) wait behind a busy run queue.
pub const TASKS_PER_TURN_MAX: usize = 256;

/// Longest queued storage I/O waits for the end of the loop turn while ready tasks keep the core
/// busy: past it the loop submits what is queued before polling the next task, so the device is
/// not left idle while the turn verifies reads that already completed (kernel-notes.md, "submit
/// mid-turn"). Socket ops wait for the turn's end: they cost less batched.
pub const SUBMIT_DELAY_NS_MAX: u64 = 5_000;

/// Messages each ordered pair of cores can hold in flight in the mesh.
pub const MESH_QUEUE_CAPACITY_DEFAULT: usize = 1024;

/// Cores a runtime may run; sizes the mesh (cores² queues).
pub const CORES_MAX: usize = 256;

/// Largest single buffer class in the arena (one fixed buffer may not exceed 1 GiB in the kernel).
pub const BUFFER_SIZE_MAX: usize = 64 << 20;

const _: () = assert!(SECTOR_SIZE.is_power_of_two());
const _: () = assert!(BUFFER_SIZE_MAX.is_multiple_of(SECTOR_SIZE));
const _: () = assert!(RING_ENTRIES_DEFAULT.is_power_of_two());
const _: () = assert!(RING_ENTRIES_DEFAULT <= RING_ENTRIES_MAX);
