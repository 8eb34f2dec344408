//! The load generator: HTTP/1.1 keep-alive clients on corestore's own thread-per-core runtime.
//!
//! `engine::run` starts one pinned thread per generator cpu; each core opens its share of the
//! connections on its own ring (`net::TcpStream`) and drives each one in a loop: build a request
//! (SigV4-signed for corestore, unsigned for servers without auth), send it, read the whole
//! response, record its latency into the core's `hdrhistogram`. After a warm-up, requests that
//! complete inside the measured window count; the cores' histograms are merged at the end.
//!
//! This module's [`run`] is the fixed-workload driver of `corestore bench s3` (GET and PUT of
//! named keys, a warm-up, a sampler). `corestore loadgen` (warp's modes, flags and report) is
//! built from the same pieces: [`cli`] (modes and flags), [`runner`] (phases on the runtime),
//! [`work`] (what each connection does next), [`request`] (requests as warp's client signs them),
//! [`report`] and [`analyze`] (the JSON record, the summary, the plot).

pub mod analyze;
pub mod cli;
pub mod control;
pub mod http;
pub mod op;
pub mod report;
pub mod request;
pub mod runner;
pub mod sign;
pub mod stats;
pub mod tls;
pub mod work;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::{Env, RuntimeConfig};
use engine::rng::Prng;
use hdrhistogram::Histogram;
use net::RecvBuf;

pub use http::Method;
use sign::{Credentials, Signer};

/// Longest latency the histograms hold; a slower request saturates at it.
const LATENCY_NS_MAX: u64 = 60_000_000_000;
/// Significant figures of the latency histograms.
const LATENCY_SIGFIGS: u8 = 3;
/// Failed requests after which a connection gives up (a server that refuses everything).
const CONNECTION_ERRORS_MAX: u64 = 100;
/// Time between building the runtime and the start of the run: the cores' threads start and
/// open their connections inside the warm-up, not before it.
const START_DELAY: Duration = Duration::from_millis(20);

/// Where requests go.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub bucket: String,
    /// Sign with these (SigV4, UNSIGNED-PAYLOAD); `None`: send unsigned requests.
    pub credentials: Option<Credentials>,
    /// HTTPS; `None`: plain HTTP.
    pub tls: Option<tls::Tls>,
}

impl Target {
    fn host(&self) -> String {
        self.addr.to_string()
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Random keys for `warm_up`, then `duration` measured.
    Timed { warm_up: Duration, duration: Duration },
    /// Every key once (connection `i` takes keys `i`, `i + connections`, ...): a fill.
    EachKeyOnce,
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub target: Target,
    pub method: Method,
    /// Object keys, URL-safe as they are.
    pub keys: Arc<[String]>,
    pub connections: usize,
    /// The generator's cpus, one core (thread, ring) each.
    pub cpus: Vec<usize>,
    pub mode: Mode,
}

/// What a run measured, over the measured window only.
pub struct Report {
    pub requests: u64,
    /// Body bytes moved: received for GET, sent for PUT.
    pub bytes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub window: Duration,
    /// Request latency (send start to the last byte of the response), ns.
    pub latency_ns: Histogram<u64>,
    /// CPU (user + system) the generator's core threads used in the window.
    pub generator_cpu_ns: u64,
    /// What the caller's sampler counted over the window (the server's CPU, ...), element-wise.
    pub sampled: Option<Vec<u64>>,
}

impl Report {
    pub fn requests_per_s(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64()
    }
    pub fn bytes_per_s(&self) -> f64 {
        self.bytes as f64 / self.window.as_secs_f64()
    }
    pub fn latency_ns_at(&self, quantile: f64) -> u64 {
        self.latency_ns.value_at_quantile(quantile)
    }
    /// Share of one cpu's time the generator used, per generator core.
    pub fn generator_cpu_share(&self, cores: usize) -> f64 {
        self.generator_cpu_ns as f64 / (self.window.as_nanos() as f64 * cores as f64)
    }
}

/// One core's counts.
struct CoreReport {
    requests: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    latency_ns: Histogram<u64>,
    cpu_ns: u64,
}

/// The measured window, in wall-clock instants every core shares.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Option<Instant>,
}

