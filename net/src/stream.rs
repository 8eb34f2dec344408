//! [`TcpStream`]: one connection, its receives and sends on the core's ring.
//!
//! Buffers are owned by the ops: a receive moves its [`RecvBuf`]'s storage into the op, a send
//! moves its `Vec` or `FixedBuf`, and each comes back with the completion. A dropped future
//! leaves the buffer with the engine's op slab until the kernel is done with it.
//!
//! Every op's hold also holds the socket (`Rc<OwnedFd>`): the fd number is closed only after
//! the last op on it completed, so an abandoned op can never land on a new socket that reused
//! the number.
//!
//! An op abandoned in flight (a timeout, a dropped future) may still move bytes nobody sees,
//! so it poisons the stream: every later op fails with [`NetError::Poisoned`], and dropping the
//! stream shuts the socket down so the abandoned op ends at once instead of when the peer next
//! sends.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use engine::FixedBuf;
use engine::uring::{NOTIF_USAGE_ZC_COPIED, Ring, SEND_ZC_REPORT_USAGE};
use io_uring::{opcode, squeue, types};

use crate::buf::RecvBuf;
use crate::error::NetError;
use crate::stats;
use crate::sys::{self, RawAddr};

/// Largest byte count one send op asks for; a longer send continues in further ops.
const SEND_OP_MAX_BYTES: usize = 1 << 30;
/// MSG_WAITALL: the kernel itself continues a partial send until all is sent or an error, so
/// partial completions (which we also continue) are rare. MSG_NOSIGNAL: a closed peer is an
/// EPIPE result, not a SIGPIPE that kills the process.
const SEND_FLAGS: i32 = libc::MSG_WAITALL | libc::MSG_NOSIGNAL;

const _: () = assert!(SEND_OP_MAX_BYTES <= u32::MAX as usize);
/// With a send timeout, the largest send op: the timeout then bounds the time to move this many
/// bytes (nginx's `send_timeout` bounds the time between two writes), so a slow reader is given
/// time per megabyte, not per gigabyte, and a reader that stopped is found out.
const SEND_TIMED_OP_MAX_BYTES: usize = 1 << 20;

/// Bytes on the heap whose address does not change when their owner moves (unlike an inline
/// array), so a ring op may point at them while its hold owns them.
trait HeapBytes: 'static {
    fn bytes(&self) -> &[u8];
}

impl HeapBytes for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

impl HeapBytes for Arc<Vec<u8>> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// A connected TCP socket on one core.
///
/// One receive and one send may be in flight at a time (a receive and a send may overlap, from
/// two tasks sharing the stream). Two sends in flight on one TCP socket could interleave their
/// partial sends on the wire, so a second concurrent send asserts; so does a second receive.
/// Await each send before the next: that is also what keeps responses in order.
pub struct TcpStream {
    ring: Rc<Ring>,
    fd: Rc<OwnedFd>,
    peer: SocketAddr,
    recv_busy: Cell<bool>,
    send_busy: Cell<bool>,
    /// The op that was abandoned in flight, if any: the stream is poisoned.
    abandoned: Cell<Option<&'static str>>,
    /// How long one send op may take (`set_send_timeout`); none: for ever.
    send_timeout: Cell<Option<Duration>>,
}

/// What one two-part sendmsg points at, kept together in one box for the op's lifetime.
struct TwoPartMsg {
    head: Vec<u8>,
    data: Arc<Vec<u8>>,
    iov: [libc::iovec; 2],
    hdr: libc::msghdr,
}

/// Marks one receive or send in flight; if dropped while the kernel still runs its op (the
/// future was dropped), poisons the stream.
struct InFlight<'a> {
    stream: &'a TcpStream,
    busy: &'a Cell<bool>,
    op: &'static str,
    in_kernel: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.busy.set(false);
        if self.in_kernel {
            self.stream.abandoned.set(Some(self.op));
            stats::count(|s| s.ops_abandoned += 1);
        }
    }
}

