//! Engine errors. Operating errors (disk full, EIO, a kernel without io_uring) are values with
//! context; broken invariants are assertions.

use std::io;
use std::path::PathBuf;

/// An I/O operation on a file failed. Says what was done, where, and the errno.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path} at offset {offset} ({len} bytes): {source}")]
pub struct IoError {
    pub op: &'static str,
    pub path: PathBuf,
    pub offset: u64,
    pub len: usize,
    #[source]
    pub source: io::Error,
}

impl IoError {
    pub fn new(op: &'static str, path: impl Into<PathBuf>, offset: u64, len: usize, source: io::Error) -> Self {
        IoError { op, path: path.into(), offset, len, source }
    }

    /// The raw errno, for callers that act differently on ENOSPC, EIO or EROFS.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// Why a file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("open {path}: {source}")]
pub struct OpenError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Why the runtime could not start. Each variant tells the operator what to do.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "io_uring is not available: the kernel has no io_uring_setup (ENOSYS). \
         corestore needs Linux 6.1 or newer built with CONFIG_IO_URING=y"
    )]
    IoUringMissing,
    #[error(
        "io_uring is disabled by /proc/sys/kernel/io_uring_disabled = {value}. \
         Run `sysctl -w kernel.io_uring_disabled=0` as root{group_hint}"
    )]
    IoUringDisabled { value: String, group_hint: String },
    #[error(
        "io_uring_setup was refused with EPERM and io_uring is not disabled by sysctl: a seccomp \
         filter (Seccomp: {seccomp} in /proc/self/status; containers often block io_uring) or an LSM \
         denies it. Run corestore with a seccomp profile that allows io_uring_setup, io_uring_enter \
         and io_uring_register (docker: --security-opt seccomp=unconfined)"
    )]
    IoUringForbidden { seccomp: String },
    #[error(
        "io_uring rejected the ring flags {flags} (EINVAL): this kernel is older than 6.1, the first \
         with IORING_SETUP_SINGLE_ISSUER and IORING_SETUP_DEFER_TASKRUN. Upgrade the kernel"
    )]
    KernelTooOld { flags: &'static str },
    #[error(
        "registering {bytes} bytes of fixed buffers failed: {source}. Registered buffers are pinned \
         memory; raise `ulimit -l` (RLIMIT_MEMLOCK, now {memlock}) or run with CAP_IPC_LOCK, or \
         shrink the arena"
    )]
    Memlock { bytes: usize, memlock: String, source: io::Error },
    #[error("io_uring {op} failed: {source}")]
    Ring { op: &'static str, source: io::Error },
    #[error("core {core}: pinning the thread to cpu {cpu} failed: {source}")]
    Pin { core: usize, cpu: usize, source: io::Error },
    #[error("configuration: {0}")]
    Config(String),
    #[error("core {core} thread panicked")]
    CorePanicked { core: usize },
}
