//! Conditional requests: If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since on
//! GetObject and HeadObject, and If-None-Match: * on PutObject.
#![allow(clippy::disallowed_methods)] // a test process of its own: plain threads, sleeps and wall time, no ring

use aws_sdk_s3::primitives::DateTime;

use aws_sdk_s3::error::ProvideErrorMetadata;

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
    // If-None-Match with ETags: refused while the current object has one of them.
    let first = format!("\"{}\"", hex(&md5(b"first")));
    let (status, code) = expect_error(
        client.put_object().bucket("cs-cond").key("new").body(body(b"third")).if_none_match(&first).send().await,
    );
    assert_eq!((status, code.as_str()), (412, "PreconditionFailed"));
    assert_eq!(get(&client, "cs-cond", "new").await, b"first", "the refused PUT changed nothing");
    let other = format!("\"{}\"", hex(&md5(b"other")));
    client.put_object().bucket("cs-cond").key("new").body(body(b"fourth")).if_none_match(&other).send().await.ok_or_panic("another ETag");
    client.put_object().bucket("cs-cond").key("absent").body(body(b"x")).if_none_match(&other).send().await.ok_or_panic("no object");
    assert_eq!(get(&client, "cs-cond", "new").await, b"fourth");
}

/// Writers racing on one key with `If-None-Match: *`: exactly one creates it, every other gets
/// 412 (or 409 ConditionalRequestConflict), and the object is the winner's. The bodies take a
/// while to arrive, so every writer passes the early check before any has written: only the
/// check made with the write can tell them apart. Small bodies and large (chunked) ones, in an
/// unversioned and in a versioned bucket.
#[tokio::test]
async fn racing_conditional_creates_have_one_winner() {
    const WRITERS: usize = 12;
    let server = Server::start("racing_conditional_creates");
    let client = server.client();
    for (bucket, versioned) in [("cs-race", false), ("cs-race-v", true)] {
        create_bucket(&client, bucket).await;
        if versioned {
            let enabled = aws_sdk_s3::types::VersioningConfiguration::builder().status(aws_sdk_s3::types::BucketVersioningStatus::Enabled).build();
            client.put_bucket_versioning().bucket(bucket).versioning_configuration(enabled).send().await.ok_or_panic("PutBucketVersioning");
        }
        for (round, size) in [4 * KIB, 3 * MIB].into_iter().enumerate() {
            let key = format!("lock-{round}");
            let writes = (0..WRITERS).map(|w| {
                let (client, key) = (client.clone(), key.clone());
                let data = pattern(size, (round * WRITERS + w) as u64 + 1);
                async move {
                    let r = client.put_object().bucket(bucket).key(&key).body(body(&data)).if_none_match("*").send().await;
                    (data, r.map(|_| ()).map_err(|e| status_and_code(&e)))
                }
            });
            let results = futures_join_all(writes).await;
            let winners: Vec<&Vec<u8>> = results.iter().filter(|(_, r)| r.is_ok()).map(|(d, _)| d).collect();
            assert_eq!(winners.len(), 1, "{bucket} {size} bytes: {} writers succeeded", winners.len());
            for (_, r) in &results {
                if let Err((status, code)) = r {
                    assert!(matches!((*status, code.as_str()), (412, "PreconditionFailed") | (409, "ConditionalRequestConflict")), "{status} {code}");
                }
            }
            assert_same_bytes(&get(&client, bucket, &key).await, winners[0], &format!("{bucket}/{key}: the winner's object"));
        }
    }
}

/// Writers that all read one ETag and race to replace it with `If-Match`: one wins.
#[tokio::test]
async fn racing_if_match_writes_have_one_winner() {
    const WRITERS: usize = 8;
    let server = Server::start("racing_if_match");
    let client = server.client();
    create_bucket(&client, "cs-race-m").await;
    let etag = put(&client, "cs-race-m", "doc", b"version 0").await;
    let writes = (0..WRITERS).map(|w| {
        let (client, etag) = (client.clone(), etag.clone());
        let data = pattern(2 * MIB, w as u64 + 100);
        async move {
            let r = client.put_object().bucket("cs-race-m").key("doc").body(body(&data)).if_match(etag).send().await;
            (data, r.map(|_| ()).map_err(|e| status_and_code(&e)))
        }
    });
    let results = futures_join_all(writes).await;
    let winners: Vec<&Vec<u8>> = results.iter().filter(|(_, r)| r.is_ok()).map(|(d, _)| d).collect();
    assert_eq!(winners.len(), 1, "{} writers replaced the version they all read", winners.len());
    assert_same_bytes(&get(&client, "cs-race-m", "doc").await, winners[0], "the winner's object");
}

fn status_and_code<E: ProvideErrorMetadata + std::fmt::Debug>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> (u16, String) {
    let status = e.raw_response().map_or(0, |r| r.status().as_u16());
    (status, e.code().unwrap_or("").to_string())
}

/// Runs the futures concurrently on the test's runtime; their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("a writer task panicked"));
    }
    out
}

/// CompleteMultipartUpload with `If-None-Match: *` onto a key that exists: 412, and the upload
/// stays as it was, to be completed without the condition (or aborted).
#[tokio::test]
async fn conditional_complete_multipart_upload() {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let server = Server::start("conditional_complete");
    let client = server.client();
    create_bucket(&client, "cs-cmu").await;
    put(&client, "cs-cmu", "taken", b"already here").await;
    let part = pattern(5 * MIB, 9);
    let upload = client.create_multipart_upload().bucket("cs-cmu").key("taken").send().await.ok_or_panic("CreateMultipartUpload");
    let id = upload.upload_id().expect("upload id").to_string();
    let out = client.upload_part().bucket("cs-cmu").key("taken").upload_id(&id).part_number(1).body(body(&part)).send().await.ok_or_panic("UploadPart");
    let parts = CompletedMultipartUpload::builder().parts(CompletedPart::builder().part_number(1).e_tag(out.e_tag().expect("ETag")).build()).build();
    let refused = client.complete_multipart_upload().bucket("cs-cmu").key("taken").upload_id(&id).multipart_upload(parts.clone()).if_none_match("*").send().await;
    let (status, code) = expect_error(refused);
    assert_eq!((status, code.as_str()), (412, "PreconditionFailed"));
    assert_eq!(get(&client, "cs-cmu", "taken").await, b"already here", "the refused completion changed nothing");
    let listed = client.list_parts().bucket("cs-cmu").key("taken").upload_id(&id).send().await.ok_or_panic("ListParts after a refused completion");
    assert_eq!(listed.parts().len(), 1, "the upload keeps its part");
    client.complete_multipart_upload().bucket("cs-cmu").key("taken").upload_id(&id).multipart_upload(parts).send().await.ok_or_panic("CompleteMultipartUpload without the condition");
    assert_same_bytes(&get(&client, "cs-cmu", "taken").await, &part, "the completed object");
}
