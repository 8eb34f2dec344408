//! The record of a run (the JSON file) and the warp-like summary printed from it. The summary is
//! always printed from the JSON document, so `corestore loadgen analyze FILE` prints exactly what
//! the run printed.

use serde_json::{Value, json};

use super::op::Op;
use super::runner::PhaseResult;
use super::stats::OpStats;

/// Format version of the JSON file; `analyze` refuses others.
pub const FORMAT_VERSION: u64 = 1;
/// Percentiles stored per operation for the latency distribution (and the summary's columns).
const PERCENTILES: [f64; 12] = [1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0];

/// What the run was asked to do (the parts of the JSON file not measured).
pub struct RunInfo {
    pub mode: String,
    pub command_line: String,
    pub hosts: Vec<String>,
    pub bucket: String,
    pub object_bytes: u64,
    /// Objects prepared (parts, for multipart).
    pub objects: u64,
    pub concurrency: usize,
    pub cpus: Vec<usize>,
    /// How bodies were sent, or "anonymous".
    pub signing: String,
    pub duration_s: f64,
    pub autoterm: Option<(f64, f64)>,
    pub prefix: String,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

fn op_document(op: Op, s: &OpStats, elapsed_s: f64, seconds: usize) -> Value {
    let h = &s.latency_ns;
    let percentiles: Vec<Value> = PERCENTILES.iter().map(|&p| json!([p, us(h.value_at_quantile(p / 100.0))])).collect();
    let series = |f: fn(&super::stats::Second) -> u64| -> Vec<u64> { (0..seconds).map(|i| s.seconds.get(i).map_or(0, f)).collect() };
    json!({
        "op": op.name(),
        "ops": s.ops,
        "bytes": s.bytes,
        "objects": s.objects,
        "errors": s.errors,
        "ops_per_s": s.ops as f64 / elapsed_s,
        "bytes_per_s": s.bytes as f64 / elapsed_s,
        "objects_per_s": s.objects as f64 / elapsed_s,
        "latency_us": {
            "mean": h.mean() / 1e3,
            "min": us(h.min()),
            "p50": us(h.value_at_quantile(0.50)),
            "p90": us(h.value_at_quantile(0.90)),
            "p99": us(h.value_at_quantile(0.99)),
            "p99.9": us(h.value_at_quantile(0.999)),
            "max": us(h.max()),
        },
        "latency_percentiles_us": percentiles,
        "series_per_s": { "ops": series(|x| x.ops), "bytes": series(|x| x.bytes), "errors": series(|x| x.errors) },
    })
}

/// The whole run as one JSON document.
pub fn document(info: &RunInfo, result: &PhaseResult, prepared_s: f64) -> Value {
    let elapsed_s = result.elapsed.as_secs_f64().max(1e-9);
    let seconds = elapsed_s.ceil() as usize;
    let ops: Vec<Value> = result.stats.ran().into_iter().map(|op| op_document(op, result.stats.op(op), elapsed_s, seconds)).collect();
    let cores = info.cpus.len().min(info.concurrency).max(1);
    json!({
        "tool": "corestore loadgen",
        "format_version": FORMAT_VERSION,
        "mode": info.mode,
        "command_line": info.command_line,
        "hosts": info.hosts,
        "bucket": info.bucket,
        "prefix": info.prefix,
        "object_bytes": info.object_bytes,
        "objects": info.objects,
        "concurrent": info.concurrency,
        "cpus": info.cpus,
        "signing": info.signing,
        "duration_s_asked": info.duration_s,
        "autoterm": info.autoterm.map(|(dur, pct)| json!({"dur_s": dur, "pct": pct})),
        "started_unix_ms": result.started_unix_ms,
        "prepare_s": prepared_s,
        "elapsed_s": elapsed_s,
        "stopped_by": result.stopped_by.name(),
        "connections_gave_up": result.connections_gave_up,
        "generator_cpu_share": result.generator_cpu_ns as f64 / (elapsed_s * 1e9 * cores as f64),
        "errors": result.stats.errors(),
        "first_errors": result.stats.first_errors,
        "ops": ops,
    })
}

fn num(v: &Value, key: &str) -> Result<f64, String> {
    v[key].as_f64().ok_or_else(|| format!("`{key}` missing or not a number in {}", short(v)))
}

fn short(v: &Value) -> String {
    v.to_string().chars().take(120).collect()
}

/// `1.23 ms` / `456 µs` / `2.1 s`.
pub fn duration_text(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.0} µs")
    }
}

