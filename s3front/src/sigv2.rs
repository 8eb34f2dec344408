//! sigv2: AWS Signature Version 2 verification for S3 requests (`Authorization: AWS AKID:sig`
//! and presigned URLs with `AWSAccessKeyId`, `Expires`, `Signature`), as Ceph RGW and MinIO
//! still accept it for old clients (s3cmd, boto2, boto3 with `signature_version='s3'`).
//!
//! Sans-IO like [`crate::sigv4`], and answering in its terms: the same [`RequestParts`],
//! [`AuthError`] and [`SignedRequest`] (with [`SignatureVersion::V2`]), so that after
//! authentication a V2 request takes the same path as a V4 one. SigV2 never signs the body: the
//! payload is [`PayloadMode::Unsigned`] unless the client declares more (`payload` below); a
//! `Content-MD5`, if sent, is still checked as for any request.
//!
//! The string to sign is `VERB \n Content-MD5 \n Content-Type \n Date \n` + the `x-amz-*` headers
//! (lowercased, sorted, values trimmed, repeats joined with ',', each `name:value\n`) + the
//! resource: `/bucket` when the bucket is in the host, the path as sent, and the sub-resources
//! of the query (decoded values, sorted by name). `x-amz-date`, when sent, replaces `Date` (whose
//! line is then empty); a presigned URL's `Expires` replaces both.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use percent_encoding::percent_decode_str;

use crate::checksum::ChecksumAlgorithm;
use crate::sigv4::{
    AuthError, CLOCK_SKEW_MAX_S, CredentialScope, HeaderList, PayloadMode, RequestParts, STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    SignatureVersion, SignedRequest, header_pairs, parse,
};

/// The Authorization scheme of SigV2 (`AWS AKID:signature`), space included.
pub const AUTHORIZATION_PREFIX: &str = "AWS ";
/// Presigned URL parameters.
pub const ACCESS_KEY_PARAM: &str = "AWSAccessKeyId";
pub const EXPIRES_PARAM: &str = "Expires";
pub const SIGNATURE_PARAM: &str = "Signature";

/// The query parameters that are part of the signed resource: the sub-resources Ceph RGW and
/// MinIO sign, the newer ones S3 added (object lock, ownership, attributes), and botocore's,
/// sorted by byte as the resource lists them.
pub const SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "attributes",
    "cors",
    "defaultObjectAcl",
    "delete",
    "encryption",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "partNumber",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "retention",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// botocore's `HmacV1Auth.QSAOfInterest`: clients disagree on which sub-resources are signed
/// (botocore leaves out `retention`, `encryption`, `legal-hold`, … which Ceph and MinIO sign), so
/// a query holding one of those is also checked as botocore signs it. Accepting that reading is
/// no weaker than botocore's own requests against AWS.
const SUBRESOURCES_BOTOCORE: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

const _: () = assert!(SUBRESOURCES.len() > SUBRESOURCES_BOTOCORE.len());

/// Whether a request carries SigV2 credentials: an `AWS ` Authorization header or an
/// `AWSAccessKeyId` query parameter. Such a request goes to [`authenticate`], any other to
/// [`crate::sigv4::authenticate`].
pub fn is_sigv2(req: &RequestParts) -> bool {
    req.header("authorization").is_some_and(is_sigv2_authorization) || query_param(req.raw_query, ACCESS_KEY_PARAM).is_some()
}

fn is_sigv2_authorization(value: &str) -> bool {
    value.trim_start().starts_with(AUTHORIZATION_PREFIX)
}

