//! One phase of a run (prepare, benchmark, cleanup) on corestore's thread-per-core runtime:
//! `engine::run` starts one pinned thread per generator cpu, each core opens its connections
//! (connection `c` on core `c % cores`, to host `c % hosts`) on its own ring and drives each in a
//! loop: next job from the core's [`CoreWork`], send, read the whole response, count it.
//!
//! Nothing is shared between cores on the request path. Each core publishes its running totals
//! in its own cache line ([`Slot`]) for the monitor thread, which prints the progress line once a
//! second, ends the phase at its duration or when `--autoterm` finds it stable, and sets the
//! stop flag the connections read before each request.

use std::io::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::{Env as _, RuntimeConfig};
use net::RecvBuf;

use super::http::{self, ReadOptions};
use super::request::{self, Body, Payload};
use super::sign::{Credentials, Signer};
use super::stats::Stats;
use super::work::{ConnState, CoreWork, Job, JobBody, Outcome, Work};

/// Consecutive failed requests after which a connection gives up (a server refusing everything
/// ends the phase instead of spinning; every failure is counted).
pub const CONNECTION_ERRORS_MAX: u64 = 100;
/// Time between building the runtime and the phase's start: the cores' threads start inside it.
const START_DELAY: Duration = Duration::from_millis(50);
/// Pause before reconnecting after a failed connect.
const RECONNECT_DELAY: Duration = Duration::from_millis(10);
/// How often the monitor looks at the cores' totals.
const MONITOR_TICK: Duration = Duration::from_millis(100);
/// Seconds of throughput `--autoterm` needs at least, whatever `--autoterm.dur` says.
const AUTOTERM_SECONDS_MIN: usize = 3;

/// A server to send to: `name` is what `--host` said (the Host header), `addr` its address.
#[derive(Clone, Debug)]
pub struct Host {
    pub name: String,
    pub addr: SocketAddr,
}

/// Where requests go and how they are signed.
#[derive(Clone, Debug)]
pub struct Target {
    pub hosts: Vec<Host>,
    pub bucket: String,
    /// `None`: anonymous requests.
    pub credentials: Option<Credentials>,
    pub payload: Payload,
    /// HTTPS (one per host, in `hosts`' order); empty: plain HTTP.
    pub tls: Vec<super::tls::Tls>,
    /// Server-side encryption of the run's objects.
    pub sse: super::request::Sse,
}

/// warp's `--autoterm`: stop once the last `window_s` one-second throughputs are each within
/// `tolerance` (a fraction) of their mean.
#[derive(Clone, Copy, Debug)]
pub struct AutoTerm {
    pub window_s: usize,
    pub tolerance: f64,
}

pub struct PhaseSpec<'a> {
    /// "prepare", "benchmark", "cleanup": the progress line's label.
    pub label: &'static str,
    pub target: &'a Target,
    pub work: &'a Work,
    /// Object (or part) size of the phase's PUTs.
    pub object_bytes: u64,
    pub concurrency: usize,
    pub cpus: &'a [usize],
    /// `None`: until the work is done.
    pub duration: Option<Duration>,
    pub autoterm: Option<AutoTerm>,
    pub progress: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Duration,
    AutoTerm,
    /// Every connection finished its share of the work.
    WorkDone,
    /// Connections gave up after [`CONNECTION_ERRORS_MAX`] failures in a row (the others, if
    /// any, finished their work).
    Errors,
}

impl StopReason {
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::AutoTerm => "autoterm",
            StopReason::WorkDone => "work-done",
            StopReason::Errors => "errors",
        }
    }
}

pub struct PhaseResult {
    pub stats: Stats,
    /// From the phase's start to its end (the deadline, the autoterm stop, or the last answer).
    pub elapsed: Duration,
    pub stopped_by: StopReason,
    pub started_unix_ms: u64,
    /// User + system CPU of the generator's core threads over the phase.
    pub generator_cpu_ns: u64,
    /// (part number, ETag) of every uploaded part (multipart).
    pub parts: Vec<(u32, String)>,
    /// Connections that stopped after [`CONNECTION_ERRORS_MAX`] failures in a row.
    pub connections_gave_up: usize,
}

