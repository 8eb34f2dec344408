//! Object and bucket tagging: Put/Get/Delete{Object,Bucket}Tagging, `x-amz-tagging` on PUT,
//! multipart create and copy (with `x-amz-tagging-directive`), `x-amz-tagging-count`, S3's
//! limits, and that a tag change keeps the object's data, ETag and time, through a restart.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging, TaggingDirective};

use crate::harness::*;

const MIB: usize = 1 << 20;

fn tag_set(pairs: &[(&str, &str)]) -> Tagging {
    let tags = pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build().expect("tag"));
    Tagging::builder().set_tag_set(Some(tags.collect())).build().expect("tagging")
}

async fn tags_of(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<(String, String)> {
    let out = client.get_object_tagging().bucket(bucket).key(key).send().await.ok_or_panic("GetObjectTagging");
    out.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn object_tags_round_trip_and_keep_the_object() {
    let server = Server::start("tagging_object");
    let client = server.client();
    create_bucket(&client, "tags").await;
    // Small (one record) and large (chunks and a manifest): both keep their bytes.
    let small = pattern(3000, 1);
    let large = pattern(3 * MIB + 17, 2);
    for (key, data) in [("small", &small), ("large", &large)] {
        let etag = put(&client, "tags", key, data).await;
        assert_eq!(tags_of(&client, "tags", key).await, Vec::new(), "{key}: no tags yet");
        let before = client.head_object().bucket("tags").key(key).send().await.ok_or_panic("HEAD before");

        client
            .put_object_tagging()
            .bucket("tags")
            .key(key)
            .tagging(tag_set(&[("Project", "corestore"), ("Environment", "Test"), ("empty", "")]))
            .send()
            .await
            .ok_or_panic("PutObjectTagging");
        // Answered in key order.
        assert_eq!(tags_of(&client, "tags", key).await, owned(&[("Environment", "Test"), ("Project", "corestore"), ("empty", "")]));

        let got = client.get_object().bucket("tags").key(key).send().await.ok_or_panic("GET tagged");
        assert_eq!(got.tag_count(), Some(3), "{key}: x-amz-tagging-count");
        assert_eq!(got.e_tag(), Some(etag.as_str()), "{key}: a tag change keeps the ETag");
        assert_eq!(got.last_modified(), before.last_modified(), "{key}: and the modification time");
        assert_same_bytes(&collect(got).await, data, &format!("{key} after tagging"));

        // Replace, then delete.
        client.put_object_tagging().bucket("tags").key(key).tagging(tag_set(&[("one", "1")])).send().await.ok_or_panic("replace tags");
        assert_eq!(tags_of(&client, "tags", key).await, owned(&[("one", "1")]));
        client.delete_object_tagging().bucket("tags").key(key).send().await.ok_or_panic("DeleteObjectTagging");
        assert_eq!(tags_of(&client, "tags", key).await, Vec::new());
        let got = client.get_object().bucket("tags").key(key).send().await.ok_or_panic("GET untagged");
        assert_eq!(got.tag_count(), None, "{key}: no count without tags");
        client.put_object_tagging().bucket("tags").key(key).tagging(tag_set(&[("kept", "yes")])).send().await.ok_or_panic("tag again");
    }

    // Tags and data survive a restart (the rewritten record is what recovery finds).
    let dir = server.stop();
    let server = Server::start_on(dir);
    let client = server.client();
    for (key, data) in [("small", &small), ("large", &large)] {
        assert_eq!(tags_of(&client, "tags", key).await, owned(&[("kept", "yes")]), "{key} after restart");
        assert_same_bytes(&get(&client, "tags", key).await, data, &format!("{key} after restart"));
    }

    // An overwrite replaces the tags with the new PUT's (none here).
    put(&client, "tags", "small", b"new").await;
    assert_eq!(tags_of(&client, "tags", "small").await, Vec::new(), "an overwrite drops the old tags");
    let (status, code) = expect_error(client.get_object_tagging().bucket("tags").key("missing").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"));
    let (status, code) = expect_error(client.put_object_tagging().bucket("tags").key("missing").tagging(tag_set(&[("a", "b")])).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"));
}

#[tokio::test]
async fn tagging_header_on_put_multipart_and_copy() {
    let server = Server::start("tagging_header");
    let client = server.client();
    create_bucket(&client, "tagh").await;
    client
        .put_object()
        .bucket("tagh")
        .key("put")
        .body(body(b"x"))
        .tagging("b=2&a=1&c%20d=e+f&novalue")
        .send()
        .await
        .ok_or_panic("PUT with x-amz-tagging");
    let put_tags = owned(&[("a", "1"), ("b", "2"), ("c d", "e f"), ("novalue", "")]);
    assert_eq!(tags_of(&client, "tagh", "put").await, put_tags);

    // A multipart upload's tags are the create's.
    let upload = client.create_multipart_upload().bucket("tagh").key("mp").tagging("from=create").send().await.ok_or_panic("create");
    let id = upload.upload_id().expect("upload id");
    let part = client
        .upload_part()
        .bucket("tagh")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(body(&pattern(MIB, 3)))
        .send()
        .await
        .ok_or_panic("part");
    let done = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).set_e_tag(part.e_tag().map(str::to_string)).build())
        .build();
    client.complete_multipart_upload().bucket("tagh").key("mp").upload_id(id).multipart_upload(done).send().await.ok_or_panic("complete");
    assert_eq!(tags_of(&client, "tagh", "mp").await, owned(&[("from", "create")]));

    // A copy keeps the source's tags unless told to replace them.
    client.copy_object().bucket("tagh").key("copy").copy_source("tagh/put").send().await.ok_or_panic("copy");
    assert_eq!(tags_of(&client, "tagh", "copy").await, put_tags);
    client
        .copy_object()
        .bucket("tagh")
        .key("copy2")
        .copy_source("tagh/put")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("new=tag")
        .send()
        .await
        .ok_or_panic("copy REPLACE");
    assert_eq!(tags_of(&client, "tagh", "copy2").await, owned(&[("new", "tag")]));
}

#[tokio::test]
async fn tag_limits_are_s3s() {
    let server = Server::start("tagging_limits");
    let client = server.client();
    create_bucket(&client, "tagl").await;
    put(&client, "tagl", "o", b"data").await;
    let ten: Vec<(String, String)> = (0..10).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
    let ten_refs: Vec<(&str, &str)> = ten.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    client.put_object_tagging().bucket("tagl").key("o").tagging(tag_set(&ten_refs)).send().await.ok_or_panic("10 tags");
    let key128 = "k".repeat(128);
    let value256 = "v".repeat(256);
    client
        .put_object_tagging()
        .bucket("tagl")
        .key("o")
        .tagging(tag_set(&[(&key128, &value256)]))
        .send()
        .await
        .ok_or_panic("longest key and value");

    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), String::new())).collect();
    let eleven_refs: Vec<(&str, &str)> = eleven.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let key129 = "k".repeat(129);
    let value257 = "v".repeat(257);
    for (what, tags) in [
        ("11 tags", eleven_refs),
        ("a 129-character key", vec![(key129.as_str(), "v")]),
        ("a 257-character value", vec![("k", value257.as_str())]),
        ("a repeated key", vec![("k", "1"), ("k", "2")]),
    ] {
        let (status, code) = expect_error(client.put_object_tagging().bucket("tagl").key("o").tagging(tag_set(&tags)).send().await);
        assert_eq!((status, code.as_str()), (400, "InvalidTag"), "{what}");
    }
    // Nothing refused changed the stored tags.
    assert_eq!(tags_of(&client, "tagl", "o").await, vec![(key128.clone(), value256.clone())]);
    let (status, code) = expect_error(client.put_object().bucket("tagl").key("p").body(body(b"x")).tagging("a=1&a=2").send().await);
    assert_eq!((status, code.as_str()), (400, "InvalidTag"), "x-amz-tagging with a repeated key");
    let (status, _) = expect_error(client.head_object().bucket("tagl").key("p").send().await);
    assert_eq!(status, 404, "a PUT refused for its tags stores nothing");
}

