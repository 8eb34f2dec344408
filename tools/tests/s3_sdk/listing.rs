//! ListObjectsV2, ListObjects (v1) and ListObjectVersions: order, pagination, prefixes,
//! delimiters, start-after, URL encoding.

use aws_sdk_s3::types::{EncodingType, ObjectStorageClass};

use crate::harness::*;

/// Puts `keys` with small bodies (the key itself), 16 requests in flight.
pub async fn put_many(client: &aws_sdk_s3::Client, bucket: &str, keys: &[String]) {
    let mut pending = tokio::task::JoinSet::new();
    for key in keys {
        if pending.len() >= 16 {
            pending.join_next().await.expect("a task").expect("put task");
        }
        let (client, bucket, key) = (client.clone(), bucket.to_string(), key.clone());
        pending.spawn(async move {
            put(&client, &bucket, &key, key.as_bytes()).await;
        });
    }
    while let Some(done) = pending.join_next().await {
        done.expect("put task");
    }
}

/// 2500 keys in a scrambled insertion order; they hash to both cores.
fn many_keys() -> Vec<String> {
    (0..2500u32).map(|i| format!("obj/{:05}", (i * 7919) % 2500)).collect()
}

async fn walk_v2(client: &aws_sdk_s3::Client, bucket: &str, page_size: i32) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(page_size)
            .set_continuation_token(token.clone())
            .send()
            .await
            .ok_or_panic("ListObjectsV2 page");
        pages += 1;
        assert!(page.contents().len() <= page_size as usize, "page {pages} longer than max-keys");
        assert_eq!(page.key_count(), Some(page.contents().len() as i32), "KeyCount of page {pages}");
        assert_eq!(page.max_keys(), Some(page_size));
        assert_eq!(page.continuation_token(), token.as_deref(), "ContinuationToken echoed");
        keys.extend(page.contents().iter().map(|o| o.key().expect("Key").to_string()));
        if page.is_truncated() == Some(true) {
            assert_eq!(page.contents().len(), page_size as usize, "a truncated page is full");
            token = Some(page.next_continuation_token().expect("NextContinuationToken when truncated").to_string());
        } else {
            assert_eq!(page.is_truncated(), Some(false), "IsTruncated present");
            assert_eq!(page.next_continuation_token(), None, "no NextContinuationToken on the last page");
            break;
        }
        assert!(pages < 10_000, "listing does not end");
    }
    (keys, pages)
}

