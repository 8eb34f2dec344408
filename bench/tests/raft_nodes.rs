//! Three real `corestore-bench raft-node` processes on loopback: clients propose from several
//! threads, both followers are frozen (SIGSTOP) while the leader goes on taking proposals, the
//! leader is killed with SIGKILL, the followers resume, a survivor must take over, and every
//! proposal any node acknowledged (answered `Committed { index }`) must be read back at that
//! index, byte for byte, from the new leader's store, and from the killed node's store once it
//! is restarted and has caught up. Two acknowledgements of one index must carry the same payload.
//! And a graceful stop (SIGTERM) of the leader under load hands leadership over and loses
//! nothing.

#![allow(clippy::disallowed_methods)] // a process test waits on wall time for other processes

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[allow(dead_code)] // the test uses the client side only
#[path = "../src/raft/proto.rs"]
mod proto;

use proto::{Answer, Client, NodeStatus};

const REPLICAS: usize = 3;
const PROPOSER_THREADS: usize = 4;
/// Acknowledged proposals before the kill.
const ACKED_BEFORE_KILL_MIN: usize = 100;
/// How long the followers stay frozen while the leader takes proposals it cannot commit (an
/// acknowledgement then would be of an entry only the leader holds, lost with it).
const FROZEN: Duration = Duration::from_millis(300);
/// How long the proposers go on once a new leader committed their entries.
const LOAD_AFTER_ELECTION: Duration = Duration::from_millis(700);
const TIMEOUT: Duration = Duration::from_secs(15);
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const TICK_MS: u64 = 10;

struct Node {
    child: Option<Child>,
    client: SocketAddr,
}

