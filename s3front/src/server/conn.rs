//! One client connection: read a request head, authenticate, run the S3 operation, answer;
//! repeat while the connection stays open (HTTP/1.1 keep-alive).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use net::{RecvBuf, Stream, TcpStream};
use sha2::Digest;

use super::Shard;
use super::handlers;
use crate::checksum::{ChecksumAlgorithm, Checksummer, Md5};
use crate::chunked::AwsChunkedDecoder;
use crate::error::{ErrorCode, S3Error};
use crate::http::{self, BodyFraming, ChunkedDecoder, RequestHead, ResponseHead};
use crate::sigv2;
use crate::sigv4::{self, Auth, PayloadMode};

/// How long a client may take to send a request head, and between pieces of a body.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an idle keep-alive connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client may leave a response unread (per megabyte sent: `net`'s send ops are
/// 1 MiB at most under a timeout) before its connection is closed; nginx's `send_timeout`.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest object body accepted in one PUT (S3: 5 GiB).
pub const OBJECT_BYTES_MAX: u64 = 5 << 30;
/// Receive buffer per connection.
pub const RECV_BUF_BYTES: usize = 64 << 10;

/// A parsed, authenticated request.
pub struct Request {
    pub head: RequestHead,
    pub id: String,
    pub auth: Auth,
    /// Decoded path and query.
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub query: Vec<(String, String)>,
    pub now_ms: u64,
    /// CORS headers for a cross-origin request its bucket's rules allow (`handlers::handle`).
    pub cors: Vec<(String, String)>,
    /// For a GET, HEAD or PUT of an object in a bucket with lifecycle rules: the rules and the
    /// length of their day, to name the object's expiry (`x-amz-expiration`).
    pub lifecycle: Option<LifecycleDay>,
    /// For a GET, HEAD or PUT of an object: whether its bucket has versioning (an object
    /// written before it is then named as the "null" version).
    pub versioned: bool,
    /// The client's address (`aws:SourceIp` in bucket policies).
    pub peer: std::net::IpAddr,
    /// It came over TLS (`aws:SecureTransport`): the server speaks HTTPS on every connection
    /// or on none.
    pub secure: bool,
}

/// A bucket's lifecycle rules and the length of their day in milliseconds.
pub type LifecycleDay = (std::sync::Arc<Vec<crate::lifecycle::Rule>>, u64);

