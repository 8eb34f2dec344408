//! Leader changes: after a SIGKILL of the leader (an election, once the survivors' election
//! timeout passes) and after a SIGTERM (a graceful stop: the leader hands over to the most
//! caught-up replica, which campaigns at once): the time until a survivor leads and until the
//! survivors commit a new proposal, over several trials (the stopped replica restarts on its
//! files between trials).

use std::time::{Duration, Instant};

use super::Plan;
use super::cluster::{CONTROL_TIMEOUT, Corestore, GROUP, REPLICAS, START_TIMEOUT};
use super::proto::{Answer, Client};

/// An election trial fails if no proposal commits within this long after the kill.
const ELECTION_TIMEOUT_MAX: Duration = Duration::from_secs(10);
/// After a restart, the replicas settle this many election timeouts (20 ticks each at most)
/// before the next kill, so every trial starts from a steady leader with a full lease.
const SETTLE_ELECTION_TIMEOUTS: u32 = 3;

/// How the leader is taken away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGKILL: the survivors elect a leader after their election timeout.
    Kill,
    /// SIGTERM: the leader hands over (`Driver::hand_over`) and exits once another leads.
    Term,
}

/// How long a stopped leader may take to exit: its hand-over deadline (40 ticks) and closing
/// its store, with room to spare.
const STOPPED_EXIT_MAX: Duration = Duration::from_secs(10);

/// One leader stop: times from the signal.
#[derive(Clone, Copy, Debug)]
pub struct Election {
    /// Until a survivor said it leads.
    pub leader: Duration,
    /// Until a proposal to the survivors committed.
    pub commit: Duration,
}

pub fn elections(cluster: &mut Corestore, plan: &Plan, how: Stop) -> Result<Vec<Election>, String> {
    let settle = Duration::from_millis(plan.replicas.tick_ms * 20 * SETTLE_ELECTION_TIMEOUTS as u64);
    let mut trials = Vec::new();
    for trial in 0..plan.elections {
        // Every replica holds the leader's latest entry, known committed: a kill then tests the
        // election, not a follower catching up.
        let index = commit_one(cluster)?;
        let leader = cluster.wait_leader(START_TIMEOUT)?;
        for i in 0..REPLICAS {
            cluster.wait_committed(i, index, START_TIMEOUT)?;
        }
        let survivors: Vec<usize> = (0..REPLICAS).filter(|&i| i != leader).collect();
        let mut clients: Vec<Option<Client>> =
            survivors.iter().map(|&i| Client::connect(cluster.client_addr(i, GROUP), CONTROL_TIMEOUT).ok()).collect();
        let killed_at = Instant::now();
        match how {
            Stop::Kill => cluster.kill(leader),
            Stop::Term => cluster.signal_stop(leader)?,
        }
        let e = measure_election(cluster, &survivors, &mut clients, killed_at, trial)?;
        if how == Stop::Term {
            cluster.wait_stopped(leader, STOPPED_EXIT_MAX)?;
        }
        eprintln!(
            "{} {}: leader {} {}; a survivor led after {:?}, committed after {:?}",
            if how == Stop::Kill { "election" } else { "hand-over" },
            trial + 1,
            leader + 1,
            if how == Stop::Kill { "killed" } else { "stopped (SIGTERM)" },
            e.leader,
            e.commit
        );
        trials.push(e);
        cluster.spawn(leader)?;
        let index = commit_one(cluster)?;
        cluster.wait_committed(leader, index, START_TIMEOUT)?;
        std::thread::sleep(settle);
    }
    Ok(trials)
}

/// Commits one entry through the leader (again if leadership moves meanwhile); its index.
fn commit_one(cluster: &mut Corestore) -> Result<u64, String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let leader = cluster.wait_leader(START_TIMEOUT)?;
        match cluster.propose(leader, b"election bench: settle") {
            Ok(Answer::Committed { index }) => return Ok(index),
            other if Instant::now() > deadline => {
                return Err(format!(
                    "a proposal to the leader (replica {}) answered {other:?}; replicas: {}",
                    leader + 1,
                    cluster.describe()
                ));
            }
            other => eprintln!("election bench: a proposal to replica {} answered {other:?}; again", leader + 1),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls the survivors (status, then a proposal to whichever says it leads) until one commits.
fn measure_election(
    cluster: &mut Corestore,
    survivors: &[usize],
    clients: &mut [Option<Client>],
    killed_at: Instant,
    trial: usize,
) -> Result<Election, String> {
    let mut leader_after = None;
    let payload = format!("election trial {trial}");
    loop {
        let elapsed = killed_at.elapsed();
        if elapsed > ELECTION_TIMEOUT_MAX {
            return Err(format!("election {}: no proposal committed within {ELECTION_TIMEOUT_MAX:?} of the leader's stop", trial + 1));
        }
        cluster.check_alive_of(survivors)?;
        for (k, &i) in survivors.iter().enumerate() {
            if clients[k].is_none() {
                clients[k] = Client::connect(cluster.client_addr(i, GROUP), CONTROL_TIMEOUT).ok();
            }
            let Some(client) = clients[k].as_mut() else { continue };
            let status = match client.status(GROUP) {
                Ok(s) => s,
                Err(_) => {
                    clients[k] = None;
                    continue;
                }
            };
            if !status.is_leader {
                continue;
            }
            leader_after.get_or_insert_with(|| killed_at.elapsed());
            match client.propose(GROUP, payload.as_bytes()) {
                Ok(Answer::Committed { .. }) => {
                    let commit = killed_at.elapsed();
                    return Ok(Election { leader: leader_after.unwrap_or(commit), commit });
                }
                Ok(_) => {}
                Err(_) => clients[k] = None,
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
