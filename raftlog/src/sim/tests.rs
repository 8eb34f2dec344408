//! The simulator's tests: thousands of seeded runs with every fault, the classic Raft bugs as
//! named scenarios, and mutation tests showing each checker catches a deliberately broken core.
//!
//! `RAFT_SIM_SEEDS=<n>` runs n seeds per seeded test (long-run mode), from `RAFT_SIM_SEED_FROM`
//! (default 0); `RAFT_SIM_SEED=<n>` runs just that one, as the failure message says.

use crate::config::Bugs;
use crate::sim::kv::{KvOp, KvResult};
use crate::sim::{RunStats, SimOptions, Violation, World};
use crate::types::Role;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

/// Seeds per seeded test in CI (`cargo test -p raftlog --release`); `RAFT_SIM_SEEDS`
/// overrides. An unoptimised build runs fewer so that a workspace-wide debug test stays quick.
const SEEDS_DEFAULT: u64 = if cfg!(debug_assertions) { 200 } else { 4000 };
/// Seeds a mutation test may try before concluding its checker missed the bug.
const MUTATION_SEEDS_MAX: u64 = 400;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|value| value.parse().ok())
}

/// One run; a panic (failed assertion) is a violation too.
fn run_one(seed: u64, options: &SimOptions) -> Result<RunStats, Violation> {
    let options = options.clone();
    match catch_unwind(AssertUnwindSafe(|| World::new(seed, options).run())) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(Violation::Panic(message))
        }
    }
}

/// Runs the seeds of a test; the first failure names the command that replays it.
fn run_seeds(test: &str, options: SimOptions) {
    let seeds: Vec<u64> = match env_u64("RAFT_SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("RAFT_SIM_SEED_FROM").unwrap_or(0);
            (first..first + env_u64("RAFT_SIM_SEEDS").unwrap_or(SEEDS_DEFAULT)).collect()
        }
    };
    // The test's own wall time, for the report; the simulation itself runs in virtual time.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let mut total = RunStats::default();
    for &seed in &seeds {
        match run_one(seed, &options.clone().vary(seed)) {
            Ok(stats) => {
                total.events += stats.events;
                total.ops_ok += stats.ops_ok;
                total.ops_maybe += stats.ops_maybe;
                total.history_ops += stats.history_ops;
                total.committed += stats.committed;
                total.crashes += stats.crashes;
                total.snapshots_installed += stats.snapshots_installed;
                total.conf_changes += stats.conf_changes;
                total.elections += stats.elections;
                total.checks += stats.checks;
            }
            Err(violation) => {
                panic!("{test}: seed {seed} failed: {violation:?}\nrerun: RAFT_SIM_SEED={seed} cargo test -p raftlog --release {test}")
            }
        }
    }
    let elapsed: Duration = started.elapsed();
    eprintln!(
        "{test}: {} seeds in {:.1}s: {} events, {} histories ({} ops: {} ok, {} maybe), {} entries committed, {} crashes, {} snapshots installed, {} membership changes, {} terms with a leader, {} checks",
        seeds.len(),
        elapsed.as_secs_f64(),
        total.events,
        seeds.len(),
        total.history_ops,
        total.ops_ok,
        total.ops_maybe,
        total.committed,
        total.crashes,
        total.snapshots_installed,
        total.conf_changes,
        total.elections,
        total.checks
    );
    // A run that does nothing proves nothing.
    assert!(total.ops_ok > seeds.len() as u64);
    assert!(total.committed > 0);
    // Lagging and restarted nodes must have needed snapshots in some runs.
    assert!(seeds.len() < 100 || total.snapshots_installed > 0);
}

#[test]
fn sim_three_nodes_with_faults() {
    run_seeds("sim_three_nodes_with_faults", SimOptions::faulty(3));
}

#[test]
fn sim_five_nodes_with_faults() {
    run_seeds("sim_five_nodes_with_faults", SimOptions::faulty(5));
}

/// The first seed (of `MUTATION_SEEDS_MAX`) whose run fails with a violation `accept`s.
fn first_caught(test: &str, options: SimOptions, accept: impl Fn(&Violation) -> bool) -> Option<(u64, Violation)> {
    let caught = (0..MUTATION_SEEDS_MAX).find_map(|seed| match run_one(seed, &options) {
        Err(violation) if accept(&violation) => Some((seed, violation)),
        _ => None,
    });
    eprintln!("{test}: caught {caught:?}");
    caught
}

