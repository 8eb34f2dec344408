//! PostObject (browser form uploads): a form signed with SigV4 as `generate_presigned_post`
//! makes it, sent raw (the SDK has no PostObject), then read back with the SDK. Also what a
//! policy refuses: another bucket, a key outside its prefix, a field it does not name, a file
//! outside its length range, an expired policy, a wrong signature, an anonymous form; and a form
//! into a bucket with Object Lock, which gets its default retention.

use base64::Engine as _;

use crate::harness::*;

const BOUNDARY: &str = "----corestoreFormBoundary9x";

/// A policy document, base64 as a form carries it, expiring `expires_in_s` from now.
fn policy(bucket: &str, expires_in_s: i64) -> (String, String) {
    let expiration = s3front::xml::format_timestamp_ms(((unix_now() + expires_in_s) * 1000) as u64);
    let date = s3front::sigv4::client::amz_date(unix_now());
    let credential = format!("{ACCESS_KEY}/{}/{REGION}/s3/aws4_request", &date[..8]);
    let json = format!(
        r#"{{"expiration": "{expiration}", "conditions": [{{"bucket": "{bucket}"}}, ["starts-with", "$key", "uploads/"],
        {{"x-amz-algorithm": "AWS4-HMAC-SHA256"}}, {{"x-amz-credential": "{credential}"}}, {{"x-amz-date": "{date}"}},
        ["content-length-range", 1, 10485760], ["starts-with", "$Content-Type", ""], ["starts-with", "$x-amz-meta-origin", ""],
        ["starts-with", "$success_action_status", ""]]}}"#
    );
    (base64::engine::general_purpose::STANDARD.encode(json), date)
}

/// The signature fields for `policy_b64` signed with `secret`.
pub(crate) fn signed_fields(policy_b64: &str, date: &str, secret: &str) -> Vec<(String, String)> {
    let key = s3front::sigv4::signing_key(secret, &date[..8], REGION, "s3");
    let signature = hex(&s3front::sigv4::hmac_sha256(&key, policy_b64.as_bytes()));
    vec![
        ("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()),
        ("x-amz-credential".into(), format!("{ACCESS_KEY}/{}/{REGION}/s3/aws4_request", &date[..8])),
        ("x-amz-date".into(), date.to_string()),
        ("policy".into(), policy_b64.to_string()),
        ("x-amz-signature".into(), signature),
    ]
}

pub(crate) fn form_body(fields: &[(String, String)], file_name: &str, file: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        out.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
            .as_bytes(),
    );
    out.extend_from_slice(file);
    out.extend_from_slice(format!("\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"submit\"\r\n\r\nUpload\r\n--{BOUNDARY}--\r\n").as_bytes());
    out
}

pub(crate) fn post(server: &Server, bucket: &str, body: &[u8]) -> RawResponse {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    raw_request(server.port, "POST", &format!("/{bucket}"), &[("content-type", content_type.as_str())], body)
}

