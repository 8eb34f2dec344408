//! Conditional requests: If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since on
//! GetObject and HeadObject, and If-None-Match: * on PutObject.
#![allow(clippy::disallowed_methods)] // a test process of its own: plain threads, sleeps and wall time, no ring

use aws_sdk_s3::primitives::DateTime;

use crate::harness::*;

/// A day after now, and a day before the object was written.
fn future() -> DateTime {
    DateTime::from_secs(unix_now() + 86_400)
}

fn past() -> DateTime {
    DateTime::from_secs(unix_now() - 86_400)
}


/// (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since) and the expected status.
struct Case {
    name: &'static str,
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<DateTime>,
    if_unmodified_since: Option<DateTime>,
    status: u16,
}

fn cases(etag: &str) -> Vec<Case> {
    let other = "\"00000000000000000000000000000000\"".to_string();
    let case = |name, if_match: Option<&str>, if_none_match: Option<&str>, ims, ius, status| Case {
        name,
        if_match: if_match.map(str::to_string),
        if_none_match: if_none_match.map(str::to_string),
        if_modified_since: ims,
        if_unmodified_since: ius,
        status,
    };
    vec![
        case("If-Match equal", Some(etag), None, None, None, 200),
        case("If-Match other", Some(&other), None, None, None, 412),
        case("If-None-Match equal", None, Some(etag), None, None, 304),
        case("If-None-Match other", None, Some(&other), None, None, 200),
        case("If-Modified-Since future", None, None, Some(future()), None, 304),
        case("If-Modified-Since past", None, None, Some(past()), None, 200),
        case("If-Unmodified-Since past", None, None, None, Some(past()), 412),
        case("If-Unmodified-Since future", None, None, None, Some(future()), 200),
        // S3's documented precedence: a true If-Match wins over a false If-Unmodified-Since,
        // and a false If-None-Match (304) wins over a true If-Modified-Since.
        case("If-Match true, If-Unmodified-Since false", Some(etag), None, None, Some(past()), 200),
        case("If-None-Match false, If-Modified-Since true", None, Some(etag), Some(past()), None, 304),
    ]
}

#[tokio::test]
async fn conditional_get_and_head() {
    let server = Server::start("conditional_get_head");
    let client = server.client();
    create_bucket(&client, "cs-cond").await;
    let data = pattern(2000, 4);
    let etag = put(&client, "cs-cond", "k", &data).await;
    for case in cases(&etag) {
        let result = client
            .get_object()
            .bucket("cs-cond")
            .key("k")
            .set_if_match(case.if_match.clone())
            .set_if_none_match(case.if_none_match.clone())
            .set_if_modified_since(case.if_modified_since)
            .set_if_unmodified_since(case.if_unmodified_since)
            .send()
            .await;
        match case.status {
            200 => {
                let output = result.ok_or_panic(case.name);
                assert_same_bytes(&collect(output).await, &data, case.name);
            }
            412 => {
                let (status, code) = expect_error(result);
                assert_eq!((status, code.as_str()), (412, "PreconditionFailed"), "GetObject {}", case.name);
            }
            expected => {
                let (status, _) = expect_error(result);
                assert_eq!(status, expected, "GetObject {}", case.name);
            }
        }

        let result = client
            .head_object()
            .bucket("cs-cond")
            .key("k")
            .set_if_match(case.if_match.clone())
            .set_if_none_match(case.if_none_match.clone())
            .set_if_modified_since(case.if_modified_since)
            .set_if_unmodified_since(case.if_unmodified_since)
            .send()
            .await;
        if case.status == 200 {
            let output = result.ok_or_panic(case.name);
            assert_eq!(output.e_tag(), Some(etag.as_str()), "HeadObject {}", case.name);
        } else {
            let (status, _) = expect_error(result);
            assert_eq!(status, case.status, "HeadObject {}", case.name);
        }
    }
}

#[tokio::test]
async fn not_modified_carries_etag() {
    let server = Server::start("not_modified_etag");
    let client = server.client();
    create_bucket(&client, "cs-cond").await;
    let etag = put(&client, "cs-cond", "k", b"body").await;
    let presigned = client
        .get_object()
        .bucket("cs-cond")
        .key("k")
        .if_none_match(&etag)
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60)).expect("config"),
        )
        .await
        .expect("presign");
    let response = send_presigned(server.port, &presigned, b"");
    assert_eq!(response.status, 304);
    assert_eq!(response.header("etag"), Some(etag.as_str()), "304 carries the ETag");
    assert!(response.body.is_empty(), "304 has no body");
}

#[tokio::test]
async fn put_if_none_match_star() {
    let server = Server::start("put_if_none_match");
    let client = server.client();
    create_bucket(&client, "cs-cond").await;
    client
        .put_object()
        .bucket("cs-cond")
        .key("new")
        .body(body(b"first"))
        .if_none_match("*")
        .send()
        .await
        .ok_or_panic("PutObject If-None-Match: * on a new key");
    let (status, code) = expect_error(
        client.put_object().bucket("cs-cond").key("new").body(body(b"second")).if_none_match("*").send().await,
    );
    assert_eq!((status, code.as_str()), (412, "PreconditionFailed"));
    assert_eq!(get(&client, "cs-cond", "new").await, b"first", "the refused PUT changed nothing");
}
