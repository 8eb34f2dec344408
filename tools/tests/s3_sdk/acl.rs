//! ACLs with two users and anonymous requests: canned ACLs on buckets and objects decide who may
//! list, read and write (the matrix Ceph's s3-tests walk), grants to a user by canonical ID (its
//! access key), ACL bodies, what GetAcl answers, and what is refused. Expected outcomes are S3's
//! (legacy ACL model, object writer owns the object).


use aws_sdk_s3::types::{
    AccessControlPolicy, BucketCannedAcl, Grant, Grantee, ObjectCannedAcl, Owner, Permission, Type,
};

use crate::harness::*;

const BOB_KEY: &str = "AKIABOBACLTEST000001";
const BOB_SECRET: &str = "bob-acl-secret-key-0123456789abcdefghij";
const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

/// Adds Bob and waits until the server takes his key.
async fn with_bob(server: &Server) -> aws_sdk_s3::Client {
    add_user(server, BOB_KEY, BOB_SECRET).await
}

/// What one requester could do in one bucket.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    read_acled: u16,
    read_default: u16,
    list: u16,
    overwrite_acled: u16,
    write_new: u16,
}

async fn as_bob(bob: &aws_sdk_s3::Client, bucket: &str) -> Outcome {
    Outcome {
        read_acled: status_of(bob.get_object().bucket(bucket).key("foo").send().await),
        read_default: status_of(bob.get_object().bucket(bucket).key("bar").send().await),
        list: status_of(bob.list_objects().bucket(bucket).send().await),
        overwrite_acled: status_of(bob.put_object().bucket(bucket).key("foo").body(body(b"bob was here")).send().await),
        write_new: status_of(bob.put_object().bucket(bucket).key("new-bob").body(body(b"new")).send().await),
    }
}

fn as_anonymous(server: &Server, bucket: &str) -> Outcome {
    let status = |method: &str, target: String, data: &[u8]| raw_request(server.port, method, &target, &[], data).status;
    Outcome {
        read_acled: status("GET", format!("/{bucket}/foo"), b""),
        read_default: status("GET", format!("/{bucket}/bar"), b""),
        list: status("GET", format!("/{bucket}"), b""),
        overwrite_acled: status("PUT", format!("/{bucket}/foo"), b"anonymous was here"),
        write_new: status("PUT", format!("/{bucket}/new-anon"), b"new"),
    }
}

