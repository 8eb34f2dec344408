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
    /// appended to `out`.
    pub fn append_headers(&self, out: &mut Vec<u8>, method: &str, path: &str, host: &str, unix_s: i64) {
        let date_time = amz_date(unix_s);
        let day = &date_time[..8];
        let key = self.key_for(day);
        let signed_headers = "host;x-amz-content-sha256;x-amz-date";
        let canonical_request = format!(
            "{method}\n{}\n{}\nhost:{host}\nx-amz-content-sha256:{UNSIGNED_PAYLOAD}\nx-amz-date:{date_time}\n\n{signed_headers}\n{UNSIGNED_PAYLOAD}",
            canonical_uri(path),
            canonical_query("", None),
        );
        let scope = format!("{day}/{}/{SERVICE}/{SCOPE_TERMINATOR}", self.credentials.region);
        let signature = hex(&hmac_sha256(&key, string_to_sign(&date_time, &scope, &canonical_request).as_bytes()));
        let mut headers = String::with_capacity(256);
        let _ = write!(
            headers,
            "x-amz-date: {date_time}\r\nx-amz-content-sha256: {UNSIGNED_PAYLOAD}\r\nAuthorization: {ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}\r\n",
            self.credentials.access_key
        );
        out.extend_from_slice(headers.as_bytes());
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
