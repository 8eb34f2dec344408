//! The worked examples AWS publishes for S3 SigV4 ("examplebucket", 20130524, AKIAIOSFODNN7EXAMPLE),
//! checked to the exact signature.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use s3front::chunked::{AwsChunkedDecoder, ChunkSigner};
use s3front::sigv4::{Auth, AuthError, PayloadMode, RequestParts, SignedRequest, authenticate, hmac_sha256, sha256, signing_key};

const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// 20130524T000000Z.
const NOW_UNIX_S: i64 = 1_369_353_600;
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn secrets(access_key: &str) -> Option<String> {
    (access_key == ACCESS_KEY).then(|| SECRET.to_string())
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

fn authorization(signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130524/us-east-1/s3/aws4_request,SignedHeaders={signed_headers},Signature={signature}"
    )
}

fn check_signed(method: &str, raw_path: &str, raw_query: &str, headers: &[(String, String)]) -> SignedRequest {
    let headers = headers.to_vec();
    let req = RequestParts { method, raw_path, raw_query, headers: &headers };
    match authenticate(&req, &secrets, NOW_UNIX_S, "us-east-1") {
        Ok(Auth::Signed(signed)) => signed,
        other => panic!("{method} {raw_path}?{raw_query}: {other:?}"),
    }
}

#[test]
fn get_object_with_range() {
    let signature = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
    let mut h = headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", "20130524T000000Z"),
    ]);
    h.push(("authorization".into(), authorization("host;range;x-amz-content-sha256;x-amz-date", signature)));
    let signed = check_signed("GET", "/test.txt", "", &h);
    assert_eq!(signed.access_key, ACCESS_KEY);
    assert_eq!(signed.scope.to_string(), "20130524/us-east-1/s3/aws4_request");
    assert_eq!(hex::encode(signed.seed_signature), signature);
    assert_eq!(signed.payload, PayloadMode::Sha256(sha256(b"")));
    assert!(signed.region_is_configured);
    assert!(!signed.presigned);

    // The published intermediate values come back in SignatureDoesNotMatch.
    h.last_mut().unwrap().1 = authorization("host;range;x-amz-content-sha256;x-amz-date", &"0".repeat(64));
    let req = RequestParts { method: "GET", raw_path: "/test.txt", raw_query: "", headers: &h };
    let Err(AuthError::SignatureDoesNotMatch { string_to_sign, canonical_request, .. }) =
        authenticate(&req, &secrets, NOW_UNIX_S, "us-east-1")
    else {
        panic!("expected SignatureDoesNotMatch");
    };
    assert_eq!(
        canonical_request,
        format!(
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:{EMPTY_SHA256}\n\
             x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}"
        )
    );
    assert_eq!(
        string_to_sign,
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    );
}

#[test]
fn put_object() {
    let signature = "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd";
    let body_sha256 = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    assert_eq!(hex::encode(sha256(b"Welcome to Amazon S3.")), body_sha256);
    let mut h = headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("authorization", &authorization("date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class", signature)),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("x-amz-content-sha256", body_sha256),
    ]);
    // The key "test$file.text" may arrive with '$' raw or percent-encoded; both canonicalize alike.
    for raw_path in ["/test$file.text", "/test%24file.text"] {
        let signed = check_signed("PUT", raw_path, "", &h);
        assert_eq!(signed.payload, PayloadMode::Sha256(sha256(b"Welcome to Amazon S3.")));
    }
    h[4].1 = "STANDARD".into();
    let req = RequestParts { method: "PUT", raw_path: "/test$file.text", raw_query: "", headers: &h };
    assert_eq!(authenticate(&req, &secrets, NOW_UNIX_S, "us-east-1").unwrap_err().code(), "SignatureDoesNotMatch");
}

#[test]
fn get_bucket_lifecycle() {
    let signature = "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543";
    let h = headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("authorization", &authorization("host;x-amz-content-sha256;x-amz-date", signature)),
    ]);
    check_signed("GET", "/", "lifecycle", &h);
    check_signed("GET", "/", "lifecycle=", &h);
}

#[test]
fn list_objects() {
    let signature = "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";
    let h = headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("authorization", &authorization("host;x-amz-content-sha256;x-amz-date", signature)),
    ]);
    check_signed("GET", "/", "max-keys=2&prefix=J", &h);
    // Parameter order on the wire does not matter: the canonical query is sorted.
    check_signed("GET", "/", "prefix=J&max-keys=2", &h);
}

