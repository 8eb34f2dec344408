//! http: the sans-IO HTTP/1.1 codec of the S3 front end (server side, RFC 9112).
//!
//! Bytes in, values or errors out; nothing here touches a socket, so cargo fuzz and property
//! tests drive it directly. The pieces, in the order a request meets them:
//!
//! - [`parse_head`]: the request line and header section (httparse does the tokenising), then the
//!   message framing of RFC 9112 §6.3 ([`BodyFraming`]), keep-alive and `Expect: 100-continue`.
//! - [`ChunkedDecoder`]: an incremental decoder for `Transfer-Encoding: chunked` request bodies.
//!   (S3's `Content-Encoding: aws-chunked` is not this: it is framed by Content-Length and decoded
//!   by `crate::chunked`.)
//! - [`parse_query`], [`decode_path`]: percent-decoding of the target's two halves. The raw forms
//!   stay in [`RequestHead`] because SigV4 signs them as sent.
//! - [`parse_range`]: the `Range` header of a GET, with S3's answers for the odd cases.
//! - [`ResponseHead`], [`http_date`], [`CONTINUE_100`]: writing the response head.
//!
//! Every [`HttpError`] maps to a status ([`HttpError::status`]); after one the server answers
//! with that status and closes the connection, because the framing of what follows is unknown.

mod chunked_body;
mod error;
mod head;
mod query;
mod range;
mod response;

pub use chunked_body::{CHUNK_LINE_BYTES_MAX, ChunkedDecoder, TRAILER_BYTES_MAX};
pub use error::HttpError;
pub use head::{BodyFraming, HEAD_BYTES_MAX, HEADERS_MAX, Method, RequestHead, TARGET_BYTES_MAX, parse_head};
pub use query::{decode_path, parse_query};
pub use range::{RangeResult, parse_range};
pub use response::{CONTINUE_100, HeaderLines, ResponseHead, ResponseHeaderError, http_date, http_date_display, parse_http_date, reason_phrase};
