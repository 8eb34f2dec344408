//! Unit tests of the core's rules on a tiny synchronous cluster (every write durable at once,
//! every message delivered in order unless a node is cut off). The simulator tests the same
//! rules under faults; these pin each rule down on its own.

use crate::config::{Config, INFLIGHT_MAX};
use crate::error::{ProposeError, StepError};
use crate::membership::ConfChange;
use crate::node::RawNode;
use crate::storage::{MemStorage, Snapshot, Storage};
use crate::types::{Body, Entry, EntryKind, Message, NodeId, Role};
use std::collections::{BTreeSet, VecDeque};

struct Cluster {
    nodes: Vec<RawNode<MemStorage>>,
    /// Nodes whose messages (both ways) are dropped.
    cut: BTreeSet<usize>,
    /// Nodes whose writes are not acknowledged (`on_persisted` is not called).
    slow_disk: BTreeSet<usize>,
    queue: VecDeque<Message>,
    /// Every message delivered, for the assertions.
    delivered: Vec<Message>,
}

impl Cluster {
    fn new(count: usize) -> Cluster {
        let voters: Vec<NodeId> = (1..=count as NodeId).collect();
        let nodes = voters.iter().map(|&id| RawNode::new(Config::new(id, 7, voters.clone(), id * 1000), MemStorage::new())).collect();
        Cluster { nodes, cut: BTreeSet::new(), slow_disk: BTreeSet::new(), queue: VecDeque::new(), delivered: Vec::new() }
    }

    fn process(&mut self, i: usize) {
        while self.nodes[i].has_ready() {
            let ready = self.nodes[i].take_ready();
            let node = &mut self.nodes[i];
            if let Some(hard_state) = ready.hard_state {
                node.storage_mut().set_hard_state(hard_state);
            }
            if let Some((meta, membership)) = ready.snapshot {
                // Small snapshots: one chunk each in these tests.
                assert_eq!(ready.snapshot_chunks.len(), 1);
                let data = ready.snapshot_chunks[0].data.clone();
                node.storage_mut().install(Snapshot { meta, membership, data });
            }
            node.storage_mut().append(&ready.entries);
            if let Some(last) = ready.entries.last()
                && !self.slow_disk.contains(&i)
            {
                node.on_persisted(last.index, last.term);
            }
            self.queue.extend(ready.messages);
            if !self.slow_disk.contains(&i) {
                self.queue.extend(ready.messages_after_persist);
            }
        }
    }

    fn deliver_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.process(i);
        }
        while let Some(message) = self.queue.pop_front() {
            let (from, to) = ((message.from - 1) as usize, (message.to - 1) as usize);
            if self.cut.contains(&from) || self.cut.contains(&to) {
                continue;
            }
            self.delivered.push(message.clone());
            assert_eq!(self.nodes[to].step(message), Ok(()));
            self.process(to);
        }
    }

    fn tick(&mut self, i: usize, count: u32) {
        for _ in 0..count {
            self.nodes[i].tick();
            self.process(i);
        }
    }

    /// Node `i` campaigns and the cluster settles.
    fn elect(&mut self, i: usize) {
        while self.nodes[i].role() == Role::Follower {
            self.tick(i, 1);
        }
        self.deliver_all();
        assert_eq!(self.nodes[i].role(), Role::Leader);
    }

    fn propose(&mut self, i: usize, byte: u8) -> Result<(), ProposeError> {
        self.nodes[i].propose(vec![vec![byte].into()]).map(|_| ())
    }
}

#[test]
fn not_leader_answers_carry_the_leader_hint() {
    let mut cluster = Cluster::new(3);
    assert_eq!(cluster.propose(1, 1), Err(ProposeError::NotLeader { leader_hint: None }));
    cluster.elect(0);
    assert_eq!(cluster.propose(1, 1), Err(ProposeError::NotLeader { leader_hint: Some(1) }));
    assert_eq!(cluster.nodes[2].read_index(5), Err(ProposeError::NotLeader { leader_hint: Some(1) }));
}

