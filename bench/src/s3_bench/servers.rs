//! The two servers `corestore bench s3` measures, as child processes pinned to the server cpus:
//! `corestore serve` (the binary beside corestore-bench) and nginx from the distribution,
//! serving the same objects as static files. Each is stopped (SIGTERM, then SIGKILL) when its
//! handle drops. Their resident memory and CPU come from /proc.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::loadgen::sign::Credentials;

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped server may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The bench's root user on its own, fresh data directory.
pub const ACCESS_KEY: &str = "corestorebench";
pub const SECRET_KEY: &str = "corestore-bench-secret-key-0123456789abcdef";
pub const REGION: &str = "us-east-1";

pub fn credentials() -> Credentials {
    Credentials { access_key: ACCESS_KEY.into(), secret_key: SECRET_KEY.into(), region: REGION.into() }
}

/// A running server.
pub struct Server {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Child,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's processes: itself and its children (nginx's workers).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.pid()];
        pids.extend(children_of(self.pid()));
        pids
    }

    /// Open file descriptors of all its processes (sockets included).
    pub fn open_fds(&self) -> usize {
        self.pids().iter().map(|p| std::fs::read_dir(format!("/proc/{p}/fd")).map_or(0, |d| d.count())).sum()
    }

    /// Resident memory of all its processes, KiB.
    pub fn rss_kib(&self) -> u64 {
        self.pids().iter().map(|&p| proc_rss_kib(p)).sum()
    }

    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!("{} exited: {status}", self.name)),
            _ => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pins the child (and whatever it starts) to `cpus` before it runs, and ties its life to ours.
