//! The TCP layer on the real runtime and the real kernel, over loopback. Clients are std threads
//! (blocking std::net), servers run on the cores' rings.

#![allow(clippy::disallowed_methods)] // the std client threads pace their reads with thread::sleep

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Barrier, mpsc};
use std::time::Duration;

use engine::rng::Prng;
use engine::{Core, Env, RuntimeConfig, Storage};
use net::{LISTEN_BACKLOG_DEFAULT, NetError, RecvBuf, TcpListener, TcpStream};

/// How long a std client waits on a read before the test fails instead of hanging.
const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(30);

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn cores(n: usize) -> RuntimeConfig {
    RuntimeConfig::cores(n).expect("this machine has the cores the test asks for")
}

/// Runs `main` on one core and returns its output.
fn on_one_core<T: Send, Fut: Future<Output = T>>(main: impl Fn(Core<()>) -> Fut + Sync) -> T {
    let mut out = engine::run(cores(1), main).expect("runtime");
    out.pop().expect("one core's output")
}

fn client_connect(addr: SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).expect("client connect");
    s.set_read_timeout(Some(CLIENT_READ_TIMEOUT)).expect("client read timeout");
    s
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Prng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Echoes until the peer closes, then drops the stream.
async fn echo(stream: TcpStream) {
    let mut buf = RecvBuf::new();
    let mut out = Vec::with_capacity(buf.capacity());
    loop {
        let n = stream.recv_into(&mut buf).await.expect("echo recv");
        if n == 0 {
            return;
        }
        out.clear();
        out.extend_from_slice(buf.filled());
        buf.consume(out.len());
        out = stream.send_all(out).await.expect("echo send");
    }
}

const ECHO_CONNECTIONS: usize = 200;
const ECHO_MESSAGE_MAX_BYTES: u64 = 1 << 20;
const ECHO_CLIENT_THREADS: usize = 8;
const ECHO_SEED: u64 = 0x5eed_ec40;

/// One client connection: writes a random-size message from a second thread while reading the
/// echo, so neither side waits on a full socket buffer; the echo must be byte-identical.
fn echo_client(addr: SocketAddr, connection: usize) {
    let mut rng = Prng::new(ECHO_SEED ^ connection as u64);
    let len = rng.range(1, ECHO_MESSAGE_MAX_BYTES) as usize;
    let message = pattern(rng.next_u64(), len);
    let mut stream = client_connect(addr);
    let mut writer = stream.try_clone().expect("clone client socket");
    let mut echoed = Vec::with_capacity(len);
    std::thread::scope(|s| {
        s.spawn(|| {
            writer.write_all(&message).expect("client write");
            writer.shutdown(Shutdown::Write).expect("client shutdown");
        });
        stream.read_to_end(&mut echoed).expect("client read echo");
    });
    assert_eq!(echoed.len(), len, "connection {connection}: echo length (seed {ECHO_SEED:#x})");
    assert!(echoed == message, "connection {connection}: echo differs from the message (seed {ECHO_SEED:#x})");
}