/// Verifies a request's SigV2 signature (header or presigned form).
///
/// `host_bucket` is the bucket named by a virtual-hosted request's host (it is signed as the
/// resource's first segment); `secrets` maps an access key to its secret; `now_unix_s` is the
/// server's clock.
pub fn authenticate(
    req: &RequestParts,
    host_bucket: Option<&str>,
    secrets: &dyn Fn(&str) -> Option<String>,
    now_unix_s: i64,
) -> Result<SignedRequest, AuthError> {
    let claim = match req.header("authorization") {
        Some(value) if query_has_credentials(req.raw_query) || !is_sigv2_authorization(value) => {
            return Err(AuthError::InvalidArgument {
                message: "Only one auth mechanism allowed; only the AWSAccessKeyId query parameter or the Authorization header should be specified".into(),
            });
        }
        Some(value) => header_claim(req, value, now_unix_s)?,
        None => query_claim(req.raw_query, now_unix_s)?,
    };
    let secret = secrets(&claim.access_key).ok_or_else(|| AuthError::InvalidAccessKeyId { access_key: claim.access_key.clone() })?;
    verify(req, host_bucket, &claim, &secret)?;
    let (payload, decoded_content_length, trailer) = payload(req)?;
    Ok(SignedRequest {
        version: SignatureVersion::V2,
        date_time: parse::format_amz_date(claim.request_time_unix_s).unwrap_or_default(),
        request_time_unix_s: claim.request_time_unix_s,
        // SigV2 names no region, so it never names a wrong one.
        scope: CredentialScope { date: String::new(), region: String::new(), service: String::new() },
        region_is_configured: true,
        signing_key: [0; 32],
        seed_signature: [0; 32],
        payload,
        decoded_content_length,
        trailer,
        presigned: claim.presigned,
        access_key: claim.access_key,
    })
}

/// How the body comes. SigV2 signs none of it, but a client may still declare its SHA-256
/// (checked as for SigV4) or send it aws-chunked with a checksum trailer (decoded as for SigV4);
/// chunk signatures need a SigV4 signing key, so those modes are refused.
fn payload(req: &RequestParts) -> Result<(PayloadMode, Option<u64>, Option<ChecksumAlgorithm>), AuthError> {
    let Some(value) = req.header("x-amz-content-sha256").map(str::trim) else {
        return Ok((PayloadMode::Unsigned, None, None));
    };
    let mode = PayloadMode::parse(value).ok_or_else(|| AuthError::InvalidArgument {
        message: format!(
            "x-amz-content-sha256 {value:?} must be UNSIGNED-PAYLOAD, {STREAMING_UNSIGNED_PAYLOAD_TRAILER}, or a valid sha256 value"
        ),
    })?;
    if matches!(mode, PayloadMode::StreamingSigned | PayloadMode::StreamingSignedTrailer) {
        return Err(AuthError::InvalidRequest { message: format!("x-amz-content-sha256 {value} needs a Signature Version 4 request") });
    }
    let (decoded_content_length, trailer) = crate::sigv4::streaming_headers(req, mode)?;
    Ok((mode, decoded_content_length, trailer))
}

/// What a request says about its signature, before the signature is checked.
struct Claim {
    access_key: String,
    /// Base64, as sent (and URL-decoded for a presigned URL).
    signature: String,
    /// The string to sign's date line: `Date`, empty under `x-amz-date`, or `Expires`.
    date_line: String,
    /// When the request was signed; for a presigned URL, which carries only its expiry, when it
    /// was received.
    request_time_unix_s: i64,
    presigned: bool,
}

/// Whether the query also carries credentials (V2's or V4's), which a header-signed request may not.
fn query_has_credentials(raw_query: &str) -> bool {
    [ACCESS_KEY_PARAM, "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"].iter().any(|name| query_param(raw_query, name).is_some())
}

fn header_claim(req: &RequestParts, authorization: &str, now_unix_s: i64) -> Result<Claim, AuthError> {
    let credentials = authorization.trim().strip_prefix(AUTHORIZATION_PREFIX).unwrap_or_default().trim();
    let Some((access_key, signature)) = credentials.split_once(':').filter(|(ak, sig)| !ak.is_empty() && !sig.is_empty()) else {
        return Err(AuthError::InvalidArgument {
            message: "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature".into(),
        });
    };
    let denied = || AuthError::AccessDenied { message: "AWS authentication requires a valid Date or x-amz-date header".into() };
    let amz_date = req.header("x-amz-date").map(str::trim);
    let date = amz_date.or_else(|| req.header("date").map(str::trim)).ok_or_else(denied)?;
    let request_time_unix_s = parse_date(date).ok_or_else(denied)?;
    let skew_s = now_unix_s.saturating_sub(request_time_unix_s).saturating_abs();
    if skew_s > CLOCK_SKEW_MAX_S {
        return Err(AuthError::RequestTimeTooSkewed { request_time: date.to_string(), server_time_unix_s: now_unix_s, skew_s });
    }
    Ok(Claim {
        access_key: access_key.to_string(),
        signature: signature.to_string(),
        date_line: if amz_date.is_some() { String::new() } else { date.to_string() },
        request_time_unix_s,
        presigned: false,
    })
}