/// One core's running totals, read by the monitor; written only by its core.
#[repr(align(128))]
#[derive(Default)]
struct Slot {
    ops: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

/// What the cores and the monitor share.
struct Control {
    start: Instant,
    /// The end of a timed phase. The cores check it themselves: the monitor sets `stop` only on
    /// its next tick, and what completes in between must not count.
    deadline: Option<Instant>,
    stop: AtomicBool,
    slots: Vec<Slot>,
}

impl Control {
    /// Whether the phase is over at `now` (no new request, no more counting).
    fn over(&self, now: Instant) -> bool {
        self.stop.load(Ordering::Acquire) || self.deadline.is_some_and(|d| now >= d)
    }
}

struct CoreResult {
    stats: Stats,
    cpu_ns: u64,
    parts: Vec<(u32, String)>,
    gave_up: usize,
}

/// Runs one phase to its end.
pub fn run_phase(spec: &PhaseSpec) -> Result<PhaseResult, String> {
    assert!(spec.concurrency > 0, "a phase needs a connection");
    assert!(!spec.cpus.is_empty(), "a phase needs a core");
    assert!(!spec.target.hosts.is_empty(), "a phase needs a host");
    let cores = spec.cpus.len().min(spec.concurrency);
    let cpus = spec.cpus[..cores].to_vec();
    let start = Instant::now() + START_DELAY;
    let slots = (0..cores).map(|_| Slot::default()).collect();
    let control = Arc::new(Control { start, deadline: spec.duration.map(|d| start + d), stop: AtomicBool::new(false), slots });
    let started_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64) + START_DELAY.as_millis() as u64;
    let done = AtomicBool::new(false);
    let (results, monitor) = std::thread::scope(|scope| {
        let monitor = scope.spawn(|| monitor(spec, &control, &done));
        let results = engine::run(RuntimeConfig::with_cpus(cpus), |core: engine::Core<()>| run_core(core, spec, control.clone(), cores));
        done.store(true, Ordering::Release);
        (results, monitor.join())
    });
    let results = results.map_err(|e| format!("generator runtime: {e}"))?;
    let (stop_at, mut stopped_by) = monitor.map_err(|_| "the progress monitor panicked".to_string())?;
    let end = stop_at.unwrap_or_else(Instant::now);
    let mut elapsed = end.saturating_duration_since(control.start);
    if let Some(d) = spec.duration {
        elapsed = elapsed.min(d);
    }
    let mut stats = Stats::default();
    let mut parts = Vec::new();
    let mut generator_cpu_ns = 0;
    let mut connections_gave_up = 0;
    for r in results {
        stats.merge(&r.stats);
        parts.extend(r.parts);
        generator_cpu_ns += r.cpu_ns;
        connections_gave_up += r.gave_up;
    }
    parts.sort_unstable();
    if stopped_by == StopReason::WorkDone && connections_gave_up > 0 {
        stopped_by = StopReason::Errors;
    }
    Ok(PhaseResult { stats, elapsed, stopped_by, started_unix_ms, generator_cpu_ns, parts, connections_gave_up })
}

