//! `corestore-bench all`: every benchmark in one run on this machine, written up as one report,
//! `bench/results/<YYYY-MM-DD>/report.md`, with the JSON it was made from and SVG plots.
//!
//! The existing benchmarks (`engine`, `store`, `s3`, and `raft` where this build has it) run as
//! child processes of this binary: each one's stdout already carries its JSON lines and its
//! markdown table, and a process of its own keeps one benchmark's memory (the store's index
//! figures are resident-memory deltas) and threads out of the next. The peers section drives the
//! warp workloads through the load generator's own entry point, in this process.
//!
//! Every section ends up in the report: with figures, or with `skipped: <reason>`, or with
//! `failed: <error>` (and then the command exits non-zero after writing the report). Nothing in
//! the report is written by hand.

mod criterion;
mod exec;
mod peers;
mod plot;
mod scaling;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::machine;

/// Section titles, in report order; the smoke test checks that each is present.
pub const TITLES: [&str; 10] = [
    "Machine",
    "Engine vs fio and glommio",
    "Store vs fio",
    "S3: corestore vs nginx",
    "S3 over HTTPS: corestore vs nginx",
    "Raft vs etcd",
    "S3 peers: warp workloads",
    "Scaling: cores",
    "Scaling: object count",
    "Criterion micro-benchmarks",
];

#[derive(clap::Args)]
pub struct AllArgs {
    /// Short run for CI smoke use (under 3 minutes): short durations, small object counts, no
    /// peer installs, no criterion.
    #[arg(long)]
    quick: bool,
    /// Where the report, its JSON and its plots go [default: bench/results/<YYYY-MM-DD>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Scratch space for data files and data directories (removed at the end). Must be on a
    /// filesystem with O_DIRECT (ext4, xfs), not tmpfs.
    #[arg(long, default_value = "target/corestore-bench-all")]
    work: PathBuf,
    /// Run only the sections whose title contains this (case-insensitive); the others say
    /// `skipped: left out (--only ...)`. The machine section is always there.
    #[arg(long)]
    only: Option<String>,
}

/// One section of the report.
pub struct Section {
    pub title: &'static str,
    /// Markdown: figures, or a line `skipped: <reason>`.
    pub body: String,
    /// The section could not run for a reason that is a bug, not a missing tool.
    pub failed: bool,
}

impl Section {
    pub fn new(title: &'static str, body: String) -> Section {
        Section { title, body, failed: false }
    }

    pub fn skipped(title: &'static str, reason: &str) -> Section {
        Section { title, body: format!("skipped: {reason}\n"), failed: false }
    }

    fn failed(title: &'static str, error: &str) -> Section {
        Section { title, body: format!("failed: {error}\n"), failed: true }
    }
}

/// What every section needs: the mode, where to write, where to work.
pub struct Run {
    pub quick: bool,
    pub out: PathBuf,
    pub work: PathBuf,
    /// The corestore-bench binary (this one) and `corestore` beside it.
    pub bench_exe: PathBuf,
    pub corestore_exe: PathBuf,
    /// `target/`: where peers are installed (`target/peers`) and criterion writes.
    pub target_dir: PathBuf,
}

