//! `corestore-bench send`: ways to put bytes on a TCP socket, from one sending core to a
//! receiver on another, each for a few seconds per message size:
//! - `send`: IORING_OP_SEND from arena memory (the kernel copies the bytes into the socket);
//! - `send_zc`: IORING_OP_SEND_ZC from a fixed buffer (`buf_index`), the buffer reusable only
//!   after the notification;
//! - `sendfile`: sendfile(2) from a file in the page cache on a blocking socket, one call at a
//!   time on a plain thread: what a static file server such as nginx does;
//! - `splice`: IORING_OP_SPLICE file → pipe → socket on the ring.
//!
//! The receiver reads into a 1 MiB buffer and discards. CPU is measured per thread: the sending
//! thread with getrusage(RUSAGE_THREAD), io_uring's io-wq workers (which run every splice) from
//! /proc/self/task/*/schedstat, the receiver with getrusage(RUSAGE_THREAD). On loopback and veth
//! the receiving side's softirq work runs on whichever cpu sent the packet, so "sender" CPU
//! includes part of the receive path.

use std::cell::Cell;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use engine::arena::{ArenaConfig, ClassConfig};
use engine::uring::io_uring::{opcode, types};
use engine::uring::{Ring, RingConfig};
use engine::{Arena, Executor};
use serde_json::json;

/// Bytes of the page-cache file that `sendfile` and `splice` send from.
const FILE_BYTES: u64 = 64 << 20;
/// The receiver's read buffer.
const RECEIVE_BUFFER_BYTES: usize = 1 << 20;
/// Largest message; a size class of the arena and at most a pipe's default maximum size.
const MESSAGE_BYTES_MAX: usize = 1 << 20;
/// A round counts only if other processes kept the machine's cpus at most this busy.
const OTHER_LOAD_SHARE_MAX: f64 = 0.05;
const _: () = assert!(FILE_BYTES.is_multiple_of(MESSAGE_BYTES_MAX as u64));

#[derive(clap::Args)]
pub struct SendArgs {
    /// Seconds per method per message size per round.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Message sizes in bytes, each a multiple of 4096 and at most 1 MiB.
    #[arg(long, value_delimiter = ',', default_value = "4096,65536,1048576")]
    sizes: Vec<usize>,
    /// Sends in flight on the ring (send, send_zc, splice).
    #[arg(long, default_value_t = 8)]
    qd: usize,
    /// Methods to run, from send, send_zc, sendfile, splice.
    #[arg(long, value_delimiter = ',', default_value = "send,send_zc,sendfile,splice")]
    methods: Vec<String>,
    /// Rounds: the methods run interleaved this many times per size, and each reports its
    /// median round by GiB/s.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The page-cache file for sendfile and splice (written once, then read to cache it).
    #[arg(long, default_value = "target/corestore-bench.send-data")]
    file: PathBuf,
    /// Network namespace (a name under /run/netns) the sender's socket lives in.
    #[arg(long)]
    netns: Option<String>,
    /// Network namespace of the receiver.
    #[arg(long)]
    peer_netns: Option<String>,
    /// Address the receiver listens on.
    #[arg(long, default_value = "127.0.0.1")]
    peer_addr: IpAddr,
    /// Name of the network path in the output.
    #[arg(long, default_value = "loopback")]
    net: String,
    /// Leave Nagle's algorithm on (by default every socket sets TCP_NODELAY, as servers do).
    #[arg(long)]
    nagle: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Send,
    SendZc,
    Sendfile,
    Splice,
}

