//! One `corestore serve` process per test, an AWS SDK client for it, and a minimal HTTP/1.1
//! client for the requests the SDK cannot make (presigned URLs, a Host header of our choosing,
//! raw error bodies).
#![allow(clippy::disallowed_methods)] // a test process of its own: plain threads, sleeps and wall time, no ring

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

pub const ACCESS_KEY: &str = "AKIACORESTORETEST01";
pub const SECRET_KEY: &str = "corestore-test-secret-key-0123456789abcd";
pub const REGION: &str = "us-east-1";

/// How long the server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// No single SDK call in these tests should take longer; a hung server fails the test instead.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);
/// Socket timeout of the raw HTTP client.
const RAW_IO_TIMEOUT: Duration = Duration::from_secs(60);

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

/// A running `corestore serve` on a fresh (or given) data directory. Killed with SIGKILL on drop,
/// and its data directory removed: every core reserves a 1 GiB segment up front, so kept
/// directories fill a disk within a few failing runs. `CORESTORE_S3_TEST_KEEP_DATA=1` keeps the
/// directory of a failed test for a post-mortem.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    stderr_path: PathBuf,
    /// Stdout lines after the listening line, collected by a drain thread.
    _stdout_drain: std::thread::JoinHandle<()>,
    /// For a server started with `start_tls`: the certificate its clients trust (PEM).
    pub tls_cert: Option<Vec<u8>>,
}

impl Server {
    /// Starts a server on a new data directory named after `test_name`.
    pub fn start(test_name: &str) -> Server {
        Server::start_on(fresh_data_dir(test_name))
    }

    /// `start` with more `corestore serve` flags.
    pub fn start_with(test_name: &str, flags: &[&str]) -> Server {
        Server::start_on_with(fresh_data_dir(test_name), flags)
    }

    /// `start`, serving HTTPS with a self-signed certificate from `corestore admin tls-cert`
    /// (written beside the data directory); `client()` trusts that certificate and nothing else.
    pub fn start_tls(test_name: &str) -> Server {
        let data_dir = fresh_data_dir(test_name);
        let tls_dir = data_dir.with_extension("tls");
        tls_cert_into(&tls_dir);
        let cert = tls_dir.join("cert.pem");
        let key = tls_dir.join("key.pem");
        let mut server = Server::start_on_with(
            data_dir,
            &["--tls-cert", cert.to_str().expect("utf-8 path"), "--tls-key", key.to_str().expect("utf-8 path")],
        );
        server.tls_cert = Some(std::fs::read(&cert).expect("read cert.pem"));
        server
    }

    /// Starts a server on an existing data directory (a restart).
    pub fn start_on(data_dir: PathBuf) -> Server {
        Server::start_on_with(data_dir, &[])
    }

    /// `start_on` with more `corestore serve` flags.
    pub fn start_on_with(data_dir: PathBuf, flags: &[&str]) -> Server {
        Server::start_listening_on(data_dir, "127.0.0.1:0", flags)
    }

    /// `start`, listening on `listen` (`--listen` is given once: clap refuses a second) instead
    /// of 127.0.0.1:0, e.g. `0.0.0.0:0` for requests from a non-loopback address. `endpoint()`
    /// and `raw_request` still use 127.0.0.1, which such an address also serves.
    pub fn start_listening(test_name: &str, listen: &str) -> Server {
        Server::start_listening_on(fresh_data_dir(test_name), listen, &[])
    }

