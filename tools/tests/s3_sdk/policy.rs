//! Bucket policies with two users and anonymous requests: the document as set and read back,
//! what is refused, and evaluation in AWS's order (a matching Deny wins over everything, an
//! Allow over the ACLs, else the ACLs decide), with conditions on prefixes, addresses and
//! object tags.


use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use crate::harness::*;

const BOB_KEY: &str = "AKIABOBPOLICYTEST001";
const BOB_SECRET: &str = "bob-policy-secret-key-0123456789abcdefg";

async fn with_bob(server: &Server) -> aws_sdk_s3::Client {
    add_user(server, BOB_KEY, BOB_SECRET).await
}

fn anonymous(server: &Server, method: &str, target: &str) -> u16 {
    let data: &[u8] = if method == "PUT" { b"anonymous" } else { b"" };
    raw_request(server.port, method, target, &[], data).status
}

#[tokio::test]
async fn policies_are_kept_as_given_and_bad_ones_refused() {
    let server = Server::start("policy_document");
    let client = server.client();
    let bob = with_bob(&server).await;
    create_bucket(&client, "pol-doc").await;
    let document = r#"{
  "Version": "2012-10-17",
  "Statement": [{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::pol-doc/*"]}]
}"#;
    client.put_bucket_policy().bucket("pol-doc").policy(document).send().await.ok_or_panic("PutBucketPolicy");
    let got = client.get_bucket_policy().bucket("pol-doc").send().await.ok_or_panic("GetBucketPolicy");
    assert_eq!(got.policy(), Some(document), "read back byte for byte");
    let server = Server::start_on(server.stop());
    let client = server.client();
    let bob = { drop(bob); server.client_as(BOB_KEY, BOB_SECRET) };
    let got = client.get_bucket_policy().bucket("pol-doc").send().await.ok_or_panic("GetBucketPolicy after a restart");
    assert_eq!(got.policy(), Some(document));
    assert_eq!(anonymous(&server, "GET", "/pol-doc/missing"), 403, "GetObject allowed, ListBucket not: a missing key is not told");

    let refused = [
        ("not JSON", "{".to_string(), "MalformedPolicy"),
        ("another bucket's objects", document.replace("pol-doc/*", "other/*"), "MalformedPolicy"),
        ("an action outside S3", document.replace("s3:GetObject", "ec2:RunInstances"), "MalformedPolicy"),
        ("no principal", r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::pol-doc"}]}"#.to_string(), "MalformedPolicy"),
        ("an unknown condition", document.replace(r#""Resource""#, r#""Condition": {"StringRoughly": {"s3:prefix": "a"}}, "Resource""#), "MalformedPolicy"),
    ];
    for (what, doc, code) in refused {
        let (status, got) = expect_error(client.put_bucket_policy().bucket("pol-doc").policy(doc).send().await);
        assert_eq!((status, got.as_str()), (400, code), "{what}");
    }
    // Only the owner reads, sets or deletes the policy.
    assert_eq!(status_of(bob.get_bucket_policy().bucket("pol-doc").send().await), 403);
    assert_eq!(status_of(bob.put_bucket_policy().bucket("pol-doc").policy(document).send().await), 403);
    assert_eq!(status_of(bob.delete_bucket_policy().bucket("pol-doc").send().await), 403);
    client.delete_bucket_policy().bucket("pol-doc").send().await.ok_or_panic("DeleteBucketPolicy");
    let (status, code) = expect_error(client.get_bucket_policy().bucket("pol-doc").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucketPolicy"));
}

#[tokio::test]
async fn allows_open_what_acls_keep_closed_and_denies_win() {
    let server = Server::start("policy_evaluation");
    let alice = server.client();
    let bob = with_bob(&server).await;
    create_bucket(&alice, "pol-eval").await;
    for key in ["public/a", "home/bob/notes", "home/alice/diary", "secret/plan"] {
        put(&alice, "pol-eval", key, key.as_bytes()).await;
    }
    alice
        .put_object()
        .bucket("pol-eval")
        .key("tagged")
        .body(body(b"tagged"))
        .tagging("visibility=public")
        .send()
        .await
        .ok_or_panic("PUT tagged");
    let policy = format!(
        r#"{{"Version": "2012-10-17", "Statement": [
  {{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pol-eval/public/*"}},
  {{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pol-eval/*",
    "Condition": {{"StringEquals": {{"s3:ExistingObjectTag/visibility": "public"}}}}}},
  {{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::{BOB_KEY}:root"}}, "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
    "Resource": "arn:aws:s3:::pol-eval/home/bob/*"}},
  {{"Effect": "Allow", "Principal": {{"AWS": ["{BOB_KEY}"]}}, "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::pol-eval",
    "Condition": {{"StringLike": {{"s3:prefix": "home/bob/*"}}}}}},
  {{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::pol-eval/secret/*",
    "Condition": {{"NotIpAddress": {{"aws:SourceIp": "10.0.0.0/8"}}}}}}
]}}"#
    );
    alice.put_bucket_policy().bucket("pol-eval").policy(policy).send().await.ok_or_panic("PutBucketPolicy");

    // Anonymous: what the policy opens, and nothing else.
    assert_eq!(anonymous(&server, "GET", "/pol-eval/public/a"), 200);
    assert_eq!(anonymous(&server, "GET", "/pol-eval/tagged"), 200, "s3:ExistingObjectTag");
    assert_eq!(anonymous(&server, "GET", "/pol-eval/home/alice/diary"), 403);
    assert_eq!(anonymous(&server, "GET", "/pol-eval"), 403);
    assert_eq!(anonymous(&server, "PUT", "/pol-eval/public/new"), 403);

    // Bob: his home, by key and by listing prefix.
    assert_eq!(get(&bob, "pol-eval", "home/bob/notes").await, b"home/bob/notes");
    put(&bob, "pol-eval", "home/bob/new", b"bob's").await;
    assert_eq!(status_of(bob.put_object().bucket("pol-eval").key("home/alice/x").body(body(b"x")).send().await), 403);
    assert_eq!(status_of(bob.get_object().bucket("pol-eval").key("home/alice/diary").send().await), 403);
    let listed = bob.list_objects_v2().bucket("pol-eval").prefix("home/bob/").send().await.ok_or_panic("Bob lists his prefix");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["home/bob/new", "home/bob/notes"]);
    assert_eq!(status_of(bob.list_objects_v2().bucket("pol-eval").send().await), 403, "no prefix: the condition fails");
    assert_eq!(status_of(bob.list_objects_v2().bucket("pol-eval").prefix("home/").send().await), 403);
    // Multi-delete under a policy: each key on its own.
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("home/bob/new").build().expect("id"))
        .objects(ObjectIdentifier::builder().key("home/alice/diary").build().expect("id"))
        .build()
        .expect("delete");
    let result = bob.delete_objects().bucket("pol-eval").delete(delete).send().await.ok_or_panic("DeleteObjects");
    let deleted: Vec<&str> = result.deleted().iter().filter_map(|d| d.key()).collect();
    let failed: Vec<(&str, &str)> = result.errors().iter().map(|e| (e.key().unwrap_or(""), e.code().unwrap_or(""))).collect();
    assert_eq!((deleted, failed), (vec!["home/bob/new"], vec![("home/alice/diary", "AccessDenied")]));
    assert_eq!(get(&alice, "pol-eval", "home/alice/diary").await, b"home/alice/diary");

    // A Deny binds the owner too, for everything but the policy itself.
    assert_eq!(status_of(alice.get_object().bucket("pol-eval").key("secret/plan").send().await), 403);
    assert_eq!(status_of(alice.delete_object().bucket("pol-eval").key("secret/plan").send().await), 403);
    assert_eq!(get(&alice, "pol-eval", "home/alice/diary").await, b"home/alice/diary", "elsewhere the ACL lets the owner in");
    alice.delete_bucket_policy().bucket("pol-eval").send().await.ok_or_panic("the owner may always remove the policy");
    assert_eq!(get(&alice, "pol-eval", "secret/plan").await, b"secret/plan");
    assert_eq!(anonymous(&server, "GET", "/pol-eval/public/a"), 403, "without the policy the ACLs decide again");
    assert_eq!(status_of(bob.get_object().bucket("pol-eval").key("home/bob/notes").send().await), 403);
}

#[tokio::test]
async fn public_access_blocks_refuse_and_ignore_what_they_name() {
    use aws_sdk_s3::types::{BucketCannedAcl, ObjectCannedAcl, PublicAccessBlockConfiguration};
    let server = Server::start("policy_public_access_block");
    let client = server.client();
    create_bucket(&client, "pab").await;
    put(&client, "pab", "open", b"open").await;
    let (status, code) = expect_error(client.get_public_access_block().bucket("pab").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchPublicAccessBlockConfiguration"));
    // With no policy, the status says what the bucket's ACL makes it (as Ceph RGW answers).
    let is_public = |client: aws_sdk_s3::Client| async move {
        let status = client.get_bucket_policy_status().bucket("pab").send().await.ok_or_panic("GetBucketPolicyStatus");
        status.policy_status().and_then(|s| s.is_public())
    };
    assert_eq!(is_public(client.clone()).await, Some(false), "private, no policy");
    client.put_bucket_acl().bucket("pab").acl(BucketCannedAcl::PublicRead).send().await.ok_or_panic("public-read");
    assert_eq!(is_public(client.clone()).await, Some(true), "public-read ACL, no policy");
    client.put_bucket_acl().bucket("pab").acl(BucketCannedAcl::Private).send().await.ok_or_panic("private");
    let public_policy = r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pab/*"}]}"#;
    let bob_policy = format!(
        r#"{{"Statement": [{{"Effect": "Allow", "Principal": {{"AWS": "{BOB_KEY}"}}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pab/*"}}]}}"#
    );

    // Block: public ACLs and public policies are refused; private ones still go.
    let block = PublicAccessBlockConfiguration::builder().block_public_acls(true).block_public_policy(true).build();
    client.put_public_access_block().bucket("pab").public_access_block_configuration(block.clone()).send().await.ok_or_panic("Put");
    let got = client.get_public_access_block().bucket("pab").send().await.ok_or_panic("Get");
    let read = got.public_access_block_configuration().expect("configuration");
    let flags = (read.block_public_acls(), read.ignore_public_acls(), read.block_public_policy(), read.restrict_public_buckets());
    assert_eq!(flags, (Some(true), Some(false), Some(true), Some(false)));
    let refused = [
        ("public-read bucket ACL", status_of(client.put_bucket_acl().bucket("pab").acl(BucketCannedAcl::PublicRead).send().await)),
        ("public-read PUT", status_of(client.put_object().bucket("pab").key("k").body(body(b"x")).acl(ObjectCannedAcl::PublicRead).send().await)),
        ("authenticated-read object ACL", status_of(client.put_object_acl().bucket("pab").key("open").acl(ObjectCannedAcl::AuthenticatedRead).send().await)),
        ("public policy", status_of(client.put_bucket_policy().bucket("pab").policy(public_policy).send().await)),
    ];
    for (what, status) in refused {
        assert_eq!(status, 403, "{what}");
    }
    assert_eq!(status_of(client.head_object().bucket("pab").key("k").send().await), 404, "the refused PUT stored nothing");
    client.put_bucket_acl().bucket("pab").acl(BucketCannedAcl::Private).send().await.ok_or_panic("private ACL");
    client.put_bucket_policy().bucket("pab").policy(&bob_policy).send().await.ok_or_panic("a policy naming one user");
    let status = client.get_bucket_policy_status().bucket("pab").send().await.ok_or_panic("GetBucketPolicyStatus");
    assert_eq!(status.policy_status().and_then(|s| s.is_public()), Some(false));

    // Ignore and restrict: what is already public stops counting, for everyone but the owner.
    client.delete_public_access_block().bucket("pab").send().await.ok_or_panic("Delete");
    client.put_object_acl().bucket("pab").key("open").acl(ObjectCannedAcl::PublicRead).send().await.ok_or_panic("public object");
    put(&client, "pab", "by-policy", b"p").await;
    client.put_bucket_policy().bucket("pab").policy(public_policy).send().await.ok_or_panic("public policy");
    let status = client.get_bucket_policy_status().bucket("pab").send().await.ok_or_panic("GetBucketPolicyStatus");
    assert_eq!(status.policy_status().and_then(|s| s.is_public()), Some(true));
    assert_eq!((anonymous(&server, "GET", "/pab/open"), anonymous(&server, "GET", "/pab/by-policy")), (200, 200));
    let ignore = PublicAccessBlockConfiguration::builder().ignore_public_acls(true).restrict_public_buckets(true).build();
    client.put_public_access_block().bucket("pab").public_access_block_configuration(ignore).send().await.ok_or_panic("Put");
    assert_eq!((anonymous(&server, "GET", "/pab/open"), anonymous(&server, "GET", "/pab/by-policy")), (403, 403));
    assert_eq!(get(&client, "pab", "by-policy").await, b"p", "the owner is not restricted");
    // Kept across a restart.
    let server = Server::start_on(server.stop());
    assert_eq!(anonymous(&server, "GET", "/pab/open"), 403);
    let client = server.client();
    client.delete_public_access_block().bucket("pab").send().await.ok_or_panic("Delete");
    assert_eq!((anonymous(&server, "GET", "/pab/open"), anonymous(&server, "GET", "/pab/by-policy")), (200, 200));
}

/// Conditions on what a write sends: its encryption header (`s3:x-amz-server-side-encryption`,
/// as policies that require encryption at rest are written), its grant headers
/// (`s3:x-amz-grant-full-control`), and for PutObjectTagging the tags the object has
/// (`s3:ExistingObjectTag/<key>`) and the ones the request sets (`s3:RequestObjectTag/<key>`).
#[tokio::test]
async fn conditions_on_what_a_write_sends() {
    use aws_sdk_s3::types::{ServerSideEncryption, Tag, Tagging};
    let server = Server::start("policy_write_conditions");
    let alice = server.client();
    let bob = with_bob(&server).await;
    create_bucket(&alice, "pol-w").await;
    let policy = format!(
        r#"{{"Statement": [
            {{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::pol-w/*",
              "Condition": {{"StringNotEquals": {{"s3:x-amz-server-side-encryption": "AES256"}}}}}},
            {{"Effect": "Allow", "Principal": {{"AWS": "{BOB_KEY}"}}, "Action": "s3:PutObject", "Resource": "arn:aws:s3:::pol-w/*",
              "Condition": {{"StringEquals": {{"s3:x-amz-grant-full-control": "id={alice}"}}}}}},
            {{"Effect": "Allow", "Principal": {{"AWS": "{BOB_KEY}"}}, "Action": "s3:PutObjectTagging", "Resource": "arn:aws:s3:::pol-w/*",
              "Condition": {{"StringEquals": {{"s3:ExistingObjectTag/security": "public", "s3:RequestObjectTag/security": "public"}}}}}}
        ]}}"#,
        alice = ACCESS_KEY
    );
    alice.put_bucket_policy().bucket("pol-w").policy(policy).send().await.ok_or_panic("policy");
    let plain = alice.put_object().bucket("pol-w").key("plain").body(body(b"x")).send().await;
    assert_eq!(status_of(plain), 403, "a PUT without encryption is denied");
    let encrypted = |client: &aws_sdk_s3::Client, key: &str| {
        client.put_object().bucket("pol-w").key(key).body(body(b"x")).server_side_encryption(ServerSideEncryption::Aes256)
    };
    encrypted(&alice, "enc").tagging("security=public").send().await.ok_or_panic("an encrypted PUT");
    assert_eq!(status_of(encrypted(&bob, "bob-a").send().await), 403, "bob without the grant");
    let grant = format!("id={ACCESS_KEY}");
    encrypted(&bob, "bob-b").grant_full_control(&grant).send().await.ok_or_panic("bob granting alice full control");
    let tags = |value: &str| Tagging::builder().tag_set(Tag::builder().key("security").value(value).build().expect("tag")).build().expect("tagging");
    let retag = |key: &str, value: &str| bob.put_object_tagging().bucket("pol-w").key(key).tagging(tags(value)).send();
    retag("enc", "public").await.ok_or_panic("bob keeping a public object public");
    assert_eq!(status_of(retag("enc", "private").await), 403, "bob making it private");
    alice.put_object_tagging().bucket("pol-w").key("enc").tagging(tags("private")).send().await.ok_or_panic("alice");
    assert_eq!(status_of(retag("enc", "public").await), 403, "bob retagging a private object");
}
