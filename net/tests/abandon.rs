//! Ops abandoned in flight, hundreds of times: nothing crashes, and afterwards every op has
//! completed, every fd is closed and every arena buffer is back. A test binary of its own, so
//! that counting this process's open fds sees no other test's sockets.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use engine::{Core, Env, RuntimeConfig, Storage};
use net::{LISTEN_BACKLOG_DEFAULT, RecvBuf, TcpListener, TcpStream};

const ROUNDS: usize = 300;
/// How each round abandons its op: before the SQE reaches the kernel, while the receive waits in
/// the kernel, or a zero-copy send of this many bytes (its notification still to come).
const MODES: usize = 3;
const ZC_SEND_BYTES: usize = 1 << 20;
const IN_KERNEL_WAIT: Duration = Duration::from_millis(1);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// A client that waits this long for EOF fails the test; the server then stops waiting for its
/// next connection after `ACCEPT_TIMEOUT` instead of hanging.
const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(10);
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(20);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}


/// Abandons one op on `stream` as `mode` says, then drops the stream.
async fn abandon(core: &Core<()>, stream: TcpStream, mode: usize) {
    let mut buf = RecvBuf::new();
    let abandoned = match mode {
        0 => engine::timeout(Duration::ZERO, stream.recv_into(&mut buf)).await.is_err(),
        1 => engine::timeout(IN_KERNEL_WAIT, stream.recv_into(&mut buf)).await.is_err(),
        _ => {
            let mut fixed = core.env.storage().arena().alloc(ZC_SEND_BYTES).expect("arena buffer");
            fixed.set_len(ZC_SEND_BYTES);
            engine::timeout(Duration::ZERO, stream.send_fixed_all(fixed, 0..ZC_SEND_BYTES, true)).await.is_err()
        }
    };
    assert!(abandoned, "mode {mode}: the op finished before it could be abandoned");
    assert!(stream.is_poisoned(), "mode {mode}");
}

#[test]
fn abandoned_ops_then_dropped_streams_leak_nothing() {
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let clients_done = AtomicBool::new(false);
    let outcome = std::thread::scope(|s| {
        let clients_done = &clients_done;
        s.spawn(move || {
            let addr = addr_rx.recv().expect("server address");
            for round in 0..ROUNDS {
                let mut c = std::net::TcpStream::connect(addr).expect("client connect");
                c.set_read_timeout(Some(CLIENT_READ_TIMEOUT)).expect("read timeout");
                // EOF comes only once the server's socket is shut down or closed.
                let mut rest = Vec::new();
                let read = c.read_to_end(&mut rest);
                assert!(read.is_ok(), "round {round}: {read:?}");
            }
            clients_done.store(true, Ordering::SeqCst);
        });
        let mut out = engine::run(RuntimeConfig::cores(1).expect("one core"), |core: Core<()>| {
            let addr_tx = addr_tx.clone();
            async move {
                let ring = core.env.ring().clone();
                let listener = TcpListener::bind(&ring, SocketAddr::from(([127, 0, 0, 1], 0)), LISTEN_BACKLOG_DEFAULT).expect("bind");
                // Let the runtime's own ops (the mesh eventfd read) reach the ring first.
                engine::sleep(Duration::from_millis(1)).await;
                let (fds_before, in_flight_before) = (open_fds(), ring.in_flight());
                let free_before = core.env.storage().arena().free_counts();
                addr_tx.send(listener.local_addr()).expect("send address");
                for round in 0..ROUNDS {
                    let accepted = engine::timeout(ACCEPT_TIMEOUT, listener.accept()).await;
                    let (stream, _) = accepted.expect("the client stopped connecting").expect("accept");
                    abandon(&core, stream, round % MODES).await;
                }
                // The listener's multishot accept stays armed while it lives: dropping it cancels
                // that too.
                drop(listener);
                let start = engine::time::now();
                while !clients_done.load(Ordering::SeqCst) || ring.in_flight() != in_flight_before {
                    assert!(
                        engine::time::now().saturating_duration_since(start) < SETTLE_TIMEOUT,
                        "ops still in flight: {:?}",
                        ring.stats()
                    );
                    engine::sleep(Duration::from_millis(1)).await;
                }
                (fds_before, open_fds(), free_before, core.env.storage().arena().free_counts(), net::stats())
            }
        })
        .expect("runtime");
        out.pop().expect("one core")
    });
    let (fds_before, fds_after, free_before, free_after, stats) = outcome;
    // The listener was dropped too, and its socket closed once its accept's final CQE came.
    assert_eq!(fds_after, fds_before - 1, "open fds");
    assert_eq!(free_after, free_before, "arena buffers back");
    assert_eq!(stats.accepted, ROUNDS as u64, "{stats:?}");
    assert_eq!(stats.ops_abandoned, ROUNDS as u64, "{stats:?}");
    assert_eq!(stats.zc_sends, 0, "abandoned sends are not counted as completed: {stats:?}");
}
