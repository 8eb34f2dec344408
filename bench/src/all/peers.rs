//! S3 peers on warp's workloads: `corestore serve` and every S3 server that installs from the
//! package registries here (s3s-fs, Garage), each on loopback with its own data directory and
//! credentials, driven by `corestore loadgen` (its entry point, in this process) with the same
//! flags; each peer's figure is reported as a ratio to corestore's, measured right before it.
//! MinIO's server is a Go binary download, which this machine cannot fetch: skipped, saying so.

mod garage;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::Parser;
use serde_json::{Value, json};

use super::exec::write;
use super::{Run, Section, plot};
use crate::loadgen::cli::LoadgenCommand;
use crate::s3_bench::servers::{self, Server};

/// s3s-fs from crates.io: 0.14.1 is the newest release whose rustc requirement (1.92) this
/// toolchain meets (0.17 wants 1.96). `binary` is the feature that builds the server.
const S3S_FS_VERSION: &str = "0.14.1";
/// What the s3s-fs figures are, read from its source (`src/main.rs` of 0.14.1) and seen with
/// strace: no TCP_NODELAY, and about half of its 4 KiB GET answers written as two writevs
/// (head, then body), the second held by Nagle until the client's delayed ACK.
const S3S_FS_NOTE: &str = "objects as plain files, PUT acknowledged without fsync; its server sets no TCP_NODELAY and writes some answers \
    as head then body, so the body waits for the client's delayed ACK (about 40 ms): its GET p99 shows it";
/// The same for Garage: no TCP_NODELAY anywhere in its 2.5.0 crates.
const GARAGE_NOTE: &str = "PUT acknowledged without fsync (Garage's defaults: data_fsync and metadata_fsync off); its S3 server sets no \
    TCP_NODELAY (none in its 2.5.0 crates), so an answer whose body follows its head in a second write waits for the client's delayed ACK \
    (about 40 ms): its GET p50 shows it";
const MINIO_SKIPPED: &str = "MinIO's server is a Go program distributed as binary downloads (and Go module sources), neither of which this machine may fetch; it is not in crates.io, PyPI, npm or Debian";
const BUCKET: &str = "bench-peers";
const SIZES_BYTES: [u64; 3] = [4 << 10, 64 << 10, 1 << 20];
const SIZES_BYTES_QUICK: [u64; 1] = [4 << 10];
const MODES: [&str; 5] = ["get", "put", "mixed", "stat", "list"];
const MODES_QUICK: [&str; 2] = ["get", "put"];
const DURATION_S: u64 = 5;
const DURATION_S_QUICK: u64 = 1;
const CONCURRENT: usize = 16;
const CONCURRENT_QUICK: usize = 8;
/// Objects prepared for get, stat, mixed and list: this many, or fewer so that they hold at
/// most `PREPARED_BYTES_MAX` (1 MiB objects: 256).
const OBJECTS: u64 = 1000;
const OBJECTS_QUICK: u64 = 100;
const PREPARED_BYTES_MAX: u64 = 256 << 20;

/// A server under test: how the generator reaches and signs for it.
struct Endpoint {
    name: &'static str,
    server: Server,
    access_key: String,
    secret_key: String,
    region: String,
}

/// One (mode, size) run on one server.
struct Cell {
    ops_per_s: f64,
    bytes_per_s: f64,
    /// Latency of the mode's own operation (mixed: its GETs), µs: p50, p99.
    latency_us: (f64, f64),
    errors: u64,
    /// The run's error, if it did not finish (no figures).
    failed: Option<String>,
}