#[test]
fn proposals_between_readies_leave_in_one_append_per_follower() {
    let mut cluster = Cluster::new(3);
    cluster.elect(0);
    cluster.delivered.clear();
    for byte in 0..10 {
        cluster.propose(0, byte).expect("leader accepts");
    }
    let ready = cluster.nodes[0].take_ready();
    let appends: Vec<&Message> = ready.messages.iter().filter(|m| matches!(m.body, Body::Append { .. })).collect();
    assert_eq!(appends.len(), 2);
    for append in appends {
        let Body::Append { entries, .. } = &append.body else { unreachable!() };
        assert_eq!(entries.len(), 10);
    }
    // One write for the whole batch too.
    assert_eq!(ready.entries.len(), 10);
}

#[test]
fn pre_vote_keeps_a_cut_off_node_from_raising_its_term() {
    let mut cluster = Cluster::new(3);
    cluster.elect(0);
    let term = cluster.nodes[2].term();
    cluster.cut.insert(2);
    cluster.tick(2, 500);
    cluster.deliver_all();
    assert_eq!(cluster.nodes[2].term(), term);
    cluster.cut.clear();
    cluster.tick(0, 2);
    cluster.deliver_all();
    assert_eq!(cluster.nodes[0].role(), Role::Leader);
    assert_eq!(cluster.nodes[0].term(), term);
}

#[test]
fn check_quorum_makes_a_cut_off_leader_step_down() {
    let mut cluster = Cluster::new(3);
    cluster.elect(0);
    cluster.cut.insert(0);
    cluster.tick(0, 25);
    assert_eq!(cluster.nodes[0].role(), Role::Follower);
    assert_eq!(cluster.propose(0, 1), Err(ProposeError::NotLeader { leader_hint: None }));
}

#[test]
fn the_leader_counts_itself_only_once_its_write_is_durable() {
    let mut cluster = Cluster::new(3);
    cluster.elect(0);
    cluster.cut.insert(2);
    cluster.slow_disk.insert(0);
    let commit = cluster.nodes[0].commit_index();
    cluster.propose(0, 1).expect("leader accepts");
    cluster.deliver_all();
    // Node 2 (index 1) acknowledged durably, but with node 3 cut off the quorum needs the leader.
    assert_eq!(cluster.nodes[0].commit_index(), commit);
    let last = cluster.nodes[0].last_index();
    let term = cluster.nodes[0].term();
    cluster.nodes[0].on_persisted(last, term);
    assert_eq!(cluster.nodes[0].commit_index(), last);
}

#[test]
fn the_inflight_window_bounds_unanswered_appends() {
    let mut cluster = Cluster::new(3);
    cluster.elect(0);
    cluster.cut.insert(1);
    cluster.cut.insert(2);
    cluster.delivered.clear();
    let mut appends_to_2 = 0;
    for byte in 0..(INFLIGHT_MAX as u8 + 20) {
        cluster.propose(0, byte).expect("leader accepts");
        let ready = cluster.nodes[0].take_ready();
        cluster.nodes[0].storage_mut().append(&ready.entries);
        appends_to_2 += ready.messages.iter().filter(|m| m.to == 2 && matches!(m.body, Body::Append { .. })).count();
    }
    assert_eq!(appends_to_2, INFLIGHT_MAX);
}

#[test]
fn fast_back_off_skips_a_conflicting_term_per_round_trip() {
    let mut cluster = Cluster::new(3);
    // Node 3 leads term 1, is cut off, and appends 100 entries that will never commit.
    cluster.elect(2);
    cluster.cut.insert(2);
    for byte in 0..100 {
        cluster.propose(2, byte).expect("leader accepts");
    }
    cluster.deliver_all();
    // Nodes 1 and 2 elect one of them in a later term, which commits an entry.
    let mut leader = None;
    for _ in 0..200 {
        for i in 0..2 {
            cluster.tick(i, 1);
        }
        cluster.deliver_all();
        leader = (0..2).find(|&i| cluster.nodes[i].role() == Role::Leader);
        if leader.is_some() {
            break;
        }
    }
    let leader = leader.expect("two of three elect a leader");
    // The leader's log runs past the follower's: without hints it would back off one by one.
    for byte in 0..150 {
        cluster.propose(leader, byte).expect("leader accepts");
        cluster.deliver_all();
    }
    // A new leader starts by guessing that every follower has its whole log.
    let other = 1 - leader;
    cluster.nodes[leader].transfer_leader(other as NodeId + 1).expect("a voter");
    cluster.deliver_all();
    let leader = other;
    assert_eq!(cluster.nodes[leader].role(), Role::Leader);
    cluster.cut.clear();
    cluster.delivered.clear();
    cluster.tick(leader, 2);
    cluster.deliver_all();
    let rejections = cluster.delivered.iter().filter(|m| matches!(m.body, Body::AppendResponse { reject: Some(_), .. })).count();
    assert!(rejections <= 2, "{rejections} rejections for one conflicting term");
    assert_eq!(cluster.nodes[2].last_index(), cluster.nodes[leader].last_index());
    assert_eq!(cluster.nodes[2].log_term(cluster.nodes[2].last_index()), Some(cluster.nodes[leader].term()));
}

