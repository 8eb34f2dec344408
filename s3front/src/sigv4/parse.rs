//! Parsing of the pieces a SigV4 request carries: the Authorization header, the credential,
//! the signed-header list, timestamps and hex signatures. Errors are plain messages; the caller
//! wraps them in the header or query flavour of `AuthError`.

use super::canonical::{ALGORITHM, SCOPE_TERMINATOR};
use time::macros::format_description;

/// Most headers one request may sign; SDKs sign a dozen or so, this bounds the work per request.
pub const SIGNED_HEADER_COUNT_MAX: usize = 128;
/// The only service this front end signs for.
pub const SERVICE: &str = "s3";

/// `AKID/20130524/us-east-1/s3/aws4_request`, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

/// The three fields of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationFields<'a> {
    pub credential: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

/// Whether an Authorization value is a SigV2 one (`AWS AKID:signature`), which gets its own error.
pub fn is_sigv2(value: &str) -> bool {
    value.trim_start().starts_with("AWS ")
}

/// Accepts the fields separated by commas, spaces or both, in any order, each exactly once.
pub fn parse_authorization(value: &str) -> Result<AuthorizationFields<'_>, String> {
    let value = value.trim();
    let rest = match value.split_once([' ', '\t']) {
        Some((algorithm, rest)) if algorithm == ALGORITHM => rest,
        Some((algorithm, _)) => return Err(format!("unsupported algorithm {algorithm:?}; only {ALGORITHM} is accepted")),
        None => return Err(format!("expected '{ALGORITHM} Credential=…, SignedHeaders=…, Signature=…'")),
    };
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split([',', ' ', '\t']).filter(|p| !p.is_empty()) {
        let (key, field_value) = part.split_once('=').ok_or_else(|| format!("component {part:?} is not key=value"))?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(format!("unknown component {key:?}")),
        };
        if slot.replace(field_value).is_some() {
            return Err(format!("component {key} appears twice"));
        }
    }
    Ok(AuthorizationFields {
        credential: credential.ok_or("missing Credential")?,
        signed_headers: signed_headers.ok_or("missing SignedHeaders")?,
        signature: signature.ok_or("missing Signature")?,
    })
}

/// Splits from the right so that the four scope fields are fixed and the access key is the rest.
pub fn parse_credential(value: &str) -> Result<Credential, String> {
    let mut fields = value.rsplitn(5, '/');
    let terminator = fields.next().unwrap_or_default();
    let service = fields.next().unwrap_or_default();
    let region = fields.next().unwrap_or_default();
    let date = fields.next().unwrap_or_default();
    let access_key = fields.next().ok_or_else(|| format!("credential {value:?} is not AKID/date/region/service/aws4_request"))?;
    if access_key.is_empty() {
        return Err("credential has an empty access key".to_string());
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("credential date {date:?} is not YYYYMMDD"));
    }
    if region.is_empty() {
        return Err("credential has an empty region".to_string());
    }
    if service != SERVICE {
        return Err(format!("credential service {service:?} is wrong; expecting \"{SERVICE}\""));
    }
    if terminator != SCOPE_TERMINATOR {
        return Err(format!("credential terminator {terminator:?} is wrong; expecting \"{SCOPE_TERMINATOR}\""));
    }
    Ok(Credential { access_key: access_key.into(), date: date.into(), region: region.into(), service: service.into() })
}

/// `host;range;x-amz-date`: the names, once checked (each lowercase, non-empty and free of
/// spaces). Borrowed, not collected: this runs for every request.
pub fn parse_signed_headers(value: &str) -> Result<SignedHeaders<'_>, String> {
    let count = value.split(';').count();
    if count > SIGNED_HEADER_COUNT_MAX {
        return Err(format!("{count} signed headers, more than the {SIGNED_HEADER_COUNT_MAX} allowed"));
    }
    for name in value.split(';') {
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase() && b != b':');
        if !valid {
            return Err(format!("signed header name {name:?} is empty, not lowercase or has invalid characters"));
        }
    }
    Ok(SignedHeaders(value))
}

/// A checked `SignedHeaders` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedHeaders<'a>(&'a str);

impl<'a> SignedHeaders<'a> {
    pub fn names(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.0.split(';')
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names().any(|n| n == name)
    }
}

/// The `X-Amz-*` query parameters of a presigned URL, percent-decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresignedParams {
    pub algorithm: Option<String>,
    pub credential: Option<String>,
    pub date: Option<String>,
    pub expires: Option<String>,
    pub signed_headers: Option<String>,
    pub signature: Option<String>,
}

impl PresignedParams {
    /// Each parameter at most once and valid UTF-8; other parameters are ignored here (they are
    /// still signed through the canonical query).
    pub fn from_query(raw_query: &str) -> Result<PresignedParams, String> {
        let mut params = PresignedParams::default();
        for (name, value) in super::canonical::decode_query(raw_query) {
            let slot = match name.as_slice() {
                b"X-Amz-Algorithm" => &mut params.algorithm,
                b"X-Amz-Credential" => &mut params.credential,
                b"X-Amz-Date" => &mut params.date,
                b"X-Amz-Expires" => &mut params.expires,
                b"X-Amz-SignedHeaders" => &mut params.signed_headers,
                b"X-Amz-Signature" => &mut params.signature,
                _ => continue,
            };
            let name = String::from_utf8_lossy(&name).into_owned();
            let value = String::from_utf8(value).map_err(|_| format!("{name} is not UTF-8"))?;
            if slot.replace(value).is_some() {
                return Err(format!("{name} appears more than once"));
            }
        }
        Ok(params)
    }
}