#[tokio::test]
async fn canned_acls_decide_who_lists_reads_and_writes() {
    let server = Server::start("acl_canned_matrix");
    let alice = server.client();
    let bob = with_bob(&server).await;
    let bucket_acls = [
        BucketCannedAcl::Private,
        BucketCannedAcl::PublicRead,
        BucketCannedAcl::PublicReadWrite,
        BucketCannedAcl::AuthenticatedRead,
    ];
    let object_acls = [ObjectCannedAcl::Private, ObjectCannedAcl::PublicRead, ObjectCannedAcl::AuthenticatedRead];
    for (i, bucket_acl) in bucket_acls.iter().enumerate() {
        for (j, object_acl) in object_acls.iter().enumerate() {
            let bucket = format!("matrix-{i}-{j}");
            create_bucket(&alice, &bucket).await;
            alice.put_bucket_acl().bucket(&bucket).acl(bucket_acl.clone()).send().await.ok_or_panic("PutBucketAcl");
            put(&alice, &bucket, "foo", b"foocontent").await;
            alice.put_object_acl().bucket(&bucket).key("foo").acl(object_acl.clone()).send().await.ok_or_panic("PutObjectAcl");
            put(&alice, &bucket, "bar", b"barcontent").await;

            let ok = |yes: bool| if yes { 200 } else { 403 };
            let bucket_lists_for = |signed: bool| match bucket_acl {
                BucketCannedAcl::PublicRead | BucketCannedAcl::PublicReadWrite => true,
                BucketCannedAcl::AuthenticatedRead => signed,
                _ => false,
            };
            let object_reads_for = |signed: bool| match object_acl {
                ObjectCannedAcl::PublicRead => true,
                ObjectCannedAcl::AuthenticatedRead => signed,
                _ => false,
            };
            let writable = *bucket_acl == BucketCannedAcl::PublicReadWrite;
            for signed in [true, false] {
                let expected = Outcome {
                    read_acled: ok(object_reads_for(signed)),
                    read_default: 403,
                    list: ok(bucket_lists_for(signed)),
                    overwrite_acled: ok(writable),
                    write_new: ok(writable),
                };
                // Bob first: his overwrite replaces foo (and its ACL) in a writable bucket, so
                // the anonymous check that follows reads Bob's object instead; put Alice's back.
                let got = if signed { as_bob(&bob, &bucket).await } else { as_anonymous(&server, &bucket) };
                assert_eq!(got, expected, "bucket {bucket_acl:?}, object {object_acl:?}, {}", if signed { "Bob" } else { "anonymous" });
                if writable && signed {
                    put(&alice, &bucket, "foo", b"foocontent").await;
                    alice.put_object_acl().bucket(&bucket).key("foo").acl(object_acl.clone()).send().await.ok_or_panic("PutObjectAcl again");
                }
            }
            // The owner reads and lists whatever the ACLs say to others; what Bob wrote is his.
            assert_eq!(get(&alice, &bucket, "bar").await, b"barcontent");
            alice.list_objects_v2().bucket(&bucket).send().await.ok_or_panic("owner lists");
            if writable {
                let (status, _) = expect_error(alice.get_object().bucket(&bucket).key("new-bob").send().await);
                assert_eq!(status, 403, "an object Bob wrote is Bob's: its owner's full control alone");
                assert_eq!(get(&bob, &bucket, "new-bob").await, b"new");
            }
        }
    }
}