/// Counters the caller reads at the window's start and end (see [`run`]).
pub type Sampler<'a> = &'a (dyn Fn() -> Vec<u64> + Sync);

/// Runs `spec` to its end. `sampler`, if given, is called at the window's start and end from a
/// thread of its own; the report carries the differences.
pub fn run(spec: &Spec, sampler: Option<Sampler>) -> Result<Report, String> {
    assert!(spec.connections > 0, "a run needs a connection");
    assert!(!spec.keys.is_empty(), "a run needs keys");
    let window = match spec.mode {
        Mode::Timed { warm_up, duration } => {
            let t0 = Instant::now() + START_DELAY;
            Window { start: t0 + warm_up, end: Some(t0 + warm_up + duration) }
        }
        // Every request counts, from the first.
        Mode::EachKeyOnce => Window { start: Instant::now(), end: None },
    };
    let config = RuntimeConfig::with_cpus(spec.cpus.clone());
    let (cores, sampled) = std::thread::scope(|scope| {
        let sampling = sampler.zip(window.end).map(|(sample, end)| {
            scope.spawn(move || {
                std::thread::sleep(window.start.saturating_duration_since(Instant::now()));
                let first = sample();
                std::thread::sleep(end.saturating_duration_since(Instant::now()));
                sample().iter().zip(first).map(|(b, a)| b.saturating_sub(a)).collect::<Vec<u64>>()
            })
        });
        let cores = engine::run(config, |core: engine::Core<()>| run_core(core, spec, window));
        (cores, sampling.map(|h| h.join().expect("sampler thread")))
    });
    let cores = cores.map_err(|e| format!("generator runtime: {e}"))?;
    let elapsed = match window.end {
        Some(end) => end - window.start,
        None => Instant::now() - window.start,
    };
    let mut report = Report {
        requests: 0,
        bytes: 0,
        errors: 0,
        first_error: None,
        window: elapsed,
        latency_ns: new_histogram(),
        generator_cpu_ns: 0,
        sampled,
    };
    for c in cores {
        report.requests += c.requests;
        report.bytes += c.bytes;
        report.errors += c.errors;
        report.first_error = report.first_error.or(c.first_error);
        report.latency_ns.add(&c.latency_ns).expect("histograms of equal bounds merge");
        report.generator_cpu_ns += c.cpu_ns;
    }
    Ok(report)
}

/// The body of every PUT of `len` bytes (and nginx's copy of each object).
pub fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, LATENCY_SIGFIGS).expect("valid histogram bounds")
}

/// What one core's connections share.
struct Shared {
    spec: Spec,
    host: String,
    signer: Option<Signer>,
    body: Vec<u8>,
    window: Window,
    core: usize,
    requests: Cell<u64>,
    bytes: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
    latency_ns: RefCell<Histogram<u64>>,
}

impl Shared {
    fn fail(&self, what: String) {
        self.errors.set(self.errors.get() + 1);
        self.first_error.borrow_mut().get_or_insert(what);
    }

    fn in_window(&self, at: Instant) -> bool {
        at >= self.window.start && self.window.end.is_none_or(|end| at < end)
    }

    fn done(&self, now: Instant) -> bool {
        self.window.end.is_some_and(|end| now >= end)
    }
}

async fn run_core(core: engine::Core<()>, spec: &Spec, window: Window) -> CoreReport {
    let cores = spec.cpus.len();
    let id = core.env.core();
    let body = match spec.method {
        Method::Put(len) => body(len),
        Method::Get => Vec::new(),
    };
    let shared = Rc::new(Shared {
        spec: spec.clone(),
        host: spec.target.host(),
        signer: spec.target.credentials.clone().map(Signer::new),
        body,
        window,
        core: id,
        requests: Cell::new(0),
        bytes: Cell::new(0),
        errors: Cell::new(0),
        first_error: RefCell::new(None),
        latency_ns: RefCell::new(new_histogram()),
    });
    let cpu = engine::spawn(measure_cpu(window));
    let connections: Vec<_> = (id..spec.connections).step_by(cores).map(|c| engine::spawn(drive(shared.clone(), c, core.env.ring().clone()))).collect();
    for c in connections {
        c.await;
    }
    let cpu_ns = if window.end.is_some() { cpu.await } else { 0 };
    let latency_ns = shared.latency_ns.replace(new_histogram());
    CoreReport {
        requests: shared.requests.get(),
        bytes: shared.bytes.get(),
        errors: shared.errors.get(),
        first_error: shared.first_error.take(),
        latency_ns,
        cpu_ns,
    }
}

