//! The `corestore` binary: the server (once the S3 front end exists), admin tools and the
//! benchmark entry point.
//!
//! Architecture invariant: a leaf. It may depend on every library crate; nothing depends on it,
//! and it does not depend on `bench` (it runs the `corestore-bench` binary beside it instead).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use engine::Env;

#[derive(Parser)]
#[command(name = "corestore", version, about = "corestore: a thread-per-core, io_uring S3-compatible object store")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the S3 server: every core accepts connections and serves the objects it owns.
    Serve {
        /// Data directory (created if missing).
        #[arg(long, default_value = "corestore-data")]
        data: PathBuf,
        /// Address to listen on (port 0: any free port, printed at start).
        #[arg(long, default_value = s3front::server::LISTEN_DEFAULT)]
        listen: std::net::SocketAddr,
        /// Cores to run on (default: every core this process may use). Fixed at the first start.
        #[arg(long)]
        cores: Option<usize>,
        #[arg(long, default_value = s3front::server::REGION_DEFAULT)]
        region: String,
        /// Domain for virtual-hosted-style requests (`<bucket>.<domain>`); repeatable.
        #[arg(long)]
        domain: Vec<String>,
        /// The root user's access key (with --secret-key); without it one is generated on the
        /// first start and kept in the data directory.
        #[arg(long, env = "CORESTORE_ACCESS_KEY", requires = "secret_key")]
        access_key: Option<String>,
        #[arg(long, env = "CORESTORE_SECRET_KEY", hide_env_values = true, requires = "access_key")]
        secret_key: Option<String>,
        /// Size of each core's segment files in MiB (preallocated; smaller for tests).
        #[arg(long, default_value_t = 1024, hide = true)]
        segment_mib: u64,
        /// Multipart uploads neither completed nor aborted after this many hours are aborted.
        #[arg(long, default_value_t = 168.0)]
        abandoned_upload_hours: f64,
        /// Memory per core for the cache of recently read objects (objects up to 4 MiB), in MiB.
        #[arg(long, default_value_t = 256)]
        cache_mib: usize,
        /// How fast each core's scrubber re-reads and verifies its stored data, in MiB/s (0: no
        /// scrubbing). What a pass finds is reported on stderr.
        #[arg(long, default_value_t = 16.0)]
        scrub_mib_per_s: f64,
        /// Seconds between the end of one scrub pass and the start of the next (the first begins
        /// a minute after start-up, or sooner if this is shorter).
        #[arg(long, default_value_t = 86_400.0)]
        scrub_every_s: f64,
        /// Seconds in a lifecycle rule's "day" (a bucket's expiration and upload-abort rules
        /// count days of this length, and round up to its boundaries; `x-amz-expiration` still
        /// names real days): shorter for tests only.
        #[arg(long, default_value_t = 86_400.0, hide = true)]
        lifecycle_day_s: f64,
        /// Seconds a client may leave a response unread (per MiB sent) before its connection is
        /// closed.
        #[arg(long, default_value_t = s3front::server::SEND_TIMEOUT.as_secs_f64())]
        send_timeout_s: f64,
        /// Serve HTTPS: the certificate chain, PEM, leaf first (with --tls-key). Without it,
        /// plain HTTP. SIGHUP reads both files again (a renewed certificate, no restart).
        #[arg(long, env = "CORESTORE_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
        #[arg(long, env = "CORESTORE_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Administration of a data directory (the server may be running).
    #[command(subcommand)]
    Admin(Admin),
    /// Checks that this kernel and process can run corestore (io_uring, ring flags, memlock).
    Doctor {
        /// Cores to start, as `serve` would.
        #[arg(long)]
        cores: Option<usize>,
    },
    /// Runs a benchmark (`corestore bench engine --help`); needs the corestore-bench binary
    /// built beside this one (`cargo build --release -p bench`).
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// A warp-compatible S3 load generator (`corestore loadgen get --help`): get, put, mixed,
    /// stat, list, delete, multipart, and `analyze FILE.json`. Runs the corestore-bench binary
    /// built beside this one (`cargo build --release -p bench`).
    #[command(disable_help_flag = true)]
    Loadgen {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Tools for tests and debugging.
    #[command(hide = true, subcommand)]
    Debug(Debug),
}

#[derive(Subcommand)]
enum Admin {
    /// Users and their keys.
    #[command(subcommand)]
    User(UserCommand),
    /// Writes a self-signed certificate and its key for `serve --tls-cert/--tls-key` (tests,
    /// a lab, a first try: clients must be told to trust the certificate itself, e.g.
    /// `AWS_CA_BUNDLE=DIR/cert.pem`). Production wants one from a real CA.
    TlsCert {
        /// Folder for cert.pem and key.pem (created; existing files are not overwritten).
        #[arg(long)]
        out: PathBuf,
        /// A name or IP address the certificate is valid for; repeatable.
        #[arg(long = "host", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])]
        hosts: Vec<String>,
        /// Days the certificate is valid from now.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Adds a user (or replaces its secret key).
    Add {
        #[arg(long, default_value = "corestore-data")]
        data: PathBuf,
        #[arg(long)]
        access_key: String,
        #[arg(long)]
        secret_key: String,
    },
    /// Lists the users' access keys.
    List {
        #[arg(long, default_value = "corestore-data")]
        data: PathBuf,
    },
    /// Removes a user.
    Remove {
        #[arg(long, default_value = "corestore-data")]
        data: PathBuf,
        #[arg(long)]
        access_key: String,
    },
}

#[derive(Subcommand)]
enum Debug {
    /// Writes to a one-core store until killed, printing `I key op len` before each put and
    /// `A key op lsn` once it is acknowledged (for the SIGKILL crash test).
    StoreLoad {
        #[arg(long)]
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 32)]
        writers: u64,
        #[arg(long, default_value_t = 64)]
        keys: u64,
        /// Op ids start here, so ids stay unique across runs on one directory.
        #[arg(long)]
        first_op: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            data,
            listen,
            cores,
            region,
            domain,
            access_key,
            secret_key,
            segment_mib,
            abandoned_upload_hours,
            cache_mib,
            scrub_mib_per_s,
            scrub_every_s,
            lifecycle_day_s,
            tls_cert,
            tls_key,
            send_timeout_s,
        } => {
            let root = access_key.zip(secret_key);
            let segment_bytes = segment_mib << 20;
            let durations = duration_s("--abandoned-upload-hours", abandoned_upload_hours * 3600.0)
                .and_then(|a| Ok((a, duration_s("--scrub-every-s", scrub_every_s)?)))
                .and_then(|(a, s)| Ok((a, s, duration_s("--lifecycle-day-s", lifecycle_day_s)?)));
            let durations = durations.and_then(|(a, s, l)| Ok((a, s, l, duration_s("--send-timeout-s", send_timeout_s)?)));
            let (abandoned_upload_after, scrub_every, lifecycle_day, send_timeout) = match durations {
                Ok(d) => d,
                Err(e) => return report(Err(e)),
            };
            let tls = tls_cert.zip(tls_key).map(|(cert, key)| s3front::server::TlsFiles { cert, key });
            let config = s3front::server::ServeConfig {
                data,
                listen,
                cores,
                region,
                domains: domain,
                root,
                segment_bytes,
                abandoned_upload_after,
                cache_bytes_per_core: cache_mib << 20,
                scrub_bytes_per_s: (scrub_mib_per_s.max(0.0) * (1u64 << 20) as f64) as u64,
                scrub_every,
                lifecycle_day,
                send_timeout,
                tls,
            };
            report(s3front::server::serve(config))
        }
        Command::Admin(Admin::User(cmd)) => report(admin_user(cmd)),
        Command::Admin(Admin::TlsCert { out, hosts, days }) => report(tls_cert(&out, hosts, days)),
        Command::Doctor { cores } => doctor(cores),
        Command::Bench { args } => bench(args),
        Command::Loadgen { args } => bench(std::iter::once("loadgen".to_string()).chain(args).collect()),
        Command::Debug(Debug::StoreLoad { dir, writers, keys, first_op }) => store_load(dir, writers, keys, first_op),
    }
}