const PRESIGNED_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

#[test]
fn presigned_get_object() {
    let h = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
    let signed = check_signed("GET", "/test.txt", PRESIGNED_QUERY, &h);
    assert!(signed.presigned);
    assert_eq!(signed.payload, PayloadMode::Unsigned);
    assert_eq!(hex::encode(signed.seed_signature), "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    // Valid through the last second of X-Amz-Expires, expired one second later.
    let req = RequestParts { method: "GET", raw_path: "/test.txt", raw_query: PRESIGNED_QUERY, headers: &h };
    assert!(authenticate(&req, &secrets, NOW_UNIX_S + 86_400, "us-east-1").is_ok());
    let expired = authenticate(&req, &secrets, NOW_UNIX_S + 86_401, "us-east-1").unwrap_err();
    assert_eq!((expired.code(), expired.status(), expired.message().as_str()), ("AccessDenied", 403, "Request has expired"));
}

fn streaming_request_headers() -> Vec<(String, String)> {
    let signature = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    headers(&[
        ("host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        (
            "authorization",
            &authorization(
                "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
                signature,
            ),
        ),
        ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("content-length", "66824"),
    ])
}

const CHUNK_SIGNATURES: [&str; 3] = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
];

fn streaming_body() -> Vec<u8> {
    let mut body = Vec::new();
    for (size, signature) in [65_536usize, 1024, 0].into_iter().zip(CHUNK_SIGNATURES) {
        body.extend_from_slice(format!("{size:x};chunk-signature={signature}\r\n").as_bytes());
        if size > 0 {
            body.extend(std::iter::repeat_n(b'a', size));
            body.extend_from_slice(b"\r\n");
        }
    }
    body.extend_from_slice(b"\r\n");
    body
}

#[test]
fn streaming_put_seed_and_chunk_signatures() {
    let h = streaming_request_headers();
    let signed = check_signed("PUT", "/examplebucket/chunkObject.txt", "", &h);
    assert_eq!(signed.payload, PayloadMode::StreamingSigned);
    assert_eq!(signed.decoded_content_length, Some(66_560));

    // The chunk signatures, computed directly.
    let mut signer = signed.chunk_signer().expect("signed streaming mode has a signer");
    let chunks: [Vec<u8>; 3] = [vec![b'a'; 65_536], vec![b'a'; 1024], vec![]];
    for (chunk, expected) in chunks.iter().zip(CHUNK_SIGNATURES) {
        assert_eq!(hex::encode(signer.sign_chunk(&sha256(chunk))), expected);
    }

    // And through the decoder, whose body length matches the published Content-Length.
    let body = streaming_body();
    assert_eq!(body.len(), 66_824);
    let mut decoder = AwsChunkedDecoder::for_request(&signed).expect("aws-chunked body");
    let mut decoded = Vec::new();
    let consumed = decoder.feed(&body, &mut |d| decoded.extend_from_slice(d)).expect("valid body");
    assert_eq!(consumed, body.len());
    assert!(decoder.is_done());
    assert_eq!(decoded, vec![b'a'; 66_560]);

    // A changed byte in the second chunk is caught at that chunk.
    let mut tampered = body.clone();
    tampered[66_000] = b'b';
    let mut decoder = AwsChunkedDecoder::for_request(&signed).expect("aws-chunked body");
    let error = decoder.feed(&tampered, &mut |_| {}).unwrap_err();
    assert_eq!(error.to_string(), "chunk 2: signature mismatch");
    assert!(!decoder.is_done());
}

#[test]
fn signing_key_derivation() {
    // The derivation example of the AWS General Reference (IAM, 20150830).
    let key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam");
    assert_eq!(hex::encode(key), "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
    // And the key of the S3 examples signs their string to sign to the published signature.
    let key = signing_key(SECRET, "20130524", "us-east-1", "s3");
    let string_to_sign = "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972";
    assert_eq!(
        hex::encode(hmac_sha256(&key, string_to_sign.as_bytes())),
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
    let signer = ChunkSigner::new(key, "20130524T000000Z", "20130524/us-east-1/s3/aws4_request", [0; 32]);
    assert!(!format!("{signer:?}").contains(&hex::encode(key)), "Debug must not print the key");
}