/// Both cores bind one port with SO_REUSEPORT; 200 connections are echoed byte-identically, and
/// the kernel gave each core some (hashing 200 distinct source ports onto 2 sockets leaves one
/// empty with probability 2^-199).
#[test]
fn echo_on_two_cores_sharing_a_port() {
    let port = AtomicU16::new(0);
    let core0_bound = Barrier::new(2);
    let all_bound = Barrier::new(3);
    let clients_done = AtomicBool::new(false);
    let accepted = std::thread::scope(|s| {
        s.spawn(|| {
            all_bound.wait();
            let addr = loopback(port.load(Ordering::SeqCst));
            let threads: Vec<_> = (0..ECHO_CLIENT_THREADS)
                .map(|t| s.spawn(move || (t..ECHO_CONNECTIONS).step_by(ECHO_CLIENT_THREADS).for_each(|c| echo_client(addr, c))))
                .collect();
            let failed = threads.into_iter().map(|t| t.join()).filter(Result::is_err).count();
            clients_done.store(true, Ordering::SeqCst);
            assert_eq!(failed, 0, "client threads failed");
        });
        engine::run(cores(2), |core: Core<()>| {
            let (port, core0_bound, all_bound, clients_done) = (&port, &core0_bound, &all_bound, &clients_done);
            async move {
                let ring = core.env.ring().clone();
                // Core 0 picks the port; core 1 binds the same one. Blocking waits are fine here:
                // nothing runs on these cores yet.
                let listener = if core.env.core() == 0 {
                    let l = TcpListener::bind(&ring, loopback(0), LISTEN_BACKLOG_DEFAULT).expect("bind core 0");
                    port.store(l.local_addr().port(), Ordering::SeqCst);
                    core0_bound.wait();
                    l
                } else {
                    core0_bound.wait();
                    TcpListener::bind(&ring, loopback(port.load(Ordering::SeqCst)), LISTEN_BACKLOG_DEFAULT).expect("bind core 1")
                };
                all_bound.wait();
                let count = Rc::new(Cell::new(0usize));
                let _acceptor = engine::spawn({
                    let count = count.clone();
                    async move {
                        loop {
                            let (stream, _) = listener.accept().await.expect("accept");
                            count.set(count.get() + 1);
                            engine::spawn(echo(stream));
                        }
                    }
                });
                while !clients_done.load(Ordering::SeqCst) {
                    engine::sleep(Duration::from_millis(5)).await;
                }
                (count.get(), net::stats())
            }
        })
        .expect("runtime")
    });
    let counts: Vec<usize> = accepted.iter().map(|(c, _)| *c).collect();
    eprintln!("connections accepted per core: {counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), ECHO_CONNECTIONS, "accepted per core: {counts:?}");
    assert!(counts[0] > 0, "core 0 accepted none: {counts:?}");
    assert!(counts[1] > 0, "core 1 accepted none: {counts:?}");
    for (core, (count, stats)) in accepted.iter().enumerate() {
        assert_eq!(stats.accepted, *count as u64, "core {core}: {stats:?}");
        assert_eq!(stats.recv_bytes, stats.sent_bytes, "core {core} echoed what it received: {stats:?}");
    }
}

const SLOW_PAYLOAD_BYTES: usize = 4 << 20;
const SLOW_READ_BYTES: usize = 4096;
const SLOW_READS_PER_PAUSE: usize = 16;
const SLOW_PAUSE: Duration = Duration::from_millis(1);

/// Accepts one connection and reads it to its end 4 KiB at a time, pausing now and then.
fn read_slowly(server: &std::net::TcpListener) -> Vec<u8> {
    let (mut conn, _) = server.accept().expect("std accept");
    conn.set_read_timeout(Some(CLIENT_READ_TIMEOUT)).expect("read timeout");
    let mut received = Vec::with_capacity(SLOW_PAYLOAD_BYTES);
    let mut chunk = [0u8; SLOW_READ_BYTES];
    for reads in 1.. {
        let n = conn.read(&mut chunk).expect("slow read");
        if n == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..n]);
        if reads % SLOW_READS_PER_PAUSE == 0 {
            std::thread::sleep(SLOW_PAUSE);
        }
    }
    received
}

/// A 4 MiB send_all to a reader that takes 4 KiB at a time with pauses: the send outlasts many
/// fills of the socket buffers, and what arrives is the payload, byte for byte.
#[test]
fn send_all_reaches_a_slow_reader_intact() {
    let server = std::net::TcpListener::bind(loopback(0)).expect("std listener");
    let addr = server.local_addr().expect("std listener addr");
    let payload = pattern(7, SLOW_PAYLOAD_BYTES);
    let (received, sent) = std::thread::scope(|s| {
        let reader = s.spawn(|| read_slowly(&server));
        let sent = on_one_core(|core: Core<()>| {
            let payload = payload.clone();
            async move {
                let stream = TcpStream::connect(core.env.ring(), addr).await.expect("connect");
                let back = stream.send_all(payload).await.expect("send_all");
                stream.shutdown_write().expect("shutdown write");
                (back.len(), net::stats().sent_bytes)
            }
        });
        (reader.join().expect("reader"), sent)
    });
    assert_eq!(sent, (SLOW_PAYLOAD_BYTES, SLOW_PAYLOAD_BYTES as u64), "send_all returns the Vec and counts every byte");
    assert_eq!(received.len(), SLOW_PAYLOAD_BYTES);
    assert!(received == payload, "received bytes differ from the payload");
}

