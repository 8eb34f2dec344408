//! `corestore-bench raft`: three replicas of Raft groups as three processes on loopback, on
//! the engine's runtime (raftlog's `Driver`, `DurableStorage` on the store, `TcpTransport`),
//! against the same machine's write+fdatasync rate and a 3-member etcd cluster under the same
//! load, in one run:
//! - committed 1 KiB entries/s and p50/p99 commit latency with 1, 64 and 1024 closed-loop
//!   proposers, and the entries each leader fdatasync made durable (the batching figure);
//! - p99 in an open-loop run at half the peak rate;
//! - leader election after a SIGKILL of the leader: time until the survivors name a leader and
//!   until they commit a new proposal, over `--elections` trials; and the same after a SIGTERM,
//!   when the leader hands over to the most caught-up replica (a graceful stop).
//!
//! By default each replica runs one group on one core. `--node-cores C --groups G` runs G groups
//! spread over C cores of each replica (each core its own store, driver and ports, as the
//! cluster will run placement groups), the proposers spread evenly over the groups, each sent
//! to its group's leader on the owning core; the rates are then the node's totals.
//!
//! Processes: `raft-node` (node.rs) per replica, `etcd` per member (cluster.rs); the proposers
//! run on one core of the engine's runtime in this process (load.rs); elections in election.rs,
//! output in report.rs, the replicas' client protocol in proto.rs. Clock: every figure is this
//! process's monotonic clock (client-side latencies include loopback TCP both ways).

pub mod cluster;
mod election;
pub mod load;
pub mod node;
pub mod proto;
mod report;

use std::path::{Path, PathBuf};
use std::time::Duration;

use self::cluster::{Corestore, Etcd, GROUP, REPLICAS, ReplicaSetup, START_TIMEOUT};
use self::election::{Stop, elections};
use self::load::{LoadRun, Pace, Route, System, Target};
use self::proto::NodeStatus;
use self::report::{print_elections_json, print_json, print_summary, print_table};
use crate::fio::{self, FileIo, FileJob, FileRun};
use crate::machine;
use crate::workload::Measured;

/// The open-loop run's rate, as a fraction of the peak closed-loop rate.
const OPEN_LOOP_FRACTION: f64 = 0.5;
/// The fdatasync reference's file (fallocated by fio; QD1 durable writes fill far less).
const FDATASYNC_FILE_BYTES: u64 = 1 << 30;
const FIO_BLOCK_BYTES: usize = 4096;
/// Free space the run needs: every entry takes a 4 KiB frame on each of three replicas.
const DISK_BYTES_MIN: u64 = 16 << 30;
const DISK_BYTES_MIN_QUICK: u64 = 2 << 30;

#[derive(clap::Args)]
pub struct RaftArgs {
    /// Working directory: the replicas' stores, etcd's data and fio's file (removed and
    /// recreated at start). Must be on a filesystem with O_DIRECT (ext4, xfs), not tmpfs.
    #[arg(long, default_value = "target/corestore-bench-raft")]
    dir: PathBuf,
    /// Seconds per load run [default: 5; 1 with --quick].
    #[arg(long)]
    seconds: Option<f64>,
    /// Closed-loop proposer counts.
    #[arg(long, value_delimiter = ',', default_value = "1,64,1024")]
    concurrency: Vec<usize>,
    /// Rounds: fio, corestore and etcd alternate this many times per workload and each row is
    /// its median round [default: 3; 1 with --quick].
    #[arg(long)]
    rounds: Option<usize>,
    /// Leader kills [default: 10; 3 with --quick].
    #[arg(long)]
    elections: Option<usize>,
    /// Raft tick of the replicas (election timeout 10 to 20 ticks, heartbeat 2).
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
    /// Batch writes each replica's store keeps in flight (1 or 2; `Store::set_writes_in_flight`).
    #[arg(long, default_value_t = engine::store::WRITES_IN_FLIGHT_MAX)]
    writes_in_flight: usize,
    /// Cores each replica runs (each with its own store, driver and ports).
    #[arg(long, default_value_t = 1)]
    node_cores: usize,
    /// Raft groups, spread round-robin over each replica's cores (at least one per core).
    #[arg(long, default_value_t = 1)]
    groups: u64,
    /// Each group compacts its log into a snapshot every this many applied entries (0: never).
    #[arg(long, default_value_t = node::SNAPSHOT_ENTRIES_DEFAULT)]
    snapshot_entries: u64,
    /// Short run for CI smoke use.
    #[arg(long)]
    quick: bool,
    /// Leave etcd out (printed as left out; without this flag a missing etcd is an error).
    #[arg(long)]
    no_etcd: bool,
}

