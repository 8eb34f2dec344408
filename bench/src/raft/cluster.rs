//! The processes a raft benchmark starts: three `corestore-bench raft-node` replicas and a
//! 3-member etcd cluster, on loopback. Every child is killed (SIGKILL) and reaped when its
//! handle drops, so an error or a panic in the bench leaves nothing running; every child also
//! dies with the bench (PR_SET_PDEATHSIG), so an interrupted run leaves nothing either.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::node::core_addrs_arg;
use super::proto::{Answer, Client, NodeStatus, core_of};

/// Replicas of every group (and etcd members).
pub const REPLICAS: usize = 3;
/// The group the control path uses: waiting for a leader, elections, single proposals.
pub const GROUP: u64 = 1;
/// How long a control call (status, a single proposal) may take.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a cluster may take to start and elect a leader.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(5);

/// `n` distinct free loopback ports (bound together, then released for the children).
pub fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))).collect::<Result<_, _>>()?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port()).map_err(|e| format!("local_addr: {e}"))).collect()
}

/// A child process killed and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn spawn(mut command: Command, log: PathBuf) -> Result<Proc, String> {
        let file = std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        command.stdin(Stdio::null()).stdout(file).stderr(err);
        // The child dies with this process even when no destructor runs (SIGINT, SIGKILL of the
        // bench): etcd would otherwise keep its ports and data directory.
        // SAFETY: prctl is async-signal-safe and touches only the child being started.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| format!("starting {:?}: {e}", command.get_program()))?;
        Ok(Proc { child, log })
    }

    /// Errors if the process exited, with the end of its log.
    pub fn check_alive(&mut self, name: &str) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{name} exited ({status}); end of {}:\n{}", self.log.display(), log_tail(&self.log))),
            Err(e) => Err(format!("{name}: wait: {e}")),
        }
    }
}

pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// How the replicas run.
#[derive(Clone, Debug)]
pub struct ReplicaSetup {
    /// Replica i's cores are pinned to `cpus[i]` (one core per entry; every replica has as many).
    pub cpus: Vec<Vec<usize>>,
    /// Raft groups, spread over each replica's cores (`proto::core_of`).
    pub groups: u64,
    pub tick_ms: u64,
    pub writes_in_flight: usize,
    /// `raft-node --snapshot-entries`.
    pub snapshot_entries: u64,
}

impl ReplicaSetup {
    pub fn cores(&self) -> usize {
        self.cpus[0].len()
    }
}

/// Three corestore replicas, each a `raft-node` process.
pub struct Corestore {
    exe: PathBuf,
    pub dir: PathBuf,
    pub setup: ReplicaSetup,
    /// Replica i's Raft and client addresses, one per core.
    raft_addrs: Vec<Vec<SocketAddr>>,
    pub client_addrs: Vec<Vec<SocketAddr>>,
    procs: Vec<Option<Proc>>,
}