pub fn pin_child(command: &mut Command, cpus: &[usize]) {
    let cpus = cpus.to_vec();
    // SAFETY: sched_setaffinity is async-signal-safe; the set lives on the stack.
    unsafe {
        command.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in &cpus {
                libc::CPU_SET(c, &mut set);
            }
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // If the bench dies without stopping it (a panic aborts), the server goes too.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

impl Server {
    /// Starts `command` (a server that listens on `addr` once ready) pinned to `cpus`, and waits
    /// until it accepts connections. Its handle stops it when dropped, on every path.
    pub fn spawn(name: &'static str, mut command: Command, addr: SocketAddr, cpus: &[usize]) -> Result<Server, String> {
        pin_child(&mut command, cpus);
        let child = command.spawn().map_err(|e| format!("starting {name} ({:?}): {e}", command.get_program()))?;
        let mut server = Server { name, addr, child };
        wait_connectable(&mut server)?;
        Ok(server)
    }
}

/// A certificate and key for both servers of a TLS run (`corestore admin tls-cert`,
/// self-signed, for 127.0.0.1 and localhost).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes a fresh certificate into `dir` (removed first).
pub fn make_tls_files(dir: &Path) -> Result<TlsFiles, String> {
    let exe = corestore_exe()?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
    }
    let out = Command::new(&exe)
        .args(["admin", "tls-cert", "--host", "127.0.0.1", "--host", "localhost", "--out"])
        .arg(dir)
        .output()
        .map_err(|e| format!("{} admin tls-cert: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!("corestore admin tls-cert: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") })
}

fn corestore_exe() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?.with_file_name("corestore");
    if !exe.exists() {
        return Err(format!("{} not found: build it with `cargo build --release -p tools`", exe.display()));
    }
    Ok(exe)
}

/// Starts `corestore serve` on a fresh data directory `data`, on `cpus`, one core each; HTTPS
/// with `tls`.
pub fn start_corestore(data: &Path, cpus: &[usize], tls: Option<&TlsFiles>) -> Result<Server, String> {
    let exe = corestore_exe()?;
    if data.exists() {
        std::fs::remove_dir_all(data).map_err(|e| format!("removing {}: {e}", data.display()))?;
    }
    let mut command = Command::new(&exe);
    command
        .arg("serve")
        .arg("--data")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--cores", &cpus.len().to_string(), "--region", REGION])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .args(tls.map(|t| [OsStr::new("--tls-cert"), t.cert.as_os_str(), OsStr::new("--tls-key"), t.key.as_os_str()]).into_iter().flatten())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    pin_child(&mut command, cpus);
    let mut child = command.spawn().map_err(|e| format!("starting {}: {e}", exe.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    // Reads the server's stdout to its end, so that it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let addr = line.strip_prefix("corestore: listening on http://").or_else(|| line.strip_prefix("corestore: listening on https://"));
            if let Some(addr) = addr {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let mut server = Server { name: "corestore", addr: SocketAddr::from(([127, 0, 0, 1], 0)), child };
    let addr = match rx.recv_timeout(START_TIMEOUT) {
        Ok(a) => a,
        Err(_) => {
            server.check_alive()?;
            return Err(format!("corestore did not print its address within {START_TIMEOUT:?}"));
        }
    };
    server.addr = addr.parse().map_err(|e| format!("corestore's address {addr:?}: {e}"))?;
    // Core 0 prints once it listens; the others bind right after it.
    wait_connectable(&mut server)?;
    Ok(server)
}

/// The nginx binary, on PATH or in /usr/sbin (where Debian puts it, outside a user's PATH).
pub fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]).map(|d| d.join("nginx")).find(|p| p.is_file())
}

/// nginx's version line and whether it was built with the WebDAV module (PUT).
pub fn nginx_build(nginx: &Path) -> Result<(String, bool), String> {
    let out = Command::new(nginx).arg("-V").output().map_err(|e| format!("{} -V: {e}", nginx.display()))?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next().unwrap_or("nginx").trim().trim_start_matches("nginx version: ").to_string();
    Ok((version, text.contains("--with-http_dav_module")))
}

/// Starts nginx with a generated configuration in `dir`, serving `root`, one worker per cpu;
/// HTTPS with `tls` (nginx's defaults: TLS 1.2 and 1.3, OpenSSL's cipher order).
pub fn start_nginx(nginx: &Path, dir: &Path, root: &Path, cpus: &[usize], dav: bool, tls: Option<&TlsFiles>) -> Result<Server, String> {
    let port = free_port()?;
    let temp = dir.join("temp");
    std::fs::create_dir_all(&temp).map_err(|e| format!("creating {}: {e}", temp.display()))?;
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 { "user root;\n" } else { "" };
    let put = if dav { "dav_methods PUT; create_full_put_path on; client_max_body_size 16m;" } else { "" };
    let t = temp.display();
    let ssl = match tls {
        Some(f) => format!(" ssl;\n    ssl_certificate {};\n    ssl_certificate_key {}", f.cert.display(), f.key.display()),
        None => String::new(),
    };
    let config = format!(
        "{user}daemon off;\nmaster_process on;\nworker_processes {workers};\nerror_log stderr;\npid {pid};\n\
         events {{ worker_connections 20000; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n  keepalive_timeout 300s;\n\
         \x20 client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fastcgi;\n\
         \x20 uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n  types {{ }}\n  default_type application/octet-stream;\n\
         \x20 server {{\n    listen 127.0.0.1:{port}{ssl};\n    root {root};\n    location / {{ {put} }}\n  }}\n}}\n",
        workers = cpus.len(),
        pid = dir.join("nginx.pid").display(),
        root = root.display(),
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config).map_err(|e| format!("writing {}: {e}", conf.display()))?;
    let mut command = Command::new(nginx);
    command.arg("-p").arg(dir).arg("-c").arg(&conf).args(["-e", "stderr"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
    pin_child(&mut command, cpus);
    let child = command.spawn().map_err(|e| format!("starting {}: {e}", nginx.display()))?;
    let mut server = Server { name: "nginx", addr: SocketAddr::from(([127, 0, 0, 1], port)), child };
    wait_connectable(&mut server)?;
    // Every worker up (the workers are what serve and what we measure).
    let deadline = Instant::now() + START_TIMEOUT;
    while children_of(server.pid()).len() < cpus.len() {
        if Instant::now() > deadline {
            return Err(format!("nginx started {} of {} workers", children_of(server.pid()).len(), cpus.len()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(server)
}

pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding a free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| format!("free port: {e}"))
}

fn wait_connectable(server: &mut Server) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        server.check_alive()?;
        if std::net::TcpStream::connect(server.addr).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{} does not accept connections on {} after {START_TIMEOUT:?}", server.name, server.addr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fields of /proc/PID/stat after the command name (field 3 onwards).
fn proc_stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace().map(str::to_string).collect()
}

fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| proc_stat_fields(p).get(1).and_then(|pp| pp.parse::<u32>().ok()) == Some(pid))
        .collect()
}

pub fn proc_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// utime + stime of a process (all its threads), ns.
pub fn proc_cpu_ns(pid: u32) -> u64 {
    let f = proc_stat_fields(pid);
    // Fields 14 and 15 of stat; `f` starts at field 3.
    let ticks: u64 = [11, 12].iter().filter_map(|&i| f.get(i)?.parse::<u64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

/// Busy time of all cpus from /proc/stat, ns: (user, nice, system, irq, steal; softirq). Softirq
/// apart: on loopback most of TCP's receive path runs there, charged to no process.
pub fn machine_busy_ns() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next() else { return (0, 0) };
    let f: Vec<u64> = cpu.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let ticks = |fields: &[usize]| fields.iter().filter_map(|&i| f.get(i)).sum::<u64>();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (ticks(&[0, 1, 2, 5, 7]) * 1_000_000_000 / hz, ticks(&[6]) * 1_000_000_000 / hz)
}