struct Plan {
    dir: PathBuf,
    duration: Duration,
    rounds: usize,
    concurrency: Vec<usize>,
    elections: usize,
    /// How the replicas run: replica i's cores on `replicas.cpus[i]`.
    replicas: ReplicaSetup,
    /// The load generator's cpu (corestore runs may move it: `load_cpu_for`).
    load_cpu: usize,
    /// The cpus this process may use.
    cpus: Vec<usize>,
}

/// One load run of one system.
struct Row {
    system: System,
    name: String,
    pace: Pace,
    run: LoadRun,
    /// Committed entries per leader fdatasync (corestore only: the node counts its writes).
    entries_per_sync: Option<f64>,
    /// CPU seconds per second of the leader's process and of the busiest follower's (corestore
    /// only): near 1.0, a replica's core is what limits the run.
    leader_cpu_busy: Option<f64>,
    follower_cpu_busy: Option<f64>,
    /// Terms the group went through during the run (corestore: elections under load; 0 for
    /// etcd, which forwards to its leader and is not observed here).
    term_changes: u64,
    /// Entries/s of every round of this workload (this row is the median one).
    rounds_per_s: Vec<f64>,
    /// The cpu the load generator ran on.
    generator_cpu: usize,
    /// The store's durable batch writes during the run (corestore only), from submission to
    /// completion: the leader's, and the slower follower's. On one shared disk the replicas'
    /// flushes queue behind each other; this says how much of the commit latency is the disk.
    leader_write: Option<WriteLatency>,
    follower_write: Option<WriteLatency>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteLatency {
    writes: u64,
    us_p50: u64,
    us_p99: u64,
}

impl WriteLatency {
    fn of(run: &engine::latency::LatencyBuckets) -> Option<WriteLatency> {
        Some(WriteLatency { writes: run.count(), us_p50: run.quantile_us(0.5)?, us_p99: run.quantile_us(0.99)? })
    }
}

impl Row {
    fn p(&self, q: f64) -> u64 {
        self.run.latency_ns.value_at_quantile(q)
    }
}

pub fn bench_raft(args: RaftArgs) -> Result<(), String> {
    let fio_version = fio::version()?;
    let etcd_version = if args.no_etcd { None } else { Some(cluster::etcd_version()?) };
    let plan = plan(&args)?;
    prepare_dir(&plan.dir, if args.quick { DISK_BYTES_MIN_QUICK } else { DISK_BYTES_MIN })?;
    let exe = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
    println!(
        "# raft: 3 replicas on loopback (raft-node processes, {} core(s) each on cpus {:?}, {} Raft group(s)), load generator on cpu {} (beside corestore: on a cpu with no leader's core if one has none), {} s per run, median of {} interleaved rounds, 1 KiB entries, tick {} ms, {} batch writes in flight per store",
        plan.replicas.cores(),
        plan.replicas.cpus,
        plan.replicas.groups,
        plan.load_cpu,
        plan.duration.as_secs_f64(),
        plan.rounds,
        plan.replicas.tick_ms,
        plan.replicas.writes_in_flight
    );
    println!("# machine: {}", machine::describe(&plan.dir.join("x")));
    println!("# reference: {fio_version} write {} KiB psync O_DIRECT fdatasync=1 (QD1) in {}", FIO_BLOCK_BYTES >> 10, plan.dir.display());
    match &etcd_version {
        Some(v) => println!(
            "# etcd: {v}, 3 members on loopback, same proposers through the v3 JSON gateway (POST /v3/kv/put, HTTP/1.1 keep-alive) to the leader"
        ),
        None => println!("# etcd: left out (--no-etcd)"),
    }
    let (rows, fio, fio_rounds) = load_runs(&plan, &exe, etcd_version.is_some())?;
    // fio's latency percentiles are of the write alone (it times the fdatasync apart): the rate
    // is the figure to compare.
    println!("# fio write+fdatasync: {:.0}/s (median of {:?})", fio.ops_per_s, fio_rounds.iter().map(|r| r.round()).collect::<Vec<_>>());
    remove_dir(&plan.dir.join("corestore"))?;
    remove_dir(&plan.dir.join("etcd"))?;
    // A fresh group for the elections: a restarted replica applies its log again from its last
    // snapshot (up to `--snapshot-entries` entries read back from disk), work that would overlap
    // the next trial's election.
    let (kills, stops) = {
        let mut cluster = Corestore::start(&exe, &plan.dir.join("corestore-elections"), &plan.replicas)?;
        (elections(&mut cluster, &plan, Stop::Kill)?, elections(&mut cluster, &plan, Stop::Term)?)
    };
    remove_dir(&plan.dir.join("corestore-elections"))?;
    for r in &rows {
        print_json(r, &fio, &rows);
    }
    print_elections_json(&kills, Stop::Kill);
    print_elections_json(&stops, Stop::Term);
    print_table(&rows, &fio);
    print_summary(&rows, &kills, &stops);
    Ok(())
}

fn plan(args: &RaftArgs) -> Result<Plan, String> {
    let seconds = args.seconds.unwrap_or(if args.quick { 1.0 } else { 5.0 });
    let duration = Duration::try_from_secs_f64(seconds).map_err(|e| format!("--seconds {seconds}: {e}"))?;
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        return Err("--concurrency: give positive proposer counts, e.g. 1,64,1024".into());
    }
    let cores = args.node_cores;
    if cores == 0 || cores > node::NODE_CORES_MAX || args.groups < cores as u64 || args.groups > node::GROUPS_MAX {
        return Err(format!(
            "--node-cores {cores} --groups {}: 1 to {} cores, and 1 to {} groups, at least one per core",
            args.groups,
            node::NODE_CORES_MAX,
            node::GROUPS_MAX
        ));
    }
    let cpus = engine::runtime::allowed_cpus();
    // Replicas' cores round-robin over the cpus; the generator on the last one (on 2 cpus, one
    // core each: nodes on 0, 1, 0 and the generator on 1 — everything shares, which the report
    // says).
    let node_cpus = (0..REPLICAS).map(|i| (0..cores).map(|k| cpus[(i * cores + k) % cpus.len()]).collect()).collect();
    let load_cpu = cpus[cpus.len() - 1];
    Ok(Plan {
        dir: args.dir.clone(),
        duration,
        rounds: args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1),
        concurrency: args.concurrency.clone(),
        elections: args.elections.unwrap_or(if args.quick { 3 } else { 10 }),
        replicas: ReplicaSetup {
            cpus: node_cpus,
            groups: args.groups,
            tick_ms: args.tick_ms.max(1),
            writes_in_flight: args.writes_in_flight.clamp(1, engine::store::WRITES_IN_FLIGHT_MAX),
            snapshot_entries: args.snapshot_entries,
        },
        load_cpu,
        cpus,
    })
}