#[test]
fn leadership_transfer_hands_over_in_one_election() {
    let mut cluster = Cluster::new(3);
    cluster.elect(0);
    let term = cluster.nodes[0].term();
    cluster.propose(0, 1).expect("leader accepts");
    cluster.nodes[0].transfer_leader(3).expect("3 is a voter");
    assert!(matches!(cluster.propose(0, 2), Err(ProposeError::Transferring { to: 3 })));
    cluster.deliver_all();
    assert_eq!(cluster.nodes[2].role(), Role::Leader);
    assert_eq!(cluster.nodes[2].term(), term + 1);
    assert_eq!(cluster.nodes[0].leader(), Some(3));
}

/// Graceful shutdown hands leadership to the voter that has the most of the leader's log, so
/// the transfer waits least; among equals the lowest id; nobody if this node does not lead.
#[test]
fn the_transfer_target_is_the_most_caught_up_voter() {
    let mut cluster = Cluster::new(3);
    cluster.elect(0);
    cluster.propose(0, 1).expect("leader accepts");
    cluster.deliver_all();
    assert_eq!(cluster.nodes[0].transfer_target(), Some(2), "both hold the whole log: the lower id");
    assert_eq!(cluster.nodes[1].transfer_target(), None, "a follower hands nothing over");
    cluster.cut.insert(1);
    for byte in 2..5 {
        cluster.propose(0, byte).expect("leader accepts");
        cluster.deliver_all();
    }
    assert_eq!(cluster.nodes[0].transfer_target(), Some(3), "node 2 missed the last entries");
}

#[test]
fn read_index_waits_for_a_quorum_heartbeat_round() {
    let mut cluster = Cluster::new(3);
    cluster.elect(0);
    cluster.cut.insert(1);
    cluster.cut.insert(2);
    cluster.nodes[0].read_index(42).expect("leader");
    cluster.deliver_all();
    let ready = cluster.nodes[0].take_ready();
    assert!(ready.read_states.is_empty(), "no quorum confirmed leadership yet");
    cluster.cut.remove(&1);
    cluster.tick(0, 2);
    let mut read_states = Vec::new();
    while let Some(message) = cluster.queue.pop_front() {
        let to = (message.to - 1) as usize;
        if cluster.cut.contains(&to) {
            continue;
        }
        cluster.nodes[to].step(message).expect("valid");
        let ready = cluster.nodes[to].take_ready();
        cluster.nodes[to].storage_mut().append(&ready.entries);
        read_states.extend(ready.read_states);
        cluster.queue.extend(ready.messages);
        cluster.queue.extend(ready.messages_after_persist);
    }
    assert_eq!(read_states.len(), 1);
    assert_eq!(read_states[0].ctx, 42);
    assert_eq!(read_states[0].index, cluster.nodes[0].commit_index());
}

#[test]
fn malformed_messages_are_refused_without_effect() {
    let mut cluster = Cluster::new(3);
    let entry = |index, term| Entry { term, index, kind: EntryKind::Normal, payload: vec![].into() };
    let append = |from, entries: Vec<Entry>| Message {
        group: 7,
        from,
        to: 1,
        term: 3,
        body: Body::Append { prev_index: 0, prev_term: 0, entries, commit: 0 },
    };
    let cases: Vec<(Message, StepError)> = vec![
        (Message { group: 8, ..append(2, vec![]) }, StepError::WrongGroup { expected: 7, got: 8 }),
        (Message { to: 2, ..append(2, vec![]) }, StepError::WrongNode { id: 1, to: 2 }),
        (append(9, vec![]), StepError::UnknownSender { from: 9 }),
        (append(1, vec![]), StepError::UnknownSender { from: 1 }),
        (
            append(2, vec![entry(2, 1)]),
            StepError::Malformed { kind: "Append", from: 2, reason: "entries not contiguous after prev_index" },
        ),
        (
            append(2, vec![entry(1, 4)]),
            StepError::Malformed { kind: "Append", from: 2, reason: "entry terms not between prev_term and the message term" },
        ),
        (
            Message { body: Body::Append { prev_index: u64::MAX, prev_term: 0, entries: vec![], commit: 0 }, ..append(2, vec![]) },
            StepError::Malformed { kind: "Append", from: 2, reason: "prev_index overflows" },
        ),
    ];
    for (message, expected) in cases {
        assert_eq!(cluster.nodes[0].step(message), Err(expected.clone()), "{expected}");
        assert_eq!(cluster.nodes[0].term(), 0);
        assert!(!cluster.nodes[0].has_ready());
    }
    assert_eq!(cluster.nodes[0].storage().last_index(), 0);
}

