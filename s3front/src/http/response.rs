//! Writing the response head, and HTTP dates.
//!
//! Header values are checked for CR, LF and other control bytes: S3 echoes user metadata
//! (`x-amz-meta-*`) back in responses, and a CRLF smuggled into one would let a client write
//! arbitrary headers or a whole second response (response splitting).

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

/// The interim response a server sends to `Expect: 100-continue` before reading the body.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

thread_local! {
    /// The last `Date:` value this thread formatted, and its second.
    static DATE: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((0, String::new())) };
}

/// Last second httpdate can format (9999-12-31T23:59:59Z); it panics beyond.
const HTTP_DATE_UNIX_S_MAX: i64 = 253_402_300_799;

/// A header the checked builder refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHeaderError {
    pub name: String,
    pub reason: &'static str,
}

impl fmt::Display for ResponseHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "response header '{}' refused: {}", super::error::shown(&self.name), self.reason)
    }
}

impl std::error::Error for ResponseHeaderError {}

/// A response status line and headers, serialised as they are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    status: u16,
    /// The status line, then `name: value\r\n` lines, in order.
    lines: Vec<u8>,
    /// Where the header lines start in `lines`.
    headers_start: usize,
    content_length_set: bool,
}

impl ResponseHead {
    pub fn new(status: u16) -> ResponseHead {
        ResponseHead::with_capacity(status, 256)
    }

    /// A head whose buffer has room for `capacity_bytes` in all, e.g. a small body that
    /// [`into_bytes`](Self::into_bytes) hands back with the head to be appended to it.
    pub fn with_capacity(status: u16, capacity_bytes: usize) -> ResponseHead {
        ResponseHead::in_buffer(status, Vec::with_capacity(capacity_bytes))
    }

    /// A head written into `buf` (cleared first): a buffer kept for reuse.
    pub fn in_buffer(status: u16, buf: Vec<u8>) -> ResponseHead {
        assert!((100..=599).contains(&status), "status {status} is not a three-digit HTTP status");
        let mut lines = buf;
        lines.clear();
        let digits = [status / 100, status / 10 % 10, status % 10].map(|d| b'0' + d as u8);
        lines.extend_from_slice(b"HTTP/1.1 ");
        lines.extend_from_slice(&digits);
        lines.push(b' ');
        lines.extend_from_slice(reason_phrase(status).as_bytes());
        lines.extend_from_slice(b"\r\n");
        ResponseHead { status, headers_start: lines.len(), lines, content_length_set: false }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// Adds a header whose value our own code produced. Panics on an invalid name or value
    /// (CR, LF, other control bytes): that is a bug, never client input. For values that come
    /// from clients, such as echoed metadata, use [`try_header`](Self::try_header).
    pub fn header(mut self, name: &str, value: &str) -> ResponseHead {
        if let Err(error) = self.try_header(name, value) {
            panic!("{error}");
        }
        self
    }

    /// Adds a header if `name` is a token and `value` has no control bytes other than HTAB;
    /// otherwise leaves the head unchanged and says why.
    pub fn try_header(&mut self, name: &str, value: &str) -> Result<(), ResponseHeaderError> {
        self.try_header_fmt(name, format_args!("{value}"))
    }

    /// [`try_header`](Self::try_header) with a value formatted straight into the head (no
    /// `String` per header: a GET's head has a dozen of them).
    pub fn try_header_fmt(&mut self, name: &str, value: fmt::Arguments<'_>) -> Result<(), ResponseHeaderError> {
        let refuse = |reason| Err(ResponseHeaderError { name: name.to_owned(), reason });
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return refuse("name is not an HTTP token");
        }
        if name.eq_ignore_ascii_case("content-length") {
            return refuse("set Content-Length with content_length()");
        }
        if !self.push_line_fmt(name, value) {
            return refuse("value contains CR, LF or another control byte");
        }
        Ok(())
    }