fn user_grant(id: &str, permission: Permission) -> Grant {
    Grant::builder()
        .grantee(Grantee::builder().r#type(Type::CanonicalUser).id(id).build().expect("grantee"))
        .permission(permission)
        .build()
}

fn grants_of(grants: &[Grant]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = grants
        .iter()
        .map(|g| {
            let grantee = g.grantee().expect("grantee");
            let who = grantee.id().or(grantee.uri()).unwrap_or("?").to_string();
            (who, g.permission().map(|p| p.as_str().to_string()).unwrap_or_default())
        })
        .collect();
    out.sort();
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    out.sort();
    out
}

#[tokio::test]
async fn grants_to_a_user_give_that_user_what_they_name() {
    let server = Server::start("acl_user_grants");
    let alice = server.client();
    let bob = with_bob(&server).await;
    create_bucket(&alice, "shared").await;
    put(&alice, "shared", "doc", b"alice's doc").await;

    // A new bucket's ACL: its owner's full control.
    let acl = alice.get_bucket_acl().bucket("shared").send().await.ok_or_panic("GetBucketAcl");
    assert_eq!(acl.owner().and_then(Owner::id), Some(ACCESS_KEY));
    assert_eq!(grants_of(acl.grants()), pairs(&[(ACCESS_KEY, "FULL_CONTROL")]));

    // READ (an ACL body, as the SDK sends it): Bob lists, but neither writes nor reads the ACL.
    let policy = |grants: Vec<Grant>| {
        AccessControlPolicy::builder().owner(Owner::builder().id(ACCESS_KEY).build()).set_grants(Some(grants)).build()
    };
    let read = policy(vec![user_grant(ACCESS_KEY, Permission::FullControl), user_grant(BOB_KEY, Permission::Read)]);
    alice.put_bucket_acl().bucket("shared").access_control_policy(read).send().await.ok_or_panic("grant READ");
    let acl = alice.get_bucket_acl().bucket("shared").send().await.ok_or_panic("GetBucketAcl");
    assert_eq!(grants_of(acl.grants()), pairs(&[(ACCESS_KEY, "FULL_CONTROL"), (BOB_KEY, "READ")]));
    bob.list_objects_v2().bucket("shared").send().await.ok_or_panic("Bob lists with READ");
    assert_eq!(status_of(bob.put_object().bucket("shared").key("b").body(body(b"x")).send().await), 403);
    assert_eq!(status_of(bob.get_bucket_acl().bucket("shared").send().await), 403);
    assert_eq!(status_of(bob.get_object().bucket("shared").key("doc").send().await), 403, "bucket READ is not object READ");
    // A missing key: Bob may list, so he learns it is missing; without READ he would not.
    assert_eq!(expect_error(bob.get_object().bucket("shared").key("nope").send().await), (404, "NoSuchKey".to_string()));

    // WRITE (a grant header): Bob writes; the object is his, and Alice may not read it unless
    // Bob gives her a grant (bucket-owner-full-control), though she may delete it.
    alice.put_bucket_acl().bucket("shared").grant_write(format!("id=\"{BOB_KEY}\"")).send().await.ok_or_panic("grant WRITE");
    put(&bob, "shared", "bobs", b"bob's").await;
    assert_eq!(status_of(alice.get_object().bucket("shared").key("bobs").send().await), 403);
    assert_eq!(status_of(bob.list_objects_v2().bucket("shared").send().await), 403, "the grant header replaced the READ grant");
    let acl = bob.get_object_acl().bucket("shared").key("bobs").send().await.ok_or_panic("Bob reads his object's ACL");
    assert_eq!(acl.owner().and_then(Owner::id), Some(BOB_KEY));
    bob.put_object()
        .bucket("shared")
        .key("bobs")
        .body(body(b"bob's, shared"))
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .send()
        .await
        .ok_or_panic("Bob writes for the bucket owner");
    assert_eq!(get(&alice, "shared", "bobs").await, b"bob's, shared");
    let acl = alice.get_object_acl().bucket("shared").key("bobs").send().await.ok_or_panic("Alice reads the object's ACL");
    assert_eq!(grants_of(acl.grants()), pairs(&[(BOB_KEY, "FULL_CONTROL"), (ACCESS_KEY, "FULL_CONTROL")]));
    // Alice's header grant gave the bucket Bob's WRITE alone: she no longer writes (or
    // deletes) herself, and Bob, with WRITE, deletes any object, Alice's too.
    assert_eq!(status_of(alice.put_object().bucket("shared").key("a").body(body(b"x")).send().await), 403);
    assert_eq!(status_of(alice.delete_object().bucket("shared").key("bobs").send().await), 403);
    bob.delete_object().bucket("shared").key("bobs").send().await.ok_or_panic("delete needs only bucket WRITE");

    // READ_ACP and WRITE_ACP on an object: Bob reads its ACL, then makes it readable to himself.
    alice.put_bucket_acl().bucket("shared").acl(BucketCannedAcl::Private).send().await.ok_or_panic("owner may always set the ACL");
    alice
        .put_object_acl()
        .bucket("shared")
        .key("doc")
        .grant_read_acp(format!("id={BOB_KEY}"))
        .grant_write_acp(format!("id={BOB_KEY}"))
        .grant_full_control(format!("id={ACCESS_KEY}"))
        .send()
        .await
        .ok_or_panic("object ACP grants");
    assert_eq!(status_of(bob.get_object().bucket("shared").key("doc").send().await), 403);
    let acl = bob.get_object_acl().bucket("shared").key("doc").send().await.ok_or_panic("READ_ACP");
    assert_eq!(acl.owner().and_then(Owner::id), Some(ACCESS_KEY), "the owner stays the writer");
    bob.put_object_acl()
        .bucket("shared")
        .key("doc")
        .grant_read(format!("id={BOB_KEY}"))
        .send()
        .await
        .ok_or_panic("WRITE_ACP");
    assert_eq!(get(&bob, "shared", "doc").await, b"alice's doc", "data unchanged by ACL changes");
    // Bob's ACL left Alice, the owner, without READ, but with her ACP rights.
    assert_eq!(status_of(alice.get_object().bucket("shared").key("doc").send().await), 403);
    assert_eq!(status_of(bob.get_object_acl().bucket("shared").key("doc").send().await), 403, "Bob's new ACL dropped his READ_ACP");
    alice.put_object_acl().bucket("shared").key("doc").acl(ObjectCannedAcl::Private).send().await.ok_or_panic("owner resets");
    assert_eq!(get(&alice, "shared", "doc").await, b"alice's doc");
}

#[tokio::test]
async fn an_owner_without_grants_keeps_only_its_acl_rights() {
    let server = Server::start("acl_no_grants");
    let client = server.client();
    create_bucket(&client, "bare").await;
    put(&client, "bare", "foo", b"bar").await;
    let empty = AccessControlPolicy::builder().owner(Owner::builder().id(ACCESS_KEY).build()).set_grants(Some(Vec::new())).build();
    client.put_bucket_acl().bucket("bare").access_control_policy(empty).send().await.ok_or_panic("clear grants");
    assert_eq!(get(&client, "bare", "foo").await, b"bar", "the object's own ACL still lets its owner read");
    assert_eq!(status_of(client.put_object().bucket("bare").key("baz").body(body(b"a")).send().await), 403);
    assert_eq!(status_of(client.list_objects_v2().bucket("bare").send().await), 403);
    let acl = client.get_bucket_acl().bucket("bare").send().await.ok_or_panic("owner reads the ACL");
    assert!(acl.grants().is_empty());
    client.put_bucket_acl().bucket("bare").acl(BucketCannedAcl::Private).send().await.ok_or_panic("owner writes the ACL");
    put(&client, "bare", "baz", b"a").await;
}

#[tokio::test]
async fn acls_persist_and_survive_tag_changes() {
    let server = Server::start("acl_persist");
    let client = server.client();
    client.create_bucket().bucket("pub").acl(BucketCannedAcl::PublicRead).send().await.ok_or_panic("create public-read");
    client.put_object().bucket("pub").key("open").body(body(b"hello")).acl(ObjectCannedAcl::PublicRead).send().await.ok_or_panic("PUT public-read");
    put(&client, "pub", "closed", b"secret").await;
    // A large (chunked) object keeps its ACL too.
    let large = pattern(3 * MIB, 4);
    client.put_object().bucket("pub").key("big").body(body(&large)).acl(ObjectCannedAcl::PublicRead).send().await.ok_or_panic("PUT large");
    let tags = aws_sdk_s3::types::Tagging::builder()
        .tag_set(aws_sdk_s3::types::Tag::builder().key("k").value("v").build().expect("tag"))
        .build()
        .expect("tagging");
    client.put_object_tagging().bucket("pub").key("open").tagging(tags).send().await.ok_or_panic("tag");

    let check = |server: &Server| {
        let get = |target: &str| raw_request(server.port, "GET", target, &[], b"");
        assert_eq!(get("/pub/open").body, b"hello");
        assert_eq!(get("/pub/big").body, large);
        assert_eq!(get("/pub/closed").status, 403);
        assert_eq!(get("/pub").status, 200, "anonymous lists a public-read bucket");
        assert_eq!(get("/pub/missing").status, 404, "and so learns what is missing");
    };
    check(&server);
    let data = server.stop();
    let server = Server::start_on(data);
    check(&server);
    let client = server.client();
    let acl = client.get_object_acl().bucket("pub").key("open").send().await.ok_or_panic("GetObjectAcl");
    assert_eq!(grants_of(acl.grants()), pairs(&[(ACCESS_KEY, "FULL_CONTROL"), (ALL_USERS, "READ")]));
    let tagging = client.get_object_tagging().bucket("pub").key("open").send().await.ok_or_panic("tags kept");
    assert_eq!(tagging.tag_set().len(), 1);
    // Overwriting an object replaces its ACL with the new request's (the default here).
    put(&client, "pub", "open", b"again").await;
    assert_eq!(raw_request(server.port, "GET", "/pub/open", &[], b"").status, 403);
}

#[tokio::test]
async fn bad_acls_are_refused_with_s3_errors() {
    let server = Server::start("acl_refused");
    let client = server.client();
    create_bucket(&client, "strict").await;
    put(&client, "strict", "k", b"v").await;
    let cases = [
        ("unknown canonical ID", client.put_bucket_acl().bucket("strict").grant_read("id=\"nobody-has-this-key\"").send().await, 400, "InvalidArgument"),
        ("e-mail grantee", client.put_bucket_acl().bucket("strict").grant_read("emailAddress=\"a@example.com\"").send().await, 400, "UnresolvableGrantByEmailAddress"),
        ("canned and grants", client.put_bucket_acl().bucket("strict").acl(BucketCannedAcl::PublicRead).grant_read(format!("id={ACCESS_KEY}")).send().await, 400, "InvalidRequest"),
        ("unknown group", client.put_bucket_acl().bucket("strict").grant_read("uri=\"http://example.com/everyone\"").send().await, 400, "InvalidArgument"),
    ];
    for (what, result, status, code) in cases {
        assert_eq!(expect_error(result), (status, code.to_string()), "{what}");
    }
    let (status, code) = expect_error(client.put_object_acl().bucket("strict").key("k").grant_read("id=ghost").send().await);
    assert_eq!((status, code.as_str()), (400, "InvalidArgument"));
    let (status, code) = expect_error(client.put_object().bucket("strict").key("n").body(body(b"x")).grant_read("id=ghost").send().await);
    assert_eq!((status, code.as_str()), (400, "InvalidArgument"), "PUT with a bad grant stores nothing");
    assert_eq!(status_of(client.head_object().bucket("strict").key("n").send().await), 404);
    // Raw: an unknown canned name, and a malformed ACL body.
    let auth_put = |target: &str, extra: &[(&str, &str)], data: &[u8]| {
        let creds = s3front::sigv4::client::Credentials { access_key: ACCESS_KEY.into(), secret_key: SECRET_KEY.into(), region: REGION.into() };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers = vec![("host".to_string(), format!("127.0.0.1:{}", server.port))];
        headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        headers.extend(s3front::sigv4::client::sign_headers(&creds, "PUT", path, query, &headers, "UNSIGNED-PAYLOAD", unix_now()));
        let refs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        raw_request(server.port, "PUT", target, &refs, data)
    };
    let answer = auth_put("/strict?acl", &[("x-amz-acl", "public")], b"");
    assert_eq!((answer.status, xml_element(&answer.body_text(), "Code")), (400, Some("InvalidArgument")), "{}", answer.body_text());
    let answer = auth_put("/strict?acl", &[], b"<AccessControlPolicy><AccessControlList><Grant><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>");
    assert_eq!((answer.status, xml_element(&answer.body_text(), "Code")), (400, Some("MalformedACLError")), "{}", answer.body_text());
    let answer = auth_put("/strict?acl", &[], b"");
    assert_eq!((answer.status, xml_element(&answer.body_text(), "Code")), (400, Some("MissingSecurityHeader")), "{}", answer.body_text());
    // Nothing above changed the bucket's ACL.
    let acl = client.get_bucket_acl().bucket("strict").send().await.ok_or_panic("GetBucketAcl");
    assert_eq!(grants_of(acl.grants()), pairs(&[(ACCESS_KEY, "FULL_CONTROL")]));
}

#[tokio::test]
async fn object_ownership_controls_turn_acls_off_or_hand_objects_to_the_bucket_owner() {
    use aws_sdk_s3::types::{ObjectOwnership, OwnershipControls, OwnershipControlsRule};
    let server = Server::start("acl_ownership");
    let alice = server.client();
    let bob = with_bob(&server).await;
    let controls = |o: ObjectOwnership| OwnershipControls::builder().rules(OwnershipControlsRule::builder().object_ownership(o).build().expect("rule")).build().expect("controls");

    // BucketOwnerEnforced at creation: ACLs are off. Bob may write (the policy lets him), and
    // what he writes is Alice's; setting an ACL is refused, reading one still works.
    alice.create_bucket().bucket("enforced").object_ownership(ObjectOwnership::BucketOwnerEnforced).send().await.ok_or_panic("create");
    let got = alice.get_bucket_ownership_controls().bucket("enforced").send().await.ok_or_panic("Get");
    let rule = got.ownership_controls().map(|c| c.rules()[0].object_ownership().clone());
    assert_eq!(rule, Some(ObjectOwnership::BucketOwnerEnforced));
    let policy = format!(
        r#"{{"Statement": [{{"Effect": "Allow", "Principal": {{"AWS": "{BOB_KEY}"}}, "Action": "s3:PutObject", "Resource": "arn:aws:s3:::enforced/*"}}]}}"#
    );
    alice.put_bucket_policy().bucket("enforced").policy(policy).send().await.ok_or_panic("policy");
    put(&bob, "enforced", "from-bob", b"bob's").await;
    assert_eq!(get(&alice, "enforced", "from-bob").await, b"bob's", "the bucket owner owns what Bob wrote");
    let acl = alice.get_object_acl().bucket("enforced").key("from-bob").send().await.ok_or_panic("GetObjectAcl");
    assert_eq!(acl.owner().and_then(Owner::id), Some(ACCESS_KEY));
    assert_eq!(status_of(bob.get_object().bucket("enforced").key("from-bob").send().await), 403);
    let refused = [
        ("public-read PUT", expect_error(alice.put_object().bucket("enforced").key("k").body(body(b"x")).acl(ObjectCannedAcl::PublicRead).send().await)),
        ("PutBucketAcl", expect_error(alice.put_bucket_acl().bucket("enforced").acl(BucketCannedAcl::PublicRead).send().await)),
        ("PutObjectAcl", expect_error(alice.put_object_acl().bucket("enforced").key("from-bob").acl(ObjectCannedAcl::PublicRead).send().await)),
    ];
    for (what, got) in refused {
        assert_eq!(got, (400, "AccessControlListNotSupported".to_string()), "{what}");
    }
    alice
        .put_object()
        .bucket("enforced")
        .key("k")
        .body(body(b"x"))
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .send()
        .await
        .ok_or_panic("bucket-owner-full-control is what ACLs-off means, and is taken");
    let (status, code) =
        expect_error(alice.create_bucket().bucket("enforced-2").object_ownership(ObjectOwnership::BucketOwnerEnforced).acl(BucketCannedAcl::PublicRead).send().await);
    assert_eq!((status, code.as_str()), (400, "InvalidBucketAclWithObjectOwnership"));

    // BucketOwnerPreferred: bucket-owner-full-control hands the object over; without it the
    // writer keeps it.
    create_bucket(&alice, "preferred").await;
    alice.put_bucket_acl().bucket("preferred").grant_write(format!("id={BOB_KEY}")).grant_full_control(format!("id={ACCESS_KEY}")).send().await.ok_or_panic("ACL");
    let (status, code) = expect_error(
        alice.put_bucket_ownership_controls().bucket("preferred").ownership_controls(controls(ObjectOwnership::BucketOwnerEnforced)).send().await,
    );
    assert_eq!((status, code.as_str()), (400, "InvalidBucketAclWithObjectOwnership"), "a bucket with grants cannot turn ACLs off");
    alice
        .put_bucket_ownership_controls()
        .bucket("preferred")
        .ownership_controls(controls(ObjectOwnership::BucketOwnerPreferred))
        .send()
        .await
        .ok_or_panic("Put");
    bob.put_object().bucket("preferred").key("given").body(body(b"g")).acl(ObjectCannedAcl::BucketOwnerFullControl).send().await.ok_or_panic("PUT");
    put(&bob, "preferred", "kept", b"k").await;
    let owner_of = |key: &'static str| {
        let alice = alice.clone();
        async move { alice.head_object().bucket("preferred").key(key).send().await.map(|_| ()).map_err(|e| e.raw_response().map(|r| r.status().as_u16())) }
    };
    assert_eq!(owner_of("given").await, Ok(()), "bucket-owner-full-control: Alice's");
    assert_eq!(owner_of("kept").await, Err(Some(403)), "the writer's");
    // Kept across a restart, and removable.
    let server = Server::start_on(server.stop());
    let alice = server.client();
    let got = alice.get_bucket_ownership_controls().bucket("enforced").send().await.ok_or_panic("Get after a restart");
    assert_eq!(got.ownership_controls().map(|c| c.rules()[0].object_ownership().clone()), Some(ObjectOwnership::BucketOwnerEnforced));
    // Turning ACLs off makes every object the bucket owner's, also one written before.
    alice.put_bucket_acl().bucket("preferred").acl(BucketCannedAcl::Private).send().await.ok_or_panic("private again");
    alice
        .put_bucket_ownership_controls()
        .bucket("preferred")
        .ownership_controls(controls(ObjectOwnership::BucketOwnerEnforced))
        .send()
        .await
        .ok_or_panic("enforce");
    assert_eq!(get(&alice, "preferred", "kept").await, b"k", "Bob's object is Alice's now");
    let acl = alice.get_object_acl().bucket("preferred").key("kept").send().await.ok_or_panic("GetObjectAcl");
    assert_eq!(acl.owner().and_then(Owner::id), Some(ACCESS_KEY));
    alice.delete_bucket_ownership_controls().bucket("preferred").send().await.ok_or_panic("Delete");
    let (status, code) = expect_error(alice.get_bucket_ownership_controls().bucket("preferred").send().await);
    assert_eq!((status, code.as_str()), (404, "OwnershipControlsNotFoundError"));
}