#[test]
fn regression_snapshot_racing_with_append() {
    // A follower already holds entries 1..=21 of term 1 (acknowledged) but knows only commit 5
    // when the leader's snapshot at 15 arrives (sent while it looked behind, delivered late).
    let mut storage = MemStorage::new();
    storage.set_hard_state(crate::types::HardState { term: 1, vote: Some(2) });
    let entries: Vec<Entry> =
        (1..=21).map(|index| Entry { term: 1, index, kind: EntryKind::Normal, payload: vec![index as u8].into() }).collect();
    storage.append(&entries);
    let mut follower = RawNode::new(Config::new(1, 7, vec![1, 2, 3], 1), storage);
    let heartbeat = Message { group: 7, from: 2, to: 1, term: 1, body: Body::Heartbeat { commit: 5, read_seq: 0 } };
    assert_eq!(follower.step(heartbeat), Ok(()));
    assert_eq!(follower.commit_index(), 5);
    let meta = crate::types::SnapshotMeta { index: 15, term: 1 };
    let membership = crate::membership::Membership::new(vec![1, 2, 3], vec![]);
    let install = Body::InstallSnapshot { meta, membership, offset: 0, data: vec![0].into(), done: true };
    assert_eq!(follower.step(Message { group: 7, from: 2, to: 1, term: 1, body: install }), Ok(()));
    let ready = follower.take_ready();
    assert_eq!(ready.snapshot, None, "Raft §7: a snapshot whose last entry we hold is not installed");
    assert_eq!(follower.last_index(), 21);
    assert_eq!(follower.commit_index(), 15);
}

fn cluster_with_spare() -> Cluster {
    // Nodes 1..=3 vote; node 4 starts as a learner that the leader has yet to add.
    let mut cluster = Cluster::new(3);
    let mut config = Config::new(4, 7, vec![1, 2, 3], 4000);
    config.learners = vec![4];
    cluster.nodes.push(RawNode::new(config, MemStorage::new()));
    cluster
}

#[test]
fn a_learner_is_promoted_only_once_caught_up_and_never_campaigns_before() {
    let mut cluster = cluster_with_spare();
    cluster.elect(0);
    cluster.cut.insert(3);
    cluster.nodes[0].propose_conf_change(ConfChange::AddLearner(4)).expect("a new member");
    cluster.deliver_all();
    for byte in 0..5 {
        cluster.propose(0, byte).expect("leader accepts");
    }
    cluster.deliver_all();
    assert_eq!(cluster.nodes[0].propose_conf_change(ConfChange::Promote(4)), Err(ProposeError::LearnerBehind { id: 4 }));
    // A learner that hears nothing does not campaign.
    cluster.tick(3, 200);
    assert_eq!(cluster.nodes[3].role(), Role::Follower);
    assert_eq!(cluster.nodes[3].term(), 0);
    cluster.cut.clear();
    cluster.tick(0, 2);
    cluster.deliver_all();
    assert_eq!(cluster.nodes[3].last_index(), cluster.nodes[0].last_index());
    cluster.nodes[0].propose_conf_change(ConfChange::Promote(4)).expect("caught up");
    cluster.deliver_all();
    for node in &cluster.nodes {
        assert_eq!(node.membership().voters, vec![1, 2, 3, 4]);
    }
    // Four voters: a quorum is three, so the leader and one follower no longer commit.
    cluster.cut.insert(2);
    cluster.cut.insert(3);
    let commit = cluster.nodes[0].commit_index();
    cluster.propose(0, 9).expect("leader accepts");
    cluster.deliver_all();
    assert_eq!(cluster.nodes[0].commit_index(), commit);
}