pub fn section(run: &Run, title: &'static str) -> Result<Section, String> {
    let (client_cpus, server_cpus) = split_cpus();
    let dir = run.work_dir("peers")?;
    let corestore = Endpoint {
        name: "corestore",
        server: servers::start_corestore(&dir.join("corestore"), &server_cpus, None)?,
        access_key: servers::ACCESS_KEY.into(),
        secret_key: servers::SECRET_KEY.into(),
        region: servers::REGION.into(),
    };
    let mut peers = Vec::new();
    let mut skipped = vec![("MinIO".to_string(), MINIO_SKIPPED.to_string())];
    match s3s_fs(run, &dir, &server_cpus) {
        Ok(p) => peers.push(p),
        Err(e) => skipped.push((format!("s3s-fs {S3S_FS_VERSION}"), e)),
    }
    match garage::start(run, &dir, &server_cpus) {
        Ok(g) => {
            peers.push(Endpoint { name: "garage", server: g.server, access_key: g.access_key, secret_key: g.secret_key, region: g.region })
        }
        Err(e) => skipped.push(("Garage".to_string(), e)),
    }
    let (sizes, modes): (&[u64], &[&str]) = if run.quick { (&SIZES_BYTES_QUICK, &MODES_QUICK) } else { (&SIZES_BYTES, &MODES) };
    let mut rows = Vec::new();
    for &size in sizes {
        for &mode in modes {
            let base = run_cell(run, &corestore, mode, size, &client_cpus);
            let others: Vec<Cell> = peers.iter().map(|p| run_cell(run, p, mode, size, &client_cpus)).collect();
            rows.push((mode, size, base, others));
        }
    }
    let names: Vec<&'static str> = peers.iter().map(|p| p.name).collect();
    // Stops every server (each handle's Drop) before the report is written.
    drop(peers);
    drop(corestore);
    let _ = std::fs::remove_dir_all(&dir);
    render(run, title, &rows, &names, &skipped, (&client_cpus, &server_cpus))
}

/// Generator on the lower half of the allowed cpus, servers on the upper half (as `bench s3`).
fn split_cpus() -> (Vec<usize>, Vec<usize>) {
    let allowed = engine::runtime::allowed_cpus();
    let half = (allowed.len() / 2).max(1);
    let server = if allowed.len() > 1 { allowed[half..].to_vec() } else { allowed.clone() };
    (allowed[..half].to_vec(), server)
}

/// `target/peers/bin/<name>`, installed with `cargo install` by a full run if missing; a quick
/// run never installs (minutes of compiling), and says how to.
pub fn installed(run: &Run, name: &str, install_args: &[&str]) -> Result<PathBuf, String> {
    let root = run.target_dir.join("peers");
    let exe = root.join("bin").join(name);
    if exe.is_file() {
        return Ok(exe);
    }
    let command = format!("cargo install {} --root {}", install_args.join(" "), root.display());
    let failed_marker = root.join(format!("{name}-install.failed"));
    if let Ok(reason) = std::fs::read_to_string(&failed_marker) {
        return Err(format!("`{command}` failed: {} (remove {} to try again)", reason.trim(), failed_marker.display()));
    }
    if run.quick {
        return Err(format!("not installed (a quick run installs nothing): run `corestore bench all` once, or `{command}`"));
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    let log = root.join(format!("{name}-install.log"));
    eprintln!("corestore-bench all: installing {name}: {command} (log: {})", log.display());
    let log_file = std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let status = Command::new("nice")
        .args(["-n", "19", "cargo", "install"])
        .args(install_args)
        .arg("--root")
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| format!("{}: {e}", log.display()))?)
        .stderr(log_file)
        .status()
        .map_err(|e| format!("running `{command}`: {e}"))?;
    if status.success() && exe.is_file() {
        return Ok(exe);
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let reason = text.lines().filter(|l| l.starts_with("error")).take(3).collect::<Vec<_>>().join(" / ");
    let reason = if reason.is_empty() { format!("{status}") } else { reason };
    let _ = std::fs::write(&failed_marker, &reason);
    Err(format!("`{command}` failed: {reason} (log: {})", log.display()))
}

fn s3s_fs(run: &Run, dir: &Path, cpus: &[usize]) -> Result<Endpoint, String> {
    let version = format!("s3s-fs@{S3S_FS_VERSION}");
    let exe = installed(run, "s3s-fs", &[&version, "--locked", "--features", "binary"])?;
    let root = dir.join("s3s-fs");
    std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    let port = servers::free_port()?;
    let mut command = Command::new(&exe);
    command
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", servers::ACCESS_KEY, "--secret-key", servers::SECRET_KEY])
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Server::spawn("s3s-fs", command, SocketAddr::from(([127, 0, 0, 1], port)), cpus)?;
    Ok(Endpoint {
        name: "s3s-fs",
        server,
        access_key: servers::ACCESS_KEY.into(),
        secret_key: servers::SECRET_KEY.into(),
        region: servers::REGION.into(),
    })
}