/// `ExpectedBucketOwner` (x-amz-expected-bucket-owner) and `ExpectedSourceBucketOwner`: a
/// request naming another owner than the bucket's is refused with AccessDenied and changes
/// nothing; naming the right one (the canonical ID GetBucketAcl reports) changes nothing either.
#[tokio::test]
async fn expected_bucket_owner_is_checked() {
    let server = Server::start("expected_bucket_owner");
    let client = server.client();
    create_bucket(&client, "cs-owned").await;
    let owner = client.get_bucket_acl().bucket("cs-owned").send().await.ok_or_panic("GetBucketAcl");
    let owner_id = owner.owner().and_then(|o| o.id()).expect("an owner id").to_string();
    client.put_object().bucket("cs-owned").key("k").body(body(b"data")).expected_bucket_owner(&owner_id).send().await.ok_or_panic("PutObject naming the owner");
    client.get_object().bucket("cs-owned").key("k").expected_bucket_owner(&owner_id).send().await.ok_or_panic("GetObject naming the owner");

    let (status, code) = expect_error(client.put_object().bucket("cs-owned").key("k").body(body(b"other")).expected_bucket_owner("123456789012").send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "PutObject naming another owner");
    assert_eq!(get(&client, "cs-owned", "k").await, b"data", "the refused PUT changed nothing");
    let (status, code) = expect_error(client.list_objects_v2().bucket("cs-owned").expected_bucket_owner("123456789012").send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "ListObjectsV2 naming another owner");

    let copy = client.copy_object().bucket("cs-owned").key("copy").copy_source("cs-owned/k");
    let (status, code) = expect_error(copy.clone().expected_source_bucket_owner("123456789012").send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "CopyObject naming another source owner");
    copy.expected_source_bucket_owner(&owner_id).send().await.ok_or_panic("CopyObject naming the source owner");
    assert_eq!(get(&client, "cs-owned", "copy").await, b"data");
}
