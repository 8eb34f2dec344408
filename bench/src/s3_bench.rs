//! `corestore-bench s3`: `corestore serve` against nginx serving the same objects as static
//! files, in one run on loopback, driven by the same load generator (`crate::loadgen`, on
//! corestore's own runtime) with the same connections and durations:
//! - 4 KiB GET: requests/s and p99; 1 MiB GET: bytes/s; 4 KiB PUT: requests/s (corestore's PUT
//!   is acknowledged after fdatasync; nginx's WebDAV PUT after writing a temp file and renaming
//!   it, with no fsync: the durability differs, the figure says what each costs);
//! - the server's resident memory per idle keep-alive connection (10,000 of them).
//!
//! The machine's cpus are split: the generator on the lower half, the server under test on the
//! upper half (its process pinned there, one corestore core or one nginx worker per cpu); both
//! systems get the same split. Signing: the generator signs every corestore request (SigV4,
//! UNSIGNED-PAYLOAD, the signing key cached per day) and sends nginx, which has no auth, the same
//! requests unsigned; its CPU share is reported for both. Workloads run in interleaved rounds
//! (corestore, then nginx) and each column reports its median round.

mod idle;
pub(crate) mod servers;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::loadgen::{self, Method, Mode, Spec, Target};
use crate::machine;
use servers::Server;

const BUCKET: &str = "bench";
/// Connections that fill the objects before the runs.
const FILL_CONNECTIONS: usize = 32;
/// Goals (S3 issue).
const GET_RATIO_GOAL: f64 = 0.8;
const P99_RATIO_GOAL: f64 = 2.0;
const IDLE_BYTES_PER_CONNECTION_GOAL: f64 = 64.0 * 1024.0;
/// Descriptors the bench keeps for itself beyond the idle connections.
const NOFILE_SPARE: u64 = 256;
/// How long after the last idle connection's request every answer must be in.
const IDLE_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_ANSWER_TIMEOUT_QUICK: Duration = Duration::from_secs(3);
/// The workload whose objects the idle connections GET.
const IDLE_OBJECTS_FROM: &str = "4k-get";