impl Run {
    /// A file in the output directory.
    pub fn out_file(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    /// A fresh scratch directory `name` under the work directory.
    pub fn work_dir(&self, name: &str) -> Result<PathBuf, String> {
        let dir = self.work.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(dir)
    }
}

pub fn bench_all(args: AllArgs) -> Result<(), String> {
    let started = Instant::now();
    let unix_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let stamp = crate::loadgen::sign::amz_date(unix_s);
    let date = format!("{}-{}-{}", &stamp[..4], &stamp[4..6], &stamp[6..8]);
    let out = match args.out {
        Some(dir) => dir,
        None if Path::new("bench").is_dir() => PathBuf::from("bench/results").join(&date),
        None => return Err("no bench/ here: run from the repository root, or pass --out DIR".into()),
    };
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let bench_exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let release_dir = bench_exe.parent().ok_or("corestore-bench has no directory")?.to_path_buf();
    let target_dir = release_dir.parent().map_or_else(|| release_dir.clone(), Path::to_path_buf);
    let corestore_exe = release_dir.join("corestore");
    let work = std::path::absolute(&args.work).map_err(|e| format!("{}: {e}", args.work.display()))?;
    std::fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    // At the start: what was built and measured, before anything (this run's report) changes the tree.
    let commit = git_commit();
    let run = Run { quick: args.quick, out: out.clone(), work, bench_exe, corestore_exe, target_dir };
    ensure_corestore(&run)?;
    let mut sections = Vec::new();
    for title in TITLES {
        eprintln!("corestore-bench all: {title} ...");
        let section_started = Instant::now();
        let left_out = args.only.as_ref().filter(|o| title != "Machine" && !title.to_lowercase().contains(&o.to_lowercase()));
        let result = match left_out {
            Some(o) => Ok(Section::skipped(title, &format!("left out (--only {o})"))),
            None => run_section(&run, title),
        };
        let section = match result {
            Ok(s) => s,
            Err(e) => Section::failed(title, &e),
        };
        let seconds = section_started.elapsed().as_secs_f64();
        eprintln!("corestore-bench all: {title}: {seconds:.0} s{}", if section.failed { " (failed)" } else { "" });
        sections.push((section, seconds));
    }
    let _ = std::fs::remove_dir_all(&run.work);
    let report = render(&run, &stamp, &commit, &sections, started.elapsed().as_secs_f64());
    let path = out.join("report.md");
    std::fs::write(&path, report).map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("report written to {} ({:.0} s)", path.display(), started.elapsed().as_secs_f64());
    let failed: Vec<&str> = sections.iter().filter(|(s, _)| s.failed).map(|(s, _)| s.title).collect();
    if failed.is_empty() { Ok(()) } else { Err(format!("sections failed (see the report): {}", failed.join(", "))) }
}

fn run_section(run: &Run, title: &'static str) -> Result<Section, String> {
    match title {
        "Machine" => Ok(Section::new(title, machine::markdown(&run.work))),
        "Engine vs fio and glommio" => exec::engine(run, title),
        "Store vs fio" => exec::store(run, title),
        "S3: corestore vs nginx" => exec::s3(run, title, false),
        "S3 over HTTPS: corestore vs nginx" => exec::s3(run, title, true),
        "Raft vs etcd" => exec::raft(run, title),
        "S3 peers: warp workloads" => peers::section(run, title),
        "Scaling: cores" => scaling::cores(run, title),
        "Scaling: object count" => scaling::objects(run, title),
        "Criterion micro-benchmarks" => criterion::section(run, title),
        _ => unreachable!("every title in TITLES has a section"),
    }
}

/// "Builds what it needs": `corestore serve` is what the S3 sections measure.
fn ensure_corestore(run: &Run) -> Result<(), String> {
    if run.corestore_exe.exists() {
        return Ok(());
    }
    eprintln!("corestore-bench all: {} missing: cargo build --release -p tools", run.corestore_exe.display());
    let status = std::process::Command::new("cargo").args(["build", "--release", "-p", "tools"]).status();
    match status {
        Ok(s) if s.success() && run.corestore_exe.exists() => Ok(()),
        other => Err(format!("{} missing and `cargo build --release -p tools` failed: {other:?}", run.corestore_exe.display())),
    }
}

/// The report; `sections` with the seconds each took (the full run documents its duration).
fn render(run: &Run, stamp: &str, commit: &str, sections: &[(Section, f64)], seconds: f64) -> String {
    let mut md = String::new();
    let mode = if run.quick { "corestore bench all --quick" } else { "corestore bench all" };
    let _ = writeln!(md, "# corestore benchmark report, {}-{}-{}\n", &stamp[..4], &stamp[4..6], &stamp[6..8]);
    let _ = writeln!(
        md,
        "Written by `{mode}` (started {}:{}:{} UTC, commit {}, {:.0} s in all). Every figure below was measured in this run, \
         each beside its comparison; nothing is edited by hand. The JSON each table was made from is beside this file.\n",
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15],
        commit,
        seconds
    );
    if run.quick {
        let _ = writeln!(
            md,
            "**Quick mode** (CI smoke): runs are a fraction of a second to a few seconds, object counts small; figures are noisy.\n"
        );
    }
    for (s, _) in sections {
        let _ = writeln!(md, "## {}\n\n{}", s.title, s.body.trim_end());
        md.push('\n');
    }
    let _ = writeln!(md, "## Duration\n\n| section | seconds |\n|---|---:|");
    for (s, took) in sections {
        let _ = writeln!(md, "| {} | {took:.0} |", s.title);
    }
    let _ = writeln!(md, "| all, with set-up and report | {seconds:.0} |");
    md
}

/// The commit of the checkout the run starts in (`-dirty` with uncommitted changes), which is
/// what `cargo build` built the binaries from; `unknown` outside a git checkout.
fn git_commit() -> String {
    let out = std::process::Command::new("git").args(["describe", "--always", "--dirty", "--abbrev=12"]).output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "unknown".into(),
    }
}
