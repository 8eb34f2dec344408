//! `TcpTransport`: Raft messages between nodes over `net`'s TCP sockets on the core's ring.
//!
//! One outgoing connection per peer, made on first use and again after any error or once the
//! peer closed it; messages queued while it is down, beyond `OUTBOX_MESSAGES_MAX`, or on a
//! connection that fails are dropped (Raft retries what matters). The peer never sends on a
//! connection we opened, so a receive kept in flight on it ends only when the peer closes it
//! (it stopped or restarted): the next send then connects again instead of going into a socket
//! the kernel can only answer with a reset, which would lose it silently and leave Raft to
//! resend a heartbeat later (a new leader's first appends to a restarted follower were lost
//! that way). Each sender task writes everything queued with one
//! send. Incoming connections are accepted on the node's listener; each is read by its own task,
//! which decodes frames (`wire`) into the driver's inbox. A malformed frame closes that
//! connection. Everything lives on one core: `Rc`, no locks.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use engine::uring::Ring;
use net::{FrameReader, LISTEN_BACKLOG_DEFAULT, NetError, RecvBuf, TcpListener, TcpStream};

use crate::driver::{INBOX_MESSAGES_MAX, Transport};
use crate::types::{Message, NodeId};
use crate::wire;

/// Encoded messages waiting for one peer's connection; more are dropped.
pub const OUTBOX_MESSAGES_MAX: usize = 16384;
/// Bytes a watcher's receive may take (nothing is expected on an outgoing connection).
const WATCH_RECV_BYTES: usize = 64;
/// How long a sender waits before connecting again after a failure.
pub const RECONNECT_DELAY: Duration = Duration::from_millis(20);

struct Outbox {
    frames: VecDeque<Vec<u8>>,
    waker: Option<Waker>,
}

struct Inner {
    node: NodeId,
    ring: Rc<Ring>,
    peers: RefCell<HashMap<NodeId, SocketAddr>>,
    outboxes: RefCell<HashMap<NodeId, Outbox>>,
    inbox: RefCell<VecDeque<Message>>,
    inbox_waker: RefCell<Option<Waker>>,
    closed: Cell<bool>,
    dropped: Cell<u64>,
}

/// A node's end of the network. Cheap to clone (a handle).
#[derive(Clone)]
pub struct TcpTransport {
    inner: Rc<Inner>,
}

impl TcpTransport {
    /// Listens on `listen` (port 0: any). Returns the transport and the address it listens on;
    /// peers are added with `add_peer`.
    pub fn start(ring: &Rc<Ring>, node: NodeId, listen: SocketAddr) -> Result<(TcpTransport, SocketAddr), NetError> {
        let listener = TcpListener::bind(ring, listen, LISTEN_BACKLOG_DEFAULT)?;
        let local = listener.local_addr();
        let inner = Rc::new(Inner {
            node,
            ring: ring.clone(),
            outboxes: RefCell::new(HashMap::new()),
            peers: RefCell::new(HashMap::new()),
            inbox: RefCell::new(VecDeque::new()),
            inbox_waker: RefCell::new(None),
            closed: Cell::new(false),
            dropped: Cell::new(0),
        });
        engine::spawn(accept_loop(inner.clone(), listener));
        Ok((TcpTransport { inner }, local))
    }

    /// Messages to `peer` go to `addr`, through a sender task of its own.
    pub fn add_peer(&self, peer: NodeId, addr: SocketAddr) {
        assert!(peer != self.inner.node);
        assert!(self.inner.peers.borrow_mut().insert(peer, addr).is_none(), "peer {peer} added twice");
        self.inner.outboxes.borrow_mut().insert(peer, Outbox { frames: VecDeque::new(), waker: None });
        engine::spawn(sender(self.inner.clone(), peer));
    }

    /// Messages dropped: outbox full, peer unknown or down, connection failed.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.get()
    }

    /// Stops the sender tasks (connections close as they notice; the core's end drops the rest).
    pub fn close(&self) {
        self.inner.closed.set(true);
        for outbox in self.inner.outboxes.borrow_mut().values_mut() {
            if let Some(w) = outbox.waker.take() {
                w.wake();
            }
        }
    }
}

impl Transport for TcpTransport {
    fn send(&self, message: Message) {
        let mut outboxes = self.inner.outboxes.borrow_mut();
        let Some(outbox) = outboxes.get_mut(&message.to).filter(|o| o.frames.len() < OUTBOX_MESSAGES_MAX) else {
            self.inner.dropped.set(self.inner.dropped.get() + 1);
            return;
        };
        let mut frame = Vec::new();
        wire::encode(&message, &mut frame);
        outbox.frames.push_back(frame);
        if let Some(w) = outbox.waker.take() {
            w.wake();
        }
    }