#[derive(clap::Args)]
pub struct S3Args {
    /// Working directory: corestore's data directory and nginx's root, removed and recreated.
    #[arg(long, default_value = "target/corestore-bench-s3")]
    dir: PathBuf,
    /// Seconds measured per run [default: 5; 0.5 with --quick].
    #[arg(long)]
    seconds: Option<f64>,
    /// Warm-up seconds before each measured run [default: 1; 0.2 with --quick].
    #[arg(long)]
    warm_up_seconds: Option<f64>,
    /// Rounds: corestore and nginx alternate this many times per workload; each reports its
    /// median round [default: 3; 1 with --quick].
    #[arg(long)]
    rounds: Option<usize>,
    /// Idle keep-alive connections for the memory figure [default: 10000; 1000 with --quick].
    #[arg(long)]
    idle_connections: Option<usize>,
    /// Short run for CI smoke use.
    #[arg(long)]
    quick: bool,
    /// Leave nginx out (its columns say skipped).
    #[arg(long)]
    no_nginx: bool,
    /// If nginx is missing, install it with `apt-get install -y nginx`.
    #[arg(long)]
    install_nginx: bool,
    /// Cpus of the server under test [default: the upper half of the allowed cpus].
    #[arg(long, value_delimiter = ',')]
    server_cpus: Option<Vec<usize>>,
    /// Cpus of the load generator [default: the lower half of the allowed cpus].
    #[arg(long, value_delimiter = ',')]
    client_cpus: Option<Vec<usize>>,
    /// Run only the workloads whose name contains this ("idle" for the memory figure).
    #[arg(long)]
    only: Option<String>,
    /// Turn versioning on in corestore's bucket (every PUT a new version; what it costs).
    #[arg(long)]
    versioned: bool,
    /// HTTPS for both servers (one self-signed certificate, `corestore admin tls-cert`; the
    /// generator checks it): what TLS costs each, in time and in memory per idle connection.
    #[arg(long)]
    tls: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Metric {
    RequestsPerS,
    BytesPerS,
}

struct Workload {
    name: &'static str,
    method: Method,
    object_bytes: usize,
    connections: usize,
    keys: usize,
    keys_quick: usize,
    metric: Metric,
    /// corestore/nginx at least this.
    goal_min: Option<f64>,
    /// corestore's p99 / nginx's at most this.
    p99_ratio_goal_max: Option<f64>,
}

impl Workload {
    fn key(&self, i: usize) -> String {
        format!("{}/{i:06}", self.name)
    }
    fn key_count(&self, quick: bool) -> usize {
        if quick { self.keys_quick } else { self.keys }
    }
}

fn workloads() -> [Workload; 3] {
    [
        Workload {
            name: "4k-get",
            method: Method::Get,
            object_bytes: 4 << 10,
            connections: 64,
            keys: 1024,
            keys_quick: 256,
            metric: Metric::RequestsPerS,
            goal_min: Some(GET_RATIO_GOAL),
            p99_ratio_goal_max: Some(P99_RATIO_GOAL),
        },
        Workload {
            name: "1m-get",
            method: Method::Get,
            object_bytes: 1 << 20,
            connections: 16,
            keys: 64,
            keys_quick: 16,
            metric: Metric::BytesPerS,
            goal_min: Some(GET_RATIO_GOAL),
            p99_ratio_goal_max: None,
        },
        Workload {
            name: "4k-put",
            method: Method::Put(4 << 10),
            object_bytes: 4 << 10,
            connections: 64,
            keys: 1024,
            keys_quick: 256,
            metric: Metric::RequestsPerS,
            goal_min: None,
            p99_ratio_goal_max: None,
        },
    ]
}

/// One system's run of one workload.
#[derive(Clone, Debug)]
struct Measured {
    requests_per_s: f64,
    bytes_per_s: f64,
    latency_ns_p50: u64,
    latency_ns_p99: u64,
    latency_ns_p999: u64,
    /// Of the generator's cpus, and of the server's.
    generator_cpu_share: f64,
    server_cpu_share: f64,
    /// Of all the machine's cpus, busy with neither (other processes, outside softirq): a run
    /// with much of it was disturbed.
    others_cpu_share: f64,
    /// Of all the machine's cpus, in softirq (loopback TCP's receive path, charged to no process).
    softirq_cpu_share: f64,
}

impl Measured {
    fn metric(&self, m: Metric) -> f64 {
        match m {
            Metric::RequestsPerS => self.requests_per_s,
            Metric::BytesPerS => self.bytes_per_s,
        }
    }
}

struct Settings {
    seconds: f64,
    warm_up_seconds: f64,
    rounds: usize,
    quick: bool,
    server_cpus: Vec<usize>,
    client_cpus: Vec<usize>,
    /// The servers' certificate, and the generator's side, for a TLS run.
    tls: Option<(servers::TlsFiles, loadgen::tls::Tls)>,
}

impl Settings {
    fn client_tls(&self) -> Option<loadgen::tls::Tls> {
        self.tls.as_ref().map(|(_, t)| t.clone())
    }

