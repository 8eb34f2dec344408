//! Bucket lifecycle rules: the configuration as the SDK sets and reads it, what S3 refuses, and
//! the rules at work (objects expired, incomplete uploads aborted) on a server whose lifecycle
//! "day" is two seconds (`--lifecycle-day-s`).
#![allow(clippy::disallowed_methods)] // a test process of its own: plain threads, sleeps and wall time, no ring

use std::time::{Duration, Instant};

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleAndOperator, LifecycleRuleFilter, Tag, Transition, TransitionStorageClass,
};

use crate::harness::*;

fn rule(id: &str, filter: LifecycleRuleFilter, days: i32) -> LifecycleRule {
    LifecycleRule::builder()
        .id(id)
        .filter(filter)
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(days).build())
        .build()
        .expect("rule")
}

fn prefix(p: &str) -> LifecycleRuleFilter {
    LifecycleRuleFilter::builder().prefix(p).build()
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().expect("tag")
}

fn config(rules: Vec<LifecycleRule>) -> BucketLifecycleConfiguration {
    BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build().expect("configuration")
}

#[tokio::test]
async fn configurations_round_trip_and_bad_ones_are_refused() {
    let server = Server::start("lifecycle_config");
    let client = server.client();
    create_bucket(&client, "lc-conf").await;
    let and = LifecycleRuleFilter::builder()
        .and(LifecycleRuleAndOperator::builder().prefix("logs/").tags(tag("class", "debug")).object_size_greater_than(1024).build())
        .build();
    let abort = LifecycleRule::builder()
        .id("uploads")
        .filter(prefix(""))
        .status(ExpirationStatus::Disabled)
        .abort_incomplete_multipart_upload(AbortIncompleteMultipartUpload::builder().days_after_initiation(3).build())
        .build()
        .expect("rule");
    let dated = LifecycleRule::builder()
        .id("dated")
        .filter(LifecycleRuleFilter::builder().tag(tag("k", "v")).build())
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().date(aws_smithy_types::DateTime::from_secs(1_893_456_000)).build())
        .build()
        .expect("rule");
    let rules = vec![rule("tmp", prefix("tmp/"), 1), rule("debug-logs", and, 7), abort, dated];
    client
        .put_bucket_lifecycle_configuration()
        .bucket("lc-conf")
        .lifecycle_configuration(config(rules.clone()))
        .send()
        .await
        .ok_or_panic("PutBucketLifecycleConfiguration");
    let check = |got: aws_sdk_s3::operation::get_bucket_lifecycle_configuration::GetBucketLifecycleConfigurationOutput| {
        assert_eq!(got.rules(), rules.as_slice());
    };
    check(client.get_bucket_lifecycle_configuration().bucket("lc-conf").send().await.ok_or_panic("Get"));
    // Kept across a restart, as given.
    let server = Server::start_on(server.stop());
    let client = server.client();
    check(client.get_bucket_lifecycle_configuration().bucket("lc-conf").send().await.ok_or_panic("Get after a restart"));

    // A rule without an ID gets one.
    let no_id = LifecycleRule::builder()
        .filter(prefix("a/"))
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(2).build())
        .build()
        .expect("rule");
    client.put_bucket_lifecycle_configuration().bucket("lc-conf").lifecycle_configuration(config(vec![no_id])).send().await.ok_or_panic("no ID");
    let got = client.get_bucket_lifecycle_configuration().bucket("lc-conf").send().await.ok_or_panic("Get");
    assert!(got.rules()[0].id().is_some_and(|id| !id.is_empty()), "{got:?}");

    let refused = [
        ("the same ID twice", config(vec![rule("x", prefix("a"), 1), rule("x", prefix("b"), 1)]), (400, "InvalidArgument")),
        ("an ID of 256 characters", config(vec![rule(&"i".repeat(256), prefix(""), 1)]), (400, "InvalidArgument")),
        ("zero days", config(vec![rule("z", prefix(""), 0)]), (400, "InvalidArgument")),
        (
            "a lowercase status",
            config(vec![LifecycleRule::builder()
                .id("s")
                .filter(prefix(""))
                .status(ExpirationStatus::from("enabled"))
                .expiration(LifecycleExpiration::builder().days(1).build())
                .build()
                .expect("rule")]),
            (400, "MalformedXML"),
        ),
        (
            "no action",
            config(vec![LifecycleRule::builder().id("n").filter(prefix("")).status(ExpirationStatus::Enabled).build().expect("rule")]),
            (400, "InvalidRequest"),
        ),
        (
            "a transition (one storage class here)",
            config(vec![LifecycleRule::builder()
                .id("t")
                .filter(prefix(""))
                .status(ExpirationStatus::Enabled)
                .transitions(Transition::builder().days(30).storage_class(TransitionStorageClass::Glacier).build())
                .build()
                .expect("rule")]),
            (501, "NotImplemented"),
        ),
    ];
    for (what, configuration, expected) in refused {
        let (status, code) =
            expect_error(client.put_bucket_lifecycle_configuration().bucket("lc-conf").lifecycle_configuration(configuration).send().await);
        assert_eq!((status, code.as_str()), expected, "{what}");
    }
    // Another user may neither read nor set them.
    let other = add_user(&server, "LCOTHERUSER", "lc-other-secret-key").await;
    let (status, _) = expect_error(other.get_bucket_lifecycle_configuration().bucket("lc-conf").send().await);
    assert_eq!(status, 403);
    let (status, _) = expect_error(other.delete_bucket_lifecycle().bucket("lc-conf").send().await);
    assert_eq!(status, 403);

    client.delete_bucket_lifecycle().bucket("lc-conf").send().await.ok_or_panic("DeleteBucketLifecycle");
    let (status, code) = expect_error(client.get_bucket_lifecycle_configuration().bucket("lc-conf").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchLifecycleConfiguration"));
}

