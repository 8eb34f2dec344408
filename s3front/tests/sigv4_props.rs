//! Properties of `authenticate`: no input panics it, and a request signed over any path and query
//! (in the client's encoding) verifies, while a changed one does not.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use s3front::sigv4::{Auth, AuthError, RequestParts, authenticate, hmac_sha256, signing_key};

const SECRET: &str = "secret";
const NOW_UNIX_S: i64 = 1_369_353_600;

fn secrets(access_key: &str) -> Option<String> {
    (access_key == "AK").then(|| SECRET.to_string())
}

fn run(path: &str, query: &str, headers: &[(String, String)]) -> Result<Auth, AuthError> {
    let headers = headers.to_vec();
    authenticate(&RequestParts { method: "PUT", raw_path: path, raw_query: query, headers: &headers }, &secrets, NOW_UNIX_S, "us-east-1")
}

fn signed_headers(signature: &str) -> Vec<(String, String)> {
    vec![
        ("host".into(), "localhost:9000".into()),
        ("x-amz-date".into(), "20130524T000000Z".into()),
        ("x-amz-content-sha256".into(), "UNSIGNED-PAYLOAD".into()),
        (
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}"
            ),
        ),
    ]
}

/// Signs like a client, from the canonical request the server reports for a zero signature.
fn sign(path: &str, query: &str) -> Vec<(String, String)> {
    let Err(AuthError::SignatureDoesNotMatch { string_to_sign, .. }) = run(path, query, &signed_headers(&"0".repeat(64))) else {
        panic!("expected SignatureDoesNotMatch");
    };
    let key = signing_key(SECRET, "20130524", "us-east-1", "s3");
    signed_headers(&hex::encode(hmac_sha256(&key, string_to_sign.as_bytes())))
}

proptest! {
    #[test]
    fn any_key_and_query_verify(
        key in "[a-zA-Z0-9 !$&'()*+,;=:@._~%/-]{0,40}",
        query_pairs in prop::collection::vec(("[a-z-]{1,8}", "[ -~]{0,12}"), 0..4),
    ) {
        let path = format!("/bucket/{}", utf8_percent_encode(&key, NON_ALPHANUMERIC).to_string().replace("%2F", "/"));
        let query = query_pairs
            .iter()
            .map(|(n, v)| format!("{n}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
            .collect::<Vec<_>>()
            .join("&");
        let headers = sign(&path, &query);
        prop_assert!(matches!(run(&path, &query, &headers), Ok(Auth::Signed(_))));
        // Another key under the same signature fails.
        let other = format!("{path}x");
        prop_assert_eq!(run(&other, &query, &headers).unwrap_err().code(), "SignatureDoesNotMatch");
    }

    #[test]
    fn arbitrary_requests_never_panic(
        method in "[A-Z]{0,7}",
        path in any::<String>(),
        query in any::<String>(),
        headers in prop::collection::vec(("[a-z-]{1,24}|authorization|x-amz-date|x-amz-content-sha256", any::<String>()), 0..8),
        now in any::<i64>(),
    ) {
        let parts = RequestParts { method: &method, raw_path: &path, raw_query: &query, headers: &headers };
        let _ = authenticate(&parts, &secrets, now, "us-east-1");
    }
}
