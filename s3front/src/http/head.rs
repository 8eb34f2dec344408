//! The request head: request line, header section and the framing derived from them.
//!
//! httparse tokenises; this file decides what the tokens mean for an S3 server: which target
//! forms are accepted, how the body is framed (RFC 9112 §6.3), whether the connection stays open.

use std::ops::Range;
use super::error::{HttpError, shown};

/// Largest request head (request line, headers, blank line). A client that has sent this much
/// without finishing its head is refused with 431 even before the head is complete.
pub const HEAD_BYTES_MAX: usize = 64 * 1024;
/// Most header lines in one request. S3 requests carry a few dozen at most (user metadata is
/// limited to 2 KiB in all by S3).
pub const HEADERS_MAX: usize = 128;
/// Longest request target (414 beyond). S3 keys are at most 1 KiB, even fully percent-encoded
/// (3 KiB), plus a query string.
pub const TARGET_BYTES_MAX: usize = 16 * 1024;
const _: () = assert!(TARGET_BYTES_MAX < HEAD_BYTES_MAX);

/// The request method. RFC 9110 methods are case-sensitive: `get` is `Other("get")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Put,
    Post,
    Delete,
    Options,
    Other(String),
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        }
    }

    /// The method as sent (SigV4 signs it).
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other(token) => token,
        }
    }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Neither Transfer-Encoding nor Content-Length: a request without a body.
    None,
    /// Exactly this many bytes follow the head. This includes S3's `Content-Encoding: aws-chunked`.
    Length(u64),
    /// `Transfer-Encoding: chunked`: decode with [`super::ChunkedDecoder`].
    Chunked,
}

/// A parsed request head. Header names are lowercased, values trimmed, both kept in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    pub body: BodyFraming,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1 (RFC 9110 §10.1.1: ignored on 1.0).
    pub expect_continue: bool,
    /// The target, path and query, then each header's lowercased name and trimmed value, back to
    /// back: one allocation for the text of the whole head rather than two per header.
    text: String,
    target: Range<u32>,
    path: Range<u32>,
    query: Range<u32>,
    /// (name start, name end = value start, value end) in `text`, in the order received.
    headers: Vec<[u32; 3]>,
}

impl RequestHead {
    /// The request target exactly as sent.
    pub fn target(&self) -> &str {
        self.span(&self.target)
    }

    /// The path part of the target, before '?', not percent-decoded (SigV4 signs the raw form).
    /// For an absolute-form target (`http://host/p`) it is the path after the authority ("/" if
    /// none); for `OPTIONS *` it is "*".
    pub fn path(&self) -> &str {
        self.span(&self.path)
    }

    /// The part after the first '?', not decoded; empty when there is none.
    pub fn query(&self) -> &str {
        self.span(&self.query)
    }

    fn span(&self, r: &Range<u32>) -> &str {
        &self.text[r.start as usize..r.end as usize]
    }

    /// The first value of the header `name`, which must be lowercase.
    pub fn header(&self, name: &str) -> Option<&str> {
        assert_lowercase(name);
        let &[_, value, end] = self.headers.iter().find(|span| self.names(span, name))?;
        Some(&self.text[value as usize..end as usize])
    }

    /// Whether the header at `span` is named `name`. Lengths first: most names differ in length,
    /// and then no bytes are compared.
    fn names(&self, &[start, end, _]: &[u32; 3], name: &str) -> bool {
        (end - start) as usize == name.len() && self.text.as_bytes()[start as usize..end as usize] == *name.as_bytes()
    }

    /// Every value of the header `name` (lowercase), in the order received.
    pub fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        assert_lowercase(name);
        self.headers.iter().filter(move |span| self.names(span, name)).map(|&[_, value, end]| &self.text[value as usize..end as usize])
    }

    /// All headers as (lowercase name, trimmed value), in the order received.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        (0..self.headers.len()).map(|i| self.header_at(i))
    }

    /// The `i`th header received, as (lowercase name, trimmed value).
    pub fn header_at(&self, i: usize) -> (&str, &str) {
        let [name, value, end] = self.headers[i].map(|x| x as usize);
        (&self.text[name..value], &self.text[value..end])
    }

    /// Headers received.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The Host header (required on HTTP/1.1, at most one). For an absolute-form target this is
    /// still the header: the target's authority is visible in `target`.
    pub fn host(&self) -> Option<&str> {
        self.header("host")
    }
}

/// Names are stored lowercased; a lookup with capitals would silently find nothing.
fn assert_lowercase(name: &str) {
    assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "header names are looked up in lowercase: '{name}'");
}

