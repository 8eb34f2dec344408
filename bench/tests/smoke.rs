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
