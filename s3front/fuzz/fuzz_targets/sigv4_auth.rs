#![no_main]
//! Input: lines. Line 1 is the method, 2 the raw path, 3 the raw query, the rest `name:value`
//! headers (names lowercased as the HTTP layer does). The secret and the clock are fixed so that
//! seeds built from the AWS examples reach the signature check and beyond. A SigV2 request goes
//! to `sigv2::authenticate` as the server sends it (a `host` of `<bucket>.localhost` names its
//! bucket), any other to `sigv4::authenticate`.

use s3front::sigv2;
use s3front::sigv4::{RequestParts, authenticate};

const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// 20130524T000000Z, the time of the AWS examples.
const NOW_UNIX_S: i64 = 1_369_353_600;

fn secrets(access_key: &str) -> Option<String> {
    (access_key == ACCESS_KEY).then(|| SECRET.to_string())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or_default();
    let raw_path = lines.next().unwrap_or_default();
    let raw_query = lines.next().unwrap_or_default();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.to_string()))
        .collect();
    let req = RequestParts { method, raw_path, raw_query, headers: &headers };
    let result = if sigv2::is_sigv2(&req) {
        let host_bucket = req.header("host").and_then(|host| host.strip_suffix(".localhost"));
        sigv2::authenticate(&req, host_bucket, &secrets, NOW_UNIX_S).map(|_| ())
    } else {
        authenticate(&req, &secrets, NOW_UNIX_S, "us-east-1").map(|_| ())
    };
    match result {
        Ok(_) => {}
        Err(error) => {
            // Every error must render, name an S3 code and never carry the secret.
            let rendered = error.to_string();
            assert!(!rendered.contains(SECRET));
            assert!(error.status() == 400 || error.status() == 403);
            assert!(!error.code().is_empty());
        }
    }
});
