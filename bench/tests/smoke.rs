//! The engine benchmark runs end to end against a real fio and glommio and prints what its
//! users read: one JSON line per workload with engine, fio and ratio, then the min ratio.
//! Figures are not judged here (performance is measured, never asserted in a test).

use std::process::Command;

#[test]
fn engine_benchmark_prints_a_ratio_per_workload() {
    let file = concat!(env!("CARGO_TARGET_TMPDIR"), "/smoke.fio-data");
    let out = Command::new(env!("CARGO_BIN_EXE_corestore-bench"))
        .args(["engine", "--cores", "1", "--region-mib", "32", "--seconds", "0.3", "--rounds", "1", "--file", file])
        .output()
        .expect("running corestore-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "corestore-bench failed (is fio installed? `apt-get install fio`):\n{stderr}\n{stdout}");
    let lines: Vec<serde_json::Value> =
        stdout.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let names: Vec<&str> = lines.iter().map(|l| l["workload"].as_str().expect("workload")).collect();
    assert_eq!(names, ["4k-randread-qd1", "4k-randread-qd64", "4k-randwrite-qd64", "1m-seqread-qd8", "1m-seqwrite-qd8"]);
    for l in &lines {
        for key in ["engine", "fio", "ratio", "glommio"] {
            let v = l[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {l}"));
            assert!(v > 0.0 && v.is_finite(), "{key} = {v} in {l}");
        }
        let ratio = l["engine"].as_f64().expect("engine") / l["fio"].as_f64().expect("fio");
        assert!((ratio - l["ratio"].as_f64().expect("ratio")).abs() < 1e-9, "ratio is engine/fio");
    }
    let last = stdout.lines().last().expect("output");
    assert!(last.starts_with("min ratio engine/fio: "), "last line: {last}");
}

#[test]
fn store_benchmark_prints_a_line_per_workload_and_the_min_ratio() {
    let dir = concat!(env!("CARGO_TARGET_TMPDIR"), "/smoke-store");
    let out = Command::new(env!("CARGO_BIN_EXE_corestore-bench"))
        .args(["store", "--quick", "--seconds", "0.2", "--small-objects", "2000", "--large-objects", "16", "--index-objects", "20000"])
        .args(["--dir", dir])
        .output()
        .expect("running corestore-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "corestore-bench store failed (is fio installed? `apt-get install fio`):\n{stderr}\n{stdout}");
    let lines: Vec<serde_json::Value> =
        stdout.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let names: Vec<&str> = lines.iter().map(|l| l["workload"].as_str().expect("workload")).collect();
    assert_eq!(
        names,
        [
            "4k-put-w1",
            "4k-put-w16",
            "4k-put-w256",
            "4k-get-qd64",
            "1m-get-qd8",
            "index-memory",
            "startup-after-crash",
            "startup-after-close",
            "4k-put-w16-compacting"
        ]
    );
    let number = |l: &serde_json::Value, key: &str| l[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {l}"));
    for l in &lines[..5] {
        for key in ["store", "fio", "ratio", "store_latency_ns_p99"] {
            let v = number(l, key);
            assert!(v > 0.0 && v.is_finite(), "{key} = {v} in {l}");
        }
        assert!((number(l, "store") / number(l, "fio") - number(l, "ratio")).abs() < 1e-9, "ratio is store/fio in {l}");
    }
    for l in &lines[..3] {
        assert!(number(l, "records_per_sync") >= 1.0, "every fdatasync made at least one record durable: {l}");
    }
    let index = &lines[5];
    assert!(index["ratio"].is_null(), "no fio reference, no ratio: {index}");
    assert!(number(index, "store").is_finite() && number(index, "resident_bytes_per_object").is_finite());
    assert_eq!(index["objects"], 20000);
    for start_up in &lines[6..8] {
        assert!(start_up["ratio"].is_null(), "no fio reference, no ratio: {start_up}");
        assert_eq!(start_up["objects"], 20000 + 2 * 4096, "the measured objects and the warm-up");
        assert!(number(start_up, "store") > 0.0 && number(start_up, "seconds_for_10m_objects") > 0.0, "{start_up}");
    }
    let compacting = &lines[8];
    assert!(compacting["ratio"].is_null(), "no fio reference, no ratio: {compacting}");
    for key in ["p99_ratio", "ops_ratio", "space_amp_before", "space_amp_after"] {
        assert!(number(compacting, key) > 0.0 && number(compacting, key).is_finite(), "{key} in {compacting}");
    }
    let last = stdout.lines().last().expect("output");
    assert!(last.starts_with("min ratio store/fio: "), "last line: {last}");
}

/// `corestore-bench s3 --quick` starts `corestore serve` (the binary beside corestore-bench:
/// `cargo build --release -p tools` builds it into the same target directory) and nginx if
/// installed; corestore's figures are always measured, nginx's columns may say skipped.
#[test]
fn s3_benchmark_measures_corestore_and_reports_nginx_or_why_not() {
    let bench = std::path::Path::new(env!("CARGO_BIN_EXE_corestore-bench"));
    let corestore = bench.with_file_name("corestore");
    assert!(corestore.exists(), "{} missing: build it first with `cargo build -p tools` (same profile as this test)", corestore.display());
    let dir = concat!(env!("CARGO_TARGET_TMPDIR"), "/smoke-s3");
    let out = Command::new(bench).args(["s3", "--quick", "--dir", dir]).output().expect("running corestore-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "corestore-bench s3 failed:\n{stderr}\n{stdout}");
    let lines: Vec<serde_json::Value> =
        stdout.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let names: Vec<&str> = lines.iter().map(|l| l["workload"].as_str().expect("workload")).collect();
    assert_eq!(names, ["4k-get", "1m-get", "4k-put", "idle-connections"]);
    let number = |l: &serde_json::Value, key: &str| l[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {l}"));
    for l in &lines {
        assert_eq!(l["bench"], "s3");
        assert!(number(l, "corestore") > 0.0 && number(l, "corestore").is_finite(), "{l}");
        match l["nginx"].as_f64() {
            Some(n) => assert!(n > 0.0, "{l}"),
            None => assert!(l["nginx_skipped"].as_str().is_some_and(|why| !why.is_empty()), "nginx neither measured nor skipped with a reason: {l}"),
        }
    }
    for l in &lines[..3] {
        for key in ["corestore_requests_per_s", "corestore_bytes_per_s", "corestore_latency_ns_p99"] {
            assert!(number(l, key) > 0.0, "{key} in {l}");
        }
        if let Some(n) = l["nginx"].as_f64() {
            assert!((number(l, "corestore") / n - number(l, "ratio")).abs() < 1e-9, "ratio is corestore/nginx in {l}");
        }
    }
    assert!(stdout.lines().last().expect("output").starts_with("min ratio corestore/nginx: "));
}

/// `corestore-bench raft` end to end, short: three replicas, etcd beside them (Debian's
/// etcd-server; .ci/run installs it), a JSON line per load run of each system, then the
/// elections. Figures are not judged here.
#[test]
fn raft_benchmark_prints_corestore_and_etcd_lines_and_the_elections() {
    let dir = concat!(env!("CARGO_TARGET_TMPDIR"), "/smoke-raft");
    let out = Command::new(env!("CARGO_BIN_EXE_corestore-bench"))
        .args(["raft", "--quick", "--seconds", "0.3", "--concurrency", "1,8", "--elections", "1", "--dir", dir])
        .output()
        .expect("running corestore-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "corestore-bench raft failed (etcd installed? `apt-get install -y etcd-server etcd-client`):\n{stderr}\n{stdout}");
    let lines: Vec<serde_json::Value> =
        stdout.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let names: Vec<(&str, &str)> =
        lines.iter().map(|l| (l["system"].as_str().expect("system"), l["workload"].as_str().expect("workload"))).collect();
    let runs = ["raft-put-c1", "raft-put-c8", "raft-put-open-half-peak"];
    let mut expected: Vec<(&str, &str)> = runs.iter().map(|w| ("corestore", *w)).collect();
    expected.extend(runs.iter().map(|w| ("etcd", *w)));
    expected.push(("corestore", "raft-election"));
    expected.push(("corestore", "raft-handover"));
    assert_eq!(names, expected);
    let number = |l: &serde_json::Value, key: &str| l[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {l}"));
    for l in &lines[..3] {
        for key in ["entries_per_s", "latency_ns_p99", "entries_per_fsync", "ratio_vs_fio", "ratio_vs_etcd"] {
            let v = number(l, key);
            assert!(v > 0.0 && v.is_finite(), "{key} = {v} in {l}");
        }
        assert!((number(l, "entries_per_s") / number(l, "etcd_entries_per_s") - number(l, "ratio_vs_etcd")).abs() < 1e-9, "{l}");
    }
    let election = &lines[6];
    assert_eq!(election["trials"], 1);
    assert!(number(&election["commit"], "max_ms") >= number(&election["leader"], "max_ms"), "{election}");
    assert!(stdout.lines().any(|l| l.starts_with("election after a leader kill, until a new proposal commits: ")), "{stdout}");
    let handover = &lines[7];
    assert_eq!(handover["trials"], 1);
    assert!(number(&handover["commit"], "max_ms") >= number(&handover["leader"], "max_ms"), "{handover}");
    assert!(stdout.lines().any(|l| l.starts_with("hand-over on a graceful stop (SIGTERM to the leader), until a new proposal commits: ")), "{stdout}");
}