async fn walk_v1(client: &aws_sdk_s3::Client, bucket: &str, page_size: i32) -> (Vec<String>, usize) {
    let mut keys: Vec<String> = Vec::new();
    let mut pages = 0;
    loop {
        let marker = keys.last().cloned();
        let page = client
            .list_objects()
            .bucket(bucket)
            .max_keys(page_size)
            .set_marker(marker.clone())
            .send()
            .await
            .ok_or_panic("ListObjects page");
        pages += 1;
        assert_eq!(page.marker().unwrap_or(""), marker.as_deref().unwrap_or(""), "Marker echoed");
        keys.extend(page.contents().iter().map(|o| o.key().expect("Key").to_string()));
        if page.is_truncated() != Some(true) {
            break;
        }
        assert_eq!(page.contents().len(), page_size as usize, "a truncated page is full");
        assert!(pages < 10_000, "listing does not end");
    }
    (keys, pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_of_2500_keys() {
    let server = Server::start("pagination_2500");
    let client = server.client_checksum_when_required();
    create_bucket(&client, "cs-list").await;
    let keys = many_keys();
    put_many(&client, "cs-list", &keys).await;
    let mut expected = keys.clone();
    expected.sort();

    let (listed, pages) = walk_v2(&client, "cs-list", 1000).await;
    assert_eq!(pages, 3);
    assert!(listed == expected, "V2 pages of 1000: {} keys, first difference at {:?}", listed.len(), first_diff(&listed, &expected));
    let (listed, pages) = walk_v2(&client, "cs-list", 7).await;
    assert_eq!(pages, 2500usize.div_ceil(7));
    assert!(listed == expected, "V2 pages of 7: first difference at {:?}", first_diff(&listed, &expected));

    let (listed, pages) = walk_v1(&client, "cs-list", 1000).await;
    assert_eq!(pages, 3);
    assert!(listed == expected, "V1 pages of 1000: first difference at {:?}", first_diff(&listed, &expected));

    // The default (and largest) page is 1000 keys.
    let page = client.list_objects_v2().bucket("cs-list").send().await.ok_or_panic("ListObjectsV2");
    assert_eq!(page.contents().len(), 1000);
    assert_eq!(page.is_truncated(), Some(true));
    let page = client.list_objects_v2().bucket("cs-list").max_keys(5000).send().await.ok_or_panic("ListObjectsV2");
    assert_eq!(page.contents().len(), 1000, "max-keys above 1000 is capped");
}

fn first_diff(listed: &[String], expected: &[String]) -> Option<(usize, Option<String>, Option<String>)> {
    let length = listed.len().max(expected.len());
    (0..length)
        .find(|&i| listed.get(i) != expected.get(i))
        .map(|i| (i, listed.get(i).cloned(), expected.get(i).cloned()))
}

const TREE: [&str; 8] = ["a.txt", "dir1/sub/z", "dir1/x", "dir1/y", "dir2/w", "e/f/g", "e/h", "zz"];

#[tokio::test]
async fn prefix_delimiter_and_common_prefixes() {
    let server = Server::start("prefix_delimiter");
    let client = server.client();
    create_bucket(&client, "cs-tree").await;
    let keys: Vec<String> = TREE.iter().rev().map(|k| k.to_string()).collect();
    put_many(&client, "cs-tree", &keys).await;

    let page = client.list_objects_v2().bucket("cs-tree").delimiter("/").send().await.ok_or_panic("delimiter /");
    assert_eq!(keys_of(page.contents()), ["a.txt", "zz"]);
    assert_eq!(prefixes_of(page.common_prefixes()), ["dir1/", "dir2/", "e/"]);
    assert_eq!(page.key_count(), Some(5), "KeyCount counts keys and common prefixes");
    assert_eq!(page.delimiter(), Some("/"));

    let page = client
        .list_objects_v2()
        .bucket("cs-tree")
        .prefix("dir1/")
        .delimiter("/")
        .send()
        .await
        .ok_or_panic("prefix dir1/");
    assert_eq!(keys_of(page.contents()), ["dir1/x", "dir1/y"]);
    assert_eq!(prefixes_of(page.common_prefixes()), ["dir1/sub/"]);
    assert_eq!(page.prefix(), Some("dir1/"));

    let page = client.list_objects_v2().bucket("cs-tree").prefix("dir").send().await.ok_or_panic("prefix dir");
    assert_eq!(keys_of(page.contents()), ["dir1/sub/z", "dir1/x", "dir1/y", "dir2/w"]);
    assert!(page.common_prefixes().is_empty());

    let page = client.list_objects_v2().bucket("cs-tree").prefix("nothing").send().await.ok_or_panic("prefix nothing");
    assert!(page.contents().is_empty());
    assert_eq!(page.key_count(), Some(0));
    assert_eq!(page.is_truncated(), Some(false));

    // Delimiter other than '/'.
    let page = client.list_objects_v2().bucket("cs-tree").delimiter("1").send().await.ok_or_panic("delimiter 1");
    assert_eq!(keys_of(page.contents()), ["a.txt", "dir2/w", "e/f/g", "e/h", "zz"]);
    assert_eq!(prefixes_of(page.common_prefixes()), ["dir1"]);

    // Pages of 2 with a delimiter: keys and common prefixes share max-keys, and a prefix is
    // never repeated on a later page.
    let mut entries = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket("cs-tree")
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token)
            .send()
            .await
            .ok_or_panic("delimiter pages");
        let mut here: Vec<String> = keys_of(page.contents());
        here.extend(prefixes_of(page.common_prefixes()));
        assert!(here.len() <= 2, "{here:?}");
        here.sort();
        entries.extend(here);
        if page.is_truncated() != Some(true) {
            break;
        }
        token = page.next_continuation_token().map(str::to_string);
    }
    assert_eq!(entries, ["a.txt", "dir1/", "dir2/", "e/", "zz"]);

    // V1 with a delimiter returns NextMarker when truncated.
    let page = client
        .list_objects()
        .bucket("cs-tree")
        .delimiter("/")
        .max_keys(2)
        .send()
        .await
        .ok_or_panic("ListObjects delimiter");
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(keys_of(page.contents()), ["a.txt"]);
    assert_eq!(prefixes_of(page.common_prefixes()), ["dir1/"]);
    assert_eq!(page.next_marker(), Some("dir1/"));
    let page = client
        .list_objects()
        .bucket("cs-tree")
        .delimiter("/")
        .marker("dir1/")
        .send()
        .await
        .ok_or_panic("ListObjects delimiter page 2");
    assert_eq!(keys_of(page.contents()), ["zz"]);
    assert_eq!(prefixes_of(page.common_prefixes()), ["dir2/", "e/"]);
}

