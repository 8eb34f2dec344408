//! Server-side encryption: SSE-S3 (`x-amz-server-side-encryption: AES256`, or a bucket's default
//! encryption), SSE-KMS (`aws:kms` and a key id, from the server's built-in key ring) and SSE-C
//! (the customer's key on every request). Round trips of every size,
//! ranges across chunk and part boundaries, the headers every response carries, ETags, every
//! refusal, copies from and to each kind, versions, forms, the data at rest being ciphertext,
//! restarts, and SSE-C's refusal over plain HTTP from a non-loopback peer.
//!
//! The SDK sends SSE-C's three headers as given: the base64 of the key and of its MD5 are
//! computed here (`CustomerKey`).
#![allow(clippy::disallowed_methods)] // a test process of its own: wall time, plain sockets

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumMode, CompletedMultipartUpload, CompletedPart, ObjectAttributes, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
};
use base64::Engine as _;

use crate::harness::*;
use crate::post_object::{form_body, post, signed_fields};

const AES256: &str = "AES256";
/// Round-trip sizes: empty, one byte, odd, a page, one chunk, an object large enough to be
/// stored in chunks and streamed (another write and read path), and one larger than the object
/// cache takes (4 MiB), which a core that does not own it reads chunk by chunk from the owner.
const SIZES: [usize; 7] = [0, 1, 13, 4 * KIB, MIB, 3 * MIB, 5 * MIB + 3];
/// A part of a multipart upload that is not the last (S3's minimum).
const PART: usize = 5 * MIB;

/// An SSE-C key as requests carry it: base64 of the 32 raw bytes, base64 of their MD5.
struct CustomerKey {
    b64: String,
    md5: String,
}

impl CustomerKey {
    fn new(seed: u64) -> CustomerKey {
        CustomerKey::from_raw(&pattern(32, seed))
    }

    /// Any bytes, for keys of the wrong length; the MD5 matches them.
    fn from_raw(raw: &[u8]) -> CustomerKey {
        let b64 = base64::engine::general_purpose::STANDARD;
        CustomerKey { b64: b64.encode(raw), md5: b64.encode(md5(raw)) }
    }
}

/// How an object is (to be) encrypted.
#[derive(Clone, Copy)]
enum Sse<'k> {
    Plain,
    S3,
    /// SSE-KMS under this key id.
    Kms(&'k str),
    C(&'k CustomerKey),
}

impl Sse<'_> {
    fn name(&self) -> &'static str {
        match self {
            Sse::Plain => "plaintext",
            Sse::S3 => "SSE-S3",
            Sse::Kms(_) => "SSE-KMS",
            Sse::C(_) => "SSE-C",
        }
    }
}

/// Sets SSE-C's three headers on a request.
macro_rules! ssec {
    ($request:expr, $key:expr) => {{
        let key: &CustomerKey = $key;
        $request.sse_customer_algorithm(AES256).sse_customer_key(&key.b64).sse_customer_key_md5(&key.md5)
    }};
}

/// Sets the copy source's SSE-C headers on a CopyObject or UploadPartCopy.
macro_rules! copy_source_ssec {
    ($request:expr, $key:expr) => {{
        let key: &CustomerKey = $key;
        $request
            .copy_source_sse_customer_algorithm(AES256)
            .copy_source_sse_customer_key(&key.b64)
            .copy_source_sse_customer_key_md5(&key.md5)
    }};
}

/// Asks a write (PutObject, CopyObject, CreateMultipartUpload) for `sse`.
macro_rules! with_sse {
    ($request:expr, $sse:expr) => {{
        let request = $request;
        match $sse {
            Sse::Plain => request,
            Sse::S3 => request.server_side_encryption(ServerSideEncryption::Aes256),
            Sse::Kms(id) => request.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(id),
            Sse::C(key) => ssec!(request, key),
        }
    }};
}

/// A read (GetObject, HeadObject) with the key `sse` needs: SSE-C's, or none.
macro_rules! with_read_key {
    ($request:expr, $sse:expr) => {{
        let request = $request;
        match $sse {
            Sse::C(key) => ssec!(request, key),
            Sse::Plain | Sse::S3 | Sse::Kms(_) => request,
        }
    }};
}

/// The encryption headers of an SDK output.
macro_rules! sse_headers {
    ($output:expr) => {
        (
            $output.server_side_encryption().cloned(),
            $output.ssekms_key_id(),
            $output.sse_customer_algorithm(),
            $output.sse_customer_key_md5(),
        )
    };
}

/// `x-amz-server-side-encryption`, `-aws-kms-key-id`, `-customer-algorithm`, `-customer-key-MD5`.
type Headers<'a> = (Option<ServerSideEncryption>, Option<&'a str>, Option<&'a str>, Option<&'a str>);

/// The response headers `sse` calls for: SSE-S3's `x-amz-server-side-encryption: AES256`,
/// SSE-KMS's `aws:kms` and key id, or SSE-C's algorithm and key MD5, and nothing else.
fn assert_headers(what: &str, actual: Headers, sse: Sse) {
    let expected: Headers = match sse {
        Sse::Plain => (None, None, None, None),
        Sse::S3 => (Some(ServerSideEncryption::Aes256), None, None, None),
        Sse::Kms(id) => (Some(ServerSideEncryption::AwsKms), Some(id), None, None),
        Sse::C(key) => (None, None, Some(AES256), Some(key.md5.as_str())),
    };
    assert_eq!(actual, expected, "{what}: encryption headers of {}", sse.name());
}

/// An SSE-C ETag: 32 hex digits that are not the data's MD5.
fn assert_masked_etag(what: &str, etag: &str, data: &[u8]) {
    let digits = etag.trim_matches('"');
    assert!(digits.len() == 32 && digits.bytes().all(|b| b.is_ascii_hexdigit()), "{what}: ETag {etag} is not 32 hex digits");
    assert_ne!(etag, etag_of(data), "{what}: an SSE-C ETag must not be the MD5 of the data");
}

/// The ETag S3 gives `data` stored under `sse`. (SSE-KMS's is not the MD5 on AWS either; that
/// is checked on its own, in `sse_kms_etag_is_not_the_md5`.)
fn assert_etag(what: &str, etag: &str, data: &[u8], sse: Sse) {
    match sse {
        Sse::C(_) => assert_masked_etag(what, etag, data),
        Sse::Kms(_) => {
            let digits = etag.trim_matches('"');
            assert!(digits.len() == 32 && digits.bytes().all(|b| b.is_ascii_hexdigit()), "{what}: ETag {etag} is not 32 hex digits");
        }
        Sse::Plain | Sse::S3 => assert_eq!(etag, etag_of(data), "{what}: ETag of {} is the MD5", sse.name()),
    }
}

/// PutObject with `sse`; checks the response's headers and returns its ETag.
async fn put_sse(client: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8], sse: Sse<'_>) -> String {
    let request = client.put_object().bucket(bucket).key(key).body(body(data));
    let out = with_sse!(request, sse).send().await.ok_or_panic(&format!("PutObject {key} ({})", sse.name()));
    assert_headers(&format!("PutObject {key}"), sse_headers!(out), sse);
    out.e_tag.expect("PutObject returns an ETag")
}

/// GetObject (of `range`) with the key `sse` needs; checks the headers and returns the body.
async fn get_sse(client: &aws_sdk_s3::Client, bucket: &str, key: &str, sse: Sse<'_>, range: Option<&str>) -> Vec<u8> {
    let request = client.get_object().bucket(bucket).key(key).set_range(range.map(str::to_string));
    let what = format!("GetObject {key} {range:?} ({})", sse.name());
    let out = with_read_key!(request, sse).send().await.ok_or_panic(&what);
    assert_headers(&what, sse_headers!(out), sse);
    collect(out).await
}

/// HEAD with the key `sse` needs; checks headers, length and ETag.
async fn head_sse(client: &aws_sdk_s3::Client, bucket: &str, key: &str, sse: Sse<'_>, size: usize, etag: &str) {
    let request = client.head_object().bucket(bucket).key(key);
    let what = format!("HeadObject {key} ({})", sse.name());
    let out = with_read_key!(request, sse).send().await.ok_or_panic(&what);
    assert_headers(&what, sse_headers!(out), sse);
    assert_eq!(out.content_length(), Some(size as i64), "{what}: Content-Length");
    assert_eq!(out.e_tag(), Some(etag), "{what}: ETag");
}

/// An SDK error's status, code and message.
fn error_of<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> (u16, String, String) {
    let message = result.as_ref().err().and_then(|e| e.message()).unwrap_or("").to_string();
    let (status, code) = expect_error(result);
    (status, code, message)
}

/// A request signed with the test user's key (unsigned payload), sent raw: for headers the SDK
/// will not send, and for statuses it does not show.
fn signed_request(server: &Server, method: &str, target: &str, extra: &[(&str, &str)], data: &[u8]) -> RawResponse {
    let creds = s3front::sigv4::client::Credentials { access_key: ACCESS_KEY.into(), secret_key: SECRET_KEY.into(), region: REGION.into() };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = vec![("host".to_string(), format!("127.0.0.1:{}", server.port))];
    headers.extend(extra.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())));
    headers.extend(s3front::sigv4::client::sign_headers(&creds, method, path, query, &headers, "UNSIGNED-PAYLOAD", unix_now()));
    let refs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    raw_request(server.port, method, target, &refs, data)
}

fn code_of(answer: &RawResponse) -> (u16, Option<String>) {
    (answer.status, xml_element(&answer.body_text(), "Code").map(str::to_string))
}

fn completed(etags: &[String]) -> CompletedMultipartUpload {
    let parts = etags.iter().enumerate().map(|(i, e)| CompletedPart::builder().part_number(i as i32 + 1).e_tag(e).build());
    CompletedMultipartUpload::builder().set_parts(Some(parts.collect())).build()
}

