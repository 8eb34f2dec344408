//! `corestore serve` killed with SIGKILL under load: clients PUT (small and chunked objects) and
//! DELETE over real connections; at a random moment the server is killed; after a restart on
//! the same data directory every PUT and DELETE that got a success answer must hold: the
//! object reads back byte-identical, the deleted key is gone. Several rounds on one directory,
//! so start-up also recovers logs that earlier kills cut, and collects the chunks of uploads a
//! kill interrupted. The same for a versioned bucket: every acknowledged version reads back
//! by its id, every acknowledged removal of a version holds, and each key's current version is
//! the last write acknowledged (a version, or a delete marker).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use s3front::sigv4::client::{Credentials, sign_headers};

const ROUNDS: u64 = 3;
const WRITERS: u64 = 12;
const BUCKET: &str = "crash-bucket";

fn creds() -> Credentials {
    Credentials { access_key: "CRASHTEST".into(), secret_key: "crash-test-secret".into(), region: "us-east-1".into() }
}

#[allow(clippy::disallowed_methods)] // SigV4 signs wall-clock time
fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

fn start(dir: &Path) -> (Child, u16) {
    let c = creds();
    let mut child = Command::new(env!("CARGO_BIN_EXE_corestore"))
        .args(["serve", "--listen", "127.0.0.1:0", "--cores", "2", "--segment-mib", "64", "--data"])
        .arg(dir)
        .args(["--access-key", &c.access_key, "--secret-key", &c.secret_key])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn corestore serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines.next().expect("corestore serve exited before listening").expect("read stdout");
        if let Some(addr) = line.strip_prefix("corestore: listening on http://") {
            break addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port in the listening line");
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, port)
}

/// One request on a fresh connection; `None` if the connection failed (the server died).
fn request(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    request_with_head(port, method, path, "", body).map(|(status, _, body)| (status, body))
}

/// `request` with a query (`versionId=...`), answering the response head too (lower-cased).
fn request_with_head(port: u16, method: &str, path: &str, query: &str, body: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let host = format!("127.0.0.1:{port}");
    let mut headers = vec![("host".to_string(), host.clone())];
    headers.extend(sign_headers(&creds(), method, path, query, &headers, "UNSIGNED-PAYLOAD", unix_now()));
    let target = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
    let mut head = format!("{method} {target} HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
    for (n, v) in &headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status: u16 = std::str::from_utf8(&response[9..12]).ok()?.parse().ok()?;
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let body = response[end + 4..].to_vec();
    (body.len() == len).then_some((status, head, body))
}

/// A response head's header value (`head` lower-cased).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':'))).map(str::trim)
}

