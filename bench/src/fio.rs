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

/// One job of a reference run over several files: each core's store has its own segment file,
/// so fio gets one job per core, pinned to that core's cpu, on that core's file.
#[derive(Clone, Debug)]
pub struct FileJob {
    pub file: std::path::PathBuf,
    /// The job stays within the first `size_bytes` of its file (the written part of a segment:
    /// reading never-written extents would measure the filesystem's zero-fill, not the disk).
    pub size_bytes: u64,
    pub cpu: usize,
}

/// How a per-file reference run does its I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileIo {
    /// io_uring, O_DIRECT, fixed buffers, registered files: the engine benchmark's reference.
    IoUring(IoMem),
    /// O_DIRECT `pwrite` then `fdatasync`, one at a time: the durable write at QD1 that group
    /// commit is measured against.
    PsyncFdatasync,
}

/// A reference run of one fio job per file, all jobs reported as one group.
#[derive(Clone, Debug)]
pub struct FileRun<'a> {
    pub jobs: &'a [FileJob],
    /// fio's `rw=`: `randread`, `read`, `write`.
    pub rw: &'a str,
    pub block_bytes: usize,
    /// In flight per job (ignored by `psync`, which is QD1).
    pub queue_depth: usize,
    pub duration: std::time::Duration,
    pub io: FileIo,
}

pub fn file_run_args(run: &FileRun) -> Vec<String> {
    let mut args: Vec<String> = vec![
        format!("--rw={}", run.rw),
        format!("--bs={}", run.block_bytes),
        "--direct=1".into(),
        "--thread".into(),
        "--norandommap".into(),
        "--randrepeat=0".into(),
        "--time_based".into(),
        format!("--runtime={}ms", run.duration.as_millis()),
        "--lat_percentiles=1".into(),
        "--group_reporting".into(),
        "--output-format=json".into(),
    ];
    match run.io {
        FileIo::IoUring(iomem) => args.extend([
            "--ioengine=io_uring".into(),
            "--fixedbufs".into(),
            "--registerfiles".into(),
            format!("--iodepth={}", run.queue_depth),
            format!("--iomem={}", if iomem == IoMem::HugeTlb { "shmhuge" } else { "malloc" }),
        ]),
        FileIo::PsyncFdatasync => args.extend(["--ioengine=psync".into(), "--fdatasync=1".into()]),
    }
    // Options after a `--name` belong to that job; those before it are global.
    for (i, job) in run.jobs.iter().enumerate() {
        args.extend([
            format!("--name=corestore-ref-{i}"),
            format!("--filename={}", job.file.display()),
            format!("--size={}", job.size_bytes),
            format!("--cpus_allowed={}", job.cpu),
        ]);
    }
    args
}

pub fn run_files(run: &FileRun) -> Result<Measured, String> {
    let out = Command::new("fio").args(file_run_args(run)).output().map_err(|e| format!("running fio: {e}"))?;
    if !out.status.success() {
        return Err(format!("fio failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    parse(&String::from_utf8_lossy(&out.stdout), run.rw.contains("read"))
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

    #[test]
    fn per_file_jobs_follow_the_global_options() {
        let jobs = [FileJob { file: "/d/a".into(), size_bytes: 4096, cpu: 0 }, FileJob { file: "/d/b".into(), size_bytes: 8192, cpu: 1 }];
        let run = FileRun {
            jobs: &jobs,
            rw: "write",
            block_bytes: 4096,
            queue_depth: 1,
            duration: std::time::Duration::from_secs(1),
            io: FileIo::PsyncFdatasync,
        };
        let args = file_run_args(&run);
        let first_job = args.iter().position(|a| a.starts_with("--name=")).expect("a job");
        assert!(args[..first_job].iter().any(|a| a == "--fdatasync=1"), "fdatasync is global: {args:?}");
        assert!(!args.iter().any(|a| a.starts_with("--iodepth")), "psync is QD1: {args:?}");
        let tail: Vec<&str> = args[first_job..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "--name=corestore-ref-0",
                "--filename=/d/a",
                "--size=4096",
                "--cpus_allowed=0",
                "--name=corestore-ref-1",
                "--filename=/d/b",
                "--size=8192",
                "--cpus_allowed=1",
            ]
        );
    }
}
