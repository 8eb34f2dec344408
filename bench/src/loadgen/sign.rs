//! SigV4 header signing for the generator's requests, with `x-amz-content-sha256:
//! UNSIGNED-PAYLOAD` (the body is not hashed, as S3 SDKs do over TLS and as warp does).
//!
//! Signing costs the generator CPU on every request (two SHA-256 of about 200 bytes and an
//! HMAC): the signing key is derived once per day and cached, the rest cannot be.

use std::cell::RefCell;
use std::fmt::Write as _;

use s3front::sigv4::{ALGORITHM, SCOPE_TERMINATOR, SERVICE, UNSIGNED_PAYLOAD, canonical_query, canonical_uri, hmac_sha256, signing_key, string_to_sign};

/// Credentials and region of the signing user.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// What [`Signer::sign`] signs.
pub struct SignInput<'a> {
    pub method: &'a str,
    /// Percent-encoded path, as sent.
    pub path: &'a str,
    /// Percent-encoded query without `?`, as sent ("" for none).
    pub query: &'a str,
    pub host: &'a str,
    /// `x-amz-content-sha256`: `UNSIGNED-PAYLOAD`, a streaming mode, or a hex SHA-256.
    pub payload: &'a str,
    /// Other headers to sign, lowercase names.
    pub extra: &'a [(&'a str, String)],
}

/// A signed request: the headers to send, and what a streaming body's chunk signatures chain from.
pub struct Signed {
    /// `x-amz-date`, `x-amz-content-sha256` and `Authorization`, each `name: value\r\n`.
    pub headers: String,
    pub signature: [u8; 32],
    pub signing_key: [u8; 32],
    pub date_time: String,
    pub scope: String,
}

impl Signed {
    /// The chunk signer of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body sent with these headers.
    pub fn chunk_signer(&self) -> s3front::chunked::ChunkSigner {
        s3front::chunked::ChunkSigner::new(self.signing_key, &self.date_time, &self.scope, self.signature)
    }
}

/// One core's signer (not `Sync`: each core clones its own).
pub struct Signer {
    credentials: Credentials,
    /// The day (`YYYYMMDD`) and its signing key.
    key_of_day: RefCell<Option<(String, [u8; 32])>>,
}

impl Signer {
    pub fn new(credentials: Credentials) -> Signer {
        Signer { credentials, key_of_day: RefCell::new(None) }
    }

    /// The headers that sign `method path` for `host` at `unix_s`, each as `name: value\r\n`,
    /// appended to `out` (UNSIGNED-PAYLOAD, no query, no other signed header).
    pub fn append_headers(&self, out: &mut Vec<u8>, method: &str, path: &str, host: &str, unix_s: i64) {
        let signed = self.sign(&SignInput { method, path, query: "", host, payload: UNSIGNED_PAYLOAD, extra: &[] }, unix_s);
        out.extend_from_slice(signed.headers.as_bytes());
    }

    /// Signs a request: `extra` are further headers to sign (lowercase names, already in the
    /// request or added by the caller from [`Signed::headers`]), `payload` is the
    /// `x-amz-content-sha256` value. The answer carries what a streaming body chains from.
    pub fn sign(&self, input: &SignInput, unix_s: i64) -> Signed {
        let date_time = amz_date(unix_s);
        let day = &date_time[..8];
        let key = self.key_for(day);
        let mut names: Vec<(&str, &str)> = Vec::with_capacity(input.extra.len() + 3);
        names.push(("host", input.host));
        names.push(("x-amz-content-sha256", input.payload));
        names.push(("x-amz-date", &date_time));
        names.extend(input.extra.iter().map(|(n, v)| (*n, v.as_str())));
        names.sort_unstable_by_key(|(n, _)| *n);
        let mut canonical_headers = String::with_capacity(256);
        let mut signed_headers = String::with_capacity(96);
        for (n, v) in &names {
            debug_assert!(n.bytes().all(|b| !b.is_ascii_uppercase()), "signed header names are lowercase: {n}");
            let _ = writeln!(canonical_headers, "{n}:{}", v.trim());
            if !signed_headers.is_empty() {
                signed_headers.push(';');
            }
            signed_headers.push_str(n);
        }
        let canonical_request = format!(
            "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
            input.method,
            canonical_uri(input.path),
            canonical_query(input.query, None),
            input.payload,
        );
        let scope = format!("{day}/{}/{SERVICE}/{SCOPE_TERMINATOR}", self.credentials.region);
        let signature = hmac_sha256(&key, string_to_sign(&date_time, &scope, &canonical_request).as_bytes());
        let mut headers = String::with_capacity(256);
        let _ = write!(
            headers,
            "x-amz-date: {date_time}\r\nx-amz-content-sha256: {}\r\nAuthorization: {ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={}\r\n",
            input.payload,
            self.credentials.access_key,
            hex(&signature),
        );
        Signed { headers, signature, signing_key: key, date_time, scope }
    }

    fn key_for(&self, day: &str) -> [u8; 32] {
        let mut cached = self.key_of_day.borrow_mut();
        match cached.as_ref() {
            Some((d, key)) if d == day => *key,
            _ => {
                let key = signing_key(&self.credentials.secret_key, day, &self.credentials.region, SERVICE);
                *cached = Some((day.to_string(), key));
                key
            }
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time (UTC).
pub fn amz_date(unix_s: i64) -> String {
    let (days, secs) = (unix_s.div_euclid(86_400), unix_s.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(unix_s: i64, expected: &str) {
        assert_eq!(amz_date(unix_s), expected, "unix {unix_s}");
    }

    #[test]
    fn formats_utc_dates() {
        check(0, "19700101T000000Z");
        check(951_782_400, "20000229T000000Z");
        check(1_440_938_160, "20150830T123600Z");
        check(1_709_251_199, "20240229T235959Z");
    }

    /// The signature the server would compute: authenticate with s3front's own verifier.
    #[test]
    fn signed_requests_pass_the_servers_verifier() {
        let creds = Credentials { access_key: "AKIDEXAMPLE".into(), secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(), region: "us-east-1".into() };
        let signer = Signer::new(creds.clone());
        let now = 1_440_938_160;
        let mut out = Vec::new();
        signer.append_headers(&mut out, "GET", "/bench/k%20ey", "127.0.0.1:9000", now);
        let text = String::from_utf8(out).expect("ascii");
        let mut headers: Vec<(String, String)> = vec![("host".into(), "127.0.0.1:9000".into())];
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            let (n, v) = line.split_once(": ").expect("header line");
            headers.push((n.to_ascii_lowercase(), v.to_string()));
        }
        let parts = s3front::sigv4::RequestParts { method: "GET", raw_path: "/bench/k%20ey", raw_query: "", headers: &headers };
        let secrets = |ak: &str| (ak == creds.access_key).then(|| creds.secret_key.clone());
        let signed = s3front::sigv4::authenticate(&parts, &secrets, now, "us-east-1");
        assert!(matches!(signed, Ok(s3front::sigv4::Auth::Signed(_))), "{signed:?}");
    }
}