/// A multipart upload of `parts` under `sse` (SSE-C: the key on the create and every part, not
/// on the completion); checks each response's headers and returns the completion's ETag.
async fn multipart_sse(client: &aws_sdk_s3::Client, bucket: &str, key: &str, parts: &[Vec<u8>], sse: Sse<'_>) -> String {
    let create = with_sse!(client.create_multipart_upload().bucket(bucket).key(key), sse);
    let create = create.send().await.ok_or_panic(&format!("CreateMultipartUpload {key}"));
    assert_headers(&format!("CreateMultipartUpload {key}"), sse_headers!(create), sse);
    let upload_id = create.upload_id().expect("UploadId");
    let mut etags = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let request = client.upload_part().bucket(bucket).key(key).upload_id(upload_id).part_number(i as i32 + 1).body(body(part));
        let out = with_read_key!(request, sse).send().await.ok_or_panic(&format!("UploadPart {key} #{}", i + 1));
        assert_headers(&format!("UploadPart {key} #{}", i + 1), sse_headers!(out), sse);
        assert_etag(&format!("UploadPart {key} #{}", i + 1), out.e_tag().expect("part ETag"), part, sse);
        etags.push(out.e_tag().expect("part ETag").to_string());
    }
    let done = client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(completed(&etags))
        .send()
        .await
        .ok_or_panic(&format!("CompleteMultipartUpload {key}"));
    // The SDK's CompleteMultipartUpload output has no SSE-C fields; SSE-S3's and SSE-KMS's it has.
    let expected = match sse {
        Sse::S3 => (Some(ServerSideEncryption::Aes256), None),
        Sse::Kms(id) => (Some(ServerSideEncryption::AwsKms), Some(id)),
        Sse::Plain | Sse::C(_) => (None, None),
    };
    let actual = (done.server_side_encryption().cloned(), done.ssekms_key_id());
    assert_eq!(actual, expected, "CompleteMultipartUpload {key} ({})", sse.name());
    let etag = done.e_tag().expect("ETag").to_string();
    assert!(etag.ends_with(&format!("-{}\"", parts.len())), "multipart ETag {etag}");
    etag
}

async fn create_encrypted_bucket(client: &aws_sdk_s3::Client, bucket: &str, bucket_key_enabled: Option<bool>) {
    client
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(encryption_configuration(ServerSideEncryption::Aes256, bucket_key_enabled))
        .send()
        .await
        .ok_or_panic(&format!("PutBucketEncryption {bucket}"));
}

fn encryption_configuration(algorithm: ServerSideEncryption, bucket_key_enabled: Option<bool>) -> ServerSideEncryptionConfiguration {
    let by_default = ServerSideEncryptionByDefault::builder().sse_algorithm(algorithm).build().expect("SSEAlgorithm set");
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(by_default)
        .set_bucket_key_enabled(bucket_key_enabled)
        .build();
    ServerSideEncryptionConfiguration::builder().rules(rule).build().expect("a rule")
}

/// GetBucketEncryption: the default algorithm and BucketKeyEnabled.
async fn bucket_encryption(client: &aws_sdk_s3::Client, bucket: &str) -> (ServerSideEncryption, Option<bool>) {
    let out = client.get_bucket_encryption().bucket(bucket).send().await.ok_or_panic(&format!("GetBucketEncryption {bucket}"));
    let rules = out.server_side_encryption_configuration().expect("configuration").rules();
    assert_eq!(rules.len(), 1, "one rule: {rules:?}");
    let by_default = rules[0].apply_server_side_encryption_by_default().expect("ApplyServerSideEncryptionByDefault");
    (by_default.sse_algorithm().clone(), rules[0].bucket_key_enabled())
}

// ---------------------------------------------------------------------------------------------
// Round trips

/// Ranges to read of an object of `size`: its first byte, a suffix, the rest from the middle,
/// and, for a large object, ranges across its 1 MiB chunk boundaries.
fn ranges_for(size: usize) -> Vec<(String, Range<usize>)> {
    if size == 0 {
        return Vec::new();
    }
    let suffix = (size / 3).max(1);
    let mut ranges = vec![
        ("bytes=0-0".to_string(), 0..1),
        (format!("bytes=-{suffix}"), size - suffix..size),
        (format!("bytes={}-", size / 2), size / 2..size),
    ];
    if size >= 13 {
        ranges.push(("bytes=5-9".to_string(), 5..10));
    }
    if size > 2 * MIB {
        ranges.push((format!("bytes={}-{}", MIB - 100, MIB + 99), MIB - 100..MIB + 100));
        ranges.push((format!("bytes={}-{}", MIB - 1, 2 * MIB), MIB - 1..2 * MIB + 1));
        ranges.push((format!("bytes=-{}", size - MIB + 7), MIB - 7..size));
    }
    ranges
}

/// Round trips of every size under `sse`, on a server started with `flags`.
async fn round_trips(test_name: &str, flags: &[&str], sse: Sse<'_>) {
    let server = Server::start_with(test_name, flags);
    let client = server.client();
    create_bucket(&client, "cs-sse").await;
    for (i, size) in SIZES.into_iter().enumerate() {
        let data = pattern(size, 100 + i as u64);
        let key = format!("object-{size}");
        let etag = put_sse(&client, "cs-sse", &key, &data, sse).await;
        assert_etag(&format!("PutObject {key}"), &etag, &data, sse);
        // Ranges before any whole read: each on a new connection (a new client), which lands on
        // either core, so that some are read by the object's owner and some fetched from it by
        // the other core (another decrypting path).
        for (range, expected) in ranges_for(size) {
            let got = get_sse(&server.client(), "cs-sse", &key, sse, Some(&range)).await;
            assert_same_bytes(&got, &data[expected], &format!("uncached {range} of {size} bytes ({})", sse.name()));
        }
        // The first GET reads the store, and asks for the PUT's CRC32 (of the plaintext), which
        // the SDK checks the decrypted body against; the second may come from the object cache.
        let request = client.get_object().bucket("cs-sse").key(&key).checksum_mode(ChecksumMode::Enabled);
        let first = with_read_key!(request, sse).send().await.ok_or_panic(&format!("GET {key} with its checksum"));
        assert!(first.checksum_crc32().is_some(), "GET {key}: the CRC32 the PUT sent comes back");
        assert_same_bytes(&collect(first).await, &data, &format!("first GET of {size} bytes ({})", sse.name()));
        let got = get_sse(&client, "cs-sse", &key, sse, None).await;
        assert_same_bytes(&got, &data, &format!("second GET of {size} bytes ({})", sse.name()));
        head_sse(&client, "cs-sse", &key, sse, size, &etag).await;
        for (range, expected) in ranges_for(size) {
            let got = get_sse(&server.client(), "cs-sse", &key, sse, Some(&range)).await;
            assert_same_bytes(&got, &data[expected], &format!("{range} of {size} bytes ({})", sse.name()));
        }
    }
}

/// No object cache: a PUT leaves nothing cached, so every read, whole or ranged, decrypts what
/// the store (or the owning core) hands over.
const NO_CACHE: &[&str] = &["--cache-mib", "0"];

#[tokio::test]
async fn sse_s3_round_trips_every_size_and_range() {
    round_trips("sse_s3_round_trips", &[], Sse::S3).await;
}

#[tokio::test]
async fn sse_c_round_trips_every_size_and_range() {
    let key = CustomerKey::new(1);
    round_trips("sse_c_round_trips", &[], Sse::C(&key)).await;
}

#[tokio::test]
async fn sse_s3_round_trips_without_the_object_cache() {
    round_trips("sse_s3_round_trips_uncached", NO_CACHE, Sse::S3).await;
}

#[tokio::test]
async fn sse_kms_round_trips_without_the_object_cache() {
    round_trips("sse_kms_round_trips_uncached", NO_CACHE, Sse::Kms("testkey-1")).await;
}

#[tokio::test]
async fn sse_c_round_trips_without_the_object_cache() {
    let key = CustomerKey::new(98);
    round_trips("sse_c_round_trips_uncached", NO_CACHE, Sse::C(&key)).await;
}

/// An SSE-C ETag is not the MD5 (nor the same for the same bytes twice, under one key or two);
/// SSE-S3's and plaintext's are. HEAD and listings show the ETag the PUT answered.
#[tokio::test]
async fn etags_of_each_kind() {
    let server = Server::start("sse_etags");
    let client = server.client();
    create_bucket(&client, "cs-etags").await;
    let (a, b) = (CustomerKey::new(2), CustomerKey::new(3));
    let data = pattern(10_000, 7);
    let cases = [("plain", Sse::Plain), ("s3", Sse::S3), ("c-a-1", Sse::C(&a)), ("c-a-2", Sse::C(&a)), ("c-b", Sse::C(&b))];
    let mut etags = Vec::new();
    for (key, sse) in cases {
        let etag = put_sse(&client, "cs-etags", key, &data, sse).await;
        assert_etag(key, &etag, &data, sse);
        head_sse(&client, "cs-etags", key, sse, data.len(), &etag).await;
        etags.push((key.to_string(), etag));
    }
    // Content-MD5 is checked against the plaintext, as without encryption.
    let content_md5 = base64::engine::general_purpose::STANDARD.encode(md5(&data));
    let request = client.put_object().bucket("cs-etags").key("c-md5").body(body(&data)).content_md5(&content_md5);
    ssec!(request, &a).send().await.ok_or_panic("PutObject SSE-C with Content-MD5");
    let wrong = base64::engine::general_purpose::STANDARD.encode(md5(b"other"));
    let request = client.put_object().bucket("cs-etags").key("c-md5").body(body(&data)).content_md5(wrong);
    assert_eq!(expect_error(ssec!(request, &a).send().await), (400, "BadDigest".to_string()), "a wrong Content-MD5");
    client.delete_object().bucket("cs-etags").key("c-md5").send().await.ok_or_panic("DeleteObject");
    let distinct: BTreeSet<&str> = etags[2..].iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(distinct.len(), 3, "SSE-C ETags of the same bytes differ per object: {etags:?}");
    let listed = client.list_objects_v2().bucket("cs-etags").send().await.ok_or_panic("ListObjectsV2");
    let mut listed: Vec<(String, String)> =
        listed.contents().iter().map(|o| (o.key().unwrap_or("").to_string(), o.e_tag().unwrap_or("").to_string())).collect();
    listed.sort();
    etags.sort();
    assert_eq!(listed, etags, "listed ETags are the PUTs'");
}

// ---------------------------------------------------------------------------------------------
// Refusals

