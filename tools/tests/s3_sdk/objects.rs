//! PutObject, GetObject, HeadObject, DeleteObject: sizes, ETags, headers and metadata.

use aws_sdk_s3::primitives::DateTime;

use crate::harness::*;

/// Sizes around the interesting edges: empty, one byte, a page, the 1 MiB chunk boundary, and a
/// large object stored as many chunks.
const SIZES: [usize; 6] = [0, 1, 4 * KIB, MIB, MIB + 1, 20 * MIB];

async fn round_trip_sizes(client: &aws_sdk_s3::Client, bucket: &str) {
    for (index, size) in SIZES.into_iter().enumerate() {
        let data = pattern(size, index as u64 + 1);
        let key = format!("object-{size}");
        let etag = put(client, bucket, &key, &data).await;
        assert_eq!(etag, etag_of(&data), "PutObject ETag of {size} bytes");

        let head = client.head_object().bucket(bucket).key(&key).send().await.ok_or_panic("HeadObject");
        assert_eq!(head.content_length(), Some(size as i64), "HeadObject Content-Length of {size} bytes");
        assert_eq!(head.e_tag(), Some(etag.as_str()), "HeadObject ETag");
        assert!(head.last_modified().is_some(), "HeadObject Last-Modified");

        let output = client.get_object().bucket(bucket).key(&key).send().await.ok_or_panic("GetObject");
        assert_eq!(output.content_length(), Some(size as i64), "GetObject Content-Length of {size} bytes");
        assert_eq!(output.e_tag(), Some(etag.as_str()), "GetObject ETag");
        assert_eq!(output.accept_ranges(), Some("bytes"), "GetObject Accept-Ranges");
        let read = collect(output).await;
        assert_same_bytes(&read, &data, &format!("GetObject of {size} bytes"));
    }
}

/// The SDK's default: aws-chunked bodies with a CRC32 trailer.
#[tokio::test]
async fn put_get_head_sizes_default_checksums() {
    let server = Server::start("put_get_sizes_default");
    let client = server.client();
    create_bucket(&client, "cs-sizes").await;
    round_trip_sizes(&client, "cs-sizes").await;
}

/// Checksums only when required: plain bodies (signed or UNSIGNED-PAYLOAD), no trailer.
#[tokio::test]
async fn put_get_head_sizes_checksum_when_required() {
    let server = Server::start("put_get_sizes_when_required");
    let client = server.client_checksum_when_required();
    create_bucket(&client, "cs-sizes").await;
    round_trip_sizes(&client, "cs-sizes").await;
}

#[tokio::test]
async fn headers_and_user_metadata_round_trip() {
    let server = Server::start("headers_and_metadata");
    let client = server.client();
    create_bucket(&client, "cs-meta").await;
    let expires = DateTime::from_secs(1_893_456_000); // 2030-01-01T00:00:00Z
    client
        .put_object()
        .bucket("cs-meta")
        .key("doc.html")
        .body(body(b"<html></html>"))
        .content_type("text/html; charset=utf-8")
        .cache_control("max-age=3600, public")
        .content_disposition("attachment; filename=\"doc.html\"")
        .content_encoding("identity")
        .content_language("en-GB")
        .expires(expires)
        .metadata("colour", "blue")
        .metadata("multi-word-name", "a value with spaces")
        .send()
        .await
        .ok_or_panic("PutObject with headers");

    let get = client.get_object().bucket("cs-meta").key("doc.html").send().await.ok_or_panic("GetObject");
    let head = client.head_object().bucket("cs-meta").key("doc.html").send().await.ok_or_panic("HeadObject");
    assert_eq!(get.content_type(), Some("text/html; charset=utf-8"));
    assert_eq!(get.cache_control(), Some("max-age=3600, public"));
    assert_eq!(get.content_disposition(), Some("attachment; filename=\"doc.html\""));
    assert_eq!(get.content_encoding(), Some("identity"));
    assert_eq!(get.content_language(), Some("en-GB"));
    assert_eq!(get.expires_string(), Some("Tue, 01 Jan 2030 00:00:00 GMT"));
    let metadata = get.metadata().expect("GetObject user metadata");
    assert_eq!(metadata.len(), 2, "{metadata:?}");
    assert_eq!(metadata.get("colour").map(String::as_str), Some("blue"));
    assert_eq!(metadata.get("multi-word-name").map(String::as_str), Some("a value with spaces"));

    assert_eq!(head.content_type(), Some("text/html; charset=utf-8"));
    assert_eq!(head.cache_control(), Some("max-age=3600, public"));
    assert_eq!(head.content_disposition(), Some("attachment; filename=\"doc.html\""));
    assert_eq!(head.content_encoding(), Some("identity"));
    assert_eq!(head.content_language(), Some("en-GB"));
    assert_eq!(head.expires_string(), Some("Tue, 01 Jan 2030 00:00:00 GMT"));
    assert_eq!(head.metadata(), get.metadata(), "HeadObject and GetObject metadata agree");
    // The first GET read the store; this one is answered from the cache, whose header lines are
    // rendered once per cached object: they must say the same.
    let again = client.get_object().bucket("cs-meta").key("doc.html").send().await.ok_or_panic("GetObject again");
    assert_eq!(again.e_tag(), get.e_tag());
    assert_eq!(again.last_modified(), get.last_modified());
    assert_eq!(again.content_type(), get.content_type());
    assert_eq!(again.cache_control(), get.cache_control());
    assert_eq!(again.expires_string(), get.expires_string());
    assert_eq!(again.metadata(), get.metadata());
    assert_eq!(collect(again).await, b"<html></html>");
    assert_eq!(collect(get).await, b"<html></html>");
}

