//! HTTP/1.1 on one keep-alive connection: build a request, read its whole response (the head
//! parsed with httparse, then exactly Content-Length bytes, received and discarded).

use std::time::Duration;

use net::{NetError, RecvBuf, Stream};
use s3front::http::ChunkedDecoder;

use super::sign::Signer;

/// Most headers a response may carry.
const RESPONSE_HEADERS_MAX: usize = 32;
/// Receive buffer per connection: a response head plus a good piece of a body per receive.
pub const RECV_BUF_BYTES: usize = 256 << 10;
/// A server that answers nothing for this long has stalled: the request fails.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    /// With a body of this many bytes.
    Put(usize),
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put(_) => "PUT",
        }
    }
}

/// One request's text (and body) in `out`, which is cleared first; signed when `signer` is given.
pub fn build_request(out: &mut Vec<u8>, method: Method, path: &str, host: &str, signer: Option<&Signer>, unix_s: i64, body: &[u8]) {
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(signer) = signer {
        signer.append_headers(out, method.as_str(), path, host, unix_s);
    }
    if let Method::Put(len) = method {
        assert_eq!(len, body.len(), "a PUT of {len} bytes with a body of {}", body.len());
        out.extend_from_slice(format!("Content-Length: {len}\r\n\r\n").as_bytes());
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
}

/// A whole response, its body discarded.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body_bytes: u64,
    /// The server will close the connection (`Connection: close`).
    pub close: bool,
    /// The first bytes of the body, kept for error reports (non-2xx), or the whole body up
    /// to the caller's limit (2xx) when asked for (listings, multi-delete results).
    pub body_start: Vec<u8>,
    /// The ETag header (multipart parts are completed with it).
    pub etag: Option<String>,
}

/// How to read one response.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// The response answers a HEAD: its Content-Length announces no body.
    pub head: bool,
    /// Keep up to this many bytes of a 2xx body in `body_start` (0: discard it).
    pub keep_body_bytes_max: usize,
}

/// Bytes of a failed response's body kept for the error report.
const ERROR_BODY_BYTES_MAX: usize = 1024;

#[derive(Debug)]
pub enum ReadError {
    Net(NetError),
    /// The server closed the connection before (or amid) a response.
    Closed,
    Malformed(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Net(e) => write!(f, "{e}"),
            ReadError::Closed => write!(f, "the server closed the connection"),
            ReadError::Malformed(m) => write!(f, "malformed response: {m}"),
        }
    }
}

async fn recv_more(stream: &Stream, buf: &mut RecvBuf) -> Result<(), ReadError> {
    match stream.recv_timeout(buf, RESPONSE_TIMEOUT).await {
        Ok(0) => Err(ReadError::Closed),
        Ok(_) => Ok(()),
        Err(e) => Err(ReadError::Net(e)),
    }
}

/// Reads one whole response from `stream` (to a GET or PUT: its body discarded).
pub async fn read_response(stream: &Stream, buf: &mut RecvBuf) -> Result<Response, ReadError> {
    read_response_with(stream, buf, ReadOptions { head: false, keep_body_bytes_max: 0 }).await
}

/// Reads one whole response from `stream` as `options` say.
pub async fn read_response_with(stream: &Stream, buf: &mut RecvBuf, options: ReadOptions) -> Result<Response, ReadError> {
    let Head { status, content_length, chunked, close, head_len, etag } = loop {
        if let Some(parsed) = parse_head(buf.filled())? {
            break parsed;
        }
        if buf.is_full() {
            return Err(ReadError::Malformed(format!("response head beyond {} bytes", buf.capacity())));
        }
        recv_more(stream, buf).await?;
    };
    buf.consume(head_len);
    let keep_max = if (200..300).contains(&status) { options.keep_body_bytes_max } else { ERROR_BODY_BYTES_MAX };
    let mut body_start = Vec::new();
    // 204 and 304 have no body whatever they say, nor has the answer to a HEAD; otherwise a
    // body is chunked (AWS answers listings so) or of Content-Length bytes.
    let body_bytes = if status == 204 || status == 304 || options.head {
        0
    } else if chunked {
        read_chunked(stream, buf, &mut body_start, keep_max).await?
    } else {
        let length = content_length.ok_or_else(|| ReadError::Malformed(format!("status {status} without Content-Length")))?;
        read_sized(stream, buf, length, &mut body_start, keep_max).await?;
        length
    };
    Ok(Response { status, body_bytes, close, body_start, etag })
}

