//! CopyObject: within and across buckets, metadata directives, large sources, missing sources.

use aws_sdk_s3::types::MetadataDirective;

use crate::harness::*;

async fn put_with_metadata(client: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body(data))
        .content_type("text/plain")
        .metadata("origin", "source")
        .send()
        .await
        .ok_or_panic("PutObject source");
}

#[tokio::test]
async fn copy_same_bucket_and_across_buckets_keeps_metadata() {
    let server = Server::start("copy_keep_metadata");
    let client = server.client();
    create_bucket(&client, "cs-src").await;
    create_bucket(&client, "cs-dst").await;
    let data = pattern(12_345, 5);
    put_with_metadata(&client, "cs-src", "dir/source key", &data).await;

    for (bucket, key) in [("cs-src", "copy-here"), ("cs-dst", "copied/there")] {
        // The SDK does not encode CopySource; the caller URL-encodes the key.
        let output = client
            .copy_object()
            .bucket(bucket)
            .key(key)
            .copy_source("cs-src/dir/source%20key")
            .send()
            .await
            .ok_or_panic(&format!("CopyObject to {bucket}/{key}"));
        let result = output.copy_object_result().expect("CopyObjectResult");
        assert_eq!(result.e_tag(), Some(etag_of(&data).as_str()), "copy ETag");
        assert!(result.last_modified().is_some());

        let get = client.get_object().bucket(bucket).key(key).send().await.ok_or_panic("GetObject copy");
        assert_eq!(get.content_type(), Some("text/plain"), "COPY keeps Content-Type");
        assert_eq!(get.metadata().and_then(|m| m.get("origin")).map(String::as_str), Some("source"));
        assert_same_bytes(&collect(get).await, &data, "copy body");
    }
    // The source is untouched.
    assert_same_bytes(&get(&client, "cs-src", "dir/source key").await, &data, "source after copy");
}

#[tokio::test]
async fn copy_with_replace_directive() {
    let server = Server::start("copy_replace_metadata");
    let client = server.client();
    create_bucket(&client, "cs-src").await;
    put_with_metadata(&client, "cs-src", "src", b"payload").await;
    client
        .copy_object()
        .bucket("cs-src")
        .key("dst")
        .copy_source("cs-src/src")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("application/json")
        .metadata("origin", "replaced")
        .metadata("extra", "1")
        .send()
        .await
        .ok_or_panic("CopyObject REPLACE");
    let head = client.head_object().bucket("cs-src").key("dst").send().await.ok_or_panic("HeadObject");
    assert_eq!(head.content_type(), Some("application/json"));
    let metadata = head.metadata().expect("metadata");
    assert_eq!(metadata.len(), 2, "{metadata:?}");
    assert_eq!(metadata.get("origin").map(String::as_str), Some("replaced"));
    assert_eq!(metadata.get("extra").map(String::as_str), Some("1"));

    // Copying an object onto itself without changing anything is refused...
    let (status, code) =
        expect_error(client.copy_object().bucket("cs-src").key("src").copy_source("cs-src/src").send().await);
    assert_eq!((status, code.as_str()), (400, "InvalidRequest"), "self-copy without REPLACE");
    // ...but with REPLACE it rewrites the metadata in place.
    client
        .copy_object()
        .bucket("cs-src")
        .key("src")
        .copy_source("cs-src/src")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("origin", "self")
        .send()
        .await
        .ok_or_panic("self-copy with REPLACE");
    let head = client.head_object().bucket("cs-src").key("src").send().await.ok_or_panic("HeadObject");
    assert_eq!(head.metadata().and_then(|m| m.get("origin")).map(String::as_str), Some("self"));
    assert_eq!(get(&client, "cs-src", "src").await, b"payload");
}

#[tokio::test]
async fn copy_large_object() {
    let server = Server::start("copy_large");
    let client = server.client();
    create_bucket(&client, "cs-src").await;
    create_bucket(&client, "cs-dst").await;
    let data = pattern(20 * MIB, 6);
    put(&client, "cs-src", "big", &data).await;
    let output = client
        .copy_object()
        .bucket("cs-dst")
        .key("big-copy")
        .copy_source("cs-src/big")
        .send()
        .await
        .ok_or_panic("CopyObject 20 MiB");
    assert_eq!(output.copy_object_result().and_then(|r| r.e_tag()), Some(etag_of(&data).as_str()));
    assert_same_bytes(&get(&client, "cs-dst", "big-copy").await, &data, "20 MiB copy");
    // Deleting the source leaves the copy whole (no shared chunks freed under it).
    client.delete_object().bucket("cs-src").key("big").send().await.ok_or_panic("DeleteObject source");
    assert_same_bytes(&get(&client, "cs-dst", "big-copy").await, &data, "copy after source delete");
}

#[tokio::test]
async fn copy_missing_source() {
    let server = Server::start("copy_missing_source");
    let client = server.client();
    create_bucket(&client, "cs-src").await;
    let (status, code) =
        expect_error(client.copy_object().bucket("cs-src").key("dst").copy_source("cs-src/absent").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"));
    let (status, code) =
        expect_error(client.copy_object().bucket("cs-src").key("dst").copy_source("cs-gone/absent").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
}
