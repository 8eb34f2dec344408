//! Garage (crates.io `garage`) as a one-node cluster on loopback: a generated configuration, the
//! daemon, then its CLI to give the node a layout, import the bench's key and create the bucket.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{BUCKET, installed};
use crate::all::Run;
use crate::s3_bench::servers::{self, Server};

/// Garage's key ids are `GK` and 24 hex digits, its secrets 64 hex digits.
const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
const SECRET_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const RPC_SECRET: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
const REGION: &str = "garage";
/// The node's capacity in its layout; only a bound on what it accepts.
const CAPACITY: &str = "10G";
/// How long the node may take to answer its CLI after start (its RPC comes up after S3).
const CLI_READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Garage {
    pub server: Server,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

pub fn start(run: &Run, dir: &Path, cpus: &[usize]) -> Result<Garage, String> {
    let exe = installed(run, "garage", &["garage", "--locked"])?;
    let base = dir.join("garage");
    std::fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
    let (rpc_port, s3_port) = (servers::free_port()?, servers::free_port()?);
    let config = base.join("garage.toml");
    let text = format!(
        "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\nreplication_factor = 1\n\
         rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\nrpc_public_addr = \"127.0.0.1:{rpc_port}\"\nrpc_secret = \"{RPC_SECRET}\"\n\n\
         [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\nroot_domain = \".s3.garage.localhost\"\n",
        meta = base.join("meta").display(),
        data = base.join("data").display(),
    );
    std::fs::write(&config, text).map_err(|e| format!("writing {}: {e}", config.display()))?;
    let mut command = Command::new(&exe);
    command.arg("-c").arg(&config).arg("server").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let server = Server::spawn("garage", command, SocketAddr::from(([127, 0, 0, 1], s3_port)), cpus)?;
    let cli = |args: &[&str]| garage_cli(&exe, &config, args);
    let node = wait_node_id(&cli)?;
    cli(&["layout", "assign", "-z", "dc1", "-c", CAPACITY, &node])?;
    cli(&["layout", "apply", "--version", "1"])?;
    cli(&["key", "import", "--yes", "-n", "bench", ACCESS_KEY, SECRET_KEY])?;
    cli(&["bucket", "create", BUCKET])?;
    cli(&["bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", ACCESS_KEY])?;
    Ok(Garage { server, access_key: ACCESS_KEY.into(), secret_key: SECRET_KEY.into(), region: REGION.into() })
}

fn garage_cli(exe: &Path, config: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(exe)
        .arg("-c")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running garage {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("`garage {}` failed ({}): {}", args.join(" "), out.status, err.trim().lines().last().unwrap_or("")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The node's id (`garage node id -q` prints `<id>@<addr>`), once its RPC answers.
fn wait_node_id(cli: &dyn Fn(&[&str]) -> Result<String, String>) -> Result<String, String> {
    let deadline = Instant::now() + CLI_READY_TIMEOUT;
    loop {
        match cli(&["node", "id", "-q"]) {
            Ok(out) => {
                let id = out.trim().split('@').next().unwrap_or("").to_string();
                if !id.is_empty() {
                    return Ok(id);
                }
            }
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => {}
        }
        if Instant::now() > deadline {
            return Err("garage node id printed nothing".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
