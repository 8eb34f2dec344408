//! The canonical request, the string to sign and the key derivation of SigV4, as S3 applies them.
//!
//! S3 differs from the generic SigV4 rules in two ways that matter here: the path is URI-encoded
//! once (not twice), and '.'/'..' segments are kept as sent, because they are part of object keys.

use hmac::{KeyInit as _, Mac as _};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};
use sha2::{Digest as _, Sha256};

pub(crate) type HmacSha256 = hmac::Hmac<Sha256>;

/// The only algorithm accepted; SigV4A (ECDSA) and SigV2 are not supported.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Last element of every credential scope.
pub const SCOPE_TERMINATOR: &str = "aws4_request";

/// Characters SigV4 leaves unencoded in a query name or value: the RFC 3986 unreserved set.
const COMPONENT_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// The path additionally keeps '/' so that segments stay visible.
const PATH_ENCODE_SET: &AsciiSet = &COMPONENT_ENCODE_SET.remove(b'/');

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail; `expect` documents the invariant.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
/// It depends only on (secret, day, region, service), so callers may cache it per day.
pub fn signing_key(secret: &str, yyyymmdd: &str, region: &str, service: &str) -> [u8; 32] {
    let k_secret = format!("AWS4{secret}");
    let k_date = hmac_sha256(k_secret.as_bytes(), yyyymmdd.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, SCOPE_TERMINATOR.as_bytes())
}

/// The path as received (percent-encoded) → decoded once → every byte but unreserved and '/'
/// encoded with uppercase hex. An empty path is "/".
pub fn canonical_uri(raw_path: &str) -> String {
    let mut out = String::new();
    write_canonical_uri(&mut out, raw_path);
    out
}

/// [`canonical_uri`] appended to `out`; without a '%' in the path nothing is allocated.
pub fn write_canonical_uri(out: &mut String, raw_path: &str) {
    use std::fmt::Write as _;
    if raw_path.is_empty() {
        out.push('/');
    } else if !raw_path.contains('%') {
        write!(out, "{}", percent_encode(raw_path.as_bytes(), PATH_ENCODE_SET)).expect("writing to a String cannot fail");
    } else {
        let decoded: Vec<u8> = percent_decode_str(raw_path).collect();
        write!(out, "{}", percent_encode(&decoded, PATH_ENCODE_SET)).expect("writing to a String cannot fail");
    }
}

fn encode_component(raw: &str) -> String {
    // '+' is taken literally (as %2B), not as a form-encoded space: SigV4 clients percent-encode
    // spaces as %20, and a literal '+' they send was signed as '+'.
    let decoded: Vec<u8> = percent_decode_str(raw).collect();
    percent_encode(&decoded, COMPONENT_ENCODE_SET).to_string()
}

/// Splits a raw query into decoded (name, value) pairs; a piece without '=' has an empty value.
pub fn decode_query(raw_query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (percent_decode_str(name).collect(), percent_decode_str(value).collect())
        })
        .collect()
}

/// Names and values re-encoded, sorted by name then value, joined with '&'. `skip_name` (the
/// presigned `X-Amz-Signature`) is left out, compared after decoding.
pub fn canonical_query(raw_query: &str, skip_name: Option<&str>) -> String {
    let mut out = String::new();
    write_canonical_query(&mut out, raw_query, skip_name);
    out
}

/// [`canonical_query`] appended to `out`; an empty query allocates nothing.
pub fn write_canonical_query(out: &mut String, raw_query: &str, skip_name: Option<&str>) {
    if raw_query.is_empty() {
        return;
    }
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| piece.split_once('=').unwrap_or((piece, "")))
        .map(|(name, value)| (encode_component(name), encode_component(value)))
        .filter(|(name, _)| skip_name.is_none_or(|skip| name != skip))
        .collect();
    pairs.sort_unstable();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
}

/// Trims the value and collapses inner runs of spaces and tabs into one space.
fn normalize_header_value(value: &str, out: &mut String) {
    let value = value.trim_matches([' ', '\t']);
    // Most values have no run of blanks and no tab: copy them whole rather than char by char.
    let squeeze = value.as_bytes().windows(2).any(|w| w[0] == b' ' && w[1] == b' ') || value.contains('\t');
    if !squeeze {
        out.push_str(value);
        return;
    }
    let mut pending_space = false;
    for c in value.chars() {
        if c == ' ' || c == '\t' {
            pending_space = true;
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
}

/// `name:value\n` for each signed header, in the order given; several values of one name are joined
/// with ','. Returns the first signed name the request lacks as the error.
#[cfg(test)]
fn canonical_headers<'n>(headers: &[(String, String)], signed_names: &[&'n str]) -> Result<String, &'n str> {
    let mut out = String::new();
    write_canonical_headers(&mut out, &headers.to_vec(), signed_names.iter().copied())?;
    Ok(out)
}

