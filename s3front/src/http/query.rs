//! Percent-decoding of the request target's path and query.
//!
//! Both are strict: a '%' must be followed by two hex digits and the result must be UTF-8,
//! otherwise 400. '+' is left as '+' in both: AWS SDKs encode a space as %20, and SigV4
//! canonicalisation treats '+' as a literal character, so decoding it to a space here would make
//! the server disagree with the signature about what the client asked for.

use super::error::HttpError;

/// Splits a raw query string on '&' into percent-decoded (name, value) pairs, in order.
/// A parameter without '=' has an empty value (`?uploads`, `?delete`, `?versioning`); empty
/// segments (`a&&b`, a trailing '&') are skipped. Repeated names are all kept.
pub fn parse_query(raw: &str) -> Result<Vec<(String, String)>, HttpError> {
    let mut pairs = Vec::new();
    let mut offset = 0;
    for segment in raw.split('&') {
        if !segment.is_empty() {
            let (name, value) = segment.split_once('=').unwrap_or((segment, ""));
            let value_offset = offset + name.len() + 1;
            pairs.push((percent_decode("query", name, offset)?, percent_decode("query", value, value_offset)?));
        }
        offset += segment.len() + 1;
    }
    Ok(pairs)
}

/// Percent-decodes a raw path (as in [`super::RequestHead::path`]) into UTF-8. `%2F` becomes '/'
/// like any other escape: S3 keys may contain '/', and splitting into bucket and key is done on
/// the raw path by the caller.
/// The path percent-decoded; borrowed when it has no escapes (most requests).
pub fn decode_path(raw: &str) -> Result<std::borrow::Cow<'_, str>, HttpError> {
    if !raw.contains('%') {
        return Ok(raw.into());
    }
    percent_decode("path", raw, 0).map(Into::into)
}

/// `offset` is where `raw` starts in the whole path or query, for the error message.
fn percent_decode(part: &'static str, raw: &str, offset: usize) -> Result<String, HttpError> {
    let bytes = raw.as_bytes();
    for (index, _) in raw.match_indices('%') {
        let escape = bytes.get(index + 1..index + 3);
        if !escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
            return Err(HttpError::PercentEscape { part, offset: offset + index });
        }
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(bytes).collect();
    String::from_utf8(decoded).map_err(|_| HttpError::DecodedNotUtf8 { part })
}