    fn start_listening_on(data_dir: PathBuf, listen: &str, flags: &[&str]) -> Server {
        let stderr_path = data_dir.with_extension("stderr");
        let stderr_file = std::fs::File::create(&stderr_path).expect("create stderr file");
        let mut child = Command::new(corestore_binary())
            .arg("serve")
            .arg("--data")
            .arg(&data_dir)
            .args(["--listen", listen, "--cores", "2", "--segment-mib", "64"])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, "--region", REGION])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr_file)
            .spawn()
            .expect("spawn corestore serve");
        let stdout = child.stdout.take().expect("stdout piped");
        let (sender, receiver) = mpsc::channel::<String>();
        // The thread keeps reading stdout for the child's lifetime so that it never blocks on a
        // full pipe.
        let drain = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = sender.send(line);
            }
        });
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        let port = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match receiver.recv_timeout(left) {
                Ok(line) => {
                    if let Some((_, port)) = parse_listening_port(&line) {
                        break port;
                    }
                    seen.push(line);
                }
                Err(error) => {
                    let _ = child.kill();
                    let status = child.wait();
                    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    if std::env::var_os("CORESTORE_S3_TEST_KEEP_DATA").is_none() {
                        let _ = std::fs::remove_dir_all(&data_dir);
                    }
                    panic!(
                        "corestore serve printed no listening line ({error:?}); exit: {status:?}\n\
                         stdout:\n{}\nstderr:\n{}",
                        seen.join("\n"),
                        stderr
                    );
                }
            }
        };
        Server { child: Some(child), port, data_dir, stderr_path, _stdout_drain: drain, tls_cert: None }
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` for a TLS server (the name its
    /// certificate carries).
    pub fn endpoint(&self) -> String {
        match self.tls_cert {
            None => format!("http://127.0.0.1:{}", self.port),
            Some(_) => format!("https://localhost:{}", self.port),
        }
    }

    /// A client for the main test user, default checksum behaviour (CRC32 trailers on PUT).
    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_as(ACCESS_KEY, SECRET_KEY)
    }

    pub fn client_as(&self, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.config(access_key, secret_key).build())
    }

    /// A client that sends checksums only where an operation requires one.
    pub fn client_checksum_when_required(&self) -> aws_sdk_s3::Client {
        let config = self
            .config(ACCESS_KEY, SECRET_KEY)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub fn config(&self, access_key: &str, secret_key: &str) -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .credentials_provider(Credentials::new(access_key, secret_key, None, None, "corestore-test"))
            .http_client(http_client(self.tls_cert.as_deref()))
            // Retries would hide a first failure (and make a 500 look like a slow success).
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().operation_timeout(OPERATION_TIMEOUT).build())
    }

    /// A client of a TLS server that trusts `cert_pem` (and nothing else) instead of the
    /// server's certificate.
    pub fn client_trusting(&self, cert_pem: &[u8]) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.config(ACCESS_KEY, SECRET_KEY).http_client(http_client(Some(cert_pem))).build())
    }

    /// The server's stderr so far, for failure messages.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends `signal` to the server process.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("child running");
        // SAFETY: kill(2) on our own child's pid, which wait() has not reaped yet.
        let rc = unsafe { libc::kill(child.id() as i32, signal) };
        assert_eq!(rc, 0, "signal {signal} to corestore");
    }

    /// SIGTERM, the clean shutdown (index checkpoints written); the data directory stays for a
    /// restart.
    pub fn stop(mut self) -> PathBuf {
        let mut child = self.child.take().expect("child running");
        // SAFETY: kill(2) on our own child's pid, which wait() has not reaped yet.
        let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM corestore");
        let status = child.wait().expect("reap corestore");
        assert!(status.success() || status.code() == Some(143), "corestore exited with {status:?}:\n{}", self.stderr());
        let data_dir = self.data_dir.clone();
        self.data_dir = PathBuf::new();
        data_dir
    }

    /// SIGKILL, no shutdown path; the data directory stays for a restart.
    pub fn kill(mut self) -> PathBuf {
        let mut child = self.child.take().expect("child running");
        child.kill().expect("SIGKILL corestore");
        child.wait().expect("reap corestore");
        let data_dir = self.data_dir.clone();
        // Keep the directory: the caller restarts on it.
        self.data_dir = PathBuf::new();
        data_dir
    }

    /// Runs `corestore admin ARGS... --data DIR` and returns its stdout; panics on failure.
    pub fn admin(&self, args: &[&str]) -> String {
        admin(&self.data_dir, args)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let stderr = self.stderr();
            let tail_start = stderr.len().saturating_sub(4000);
            let tail_start = (tail_start..stderr.len()).find(|&i| stderr.is_char_boundary(i)).unwrap_or(0);
            eprintln!("corestore serve stderr (last 4000 bytes):\n{}", &stderr[tail_start..]);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.data_dir.as_os_str().is_empty() {
            return; // killed for a restart; the restarted server owns the directory
        }
        let keep = std::thread::panicking() && std::env::var_os("CORESTORE_S3_TEST_KEEP_DATA").is_some();
        if keep {
            eprintln!("kept the data directory {}", self.data_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.data_dir);
            let _ = std::fs::remove_dir_all(self.data_dir.with_extension("tls"));
            let _ = std::fs::remove_file(&self.stderr_path);
        }
    }
}

/// `corestore admin tls-cert --out DIR` into a fresh `dir`: its cert.pem and key.pem.
pub fn tls_cert_into(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let out = dir.to_str().expect("utf-8 path");
    let output = Command::new(corestore_binary()).args(["admin", "tls-cert", "--out", out]).output().expect("run admin tls-cert");
    assert!(output.status.success(), "admin tls-cert: {}", String::from_utf8_lossy(&output.stderr));
}

/// Plain HTTP, or HTTPS trusting only `cert_pem`.
fn http_client(cert_pem: Option<&[u8]>) -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let Some(cert) = cert_pem else {
        return aws_smithy_http_client::Builder::new().build_http();
    };
    let trust = tls::TrustStore::empty().with_native_roots(false).with_pem_certificate(cert.to_vec());
    let context = tls::TlsContext::builder().with_trust_store(trust).build().expect("TLS context");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

/// A new, empty data directory named after `test_name` (and this process, and a sequence).
fn fresh_data_dir(test_name: &str) -> PathBuf {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let data_dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("s3_sdk").join(format!("{test_name}-{}-{sequence}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).expect("create data dir");
    data_dir
}

/// `corestore admin <args> --data DIR`, e.g. `admin(dir, &["user", "add", "--access-key", ..])`.
pub fn admin(data_dir: &Path, args: &[&str]) -> String {
    let output = Command::new(corestore_binary())
        .arg("admin")
        .args(args)
        .arg("--data")
        .arg(data_dir)
        .output()
        .expect("run corestore admin");
    assert!(
        output.status.success(),
        "corestore admin {args:?} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The binary under test. `CORESTORE_S3_TEST_SERVER` replaces it with another program that takes
/// the same arguments and prints the same listening line: a way to run this suite against a
/// reference S3 implementation to tell a test's mistake from a server's.
fn corestore_binary() -> PathBuf {
    match std::env::var_os("CORESTORE_S3_TEST_SERVER") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_corestore")),
    }
}

/// `corestore: listening on http://127.0.0.1:PORT` → ("http", PORT), and the same for https.
fn parse_listening_port(line: &str) -> Option<(&str, u16)> {
    let (scheme, rest) = line.strip_prefix("corestore: listening on ")?.split_once("://")?;
    let (_, port) = rest.trim().rsplit_once(':')?;
    Some((scheme, port.trim_end_matches('/').parse().ok()?))
}