    fn take(&self, node: NodeId) -> Vec<Message> {
        assert_eq!(node, self.inner.node);
        self.inner.inbox.borrow_mut().drain(..).collect()
    }

    fn has_mail(&self, node: NodeId) -> bool {
        assert_eq!(node, self.inner.node);
        !self.inner.inbox.borrow().is_empty()
    }

    fn register(&self, node: NodeId, waker: &Waker) {
        assert_eq!(node, self.inner.node);
        *self.inner.inbox_waker.borrow_mut() = Some(waker.clone());
    }
}

/// Waits for frames for `peer`; takes them all.
async fn next_frames(inner: &Inner, peer: NodeId) -> Option<Vec<u8>> {
    std::future::poll_fn(|cx| {
        if inner.closed.get() {
            return Poll::Ready(None);
        }
        let mut outboxes = inner.outboxes.borrow_mut();
        let outbox = outboxes.get_mut(&peer).expect("a sender's peer has an outbox");
        if outbox.frames.is_empty() {
            outbox.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut all = Vec::with_capacity(outbox.frames.iter().map(Vec::len).sum());
        for frame in outbox.frames.drain(..) {
            all.extend_from_slice(&frame);
        }
        Poll::Ready(Some(all))
    })
    .await
}

/// An outgoing connection and whether the peer closed it (`watch`).
struct Outgoing {
    stream: Rc<TcpStream>,
    closed: Rc<Cell<bool>>,
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        // Ends the watcher's receive, so the socket closes once both let go of it.
        let _ = self.stream.shutdown();
    }
}

async fn sender(inner: Rc<Inner>, peer: NodeId) {
    let addr = inner.peers.borrow()[&peer];
    let mut out: Option<Outgoing> = None;
    while let Some(frames) = next_frames(&inner, peer).await {
        if out.as_ref().is_some_and(|o| o.closed.get()) {
            out = None;
        }
        if out.is_none() {
            match TcpStream::connect(&inner.ring, addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let (stream, closed) = (Rc::new(s), Rc::new(Cell::new(false)));
                    engine::spawn(watch(stream.clone(), closed.clone()));
                    out = Some(Outgoing { stream, closed });
                }
                Err(_) => {
                    inner.dropped.set(inner.dropped.get() + 1); // counts lost batches here
                    engine::sleep(RECONNECT_DELAY).await;
                    continue;
                }
            }
        }
        let o = out.as_ref().expect("connected above");
        if o.stream.send_all(frames).await.is_err() {
            inner.dropped.set(inner.dropped.get() + 1); // counts lost batches here
            out = None;
        }
    }
}

/// Receives on an outgoing connection, where the peer never sends: returns once the peer closed
/// it or it failed, and marks it closed.
async fn watch(stream: Rc<TcpStream>, closed: Rc<Cell<bool>>) {
    let mut buf = RecvBuf::with_capacity(WATCH_RECV_BYTES);
    while let Ok(n) = stream.recv_into(&mut buf).await {
        if n == 0 {
            break;
        }
        buf.consume(n); // not our protocol: ignored
    }
    closed.set(true);
}

async fn accept_loop(inner: Rc<Inner>, listener: TcpListener) {
    while !inner.closed.get() {
        match listener.accept().await {
            Ok((stream, _)) => {
                engine::spawn(receiver(inner.clone(), stream));
            }
            Err(_) => engine::sleep(RECONNECT_DELAY).await,
        }
    }
}

/// Reads frames from one incoming connection into the inbox until it closes or sends garbage.
async fn receiver(inner: Rc<Inner>, stream: TcpStream) {
    let mut frames = FrameReader::new(net::RECV_BUF_CAPACITY_BYTES);
    while let Some(frame) = frames.next(&stream, wire::frame_len).await {
        let Ok(message) = wire::decode(&frame[wire::LENGTH_BYTES..]) else { return };
        deliver(&inner, message);
    }
}

fn deliver(inner: &Inner, message: Message) {
    let mut inbox = inner.inbox.borrow_mut();
    if inbox.len() >= INBOX_MESSAGES_MAX {
        inner.dropped.set(inner.dropped.get() + 1);
        return;
    }
    inbox.push_back(message);
    drop(inbox);
    if let Some(w) = inner.inbox_waker.borrow_mut().take() {
        w.wake();
    }
}
