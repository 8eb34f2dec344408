//! `corestore serve` killed with SIGKILL under load: clients PUT (small and chunked objects) and
//! DELETE over real connections; at a random moment the server is killed; after a restart on
//! the same data directory every PUT and DELETE that got a success answer must hold: the
//! object reads back byte-identical, the deleted key is gone. Several rounds on one directory,
//! so start-up also recovers logs that earlier kills cut, and collects the chunks of uploads a
//! kill interrupted.

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
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let host = format!("127.0.0.1:{port}");
    let mut headers = vec![("host".to_string(), host.clone())];
    headers.extend(sign_headers(&creds(), method, path, "", &headers, "UNSIGNED-PAYLOAD", unix_now()));
    let mut head = format!("{method} {path} HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
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
    (body.len() == len).then_some((status, body))
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

fn writer(port: u16, round: u64, w: u64, acked: Arc<Mutex<Acked>>) {
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
            match request(port, "DELETE", &format!("/{BUCKET}/{key}"), b"") {
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
        match request(port, "PUT", &format!("/{BUCKET}/{key}"), &data(&key, len)) {
            Some((200, _)) => {
                acked.lock().expect("lock").puts.insert(key.clone(), len);
                mine.push(key);
            }
            Some((status, body)) => panic!("PUT {key}: {status} {}", String::from_utf8_lossy(&body)),
            None => return,
        }
    }
}

fn check(port: u16, acked: &Acked) -> usize {
    for (key, len) in &acked.puts {
        let (status, body) = request(port, "GET", &format!("/{BUCKET}/{key}"), b"").expect("GET after restart");
        assert_eq!(status, 200, "acknowledged PUT {key} is missing after the kill: {}", String::from_utf8_lossy(&body));
        assert!(body == data(key, *len), "acknowledged PUT {key}: {} bytes read back differ from the {len} written", body.len());
    }
    for key in &acked.maybe_deleted {
        let (status, _) = request(port, "GET", &format!("/{BUCKET}/{key}"), b"").expect("GET after restart");
        assert!(status == 200 || status == 404, "{key}: {status}");
    }
    for key in &acked.deletes {
        let (status, _) = request(port, "GET", &format!("/{BUCKET}/{key}"), b"").expect("GET after restart");
        assert_eq!(status, 404, "acknowledged DELETE {key} came back after the kill");
    }
    acked.puts.len() + acked.deletes.len()
}

#[test]
fn serve_survives_sigkill_under_load() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-crash");
    let _ = std::fs::remove_dir_all(&dir);
    let all = Arc::new(Mutex::new(Acked::default()));
    let mut checked = 0;
    for round in 0..ROUNDS {
        let (mut server, port) = start(&dir);
        if round == 0 {
            let (status, body) = request(port, "PUT", &format!("/{BUCKET}"), b"").expect("create bucket");
            assert_eq!(status, 200, "create bucket: {}", String::from_utf8_lossy(&body));
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let acked = all.clone();
                std::thread::spawn(move || writer(port, round, w, acked))
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
        let (mut server, port) = start(&dir);
        checked = check(port, &all.lock().expect("lock"));
        server.kill().expect("kill");
        server.wait().expect("reap");
    }
    let a = all.lock().expect("lock");
    eprintln!("{ROUNDS} kills: {} acknowledged PUTs and {} DELETEs checked", a.puts.len(), a.deletes.len());
    assert!(a.puts.len() > 50 && !a.deletes.is_empty(), "too little load to prove anything: {checked} checked");
}