/// This core thread's CPU time over the window.
async fn measure_cpu(window: Window) -> u64 {
    let Some(end) = window.end else { return 0 };
    engine::sleep(window.start.saturating_duration_since(Instant::now())).await;
    let first = thread_cpu_ns();
    engine::sleep(end.saturating_duration_since(Instant::now())).await;
    thread_cpu_ns().saturating_sub(first)
}

/// User + system CPU of the calling thread (getrusage RUSAGE_THREAD).
pub fn thread_cpu_ns() -> u64 {
    // SAFETY: a zeroed rusage is valid; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(r, 0, "getrusage(RUSAGE_THREAD)");
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

fn unix_now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Connection number `c`: connects (again after a failure), then loops request → response.
async fn drive(shared: Rc<Shared>, c: usize, ring: Rc<engine::uring::Ring>) {
    let spec = &shared.spec;
    let mut rng = Prng::new(0x10ad_9e4e ^ ((shared.core as u64) << 32) ^ c as u64);
    let mut next_once = c;
    let mut request = Vec::with_capacity(1024 + shared.body.len());
    let mut buf = RecvBuf::with_capacity(http::RECV_BUF_BYTES);
    let mut stream: Option<net::Stream> = None;
    let mut path = String::with_capacity(256);
    let mut failures = 0;
    loop {
        if shared.done(Instant::now()) || failures >= CONNECTION_ERRORS_MAX {
            return;
        }
        let key = match spec.mode {
            Mode::Timed { .. } => &spec.keys[rng.below(spec.keys.len() as u64) as usize],
            Mode::EachKeyOnce => match spec.keys.get(next_once) {
                Some(k) => k,
                None => return,
            },
        };
        if stream.is_none() {
            match tls::connect(&ring, spec.target.addr, spec.target.tls.as_ref()).await {
                Ok(s) => {
                    buf.clear();
                    stream = Some(s);
                }
                Err(e) => {
                    shared.fail(format!("connect to {}: {e}", spec.target.addr));
                    failures += 1;
                    engine::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let s = stream.as_ref().expect("connected above");
        path.clear();
        path.push('/');
        path.push_str(&spec.target.bucket);
        path.push('/');
        path.push_str(key);
        http::build_request(&mut request, spec.method, &path, &shared.host, shared.signer.as_ref(), unix_now_s(), &shared.body);
        let started = Instant::now();
        let result = match s.send_all(std::mem::take(&mut request)).await {
            Ok(back) => {
                request = back;
                http::read_response(s, &mut buf).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let finished = Instant::now();
        match result {
            Ok(resp) if (200..300).contains(&resp.status) => {
                next_once += spec.connections;
                if shared.in_window(finished) {
                    shared.requests.set(shared.requests.get() + 1);
                    let moved = match spec.method {
                        Method::Get => resp.body_bytes,
                        Method::Put(len) => len as u64,
                    };
                    shared.bytes.set(shared.bytes.get() + moved);
                    let ns = (finished - started).as_nanos().min(u128::from(LATENCY_NS_MAX)) as u64;
                    shared.latency_ns.borrow_mut().saturating_record(ns.max(1));
                }
                if resp.close {
                    stream = None;
                }
            }
            Ok(resp) => {
                failures += 1;
                let body = String::from_utf8_lossy(&resp.body_start).into_owned();
                shared.fail(format!("{} {path}: status {}: {body}", spec.method_name(), resp.status));
                if resp.close {
                    stream = None;
                }
            }
            Err(e) => {
                failures += 1;
                shared.fail(format!("{} {path}: {e}", spec.method_name()));
                stream = None;
            }
        }
    }
}

impl Spec {
    fn method_name(&self) -> &'static str {
        match self.method {
            Method::Get => "GET",
            Method::Put(_) => "PUT",
        }
    }
}