fn fields(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn signed_forms_upload_small_and_large_files() {
    let server = Server::start("post_object_upload");
    let client = server.client();
    create_bucket(&client, "forms").await;
    let (policy_b64, date) = policy("forms", 300);
    // A file holding what looks like the start of a delimiter, and one of several chunks.
    let small = [b"line one\r\n--".as_slice(), &BOUNDARY.as_bytes()[..10], b"\r\nend"].concat();
    let large = pattern(3 * MIB + 5, 9);
    for (name, file) in [("small.txt", &small), ("large.bin", &large)] {
        let mut form = fields(&[("key", "uploads/${filename}"), ("Content-Type", "text/plain"), ("x-amz-meta-origin", "form")]);
        form.extend(signed_fields(&policy_b64, &date, SECRET_KEY));
        let answer = post(&server, "forms", &form_body(&form, name, file));
        assert_eq!(answer.status, 204, "{name}: {}", answer.body_text());
        assert_eq!(answer.header("etag"), Some(etag_of(file).as_str()), "{name}: ETag is the file's MD5");
        let key = format!("uploads/{name}");
        let got = client.get_object().bucket("forms").key(&key).send().await.ok_or_panic("GET posted");
        assert_eq!(got.content_type(), Some("text/plain"));
        assert_eq!(got.metadata().and_then(|m| m.get("origin")).map(String::as_str), Some("form"));
        assert_same_bytes(&collect(got).await, file, &key);
    }

    // success_action_status=201 answers a PostResponse document.
    let mut form = fields(&[("key", "uploads/201"), ("success_action_status", "201")]);
    form.extend(signed_fields(&policy_b64, &date, SECRET_KEY));
    let answer = post(&server, "forms", &form_body(&form, "f", b"created"));
    assert_eq!(answer.status, 201, "{}", answer.body_text());
    // No namespace on the root, as in S3's example: s3-tests finds `Key` by its bare name.
    assert!(answer.body_text().contains("<PostResponse><Location>"), "{}", answer.body_text());
    assert_eq!(xml_element(&answer.body_text(), "Key"), Some("uploads/201"));
    assert_eq!(xml_element(&answer.body_text(), "ETag"), Some(format!("&quot;{}&quot;", hex(&md5(b"created"))).as_str()));

    // An x-amz-checksum-* field is checked against the file (the policy need not name it),
    // kept, and answered as a PUT's checksum is.
    const SHA256_OF_CHECKED: &str = "5ho9eMZRM8cmDEPnGdl8RuFr1Qxk7ngAU2zxTGQHphc=";
    let checked = |key: &str, value: &str| {
        let mut form = fields(&[("key", key), ("x-amz-checksum-sha256", value)]);
        form.extend(signed_fields(&policy_b64, &date, SECRET_KEY));
        post(&server, "forms", &form_body(&form, "f", b"checked"))
    };
    let answer = checked("uploads/checked", SHA256_OF_CHECKED);
    assert_eq!(answer.status, 204, "{}", answer.body_text());
    let head = client
        .head_object()
        .bucket("forms")
        .key("uploads/checked")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .ok_or_panic("HEAD");
    assert_eq!(head.checksum_sha256(), Some(SHA256_OF_CHECKED));
    let answer = checked("uploads/corrupt", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    assert_eq!((answer.status, xml_element(&answer.body_text(), "Code")), (400, Some("BadDigest")), "{}", answer.body_text());
    assert_eq!(status_of(client.head_object().bucket("forms").key("uploads/corrupt").send().await), 404, "nothing stored");
}

#[tokio::test]
async fn policies_refuse_what_they_do_not_allow() {
    let server = Server::start("post_object_refusals");
    let client = server.client();
    create_bucket(&client, "forms").await;
    create_bucket(&client, "other").await;
    let (policy_b64, date) = policy("forms", 300);
    let signed = |extra: &[(&str, &str)]| {
        let mut form = fields(extra);
        form.extend(signed_fields(&policy_b64, &date, SECRET_KEY));
        form
    };
    // (what, bucket, fields, file, status, code)
    type Case<'a> = (&'a str, &'a str, Vec<(String, String)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("a key outside the policy's prefix", "forms", signed(&[("key", "elsewhere/k")]), b"x".to_vec(), 403, "AccessDenied"),
        ("a field the policy does not name", "forms", signed(&[("key", "uploads/k"), ("acl", "private")]), b"x".to_vec(), 403, "AccessDenied"),
        ("another bucket", "other", signed(&[("key", "uploads/k")]), b"x".to_vec(), 403, "AccessDenied"),
        ("an empty file below the length range", "forms", signed(&[("key", "uploads/k")]), Vec::new(), 400, "EntityTooSmall"),
        ("a file above the length range", "forms", signed(&[("key", "uploads/k")]), pattern(10 * MIB + 1, 2), 400, "EntityTooLarge"),
        ("no key", "forms", signed(&[]), b"x".to_vec(), 400, "InvalidArgument"),
        ("anonymous", "forms", fields(&[("key", "uploads/k")]), b"x".to_vec(), 403, "AccessDenied"),
    ];
    for (what, bucket, form, file, status, code) in cases {
        let answer = post(&server, bucket, &form_body(&form, "f", &file));
        assert_eq!((answer.status, xml_element(&answer.body_text(), "Code")), (status, Some(code)), "{what}: {}", answer.body_text());
    }
    // A wrong secret, and an expired policy.
    let mut form = fields(&[("key", "uploads/k")]);
    form.extend(signed_fields(&policy_b64, &date, "not-the-secret-key"));
    let answer = post(&server, "forms", &form_body(&form, "f", b"x"));
    assert_eq!((answer.status, xml_element(&answer.body_text(), "Code")), (403, Some("SignatureDoesNotMatch")));
    let (expired, expired_date) = policy("forms", -60);
    let mut form = fields(&[("key", "uploads/k")]);
    form.extend(signed_fields(&expired, &expired_date, SECRET_KEY));
    let answer = post(&server, "forms", &form_body(&form, "f", b"x"));
    assert_eq!((answer.status, xml_element(&answer.body_text(), "Code")), (403, Some("AccessDenied")), "expired");
    // A form cut off inside its file stores nothing.
    let mut form = fields(&[("key", "uploads/cut")]);
    form.extend(signed_fields(&policy_b64, &date, SECRET_KEY));
    let body = form_body(&form, "f", &pattern(100_000, 3));
    let answer = post(&server, "forms", &body[..body.len() - 200]);
    assert_eq!(answer.status, 400, "{}", answer.body_text());
    // Nothing refused was stored.
    for bucket in ["forms", "other"] {
        let listed = client.list_objects_v2().bucket(bucket).send().await.ok_or_panic("list");
        assert_eq!(listed.key_count(), Some(0), "{bucket}: {:?}", listed.contents());
    }
}

/// A form with no policy and no signature is anonymous: a bucket whose ACL lets everyone write
/// takes it (with the form's `acl`), and the object belongs to nobody but is readable as its
/// ACL says. A private bucket refuses it (above).
#[tokio::test]
async fn anonymous_forms_upload_into_a_bucket_everyone_may_write() {
    let server = Server::start("post_object_anonymous");
    let client = server.client();
    client
        .create_bucket()
        .bucket("open")
        .acl(aws_sdk_s3::types::BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .ok_or_panic("create public-read-write bucket");
    let form = fields(&[("key", "foo.txt"), ("acl", "public-read"), ("Content-Type", "text/plain")]);
    let answer = post(&server, "open", &form_body(&form, "f", b"bar"));
    assert_eq!(answer.status, 204, "{}", answer.body_text());
    let anonymous = raw_request(server.port, "GET", "/open/foo.txt", &[], b"");
    assert_eq!((anonymous.status, anonymous.body.as_slice()), (200, b"bar".as_slice()), "public-read: {}", anonymous.body_text());
    assert_eq!(get(&client, "open", "foo.txt").await, b"bar");
    // Without the acl field the object is its writer's, who is nobody: not even the bucket's
    // owner may read it, as in S3. It may still be deleted (a write to the bucket).
    let form = fields(&[("key", "private.txt")]);
    assert_eq!(post(&server, "open", &form_body(&form, "f", b"x")).status, 204);
    let (status, code) = expect_error(client.get_object().bucket("open").key("private.txt").send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
    client.delete_object().bucket("open").key("private.txt").send().await.ok_or_panic("owner deletes");
    // A form asking for a canned ACL S3 does not have is refused.
    let form = fields(&[("key", "k"), ("acl", "public")]);
    let answer = post(&server, "open", &form_body(&form, "f", b"x"));
    assert_eq!((answer.status, xml_element(&answer.body_text(), "Code")), (400, Some("InvalidArgument")), "{}", answer.body_text());
}

#[tokio::test]
async fn a_form_into_a_locked_bucket_gets_the_default_retention() {
    use aws_sdk_s3::types::{DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockMode, ObjectLockRetentionMode, ObjectLockRule};
    let server = Server::start("post_object_lock");
    let client = server.client();
    client.create_bucket().bucket("forms-locked").object_lock_enabled_for_bucket(true).send().await.ok_or_panic("CreateBucket");
    let retention = DefaultRetention::builder().mode(ObjectLockRetentionMode::Governance).days(1).build();
    let config = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(ObjectLockRule::builder().default_retention(retention).build())
        .build();
    client.put_object_lock_configuration().bucket("forms-locked").object_lock_configuration(config).send().await.ok_or_panic("Put");
    let (policy_b64, date) = policy("forms-locked", 300);
    let mut form = fields(&[("key", "uploads/locked")]);
    form.extend(signed_fields(&policy_b64, &date, SECRET_KEY));
    let answer = post(&server, "forms-locked", &form_body(&form, "f", b"kept"));
    assert_eq!(answer.status, 204, "{}", answer.body_text());
    let version = answer.header("x-amz-version-id").expect("a form's new version is named").to_string();
    let head = client.head_object().bucket("forms-locked").key("uploads/locked").version_id(&version).send().await.ok_or_panic("HeadObject");
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
    let (status, code) = expect_error(client.delete_object().bucket("forms-locked").key("uploads/locked").version_id(&version).send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
}