fn with_bugs(nodes: usize, bugs: Bugs) -> SimOptions {
    SimOptions { bugs, ..SimOptions::faulty(nodes) }
}

#[test]
fn mutation_vote_ignoring_the_log_breaks_leader_completeness() {
    let options = with_bugs(5, Bugs { vote_ignores_log: true, ..Bugs::default() });
    let caught = first_caught("vote_ignores_log", options, |v| matches!(v, Violation::LeaderCompleteness { .. }));
    assert!(caught.is_some(), "no seed elected a leader without a committed entry");
}

#[test]
fn mutation_read_without_quorum_breaks_linearizability() {
    // Without check-quorum a cut-off leader keeps believing it leads, so stale reads are likely.
    let options = SimOptions { check_quorum: false, ..with_bugs(3, Bugs { read_without_quorum: true, ..Bugs::default() }) };
    let caught = first_caught("read_without_quorum", options, |v| matches!(v, Violation::Linearizability { .. }));
    assert!(caught.is_some(), "no seed showed a stale read");
}

#[test]
fn mutation_ack_before_persist_loses_acknowledged_writes() {
    let bugs = Bugs { append_ack_before_persist: true, leader_counts_unpersisted: true, ..Bugs::default() };
    let options = SimOptions { sync_us: (5_000, 50_000), ..with_bugs(3, bugs) };
    let caught = first_caught("ack_before_persist", options, |v| {
        matches!(v, Violation::Linearizability { .. } | Violation::LeaderCompleteness { .. } | Violation::StateMachineSafety { .. })
    });
    assert!(caught.is_some(), "no seed lost an acknowledged write");
}

// ---- the classic bugs, as scripted scenarios: each passes on the real core and is shown to
// fail on a core with the bug ----

fn scripted(seed: u64, nodes: usize, change: impl FnOnce(&mut SimOptions)) -> World {
    let mut options = SimOptions::scripted(nodes);
    change(&mut options);
    World::new(seed, options)
}

/// Ticks `node` until it campaigns (instead of waiting for its random timeout).
fn campaign_now(world: &mut World, node: usize) -> Result<(), Violation> {
    for _ in 0..100 {
        if world.node(node).is_some_and(|raft| raft.role() != Role::Follower) {
            return Ok(());
        }
        world.tick(node, 1)?;
    }
    panic!("node {node} never campaigned");
}

fn settled_leader(world: &mut World) -> Result<usize, Violation> {
    world.run_for(1_000_000)?;
    Ok(world.leader().expect("a quiet cluster elects a leader within a second"))
}

/// Runs up to two virtual seconds, a millisecond at a time, until a node other than `old` leads.
fn other_leader(world: &mut World, old: usize) -> Result<Option<usize>, Violation> {
    for _ in 0..2_000 {
        world.run_for(1_000)?;
        if let Some(leader) = world.leader().filter(|&leader| leader != old) {
            return Ok(Some(leader));
        }
    }
    Ok(None)
}

/// Invokes `op` at `node` and runs until it has an answer.
fn invoke_and_wait(world: &mut World, node: usize, op: KvOp) -> Result<(), Violation> {
    let call = world.invoke(node, op);
    while world.result(call).is_none() {
        world.run_for(500)?;
    }
    Ok(())
}

/// A voter answers, crashes before its vote is durable, comes back with no vote and votes again
/// in the same term for someone else: two leaders in one term.
fn votes_not_persisted(bugs: Bugs) -> Result<(), Violation> {
    let (a, b, c) = (0, 1, 2);
    let mut world = scripted(11, 3, |o| o.bugs = bugs);
    world.isolate(c);
    world.set_sync_latency(a, Some(1_000_000));
    campaign_now(&mut world, a)?;
    world.run_for(40_000)?;
    // With the bug `a` already leads term 1 on a vote it has not made durable.
    world.crash_losing_unsynced(a);
    world.restart(a)?;
    world.set_sync_latency(a, None);
    world.heal_network();
    world.isolate(b);
    campaign_now(&mut world, c)?;
    world.run_for(100_000)?;
    assert_eq!(world.leader(), Some(c), "scenario: c wins with a's vote");
    world.finish().map(|_| ())
}

