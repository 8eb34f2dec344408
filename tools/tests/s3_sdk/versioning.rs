//! Object versioning: every write a new version, reads and deletes by version id, delete
//! markers, suspended versioning's one "null" version, ListObjectVersions with its markers,
//! versions of large and multipart objects, copies from a version, DeleteObjects of versions,
//! lifecycle rules on versions, and all of it across a restart. The expected outcomes are
//! AWS S3's (and s3-tests' versioning tests).
#![allow(clippy::disallowed_methods)] // a test process of its own: plain threads, sleeps and wall time, no ring

use std::time::{Duration, Instant};

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectIdentifier, Tag, Tagging,
    VersioningConfiguration,
};

use crate::harness::*;

async fn set_versioning(client: &aws_sdk_s3::Client, bucket: &str, status: BucketVersioningStatus) {
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .ok_or_panic("PutBucketVersioning");
}

async fn put_version(client: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) -> String {
    let out = client.put_object().bucket(bucket).key(key).body(body(data)).send().await.ok_or_panic("PutObject");
    out.version_id().expect("a PUT into a versioned bucket names its version").to_string()
}

async fn get_version(client: &aws_sdk_s3::Client, bucket: &str, key: &str, version: &str) -> Vec<u8> {
    let out = client.get_object().bucket(bucket).key(key).version_id(version).send().await.ok_or_panic("GetObject by version");
    assert_eq!(out.version_id(), Some(version));
    collect(out).await
}

/// Every version and delete marker of `bucket` as (key, version id, is latest, is marker), in
/// listing order, read a page of `max_keys` at a time through the key and version-id markers.
async fn all_versions(client: &aws_sdk_s3::Client, bucket: &str, max_keys: i32) -> Vec<(String, String, bool, bool)> {
    let mut found = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let out = client
            .list_object_versions()
            .bucket(bucket)
            .max_keys(max_keys)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .ok_or_panic("ListObjectVersions");
        // Versions and markers come interleaved in the XML; the SDK splits them into two lists,
        // each in the listing's order: a page's versions, then its markers.
        let mut page: Vec<(String, String, bool, bool, usize)> = Vec::new();
        for (i, v) in out.versions().iter().enumerate() {
            page.push((v.key().unwrap_or("").into(), v.version_id().unwrap_or("").into(), v.is_latest().unwrap_or(false), false, i));
        }
        for (i, m) in out.delete_markers().iter().enumerate() {
            page.push((m.key().unwrap_or("").into(), m.version_id().unwrap_or("").into(), m.is_latest().unwrap_or(false), true, i));
        }
        assert!(page.len() <= max_keys as usize, "a page holds at most max-keys entries");
        found.extend(page.into_iter().map(|(k, v, l, m, _)| (k, v, l, m)));
        if !out.is_truncated().unwrap_or(false) {
            return found;
        }
        key_marker = out.next_key_marker().map(str::to_string);
        version_marker = out.next_version_id_marker().map(str::to_string);
        assert!(key_marker.is_some(), "a truncated listing names where to go on");
    }
}