/// 64 hex digits → 32 bytes.
pub fn parse_signature(value: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    (value.len() == 64).then_some(())?;
    hex::decode_to_slice(value, &mut out).ok()?;
    Some(out)
}

/// `20130524T000000Z` → unix seconds; strict, so that the string signed is exactly what was checked.
pub fn parse_amz_date(value: &str) -> Option<i64> {
    let bytes = value.as_bytes();
    let shape_ok =
        bytes.len() == 16 && bytes[8] == b'T' && bytes[15] == b'Z' && bytes[..8].iter().chain(&bytes[9..15]).all(|b| b.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    let parsed = time::PrimitiveDateTime::parse(value, format).ok()?;
    Some(parsed.assume_utc().unix_timestamp())
}

/// unix seconds → `20130524T000000Z`.
pub fn format_amz_date(unix_s: i64) -> Option<String> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix_s).ok()?.format(format).ok()
}

/// A signed `Date` header → unix seconds: IMF-fixdate and HTTP's obsolete forms, or RFC 2822
/// with a numeric zone (`... -0000`), which botocore writes when a caller sets `Date` (Python's
/// `email.utils.formatdate`) and the AWS examples use.
pub fn parse_http_date(value: &str) -> Option<i64> {
    let value = value.trim();
    match httpdate::parse_http_date(value) {
        Ok(at) => i64::try_from(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs()).ok(),
        Err(_) => Some(time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?.unix_timestamp()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn authorization_variants() {
        let expected =
            AuthorizationFields { credential: "AK/20130524/us-east-1/s3/aws4_request", signed_headers: "host;x-amz-date", signature: "ab" };
        for value in [
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab",
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-date,Signature=ab",
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request SignedHeaders=host;x-amz-date Signature=ab",
            "  AWS4-HMAC-SHA256   Signature=ab ,SignedHeaders=host;x-amz-date , Credential=AK/20130524/us-east-1/s3/aws4_request ",
        ] {
            assert_eq!(parse_authorization(value), Ok(expected.clone()), "{value}");
        }
        for bad in [
            "",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA1 Credential=a, SignedHeaders=b, Signature=c",
            "AWS4-HMAC-SHA256 Credential=a, SignedHeaders=b",
            "AWS4-HMAC-SHA256 Credential=a, Credential=a, SignedHeaders=b, Signature=c",
            "AWS4-HMAC-SHA256 Credential=a, SignedHeaders=b, Signature=c, Extra=d",
            "AWS4-HMAC-SHA256 Credential, SignedHeaders=b, Signature=c",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad:?}");
        }
        assert!(is_sigv2("AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg="));
    }

    #[test]
    fn credentials() {
        let c = parse_credential("AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request").unwrap();
        assert_eq!(
            (c.access_key.as_str(), c.date.as_str(), c.region.as_str(), c.service.as_str()),
            ("AKIAIOSFODNN7EXAMPLE", "20130524", "us-east-1", "s3")
        );
        assert_eq!(parse_credential("a/b/20130524/r/s3/aws4_request").unwrap().access_key, "a/b");
        for bad in [
            "20130524/us-east-1/s3/aws4_request",
            "/20130524/us-east-1/s3/aws4_request",
            "AK/2013052/us-east-1/s3/aws4_request",
            "AK/2013052x/us-east-1/s3/aws4_request",
            "AK/20130524//s3/aws4_request",
            "AK/20130524/us-east-1/iam/aws4_request",
            "AK/20130524/us-east-1/s3/aws4_reques",
        ] {
            assert!(parse_credential(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signed_headers_and_signatures() {
        let names = parse_signed_headers("host;range;x-amz-date").map(|h| h.names().collect::<Vec<_>>());
        assert_eq!(names, Ok(vec!["host", "range", "x-amz-date"]));
        for bad in ["", "host;", "Host", "ho st", "host;;x"] {
            assert!(parse_signed_headers(bad).is_err(), "{bad:?}");
        }
        assert!(parse_signed_headers(&vec!["a"; SIGNED_HEADER_COUNT_MAX + 1].join(";")).is_err());
        assert!(parse_signature(&"ab".repeat(32)).is_some());
        assert!(parse_signature(&"ab".repeat(31)).is_none());
        assert!(parse_signature(&"zz".repeat(32)).is_none());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(1_369_353_600));
        assert_eq!(format_amz_date(1_369_353_600).as_deref(), Some("20130524T000000Z"));
        for bad in ["20130524T000000", "2013-05-24T00:00:00Z", "20131324T000000Z", "+2013052T000000Z", "20130524T246000Z"] {
            assert_eq!(parse_amz_date(bad), None, "{bad:?}");
        }
        assert_eq!(parse_http_date("Fri, 24 May 2013 00:00:00 GMT"), Some(1_369_353_600));
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Fri, 24 May 2013 00:00:00 -0000"), Some(1_369_353_600));
        assert_eq!(parse_http_date("Fri, 24 May 2013 02:00:00 +0200"), Some(1_369_353_600));
    }
}
