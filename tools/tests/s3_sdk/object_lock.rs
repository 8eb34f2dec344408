//! Object Lock: buckets created with it (versioning comes with it), the default retention,
//! per-version retention and legal holds set on PUT or later, and deletes of locked versions
//! refused (GOVERNANCE bypassed only when asked by its owner, COMPLIANCE never), as AWS S3 and
//! s3-tests' `test_object_lock_*` expect. Kept across a restart.

use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, Delete, ObjectIdentifier, ObjectLockConfiguration, ObjectLockEnabled,
    ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode, ObjectLockRule,
    VersioningConfiguration,
};

use crate::harness::*;

fn lock_config(mode: ObjectLockRetentionMode, days: Option<i32>, years: Option<i32>) -> ObjectLockConfiguration {
    ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(ObjectLockRule::builder().default_retention(DefaultRetention::builder().mode(mode).set_days(days).set_years(years).build()).build())
        .build()
}

fn days_from_now(days: i64) -> DateTime {
    DateTime::from_secs(unix_now() + days * 86_400)
}

async fn create_locked(client: &aws_sdk_s3::Client, bucket: &str) {
    client.create_bucket().bucket(bucket).object_lock_enabled_for_bucket(true).send().await.ok_or_panic("CreateBucket with Object Lock");
}

#[tokio::test]
async fn lock_configurations_and_their_refusals() {
    let server = Server::start("object_lock_config");
    let client = server.client();
    create_locked(&client, "lock-conf").await;
    let versioning = client.get_bucket_versioning().bucket("lock-conf").send().await.ok_or_panic("GetBucketVersioning");
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled), "Object Lock comes with versioning");
    let got = client.get_object_lock_configuration().bucket("lock-conf").send().await.ok_or_panic("GetObjectLockConfiguration");
    assert_eq!(got.object_lock_configuration().and_then(|c| c.object_lock_enabled()), Some(&ObjectLockEnabled::Enabled));
    let config = lock_config(ObjectLockRetentionMode::Governance, Some(1), None);
    client.put_object_lock_configuration().bucket("lock-conf").object_lock_configuration(config.clone()).send().await.ok_or_panic("Put");
    let got = client.get_object_lock_configuration().bucket("lock-conf").send().await.ok_or_panic("Get");
    assert_eq!(got.object_lock_configuration(), Some(&config));

    let refused = |c: ObjectLockConfiguration| client.put_object_lock_configuration().bucket("lock-conf").object_lock_configuration(c).send();
    let (status, code) = expect_error(refused(lock_config(ObjectLockRetentionMode::Governance, Some(0), None)).await);
    assert_eq!((status, code.as_str()), (400, "InvalidRetentionPeriod"));
    let (status, code) = expect_error(refused(lock_config(ObjectLockRetentionMode::Compliance, Some(1), Some(1))).await);
    assert_eq!((status, code.as_str()), (400, "MalformedXML"));
    let suspend = VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
    let (status, code) = expect_error(client.put_bucket_versioning().bucket("lock-conf").versioning_configuration(suspend).send().await);
    assert_eq!((status, code.as_str()), (409, "InvalidBucketState"));

    // A bucket without Object Lock: none to read, and none to set until versioning is on.
    create_bucket(&client, "lock-later").await;
    let (status, code) = expect_error(client.get_object_lock_configuration().bucket("lock-later").send().await);
    assert_eq!((status, code.as_str()), (404, "ObjectLockConfigurationNotFoundError"));
    let (status, code) = expect_error(client.put_object_lock_configuration().bucket("lock-later").object_lock_configuration(config.clone()).send().await);
    assert_eq!((status, code.as_str()), (409, "InvalidBucketState"));
    let (status, code) = expect_error(
        client
            .put_object()
            .bucket("lock-later")
            .key("k")
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(days_from_now(1))
            .body(body(b"x"))
            .send()
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "InvalidRequest"));
    let enable = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    client.put_bucket_versioning().bucket("lock-later").versioning_configuration(enable).send().await.ok_or_panic("PutBucketVersioning");
    client.put_object_lock_configuration().bucket("lock-later").object_lock_configuration(config.clone()).send().await.ok_or_panic("Put after versioning");

    let server = Server::start_on(server.stop());
    let client = server.client();
    let got = client.get_object_lock_configuration().bucket("lock-conf").send().await.ok_or_panic("Get after a restart");
    assert_eq!(got.object_lock_configuration(), Some(&config));
}

