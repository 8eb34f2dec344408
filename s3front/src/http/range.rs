//! The `Range` header of a GET (RFC 9110 §14.2), as S3 answers it: one byte range or the whole
//! object. An unparseable header is ignored (full object, 200), as RFC 9110 asks; a parseable one
//! that selects nothing is 416.

/// What to send for a GET with a Range header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeResult {
    /// Send the whole object with 200: the header is malformed, not in bytes, or asks for
    /// several ranges (S3 does not do multipart/byteranges and returns the whole object).
    Full,
    /// Send bytes `start..=end_inclusive` with 206; both are within the object.
    Partial { start: u64, end_inclusive: u64 },
    /// Answer 416 (S3: InvalidRange) with `Content-Range: bytes */<len>`.
    Unsatisfiable,
}

/// Interprets the Range header `value` for an object of `object_len` bytes.
///
/// `bytes=a-b` (b clamped to the last byte), `bytes=a-`, `bytes=-n` (the last n bytes, the whole
/// object when n exceeds it). A start at or past the end, a suffix of 0, or any range on an
/// empty object is unsatisfiable. Numbers too large for u64 saturate, which gives the right
/// answer for each position (a start past any object, an end or suffix covering all of it).
pub fn parse_range(value: &str, object_len: u64) -> RangeResult {
    let Some((unit, set)) = value.trim().split_once('=') else {
        return RangeResult::Full;
    };
    if !unit.trim_end().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return RangeResult::Full;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return RangeResult::Full;
    };
    match (first.is_empty(), last.is_empty()) {
        (true, true) => RangeResult::Full,
        (true, false) => match parse_position(last) {
            Some(suffix_len) => suffix_range(suffix_len, object_len),
            None => RangeResult::Full,
        },
        (false, _) => match (parse_position(first), if last.is_empty() { Some(u64::MAX) } else { parse_position(last) }) {
            (Some(start), Some(end)) if start <= end => bounded_range(start, end, object_len),
            _ => RangeResult::Full,
        },
    }
}

fn suffix_range(suffix_len: u64, object_len: u64) -> RangeResult {
    if suffix_len == 0 || object_len == 0 {
        return RangeResult::Unsatisfiable;
    }
    RangeResult::Partial { start: object_len - suffix_len.min(object_len), end_inclusive: object_len - 1 }
}

fn bounded_range(start: u64, end: u64, object_len: u64) -> RangeResult {
    assert!(start <= end);
    if start >= object_len {
        return RangeResult::Unsatisfiable;
    }
    RangeResult::Partial { start, end_inclusive: end.min(object_len - 1) }
}

/// A decimal position, saturating at u64::MAX; `None` unless all ASCII digits.
fn parse_position(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.bytes().fold(0u64, |n, d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}