fn keep(kept: &mut Vec<u8>, data: &[u8], keep_max: usize) {
    if kept.len() < keep_max {
        kept.extend_from_slice(&data[..data.len().min(keep_max - kept.len())]);
    }
}

/// Reads (and drops, but for the first `keep_max` bytes) a body of `length` bytes.
async fn read_sized(stream: &Stream, buf: &mut RecvBuf, length: u64, kept: &mut Vec<u8>, keep_max: usize) -> Result<(), ReadError> {
    let mut left = length;
    loop {
        let take = (buf.len() as u64).min(left) as usize;
        keep(kept, &buf.filled()[..take], keep_max);
        buf.consume(take);
        left -= take as u64;
        if left == 0 {
            return Ok(());
        }
        recv_more(stream, buf).await?;
    }
}

/// Reads a `Transfer-Encoding: chunked` body: its decoded length.
async fn read_chunked(stream: &Stream, buf: &mut RecvBuf, kept: &mut Vec<u8>, keep_max: usize) -> Result<u64, ReadError> {
    let mut decoder = ChunkedDecoder::new(u64::MAX);
    loop {
        let used = decoder.decode_with(buf.filled(), |data| keep(kept, data, keep_max)).map_err(|e| ReadError::Malformed(format!("chunked body: {e}")))?;
        buf.consume(used);
        if decoder.is_done() {
            return Ok(decoder.body_bytes());
        }
        recv_more(stream, buf).await?;
    }
}

/// Sends `request` on a blocking std socket and reads the whole response: (status, body). For
/// set-up and for the idle-connection test, which run outside the generator's cores.
pub fn request_blocking(stream: &mut (impl std::io::Read + std::io::Write), request: &[u8]) -> Result<(u16, Vec<u8>), String> {
    stream.write_all(request).map_err(|e| format!("send: {e}"))?;
    read_response_blocking(stream)
}

/// One `read`, again when a signal interrupted it (std's `read` hands EINTR back).
fn read_retrying(stream: &mut impl std::io::Read, into: &mut [u8]) -> Result<usize, String> {
    loop {
        match stream.read(into) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other.map_err(|e| format!("receive: {e}")),
        }
    }
}