#[tokio::test]
async fn start_after_and_object_fields() {
    let server = Server::start("start_after");
    let client = server.client();
    create_bucket(&client, "cs-tree").await;
    let keys: Vec<String> = TREE.iter().map(|k| k.to_string()).collect();
    put_many(&client, "cs-tree", &keys).await;

    let page = client.list_objects_v2().bucket("cs-tree").start_after("dir1/x").send().await.ok_or_panic("start-after");
    assert_eq!(keys_of(page.contents()), ["dir1/y", "dir2/w", "e/f/g", "e/h", "zz"]);
    assert_eq!(page.start_after(), Some("dir1/x"));
    let page = client.list_objects_v2().bucket("cs-tree").start_after("zzz").send().await.ok_or_panic("start-after end");
    assert!(page.contents().is_empty());
    let page =
        client.list_objects_v2().bucket("cs-tree").start_after("b").max_keys(1).send().await.ok_or_panic("start-after b");
    assert_eq!(keys_of(page.contents()), ["dir1/sub/z"]);

    // The fields of one entry.
    let page = client.list_objects_v2().bucket("cs-tree").prefix("a.txt").send().await.ok_or_panic("one key");
    let object = &page.contents()[0];
    assert_eq!(object.key(), Some("a.txt"));
    assert_eq!(object.size(), Some("a.txt".len() as i64));
    assert_eq!(object.e_tag(), Some(etag_of(b"a.txt").as_str()));
    assert_eq!(object.storage_class(), Some(&ObjectStorageClass::Standard));
    assert!(object.last_modified().is_some());
    assert!(object.owner().is_none(), "V2 lists no Owner unless fetch-owner=true");
    let page = client.list_objects_v2().bucket("cs-tree").prefix("a.txt").fetch_owner(true).send().await.ok_or_panic("fetch-owner");
    assert!(page.contents()[0].owner().and_then(|o| o.id()).is_some(), "fetch-owner=true lists the Owner");

    let (status, code) = expect_error(client.list_objects_v2().bucket("cs-none").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
}

#[tokio::test]
async fn encoding_type_url() {
    let server = Server::start("encoding_type_url");
    let client = server.client();
    create_bucket(&client, "cs-enc").await;
    let originals = ["dir one/a b", "plus+sign", "ünï/日本語", "percent%25", "amp&lt<gt>", "tab\there", "x"];
    let keys: Vec<String> = originals.iter().map(|k| k.to_string()).collect();
    put_many(&client, "cs-enc", &keys).await;
    let mut expected = keys.clone();
    expected.sort();

    // Without encoding the SDK reads the XML-escaped keys back exactly.
    let page = client.list_objects_v2().bucket("cs-enc").send().await.ok_or_panic("ListObjectsV2 plain");
    assert_eq!(keys_of(page.contents()), expected);

    let page = client
        .list_objects_v2()
        .bucket("cs-enc")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .ok_or_panic("ListObjectsV2 encoding-type=url");
    assert_eq!(page.encoding_type(), Some(&EncodingType::Url));
    let encoded = keys_of(page.contents());
    for key in &encoded {
        assert!(!key.contains(' ') && !key.contains('\t'), "spaces and controls are encoded: {key:?}");
        assert!(key.is_ascii(), "non-ASCII is percent-encoded: {key:?}");
    }
    let decoded: Vec<String> = encoded.iter().map(|k| url_decode_plus(k)).collect();
    assert_eq!(decoded, expected, "decoded keys (encoded: {encoded:?})");

    // Common prefixes are encoded too.
    let page = client
        .list_objects_v2()
        .bucket("cs-enc")
        .delimiter("/")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .ok_or_panic("encoded prefixes");
    let prefixes: Vec<String> = prefixes_of(page.common_prefixes()).iter().map(|p| url_decode_plus(p)).collect();
    assert_eq!(prefixes, ["dir one/", "ünï/"]);

    let page = client
        .list_objects()
        .bucket("cs-enc")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .ok_or_panic("ListObjects encoding-type=url");
    let decoded: Vec<String> = keys_of(page.contents()).iter().map(|k| url_decode_plus(k)).collect();
    assert_eq!(decoded, expected, "V1 decoded keys");
}

#[tokio::test]
async fn list_object_versions_unversioned() {
    let server = Server::start("list_object_versions");
    let client = server.client();
    create_bucket(&client, "cs-ver").await;
    let keys: Vec<String> = ["b", "a", "c/d"].iter().map(|k| k.to_string()).collect();
    put_many(&client, "cs-ver", &keys).await;
    put(&client, "cs-ver", "a", b"a again").await; // an overwrite replaces, still one version
    let output = client.list_object_versions().bucket("cs-ver").send().await.ok_or_panic("ListObjectVersions");
    let versions = output.versions();
    let listed: Vec<&str> = versions.iter().filter_map(|v| v.key()).collect();
    assert_eq!(listed, ["a", "b", "c/d"]);
    for version in versions {
        assert_eq!(version.version_id(), Some("null"), "{version:?}");
        assert_eq!(version.is_latest(), Some(true), "{version:?}");
    }
    assert_eq!(versions[0].size(), Some(7));
    assert_eq!(versions[0].e_tag(), Some(etag_of(b"a again").as_str()));
    assert!(output.delete_markers().is_empty());
    assert_eq!(output.is_truncated(), Some(false));

    let output =
        client.list_object_versions().bucket("cs-ver").prefix("c/").send().await.ok_or_panic("ListObjectVersions prefix");
    let listed: Vec<&str> = output.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(listed, ["c/d"]);
}

fn keys_of(contents: &[aws_sdk_s3::types::Object]) -> Vec<String> {
    contents.iter().map(|o| o.key().expect("Key").to_string()).collect()
}

fn prefixes_of(prefixes: &[aws_sdk_s3::types::CommonPrefix]) -> Vec<String> {
    prefixes.iter().map(|p| p.prefix().expect("Prefix").to_string()).collect()
}
