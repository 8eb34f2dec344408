//! Signing as a client does (header auth), for our own tests, tools and load generator: the
//! same canonical-request code the server verifies with, so a bug shows as a mismatch against
//! real SDKs in the SDK tests, not as two agreeing halves.

use super::canonical::{ALGORITHM, canonical_query, canonical_uri, hmac_sha256, signing_key, string_to_sign};

/// Keys and region to sign with.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// `YYYYMMDDTHHMMSSZ` for a unix time.
pub fn amz_date(unix_s: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_s).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", t.year(), t.month() as u8, t.day(), t.hour(), t.minute(), t.second())
}

/// The headers that sign a request: `x-amz-date`, `x-amz-content-sha256` (`payload`: the hex
/// SHA-256 of the body or `UNSIGNED-PAYLOAD`) and `authorization`. `headers` are the other
/// headers to sign (lowercase names; `host` must be among them).
pub fn sign_headers(
    creds: &Credentials,
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &[(String, String)],
    payload: &str,
    unix_s: i64,
) -> Vec<(String, String)> {
    assert!(headers.iter().any(|(n, _)| n == "host"), "a signed request names its host");
    let date_time = amz_date(unix_s);
    let date = &date_time[..8];
    let mut signed: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string())).collect();
    signed.push(("x-amz-content-sha256".into(), payload.to_string()));
    signed.push(("x-amz-date".into(), date_time.clone()));
    signed.sort();
    let names: Vec<&str> = signed.iter().map(|(n, _)| n.as_str()).collect();
    let signed_names = names.join(";");
    let canonical_headers: String = signed.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let canonical_request = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_names}\n{payload}",
        canonical_uri(raw_path),
        canonical_query(raw_query, None)
    );
    let scope = format!("{date}/{}/s3/aws4_request", creds.region);
    let key = signing_key(&creds.secret_key, date, &creds.region, "s3");
    let signature = hex::encode(hmac_sha256(&key, string_to_sign(&date_time, &scope, &canonical_request).as_bytes()));
    vec![
        ("x-amz-date".into(), date_time),
        ("x-amz-content-sha256".into(), payload.to_string()),
        (
            "authorization".into(),
            format!("{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}", creds.access_key),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::{Auth, RequestParts, authenticate};

    #[test]
    fn what_we_sign_the_server_verifies() {
        let creds = Credentials { access_key: "AKID".into(), secret_key: "secret-key-1".into(), region: "us-east-1".into() };
        let now = 1_790_000_000;
        let mut headers = vec![("host".to_string(), "127.0.0.1:9000".to_string())];
        headers.extend(sign_headers(&creds, "GET", "/b/a%20key", "list-type=2&prefix=x", &headers, "UNSIGNED-PAYLOAD", now));
        let parts = RequestParts { method: "GET", raw_path: "/b/a%20key", raw_query: "list-type=2&prefix=x", headers: &headers };
        let secrets = |ak: &str| (ak == "AKID").then(|| "secret-key-1".to_string());
        match authenticate(&parts, &secrets, now, "us-east-1") {
            Ok(Auth::Signed(s)) => assert_eq!(s.access_key, "AKID"),
            other => panic!("{other:?}"),
        }
        let wrong = |_: &str| Some("other".to_string());
        assert!(authenticate(&parts, &wrong, now, "us-east-1").is_err());
    }
}