/// `x-amz-server-side-encryption`: dual-layer aws:kms:dsse is not implemented, anything but
/// AES256 and aws:kms is invalid, a KMS key id needs aws:kms (and must be one), and a read must
/// not send the header. Nothing refused is stored.
#[tokio::test]
async fn sse_s3_header_refusals() {
    let server = Server::start("sse_s3_refusals");
    let client = server.client();
    create_bucket(&client, "cs-refuse").await;
    let put = |sse: Option<&str>, kms_key: Option<&str>| {
        client
            .put_object()
            .bucket("cs-refuse")
            .key("refused")
            .body(body(b"refused"))
            .set_server_side_encryption(sse.map(ServerSideEncryption::from))
            .set_ssekms_key_id(kms_key.map(str::to_string))
            .send()
    };
    // (what, x-amz-server-side-encryption, KMS key id, status, code)
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, u16, &'a str);
    let cases: [Case; 6] = [
        ("aws:kms:dsse", Some("aws:kms:dsse"), None, 501, "NotImplemented"),
        ("aws:kms and an empty key id", Some("aws:kms"), Some(""), 400, "InvalidArgument"),
        ("AES128", Some("AES128"), None, 400, "InvalidArgument"),
        ("an empty value", Some(""), None, 400, "InvalidArgument"),
        ("a KMS key id with AES256", Some("AES256"), Some("key-1"), 400, "InvalidArgument"),
        ("a KMS key id alone", None, Some("key-1"), 400, "InvalidArgument"),
    ];
    for (what, sse, kms_key, status, code) in cases {
        assert_eq!(expect_error(put(sse, kms_key).await), (status, code.to_string()), "PutObject with {what}");
        let head = client.head_object().bucket("cs-refuse").key("refused").send().await;
        assert_eq!(expect_error(head).0, 404, "PutObject with {what} stored nothing");
    }
    let create = client.create_multipart_upload().bucket("cs-refuse").key("m");
    let dsse = create.clone().server_side_encryption(ServerSideEncryption::AwsKmsDsse).send().await;
    assert_eq!(expect_error(dsse), (501, "NotImplemented".to_string()), "CreateMultipartUpload aws:kms:dsse");
    let bogus = create.server_side_encryption(ServerSideEncryption::from("AES512")).send().await;
    assert_eq!(expect_error(bogus), (400, "InvalidArgument".to_string()), "CreateMultipartUpload AES512");
    put_sse(&client, "cs-refuse", "s3", b"sse-s3 object", Sse::S3).await;
    put_sse(&client, "cs-refuse", "plain", b"plain object", Sse::Plain).await;
    let copy = client.copy_object().bucket("cs-refuse").key("copy").copy_source("cs-refuse/plain");
    let dsse = copy.server_side_encryption(ServerSideEncryption::AwsKmsDsse).send().await;
    assert_eq!(expect_error(dsse), (501, "NotImplemented".to_string()), "CopyObject to aws:kms:dsse");
    let dsse = client.put_bucket_encryption().bucket("cs-refuse");
    let dsse = dsse.server_side_encryption_configuration(encryption_configuration(ServerSideEncryption::AwsKmsDsse, None)).send().await;
    assert_eq!(expect_error(dsse), (501, "NotImplemented".to_string()), "PutBucketEncryption aws:kms:dsse");
    let unset = client.get_bucket_encryption().bucket("cs-refuse").send().await;
    assert_eq!(expect_error(unset), (404, "ServerSideEncryptionConfigurationNotFoundError".to_string()), "still unset");
    // A GET or HEAD that sends the header, of an SSE-S3 object or a plaintext one.
    for key in ["s3", "plain"] {
        let target = format!("/cs-refuse/{key}");
        let header = [("x-amz-server-side-encryption", AES256)];
        let get = signed_request(&server, "GET", &target, &header, b"");
        assert_eq!(code_of(&get), (400, Some("InvalidArgument".to_string())), "GET {key} with the header: {}", get.body_text());
        let head = signed_request(&server, "HEAD", &target, &header, b"");
        assert_eq!(head.status, 400, "HEAD {key} with the header");
        let fine = signed_request(&server, "GET", &target, &[], b"");
        assert_eq!(fine.status, 200, "GET {key} without it: {}", fine.body_text());
    }
}

/// SSE-C's headers on writes (all three, AES256, 32 bytes, a matching MD5, not with SSE-S3's)
/// and reads (the key; the MD5 optional but checked), and what a read of the wrong kind gets.
#[tokio::test]
async fn sse_c_header_refusals() {
    let server = Server::start("sse_c_refusals");
    let client = server.client();
    create_bucket(&client, "cs-refuse").await;
    let (a, b) = (CustomerKey::new(4), CustomerKey::new(5));
    let short = CustomerKey::from_raw(&pattern(16, 6));
    let data = pattern(3000, 8);
    put_sse(&client, "cs-refuse", "secret", &data, Sse::C(&a)).await;
    put_sse(&client, "cs-refuse", "s3", b"sse-s3", Sse::S3).await;
    put_sse(&client, "cs-refuse", "plain", b"plain", Sse::Plain).await;

    // (what, algorithm, key, MD5, also x-amz-server-side-encryption)
    type Write<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>, bool);
    let writes: [Write; 8] = [
        ("no algorithm", None, Some(&a.b64), Some(&a.md5), false),
        ("no key", Some(AES256), None, Some(&a.md5), false),
        ("no key MD5", Some(AES256), Some(&a.b64), None, false),
        ("algorithm AES128", Some("AES128"), Some(&a.b64), Some(&a.md5), false),
        ("a 16-byte key", Some(AES256), Some(&short.b64), Some(&short.md5), false),
        ("a key that is not base64", Some(AES256), Some("not base64 at all!"), Some(&a.md5), false),
        ("another key's MD5", Some(AES256), Some(&a.b64), Some(&b.md5), false),
        ("SSE-C and SSE-S3 together", Some(AES256), Some(&a.b64), Some(&a.md5), true),
    ];
    for (what, algorithm, key, md5, with_s3) in writes {
        let put = client
            .put_object()
            .bucket("cs-refuse")
            .key("refused")
            .body(body(b"refused"))
            .set_sse_customer_algorithm(algorithm.map(str::to_string))
            .set_sse_customer_key(key.map(str::to_string))
            .set_sse_customer_key_md5(md5.map(str::to_string))
            .set_server_side_encryption(with_s3.then_some(ServerSideEncryption::Aes256));
        assert_eq!(expect_error(put.send().await), (400, "InvalidArgument".to_string()), "PutObject with {what}");
        let head = client.head_object().bucket("cs-refuse").key("refused").send().await;
        assert_eq!(expect_error(head).0, 404, "PutObject with {what} stored nothing");
        let create = client
            .create_multipart_upload()
            .bucket("cs-refuse")
            .key("refused")
            .set_sse_customer_algorithm(algorithm.map(str::to_string))
            .set_sse_customer_key(key.map(str::to_string))
            .set_sse_customer_key_md5(md5.map(str::to_string))
            .set_server_side_encryption(with_s3.then_some(ServerSideEncryption::Aes256));
        assert_eq!(expect_error(create.send().await), (400, "InvalidArgument".to_string()), "CreateMultipartUpload with {what}");
        let copy = client
            .copy_object()
            .bucket("cs-refuse")
            .key("refused")
            .copy_source("cs-refuse/plain")
            .set_sse_customer_algorithm(algorithm.map(str::to_string))
            .set_sse_customer_key(key.map(str::to_string))
            .set_sse_customer_key_md5(md5.map(str::to_string))
            .set_server_side_encryption(with_s3.then_some(ServerSideEncryption::Aes256));
        assert_eq!(expect_error(copy.send().await), (400, "InvalidArgument".to_string()), "CopyObject to {what}");
    }
    let listed = client.list_objects_v2().bucket("cs-refuse").send().await.ok_or_panic("ListObjectsV2");
    assert_eq!(listed.key_count(), Some(3), "nothing refused was stored: {:?}", listed.contents());
    let uploads = client.list_multipart_uploads().bucket("cs-refuse").send().await.ok_or_panic("ListMultipartUploads");
    assert!(uploads.uploads().is_empty(), "no refused upload was created: {:?}", uploads.uploads());

    // Reads of the SSE-C object.
    let get = || client.get_object().bucket("cs-refuse").key("secret");
    let head = || client.head_object().bucket("cs-refuse").key("secret");
    assert_eq!(expect_error(get().send().await), (400, "InvalidRequest".to_string()), "GET without the key");
    assert_eq!(expect_error(get().range("bytes=0-9").send().await), (400, "InvalidRequest".to_string()), "ranged GET without the key");
    assert_eq!(expect_error(head().send().await).0, 400, "HEAD without the key");
    assert_eq!(expect_error(ssec!(get(), &b).send().await), (403, "AccessDenied".to_string()), "GET with another key");
    assert_eq!(expect_error(ssec!(head(), &b).send().await).0, 403, "HEAD with another key");
    let wrong_md5 = get().sse_customer_algorithm(AES256).sse_customer_key(&a.b64).sse_customer_key_md5(&b.md5);
    assert_eq!(expect_error(wrong_md5.send().await), (400, "InvalidArgument".to_string()), "GET with another key's MD5");
    let aes128 = get().sse_customer_algorithm("AES128").sse_customer_key(&a.b64).sse_customer_key_md5(&a.md5);
    assert_eq!(expect_error(aes128.send().await), (400, "InvalidArgument".to_string()), "GET with algorithm AES128");
    let no_key = get().sse_customer_algorithm(AES256).sse_customer_key_md5(&a.md5);
    assert_eq!(expect_error(no_key.send().await), (400, "InvalidArgument".to_string()), "GET with an algorithm and no key");
    let short_key = ssec!(get(), &short);
    assert_eq!(expect_error(short_key.send().await), (400, "InvalidArgument".to_string()), "GET with a 16-byte key");
    // The MD5 is optional on a read (AWS answers a GET without it).
    let without_md5 = get().sse_customer_algorithm(AES256).sse_customer_key(&a.b64).send().await.ok_or_panic("GET without the MD5");
    assert_headers("GET without the MD5", sse_headers!(without_md5), Sse::C(&a));
    assert_same_bytes(&collect(without_md5).await, &data, "GET without the MD5");
    let without_md5 = head().sse_customer_algorithm(AES256).sse_customer_key(&a.b64).send().await.ok_or_panic("HEAD without the MD5");
    assert_headers("HEAD without the MD5", sse_headers!(without_md5), Sse::C(&a));
    // GetObjectAttributes, as a read, needs the key (AWS asks for it).
    let attributes = || client.get_object_attributes().bucket("cs-refuse").key("secret").object_attributes(ObjectAttributes::ObjectSize);
    assert_eq!(expect_error(attributes().send().await), (400, "InvalidRequest".to_string()), "GetObjectAttributes without the key");
    assert_eq!(
        expect_error(ssec!(attributes(), &b).send().await),
        (403, "AccessDenied".to_string()),
        "GetObjectAttributes with another key"
    );
    let got = ssec!(attributes(), &a).send().await.ok_or_panic("GetObjectAttributes with the key");
    assert_eq!(got.object_size(), Some(data.len() as i64), "GetObjectAttributes ObjectSize");
    // An SSE-C key for an object that is not SSE-C.
    for key in ["s3", "plain"] {
        let get = ssec!(client.get_object().bucket("cs-refuse").key(key), &a);
        assert_eq!(expect_error(get.send().await), (400, "InvalidRequest".to_string()), "GET {key} with an SSE-C key");
        let head = ssec!(client.head_object().bucket("cs-refuse").key(key), &a);
        assert_eq!(expect_error(head.send().await).0, 400, "HEAD {key} with an SSE-C key");
    }
    assert_same_bytes(&get_sse(&client, "cs-refuse", "secret", Sse::C(&a), None).await, &data, "the object after the refusals");
}

// ---------------------------------------------------------------------------------------------
// Multipart