/// [`canonical_headers`] appended to `out`, for names given in order.
pub fn write_canonical_headers<'n>(
    out: &mut String,
    headers: &dyn super::HeaderList,
    signed_names: impl Iterator<Item = &'n str>,
) -> Result<(), &'n str> {
    // Once, not once per signed name: each lookup below scans every header.
    let pairs: Vec<(&str, &str)> = super::header_pairs(headers).collect();
    for name in signed_names {
        out.push_str(name);
        out.push(':');
        let mut found = false;
        for (_, value) in pairs.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)) {
            if found {
                out.push(',');
            }
            normalize_header_value(value, out);
            found = true;
        }
        if !found {
            return Err(name);
        }
        out.push('\n');
    }
    Ok(())
}

pub fn string_to_sign(date_time: &str, scope: &str, canonical_request: &str) -> String {
    let mut out = String::new();
    write_string_to_sign(&mut out, date_time, scope, canonical_request);
    out
}

/// [`string_to_sign`] appended to `out`, with the scope given by anything that displays it.
pub fn write_string_to_sign(out: &mut String, date_time: &str, scope: impl std::fmt::Display, canonical_request: &str) {
    use std::fmt::Write as _;
    let mut hash = [0u8; 64];
    hex::encode_to_slice(sha256(canonical_request.as_bytes()), &mut hash).expect("64 hex digits for 32 bytes");
    let hash = std::str::from_utf8(&hash).expect("hex digits are ASCII");
    write!(out, "{ALGORITHM}\n{date_time}\n{scope}\n{hash}").expect("writing to a String cannot fail");
}

/// An HMAC-SHA256 keyed with `signing_key`, to clone for each message signed with it.
pub(crate) fn keyed_hmac(signing_key: &[u8; 32]) -> HmacSha256 {
    HmacSha256::new_from_slice(signing_key).expect("HMAC takes keys of any length")
}

/// Constant-time check of `signature` against the HMAC of `string_to_sign` under `mac`'s key.
pub(crate) fn keyed_signature_matches(mut mac: HmacSha256, string_to_sign: &[u8], signature: &[u8; 32]) -> bool {
    mac.update(string_to_sign);
    mac.verify_slice(signature).is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn check_uri(raw: &str, expected: &str) {
        assert_eq!(canonical_uri(raw), expected, "raw path {raw:?}");
    }

    #[test]
    fn uri_is_encoded_once_and_not_normalized() {
        check_uri("", "/");
        check_uri("/", "/");
        check_uri("/test.txt", "/test.txt");
        check_uri("/test$file.text", "/test%24file.text");
        check_uri("/test%24file.text", "/test%24file.text");
        check_uri("/a b/c%2Fd", "/a%20b/c/d");
        check_uri("/a/../b/./c//d", "/a/../b/./c//d");
        check_uri("/%e2%82%ac+~", "/%E2%82%AC%2B~");
        check_uri("/bad%zz", "/bad%25zz");
    }

    fn check_query(raw: &str, expected: &str) {
        assert_eq!(canonical_query(raw, Some("X-Amz-Signature")), expected, "raw query {raw:?}");
    }

    #[test]
    fn query_is_decoded_sorted_and_reencoded() {
        check_query("", "");
        check_query("lifecycle", "lifecycle=");
        check_query("max-keys=2&prefix=J", "max-keys=2&prefix=J");
        check_query("prefix=J&max-keys=2", "max-keys=2&prefix=J");
        check_query("a=2&a=1&b", "a=1&a=2&b=");
        check_query("k=a%2fb&k2=a b&k3=%7E", "k=a%2Fb&k2=a%20b&k3=~");
        check_query("X-Amz-Signature=abc&x=1", "x=1");
        check_query("&&x=1&", "x=1");
        check_query("p=a+b", "p=a%2Bb");
    }

    #[test]
    fn header_values_are_trimmed_collapsed_and_joined() {
        let headers = vec![
            ("host".to_string(), " example.com ".to_string()),
            ("x-amz-meta-a".to_string(), "a   b\t\tc".to_string()),
            ("x-amz-meta-a".to_string(), "d".to_string()),
        ];
        assert_eq!(canonical_headers(&headers, &["host", "x-amz-meta-a"]), Ok("host:example.com\nx-amz-meta-a:a b c,d\n".to_string()));
        assert_eq!(canonical_headers(&headers, &["host", "range"]), Err("range"));
    }
}