/// Wall-clock seconds since 1970: what SigV4 signs and what dates in conditionals are made from.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_secs() as i64
}

// ---------------------------------------------------------------------------------------------
// Errors

/// HTTP status and S3 error code of a failed SDK call; panics (with the success value's debug
/// form) if the call succeeded.
pub fn expect_error<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> (u16, String) {
    match result {
        Ok(value) => panic!("expected an error, got success: {value:?}"),
        Err(error) => {
            let status = error.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
            let code = error.code().unwrap_or("").to_string();
            assert!(status != 0, "no HTTP response (transport error?): {error:?}");
            (status, code)
        }
    }
}

/// Unwraps an SDK result with the full error (code, message, status) in the panic message.
pub trait OkOrPanic<T> {
    fn ok_or_panic(self, what: &str) -> T;
}

impl<T, E: ProvideErrorMetadata + std::fmt::Debug> OkOrPanic<T>
    for Result<T, SdkError<E, aws_sdk_s3::config::http::HttpResponse>>
{
    fn ok_or_panic(self, what: &str) -> T {
        match self {
            Ok(value) => value,
            Err(error) => {
                let status = error.raw_response().map(|r| r.status().as_u16());
                let body = error
                    .raw_response()
                    .and_then(|r| r.body().bytes())
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                panic!(
                    "{what}: status {status:?}, code {:?}, message {:?}\nbody: {body}\n{error:?}",
                    error.code(),
                    error.message()
                )
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// Deterministic, non-repeating-looking bytes (xorshift), so that a misplaced chunk shows.
pub fn pattern(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
}

pub fn md5(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ETag S3 gives a single PUT: the quoted hex MD5 of the body.
pub fn etag_of(data: &[u8]) -> String {
    format!("\"{}\"", hex(&md5(data)))
}

pub fn body(data: &[u8]) -> ByteStream {
    ByteStream::from(data.to_vec())
}

/// Reads a GetObject body completely.
pub async fn collect(output: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    output.body.collect().await.expect("read GetObject body").into_bytes().to_vec()
}

/// Asserts two bodies are equal without printing megabytes: the first differing offset.
pub fn assert_same_bytes(actual: &[u8], expected: &[u8], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    if let Some(offset) = actual.iter().zip(expected).position(|(a, b)| a != b) {
        panic!("{what}: bytes differ first at offset {offset} of {}", expected.len());
    }
}

pub async fn create_bucket(client: &aws_sdk_s3::Client, bucket: &str) {
    client.create_bucket().bucket(bucket).send().await.ok_or_panic(&format!("CreateBucket {bucket}"));
}

pub async fn put(client: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) -> String {
    let output = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body(data))
        .send()
        .await
        .ok_or_panic(&format!("PutObject {bucket}/{key}"));
    output.e_tag.expect("PutObject returns an ETag")
}

pub async fn get(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let output =
        client.get_object().bucket(bucket).key(key).send().await.ok_or_panic(&format!("GetObject {bucket}/{key}"));
    collect(output).await
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection to 127.0.0.1:`port`. `target` is the request
/// target (path and query, already encoded). A `host` header in `headers` replaces the default.
pub fn raw_request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    request_body: &[u8],
) -> RawResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to corestore");
    stream.set_read_timeout(Some(RAW_IO_TIMEOUT)).expect("set read timeout");
    stream.set_write_timeout(Some(RAW_IO_TIMEOUT)).expect("set write timeout");
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !request_body.is_empty() || matches!(method, "PUT" | "POST") {
        head.push_str(&format!("Content-Length: {}\r\n", request_body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("write request head");
    stream.write_all(request_body).expect("write request body");
    read_response(&mut stream, method == "HEAD")
}

/// Sends a presigned request (from the SDK's presigner) over a raw connection to the server,
/// keeping the URL's Host (which may be a virtual-hosted name that does not resolve).
pub fn send_presigned(
    port: u16,
    presigned: &aws_sdk_s3::presigning::PresignedRequest,
    request_body: &[u8],
) -> RawResponse {
    let uri = presigned.uri();
    let after_scheme = uri.split_once("://").map(|(_, rest)| rest).unwrap_or(uri);
    let (authority, target) = match after_scheme.find('/') {
        Some(slash) => (&after_scheme[..slash], &after_scheme[slash..]),
        None => (after_scheme, "/"),
    };
    let mut headers: Vec<(&str, &str)> = presigned.headers().collect();
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case("host"));
    headers.push(("Host", authority));
    raw_request(port, presigned.method(), target, &headers, request_body)
}

fn read_response(stream: &mut TcpStream, is_head: bool) -> RawResponse {
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("read status line");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read header line");
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or_else(|| panic!("bad header line {line:?}"));
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if is_head || status == 204 || status == 304 || (100..200).contains(&status) {
        // No body.
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).expect("read chunk size");
            let size_hex = size_line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_hex, 16).unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
            if size == 0 {
                // Trailers until the blank line.
                loop {
                    let mut trailer = String::new();
                    if reader.read_line(&mut trailer).expect("read trailer") == 0 || trailer.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).expect("read chunk");
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).expect("read chunk CRLF");
        }
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().expect("numeric Content-Length");
        body.resize(length, 0);
        reader.read_exact(&mut body).expect("read body");
    } else {
        reader.read_to_end(&mut body).expect("read body to EOF");
    }
    RawResponse { status, headers, body }
}

/// The text of the first `<name>...</name>` element in `xml`.
pub fn xml_element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

/// Decodes S3's `encoding-type=url` form (`+` or `%20` for a space, `%XX` bytes).
pub fn url_decode_plus(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let value = u8::from_str_radix(&encoded[i + 1..i + 3], 16)
                    .unwrap_or_else(|_| panic!("bad escape in {encoded:?}"));
                out.push(value);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| panic!("decoded key is not UTF-8: {encoded:?}"))
}

/// Adds a user with `admin user add` and waits until the server takes its key; its client.
pub async fn add_user(server: &Server, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    server.admin(&["user", "add", "--access-key", access_key, "--secret-key", secret_key]);
    let client = server.client_as(access_key, secret_key);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while client.list_buckets().send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "{access_key}'s key still refused after 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    client
}

/// The status of an SDK call: 200 for success, else the error's (a 403 must be AccessDenied).
pub fn status_of<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> u16 {
    match result {
        Ok(_) => 200,
        Err(_) => {
            let (status, code) = expect_error(result);
            assert!(status != 403 || code == "AccessDenied", "403 with code {code}");
            status
        }
    }
}