#[tokio::test]
async fn every_write_is_a_version_read_and_deleted_by_id() {
    let server = Server::start("versions_by_id");
    let client = server.client();
    let b = "ver-basic";
    create_bucket(&client, b).await;
    put(&client, b, "pre", b"written before versioning").await;
    let status = client.get_bucket_versioning().bucket(b).send().await.ok_or_panic("GetBucketVersioning");
    assert_eq!(status.status(), None);
    set_versioning(&client, b, BucketVersioningStatus::Enabled).await;
    let status = client.get_bucket_versioning().bucket(b).send().await.ok_or_panic("GetBucketVersioning");
    assert_eq!(status.status(), Some(&BucketVersioningStatus::Enabled));

    let v1 = put_version(&client, b, "k", b"one").await;
    let v2 = put_version(&client, b, "k", b"two").await;
    assert_ne!(v1, v2);
    assert!(v1 != "null" && v2 != "null");
    let current = client.get_object().bucket(b).key("k").send().await.ok_or_panic("GetObject");
    assert_eq!(current.version_id(), Some(v2.as_str()));
    assert_eq!(collect(current).await, b"two");
    assert_eq!(get_version(&client, b, "k", &v1).await, b"one");
    let head = client.head_object().bucket(b).key("k").version_id(&v1).send().await.ok_or_panic("HeadObject by version");
    assert_eq!(head.content_length(), Some(3));
    let attributes = client
        .get_object_attributes()
        .bucket(b)
        .key("k")
        .version_id(&v1)
        .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectSize)
        .send()
        .await
        .ok_or_panic("GetObjectAttributes by version");
    assert_eq!((attributes.object_size(), attributes.version_id()), (Some(3), Some(v1.as_str())));
    // The object written before versioning is the key's "null" version.
    assert_eq!(get_version(&client, b, "pre", "null").await, b"written before versioning");
    // A version that does not exist, and one that cannot be an id.
    let (status, code) = expect_error(client.get_object().bucket(b).key("k").version_id("00000000000000ff").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchVersion"));
    let (status, code) = expect_error(client.get_object().bucket(b).key("k").version_id("not-a-version").send().await);
    assert_eq!((status, code.as_str()), (400, "InvalidArgument"));

    // A delete without an id puts a delete marker on top; every version stays.
    let deleted = client.delete_object().bucket(b).key("k").send().await.ok_or_panic("DeleteObject");
    assert_eq!(deleted.delete_marker(), Some(true));
    let marker = deleted.version_id().expect("the marker's version").to_string();
    let (status, code) = expect_error(client.get_object().bucket(b).key("k").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"));
    let presigned = client
        .get_object()
        .bucket(b)
        .key("k")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(60)).expect("presigning config"))
        .await
        .expect("presign GET");
    let raw = send_presigned(server.port, &presigned, b"");
    assert_eq!(raw.status, 404);
    assert_eq!(raw.header("x-amz-delete-marker"), Some("true"));
    assert_eq!(raw.header("x-amz-version-id"), Some(marker.as_str()));
    let (status, _) = expect_error(client.get_object().bucket(b).key("k").version_id(&marker).send().await);
    assert_eq!(status, 405, "a delete marker has no data");
    assert_eq!(get_version(&client, b, "k", &v1).await, b"one");
    let listed = client.list_objects_v2().bucket(b).send().await.ok_or_panic("ListObjectsV2");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["pre"], "a key whose current version is a delete marker is not listed");
    assert_eq!(
        all_versions(&client, b, 1000).await,
        vec![
            ("k".into(), v2.clone(), false, false),
            ("k".into(), v1.clone(), false, false),
            ("pre".into(), "null".into(), true, false),
            ("k".into(), marker.clone(), true, true),
        ],
        "versions newest first, then (as the SDK lists them apart) the delete markers"
    );

    // Removing the marker brings the object back; removing the newest version, the one before.
    let undeleted = client.delete_object().bucket(b).key("k").version_id(&marker).send().await.ok_or_panic("DeleteObject marker");
    assert_eq!(undeleted.delete_marker(), Some(true));
    assert_eq!(undeleted.version_id(), Some(marker.as_str()));
    assert_eq!(get(&client, b, "k").await, b"two");
    client.delete_object().bucket(b).key("k").version_id(&v2).send().await.ok_or_panic("DeleteObject version");
    assert_eq!(get(&client, b, "k").await, b"one");
    // Deleting a version that is gone already succeeds, as in S3.
    client.delete_object().bucket(b).key("k").version_id(&v2).send().await.ok_or_panic("DeleteObject version again");

    // A write over the object from before versioning keeps it as the null version.
    let p1 = put_version(&client, b, "pre", b"pre, versioned").await;
    assert_eq!(get(&client, b, "pre").await, b"pre, versioned");
    assert_eq!(get_version(&client, b, "pre", "null").await, b"written before versioning");

    // A large object's versions, each whole.
    let big1 = pattern(3 << 20, 1);
    let big2 = pattern((3 << 20) + 17, 2);
    let g1 = put_version(&client, b, "big", &big1).await;
    let g2 = put_version(&client, b, "big", &big2).await;
    assert_same_bytes(&get_version(&client, b, "big", &g1).await, &big1, "large version 1");
    assert_same_bytes(&get(&client, b, "big").await, &big2, "large current version");

    // All of it, and the bucket's state, across a restart.
    let server = Server::start_on(server.stop());
    let client = server.client();
    let status = client.get_bucket_versioning().bucket(b).send().await.ok_or_panic("GetBucketVersioning after a restart");
    assert_eq!(status.status(), Some(&BucketVersioningStatus::Enabled));
    assert_eq!(get(&client, b, "k").await, b"one");
    assert_eq!(get_version(&client, b, "pre", &p1).await, b"pre, versioned");
    assert_same_bytes(&get_version(&client, b, "big", &g1).await, &big1, "large version 1 after a restart");
    assert_same_bytes(&get_version(&client, b, "big", &g2).await, &big2, "large version 2 after a restart");

    // A bucket with versions is not empty until every version and marker is gone.
    for (key, version, _, _) in all_versions(&client, b, 1000).await {
        let (status, code) = expect_error(client.delete_bucket().bucket(b).send().await);
        assert_eq!((status, code.as_str()), (409, "BucketNotEmpty"));
        client.delete_object().bucket(b).key(&key).version_id(&version).send().await.ok_or_panic("DeleteObject version");
    }
    client.delete_bucket().bucket(b).send().await.ok_or_panic("DeleteBucket once empty");
}