/// send_head_and_shared to a slow reader: a head and a range of shared bytes arrive in order
/// and whole, with a body large enough that the slow reader fills the socket buffers (the
/// kernel continues the sendmsg; so would our own continuation after a partial send), then an
/// empty range (the head alone); the head comes back for reuse, the Arc is released.
#[test]
fn send_head_and_shared_delivers_both_parts_in_order() {
    let server = std::net::TcpListener::bind(loopback(0)).expect("std listener");
    let addr = server.local_addr().expect("std listener addr");
    let head = pattern(3, 300);
    let body = std::sync::Arc::new(pattern(5, SLOW_PAYLOAD_BYTES));
    let range = 17..SLOW_PAYLOAD_BYTES - 5;
    let mut expected = head.clone();
    expected.extend_from_slice(&body[range.clone()]);
    expected.extend_from_slice(&head);
    let (received, (back_len, shared_refs)) = std::thread::scope(|s| {
        let reader = s.spawn(|| read_slowly(&server));
        let sent = on_one_core(|core: Core<()>| {
            let (head, body, range) = (head.clone(), body.clone(), range.clone());
            async move {
                let stream = TcpStream::connect(core.env.ring(), addr).await.expect("connect");
                let back = stream.send_head_and_shared(head, body.clone(), range).await.expect("head and body");
                let back = stream.send_head_and_shared(back, body.clone(), 9..9).await.expect("head alone");
                stream.shutdown_write().expect("shutdown write");
                (back.len(), std::sync::Arc::strong_count(&body))
            }
        });
        (reader.join().expect("reader"), sent)
    });
    assert_eq!(back_len, head.len(), "the head comes back");
    assert_eq!(shared_refs, 2, "the ops released their clones of the shared bytes (the test holds two)");
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "received bytes differ from head + range + head");
}

const FIXED_LEN_BYTES: usize = 1 << 20;
const FIXED_RANGE: std::ops::Range<usize> = 1000..FIXED_LEN_BYTES - 7;

/// send_fixed_all from an arena buffer, zero-copy and then plain, delivers exactly the range;
/// the zero-copy send was notified and counted.
#[test]
fn send_fixed_all_in_both_modes_is_byte_identical() {
    let server = std::net::TcpListener::bind(loopback(0)).expect("std listener");
    let addr = server.local_addr().expect("std listener addr");
    let payload = pattern(11, FIXED_LEN_BYTES);
    let expected_len = FIXED_RANGE.len() * 2;
    let (received, stats) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut conn, _) = server.accept().expect("std accept");
            conn.set_read_timeout(Some(CLIENT_READ_TIMEOUT)).expect("read timeout");
            let mut received = Vec::new();
            conn.read_to_end(&mut received).expect("read");
            received
        });
        let stats = on_one_core(|core: Core<()>| {
            let payload = payload.clone();
            async move {
                let mut buf = core.env.storage().arena().alloc(FIXED_LEN_BYTES).expect("arena buffer");
                buf.set_len(FIXED_LEN_BYTES);
                buf.as_mut_slice().copy_from_slice(&payload);
                let stream = TcpStream::connect(core.env.ring(), addr).await.expect("connect");
                let buf = stream.send_fixed_all(buf, FIXED_RANGE, true).await.expect("send zero-copy");
                let buf = stream.send_fixed_all(buf, FIXED_RANGE, false).await.expect("send plain");
                assert_eq!(buf.len(), FIXED_LEN_BYTES);
                stream.shutdown_write().expect("shutdown write");
                net::stats()
            }
        });
        (reader.join().expect("reader"), stats)
    });
    assert_eq!(received.len(), expected_len);
    assert!(received[..FIXED_RANGE.len()] == payload[FIXED_RANGE], "zero-copy send differs");
    assert!(received[FIXED_RANGE.len()..] == payload[FIXED_RANGE], "plain send differs");
    assert_eq!(stats.sent_bytes, expected_len as u64, "{stats:?}");
    assert!(stats.zc_sends >= 1, "{stats:?}");
    assert_eq!(stats.zc_notifs, stats.zc_sends, "every zero-copy send was notified: {stats:?}");
    assert!(stats.zc_notifs_copied <= stats.zc_notifs, "{stats:?}");
    eprintln!("send_fixed_all zero-copy on loopback: {stats:?}");
}