#[tokio::test]
async fn bucket_tags_round_trip() {
    let server = Server::start("tagging_bucket");
    let client = server.client();
    create_bucket(&client, "tagb").await;
    let (status, code) = expect_error(client.get_bucket_tagging().bucket("tagb").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchTagSet"), "a bucket starts without a tag set");
    client
        .put_bucket_tagging()
        .bucket("tagb")
        .tagging(tag_set(&[("team", "storage"), ("cost-center", "42")]))
        .send()
        .await
        .ok_or_panic("PutBucketTagging");
    let read = |client: aws_sdk_s3::Client| async move {
        let out = client.get_bucket_tagging().bucket("tagb").send().await.ok_or_panic("GetBucketTagging");
        out.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect::<Vec<_>>()
    };
    assert_eq!(read(client.clone()).await, owned(&[("cost-center", "42"), ("team", "storage")]));
    // Tags and the ACL are one stored description: changing one keeps the other.
    client.put_bucket_acl().bucket("tagb").acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead).send().await.ok_or_panic("ACL");
    assert_eq!(read(client.clone()).await, owned(&[("cost-center", "42"), ("team", "storage")]), "after an ACL change");

    let fifty_one: Vec<(String, String)> = (0..51).map(|i| (format!("k{i}"), String::new())).collect();
    let refs: Vec<(&str, &str)> = fifty_one.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, code) = expect_error(client.put_bucket_tagging().bucket("tagb").tagging(tag_set(&refs)).send().await);
    assert_eq!((status, code.as_str()), (400, "InvalidTag"), "51 bucket tags");

    let dir = server.stop();
    let server = Server::start_on(dir);
    let client = server.client();
    assert_eq!(read(client.clone()).await, owned(&[("cost-center", "42"), ("team", "storage")]), "after a restart");
    client.delete_bucket_tagging().bucket("tagb").send().await.ok_or_panic("DeleteBucketTagging");
    let (status, code) = expect_error(client.get_bucket_tagging().bucket("tagb").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchTagSet"));
    // Another user sees neither the bucket's tags nor its objects' (private until policies exist).
    put(&client, "tagb", "o", b"x").await;
    server.admin(&["user", "add", "--access-key", "OTHERUSER", "--secret-key", "othersecretothersecret"]);
    let other = server.client_as("OTHERUSER", "othersecretothersecret");
    let (status, code) = expect_error(other.put_object_tagging().bucket("tagb").key("o").tagging(tag_set(&[("a", "b")])).send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
    let (status, code) = expect_error(other.put_bucket_tagging().bucket("tagb").tagging(tag_set(&[("a", "b")])).send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
}

#[tokio::test]
async fn non_ascii_metadata_comes_back_rfc2047_encoded() {
    let server = Server::start("tagging_non_ascii_meta");
    let client = server.client();
    create_bucket(&client, "meta").await;
    // The SDK refuses to send a header that is not ASCII; botocore and curl send UTF-8 as it
    // is. So this PUT is signed by hand and sent raw.
    let creds = s3front::sigv4::client::Credentials { access_key: ACCESS_KEY.into(), secret_key: SECRET_KEY.into(), region: REGION.into() };
    let host = format!("127.0.0.1:{}", server.port);
    let mut headers = vec![("host".to_string(), host), ("x-amz-meta-greeting".to_string(), "你好，世界".to_string())];
    headers.extend(s3front::sigv4::client::sign_headers(&creds, "PUT", "/meta/k", "", &headers, "UNSIGNED-PAYLOAD", unix_now()));
    let refs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let put = raw_request(server.port, "PUT", "/meta/k", &refs, b"body");
    assert_eq!(put.status, 200, "{}", put.body_text());
    // As S3 answers (and s3s-e2e expects): RFC 2047, which the SDK hands back as it came.
    let encoded = "=?UTF-8?B?5L2g5aW977yM5LiW55WM?=";
    let head = client.head_object().bucket("meta").key("k").send().await.ok_or_panic("HEAD");
    assert_eq!(head.metadata().and_then(|m| m.get("greeting")).map(String::as_str), Some(encoded));
    let got = client.get_object().bucket("meta").key("k").send().await.ok_or_panic("GET");
    assert_eq!(got.metadata().and_then(|m| m.get("greeting")).map(String::as_str), Some(encoded));
}