fn data(key: &str, len: usize) -> Vec<u8> {
    let mut x = xxhash_rust::xxh3::xxh3_64(key.as_bytes()) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[derive(Default)]
struct Acked {
    /// key -> length of the acknowledged PUT.
    puts: BTreeMap<String, usize>,
    /// Keys whose DELETE was acknowledged.
    deletes: Vec<String>,
    /// Keys whose DELETE was in flight at the kill: either outcome is right.
    maybe_deleted: Vec<String>,
}

fn writer(port: u16, bucket: &str, round: u64, w: u64, acked: Arc<Mutex<Acked>>) {
    let mut x = (round * 1000 + w + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut mine: Vec<String> = Vec::new();
    for i in 0.. {
        let pick = next() % 100;
        if pick < 10 && !mine.is_empty() {
            let key = mine.swap_remove((next() % mine.len() as u64) as usize);
            match request(port, "DELETE", &format!("/{bucket}/{key}"), b"") {
                Some((204, _)) => {
                    let mut a = acked.lock().expect("lock");
                    a.puts.remove(&key);
                    a.deletes.push(key);
                }
                Some((status, body)) => panic!("DELETE {key}: {status} {}", String::from_utf8_lossy(&body)),
                None => {
                    let mut a = acked.lock().expect("lock");
                    a.puts.remove(&key);
                    a.maybe_deleted.push(key);
                    return;
                }
            }
            continue;
        }
        let len = match pick {
            0..70 => (next() % 16_384) as usize,
            70..95 => 16_384 + (next() % 600_000) as usize,
            _ => (1 << 20) + (next() % (2 << 20)) as usize,
        };
        let key = format!("r{round}/w{w}/{i}");
        match request(port, "PUT", &format!("/{bucket}/{key}"), &data(&key, len)) {
            Some((200, _)) => {
                acked.lock().expect("lock").puts.insert(key.clone(), len);
                mine.push(key);
            }
            Some((status, body)) => panic!("PUT {key}: {status} {}", String::from_utf8_lossy(&body)),
            None => return,
        }
    }
}

fn check(port: u16, bucket: &str, acked: &Acked) -> usize {
    for (key, len) in &acked.puts {
        let (status, body) = request(port, "GET", &format!("/{bucket}/{key}"), b"").expect("GET after restart");
        assert_eq!(status, 200, "acknowledged PUT {key} is missing after the kill: {}", String::from_utf8_lossy(&body));
        assert!(body == data(key, *len), "acknowledged PUT {key}: {} bytes read back differ from the {len} written", body.len());
    }
    for key in &acked.maybe_deleted {
        let (status, _) = request(port, "GET", &format!("/{bucket}/{key}"), b"").expect("GET after restart");
        assert!(status == 200 || status == 404, "{key}: {status}");
    }
    for key in &acked.deletes {
        let (status, _) = request(port, "GET", &format!("/{bucket}/{key}"), b"").expect("GET after restart");
        assert_eq!(status, 404, "acknowledged DELETE {key} came back after the kill");
    }
    acked.puts.len() + acked.deletes.len()
}

/// `ROUNDS` times on `dir`: starts the server (`setup` runs on the first start), loads it with
/// `WRITERS` threads of `writer(port, round, writer number)`, kills it with SIGKILL at a moment
/// that moves later each round, restarts it and runs `check(port)`; the last check's count.
fn kill_rounds(
    dir: &Path,
    setup: impl Fn(u16),
    writer: impl Fn(u16, u64, u64) + Send + Sync + 'static,
    check: impl Fn(u16) -> usize,
) -> usize {
    let _ = std::fs::remove_dir_all(dir);
    let writer = Arc::new(writer);
    let mut checked = 0;
    for round in 0..ROUNDS {
        let (mut server, port) = start(dir);
        if round == 0 {
            setup(port);
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let writer = writer.clone();
                std::thread::spawn(move || writer(port, round, w))
            })
            .collect();
        // The test's own thread waits for the writers to get going: no ring here.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(400 + round * 500));
        server.kill().expect("SIGKILL the server");
        server.wait().expect("reap the server");
        for w in writers {
            w.join().expect("writer");
        }
        let (server, port) = start(dir);
        let server = Running(server);
        checked = check(port);
        drop(server);
    }
    checked
}

fn create_bucket(port: u16) {
    let (status, body) = request(port, "PUT", &format!("/{BUCKET}"), b"").expect("create bucket");
    assert_eq!(status, 200, "create bucket: {}", String::from_utf8_lossy(&body));
}

#[test]
fn serve_survives_sigkill_under_load() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-crash");
    let all = Arc::new(Mutex::new(Acked::default()));
    let acked = all.clone();
    let checked = kill_rounds(
        &dir,
        create_bucket,
        move |port, round, w| writer(port, BUCKET, round, w, acked.clone()),
        |port| check(port, BUCKET, &all.lock().expect("lock")),
    );
    let a = all.lock().expect("lock");
    eprintln!("{ROUNDS} kills: {} acknowledged PUTs and {} DELETEs checked", a.puts.len(), a.deletes.len());
    assert!(a.puts.len() > 50 && !a.deletes.is_empty(), "too little load to prove anything: {checked} checked");
}

