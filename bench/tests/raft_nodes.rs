//! Three real `corestore-bench raft-node` processes on loopback: clients propose from several
//! threads, both followers are frozen (SIGSTOP) while the leader goes on taking proposals, the
//! leader is killed with SIGKILL, the followers resume, a survivor must take over, and every
//! proposal any node acknowledged (answered `Committed { index }`) must be read back at that
//! index, byte for byte, from the new leader's store, and from the killed node's store once it
//! is restarted and has caught up. Two acknowledgements of one index must carry the same payload.
//! And a graceful stop (SIGTERM) of the leader under load hands leadership over and loses
//! nothing. And replicas of two cores and four groups each (a store, driver and ports per core)
//! route every group to its core, lose nothing to a SIGKILL, and hand every led group over on
//! SIGTERM. And with logs compacted into snapshots every few hundred entries, a follower that
//! missed the compacted entries installs its leader's snapshot over TCP and ends with the same
//! state machine.

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

use proto::{Answer, Client, NodeStatus, core_of};

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

/// The group the single-group tests propose to.
const GROUP: u64 = 1;

struct Node {
    child: Option<Child>,
    /// Client addresses, one per core.
    clients: Vec<SocketAddr>,
}

/// The replicas; every child is killed and reaped on drop, also when an assertion fails.
struct Cluster {
    nodes: Vec<Node>,
    dir: PathBuf,
    peers: String,
    cores: usize,
    groups: u64,
    /// `--snapshot-entries`, if not the node's default.
    snapshot_entries: Option<u64>,
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
    /// Replicas of `cores` cores each, holding groups 1 to `groups`, compacting their logs every
    /// `snapshot_entries` applied entries (`None`: the node's default, more than any test writes).
    fn start(dir: &Path, cores: usize, groups: u64, snapshot_entries: Option<u64>) -> Cluster {
        let listeners: Vec<TcpListener> =
            (0..2 * REPLICAS * cores).map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port")).collect();
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().expect("address")).collect();
        drop(listeners);
        let (raft, client) = addrs.split_at(REPLICAS * cores);
        let join = |a: &[SocketAddr]| a.iter().map(|a| a.to_string()).collect::<Vec<_>>().join("/");
        let peers = raft.chunks(cores).enumerate().map(|(i, a)| format!("{}={}", i + 1, join(a))).collect::<Vec<_>>().join(",");
        let nodes = client.chunks(cores).map(|a| Node { child: None, clients: a.to_vec() }).collect();
        let mut cluster = Cluster { nodes, dir: dir.to_path_buf(), peers, cores, groups, snapshot_entries };
        for i in 0..REPLICAS {
            cluster.spawn(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let log = std::fs::File::create(self.dir.join(format!("node-{}.log", i + 1))).expect("log file");
        let node_cpus: Vec<String> = (0..self.cores).map(|k| ((i * self.cores + k) % cpus).to_string()).collect();
        let clients: Vec<String> = self.nodes[i].clients.iter().map(|a| a.to_string()).collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_corestore-bench"));
        command.arg("raft-node");
        if let Some(n) = self.snapshot_entries {
            command.args(["--snapshot-entries", &n.to_string()]);
        }
        let child = command
            .args(["--id", &(i + 1).to_string(), "--peers", &self.peers])
            .args(["--client-listen", &clients.join("/")])
            .arg("--data")
            .arg(self.dir.join(format!("node-{}", i + 1)))
            .args(["--cpus", &node_cpus.join(","), "--groups", &self.groups.to_string()])
            .args(["--tick-ms", &TICK_MS.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting corestore-bench raft-node");
        self.nodes[i].child = Some(child);
    }

    /// Waits for replica `i` to exit after a SIGTERM; it must exit with status 0.
    fn wait_exit(&mut self, i: usize, deadline: Instant) {
        let mut child = self.nodes[i].child.take().expect("running");
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "replica {} did not exit after SIGTERM:\n{}", i + 1, self.log(i));
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(status.success(), "replica {} stopped with {status}:\n{}", i + 1, self.log(i));
    }

    /// Waits until every running replica applied the same index of `group` as its leader
    /// committed (no load runs meanwhile); returns their statuses, by replica.
    fn wait_converged(&self, group: u64, deadline: Instant) -> BTreeMap<usize, NodeStatus> {
        loop {
            let leader = self.wait_leader_of(group, deadline);
            let commit = self.status_of(leader, group).map_or(0, |s| s.commit);
            let statuses: BTreeMap<usize, NodeStatus> = (0..REPLICAS)
                .filter(|&i| self.nodes[i].child.is_some())
                .filter_map(|i| Some((i, self.status_of(i, group)?)))
                .collect();
            let running = self.nodes.iter().filter(|n| n.child.is_some()).count();
            if commit > 0 && statuses.len() == running && statuses.values().all(|s| s.applied == commit) {
                return statuses;
            }
            assert!(Instant::now() < deadline, "group {group}: replicas did not converge on {commit}: {statuses:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
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

    /// Replica `i`'s address for `group`: its owning core's port.
    fn client(&self, i: usize, group: u64) -> SocketAddr {
        self.nodes[i].clients[core_of(group, self.cores)]
    }

    fn status(&self, i: usize) -> Option<NodeStatus> {
        self.status_of(i, GROUP)
    }

    fn status_of(&self, i: usize, group: u64) -> Option<NodeStatus> {
        Client::connect(self.client(i, group), CALL_TIMEOUT).ok()?.status(group).ok()
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("node-{}.log", i + 1))).unwrap_or_default()
    }

    /// A running replica that says it leads `GROUP` and that every other running replica follows.
    fn wait_leader(&self, deadline: Instant) -> usize {
        self.wait_leader_of(GROUP, deadline)
    }

    fn wait_leader_of(&self, group: u64, deadline: Instant) -> usize {
        loop {
            let running: Vec<usize> = (0..REPLICAS).filter(|&i| self.nodes[i].child.is_some()).collect();
            let statuses: Vec<Option<NodeStatus>> = running.iter().map(|&i| self.status_of(i, group)).collect();
            for (k, &i) in running.iter().enumerate() {
                let leads = statuses[k].is_some_and(|s| s.is_leader);
                if leads && statuses.iter().all(|s| s.is_some_and(|s| s.leader == i as u64 + 1)) {
                    return i;
                }
            }
            assert!(
                Instant::now() < deadline,
                "group {group}: no leader: {statuses:?}\nlogs: {}",
                (0..REPLICAS).map(|i| self.log(i)).collect::<String>()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_applied(&self, i: usize, group: u64, index: u64, deadline: Instant) {
        while self.status_of(i, group).is_none_or(|s| s.applied < index) {
            assert!(Instant::now() < deadline, "replica {} did not apply {index} of group {group}: {:?}", i + 1, self.status_of(i, group));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// ((group, index) -> payload) of every acknowledged proposal.
type Acked = Arc<Mutex<BTreeMap<(u64, u64), Vec<u8>>>>;

fn acknowledge(acked: &Acked, group: u64, index: u64, payload: Vec<u8>) {
    let mut all = acked.lock().expect("acked lock");
    if let Some(earlier) = all.insert((group, index), payload.clone()) {
        panic!(
            "index {index} of group {group} acknowledged twice with different entries: {:?} and {:?}",
            String::from_utf8_lossy(&earlier),
            String::from_utf8_lossy(&payload)
        );
    }
}

/// Proposes distinct payloads to `group` until `stop` (`clients`: each replica's address for
/// it), following NotLeader hints and moving on from a dead node; records what was
/// acknowledged.
fn proposer(thread: usize, group: u64, clients: Vec<SocketAddr>, acked: Acked, stop: Arc<AtomicBool>) {
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
        let payload = format!("proposer {thread} group {group} seq {seq}").into_bytes();
        match c.propose(group, &payload) {
            Ok(Answer::Committed { index }) => acknowledge(&acked, group, index, payload),
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

/// Acknowledged proposals of `group`.
fn acked_in(acked: &Acked, group: u64) -> usize {
    acked.lock().expect("acked lock").range((group, 0)..=(group, u64::MAX)).count()
}

/// Reads every acknowledged index back from replica `i`, once it applied each group's last; an
/// index at or below the group's snapshot there must be answered as compacted. Returns how many
/// were read back.
fn check_log(cluster: &Cluster, i: usize, acked: &BTreeMap<(u64, u64), Vec<u8>>) -> usize {
    let groups: Vec<u64> = (1..=cluster.groups).filter(|&g| acked.range((g, 0)..=(g, u64::MAX)).next().is_some()).collect();
    assert!(!groups.is_empty(), "acknowledged entries");
    for &group in &groups {
        let (&(_, last), _) = acked.range((group, 0)..=(group, u64::MAX)).last().expect("an entry of the group");
        cluster.wait_applied(i, group, last, Instant::now() + TIMEOUT);
    }
    let snapshots: BTreeMap<u64, u64> =
        groups.iter().map(|&g| (g, cluster.status_of(i, g).expect("status after applying").snapshot_index)).collect();
    let mut clients: BTreeMap<usize, Client> = BTreeMap::new();
    let mut read = 0;
    for (&(group, index), payload) in acked {
        let core = core_of(group, cluster.cores);
        let client = clients.entry(core).or_insert_with(|| Client::connect(cluster.client(i, group), CALL_TIMEOUT).expect("connect for reads"));
        let answer = client.read(group, index).expect("read");
        if index <= snapshots[&group] {
            assert!(
                matches!(&answer, Answer::Error(why) if why.starts_with("compacted")),
                "replica {}: index {index} of group {group} is in the snapshot at {}, but a read answered {answer:?}",
                i + 1,
                snapshots[&group]
            );
            continue;
        }
        read += 1;
        match answer {
            Answer::Entry { index: got, payload: stored, .. } => {
                assert_eq!(got, index);
                assert!(
                    stored == *payload,
                    "replica {} holds {:?} at index {index} of group {group}, acknowledged was {:?}",
                    i + 1,
                    String::from_utf8_lossy(&stored),
                    String::from_utf8_lossy(payload)
                );
            }
            other => panic!("replica {}: read of acknowledged index {index} of group {group} answered {other:?}", i + 1),
        }
    }
    read
}

/// An empty directory for one test's replicas.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    dir
}

/// Proposers on `PROPOSER_THREADS` threads (at least one per group) against `cluster` until
/// `stop`.
struct Load {
    acked: Acked,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    groups: u64,
}

impl Load {
    /// Starts the proposers and waits until `ACKED_BEFORE_KILL_MIN` proposals were acknowledged.
    fn start(cluster: &Cluster, deadline: Instant) -> Load {
        let acked: Acked = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..PROPOSER_THREADS.max(cluster.groups as usize))
            .map(|t| {
                let group = t as u64 % cluster.groups + 1;
                let clients: Vec<SocketAddr> = (0..REPLICAS).map(|i| cluster.client(i, group)).collect();
                let (acked, stop) = (acked.clone(), stop.clone());
                std::thread::spawn(move || proposer(t, group, clients, acked, stop))
            })
            .collect();
        let load = Load { acked, stop, threads, groups: cluster.groups };
        while acked_len(&load.acked) < ACKED_BEFORE_KILL_MIN {
            assert!(Instant::now() < deadline, "only {} proposals acknowledged before the leader went", acked_len(&load.acked));
            std::thread::sleep(Duration::from_millis(5));
        }
        load
    }

    /// Waits for one more acknowledgement in every group (its leader, new or not, commits),
    /// runs on for `LOAD_AFTER_ELECTION`, stops the proposers; returns what was acknowledged.
    fn finish(self, deadline: Instant) -> BTreeMap<(u64, u64), Vec<u8>> {
        for group in 1..=self.groups {
            let after = acked_in(&self.acked, group);
            while acked_in(&self.acked, group) <= after {
                assert!(Instant::now() < deadline, "nothing acknowledged in group {group} after the leader changed");
                std::thread::sleep(Duration::from_millis(5));
            }
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
    let mut cluster = Cluster::start(&dir, 1, 1, None);
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
    let mut cluster = Cluster::start(&dir, 1, 1, None);
    let deadline = Instant::now() + TIMEOUT;
    let old = cluster.wait_leader(deadline);
    let load = Load::start(&cluster, deadline);
    let old_term = cluster.status(old).expect("leader status").term;
    cluster.signal(old, libc::SIGTERM);
    cluster.wait_exit(old, deadline + TIMEOUT);
    assert!(cluster.log(old).contains("handed group 1 over to node"), "{}", cluster.log(old));
    assert!(dir.join(format!("node-{}", old + 1)).join("core-0").join("index.ckpt").exists(), "closing the store wrote its checkpoint");
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

/// Replicas of two cores each, four groups (two per core, each core its own store, driver and
/// ports). A request for a group goes to its core's port: another core's port refuses it,
/// naming the owner, and a group the node does not run is refused too. Under load on every
/// group, the replica that leads group 1 is killed (SIGKILL): every group keeps or elects a
/// leader and goes on committing, and everything acknowledged reads back from each survivor and
/// from the killed replica once restarted. Then the replica leading the most groups is stopped
/// with SIGTERM: it hands every group it leads over, on both cores, and exits with status 0.
#[test]
fn groups_on_two_cores_route_to_their_core_and_lose_nothing() {
    const CORES: usize = 2;
    const GROUPS: u64 = 4;
    let dir = fresh_dir("raft-nodes-cores");
    let mut cluster = Cluster::start(&dir, CORES, GROUPS, None);
    let deadline = Instant::now() + TIMEOUT;
    for group in 1..=GROUPS {
        cluster.wait_leader_of(group, deadline);
    }
    // Group 2 lives on core 1: core 0's port refuses it, and names core 1.
    assert_eq!(core_of(2, CORES), 1);
    let mut wrong = Client::connect(cluster.nodes[0].clients[0], CALL_TIMEOUT).expect("connect");
    match wrong.propose(2, b"to the wrong core") {
        Ok(Answer::Error(why)) => assert!(why.contains("wrong core") && why.contains("core 1"), "{why}"),
        other => panic!("a proposal to another core's group answered {other:?}"),
    }
    for group in [0, GROUPS + 1] {
        match wrong.status(group) {
            Err(why) => assert!(why.contains(&format!("no group {group}")), "{why}"),
            Ok(s) => panic!("status of group {group}, which no core runs, answered {s:?}"),
        }
    }

    let load = Load::start(&cluster, deadline);
    let old = cluster.wait_leader_of(1, deadline);
    cluster.kill(old);
    let acked = load.finish(deadline + TIMEOUT);
    let per_group: Vec<usize> = (1..=GROUPS).map(|g| acked.range((g, 0)..=(g, u64::MAX)).count()).collect();
    eprintln!("acknowledged per group: {per_group:?}; replica {} (group 1's leader) was killed", old + 1);
    assert!(per_group.iter().all(|&n| n > 0), "every group committed: {per_group:?}");
    for i in (0..REPLICAS).filter(|&i| i != old) {
        check_log(&cluster, i, &acked);
    }
    cluster.spawn(old);
    check_log(&cluster, old, &acked);
    for core in 0..CORES {
        assert!(dir.join(format!("node-{}", old + 1)).join(format!("core-{core}")).is_dir(), "core {core} has its own store");
    }

    // A graceful stop of the replica leading the most groups: every group it led moves.
    let leaders: Vec<usize> = (1..=GROUPS).map(|g| cluster.wait_leader_of(g, Instant::now() + TIMEOUT)).collect();
    let stopped = (0..REPLICAS).max_by_key(|&i| leaders.iter().filter(|&&l| l == i).count()).expect("replicas");
    let led: Vec<u64> = (1..=GROUPS).filter(|&g| leaders[g as usize - 1] == stopped).collect();
    cluster.signal(stopped, libc::SIGTERM);
    cluster.wait_exit(stopped, Instant::now() + TIMEOUT);
    let log = cluster.log(stopped);
    for &group in &led {
        assert!(log.contains(&format!("handed group {group} over to node")), "group {group}:\n{log}");
        assert_ne!(cluster.wait_leader_of(group, Instant::now() + TIMEOUT), stopped);
    }
    eprintln!("replica {} handed groups {led:?} over on SIGTERM", stopped + 1);
}

/// Snapshots between real processes: each group compacts its log every `SNAPSHOT_ENTRIES`
/// applied entries. A follower killed before the load misses entries its leader compacted away,
/// so on restart it installs the leader's snapshot, streamed over the replicas' TCP transport,
/// then applies what follows: every replica ends at the same applied index with the same state
/// machine digest (chained over every entry applied), acknowledged entries above each replica's
/// snapshot read back and those at or below it are answered as compacted. Then the leader is
/// killed and restarted: it starts from its own snapshot and reaches the same digest.
#[test]
fn a_follower_behind_the_compacted_log_installs_the_snapshot_over_tcp() {
    const SNAPSHOT_ENTRIES: u64 = 200;
    const ACKED_MIN: usize = 1500;
    let dir = fresh_dir("raft-nodes-snapshot");
    let mut cluster = Cluster::start(&dir, 1, 1, Some(SNAPSHOT_ENTRIES));
    let deadline = Instant::now() + 2 * TIMEOUT;
    let leader = cluster.wait_leader(deadline);
    let behind = (leader + 1) % REPLICAS;
    cluster.kill(behind);
    let load = Load::start(&cluster, deadline);
    while acked_len(&load.acked) < ACKED_MIN {
        assert!(Instant::now() < deadline, "only {} proposals acknowledged", acked_len(&load.acked));
        std::thread::sleep(Duration::from_millis(5));
    }
    let acked = load.finish(deadline);
    let compacted = cluster.status(leader).expect("leader status").snapshot_index;
    assert!(compacted >= SNAPSHOT_ENTRIES, "the leader compacted its log (snapshot at {compacted})");

    cluster.spawn(behind);
    let statuses = cluster.wait_converged(GROUP, deadline);
    let digests: Vec<u64> = statuses.values().map(|s| s.digest).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "replicas at the same index disagree: {statuses:?}");
    assert!(statuses[&behind].snapshots_installed >= 1, "the restarted follower installed no snapshot: {:?}", statuses[&behind]);
    for i in 0..REPLICAS {
        let read = check_log(&cluster, i, &acked);
        eprintln!("replica {}: {read} of {} acknowledged entries read back, the rest in its snapshot", i + 1, acked.len());
    }

    cluster.kill(leader);
    cluster.spawn(leader);
    let after = cluster.wait_converged(GROUP, Instant::now() + TIMEOUT);
    // A new leader appends an entry of its own, so the index may have moved on.
    let first = after.values().next().expect("replicas");
    let same_as_before = first.applied > statuses[&leader].applied || first.digest == digests[0];
    assert!(same_as_before && after.values().all(|s| s.digest == first.digest), "after the leader's restart: {after:?}");
    eprintln!(
        "{} acknowledged; snapshots at {:?}; replica {} installed {}",
        acked.len(),
        after.values().map(|s| s.snapshot_index).collect::<Vec<_>>(),
        behind + 1,
        statuses[&behind].snapshots_installed
    );
}
