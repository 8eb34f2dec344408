//! Bucket calls: create, head, list, location, versioning, delete.

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::types::BucketLocationConstraint;

use crate::harness::*;

#[tokio::test]
async fn create_head_list_buckets() {
    let server = Server::start("create_head_list_buckets");
    let client = server.client();
    for name in ["cs-alpha", "cs-beta.with.dots", "cs-gamma-123"] {
        let output = client.create_bucket().bucket(name).send().await.ok_or_panic(name);
        assert_eq!(output.location(), Some(format!("/{name}").as_str()), "CreateBucket Location");
    }
    client.head_bucket().bucket("cs-alpha").send().await.ok_or_panic("HeadBucket existing");
    let (status, _) = expect_error(client.head_bucket().bucket("cs-missing").send().await);
    assert_eq!(status, 404, "HeadBucket of a missing bucket");

    let listing = client.list_buckets().send().await.ok_or_panic("ListBuckets");
    let names: Vec<&str> = listing.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["cs-alpha", "cs-beta.with.dots", "cs-gamma-123"], "ListBuckets is sorted by name");
    for bucket in listing.buckets() {
        assert!(bucket.creation_date().is_some(), "CreationDate of {:?}", bucket.name());
    }
    let owner = listing.owner().expect("ListBuckets has an Owner");
    assert!(owner.id().is_some_and(|id| !id.is_empty()), "Owner ID: {owner:?}");
}

#[tokio::test]
async fn create_bucket_invalid_names() {
    let server = Server::start("create_bucket_invalid_names");
    let client = server.client();
    let too_long = "a".repeat(64);
    for name in [
        "ab",                // too short
        too_long.as_str(),   // too long
        "UpperCase",         // upper case
        "under_score",       // underscore
        "-leading-hyphen",   // must start with a letter or digit
        "trailing-hyphen-",  // must end with a letter or digit
        "double..dots",      // adjacent periods
        "192.168.5.4",       // formatted as an IP address
        "xn--prefixed",      // reserved prefix
        "suffixed-s3alias",  // reserved suffix
    ] {
        let (status, code) = expect_error(client.create_bucket().bucket(name).send().await);
        assert_eq!((status, code.as_str()), (400, "InvalidBucketName"), "bucket name {name:?}");
    }
    let listing = client.list_buckets().send().await.ok_or_panic("ListBuckets");
    assert!(listing.buckets().is_empty(), "no invalid bucket was created: {:?}", listing.buckets());
}

#[tokio::test]
async fn recreating_your_own_bucket_in_us_east_1() {
    let server = Server::start("create_existing_bucket");
    let client = server.client();
    create_bucket(&client, "cs-twice").await;
    client.put_object().bucket("cs-twice").key("kept").body(body(b"still here")).send().await.ok_or_panic("PUT");
    // us-east-1 answers its owner's repeated create with 200, as AWS does there (scripts that
    // create a bucket if missing rely on it), and changes nothing: the object stays.
    client.create_bucket().bucket("cs-twice").send().await.ok_or_panic("re-create");
    client.create_bucket().bucket("cs-twice").acl(aws_sdk_s3::types::BucketCannedAcl::Private).send().await.ok_or_panic("re-create private");
    let got = client.get_object().bucket("cs-twice").key("kept").send().await.ok_or_panic("GET kept");
    assert_eq!(collect(got).await, b"still here");
    // A re-create asking for another ACL is refused rather than silently not applied.
    let (status, code) = expect_error(client.create_bucket().bucket("cs-twice").acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead).send().await);
    assert_eq!((status, code.as_str()), (409, "BucketAlreadyExists"));
    let acl = client.get_bucket_acl().bucket("cs-twice").send().await.ok_or_panic("GetBucketAcl");
    assert_eq!(acl.grants().len(), 1, "still private: {:?}", acl.grants());
    // Another user's create of the name is refused.
    let other = add_user(&server, "cs-other-user", "cs-other-secret-0000000000000000").await;
    let (status, code) = expect_error(other.create_bucket().bucket("cs-twice").send().await);
    assert_eq!((status, code.as_str()), (409, "BucketAlreadyExists"));
}