/// The same with every object encrypted (the bucket's default, SSE-S3): after each kill every
/// acknowledged PUT decrypts to its bytes (the master key made on the first start, the sealed
/// object keys and IVs in each record, all recovered), and the server says it is encrypted.
#[test]
fn encrypted_serve_survives_sigkill_under_load() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-crash-sse");
    let all = Arc::new(Mutex::new(Acked::default()));
    let acked = all.clone();
    let setup = |port: u16| {
        create_bucket(port);
        let config = b"<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>";
        let (status, _, body) = request_with_head(port, "PUT", &format!("/{BUCKET}"), "encryption=", config).expect("put bucket encryption");
        assert_eq!(status, 200, "put bucket encryption: {}", String::from_utf8_lossy(&body));
    };
    let checked = kill_rounds(
        &dir,
        setup,
        move |port, round, w| writer(port, BUCKET, round, w, acked.clone()),
        |port| {
            let a = all.lock().expect("lock");
            let key = a.puts.keys().next().expect("an acknowledged PUT");
            let (status, head, _) = request_with_head(port, "GET", &format!("/{BUCKET}/{key}"), "", b"").expect("GET after restart");
            assert_eq!((status, header(&head, "x-amz-server-side-encryption")), (200, Some("aes256")), "{key} after the kill");
            check(port, BUCKET, &a)
        },
    );
    let a = all.lock().expect("lock");
    eprintln!("{ROUNDS} kills: {} acknowledged encrypted PUTs and {} DELETEs checked", a.puts.len(), a.deletes.len());
    assert!(a.puts.len() > 50 && !a.deletes.is_empty(), "too little load to prove anything: {checked} checked");
}

/// What is known of one key of a versioned bucket, written by one writer (so in order).
#[derive(Default)]
struct KeyHistory {
    /// Versions whose PUT was acknowledged and which no acknowledged delete removed: id, length.
    versions: Vec<(String, usize)>,
    /// Versions whose removal (a DELETE with their id) was acknowledged.
    removed: Vec<String>,
    /// A removal in flight at the kill: the version may or may not be there.
    maybe_removed: Option<String>,
    /// What the key's current version must be, if its last operation was acknowledged: a
    /// version id with its data, or `None` for a delete marker.
    current: Option<Option<(String, usize)>>,
}