impl Method {
    fn parse(name: &str) -> Result<Method, String> {
        match name {
            "send" => Ok(Method::Send),
            "send_zc" => Ok(Method::SendZc),
            "sendfile" => Ok(Method::Sendfile),
            "splice" => Ok(Method::Splice),
            _ => Err(format!("unknown method {name:?}: expected send, send_zc, sendfile or splice")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Method::Send => "send",
            Method::SendZc => "send_zc",
            Method::Sendfile => "sendfile",
            Method::Splice => "splice",
        }
    }
}

/// Where the sender and the receiver run.
#[derive(Clone)]
struct Placement {
    sender_cpu: usize,
    receiver_cpu: usize,
    netns: Option<String>,
    peer_netns: Option<String>,
    peer_addr: IpAddr,
    nagle: bool,
}

/// One method at one size for one round.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    bytes: u64,
    elapsed_ns: u64,
    sender_thread_cpu_ns: u64,
    io_wq_cpu_ns: u64,
    receiver_cpu_ns: u64,
    /// CPU of this whole process (every thread, io-wq workers included) during the sender's run.
    process_cpu_ns: u64,
    /// CPU of the ksoftirqd threads during the sender's run: network softirq work that did not
    /// run in our threads' context.
    ksoftirqd_ns: u64,
    /// Busy time of all cpus (user, system, irq, softirq in /proc/stat, 10 ms ticks) during the
    /// sender's run.
    cpus_busy_ns: u64,
    /// send_zc notifications, and those that said the kernel copied the data.
    notifs: u64,
    notifs_copied: u64,
}

impl Measured {
    fn gib(&self) -> f64 {
        self.bytes as f64 / (1u64 << 30) as f64
    }
    fn gib_per_s(&self) -> f64 {
        self.gib() / (self.elapsed_ns as f64 / 1e9)
    }
    /// Busy time of the machine that was neither this process nor ksoftirqd: other processes,
    /// which skew a run (they take cpu time from ours), as a share of all cpus.
    fn other_share(&self, cpus: usize) -> f64 {
        let other = self.cpus_busy_ns.saturating_sub(self.process_cpu_ns + self.ksoftirqd_ns);
        other as f64 / (self.elapsed_ns as f64 * cpus as f64)
    }
    /// CPU milliseconds per GiB sent.
    fn ms_per_gib(&self, cpu_ns: u64) -> f64 {
        cpu_ns as f64 / 1e6 / self.gib()
    }
}

pub fn bench_send(args: SendArgs) -> Result<(), String> {
    let methods = args.methods.iter().map(|m| Method::parse(m)).collect::<Result<Vec<_>, _>>()?;
    for &size in &args.sizes {
        if size == 0 || size % engine::SECTOR_SIZE != 0 || size > MESSAGE_BYTES_MAX {
            return Err(format!("message size {size}: must be a positive multiple of 4096, at most {MESSAGE_BYTES_MAX}"));
        }
    }
    if args.qd == 0 || args.rounds == 0 {
        return Err("--qd and --rounds must be at least 1".into());
    }
    let cpus = engine::runtime::allowed_cpus();
    let placement = Placement {
        sender_cpu: cpus[0],
        receiver_cpu: *cpus.get(1).unwrap_or(&cpus[0]),
        netns: args.netns.clone(),
        peer_netns: args.peer_netns.clone(),
        peer_addr: args.peer_addr,
        nagle: args.nagle,
    };
    engine::runtime::probe().map_err(|e| e.to_string())?;
    if methods.iter().any(|m| matches!(m, Method::Sendfile | Method::Splice)) {
        prepare_cached_file(&args.file)?;
    }
    let duration = Duration::from_secs_f64(args.seconds);
    println!(
        "# send paths over {} to {}, sender on cpu {}, receiver on cpu {}, QD {} on the ring, {} s per run, median of {} interleaved rounds",
        args.net, args.peer_addr, placement.sender_cpu, placement.receiver_cpu, args.qd, args.seconds, args.rounds
    );
    println!("# machine: {}", crate::machine::describe(&args.file));
    // Other work on the machine skews every figure here; say how much there was just before.
    let (busy_before, t_before) = (cpus_busy_ns(), Instant::now());
    std::thread::sleep(Duration::from_millis(500));
    let busy_share = (cpus_busy_ns() - busy_before) as f64 / t_before.elapsed().as_nanos() as f64 / cpus.len() as f64;
    println!("# cpus busy before the runs: {:.0}% (other processes; want ~0)", busy_share * 100.0);
    let mut rows = Vec::new();
    for &size in &args.sizes {
        let mut rounds: Vec<Vec<Measured>> = vec![Vec::new(); methods.len()];
        for _ in 0..args.rounds {
            for (i, &method) in methods.iter().enumerate() {
                rounds[i].push(run_one(&placement, method, size, args.qd, duration, &args.file)?);
            }
        }
        for (i, &method) in methods.iter().enumerate() {
            let all = std::mem::take(&mut rounds[i]);
            // Rounds during which other processes took cpu time do not count, unless all did.
            let clean: Vec<Measured> = all.iter().copied().filter(|m| m.other_share(cpus.len()) < OTHER_LOAD_SHARE_MAX).collect();
            let clean_rounds = clean.len();
            let mut runs = if clean.is_empty() { all } else { clean };
            runs.sort_by(|a, b| a.gib_per_s().total_cmp(&b.gib_per_s()));
            let m = runs[runs.len() / 2];
            let range = (runs[0].gib_per_s(), runs[runs.len() - 1].gib_per_s());
            let row = Row { method, size, m, range, clean_rounds };
            print_json(&args.net, args.nagle, cpus.len(), &row, args.qd);
            rows.push(row);
        }
    }
    print_table(&args.net, args.rounds, &rows);
    Ok(())
}