#[tokio::test]
async fn bucket_location_and_versioning() {
    let server = Server::start("bucket_location_and_versioning");
    let client = server.client();
    create_bucket(&client, "cs-loc").await;
    let location = client.get_bucket_location().bucket("cs-loc").send().await.ok_or_panic("GetBucketLocation");
    // us-east-1 is reported as an empty LocationConstraint.
    let constraint = location.location_constraint().map(BucketLocationConstraint::as_str).unwrap_or("");
    assert_eq!(constraint, "", "us-east-1 is an empty LocationConstraint");
    let versioning = client.get_bucket_versioning().bucket("cs-loc").send().await.ok_or_panic("GetBucketVersioning");
    assert_eq!(versioning.status(), None, "versioning never enabled");
    assert_eq!(versioning.mfa_delete(), None);

    let (status, code) = expect_error(client.get_bucket_location().bucket("cs-nope").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
}

#[tokio::test]
async fn delete_bucket() {
    let server = Server::start("delete_bucket");
    let client = server.client();
    create_bucket(&client, "cs-del").await;
    put(&client, "cs-del", "k", b"v").await;
    let (status, code) = expect_error(client.delete_bucket().bucket("cs-del").send().await);
    assert_eq!((status, code.as_str()), (409, "BucketNotEmpty"));

    client.delete_object().bucket("cs-del").key("k").send().await.ok_or_panic("DeleteObject");
    client.delete_bucket().bucket("cs-del").send().await.ok_or_panic("DeleteBucket of an empty bucket");
    let (status, _) = expect_error(client.head_bucket().bucket("cs-del").send().await);
    assert_eq!(status, 404, "HeadBucket after DeleteBucket");
    let listing = client.list_buckets().send().await.ok_or_panic("ListBuckets");
    assert!(listing.buckets().is_empty(), "{:?}", listing.buckets());

    let (status, code) = expect_error(client.delete_bucket().bucket("cs-del").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    // The name is free again.
    create_bucket(&client, "cs-del").await;
}

/// DeleteBucket racing PUTs on both cores: once a delete succeeds, no PUT may have landed in
/// the bucket (its objects would come back when the name is created again). Writers put a key
/// and delete it again, so the bucket is empty but for PUTs in flight, while the test deletes
/// the bucket until it succeeds; then it recreates the bucket and lists it: it must be empty.
#[tokio::test]
async fn delete_bucket_racing_puts_leaves_nothing_behind() {
    const ROUNDS: usize = 20;
    const WRITERS: usize = 8;
    let server = Server::start("delete_bucket_racing_puts");
    let client = server.client();
    for round in 0..ROUNDS {
        create_bucket(&client, "cs-race").await;
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let client = client.clone();
                tokio::spawn(async move {
                    for n in 0u64.. {
                        let key = format!("r{round}-w{w}-{n}");
                        match client.put_object().bucket("cs-race").key(&key).body(body(b"x")).send().await {
                            Ok(_) => {}
                            Err(e) => {
                                let status = e.raw_response().map(|r| r.status().as_u16());
                                let code = e.code().unwrap_or("").to_string();
                                match (status, code.as_str()) {
                                    (Some(404), "NoSuchBucket") => return,
                                    (Some(409), "OperationAborted") => continue,
                                    _ => panic!("PUT {key} during DeleteBucket: {status:?} {code}"),
                                }
                            }
                        }
                        // The bucket was not empty while this key was there; a delete that
                        // finds the bucket gone already shows the bug (listed again below).
                        let _ = client.delete_object().bucket("cs-race").key(&key).send().await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        loop {
            match client.delete_bucket().bucket("cs-race").send().await {
                Ok(_) => break,
                Err(e) => {
                    let code = e.code().unwrap_or("").to_string();
                    assert!(matches!(code.as_str(), "BucketNotEmpty" | "OperationAborted"), "DeleteBucket: {code}");
                }
            }
        }
        for w in writers {
            w.await.expect("writer task");
        }
        create_bucket(&client, "cs-race").await;
        let listed = client.list_objects_v2().bucket("cs-race").send().await.ok_or_panic("ListObjectsV2 of the recreated bucket");
        let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert!(keys.is_empty(), "round {round}: a PUT landed in the bucket after it was deleted: {keys:?}");
        client.delete_bucket().bucket("cs-race").send().await.ok_or_panic("DeleteBucket of the empty recreated bucket");
    }
}

#[tokio::test]
async fn configurations_never_set_read_as_s3_answers_them() {
    // Tools read every bucket configuration (Terraform's aws_s3_bucket does); one that cannot be
    // set here is answered as S3 answers a bucket without it, not as an unknown call.
    let server = Server::start("unset_configurations");
    let client = server.client();
    create_bucket(&client, "cs-conf").await;
    let checks = [
        ("policy", expect_error(client.get_bucket_policy().bucket("cs-conf").send().await), (404, "NoSuchBucketPolicy")),
        (
            "lifecycle",
            expect_error(client.get_bucket_lifecycle_configuration().bucket("cs-conf").send().await),
            (404, "NoSuchLifecycleConfiguration"),
        ),
        (
            "encryption",
            expect_error(client.get_bucket_encryption().bucket("cs-conf").send().await),
            (404, "ServerSideEncryptionConfigurationNotFoundError"),
        ),
        ("website", expect_error(client.get_bucket_website().bucket("cs-conf").send().await), (404, "NoSuchWebsiteConfiguration")),
        (
            "public access block",
            expect_error(client.get_public_access_block().bucket("cs-conf").send().await),
            (404, "NoSuchPublicAccessBlockConfiguration"),
        ),
        (
            "object lock",
            expect_error(client.get_object_lock_configuration().bucket("cs-conf").send().await),
            (404, "ObjectLockConfigurationNotFoundError"),
        ),
    ];
    for (what, (status, code), expected) in checks {
        assert_eq!((status, code.as_str()), expected, "{what}");
    }
    let logging = client.get_bucket_logging().bucket("cs-conf").send().await.ok_or_panic("GetBucketLogging");
    assert!(logging.logging_enabled().is_none());
    let payment = client.get_bucket_request_payment().bucket("cs-conf").send().await.ok_or_panic("GetBucketRequestPayment");
    assert_eq!(payment.payer().map(|p| p.as_str()), Some("BucketOwner"));
    let notification = client.get_bucket_notification_configuration().bucket("cs-conf").send().await.ok_or_panic("notification");
    assert!(notification.topic_configurations().is_empty() && notification.queue_configurations().is_empty());
    // Setting one is still refused (a policy can be set, but not an empty one), and another
    // user may not read them.
    let (status, code) = expect_error(client.put_bucket_website().bucket("cs-conf").website_configuration(
        aws_sdk_s3::types::WebsiteConfiguration::builder()
            .index_document(aws_sdk_s3::types::IndexDocument::builder().suffix("index.html").build().expect("index"))
            .build(),
    ).send().await);
    assert_eq!((status, code.as_str()), (501, "NotImplemented"));
    let (status, code) = expect_error(client.put_bucket_policy().bucket("cs-conf").policy("{}").send().await);
    assert_eq!((status, code.as_str()), (400, "MalformedPolicy"));
    server.admin(&["user", "add", "--access-key", "OTHERUSER", "--secret-key", "othersecretothersecret"]);
    let other = server.client_as("OTHERUSER", "othersecretothersecret");
    let (status, code) = expect_error(other.get_bucket_policy().bucket("cs-conf").send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
}

#[tokio::test]
async fn list_buckets_by_prefix_in_pages() {
    let server = Server::start("list_buckets_pages");
    let client = server.client();
    for name in ["logs-a", "logs-b", "logs-c", "media", "zeta"] {
        create_bucket(&client, name).await;
    }
    let names = |out: &aws_sdk_s3::operation::list_buckets::ListBucketsOutput| {
        out.buckets().iter().filter_map(|b| b.name().map(str::to_string)).collect::<Vec<_>>()
    };
    let first = client.list_buckets().prefix("logs-").max_buckets(2).send().await.ok_or_panic("page 1");
    assert_eq!(names(&first), ["logs-a", "logs-b"]);
    assert_eq!(first.prefix(), Some("logs-"));
    let token = first.continuation_token().expect("a token after a full page").to_string();
    let second = client.list_buckets().prefix("logs-").max_buckets(2).continuation_token(token).send().await.ok_or_panic("page 2");
    assert_eq!(names(&second), ["logs-c"]);
    assert_eq!(second.continuation_token(), None, "the last page");
    let all = client.list_buckets().send().await.ok_or_panic("all");
    assert_eq!(names(&all), ["logs-a", "logs-b", "logs-c", "media", "zeta"]);
    let (status, code) = expect_error(client.list_buckets().max_buckets(0).send().await);
    assert_eq!((status, code.as_str()), (400, "InvalidArgument"));
}
