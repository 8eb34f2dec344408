//! `corestore-bench all --quick` (the CI smoke run of `corestore bench all`) runs every section
//! end to end and writes a report in which each section has figures (a table) or says why not
//! (`skipped: <reason>`). A section that failed, a section left out, a table without figures or
//! a missing plot fails the test. Figures are not judged here.

#![allow(clippy::disallowed_methods)] // the issue bounds a quick run's wall time

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The report's sections, in order (`TITLES` in bench/src/all.rs, then the durations).
const TITLES: [&str; 11] = [
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
    "Duration",
];
/// The bound on a quick run (CI smoke use).
const QUICK_RUN_MAX: Duration = Duration::from_secs(180);

/// Each `## ` section's title and body.
fn sections(report: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in report.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            out.push((title.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// A markdown table with at least one row of figures under its header.
fn has_figures(body: &str) -> bool {
    let rows: Vec<&str> = body.lines().filter(|l| l.starts_with('|') && !l.starts_with("|---")).collect();
    rows.len() >= 2 && rows[1..].iter().any(|r| r.chars().any(|c| c.is_ascii_digit()))
}

#[test]
fn quick_report_has_every_section_with_figures_or_a_reason() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (out, work) = (tmp.join("all-quick-report"), tmp.join("all-quick-work"));
    let _ = std::fs::remove_dir_all(&out);
    let started = Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_corestore-bench"))
        .args(["all", "--quick", "--out"])
        .arg(&out)
        .arg("--work")
        .arg(&work)
        .output()
        .expect("running corestore-bench all");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap_or_default();
    assert!(
        run.status.success(),
        "corestore-bench all --quick failed (fio and nginx installed? `apt-get install fio nginx`):\n{stderr}\n{report}"
    );
    assert!(took < QUICK_RUN_MAX, "the quick run took {took:?}, more than {QUICK_RUN_MAX:?}");
    let found = sections(&report);
    let titles: Vec<&str> = found.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(titles, TITLES, "sections of the report");
    for (title, body) in &found {
        assert!(!body.lines().any(|l| l.starts_with("failed:")), "{title} failed:\n{body}");
        // The whole section skipped with its reason, or (the object-count section) each of its
        // runs skipped with its own ("- 10000 objects: skipped: needs 13 GiB, have 4 GiB ...").
        let with_reason = |rest: &str| rest.len() > 10;
        let skipped = body.lines().any(|l| l.strip_prefix("skipped: ").is_some_and(with_reason))
            || body.lines().filter(|l| l.starts_with("- ")).any(|l| l.split_once(": skipped: ").is_some_and(|(_, r)| with_reason(r)));
        assert!(has_figures(body) || skipped, "{title} has neither figures nor a reason it was skipped:\n{body}");
        for image in
            body.lines().filter_map(|l| l.strip_prefix("![")).filter_map(|l| l.split_once("](")).map(|(_, p)| p.trim_end_matches(')'))
        {
            let svg = std::fs::read_to_string(out.join(image)).unwrap_or_default();
            assert!(svg.contains("<svg"), "{title}: plot {image} missing or not SVG");
        }
    }
    // corestore itself is measured in every peers row, whatever the peers did.
    let (_, peers) = found.iter().find(|(t, _)| t == "S3 peers: warp workloads").expect("checked above");
    for row in peers.lines().filter(|l| l.starts_with("| get ") || l.starts_with("| put ")) {
        let corestore = row.split('|').nth(3).unwrap_or("").trim();
        assert!(corestore.parse::<f64>().is_ok_and(|v| v > 0.0), "corestore's ops/s in {row}");
    }
    let (_, machine) = &found[0];
    for what in ["| cpus |", "| memory |", "| kernel |", "| disk |", "| benchmark files |"] {
        assert!(machine.contains(what), "the machine section lacks {what}:\n{machine}");
    }
    assert!(out.join("peers.json").is_file() && out.join("engine.json").is_file(), "the JSON beside the report");
}