impl Corestore {
    /// Starts the replicas with their stores in `dir/node-N`.
    pub fn start(exe: &Path, dir: &Path, setup: &ReplicaSetup) -> Result<Corestore, String> {
        assert_eq!(setup.cpus.len(), REPLICAS);
        let cores = setup.cores();
        assert!(cores > 0 && setup.cpus.iter().all(|c| c.len() == cores), "every replica runs as many cores: {:?}", setup.cpus);
        let ports = free_ports(2 * REPLICAS * cores)?;
        let addrs: Vec<SocketAddr> = ports.iter().map(|&p| SocketAddr::from(([127, 0, 0, 1], p))).collect();
        let (raft, client) = addrs.split_at(REPLICAS * cores);
        let mut cluster = Corestore {
            exe: exe.to_path_buf(),
            dir: dir.to_path_buf(),
            setup: setup.clone(),
            raft_addrs: raft.chunks(cores).map(<[SocketAddr]>::to_vec).collect(),
            client_addrs: client.chunks(cores).map(<[SocketAddr]>::to_vec).collect(),
            procs: (0..REPLICAS).map(|_| None).collect(),
        };
        for i in 0..REPLICAS {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    fn peers(&self) -> String {
        self.raft_addrs.iter().enumerate().map(|(i, a)| format!("{}={}", i + 1, core_addrs_arg(a))).collect::<Vec<_>>().join(",")
    }

    /// Where clients of `group` connect on replica `i`: its owning core's port.
    pub fn client_addr(&self, i: usize, group: u64) -> SocketAddr {
        self.client_addrs[i][core_of(group, self.setup.cores())]
    }

    /// Starts replica `i` (id i+1) on its directory, recovering what is there.
    pub fn spawn(&mut self, i: usize) -> Result<(), String> {
        assert!(self.procs[i].is_none(), "replica {i} is running");
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        let mut command = Command::new(&self.exe);
        command
            .arg("raft-node")
            .args(["--id", &(i + 1).to_string(), "--peers", &self.peers()])
            .args(["--client-listen", &core_addrs_arg(&self.client_addrs[i])])
            .arg("--data")
            .arg(self.dir.join(format!("node-{}", i + 1)))
            .args(["--cpus", &self.setup.cpus[i].iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")])
            .args(["--groups", &self.setup.groups.to_string(), "--tick-ms", &self.setup.tick_ms.to_string()])
            .args(["--writes-in-flight", &self.setup.writes_in_flight.to_string()])
            .args(["--snapshot-entries", &self.setup.snapshot_entries.to_string()]);
        self.procs[i] = Some(Proc::spawn(command, self.dir.join(format!("node-{}.log", i + 1)))?);
        Ok(())
    }

    /// SIGKILL, and reaped: the process is gone when this returns.
    pub fn kill(&mut self, i: usize) {
        self.procs[i] = None;
    }

    /// SIGTERM: replica `i` hands its leadership over, closes its store and exits
    /// (`wait_stopped`).
    pub fn signal_stop(&mut self, i: usize) -> Result<(), String> {
        let p = self.procs[i].as_ref().ok_or_else(|| format!("raft node {} is not running", i + 1))?;
        // SAFETY: kill only sends a signal to our own child, which is not reaped yet.
        if unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) } != 0 {
            return Err(format!("SIGTERM to raft node {}: {}", i + 1, std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Waits up to `timeout` for replica `i` to exit after `signal_stop` (then kills it). Errors
    /// unless it exited with status 0, which it does only once another replica leads.
    pub fn wait_stopped(&mut self, i: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        // Dropped on every way out: reaped, or killed and reaped if it is still running.
        let mut p = self.procs[i].take().ok_or_else(|| format!("raft node {} is not running", i + 1))?;
        let status = loop {
            match p.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
                Ok(None) => {
                    return Err(format!(
                        "raft node {} did not exit within {timeout:?} of SIGTERM; end of its log:\n{}",
                        i + 1,
                        log_tail(&p.log)
                    ));
                }
                Err(e) => return Err(format!("raft node {}: wait: {e}", i + 1)),
            }
        };
        if !status.success() {
            return Err(format!("raft node {} stopped with {status}; end of its log:\n{}", i + 1, log_tail(&p.log)));
        }
        Ok(())
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.procs[i].is_some()
    }

    /// CPU time (user + system) replica `i`'s process used so far, from /proc/PID/stat.
    pub fn cpu_seconds(&self, i: usize) -> Option<f64> {
        let pid = self.procs[i].as_ref()?.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command (which may hold spaces) start at the last ')'; utime and
        // stime are fields 14 and 15 of the line, 12 and 13 after it.
        let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf reads a constant of the system.
        let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        (per_s > 0).then(|| ticks as f64 / per_s as f64)
    }

    pub fn check_alive(&mut self) -> Result<(), String> {
        self.check_alive_of(&(0..REPLICAS).collect::<Vec<_>>())
    }

    /// `check_alive` for replicas `which` only (a stopping one may exit meanwhile).
    pub fn check_alive_of(&mut self, which: &[usize]) -> Result<(), String> {
        for &i in which {
            if let Some(p) = &mut self.procs[i] {
                p.check_alive(&format!("raft node {}", i + 1))?;
            }
        }
        Ok(())
    }

    /// Replica `i`'s status of `GROUP`.
    pub fn status(&self, i: usize) -> Result<NodeStatus, String> {
        self.status_of(i, GROUP)
    }

    pub fn status_of(&self, i: usize, group: u64) -> Result<NodeStatus, String> {
        Client::connect(self.client_addr(i, group), CONTROL_TIMEOUT)?.status(group)
    }

    /// Every replica's status, for error messages.
    pub fn describe(&self) -> String {
        let each: Vec<String> = (0..REPLICAS)
            .map(|i| match self.is_running(i).then(|| self.status(i)) {
                None => format!("replica {}: not running", i + 1),
                Some(Ok(s)) => format!("replica {}: {s:?}", i + 1),
                Some(Err(e)) => format!("replica {}: {e}", i + 1),
            })
            .collect();
        each.join("; ")
    }

    /// Waits until every running replica names the same leader of `GROUP` and that one says
    /// it leads; returns its index.
    pub fn wait_leader(&mut self, timeout: Duration) -> Result<usize, String> {
        self.wait_leader_of(GROUP, timeout)
    }

    pub fn wait_leader_of(&mut self, group: u64, timeout: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let running: Vec<usize> = (0..REPLICAS).filter(|&i| self.is_running(i)).collect();
            let statuses: Vec<Option<NodeStatus>> = running.iter().map(|&i| self.status_of(i, group).ok()).collect();
            if let Some(li) = agreed_leader(&running, &statuses) {
                return Ok(li);
            }
            if Instant::now() > deadline {
                return Err(format!("group {group}: no leader all replicas agree on within {timeout:?}: {statuses:?}"));
            }
            std::thread::sleep(POLL);
        }
    }

    /// `wait_leader_of` every group: the leading replica of group g at `[g - 1]`.
    pub fn wait_leaders(&mut self, timeout: Duration) -> Result<Vec<usize>, String> {
        (1..=self.setup.groups).map(|g| self.wait_leader_of(g, timeout)).collect()
    }

    /// Waits until replica `i` holds `index` and knows it committed (applying may lag: a
    /// restarted replica applies its log again from the start).
    pub fn wait_committed(&mut self, i: usize, index: u64, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if self.status(i).is_ok_and(|s| s.commit >= index) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("replica {} did not commit index {index} within {timeout:?}: {}", i + 1, self.describe()));
            }
            std::thread::sleep(POLL);
        }
    }

    /// One proposal to `GROUP` through replica `i`: its index if committed.
    pub fn propose(&self, i: usize, payload: &[u8]) -> Result<Answer, String> {
        Client::connect(self.client_addr(i, GROUP), CONTROL_TIMEOUT)?.propose(GROUP, payload)
    }
}

/// The index of the leader every running replica names, if that replica says it leads.
fn agreed_leader(running: &[usize], statuses: &[Option<NodeStatus>]) -> Option<usize> {
    let leader = statuses.first().copied().flatten()?.leader;
    if leader == 0 || !statuses.iter().all(|s| s.is_some_and(|s| s.leader == leader)) {
        return None;
    }
    let li = leader as usize - 1;
    let at = running.iter().position(|&r| r == li)?;
    statuses[at].filter(|s| s.is_leader).map(|_| li)
}

/// A 3-member etcd cluster (Debian's etcd-server), data in `dir/etcd-N`.
pub struct Etcd {
    pub client_addrs: Vec<SocketAddr>,
    procs: Vec<Proc>,
}

/// What `etcd --version` says, or how to install it.
pub fn etcd_version() -> Result<String, String> {
    let install =
        "install them with `apt-get install -y etcd-server etcd-client` (Debian/Ubuntu), or pass --no-etcd to leave the comparison out";
    let out = Command::new("etcd").arg("--version").output().map_err(|e| format!("etcd is not installed ({e}); {install}"))?;
    Command::new("etcdctl").arg("version").output().map_err(|e| format!("etcdctl is not installed ({e}); {install}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("etcd").trim().to_string())
}

impl Etcd {
    pub fn start(dir: &Path) -> Result<Etcd, String> {
        let ports = free_ports(2 * REPLICAS)?;
        let url = |p: u16| format!("http://127.0.0.1:{p}");
        let initial: Vec<String> = (0..REPLICAS).map(|i| format!("m{}={}", i + 1, url(ports[REPLICAS + i]))).collect();
        let mut procs = Vec::new();
        for i in 0..REPLICAS {
            let (client, peer) = (url(ports[i]), url(ports[REPLICAS + i]));
            let data = dir.join(format!("etcd-{}", i + 1));
            let mut command = Command::new("etcd");
            command
                .args(["--name", &format!("m{}", i + 1)])
                .arg("--data-dir")
                .arg(&data)
                .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &initial.join(","), "--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "corestore-bench", "--logger", "zap", "--log-level", "warn"]);
            procs.push(Proc::spawn(command, dir.join(format!("etcd-{}.log", i + 1)))?);
        }
        let client_addrs = ports[..REPLICAS].iter().map(|&p| SocketAddr::from(([127, 0, 0, 1], p))).collect();
        Ok(Etcd { client_addrs, procs })
    }

    /// Waits until one member reports itself the leader; returns its client address.
    pub fn wait_leader(&mut self, timeout: Duration) -> Result<SocketAddr, String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            for (i, p) in self.procs.iter_mut().enumerate() {
                p.check_alive(&format!("etcd member {}", i + 1))?;
            }
            for &addr in &self.client_addrs {
                match etcd_status(addr) {
                    Ok((member, leader)) if member == leader && leader != 0 => return Ok(addr),
                    Ok(other) => last = format!("{addr}: member, leader = {other:?}"),
                    Err(e) => last = e,
                }
            }
            if Instant::now() > deadline {
                return Err(format!("etcd elected no leader within {timeout:?}; last: {last}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// (member id, leader id) from etcd's `POST /v3/maintenance/status` (gateway: ids as strings).
fn etcd_status(addr: SocketAddr) -> Result<(u64, u64), String> {
    let body = b"{}";
    let request = format!(
        "POST /v3/maintenance/status HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        String::from_utf8_lossy(body)
    );
    let mut stream = std::net::TcpStream::connect_timeout(&addr, CONTROL_TIMEOUT).map_err(|e| format!("etcd {addr}: {e}"))?;
    stream.set_read_timeout(Some(CONTROL_TIMEOUT)).map_err(|e| format!("etcd {addr}: {e}"))?;
    let (status, body) =
        crate::loadgen::http::request_blocking(&mut stream, request.as_bytes()).map_err(|e| format!("etcd {addr}: {e}"))?;
    if status != 200 {
        return Err(format!("etcd {addr}: status {status}: {}", String::from_utf8_lossy(&body)));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("etcd {addr}: status JSON: {e}"))?;
    let id = |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<u64>().ok()).or_else(|| x.as_u64()).unwrap_or(0);
    Ok((id(&v["header"]["member_id"]), id(&v["leader"])))
}