/// Parses a request head from the start of `buf`, which holds everything buffered so far.
///
/// `Ok(None)`: the head is not complete yet; call again with more bytes. `Ok(Some((head, n)))`:
/// the head took `buf[..n]`; the body (if any) starts at `buf[n]`. Leading empty lines are
/// skipped (RFC 9112 §2.2). Limits are checked on incomplete input too, so a client cannot make
/// the server buffer more than `HEAD_BYTES_MAX`.
pub fn parse_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HttpError> {
    let window = &buf[..buf.len().min(HEAD_BYTES_MAX)];
    if let Some(length_bytes) = target_length_beyond_max(window) {
        return Err(HttpError::TargetTooLong { length_bytes });
    }
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(window) {
        Ok(httparse::Status::Complete(head_bytes)) => {
            assert!(head_bytes <= window.len());
            let head = head_from(&request)?;
            Ok(Some((head, head_bytes)))
        }
        Ok(httparse::Status::Partial) if buf.len() >= HEAD_BYTES_MAX => Err(HttpError::HeadTooLarge { length_bytes: buf.len() }),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::HeadersTooMany),
        Err(httparse::Error::Version) if version_shaped(window) => {
            Err(HttpError::VersionUnsupported { version: shown(&String::from_utf8_lossy(version_token(window))) })
        }
        Err(error) => Err(HttpError::Syntax { what: syntax_what(error) }),
    }
}

fn syntax_what(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid byte in a header name",
        httparse::Error::HeaderValue => "invalid byte in a header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid method or request target",
        httparse::Error::Version => "invalid HTTP version",
        httparse::Error::Status | httparse::Error::TooManyHeaders => "invalid request line",
    }
}

/// The request line (after any leading empty lines), up to its LF or the end of `window`.
fn request_line(window: &[u8]) -> &[u8] {
    let start = window.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(window.len());
    let line = &window[start..];
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    &line[..end]
}

/// The target's length if it already exceeds `TARGET_BYTES_MAX`, judged on the request line
/// alone so that an incomplete head with a huge target is refused with 414, not 431.
fn target_length_beyond_max(window: &[u8]) -> Option<usize> {
    let line = request_line(window);
    let method_end = line.iter().position(|&b| b == b' ')?;
    let rest = &line[method_end + 1..];
    let target_bytes = rest.iter().position(|&b| b == b' ' || b == b'\r').unwrap_or(rest.len());
    (target_bytes > TARGET_BYTES_MAX).then_some(target_bytes)
}

/// The third token of the request line (the version), possibly cut short.
fn version_token(window: &[u8]) -> &[u8] {
    let line = request_line(window);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut tokens = line.splitn(3, |&b| b == b' ');
    tokens.nth(2).unwrap_or(&[])
}

/// Whether the version token is `HTTP/DIGIT.DIGIT` (or a prefix of it when the line is cut off):
/// a version we do not speak (505) rather than garbage (400).
fn version_shaped(window: &[u8]) -> bool {
    const SHAPE: &[u8] = b"HTTP/0.0";
    let token = version_token(window);
    let line_complete = request_line(window).len() < window.len();
    if token.len() > SHAPE.len() || (line_complete && token.len() < SHAPE.len()) || token.len() < 6 {
        return false;
    }
    token.iter().zip(SHAPE).all(|(&b, &s)| if s == b'0' { b.is_ascii_digit() } else { b == s })
}

fn head_from(request: &httparse::Request<'_, '_>) -> Result<RequestHead, HttpError> {
    let method = Method::from_token(request.method.expect("httparse: a complete request has a method"));
    let target = request.path.expect("httparse: a complete request has a target");
    let version_minor = request.version.expect("httparse: a complete request has a version");
    assert!(version_minor <= 1, "httparse accepts HTTP/1.0 and HTTP/1.1 only");
    assert!(target.len() <= TARGET_BYTES_MAX, "checked on the request line before parsing");
    let (path, query) = split_target(&method, target)?;
    let header_bytes: usize = request.headers.iter().map(|h| h.name.len() + h.value.len()).sum();
    let mut text = String::with_capacity(target.len() + path.len() + query.len() + header_bytes);
    let mut push = |s: &str| {
        let start = text.len() as u32;
        text.push_str(s);
        start..text.len() as u32
    };
    let (target, path, query) = (push(target), push(path), push(query));
    let headers = headers_from(request.headers, &mut text)?;
    let mut head = RequestHead {
        method,
        version_minor,
        body: BodyFraming::None,
        keep_alive: false,
        expect_continue: false,
        text,
        target,
        path,
        query,
        headers,
    };
    check_host(&head)?;
    head.body = body_framing(&head)?;
    head.keep_alive = keep_alive(&head);
    head.expect_continue = head.version_minor >= 1 && head.headers_all("expect").any(|v| v.eq_ignore_ascii_case("100-continue"));
    Ok(head)
}

/// Splits the target into raw path and raw query by its form (RFC 9112 §3.2).
fn split_target<'t>(method: &Method, target: &'t str) -> Result<(&'t str, &'t str), HttpError> {
    if target == "*" && *method == Method::Options {
        return Ok(("*", ""));
    }
    let (path_and_query, from_absolute) = match strip_scheme(target) {
        Some(rest) => (&rest[rest.find(['/', '?']).unwrap_or(rest.len())..], true),
        None if target.starts_with('/') => (target, false),
        None => return Err(HttpError::TargetForm { target: shown(target) }),
    };
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let path = if from_absolute && path.is_empty() { "/" } else { path };
    Ok((path, query))
}

