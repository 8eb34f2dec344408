//! `corestore-bench loadgen` against a real `corestore serve` on loopback, every mode with small
//! sizes and short durations; what the server holds afterwards is read back with a client of
//! this file (s3front's client signer, a blocking socket), not with the generator's own code.
//!
//! Needs the `corestore` binary beside corestore-bench: `cargo build --release -p tools` first
//! (same profile as this test), as the s3 benchmark's smoke test does.

// Requests are signed with the wall clock (the server checks it) and a run's length is bounded
// in wall time: there is no simulated clock here.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use md5::Digest as _;
use serde_json::Value;

const ACCESS_KEY: &str = "loadgentest";
const SECRET_KEY: &str = "loadgen-test-secret-key-0123456789";
const REGION: &str = "us-east-1";
const BUCKET: &str = "loadgen";
const START_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A `corestore serve` child on a fresh data directory; killed and its directory removed on drop.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
    /// For a TLS server: its certificate (`corestore admin tls-cert`), which the test's own
    /// client trusts.
    tls_cert: Option<PathBuf>,
}

impl Server {
    fn start(name: &str) -> Server {
        Server::start_with(name, false)
    }

    /// `start`, serving HTTPS with a certificate from `corestore admin tls-cert`.
    fn start_tls(name: &str) -> Server {
        Server::start_with(name, true)
    }

    fn start_with(name: &str, tls: bool) -> Server {
        let bench = Path::new(env!("CARGO_BIN_EXE_corestore-bench"));
        let corestore = bench.with_file_name("corestore");
        assert!(corestore.exists(), "{} missing: build it first with `cargo build --release -p tools` (same profile as this test)", corestore.display());
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("loadgen-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut tls_flags = Vec::new();
        let tls_cert = tls.then(|| {
            let out = Command::new(&corestore).args(["admin", "tls-cert", "--out"]).arg(dir.join("tls")).output().expect("admin tls-cert");
            assert!(out.status.success(), "admin tls-cert: {}", String::from_utf8_lossy(&out.stderr));
            tls_flags = vec!["--tls-cert".into(), dir.join("tls/cert.pem"), "--tls-key".into(), dir.join("tls/key.pem")];
            dir.join("tls/cert.pem")
        });
        let mut child = Command::new(corestore)
            .arg("serve")
            .arg("--data")
            .arg(dir.join("data"))
            .args(["--listen", "127.0.0.1:0", "--cores", "1", "--segment-mib", "64", "--region", REGION])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .args(&tls_flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn corestore serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let addr = line.strip_prefix("corestore: listening on http://127.0.0.1:").or_else(|| line.strip_prefix("corestore: listening on https://127.0.0.1:"));
                if let Some(addr) = addr {
                    let _ = tx.send(addr.trim().parse::<u16>().expect("port"));
                }
            }
        });
        let port = rx.recv_timeout(START_TIMEOUT).expect("corestore serve printed its address");
        Server { child, port, dir, tls_cert }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs `corestore-bench loadgen ARGS` against this server with the test keys; JSON to `json`.
    fn loadgen(&self, mode: &str, args: &[&str], json: &Path) -> Output {
        self.loadgen_as(mode, args, json, SECRET_KEY)
    }

    fn loadgen_as(&self, mode: &str, args: &[&str], json: &Path, secret_key: &str) -> Output {
        self.loadgen_command(mode, args, json, secret_key).output().expect("running corestore-bench loadgen")
    }

    fn loadgen_command(&self, mode: &str, args: &[&str], json: &Path, secret_key: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_corestore-bench"));
        command
            .args(["loadgen", mode, "--host", &self.host(), "--access-key", ACCESS_KEY, "--secret-key", secret_key])
            .args(["--bucket", BUCKET, "--cpus", "0", "--json"])
            .arg(json)
            .args(args);
        command
    }

    fn json(&self, name: &str) -> PathBuf {
        std::fs::create_dir_all(&self.dir).expect("test dir");
        self.dir.join(format!("{name}.json"))
    }

