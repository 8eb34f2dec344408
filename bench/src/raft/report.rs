//! What `corestore-bench raft` prints: a JSON line per run and for the elections, a table, and
//! a summary against the goals.

use std::time::Duration;

use serde_json::json;

use super::election::{Election, Stop};
use super::load::{Pace, System};
use super::{OPEN_NAME, Row};
use crate::workload::Measured;

/// Goals (issue 6).
const ETCD_RATIO_GOAL: f64 = 10.0;
const OPEN_LOOP_P99_GOAL: Duration = Duration::from_millis(2);
const ELECTION_GOAL: Duration = Duration::from_secs(1);

fn pace_json(pace: &Pace) -> serde_json::Value {
    match pace {
        Pace::Closed { concurrency } => json!({ "loop": "closed", "concurrency": concurrency }),
        Pace::Open { rate_per_s, connections } => json!({ "loop": "open", "rate_per_s": rate_per_s, "connections": connections }),
    }
}

fn peer<'a>(r: &Row, rows: &'a [Row]) -> Option<&'a Row> {
    rows.iter().find(|o| o.system == System::Etcd && o.name == r.name)
}

pub fn print_json(r: &Row, fio: &Measured, rows: &[Row]) {
    let etcd = (r.system == System::Corestore).then(|| peer(r, rows)).flatten();
    let line = json!({
        "workload": format!("raft-{}", r.name),
        "system": r.system.name(),
        "metric": "entries_per_s",
        "pace": pace_json(&r.pace),
        "entries_per_s": r.run.per_s(),
        "committed": r.run.committed,
        "seconds": r.run.elapsed.as_secs_f64(),
        "latency_ns_p50": r.p(0.50),
        "latency_ns_p99": r.p(0.99),
        "latency_ns_max": r.run.latency_ns.max(),
        "rounds_entries_per_s": r.rounds_per_s,
        "entries_per_fsync": r.entries_per_sync,
        "retried_proposals": r.run.retried,
        "term_changes": r.term_changes,
        "leader_cpu_busy": r.leader_cpu_busy,
        "follower_cpu_busy_max": r.follower_cpu_busy,
        "generator_cpu_busy": r.run.generator_cpu_ns as f64 / r.run.elapsed.as_nanos().max(1) as f64,
        "generator_cpu": r.generator_cpu,
        "fio_fdatasync_per_s": fio.ops_per_s,
        "ratio_vs_fio": r.run.per_s() / fio.ops_per_s,
        "etcd_entries_per_s": etcd.map(|e| e.run.per_s()),
        "ratio_vs_etcd": etcd.map(|e| r.run.per_s() / e.run.per_s()),
        "etcd_latency_ns_p99": etcd.map(|e| e.p(0.99)),
        "leader_write": r.leader_write.map(write_json),
        "follower_write_slower": r.follower_write.map(write_json),
    });
    println!("{line}");
}

fn write_json(w: super::WriteLatency) -> serde_json::Value {
    json!({ "writes": w.writes, "us_p50": w.us_p50, "us_p99": w.us_p99 })
}

