//! `corestore serve --tls-cert/--tls-key`: the SDK over HTTPS (rustls), trusting only the
//! certificate `corestore admin tls-cert` wrote. Over HTTPS the SDK sends its default PUT body
//! as STREAMING-UNSIGNED-PAYLOAD-TRAILER (aws-chunked, CRC32 trailer, no per-chunk signature),
//! a mode plain HTTP does not exercise.
#![allow(clippy::disallowed_methods)] // a test process of its own: plain threads, sleeps and wall time, no ring

use std::io::{Read, Write};
use std::time::Duration;

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::*;

/// Objects, ranges, listings, multipart and deletes, all over TLS; bodies large enough to take
/// many TLS records and several encrypted sends each way.
#[tokio::test]
async fn every_kind_of_request_works_over_https() {
    let server = Server::start_tls("tls_requests");
    assert!(server.endpoint().starts_with("https://"), "{}", server.endpoint());
    let client = server.client();
    create_bucket(&client, "cs-tls").await;
    for (i, size) in [0, 1, 16 * KIB + 1, MIB + 7, 9 * MIB].into_iter().enumerate() {
        let data = pattern(size, 40 + i as u64);
        let key = format!("object-{size}");
        assert_eq!(put(&client, "cs-tls", &key, &data).await, etag_of(&data), "PutObject ETag of {size} bytes");
        assert_same_bytes(&get(&client, "cs-tls", &key).await, &data, &format!("GetObject of {size} bytes over TLS"));
    }
    let data = pattern(9 * MIB, 44);
    let range = client.get_object().bucket("cs-tls").key(format!("object-{}", 9 * MIB)).range("bytes=5000000-5100000").send().await;
    let range = collect(range.ok_or_panic("ranged GetObject")).await;
    assert_same_bytes(&range, &data[5_000_000..=5_100_000], "ranged GetObject over TLS");

    let parts = [pattern(5 * MIB, 50), pattern(MIB + 3, 51)];
    let upload = client.create_multipart_upload().bucket("cs-tls").key("multi").send().await.ok_or_panic("CreateMultipartUpload");
    let upload_id = upload.upload_id().expect("upload id");
    let mut completed = Vec::new();
    for (n, part) in parts.iter().enumerate() {
        let number = n as i32 + 1;
        let out = client
            .upload_part()
            .bucket("cs-tls")
            .key("multi")
            .upload_id(upload_id)
            .part_number(number)
            .body(body(part))
            .send()
            .await
            .ok_or_panic("UploadPart");
        completed.push(CompletedPart::builder().part_number(number).e_tag(out.e_tag().expect("part ETag")).build());
    }
    client
        .complete_multipart_upload()
        .bucket("cs-tls")
        .key("multi")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload");
    assert_same_bytes(&get(&client, "cs-tls", "multi").await, &parts.concat(), "multipart object over TLS");

    let listed = client.list_objects_v2().bucket("cs-tls").send().await.ok_or_panic("ListObjectsV2");
    assert_eq!(listed.key_count(), Some(6), "{listed:?}");
    client.delete_object().bucket("cs-tls").key("multi").send().await.ok_or_panic("DeleteObject");
    let status = status_of(client.head_object().bucket("cs-tls").key("multi").send().await);
    assert_eq!(status, 404, "HEAD of a deleted object over TLS");

    // A policy that denies everything not over TLS (`aws:SecureTransport` false) lets these
    // requests through; one that denies what is over TLS stops them.
    let deny_when = |secure: &str| {
        format!(
            r#"{{"Statement": [{{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::cs-tls/*",
                "Condition": {{"Bool": {{"aws:SecureTransport": "{secure}"}}}}}}]}}"#
        )
    };
    client.put_bucket_policy().bucket("cs-tls").policy(deny_when("false")).send().await.ok_or_panic("policy");
    assert_eq!(get(&client, "cs-tls", "object-0").await, b"", "GET over TLS, allowed");
    client.put_bucket_policy().bucket("cs-tls").policy(deny_when("true")).send().await.ok_or_panic("policy");
    assert_eq!(status_of(client.get_object().bucket("cs-tls").key("object-0").send().await), 403, "GET over TLS, denied");
}

/// A client that does not trust the certificate fails in the handshake; plain HTTP to the TLS
/// port gets no HTTP answer; and the server serves the next TLS client as before.
#[tokio::test]
async fn untrusting_and_plain_clients_are_refused_and_the_server_goes_on() {
    let server = Server::start_tls("tls_refusals");
    let client = server.client();
    create_bucket(&client, "cs-tls-refuse").await;

    let stranger = server.client_trusting(&other_certificate(&server));
    let error = stranger.list_buckets().send().await.expect_err("a client trusting another certificate");
    let text = format!("{}", aws_smithy_types::error::display::DisplayErrorContext(&error));
    assert!(text.to_lowercase().contains("certificate"), "{text}");

    let mut plain = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    plain.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    plain.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut reply = Vec::new();
    let _ = plain.read_to_end(&mut reply);
    assert!(!reply.starts_with(b"HTTP/"), "plain HTTP got an HTTP answer: {:?}", String::from_utf8_lossy(&reply));

    put(&client, "cs-tls-refuse", "after", b"still serving").await;
    assert_eq!(get(&client, "cs-tls-refuse", "after").await, b"still serving");
}

/// A certificate for the same names that the server does not hold.
fn other_certificate(server: &Server) -> Vec<u8> {
    let dir = server.data_dir.with_extension("other-tls");
    tls_cert_into(&dir);
    let cert = std::fs::read(dir.join("cert.pem")).expect("read the other cert.pem");
    let _ = std::fs::remove_dir_all(&dir);
    cert
}

/// SIGHUP reads the certificate files again: once new ones are in place, new connections get
/// the new certificate (a client trusting only it gets in, one trusting only the old one no
/// longer does), and files that do not load leave the server on the certificate it has.
#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let server = Server::start_tls("tls_reload");
    let tls_dir = server.data_dir.with_extension("tls");
    let old = std::fs::read(tls_dir.join("cert.pem")).expect("old cert");
    let staged = server.data_dir.with_extension("next-tls");
    tls_cert_into(&staged);
    let new = std::fs::read(staged.join("cert.pem")).expect("new cert");
    create_bucket(&server.client(), "cs-reload").await;

    // A broken certificate file and a SIGHUP: refused, the old certificate keeps serving.
    std::fs::write(tls_dir.join("cert.pem"), b"not a certificate").expect("break cert.pem");
    server.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.client_trusting(&old).list_buckets().send().await.ok_or_panic("the old certificate after a failed reload");
    assert!(server.stderr().contains("TLS reload failed"), "{}", server.stderr());

    // Key first, then the certificate: both renamed into place, then SIGHUP.
    std::fs::rename(staged.join("key.pem"), tls_dir.join("key.pem")).expect("move key.pem");
    std::fs::rename(staged.join("cert.pem"), tls_dir.join("cert.pem")).expect("move cert.pem");
    server.signal(libc::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        // A new client each time: a new connection, a new handshake.
        match server.client_trusting(&new).list_buckets().send().await {
            Ok(_) => break,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the new certificate was not served 10 s after SIGHUP: {e:?}"),
        }
    }
    let refused = server.client_trusting(&old).list_buckets().send().await;
    assert!(refused.is_err(), "a client trusting only the old certificate still got in");
    let _ = std::fs::remove_dir_all(&staged);
}