/// An SSE-C upload of three 5 MiB parts and a tail: each part needs the upload's key (another
/// key or none is refused), the completion none; ranges across part and chunk boundaries
/// decrypt. Then an SSE-S3 upload, whose every response says AES256.
#[tokio::test]
async fn multipart_uploads_encrypted() {
    let server = Server::start("sse_multipart");
    let client = server.client();
    create_bucket(&client, "cs-parts").await;
    let (a, b) = (CustomerKey::new(9), CustomerKey::new(10));
    let parts = vec![pattern(PART, 11), pattern(PART, 12), pattern(PART, 13), pattern(1234, 14)];
    let whole = parts.concat();

    // Refused parts first, on an upload of their own.
    let create = ssec!(client.create_multipart_upload().bucket("cs-parts").key("refused"), &a).send().await;
    let upload_id = create.ok_or_panic("CreateMultipartUpload").upload_id().expect("UploadId").to_string();
    let part = || client.upload_part().bucket("cs-parts").key("refused").upload_id(&upload_id).part_number(1).body(body(b"part"));
    assert_eq!(expect_error(ssec!(part(), &b).send().await), (400, "InvalidArgument".to_string()), "a part with another key");
    assert_eq!(expect_error(part().send().await), (400, "InvalidRequest".to_string()), "a part without the key");
    let missing_md5 = part().sse_customer_algorithm(AES256).sse_customer_key(&a.b64).send().await;
    assert_eq!(expect_error(missing_md5), (400, "InvalidArgument".to_string()), "a part without the key's MD5");
    let listed = client.list_parts().bucket("cs-parts").key("refused").upload_id(&upload_id).send().await.ok_or_panic("ListParts");
    assert!(listed.parts().is_empty(), "no refused part was stored: {:?}", listed.parts());

    let etag = multipart_sse(&client, "cs-parts", "c", &parts, Sse::C(&a)).await;
    head_sse(&client, "cs-parts", "c", Sse::C(&a), whole.len(), &etag).await;
    assert_eq!(expect_error(client.head_object().bucket("cs-parts").key("c").send().await).0, 400, "HEAD without the key");
    let wrong = ssec!(client.get_object().bucket("cs-parts").key("c"), &b).send().await;
    assert_eq!(expect_error(wrong), (403, "AccessDenied".to_string()), "GET with another key");
    assert_same_bytes(&get_sse(&client, "cs-parts", "c", Sse::C(&a), None).await, &whole, "SSE-C multipart object");
    let total = whole.len();
    let ranges: [(String, Range<usize>); 7] = [
        (format!("bytes={}-{}", PART - 10, PART + 9), PART - 10..PART + 10),
        (format!("bytes={}-{}", MIB - 5, MIB + 4), MIB - 5..MIB + 5),
        (format!("bytes={}-{}", PART + MIB - 5, PART + MIB + 4), PART + MIB - 5..PART + MIB + 5),
        (format!("bytes={}-{}", 3 * PART - 1, 3 * PART), 3 * PART - 1..3 * PART + 1),
        (format!("bytes=100-{}", total - 101), 100..total - 100),
        ("bytes=-2000".to_string(), total - 2000..total),
        (format!("bytes={}-", 2 * PART - 1), 2 * PART - 1..total),
    ];
    for (range, expected) in ranges {
        let got = get_sse(&server.client(), "cs-parts", "c", Sse::C(&a), Some(&range)).await;
        assert_same_bytes(&got, &whole[expected], &format!("SSE-C multipart {range}"));
    }

    // Copied whole to SSE-S3 (decrypted part by part), and ranges across its part boundaries
    // copied into an SSE-C upload under another key.
    let copy = client.copy_object().bucket("cs-parts").key("c-copied").copy_source("cs-parts/c");
    let copy = copy_source_ssec!(copy, &a).server_side_encryption(ServerSideEncryption::Aes256).send().await;
    let copy = copy.ok_or_panic("CopyObject of an SSE-C multipart object");
    assert_headers("CopyObject of an SSE-C multipart object", sse_headers!(copy), Sse::S3);
    assert_same_bytes(&get_sse(&client, "cs-parts", "c-copied", Sse::S3, None).await, &whole, "copy of the SSE-C multipart object");
    let create = ssec!(client.create_multipart_upload().bucket("cs-parts").key("c-assembled"), &b).send().await;
    let upload_id = create.ok_or_panic("CreateMultipartUpload").upload_id().expect("UploadId").to_string();
    let mut etags = Vec::new();
    let pieces = [PART - 100..2 * PART + 100, 3 * PART - 10..total];
    for (i, piece) in pieces.iter().enumerate() {
        let request = client.upload_part_copy().bucket("cs-parts").key("c-assembled").upload_id(&upload_id).part_number(i as i32 + 1);
        let request = request.copy_source("cs-parts/c").copy_source_range(format!("bytes={}-{}", piece.start, piece.end - 1));
        let out = ssec!(copy_source_ssec!(request, &a), &b).send().await.ok_or_panic("UploadPartCopy SSE-C -> SSE-C");
        assert_headers("UploadPartCopy into an SSE-C upload", sse_headers!(out), Sse::C(&b));
        etags.push(out.copy_part_result().and_then(|r| r.e_tag()).expect("ETag").to_string());
    }
    let request = client.complete_multipart_upload().bucket("cs-parts").key("c-assembled").upload_id(&upload_id);
    request.multipart_upload(completed(&etags)).send().await.ok_or_panic("CompleteMultipartUpload");
    let expected = [&whole[pieces[0].clone()], &whole[pieces[1].clone()]].concat();
    assert_same_bytes(&get_sse(&client, "cs-parts", "c-assembled", Sse::C(&b), None).await, &expected, "parts copied SSE-C -> SSE-C");

    // A part uploaded twice: the object is the second upload's, under its own IV.
    let create = ssec!(client.create_multipart_upload().bucket("cs-parts").key("again"), &a).send().await;
    let upload_id = create.ok_or_panic("CreateMultipartUpload").upload_id().expect("UploadId").to_string();
    let (first, second, tail) = (pattern(PART, 17), pattern(PART, 18), pattern(99, 19));
    let mut etags = Vec::new();
    for (number, data) in [(1, &first), (1, &second), (2, &tail)] {
        let request = client.upload_part().bucket("cs-parts").key("again").upload_id(&upload_id).part_number(number).body(body(data));
        let out = ssec!(request, &a).send().await.ok_or_panic("UploadPart");
        if number as usize > etags.len() {
            etags.push(String::new());
        }
        etags[number as usize - 1] = out.e_tag().expect("ETag").to_string();
    }
    let request = client.complete_multipart_upload().bucket("cs-parts").key("again").upload_id(&upload_id);
    request.multipart_upload(completed(&etags)).send().await.ok_or_panic("CompleteMultipartUpload");
    let expected = [second.as_slice(), &tail].concat();
    assert_same_bytes(&get_sse(&client, "cs-parts", "again", Sse::C(&a), None).await, &expected, "a part uploaded twice");
    let range = format!("bytes={}-{}", PART - 2, PART + 1);
    let got = get_sse(&client, "cs-parts", "again", Sse::C(&a), Some(&range)).await;
    assert_same_bytes(&got, &expected[PART - 2..PART + 2], "a part uploaded twice, across the boundary");

    // One small part: a multipart object small enough for the object cache.
    let small = vec![pattern(100 * KIB, 20)];
    multipart_sse(&client, "cs-parts", "one-part", &small, Sse::C(&a)).await;
    for pass in ["first", "second"] {
        let got = get_sse(&client, "cs-parts", "one-part", Sse::C(&a), None).await;
        assert_same_bytes(&got, &small[0], &format!("{pass} GET of a one-part SSE-C object"));
    }
    let got = get_sse(&client, "cs-parts", "one-part", Sse::C(&a), Some("bytes=-1000")).await;
    assert_same_bytes(&got, &small[0][100 * KIB - 1000..], "suffix of a one-part SSE-C object");

    let parts = vec![pattern(PART, 15), pattern(777, 16)];
    let whole = parts.concat();
    let etag = multipart_sse(&client, "cs-parts", "s3", &parts, Sse::S3).await;
    head_sse(&client, "cs-parts", "s3", Sse::S3, whole.len(), &etag).await;
    let range = format!("bytes={}-{}", PART - 3, PART + 2);
    let got = get_sse(&client, "cs-parts", "s3", Sse::S3, Some(&range)).await;
    assert_same_bytes(&got, &whole[PART - 3..PART + 3], "SSE-S3 multipart across the part boundary");
    assert_same_bytes(&get_sse(&client, "cs-parts", "s3", Sse::S3, None).await, &whole, "SSE-S3 multipart object");
    // An SSE-C key on a part of an SSE-S3 upload.
    let create = client.create_multipart_upload().bucket("cs-parts").key("s3-2").server_side_encryption(ServerSideEncryption::Aes256);
    let upload_id = create.send().await.ok_or_panic("CreateMultipartUpload").upload_id().expect("UploadId").to_string();
    let part = ssec!(client.upload_part().bucket("cs-parts").key("s3-2").upload_id(&upload_id).part_number(1).body(body(b"p")), &a);
    assert_eq!(expect_error(part.send().await).0, 400, "an SSE-C part of an SSE-S3 upload");
}

// ---------------------------------------------------------------------------------------------
// Copies

