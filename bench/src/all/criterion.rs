//! The criterion micro-benchmarks (`bench/benches/micro.rs`: checksums, routing, ring round
//! trips, HTTP parsing, SigV4; `raftlog/benches/core.rs`: the Raft core), run with cargo in this
//! run, and read back from criterion's `target/criterion/**/new/{benchmark,estimates}.json`:
//! only the files this run wrote count.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use serde_json::{Value, json};

use super::exec::write;
use super::{Run, Section};

/// The benches, as `cargo bench` arguments.
const BENCHES: [[&str; 4]; 2] = [["-p", "bench", "--bench", "micro"], ["-p", "raftlog", "--bench", "core"]];
/// Shorter than criterion's defaults (3 s, 5 s): the figures are for the report, and the whole
/// run stays within minutes.
const CRITERION_ARGS: [&str; 4] = ["--warm-up-time", "1", "--measurement-time", "3"];

pub fn section(run: &Run, title: &'static str) -> Result<Section, String> {
    if run.quick {
        return Ok(Section::skipped(title, "criterion runs take minutes; run without --quick"));
    }
    let Some(root) = run.target_dir.parent().filter(|r| r.join("Cargo.toml").is_file()) else {
        return Ok(Section::skipped(title, &format!("no workspace beside {} to run `cargo bench` in", run.target_dir.display())));
    };
    let started = SystemTime::now();
    let mut md = String::new();
    for bench in BENCHES {
        let shown = format!("cargo bench {} -- {}", bench.join(" "), CRITERION_ARGS.join(" "));
        eprintln!("corestore-bench all: {shown}");
        let status = Command::new("cargo")
            .arg("bench")
            .args(bench)
            .arg("--")
            .args(CRITERION_ARGS)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| format!("running `{shown}`: {e}"))?;
        if !status.success() {
            return Err(format!("`{shown}` exited with {status}"));
        }
        let _ = writeln!(md, "- `{shown}`");
    }
    let mut found = Vec::new();
    collect(&run.target_dir.join("criterion"), started, &mut found);
    found.sort_by(|a, b| a.0.cmp(&b.0));
    if found.is_empty() {
        return Err(format!("cargo bench wrote no estimates under {}", run.target_dir.join("criterion").display()));
    }
    let _ = writeln!(md, "\n| benchmark | mean | 95% interval | throughput |\n|---|---:|---:|---:|");
    let mut record = Vec::new();
    for (id, estimates, throughput) in &found {
        let mean = &estimates["mean"];
        let ns = mean["point_estimate"].as_f64().unwrap_or(f64::NAN);
        let low = mean["confidence_interval"]["lower_bound"].as_f64().unwrap_or(f64::NAN);
        let high = mean["confidence_interval"]["upper_bound"].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(md, "| {id} | {} | {} – {} | {} |", time(ns), time(low), time(high), rate(throughput, ns));
        record.push(json!({"id": id, "mean_ns": ns, "mean_ns_lower": low, "mean_ns_upper": high, "throughput": throughput}));
    }
    let text = serde_json::to_string_pretty(&record).map_err(|e| e.to_string())?;
    write(&run.out_file("criterion.json"), &text)?;
    Ok(Section::new(title, md))
}

/// Every `new/` directory under `dir` written since `since`: (benchmark id, estimates, throughput).
fn collect(dir: &Path, since: SystemTime, found: &mut Vec<(String, Value, Value)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path: PathBuf = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let estimates = path.join("estimates.json");
            let fresh = std::fs::metadata(&estimates).and_then(|m| m.modified()).is_ok_and(|t| t >= since);
            let read = |p: PathBuf| std::fs::read_to_string(p).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok());
            if let (true, Some(e), Some(b)) = (fresh, read(estimates.clone()), read(path.join("benchmark.json"))) {
                let id = b["full_id"].as_str().unwrap_or("?").to_string();
                found.push((id, e, b["throughput"].clone()));
            }
        } else {
            collect(&path, since, found);
        }
    }
}

fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Criterion's throughput (`{"Bytes": n}` or `{"Elements": n}` per iteration) per second.
fn rate(throughput: &Value, ns: f64) -> String {
    let per_s = |n: f64| n / (ns / 1e9);
    if let Some(b) = throughput["Bytes"].as_f64().or_else(|| throughput["BytesDecimal"].as_f64()) {
        format!("{:.2} GiB/s", per_s(b) / (1u64 << 30) as f64)
    } else if let Some(e) = throughput["Elements"].as_f64() {
        format!("{:.0} elements/s", per_s(e))
    } else {
        "-".into()
    }
}

#[cfg(test)]
mod tests {
    use super::{rate, time};
    use serde_json::json;

    #[test]
    fn formats_times_and_rates() {
        for (ns, text) in [(3.42, "3.4 ns"), (1_440.0, "1.44 µs"), (2_500_000.0, "2.50 ms")] {
            assert_eq!(time(ns), text);
        }
        for (throughput, ns, text) in [
            (json!({"Bytes": 1u64 << 30}), 1e9, "1.00 GiB/s"),
            (json!({"Elements": 1}), 1_000.0, "1000000 elements/s"),
            (json!(null), 1.0, "-"),
        ] {
            assert_eq!(rate(&throughput, ns), text, "{throughput}");
        }
    }
}