/// The replicas; every child is killed and reaped on drop, also when an assertion fails.
struct Cluster {
    nodes: Vec<Node>,
    dir: PathBuf,
    peers: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let listeners: Vec<TcpListener> = (0..2 * REPLICAS).map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port")).collect();
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().expect("address")).collect();
        drop(listeners);
        let peers = (0..REPLICAS).map(|i| format!("{}={}", i + 1, addrs[i])).collect::<Vec<_>>().join(",");
        let nodes = (0..REPLICAS).map(|i| Node { child: None, client: addrs[REPLICAS + i] }).collect();
        let mut cluster = Cluster { nodes, dir: dir.to_path_buf(), peers };
        for i in 0..REPLICAS {
            cluster.spawn(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let log = std::fs::File::create(self.dir.join(format!("node-{}.log", i + 1))).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_corestore-bench"))
            .arg("raft-node")
            .args(["--id", &(i + 1).to_string(), "--peers", &self.peers])
            .args(["--client-listen", &self.nodes[i].client.to_string()])
            .arg("--data")
            .arg(self.dir.join(format!("node-{}", i + 1)))
            .args(["--cpu", &(i % cpus).to_string(), "--tick-ms", &TICK_MS.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting corestore-bench raft-node");
        self.nodes[i].child = Some(child);
    }

    fn kill(&mut self, i: usize) {
        let mut child = self.nodes[i].child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// SIGSTOP or SIGCONT.
    fn signal(&self, i: usize, signal: i32) {
        let pid = self.nodes[i].child.as_ref().expect("running").id() as i32;
        // SAFETY: kill(2) on a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal {signal} to replica {}", i + 1);
    }

    fn status(&self, i: usize) -> Option<NodeStatus> {
        Client::connect(self.nodes[i].client, CALL_TIMEOUT).ok()?.status().ok()
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("node-{}.log", i + 1))).unwrap_or_default()
    }

    /// A running replica that says it leads and that every other running replica follows.
    fn wait_leader(&self, deadline: Instant) -> usize {
        loop {
            let running: Vec<usize> = (0..REPLICAS).filter(|&i| self.nodes[i].child.is_some()).collect();
            let statuses: Vec<Option<NodeStatus>> = running.iter().map(|&i| self.status(i)).collect();
            for (k, &i) in running.iter().enumerate() {
                let leads = statuses[k].is_some_and(|s| s.is_leader);
                if leads && statuses.iter().all(|s| s.is_some_and(|s| s.leader == i as u64 + 1)) {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no leader: {statuses:?}\nlogs: {}", (0..REPLICAS).map(|i| self.log(i)).collect::<String>());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_applied(&self, i: usize, index: u64, deadline: Instant) {
        while self.status(i).is_none_or(|s| s.applied < index) {
            assert!(Instant::now() < deadline, "replica {} did not apply {index}: {:?}", i + 1, self.status(i));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// (index -> payload) of every acknowledged proposal.
type Acked = Arc<Mutex<BTreeMap<u64, Vec<u8>>>>;

fn acknowledge(acked: &Acked, index: u64, payload: Vec<u8>) {
    let mut all = acked.lock().expect("acked lock");
    if let Some(earlier) = all.insert(index, payload.clone()) {
        panic!(
            "index {index} acknowledged twice with different entries: {:?} and {:?}",
            String::from_utf8_lossy(&earlier),
            String::from_utf8_lossy(&payload)
        );
    }
}

/// Proposes distinct payloads until `stop`, following NotLeader hints and moving on from a dead
/// node; records what was acknowledged.
fn proposer(thread: usize, clients: Vec<SocketAddr>, acked: Acked, stop: Arc<AtomicBool>) {
    let mut target = 0;
    let mut client: Option<Client> = None;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if client.is_none() {
            client = Client::connect(clients[target], CALL_TIMEOUT).ok();
        }
        let Some(c) = client.as_mut() else {
            target = (target + 1) % clients.len();
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        seq += 1;
        let payload = format!("proposer {thread} seq {seq}").into_bytes();
        match c.propose(&payload) {
            Ok(Answer::Committed { index }) => acknowledge(&acked, index, payload),
            Ok(Answer::NotLeader { hint }) => {
                target = if hint != 0 { hint as usize - 1 } else { (target + 1) % clients.len() };
                client = None;
                std::thread::sleep(Duration::from_millis(2));
            }
            // Refused or lost: not acknowledged, nothing to check.
            Ok(_) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => {
                target = (target + 1) % clients.len();
                client = None;
            }
        }
    }
}

fn acked_len(acked: &Acked) -> usize {
    acked.lock().expect("acked lock").len()
}

/// Reads every acknowledged index back from replica `i`, once it applied the last one.
fn check_log(cluster: &Cluster, i: usize, acked: &BTreeMap<u64, Vec<u8>>) {
    let last = *acked.keys().last().expect("acknowledged entries");
    cluster.wait_applied(i, last, Instant::now() + TIMEOUT);
    let mut client = Client::connect(cluster.nodes[i].client, CALL_TIMEOUT).expect("connect for reads");
    for (&index, payload) in acked {
        match client.read(index).expect("read") {
            Answer::Entry { index: got, payload: stored, .. } => {
                assert_eq!(got, index);
                assert!(
                    stored == *payload,
                    "replica {} holds {:?} at index {index}, acknowledged was {:?}",
                    i + 1,
                    String::from_utf8_lossy(&stored),
                    String::from_utf8_lossy(payload)
                );
            }
            other => panic!("replica {}: read of acknowledged index {index} answered {other:?}", i + 1),
        }
    }
}

/// An empty directory for one test's replicas.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    dir
}

/// Proposers on `PROPOSER_THREADS` threads against `cluster` until `stop`.
struct Load {
    acked: Acked,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// Starts the proposers and waits until `ACKED_BEFORE_KILL_MIN` proposals were acknowledged.
    fn start(cluster: &Cluster, deadline: Instant) -> Load {
        let acked: Acked = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.client).collect();
        let threads = (0..PROPOSER_THREADS)
            .map(|t| {
                let (clients, acked, stop) = (clients.clone(), acked.clone(), stop.clone());
                std::thread::spawn(move || proposer(t, clients, acked, stop))
            })
            .collect();
        let load = Load { acked, stop, threads };
        while acked_len(&load.acked) < ACKED_BEFORE_KILL_MIN {
            assert!(Instant::now() < deadline, "only {} proposals acknowledged before the leader went", acked_len(&load.acked));
            std::thread::sleep(Duration::from_millis(5));
        }
        load
    }

    /// Waits for one more acknowledgement (the new leader commits), runs on for
    /// `LOAD_AFTER_ELECTION`, stops the proposers; returns what was acknowledged.
    fn finish(self, deadline: Instant) -> BTreeMap<u64, Vec<u8>> {
        let after = acked_len(&self.acked);
        while acked_len(&self.acked) <= after {
            assert!(Instant::now() < deadline, "nothing acknowledged after the leader changed");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(LOAD_AFTER_ELECTION);
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("proposer thread");
        }
        self.acked.lock().expect("acked lock").clone()
    }
}

#[test]
fn acknowledged_entries_survive_a_leader_kill() {
    let dir = fresh_dir("raft-nodes");
    let mut cluster = Cluster::start(&dir);
    let deadline = Instant::now() + TIMEOUT;
    let old = cluster.wait_leader(deadline);
    let load = Load::start(&cluster, deadline);
    let followers: Vec<usize> = (0..REPLICAS).filter(|&i| i != old).collect();
    for &f in &followers {
        cluster.signal(f, libc::SIGSTOP);
    }
    std::thread::sleep(FROZEN);
    let before_kill = acked_len(&load.acked);
    cluster.kill(old);
    for &f in &followers {
        cluster.signal(f, libc::SIGCONT);
    }
    let new = cluster.wait_leader(Instant::now() + TIMEOUT);
    assert_ne!(new, old, "a killed node cannot lead");
    let new_term = cluster.status(new).expect("new leader status").term;
    let acked = load.finish(deadline + TIMEOUT);
    eprintln!(
        "{} proposals acknowledged ({before_kill} before the kill of replica {}); replica {} leads in term {new_term}",
        acked.len(),
        old + 1,
        new + 1
    );

    check_log(&cluster, new, &acked);

    // The killed replica recovers its store and catches up: its log agrees too.
    cluster.spawn(old);
    check_log(&cluster, old, &acked);
    assert!(cluster.status(new).is_some_and(|s| s.term >= new_term));
}

/// A graceful stop: SIGTERM to the leader under load. It hands leadership to another replica
/// (one election, term + 1), closes its store (writing the index checkpoint) and exits with
/// status 0, which it does only once another replica leads. Nothing acknowledged is lost, and
/// the stopped replica restarts from its files and catches up.
#[test]
fn a_sigterm_hands_leadership_over_and_loses_nothing() {
    let dir = fresh_dir("raft-nodes-sigterm");
    let mut cluster = Cluster::start(&dir);
    let deadline = Instant::now() + TIMEOUT;
    let old = cluster.wait_leader(deadline);
    let load = Load::start(&cluster, deadline);
    let old_term = cluster.status(old).expect("leader status").term;
    cluster.signal(old, libc::SIGTERM);
    let mut child = cluster.nodes[old].child.take().expect("running");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline + TIMEOUT, "replica {} did not exit after SIGTERM:\n{}", old + 1, cluster.log(old));
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "replica {} stopped with {status}:\n{}", old + 1, cluster.log(old));
    assert!(cluster.log(old).contains("handed group 1 over to node"), "{}", cluster.log(old));
    assert!(dir.join(format!("node-{}", old + 1)).join("index.ckpt").exists(), "closing the store wrote its checkpoint");
    let new = cluster.wait_leader(Instant::now() + TIMEOUT);
    assert_ne!(new, old);
    let new_term = cluster.status(new).expect("new leader status").term;
    assert_eq!(new_term, old_term + 1, "one election, started by the hand-over");
    let acked = load.finish(deadline + 2 * TIMEOUT);
    eprintln!("{} proposals acknowledged; replica {} handed over to replica {} (term {new_term})", acked.len(), old + 1, new + 1);
    check_log(&cluster, new, &acked);
    cluster.spawn(old);
    check_log(&cluster, old, &acked);
}
