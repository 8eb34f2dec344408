//! Three nodes over loopback TCP (`TcpTransport`, `net` sockets on the ring, `wire` frames), each
//! with its own store and its `Driver::run` loop on the runtime's timer: they elect leaders for
//! every group, and every node applies the same proposals at the same indexes.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use engine::arena::{ArenaConfig, ClassConfig};
use engine::store::{Store, StoreConfig};
use engine::{LinuxEnv, RuntimeConfig, SECTOR_SIZE};
use raftlog::{Config, Driver, Role, TcpTransport};

const NODES: u64 = 3;
const GROUPS: u64 = 2;
const PROPOSALS: usize = 50;
const BATCH_BYTES: usize = 1 << 20;
const TICK: Duration = Duration::from_millis(2);
/// The test fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(30);

fn runtime() -> RuntimeConfig {
    let mut c = RuntimeConfig::cores(1).expect("one core");
    c.arena = ArenaConfig {
        classes: vec![ClassConfig { size_bytes: SECTOR_SIZE, count: 512 }, ClassConfig { size_bytes: BATCH_BYTES, count: 12 }],
    };
    c
}

/// (node, group) -> payloads applied, by index.
type Applied = Rc<RefCell<BTreeMap<(u64, u64), BTreeMap<u64, Vec<u8>>>>>;

#[test]
fn three_nodes_over_loopback_tcp_agree() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("raft-tcp");
    let _ = std::fs::remove_dir_all(&root);
    let out = engine::run(runtime(), move |core: engine::Core<()>| {
        let root = root.clone();
        async move { cluster(core.env.clone(), root).await }
    })
    .expect("runtime");
    let applied = out.into_iter().next().expect("one core");
    for group in 1..=GROUPS {
        let first = &applied[&(1, group)];
        for node in 1..=NODES {
            let theirs = &applied[&(node, group)];
            assert!(theirs.len() >= PROPOSALS, "group {group}: node {node} applied {} entries", theirs.len());
            // Nodes stop at slightly different moments: compare every index both applied.
            for (index, payload) in theirs {
                if let Some(mine) = first.get(index) {
                    assert_eq!(mine, payload, "group {group} index {index}: node {node} applied another entry than node 1");
                }
            }
        }
    }
}

async fn cluster(env: LinuxEnv, root: PathBuf) -> BTreeMap<(u64, u64), BTreeMap<u64, Vec<u8>>> {
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let mut transports = Vec::new();
    for id in 1..=NODES {
        transports.push(TcpTransport::start(env.ring(), id, loopback).expect("listen"));
    }
    for (i, (t, _)) in transports.iter().enumerate() {
        for (j, (_, addr)) in transports.iter().enumerate() {
            if i != j {
                t.add_peer(j as u64 + 1, *addr);
            }
        }
    }
    let applied: Applied = Rc::default();
    let mut tasks = Vec::new();
    for (i, (transport, _)) in transports.iter().enumerate() {
        let id = i as u64 + 1;
        let dir = root.join(format!("node-{id}"));
        let config = StoreConfig { dir, segment_bytes: 64 << 20, batch_bytes: BATCH_BYTES };
        let (store, _) = Store::open(env.clone(), config).await.expect("open store");
        let mut driver = Driver::new(id, store, transport.clone());
        for group in 1..=GROUPS {
            driver.add_group(Config::new(id, group, (1..=NODES).collect(), id * 100 + group)).await.expect("group");
        }
        let applied = applied.clone();
        tasks.push(engine::spawn(async move {
            let deadline = engine::time::now().saturating_add(DEADLINE);
            let mut proposed = [0usize; GROUPS as usize + 1];
            driver
                .run(TICK, |d| {
                    let mut all = applied.borrow_mut();
                    for group in 1..=GROUPS {
                        for e in d.take_applied(group) {
                            if !e.payload.is_empty() {
                                all.entry((id, group)).or_default().insert(e.index, e.payload.to_vec());
                            }
                        }
                        let raw = d.group_mut(group).expect("group");
                        if raw.role() == Role::Leader && proposed[group as usize] < PROPOSALS {
                            let k = proposed[group as usize];
                            if raw.propose(vec![format!("n{id} g{group} p{k}").into_bytes().into()]).is_ok() {
                                proposed[group as usize] += 1;
                            }
                        }
                    }
                    let done = (1..=NODES).all(|n| (1..=GROUPS).all(|g| all.get(&(n, g)).is_some_and(|m| m.len() >= PROPOSALS)));
                    !done && engine::time::now() < deadline
                })
                .await
                .expect("driver");
        }));
    }
    for t in tasks {
        t.await;
    }
    for (t, _) in &transports {
        t.close();
    }
    applied.borrow().clone()
}

/// A peer that restarts (its sockets closed, a new listener on the same port) gets the next
/// message sent to it: the sender notices the closed connection and connects again, rather than
/// writing into a socket the kernel can only reset (the message lost with no error, and Raft
/// waiting for a heartbeat to resend). The peer here is plain std sockets on another thread.
#[test]
#[allow(clippy::disallowed_methods)] // the peer is a plain thread on std sockets and wall time
fn a_message_after_the_peer_restarted_is_not_lost() {
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer_addr = listener.local_addr().expect("addr");
    let restarted = Arc::new(AtomicBool::new(false));
    let restarted_set = restarted.clone();
    // The term of the next message (a `Message` holds `Rc`s: it stays on its thread).
    let read_one = |stream: &mut std::net::TcpStream| -> u64 {
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Ok(Some(len)) = raftlog::wire::frame_len(&bytes)
                && bytes.len() >= len
            {
                return raftlog::wire::decode(&bytes[raftlog::wire::LENGTH_BYTES..len]).expect("a frame").term;
            }
            let n = stream.read(&mut chunk).expect("a frame within 5 s");
            assert!(n > 0, "the sender closed before a whole frame");
            bytes.extend_from_slice(&chunk[..n]);
        }
    };
    let peer = std::thread::spawn(move || {
        let (mut first, _) = listener.accept().expect("accept");
        let one = read_one(&mut first);
        // The peer "restarts": its connection and listener close, a new one listens.
        drop(first);
        drop(listener);
        let listener = std::net::TcpListener::bind(peer_addr).expect("rebind the same port");
        restarted_set.store(true, Ordering::SeqCst);
        listener.set_nonblocking(true).expect("nonblocking");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut second = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("the sender did not connect again within 5 s: {e}"),
            }
        };
        second.set_nonblocking(false).expect("blocking");
        (one, read_one(&mut second))
    });
    let message = |term| raftlog::Message { group: 1, from: 1, to: 2, term, body: raftlog::Body::Heartbeat { commit: 0, read_seq: 0 } };
    engine::run(runtime(), move |core: engine::Core<()>| {
        let restarted = restarted.clone();
        async move {
            let (tcp, _) = TcpTransport::start(core.env.ring(), 1, "127.0.0.1:0".parse().expect("addr")).expect("listen");
            tcp.add_peer(2, peer_addr);
            raftlog::Transport::send(&tcp, message(1));
            while !restarted.load(Ordering::SeqCst) {
                engine::sleep(Duration::from_millis(1)).await;
            }
            // Time for the closed connection to be seen; one send after it, no retry.
            engine::sleep(Duration::from_millis(100)).await;
            raftlog::Transport::send(&tcp, message(2));
            engine::sleep(Duration::from_millis(200)).await;
        }
    })
    .expect("runtime");
    let terms = peer.join().expect("the peer got both messages");
    assert_eq!(terms, (1, 2));
}