fn versioned_writer(port: u16, round: u64, w: u64, keys: Arc<Mutex<BTreeMap<String, KeyHistory>>>) {
    let mut x = (round * 7919 + w + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    loop {
        let key = format!("v{round}/w{w}/k{}", next() % 4);
        let path = format!("/{BUCKET}/{key}");
        let pick = next() % 100;
        let mut all = keys.lock().expect("lock");
        let h = all.entry(key.clone()).or_default();
        if pick < 15 && !h.versions.is_empty() {
            // Remove one acknowledged version for good.
            let (id, _) = h.versions.swap_remove((next() % h.versions.len() as u64) as usize);
            let was_current = h.current.as_ref().is_some_and(|c| c.as_ref().is_some_and(|(cid, _)| *cid == id));
            h.maybe_removed = Some(id.clone());
            if was_current {
                // The one before becomes current; which one that is the test does not track.
                h.current = None;
            }
            drop(all);
            match request_with_head(port, "DELETE", &path, &format!("versionId={id}"), b"") {
                Some((204, _, _)) => {
                    let mut all = keys.lock().expect("lock");
                    let h = all.get_mut(&key).expect("known key");
                    h.maybe_removed = None;
                    h.removed.push(id);
                }
                Some((status, _, body)) => panic!("DELETE {key}?versionId={id}: {status} {}", String::from_utf8_lossy(&body)),
                None => return,
            }
            continue;
        }
        let marker = pick < 30;
        // In flight: what is current stays unknown until the write is acknowledged.
        h.current = None;
        drop(all);
        let len = match next() % 100 {
            0..75 => (next() % 16_384) as usize,
            75..95 => 16_384 + (next() % 400_000) as usize,
            _ => (1 << 20) + (next() % (1 << 20)) as usize,
        };
        let body = data(&format!("{key}/{}", next()), len);
        let answer = if marker { request_with_head(port, "DELETE", &path, "", b"") } else { request_with_head(port, "PUT", &path, "", &body) };
        let Some((status, head, reply)) = answer else { return };
        assert!(status == 200 || status == 204, "{} {key}: {status} {}", if marker { "DELETE" } else { "PUT" }, String::from_utf8_lossy(&reply));
        let id = header(&head, "x-amz-version-id").expect("a versioned write names its version").to_string();
        let mut all = keys.lock().expect("lock");
        let h = all.get_mut(&key).expect("known key");
        if marker {
            assert_eq!(header(&head, "x-amz-delete-marker"), Some("true"));
            h.current = Some(None);
        } else {
            // Keep the bytes' seed: the check rebuilds them from the recorded body.
            h.versions.push((id.clone(), len));
            h.current = Some(Some((id, len)));
            VERSION_BODIES.lock().expect("lock").insert((key.clone(), h.versions.last().expect("pushed").0.clone()), body);
        }
    }
}

/// A server process killed when dropped, so that a failed check leaves none running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every acknowledged version's bytes, by key and version id.
static VERSION_BODIES: Mutex<BTreeMap<(String, String), Vec<u8>>> = Mutex::new(BTreeMap::new());

fn check_versions(port: u16, keys: &BTreeMap<String, KeyHistory>) -> usize {
    let bodies = VERSION_BODIES.lock().expect("lock");
    let mut checked = 0;
    for (key, h) in keys {
        let path = format!("/{BUCKET}/{key}");
        for (id, len) in &h.versions {
            if h.maybe_removed.as_deref() == Some(id) {
                continue;
            }
            let (status, _, body) = request_with_head(port, "GET", &path, &format!("versionId={id}"), b"").expect("GET after restart");
            assert_eq!(status, 200, "acknowledged version {id} of {key} is missing after the kill: {}", String::from_utf8_lossy(&body));
            assert_eq!(body.len(), *len);
            assert!(body == bodies[&(key.clone(), id.clone())], "acknowledged version {id} of {key} reads back different bytes");
            checked += 1;
        }
        for id in &h.removed {
            let (status, _, _) = request_with_head(port, "GET", &path, &format!("versionId={id}"), b"").expect("GET after restart");
            assert_eq!(status, 404, "removed version {id} of {key} came back after the kill");
            checked += 1;
        }
        match &h.current {
            Some(Some((id, _))) => {
                let (status, head, _) = request_with_head(port, "GET", &path, "", b"").expect("GET after restart");
                assert_eq!((status, header(&head, "x-amz-version-id")), (200, Some(id.as_str())), "{key}'s current version after the kill");
            }
            Some(None) => {
                let (status, head, _) = request_with_head(port, "GET", &path, "", b"").expect("GET after restart");
                assert_eq!((status, header(&head, "x-amz-delete-marker")), (404, Some("true")), "{key}'s delete marker after the kill");
            }
            None => {}
        }
    }
    checked
}

#[test]
fn versioned_serve_survives_sigkill_under_load() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-crash-versioned");
    let keys = Arc::new(Mutex::new(BTreeMap::new()));
    let written = keys.clone();
    let enable_versioning = |port: u16| {
        create_bucket(port);
        let config = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
        let (status, _, body) = request_with_head(port, "PUT", &format!("/{BUCKET}"), "versioning=", config).expect("enable versioning");
        assert_eq!(status, 200, "enable versioning: {}", String::from_utf8_lossy(&body));
    };
    let checked = kill_rounds(
        &dir,
        enable_versioning,
        move |port, round, w| versioned_writer(port, round, w, written.clone()),
        |port| check_versions(port, &keys.lock().expect("lock")),
    );
    let keys = keys.lock().expect("lock");
    let versions: usize = keys.values().map(|h| h.versions.len()).sum();
    let removed: usize = keys.values().map(|h| h.removed.len()).sum();
    eprintln!("{ROUNDS} kills: {versions} acknowledged versions and {removed} removals of {} keys checked", keys.len());
    assert!(versions > 50 && removed > 0, "too little load to prove anything: {checked} checked");
}