    /// One signed request: (status, headers, body).
    fn request(&self, method: &str, path: &str, query: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let creds = s3front::sigv4::client::Credentials { access_key: ACCESS_KEY.into(), secret_key: SECRET_KEY.into(), region: REGION.into() };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
        let mut headers = vec![("host".to_string(), self.host())];
        headers.extend(s3front::sigv4::client::sign_headers(&creds, method, path, query, &headers, "UNSIGNED-PAYLOAD", now));
        let target = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
        let mut text = format!("{method} {target} HTTP/1.1\r\n");
        for (n, v) in &headers {
            text.push_str(&format!("{n}: {v}\r\n"));
        }
        text.push_str("connection: close\r\n\r\n");
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let mut answer = Vec::new();
        match &self.tls_cert {
            None => {
                stream.write_all(text.as_bytes()).expect("send");
                stream.read_to_end(&mut answer).expect("receive");
            }
            Some(cert) => {
                let roots = net::pem_certificates(cert).expect("read cert.pem");
                let config = net::client_config(net::ServerCheck::Roots(roots)).expect("TLS client config");
                let name = net::rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
                let conn = net::rustls::ClientConnection::new(config, name).expect("TLS client");
                let mut tls = net::rustls::StreamOwned::new(conn, stream);
                tls.write_all(text.as_bytes()).expect("send over TLS");
                // The server closes after `connection: close`, with or without close_notify.
                match tls.read_to_end(&mut answer) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
                    Err(e) => panic!("receive over TLS: {e}"),
                }
            }
        }
        let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
        let head = String::from_utf8_lossy(&answer[..head_end]).into_owned();
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
        let headers = lines.filter_map(|l| l.split_once(": ")).map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())).collect();
        (status, headers, answer[head_end..].to_vec())
    }

    /// (key, size, ETag) of every object under `prefix`.
    fn list(&self, prefix: &str) -> Vec<(String, u64, String)> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut query = format!("list-type=2&prefix={}", encode(prefix));
            if !token.is_empty() {
                query = format!("continuation-token={}&{query}", encode(&token));
            }
            let (status, _, body) = self.request("GET", &format!("/{BUCKET}"), &query);
            let text = String::from_utf8(body).expect("utf8 listing");
            assert_eq!(status, 200, "{text}");
            for c in text.split("<Contents>").skip(1) {
                let size = tag(c, "Size").parse().expect("size");
                out.push((tag(c, "Key"), size, tag(c, "ETag").replace("&quot;", "\"")));
            }
            if !text.contains("<IsTruncated>true</IsTruncated>") {
                return out;
            }
            token = tag(&text, "NextContinuationToken");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn encode(text: &str) -> String {
    text.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn tag(xml: &str, name: &str) -> String {
    let start = xml.find(&format!("<{name}>")).map(|i| i + name.len() + 2).unwrap_or_else(|| panic!("<{name}> in {xml}"));
    let end = xml[start..].find(&format!("</{name}>")).expect("closing tag") + start;
    xml[start..end].to_string()
}

fn succeeded(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "loadgen failed: {}\nstdout:\n{stdout}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("the run's JSON file")).expect("JSON")
}

/// The operation `name` of a run document.
fn op<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["ops"].as_array().expect("ops").iter().find(|o| o["op"] == name).unwrap_or_else(|| panic!("no {name} in {doc}"))
}

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// The objects a `put --noclear` left have the size it sent and an ETag that is the MD5 of what
/// GET returns; without --noclear nothing is left. Each way of sending bodies (signed chunks, a
/// CRC32 trailer, plain) is checked by the server, which verifies every chunk signature.
#[test]
fn put_leaves_whole_objects_and_cleans_up() {
    let server = Server::start("put");
    // Not a multiple of the 64 KiB chunk: the last chunk is short.
    let size: u64 = 100_000;
    for (i, extra) in [&[][..], &["--checksum", "CRC32"][..], &["--disable-sha256-payload"][..]].into_iter().enumerate() {
        let prefix = format!("put{i}/");
        let json = server.json(&format!("put{i}"));
        let mut args = vec!["--obj.size", "100000", "--duration", "1s", "--concurrent", "4", "--noclear", "--prefix", &prefix];
        args.extend_from_slice(extra);
        succeeded(&server.loadgen("put", &args, &json));
        let doc = read_json(&json);
        assert_eq!(count(&doc, "errors"), 0, "{extra:?}");
        let put = op(&doc, "PUT");
        assert!(count(put, "ops") > 0, "{extra:?}: {put}");
        assert_eq!(count(put, "bytes"), count(put, "ops") * size);
        let objects = server.list(&prefix);
        // Requests still in flight when the time was up complete, uncounted.
        assert!(objects.len() as u64 >= count(put, "ops"), "{} objects for {} PUTs", objects.len(), count(put, "ops"));
        for (key, bytes, etag) in &objects {
            assert_eq!(*bytes, size, "{key}");
            assert!(etag.starts_with('"') && etag.len() == 34, "{key}: a single-part ETag, {etag}");
        }
        for (key, _, etag) in objects.iter().take(3) {
            let (status, _, body) = server.request("GET", &format!("/{BUCKET}/{key}"), "");
            assert_eq!(status, 200);
            assert_eq!(body.len() as u64, size);
            assert_eq!(format!("\"{}\"", hex(&md5::Md5::digest(&body))), *etag, "{key}: ETag is the MD5 of the data");
        }
    }
    let json = server.json("put-clear");
    succeeded(&server.loadgen("put", &["--obj.size", "4KiB", "--duration", "1s", "--concurrent", "4", "--prefix", "gone/"], &json));
    assert!(count(op(&read_json(&json), "PUT"), "ops") > 0);
    assert_eq!(server.list("gone/"), [], "the cleanup removes what the run put");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// get, stat and list read what the prepare phase uploaded, without errors, and the cleanup
/// leaves the bucket as it was; delete removes every prepared object; multipart leaves one
/// object of every part.
#[test]
fn every_mode_runs_clean_against_corestore() {
    let server = Server::start("modes");
    for (mode, args, ops) in [
        ("get", &["--objects", "50", "--obj.size", "8KiB", "--concurrent", "4"][..], "GET"),
        ("stat", &["--objects", "50", "--concurrent", "4"][..], "STAT"),
        ("list", &["--objects", "300", "--concurrent", "3"][..], "LIST"),
    ] {
        let json = server.json(mode);
        let mut all = vec!["--duration", "1s", "--prefix", mode];
        all.extend_from_slice(args);
        let stdout = succeeded(&server.loadgen(mode, &all, &json));
        assert!(stdout.contains(&format!("Operation: {ops}, 100%")), "{stdout}");
        let doc = read_json(&json);
        assert_eq!(count(&doc, "errors"), 0, "{mode}: {doc}");
        let o = op(&doc, ops);
        assert!(count(o, "ops") > 10, "{mode}: {o}");
        match mode {
            "get" => assert_eq!(count(o, "bytes"), count(o, "ops") * 8192),
            // Each page of a connection's prefix holds its 100 objects.
            "list" => assert_eq!(count(o, "objects"), count(o, "ops") * 100),
            _ => {}
        }
        assert_eq!(server.list(mode), [], "{mode}: cleaned up");
    }
    let json = server.json("delete");
    succeeded(&server.loadgen("delete", &["--objects", "500", "--batch", "20", "--concurrent", "4", "--duration", "20s", "--prefix", "del/"], &json));
    let doc = read_json(&json);
    assert_eq!(doc["stopped_by"], "work-done", "every object deleted before the time was up");
    assert_eq!((count(op(&doc, "DELETE"), "ops"), count(op(&doc, "DELETE"), "objects")), (25, 500));
    assert_eq!(server.list("del/"), []);
    let json = server.json("multipart");
    let args = ["--parts", "3", "--part.size", "5MiB", "--concurrent", "2", "--duration", "20s", "--noclear", "--obj.name", "mp/big.bin"];
    succeeded(&server.loadgen("multipart", &args, &json));
    assert_eq!(count(op(&read_json(&json), "PUTPART"), "ops"), 3);
    let objects = server.list("mp/");
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(objects[0].1, 15 << 20);
    assert!(objects[0].2.ends_with("-3\""), "a three-part ETag: {}", objects[0].2);
}

/// mixed's operations come in warp's shares (45/30/15/10) within a few percent, without errors
/// (a DELETE never races a GET of the same object), and its cleanup takes what its PUTs added.
#[test]
fn mixed_keeps_warps_shares() {
    let server = Server::start("mixed");
    let json = server.json("mixed");
    let stdout = succeeded(&server.loadgen("mixed", &["--objects", "200", "--obj.size", "4KiB", "--duration", "2s", "--concurrent", "8", "--prefix", "mix/"], &json));
    let doc = read_json(&json);
    assert_eq!(count(&doc, "errors"), 0, "{doc}");
    let total: u64 = ["GET", "STAT", "PUT", "DELETE"].iter().map(|o| count(op(&doc, o), "ops")).sum();
    assert!(total > 1000, "{total} operations");
    for (name, share) in [("GET", 0.45), ("STAT", 0.30), ("PUT", 0.15), ("DELETE", 0.10)] {
        let got = count(op(&doc, name), "ops") as f64 / total as f64;
        assert!((got - share).abs() < 0.03, "{name}: {got:.3} of operations, warp's share {share}");
        assert!(stdout.contains(&format!("Operation: {name}, ")), "{stdout}");
    }
    assert_eq!(server.list("mix/"), []);
}

/// `analyze` prints the summary the run printed, from the file, and draws an SVG.
#[test]
fn analyze_reprints_the_summary_and_plots() {
    let server = Server::start("analyze");
    let json = server.json("run");
    let out = server.loadgen("get", &["--objects", "20", "--obj.size", "1KiB", "--duration", "2s", "--concurrent", "2", "--prefix", "an/"], &json);
    let run = succeeded(&out);
    // The progress line, once a second (a line each when stderr is not a terminal).
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.lines().any(|l| l.starts_with("benchmark: 1 s, ") && l.contains(" ops/s, ") && l.contains(" MiB/s, 0 errors")), "{progress}");
    let svg = server.dir.join("plot.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_corestore-bench")).args(["loadgen", "analyze"]).arg(&json).arg("--svg").arg(&svg).output().expect("analyze");
    let analyzed = succeeded(&out);
    let summary = |text: &str| text.lines().filter(|l| !l.starts_with("Run written") && !l.starts_with("Plot written")).collect::<Vec<_>>().join("\n");
    assert!(summary(&run).contains("Operation: GET"), "{run}");
    assert_eq!(summary(&analyzed), summary(&run));
    let picture = std::fs::read_to_string(&svg).expect("the SVG");
    assert!(picture.starts_with("<svg") && picture.contains("GET") && picture.contains("<polyline"), "{}", &picture[..picture.len().min(300)]);
    let doc = read_json(&json);
    let get = op(&doc, "GET");
    let series: Vec<u64> = get["series_per_s"]["ops"].as_array().expect("series").iter().map(|v| v.as_u64().expect("count")).collect();
    assert_eq!(series.len(), 2, "one throughput point per second of a 2 s run");
    assert_eq!(series.iter().sum::<u64>(), count(get, "ops"), "the series adds up to the total");
    let bytes: u64 = get["series_per_s"]["bytes"].as_array().expect("series").iter().map(|v| v.as_u64().expect("bytes")).sum();
    assert_eq!(bytes, count(get, "bytes"));
}