/// CopyObject with the source's SSE-C key (copy-source headers) and the destination's own
/// encryption: one result, its response headers and ETag, and reads of the copy.
async fn copy_and_check(
    client: &aws_sdk_s3::Client,
    (source, source_key): (&str, Option<&CustomerKey>),
    (dest, dest_sse): (&str, Sse<'_>),
    data: &[u8],
) {
    let what = format!("copy {source} -> {dest} ({})", dest_sse.name());
    let request = client.copy_object().bucket("cs-copy").key(dest).copy_source(format!("cs-copy/{source}"));
    let request = match source_key {
        Some(key) => copy_source_ssec!(request, key),
        None => request,
    };
    let out = with_sse!(request, dest_sse).send().await.ok_or_panic(&what);
    assert_headers(&what, sse_headers!(out), dest_sse);
    let etag = out.copy_object_result().and_then(|r| r.e_tag()).expect("CopyObjectResult ETag").to_string();
    assert_etag(&what, &etag, data, dest_sse);
    assert_same_bytes(&get_sse(client, "cs-copy", dest, dest_sse, None).await, data, &what);
    head_sse(client, "cs-copy", dest, dest_sse, data.len(), &etag).await;
    let range = format!("bytes=3-{}", data.len() - 4);
    assert_same_bytes(&get_sse(client, "cs-copy", dest, dest_sse, Some(&range)).await, &data[3..data.len() - 3], &what);
    if matches!(dest_sse, Sse::C(_)) {
        let without = client.get_object().bucket("cs-copy").key(dest).send().await;
        assert_eq!(expect_error(without), (400, "InvalidRequest".to_string()), "{what}: GET without the key");
    }
}

#[tokio::test]
async fn copies_between_every_kind() {
    let server = Server::start("sse_copies");
    let client = server.client();
    create_bucket(&client, "cs-copy").await;
    let (a, b) = (CustomerKey::new(20), CustomerKey::new(21));
    // Large sources (streamed chunk by chunk) and a small one (one buffer).
    let size = 3 * MIB + 17;
    let (plain, s3, c, small) = (pattern(size, 22), pattern(size, 23), pattern(size, 24), pattern(13, 25));
    put_sse(&client, "cs-copy", "src-plain", &plain, Sse::Plain).await;
    put_sse(&client, "cs-copy", "src-s3", &s3, Sse::S3).await;
    put_sse(&client, "cs-copy", "src-c", &c, Sse::C(&a)).await;
    put_sse(&client, "cs-copy", "src-c-small", &small, Sse::C(&a)).await;
    let kms = pattern(size, 28);
    put_sse(&client, "cs-copy", "src-kms", &kms, Sse::Kms("copy-key")).await;

    copy_and_check(&client, ("src-c", Some(&a)), ("c-to-s3", Sse::S3), &c).await;
    copy_and_check(&client, ("src-c", Some(&a)), ("c-to-plain", Sse::Plain), &c).await;
    copy_and_check(&client, ("src-c", Some(&a)), ("c-to-c", Sse::C(&b)), &c).await;
    copy_and_check(&client, ("src-s3", None), ("s3-to-c", Sse::C(&b)), &s3).await;
    copy_and_check(&client, ("src-plain", None), ("plain-to-c", Sse::C(&a)), &plain).await;
    copy_and_check(&client, ("src-s3", None), ("s3-to-plain", Sse::Plain), &s3).await;
    copy_and_check(&client, ("src-c-small", Some(&a)), ("small-c-to-c", Sse::C(&b)), &small).await;
    copy_and_check(&client, ("src-c-small", Some(&a)), ("small-c-to-s3", Sse::S3), &small).await;
    copy_and_check(&client, ("src-c", Some(&a)), ("c-to-kms", Sse::Kms("other-key")), &c).await;
    copy_and_check(&client, ("src-kms", None), ("kms-to-c", Sse::C(&b)), &kms).await;
    copy_and_check(&client, ("src-kms", None), ("kms-to-kms", Sse::Kms("other-key")), &kms).await;
    copy_and_check(&client, ("src-kms", None), ("kms-to-plain", Sse::Plain), &kms).await;
    let wrong = ssec!(client.get_object().bucket("cs-copy").key("c-to-c"), &a).send().await;
    assert_eq!(expect_error(wrong), (403, "AccessDenied".to_string()), "the copy is under the new key, not the source's");

    // The source's key is needed, and must be its key; a plaintext source takes none.
    let copy = || client.copy_object().bucket("cs-copy").key("refused");
    let no_key = copy().copy_source("cs-copy/src-c").send().await;
    assert_eq!(expect_error(no_key), (400, "InvalidRequest".to_string()), "SSE-C source without its key");
    let wrong_key = copy_source_ssec!(copy().copy_source("cs-copy/src-c"), &b).send().await;
    assert_eq!(expect_error(wrong_key), (403, "AccessDenied".to_string()), "SSE-C source with another key");
    let needless = copy_source_ssec!(copy().copy_source("cs-copy/src-plain"), &a).send().await;
    assert_eq!(expect_error(needless), (400, "InvalidRequest".to_string()), "plaintext source with an SSE-C key");
    let head = client.head_object().bucket("cs-copy").key("refused").send().await;
    assert_eq!(expect_error(head).0, 404, "no refused copy was stored");

    // Onto itself, changing only the encryption: plain -> SSE-S3 -> SSE-C (a) -> SSE-C (b).
    let data = pattern(50_000, 26);
    put_sse(&client, "cs-copy", "self", &data, Sse::Plain).await;
    copy_and_check(&client, ("self", None), ("self", Sse::S3), &data).await;
    copy_and_check(&client, ("self", None), ("self", Sse::C(&a)), &data).await;
    copy_and_check(&client, ("self", Some(&a)), ("self", Sse::C(&b)), &data).await;
    let old_key = ssec!(client.get_object().bucket("cs-copy").key("self"), &a).send().await;
    assert_eq!(expect_error(old_key), (403, "AccessDenied".to_string()), "after the key rotation the old key is refused");
    // A copy onto itself that changes nothing is still refused.
    let unchanged = client.copy_object().bucket("cs-copy").key("src-s3").copy_source("cs-copy/src-s3").send().await;
    assert_eq!(expect_error(unchanged), (400, "InvalidRequest".to_string()), "a copy onto itself changing nothing");

    // UploadPartCopy of ranges of an SSE-C source into an SSE-S3 upload.
    let big = pattern(PART + MIB + 100, 27);
    put_sse(&client, "cs-copy", "big-c", &big, Sse::C(&a)).await;
    let create = client.create_multipart_upload().bucket("cs-copy").key("assembled").server_side_encryption(ServerSideEncryption::Aes256);
    let upload_id = create.send().await.ok_or_panic("CreateMultipartUpload").upload_id().expect("UploadId").to_string();
    let part_copy = |number: i32, range: String| {
        client
            .upload_part_copy()
            .bucket("cs-copy")
            .key("assembled")
            .upload_id(&upload_id)
            .part_number(number)
            .copy_source("cs-copy/big-c")
            .copy_source_range(range)
    };
    let first = format!("bytes=1000-{}", 1000 + PART - 1);
    let no_key = part_copy(1, first.clone()).send().await;
    assert_eq!(expect_error(no_key), (400, "InvalidRequest".to_string()), "UploadPartCopy of an SSE-C source without its key");
    let wrong_key = copy_source_ssec!(part_copy(1, first.clone()), &b).send().await;
    assert_eq!(expect_error(wrong_key), (403, "AccessDenied".to_string()), "UploadPartCopy with another key");
    let mut etags = Vec::new();
    for (number, range) in [(1, first), (2, format!("bytes={}-{}", 1000 + PART, big.len() - 1))] {
        let out = copy_source_ssec!(part_copy(number, range.clone()), &a).send().await.ok_or_panic(&format!("UploadPartCopy {range}"));
        assert_headers(&format!("UploadPartCopy {range}"), sse_headers!(out), Sse::S3);
        etags.push(out.copy_part_result().and_then(|r| r.e_tag()).expect("CopyPartResult ETag").to_string());
    }
    let done = client
        .complete_multipart_upload()
        .bucket("cs-copy")
        .key("assembled")
        .upload_id(&upload_id)
        .multipart_upload(completed(&etags))
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload");
    assert_eq!(done.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "CompleteMultipartUpload header");
    let got = get_sse(&client, "cs-copy", "assembled", Sse::S3, None).await;
    assert_same_bytes(&got, &big[1000..], "parts copied from an SSE-C source into an SSE-S3 upload");
    let range = format!("bytes={}-{}", PART - 5, PART + 4);
    let got = get_sse(&client, "cs-copy", "assembled", Sse::S3, Some(&range)).await;
    assert_same_bytes(&got, &big[1000 + PART - 5..1000 + PART + 5], "across the copied parts' boundary");
}

// ---------------------------------------------------------------------------------------------
// Bucket default encryption

/// Get/Put/DeleteBucketEncryption; while set, every write that asks for no encryption (PUT,
/// multipart, copy, form) gets SSE-S3, and SSE-C stays SSE-C; kept over a restart.
#[tokio::test]
async fn bucket_default_encryption() {
    let server = Server::start("sse_bucket_default");
    let client = server.client();
    create_bucket(&client, "cs-default").await;
    create_bucket(&client, "cs-other").await;
    let unset = client.get_bucket_encryption().bucket("cs-default").send().await;
    assert_eq!(expect_error(unset), (404, "ServerSideEncryptionConfigurationNotFoundError".to_string()), "before any is set");
    let deleted = signed_request(&server, "DELETE", "/cs-default?encryption", &[], b"");
    assert_eq!(deleted.status, 204, "DeleteBucketEncryption before any is set: {}", deleted.body_text());
    create_encrypted_bucket(&client, "cs-default", Some(true)).await;
    assert_eq!(bucket_encryption(&client, "cs-default").await, (ServerSideEncryption::Aes256, Some(true)));
    let kms = client.put_bucket_encryption().bucket("cs-default");
    let kms = kms.server_side_encryption_configuration(encryption_configuration(ServerSideEncryption::AwsKmsDsse, None)).send().await;
    assert_eq!(expect_error(kms), (501, "NotImplemented".to_string()), "aws:kms:dsse");
    assert_eq!(bucket_encryption(&client, "cs-default").await, (ServerSideEncryption::Aes256, Some(true)), "kept after the refusal");

    // Writes that ask for nothing get SSE-S3; the other bucket's stay plaintext.
    let (small, large) = (pattern(13, 30), pattern(3 * MIB, 31));
    for (key, data) in [("small", &small), ("large", &large)] {
        let out = client.put_object().bucket("cs-default").key(key).body(body(data)).send().await.ok_or_panic("PutObject");
        assert_headers(&format!("PutObject {key} into the default bucket"), sse_headers!(out), Sse::S3);
        assert_eq!(out.e_tag(), Some(etag_of(data).as_str()), "{key}: ETag");
        head_sse(&client, "cs-default", key, Sse::S3, data.len(), &etag_of(data)).await;
        assert_same_bytes(&get_sse(&client, "cs-default", key, Sse::S3, None).await, data, key);
    }
    put_sse(&client, "cs-other", "plain", &small, Sse::Plain).await;
    let parts = [pattern(PART, 32), pattern(100, 33)];
    let create = client.create_multipart_upload().bucket("cs-default").key("multi").send().await.ok_or_panic("CreateMultipartUpload");
    assert_headers("CreateMultipartUpload into the default bucket", sse_headers!(create), Sse::S3);
    let upload_id = create.upload_id().expect("UploadId");
    let mut etags = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let request = client.upload_part().bucket("cs-default").key("multi").upload_id(upload_id).part_number(i as i32 + 1);
        let out = request.body(body(part)).send().await.ok_or_panic("UploadPart");
        assert_headers("UploadPart into the default bucket", sse_headers!(out), Sse::S3);
        etags.push(out.e_tag().expect("ETag").to_string());
    }
    let request = client.complete_multipart_upload().bucket("cs-default").key("multi").upload_id(upload_id);
    let done = request.multipart_upload(completed(&etags)).send().await.ok_or_panic("CompleteMultipartUpload");
    assert_eq!(done.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "CompleteMultipartUpload header");
    assert_same_bytes(&get_sse(&client, "cs-default", "multi", Sse::S3, None).await, &parts.concat(), "multipart");
    let copy = client.copy_object().bucket("cs-default").key("copied").copy_source("cs-other/plain").send().await.ok_or_panic("CopyObject");
    assert_headers("CopyObject into the default bucket", sse_headers!(copy), Sse::S3);
    assert_same_bytes(&get_sse(&client, "cs-default", "copied", Sse::S3, None).await, &small, "copied");
    let answer = post_form(&server, "cs-default", "uploads/posted", &[], b"posted file");
    assert_eq!(answer.status, 204, "POST into the default bucket: {}", answer.body_text());
    assert_eq!(answer.header("x-amz-server-side-encryption"), Some(AES256), "POST response header");
    assert_same_bytes(&get_sse(&client, "cs-default", "uploads/posted", Sse::S3, None).await, b"posted file", "posted");
    // SSE-C asked for is SSE-C, not the default.
    let key = CustomerKey::new(34);
    put_sse(&client, "cs-default", "customer", &small, Sse::C(&key)).await;
    assert_same_bytes(&get_sse(&client, "cs-default", "customer", Sse::C(&key), None).await, &small, "SSE-C in a default bucket");
    let out = client.get_object().bucket("cs-other").key("plain").send().await.ok_or_panic("GET plain");
    assert_headers("the other bucket's object", sse_headers!(out), Sse::Plain);

    // A restart keeps the configuration, and the objects readable.
    let data_dir = server.stop();
    let server = Server::start_on(data_dir);
    let client = server.client();
    assert_eq!(bucket_encryption(&client, "cs-default").await, (ServerSideEncryption::Aes256, Some(true)), "after a restart");
    assert_same_bytes(&get_sse(&client, "cs-default", "large", Sse::S3, None).await, &large, "large after a restart");
    assert_same_bytes(&get_sse(&client, "cs-default", "multi", Sse::S3, None).await, &parts.concat(), "multipart after a restart");
    let out = client.put_object().bucket("cs-default").key("after").body(body(b"after")).send().await.ok_or_panic("PutObject");
    assert_headers("PutObject after the restart", sse_headers!(out), Sse::S3);

    // Deleted: 204, then unset, and new writes are plaintext again; old objects stay SSE-S3.
    let deleted = signed_request(&server, "DELETE", "/cs-default?encryption", &[], b"");
    assert_eq!(deleted.status, 204, "DeleteBucketEncryption: {}", deleted.body_text());
    let unset = client.get_bucket_encryption().bucket("cs-default").send().await;
    assert_eq!(expect_error(unset), (404, "ServerSideEncryptionConfigurationNotFoundError".to_string()), "after the delete");
    put_sse(&client, "cs-default", "plain-now", b"plain", Sse::Plain).await;
    assert_same_bytes(&get_sse(&client, "cs-default", "small", Sse::S3, None).await, &small, "small after the delete");
    // BucketKeyEnabled is echoed as set.
    create_encrypted_bucket(&client, "cs-default", Some(false)).await;
    assert_eq!(bucket_encryption(&client, "cs-default").await, (ServerSideEncryption::Aes256, Some(false)));
}

