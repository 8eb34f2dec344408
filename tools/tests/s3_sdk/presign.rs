//! Presigned URLs (query-string SigV4) made by the SDK's presigner, used by a plain HTTP client.
#![allow(clippy::disallowed_methods)] // a test process of its own: plain threads, sleeps and wall time, no ring

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;

use crate::harness::*;

fn sixty_seconds() -> PresigningConfig {
    PresigningConfig::expires_in(Duration::from_secs(60)).expect("presigning config")
}

#[tokio::test]
async fn presigned_put_then_get() {
    let server = Server::start("presigned_put_get");
    let client = server.client();
    create_bucket(&client, "cs-pre").await;
    let data = pattern(300_000, 41);

    let put_request =
        client.put_object().bucket("cs-pre").key("up/loaded.bin").presigned(sixty_seconds()).await.expect("presign PUT");
    assert!(put_request.uri().contains("X-Amz-Signature="), "query-string signature: {}", put_request.uri());
    let response = send_presigned(server.port, &put_request, &data);
    assert_eq!(response.status, 200, "presigned PUT: {}", response.body_text());
    assert_eq!(response.header("etag"), Some(etag_of(&data).as_str()));

    // The SDK sees what the plain client uploaded...
    assert_same_bytes(&get(&client, "cs-pre", "up/loaded.bin").await, &data, "presigned upload");
    // ...and the plain client reads it back with a presigned GET.
    let get_request =
        client.get_object().bucket("cs-pre").key("up/loaded.bin").presigned(sixty_seconds()).await.expect("presign GET");
    let response = send_presigned(server.port, &get_request, b"");
    assert_eq!(response.status, 200, "presigned GET: {}", response.body_text());
    assert_eq!(response.header("content-length"), Some(data.len().to_string().as_str()));
    assert_same_bytes(&response.body, &data, "presigned download");
}

#[tokio::test]
async fn presigned_get_expired_is_access_denied() {
    let server = Server::start("presigned_expired");
    let client = server.client();
    create_bucket(&client, "cs-pre").await;
    put(&client, "cs-pre", "k", b"secret").await;
    let short = PresigningConfig::expires_in(Duration::from_secs(1)).expect("config");
    let request = client.get_object().bucket("cs-pre").key("k").presigned(short).await.expect("presign");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let response = send_presigned(server.port, &request, b"");
    assert_eq!(response.status, 403, "{}", response.body_text());
    assert_eq!(xml_element(&response.body_text(), "Code"), Some("AccessDenied"), "{}", response.body_text());
    assert_ne!(response.body, b"secret");

    // Signed an hour ago for 60 s: expired without waiting.
    let stale = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(3600))
        .expires_in(Duration::from_secs(60))
        .build()
        .expect("config");
    let request = client.get_object().bucket("cs-pre").key("k").presigned(stale).await.expect("presign");
    let response = send_presigned(server.port, &request, b"");
    assert_eq!(response.status, 403);
    assert_eq!(xml_element(&response.body_text(), "Code"), Some("AccessDenied"), "{}", response.body_text());
}

#[tokio::test]
async fn presigned_url_tampered_is_signature_mismatch() {
    let server = Server::start("presigned_tampered");
    let client = server.client();
    create_bucket(&client, "cs-pre").await;
    put(&client, "cs-pre", "k", b"one").await;
    put(&client, "cs-pre", "other", b"two").await;
    let request = client.get_object().bucket("cs-pre").key("k").presigned(sixty_seconds()).await.expect("presign");
    let (path_and_query, host) = split_presigned(request.uri());
    // The same signature on another key.
    let tampered = path_and_query.replacen("/cs-pre/k?", "/cs-pre/other?", 1);
    assert_ne!(tampered, path_and_query);
    let response = raw_request(server.port, "GET", &tampered, &[("Host", host)], b"");
    assert_eq!(response.status, 403, "{}", response.body_text());
    assert_eq!(xml_element(&response.body_text(), "Code"), Some("SignatureDoesNotMatch"), "{}", response.body_text());
}

/// `http://host:port/path?query` → (`/path?query`, `host:port`).
fn split_presigned(uri: &str) -> (String, &str) {
    let rest = uri.strip_prefix("http://").expect("http URL");
    let slash = rest.find('/').expect("a path");
    (rest[slash..].to_string(), &rest[..slash])
}