/// `p50 / p99` of a replica's durable writes (bucket upper bounds), or `-`.
fn write_cell(w: Option<super::WriteLatency>) -> String {
    w.map_or("-".into(), |w| format!("{} / {}", w.us_p50, w.us_p99))
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    assert!(!sorted.is_empty());
    let at = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

struct Spread {
    min: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    within_goal: usize,
}

fn spread(mut d: Vec<Duration>) -> Option<Spread> {
    if d.is_empty() {
        return None;
    }
    d.sort();
    let within_goal = d.iter().filter(|&&x| x <= ELECTION_GOAL).count();
    Some(Spread { min: d[0], p50: quantile(&d, 0.5), p99: quantile(&d, 0.99), max: d[d.len() - 1], within_goal })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn print_elections_json(trials: &[Election], how: Stop) {
    let leader = spread(trials.iter().map(|e| e.leader).collect());
    let commit = spread(trials.iter().map(|e| e.commit).collect());
    let show = |s: &Option<Spread>| {
        s.as_ref().map(
            |s| json!({"min_ms": ms(s.min), "p50_ms": ms(s.p50), "p99_ms": ms(s.p99), "max_ms": ms(s.max), "within_1s": s.within_goal}),
        )
    };
    let (workload, metric) = match how {
        Stop::Kill => ("raft-election", "ms_from_leader_kill"),
        Stop::Term => ("raft-handover", "ms_from_leader_sigterm"),
    };
    let line = json!({
        "workload": workload,
        "system": "corestore",
        "metric": metric,
        "trials": trials.len(),
        "leader": show(&leader),
        "commit": show(&commit),
        "commit_ms_each": trials.iter().map(|e| ms(e.commit)).collect::<Vec<_>>(),
    });
    println!("{line}");
}

pub fn print_table(rows: &[Row], fio: &Measured) {
    println!();
    println!(
        "| workload | corestore entries/s | p50 µs | p99 µs | entries/fsync | vs fio fdatasync/s | leader cpu | write p50 / p99 µs, leader | slower follower | etcd puts/s | etcd p50 µs | etcd p99 µs | corestore/etcd |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows.iter().filter(|r| r.system == System::Corestore) {
        let (e_rate, e50, e99, ratio) = match peer(r, rows) {
            Some(e) => (
                format!("{:.0}", e.run.per_s()),
                format!("{:.0}", e.p(0.5) as f64 / 1e3),
                format!("{:.0}", e.p(0.99) as f64 / 1e3),
                format!("{:.1}", r.run.per_s() / e.run.per_s()),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let name = match r.pace {
            Pace::Open { rate_per_s, .. } => format!("{} ({rate_per_s:.0}/s)", r.name),
            Pace::Closed { .. } => r.name.clone(),
        };
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {} | {:.2} | {} | {} | {} | {e_rate} | {e50} | {e99} | {ratio} |",
            r.run.per_s(),
            r.p(0.5) as f64 / 1e3,
            r.p(0.99) as f64 / 1e3,
            r.entries_per_sync.map_or("-".into(), |v| format!("{v:.1}")),
            r.run.per_s() / fio.ops_per_s,
            r.leader_cpu_busy.map_or("-".into(), |v| format!("{v:.2}")),
            write_cell(r.leader_write),
            write_cell(r.follower_write),
        );
    }
}

pub fn print_summary(rows: &[Row], trials: &[Election], stops: &[Election]) {
    println!();
    let ours = |name: &str| rows.iter().find(|r| r.system == System::Corestore && r.name == name);
    let peak = rows.iter().filter(|r| r.system == System::Corestore && matches!(r.pace, Pace::Closed { .. }));
    let best = peak.max_by(|a, b| a.run.per_s().total_cmp(&b.run.per_s()));
    let etcd_peak = rows
        .iter()
        .filter(|r| r.system == System::Etcd && matches!(r.pace, Pace::Closed { .. }))
        .map(|r| r.run.per_s())
        .fold(0.0, f64::max);
    if let Some(best) = best {
        if etcd_peak > 0.0 {
            let ratio = best.run.per_s() / etcd_peak;
            let verdict = if ratio >= ETCD_RATIO_GOAL { "meets" } else { "misses" };
            println!(
                "peak committed entries/s: corestore {:.0} ({}) vs etcd {etcd_peak:.0}: {ratio:.1}x ({verdict} the {ETCD_RATIO_GOAL}x goal)",
                best.run.per_s(),
                best.name
            );
        } else {
            println!("peak committed entries/s: corestore {:.0} ({}); etcd left out", best.run.per_s(), best.name);
        }
    }
    if let Some(open) = ours(OPEN_NAME) {
        let p99 = Duration::from_nanos(open.p(0.99));
        let verdict = if p99 <= OPEN_LOOP_P99_GOAL { "meets" } else { "misses" };
        println!(
            "p99 commit at half the peak rate (open loop): {:.0} µs ({verdict} the {} ms goal)",
            p99.as_secs_f64() * 1e6,
            OPEN_LOOP_P99_GOAL.as_millis()
        );
    }
    if let Some(s) = spread(trials.iter().map(|e| e.commit).collect()) {
        println!(
            "election after a leader kill, until a new proposal commits: min {:.0} ms, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {} of {} within {} s",
            ms(s.min),
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            s.within_goal,
            trials.len(),
            ELECTION_GOAL.as_secs()
        );
    }
    if let Some(s) = spread(trials.iter().map(|e| e.leader).collect()) {
        println!(
            "election after a leader kill, until a survivor leads: min {:.0} ms, p50 {:.0} ms, max {:.0} ms",
            ms(s.min),
            ms(s.p50),
            ms(s.max)
        );
    }
    if let Some(s) = spread(stops.iter().map(|e| e.commit).collect()) {
        println!(
            "hand-over on a graceful stop (SIGTERM to the leader), until a new proposal commits: min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; each of the {} stopped leaders exited after handing over",
            ms(s.min),
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            stops.len()
        );
    }
}
