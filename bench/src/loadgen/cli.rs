//! `corestore loadgen <mode>`: warp's modes, flags and defaults, run as prepare → benchmark →
//! report → cleanup.

use std::net::ToSocketAddrs as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use s3front::checksum::ChecksumAlgorithm;

use super::control::Control;
use super::report::{self, RunInfo};
use super::request::{Payload, Sse};
use super::runner::{self, AutoTerm, Host, PhaseResult, PhaseSpec, Target};
use super::sign::Credentials;
use super::work::{MixedShares, Work};

/// Characters of the random run id (prefix and JSON file name).
const RUN_ID_CHARS: usize = 8;
/// Smallest part S3 accepts (but for the last part of an upload).
const PART_BYTES_MIN: u64 = 5 << 20;

#[derive(Subcommand)]
pub enum LoadgenCommand {
    /// GET random objects of `--objects` uploaded first (warp get).
    Get(GetArgs),
    /// PUT new objects (warp put).
    Put(PutArgs),
    /// 45% GET, 30% STAT, 15% PUT, 10% DELETE on `--objects` uploaded first (warp mixed).
    Mixed(MixedArgs),
    /// HEAD random objects of `--objects` uploaded first (warp stat).
    Stat(StatArgs),
    /// List `--objects` uploaded first under one prefix per connection (warp list).
    List(ListArgs),
    /// Delete `--objects` uploaded first, `--batch` per multi-delete request (warp delete).
    Delete(DeleteArgs),
    /// Upload `--parts` parts of `--part.size` to one multipart upload (warp multipart).
    Multipart(MultipartArgs),
    /// Print a run's summary again from its JSON file and plot it (SVG).
    Analyze(super::analyze::AnalyzeArgs),
}

/// Flags every mode has (warp's names and defaults where warp has them).
#[derive(Args, Clone)]
pub struct CommonArgs {
    /// Server(s), `host:port`, comma-separated; connection `c` goes to host `c % hosts`.
    #[arg(long, env = "WARP_HOST", default_value = "127.0.0.1:9000", value_delimiter = ',')]
    host: Vec<String>,
    /// Access key; empty: anonymous requests (no signature), for servers without auth.
    #[arg(long, env = "WARP_ACCESS_KEY", default_value = "")]
    access_key: String,
    #[arg(long, env = "WARP_SECRET_KEY", default_value = "", hide_env_values = true)]
    secret_key: String,
    #[arg(long, env = "WARP_REGION", default_value = "us-east-1")]
    region: String,
    /// Bucket (created if missing). Only this run's objects (under `--prefix`) are removed.
    #[arg(long, default_value = "warp-benchmark-bucket")]
    bucket: String,
    /// HTTPS to every host (an `https://` host asks for it too). Certificates are checked
    /// against the system's roots; `SSL_CERT_FILE=ca.pem` adds one.
    #[arg(long, env = "WARP_TLS")]
    tls: bool,
    /// Skip TLS certificate checks (warp's flag; without TLS it changes nothing).
    #[arg(long)]
    insecure: bool,
    /// Concurrent operations (connections).
    #[arg(long, default_value_t = 20)]
    concurrent: usize,
    /// How long the benchmark phase runs: `5m`, `30s`, `1m30s`, `500ms`.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    duration: Duration,
    /// Stop early once throughput is stable (see `--autoterm.dur` and `--autoterm.pct`).
    #[arg(long)]
    autoterm: bool,
    /// With --autoterm: the last this-long of one-second throughputs must be stable.
    #[arg(long = "autoterm.dur", default_value = "10s", value_parser = parse_duration)]
    autoterm_dur: Duration,
    /// With --autoterm: each of those seconds within this percentage of their mean.
    #[arg(long = "autoterm.pct", default_value_t = 7.5)]
    autoterm_pct: f64,
    /// Leave the objects in place after the run.
    #[arg(long)]
    noclear: bool,
    /// Prefix of the run's object names [default: a random `<8 chars>/`].
    #[arg(long)]
    prefix: Option<String>,
    /// Upload with this checksum in an aws-chunked trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER):
    /// CRC32, CRC32C, CRC64NVME, SHA1 or SHA256.
    #[arg(long)]
    checksum: Option<String>,
    /// Server-side encryption with a customer key (SSE-C), random for the run (warp's flag):
    /// every upload and read of an object carries it.
    #[arg(long, conflicts_with = "sse_s3_encrypt")]
    encrypt: bool,
    /// Server-side encryption with the server's keys (SSE-S3, warp's flag) on every upload.
    #[arg(long = "sse-s3-encrypt")]
    sse_s3_encrypt: bool,
    /// Send bodies plain with UNSIGNED-PAYLOAD instead of signed aws-chunked.
    #[arg(long)]
    disable_sha256_payload: bool,
    /// Generator cores (threads, one io_uring each) [default: every allowed cpu, at most --concurrent].
    #[arg(long, conflicts_with = "cpus")]
    cores: Option<usize>,
    /// Generator cpus, comma-separated (pinned one core each).
    #[arg(long, value_delimiter = ',')]
    cpus: Option<Vec<usize>>,
    /// JSON file of the run [default: `loadgen-<mode>-<date>[<time>]-<id>.json`].
    #[arg(long, alias = "benchdata")]
    json: Option<PathBuf>,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Objects to upload before the benchmark.
    #[arg(long, default_value_t = 2500)]
    objects: usize,
    /// Object size: bytes or with KiB/MiB/GiB (KB/MB/GB are the same: sizes are base 2 as warp's).
    #[arg(long = "obj.size", default_value = "10MiB", value_parser = parse_size)]
    obj_size: u64,
    /// Do not upload: objects `<prefix><8-digit index>` for every index below --objects exist
    /// already (static files of a web server); nothing is created or removed.
    #[arg(long)]
    skip_prepare: bool,
}