fn query_claim(raw_query: &str, now_unix_s: i64) -> Result<Claim, AuthError> {
    let [Some(access_key), Some(expires), Some(signature)] =
        [ACCESS_KEY_PARAM, EXPIRES_PARAM, SIGNATURE_PARAM].map(|name| query_param(raw_query, name))
    else {
        return Err(AuthError::AccessDenied {
            message: "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters".into(),
        });
    };
    let expires_unix_s: i64 = expires
        .parse()
        .ok()
        .filter(|_| !expires.is_empty() && expires.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| AuthError::AccessDenied { message: format!("Invalid date (should be seconds since epoch): {expires}") })?;
    if now_unix_s > expires_unix_s {
        return Err(AuthError::AccessDenied { message: "Request has expired".into() });
    }
    Ok(Claim { access_key, signature, date_line: expires, request_time_unix_s: now_unix_s, presigned: true })
}

/// A SigV2 date: RFC 1123 (`… GMT`, and HTTP's obsolete forms), RFC 2822 with a numeric zone
/// (`… +0000`, `… -0000` as botocore and the AWS examples write it), or ISO 8601 basic in
/// `x-amz-date`. Times before 1970 are refused, as Ceph RGW refuses them.
pub fn parse_date(value: &str) -> Option<i64> {
    let unix_s = parse::parse_http_date(value).or_else(|| parse::parse_amz_date(value))?;
    (unix_s >= 0).then_some(unix_s)
}

/// The first value of query parameter `name` (compared as sent), percent-decoded ('+' stays '+':
/// a base64 signature sent unencoded keeps its meaning).
fn query_param(raw_query: &str, name: &str) -> Option<String> {
    raw_query.split('&').map(|piece| piece.split_once('=').unwrap_or((piece, ""))).find(|(n, _)| *n == name).map(|(_, v)| decode(v))
}

fn decode(value: &str) -> String {
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

/// Checks the signature against the resource as Ceph and MinIO sign it and, when that differs,
/// as botocore signs it (see [`SUBRESOURCES_BOTOCORE`] and [`botocore_path`]).
fn verify(req: &RequestParts, host_bucket: Option<&str>, claim: &Claim, secret: &str) -> Result<(), AuthError> {
    let string_to_sign = string_to_sign(req, host_bucket, &claim.date_line, SUBRESOURCES);
    if signature_matches(secret, string_to_sign.as_bytes(), &claim.signature) {
        return Ok(());
    }
    let botocore = string_to_sign_botocore(req, host_bucket, &claim.date_line);
    if botocore != string_to_sign && signature_matches(secret, botocore.as_bytes(), &claim.signature) {
        return Ok(());
    }
    Err(AuthError::SignatureDoesNotMatch { access_key: claim.access_key.clone(), string_to_sign, canonical_request: String::new() })
}

fn string_to_sign_botocore(req: &RequestParts, host_bucket: Option<&str>, date_line: &str) -> String {
    let path = botocore_path(req.raw_path, host_bucket);
    string_to_sign(&RequestParts { raw_path: &path, ..*req }, host_bucket, date_line, SUBRESOURCES_BOTOCORE)
}

/// botocore (like boto2 and s3cmd) signs a path-style request to a bucket itself as `/bucket/`
/// while it sends `/bucket`.
fn botocore_path(raw_path: &str, host_bucket: Option<&str>) -> String {
    let bare_bucket = host_bucket.is_none() && raw_path.strip_prefix('/').is_some_and(|bucket| !bucket.is_empty() && !bucket.contains('/'));
    if bare_bucket { format!("{raw_path}/") } else { raw_path.to_string() }
}

/// Whether `signature_b64` is the base64 HMAC-SHA1 of `data` under `secret` (compared in
/// constant time). Also verifies SigV2 PostObject policies.
pub fn signature_matches(secret: &str, data: &[u8], signature_b64: &str) -> bool {
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.verify_slice(&signature).is_ok()
}

/// The base64 HMAC-SHA1 of `string_to_sign` under `secret`: what a client sends.
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The SigV2 string to sign of `req`, with `date_line` as its date and `subresources` (sorted)
/// the query parameters its resource includes.
pub fn string_to_sign(req: &RequestParts, host_bucket: Option<&str>, date_line: &str, subresources: &[&str]) -> String {
    let mut out = String::new();
    for line in
        [req.method, req.header("content-md5").unwrap_or_default().trim(), req.header("content-type").unwrap_or_default().trim(), date_line]
    {
        out.push_str(line);
        out.push('\n');
    }
    write_amz_headers(&mut out, req.headers);
    write_resource(&mut out, req.raw_path, req.raw_query, host_bucket, subresources);
    out
}

/// `x-amz-*` headers lowercased and sorted, values trimmed, a repeated header's values joined
/// with ',' in arrival order; each `name:value\n`.
fn write_amz_headers(out: &mut String, headers: &dyn HeaderList) {
    let mut amz: std::collections::BTreeMap<String, Vec<&str>> = std::collections::BTreeMap::new();
    for (name, value) in header_pairs(headers) {
        // Bytes, not str slicing: a header name may hold non-ASCII bytes.
        if name.as_bytes().get(..6).is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"x-amz-")) {
            amz.entry(name.to_ascii_lowercase()).or_default().push(value.trim());
        }
    }
    for (name, values) in amz {
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
}

