//! The proposers: tasks on one core of the engine's runtime, one TCP connection each, the same
//! code for corestore's client protocol and for etcd's v3 JSON gateway (HTTP/1.1 keep-alive,
//! `POST /v3/kv/put`), so both systems see the same load from the same generator.
//!
//! Closed loop: `concurrency` proposers, each with one proposal in flight, back to back.
//! Open loop: proposals scheduled at a fixed rate; a pool of connections takes them in order and
//! each latency runs from the proposal's scheduled time (so a stall that delays the sends is
//! counted, not hidden: no coordinated omission).
//!
//! Why the engine runtime and not threads: 1024 proposers as 1024 blocking threads on a 2-cpu
//! machine would measure the scheduler; as tasks on one ring they cost a recv and a send each.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine as _;
use engine::RuntimeConfig;
use hdrhistogram::Histogram;
use net::{RecvBuf, TcpStream};

use super::proto::{self, Reply, Request};
use crate::loadgen::http::{self, ReadOptions};

/// Bytes of every proposal's payload (the issue's 1 KiB entries).
pub const ENTRY_BYTES: usize = 1024;
/// How long one proposal may take before the run fails (a wedged cluster must not hang the bench).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an HTTP response head and body kept (an etcd put answer is about 150 bytes).
const HTTP_BODY_KEPT_MAX: usize = 512;
const HTTP_RECV_BYTES: usize = 16 << 10;
const PROTO_RECV_BYTES: usize = 4 << 10;
/// Pause before a proposal goes again to a replica while no leader is known.
const RETRY_DELAY: Duration = Duration::from_millis(5);
/// Proposers (connections) one run may open.
pub const CONNECTIONS_MAX: usize = 2048;
const RING_ENTRIES: u32 = 2048;
const _: () = assert!(2 * RING_ENTRIES as usize > CONNECTIONS_MAX);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    Corestore,
    Etcd,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Corestore => "corestore",
            System::Etcd => "etcd",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Target {
    pub system: System,
    /// Where proposals go; proposer p takes route `p % routes.len()` (corestore: one per Raft
    /// group, so the proposers spread evenly over the groups).
    pub routes: Vec<Route>,
}

/// Where one group's proposals go.
#[derive(Clone, Debug)]
pub struct Route {
    /// The Raft group proposed to (etcd: unused).
    pub group: u64,
    /// Every replica's client address for this group (corestore: the port of the core that owns
    /// it), where a proposer goes when the one it talks to answers `NotLeader`; etcd: its
    /// leader's client URL only (etcd forwards to its leader itself).
    pub replicas: Vec<SocketAddr>,
    /// The replica proposals go to first (the leader when the run starts).
    pub first: usize,
}

impl Target {
    /// etcd: every proposer to its leader's client address.
    pub fn etcd(leader: SocketAddr) -> Target {
        Target { system: System::Etcd, routes: vec![Route { group: 0, replicas: vec![leader], first: 0 }] }
    }
}

/// How proposals are paced.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    Closed {
        concurrency: usize,
    },
    /// `rate_per_s` proposals a second through at most `connections` in flight.
    Open {
        rate_per_s: f64,
        connections: usize,
    },
}

pub struct LoadRun {
    pub committed: u64,
    /// Proposals a replica refused (not leader, or lost to a new leader) and the proposer sent
    /// again elsewhere; the latency of the one that committed runs from its first send.
    pub retried: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latency_ns: Histogram<u64>,
    /// CPU time of the generator's core thread during the run (user + system).
    pub generator_cpu_ns: u64,
}