/// Writes the file once (non-zero bytes) and reads it whole, so that it sits in the page cache.
fn prepare_cached_file(path: &Path) -> Result<(), String> {
    if !std::fs::metadata(path).map(|m| m.len() == FILE_BYTES).unwrap_or(false) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let mut bytes = vec![0u8; FILE_BYTES as usize];
        let mut state = 7u64;
        for word in bytes.chunks_mut(8) {
            let (v, s) = engine::rng::splitmix64(state);
            state = s;
            word.copy_from_slice(&v.to_le_bytes());
        }
        std::fs::write(path, &bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let mut file = std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let mut sink = vec![0u8; 1 << 20];
    while file.read(&mut sink).map_err(|e| format!("reading {}: {e}", path.display()))? > 0 {}
    Ok(())
}

/// One connection: a receiver thread, a sender running `method` for `duration`, then EOF.
fn run_one(p: &Placement, method: Method, size: usize, qd: usize, duration: Duration, file: &Path) -> Result<Measured, String> {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let receiver = {
        let p = p.clone();
        std::thread::spawn(move || receive(&p, port_tx))
    };
    let port: Result<u16, String> = port_rx.recv().map_err(|_| "receiver thread died before listening".to_string())?;
    let peer = SocketAddr::new(p.peer_addr, port?);
    let sender = {
        let (p, file) = (p.clone(), file.to_path_buf());
        std::thread::spawn(move || -> Result<Measured, String> {
            pin(p.sender_cpu)?;
            if let Some(ns) = &p.netns {
                enter_netns(ns)?;
            }
            let stream = TcpStream::connect(peer).map_err(|e| format!("connecting to {peer}: {e}"))?;
            stream.set_nodelay(!p.nagle).map_err(|e| format!("TCP_NODELAY: {e}"))?;
            let (busy_start, process_start, softirq_start) = (cpus_busy_ns(), cpu_ns(libc::RUSAGE_SELF), ksoftirqd_ns());
            let m = match method {
                Method::Send | Method::SendZc => send_on_ring(&stream, method, size, qd, duration),
                Method::Sendfile => sendfile_loop(&stream, size, duration, &file),
                Method::Splice => splice_on_ring(&stream, size, qd, duration, &file),
            }?;
            let mut m = m;
            m.cpus_busy_ns = cpus_busy_ns().saturating_sub(busy_start);
            m.process_cpu_ns = cpu_ns(libc::RUSAGE_SELF) - process_start;
            m.ksoftirqd_ns = ksoftirqd_ns().saturating_sub(softirq_start);
            stream.shutdown(std::net::Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
            Ok(m)
        })
    };
    let sent = sender.join().map_err(|_| "sender thread panicked".to_string())?;
    let (received, receiver_cpu_ns) = receiver.join().map_err(|_| "receiver thread panicked".to_string())??;
    let mut m = sent?;
    if received != m.bytes {
        return Err(format!("{}: sent {} bytes but the receiver got {received}", method.name(), m.bytes));
    }
    m.receiver_cpu_ns = receiver_cpu_ns;
    Ok(m)
}

/// Listens, sends the port back, reads one connection to EOF. Returns bytes and thread CPU.
fn receive(p: &Placement, port_tx: std::sync::mpsc::Sender<Result<u16, String>>) -> Result<(u64, u64), String> {
    let setup = || -> Result<TcpListener, String> {
        pin(p.receiver_cpu)?;
        if let Some(ns) = &p.peer_netns {
            enter_netns(ns)?;
        }
        TcpListener::bind((p.peer_addr, 0)).map_err(|e| format!("listening on {}: {e}", p.peer_addr))
    };
    let listener = match setup() {
        Ok(l) => l,
        Err(e) => {
            let _ = port_tx.send(Err(e.clone()));
            return Err(e);
        }
    };
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    port_tx.send(Ok(port)).map_err(|_| "sender side gone".to_string())?;
    let (mut stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let cpu_start = thread_cpu_ns();
    let mut buf = vec![0u8; RECEIVE_BUFFER_BYTES];
    let mut bytes = 0u64;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("receiving: {e}")),
        }
    }
    Ok((bytes, thread_cpu_ns() - cpu_start))
}