impl Request {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn has_query(&self, name: &str) -> bool {
        self.query.iter().any(|(n, _)| n == name)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The requester's access key, or `None` for an anonymous request.
    pub fn access_key(&self) -> Option<&str> {
        match &self.auth {
            Auth::Signed(s) => Some(&s.access_key),
            Auth::Anonymous => None,
        }
    }
}

/// A response: status, headers, and a body in memory (large bodies are streamed by handlers
/// through `Conn::send_*` instead).
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    pub fn xml(status: u16, body: Vec<u8>) -> Response {
        Response { status, headers: vec![("content-type".into(), "application/xml".into())], body }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// The connection, as handlers see it.
pub struct Conn {
    pub stream: Stream,
    pub buf: RecvBuf,
    pub peer: SocketAddr,
    /// The client sent `Expect: 100-continue` and has not been told to go on yet.
    continue_pending: bool,
    /// The current request's body was not read to its end: the connection must close.
    pub body_unread: bool,
    /// Large bodies go out with send_zc. Not to loopback peers: there the kernel copies anyway,
    /// and the send completes only once the peer has read the data (measured: 1 MiB GETs at
    /// 0.94 GB/s with a 50 ms p99, against 1.80 GB/s and 12 ms with plain sends). Never under
    /// TLS, where what goes out is a fresh encryption.
    pub zero_copy: bool,
}

/// A new connection: the TLS handshake first if the server speaks HTTPS (within
/// `HEAD_TIMEOUT`, as a request head), then its requests.
pub async fn accept_connection(shard: Rc<Shard>, tcp: TcpStream, peer: SocketAddr, tls: Option<std::sync::Arc<net::rustls::ServerConfig>>) {
    let stream = match tls {
        None => Stream::from(tcp),
        Some(config) => match net::TlsStream::accept(tcp, config, HEAD_TIMEOUT).await {
            Ok(s) => Stream::from(s),
            // A client that cannot or will not finish a handshake gets what rustls told it (an
            // alert) and the close; nothing of it is worth a line per connection on stderr.
            Err(_) => return,
        },
    };
    serve_connection(shard, stream, peer).await;
}

pub async fn serve_connection(shard: Rc<Shard>, stream: Stream, peer: SocketAddr) {
    let zero_copy = !peer.ip().is_loopback() && !stream.is_tls();
    let mut conn =
        Conn { stream, buf: RecvBuf::with_capacity(RECV_BUF_BYTES), peer, continue_pending: false, body_unread: false, zero_copy };
    while let Ok(true) = one_request(&shard, &mut conn).await {}
    if !conn.stream.is_poisoned() {
        conn.stream.close().await;
    }
}

/// Serves one request; `Ok(true)` to keep the connection.
async fn one_request(shard: &Rc<Shard>, conn: &mut Conn) -> Result<bool, ()> {
    let mut started = (!conn.buf.is_empty()).then(engine::time::now);
    let head = loop {
        match http::parse_head(conn.buf.filled()) {
            Ok(Some((head, used))) => {
                conn.buf.consume(used);
                break head;
            }
            Ok(None) => {
                // An idle keep-alive connection may wait for its next request; once a request
                // has begun, its whole head must arrive within HEAD_TIMEOUT (slow-loris).
                let limit = match started {
                    None => IDLE_TIMEOUT,
                    Some(t) => {
                        let now = engine::time::now();
                        let deadline = t.saturating_add(HEAD_TIMEOUT);
                        if now >= deadline {
                            return Err(());
                        }
                        deadline.saturating_duration_since(now)
                    }
                };
                let n = conn.stream.recv_timeout(&mut conn.buf, limit).await.map_err(|_| ())?;
                if n == 0 {
                    return Err(());
                }
                started.get_or_insert_with(engine::time::now);
            }
            Err(e) => {
                let id = shard.request_id();
                let err = S3Error::new(ErrorCode::InvalidRequest, format!("malformed HTTP request: {e}")).with_request_id(id.clone());
                let _ = send_error_status(conn, e.status(), &err, false, false).await;
                return Err(());
            }
        }
    };
    let keep_alive = head.keep_alive;
    let id = shard.request_id();
    conn.continue_pending = head.expect_continue;
    conn.body_unread = !matches!(head.body, BodyFraming::None | BodyFraming::Length(0));
    let is_head = head.method == http::Method::Head;
    let result = match prepare(shard, head, id.clone(), conn.peer.ip()) {
        Ok(req) => handlers::handle(shard, conn, req).await,
        Err(e) => Err(e),
    };
    let keep = match result {
        Ok(Some(resp)) => {
            let close = !keep_alive || conn.body_unread;
            send_response(conn, resp, &id, is_head, close).await.map_err(|_| ())?;
            !close
        }
        // The handler already sent the response (streamed).
        Ok(None) => keep_alive && !conn.body_unread,
        Err(e) => {
            let e = e.with_request_id(id.clone());
            let close = !keep_alive || conn.body_unread;
            send_error_status(conn, e.code.status(), &e, close, is_head).await.map_err(|_| ())?;
            !close
        }
    };
    Ok(keep)
}

fn resource_of(head: &RequestHead) -> String {
    head.path().to_string()
}

/// Decodes addressing, authenticates.
fn prepare(shard: &Rc<Shard>, head: RequestHead, id: String, peer: std::net::IpAddr) -> Result<Request, S3Error> {
    let with_resource = |e: S3Error| e.with_resource(resource_of(&head));
    let path = http::decode_path(head.path()).map_err(|e| with_resource(S3Error::new(ErrorCode::InvalidURI, e.to_string())))?;
    let query = http::parse_query(head.query()).map_err(|e| with_resource(S3Error::new(ErrorCode::InvalidURI, e.to_string())))?;
    let host_bucket = host_bucket(shard, &head);
    let (bucket, key) = address(host_bucket, &path);
    let now_ms = super::unix_now_ms();
    let secure = shard.config.tls.is_some();
    // A CORS preflight is never signed by its browser: a presigned URL's query, or another
    // request's Authorization, is not checked for it (its method differs from the signed one).
    if head.method == http::Method::Options {
        return Ok(Request { head, id, auth: Auth::Anonymous, bucket, key, query, now_ms, cors: Vec::new(), lifecycle: None, versioned: false, peer, secure });
    }
    let auth = authenticate(shard, &head, host_bucket, now_ms).map_err(|e| {
        let code = ErrorCode::from_name(e.code()).unwrap_or(ErrorCode::AccessDenied);
        let mut err = S3Error::new(code, e.message());
        if let sigv4::AuthError::SignatureDoesNotMatch { access_key, string_to_sign, canonical_request } = &e {
            err = err.with_extra("AWSAccessKeyId", access_key.clone()).with_extra("StringToSign", string_to_sign.clone());
            // SigV2 has no canonical request.
            if !canonical_request.is_empty() {
                err = err.with_extra("CanonicalRequest", canonical_request.clone());
            }
        }
        with_resource(err)
    })?;
    Ok(Request { head, id, auth, bucket, key, query, now_ms, cors: Vec::new(), lifecycle: None, versioned: false, peer, secure })
}

/// The bucket of a virtual-hosted `host` (`bucket.<domain>`), the domain matched without
/// regard to case: no lowercased copy of the host for every request.
fn virtual_bucket<'a>(host: &'a str, domain: &str) -> Option<&'a str> {
    let split = host.len().checked_sub(domain.len() + 1)?;
    let (bucket, dot_domain) = host.as_bytes().split_at(split);
    // A '.' at `split` makes it a char boundary, so the slice below cannot panic.
    let matches = !bucket.is_empty() && dot_domain[0] == b'.' && dot_domain[1..].eq_ignore_ascii_case(domain.as_bytes());
    matches.then(|| &host[..split])
}