// ---------------------------------------------------------------------------------------------
// SSE-KMS

/// GetBucketEncryption of an aws:kms default: the algorithm and KMSMasterKeyID.
async fn bucket_kms_key_id(client: &aws_sdk_s3::Client, bucket: &str) -> (ServerSideEncryption, Option<String>) {
    let out = client.get_bucket_encryption().bucket(bucket).send().await.ok_or_panic(&format!("GetBucketEncryption {bucket}"));
    let rules = out.server_side_encryption_configuration().expect("configuration").rules();
    let by_default = rules[0].apply_server_side_encryption_by_default().expect("ApplyServerSideEncryptionByDefault");
    (by_default.sse_algorithm().clone(), by_default.kms_master_key_id().map(str::to_string))
}

/// aws:kms without a key id is AWS's managed key `aws/s3`; a key id (an ARN too) is kept and
/// echoed by every response; a bucket default can name one, kept over a restart; an explicit
/// AES256 still wins over it; SSE-C keys do not apply to SSE-KMS objects.
#[tokio::test]
async fn sse_kms_key_ids_and_bucket_default() {
    let server = Server::start("sse_kms");
    let client = server.client();
    create_bucket(&client, "cs-kms").await;
    let data = pattern(70_000, 100);
    let out = client.put_object().bucket("cs-kms").key("managed").body(body(&data)).server_side_encryption(ServerSideEncryption::AwsKms);
    let out = out.send().await.ok_or_panic("PutObject aws:kms without a key id");
    assert_headers("aws:kms without a key id", sse_headers!(out), Sse::Kms("aws/s3"));
    assert_same_bytes(&get_sse(&client, "cs-kms", "managed", Sse::Kms("aws/s3"), None).await, &data, "aws/s3 object");
    let arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let etag = put_sse(&client, "cs-kms", "arn", &data, Sse::Kms(arn)).await;
    head_sse(&client, "cs-kms", "arn", Sse::Kms(arn), data.len(), &etag).await;
    let key = CustomerKey::new(101);
    let wrong_kind = ssec!(client.get_object().bucket("cs-kms").key("arn"), &key).send().await;
    assert_eq!(expect_error(wrong_kind), (400, "InvalidRequest".to_string()), "an SSE-C key for an SSE-KMS object");
    let parts = [pattern(PART, 102), pattern(300, 103)];
    multipart_sse(&client, "cs-kms", "multi", &parts, Sse::Kms("testkey-2")).await;
    let range = format!("bytes={}-{}", PART - 4, PART + 3);
    let got = get_sse(&server.client(), "cs-kms", "multi", Sse::Kms("testkey-2"), Some(&range)).await;
    assert_same_bytes(&got, &parts.concat()[PART - 4..PART + 4], "SSE-KMS multipart across the part boundary");

    create_bucket(&client, "cs-kms-default").await;
    let by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::AwsKms)
        .kms_master_key_id("bucket-key")
        .build()
        .expect("SSEAlgorithm set");
    let rule = ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(by_default).build();
    let config = ServerSideEncryptionConfiguration::builder().rules(rule).build().expect("a rule");
    let put = client.put_bucket_encryption().bucket("cs-kms-default").server_side_encryption_configuration(config);
    put.send().await.ok_or_panic("PutBucketEncryption aws:kms");
    let expected = (ServerSideEncryption::AwsKms, Some("bucket-key".to_string()));
    assert_eq!(bucket_kms_key_id(&client, "cs-kms-default").await, expected, "GetBucketEncryption");
    let out = client.put_object().bucket("cs-kms-default").key("defaulted").body(body(&data)).send().await;
    let out = out.ok_or_panic("PutObject into an aws:kms default bucket");
    assert_headers("PutObject into an aws:kms default bucket", sse_headers!(out), Sse::Kms("bucket-key"));
    put_sse(&client, "cs-kms-default", "asked-aes256", &data, Sse::S3).await;
    put_sse(&client, "cs-kms-default", "asked-other-key", &data, Sse::Kms("other-key")).await;

    let data_dir = server.stop();
    let server = Server::start_on(data_dir);
    let client = server.client();
    assert_eq!(bucket_kms_key_id(&client, "cs-kms-default").await, expected, "GetBucketEncryption after a restart");
    for (bucket, key, sse) in [
        ("cs-kms", "managed", Sse::Kms("aws/s3")),
        ("cs-kms", "arn", Sse::Kms(arn)),
        ("cs-kms-default", "defaulted", Sse::Kms("bucket-key")),
        ("cs-kms-default", "asked-other-key", Sse::Kms("other-key")),
    ] {
        assert_same_bytes(&get_sse(&client, bucket, key, sse, None).await, &data, &format!("{key} after a restart"));
    }
    let out = client.put_object().bucket("cs-kms-default").key("after").body(body(b"after")).send().await;
    let out = out.ok_or_panic("PutObject after a restart");
    assert_headers("PutObject after a restart", sse_headers!(out), Sse::Kms("bucket-key"));
}

/// AWS: "Objects created by the PUT Object, POST Object, or Copy operation [...] and are
/// encrypted by SSE-C or SSE-KMS, have ETags that are not an MD5 digest of their object data."
#[tokio::test]
async fn sse_kms_etag_is_not_the_md5() {
    let server = Server::start("sse_kms_etag");
    let client = server.client();
    create_bucket(&client, "cs-kms-etag").await;
    let data = pattern(10_000, 104);
    let etag = put_sse(&client, "cs-kms-etag", "put", &data, Sse::Kms("testkey-1")).await;
    assert_ne!(etag, etag_of(&data), "an SSE-KMS object's ETag (PutObject) must not be the MD5 of its data");
    let copy = client.copy_object().bucket("cs-kms-etag").key("copy").copy_source("cs-kms-etag/put");
    let copy = copy.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id("testkey-1").send().await;
    let copy = copy.ok_or_panic("CopyObject to SSE-KMS");
    let etag = copy.copy_object_result().and_then(|r| r.e_tag()).expect("CopyObjectResult ETag");
    assert_ne!(etag, etag_of(&data), "an SSE-KMS object's ETag (CopyObject) must not be the MD5 of its data");
}

// ---------------------------------------------------------------------------------------------
// Forms

const FORM_KEY_PREFIX: &str = "uploads/";

/// A form's policy allowing any key under `uploads/` and any encryption fields.
fn sse_policy(bucket: &str) -> (String, String) {
    let expiration = s3front::xml::format_timestamp_ms(((unix_now() + 300) * 1000) as u64);
    let date = s3front::sigv4::client::amz_date(unix_now());
    let credential = format!("{ACCESS_KEY}/{}/{REGION}/s3/aws4_request", &date[..8]);
    let json = format!(
        r#"{{"expiration": "{expiration}", "conditions": [{{"bucket": "{bucket}"}}, ["starts-with", "$key", "{FORM_KEY_PREFIX}"],
        {{"x-amz-algorithm": "AWS4-HMAC-SHA256"}}, {{"x-amz-credential": "{credential}"}}, {{"x-amz-date": "{date}"}},
        ["starts-with", "$x-amz-server-side-encryption", ""],
        ["starts-with", "$x-amz-server-side-encryption-customer-algorithm", ""],
        ["starts-with", "$x-amz-server-side-encryption-customer-key", ""],
        ["starts-with", "$x-amz-server-side-encryption-customer-key-MD5", ""]]}}"#
    );
    (base64::engine::general_purpose::STANDARD.encode(json), date)
}

/// A signed PostObject of `file` to `key` with `extra` form fields.
fn post_form(server: &Server, bucket: &str, key: &str, extra: &[(&str, &str)], file: &[u8]) -> RawResponse {
    let (policy_b64, date) = sse_policy(bucket);
    let mut form = vec![("key".to_string(), key.to_string())];
    form.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    form.extend(signed_fields(&policy_b64, &date, SECRET_KEY));
    post(server, bucket, &form_body(&form, "f", file))
}