    /// Appends `name: value` unless the formatted value has control bytes other than HTAB
    /// (then the head is left as it was and the answer is false).
    fn push_line_fmt(&mut self, name: &str, value: fmt::Arguments<'_>) -> bool {
        let line_start = self.lines.len();
        self.lines.extend_from_slice(name.as_bytes());
        self.lines.extend_from_slice(b": ");
        let value_start = self.lines.len();
        std::io::Write::write_fmt(&mut self.lines, value).expect("formatting into a Vec cannot fail");
        if !self.lines[value_start..].iter().all(|&b| b == b'\t' || !b.is_ascii_control()) {
            self.lines.truncate(line_start);
            return false;
        }
        self.lines.extend_from_slice(b"\r\n");
        true
    }

    /// Adds `Date:` for `unix_s`, formatted once a second per thread rather than per response.
    pub fn date(mut self, unix_s: i64) -> ResponseHead {
        DATE.with_borrow_mut(|(cached_s, text)| {
            if *cached_s != unix_s || text.is_empty() {
                *cached_s = unix_s;
                *text = http_date(unix_s);
            }
            self.push_line("date", text);
        });
        self
    }

    /// Sets Content-Length. At most once, and never on 1xx or 204 (RFC 9110 §8.6).
    pub fn content_length(mut self, length_bytes: u64) -> ResponseHead {
        assert!(!self.content_length_set, "content-length set twice");
        assert!(self.status >= 200, "no content-length on 1xx");
        assert!(self.status != 204, "no content-length on 204");
        self.content_length_set = true;
        assert!(self.push_line_fmt("Content-Length", format_args!("{length_bytes}")));
        self
    }

    fn push_line(&mut self, name: &str, value: &str) {
        self.lines.extend_from_slice(name.as_bytes());
        self.lines.extend_from_slice(b": ");
        self.lines.extend_from_slice(value.as_bytes());
        self.lines.extend_from_slice(b"\r\n");
    }

    /// Appends `HTTP/1.1 <code> <reason>\r\n<headers>\r\n` to `out`.
    pub fn write_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.lines);
        out.extend_from_slice(b"\r\n");
    }

    /// The header lines added so far (each checked as it was added), without the status line:
    /// lines that stay the same for many responses, rendered once.
    pub fn into_header_lines(self) -> HeaderLines {
        HeaderLines(self.lines[self.headers_start..].to_vec())
    }

    /// Appends lines another head checked (see [`into_header_lines`](Self::into_header_lines)).
    pub fn push_lines(&mut self, lines: &HeaderLines) {
        self.lines.extend_from_slice(&lines.0);
    }

    /// The whole head, `HTTP/1.1 <code> <reason>\r\n<headers>\r\n`, in its own buffer (no copy).
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.lines.extend_from_slice(b"\r\n");
        self.lines
    }
}

/// `name: value\r\n` lines a [`ResponseHead`] checked; only a head makes them, so appending
/// them to another head cannot smuggle a line in. Never Content-Length (the head refuses it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderLines(Vec<u8>);

impl HeaderLines {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// tchar of RFC 9110 §5.6.2.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The RFC 9110 reason phrase of every status an S3 server sends; "" for others (the reason
/// phrase may be empty; clients go by the code).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) of a Unix time. Times outside 1970..=9999 are
/// clamped rather than panicking: a corrupt stored mtime must not take down a core.
pub fn http_date(unix_s: i64) -> String {
    http_date_display(unix_s).to_string()
}

/// [`http_date`] as a value that formats itself (into a response head, without a `String`).
pub fn http_date_display(unix_s: i64) -> impl fmt::Display {
    let clamped_s = unix_s.clamp(0, HTTP_DATE_UNIX_S_MAX);
    let seconds = u64::try_from(clamped_s).expect("clamped to be non-negative");
    httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// The Unix time of an HTTP date in any of the three forms RFC 9110 §5.6.7 says to accept;
/// `None` when it is none of them (If-Modified-Since is then ignored).
pub fn parse_http_date(value: &str) -> Option<i64> {
    let time = httpdate::parse_http_date(value.trim()).ok()?;
    let since_epoch = time.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_secs()).ok()
}