#[derive(Parser)]
#[command(name = "loadgen")]
struct LoadgenCli {
    #[command(subcommand)]
    command: LoadgenCommand,
}

fn size_name(bytes: u64) -> String {
    if bytes >= 1 << 20 { format!("{}MiB", bytes >> 20) } else { format!("{}KiB", bytes >> 10) }
}

/// One loadgen run of `mode` with `size` objects against `e`, through loadgen's own entry point;
/// its JSON file is kept as `peers/<server>-<mode>-<size>.json`.
fn run_cell(run: &Run, e: &Endpoint, mode: &str, size: u64, cpus: &[usize]) -> Cell {
    let dir = run.out_file("peers");
    let json_path = dir.join(format!("{}-{mode}-{}.json", e.name, size_name(size)));
    let (duration_s, concurrent, objects) =
        if run.quick { (DURATION_S_QUICK, CONCURRENT_QUICK, OBJECTS_QUICK) } else { (DURATION_S, CONCURRENT, OBJECTS) };
    let objects = objects.min((PREPARED_BYTES_MAX / size).max(1));
    let cpu_list = cpus.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
    let mut args: Vec<String> =
        ["loadgen", mode, "--host", &e.server.addr.to_string(), "--access-key", &e.access_key, "--secret-key", &e.secret_key]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let more = [
        "--region".to_string(),
        e.region.clone(),
        "--bucket".into(),
        BUCKET.into(),
        "--concurrent".into(),
        concurrent.to_string(),
        "--duration".into(),
        format!("{duration_s}s"),
        "--obj.size".into(),
        size.to_string(),
        "--cpus".into(),
        cpu_list,
        "--quiet".into(),
        "--json".into(),
        json_path.display().to_string(),
    ];
    args.extend(more);
    if mode != "put" {
        args.extend(["--objects".to_string(), objects.to_string()]);
    }
    eprintln!("corestore-bench all: peers: {} {mode} {}", e.name, size_name(size));
    let outcome = std::fs::create_dir_all(&dir)
        .map_err(|err| format!("creating {}: {err}", dir.display()))
        .and_then(|()| LoadgenCli::try_parse_from(&args).map_err(|err| err.to_string()))
        .and_then(|cli| crate::loadgen::cli::run(cli.command));
    let doc: Option<Value> = std::fs::read_to_string(&json_path).ok().and_then(|t| serde_json::from_str(&t).ok());
    match doc {
        Some(doc) => {
            let ops = doc["ops"].as_array().cloned().unwrap_or_default();
            let sum = |key: &str| ops.iter().filter_map(|o| o[key].as_f64()).sum::<f64>();
            let op = if mode == "mixed" { "GET".to_string() } else { mode.to_ascii_uppercase() };
            let latency = ops.iter().find(|o| o["op"] == op.as_str()).map(|o| &o["latency_us"]);
            let at = |p: &str| latency.and_then(|l| l[p].as_f64()).unwrap_or(f64::NAN);
            Cell {
                ops_per_s: sum("ops_per_s"),
                bytes_per_s: sum("bytes_per_s"),
                latency_us: (at("p50"), at("p99")),
                errors: doc["errors"].as_u64().unwrap_or(0),
                failed: outcome.err().filter(|_| sum("ops_per_s") == 0.0),
            }
        }
        None => Cell {
            ops_per_s: 0.0,
            bytes_per_s: 0.0,
            latency_us: (f64::NAN, f64::NAN),
            errors: 0,
            failed: Some(outcome.err().unwrap_or_else(|| "no JSON written".into())),
        },
    }
}