impl TcpStream {
    pub(crate) fn from_connected(ring: &Rc<Ring>, fd: OwnedFd, peer: SocketAddr) -> TcpStream {
        TcpStream {
            ring: ring.clone(),
            fd: Rc::new(fd),
            peer,
            recv_busy: Cell::new(false),
            send_busy: Cell::new(false),
            abandoned: Cell::new(None),
            send_timeout: Cell::new(None),
        }
    }

    /// Connects to `addr` (IORING_OP_CONNECT) and sets TCP_NODELAY.
    pub async fn connect(ring: &Rc<Ring>, addr: SocketAddr) -> Result<TcpStream, NetError> {
        let fd = Rc::new(sys::tcp_socket(addr).map_err(|e| NetError::io("socket for", addr, -1, e))?);
        let raw = fd.as_raw_fd();
        let hold = (Box::new(RawAddr::from_addr(addr)), fd.clone());
        let entry = opcode::Connect::new(types::Fd(raw), hold.0.as_ptr(), hold.0.len).build();
        // If this future is dropped mid-connect, shut the socket down so the connect ends now
        // rather than after the kernel's SYN retries.
        let guard = ShutdownOnDrop(raw);
        // SAFETY: the address lives in the hold's box, the socket in the hold's Rc.
        let (result, _) = unsafe { ring.op(entry, hold) }.result().await;
        std::mem::forget(guard);
        result.map_err(|e| NetError::io("connect to", addr, raw, e))?;
        let fd = Rc::try_unwrap(fd).map_err(|_| NetError::io("connect to", addr, raw, io::Error::other("socket still held by an op")))?;
        let stream = TcpStream::from_connected(ring, fd, addr);
        stream.set_nodelay(true)?;
        stats::count(|s| s.connected += 1);
        Ok(stream)
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        sys::socket_addr(self.as_raw_fd(), false).map_err(|e| self.error("getsockname of", e))
    }

    /// Bounds every later send: a send op that has not completed within `timeout` (a peer that
    /// stopped reading, its receive window shut) is abandoned, the send fails with
    /// [`NetError::Timeout`] and the stream is poisoned (close it). Sends then go out in ops of
    /// at most 1 MiB, so the bound is per megabyte moved. None: sends wait for ever.
    pub fn set_send_timeout(&self, timeout: Option<Duration>) {
        self.send_timeout.set(timeout);
    }

    /// The most one send op asks for: smaller under a send timeout.
    fn send_op_max(&self) -> usize {
        if self.send_timeout.get().is_some() { SEND_TIMED_OP_MAX_BYTES } else { SEND_OP_MAX_BYTES }
    }

    /// Awaits one send op within the send timeout, if there is one. On timeout the op is
    /// dropped in flight: the caller's `InFlight` marks the stream poisoned as it unwinds.
    async fn within_send_timeout<T>(&self, op: impl Future<Output = T>) -> Result<T, NetError> {
        let Some(timeout) = self.send_timeout.get() else { return Ok(op.await) };
        engine::timeout(timeout, op).await.map_err(|engine::time::Elapsed| {
            stats::count(|s| s.send_timeouts += 1);
            let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
            NetError::Timeout { op: "send to", addr: self.peer, fd: self.as_raw_fd(), timeout_ms }
        })
    }

    /// True while a send is in flight (another task's).
    pub fn send_in_flight(&self) -> bool {
        self.send_busy.get()
    }

    /// True once an op was abandoned in flight: the stream must be closed.
    pub fn is_poisoned(&self) -> bool {
        self.abandoned.get().is_some()
    }

    pub fn set_nodelay(&self, on: bool) -> Result<(), NetError> {
        sys::set_int_option(self.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, i32::from(on))
            .map_err(|e| self.error("set TCP_NODELAY on", e))
    }

    /// Sends FIN after what was sent; receiving goes on. No send may be in flight.
    pub fn shutdown_write(&self) -> Result<(), NetError> {
        assert!(!self.send_busy.get(), "shutdown_write of {} while a send is in flight", self.peer);
        sys::shutdown(self.as_raw_fd(), libc::SHUT_WR).map_err(|e| self.error("shutdown write to", e))
    }