/// The target after `http://` or `https://` (scheme case-insensitive), when absolute-form.
fn strip_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let prefix = target.get(..scheme.len())?;
        prefix.eq_ignore_ascii_case(scheme).then(|| &target[scheme.len()..])
    })
}

/// Appends each header's lowercased name and trimmed value to `text`; returns their spans.
fn headers_from(raw: &[httparse::Header<'_>], text: &mut String) -> Result<Vec<[u32; 3]>, HttpError> {
    assert!(raw.len() <= HEADERS_MAX);
    let mut headers = Vec::with_capacity(raw.len());
    for header in raw {
        let Ok(value) = std::str::from_utf8(header.value) else {
            return Err(HttpError::HeaderNotUtf8 { name: header.name.to_ascii_lowercase() });
        };
        let name_start = text.len() as u32;
        text.push_str(header.name);
        text[name_start as usize..].make_ascii_lowercase();
        let value_start = text.len() as u32;
        text.push_str(value.trim_matches([' ', '\t']));
        headers.push([name_start, value_start, text.len() as u32]);
    }
    Ok(headers)
}

/// RFC 9112 §3.2: a 1.1 request has exactly one Host; a 1.0 request at most one.
fn check_host(head: &RequestHead) -> Result<(), HttpError> {
    match head.headers_all("host").count() {
        0 if head.version_minor >= 1 => Err(HttpError::HostMissing),
        0 | 1 => Ok(()),
        _ => Err(HttpError::HeaderDuplicate { name: "host" }),
    }
}

/// Elements of a comma-separated header list over all its lines, empty elements skipped
/// (RFC 9110 §5.6.1).
fn list_elements<'a>(head: &'a RequestHead, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    head.headers_all(name).flat_map(|v| v.split(',')).map(|e| e.trim_matches([' ', '\t'])).filter(|e| !e.is_empty())
}

/// RFC 9112 §6.3 for requests. Transfer-Encoding wins over Content-Length, but both at once is
/// refused outright: a front proxy that framed by the other one would let a client smuggle a
/// second request past it.
fn body_framing(head: &RequestHead) -> Result<BodyFraming, HttpError> {
    let has_transfer_encoding = head.header("transfer-encoding").is_some();
    let has_content_length = head.header("content-length").is_some();
    if has_transfer_encoding && has_content_length {
        return Err(HttpError::TransferEncodingWithContentLength);
    }
    if has_transfer_encoding {
        return transfer_encoding_framing(head);
    }
    if has_content_length {
        return content_length(head).map(BodyFraming::Length);
    }
    Ok(BodyFraming::None)
}

fn transfer_encoding_framing(head: &RequestHead) -> Result<BodyFraming, HttpError> {
    let value = || shown(&head.headers_all("transfer-encoding").collect::<Vec<_>>().join(", "));
    if head.version_minor == 0 {
        // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
        return Err(HttpError::TransferEncodingInvalid { value: value(), reason: "not allowed in HTTP/1.0" });
    }
    let mut chunked_count = 0;
    for coding in list_elements(head, "transfer-encoding") {
        if !coding.eq_ignore_ascii_case("chunked") {
            return Err(HttpError::TransferEncodingUnsupported { value: value() });
        }
        chunked_count += 1;
    }
    match chunked_count {
        0 => Err(HttpError::TransferEncodingInvalid { value: value(), reason: "no transfer coding given" }),
        1 => Ok(BodyFraming::Chunked),
        _ => Err(HttpError::TransferEncodingInvalid { value: value(), reason: "chunked applied more than once" }),
    }
}

/// The one Content-Length value. Repeats of the same value (as separate lines or a list) are
/// accepted (RFC 9110 §8.6), differing ones refused.
fn content_length(head: &RequestHead) -> Result<u64, HttpError> {
    let mut length: Option<u64> = None;
    for line in head.headers_all("content-length") {
        for element in line.split(',').map(|e| e.trim_matches([' ', '\t'])) {
            let parsed = parse_decimal(element).ok_or_else(|| HttpError::ContentLengthInvalid { value: shown(line) })?;
            match length {
                Some(first) if first != parsed => return Err(HttpError::ContentLengthConflict { first, second: parsed }),
                _ => length = Some(parsed),
            }
        }
    }
    length.ok_or(HttpError::ContentLengthInvalid { value: String::new() })
}

/// Digits only: `str::parse` would also take a leading '+', which Content-Length forbids.
fn parse_decimal(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn keep_alive(head: &RequestHead) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for option in list_elements(head, "connection") {
        close |= option.eq_ignore_ascii_case("close");
        keep_alive |= option.eq_ignore_ascii_case("keep-alive");
    }
    !close && (head.version_minor >= 1 || keep_alive)
}