/// Accepts one connection on a fresh listener while `client` runs on a std thread with its
/// address; returns what `serve` made of the stream.
fn serve_one<T: Send>(client: impl FnOnce(SocketAddr) + Send, serve: impl AsyncFn(TcpStream) -> T + Sync) -> T {
    let (addr_tx, addr_rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(move || client(addr_rx.recv().expect("server address")));
        on_one_core(|core: Core<()>| {
            let (addr_tx, serve) = (addr_tx.clone(), &serve);
            async move {
                let listener = TcpListener::bind(core.env.ring(), loopback(0), LISTEN_BACKLOG_DEFAULT).expect("bind");
                addr_tx.send(listener.local_addr()).expect("send address");
                let (stream, peer) = listener.accept().await.expect("accept");
                assert_eq!(stream.peer_addr(), peer);
                serve(stream).await
            }
        })
    })
}

#[test]
fn recv_returns_zero_once_the_peer_closed() {
    let received = serve_one(
        |addr| {
            let mut c = client_connect(addr);
            c.write_all(b"hello").expect("client write");
        },
        async |stream| {
            let mut buf = RecvBuf::new();
            while stream.recv_into(&mut buf).await.expect("recv") > 0 {}
            let again = stream.recv_into(&mut buf).await.expect("recv after close");
            (buf.filled().to_vec(), again)
        },
    );
    assert_eq!(received, (b"hello".to_vec(), 0));
}

const SILENT_TIMEOUT: Duration = Duration::from_millis(50);

/// A silent client: the timeout fires (not early), the stream is poisoned for every later op,
/// and dropping it closes the connection promptly (the client reads EOF).
#[test]
fn recv_timeout_fires_and_the_stream_must_be_closed() {
    let (timed, after) = serve_one(
        |addr| {
            let mut c = client_connect(addr);
            let mut rest = Vec::new();
            // The server drops the stream after its checks: EOF, not our 30 s read timeout.
            c.read_to_end(&mut rest).expect("client sees the close");
            assert!(rest.is_empty());
        },
        async |stream| {
            let mut buf = RecvBuf::new();
            let start = engine::time::now();
            let err = stream.recv_timeout(&mut buf, SILENT_TIMEOUT).await.expect_err("a silent client times out");
            let waited = engine::time::now().saturating_duration_since(start);
            assert!(waited >= SILENT_TIMEOUT, "fired after {waited:?}");
            assert!(err.is_timeout(), "{err}");
            assert!(err.must_close(), "{err}");
            assert!(stream.is_poisoned());
            let recv = stream.recv_into(&mut buf).await.expect_err("poisoned recv");
            let send = stream.send_all(b"x".to_vec()).await.expect_err("poisoned send");
            (err.to_string(), [recv, send].map(|e| (matches!(e, NetError::Poisoned { .. }), e.must_close(), e.to_string())))
        },
    );
    assert!(timed.contains("nothing within 50 ms"), "{timed}");
    for (poisoned, must_close, text) in after {
        assert!(poisoned, "{text}");
        assert!(must_close, "{text}");
        assert!(text.contains("an earlier recv from was abandoned"), "{text}");
    }
}

#[test]
fn connect_to_a_closed_port_is_refused_with_the_address() {
    // Bind and drop: the port is closed (nothing else on this host takes it in between).
    let addr = std::net::TcpListener::bind(loopback(0)).and_then(|l| l.local_addr()).expect("free port");
    let err = on_one_core(|core: Core<()>| async move {
        match TcpStream::connect(core.env.ring(), addr).await {
            Ok(_) => panic!("connected to the closed port {addr}"),
            Err(e) => e,
        }
    });
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(err.to_string().starts_with("connect to"), "{err}");
    assert_eq!(err.addr(), addr);
}