type Row = (&'static str, u64, Cell, Vec<Cell>);

fn show(c: &Cell) -> String {
    match &c.failed {
        Some(e) => format!("failed: {}", e.replace('|', "/").chars().take(160).collect::<String>()),
        None if c.errors > 0 => format!("{:.0} ({} errors)", c.ops_per_s, c.errors),
        None => format!("{:.0}", c.ops_per_s),
    }
}

fn latency(c: &Cell) -> String {
    if c.failed.is_some() { "-".into() } else { format!("{:.0} / {:.0}", c.latency_us.0, c.latency_us.1) }
}

fn render(
    run: &Run,
    title: &'static str,
    rows: &[Row],
    peers: &[&str],
    skipped: &[(String, String)],
    cpus: (&[usize], &[usize]),
) -> Result<Section, String> {
    let mut md = String::new();
    let (duration_s, concurrent) = if run.quick { (DURATION_S_QUICK, CONCURRENT_QUICK) } else { (DURATION_S, CONCURRENT) };
    let _ = writeln!(
        md,
        "`corestore loadgen <mode>` (in process) against each server on loopback: generator on cpus {:?}, servers pinned to cpus {:?}, \
         {concurrent} connections, {duration_s} s per run, SigV4 with signed aws-chunked PUT bodies (warp's defaults), each peer run right \
         after corestore's on the same mode and size. Figures are operations per second, all types together (mixed: GET 45%, STAT 30%, PUT 15%, \
         DELETE 10%; list: ListObjectsV2 pages); **ratio = peer / corestore**. Each run's loadgen JSON is in `peers/`.\n",
        cpus.0, cpus.1
    );
    for (name, reason) in skipped {
        let _ = writeln!(md, "- {name}: skipped: {reason}");
    }
    md.push('\n');
    let mut header = "| mode | object size | corestore ops/s | corestore MiB/s | corestore p50 / p99 µs |".to_string();
    let mut rule = "|---|---|---:|---:|---:|".to_string();
    for p in peers {
        header.push_str(&format!(" {p} ops/s | {p}/corestore | {p} p50 / p99 µs |"));
        rule.push_str("---:|---:|---:|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    let mut bars = Vec::new();
    let mut record = Vec::new();
    for (mode, size, base, others) in rows {
        let mut line =
            format!("| {mode} | {} | {} | {:.1} | {} |", size_name(*size), show(base), base.bytes_per_s / (1 << 20) as f64, latency(base));
        for (p, c) in peers.iter().zip(others) {
            let ratio = (base.failed.is_none() && c.failed.is_none() && base.ops_per_s > 0.0).then(|| c.ops_per_s / base.ops_per_s);
            line.push_str(&format!(" {} | {} | {} |", show(c), ratio.map_or("-".into(), |r| format!("{r:.2}")), latency(c)));
            if let Some(r) = ratio {
                bars.push((format!("{p} {mode} {}", size_name(*size)), r));
            }
            record.push(json!({"peer": p, "mode": mode, "object_bytes": size, "peer_ops_per_s": c.ops_per_s, "corestore_ops_per_s": base.ops_per_s, "ratio": ratio, "peer_errors": c.errors, "corestore_errors": base.errors, "peer_failed": c.failed, "corestore_failed": base.failed}));
        }
        if peers.is_empty() {
            record.push(json!({"peer": null, "mode": mode, "object_bytes": size, "corestore_ops_per_s": base.ops_per_s, "corestore_errors": base.errors, "corestore_failed": base.failed}));
        }
        let _ = writeln!(md, "{line}");
    }
    md.push('\n');
    let notes: Vec<String> = std::iter::once("corestore: PUT acknowledged after fdatasync".to_string())
        .chain(peers.iter().map(|p| format!("{p}: {}", peer_note(p))))
        .collect();
    let _ = writeln!(md, "What differs besides speed: {}.", notes.join("; "));
    let text = serde_json::to_string_pretty(&json!({"rows": record, "skipped": skipped})).map_err(|e| e.to_string())?;
    write(&run.out_file("peers.json"), &text)?;
    if !bars.is_empty() {
        plot::ratio_bars(&run.out_file("peers.svg"), "S3 peers on warp workloads: ops/s, ratio to corestore (1 = corestore)", &bars)?;
        let _ = writeln!(md, "\n![S3 peers](peers.svg)");
    }
    Ok(Section::new(title, md))
}

fn peer_note(name: &str) -> &'static str {
    match name {
        "s3s-fs" => S3S_FS_NOTE,
        "garage" => GARAGE_NOTE,
        _ => "",
    }
}