/// A ring, an arena of `qd` buffers of `size` registered with it, and an executor, on this thread.
struct Core {
    ring: Rc<Ring>,
    arena: Arena,
    executor: Executor,
}

fn core(size: usize, qd: usize) -> Result<Core, String> {
    let ring = Rc::new(Ring::new(&RingConfig::default()).map_err(|e| e.to_string())?);
    let arena =
        Arena::new(&ArenaConfig { classes: vec![ClassConfig { size_bytes: size, count: qd }] }).map_err(|e| format!("arena: {e}"))?;
    ring.register_buffers(&arena).map_err(|e| e.to_string())?;
    let executor = Executor::new(ring.clone());
    Ok(Core { ring, arena, executor })
}

/// `qd` tasks, each sending whole messages from its own buffer until the deadline.
fn send_on_ring(stream: &TcpStream, method: Method, size: usize, qd: usize, duration: Duration) -> Result<Measured, String> {
    let c = core(size, qd)?;
    let slot = c.ring.register_file(stream.as_raw_fd()).map_err(|e| format!("registering the socket: {e}"))?;
    let bytes = Rc::new(Cell::new(0u64));
    let stats_before = c.ring.stats();
    let clock = RunClock::start();
    let deadline = clock.t0 + duration;
    let result = c.executor.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..qd {
            let mut buf = c.arena.alloc(size).map_err(|e| e.to_string())?;
            buf.as_mut_capacity().fill(0x5A);
            let (ring, bytes) = (c.ring.clone(), bytes.clone());
            tasks.push(engine::spawn(async move {
                while Instant::now() < deadline {
                    let fd = types::Fixed(slot);
                    let entry = match method {
                        Method::Send => opcode::Send::new(fd, buf.as_ptr(), size as u32).flags(libc::MSG_WAITALL).build(),
                        _ => opcode::SendZc::new(fd, buf.as_ptr(), size as u32)
                            .buf_index(Some(buf.buf_index()))
                            .flags(libc::MSG_WAITALL)
                            .zc_flags(engine::uring::SEND_ZC_REPORT_USAGE)
                            .build(),
                    };
                    // SAFETY: the entry points into `buf`, which the op holds; the socket's
                    // registered slot stays until after every task ends.
                    let (completion, b) = unsafe { ring.op(entry, buf) }.completion().await;
                    buf = b;
                    if completion.result != size as i32 {
                        return Err(format!("{}: result {} for a {size}-byte message", method.name(), completion.result));
                    }
                    bytes.set(bytes.get() + size as u64);
                }
                Ok(())
            }));
        }
        join_senders(tasks).await
    });
    let (elapsed_ns, sender_thread_cpu_ns, io_wq_cpu_ns) = clock.stop();
    c.ring.unregister_file(slot);
    result?;
    let stats = c.ring.stats();
    Ok(Measured {
        bytes: bytes.get(),
        elapsed_ns,
        sender_thread_cpu_ns,
        io_wq_cpu_ns,
        notifs: stats.notifs - stats_before.notifs,
        notifs_copied: stats.notifs_copied - stats_before.notifs_copied,
        ..Measured::default()
    })
}