/// SigV2 or SigV4, whichever the request carries; both answer with the same `Auth`, so the
/// request takes one path from here on.
fn authenticate(shard: &Shard, head: &RequestHead, host_bucket: Option<&str>, now_ms: u64) -> Result<Auth, sigv4::AuthError> {
    let parts = sigv4::RequestParts { method: head.method.as_str(), raw_path: head.path(), raw_query: head.query(), headers: head };
    let secrets = |ak: &str| shard.users.borrow_mut().secret(ak);
    let now_unix_s = (now_ms / 1000) as i64;
    if sigv2::is_sigv2(&parts) {
        // SigV2 signs a virtual-hosted request's bucket as the resource's first segment; bucket
        // names are lowercase, and clients sign the name they were given.
        let bucket = host_bucket.map(str::to_ascii_lowercase);
        return sigv2::authenticate(&parts, bucket.as_deref(), &secrets, now_unix_s).map(Auth::Signed);
    }
    sigv4::authenticate(&parts, &secrets, now_unix_s, &shard.config.region)
}

/// The bucket a virtual-hosted request names in its host (`bucket.<domain>`), as sent.
fn host_bucket<'h>(shard: &Shard, head: &'h RequestHead) -> Option<&'h str> {
    let host = head.host().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
    shard.config.domains.iter().map(String::as_str).chain(["localhost"]).find_map(|d| virtual_bucket(host, d))
}

/// Path-style `/bucket/key`, or virtual-hosted (`host_bucket`) with `/key`.
fn address(host_bucket: Option<&str>, path: &str) -> (Option<String>, Option<String>) {
    if let Some(bucket) = host_bucket {
        let key = path.strip_prefix('/').unwrap_or(path);
        return (Some(bucket.to_ascii_lowercase()), (!key.is_empty()).then(|| key.to_string()));
    }
    let rest = path.strip_prefix('/').unwrap_or(path);
    match rest.split_once('/') {
        None if rest.is_empty() => (None, None),
        None => (Some(rest.to_string()), None),
        Some((b, k)) => (Some(b.to_string()), (!k.is_empty()).then(|| k.to_string())),
    }
}