/// A wrong secret key: every request fails, and the failures are counted, reported with the
/// server's answer, and make the run fail; in the prepare phase, the first failure stops it.
#[test]
fn a_wrong_secret_key_is_counted_and_reported() {
    let server = Server::start("wrongkey");
    let json = server.json("wrong");
    let started = Instant::now();
    let out = server.loadgen_as("get", &["--skip-prepare", "--objects", "10", "--duration", "2s", "--concurrent", "2", "--prefix", "x/"], &json, "not-the-secret");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a run with failed operations exits non-zero:\n{stdout}\n{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let doc = read_json(&json);
    assert_eq!((doc["stopped_by"].as_str(), count(&doc, "connections_gave_up")), (Some("errors"), 2), "both connections gave up: {doc}");
    let get = op(&doc, "GET");
    assert_eq!(count(get, "ops"), 0);
    // Each connection gives up after 100 failures in a row, every one of them counted.
    assert_eq!((count(get, "errors"), count(&doc, "errors")), (200, 200), "{doc}");
    // The operation, the key, the host and the server's answer.
    let first = doc["first_errors"][0].as_str().unwrap_or_default();
    for part in ["GET x/000000", &server.host(), "403", "SignatureDoesNotMatch"] {
        assert!(first.contains(part), "{part:?} missing in the first error {first:?}");
    }
    assert!(stdout.contains(&format!(" * Errors: {}", count(get, "errors"))), "{stdout}");
    assert!(stderr.contains("operations failed"), "{stderr}");
    let out = server.loadgen_as("put", &["--duration", "1s"], &server.json("wrong-put"), "not-the-secret");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("create bucket loadgen") && stderr.contains("403"), "{stderr}");
}