/// Seconds in the test server's lifecycle day.
const DAY_S: &str = "2";

#[tokio::test]
async fn rules_expire_objects_and_abort_uploads() {
    let dir = Server::start("lifecycle_at_work").stop();
    let server = Server::start_on_with(dir, &["--lifecycle-day-s", DAY_S]);
    let client = server.client();
    create_bucket(&client, "aging").await;
    let uploads = LifecycleRule::builder()
        .id("uploads")
        .filter(prefix("tmp/"))
        .status(ExpirationStatus::Enabled)
        .abort_incomplete_multipart_upload(AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build())
        .build()
        .expect("rule");
    let rules = vec![
        rule("tmp", prefix("tmp/"), 1),
        rule("scratch", LifecycleRuleFilter::builder().tag(tag("class", "scratch")).build(), 1),
        rule("much-later", prefix("keep/"), 10_000),
        uploads,
    ];
    client.put_bucket_lifecycle_configuration().bucket("aging").lifecycle_configuration(config(rules)).send().await.ok_or_panic("Put");
    let large = pattern(3 * MIB, 7);
    for (key, data) in [("tmp/a", b"a".to_vec()), ("tmp/big", large.clone()), ("keep/b", b"b".to_vec()), ("other/c", b"c".to_vec())] {
        put(&client, "aging", key, &data).await;
    }
    client.put_object().bucket("aging").key("other/scratch").body(body(b"s")).tagging("class=scratch").send().await.ok_or_panic("tagged");
    client.put_object().bucket("aging").key("other/kept").body(body(b"k")).tagging("class=precious").send().await.ok_or_panic("tagged");
    // Answers name the expiry of what a rule covers (x-amz-expiration), and nothing else's.
    let written = client.put_object().bucket("aging").key("keep/named").body(body(b"n")).send().await.ok_or_panic("PUT");
    let expiration = written.expiration().expect("PUT answers x-amz-expiration").to_string();
    assert!(expiration.starts_with("expiry-date=\"") && expiration.ends_with("GMT\", rule-id=\"much-later\""), "{expiration}");
    // The header counts real days whatever `--lifecycle-day-s` says (as Ceph RGW under its
    // debug interval): 10,000 of them are 27 years on, not 5.6 hours.
    let year_now = 1970 + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() / 31_556_952;
    let year: u64 = expiration.split(' ').find_map(|w| w.parse().ok().filter(|y| *y > 1970)).expect("a year in the date");
    assert!(year >= year_now + 27, "{expiration}");
    let head = client.head_object().bucket("aging").key("keep/named").send().await.ok_or_panic("HEAD");
    assert_eq!(head.expiration(), Some(expiration.as_str()));
    let got = client.get_object().bucket("aging").key("keep/named").send().await.ok_or_panic("GET");
    assert_eq!(got.expiration(), Some(expiration.as_str()));
    let unruled = client.head_object().bucket("aging").key("other/c").send().await.ok_or_panic("HEAD");
    assert_eq!(unruled.expiration(), None);
    client.delete_object().bucket("aging").key("keep/named").send().await.ok_or_panic("DELETE");
    let upload = client.create_multipart_upload().bucket("aging").key("tmp/mp").send().await.ok_or_panic("CreateMultipartUpload");
    let kept_upload = client.create_multipart_upload().bucket("aging").key("keep/mp").send().await.ok_or_panic("CreateMultipartUpload");

    // Two days and the rounding up to the day's end, plus a scan: under 8 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    let remaining = loop {
        let listed = client.list_objects_v2().bucket("aging").send().await.ok_or_panic("list");
        let keys: Vec<String> = listed.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect();
        let uploads = client.list_multipart_uploads().bucket("aging").send().await.ok_or_panic("list uploads");
        let upload_keys: Vec<String> = uploads.uploads().iter().filter_map(|u| u.key().map(str::to_string)).collect();
        if keys == ["keep/b", "other/c", "other/kept"] && upload_keys == ["keep/mp"] {
            break keys;
        }
        assert!(Instant::now() < deadline, "after 20 s (lifecycle day {DAY_S} s): objects {keys:?}, uploads {upload_keys:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(remaining.len(), 3);
    let (status, code) = expect_error(client.get_object().bucket("aging").key("tmp/big").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"));
    let (status, code) = expect_error(
        client.upload_part().bucket("aging").key("tmp/mp").upload_id(upload.upload_id().expect("id")).part_number(1).body(body(b"x")).send().await,
    );
    assert_eq!((status, code.as_str()), (404, "NoSuchUpload"), "the timed-out upload was aborted");
    client
        .upload_part()
        .bucket("aging")
        .key("keep/mp")
        .upload_id(kept_upload.upload_id().expect("id"))
        .part_number(1)
        .body(body(b"x"))
        .send()
        .await
        .ok_or_panic("the upload outside the rule goes on");
    assert_eq!(get(&client, "aging", "keep/b").await, b"b");
    assert!(server.stderr().contains("lifecycle: "), "deletions are reported:\n{}", server.stderr());

    // A rule switched off expires nothing: a new object under it stays two days and more.
    let off = LifecycleRule::builder()
        .id("tmp")
        .filter(prefix("tmp/"))
        .status(ExpirationStatus::Disabled)
        .expiration(LifecycleExpiration::builder().days(1).build())
        .build()
        .expect("rule");
    client.put_bucket_lifecycle_configuration().bucket("aging").lifecycle_configuration(config(vec![off])).send().await.ok_or_panic("Put");
    put(&client, "aging", "tmp/after", b"stays").await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(get(&client, "aging", "tmp/after").await, b"stays");
}