    /// Shuts both directions: a receive in flight returns 0, and nothing more is sent. The
    /// socket stays open until the stream is dropped.
    pub fn shutdown(&self) -> Result<(), NetError> {
        sys::shutdown(self.as_raw_fd(), libc::SHUT_RDWR).map_err(|e| self.error("shutdown of", e))
    }

    fn error(&self, op: &'static str, source: io::Error) -> NetError {
        NetError::io(op, self.peer, self.as_raw_fd(), source)
    }

    fn begin<'a>(&'a self, busy: &'a Cell<bool>, op: &'static str) -> Result<InFlight<'a>, NetError> {
        if let Some(abandoned) = self.abandoned.get() {
            return Err(NetError::Poisoned { op, addr: self.peer, fd: self.as_raw_fd(), abandoned });
        }
        assert!(!busy.get(), "two {op} ops in flight on the stream with {} (fd {}): one at a time", self.peer, self.as_raw_fd());
        busy.set(true);
        Ok(InFlight { stream: self, busy, op, in_kernel: false })
    }

    /// Receives into `buf`'s free tail; returns how many bytes arrived, 0 once the peer closed
    /// its side. `buf` must not be full (consume first).
    ///
    /// Dropping the future while the receive is in flight poisons the stream (bytes may land in
    /// storage nobody reads) and leaves `buf` empty; it gets fresh storage on its next receive.
    pub async fn recv_into(&self, buf: &mut RecvBuf) -> Result<usize, NetError> {
        let mut in_flight = self.begin(&self.recv_busy, "recv from")?;
        let (mut storage, offset) = buf.take_for_recv();
        let room = storage.len() - offset;
        let ptr = storage[offset..].as_mut_ptr();
        let entry = opcode::Recv::new(types::Fd(self.as_raw_fd()), ptr, room as u32).build();
        in_flight.in_kernel = true;
        // SAFETY: ptr..ptr+room lies in the boxed storage, which moves into the hold (its heap
        // address stays); the socket is in the hold's Rc.
        let (result, (storage, _fd)) = unsafe { self.ring.op(entry, (storage, self.fd.clone())) }.result().await;
        in_flight.in_kernel = false;
        let received = match result {
            Ok(n) => n as usize,
            Err(e) => {
                buf.put_back(storage, 0);
                return Err(self.error("recv from", e));
            }
        };
        assert!(received <= room, "recv of {room} bytes reported {received}");
        buf.put_back(storage, received);
        stats::count(|s| s.recv_bytes += received as u64);
        Ok(received)
    }

    /// [`TcpStream::recv_into`] with a deadline. When it passes, the receive is abandoned in
    /// flight and the stream is poisoned: the result is [`NetError::Timeout`], and every later op
    /// fails with [`NetError::Poisoned`]. Close the stream.
    ///
    /// Why not cancel and keep the stream: the engine's `Op` gives no handle to cancel exactly
    /// this op (its user_data), cancelling by fd would also cancel a send in flight, and a server
    /// closes an idle or stalled connection anyway.
    pub async fn recv_timeout(&self, buf: &mut RecvBuf, timeout: Duration) -> Result<usize, NetError> {
        match engine::timeout(timeout, self.recv_into(buf)).await {
            Ok(result) => result,
            Err(engine::time::Elapsed) => {
                stats::count(|s| s.recv_timeouts += 1);
                let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                Err(NetError::Timeout { op: "recv from", addr: self.peer, fd: self.as_raw_fd(), timeout_ms })
            }
        }
    }

    /// Sends all of `data`, continuing partial sends; returns `data` for reuse.
    pub async fn send_all(&self, data: Vec<u8>) -> Result<Vec<u8>, NetError> {
        let len = data.len();
        self.send_range(data, 0..len).await
    }

    /// Sends `data[range]` from bytes shared with others (an object cache's entry, perhaps
    /// another core's) without copying them: the `Arc` moves into each op's hold, so they live
    /// until the kernel is done.
    pub async fn send_shared_all(&self, data: Arc<Vec<u8>>, range: Range<usize>) -> Result<Arc<Vec<u8>>, NetError> {
        self.send_range(data, range).await
    }

    /// Sends `head` and then `data[range]` with one sendmsg of two iovecs: a small body goes
    /// from the shared bytes (an object cache's entry) straight to the socket instead of being
    /// copied behind the head first. Returns `head` for reuse.
    pub async fn send_head_and_shared(&self, head: Vec<u8>, data: Arc<Vec<u8>>, range: Range<usize>) -> Result<Vec<u8>, NetError> {
        assert!(range.start <= range.end && range.end <= data.len(), "send range {range:?} beyond {} bytes", data.len());
        let total = head.len() + range.len();
        assert!(total <= SEND_OP_MAX_BYTES, "one sendmsg of {total} bytes: use send_all and send_shared_all");
        let mut in_flight = self.begin(&self.send_busy, "send to")?;
        let mut msg = Box::new(TwoPartMsg {
            head,
            data,
            // SAFETY: iovec and msghdr are plain C structs for which all zeroes is valid.
            iov: unsafe { std::mem::zeroed() },
            hdr: unsafe { std::mem::zeroed() },
        });
        msg.iov[0] = libc::iovec { iov_base: msg.head.as_ptr() as *mut libc::c_void, iov_len: msg.head.len() };
        msg.iov[1] = libc::iovec { iov_base: msg.data[range.start..].as_ptr() as *mut libc::c_void, iov_len: range.len() };
        msg.hdr.msg_iov = msg.iov.as_mut_ptr();
        msg.hdr.msg_iovlen = 2;
        let entry = opcode::SendMsg::new(types::Fd(self.as_raw_fd()), &msg.hdr).flags(SEND_FLAGS as u32).build();
        in_flight.in_kernel = true;
        // SAFETY: the msghdr, its iovecs and the bytes they point at all live in the box (heap:
        // moving it moves none of them), which moves into the hold until the op completes.
        let (result, (msg, _fd)) = self.within_send_timeout(unsafe { self.ring.op(entry, (msg, self.fd.clone())) }.result()).await?;
        in_flight.in_kernel = false;
        let sent = self.sent_bytes(result, total)?;
        drop(in_flight);
        let TwoPartMsg { head, data, .. } = *msg;
        // MSG_WAITALL makes a partial send rare; the rest goes out as plain sends.
        let head_len = head.len();
        let head = if sent < head_len { self.send_range(head, sent..head_len).await? } else { head };
        let body_start = range.start + sent.saturating_sub(head_len);
        if body_start < range.end {
            self.send_range(data, body_start..range.end).await?;
        }
        Ok(head)
    }

    async fn send_range<B: HeapBytes>(&self, data: B, range: Range<usize>) -> Result<B, NetError> {
        assert!(range.start <= range.end && range.end <= data.bytes().len(), "send range {range:?} beyond {} bytes", data.bytes().len());
        let mut in_flight = self.begin(&self.send_busy, "send to")?;
        let mut data = data;
        let mut sent = range.start;
        while sent < range.end {
            let len = (range.end - sent).min(self.send_op_max());
            let entry = opcode::Send::new(types::Fd(self.as_raw_fd()), data.bytes()[sent..].as_ptr(), len as u32).flags(SEND_FLAGS).build();
            in_flight.in_kernel = true;
            // SAFETY: the bytes lie in heap storage `data` owns or shares (`HeapBytes`: moving it
            // does not move them), and it moves into the hold.
            let (result, (back, _fd)) = self.within_send_timeout(unsafe { self.ring.op(entry, (data, self.fd.clone())) }.result()).await?;
            in_flight.in_kernel = false;
            data = back;
            sent += self.sent_bytes(result, len)?;
        }
        Ok(data)
    }

    /// Sends `buf[range]` (within `buf.len()`), continuing partial sends; returns `buf`.
    ///
    /// `zero_copy`: IORING_OP_SEND_ZC from the registered buffer (`IORING_RECVSEND_FIXED_BUF`);
    /// each op completes only at its notification, when the kernel no longer reads the buffer
    /// (for TCP, once the peer acknowledged the data). Pays off from about 64 KiB per send; at
    /// 4 KiB a plain send is faster (kernel-notes.md). Otherwise a plain send, which copies.
    pub async fn send_fixed_all(&self, buf: FixedBuf, range: Range<usize>, zero_copy: bool) -> Result<FixedBuf, NetError> {
        assert!(range.start <= range.end, "send range {range:?} runs backwards");
        assert!(range.end <= buf.len(), "send range {range:?} beyond the buffer's {} valid bytes", buf.len());
        let mut in_flight = self.begin(&self.send_busy, "send to")?;
        let mut buf = buf;
        let mut sent = range.start;
        while sent < range.end {
            let len = (range.end - sent).min(self.send_op_max());
            // SAFETY: sent + len <= buf.len() <= capacity.
            let ptr = unsafe { buf.as_ptr().add(sent) };
            in_flight.in_kernel = true;
            let (result, back) = if zero_copy {
                self.within_send_timeout(self.send_zc_op(ptr, len, buf)).await?
            } else {
                self.within_send_timeout(self.send_op(ptr, len, buf)).await?
            };
            in_flight.in_kernel = false;
            buf = back;
            sent += self.sent_bytes(result, len)?;
        }
        Ok(buf)
    }

    async fn send_op(&self, ptr: *const u8, len: usize, buf: FixedBuf) -> (io::Result<u32>, FixedBuf) {
        let entry = opcode::Send::new(types::Fd(self.as_raw_fd()), ptr, len as u32).flags(SEND_FLAGS).build();
        // SAFETY: ptr..ptr+len lies in the arena slot `buf` owns, which moves into the hold.
        let (result, (buf, _fd)) = unsafe { self.ring.op(entry, (buf, self.fd.clone())) }.result().await;
        (result, buf)
    }

    async fn send_zc_op(&self, ptr: *const u8, len: usize, buf: FixedBuf) -> (io::Result<u32>, FixedBuf) {
        let entry: squeue::Entry = opcode::SendZc::new(types::Fd(self.as_raw_fd()), ptr, len as u32)
            .buf_index(Some(buf.buf_index()))
            .flags(SEND_FLAGS)
            .zc_flags(SEND_ZC_REPORT_USAGE)
            .build();
        // SAFETY: ptr..ptr+len lies in registered buffer `buf_index`, in the slot `buf` owns, which
        // moves into the hold and is released only after the notification.
        let (completion, (buf, _fd)) = unsafe { self.ring.op(entry, (buf, self.fd.clone())) }.completion().await;
        stats::count(|s| {
            s.zc_sends += 1;
            if let Some(notif) = completion.notification {
                s.zc_notifs += 1;
                if notif as u32 & NOTIF_USAGE_ZC_COPIED != 0 {
                    s.zc_notifs_copied += 1;
                }
            }
        });
        let result = u32::try_from(completion.result).map_err(|_| io::Error::from_raw_os_error(-completion.result));
        (result, buf)
    }

    /// Bytes one send op moved, counted; an error or a send that moved nothing fails the send.
    fn sent_bytes(&self, result: io::Result<u32>, asked: usize) -> Result<usize, NetError> {
        let sent = result.map_err(|e| self.error("send to", e))? as usize;
        if sent == 0 {
            return Err(self.error("send to", io::Error::new(io::ErrorKind::WriteZero, "the kernel sent 0 bytes")));
        }
        assert!(sent <= asked, "send of {asked} bytes reported {sent}");
        stats::count(|s| s.sent_bytes += sent as u64);
        Ok(sent)
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        // Without abandoned ops, the last Rc closes the fd right here: a socket close does not
        // block (no SO_LINGER), so an async IORING_OP_CLOSE would buy nothing. With one, shut
        // the socket down so the op ends now; its hold closes the fd after the completion.
        if self.abandoned.get().is_some() {
            let _ = sys::shutdown(self.fd.as_raw_fd(), libc::SHUT_RDWR);
        }
    }
}

/// Shuts a socket down when dropped (an abandoned connect); `forget` it on success.
struct ShutdownOnDrop(RawFd);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        let _ = sys::shutdown(self.0, libc::SHUT_RDWR);
    }
}