/// With two hosts, connections alternate between them (both servers get objects); `--autoterm`
/// ends a steady run long before its `--duration`.
#[test]
fn hosts_alternate_and_autoterm_stops_a_steady_run() {
    let (one, two) = (Server::start("host1"), Server::start("host2"));
    // The run creates the bucket on its first host only (warp's hosts are one cluster).
    assert_eq!(two.request("PUT", &format!("/{BUCKET}"), "").0, 200);
    let json = one.json("hosts");
    let hosts = format!("{},{}", one.host(), two.host());
    let out = Command::new(env!("CARGO_BIN_EXE_corestore-bench"))
        .args(["loadgen", "put", "--host", &hosts, "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, "--bucket", BUCKET, "--cpus", "0"])
        .args(["--obj.size", "1KiB", "--concurrent", "4", "--duration", "1s", "--noclear", "--prefix", "h/", "--json"])
        .arg(&json)
        .output()
        .expect("loadgen");
    succeeded(&out);
    for (server, connections) in [(&one, ["0000", "0002"]), (&two, ["0001", "0003"])] {
        let keys: Vec<String> = server.list("h/").into_iter().map(|(k, _, _)| k).collect();
        assert!(!keys.is_empty(), "no objects on {}", server.host());
        assert!(keys.iter().all(|k| connections.iter().any(|c| k.starts_with(&format!("h/{c}-")))), "{}: {keys:?}", server.host());
    }
    let json = one.json("autoterm");
    let args = ["--objects", "20", "--obj.size", "1KiB", "--concurrent", "2", "--duration", "60s", "--autoterm", "--autoterm.dur", "3s", "--autoterm.pct", "60"];
    succeeded(&one.loadgen("get", &args, &json));
    let doc = read_json(&json);
    assert_eq!(doc["stopped_by"], "autoterm", "{doc}");
    let elapsed = doc["elapsed_s"].as_f64().expect("elapsed_s");
    assert!((3.0..30.0).contains(&elapsed), "stopped after {elapsed} s");
}

/// `--tls` against `corestore serve --tls-cert`: the generator checks the certificate (trusted
/// through `SSL_CERT_FILE`), puts whole objects that the test's own TLS client reads back, and
/// refuses a certificate it was not told to trust unless `--insecure`.
#[test]
fn tls_runs_checked_and_refuses_an_untrusted_certificate() {
    let server = Server::start_tls("tls");
    let cert = server.tls_cert.clone().expect("a TLS server");
    let json = server.json("tls-put");
    let args = ["--tls", "--obj.size", "100000", "--duration", "1s", "--concurrent", "4", "--noclear", "--prefix", "tls/"];
    let mut command = server.loadgen_command("put", &args, &json, SECRET_KEY);
    succeeded(&command.env("SSL_CERT_FILE", &cert).output().expect("run loadgen"));
    let doc = read_json(&json);
    assert_eq!(count(&doc, "errors"), 0, "{doc}");
    let put = count(op(&doc, "PUT"), "ops");
    assert!(put > 0, "{doc}");
    let objects = server.list("tls/");
    assert!(objects.len() as u64 >= put, "{} objects for {put} PUTs", objects.len());
    for (key, _, etag) in objects.iter().take(3) {
        let (status, _, body) = server.request("GET", &format!("/{BUCKET}/{key}"), "");
        assert_eq!((status, body.len()), (200, 100_000), "{key}");
        assert_eq!(format!("\"{}\"", hex(&md5::Md5::digest(&body))), *etag, "{key}: ETag is the MD5 of the data");
    }

    // An https:// host asks for TLS too; with no trust in the certificate, nothing succeeds.
    let json = server.json("tls-untrusted");
    let host = format!("https://{}", server.host());
    let mut command = server.loadgen_command("stat", &["--objects", "4", "--duration", "1s", "--concurrent", "2"], &json, SECRET_KEY);
    let out = command.args(["--host", &host]).env("SSL_CERT_FILE", "/nonexistent.pem").env_remove("SSL_CERT_DIR").output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a run against an untrusted certificate succeeded: {stderr}");
    assert!(stderr.contains("certificate") || stderr.contains("trusted root"), "{stderr}");

    // --insecure: warp's flag, no checks.
    let json = server.json("tls-insecure");
    let mut command = server.loadgen_command("stat", &["--tls", "--insecure", "--objects", "4", "--duration", "1s", "--concurrent", "2"], &json, SECRET_KEY);
    succeeded(&command.env("SSL_CERT_FILE", "/nonexistent.pem").output().expect("run"));
    assert!(count(op(&read_json(&json), "STAT"), "ops") > 0);
}

/// warp's `--sse-s3-encrypt` and `--encrypt`: the objects a run leaves are stored encrypted
/// (the server says so, and a read without the run's SSE-C key is refused), and a `get` run
/// reads its SSE-C objects back with its key without an error.
#[test]
fn encryption_flags_encrypt_what_they_put() {
    let server = Server::start("sse");
    for (flag, prefix) in [("--sse-s3-encrypt", "s3/"), ("--encrypt", "c/")] {
        let json = server.json(&format!("put{prefix}").replace('/', ""));
        let args = ["--obj.size", "10000", "--duration", "1s", "--concurrent", "2", "--noclear", "--prefix", prefix, flag];
        succeeded(&server.loadgen("put", &args, &json));
        let doc = read_json(&json);
        assert_eq!(count(&doc, "errors"), 0, "{flag}");
        assert!(doc["signing"].as_str().is_some_and(|s| s.contains(if flag == "--encrypt" { "SSE-C" } else { "SSE-S3" })), "{flag}: {}", doc["signing"]);
        let objects = server.list(prefix);
        assert!(!objects.is_empty(), "{flag}");
        let (key, _, _) = &objects[0];
        let (status, headers, body) = server.request("GET", &format!("/{BUCKET}/{key}"), "");
        if flag == "--encrypt" {
            assert_eq!(status, 400, "an SSE-C object read without its key: {}", String::from_utf8_lossy(&body));
        } else {
            assert_eq!(status, 200);
            assert!(headers.iter().any(|(n, v)| n == "x-amz-server-side-encryption" && v == "AES256"), "{headers:?}");
            assert_eq!(body.len(), 10_000);
        }
    }
    for flag in ["--encrypt", "--sse-s3-encrypt"] {
        let json = server.json(&format!("get{}", flag.trim_start_matches('-')));
        succeeded(&server.loadgen("get", &["--obj.size", "5000", "--objects", "20", "--duration", "1s", "--concurrent", "2", flag], &json));
        let doc = read_json(&json);
        assert_eq!(count(&doc, "errors"), 0, "{flag}");
        assert!(count(op(&doc, "GET"), "ops") > 0, "{flag}");
    }
}