    fn server_tls(&self) -> Option<&servers::TlsFiles> {
        self.tls.as_ref().map(|(f, _)| f)
    }
}

pub fn bench_s3(args: S3Args) -> Result<(), String> {
    let quick = args.quick;
    let settings = Settings {
        seconds: args.seconds.unwrap_or(if quick { 0.5 } else { 5.0 }),
        warm_up_seconds: args.warm_up_seconds.unwrap_or(if quick { 0.2 } else { 1.0 }),
        rounds: args.rounds.unwrap_or(if quick { 1 } else { 3 }).max(1),
        quick,
        server_cpus: Vec::new(),
        client_cpus: Vec::new(),
        tls: None,
    };
    let (client_cpus, server_cpus) = split_cpus(args.client_cpus.clone(), args.server_cpus.clone());
    let dir = std::path::absolute(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
    let tls = match args.tls {
        true => {
            std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            let files = servers::make_tls_files(&dir.join("tls"))?;
            let client = loadgen::tls::Tls::trusting("127.0.0.1", &files.cert)?;
            Some((files, client))
        }
        false => None,
    };
    let settings = Settings { server_cpus, client_cpus, tls, ..settings };
    let nofile = idle::raise_nofile_limit();
    let idle_asked = args.idle_connections.unwrap_or(if quick { 1000 } else { 10_000 });
    let idle_connections = idle_asked.min(nofile.saturating_sub(NOFILE_SPARE) as usize);
    engine::runtime::probe().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let nginx = nginx_available(&args);
    println!(
        "# corestore serve vs {}, loopback, generator on cpus {:?}, server on cpus {:?} (one corestore core / nginx worker each), {} s per run after {} s warm-up, median of {} interleaved rounds",
        nginx.as_ref().map_or_else(|e| format!("nginx (skipped: {e})"), |(_, version, _)| version.clone()),
        settings.client_cpus,
        settings.server_cpus,
        settings.seconds,
        settings.warm_up_seconds,
        settings.rounds,
    );
    println!("# machine: {}", machine::describe(&dir.join("data")));
    println!("# corestore requests are SigV4-signed (UNSIGNED-PAYLOAD) by the generator; nginx gets the same requests unsigned (it has no auth)");
    if settings.tls.is_some() {
        println!("# HTTPS for both (one self-signed ECDSA P-256 certificate; the generator is rustls with aws-lc-rs, corestore rustls, nginx OpenSSL)");
    }
    if idle_connections < idle_asked {
        println!("# idle connections: {idle_connections} of {idle_asked} asked (open-file limit {nofile})");
    }
    let selected: Vec<Workload> = workloads().into_iter().filter(|w| args.only.as_ref().is_none_or(|o| w.name.contains(o.as_str()))).collect();
    let corestore = servers::start_corestore(&dir.join("corestore-data"), &settings.server_cpus, settings.server_tls())?;
    create_bucket(&corestore, &settings)?;
    if args.versioned {
        let target = loadgen::runner::Target {
            hosts: vec![loadgen::runner::Host { name: corestore.addr.to_string(), addr: corestore.addr }],
            bucket: BUCKET.into(),
            credentials: Some(servers::credentials()),
            payload: loadgen::request::Payload::Unsigned,
            tls: settings.client_tls().into_iter().collect(),
            sse: Default::default(),
        };
        loadgen::control::Control::new(&target).set_versioning("Enabled")?;
        println!("# corestore's bucket has versioning enabled");
    }
    // The idle connections GET a 4 KiB object: its workload's objects exist even when left out.
    let mut filled: Vec<Workload> = workloads().into_iter().filter(|w| w.name == IDLE_OBJECTS_FROM || selected.iter().any(|s| s.name == w.name)).collect();
    filled.sort_by_key(|w| w.name);
    let root = dir.join("nginx-root");
    prepare_nginx_root(&root, &filled, quick)?;
    for w in &filled {
        fill_corestore(&corestore, w, &settings)?;
    }
    let nginx = nginx.and_then(|(path, version, dav)| {
        servers::start_nginx(&path, &dir.join("nginx"), &root, &settings.server_cpus, dav, settings.server_tls()).map(|s| (s, version, dav))
    });
    let mut rows = Vec::new();
    for w in &selected {
        let row = run_workload(w, &settings, &corestore, &nginx)?;
        row.print_json();
        rows.push(row);
    }
    let idle_rows = if args.only.as_ref().is_none_or(|o| "idle-connections".contains(o.as_str())) {
        let signer = loadgen::sign::Signer::new(servers::credentials());
        let path = format!("/{BUCKET}/{}", filled.iter().find(|w| w.name == IDLE_OBJECTS_FROM).expect("filled above").key(0));
        let answer_timeout = if quick { IDLE_ANSWER_TIMEOUT_QUICK } else { IDLE_ANSWER_TIMEOUT };
        let tls = settings.client_tls();
        let c = idle::measure(&corestore, idle_connections, &path, Some(&signer), tls.as_ref(), answer_timeout);
        let n = nginx.as_ref().map(|(s, _, _)| idle::measure(s, idle_connections, &path, None, tls.as_ref(), answer_timeout)).map_err(|e| e.clone());
        let idle = IdleRow { corestore: c, nginx: n };
        idle.print_json();
        Some(idle)
    } else {
        None
    };
    print_table(&rows, idle_rows.as_ref());
    print_summary(&rows, idle_rows.as_ref());
    Ok(())
}

/// Generator on the lower half of the allowed cpus, server on the upper half; one cpu: both on it.
fn split_cpus(client: Option<Vec<usize>>, server: Option<Vec<usize>>) -> (Vec<usize>, Vec<usize>) {
    let allowed = engine::runtime::allowed_cpus();
    let half = (allowed.len() / 2).max(1);
    let default_client = allowed[..half].to_vec();
    let default_server = if allowed.len() > 1 { allowed[half..].to_vec() } else { allowed.clone() };
    (client.unwrap_or(default_client), server.unwrap_or(default_server))
}

/// nginx's path, version and WebDAV support, or why it is skipped.
fn nginx_available(args: &S3Args) -> Result<(PathBuf, String, bool), String> {
    if args.no_nginx {
        return Err("left out (--no-nginx)".into());
    }
    let mut found = servers::find_nginx();
    if found.is_none() && args.install_nginx {
        eprintln!("corestore-bench: installing nginx (apt-get install -y nginx) ...");
        let status = std::process::Command::new("apt-get").args(["install", "-y", "nginx"]).status();
        if !matches!(status, Ok(s) if s.success()) {
            return Err(format!("`apt-get install -y nginx` failed: {status:?}"));
        }
        found = servers::find_nginx();
    }
    let path = found.ok_or("nginx not found on PATH or in /usr/sbin: install it with `apt-get install -y nginx` (or pass --install-nginx)")?;
    let (version, dav) = servers::nginx_build(&path)?;
    Ok((path, version, dav))
}

fn signed_request(server: &Server, settings: &Settings, method: Method, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let signer = loadgen::sign::Signer::new(servers::credentials());
    let unix_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let mut request = Vec::new();
    loadgen::http::build_request(&mut request, method, path, &server.addr.to_string(), Some(&signer), unix_s, body);
    let tls = settings.client_tls();
    let mut stream = loadgen::tls::connect_blocking(server.addr, tls.as_ref(), Duration::from_secs(60)).map_err(|e| format!("connect to {}: {e}", server.addr))?;
    loadgen::http::request_blocking(&mut stream, &request)
}

fn create_bucket(server: &Server, settings: &Settings) -> Result<(), String> {
    match signed_request(server, settings, Method::Put(0), &format!("/{BUCKET}"), &[])? {
        (200, _) => Ok(()),
        (status, body) => Err(format!("corestore: create bucket {BUCKET}: status {status}: {}", String::from_utf8_lossy(&body))),
    }
}

/// nginx's copy of every object: the same bytes the generator's PUTs send (see `loadgen`).
fn prepare_nginx_root(root: &Path, selected: &[Workload], quick: bool) -> Result<(), String> {
    if root.exists() {
        std::fs::remove_dir_all(root).map_err(|e| format!("removing {}: {e}", root.display()))?;
    }
    for w in selected {
        let dir = root.join(BUCKET).join(w.name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let body = loadgen::body(w.object_bytes);
        for i in 0..w.key_count(quick) {
            let path = root.join(BUCKET).join(w.key(i));
            std::fs::write(&path, &body).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Puts every key of `w` into corestore once.
fn fill_corestore(server: &Server, w: &Workload, settings: &Settings) -> Result<(), String> {
    let spec = Spec {
        target: Target { addr: server.addr, bucket: BUCKET.into(), credentials: Some(servers::credentials()), tls: settings.client_tls() },
        method: Method::Put(w.object_bytes),
        keys: (0..w.key_count(settings.quick)).map(|i| w.key(i)).collect::<Vec<_>>().into(),
        connections: FILL_CONNECTIONS,
        cpus: settings.client_cpus.clone(),
        mode: Mode::EachKeyOnce,
    };
    let report = loadgen::run(&spec, None)?;
    if report.errors > 0 {
        return Err(format!("corestore: filling {}: {} errors, first: {}", w.name, report.errors, report.first_error.unwrap_or_default()));
    }
    if report.requests != spec.keys.len() as u64 {
        return Err(format!("corestore: filling {}: {} of {} objects put", w.name, report.requests, spec.keys.len()));
    }
    Ok(())
}

fn run_one(server: &Server, credentials: Option<loadgen::sign::Credentials>, w: &Workload, settings: &Settings) -> Result<Measured, String> {
    let keys: Arc<[String]> = (0..w.key_count(settings.quick)).map(|i| w.key(i)).collect::<Vec<_>>().into();
    let spec = Spec {
        target: Target { addr: server.addr, bucket: BUCKET.into(), credentials, tls: settings.client_tls() },
        method: w.method,
        keys,
        connections: w.connections,
        cpus: settings.client_cpus.clone(),
        mode: Mode::Timed {
            warm_up: Duration::from_secs_f64(settings.warm_up_seconds),
            duration: Duration::from_secs_f64(settings.seconds),
        },
    };
    let pids = server.pids();
    let sample = move || vec![pids.iter().map(|&p| servers::proc_cpu_ns(p)).sum::<u64>(), servers::machine_busy_ns().0, servers::machine_busy_ns().1];
    let r = loadgen::run(&spec, Some(&sample))?;
    if r.errors > 0 {
        return Err(format!("{} {}: {} failed requests, first: {}", server.name, w.name, r.errors, r.first_error.unwrap_or_default()));
    }
    if r.requests == 0 {
        return Err(format!("{} {}: no request completed in {} s", server.name, w.name, settings.seconds));
    }
    let window_ns = r.window.as_nanos() as f64;
    let sampled = r.sampled.clone().unwrap_or_default();
    let at = |i: usize| sampled.get(i).copied().unwrap_or(0);
    let (server_ns, busy_ns, softirq_ns) = (at(0), at(1), at(2));
    let cpus = engine::runtime::allowed_cpus().len() as f64;
    Ok(Measured {
        requests_per_s: r.requests_per_s(),
        bytes_per_s: r.bytes_per_s(),
        latency_ns_p50: r.latency_ns_at(0.50),
        latency_ns_p99: r.latency_ns_at(0.99),
        latency_ns_p999: r.latency_ns_at(0.999),
        generator_cpu_share: r.generator_cpu_share(settings.client_cpus.len()),
        server_cpu_share: server_ns as f64 / (window_ns * settings.server_cpus.len() as f64),
        others_cpu_share: busy_ns.saturating_sub(server_ns + r.generator_cpu_ns) as f64 / (window_ns * cpus),
        softirq_cpu_share: softirq_ns as f64 / (window_ns * cpus),
    })
}

struct Row {
    name: &'static str,
    metric: Metric,
    connections: usize,
    goal_min: Option<f64>,
    p99_ratio_goal_max: Option<f64>,
    corestore: Measured,
    nginx: Result<Measured, String>,
}

fn run_workload(w: &Workload, settings: &Settings, corestore: &Server, nginx: &Result<(Server, String, bool), String>) -> Result<Row, String> {
    let (mut cs, mut ns) = (Vec::new(), Vec::new());
    let nginx_server = match nginx {
        Err(e) => Err(e.clone()),
        Ok((_, _, false)) if matches!(w.method, Method::Put(_)) => {
            Err("this nginx build has no WebDAV module (nginx -V lacks --with-http_dav_module): no PUT".to_string())
        }
        Ok((s, _, _)) => Ok(s),
    };
    for _ in 0..settings.rounds {
        cs.push(run_one(corestore, Some(servers::credentials()), w, settings)?);
        if let Ok(s) = &nginx_server {
            ns.push(run_one(s, None, w, settings)?);
        }
    }
    let corestore = median(cs, w.metric);
    let nginx = nginx_server.map(|_| median(ns, w.metric));
    Ok(Row { name: w.name, metric: w.metric, connections: w.connections, goal_min: w.goal_min, p99_ratio_goal_max: w.p99_ratio_goal_max, corestore, nginx })
}

/// The run whose headline metric is the median (the upper one of an even count).
fn median(mut runs: Vec<Measured>, metric: Metric) -> Measured {
    assert!(!runs.is_empty());
    runs.sort_by(|a, b| a.metric(metric).total_cmp(&b.metric(metric)));
    runs.swap_remove(runs.len() / 2)
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.nginx.as_ref().ok().map(|n| self.corestore.metric(self.metric) / n.metric(self.metric))
    }
    fn p99_ratio(&self) -> Option<f64> {
        self.nginx.as_ref().ok().map(|n| self.corestore.latency_ns_p99 as f64 / n.latency_ns_p99.max(1) as f64)
    }
    fn meets_goal(&self) -> Option<bool> {
        let ratio_ok = match (self.goal_min, self.ratio()) {
            (Some(goal), Some(r)) => Some(r >= goal),
            _ => None,
        };
        let p99_ok = match (self.p99_ratio_goal_max, self.p99_ratio()) {
            (Some(goal), Some(r)) => Some(r <= goal),
            _ => None,
        };
        match (ratio_ok, p99_ok) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(true) && b.unwrap_or(true)),
        }
    }
    fn unit(&self) -> &'static str {
        match self.metric {
            Metric::RequestsPerS => "req/s",
            Metric::BytesPerS => "GB/s",
        }
    }
    fn show(&self, m: &Measured) -> String {
        match self.metric {
            Metric::RequestsPerS => format!("{:.0}", m.requests_per_s),
            Metric::BytesPerS => format!("{:.3}", m.bytes_per_s / 1e9),
        }
    }

    fn print_json(&self) {
        let c = &self.corestore;
        let n = self.nginx.as_ref().ok();
        let line = json!({
            "bench": "s3",
            "workload": self.name,
            "metric": match self.metric { Metric::RequestsPerS => "requests_per_s", Metric::BytesPerS => "bytes_per_s" },
            "corestore": c.metric(self.metric),
            "nginx": n.map(|n| n.metric(self.metric)),
            "ratio": self.ratio(),
            "goal_min": self.goal_min,
            "p99_ratio": self.p99_ratio(),
            "p99_ratio_goal_max": self.p99_ratio_goal_max,
            "meets_goal": self.meets_goal(),
            "nginx_skipped": self.nginx.as_ref().err(),
            "connections": self.connections,
            "corestore_requests_per_s": c.requests_per_s,
            "corestore_bytes_per_s": c.bytes_per_s,
            "corestore_latency_ns_p50": c.latency_ns_p50,
            "corestore_latency_ns_p99": c.latency_ns_p99,
            "corestore_latency_ns_p999": c.latency_ns_p999,
            "corestore_generator_cpu_share": c.generator_cpu_share,
            "corestore_server_cpu_share": c.server_cpu_share,
            "corestore_others_cpu_share": c.others_cpu_share,
            "corestore_softirq_cpu_share": c.softirq_cpu_share,
        });
        let nginx = json!({
            "nginx_requests_per_s": n.map(|n| n.requests_per_s),
            "nginx_bytes_per_s": n.map(|n| n.bytes_per_s),
            "nginx_latency_ns_p50": n.map(|n| n.latency_ns_p50),
            "nginx_latency_ns_p99": n.map(|n| n.latency_ns_p99),
            "nginx_latency_ns_p999": n.map(|n| n.latency_ns_p999),
            "nginx_generator_cpu_share": n.map(|n| n.generator_cpu_share),
            "nginx_server_cpu_share": n.map(|n| n.server_cpu_share),
            "nginx_others_cpu_share": n.map(|n| n.others_cpu_share),
            "nginx_softirq_cpu_share": n.map(|n| n.softirq_cpu_share),
        });
        println!("{}", merge(line, nginx));
    }
}

/// One JSON object from two (serde_json's macro recursion limit keeps literals small).
fn merge(mut a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

struct IdleRow {
    corestore: idle::IdleReport,
    nginx: Result<idle::IdleReport, String>,
}

impl IdleRow {
    fn print_json(&self) {
        let c = &self.corestore;
        let n = self.nginx.as_ref().ok();
        let line = json!({
            "bench": "s3",
            "workload": "idle-connections",
            "metric": "server_rss_bytes_per_connection",
            "corestore": c.bytes_per_connection(),
            "nginx": n.map(|n| n.bytes_per_connection()),
            "goal_max": IDLE_BYTES_PER_CONNECTION_GOAL,
            "meets_goal": c.answered == c.asked && c.bytes_per_connection() <= IDLE_BYTES_PER_CONNECTION_GOAL,
            "nginx_skipped": self.nginx.as_ref().err(),
            "connections": c.asked,
            "corestore_connected": c.connected,
            "corestore_answered": c.answered,
            "corestore_held": c.held,
            "corestore_shortfall": c.shortfall,
            "corestore_rss_kib_before": c.rss_kib_before,
            "corestore_rss_kib_after": c.rss_kib_after,
            "nginx_answered": n.map(|n| n.answered),
            "nginx_held": n.map(|n| n.held),
            "nginx_shortfall": n.and_then(|n| n.shortfall.clone()),
            "nginx_rss_kib_before": n.map(|n| n.rss_kib_before),
            "nginx_rss_kib_after": n.map(|n| n.rss_kib_after),
        });
        println!("{line}");
    }
}

fn print_table(rows: &[Row], idle: Option<&IdleRow>) {
    println!();
    println!("| workload | conns | unit | corestore | nginx | corestore/nginx | goal | p50 µs c / n | p99 µs c / n | p99 ratio | p999 µs c / n | generator cpu c / n | server cpu c / n | softirq c / n | others c / n |");
    println!("|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let us = |ns: u64| format!("{:.0}", ns as f64 / 1e3);
    let pct = |share: f64| format!("{:.0}%", share * 100.0);
    for r in rows {
        let c = &r.corestore;
        let goal = match (r.goal_min, r.p99_ratio_goal_max) {
            (Some(g), Some(p)) => format!("≥ {g}, p99 ≤ {p}×"),
            (Some(g), None) => format!("≥ {g}"),
            _ => "-".into(),
        };
        let (nginx, ratio, p50, p99, p99_ratio, p999, gen_cpu, srv_cpu, softirq, others) = match &r.nginx {
            Ok(n) => (
                r.show(n),
                format!("{:.3}", r.ratio().unwrap_or(0.0)),
                format!("{} / {}", us(c.latency_ns_p50), us(n.latency_ns_p50)),
                format!("{} / {}", us(c.latency_ns_p99), us(n.latency_ns_p99)),
                format!("{:.2}", r.p99_ratio().unwrap_or(0.0)),
                format!("{} / {}", us(c.latency_ns_p999), us(n.latency_ns_p999)),
                format!("{} / {}", pct(c.generator_cpu_share), pct(n.generator_cpu_share)),
                format!("{} / {}", pct(c.server_cpu_share), pct(n.server_cpu_share)),
                format!("{} / {}", pct(c.softirq_cpu_share), pct(n.softirq_cpu_share)),
                format!("{} / {}", pct(c.others_cpu_share), pct(n.others_cpu_share)),
            ),
            Err(e) => (
                format!("skipped: {e}"),
                "-".into(),
                us(c.latency_ns_p50),
                us(c.latency_ns_p99),
                "-".into(),
                us(c.latency_ns_p999),
                pct(c.generator_cpu_share),
                pct(c.server_cpu_share),
                pct(c.softirq_cpu_share),
                pct(c.others_cpu_share),
            ),
        };
        println!("| {} | {} | {} | {} | {nginx} | {ratio} | {goal} | {p50} | {p99} | {p99_ratio} | {p999} | {gen_cpu} | {srv_cpu} | {softirq} | {others} |", r.name, r.connections, r.unit(), r.show(c));
    }
    if let Some(i) = idle {
        let c = &i.corestore;
        let n = match &i.nginx {
            Ok(n) => format!("{:.1}", n.bytes_per_connection() / 1024.0),
            Err(e) => format!("skipped: {e}"),
        };
        let ratio = i.nginx.as_ref().map_or("-".into(), |n| format!("{:.2}", c.bytes_per_connection() / n.bytes_per_connection().max(1.0)));
        println!(
            "| idle-connections | {} | KiB RSS each | {:.1} | {n} | {ratio} | ≤ 64 KiB | - | - | - | - | - | - | - | - |",
            c.asked,
            c.bytes_per_connection() / 1024.0
        );
    }
}

fn print_summary(rows: &[Row], idle: Option<&IdleRow>) {
    for r in rows {
        if let Some(ok) = r.meets_goal() {
            println!("{}: corestore/nginx {:.3}, p99 ratio {:.2}: goal {}", r.name, r.ratio().unwrap_or(0.0), r.p99_ratio().unwrap_or(0.0), if ok { "met" } else { "NOT met" });
        }
    }
    if let Some(i) = idle {
        for (name, report) in [("corestore", Some(&i.corestore)), ("nginx", i.nginx.as_ref().ok())] {
            if let Some(shortfall) = report.and_then(|r| r.shortfall.as_ref()) {
                println!("idle connections, {name}: {shortfall}");
            }
        }
        let c = &i.corestore;
        println!(
            "idle connections: corestore holds {} of {} and answered {}, {:.1} KiB resident each (goal ≤ 64 KiB){}",
            c.held,
            c.asked,
            c.answered,
            c.bytes_per_connection() / 1024.0,
            i.nginx.as_ref().map_or(String::new(), |n| format!(", nginx {:.1} KiB each", n.bytes_per_connection() / 1024.0)),
        );
    }
    let min = rows.iter().filter_map(Row::ratio).fold(f64::INFINITY, f64::min);
    if min.is_finite() {
        println!("min ratio corestore/nginx: {min:.3}");
    } else {
        println!("min ratio corestore/nginx: - (no workload measured against nginx)");
    }
}
