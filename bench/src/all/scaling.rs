//! Scaling: `corestore serve` on one core against all cores (4 KiB GET through `bench s3`), and
//! the store as its object count grows from 10^4 to 10^7 (fill throughput, start-up, resident
//! memory per object, through `bench store --only index`).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::exec::{run_capture, write};
use super::{Run, Section, plot};
use crate::machine;
use crate::store_bench;

const OBJECT_COUNTS: [u64; 4] = [10_000, 100_000, 1_000_000, 10_000_000];
const OBJECT_COUNTS_QUICK: [u64; 2] = [10_000, 100_000];
/// Room a count's log must leave free on the filesystem: the machine's other users (builds,
/// other benchmarks) share it, and a disk filled by a benchmark fails them.
const DISK_SPARE_BYTES: u64 = 10 << 30;

fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")
}

/// `bench s3 --only 4k-get --no-nginx` with the server on `server_cpus`: its JSON line.
fn s3_get(run: &Run, server_cpus: &[usize], client_cpus: &[usize]) -> Result<Value, String> {
    let dir = run.work_dir("scaling-cores")?;
    let mut args: Vec<String> = ["s3", "--only", "4k-get", "--no-nginx", "--dir"].iter().map(|s| s.to_string()).collect();
    args.push(dir.display().to_string());
    args.extend(["--server-cpus".into(), cpu_list(server_cpus), "--client-cpus".into(), cpu_list(client_cpus)]);
    if run.quick {
        args.push("--quick".into());
    }
    let captured = run_capture(&run.bench_exe, &args);
    let _ = std::fs::remove_dir_all(&dir);
    let captured = captured?;
    captured
        .lines
        .into_iter()
        .find(|l| l["workload"] == "4k-get")
        .ok_or_else(|| format!("`corestore-bench {}` printed no 4k-get line", args.join(" ")))
}

pub fn cores(run: &Run, title: &'static str) -> Result<Section, String> {
    let allowed = engine::runtime::allowed_cpus();
    if allowed.len() < 2 {
        return Ok(Section::skipped(title, &format!("this process may run on {} cpu: nothing to scale to", allowed.len())));
    }
    let client = allowed[..allowed.len() / 2].to_vec();
    let one = vec![allowed[allowed.len() - 1]];
    let single = s3_get(run, &one, &client)?;
    let all = s3_get(run, &allowed, &client)?;
    let rps = |v: &Value| v["corestore_requests_per_s"].as_f64().unwrap_or(0.0);
    let p99 = |v: &Value| v["corestore_latency_ns_p99"].as_f64().unwrap_or(0.0) / 1e3;
    let ratio = rps(&all) / rps(&single).max(1.0);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "`corestore-bench s3 --only 4k-get --no-nginx` twice: `corestore serve` on 1 core (cpu {one:?}), then on all {} cores ({allowed:?}); \
         the load generator on cpus {client:?} both times.",
        allowed.len()
    );
    if client.iter().any(|c| allowed.contains(c)) {
        let _ = writeln!(
            md,
            "With {} cpus in all, the all-cores server shares cpus {client:?} with the generator: the ratio is a lower bound on what \
             a machine with a separate client would show.",
            allowed.len()
        );
    }
    let _ = writeln!(md, "\n| server cores | 4 KiB GET/s | p99 µs | ratio to 1 core |\n|---:|---:|---:|---:|");
    let _ = writeln!(md, "| 1 | {:.0} | {:.0} | 1.00 |", rps(&single), p99(&single));
    let _ = writeln!(md, "| {} | {:.0} | {:.0} | {ratio:.2} |", allowed.len(), rps(&all), p99(&all));
    let text = serde_json::to_string_pretty(&json!({"one_core": single, "all_cores": all, "ratio": ratio})).map_err(|e| e.to_string())?;
    write(&run.out_file("scaling-cores.json"), &text)?;
    Ok(Section::new(title, md))
}

/// One object count's figures, from `bench store --only index`.
struct Count {
    objects: u64,
    index: Value,
    after_crash: Value,
    after_close: Value,
}

