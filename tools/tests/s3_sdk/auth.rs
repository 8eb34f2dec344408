//! Authentication and per-user bucket ownership.
#![allow(clippy::disallowed_methods)] // a test process of its own: plain threads, sleeps and wall time, no ring

use std::time::{Duration, SystemTime};

use aws_smithy_async::time::StaticTimeSource;

use crate::harness::*;

#[tokio::test]
async fn wrong_secret_is_signature_does_not_match() {
    let server = Server::start("auth_wrong_secret");
    create_bucket(&server.client(), "cs-auth").await;
    let client = server.client_as(ACCESS_KEY, "not-the-secret-key-at-all-0000000000000");
    let (status, code) = expect_error(client.list_buckets().send().await);
    assert_eq!((status, code.as_str()), (403, "SignatureDoesNotMatch"), "ListBuckets");
    let (status, code) = expect_error(client.put_object().bucket("cs-auth").key("k").body(body(b"x")).send().await);
    assert_eq!((status, code.as_str()), (403, "SignatureDoesNotMatch"), "PutObject");
    let (status, code) = expect_error(client.get_object().bucket("cs-auth").key("k").send().await);
    assert_eq!((status, code.as_str()), (403, "SignatureDoesNotMatch"), "GetObject");
    let (status, _) = expect_error(server.client().head_object().bucket("cs-auth").key("k").send().await);
    assert_eq!(status, 404, "the refused PUT stored nothing");
}

#[tokio::test]
async fn unknown_access_key_is_invalid_access_key_id() {
    let server = Server::start("auth_unknown_key");
    let client = server.client_as("AKIAUNKNOWNUNKNOWN00", SECRET_KEY);
    let (status, code) = expect_error(client.list_buckets().send().await);
    assert_eq!((status, code.as_str()), (403, "InvalidAccessKeyId"));
    let (status, code) = expect_error(client.create_bucket().bucket("cs-unknown").send().await);
    assert_eq!((status, code.as_str()), (403, "InvalidAccessKeyId"));
}

#[tokio::test]
async fn anonymous_requests_are_access_denied() {
    let server = Server::start("auth_anonymous");
    let client = server.client();
    create_bucket(&client, "cs-private").await;
    put(&client, "cs-private", "k", b"private").await;
    for (method, target) in [("GET", "/cs-private/k"), ("GET", "/cs-private"), ("GET", "/"), ("PUT", "/cs-private/new")] {
        let response = raw_request(server.port, method, target, &[], b"");
        assert_eq!(response.status, 403, "anonymous {method} {target}: {}", response.body_text());
        assert_eq!(xml_element(&response.body_text(), "Code"), Some("AccessDenied"), "anonymous {method} {target}");
    }
    let response = raw_request(server.port, "HEAD", "/cs-private/k", &[], b"");
    assert_eq!(response.status, 403, "anonymous HEAD");
}

#[tokio::test]
async fn clock_skew_is_request_time_too_skewed() {
    let server = Server::start("auth_clock_skew");
    let skewed = SystemTime::now() - Duration::from_secs(30 * 60);
    let client = aws_sdk_s3::Client::from_conf(
        server.config(ACCESS_KEY, SECRET_KEY).time_source(StaticTimeSource::new(skewed)).build(),
    );
    let (status, code) = expect_error(client.list_buckets().send().await);
    assert_eq!((status, code.as_str()), (403, "RequestTimeTooSkewed"), "a request signed 30 minutes ago");
}

/// Waits until `user`'s credentials are accepted (or refused, with `accepted == false`): the
/// server may pick up an `admin user` change with a short delay.
async fn wait_for_user(server: &Server, access_key: &str, secret_key: &str, accepted: bool) {
    let client = server.client_as(access_key, secret_key);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let result = client.list_buckets().send().await;
        if result.is_ok() == accepted {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "user {access_key} still {} after 10 s: {result:?}",
            if accepted { "refused" } else { "accepted" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn second_user_owns_its_buckets_only() {
    let server = Server::start("auth_second_user");
    let alice = server.client();
    create_bucket(&alice, "cs-alice").await;
    put(&alice, "cs-alice", "k", b"alice's").await;

    const BOB_KEY: &str = "AKIABOBBOBBOBBOBBOB0";
    const BOB_SECRET: &str = "bob-secret-key-0123456789abcdefghijklmn";
    server.admin(&["user", "add", "--access-key", BOB_KEY, "--secret-key", BOB_SECRET]);
    let users = server.admin(&["user", "list"]);
    assert!(users.contains(BOB_KEY), "user list names the new user: {users}");
    assert!(users.contains(ACCESS_KEY), "user list names the first user: {users}");
    assert!(!users.contains(BOB_SECRET), "user list does not print secrets: {users}");
    wait_for_user(&server, BOB_KEY, BOB_SECRET, true).await;

    let bob = server.client_as(BOB_KEY, BOB_SECRET);
    create_bucket(&bob, "cs-bob").await;
    put(&bob, "cs-bob", "k", b"bob's").await;
    let listing = bob.list_buckets().send().await.ok_or_panic("Bob's ListBuckets");
    let names: Vec<&str> = listing.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["cs-bob"], "Bob lists only his buckets");
    let listing = alice.list_buckets().send().await.ok_or_panic("Alice's ListBuckets");
    let names: Vec<&str> = listing.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["cs-alice"], "Alice lists only hers");

    let (status, code) = expect_error(bob.get_object().bucket("cs-alice").key("k").send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "Bob reads Alice's object");
    let (status, code) = expect_error(bob.put_object().bucket("cs-alice").key("k2").body(body(b"x")).send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "Bob writes into Alice's bucket");
    let (status, code) = expect_error(bob.list_objects_v2().bucket("cs-alice").send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "Bob lists Alice's bucket");
    let (status, code) = expect_error(bob.delete_bucket().bucket("cs-alice").send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "Bob deletes Alice's bucket");
    let (status, code) = expect_error(bob.create_bucket().bucket("cs-alice").send().await);
    assert_eq!((status, code.as_str()), (409, "BucketAlreadyExists"), "bucket names are global");
    let (status, code) = expect_error(alice.get_object().bucket("cs-bob").key("k").send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "Alice reads Bob's object");
    assert_eq!(get(&alice, "cs-alice", "k").await, b"alice's");

    server.admin(&["user", "remove", "--access-key", BOB_KEY]);
    wait_for_user(&server, BOB_KEY, BOB_SECRET, false).await;
    // Each core notices the users file changed within its reload interval (1 s; a known key is
    // not re-checked on every request): after that every core refuses the removed user.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for attempt in 0..8 {
        let fresh = server.client_as(BOB_KEY, BOB_SECRET);
        let (status, code) = expect_error(fresh.list_buckets().send().await);
        assert_eq!((status, code.as_str()), (403, "InvalidAccessKeyId"), "a removed user, attempt {attempt}");
        let (status, code) = expect_error(bob.list_buckets().send().await);
        assert_eq!((status, code.as_str()), (403, "InvalidAccessKeyId"), "a removed user on a kept connection, attempt {attempt}");
    }
}