#[tokio::test]
async fn suspended_versioning_keeps_one_null_version() {
    let server = Server::start("versions_suspended");
    let client = server.client();
    let b = "ver-suspend";
    create_bucket(&client, b).await;
    set_versioning(&client, b, BucketVersioningStatus::Enabled).await;
    let v1 = put_version(&client, b, "k", b"kept").await;
    set_versioning(&client, b, BucketVersioningStatus::Suspended).await;
    let status = client.get_bucket_versioning().bucket(b).send().await.ok_or_panic("GetBucketVersioning");
    assert_eq!(status.status(), Some(&BucketVersioningStatus::Suspended));
    // A write into a suspended bucket names no version (s3-tests expects none, nor "null").
    for data in [&b"null one"[..], b"null two"] {
        let out = client.put_object().bucket(b).key("k").body(body(data)).send().await.ok_or_panic("PutObject");
        assert_eq!(out.version_id(), None);
    }
    assert_eq!(get(&client, b, "k").await, b"null two");
    assert_eq!(get_version(&client, b, "k", "null").await, b"null two");
    assert_eq!(get_version(&client, b, "k", &v1).await, b"kept");
    assert_eq!(
        all_versions(&client, b, 1000).await,
        vec![("k".into(), "null".into(), true, false), ("k".into(), v1.clone(), false, false)],
        "the second null version replaced the first"
    );
    // A delete writes a null delete marker in the null version's place.
    let deleted = client.delete_object().bucket(b).key("k").send().await.ok_or_panic("DeleteObject");
    assert_eq!((deleted.delete_marker(), deleted.version_id()), (Some(true), Some("null")));
    assert_eq!(all_versions(&client, b, 1000).await, vec![("k".into(), v1.clone(), false, false), ("k".into(), "null".into(), true, true)]);
    let (status, code) = expect_error(client.get_object().bucket(b).key("k").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"));
    // Enabled again: new versions get ids, the null marker stays among them.
    set_versioning(&client, b, BucketVersioningStatus::Enabled).await;
    let v3 = put_version(&client, b, "k", b"three").await;
    assert_ne!(v3, "null");
    assert_eq!(all_versions(&client, b, 1000).await.len(), 3);
    assert_eq!(get(&client, b, "k").await, b"three");
}

#[tokio::test]
async fn version_listings_page_through_markers_and_roll_up_prefixes() {
    let server = Server::start("versions_listing");
    let client = server.client();
    let b = "ver-list";
    create_bucket(&client, b).await;
    put(&client, b, "a/plain", b"null").await;
    set_versioning(&client, b, BucketVersioningStatus::Enabled).await;
    for (key, versions) in [("a/plain", 2), ("a/x", 3), ("b", 4), ("c/d/e", 1), ("z", 2)] {
        for i in 0..versions {
            put_version(&client, b, key, format!("{key} {i}").as_bytes()).await;
        }
    }
    client.delete_object().bucket(b).key("b").send().await.ok_or_panic("DeleteObject");
    let whole = all_versions(&client, b, 1000).await;
    assert_eq!(whole.len(), 3 + 3 + 5 + 1 + 2);
    // Per key: the latest first (the SDK splits versions from markers: compare as sets per key).
    for key in ["a/plain", "a/x", "b", "c/d/e", "z"] {
        let latest: Vec<_> = whole.iter().filter(|(k, _, latest, _)| k == key && *latest).collect();
        assert_eq!(latest.len(), 1, "{key} has one latest version");
    }
    assert!(whole.iter().any(|(k, _, latest, marker)| k == "b" && *latest && *marker));
    let sorted = |mut v: Vec<(String, String, bool, bool)>| {
        v.sort();
        v
    };
    for page in [1, 2, 3, 5] {
        assert_eq!(sorted(all_versions(&client, b, page).await), sorted(whole.clone()), "pages of {page}");
    }
    let rolled = client.list_object_versions().bucket(b).delimiter("/").send().await.ok_or_panic("ListObjectVersions delimiter");
    let prefixes: Vec<&str> = rolled.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["a/", "c/"]);
    let keys: Vec<&str> = rolled.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys, ["b", "b", "b", "b", "z", "z"]);
    let under = client.list_object_versions().bucket(b).prefix("a/x").send().await.ok_or_panic("ListObjectVersions prefix");
    assert_eq!(under.versions().len(), 3);
    // ListObjectsV2 lists each key's current version once.
    let current = client.list_objects_v2().bucket(b).send().await.ok_or_panic("ListObjectsV2");
    let keys: Vec<&str> = current.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a/plain", "a/x", "c/d/e", "z"]);
    assert_eq!(current.contents()[1].size(), Some("a/x 2".len() as i64));
    let paged = client.list_objects_v2().bucket(b).max_keys(1).start_after("a/plain").send().await.ok_or_panic("ListObjectsV2 page");
    let keys: Vec<&str> = paged.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a/x"]);
}