/// Prints progress, ends the phase at its deadline or by `--autoterm`; returns when the cores
/// are done: (when it asked them to stop, why the phase ended).
fn monitor(spec: &PhaseSpec, control: &Control, done: &AtomicBool) -> (Option<Instant>, StopReason) {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut per_second_ops: Vec<u64> = Vec::new();
    let mut last = (0u64, 0u64, 0u64);
    let mut next_print = control.start + Duration::from_secs(1);
    let mut stop: Option<(Instant, StopReason)> = None;
    while !done.load(Ordering::Acquire) {
        std::thread::sleep(MONITOR_TICK);
        let now = Instant::now();
        if let Some(deadline) = control.deadline.filter(|&d| stop.is_none() && now >= d) {
            stop = Some((deadline, StopReason::Duration));
            control.stop.store(true, Ordering::Release);
        }
        if now < next_print || stop.is_some() {
            continue;
        }
        next_print += Duration::from_secs(1);
        let totals = control.slots.iter().fold((0, 0, 0), |(o, b, e), s| {
            (o + s.ops.load(Ordering::Relaxed), b + s.bytes.load(Ordering::Relaxed), e + s.errors.load(Ordering::Relaxed))
        });
        let (ops, bytes, errors) = (totals.0 - last.0, totals.1 - last.1, totals.2 - last.2);
        last = totals;
        per_second_ops.push(ops);
        if spec.progress {
            let elapsed_s = now.saturating_duration_since(control.start).as_secs_f64();
            let line = format!(
                "{}: {elapsed_s:.0} s, {ops} ops/s, {:.2} MiB/s, {} errors ({} in all)",
                spec.label,
                bytes as f64 / (1 << 20) as f64,
                errors,
                totals.2
            );
            let mut err = std::io::stderr().lock();
            let _ = if tty { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
        }
        if let Some(rule) = spec.autoterm
            && is_stable(&per_second_ops, rule)
        {
            stop = Some((now, StopReason::AutoTerm));
            control.stop.store(true, Ordering::Release);
        }
    }
    if spec.progress && tty {
        eprintln!();
    }
    match stop {
        Some((at, why)) => (Some(at), why),
        None => (None, StopReason::WorkDone),
    }
}

/// The `--autoterm` rule: the last `window_s` seconds (at least [`AUTOTERM_SECONDS_MIN`]) each
/// within `tolerance` of their mean, and some work done.
pub fn is_stable(per_second_ops: &[u64], rule: AutoTerm) -> bool {
    let window = rule.window_s.max(AUTOTERM_SECONDS_MIN);
    if per_second_ops.len() < window {
        return false;
    }
    let last = &per_second_ops[per_second_ops.len() - window..];
    let mean = last.iter().sum::<u64>() as f64 / window as f64;
    mean > 0.0 && last.iter().all(|&x| (x as f64 - mean).abs() <= rule.tolerance * mean)
}

/// The object data every PUT of a core sends: incompressible (xorshift) bytes, as warp's.
pub fn object_data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What one core's connections share (owned: the connections are tasks of their own).
struct CoreShared {
    target: Target,
    concurrency: usize,
    control: Arc<Control>,
    core: usize,
    signer: Option<Signer>,
    data: Vec<u8>,
    work: std::cell::RefCell<CoreWork>,
    stats: std::cell::RefCell<Stats>,
    gave_up: std::cell::Cell<usize>,
}

async fn run_core(core: engine::Core<()>, spec: &PhaseSpec<'_>, control: Arc<Control>, cores: usize) -> CoreResult {
    let id = core.env.core();
    let object_bytes = usize::try_from(spec.object_bytes).expect("object size fits memory");
    let start = control.start;
    let shared = Rc::new(CoreShared {
        target: spec.target.clone(),
        concurrency: spec.concurrency,
        control,
        core: id,
        signer: spec.target.credentials.clone().map(Signer::new),
        data: object_data(object_bytes, 0x5eed ^ id as u64),
        work: std::cell::RefCell::new(CoreWork::new(spec.work, &spec.target.bucket, spec.object_bytes, id, cores)),
        stats: std::cell::RefCell::new(Stats::default()),
        gave_up: std::cell::Cell::new(0),
    });
    engine::sleep(start.saturating_duration_since(Instant::now())).await;
    let cpu_start = super::thread_cpu_ns();
    let ring = core.env.ring().clone();
    let connections: Vec<_> = (id..spec.concurrency).step_by(cores).map(|c| engine::spawn(drive(shared.clone(), c, ring.clone()))).collect();
    for c in connections {
        c.await;
    }
    let cpu_ns = super::thread_cpu_ns().saturating_sub(cpu_start);
    let stats = shared.stats.replace(Stats::default());
    let parts = std::mem::take(&mut shared.work.borrow_mut().parts);
    CoreResult { stats, cpu_ns, parts, gave_up: shared.gave_up.get() }
}

fn unix_now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Connection number `c`: connects (again after a failure), then loops job → request → response.
async fn drive(shared: Rc<CoreShared>, c: usize, ring: Rc<engine::uring::Ring>) {
    let host = shared.target.hosts[c % shared.target.hosts.len()].clone();
    let mut conn = ConnState::new(c, shared.concurrency, 0x10ad_9e4e ^ ((shared.core as u64) << 32) ^ c as u64);
    let mut request = Vec::with_capacity(1024);
    let mut buf = RecvBuf::with_capacity(http::RECV_BUF_BYTES);
    let tls = shared.target.tls.get(c % shared.target.hosts.len().max(1)).cloned();
    let mut stream: Option<net::Stream> = None;
    let mut failures_in_a_row = 0;
    while !shared.control.over(Instant::now()) && failures_in_a_row < CONNECTION_ERRORS_MAX {
        let Some(job) = shared.work.borrow_mut().next(&mut conn) else { return };
        if stream.is_none() {
            match super::tls::connect(&ring, host.addr, tls.as_ref()).await {
                Ok(s) => {
                    buf.clear();
                    stream = Some(s);
                }
                Err(e) => {
                    failures_in_a_row += 1;
                    let message = format!("connect to {}: {e}", host.addr);
                    settle(&shared, &job, Err(&message), &mut conn, &host.name, (Instant::now(), Instant::now()));
                    engine::sleep(RECONNECT_DELAY).await;
                    continue;
                }
            }
        }
        let s = stream.as_ref().expect("connected above");
        build(&shared, &job, &host.name, &mut request);
        let started = Instant::now();
        let result = match s.send_all(std::mem::take(&mut request)).await {
            Ok(back) => {
                request = back;
                let options = ReadOptions { head: job.head, keep_body_bytes_max: job.keep_body_bytes_max };
                http::read_response_with(s, &mut buf, options).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let finished = Instant::now();
        let close = result.as_ref().map_or(true, |r| r.close);
        let response = result.as_ref().map_err(String::as_str);
        let ok = settle(&shared, &job, response, &mut conn, &host.name, (started, finished));
        failures_in_a_row = if ok { 0 } else { failures_in_a_row + 1 };
        if close {
            stream = None;
        }
    }
    if failures_in_a_row >= CONNECTION_ERRORS_MAX {
        shared.gave_up.set(shared.gave_up.get() + 1);
    }
}

fn build(shared: &CoreShared, job: &Job, host: &str, out: &mut Vec<u8>) {
    let body = match &job.body {
        JobBody::None => Body::None,
        JobBody::Object => Body::Object(&shared.data),
        JobBody::Xml(xml) => Body::Xml(xml),
    };
    let spec = request::Spec { method: job.method, path: &job.path, query: &job.query, body, sse: &shared.target.sse };
    request::build(out, host, shared.signer.as_ref(), shared.target.payload, &spec, unix_now_s());
}

/// Counts a finished request (if inside the phase) and updates the core's work; true if it
/// succeeded. `host` names the server in error messages.
fn settle(shared: &CoreShared, job: &Job, response: Result<&http::Response, &str>, conn: &mut ConnState, host: &str, (started, finished): (Instant, Instant)) -> bool {
    let outcome = shared.work.borrow_mut().complete(job, response, conn);
    // What completes after the phase ended is not counted: it would stretch the window.
    if shared.control.over(finished) {
        return matches!(outcome, Outcome::Done { .. });
    }
    let at_s = finished.saturating_duration_since(shared.control.start).as_secs() as usize;
    let slot = &shared.control.slots[slot_index(shared)];
    let mut stats = shared.stats.borrow_mut();
    match outcome {
        Outcome::Done { bytes, objects } => {
            let latency_ns = u64::try_from((finished - started).as_nanos()).unwrap_or(u64::MAX);
            stats.record(job.op, at_s, latency_ns, bytes, objects);
            slot.ops.store(slot.ops.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            slot.bytes.store(slot.bytes.load(Ordering::Relaxed) + bytes, Ordering::Relaxed);
            true
        }
        Outcome::Failed(message) => {
            let message = format!("{} {} on {host}: {message}", job.op.name(), job.what);
            stats.fail(job.op, at_s, message);
            slot.errors.store(slot.errors.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            false
        }
    }
}

/// The core's slot: cores are numbered from 0 in the order of the phase's cpus.
fn slot_index(shared: &CoreShared) -> usize {
    assert!(shared.core < shared.control.slots.len(), "core {} without a slot", shared.core);
    shared.core
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(series: &[u64], window_s: usize, tolerance: f64, expected: bool) {
        assert_eq!(is_stable(series, AutoTerm { window_s, tolerance }), expected, "{series:?} window {window_s} ±{tolerance}");
    }

    #[test]
    fn autoterm_needs_a_stable_window() {
        check(&[100, 100], 2, 0.1, false);
        check(&[10, 100, 101, 99], 3, 0.075, true);
        check(&[100, 100, 120], 3, 0.075, false);
        check(&[0, 0, 0, 0], 3, 0.075, false);
        check(&[5, 100, 100, 100, 100], 4, 0.0, true);
        check(&[5, 100, 100, 100, 100], 5, 0.5, false);
    }

    #[test]
    fn object_data_is_deterministic_and_not_trivially_compressible() {
        let a = object_data(100_003, 7);
        assert_eq!(a.len(), 100_003);
        assert_eq!(a, object_data(100_003, 7));
        assert_ne!(a, object_data(100_003, 8));
        let mut counts = [0u32; 256];
        a.iter().for_each(|&b| counts[b as usize] += 1);
        assert!(counts.iter().all(|&n| n > 200), "every byte value occurs");
    }
}