/// `/bucket` (virtual-hosted) + the path as sent + `?name[=value]&…` for the sub-resources in the
/// query, sorted by name (a stable sort: repeats keep their order), values decoded.
fn write_resource(out: &mut String, raw_path: &str, raw_query: &str, host_bucket: Option<&str>, subresources: &[&str]) {
    if let Some(bucket) = host_bucket {
        out.push('/');
        out.push_str(bucket);
    }
    out.push_str(raw_path);
    let mut signed: Vec<(&str, Option<String>)> = raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.split_once('=') {
            Some((name, value)) => (name, Some(decode(value))),
            None => (piece, None),
        })
        .filter(|(name, _)| subresources.contains(name))
        .collect();
    signed.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (name, value)) in signed.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        if let Some(value) = value {
            out.push('=');
            out.push_str(value);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    /// The AWS documentation's examples ("Signing and authenticating REST requests", SigV2).
    const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn secrets(access_key: &str) -> Option<String> {
        (access_key == ACCESS_KEY).then(|| SECRET.to_string())
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())).collect()
    }

    /// Builds the request, checks its string to sign, then that the documented signature
    /// authenticates it at `now_unix_s`.
    #[allow(clippy::too_many_arguments)]
    fn check(
        method: &str,
        raw_path: &str,
        raw_query: &str,
        pairs: &[(&str, &str)],
        host_bucket: Option<&str>,
        now_unix_s: i64,
        expected_string_to_sign: &str,
        signature: &str,
    ) {
        let mut hs = headers(pairs);
        let req = RequestParts { method, raw_path, raw_query, headers: &hs };
        let date_line = req.header("date").unwrap_or_default().to_string();
        assert_eq!(string_to_sign(&req, host_bucket, &date_line, SUBRESOURCES), expected_string_to_sign);
        assert_eq!(sign(SECRET, expected_string_to_sign), signature);
        hs.push(("authorization".into(), format!("AWS {ACCESS_KEY}:{signature}")));
        let req = RequestParts { method, raw_path, raw_query, headers: &hs };
        assert!(is_sigv2(&req));
        let signed = authenticate(&req, host_bucket, &secrets, now_unix_s).unwrap();
        assert_eq!(signed.access_key, ACCESS_KEY);
        assert_eq!(signed.version, SignatureVersion::V2);
        assert_eq!(signed.payload, PayloadMode::Unsigned);
        assert!(!signed.presigned);
    }

    const BUCKET: Option<&str> = Some("awsexamplebucket1");

    #[test]
    fn aws_documentation_examples() {
        // Object GET, virtual-hosted: the bucket comes from the host.
        check(
            "GET",
            "/photos/puppy.jpg",
            "",
            &[("Host", "awsexamplebucket1.us-west-1.s3.amazonaws.com"), ("Date", "Tue, 27 Mar 2007 19:36:42 +0000")],
            BUCKET,
            1_175_024_202,
            "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg",
            "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
        );
        // Object PUT: Content-Type signed, Content-Length not.
        check(
            "PUT",
            "/photos/puppy.jpg",
            "",
            &[("Content-Type", "image/jpeg"), ("Content-Length", "94328"), ("Date", "Tue, 27 Mar 2007 21:15:45 +0000")],
            BUCKET,
            1_175_030_145,
            "PUT\n\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n/awsexamplebucket1/photos/puppy.jpg",
            "iqRzw+ileNPu1fhspnRs8nOjjIA=",
        );
        // List: the query's parameters are no sub-resources.
        check(
            "GET",
            "/",
            "prefix=photos&max-keys=50&marker=puppy",
            &[("User-Agent", "Mozilla/5.0"), ("Date", "Tue, 27 Mar 2007 19:42:41 +0000")],
            BUCKET,
            1_175_024_561,
            "GET\n\n\nTue, 27 Mar 2007 19:42:41 +0000\n/awsexamplebucket1/",
            "m0WP8eCtspQl5Ahe6L1SozdX9YA=",
        );
        // Fetch the ACL: a sub-resource without a value.
        check(
            "GET",
            "/",
            "acl",
            &[("Date", "Tue, 27 Mar 2007 19:44:46 +0000")],
            BUCKET,
            1_175_024_686,
            "GET\n\n\nTue, 27 Mar 2007 19:44:46 +0000\n/awsexamplebucket1/?acl",
            "82ZHiFIjc+WbcwFKGUVEQspPn+0=",
        );
        // Upload to a CNAME bucket: x-amz-* headers lowercased, sorted, trimmed, repeats joined.
        check(
            "PUT",
            "/db-backup.dat.gz",
            "",
            &[
                ("User-Agent", "curl/7.15.5"),
                ("Date", "Tue, 27 Mar 2007 21:06:08 +0000"),
                ("x-amz-acl", "public-read"),
                ("content-type", "application/x-download"),
                ("Content-MD5", "4gJE4saaMU4BqNR0kLY+lw=="),
                ("X-Amz-Meta-ReviewedBy", "joe@awsexamplebucket1.net"),
                ("X-Amz-Meta-ReviewedBy", "jane@awsexamplebucket1.net"),
                ("X-Amz-Meta-FileChecksum", "0x02661779"),
                ("X-Amz-Meta-ChecksumAlgorithm", "crc32"),
                ("Content-Disposition", "attachment; filename=database.dat"),
                ("Content-Encoding", "gzip"),
                ("Content-Length", "5913339"),
            ],
            Some("static.awsexamplebucket1.net"),
            1_175_029_568,
            "PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\nTue, 27 Mar 2007 21:06:08 +0000\n\
             x-amz-acl:public-read\nx-amz-meta-checksumalgorithm:crc32\nx-amz-meta-filechecksum:0x02661779\n\
             x-amz-meta-reviewedby:joe@awsexamplebucket1.net,jane@awsexamplebucket1.net\n\
             /static.awsexamplebucket1.net/db-backup.dat.gz",
            "dKZcB+bz2EPXgSdXZp9ozGeOM4I=",
        );
        // List all my buckets.
        check(
            "GET",
            "/",
            "",
            &[("Host", "s3.us-west-1.amazonaws.com"), ("Date", "Wed, 28 Mar 2007 01:29:59 +0000")],
            None,
            1_175_045_399,
            "GET\n\n\nWed, 28 Mar 2007 01:29:59 +0000\n/",
            "qGdzdERIC03wnaRNKh6OqZehG9s=",
        );
        // Unicode keys, path-style: the path is signed as sent, escapes and their case kept.
        check(
            "GET",
            "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
            "",
            &[("Host", "s3.us-west-1.amazonaws.com"), ("Date", "Wed, 28 Mar 2007 01:49:49 +0000")],
            None,
            1_175_046_589,
            "GET\n\n\nWed, 28 Mar 2007 01:49:49 +0000\n/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
            "DNEZGsoieTZ92F3bUfSPQcbGmlM=",
        );
    }

    #[test]
    fn aws_documentation_presigned_example() {
        // The page renamed the example's bucket from johnsmith to awsexamplebucket1 but kept the
        // signature computed for johnsmith (the old page's), so the old name it is.
        let bucket = Some("johnsmith");
        let hs = headers(&[("Host", "johnsmith.s3.amazonaws.com")]);
        let query = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&Expires=1175139620";
        let req = RequestParts { method: "GET", raw_path: "/photos/puppy.jpg", raw_query: query, headers: &hs };
        assert_eq!(string_to_sign(&req, bucket, "1175139620", SUBRESOURCES), "GET\n\n\n1175139620\n/johnsmith/photos/puppy.jpg");
        assert!(is_sigv2(&req));
        let signed = authenticate(&req, bucket, &secrets, 1_175_139_000).unwrap();
        assert!(signed.presigned);
        assert_eq!(signed.access_key, ACCESS_KEY);
        let expired = authenticate(&req, bucket, &secrets, 1_175_139_621).unwrap_err();
        assert_eq!((expired.code(), expired.status(), expired.message().as_str()), ("AccessDenied", 403, "Request has expired"));
    }

    /// The headers `pairs` plus an Authorization header signing `sts`.
    fn signed_request(pairs: &[(&str, &str)], sts: &str) -> Vec<(String, String)> {
        let mut hs = headers(pairs);
        hs.push(("authorization".into(), format!("AWS {ACCESS_KEY}:{}", sign(SECRET, sts))));
        hs
    }

    const NOW: i64 = 1_175_024_202; // Tue, 27 Mar 2007 19:36:42 +0000
    const NOW_GMT: &str = "Tue, 27 Mar 2007 19:36:42 GMT";

    fn auth(method: &str, path: &str, query: &str, hs: &[(String, String)], now: i64) -> Result<SignedRequest, AuthError> {
        let hs = hs.to_vec();
        let req = RequestParts { method, raw_path: path, raw_query: query, headers: &hs };
        authenticate(&req, None, &secrets, now)
    }

    fn code(result: Result<SignedRequest, AuthError>) -> (&'static str, u16) {
        let e = result.unwrap_err();
        (e.code(), e.status())
    }

    #[test]
    fn sub_resources_sorted_with_decoded_values() {
        // botocore's reading: names sorted, values decoded, other parameters left out.
        let query = "versionId=a%2Fb&response-content-type=text%2Fplain&max-keys=3&uploads";
        let sts = format!("GET\n\n\n{NOW_GMT}\n/b/k?response-content-type=text/plain&uploads&versionId=a/b");
        let hs = signed_request(&[("date", NOW_GMT)], &sts);
        assert!(auth("GET", "/b/k", query, &hs, NOW).is_ok());
    }

    #[test]
    fn botocore_and_ceph_readings_both_accepted() {
        // botocore does not sign ?retention; Ceph and MinIO do.
        let botocore = format!("PUT\n\n\n{NOW_GMT}\n/b/k");
        let ceph = format!("PUT\n\n\n{NOW_GMT}\n/b/k?retention");
        for sts in [botocore, ceph] {
            let hs = signed_request(&[("date", NOW_GMT)], &sts);
            assert!(auth("PUT", "/b/k", "retention", &hs, NOW).is_ok(), "{sts:?}");
        }
    }

    #[test]
    fn path_style_bucket_signed_with_a_slash_as_botocore_does() {
        for sts in [format!("PUT\n\n\n{NOW_GMT}\n/bucket/"), format!("PUT\n\n\n{NOW_GMT}\n/bucket")] {
            let hs = signed_request(&[("date", NOW_GMT)], &sts);
            assert!(auth("PUT", "/bucket", "", &hs, NOW).is_ok(), "{sts:?}");
        }
        // Only a bare bucket: an object's path is signed as sent.
        let hs = signed_request(&[("date", NOW_GMT)], &format!("PUT\n\n\n{NOW_GMT}\n/bucket/key/"));
        assert_eq!(code(auth("PUT", "/bucket/key", "", &hs, NOW)), ("SignatureDoesNotMatch", 403));
    }

    #[test]
    fn x_amz_date_replaces_date() {
        let sts = format!("GET\n\n\n\nx-amz-date:{NOW_GMT}\n/b/k");
        let hs = signed_request(&[("date", "Mon, 01 Jan 2001 00:00:00 GMT"), ("x-amz-date", NOW_GMT)], &sts);
        assert!(auth("GET", "/b/k", "", &hs, NOW).is_ok());
    }

    #[test]
    fn date_forms() {
        for date in [NOW_GMT, "Tue, 27 Mar 2007 19:36:42 +0000", "Tue, 27 Mar 2007 19:36:42 -0000", "Tue, 27 Mar 2007 21:36:42 +0200"] {
            assert_eq!(parse_date(date), Some(NOW), "{date}");
        }
        assert_eq!(parse_date("20070327T193642Z"), Some(NOW));
        for bad in ["", "Bad Date", "Tue, 07 Jul 1950 21:53:04 GMT"] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn refusals() {
        let sts = format!("GET\n\n\n{NOW_GMT}\n/b/k");
        let good = signed_request(&[("date", NOW_GMT)], &sts);
        // Wrong signature, unknown key, malformed header.
        let wrong = signed_request(&[("date", NOW_GMT)], "something else");
        assert_eq!(code(auth("GET", "/b/k", "", &wrong, NOW)), ("SignatureDoesNotMatch", 403));
        assert_eq!(code(auth("PUT", "/b/k", "", &good, NOW)), ("SignatureDoesNotMatch", 403));
        let mut unknown = headers(&[("date", NOW_GMT)]);
        unknown.push(("authorization".into(), format!("AWS NOSUCHKEY:{}", sign(SECRET, &sts))));
        assert_eq!(code(auth("GET", "/b/k", "", &unknown, NOW)), ("InvalidAccessKeyId", 403));
        let invalid = headers(&[("date", NOW_GMT), ("authorization", "AWS HAHAHA")]);
        assert_eq!(code(auth("GET", "/b/k", "", &invalid, NOW)), ("InvalidArgument", 400));
        // Time: skewed, missing, unparseable, before 1970.
        assert_eq!(code(auth("GET", "/b/k", "", &good, NOW + 16 * 60)), ("RequestTimeTooSkewed", 403));
        for date in [None, Some(""), Some("Bad Date"), Some("Tue, 07 Jul 1950 21:53:04 GMT")] {
            let mut hs = headers(&date.map(|d| vec![("date", d)]).unwrap_or_default());
            hs.push(("authorization".into(), format!("AWS {ACCESS_KEY}:{}", sign(SECRET, &sts))));
            assert_eq!(code(auth("GET", "/b/k", "", &hs, NOW)), ("AccessDenied", 403), "{date:?}");
        }
        // Two mechanisms at once.
        assert_eq!(code(auth("GET", "/b/k", "AWSAccessKeyId=x", &good, NOW)), ("InvalidArgument", 400));
        // Presigned: a parameter missing, a bad Expires.
        assert_eq!(code(auth("GET", "/b/k", "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1", &[], NOW)), ("AccessDenied", 403));
        assert_eq!(code(auth("GET", "/b/k", "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=x&Signature=y", &[], NOW)), ("AccessDenied", 403));
    }

    #[test]
    fn only_sigv2_requests_are_recognized() {
        let v4 = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab",
        )]);
        assert!(!is_sigv2(&RequestParts { method: "GET", raw_path: "/", raw_query: "", headers: &v4 }));
        let none: Vec<(String, String)> = Vec::new();
        assert!(!is_sigv2(&RequestParts { method: "GET", raw_path: "/", raw_query: "X-Amz-Credential=a", headers: &none }));
        assert!(is_sigv2(&RequestParts { method: "GET", raw_path: "/", raw_query: "a=1&AWSAccessKeyId=x", headers: &none }));
    }
}