/// sendfile(2) of `size` bytes at a time from the cached file, walking through it, on this
/// (blocking) thread.
fn sendfile_loop(stream: &TcpStream, size: usize, duration: Duration, path: &Path) -> Result<Measured, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let (cpu_start, t0) = (thread_cpu_ns(), Instant::now());
    let mut offset: i64 = 0;
    let mut bytes = 0u64;
    while t0.elapsed() < duration {
        if offset as u64 + size as u64 > FILE_BYTES {
            offset = 0;
        }
        let mut left = size;
        while left > 0 {
            // SAFETY: valid fds; the kernel advances `offset`.
            let n = unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut offset, left) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("sendfile: {e}"));
            }
            left -= n as usize;
        }
        bytes += size as u64;
    }
    Ok(Measured {
        bytes,
        elapsed_ns: t0.elapsed().as_nanos() as u64,
        sender_thread_cpu_ns: thread_cpu_ns() - cpu_start,
        ..Measured::default()
    })
}

/// `qd` tasks, each with its own pipe: IORING_OP_SPLICE file → pipe, then pipe → socket.
fn splice_on_ring(stream: &TcpStream, size: usize, qd: usize, duration: Duration, path: &Path) -> Result<Measured, String> {
    let c = core(size, qd)?;
    let file = std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let pipes = (0..qd).map(|_| Pipe::new(size)).collect::<Result<Vec<_>, _>>()?;
    let (sock, file_fd) = (stream.as_raw_fd(), file.as_raw_fd());
    let bytes = Rc::new(Cell::new(0u64));
    let clock = RunClock::start();
    let deadline = clock.t0 + duration;
    let result = c.executor.block_on(async {
        let mut tasks = Vec::new();
        for (stream_index, pipe) in pipes.iter().enumerate() {
            let (ring, bytes) = (c.ring.clone(), bytes.clone());
            let (pipe_r, pipe_w) = (pipe.read, pipe.write);
            // Each stream walks its own part of the file (at least one message long).
            let region = (FILE_BYTES / qd as u64 / size as u64).max(1) * size as u64;
            let start = stream_index as u64 * region % FILE_BYTES;
            tasks.push(engine::spawn(async move {
                let mut offset = start;
                while Instant::now() < deadline {
                    if offset + size as u64 > (start + region).min(FILE_BYTES) {
                        offset = start;
                    }
                    let mut left = size as u32;
                    while left > 0 {
                        let into_pipe = opcode::Splice::new(types::Fd(file_fd), offset as i64, types::Fd(pipe_w), -1, left).build();
                        // SAFETY: no memory is referenced; the fds outlive the ring's use of them.
                        let (r, ()) = unsafe { ring.op(into_pipe, ()) }.result().await;
                        let mut in_pipe = r.map_err(|e| format!("splice file to pipe: {e}"))?;
                        if in_pipe == 0 {
                            return Err("splice file to pipe: end of file".to_string());
                        }
                        offset += in_pipe as u64;
                        left -= in_pipe;
                        while in_pipe > 0 {
                            let out = opcode::Splice::new(types::Fd(pipe_r), -1, types::Fd(sock), -1, in_pipe).build();
                            // SAFETY: as above.
                            let (r, ()) = unsafe { ring.op(out, ()) }.result().await;
                            in_pipe -= r.map_err(|e| format!("splice pipe to socket: {e}"))?;
                        }
                    }
                    bytes.set(bytes.get() + size as u64);
                }
                Ok(())
            }));
        }
        join_senders(tasks).await
    });
    let (elapsed_ns, sender_thread_cpu_ns, io_wq_cpu_ns) = clock.stop();
    result?;
    drop(pipes);
    Ok(Measured { bytes: bytes.get(), elapsed_ns, sender_thread_cpu_ns, io_wq_cpu_ns, ..Measured::default() })
}