#[tokio::test]
async fn multipart_copies_tags_and_batch_deletes_name_versions() {
    let server = Server::start("versions_ops");
    let client = server.client();
    let b = "ver-ops";
    create_bucket(&client, b).await;
    set_versioning(&client, b, BucketVersioningStatus::Enabled).await;
    let first = put_version(&client, b, "src", b"first").await;
    put_version(&client, b, "src", b"second").await;

    // A copy from a named version.
    let copied = client
        .copy_object()
        .bucket(b)
        .key("dst")
        .copy_source(format!("{b}/src?versionId={first}"))
        .send()
        .await
        .ok_or_panic("CopyObject from a version");
    assert_eq!(copied.copy_source_version_id(), Some(first.as_str()));
    assert!(copied.version_id().is_some_and(|v| v != "null"));
    assert_eq!(get(&client, b, "dst").await, b"first");

    // A multipart upload completes into a new version.
    let upload = client.create_multipart_upload().bucket(b).key("mp").send().await.ok_or_panic("CreateMultipartUpload");
    let id = upload.upload_id().expect("upload id");
    let part1 = pattern(5 << 20, 3);
    let part2 = pattern(1000, 4);
    let mut parts = Vec::new();
    for (n, data) in [(1, &part1), (2, &part2)] {
        let out = client.upload_part().bucket(b).key("mp").upload_id(id).part_number(n).body(body(data)).send().await.ok_or_panic("UploadPart");
        parts.push(CompletedPart::builder().part_number(n).e_tag(out.e_tag().expect("etag")).build());
    }
    let done = client
        .complete_multipart_upload()
        .bucket(b)
        .key("mp")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload");
    let mp_version = done.version_id().expect("a completed upload names its version").to_string();
    put_version(&client, b, "mp", b"small over it").await;
    let whole = [part1.clone(), part2.clone()].concat();
    assert_same_bytes(&get_version(&client, b, "mp", &mp_version).await, &whole, "multipart version");

    // Tags belong to a version.
    let tags = Tagging::builder().tag_set(Tag::builder().key("v").value("first").build().expect("tag")).build().expect("tagging");
    client.put_object_tagging().bucket(b).key("src").version_id(&first).tagging(tags).send().await.ok_or_panic("PutObjectTagging");
    let got = client.get_object_tagging().bucket(b).key("src").version_id(&first).send().await.ok_or_panic("GetObjectTagging");
    assert_eq!(got.tag_set().len(), 1);
    assert_eq!(got.version_id(), Some(first.as_str()), "GetObjectTagging names the version it read");
    let current = client.get_object_tagging().bucket(b).key("src").send().await.ok_or_panic("GetObjectTagging current");
    assert!(current.tag_set().is_empty(), "the current version has its own (no) tags");

    // DeleteObjects: a marker for a key, a version removed for another.
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("dst").build().expect("id"))
        .objects(ObjectIdentifier::builder().key("src").version_id(&first).build().expect("id"))
        .build()
        .expect("delete");
    let out = client.delete_objects().bucket(b).delete(delete).send().await.ok_or_panic("DeleteObjects");
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    let dst = out.deleted().iter().find(|d| d.key() == Some("dst")).expect("dst reported");
    assert_eq!(dst.delete_marker(), Some(true));
    assert!(dst.delete_marker_version_id().is_some());
    let src = out.deleted().iter().find(|d| d.key() == Some("src")).expect("src reported");
    assert_eq!(src.version_id(), Some(first.as_str()));
    let (status, code) = expect_error(client.get_object().bucket(b).key("src").version_id(&first).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchVersion"));
    assert_eq!(get(&client, b, "src").await, b"second");
    let (status, _) = expect_error(client.get_object().bucket(b).key("dst").send().await);
    assert_eq!(status, 404);
}