#[test]
fn regression_votes_not_persisted() {
    assert_eq!(votes_not_persisted(Bugs::default()), Ok(()));
    let broken = votes_not_persisted(Bugs { vote_before_persist: true, ..Bugs::default() });
    assert!(matches!(broken, Err(Violation::ElectionSafety { term: 1, .. })), "{broken:?}");
}

/// A leader cut off from the others keeps believing it leads (no check-quorum); the majority
/// elects another and takes a write; a read at the old leader must not return the old value.
fn stale_leader_read(bugs: Bugs) -> Result<Option<KvResult>, Violation> {
    let mut world = scripted(12, 5, |o| {
        o.bugs = bugs;
        o.check_quorum = false;
    });
    let old = settled_leader(&mut world)?;
    let first = world.invoke(old, KvOp::Put { key: 0, value: 1 });
    world.run_for(200_000)?;
    assert_eq!(world.result(first), Some(KvResult::Done));
    world.isolate(old);
    let new = settled_leader(&mut world)?;
    assert_ne!(new, old, "scenario: the majority elects another leader");
    let second = world.invoke(new, KvOp::Put { key: 0, value: 2 });
    world.run_for(200_000)?;
    assert_eq!(world.result(second), Some(KvResult::Done));
    assert!(world.node(old).is_some_and(|raft| raft.role() == Role::Leader), "scenario: the old leader still thinks it leads");
    let read = world.invoke(old, KvOp::Get { key: 0 });
    world.run_for(300_000)?;
    let answer = world.result(read);
    world.finish().map(|_| answer)
}

#[test]
fn regression_stale_leader_serving_reads() {
    // ReadIndex cannot confirm leadership, so the read never returns (a timeout).
    assert_eq!(stale_leader_read(Bugs::default()), Ok(None));
    let broken = stale_leader_read(Bugs { read_without_quorum: true, ..Bugs::default() });
    assert!(matches!(broken, Err(Violation::Linearizability { key: 0, .. })), "{broken:?}");
}

/// Followers acknowledge a write; the leader answers the client, then crashes for good and the
/// followers lose power: whatever they acknowledged must still be there.
fn lost_acknowledged_write(bugs: Bugs) -> Result<Option<KvResult>, Violation> {
    let mut world = scripted(13, 3, |o| o.bugs = bugs);
    let leader = settled_leader(&mut world)?;
    let followers: Vec<usize> = (0..3).filter(|&n| n != leader).collect();
    for &follower in &followers {
        world.set_sync_latency(follower, Some(1_000_000));
    }
    let write = world.invoke(leader, KvOp::Put { key: 0, value: 7 });
    world.run_for(100_000)?;
    world.crash(leader);
    for &follower in &followers {
        world.crash_losing_unsynced(follower);
        world.restart(follower)?;
        world.set_sync_latency(follower, None);
    }
    let new = settled_leader(&mut world)?;
    let read = world.invoke(new, KvOp::Get { key: 0 });
    world.run_for(300_000)?;
    if bugs.append_ack_before_persist {
        assert_eq!(world.result(write), Some(KvResult::Done), "scenario: the write was acknowledged");
    }
    let answer = world.result(read);
    world.finish().map(|_| answer)
}

#[test]
fn regression_lost_acknowledged_writes_after_leader_crash() {
    // The write was never acknowledged (its followers had not synced), so reading 0 is fine.
    assert_eq!(lost_acknowledged_write(Bugs::default()), Ok(Some(KvResult::Value(0))));
    // The new leader lacks the write its old followers acknowledged: caught when it takes
    // office (leader completeness), before the read would show it (linearizability).
    let broken = lost_acknowledged_write(Bugs { append_ack_before_persist: true, ..Bugs::default() });
    assert!(matches!(broken, Err(Violation::LeaderCompleteness { .. } | Violation::Linearizability { key: 0, .. })), "{broken:?}");
}

/// A follower cut off for a while comes back. Returns whether the leader or its term changed.
fn rejoin_disrupts(pre_vote: bool) -> Result<bool, Violation> {
    let mut world = scripted(14, 3, |o| o.pre_vote = pre_vote);
    let leader = settled_leader(&mut world)?;
    let term = world.node(leader).map(|raft| raft.term());
    let follower = (leader + 1) % 3;
    world.isolate(follower);
    world.run_for(2_000_000)?;
    world.heal_network();
    world.run_for(1_000_000)?;
    let disrupted = world.leader() != Some(leader) || world.node(leader).map(|raft| raft.term()) != term;
    world.finish().map(|_| disrupted)
}