#[tokio::test]
async fn locked_versions_cannot_be_deleted_until_released() {
    let server = Server::start("object_lock_versions");
    let client = server.client();
    let b = "lock-obj";
    create_locked(&client, b).await;

    // GOVERNANCE with a legal hold: the hold first, then the retention, keep the version.
    let put_gov = client
        .put_object()
        .bucket(b)
        .key("gov")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(days_from_now(1))
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(body(b"governed"))
        .send()
        .await
        .ok_or_panic("PutObject with a lock");
    let gov = put_gov.version_id().expect("a version").to_string();
    let head = client.head_object().bucket(b).key("gov").send().await.ok_or_panic("HeadObject");
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
    assert_eq!(head.object_lock_legal_hold_status(), Some(&ObjectLockLegalHoldStatus::On));
    assert!(head.object_lock_retain_until_date().is_some_and(|d| d.secs() > unix_now()));
    let delete = || client.delete_object().bucket(b).key("gov").version_id(&gov);
    let (status, code) = expect_error(delete().bypass_governance_retention(true).send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "a legal hold has no bypass");
    let off = ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::Off).build();
    client.put_object_legal_hold().bucket(b).key("gov").legal_hold(off).send().await.ok_or_panic("PutObjectLegalHold");
    let hold = client.get_object_legal_hold().bucket(b).key("gov").send().await.ok_or_panic("GetObjectLegalHold");
    assert_eq!(hold.legal_hold().and_then(|h| h.status()), Some(&ObjectLockLegalHoldStatus::Off));
    let (status, code) = expect_error(delete().send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "GOVERNANCE retention without bypass");
    // A delete without a version id only adds a marker, which Object Lock allows.
    let marker = client.delete_object().bucket(b).key("gov").send().await.ok_or_panic("DeleteObject (marker)");
    assert_eq!(marker.delete_marker(), Some(true));
    assert_eq!(collect(client.get_object().bucket(b).key("gov").version_id(&gov).send().await.ok_or_panic("GetObject")).await, b"governed");
    // Shortening GOVERNANCE needs the bypass too.
    let shorter = ObjectLockRetention::builder().mode(ObjectLockRetentionMode::Governance).retain_until_date(days_from_now(0)).build();
    let (status, code) = expect_error(client.put_object_retention().bucket(b).key("gov").version_id(&gov).retention(shorter.clone()).send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
    delete().bypass_governance_retention(true).send().await.ok_or_panic("DeleteObject with bypass");

    // COMPLIANCE: extended, never shortened, and no bypass.
    let put_comp = client
        .put_object()
        .bucket(b)
        .key("comp")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(days_from_now(1))
        .body(body(b"complied"))
        .send()
        .await
        .ok_or_panic("PutObject COMPLIANCE");
    let comp = put_comp.version_id().expect("a version").to_string();
    let longer = ObjectLockRetention::builder().mode(ObjectLockRetentionMode::Compliance).retain_until_date(days_from_now(2)).build();
    client.put_object_retention().bucket(b).key("comp").version_id(&comp).retention(longer).send().await.ok_or_panic("extend");
    let got = client.get_object_retention().bucket(b).key("comp").version_id(&comp).send().await.ok_or_panic("GetObjectRetention");
    let retention = got.retention().expect("a retention");
    assert_eq!(retention.mode(), Some(&ObjectLockRetentionMode::Compliance));
    assert!(retention.retain_until_date().is_some_and(|d| d.secs() > unix_now() + 86_400));
    let to_governance = ObjectLockRetention::builder().mode(ObjectLockRetentionMode::Governance).retain_until_date(days_from_now(3)).build();
    let (status, code) = expect_error(
        client.put_object_retention().bucket(b).key("comp").version_id(&comp).retention(to_governance).bypass_governance_retention(true).send().await,
    );
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
    let (status, code) = expect_error(client.delete_object().bucket(b).key("comp").version_id(&comp).bypass_governance_retention(true).send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
    let batch = Delete::builder().objects(ObjectIdentifier::builder().key("comp").version_id(&comp).build().expect("id")).build().expect("delete");
    let out = client.delete_objects().bucket(b).delete(batch).send().await.ok_or_panic("DeleteObjects");
    assert_eq!(out.errors().first().and_then(|e| e.code()), Some("AccessDenied"));

    // The bucket's default retention applies to a PUT that names none.
    client
        .put_object_lock_configuration()
        .bucket(b)
        .object_lock_configuration(lock_config(ObjectLockRetentionMode::Governance, None, Some(1)))
        .send()
        .await
        .ok_or_panic("PutObjectLockConfiguration");
    client.put_object().bucket(b).key("default").body(body(b"d")).send().await.ok_or_panic("PutObject");
    let got = client.get_object_retention().bucket(b).key("default").send().await.ok_or_panic("GetObjectRetention default");
    let until = got.retention().and_then(|r| r.retain_until_date()).expect("a date").secs();
    assert!((until - (unix_now() + 365 * 86_400)).abs() < 120, "a year from now: {until}");

    // Everything holds across a restart.
    let server = Server::start_on(server.stop());
    let client = server.client();
    let (status, _) = expect_error(client.delete_object().bucket(b).key("comp").version_id(&comp).send().await);
    assert_eq!(status, 403);
    let head = client.head_object().bucket(b).key("comp").send().await.ok_or_panic("HeadObject after a restart");
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    // Retention calls on a bucket without Object Lock are refused.
    create_bucket(&client, "plain").await;
    put(&client, "plain", "k", b"x").await;
    let (status, code) = expect_error(client.put_object_retention().bucket("plain").key("k").retention(shorter).send().await);
    assert_eq!((status, code.as_str()), (400, "InvalidRequest"));
}