struct Pipe {
    read: RawFd,
    write: RawFd,
}

impl Pipe {
    /// A pipe that holds at least `size` bytes where the system allows (fs.pipe-max-size).
    fn new(size: usize) -> Result<Pipe, String> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two fds.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
        }
        // A smaller pipe only means more splices per message; the loop handles short ones.
        // SAFETY: F_SETPIPE_SZ on our own pipe.
        unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, size as libc::c_int) };
        Ok(Pipe { read: fds[0], write: fds[1] })
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: closing our own fds, after the ring's ops on them completed.
        unsafe {
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}

fn pin(cpu: usize) -> Result<(), String> {
    // SAFETY: a one-cpu set applied to the calling thread.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        return Err(format!("pinning to cpu {cpu}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Moves the calling thread into the network namespace `/run/netns/{name}` (made by `ip netns
/// add`); sockets it creates afterwards live there.
fn enter_netns(name: &str) -> Result<(), String> {
    let path = format!("/run/netns/{name}");
    let ns = std::fs::File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
    // SAFETY: a valid namespace fd; CLONE_NEWNET affects only the calling thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// User + system CPU of the calling thread (getrusage RUSAGE_THREAD).
/// Wall time and CPU (this thread's and io_uring's worker threads') since a ring run began.
struct RunClock {
    t0: Instant,
    cpu_start_ns: u64,
    wq_start_ns: u64,
}

impl RunClock {
    fn start() -> RunClock {
        RunClock { t0: Instant::now(), cpu_start_ns: thread_cpu_ns(), wq_start_ns: io_wq_cpu_ns() }
    }

    /// (elapsed, sending thread CPU, io-wq CPU), in ns.
    fn stop(&self) -> (u64, u64, u64) {
        (self.t0.elapsed().as_nanos() as u64, thread_cpu_ns() - self.cpu_start_ns, io_wq_cpu_ns().saturating_sub(self.wq_start_ns))
    }
}

/// Awaits every sender task in turn; the first error ends the run.
async fn join_senders(tasks: Vec<engine::JoinHandle<Result<(), String>>>) -> Result<(), String> {
    for t in tasks {
        t.await?;
    }
    Ok(())
}

fn thread_cpu_ns() -> u64 {
    cpu_ns(libc::RUSAGE_THREAD)
}

/// User + system CPU of the calling thread or the process, per getrusage `who`.
fn cpu_ns(who: libc::c_int) -> u64 {
    // SAFETY: getrusage fills the struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::getrusage(who, &mut u) };
    assert_eq!(r, 0, "getrusage");
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(u.ru_utime) + ns(u.ru_stime)
}

/// CPU time of this process's io_uring io-wq workers (threads named `iou-wrk-*`), from
/// schedstat. Workers that exit between two readings drop out of the sum; ours live as long as
/// their ring, which outlives both readings.
fn io_wq_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    let mut total = 0;
    for task in tasks.flatten() {
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("iou-wrk") {
            continue;
        }
        let schedstat = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
        total += schedstat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    total
}

/// Busy time of all cpus from the `cpu` line of /proc/stat: user, nice, system, irq, softirq.
/// CPU time of the kernel's ksoftirqd threads, from schedstat.
fn ksoftirqd_ns() -> u64 {
    let Ok(procs) = std::fs::read_dir("/proc") else { return 0 };
    let mut total = 0;
    for p in procs.flatten() {
        let dir = p.path();
        if !std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.starts_with("ksoftirqd/")) {
            continue;
        }
        let schedstat = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
        total += schedstat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    total
}

fn cpus_busy_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0 };
    let f: Vec<u64> = line.split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0)).collect();
    let ticks: u64 = [0, 1, 2, 5, 6].iter().map(|&i| f.get(i).copied().unwrap_or(0)).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