impl LoadRun {
    pub fn per_s(&self) -> f64 {
        self.committed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Fixed bounds (1 µs to 60 s): an auto-resizing histogram would allocate under load.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("constant histogram bounds are valid")
}

/// Runs the load on one core pinned to `cpu`.
pub fn run(target: &Target, pace: Pace, duration: Duration, cpu: usize) -> Result<LoadRun, String> {
    let mut config = RuntimeConfig::with_cpus(vec![cpu]);
    // Op slots (twice the entries) for every proposer's recv or send at once.
    config.ring.entries = RING_ENTRIES;
    // The generator reads and writes no files: a small arena.
    config.arena = engine::arena::ArenaConfig { classes: vec![engine::arena::ClassConfig { size_bytes: 4096, count: 16 }] };
    let target = target.clone();
    let out = engine::run(config, move |core: engine::Core<()>| {
        let target = target.clone();
        async move { run_core(core.env.ring().clone(), target, pace, duration).await }
    })
    .map_err(|e| format!("load generator runtime: {e}"))?;
    out.into_iter().next().unwrap_or_else(|| Err("load generator: no core".into()))
}

/// Shared by the proposer tasks of one run (one core: `Rc`, no locks).
struct State {
    histogram: RefCell<Histogram<u64>>,
    committed: Cell<u64>,
    retried: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
    /// Open loop: the next proposal's number.
    next: Cell<u64>,
}

impl State {
    fn failed(&self, e: String) {
        self.errors.set(self.errors.get() + 1);
        self.first_error.borrow_mut().get_or_insert(e);
    }
}

async fn run_core(ring: Rc<engine::uring::Ring>, target: Target, pace: Pace, duration: Duration) -> Result<LoadRun, String> {
    let connections = match pace {
        Pace::Closed { concurrency } => concurrency,
        Pace::Open { connections, .. } => connections,
    };
    if connections > CONNECTIONS_MAX {
        return Err(format!("{connections} proposers: at most {CONNECTIONS_MAX}"));
    }
    assert!(!target.routes.is_empty(), "a target without routes");
    // Connect every proposer before the clock starts.
    let mut proposers = Vec::with_capacity(connections);
    for p in 0..connections {
        let route = &target.routes[p % target.routes.len()];
        let addr = route.replicas[route.first];
        let stream =
            TcpStream::connect(&ring, addr).await.map_err(|e| format!("{}: connect to {addr}: {e}", target.system.name()))?;
        let _ = stream.set_nodelay(true);
        proposers.push(Proposer::new(target.system, route, ring.clone(), p as u64, stream.into()));
    }
    let state = Rc::new(State {
        histogram: RefCell::new(latency_histogram()),
        committed: Cell::new(0),
        retried: Cell::new(0),
        errors: Cell::new(0),
        first_error: RefCell::new(None),
        next: Cell::new(0),
    });
    let cpu_start = thread_cpu_ns();
    let start = engine::time::now();
    let deadline = start.saturating_add(duration);
    let tasks: Vec<_> = proposers
        .into_iter()
        .map(|mut proposer| {
            let state = state.clone();
            engine::spawn(async move {
                loop {
                    let scheduled = match pace {
                        Pace::Closed { .. } => engine::time::now(),
                        Pace::Open { rate_per_s, .. } => {
                            let k = state.next.get();
                            state.next.set(k + 1);
                            let at = start.saturating_add(Duration::from_secs_f64(k as f64 / rate_per_s));
                            if at < deadline {
                                engine::sleep_until(at).await;
                            }
                            at
                        }
                    };
                    if scheduled >= deadline {
                        return;
                    }
                    match engine::time::timeout(REPLY_TIMEOUT, proposer.propose(&state.retried)).await {
                        Ok(Ok(())) => {
                            let latency_ns = engine::time::now().saturating_duration_since(scheduled).as_nanos() as u64;
                            state.committed.set(state.committed.get() + 1);
                            let _ = state.histogram.borrow_mut().record(latency_ns.clamp(1_000, 60_000_000_000));
                        }
                        Ok(Err(e)) => {
                            state.failed(e);
                            return; // the connection's state is unknown: this proposer stops
                        }
                        Err(_) => {
                            state.failed(format!("no reply within {REPLY_TIMEOUT:?}"));
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    let elapsed = engine::time::now().saturating_duration_since(start);
    let generator_cpu_ns = thread_cpu_ns().saturating_sub(cpu_start);
    let latency_ns = state.histogram.borrow().clone();
    let first_error = state.first_error.borrow().clone();
    Ok(LoadRun {
        committed: state.committed.get(),
        retried: state.retried.get(),
        errors: state.errors.get(),
        first_error,
        elapsed,
        latency_ns,
        generator_cpu_ns,
    })
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu_ns() -> u64 {
    // SAFETY: getrusage fills the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return 0;
    }
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

/// What a replica answered a proposal.
enum Outcome {
    Committed,
    /// Not committed here: the replica is not the leader (`hint`: the one it knows, 0: none).
    Refused {
        hint: u64,
    },
}

/// One connection and the request it sends over and over (a new sequence number each time).
struct Proposer {
    system: System,
    ring: Rc<engine::uring::Ring>,
    group: u64,
    replicas: Vec<SocketAddr>,
    /// The replica `stream` is connected to (an index into `replicas`).
    at: usize,
    stream: net::Stream,
    buf: RecvBuf,
    /// The encoded request, rebuilt in place for each proposal.
    request: Vec<u8>,
    proposer: u64,
    seq: u64,
    host: String,
    /// Payload bytes, stamped with (proposer, sequence) in the first 16.
    payload: Vec<u8>,
    /// etcd: the base64 text of the key and value, reused.
    scratch: String,
}

impl Proposer {
    fn new(system: System, route: &Route, ring: Rc<engine::uring::Ring>, proposer: u64, stream: net::Stream) -> Proposer {
        let recv = if system == System::Etcd { HTTP_RECV_BYTES } else { PROTO_RECV_BYTES };
        Proposer {
            system,
            ring,
            group: route.group,
            replicas: route.replicas.clone(),
            at: route.first,
            stream,
            buf: RecvBuf::with_capacity(recv),
            request: Vec::with_capacity(2 * ENTRY_BYTES + 512),
            proposer,
            seq: 0,
            host: route.replicas[route.first].to_string(),
            payload: vec![0x5A; ENTRY_BYTES],
            scratch: String::with_capacity(2 * ENTRY_BYTES),
        }
    }

    /// One proposal until it commits: sent again (counted in `retried`) to the leader a replica
    /// names, or to the next replica, while replicas refuse it during a change of leader.
    async fn propose(&mut self, retried: &Cell<u64>) -> Result<(), String> {
        loop {
            match self.propose_once().await? {
                Outcome::Committed => return Ok(()),
                Outcome::Refused { hint } => {
                    retried.set(retried.get() + 1);
                    self.move_to(hint).await;
                }
            }
        }
    }

    /// Connects to replica `hint - 1` if that names one, else to the next; waits out a cluster
    /// with no leader yet.
    async fn move_to(&mut self, hint: u64) {
        let n = self.replicas.len();
        assert!(n > 1, "only corestore proposals are refused, and they know every replica");
        let named = (hint as usize).checked_sub(1).filter(|&i| i < n);
        if named.is_none() {
            engine::sleep(RETRY_DELAY).await;
        }
        let mut at = named.unwrap_or((self.at + 1) % n);
        loop {
            if let Ok(stream) = TcpStream::connect(&self.ring, self.replicas[at]).await {
                let _ = stream.set_nodelay(true);
                self.stream = stream.into();
                self.at = at;
                self.buf.clear();
                return;
            }
            // A killed replica: the next one.
            at = (at + 1) % n;
            engine::sleep(RETRY_DELAY).await;
        }
    }

    async fn propose_once(&mut self) -> Result<Outcome, String> {
        self.seq += 1;
        self.payload[..8].copy_from_slice(&self.proposer.to_le_bytes());
        self.payload[8..16].copy_from_slice(&self.seq.to_le_bytes());
        let mut request = std::mem::take(&mut self.request);
        request.clear();
        match self.system {
            System::Corestore => proto::encode_request(&Request::Propose { id: self.seq, group: self.group, payload: &self.payload }, &mut request),
            System::Etcd => etcd_put(&mut request, &mut self.scratch, &self.host, self.proposer, &self.payload),
        }
        let sent = self.stream.send_all(request).await.map_err(|e| format!("{}: send: {e}", self.system.name()))?;
        self.request = sent;
        match self.system {
            System::Corestore => self.corestore_reply().await,
            System::Etcd => self.etcd_reply().await.map(|()| Outcome::Committed),
        }
    }

    async fn corestore_reply(&mut self) -> Result<Outcome, String> {
        loop {
            let frame = proto::frame_len(self.buf.filled()).map_err(|e| format!("corestore reply: {e}"))?;
            if let Some(len) = frame.filter(|&len| self.buf.len() >= len) {
                let reply =
                    proto::decode_reply(&self.buf.filled()[proto::LENGTH_BYTES..len]).map_err(|e| format!("corestore reply: {e}"))?;
                let result = match reply {
                    Reply::Committed { id, .. } if id == self.seq => Ok(Outcome::Committed),
                    Reply::NotLeader { id, hint } if id == self.seq => Ok(Outcome::Refused { hint }),
                    // Lost to a new leader (its index went to another entry): not committed.
                    Reply::Error { id, message } if id == self.seq && message.starts_with(b"lost") => Ok(Outcome::Refused { hint: 0 }),
                    other => Err(format!("corestore: proposal {} answered {other:?}", self.seq)),
                };
                self.buf.consume(len);
                return result;
            }
            if self.buf.is_full() {
                return Err("corestore reply larger than the receive buffer".into());
            }
            match self.stream.recv_into(&mut self.buf).await {
                Ok(0) => return Err("corestore: the node closed the connection".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("corestore: receive: {e}")),
            }
        }
    }

    async fn etcd_reply(&mut self) -> Result<(), String> {
        let response =
            http::read_response_with(&self.stream, &mut self.buf, ReadOptions { head: false, keep_body_bytes_max: HTTP_BODY_KEPT_MAX })
                .await
                .map_err(|e| format!("etcd: {e}"))?;
        if response.status != 200 || response.close {
            return Err(format!("etcd put: status {}: {}", response.status, String::from_utf8_lossy(&response.body_start)));
        }
        // A put answers {"header":{...,"revision":"N",...}}; an error body has "error" or "code".
        if !contains(&response.body_start, b"\"revision\"") {
            return Err(format!("etcd put answered {}", String::from_utf8_lossy(&response.body_start)));
        }
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `POST /v3/kv/put` of `{"key": base64, "value": base64}`: one key per proposer, overwritten.
fn etcd_put(out: &mut Vec<u8>, scratch: &mut String, host: &str, proposer: u64, payload: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = format!("bench/{proposer:06}");
    let key_len = b64.encode(key.as_bytes()).len();
    let value_len = payload.len().div_ceil(3) * 4;
    let body_len = r#"{"key":"","value":""}"#.len() + key_len + value_len;
    use std::io::Write;
    let _ = write!(out, "POST /v3/kv/put HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n");
    let start = out.len();
    out.extend_from_slice(br#"{"key":""#);
    let s = scratch;
    s.clear();
    b64.encode_string(key.as_bytes(), s);
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(br#"","value":""#);
    s.clear();
    b64.encode_string(payload, s);
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(br#""}"#);
    assert_eq!(out.len() - start, body_len, "Content-Length matches the body");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_put_is_a_well_formed_request() {
        let mut out = Vec::new();
        etcd_put(&mut out, &mut String::new(), "127.0.0.1:2379", 7, &[0x5A; ENTRY_BYTES]);
        let text = String::from_utf8(out).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("POST /v3/kv/put HTTP/1.1\r\n"));
        let length: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).expect("length").parse().expect("number");
        assert_eq!(length, body.len());
        let v: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(b64.decode(v["key"].as_str().expect("key")).expect("base64"), b"bench/000007");
        assert_eq!(b64.decode(v["value"].as_str().expect("value")).expect("base64"), vec![0x5A; ENTRY_BYTES]);
    }
}
