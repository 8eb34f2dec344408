//! [`TcpListener`]: a listening socket whose accepts run on the core's ring.
//!
//! Every core binds the same address with SO_REUSEPORT, so the kernel spreads incoming
//! connections over the cores by a hash of the 4-tuple and no core hands connections to another.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::Poll;

use engine::uring::{Multishot, Ring};
use io_uring::{opcode, types};

use crate::error::NetError;
use crate::stats;
use crate::stream::TcpStream;
use crate::sys;

/// Backlog for servers that do not choose one: connections the kernel completes before the core
/// accepts them. Above it, SYNs are dropped and clients retry.
pub const LISTEN_BACKLOG_DEFAULT: u32 = 1024;

/// A listening TCP socket on one core.
///
/// Accepts come from one multishot IORING_OP_ACCEPT armed by the first `accept` and kept armed:
/// one SQE for any number of connections, each posting its own CQE (the kernel ends it on an
/// error; the next `accept` arms a new one). One task accepts at a time: a second `accept`
/// running at once takes over the wake-ups.
pub struct TcpListener {
    ring: Rc<Ring>,
    /// Shared with the accept in flight, so the fd number cannot be reused under it (see
    /// `TcpStream`).
    fd: Rc<OwnedFd>,
    local: SocketAddr,
    accepts: RefCell<Option<Multishot<Rc<OwnedFd>>>>,
}

/// An fd accepted after its listener's accepts were dropped: nobody will serve it.
fn close_unclaimed(fd: i32) {
    // SAFETY: the kernel created this fd for the accept and nothing else owns it.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
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
        Ok(TcpListener { ring: ring.clone(), fd: Rc::new(fd), local, accepts: RefCell::new(None) })
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
        let result = std::future::poll_fn(|cx| {
            let mut accepts = self.accepts.borrow_mut();
            loop {
                let multishot = accepts.get_or_insert_with(|| self.arm());
                match multishot.poll_next(cx) {
                    // The kernel ended it (after an error it reported): arm another.
                    Poll::Ready(None) => *accepts = None,
                    Poll::Ready(Some(res)) => return Poll::Ready(res),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await;
        if result < 0 {
            return Err(NetError::io("accept on", self.local, self.as_raw_fd(), std::io::Error::from_raw_os_error(-result)));
        }
        // SAFETY: the kernel just created this fd for us and nothing else owns it.
        let conn = unsafe { OwnedFd::from_raw_fd(result) };
        // A multishot accept cannot return addresses (one buffer for many connections).
        let peer = sys::socket_addr(conn.as_raw_fd(), true).map_err(|e| NetError::io("getpeername after accept on", self.local, conn.as_raw_fd(), e))?;
        let stream = TcpStream::from_connected(&self.ring, conn, peer);
        stream.set_nodelay(true)?;
        stats::count(|s| s.accepted += 1);
        Ok((stream, peer))
    }
}

impl TcpListener {
    fn arm(&self) -> Multishot<Rc<OwnedFd>> {
        let entry = opcode::AcceptMulti::new(types::Fd(self.as_raw_fd())).flags(libc::SOCK_CLOEXEC).build();
        // SAFETY: the SQE points at no memory; the socket lives in the hold's Rc until the
        // final CQE.
        unsafe { self.ring.multishot(entry, self.fd.clone(), close_unclaimed) }
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
        // Cancels the multishot accept; a connection it still brings is closed.
        self.accepts.borrow_mut().take();
    }
}