/// A duration given in seconds on the command line: not negative, not NaN, not beyond what a
/// `Duration` holds.
fn duration_s(flag: &str, seconds: f64) -> Result<std::time::Duration, String> {
    if seconds < 0.0 {
        return Err(format!("{flag}: {seconds} is negative"));
    }
    std::time::Duration::try_from_secs_f64(seconds).map_err(|e| format!("{flag}: {seconds}: {e}"))
}

fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corestore: {e}");
            ExitCode::FAILURE
        }
    }
}

fn admin_user(cmd: UserCommand) -> Result<(), String> {
    use s3front::server::users;
    match cmd {
        UserCommand::Add { data, access_key, secret_key } => {
            users::upsert(&data, users::User { access_key: access_key.clone(), secret_key, root: false })?;
            println!("added user {access_key}");
        }
        UserCommand::List { data } => {
            for u in users::load(&data)? {
                println!("{}{}", u.access_key, if u.root { " (root)" } else { "" });
            }
        }
        UserCommand::Remove { data, access_key } => {
            users::remove(&data, &access_key)?;
            println!("removed user {access_key}");
        }
    }
    Ok(())
}

/// `admin tls-cert`: a self-signed certificate (P-256 ECDSA key) for `hosts`, valid from an
/// hour ago (clocks differ) for `days`.
#[allow(clippy::disallowed_methods)] // a certificate's validity is wall-clock time, outside any core
fn tls_cert(out: &std::path::Path, hosts: Vec<String>, days: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if hosts.is_empty() {
        return Err("admin tls-cert: name at least one --host".into());
    }
    let mut params = rcgen::CertificateParams::new(hosts.clone()).map_err(|e| format!("admin tls-cert: hosts {hosts:?}: {e}"))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, hosts[0].clone());
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "corestore self-signed");
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(u64::from(days) * 86_400)).into();
    let key = rcgen::KeyPair::generate().map_err(|e| format!("admin tls-cert: generate a key: {e}"))?;
    let cert = params.self_signed(&key).map_err(|e| format!("admin tls-cert: sign: {e}"))?;
    std::fs::create_dir_all(out).map_err(|e| format!("admin tls-cert: create {}: {e}", out.display()))?;
    // The key first, readable by its owner only; neither file may exist already.
    for (name, text, mode) in [("key.pem", key.serialize_pem(), 0o600), ("cert.pem", cert.pem(), 0o644)] {
        let path = out.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| format!("admin tls-cert: create {}: {e}", path.display()))?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| format!("admin tls-cert: write {}: {e}", path.display()))?;
    }
    println!("wrote {} and {} for {}, valid {days} days", out.join("cert.pem").display(), out.join("key.pem").display(), hosts.join(", "));
    Ok(())
}