/// The warp-like summary of a run document.
pub fn summary(doc: &Value) -> Result<String, String> {
    if doc["format_version"].as_u64() != Some(FORMAT_VERSION) {
        return Err(format!("not a corestore loadgen file of format {FORMAT_VERSION} (format_version {})", doc["format_version"]));
    }
    let ops = doc["ops"].as_array().ok_or("`ops` missing")?;
    let total_ops: f64 = ops.iter().map(|o| num(o, "ops")).sum::<Result<f64, String>>()?;
    let elapsed_s = num(doc, "elapsed_s")?;
    let mut out = format!(
        "corestore loadgen {} on {} (bucket {}), {} B objects, {} connections on {} cpus, {}\n",
        doc["mode"].as_str().unwrap_or("?"),
        doc["hosts"].as_array().map_or(String::new(), |h| h.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")),
        doc["bucket"].as_str().unwrap_or("?"),
        doc["object_bytes"],
        doc["concurrent"],
        doc["cpus"].as_array().map_or(0, Vec::len),
        doc["signing"].as_str().unwrap_or("?"),
    );
    for o in ops {
        out.push_str(&op_summary(o, total_ops, doc, elapsed_s)?);
    }
    out.push_str(&format!(
        "Ran {elapsed_s:.2} s, stopped by {}. Generator CPU: {:.0}% of its cores. Errors: {}.\n",
        doc["stopped_by"].as_str().unwrap_or("?"),
        num(doc, "generator_cpu_share")? * 100.0,
        doc["errors"],
    ));
    if let Some(errors) = doc["first_errors"].as_array().filter(|e| !e.is_empty()) {
        out.push_str("First errors:\n");
        for e in errors {
            out.push_str(&format!(" - {}\n", e.as_str().unwrap_or("?")));
        }
    }
    Ok(out)
}

fn op_summary(o: &Value, total_ops: f64, doc: &Value, elapsed_s: f64) -> Result<String, String> {
    let name = o["op"].as_str().ok_or("an operation without `op`")?;
    let lat = &o["latency_us"];
    let share = if total_ops > 0.0 { 100.0 * num(o, "ops")? / total_ops } else { 0.0 };
    let mut out = format!("Operation: {name}, {share:.0}%, Concurrency: {}, Ran {elapsed_s:.2} s.\n", doc["concurrent"]);
    let mib_s = num(o, "bytes_per_s")? / (1 << 20) as f64;
    out.push_str(&format!(
        " * Throughput: {mib_s:.2} MiB/s, {:.2} obj/s, {:.2} ops/s ({} ops)\n",
        num(o, "objects_per_s")?,
        num(o, "ops_per_s")?,
        o["ops"]
    ));
    out.push_str(&format!(
        " * Latency: mean {}, p50 {}, p90 {}, p99 {}, p99.9 {}, max {}\n",
        duration_text(num(lat, "mean")?),
        duration_text(num(lat, "p50")?),
        duration_text(num(lat, "p90")?),
        duration_text(num(lat, "p99")?),
        duration_text(num(lat, "p99.9")?),
        duration_text(num(lat, "max")?),
    ));
    out.push_str(&format!(" * Errors: {}\n", o["errors"]));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::runner::StopReason;
    use crate::loadgen::stats::Stats;
    use std::time::Duration;

    #[test]
    fn the_summary_reads_the_document() {
        let mut stats = Stats::default();
        for i in 0..100u64 {
            stats.record(Op::Get, (i / 50) as usize, 1_000_000 + i * 10_000, 1 << 20, 1);
        }
        stats.fail(Op::Get, 1, "GET k on h: status 503: SlowDown".into());
        let result = PhaseResult {
            stats,
            elapsed: Duration::from_secs(2),
            stopped_by: StopReason::Duration,
            started_unix_ms: 0,
            generator_cpu_ns: 1_000_000_000,
            parts: Vec::new(),
            connections_gave_up: 0,
        };
        let info = RunInfo {
            mode: "get".into(),
            command_line: "loadgen get".into(),
            hosts: vec!["h:1".into()],
            bucket: "b".into(),
            object_bytes: 1 << 20,
            objects: 10,
            concurrency: 4,
            cpus: vec![0],
            signing: "anonymous".into(),
            duration_s: 2.0,
            autoterm: None,
            prefix: "p/".into(),
        };
        let doc = document(&info, &result, 0.5);
        assert_eq!(doc["ops"][0]["series_per_s"]["ops"], json!([50, 50]));
        assert_eq!(doc["ops"][0]["ops_per_s"], json!(50.0));
        assert_eq!(doc["generator_cpu_share"], json!(0.5));
        let text = summary(&doc).expect("summary");
        assert!(text.contains("Operation: GET, 100%, Concurrency: 4, Ran 2.00 s."), "{text}");
        assert!(text.contains(" * Throughput: 50.00 MiB/s, 50.00 obj/s, 50.00 ops/s (100 ops)"), "{text}");
        assert!(text.contains(" * Errors: 1"), "{text}");
        assert!(text.contains("SlowDown"), "{text}");
        let reparsed: Value = serde_json::from_str(&doc.to_string()).expect("JSON");
        assert_eq!(summary(&reparsed), Ok(text));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration_text(12.4), "12 µs");
        assert_eq!(duration_text(1234.0), "1.23 ms");
        assert_eq!(duration_text(2_500_000.0), "2.50 s");
    }
}
