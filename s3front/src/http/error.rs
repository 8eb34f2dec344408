//! The one error type of the request side of the codec. Each variant knows its status code; the
//! Display text is meant for logs and for the S3 error body's Message, so it names the offending
//! header or byte offset. Values echoed in messages are shortened (`shown`) so that a 60 KiB
//! header does not become a 60 KiB log line.

use std::fmt;

/// Longest piece of client input quoted in an error message.
const ECHO_BYTES_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// httparse rejected the request line or a header line (400).
    Syntax {
        what: &'static str,
    },
    /// The request target is neither origin-form, absolute-form nor `*` for OPTIONS (400).
    TargetForm {
        target: String,
    },
    /// The version is well formed but not 1.0 or 1.1 (505).
    VersionUnsupported {
        version: String,
    },
    /// A header value is not UTF-8 (400). S3 metadata is UTF-8; anything else is an encoding bug.
    HeaderNotUtf8 {
        name: String,
    },
    /// A header that must appear at most once appears again (400).
    HeaderDuplicate {
        name: &'static str,
    },
    /// HTTP/1.1 requires Host (RFC 9112 §3.2) (400).
    HostMissing,
    ContentLengthInvalid {
        value: String,
    },
    ContentLengthConflict {
        first: u64,
        second: u64,
    },
    /// Both framings at once: the classic request-smuggling shape (RFC 9112 §6.1) (400).
    TransferEncodingWithContentLength,
    /// Transfer-Encoding we cannot frame by: chunked not last, twice, empty, or HTTP/1.0 (400).
    TransferEncodingInvalid {
        value: String,
        reason: &'static str,
    },
    /// A transfer coding we do not implement, e.g. gzip (501).
    TransferEncodingUnsupported {
        value: String,
    },
    /// The request target is longer than `TARGET_BYTES_MAX` (414).
    TargetTooLong {
        length_bytes: usize,
    },
    /// The head is longer than `HEAD_BYTES_MAX`, complete or not (431).
    HeadTooLarge {
        length_bytes: usize,
    },
    /// More than `HEADERS_MAX` header lines (431).
    HeadersTooMany,
    /// A malformed chunked body; `offset_bytes` counts from the first body byte (400).
    Chunked {
        reason: &'static str,
        offset_bytes: u64,
    },
    /// The chunked body decodes to more than the caller's limit (413).
    BodyTooLarge {
        limit_bytes: u64,
    },
    /// A `%` not followed by two hex digits in the path or the query (400).
    PercentEscape {
        part: &'static str,
        offset: usize,
    },
    /// The percent-decoded path or query is not UTF-8 (400).
    DecodedNotUtf8 {
        part: &'static str,
    },
}

impl HttpError {
    /// The status code the server answers with before closing the connection.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Syntax { .. }
            | HttpError::TargetForm { .. }
            | HttpError::HeaderNotUtf8 { .. }
            | HttpError::HeaderDuplicate { .. }
            | HttpError::HostMissing
            | HttpError::ContentLengthInvalid { .. }
            | HttpError::ContentLengthConflict { .. }
            | HttpError::TransferEncodingWithContentLength
            | HttpError::TransferEncodingInvalid { .. }
            | HttpError::Chunked { .. }
            | HttpError::PercentEscape { .. }
            | HttpError::DecodedNotUtf8 { .. } => 400,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::TargetTooLong { .. } => 414,
            HttpError::HeadTooLarge { .. } | HttpError::HeadersTooMany => 431,
            HttpError::TransferEncodingUnsupported { .. } => 501,
            HttpError::VersionUnsupported { .. } => 505,
        }
    }
}

/// `value` cut to `ECHO_BYTES_MAX` bytes at a char boundary, marked when cut.
pub(crate) fn shown(value: &str) -> String {
    if value.len() <= ECHO_BYTES_MAX {
        return value.to_owned();
    }
    let mut end = ECHO_BYTES_MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &value[..end])
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Syntax { what } => write!(f, "malformed request head: {what}"),
            HttpError::TargetForm { target } => {
                write!(f, "request target '{target}' is not a path, an absolute URI or '*' for OPTIONS")
            }
            HttpError::VersionUnsupported { version } => write!(f, "HTTP version '{version}' is not supported (1.0 and 1.1 are)"),
            HttpError::HeaderNotUtf8 { name } => write!(f, "header '{name}' value is not UTF-8"),
            HttpError::HeaderDuplicate { name } => write!(f, "header '{name}' appears more than once"),
            HttpError::HostMissing => write!(f, "header 'host' is missing (required by HTTP/1.1)"),
            HttpError::ContentLengthInvalid { value } => write!(f, "header 'content-length' value '{value}' is not a number"),
            HttpError::ContentLengthConflict { first, second } => {
                write!(f, "header 'content-length' has differing values {first} and {second}")
            }
            HttpError::TransferEncodingWithContentLength => {
                write!(f, "headers 'transfer-encoding' and 'content-length' must not both be present")
            }
            HttpError::TransferEncodingInvalid { value, reason } => {
                write!(f, "header 'transfer-encoding' value '{value}' is invalid: {reason}")
            }
            HttpError::TransferEncodingUnsupported { value } => {
                write!(f, "header 'transfer-encoding' value '{value}' is not implemented (only 'chunked' is)")
            }
            HttpError::TargetTooLong { length_bytes } => write!(f, "request target of {length_bytes} bytes is too long"),
            HttpError::HeadTooLarge { length_bytes } => write!(f, "request head of at least {length_bytes} bytes is too large"),
            HttpError::HeadersTooMany => write!(f, "request has too many header lines"),
            HttpError::Chunked { reason, offset_bytes } => write!(f, "chunked body at byte {offset_bytes}: {reason}"),
            HttpError::BodyTooLarge { limit_bytes } => write!(f, "chunked body is longer than the limit of {limit_bytes} bytes"),
            HttpError::PercentEscape { part, offset } => {
                write!(f, "{part} has a '%' at byte {offset} not followed by two hex digits")
            }
            HttpError::DecodedNotUtf8 { part } => write!(f, "percent-decoded {part} is not UTF-8"),
        }
    }
}

impl std::error::Error for HttpError {}
