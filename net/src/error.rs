//! The crate's one error type. Every variant names the operation, the address (the peer's, or the
//! local one for bind and accept) and the fd, so a log line alone says which connection failed.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Errnos that mean the peer or the network ended the connection.
const CLOSED_ERRNOS: [i32; 6] = [libc::ECONNRESET, libc::EPIPE, libc::ECONNABORTED, libc::ENOTCONN, libc::ESHUTDOWN, libc::ENETRESET];

/// A socket operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The kernel refused or failed the operation.
    #[error("{op} {addr} (fd {fd}): {source}")]
    Io {
        op: &'static str,
        addr: SocketAddr,
        fd: RawFd,
        #[source]
        source: io::Error,
    },
    /// No data came within the deadline. The receive was abandoned in flight, so the stream is
    /// poisoned (see [`NetError::Poisoned`]) and must be closed.
    #[error("{op} {addr} (fd {fd}): nothing within {timeout_ms} ms; the stream must be closed")]
    Timeout { op: &'static str, addr: SocketAddr, fd: RawFd, timeout_ms: u64 },
    /// An earlier operation on this stream was abandoned while the kernel still ran it (a
    /// timeout, or a dropped future). It may yet move bytes that nobody will see, so the byte
    /// stream is no longer trustworthy: close the stream.
    #[error("{op} {addr} (fd {fd}): an earlier {abandoned} was abandoned in flight; the stream must be closed")]
    Poisoned { op: &'static str, addr: SocketAddr, fd: RawFd, abandoned: &'static str },
    /// The TLS layer refused the peer's bytes (a bad record, a failed handshake, a certificate
    /// the client does not trust); the stream must be closed.
    #[error("{op} {addr}: {message}")]
    Tls { op: &'static str, addr: SocketAddr, message: String },
}

impl NetError {
    pub(crate) fn io(op: &'static str, addr: SocketAddr, fd: RawFd, source: io::Error) -> NetError {
        NetError::Io { op, addr, fd, source }
    }

    /// The errno, if the kernel reported one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            NetError::Io { source, .. } => source.raw_os_error(),
            NetError::Timeout { .. } | NetError::Poisoned { .. } | NetError::Tls { .. } => None,
        }
    }

    /// The peer or the network ended the connection (reset, broken pipe, aborted).
    pub fn is_closed(&self) -> bool {
        self.raw_os_error().is_some_and(|errno| CLOSED_ERRNOS.contains(&errno))
    }

    /// A deadline passed: ours ([`NetError::Timeout`]) or the kernel's (ETIMEDOUT).
    pub fn is_timeout(&self) -> bool {
        matches!(self, NetError::Timeout { .. }) || self.raw_os_error() == Some(libc::ETIMEDOUT)
    }

    /// The stream can carry no more traffic and must be dropped. True for every error on a
    /// stream except EAGAIN-like ones, which the ring never reports for a blocking op.
    pub fn must_close(&self) -> bool {
        !matches!(self.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN))
    }

    /// The operation that failed.
    pub fn op(&self) -> &'static str {
        match self {
            NetError::Io { op, .. } | NetError::Timeout { op, .. } | NetError::Poisoned { op, .. } | NetError::Tls { op, .. } => op,
        }
    }

    /// The peer's address, or the local one for bind and accept.
    pub fn addr(&self) -> SocketAddr {
        match self {
            NetError::Io { addr, .. } | NetError::Timeout { addr, .. } | NetError::Poisoned { addr, .. } | NetError::Tls { addr, .. } => *addr,
        }
    }
}