/// Reads one whole response from a blocking std socket: (status, body).
pub fn read_response_blocking(stream: &mut impl std::io::Read) -> Result<(u16, Vec<u8>), String> {
    let mut bytes = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 64 << 10];
    let Head { status, content_length, chunked, head_len, .. } = loop {
        if let Some(parsed) = parse_head(&bytes).map_err(|e| e.to_string())? {
            break parsed;
        }
        let n = read_retrying(stream, &mut chunk)?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        bytes.extend_from_slice(&chunk[..n]);
    };
    let mut rest = bytes.split_off(head_len);
    if status == 204 || status == 304 {
        return Ok((status, Vec::new()));
    }
    if chunked {
        let mut decoder = ChunkedDecoder::new(u64::MAX);
        let mut body = Vec::new();
        loop {
            decoder.decode(&rest, &mut body).map_err(|e| format!("chunked body: {e}"))?;
            if decoder.is_done() {
                return Ok((status, body));
            }
            let n = read_retrying(stream, &mut chunk)?;
            if n == 0 {
                return Err("the server closed the connection amid a body".into());
            }
            rest = chunk[..n].to_vec();
        }
    }
    let body_len = content_length.ok_or("no Content-Length")? as usize;
    let mut body = rest;
    while body.len() < body_len {
        let n = read_retrying(stream, &mut chunk)?;
        if n == 0 {
            return Err("the server closed the connection amid a body".into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if body.len() > body_len {
        return Err(format!("{} bytes beyond the body", body.len() - body_len));
    }
    Ok((status, body))
}

/// A response head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: Option<u64>,
    /// `Transfer-Encoding: chunked`.
    chunked: bool,
    /// `Connection: close`, or HTTP/1.0.
    close: bool,
    head_len: usize,
    etag: Option<String>,
}

/// The response head at the start of `bytes`, or `None` if it is incomplete.
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; RESPONSE_HEADERS_MAX];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ReadError::Malformed(e.to_string())),
    };
    let status = response.code.ok_or_else(|| ReadError::Malformed("no status".into()))?;
    let mut content_length = None;
    let mut etag = None;
    let mut chunked = false;
    let mut close = response.version == Some(0);
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).map_err(|_| ReadError::Malformed("Content-Length not ASCII".into()))?;
            content_length = Some(text.trim().parse::<u64>().map_err(|_| ReadError::Malformed(format!("Content-Length {text:?}")))?);
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        } else if h.name.eq_ignore_ascii_case("etag") {
            etag = Some(String::from_utf8_lossy(h.value).into_owned());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // chunked is the only coding a server may send unasked (RFC 9112 §6.1).
            if !h.value.eq_ignore_ascii_case(b"chunked") {
                return Err(ReadError::Malformed(format!("Transfer-Encoding {:?}", String::from_utf8_lossy(h.value))));
            }
            chunked = true;
        }
    }
    Ok(Some(Head { status, content_length, chunked, close, head_len, etag }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (status, Content-Length, close, head length) of a head.
    type Parts = (u16, Option<u64>, bool, usize);

    fn check(input: &str, expected: Option<Parts>) {
        let got = parse_head(input.as_bytes()).ok().flatten().map(|h| (h.status, h.content_length, h.close, h.head_len));
        assert_eq!(got, expected, "{input:?}");
    }

    #[test]
    fn parses_response_heads() {
        check("HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n", Some((200, Some(4096), false, 41)));
        check("HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n", None);
        check("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", Some((204, None, true, 46)));
        check("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", Some((200, Some(0), true, 38)));
    }

    /// A chunked body (as AWS sends listings) and a sized one, through a real socket pair.
    #[test]
    fn reads_chunked_and_sized_bodies_blocking() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            let (mut s, _) = listener.accept().expect("accept");
            let mut request = [0u8; 64];
            for answer in ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"] {
                let _ = s.read(&mut request).expect("request");
                s.write_all(answer.as_bytes()).expect("answer");
            }
        });
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        assert_eq!(request_blocking(&mut client, b"GET / HTTP/1.1\r\n\r\n"), Ok((200, b"hello world".to_vec())));
        assert_eq!(request_blocking(&mut client, b"GET / HTTP/1.1\r\n\r\n"), Ok((200, b"abc".to_vec())));
        server.join().expect("server");
    }

    /// The generator's own reader (on the ring) takes a chunked body split across sends.
    #[test]
    fn reads_chunked_bodies_on_the_ring() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            let (mut s, _) = listener.accept().expect("accept");
            let _ = s.read(&mut [0u8; 64]).expect("request");
            s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel").expect("answer");
            std::thread::sleep(std::time::Duration::from_millis(20));
            s.write_all(b"lo\r\n6\r\n world\r\n0\r\n\r\n").expect("answer");
        });
        let config = engine::RuntimeConfig::with_cpus(engine::runtime::allowed_cpus()[..1].to_vec());
        let answers = engine::run(config, |core: engine::Core<()>| async move {
            let ring = core.env.ring().clone();
            let s = Stream::from(net::TcpStream::connect(&ring, addr).await.map_err(|e| e.to_string())?);
            s.send_all(b"GET / HTTP/1.1\r\n\r\n".to_vec()).await.map_err(|e| e.to_string())?;
            let mut buf = RecvBuf::with_capacity(1024);
            let r = read_response_with(&s, &mut buf, ReadOptions { head: false, keep_body_bytes_max: 8 }).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((r.status, r.body_bytes, r.body_start))
        })
        .expect("runtime");
        server.join().expect("server");
        assert_eq!(answers, [Ok((200, 11, b"hello wo".to_vec()))], "11 bytes decoded, the first 8 kept");
    }

    #[test]
    fn builds_unsigned_requests() {
        let mut out = Vec::new();
        build_request(&mut out, Method::Put(3), "/b/k", "h:1", None, 0, b"abc");
        assert_eq!(out, b"PUT /b/k HTTP/1.1\r\nHost: h:1\r\nContent-Length: 3\r\n\r\nabc");
        build_request(&mut out, Method::Get, "/b/k", "h:1", None, 0, b"");
        assert_eq!(out, b"GET /b/k HTTP/1.1\r\nHost: h:1\r\n\r\n");
    }
}