#[derive(Args)]
pub struct PutArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[arg(long = "obj.size", default_value = "10MiB", value_parser = parse_size)]
    obj_size: u64,
}

#[derive(Args)]
pub struct MixedArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[arg(long, default_value_t = 2500)]
    objects: usize,
    #[arg(long = "obj.size", default_value = "10MiB", value_parser = parse_size)]
    obj_size: u64,
    #[arg(long = "get-distrib", default_value_t = 45)]
    get_distrib: u32,
    #[arg(long = "stat-distrib", default_value_t = 30)]
    stat_distrib: u32,
    #[arg(long = "put-distrib", default_value_t = 15)]
    put_distrib: u32,
    #[arg(long = "delete-distrib", default_value_t = 10)]
    delete_distrib: u32,
}

#[derive(Args)]
pub struct StatArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    #[arg(long = "obj.size", default_value = "1KB", value_parser = parse_size)]
    obj_size: u64,
    /// As for `get`: the objects exist already.
    #[arg(long)]
    skip_prepare: bool,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    #[arg(long = "obj.size", default_value = "1KB", value_parser = parse_size)]
    obj_size: u64,
}

#[derive(Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[arg(long, default_value_t = 25_000)]
    objects: usize,
    #[arg(long = "obj.size", default_value = "1KiB", value_parser = parse_size)]
    obj_size: u64,
    /// Objects per multi-delete request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
}

#[derive(Args)]
pub struct MultipartArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Parts to upload.
    #[arg(long, default_value_t = 200)]
    parts: u32,
    /// Part size (at least 5 MiB, as S3 wants for every part but the last).
    #[arg(long = "part.size", default_value = "5MiB", value_parser = parse_size)]
    part_size: u64,
    /// The object's name (not under --prefix).
    #[arg(long = "obj.name", default_value = "warp-multipart.bin")]
    obj_name: String,
}

/// Bytes from `10MiB`, `1KB`, `4096` (K, M, G with or without B/iB: all base 2, as warp's help
/// says).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let number: u64 = t[..digits].parse().map_err(|_| format!("size {text:?}: expected a number with an optional KiB/MiB/GiB"))?;
    let shift = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        unit => return Err(format!("size {text:?}: unknown unit {unit:?} (B, KiB, MiB, GiB)")),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("size {text:?} is too large"))
}