/// The cpu the generator runs on beside corestore's replicas: the planned one, unless a core
/// that leads a group is pinned there and another cpu has no leader's core; then the one of
/// those with the fewest replica cores. etcd's members are not pinned, so the kernel moves its
/// leader off the generator's busy cpu; ours are, and on 2 vCPUs the replica beside the
/// generator waited four times as long per wake-up as the others (kernel-notes), which every
/// commit pays when that replica leads. In a deployment the clients are on other machines.
fn load_cpu_for(plan: &Plan, leaders: &[usize]) -> usize {
    let cpus = &plan.replicas.cpus;
    let cores = plan.replicas.cores();
    let leader_cpus: Vec<usize> = leaders.iter().enumerate().map(|(k, &i)| cpus[i][proto::core_of(k as u64 + 1, cores)]).collect();
    if !leader_cpus.contains(&plan.load_cpu) {
        return plan.load_cpu;
    }
    let replica_cores = |cpu: usize| cpus.iter().flatten().filter(|&&c| c == cpu).count();
    plan.cpus.iter().copied().filter(|c| !leader_cpus.contains(c)).min_by_key(|&c| (replica_cores(c), c)).unwrap_or(plan.load_cpu)
}

fn remove_dir(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("removing {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

/// Recreates the working directory, refusing tmpfs and a filesystem without room.
fn prepare_dir(dir: &Path, bytes_min: u64) -> Result<(), String> {
    remove_dir(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let fs = machine::filesystem(&dir.join("x"));
    if fs.starts_with("tmpfs") || fs.starts_with("ramfs") {
        return Err(format!("{} is on {fs}: O_DIRECT there measures memory, not storage; pass --dir on ext4 or xfs", dir.display()));
    }
    let free = machine::free_bytes(dir)?;
    if free < bytes_min {
        return Err(format!("{} has {} MiB free; the run needs {} MiB (pass --dir elsewhere)", dir.display(), free >> 20, bytes_min >> 20));
    }
    Ok(())
}

fn fdatasync_reference(plan: &Plan) -> Result<Measured, String> {
    let dir = plan.dir.join("fio");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let jobs = [FileJob { file: dir.join("fdatasync.dat"), size_bytes: FDATASYNC_FILE_BYTES, cpu: plan.replicas.cpus[0][0] }];
    let run = FileRun {
        jobs: &jobs,
        rw: "write",
        block_bytes: FIO_BLOCK_BYTES,
        queue_depth: 1,
        duration: plan.duration,
        io: FileIo::PsyncFdatasync,
    };
    let measured = fio::run_files(&run);
    remove_dir(&dir)?;
    measured
}

fn closed_name(concurrency: usize) -> String {
    format!("put-c{concurrency}")
}

const OPEN_NAME: &str = "put-open-half-peak";

/// The load runs of both systems, interleaved: each round runs fio, then every closed-loop
/// workload on corestore and at once on etcd; then rounds of the open loop, each system at half
/// its own median peak. Each row is its workload's median round (a shared virtual disk drifts
/// over minutes: interleaving puts both systems and fio under the same drift). Both clusters
/// run throughout; the idle one only heartbeats.
fn load_runs(plan: &Plan, exe: &Path, with_etcd: bool) -> Result<(Vec<Row>, Measured, Vec<f64>), String> {
    let mut cluster = Corestore::start(exe, &plan.dir.join("corestore"), &plan.replicas)?;
    cluster.wait_leaders(START_TIMEOUT)?;
    let mut etcd = if with_etcd {
        let dir = plan.dir.join("etcd");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Some(Etcd::start(&dir)?)
    } else {
        None
    };
    let systems: Vec<System> = if with_etcd { vec![System::Corestore, System::Etcd] } else { vec![System::Corestore] };
    let paces: Vec<(String, Pace)> = plan.concurrency.iter().map(|&c| (closed_name(c), Pace::Closed { concurrency: c })).collect();
    // rounds[s][w]: the runs of system s on workload w.
    let mut rounds: Vec<Vec<Vec<Row>>> = systems.iter().map(|_| paces.iter().map(|_| Vec::new()).collect()).collect();
    let mut fios = Vec::new();
    for round in 0..plan.rounds {
        eprintln!("corestore-bench raft: round {} of {}", round + 1, plan.rounds);
        fios.push(fdatasync_reference(plan)?);
        for (w, (name, pace)) in paces.iter().enumerate() {
            for (k, &system) in systems.iter().enumerate() {
                let row = match system {
                    System::Corestore => corestore_run(&mut cluster, plan, name.clone(), *pace)?,
                    System::Etcd => etcd_run(etcd.as_mut().expect("etcd started"), plan, name.clone(), *pace)?,
                };
                rounds[k][w].push(row);
            }
        }
    }
    let closed: Vec<Vec<Row>> = rounds.into_iter().map(|per_workload| per_workload.into_iter().map(median_row).collect()).collect();
    let connections = plan.concurrency.iter().copied().max().unwrap_or(1);
    let peaks: Vec<f64> = closed.iter().map(|rows| rows.iter().map(|r| r.run.per_s()).fold(0.0, f64::max)).collect();
    let mut open: Vec<Vec<Row>> = systems.iter().map(|_| Vec::new()).collect();
    for _ in 0..plan.rounds {
        for (k, &system) in systems.iter().enumerate() {
            let pace = Pace::Open { rate_per_s: peaks[k] * OPEN_LOOP_FRACTION, connections };
            let row = match system {
                System::Corestore => corestore_run(&mut cluster, plan, OPEN_NAME.into(), pace)?,
                System::Etcd => etcd_run(etcd.as_mut().expect("etcd started"), plan, OPEN_NAME.into(), pace)?,
            };
            open[k].push(row);
        }
    }
    let mut rows = Vec::new();
    for (mut system_rows, open_runs) in closed.into_iter().zip(open) {
        system_rows.push(median_row(open_runs));
        rows.extend(system_rows);
    }
    let fio_rounds: Vec<f64> = fios.iter().map(|m| m.ops_per_s).collect();
    fios.sort_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
    let fio = fios.swap_remove(fios.len() / 2);
    Ok((rows, fio, fio_rounds))
}

/// The round whose entries/s is the median (the upper one of an even count), with every
/// round's rate, in round order.
fn median_row(mut runs: Vec<Row>) -> Row {
    assert!(!runs.is_empty());
    let rates: Vec<f64> = runs.iter().map(|r| r.run.per_s()).collect();
    runs.sort_by(|a, b| a.run.per_s().total_cmp(&b.run.per_s()));
    let mut row = runs.swap_remove(runs.len() / 2);
    row.rounds_per_s = rates;
    row
}

fn corestore_run(cluster: &mut Corestore, plan: &Plan, name: String, pace: Pace) -> Result<Row, String> {
    let groups = cluster.setup.groups;
    let leaders = cluster.wait_leaders(START_TIMEOUT)?;
    // before[g - 1][i]: replica i's status of group g.
    let statuses = |cluster: &Corestore| -> Result<Vec<Vec<NodeStatus>>, String> {
        (1..=groups).map(|g| (0..REPLICAS).map(|i| cluster.status_of(i, g)).collect()).collect()
    };
    let before = statuses(cluster)?;
    let cpu_before: Vec<Option<f64>> = (0..REPLICAS).map(|i| cluster.cpu_seconds(i)).collect();
    let routes = (1..=groups)
        .map(|g| Route { group: g, replicas: (0..REPLICAS).map(|i| cluster.client_addr(i, g)).collect(), first: leaders[g as usize - 1] })
        .collect();
    let generator_cpu = load_cpu_for(plan, &leaders);
    let run = load::run(&Target { system: System::Corestore, routes }, pace, plan.duration, generator_cpu)?;
    let busy: Vec<Option<f64>> =
        (0..REPLICAS).map(|i| Some((cluster.cpu_seconds(i)? - cpu_before[i]?) / run.elapsed.as_secs_f64().max(1e-9))).collect();
    cluster.check_alive()?;
    report_errors(&name, System::Corestore, &run).map_err(|e| format!("{e}; replicas now: {}", cluster.describe()))?;
    // A spontaneous election under load (a replica stalled past the election timeout) moves
    // a leader: the figures of the replica that leads at the end are the run's.
    let lasts = cluster.wait_leaders(START_TIMEOUT)?;
    let after = statuses(cluster)?;
    // The per-replica figures (write latencies, cpu) are of `GROUP`'s leader and followers.
    let (g0, last) = (GROUP as usize - 1, lasts[GROUP as usize - 1]);
    let writes = |i: usize| WriteLatency::of(&after[g0][i].store_write.since(&before[g0][i].store_write));
    let leader_write = writes(last);
    // The slower follower's p99 (a commit waits for the faster one, but both share the disk).
    let follower_write = (0..REPLICAS).filter(|&i| i != last).filter_map(writes).max_by_key(|w| w.us_p99);
    let mut term_changes = 0;
    let mut committed = 0;
    for g in 1..=groups {
        let (k, first, last) = (g as usize - 1, leaders[g as usize - 1], lasts[g as usize - 1]);
        let changed = after[k][last].term.saturating_sub(before[k][first].term);
        if changed > 0 {
            eprintln!(
                "corestore-bench raft: {name}: group {g}'s leader changed during the run (replica {} in term {} -> replica {} in term {}; {} proposals sent again in all)",
                first + 1,
                before[k][first].term,
                last + 1,
                after[k][last].term,
                run.retried
            );
        }
        term_changes += changed;
        committed += after[k][last].commit.saturating_sub(before[k][last].commit);
    }
    let syncs_of = |i: usize, g: usize| after[g][i].store_syncs.saturating_sub(before[g][i].store_syncs);
    let entries_per_sync = if groups == 1 {
        // The leader's entries per its own durable write.
        let syncs = syncs_of(last, 0);
        (syncs > 0).then(|| committed as f64 / syncs as f64)
    } else {
        // Every core leads some groups and follows others, so no core's writes are a leader's
        // alone: entries made durable (each on every replica) per durable write of every core
        // of every replica. Group g <= cores is on core g - 1: its status carries that core's
        // store figures.
        let syncs: u64 = (0..REPLICAS).flat_map(|i| (0..cluster.setup.cores()).map(move |c| (i, c))).map(|(i, c)| syncs_of(i, c)).sum();
        (syncs > 0).then(|| (committed * REPLICAS as u64) as f64 / syncs as f64)
    };
    let leader_cpu_busy = busy[last];
    let follower_cpu_busy = (0..REPLICAS).filter(|&i| i != last).filter_map(|i| busy[i]).reduce(f64::max);
    Ok(Row {
        system: System::Corestore,
        name,
        pace,
        run,
        entries_per_sync,
        leader_cpu_busy,
        follower_cpu_busy,
        term_changes,
        rounds_per_s: Vec::new(),
        generator_cpu,
        leader_write,
        follower_write,
    })
}

/// A run with failed proposals is not a measurement: the error names the first failure.
fn report_errors(name: &str, system: System, run: &LoadRun) -> Result<(), String> {
    if run.errors > 0 {
        return Err(format!(
            "{} {name}: {} proposals failed (first: {})",
            system.name(),
            run.errors,
            run.first_error.as_deref().unwrap_or("unknown")
        ));
    }
    Ok(())
}

fn etcd_run(etcd: &mut Etcd, plan: &Plan, name: String, pace: Pace) -> Result<Row, String> {
    let leader = etcd.wait_leader(START_TIMEOUT)?;
    let run = load::run(&Target::etcd(leader), pace, plan.duration, plan.load_cpu)?;
    report_errors(&name, System::Etcd, &run)?;
    Ok(Row {
        system: System::Etcd,
        name,
        pace,
        run,
        entries_per_sync: None,
        leader_cpu_busy: None,
        follower_cpu_busy: None,
        term_changes: 0,
        rounds_per_s: Vec::new(),
        generator_cpu: plan.load_cpu,
        leader_write: None,
        follower_write: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(replica_cpus: Vec<Vec<usize>>, groups: u64, load_cpu: usize, cpus: Vec<usize>) -> Plan {
        Plan {
            dir: PathBuf::new(),
            duration: Duration::from_secs(1),
            rounds: 1,
            concurrency: vec![1],
            elections: 0,
            replicas: ReplicaSetup { cpus: replica_cpus, groups, tick_ms: 10, writes_in_flight: 2, snapshot_entries: 0 },
            load_cpu,
            cpus,
        }
    }

    #[test]
    fn the_generator_leaves_the_cpu_of_a_leader_when_another_cpu_has_none() {
        // 2 cpus, one core per replica: replicas on 0, 1, 0 and the generator planned on 1.
        let two = plan(vec![vec![0], vec![1], vec![0]], 1, 1, vec![0, 1]);
        assert_eq!(load_cpu_for(&two, &[0]), 1, "replica 1 leads on cpu 0: the generator stays");
        assert_eq!(load_cpu_for(&two, &[2]), 1);
        assert_eq!(load_cpu_for(&two, &[1]), 0, "replica 2 leads on cpu 1: the generator moves");
        // Two cores each, groups 1 and 2 on cores 0 and 1: leaders on both cpus, nowhere to go.
        let cores = plan(vec![vec![0, 1], vec![0, 1], vec![0, 1]], 2, 1, vec![0, 1]);
        assert_eq!(load_cpu_for(&cores, &[0, 1]), 1);
        // Group 2 (core 1, cpu 1) led by replica 3, group 1 (core 0, cpu 0) by replica 1.
        assert_eq!(load_cpu_for(&cores, &[0, 2]), 1);
        // 4 cpus: the planned one holds no replica.
        let four = plan(vec![vec![0], vec![1], vec![2]], 1, 3, vec![0, 1, 2, 3]);
        assert_eq!(load_cpu_for(&four, &[1]), 3);
        // The leader's cpu is the planned one: the cpu with the fewest replica cores.
        let crowded = plan(vec![vec![0], vec![1], vec![0]], 1, 0, vec![0, 1, 2]);
        assert_eq!(load_cpu_for(&crowded, &[0]), 2);
    }
}