#[tokio::test]
async fn lifecycle_expires_noncurrent_versions_and_marks_current_ones() {
    // A lifecycle "day" of two seconds.
    let server = Server::start_on_with(Server::start("versions_lifecycle").stop(), &["--lifecycle-day-s", "2"]);
    let client = server.client();
    let b = "ver-lc";
    create_bucket(&client, b).await;
    set_versioning(&client, b, BucketVersioningStatus::Enabled).await;
    let old = put_version(&client, b, "keep/k", b"old").await;
    let new = put_version(&client, b, "keep/k", b"new").await;
    put_version(&client, b, "gone/k", b"expires").await;
    let rules = vec![
        LifecycleRule::builder()
            .id("noncurrent")
            .filter(LifecycleRuleFilter::builder().prefix("keep/").build())
            .status(ExpirationStatus::Enabled)
            .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(1).build())
            .build()
            .expect("rule"),
        LifecycleRule::builder()
            .id("current")
            .filter(LifecycleRuleFilter::builder().prefix("gone/").build())
            .status(ExpirationStatus::Enabled)
            .expiration(LifecycleExpiration::builder().days(1).build())
            .build()
            .expect("rule"),
    ];
    client
        .put_bucket_lifecycle_configuration()
        .bucket(b)
        .lifecycle_configuration(BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build().expect("configuration"))
        .send()
        .await
        .ok_or_panic("PutBucketLifecycleConfiguration");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let versions = all_versions(&client, b, 1000).await;
        let noncurrent_gone = !versions.iter().any(|(_, v, _, _)| *v == old);
        let marked = versions.iter().any(|(k, _, latest, marker)| k == "gone/k" && *latest && *marker);
        if noncurrent_gone && marked {
            // The current version of keep/k stays, and gone/k's data stays under its marker.
            assert!(versions.iter().any(|(k, v, latest, _)| k == "keep/k" && *v == new && *latest));
            assert_eq!(versions.iter().filter(|(k, _, _, _)| k == "gone/k").count(), 2);
            break;
        }
        assert!(Instant::now() < deadline, "lifecycle did not act within 30 s: {versions:?}\n{}", server.stderr());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(get(&client, b, "keep/k").await, b"new");
}