/// A duration as Go writes it: `5m`, `1m30s`, `10s`, `500ms`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut rest = text.trim();
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err("an empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().map_err(|_| format!("duration {text:?}: expected e.g. 5m, 30s, 1m30s"))?;
        let unit_len = rest[digits..].find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len() - digits);
        let seconds = match &rest[digits..digits + unit_len] {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            unit => return Err(format!("duration {text:?}: unknown unit {unit:?} (ms, s, m, h)")),
        };
        total += Duration::from_secs_f64(seconds);
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// Everything a run needs, checked.
struct Setup {
    mode: &'static str,
    target: Target,
    common: CommonArgs,
    cpus: Vec<usize>,
    prefix: String,
    run_id: String,
}

fn setup(mode: &'static str, common: CommonArgs) -> Result<Setup, String> {
    if common.concurrent == 0 {
        return Err("--concurrent must be at least 1".into());
    }
    if common.access_key.is_empty() != common.secret_key.is_empty() {
        return Err("--access-key and --secret-key go together (both empty: anonymous requests)".into());
    }
    let hosts = common.host.iter().map(|h| resolve(h)).collect::<Result<Vec<_>, _>>()?;
    let https = common.tls || common.host.iter().any(|h| h.trim().starts_with("https://"));
    let tls = if https { hosts.iter().map(|h| super::tls::Tls::new(&h.name, common.insecure)).collect::<Result<Vec<_>, _>>()? } else { Vec::new() };
    let credentials = (!common.access_key.is_empty()).then(|| Credentials {
        access_key: common.access_key.clone(),
        secret_key: common.secret_key.clone(),
        region: common.region.clone(),
    });
    let payload = match (&common.checksum, common.disable_sha256_payload) {
        (Some(_), true) => return Err("--checksum sends a trailer in aws-chunked; --disable-sha256-payload sends plain bodies: choose one".into()),
        (Some(name), false) => Payload::UnsignedTrailer(
            ChecksumAlgorithm::from_sdk_name(&name.to_ascii_uppercase()).ok_or_else(|| format!("--checksum {name}: CRC32, CRC32C, CRC64NVME, SHA1 or SHA256"))?,
        ),
        (None, true) => Payload::Unsigned,
        (None, false) if credentials.is_none() => Payload::Unsigned,
        // As warp's client (minio-go): signed chunks only over plain HTTP; over TLS the body is
        // sent as UNSIGNED-PAYLOAD, the channel protecting it.
        (None, false) if https => Payload::Unsigned,
        (None, false) => Payload::StreamingSigned,
    };
    let allowed = engine::runtime::allowed_cpus();
    let cpus = match (&common.cpus, common.cores) {
        (Some(list), _) => list.clone(),
        (None, Some(n)) if n == 0 || n > allowed.len() => return Err(format!("--cores {n}: this process may run on {} cpus ({allowed:?})", allowed.len())),
        (None, Some(n)) => allowed[..n].to_vec(),
        (None, None) => allowed[..allowed.len().min(common.concurrent)].to_vec(),
    };
    let run_id = run_id();
    let prefix = common.prefix.clone().unwrap_or_else(|| format!("{run_id}/"));
    let sse = if common.encrypt {
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key)).map_err(|e| format!("--encrypt: a random key from /dev/urandom: {e}"))?;
        Sse::customer(key)
    } else if common.sse_s3_encrypt {
        Sse::S3
    } else {
        Sse::None
    };
    let target = Target { hosts, bucket: common.bucket.clone(), credentials, payload, tls, sse };
    Ok(Setup { mode, target, common, cpus, prefix, run_id })
}

fn resolve(host: &str) -> Result<Host, String> {
    let https = host.trim().starts_with("https://");
    let name = host.trim().trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/').to_string();
    let default_port = if https { 443 } else { 80 };
    let with_port = if name.contains(':') { name.clone() } else { format!("{name}:{default_port}") };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("--host {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("--host {host}: no address"))?;
    Ok(Host { name, addr })
}

/// A random id of letters and digits (file names and prefixes of concurrent runs differ).
fn run_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut rng = engine::rng::Prng::new(nanos ^ u64::from(std::process::id()) << 40);
    (0..RUN_ID_CHARS).map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char).collect()
}