fn ssec_fields(key: &CustomerKey) -> [(&'static str, &str); 3] {
    [
        ("x-amz-server-side-encryption-customer-algorithm", AES256),
        ("x-amz-server-side-encryption-customer-key", &key.b64),
        ("x-amz-server-side-encryption-customer-key-MD5", &key.md5),
    ]
}

#[tokio::test]
async fn post_object_encryption_fields() {
    let server = Server::start("sse_post_object");
    let client = server.client();
    create_bucket(&client, "cs-forms").await;
    let key = CustomerKey::new(40);
    let data = pattern(20_000, 41);

    let answer = post_form(&server, "cs-forms", "uploads/c", &ssec_fields(&key), &data);
    assert_eq!(answer.status, 204, "SSE-C form: {}", answer.body_text());
    assert_eq!(answer.header("x-amz-server-side-encryption-customer-algorithm"), Some(AES256), "SSE-C form: algorithm header");
    assert_eq!(answer.header("x-amz-server-side-encryption-customer-key-md5"), Some(key.md5.as_str()), "SSE-C form: key MD5 header");
    assert_eq!(answer.header("x-amz-server-side-encryption"), None, "SSE-C form: no SSE-S3 header");
    assert_masked_etag("SSE-C form", answer.header("etag").expect("ETag"), &data);
    assert_same_bytes(&get_sse(&client, "cs-forms", "uploads/c", Sse::C(&key), None).await, &data, "SSE-C form");
    let without = client.get_object().bucket("cs-forms").key("uploads/c").send().await;
    assert_eq!(expect_error(without), (400, "InvalidRequest".to_string()), "SSE-C form's object without the key");

    let answer = post_form(&server, "cs-forms", "uploads/s3", &[("x-amz-server-side-encryption", AES256)], &data);
    assert_eq!(answer.status, 204, "SSE-S3 form: {}", answer.body_text());
    assert_eq!(answer.header("x-amz-server-side-encryption"), Some(AES256), "SSE-S3 form: header");
    assert_eq!(answer.header("etag"), Some(etag_of(&data).as_str()), "SSE-S3 form: ETag is the MD5");
    assert_same_bytes(&get_sse(&client, "cs-forms", "uploads/s3", Sse::S3, None).await, &data, "SSE-S3 form");

    let refused = [
        ("aws:kms:dsse", vec![("x-amz-server-side-encryption", "aws:kms:dsse")], 501, "NotImplemented"),
        ("AES128", vec![("x-amz-server-side-encryption", "AES128")], 400, "InvalidArgument"),
        (
            "a mismatched MD5",
            vec![ssec_fields(&key)[0], ssec_fields(&key)[1], ("x-amz-server-side-encryption-customer-key-MD5", "AAAAAAAAAAAAAAAAAAAAAA==")],
            400,
            "InvalidArgument",
        ),
        ("no MD5", ssec_fields(&key)[..2].to_vec(), 400, "InvalidArgument"),
    ];
    for (what, fields, status, code) in refused {
        let answer = post_form(&server, "cs-forms", "uploads/refused", &fields, &data);
        assert_eq!(code_of(&answer), (status, Some(code.to_string())), "form with {what}: {}", answer.body_text());
    }
    let head = client.head_object().bucket("cs-forms").key("uploads/refused").send().await;
    assert_eq!(expect_error(head).0, 404, "no refused form was stored");
}

// ---------------------------------------------------------------------------------------------
// Versions

#[tokio::test]
async fn versioned_bucket_with_sse_c() {
    let server = Server::start("sse_versions");
    let client = server.client();
    create_bucket(&client, "cs-versions").await;
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    client.put_bucket_versioning().bucket("cs-versions").versioning_configuration(enabled).send().await.ok_or_panic("versioning");
    let (a, b) = (CustomerKey::new(50), CustomerKey::new(51));
    let datas = [pattern(5000, 52), pattern(2 * MIB + 3, 53), pattern(300, 54)];
    let sses = [Sse::C(&a), Sse::C(&b), Sse::S3];
    let mut versions = Vec::new();
    for (data, sse) in datas.iter().zip(sses) {
        let request = client.put_object().bucket("cs-versions").key("doc").body(body(data));
        let out = with_sse!(request, sse).send().await.ok_or_panic("PutObject version");
        assert_headers("PutObject version", sse_headers!(out), sse);
        versions.push(out.version_id().expect("a version id").to_string());
    }
    assert_same_bytes(&get_sse(&client, "cs-versions", "doc", Sse::S3, None).await, &datas[2], "latest (SSE-S3)");
    for (i, (data, sse)) in datas.iter().zip(sses).enumerate() {
        let request = client.get_object().bucket("cs-versions").key("doc").version_id(&versions[i]);
        let out = with_read_key!(request, sse).send().await.ok_or_panic(&format!("GET version {i}"));
        assert_headers(&format!("GET version {i}"), sse_headers!(out), sse);
        assert_same_bytes(&collect(out).await, data, &format!("version {i}"));
    }
    let version = |i: usize| client.get_object().bucket("cs-versions").key("doc").version_id(&versions[i]);
    assert_eq!(expect_error(version(0).send().await), (400, "InvalidRequest".to_string()), "version 0 without its key");
    assert_eq!(expect_error(ssec!(version(0), &b).send().await), (403, "AccessDenied".to_string()), "version 0 with version 1's key");
    assert_eq!(expect_error(ssec!(version(1), &a).send().await), (403, "AccessDenied".to_string()), "version 1 with version 0's key");
    assert_eq!(expect_error(ssec!(version(2), &a).send().await), (400, "InvalidRequest".to_string()), "SSE-S3 version with a key");
    let head = ssec!(client.head_object().bucket("cs-versions").key("doc").version_id(&versions[1]), &b);
    let head = head.send().await.ok_or_panic("HEAD version 1");
    assert_headers("HEAD version 1", sse_headers!(head), Sse::C(&b));
    let head = client.head_object().bucket("cs-versions").key("doc").version_id(&versions[1]).send().await;
    assert_eq!(expect_error(head).0, 400, "HEAD version 1 without its key");
    // Behind a delete marker the versions stay readable with their keys.
    client.delete_object().bucket("cs-versions").key("doc").send().await.ok_or_panic("DeleteObject");
    let range = format!("bytes={}-{}", MIB - 2, MIB + 1);
    let out = ssec!(version(1), &b).range(&range).send().await.ok_or_panic("ranged GET of version 1");
    assert_same_bytes(&collect(out).await, &datas[1][MIB - 2..MIB + 2], "version 1 range behind a delete marker");
}

// ---------------------------------------------------------------------------------------------
// At rest

/// Probes start with this; each object's body is one 64-byte probe repeated.
const PROBE_PREFIX: &[u8; 24] = b"corestore-at-rest-probe:";
const PROBE_BYTES: usize = 64;

fn probe(n: u8) -> [u8; PROBE_BYTES] {
    let mut out = [0u8; PROBE_BYTES];
    out[..PROBE_PREFIX.len()].copy_from_slice(PROBE_PREFIX);
    let tail = format!("{n:03}:{}", "The quick brown fox jumps over the lazy dog!");
    out[PROBE_PREFIX.len()..].copy_from_slice(&tail.as_bytes()[..PROBE_BYTES - PROBE_PREFIX.len()]);
    out
}

fn probed(n: u8, size: usize) -> Vec<u8> {
    probe(n).iter().copied().cycle().take(size).collect()
}

/// The probes (of `0..count`) found whole in any file under `dir`, and the bytes scanned.
fn probes_at_rest(dir: &Path, count: u8) -> (BTreeSet<u8>, u64) {
    let probes: Vec<[u8; PROBE_BYTES]> = (0..count).map(probe).collect();
    let mut found = BTreeSet::new();
    let mut scanned = 0u64;
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("read_dir {}: {e}", folder.display())) {
            let entry = entry.expect("directory entry");
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                folders.push(entry.path());
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let bytes = std::fs::read(entry.path()).unwrap_or_else(|e| panic!("read {}: {e}", entry.path().display()));
            scanned += bytes.len() as u64;
            let mut from = 0;
            while let Some(at) = bytes[from..].iter().position(|&b| b == PROBE_PREFIX[0]).map(|p| p + from) {
                if let Some(window) = bytes.get(at..at + PROBE_BYTES)
                    && let Some(n) = probes.iter().position(|p| p == window)
                {
                    found.insert(n as u8);
                }
                from = at + 1;
            }
        }
    }
    (found, scanned)
}