/// An S3 error response. A HEAD's carries the head only: a body there would be read as the
/// start of the next response on the connection.
pub async fn send_error_status(conn: &mut Conn, status: u16, e: &S3Error, close: bool, is_head: bool) -> Result<(), net::NetError> {
    let body = e.to_xml();
    let mut head = ResponseHead::new(status).header("x-amz-request-id", &e.request_id).header("server", "corestore");
    for (n, v) in e.headers.iter().flat_map(|h| h.iter()) {
        // A value that cannot be a header is left out, as everywhere stored values are echoed.
        let _ = head.try_header(n, v);
    }
    if !body.is_empty() {
        head = head.header("content-type", "application/xml");
    }
    if close {
        head = head.header("connection", "close");
    }
    let mut out = Vec::with_capacity(256 + body.len());
    if status == 304 {
        head.write_into(&mut out);
    } else {
        head.content_length(body.len() as u64).write_into(&mut out);
        if !is_head {
            out.extend_from_slice(&body);
        }
    }
    conn.stream.send_all(out).await.map(|_| ())
}

/// Writes the response head (with Content-Length `len`).
pub fn response_head(status: u16, headers: &[(String, String)], request_id: &str, len: Option<u64>, close: bool) -> Vec<u8> {
    let mut head = head_start(status, request_id, len);
    for (n, v) in headers {
        // Stored user metadata is echoed: a value that cannot be a header is left out.
        let _ = head.try_header(n, v);
    }
    head_end(head, len, close)
}

/// The headers every response starts with, in a buffer with room for a body of `body_bytes`
/// (bodies up to `INLINE_BODY_BYTES_MAX` are appended to go out in the same send).
pub fn head_start(status: u16, request_id: &str, body_bytes: Option<u64>) -> ResponseHead {
    // Room for a body that goes out with the head; a larger one is sent on its own.
    let inline = body_bytes.filter(|&b| b <= INLINE_BODY_BYTES_MAX as u64).unwrap_or(0) as usize;
    ResponseHead::in_buffer(status, out_buf(HEAD_BYTES_TYPICAL + inline))
        .header("x-amz-request-id", request_id)
        .header("server", "corestore")
        .date((super::unix_now_ms() / 1000) as i64)
}

/// Ends `head` (Content-Length `len`, Connection) into its buffer.
pub fn head_end(mut head: ResponseHead, len: Option<u64>, close: bool) -> Vec<u8> {
    if close {
        head = head.header("connection", "close");
    }
    if let Some(len) = len
        && head.status() != 204
        && head.status() != 304
    {
        head = head.content_length(len);
    }
    head.into_bytes()
}

/// Room reserved for a response head: most fit, a longer one grows its buffer once.
const HEAD_BYTES_TYPICAL: usize = 512;

/// Response buffers a core keeps for reuse, and the largest kept. A 4 KiB GET's head and body
/// are built in one, and allocating 1 KiB or more makes glibc's malloc consolidate its fast bins
/// first: 1.4% of the core's time on 4 KiB GETs (perf), plus the malloc and free themselves.
const OUT_BUFS_KEPT_MAX: usize = 256;
const OUT_BUF_BYTES_MAX: usize = HEAD_BYTES_TYPICAL + (16 << 10);

thread_local! {
    static OUT_BUFS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty buffer with room for `capacity_bytes`, reused if the core has one.
pub fn out_buf(capacity_bytes: usize) -> Vec<u8> {
    let mut buf = OUT_BUFS.with(|b| b.borrow_mut().pop()).unwrap_or_default();
    buf.clear();
    buf.reserve(capacity_bytes);
    buf
}

/// Gives a sent response's buffer back for reuse (kept only if small; at most
/// `OUT_BUFS_KEPT_MAX`, so a burst of large responses does not pin memory).
pub fn recycle_out_buf(buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > OUT_BUF_BYTES_MAX {
        return;
    }
    OUT_BUFS.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < OUT_BUFS_KEPT_MAX {
            b.push(buf);
        }
    });
}