fn doctor(cores: Option<usize>) -> ExitCode {
    let config = match cores {
        Some(n) => engine::RuntimeConfig::cores(n),
        None => Ok(engine::RuntimeConfig::all_cores()),
    };
    let result = config.and_then(|config| {
        let n = config.cpus.len();
        let arena_mib = config.arena.total_bytes() >> 20;
        // Start every core for real: ring flags, registered buffers, pinning, mesh.
        engine::run(config, |core: engine::Core<()>| async move { core.env.core() }).map(|_| (n, arena_mib))
    });
    match result {
        Ok((n, arena_mib)) => {
            println!(
                "ok: {n} cores started, each with an io_uring (SINGLE_ISSUER|DEFER_TASKRUN) and {arena_mib} MiB of registered buffers"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("corestore: cannot start: {e}");
            ExitCode::from(2)
        }
    }
}

/// Replaces this process with `corestore-bench ARGS` (beside this binary, else on PATH).
fn bench(args: Vec<String>) -> ExitCode {
    let exe = std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join("corestore-bench")));
    let exe = match exe {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("corestore-bench"),
    };
    let err = std::process::Command::new(&exe).args(&args).exec();
    eprintln!("corestore: running {}: {err}. Build it with `cargo build --release -p bench`.", exe.display());
    ExitCode::from(2)
}

/// The payload of op `op`: its length varies from 0 to 20 KB.
fn crash_payload(op: u64) -> Vec<u8> {
    let len = (op * 7919 % 20_000) as usize;
    let mut state = op;
    (0..len)
        .map(|_| {
            let (v, s) = engine::rng::splitmix64(state);
            state = s;
            v as u8
        })
        .collect()
}

fn store_load(dir: std::path::PathBuf, writers: u64, keys: u64, first_op: u64) -> ExitCode {
    let mut config = match engine::RuntimeConfig::cores(1) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corestore: {e}");
            return ExitCode::from(2);
        }
    };
    config.arena = engine::ArenaConfig {
        classes: vec![engine::ClassConfig { size_bytes: 4096, count: 256 }, engine::ClassConfig { size_bytes: 64 << 10, count: 64 }],
    };
    let result = engine::run(config, |core: engine::Core<()>| {
        let dir = dir.clone();
        async move {
            let store_config = engine::store::StoreConfig { dir, segment_bytes: 4 << 20, batch_bytes: 64 << 10 };
            let (store, _) = engine::store::Store::open(core.env.clone(), store_config).await.map_err(|e| e.to_string())?;
            let next_op = std::rc::Rc::new(std::cell::Cell::new(first_op));
            let tasks: Vec<_> = (0..writers)
                .map(|_| {
                    let (store, next_op, env) = (store.clone(), next_op.clone(), core.env.clone());
                    engine::spawn(async move {
                        loop {
                            let op = next_op.get();
                            next_op.set(op + 1);
                            let key = env.random_u64() % keys;
                            let data = crash_payload(op);
                            println!("I {key} {op} {}", data.len());
                            // Metadata: op id and a hash of the data, so a reader can check any object alone.
                            let mut meta = op.to_le_bytes().to_vec();
                            meta.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&data).to_le_bytes());
                            let lsn =
                                store.put(b"crash", format!("key-{key}").as_bytes(), &meta, &data).await.map_err(|e| e.to_string())?;
                            println!("A {key} {op} {lsn}");
                        }
                        #[allow(unreachable_code)]
                        Ok::<(), String>(())
                    })
                })
                .collect();
            for t in tasks {
                t.await?;
            }
            Ok::<(), String>(())
        }
    });
    match result {
        Ok(r) if r.iter().all(Result::is_ok) => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("corestore: {:?}", r.into_iter().find_map(Result::err));
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("corestore: {e}");
            ExitCode::from(2)
        }
    }
}