impl Setup {
    fn phase<'a>(&'a self, label: &'static str, work: &'a Work, object_bytes: u64, timed: bool) -> PhaseSpec<'a> {
        let c = &self.common;
        PhaseSpec {
            label,
            target: &self.target,
            work,
            object_bytes,
            concurrency: c.concurrent,
            cpus: &self.cpus,
            duration: timed.then_some(c.duration),
            autoterm: (timed && c.autoterm).then(|| AutoTerm { window_s: c.autoterm_dur.as_secs().max(1) as usize, tolerance: c.autoterm_pct / 100.0 }),
            progress: !c.quiet,
        }
    }

    /// `<prefix><index>` for `objects` objects (list: one sub-prefix per connection).
    fn keys(&self, objects: usize, per_connection: bool) -> Arc<[String]> {
        let c = self.common.concurrent;
        (0..objects)
            .map(|i| if per_connection { format!("{}{:04}/{i:08}", self.prefix, i % c) } else { format!("{}{i:08}", self.prefix) })
            .collect::<Vec<_>>()
            .into()
    }

    /// Uploads `keys` (each once): the time it took.
    fn prepare(&self, keys: &Arc<[String]>, object_bytes: u64) -> Result<f64, String> {
        Control::new(&self.target).ensure_bucket()?;
        let started = Instant::now();
        if keys.is_empty() {
            return Ok(0.0);
        }
        let work = Work::Fill { keys: keys.clone() };
        let result = runner::run_phase(&self.phase("prepare", &work, object_bytes, false))?;
        let put = result.stats.op(super::op::Op::Put);
        if result.stats.errors() > 0 || put.ops != keys.len() as u64 {
            return Err(format!(
                "prepare: {} of {} uploads failed ({} done); first: {}",
                result.stats.errors(),
                keys.len(),
                put.ops,
                result.stats.first_errors.first().map_or("-", String::as_str)
            ));
        }
        Ok(started.elapsed().as_secs_f64())
    }

    /// Removes the run's objects (everything under the prefix, plus `extra` keys).
    fn cleanup(&self, extra: &[String]) -> Result<(), String> {
        if self.common.noclear {
            return Ok(());
        }
        let control = Control::new(&self.target);
        let mut keys = control.list(&self.prefix)?;
        keys.extend_from_slice(extra);
        if !self.common.quiet {
            eprintln!("cleanup: deleting {} objects under {}/{}", keys.len(), self.target.bucket, self.prefix);
        }
        control.delete_all(&keys)
    }

    fn info(&self, object_bytes: u64, objects: u64) -> RunInfo {
        let c = &self.common;
        RunInfo {
            mode: self.mode.to_string(),
            command_line: command_line(),
            hosts: self.target.hosts.iter().map(|h| h.name.clone()).collect(),
            bucket: self.target.bucket.clone(),
            object_bytes,
            objects,
            concurrency: c.concurrent,
            cpus: self.cpus.clone(),
            signing: match (&self.target.credentials, &self.target.sse) {
                (None, _) => format!("anonymous, {}", self.target.payload.name()),
                (Some(_), Sse::None) => format!("SigV4, {}", self.target.payload.name()),
                (Some(_), sse) => format!("SigV4, {}, {}", self.target.payload.name(), sse.name()),
            },
            duration_s: c.duration.as_secs_f64(),
            autoterm: c.autoterm.then_some((c.autoterm_dur.as_secs_f64(), c.autoterm_pct)),
            prefix: self.prefix.clone(),
        }
    }

    /// Prints the summary, writes the JSON file; an error if the benchmark counted errors.
    fn report(&self, info: &RunInfo, result: &PhaseResult, prepare_s: f64) -> Result<(), String> {
        let doc = report::document(info, result, prepare_s);
        let path = self.common.json.clone().unwrap_or_else(|| default_json_name(self.mode, &self.run_id));
        let text = serde_json::to_string_pretty(&doc).map_err(|e| format!("encoding the run: {e}"))?;
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        print!("{}", report::summary(&doc)?);
        println!("Run written to {}", path.display());
        match result.stats.errors() {
            0 => Ok(()),
            n => Err(format!("{n} operations failed (counted above); first: {}", result.stats.first_errors.first().map_or("-", String::as_str))),
        }
    }
}