fn size_name(size: usize) -> String {
    if size >= 1 << 20 { format!("{} MiB", size >> 20) } else { format!("{} KiB", size >> 10) }
}

/// A method at a size: its median clean round and the GiB/s range over the clean rounds.
struct Row {
    method: Method,
    size: usize,
    m: Measured,
    range: (f64, f64),
    clean_rounds: usize,
}

fn print_json(net: &str, nagle: bool, cpus: usize, row: &Row, qd: usize) {
    let Row { method, size, m, range, clean_rounds } = row;
    let (method, size) = (*method, *size);
    let on_ring = matches!(method, Method::Send | Method::SendZc | Method::Splice);
    let line = json!({
        "bench": "send",
        "net": net,
        "method": method.name(),
        "message_bytes": size,
        "qd": if on_ring { qd } else { 1 },
        "gib_per_s": m.gib_per_s(),
        "gib_per_s_min": range.0,
        "gib_per_s_max": range.1,
        "bytes": m.bytes,
        "seconds": m.elapsed_ns as f64 / 1e9,
        "sender_thread_cpu_ms_per_gib": m.ms_per_gib(m.sender_thread_cpu_ns),
        "io_wq_cpu_ms_per_gib": m.ms_per_gib(m.io_wq_cpu_ns),
        "sender_cpu_ms_per_gib": m.ms_per_gib(m.sender_thread_cpu_ns + m.io_wq_cpu_ns),
        "receiver_cpu_ms_per_gib": m.ms_per_gib(m.receiver_cpu_ns),
        "process_cpu_ms_per_gib": m.ms_per_gib(m.process_cpu_ns),
        "ksoftirqd_cpu_ms_per_gib": m.ms_per_gib(m.ksoftirqd_ns),
        "other_load_share": m.other_share(cpus),
        "clean_rounds": clean_rounds,
        "nodelay": !nagle,
        "zc_notifs": if method == Method::SendZc { Some(m.notifs) } else { None },
        "zc_notifs_copied": if method == Method::SendZc { Some(m.notifs_copied) } else { None },
    });
    println!("{line}");
}

fn print_table(net: &str, rounds: usize, rows: &[Row]) {
    println!();
    println!(
        "| {net} | method | GiB/s (min–max) | clean rounds | sender CPU ms/GiB (thread + io-wq) | receiver thread ms/GiB | ksoftirqd ms/GiB | send_zc notifs copied |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for Row { method, size, m, range, clean_rounds } in rows {
        let copied = if *method == Method::SendZc { format!("{} of {}", m.notifs_copied, m.notifs) } else { "-".into() };
        println!(
            "| {} | {} | {:.2} ({:.2}–{:.2}) | {clean_rounds}/{rounds} | {:.0} ({:.0} + {:.0}) | {:.0} | {:.0} | {} |",
            size_name(*size),
            method.name(),
            m.gib_per_s(),
            range.0,
            range.1,
            m.ms_per_gib(m.sender_thread_cpu_ns + m.io_wq_cpu_ns),
            m.ms_per_gib(m.sender_thread_cpu_ns),
            m.ms_per_gib(m.io_wq_cpu_ns),
            m.ms_per_gib(m.receiver_cpu_ns),
            m.ms_per_gib(m.ksoftirqd_ns),
            copied,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        let check = |name: &str, expected: Option<Method>| {
            assert_eq!(Method::parse(name).ok(), expected, "{name}");
            if let Some(m) = expected {
                assert_eq!(m.name(), name);
            }
        };
        check("send", Some(Method::Send));
        check("send_zc", Some(Method::SendZc));
        check("sendfile", Some(Method::Sendfile));
        check("splice", Some(Method::Splice));
        check("sendzc", None);
        check("", None);
    }
}