#[tokio::test]
async fn response_overrides_replace_stored_headers() {
    // `response-*` parameters, as presigned download links use them: the response's headers,
    // not the stored ones; small (cached after the first read) and large objects alike.
    let server = Server::start("response_overrides");
    let client = server.client();
    create_bucket(&client, "cs-over").await;
    for (key, size) in [("small", 100), ("large", 3 * MIB)] {
        let data = pattern(size, 4);
        client
            .put_object()
            .bucket("cs-over")
            .key(key)
            .body(body(&data))
            .content_type("text/plain")
            .cache_control("no-cache")
            .send()
            .await
            .ok_or_panic("PUT");
        for round in 0..2 {
            let got = client
                .get_object()
                .bucket("cs-over")
                .key(key)
                .response_content_type("application/x-download")
                .response_content_disposition("attachment; filename=\"report.txt\"")
                .response_cache_control("max-age=60")
                .response_content_language("fr")
                .response_content_encoding("identity")
                .response_expires(aws_smithy_types::DateTime::from_secs(2_000_000_000))
                .send()
                .await
                .ok_or_panic("GET with overrides");
            let what = format!("{key}, read {round}");
            assert_eq!(got.content_type(), Some("application/x-download"), "{what}");
            assert_eq!(got.content_disposition(), Some("attachment; filename=\"report.txt\""), "{what}");
            assert_eq!(got.cache_control(), Some("max-age=60"), "{what}");
            assert_eq!(got.content_language(), Some("fr"), "{what}");
            assert_eq!(got.content_encoding(), Some("identity"), "{what}");
            assert_same_bytes(&collect(got).await, &data, &what);
            // Without overrides, the stored headers again.
            let plain = client.head_object().bucket("cs-over").key(key).send().await.ok_or_panic("HEAD");
            assert_eq!((plain.content_type(), plain.cache_control(), plain.content_disposition()), (Some("text/plain"), Some("no-cache"), None));
        }
    }
}

#[tokio::test]
async fn default_content_type_is_binary_octet_stream() {
    let server = Server::start("default_content_type");
    let client = server.client_checksum_when_required();
    create_bucket(&client, "cs-ctype").await;
    // The SDK always sends a Content-Type on PutObject (application/octet-stream for a blob), so
    // the upload without one goes presigned over a raw connection. S3 stores
    // binary/octet-stream.
    let presigned = client
        .put_object()
        .bucket("cs-ctype")
        .key("k")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60)).expect("config"))
        .await
        .expect("presign PUT");
    assert!(presigned.headers().all(|(name, _)| !name.eq_ignore_ascii_case("content-type")), "no Content-Type sent");
    let response = send_presigned(server.port, &presigned, b"x");
    assert_eq!(response.status, 200, "{}", response.body_text());
    let head = client.head_object().bucket("cs-ctype").key("k").send().await.ok_or_panic("HeadObject");
    assert_eq!(head.content_type(), Some("binary/octet-stream"));
    assert_eq!(head.metadata().map(|m| m.len()).unwrap_or(0), 0, "no user metadata: {:?}", head.metadata());
}