fn command_line() -> String {
    // Keys stay out of the record.
    let mut redact = false;
    let args: Vec<String> = std::env::args()
        .map(|a| {
            let shown = if redact { "*REDACTED*".to_string() } else if a.starts_with("--secret-key=") { "--secret-key=*REDACTED*".into() } else { a.clone() };
            redact = a == "--secret-key";
            shown
        })
        .collect();
    args.join(" ")
}

/// `loadgen-<mode>-<YYYY-MM-DD>[<HHMMSS>]-<id>.json`, in UTC (warp's benchdata name, ours).
fn default_json_name(mode: &str, run_id: &str) -> PathBuf {
    let unix_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let stamp = super::sign::amz_date(unix_s);
    let (date, time) = (&stamp[..8], &stamp[9..15]);
    PathBuf::from(format!("loadgen-{mode}-{}-{}-{}[{time}]-{}.json", &date[..4], &date[4..6], &date[6..8], &run_id[..4]))
}

pub fn run(command: LoadgenCommand) -> Result<(), String> {
    engine::runtime::probe().map_err(|e| e.to_string())?;
    match command {
        LoadgenCommand::Analyze(args) => super::analyze::analyze(args),
        LoadgenCommand::Get(a) => run_reads("get", a.common, a.objects, a.obj_size, a.skip_prepare, |keys| Work::Get { keys }),
        LoadgenCommand::Stat(a) => run_reads("stat", a.common, a.objects, a.obj_size, a.skip_prepare, |keys| Work::Stat { keys }),
        LoadgenCommand::Put(a) => run_put(a),
        LoadgenCommand::Mixed(a) => run_mixed(a),
        LoadgenCommand::List(a) => run_list(a),
        LoadgenCommand::Delete(a) => run_delete(a),
        LoadgenCommand::Multipart(a) => run_multipart(a),
    }
}

fn run_reads(mode: &'static str, common: CommonArgs, objects: usize, obj_size: u64, skip_prepare: bool, work: fn(Arc<[String]>) -> Work) -> Result<(), String> {
    if objects == 0 {
        return Err("--objects must be at least 1".into());
    }
    let s = setup(mode, common)?;
    let keys = s.keys(objects, false);
    let prepare_s = if skip_prepare { 0.0 } else { s.prepare(&keys, obj_size)? };
    let work = work(keys);
    let result = runner::run_phase(&s.phase("benchmark", &work, obj_size, true))?;
    let reported = s.report(&s.info(obj_size, objects as u64), &result, prepare_s);
    let cleaned = if skip_prepare { Ok(()) } else { s.cleanup(&[]) };
    reported.and(cleaned)
}

fn run_put(a: PutArgs) -> Result<(), String> {
    let s = setup("put", a.common)?;
    Control::new(&s.target).ensure_bucket()?;
    let work = Work::Put { prefix: s.prefix.clone() };
    let result = runner::run_phase(&s.phase("benchmark", &work, a.obj_size, true))?;
    let reported = s.report(&s.info(a.obj_size, 0), &result, 0.0);
    reported.and(s.cleanup(&[]))
}