/// Dropping a listener whose accept is in flight (its future dropped) stops the listening at
/// once, while the runtime (and the abandoned accept) lives on: the accept holds the socket, so
/// a plain close would leave it listening.
#[test]
fn dropping_a_listener_with_an_accept_in_flight_stops_listening() {
    let refused = on_one_core(|core: Core<()>| async move {
        let listener = TcpListener::bind(core.env.ring(), loopback(0), LISTEN_BACKLOG_DEFAULT).expect("bind");
        let addr = listener.local_addr();
        let pending = engine::timeout(Duration::from_millis(10), listener.accept()).await;
        assert!(pending.is_err(), "nobody connected");
        drop(listener);
        // A blocking connect on the core is fine here: on loopback it is answered at once.
        std::net::TcpStream::connect(addr).map(|_| ()).map_err(|e| e.kind())
    });
    assert_eq!(refused, Err(ErrorKind::ConnectionRefused));
}

/// One multishot accept serves many connections (one SQE); dropping the listener cancels it, and
/// the connections it had accepted that nobody took are closed, not leaked.
#[test]
fn one_multishot_accept_serves_many_connections_and_a_dropped_listener_closes_the_rest() {
    const TAKEN: usize = 10;
    const LEFT: usize = 10;
    let (accept_sqes, left) = on_one_core(|core: Core<()>| async move {
        let ring = core.env.ring().clone();
        let listener = TcpListener::bind(&ring, loopback(0), LISTEN_BACKLOG_DEFAULT).expect("bind");
        let addr = listener.local_addr();
        // A blocking connect on loopback completes from the backlog, before any accept.
        let clients: Vec<std::net::TcpStream> = (0..TAKEN + LEFT).map(|_| client_connect(addr)).collect();
        engine::sleep(Duration::from_millis(1)).await;
        let (sqes_before, in_flight_before) = (ring.stats().sqes, ring.in_flight());
        let mut taken = Vec::new();
        for _ in 0..TAKEN {
            taken.push(listener.accept().await.expect("accept"));
        }
        let accept_sqes = ring.stats().sqes - sqes_before;
        drop(listener);
        let start = engine::time::now();
        while ring.in_flight() != in_flight_before {
            assert!(engine::time::now().saturating_duration_since(start) < Duration::from_secs(5), "the accept never ended");
            engine::sleep(Duration::from_millis(1)).await;
        }
        drop(taken);
        (accept_sqes, clients.into_iter().skip(TAKEN).collect::<Vec<_>>())
    });
    assert_eq!(accept_sqes, 1, "one multishot accept SQE for {TAKEN} connections");
    // Whatever the accept took for nobody was closed (a leaked fd would keep its client waiting
    // until the read timeout). Counting the process's fds instead would race the tests that run
    // beside this one.
    for mut c in left {
        let mut byte = [0u8; 1];
        let read = c.read(&mut byte);
        assert!(matches!(read, Ok(0)) || read.as_ref().is_err_and(|e| e.kind() == ErrorKind::ConnectionReset), "{read:?}");
    }
}

/// A peer that never reads: a send under a send timeout fails with a timeout once its op has
/// waited that long, and the stream is poisoned; without the stall it would wait for ever.
#[test]
fn a_send_to_a_peer_that_does_not_read_times_out() {
    let timeout = Duration::from_millis(200);
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (error, poisoned, sent_stat) = serve_one(
        move |addr| {
            let _c = client_connect(addr);
            // Hold the connection open, unread, until the server has given up.
            let _ = done_rx.recv_timeout(CLIENT_READ_TIMEOUT);
        },
        async move |stream| {
            stream.set_send_timeout(Some(timeout));
            let start = engine::time::now();
            let result = stream.send_all(vec![7u8; 64 << 20]).await;
            let waited = engine::time::now().saturating_duration_since(start);
            assert!(waited >= timeout, "gave up after {waited:?}");
            let error = result.err().expect("a send into a full window must time out");
            let poisoned = stream.is_poisoned();
            done_tx.send(()).expect("done");
            (error, poisoned, net::stats().send_timeouts)
        },
    );
    assert!(error.is_timeout(), "{error}");
    assert!(poisoned, "the stream must be closed after an abandoned send");
    assert!(sent_stat >= 1);
}