#[test]
fn removals_that_would_lose_the_quorum_or_the_leader_are_refused() {
    let mut cluster = Cluster::new(3);
    cluster.elect(0);
    assert_eq!(cluster.nodes[0].propose_conf_change(ConfChange::Remove(1)), Err(ProposeError::RemoveLeader));
    cluster.cut.insert(1);
    cluster.propose(0, 1).expect("leader accepts");
    cluster.deliver_all();
    // Without node 3, voters {1, 2} need both, and node 2 is behind.
    assert_eq!(cluster.nodes[0].propose_conf_change(ConfChange::Remove(3)), Err(ProposeError::WouldLoseQuorum { id: 3 }));
    cluster.cut.clear();
    cluster.tick(0, 2);
    cluster.deliver_all();
    cluster.nodes[0].propose_conf_change(ConfChange::Remove(3)).expect("node 2 caught up");
    // One change at a time: the next waits for this one to commit.
    assert_eq!(cluster.nodes[0].propose_conf_change(ConfChange::AddLearner(5)), Err(ProposeError::ConfChangePending));
    cluster.deliver_all();
    assert_eq!(cluster.nodes[0].membership().voters, vec![1, 2]);
    // The removed node is no longer a peer: what it sends is refused.
    let from_removed = Message { group: 7, from: 3, to: 1, term: 9, body: Body::Vote { last_index: 99, last_term: 9, transfer: false } };
    assert_eq!(cluster.nodes[0].step(from_removed), Err(StepError::UnknownSender { from: 3 }));
    assert_eq!(cluster.nodes[0].role(), Role::Leader);
}

#[test]
fn a_configuration_cut_out_by_a_conflict_stops_being_in_force() {
    let mut cluster = cluster_with_spare();
    cluster.elect(0);
    // The leader appends "add learner 4" that reaches nobody, then loses leadership.
    cluster.cut.extend([1, 2, 3]);
    cluster.nodes[0].propose_conf_change(ConfChange::AddLearner(4)).expect("a new member");
    assert!(cluster.nodes[0].membership().is_learner(4));
    cluster.deliver_all();
    // Nodes 2 and 3 elect a new leader whose log lacks the change; node 1 takes its log.
    cluster.cut.clear();
    cluster.cut.extend([0, 3]);
    let mut leader = None;
    for _ in 0..200 {
        cluster.tick(1, 1);
        cluster.tick(2, 1);
        cluster.deliver_all();
        leader = (1..3).find(|&i| cluster.nodes[i].role() == Role::Leader);
        if leader.is_some() {
            break;
        }
    }
    let leader = leader.expect("two of three elect a leader");
    cluster.propose(leader, 1).expect("leader accepts");
    cluster.deliver_all();
    cluster.cut.remove(&0);
    cluster.tick(leader, 2);
    cluster.deliver_all();
    assert_eq!(cluster.nodes[0].role(), Role::Follower);
    assert_eq!(cluster.nodes[0].last_index(), cluster.nodes[leader].last_index());
    assert!(!cluster.nodes[0].membership().is_learner(4), "the cut-out configuration is still in force");
}

#[test]
fn lease_reads_skip_the_round_only_while_the_lease_holds() {
    let mut cluster = Cluster::new(3);
    for node in &mut cluster.nodes {
        node.config.lease_read = true;
    }
    // Let every node's start-up lease pass, then elect node 1 and let a heartbeat round finish.
    for i in 0..3 {
        cluster.tick(i, 10);
    }
    cluster.elect(0);
    cluster.tick(0, 2);
    cluster.deliver_all();
    cluster.nodes[0].read_index(1).expect("leader");
    let ready = cluster.nodes[0].take_ready();
    assert_eq!(ready.read_states.len(), 1, "served on the lease");
    assert!(ready.messages.is_empty(), "no heartbeat round needed");
    // Cut off, the leader's lease runs out after lease_ticks and reads wait for a round again.
    cluster.cut.extend([1, 2]);
    cluster.tick(0, crate::read_index::lease_ticks(10) as u32);
    cluster.deliver_all();
    cluster.nodes[0].read_index(2).expect("still leader");
    let ready = cluster.nodes[0].take_ready();
    assert!(ready.read_states.is_empty(), "lease expired");
}
