//! [`TcpListener`]: a listening socket whose accepts run on the core's ring.
//!
//! Every core binds the same address with SO_REUSEPORT, so the kernel spreads incoming
//! connections over the cores by a hash of the 4-tuple and no core hands connections to another.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use engine::uring::Ring;
use io_uring::{opcode, types};

use crate::error::NetError;
use crate::stats;
use crate::stream::TcpStream;
use crate::sys::{self, RawAddr};

/// Backlog for servers that do not choose one: connections the kernel completes before the core
/// accepts them. Above it, SYNs are dropped and clients retry.
pub const LISTEN_BACKLOG_DEFAULT: u32 = 1024;

/// A listening TCP socket on one core.
///
/// Accept is single-shot (one IORING_OP_ACCEPT per call): the engine's `Op` resolves once, and a
/// multishot accept posts a CQE per connection (see the crate docs for the engine change that
/// would allow it). Several `accept` calls may be in flight at once.
pub struct TcpListener {
    ring: Rc<Ring>,
    /// Shared with every accept in flight, so the fd number cannot be reused under an abandoned
    /// accept (see `TcpStream`).
    fd: Rc<OwnedFd>,
    local: SocketAddr,
}

impl TcpListener {
    /// Binds `addr` with SO_REUSEADDR and SO_REUSEPORT (every core binds the same address) and
    /// listens. Port 0 picks a free port; [`TcpListener::local_addr`] says which.
    pub fn bind(ring: &Rc<Ring>, addr: SocketAddr, backlog: u32) -> Result<TcpListener, NetError> {
        let fd = sys::tcp_socket(addr).map_err(|e| NetError::io("socket for", addr, -1, e))?;
        let raw = fd.as_raw_fd();
        let on = 1;
        sys::set_int_option(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, on)
            .map_err(|e| NetError::io("set SO_REUSEADDR on", addr, raw, e))?;
        sys::set_int_option(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, on)
            .map_err(|e| NetError::io("set SO_REUSEPORT on", addr, raw, e))?;
        sys::bind(&fd, addr).map_err(|e| NetError::io("bind", addr, raw, e))?;
        sys::listen(&fd, backlog).map_err(|e| NetError::io("listen on", addr, raw, e))?;
        let local = sys::socket_addr(raw, false).map_err(|e| NetError::io("getsockname of", addr, raw, e))?;
        Ok(TcpListener { ring: ring.clone(), fd: Rc::new(fd), local })
    }

    /// The bound address (with the port the kernel picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Waits for the next connection. The stream has TCP_NODELAY set: responses go out when
    /// sent, and zero-copy sends pipeline (kernel-notes.md: Nagle breaks send_zc pipelining).
    ///
    /// Errors concern one connection or a passing shortage (ECONNABORTED, EMFILE, ENOBUFS); a
    /// server logs them and accepts again.
    ///
    /// Dropping this future while the accept is in flight is safe for memory, but a connection
    /// the kernel accepts afterwards is never seen and its fd stays open until the process ends.
    /// Drop the listener itself to stop accepting: that ends accepts in flight first.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr), NetError> {
        let mut hold = (Box::new(RawAddr::empty()), self.fd.clone());
        let addr_ptr = hold.0.as_mut_ptr();
        let len_ptr = &raw mut hold.0.len;
        let entry = opcode::Accept::new(types::Fd(self.as_raw_fd()), addr_ptr, len_ptr).flags(libc::SOCK_CLOEXEC).build();
        // SAFETY: the address and its length live in the boxed RawAddr of the hold; the fd lives in
        // the hold's Rc until the completion.
        let (result, (raw_peer, _fd)) = unsafe { self.ring.op(entry, hold) }.result().await;
        let conn = result.map_err(|e| NetError::io("accept on", self.local, self.as_raw_fd(), e))?;
        let conn = RawFd::try_from(conn)
            .map_err(|_| NetError::io("accept on", self.local, self.as_raw_fd(), std::io::Error::other("fd out of range")))?;
        // SAFETY: the kernel just created this fd for us and nothing else owns it.
        let conn = unsafe { OwnedFd::from_raw_fd(conn) };
        let peer = raw_peer.to_addr().ok_or_else(|| {
            NetError::io("accept on", self.local, conn.as_raw_fd(), std::io::Error::other("peer address of an unknown family"))
        })?;
        let stream = TcpStream::from_connected(&self.ring, conn, peer);
        stream.set_nodelay(true)?;
        stats::count(|s| s.accepted += 1);
        Ok((stream, peer))
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        // An accept in flight holds its own reference to the socket, so closing the fd alone would
        // leave it listening (and, with SO_REUSEPORT, still drawing connections the kernel hashes
        // to it). Shutting it down stops the listening and ends those accepts with EINVAL.
        let _ = sys::shutdown(self.as_raw_fd(), libc::SHUT_RDWR);
    }
}