pub fn objects(run: &Run, title: &'static str) -> Result<Section, String> {
    let counts: &[u64] = if run.quick { &OBJECT_COUNTS_QUICK } else { &OBJECT_COUNTS };
    let mut measured = Vec::new();
    let mut skipped = Vec::new();
    for &n in counts {
        let needed = store_bench::index_log_bytes(n, 1) + DISK_SPARE_BYTES;
        let free = machine::free_bytes(&run.work)?;
        if free < needed {
            skipped.push(format!(
                "{n} objects: skipped: needs {} GiB, have {} GiB free in {}",
                needed.div_ceil(1 << 30),
                free >> 30,
                run.work.display()
            ));
            continue;
        }
        measured.push(store_count(run, n)?);
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "`corestore-bench store --only index --index-objects N` for each N, one core: N empty objects (16-byte keys, each a 128-byte frame, packed) \
         put durably in full batches, the process's resident memory before and after, then one Raft group's log beside them \
         (2048 entries of 1 KiB, a hard state, the first half compacted), then `Store::open` of that log after a crash \
         (whole log replayed) and after a clean close (objects and Raft state from the index checkpoint).\n"
    );
    for s in &skipped {
        let _ = writeln!(md, "- {s}");
    }
    let _ = writeln!(
        md,
        "\n| objects | fill, objects/s | resident bytes/object | beyond the key | start-up after crash, objects/s (s) | after close, objects/s (s) |\n|---:|---:|---:|---:|---:|---:|"
    );
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    for c in &measured {
        let secs = |v: &Value| f(v, "open_ns") / 1e9;
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.1} | {:.1} | {:.0} ({:.2}) | {:.0} ({:.2}) |",
            c.objects,
            f(&c.index, "fill_objects_per_s"),
            f(&c.index, "resident_bytes_per_object"),
            f(&c.index, "store"),
            f(&c.after_crash, "store"),
            secs(&c.after_crash),
            f(&c.after_close, "store"),
            secs(&c.after_close)
        );
    }
    let record: Vec<Value> = measured
        .iter()
        .map(
            |c| json!({"objects": c.objects, "index": c.index, "startup_after_crash": c.after_crash, "startup_after_close": c.after_close}),
        )
        .collect();
    let text = serde_json::to_string_pretty(&json!({"counts": record, "skipped": skipped})).map_err(|e| e.to_string())?;
    write(&run.out_file("scaling-objects.json"), &text)?;
    if !measured.is_empty() {
        let series = |k: &'static str, pick: fn(&Count) -> &Value, scale: f64| -> Vec<(f64, f64)> {
            measured.iter().map(|c| (c.objects as f64, f(pick(c), k) / scale)).collect()
        };
        plot::log_x_lines(
            &run.out_file("scaling-objects-memory.svg"),
            "store: resident memory per object as the count grows",
            "objects (log)",
            "bytes per object",
            &[
                ("resident".into(), series("resident_bytes_per_object", |c| &c.index, 1.0)),
                ("beyond the 16-byte key".into(), series("store", |c| &c.index, 1.0)),
            ],
        )?;
        plot::log_x_lines(
            &run.out_file("scaling-objects-throughput.svg"),
            "store: fill and start-up throughput as the count grows",
            "objects (log)",
            "thousand objects/s",
            &[
                ("fill (durable puts)".into(), series("fill_objects_per_s", |c| &c.index, 1e3)),
                ("start-up after crash".into(), series("store", |c| &c.after_crash, 1e3)),
                ("start-up after close".into(), series("store", |c| &c.after_close, 1e3)),
            ],
        )?;
        let _ = writeln!(md, "\n![memory per object](scaling-objects-memory.svg)\n\n![throughput](scaling-objects-throughput.svg)");
    }
    Ok(Section::new(title, md))
}

fn store_count(run: &Run, objects: u64) -> Result<Count, String> {
    let dir = run.work_dir("scaling-objects")?;
    let mut args: Vec<String> = ["store", "--only", "index", "--rounds", "1", "--index-objects"].iter().map(|s| s.to_string()).collect();
    args.push(objects.to_string());
    args.push("--dir".into());
    args.push(dir.display().to_string());
    let captured = run_capture(&run.bench_exe, &args);
    let _ = std::fs::remove_dir_all(&dir);
    let lines = captured?.lines;
    let find = |name: &str| {
        lines
            .iter()
            .find(|l| l["workload"] == name)
            .cloned()
            .ok_or_else(|| format!("`corestore-bench {}` printed no {name} line", args.join(" ")))
    };
    Ok(Count {
        objects,
        index: find("index-memory")?,
        after_crash: find("startup-after-crash")?,
        after_close: find("startup-after-close")?,
    })
}