/// Bodies up to this size go out in the same send as their head (a copy is cheaper than a
/// second send and a second TCP segment).
pub const INLINE_BODY_BYTES_MAX: usize = 64 << 10;

async fn send_response(conn: &mut Conn, resp: Response, request_id: &str, is_head: bool, close: bool) -> Result<(), net::NetError> {
    let len = resp.headers.iter().find(|(n, _)| n == "content-length").map(|_| None).unwrap_or(Some(resp.body.len() as u64));
    let mut out = response_head(resp.status, &resp.headers, request_id, len, close);
    if !is_head {
        out.extend_from_slice(&resp.body);
    }
    conn.stream.send_all(out).await.map(recycle_out_buf)
}

/// Reads a request body, undoing HTTP chunked and aws-chunked framing and checking what the
/// client declared: the SHA-256 it signed, Content-MD5, x-amz-checksum-* (header or trailer).
pub struct BodyReader {
    /// Raw bytes left to read (Content-Length framing).
    remaining: Option<u64>,
    http_chunked: Option<ChunkedDecoder>,
    aws: Option<AwsChunkedDecoder>,
    sha256: Option<(sha2::Sha256, [u8; 32])>,
    md5: Option<Md5>,
    /// Set once the body ended: its MD5 (the ETag) and its checksum (algorithm, base64).
    pub md5_digest: Option<[u8; 16]>,
    pub checksum_value: Option<(ChecksumAlgorithm, String)>,
    content_md5: Option<String>,
    /// (algorithm, declared base64 value if in a header, running checksum).
    checksum: Option<(ChecksumAlgorithm, Option<String>, Checksummer)>,
    pub decoded_len: Option<u64>,
    received: u64,
    done: bool,
}

impl BodyReader {
    pub fn new(req: &Request) -> Result<BodyReader, S3Error> {
        let (remaining, http_chunked) = match req.head.body {
            BodyFraming::None => (Some(0), None),
            BodyFraming::Length(n) => (Some(n), None),
            BodyFraming::Chunked => (None, Some(ChunkedDecoder::new(OBJECT_BYTES_MAX + (64 << 20)))),
        };
        let mut aws = None;
        let mut sha256 = None;
        let mut decoded_len = remaining.filter(|_| http_chunked.is_none());
        let mut trailer_alg = None;
        if let Auth::Signed(s) = &req.auth {
            match s.payload {
                PayloadMode::Sha256(expected) => sha256 = Some((sha2::Sha256::new(), expected)),
                PayloadMode::Unsigned => {}
                _ => {
                    aws = AwsChunkedDecoder::for_request(s);
                    decoded_len = s.decoded_content_length;
                    trailer_alg = s.trailer;
                }
            }
        } else if req.header("content-encoding").is_some_and(|v| v.split(',').any(|p| p.trim() == "aws-chunked"))
            && let Some(mode) = req.header("x-amz-content-sha256").and_then(PayloadMode::parse).and_then(|m| m.chunked_mode())
        {
            let trailer = req.header("x-amz-trailer").and_then(ChecksumAlgorithm::from_header_name);
            let declared = req.header("x-amz-decoded-content-length").and_then(|v| v.parse().ok());
            aws = Some(AwsChunkedDecoder::new(mode, None, trailer, declared));
            decoded_len = declared;
            trailer_alg = trailer;
        }
        if let Some(n) = decoded_len
            && n > OBJECT_BYTES_MAX
        {
            return Err(S3Error::new(ErrorCode::EntityTooLarge, format!("{n} bytes exceed the largest object ({OBJECT_BYTES_MAX})")));
        }
        let mut checksum = None;
        for alg in ChecksumAlgorithm::ALL {
            if let Some(v) = req.header(alg.header_name()) {
                checksum = Some((alg, Some(v.to_string()), Checksummer::new(alg)));
            }
        }
        if checksum.is_none()
            && let Some(alg) = trailer_alg
        {
            checksum = Some((alg, None, Checksummer::new(alg)));
        }
        if checksum.is_none()
            && let Some(alg) = req.header("x-amz-sdk-checksum-algorithm").and_then(ChecksumAlgorithm::from_sdk_name)
        {
            checksum = Some((alg, None, Checksummer::new(alg)));
        }
        if let Some(v) = req.header("content-md5") {
            crate::checksum::parse_content_md5(v).map_err(|e| S3Error::new(ErrorCode::InvalidDigest, e.to_string()))?;
        }
        Ok(BodyReader {
            remaining,
            http_chunked,
            aws,
            sha256,
            md5: Some(Md5::new()),
            md5_digest: None,
            checksum_value: None,
            content_md5: req.header("content-md5").map(str::to_string),
            checksum,
            decoded_len,
            received: 0,
            done: false,
        })
    }