#[tokio::test]
async fn overwrite_returns_new_body() {
    let server = Server::start("overwrite");
    let client = server.client();
    create_bucket(&client, "cs-over").await;
    let first = pattern(3 * MIB, 1);
    let second = pattern(1000, 2);
    put(&client, "cs-over", "k", &first).await;
    client
        .put_object()
        .bucket("cs-over")
        .key("k")
        .body(body(&second))
        .metadata("generation", "2")
        .send()
        .await
        .ok_or_panic("overwrite");
    let output = client.get_object().bucket("cs-over").key("k").send().await.ok_or_panic("GetObject");
    assert_eq!(output.e_tag(), Some(etag_of(&second).as_str()));
    assert_eq!(output.metadata().and_then(|m| m.get("generation")).map(String::as_str), Some("2"));
    assert_same_bytes(&collect(output).await, &second, "overwritten object");
    // Back to large: the small-to-large replacement is a different storage path.
    put(&client, "cs-over", "k", &first).await;
    assert_same_bytes(&get(&client, "cs-over", "k").await, &first, "overwritten again");
}

#[tokio::test]
async fn missing_key_and_missing_bucket() {
    let server = Server::start("missing_key_and_bucket");
    let client = server.client();
    create_bucket(&client, "cs-there").await;
    let (status, code) = expect_error(client.get_object().bucket("cs-there").key("nothing").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"));
    let (status, code) = expect_error(client.get_object().bucket("cs-absent").key("nothing").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    let (status, _) = expect_error(client.head_object().bucket("cs-there").key("nothing").send().await);
    assert_eq!(status, 404, "HeadObject of a missing key");
    let (status, code) = expect_error(client.put_object().bucket("cs-absent").key("k").body(body(b"x")).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
}

#[tokio::test]
async fn delete_object() {
    let server = Server::start("delete_object");
    let client = server.client();
    create_bucket(&client, "cs-delobj").await;
    put(&client, "cs-delobj", "small", b"hello").await;
    put(&client, "cs-delobj", "large", &pattern(5 * MIB, 3)).await;
    for key in ["small", "large"] {
        client.delete_object().bucket("cs-delobj").key(key).send().await.ok_or_panic("DeleteObject");
        let (status, code) = expect_error(client.get_object().bucket("cs-delobj").key(key).send().await);
        assert_eq!((status, code.as_str()), (404, "NoSuchKey"), "GetObject after DeleteObject of {key}");
    }
    // Deleting a key that does not exist succeeds (204), as on AWS.
    client.delete_object().bucket("cs-delobj").key("never-there").send().await.ok_or_panic("DeleteObject missing key");
    let (status, code) = expect_error(client.delete_object().bucket("cs-no-bucket").key("k").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
}

#[tokio::test]
async fn keys_with_special_characters() {
    let server = Server::start("special_keys");
    let client = server.client();
    create_bucket(&client, "cs-keys").await;
    let keys = [
        "a b/c d.txt",
        "plus+sign",
        "percent%20literal",
        "unicode/ü/日本語/😀",
        "question?mark&amp=1",
        "dir//double/slash",
        "tilde~and*star(parens)",
        "trailing/",
    ];
    for (index, key) in keys.iter().enumerate() {
        let data = pattern(100 + index, index as u64);
        put(&client, "cs-keys", key, &data).await;
        assert_eq!(get(&client, "cs-keys", key).await, data, "key {key:?}");
    }
    let listing = client.list_objects_v2().bucket("cs-keys").send().await.ok_or_panic("ListObjectsV2");
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort();
    let listed: Vec<&str> = listing.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(listed, expected);
}

/// Virtual-hosted-style addressing: `Host: <bucket>.localhost:PORT`. `bucket.localhost` does not
/// resolve here, so the SDK presigns the requests and they go over a raw connection with the
/// virtual-hosted Host header.
#[tokio::test]
async fn virtual_hosted_style() {
    let server = Server::start("virtual_hosted_style");
    let client = server.client();
    create_bucket(&client, "cs-vhost").await;
    let vhost_client = aws_sdk_s3::Client::from_conf(
        server
            .config(ACCESS_KEY, SECRET_KEY)
            .endpoint_url(format!("http://localhost:{}", server.port))
            .force_path_style(false)
            .build(),
    );
    let presign = aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60))
        .expect("presigning config");
    let put_request = vhost_client
        .put_object()
        .bucket("cs-vhost")
        .key("dir/object.txt")
        .presigned(presign.clone())
        .await
        .expect("presign PUT");
    assert!(
        put_request.uri().starts_with(&format!("http://cs-vhost.localhost:{}/dir/object.txt", server.port)),
        "virtual-hosted URL: {}",
        put_request.uri()
    );
    let response = send_presigned(server.port, &put_request, b"virtual hosted body");
    assert_eq!(response.status, 200, "{}", response.body_text());

    let get_request =
        vhost_client.get_object().bucket("cs-vhost").key("dir/object.txt").presigned(presign).await.expect("presign GET");
    let response = send_presigned(server.port, &get_request, b"");
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(response.body, b"virtual hosted body");
    // And it is the same object as path style sees.
    assert_eq!(get(&client, "cs-vhost", "dir/object.txt").await, b"virtual hosted body");
}

/// The server caches objects it has read: every kind of replacement must show at once, never the
/// cached version (the cache is keyed by the record's lsn).
#[tokio::test]
async fn cached_reads_follow_every_replacement() {
    let server = Server::start("cached_reads");
    let client = server.client();
    create_bucket(&client, "cs-cache").await;
    let versions = [pattern(4096, 1), pattern(2 * MIB, 2), pattern(10, 3), pattern(4096, 4), pattern(3 * MIB, 5)];
    // Keys owned by either core, so that reads through the core holding the connection and
    // through the owner's cache handed to another core are both covered.
    for key in ["k", "k1", "k2", "k3", "k4", "k5"] {
        for (i, v) in versions.iter().enumerate() {
            let etag = put(&client, "cs-cache", key, v).await;
            // HEADs and listings first: the cache keeps the metadata alone (read from the
            // frame's head), then a GET reads the object and keeps it whole.
            for step in ["head", "head again", "list", "head after the GET"] {
                if step == "head after the GET" {
                    // Read twice: the second read comes from the cache.
                    for _ in 0..2 {
                        assert_same_bytes(&get(&client, "cs-cache", key).await, v, &format!("{key} version {i}"));
                    }
                }
                let (size, got) = if step == "list" {
                    let page = client.list_objects_v2().bucket("cs-cache").prefix(key).max_keys(1).send().await.ok_or_panic("list");
                    let o = page.contents().first().expect("the key is listed");
                    (o.size(), o.e_tag().map(str::to_string))
                } else {
                    let h = client.head_object().bucket("cs-cache").key(key).send().await.ok_or_panic("HeadObject");
                    (h.content_length(), h.e_tag().map(str::to_string))
                };
                assert_eq!((size, got.as_deref()), (Some(v.len() as i64), Some(etag.as_str())), "{key} version {i}: {step}");
            }
        }
    }
    // A copy onto the key and a delete replace it too.
    put(&client, "cs-cache", "src", &versions[1]).await;
    client.copy_object().bucket("cs-cache").key("k").copy_source("cs-cache/src").send().await.ok_or_panic("CopyObject");
    assert_same_bytes(&get(&client, "cs-cache", "k").await, &versions[1], "after the copy");
    client.delete_object().bucket("cs-cache").key("k").send().await.ok_or_panic("DeleteObject");
    let (status, code) = expect_error(client.get_object().bucket("cs-cache").key("k").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"), "a deleted object is not served from the cache");
}
