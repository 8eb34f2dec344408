//! fio as the reference: the same file, regions, block size, queue depth and job count, with
//! io_uring, O_DIRECT, fixed buffers and registered files, as the physical limit of this machine.

use std::process::Command;

use crate::workload::{Measured, Setup, Workload};

pub fn version() -> Result<String, String> {
    let out = Command::new("fio")
        .arg("--version")
        .output()
        .map_err(|e| format!("fio is not installed ({e}); install it with `apt-get install fio` (Debian/Ubuntu) or `dnf install fio`"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Where fio's I/O buffers live. The engine's arena is on 2 MiB transparent huge pages; fio can
/// only get huge pages from hugetlbfs (`shmhuge`), and without them large I/O from scattered
/// 4 KiB pages is split by the block layer (kernel-notes.md), which would flatter our ratio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoMem {
    HugeTlb,
    Malloc,
}

const HUGE_PAGE_BYTES: u64 = 2 << 20;

fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// Makes sure `bytes` of hugetlb pages are free for fio, reserving more if this process may
/// (root). Returns what fio will use and a line saying why.
pub fn prepare_iomem(bytes: u64) -> (IoMem, String) {
    // fio rounds each job's buffer up to a huge page and adds alignment slack: ask for one more per job.
    let pages = bytes.div_ceil(HUGE_PAGE_BYTES) + 16;
    let free = meminfo("HugePages_Free:");
    if free < pages {
        let total = meminfo("HugePages_Total:");
        let _ = std::fs::write("/proc/sys/vm/nr_hugepages", (total + pages - free).to_string());
    }
    if meminfo("HugePages_Free:") >= pages {
        (IoMem::HugeTlb, "fio buffers: hugetlb 2 MiB pages (--iomem=shmhuge), like the engine's THP arena".to_string())
    } else {
        (
            IoMem::Malloc,
            format!(
                "fio buffers: malloc, 4 KiB pages: {pages} free hugetlb pages needed (`echo {pages} > /proc/sys/vm/nr_hugepages` as root); large-I/O ratios flatter the engine"
            ),
        )
    }
}

pub fn args(setup: &Setup, w: &Workload, iomem: IoMem) -> Vec<String> {
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
        format!("--iomem={}", if iomem == IoMem::HugeTlb { "shmhuge" } else { "malloc" }),
    ]
}

pub fn run(setup: &Setup, w: &Workload, iomem: IoMem) -> Result<Measured, String> {
    let out = Command::new("fio").args(args(setup, w, iomem)).output().map_err(|e| format!("running fio: {e}"))?;
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
