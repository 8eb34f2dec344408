//! Error responses on the wire: the XML body's fields and the request id header.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;

use crate::harness::*;

async fn presigned_get(server: &Server, bucket: &str, key: &str) -> RawResponse {
    let request = server
        .client()
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).expect("config"))
        .await
        .expect("presign");
    send_presigned(server.port, &request, b"")
}

#[tokio::test]
async fn no_such_key_error_body() {
    let server = Server::start("error_body_no_such_key");
    create_bucket(&server.client(), "cs-err").await;
    let response = presigned_get(&server, "cs-err", "missing/key.txt").await;
    assert_eq!(response.status, 404);
    assert!(
        response.header("content-type").is_some_and(|t| t.starts_with("application/xml")),
        "Content-Type: {:?}",
        response.header("content-type")
    );
    let text = response.body_text();
    assert!(text.starts_with("<?xml"), "XML declaration: {text}");
    assert_eq!(xml_element(&text, "Code"), Some("NoSuchKey"), "{text}");
    assert_eq!(xml_element(&text, "Message"), Some("The specified key does not exist."), "{text}");
    assert_eq!(xml_element(&text, "Key"), Some("missing/key.txt"), "{text}");
    assert_eq!(xml_element(&text, "Resource"), Some("/cs-err/missing/key.txt"), "{text}");
    let request_id = xml_element(&text, "RequestId").expect("RequestId element");
    assert!(!request_id.is_empty());
    assert_eq!(response.header("x-amz-request-id"), Some(request_id), "header and body request ids agree");
}

#[tokio::test]
async fn no_such_bucket_error_body_and_request_ids() {
    let server = Server::start("error_body_no_such_bucket");
    let response = presigned_get(&server, "cs-nobucket", "k").await;
    assert_eq!(response.status, 404);
    let text = response.body_text();
    assert_eq!(xml_element(&text, "Code"), Some("NoSuchBucket"), "{text}");
    assert_eq!(xml_element(&text, "BucketName"), Some("cs-nobucket"), "{text}");
    let first_id = xml_element(&text, "RequestId").expect("RequestId").to_string();

    let response = presigned_get(&server, "cs-nobucket", "k").await;
    let second_id = xml_element(&response.body_text(), "RequestId").expect("RequestId").to_string();
    assert_ne!(first_id, second_id, "every request has its own id");

    // Successes carry a request id too, and HEAD errors carry it without a body.
    let client = server.client();
    create_bucket(&client, "cs-ids").await;
    put(&client, "cs-ids", "k", b"v").await;
    let response = presigned_get(&server, "cs-ids", "k").await;
    assert_eq!(response.status, 200);
    assert!(response.header("x-amz-request-id").is_some_and(|id| !id.is_empty()));
    let output = client.head_object().bucket("cs-ids").key("k").send().await.ok_or_panic("HeadObject");
    use aws_sdk_s3::operation::RequestId;
    assert!(output.request_id().is_some_and(|id| !id.is_empty()), "HeadObject request id");
}

#[tokio::test]
async fn unsupported_call_is_not_implemented() {
    // A call the server does not support must answer an S3 error, not hang, drop the
    // connection or be mistaken for a plain bucket request (GetBucketAnalyticsConfiguration is a GET of the
    // bucket, which would otherwise list it).
    let server = Server::start("unsupported_call");
    let client = server.client();
    create_bucket(&client, "cs-analytics").await;
    let (status, code) = expect_error(client.get_bucket_analytics_configuration().bucket("cs-analytics").id("a").send().await);
    assert_eq!((status, code.as_str()), (501, "NotImplemented"), "GetBucketAnalyticsConfiguration");
}

/// A HEAD that fails answers with a head only (its Content-Length names the error body it does
/// not send): a body there would be read as the start of the next response on a kept-alive
/// connection. Two requests pipelined on one connection must come back as exactly two responses.
#[tokio::test]
async fn failed_head_sends_no_body_on_a_kept_alive_connection() {
    use std::io::{Read, Write};
    let server = Server::start("failed_head_no_body");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let host = format!("127.0.0.1:{}", server.port);
    let request = format!(
        "HEAD /no-such-bucket/k HTTP/1.1\r\nHost: {host}\r\n\r\nGET /no-such-bucket/k HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 404").count(), 2, "two responses: {text}");
    let first_end = text.find("\r\n\r\n").expect("first head") + 4;
    assert!(text[first_end..].starts_with("HTTP/1.1 404"), "the HEAD's response has no body: {text}");
    assert_eq!(text.matches("<Error>").count(), 1, "only the GET carries an error body: {text}");
}

/// The raw request line and Host of a presigned GET of `key`.
async fn presigned_get_request(server: &Server, bucket: &str, key: &str) -> String {
    let presigned = server
        .client()
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("config"))
        .await
        .expect("presign");
    let uri = presigned.uri();
    let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let slash = after_scheme.find('/').expect("a path");
    format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", &after_scheme[slash..], &after_scheme[..slash])
}

/// A client that asks for a large object and stops reading is disconnected once a send has
/// waited `--send-timeout-s`; one that reads slowly but steadily gets every byte; the server
/// serves on.
#[tokio::test]
#[allow(clippy::disallowed_methods)] // wall-clock waits in a test process of its own
async fn a_client_that_stops_reading_is_disconnected_and_a_slow_one_is_not() {
    use std::io::{Read, Write};
    let data_dir = Server::start("send_timeout").stop();
    let server = Server::start_on_with(data_dir, &["--send-timeout-s", "1"]);
    let client = server.client();
    create_bucket(&client, "cs-slow").await;
    // Larger than what loopback's socket buffers hold, so that a client that does not read
    // stalls the server's send.
    let size = 24 * MIB;
    let data = pattern(size, 77);
    put(&client, "cs-slow", "big", &data).await;

    let request = presigned_get_request(&server, "cs-slow", "big").await;
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    // A small receive buffer, whatever the machine's TCP memory settings: what the stalled
    // client holds unread stays far below the object.
    let rcvbuf: libc::c_int = 64 << 10;
    // SAFETY: setsockopt on an open socket with a valid pointer to an int and its size.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&stalled),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&rcvbuf as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUF");
    stalled.write_all(request.as_bytes()).expect("write");
    std::thread::sleep(Duration::from_secs(4));
    stalled.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    let ended = stalled.read_to_end(&mut got);
    assert!(ended.is_ok() || ended.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset), "{ended:?}");
    assert!(got.len() < size, "a stalled client got all {} bytes: the server never gave up on it", got.len());
    assert!(started.elapsed() < Duration::from_secs(15), "the connection was still open after {:?}", started.elapsed());

    let request = presigned_get_request(&server, "cs-slow", "big").await;
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    slow.write_all(request.as_bytes()).expect("write");
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 512 * KIB];
    // About 10 MB/s: far below what the server sends, far above a megabyte per second.
    while got.len() < size {
        let n = slow.read(&mut chunk).expect("read");
        assert!(n > 0, "the slow reader was cut off after {} bytes", got.len());
        got.extend_from_slice(&chunk[..n]);
        std::thread::sleep(Duration::from_millis(50));
    }
    let body_start = got.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    while got.len() < body_start + size {
        let n = slow.read(&mut chunk).expect("read");
        assert!(n > 0, "the slow reader was cut off after {} bytes", got.len());
        got.extend_from_slice(&chunk[..n]);
    }
    assert_same_bytes(&got[body_start..], &data, "the slow reader's object");
    assert_eq!(get(&client, "cs-slow", "big").await.len(), size, "the server serves on");
}
