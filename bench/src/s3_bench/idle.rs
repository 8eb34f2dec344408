//! Idle keep-alive connections: open N connections to a server, make one request on each (so
//! the server has accepted it and set it up as it does for a real client), leave them idle, and
//! read the growth of the server's resident memory.
//!
//! Clients are blocking std sockets on the bench's main thread: an idle connection costs the
//! client nothing but a file descriptor, and the generator's rings are not needed to hold them.
//! Over TLS each is a rustls client on its socket, its handshake done with its first request.

use std::time::{Duration, Instant};

use crate::loadgen::http::{self, Method};
use crate::loadgen::sign::Signer;
use crate::loadgen::tls::{BlockingStream, Tls, connect_blocking};

use super::servers::Server;

/// How long a connect may take (a full accept backlog makes the kernel drop SYNs).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Settle time before the memory is read (the server finishes what it was doing).
const SETTLE: Duration = Duration::from_millis(300);

pub struct IdleReport {
    pub asked: usize,
    pub connected: usize,
    pub answered: usize,
    /// Connections the server holds (its open descriptors grew by this many).
    pub held: usize,
    pub rss_kib_before: u64,
    pub rss_kib_after: u64,
    /// Why fewer than `asked` connections were answered, if so.
    pub shortfall: Option<String>,
}

impl IdleReport {
    /// Server memory growth per connection it holds, bytes.
    pub fn bytes_per_connection(&self) -> f64 {
        (self.rss_kib_after as f64 - self.rss_kib_before as f64) * 1024.0 / self.held.max(1) as f64
    }
}

/// Opens `n` connections to `server`, each with one GET of `path` (signed by `signer` if given).
/// Every answer must be in within `answer_timeout` after the last request was sent.
pub fn measure(server: &Server, n: usize, path: &str, signer: Option<&Signer>, tls: Option<&Tls>, answer_timeout: Duration) -> IdleReport {
    std::thread::sleep(SETTLE);
    let rss_kib_before = server.rss_kib();
    let fds_before = server.open_fds();
    let mut streams = Vec::with_capacity(n);
    let mut shortfall = None;
    for _ in 0..n {
        match connect_blocking(server.addr, tls, CONNECT_TIMEOUT) {
            Ok(s) => streams.push(s),
            Err(e) => {
                shortfall = Some(format!("connection {} of {n}: {e}", streams.len() + 1));
                break;
            }
        }
    }
    let connected = streams.len();
    let host = server.addr.to_string();
    let unix_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let mut request = Vec::new();
    http::build_request(&mut request, Method::Get, path, &host, signer, unix_s, &[]);
    let mut sent = 0;
    for s in &mut streams {
        use std::io::Write as _;
        if let Err(e) = s.write_all(&request) {
            shortfall.get_or_insert(format!("request on connection {}: {e}", sent + 1));
            break;
        }
        sent += 1;
    }
    let answered = read_answers(&mut streams[..sent], &mut shortfall, answer_timeout);
    std::thread::sleep(SETTLE);
    let rss_kib_after = server.rss_kib();
    let held = server.open_fds().saturating_sub(fds_before);
    drop(streams);
    IdleReport { asked: n, connected, answered, held, rss_kib_before, rss_kib_after, shortfall }
}

/// Reads one response per stream, all within `timeout`; returns how many were 2xx.
fn read_answers(streams: &mut [BlockingStream], shortfall: &mut Option<String>, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut answered = 0;
    let mut unanswered = 0;
    let mut first_failure = None;
    for (i, s) in streams.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let _ = s.tcp().set_read_timeout(Some(left));
        match http::read_response_blocking(s) {
            Ok((status, _)) if (200..300).contains(&status) => answered += 1,
            Ok((status, body)) => {
                unanswered += 1;
                first_failure.get_or_insert(format!("connection {}: status {status}: {}", i + 1, String::from_utf8_lossy(&body)));
            }
            Err(e) => {
                unanswered += 1;
                first_failure.get_or_insert(format!("connection {}: {e}", i + 1));
            }
        }
    }
    if unanswered > 0 {
        let first = first_failure.unwrap_or_default();
        shortfall.get_or_insert(format!("{unanswered} of {} connections got no answer within {timeout:?} (first: {first})", streams.len()));
    }
    answered
}

/// Raises this process's open-file limit to its hard limit (the servers started after this
/// inherit it); returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: a zeroed rlimit is valid; getrlimit fills it, setrlimit reads it.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_cur = limit.rlim_max;
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        // SAFETY: as above.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    }
    limit.rlim_cur
}
