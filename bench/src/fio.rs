//! fio as the reference: the same file, regions, block size, queue depth and job count, with
//! io_uring, O_DIRECT, fixed buffers and registered files, as the physical limit of this machine.

use std::process::Command;

use crate::workload::{Measured, Setup, Workload};

pub fn version() -> Result<String, String> {
    let out = Command::new("fio").arg("--version").output().map_err(|e| {
        format!("fio is not installed ({e}); install it with `apt-get install fio` (Debian/Ubuntu) or `dnf install fio`")
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn args(setup: &Setup, w: &Workload) -> Vec<String> {
    let last_cpu = setup.cores - 1;
    vec![
        "--name=corestore-ref".into(),
        format!("--filename={}", setup.file.display()),
        "--ioengine=io_uring".into(),
        "--direct=1".into(),
        "--fixedbufs".into(),
        "--registerfiles".into(),
        format!("--rw={}", w.pattern.fio_rw()),
        format!("--bs={}", w.block_bytes),
        format!("--iodepth={}", w.queue_depth),
        format!("--numjobs={}", setup.cores),
        format!("--size={}", setup.region_bytes),
        format!("--offset_increment={}", setup.region_bytes),
        format!("--cpus_allowed=0-{last_cpu}"),
        "--cpus_allowed_policy=split".into(),
        "--thread".into(),
        "--norandommap".into(),
        "--randrepeat=0".into(),
        "--time_based".into(),
        format!("--runtime={}ms", setup.duration.as_millis()),
        "--lat_percentiles=1".into(),
        "--group_reporting".into(),
        "--output-format=json".into(),
    ]
}

pub fn run(setup: &Setup, w: &Workload) -> Result<Measured, String> {
    let out = Command::new("fio").args(args(setup, w)).output().map_err(|e| format!("running fio: {e}"))?;
    if !out.status.success() {
        return Err(format!("fio failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    parse(&String::from_utf8_lossy(&out.stdout), w.pattern.is_read())
}

/// Reads fio's JSON report (fio prints warnings before it sometimes: skip to the first `{`).
pub fn parse(stdout: &str, read: bool) -> Result<Measured, String> {
    let start = stdout.find('{').ok_or("fio printed no JSON")?;
    let v: serde_json::Value = serde_json::from_str(&stdout[start..]).map_err(|e| format!("fio JSON: {e}"))?;
    let side = &v["jobs"][0][if read { "read" } else { "write" }];
    let num = |p: &serde_json::Value| p.as_f64().ok_or_else(|| format!("fio JSON lacks a number at {p}"));
    let pct = |q: &str| -> Result<u64, String> {
        let p = &side["lat_ns"]["percentile"][q];
        p.as_u64().ok_or_else(|| format!("fio JSON lacks lat_ns percentile {q}"))
    };
    Ok(Measured {
        ops_per_s: num(&side["iops"])?,
        bytes_per_s: num(&side["bw_bytes"])?,
        latency_ns_p50: pct("50.000000")?,
        latency_ns_p99: pct("99.000000")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fio_json_with_leading_noise() {
        let json = r#"note: both iodepth >= 1 and synchronous I/O engine are selected
{"jobs":[{"read":{"iops":1234.5,"bw_bytes":5056512,"lat_ns":{"percentile":{"50.000000":800,"99.000000":2000}}},
          "write":{"iops":0,"bw_bytes":0,"lat_ns":{}}}]}"#;
        let m = parse(json, true).expect("parse");
        assert_eq!(m.ops_per_s, 1234.5);
        assert_eq!(m.bytes_per_s, 5056512.0);
        assert_eq!((m.latency_ns_p50, m.latency_ns_p99), (800, 2000));
        assert!(parse(json, false).is_err(), "write side has no percentiles: must be an error, not zeros");
        assert!(parse("no json", true).is_err());
    }
}