#[test]
fn regression_partitioned_node_does_not_disrupt_on_rejoin() {
    assert_eq!(rejoin_disrupts(true), Ok(false));
    // Without pre-vote the node comes back with a higher term and deposes the leader.
    assert_eq!(rejoin_disrupts(false), Ok(true));
}

/// Lease reads and clock drift: the old leader is cut off while its lease holds; the others
/// elect a leader and take a write; then the old leader is asked to read. With followers'
/// clocks within the drift bound the lease has run out by then; with clocks far faster, the
/// new leader is elected inside the old lease and the read is stale.
fn lease_read_after_partition(follower_tick_us: u64) -> Result<Option<KvResult>, Violation> {
    let mut world = scripted(15, 3, |o| {
        o.lease_read = true;
        o.drift_ppm = 0;
        o.delay_us = (200, 1_000);
    });
    let old = settled_leader(&mut world)?;
    let first = world.invoke(old, KvOp::Put { key: 0, value: 1 });
    world.run_for(100_000)?;
    assert_eq!(world.result(first), Some(KvResult::Done));
    for node in (0..3).filter(|&n| n != old) {
        world.set_tick_us(node, follower_tick_us);
    }
    world.isolate(old);
    let new = other_leader(&mut world, old)?.expect("scenario: the majority elects a leader");
    invoke_and_wait(&mut world, new, KvOp::Put { key: 0, value: 2 })?;
    let read = world.invoke(old, KvOp::Get { key: 0 });
    world.run_for(100_000)?;
    let answer = world.result(read);
    world.finish().map(|_| answer)
}

#[test]
fn regression_lease_read_needs_bounded_clock_drift() {
    // Same clock rate (within the bound): the old lease is over; the read waits for a round that
    // never completes, or (once the old leader stepped down) is redirected to the new leader.
    let fine = lease_read_after_partition(crate::sim::options::TICK_US);
    assert!(matches!(fine, Ok(None) | Ok(Some(KvResult::Value(2)))), "{fine:?}");
    // Followers' clocks ten times faster: a stale read.
    let broken = lease_read_after_partition(crate::sim::options::TICK_US / 10);
    assert!(matches!(broken, Err(Violation::Linearizability { key: 0, .. })), "{broken:?}");
}

/// The leader's process stalls while it holds a lease (and its network is cut, so that nothing
/// from the new term reaches it first); the others elect a leader and take a write; the old
/// leader wakes up and is asked to read. A driver that delivers the ticks missed during the
/// stall lets the lease expire first; one that does not serves a stale read.
fn lease_read_after_stall(tick_catch_up: bool) -> Result<Option<KvResult>, Violation> {
    let mut world = scripted(16, 3, |o| {
        o.lease_read = true;
        o.drift_ppm = 0;
        o.delay_us = (200, 1_000);
        o.tick_catch_up = tick_catch_up;
        // The read waits out the stall rather than timing out.
        o.client_timeout_us = 5_000_000;
    });
    let old = settled_leader(&mut world)?;
    let first = world.invoke(old, KvOp::Put { key: 0, value: 1 });
    world.run_for(100_000)?;
    assert_eq!(world.result(first), Some(KvResult::Done));
    world.pause(old, 2_000_000);
    world.isolate(old);
    let new = other_leader(&mut world, old)?.expect("scenario: the others elect a leader while the old one stalls");
    invoke_and_wait(&mut world, new, KvOp::Put { key: 0, value: 2 })?;
    let read = world.invoke(old, KvOp::Get { key: 0 });
    world.run_for(2_500_000)?;
    let answer = world.result(read);
    world.finish().map(|_| answer)
}

#[test]
fn regression_lease_read_after_a_stall_needs_tick_catch_up() {
    let fine = lease_read_after_stall(true);
    assert!(matches!(fine, Ok(None) | Ok(Some(KvResult::Value(2)))), "{fine:?}");
    let broken = lease_read_after_stall(false);
    assert!(matches!(broken, Err(Violation::Linearizability { key: 0, .. })), "{broken:?}");
}