fn run_mixed(a: MixedArgs) -> Result<(), String> {
    let shares = MixedShares { get: a.get_distrib, stat: a.stat_distrib, put: a.put_distrib, delete: a.delete_distrib };
    if shares.get + shares.stat + shares.put + shares.delete == 0 {
        return Err("the --*-distrib shares add up to 0".into());
    }
    if a.objects == 0 {
        return Err("--objects must be at least 1".into());
    }
    let s = setup("mixed", a.common)?;
    let keys = s.keys(a.objects, false);
    let prepare_s = s.prepare(&keys, a.obj_size)?;
    let work = Work::Mixed { keys, shares, prefix: s.prefix.clone() };
    let result = runner::run_phase(&s.phase("benchmark", &work, a.obj_size, true))?;
    let reported = s.report(&s.info(a.obj_size, a.objects as u64), &result, prepare_s);
    reported.and(s.cleanup(&[]))
}

fn run_list(a: ListArgs) -> Result<(), String> {
    if a.objects == 0 {
        return Err("--objects must be at least 1".into());
    }
    let s = setup("list", a.common)?;
    let keys = s.keys(a.objects, true);
    let prepare_s = s.prepare(&keys, a.obj_size)?;
    let prefixes: Arc<[String]> = (0..s.common.concurrent.min(a.objects)).map(|c| format!("{}{c:04}/", s.prefix)).collect::<Vec<_>>().into();
    let work = Work::List { prefixes };
    let result = runner::run_phase(&s.phase("benchmark", &work, a.obj_size, true))?;
    let reported = s.report(&s.info(a.obj_size, a.objects as u64), &result, prepare_s);
    reported.and(s.cleanup(&[]))
}

fn run_delete(a: DeleteArgs) -> Result<(), String> {
    if a.batch == 0 || a.objects == 0 {
        return Err("--batch and --objects must be at least 1".into());
    }
    let s = setup("delete", a.common)?;
    let keys = s.keys(a.objects, false);
    let prepare_s = s.prepare(&keys, a.obj_size)?;
    let work = Work::Delete { keys, batch: a.batch };
    let result = runner::run_phase(&s.phase("benchmark", &work, a.obj_size, true))?;
    let reported = s.report(&s.info(a.obj_size, a.objects as u64), &result, prepare_s);
    reported.and(s.cleanup(&[]))
}

fn run_multipart(a: MultipartArgs) -> Result<(), String> {
    if a.part_size < PART_BYTES_MIN {
        return Err(format!("--part.size {}: S3 wants at least 5 MiB per part", a.part_size));
    }
    if a.parts == 0 {
        return Err("--parts must be at least 1".into());
    }
    let s = setup("multipart", a.common)?;
    let control = Control::new(&s.target);
    control.ensure_bucket()?;
    let upload_id = control.create_multipart(&a.obj_name)?;
    let work = Work::Multipart { key: a.obj_name.clone(), upload_id: upload_id.clone(), parts: a.parts };
    let result = runner::run_phase(&s.phase("benchmark", &work, a.part_size, true))?;
    let finished = if result.parts.is_empty() {
        control.abort_multipart(&a.obj_name, &upload_id)
    } else {
        control.complete_multipart(&a.obj_name, &upload_id, &result.parts).map(|etag| {
            println!("multipart: {} parts completed as {}/{} (ETag {etag})", result.parts.len(), s.target.bucket, a.obj_name);
        })
    };
    let reported = s.report(&s.info(a.part_size, u64::from(a.parts)), &result, 0.0);
    let cleaned = if finished.is_ok() { s.cleanup(std::slice::from_ref(&a.obj_name)) } else { Ok(()) };
    finished.and(reported).and(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_as_warp() {
        for (text, bytes) in [("10MiB", 10 << 20), ("1KB", 1024), ("1KiB", 1024), ("4096", 4096), ("5 MiB", 5 << 20), ("1g", 1 << 30)] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        assert!(parse_size("10XB").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn parses_durations_as_go() {
        for (text, seconds) in [("5m", 300.0), ("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("1.5s", 1.5)] {
            assert_eq!(parse_duration(text), Ok(Duration::from_secs_f64(seconds)), "{text}");
        }
        for bad in ["", "5", "5x", "m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_json_names_look_like_warps() {
        let name = default_json_name("get", "abcd1234").display().to_string();
        assert!(name.starts_with("loadgen-get-20") && name.ends_with("]-abcd.json"), "{name}");
    }
}