    /// The body's decoded length, if the request declared it.
    pub fn declared_len(&self) -> Option<u64> {
        self.decoded_len
    }

    /// Appends up to about `want` more decoded bytes to `out`; false once the body has ended
    /// (and every declared digest matched).
    pub async fn read(&mut self, conn: &mut Conn, out: &mut Vec<u8>, want: usize) -> Result<bool, S3Error> {
        if self.done {
            return Ok(false);
        }
        if conn.continue_pending {
            conn.continue_pending = false;
            conn.stream.send_all(http::CONTINUE_100.to_vec()).await.map_err(|e| S3Error::new(ErrorCode::IncompleteBody, e.to_string()))?;
        }
        let start = out.len();
        while out.len() - start < want {
            if self.raw_finished() {
                self.finish()?;
                conn.body_unread = false;
                return Ok(out.len() > start);
            }
            if conn.buf.is_empty() {
                let n = conn
                    .stream
                    .recv_timeout(&mut conn.buf, BODY_TIMEOUT)
                    .await
                    .map_err(|e| S3Error::new(ErrorCode::RequestTimeout, format!("reading the request body: {e}")))?;
                if n == 0 {
                    return Err(S3Error::new(ErrorCode::IncompleteBody, "the connection closed before the body ended"));
                }
            }
            let avail = conn.buf.filled();
            let take = match self.remaining {
                Some(r) => avail.len().min(r as usize),
                None => avail.len(),
            };
            let used = self.decode(&avail[..take], out)?;
            conn.buf.consume(used);
            if let Some(r) = self.remaining.as_mut() {
                *r -= used as u64;
            }
        }
        Ok(true)
    }

    fn raw_finished(&self) -> bool {
        match (&self.http_chunked, self.remaining) {
            (Some(d), _) => d.is_done(),
            (None, Some(r)) => r == 0,
            (None, None) => unreachable!("a body is framed by length or chunks"),
        }
    }

