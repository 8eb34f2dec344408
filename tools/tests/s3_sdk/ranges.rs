//! Range GETs: first/last bytes, open-ended, suffix, across chunk boundaries, unsatisfiable.

use crate::harness::*;

/// `Range` header → expected (first, last) inclusive offsets for an object of `size` bytes.
fn check_range(range: &str, size: usize) -> (usize, usize) {
    let spec = range.strip_prefix("bytes=").expect("bytes= range");
    let (start, end) = spec.split_once('-').expect("a dash");
    if start.is_empty() {
        let suffix: usize = end.parse().expect("suffix length");
        (size - suffix.min(size), size - 1)
    } else {
        let start: usize = start.parse().expect("start");
        let end = if end.is_empty() { size - 1 } else { end.parse::<usize>().expect("end").min(size - 1) };
        (start, end)
    }
}

async fn expect_range(client: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8], range: &str) {
    let (first, last) = check_range(range, data.len());
    let output = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(range)
        .send()
        .await
        .ok_or_panic(&format!("GetObject {key} {range}"));
    let content_range = format!("bytes {first}-{last}/{}", data.len());
    assert_eq!(output.content_range(), Some(content_range.as_str()), "Content-Range for {range}");
    assert_eq!(output.content_length(), Some((last - first + 1) as i64), "Content-Length for {range}");
    assert_eq!(output.e_tag(), Some(etag_of(data).as_str()), "a range reply carries the whole object's ETag");
    let read = collect(output).await;
    assert_same_bytes(&read, &data[first..=last], &format!("{key} {range}"));
}

#[tokio::test]
async fn ranges_of_a_small_object() {
    let server = Server::start("ranges_small");
    let client = server.client();
    create_bucket(&client, "cs-range").await;
    let data = pattern(100, 1);
    put(&client, "cs-range", "small", &data).await;
    for range in ["bytes=0-9", "bytes=10-", "bytes=-5", "bytes=0-0", "bytes=99-99", "bytes=90-1000", "bytes=-1000"] {
        expect_range(&client, "cs-range", "small", &data, range).await;
    }
    // The status is 206 Partial Content; the SDK hides it, so check it on the wire once.
    let response = raw_get_with_range(&server, "cs-range", "small", "bytes=0-9").await;
    assert_eq!(response.status, 206);
    assert_eq!(response.header("content-range"), Some("bytes 0-9/100"));
    assert_eq!(response.body, &data[0..10]);
}

#[tokio::test]
async fn ranges_across_chunk_boundaries_of_a_large_object() {
    let server = Server::start("ranges_large");
    let client = server.client();
    create_bucket(&client, "cs-range").await;
    let data = pattern(20 * MIB, 2);
    put(&client, "cs-range", "large", &data).await;
    let ranges = [
        "bytes=0-9".to_string(),
        "bytes=1048570-1048590".to_string(),                  // across the 1 MiB boundary
        format!("bytes={}-{}", 4 * MIB - 3, 4 * MIB + 2),     // across 4 MiB
        format!("bytes={}-{}", 4 * MIB, 4 * MIB),             // the first byte after 4 MiB
        format!("bytes={}-{}", 3 * MIB + 5, 9 * MIB + 7),     // many chunks
        format!("bytes={}-", 20 * MIB - 10),                  // the tail
        "bytes=-1048577".to_string(),                         // suffix of a chunk and a byte
    ];
    for range in &ranges {
        expect_range(&client, "cs-range", "large", &data, range).await;
    }
}

/// An object that fits one record but not one send with its head (above 64 KiB): once the
/// per-core cache holds it, whole and ranged GETs go out straight from the cached bytes.
#[tokio::test]
async fn cached_medium_object_whole_and_ranged() {
    let server = Server::start("ranges_cached");
    let client = server.client();
    create_bucket(&client, "cs-range").await;
    let data = pattern(300 * 1024, 4);
    put(&client, "cs-range", "medium", &data).await;
    // The first GET reads the store and fills the cache; the rest come from the cache.
    for round in 0..3 {
        let output = client.get_object().bucket("cs-range").key("medium").send().await.ok_or_panic("GetObject medium");
        assert_same_bytes(&collect(output).await, &data, &format!("medium, GET {round}"));
    }
    for range in ["bytes=0-70000", "bytes=100-200000", "bytes=-90000", "bytes=5-5", "bytes=65536-"] {
        expect_range(&client, "cs-range", "medium", &data, range).await;
    }
}

#[tokio::test]
async fn unsatisfiable_range_is_invalid_range() {
    let server = Server::start("ranges_invalid");
    let client = server.client();
    create_bucket(&client, "cs-range").await;
    put(&client, "cs-range", "small", &pattern(100, 3)).await;
    for range in ["bytes=100-", "bytes=100-200", "bytes=5000-6000"] {
        let (status, code) = expect_error(client.get_object().bucket("cs-range").key("small").range(range).send().await);
        assert_eq!((status, code.as_str()), (416, "InvalidRange"), "range {range}");
    }
    let response = raw_get_with_range(&server, "cs-range", "small", "bytes=100-").await;
    assert_eq!(response.status, 416);
    assert_eq!(xml_element(&response.body_text(), "Code"), Some("InvalidRange"), "{}", response.body_text());
    // Empty object: any byte range is unsatisfiable.
    put(&client, "cs-range", "empty", b"").await;
    let (status, code) = expect_error(client.get_object().bucket("cs-range").key("empty").range("bytes=0-0").send().await);
    assert_eq!((status, code.as_str()), (416, "InvalidRange"), "range of an empty object");
}

/// A presigned GET with a Range header, over a raw connection, to see status and headers.
async fn raw_get_with_range(server: &Server, bucket: &str, key: &str, range: &str) -> RawResponse {
    let presigned = server
        .client()
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(range)
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60)).expect("config"),
        )
        .await
        .expect("presign GetObject with Range");
    send_presigned(server.port, &presigned, b"")
}