/// After writes by every path (PUT small and large, multipart, form, copy, part copy, bucket
/// default) under SSE-S3, SSE-KMS and SSE-C, no file under the data directory holds a probe of their
/// plaintext (the plaintext controls' probes are found); the master key is 32 bytes, 0600,
/// kept; and after a restart every object reads back.
#[tokio::test]
async fn data_at_rest_is_ciphertext_and_survives_restart() {
    let server = Server::start("sse_at_rest");
    let client = server.client();
    create_bucket(&client, "cs-rest").await;
    create_bucket(&client, "cs-rest-default").await;
    create_encrypted_bucket(&client, "cs-rest-default", None).await;
    let (a, b) = (CustomerKey::new(60), CustomerKey::new(61));
    // (bucket, key, data, how it reads); probes 0 and 1 are the plaintext controls.
    let mut objects: Vec<(&str, String, Vec<u8>, Sse)> = vec![
        ("cs-rest", "plain-small".into(), probed(0, 64 * KIB), Sse::Plain),
        ("cs-rest", "plain-large".into(), probed(1, 3 * MIB), Sse::Plain),
        ("cs-rest", "s3-small".into(), probed(2, 64 * KIB), Sse::S3),
        ("cs-rest", "s3-large".into(), probed(3, 3 * MIB), Sse::S3),
        ("cs-rest", "c-small".into(), probed(4, 64 * KIB), Sse::C(&a)),
        ("cs-rest", "c-large".into(), probed(5, 3 * MIB), Sse::C(&a)),
        ("cs-rest", "copy-source".into(), probed(6, 2 * MIB), Sse::S3),
        ("cs-rest", "part-source".into(), probed(7, PART + 64 * KIB), Sse::C(&b)),
        ("cs-rest", "kms-small".into(), probed(11, 64 * KIB), Sse::Kms("testkey-1")),
        ("cs-rest", "kms-large".into(), probed(12, 3 * MIB), Sse::Kms("testkey-2")),
    ];
    for (bucket, key, data, sse) in &objects {
        put_sse(&client, bucket, key, data, *sse).await;
    }
    let controls = BTreeSet::from([0u8, 1]);
    let multipart = [probed(8, PART), probed(8, 64 * KIB)];
    multipart_sse(&client, "cs-rest", "c-multipart", &multipart, Sse::C(&a)).await;
    objects.push(("cs-rest", "c-multipart".into(), multipart.concat(), Sse::C(&a)));
    let posted = probed(9, 64 * KIB);
    let answer = post_form(&server, "cs-rest", "uploads/c-posted", &ssec_fields(&b), &posted);
    assert_eq!(answer.status, 204, "SSE-C form: {}", answer.body_text());
    objects.push(("cs-rest", "uploads/c-posted".into(), posted, Sse::C(&b)));
    let copy = client.copy_object().bucket("cs-rest").key("c-copy").copy_source("cs-rest/copy-source");
    ssec!(copy, &b).send().await.ok_or_panic("CopyObject SSE-S3 -> SSE-C");
    objects.push(("cs-rest", "c-copy".into(), probed(6, 2 * MIB), Sse::C(&b)));
    let create =
        client.create_multipart_upload().bucket("cs-rest").key("s3-part-copies").server_side_encryption(ServerSideEncryption::Aes256);
    let upload_id = create.send().await.ok_or_panic("CreateMultipartUpload").upload_id().expect("UploadId").to_string();
    let mut etags = Vec::new();
    for (number, range) in [(1, format!("bytes=0-{}", PART - 1)), (2, format!("bytes={PART}-{}", PART + 64 * KIB - 1))] {
        let request = client.upload_part_copy().bucket("cs-rest").key("s3-part-copies").upload_id(&upload_id).part_number(number);
        let request = request.copy_source("cs-rest/part-source").copy_source_range(range);
        let out = copy_source_ssec!(request, &b).send().await.ok_or_panic("UploadPartCopy");
        etags.push(out.copy_part_result().and_then(|r| r.e_tag()).expect("ETag").to_string());
    }
    let request = client.complete_multipart_upload().bucket("cs-rest").key("s3-part-copies").upload_id(&upload_id);
    request.multipart_upload(completed(&etags)).send().await.ok_or_panic("CompleteMultipartUpload");
    objects.push(("cs-rest", "s3-part-copies".into(), probed(7, PART + 64 * KIB), Sse::S3));
    let defaulted = probed(10, MIB + 5);
    let out = client.put_object().bucket("cs-rest-default").key("defaulted").body(body(&defaulted)).send().await;
    let out = out.ok_or_panic("PutObject into the default bucket");
    assert_headers("PutObject into the default bucket", sse_headers!(out), Sse::S3);
    objects.push(("cs-rest-default", "defaulted".into(), defaulted, Sse::S3));

    let key_path = server.data_dir.join("sse-master.key");
    let master = std::fs::read(&key_path).unwrap_or_else(|e| panic!("read {}: {e}", key_path.display()));
    assert_eq!(master.len(), 32, "the master key is 32 bytes");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_path).expect("stat sse-master.key").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "sse-master.key mode {mode:o}");

    let data_dir = server.stop();
    let (found, scanned) = probes_at_rest(&data_dir, 13);
    assert!(scanned > 0, "nothing scanned under {}", data_dir.display());
    assert_eq!(found, controls, "probes of plaintext found at rest ({scanned} bytes scanned): only the plaintext objects' may be");

    let server = Server::start_on(data_dir);
    let client = server.client();
    assert_eq!(std::fs::read(&key_path).expect("read sse-master.key"), master, "the master key is kept over a restart");
    for (bucket, key, data, sse) in &objects {
        assert_same_bytes(&get_sse(&client, bucket, key, *sse, None).await, data, &format!("{bucket}/{key} after a restart"));
    }
    let wrong = ssec!(client.get_object().bucket("cs-rest").key("c-large"), &b).send().await;
    assert_eq!(expect_error(wrong), (403, "AccessDenied".to_string()), "another key after a restart");
}

// ---------------------------------------------------------------------------------------------
// Channels

/// A non-loopback IPv4 address of this machine: the source address of a route out (a UDP
/// connect sends nothing).
fn non_loopback_ipv4() -> std::net::Ipv4Addr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind a UDP socket");
    if let Err(e) = socket.connect("192.0.2.1:9") {
        panic!("this machine has no route to 192.0.2.1, so no non-loopback IPv4 address to send SSE-C from: {e}");
    }
    match socket.local_addr().expect("local address").ip() {
        std::net::IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => ip,
        other => panic!("no non-loopback IPv4 address on this machine (the route out leaves from {other}); this test needs one"),
    }
}

/// Over plain HTTP from a non-loopback peer every SSE-C request is refused (PUT, GET, HEAD,
/// multipart, a copy's source key), other requests are not; from loopback SSE-C works.
#[tokio::test]
async fn sse_c_refused_over_http_from_a_non_loopback_peer() {
    let server = Server::start_listening("sse_remote", "0.0.0.0:0");
    let ip = non_loopback_ipv4();
    let config = server.config(ACCESS_KEY, SECRET_KEY).endpoint_url(format!("http://{ip}:{}", server.port));
    let remote = aws_sdk_s3::Client::from_conf(config.build());
    let local = server.client();
    let key = CustomerKey::new(70);
    create_bucket(&remote, "cs-remote").await;
    put_sse(&remote, "cs-remote", "plain", b"plain from afar", Sse::Plain).await;
    put_sse(&remote, "cs-remote", "s3", b"sse-s3 from afar", Sse::S3).await;
    assert_same_bytes(&get_sse(&remote, "cs-remote", "s3", Sse::S3, None).await, b"sse-s3 from afar", "SSE-S3 from afar");
    put_sse(&local, "cs-remote", "secret", b"sse-c from loopback", Sse::C(&key)).await;

    let insecure = |what: &str, (status, code, message): (u16, String, String)| {
        assert_eq!((status, code.as_str()), (400, "InvalidRequest"), "{what} from {ip}: {message}");
        assert!(message.contains("secure connection"), "{what} from {ip}: message {message:?}");
    };
    let put = ssec!(remote.put_object().bucket("cs-remote").key("refused").body(body(b"x")), &key);
    insecure("PutObject", error_of(put.send().await));
    insecure("GetObject", error_of(ssec!(remote.get_object().bucket("cs-remote").key("secret"), &key).send().await));
    let head = ssec!(remote.head_object().bucket("cs-remote").key("secret"), &key).send().await;
    assert_eq!(expect_error(head).0, 400, "HeadObject from {ip}");
    insecure("CreateMultipartUpload", error_of(ssec!(remote.create_multipart_upload().bucket("cs-remote").key("m"), &key).send().await));
    let copy = copy_source_ssec!(remote.copy_object().bucket("cs-remote").key("copy").copy_source("cs-remote/secret"), &key);
    insecure("CopyObject from an SSE-C source", error_of(copy.send().await));
    let copy = ssec!(remote.copy_object().bucket("cs-remote").key("copy").copy_source("cs-remote/plain"), &key);
    insecure("CopyObject to SSE-C", error_of(copy.send().await));
    let create = ssec!(local.create_multipart_upload().bucket("cs-remote").key("m"), &key).send().await;
    let upload_id = create.ok_or_panic("CreateMultipartUpload from loopback").upload_id().expect("UploadId").to_string();
    let part = ssec!(remote.upload_part().bucket("cs-remote").key("m").upload_id(&upload_id).part_number(1).body(body(b"p")), &key);
    insecure("UploadPart", error_of(part.send().await));
    assert_eq!(expect_error(remote.head_object().bucket("cs-remote").key("refused").send().await).0, 404, "nothing stored");

    // The same server takes SSE-C from loopback.
    assert_same_bytes(&get_sse(&local, "cs-remote", "secret", Sse::C(&key), None).await, b"sse-c from loopback", "SSE-C over loopback");
}

/// Over HTTPS SSE-C is accepted whatever the peer (here loopback, and the TLS path's writes and
/// reads decrypt as plain HTTP's).
#[tokio::test]
async fn sse_c_over_https() {
    let server = Server::start_tls("sse_tls");
    let client = server.client();
    create_bucket(&client, "cs-tls").await;
    let key = CustomerKey::new(80);
    let data = pattern(MIB + 3, 81);
    let etag = put_sse(&client, "cs-tls", "secret", &data, Sse::C(&key)).await;
    assert_masked_etag("over HTTPS", &etag, &data);
    assert_same_bytes(&get_sse(&client, "cs-tls", "secret", Sse::C(&key), None).await, &data, "SSE-C over HTTPS");
    let range = format!("bytes={}-{}", MIB - 3, MIB + 2);
    let got = get_sse(&client, "cs-tls", "secret", Sse::C(&key), Some(&range)).await;
    assert_same_bytes(&got, &data[MIB - 3..MIB + 3], "SSE-C range over HTTPS");
    head_sse(&client, "cs-tls", "secret", Sse::C(&key), data.len(), &etag).await;
}

/// On a dual-stack listener (`[::]`) IPv4 peers arrive as IPv4-mapped IPv6 addresses: the
/// loopback check must see `::ffff:127.0.0.1` as loopback and `::ffff:<this machine>` as not;
/// `::1` is loopback.
#[tokio::test]
async fn sse_c_peer_check_on_a_dual_stack_listener() {
    if let Err(e) = std::net::TcpListener::bind("[::]:0") {
        panic!("this machine cannot listen on [::] (no IPv6?), which this test needs: {e}");
    }
    let server = Server::start_listening("sse_dual_stack", "[::]:0");
    let at = |host: String| {
        let config = server.config(ACCESS_KEY, SECRET_KEY).endpoint_url(format!("http://{host}:{}", server.port));
        aws_sdk_s3::Client::from_conf(config.build())
    };
    let ipv6_loopback = at("[::1]".to_string());
    let mapped_loopback = server.client();
    let mapped_remote = at(non_loopback_ipv4().to_string());
    let key = CustomerKey::new(90);
    create_bucket(&ipv6_loopback, "cs-dual").await;
    for (peer, client) in [("::1", &ipv6_loopback), ("::ffff:127.0.0.1", &mapped_loopback)] {
        let object = format!("from {peer}");
        put_sse(client, "cs-dual", &object, object.as_bytes(), Sse::C(&key)).await;
        assert_same_bytes(&get_sse(client, "cs-dual", &object, Sse::C(&key), None).await, object.as_bytes(), &object);
    }
    let put = ssec!(mapped_remote.put_object().bucket("cs-dual").key("refused").body(body(b"x")), &key).send().await;
    let (status, code, message) = error_of(put);
    assert_eq!((status, code.as_str()), (400, "InvalidRequest"), "SSE-C from an IPv4-mapped non-loopback peer: {message}");
    let get = ssec!(mapped_remote.get_object().bucket("cs-dual").key("from ::1"), &key).send().await;
    assert_eq!(expect_error(get), (400, "InvalidRequest".to_string()), "SSE-C GET from an IPv4-mapped non-loopback peer");
    put_sse(&mapped_remote, "cs-dual", "plain", b"plain", Sse::Plain).await;
}