    /// Feeds raw bytes through the decoders; returns raw bytes used.
    fn decode(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Result<usize, S3Error> {
        // Only HTTP chunked framing needs its own buffer; a Content-Length body is decoded in place.
        let unchunked;
        let (plain, used): (&[u8], usize) = match self.http_chunked.as_mut() {
            Some(d) => {
                let mut buf = Vec::new();
                let used = d.decode(raw, &mut buf).map_err(|e| S3Error::new(ErrorCode::IncompleteBody, e.to_string()))?;
                unchunked = buf;
                (&unchunked, used)
            }
            None => (raw, raw.len()),
        };
        let start = out.len();
        match self.aws.as_mut() {
            Some(aws) => {
                let mut at = 0;
                while at < plain.len() {
                    let n = aws.feed(&plain[at..], &mut |d| out.extend_from_slice(d)).map_err(chunk_error)?;
                    if n == 0 {
                        break;
                    }
                    at += n;
                }
            }
            None => out.extend_from_slice(plain),
        }
        let fresh = &out[start..];
        self.received += fresh.len() as u64;
        if self.received > OBJECT_BYTES_MAX {
            return Err(S3Error::new(ErrorCode::EntityTooLarge, "the body exceeds the largest object"));
        }
        self.md5.as_mut().expect("the body has not ended").update(fresh);
        if let Some((h, _)) = self.sha256.as_mut() {
            h.update(fresh);
        }
        if let Some((_, _, c)) = self.checksum.as_mut() {
            c.update(fresh);
        }
        Ok(used)
    }

    /// The algorithm of the checksum the client declared (header, trailer or
    /// `x-amz-sdk-checksum-algorithm`), if any.
    pub fn checksum_algorithm(&self) -> Option<ChecksumAlgorithm> {
        self.checksum.as_ref().map(|(a, _, _)| *a)
    }

    /// Computes `algorithm` over the body (`checksum_value`) when the client declared none.
    pub fn compute_checksum(&mut self, algorithm: ChecksumAlgorithm) {
        assert_eq!(self.received, 0, "a checksum covers the body from its first byte");
        if self.checksum.is_none() {
            self.checksum = Some((algorithm, None, Checksummer::new(algorithm)));
        }
    }

    /// For a request whose `x-amz-checksum-*` header describes something other than its body
    /// (CompleteMultipartUpload: the whole object's); a trailer is still the body's.
    pub fn ignoring_checksum_headers(mut self) -> BodyReader {
        if matches!(self.checksum, Some((_, Some(_), _))) {
            self.checksum = None;
        }
        self
    }

    /// Checks the declared digests once the body has ended.
    fn finish(&mut self) -> Result<(), S3Error> {
        self.done = true;
        if let Some(aws) = &self.aws
            && !aws.is_done()
        {
            return Err(S3Error::new(ErrorCode::IncompleteBody, "the aws-chunked body ended early"));
        }
        if let Some(n) = self.decoded_len
            && n != self.received
        {
            return Err(S3Error::new(ErrorCode::IncompleteBody, format!("the body has {} bytes, {n} were declared", self.received)));
        }
        if let Some((h, expected)) = self.sha256.take() {
            let computed: [u8; 32] = h.finalize().into();
            sigv4::verify_payload_sha256(&expected, &computed)
                .map_err(|e| S3Error::new(ErrorCode::XAmzContentSHA256Mismatch, e.message()))?;
        }
        let md5 = self.md5.take().expect("the body ends once").finish();
        if let Some(v) = &self.content_md5 {
            crate::checksum::verify_content_md5(v, &md5).map_err(|e| S3Error::new(ErrorCode::BadDigest, e.to_string()))?;
        }
        self.md5_digest = Some(md5);
        if let Some((alg, declared, c)) = self.checksum.take() {
            let computed = c.finish();
            if let Some(d) = declared
                && d != computed
            {
                return Err(S3Error::checksum_mismatch(alg.sdk_name()));
            }
            // A trailer checksum was already compared by the aws-chunked decoder.
            self.checksum_value = Some((alg, computed));
        }
        Ok(())
    }
}

fn chunk_error(e: crate::chunked::ChunkError) -> S3Error {
    let code = ErrorCode::from_name(e.code()).unwrap_or(ErrorCode::InvalidRequest);
    S3Error::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::virtual_bucket;

    #[test]
    fn virtual_hosted_buckets() {
        assert_eq!(virtual_bucket("photos.s3.example.com", "s3.example.com"), Some("photos"));
        assert_eq!(virtual_bucket("Photos.S3.Example.COM", "s3.example.com"), Some("Photos"));
        assert_eq!(virtual_bucket("s3.example.com", "s3.example.com"), None);
        assert_eq!(virtual_bucket(".s3.example.com", "s3.example.com"), None);
        assert_eq!(virtual_bucket("photosxs3.example.com", "s3.example.com"), None);
        assert_eq!(virtual_bucket("a.localhost", "localhost"), Some("a"));
        // Non-ASCII bytes where the dot should be: no match, and no slicing inside a char.
        assert_eq!(virtual_bucket("aé3.example.com", "3.example.com"), None);
        assert_eq!(virtual_bucket("é.localhost", "localhost"), Some("é"));
    }
}
