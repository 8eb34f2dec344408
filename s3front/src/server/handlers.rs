//! S3 operations: from an authenticated request to calls on the owning cores and a response.

use std::rc::Rc;

use base64::Engine as _;

use super::authz::{access, access_denied, bucket_info, exists, may_read, may_write, missing, no_such_bucket, object_access, object_policy, owned, owner_only};
use super::cache;
use super::conn::{self, BodyReader, Conn, Request, Response};
use super::encrypt;
use super::meta::ObjectMeta;
use super::objects::{self, Entry, Info, internal};
use super::rpc::call;
use super::versions::{self, Found};
use super::{BUCKETS_BUCKET, BucketInfo, Shard};
use crate::acl::{self, Permission};
use crate::checksum::{ChecksumAlgorithm, multipart_etag};
use crate::multipart_checksum::{self, UploadChecksum};
use crate::error::{ErrorCode, S3Error};
use crate::http::{self, Method, RangeResult, ResponseHead};
use crate::cors;
use crate::lifecycle;
use crate::names;
use crate::tagging;
use crate::versioning::{VersionId, Versioning};
use crate::xml::{self, responses as xr};

/// Multipart uploads in progress, on the core owning `bucket/key`: key `bucket \0 key \0 id`.
pub const UPLOADS_BUCKET: &[u8] = b"\0uploads";
/// Parts of uploads in progress: key `<upload key> \0 <part number, 5 digits>`.
pub const PARTS_BUCKET: &[u8] = b"\0parts";
/// Bodies up to this size are stored as one record; larger ones in chunks.
pub const SMALL_OBJECT_BYTES_MAX: usize = (1 << 20) - (64 << 10);
/// Pieces an upload streams to the owning core.
pub const STREAM_PIECE_BYTES: usize = 1 << 20;
/// S3's multipart limits.
pub const PART_NUMBER_MAX: u32 = 10_000;
pub const PART_BYTES_MIN: u64 = 5 << 20;
/// Request bodies parsed as XML.
const XML_REQUEST_BYTES_MAX: usize = xml::XML_BODY_BYTES_MAX;
/// Sends of at least this size from a registered buffer use send_zc, except to loopback peers
/// (kernel-notes.md: it loses below about 64 KiB, and on loopback the kernel copies anyway and
/// completes the send only once the reader has consumed it).
const ZERO_COPY_BYTES_MIN: usize = 64 << 10;

pub fn upload_prefix(bucket: &str) -> Vec<u8> {
    let mut p = bucket.as_bytes().to_vec();
    p.push(0);
    p
}

fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    [bucket.as_bytes(), &[0], key.as_bytes(), &[0], upload_id.as_bytes()].concat()
}

fn part_key(upload: &[u8], part: u32) -> Vec<u8> {
    [upload, &[0], format!("{part:05}").as_bytes()].concat()
}

fn err(code: ErrorCode, message: impl Into<String>) -> S3Error {
    S3Error::new(code, message)
}

pub async fn handle(shard: &Rc<Shard>, conn: &mut Conn, mut req: Request) -> Result<Option<Response>, S3Error> {
    let resource = req.head.path().to_string();
    req.cors = cors_headers(shard, &req);
    (req.lifecycle, req.versioned) = object_bucket_settings(shard, &req);
    let r = if req.head.method == Method::Options { preflight(shard, &req).map(Some) } else { route(shard, conn, &req).await };
    // Responses streamed by their handler carry `req.cors` themselves (`object_response_head`);
    // errors carry them too, as S3 sends them, so that the page may read why a request failed.
    let r = r.map(|resp| resp.map(|resp| req.cors.iter().fold(resp, |resp, (n, v)| resp.header(n, v.clone()))));
    r.map_err(|mut e| {
        if !req.cors.is_empty() {
            let mut headers = e.headers.take().map(Vec::from).unwrap_or_default();
            headers.extend(req.cors.iter().cloned());
            e.headers = Some(headers.into_boxed_slice());
        }
        if e.resource.is_empty() { e.with_resource(resource) } else { e }
    })
}

/// The lifecycle rules an object request's answer may name (`Request::lifecycle`),
/// and whether the bucket has versioning (`Request::versioned`), from one lookup.
fn object_bucket_settings(shard: &Shard, req: &Request) -> (Option<conn::LifecycleDay>, bool) {
    if req.key.is_none() || !matches!(req.head.method, Method::Get | Method::Head | Method::Put) {
        return (None, false);
    }
    let buckets = shard.buckets.borrow();
    let Some(info) = req.bucket.as_deref().and_then(|b| buckets.get(b)) else { return (None, false) };
    // The header counts real days even when the rules act on shorter ones (`--lifecycle-day-s`,
    // for tests), as Ceph RGW's does under its debug interval: clients check the date.
    let rules = info.lifecycle.clone().map(|rules| (rules, lifecycle::DAY_MS));
    (rules, info.versioning.is_some())
}

/// `x-amz-expiration` for an object its bucket's rules expire: when, and by which rule.
fn expiration_header(req: &Request, size: u64, meta: &ObjectMeta) -> Option<String> {
    let (rules, day_ms) = req.lifecycle.as_ref()?;
    let (at_ms, rule) = lifecycle::expiry(rules, req.key.as_deref()?, size, &meta.tags, meta.modified_ms, *day_ms)?;
    // The header names the rule only if it can be written as it is (IDs may be any text).
    if !rule.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\') {
        return None;
    }
    Some(format!("expiry-date=\"{}\", rule-id=\"{rule}\"", http::http_date_display((at_ms / 1000) as i64)))
}

/// The CORS headers of a cross-origin request (one with `Origin`) that a rule of its bucket
/// allows; none otherwise (the browser then refuses the response to the page).
fn cors_headers(shard: &Shard, req: &Request) -> Vec<(String, String)> {
    let (Some(origin), Some(bucket)) = (req.header("origin"), &req.bucket) else { return Vec::new() };
    if req.head.method == Method::Options {
        return Vec::new();
    }
    let buckets = shard.buckets.borrow();
    let Some(rules) = buckets.get(bucket).and_then(|b| b.cors.as_ref()) else { return Vec::new() };
    match cors::matching(rules, origin, req.head.method.as_str(), &[]) {
        Some(rule) => cors::response_headers(rule, origin, None),
        None => Vec::new(),
    }
}

/// A CORS preflight (`OPTIONS` with Origin and Access-Control-Request-Method): unauthenticated,
/// answered from the bucket's rules.
fn preflight(shard: &Shard, req: &Request) -> Result<Response, S3Error> {
    let Some(bucket) = &req.bucket else {
        return Err(err(ErrorCode::MethodNotAllowed, "OPTIONS is allowed on a bucket or an object"));
    };
    let origin = req.header("origin").ok_or_else(|| err(ErrorCode::BadRequest, "Insufficient information. Origin request header needed."))?;
    let method = req.header("access-control-request-method").ok_or_else(|| err(ErrorCode::BadRequest, "Invalid Access-Control-Request-Method"))?;
    let headers = cors::requested_headers(req.header("access-control-request-headers").unwrap_or(""));
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let buckets = shard.buckets.borrow();
    let info = buckets.get(bucket).ok_or_else(|| err(ErrorCode::NoSuchBucket, "The specified bucket does not exist").with_extra("BucketName", bucket))?;
    let rules = info.cors.as_ref().ok_or_else(|| err(ErrorCode::AccessForbidden, "CORSResponse: CORS is not enabled for this bucket."))?;
    let rule = cors::matching(rules, origin, method, &headers).ok_or_else(|| {
        err(
            ErrorCode::AccessForbidden,
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        )
    })?;
    Ok(cors::response_headers(rule, origin, Some(&headers)).into_iter().fold(Response::new(200), |resp, (n, v)| resp.header(&n, v)))
}

/// Subresources S3 defines that we do not implement: answered NotImplemented rather than
/// mistaken for a plain object or bucket request.
const UNSUPPORTED_SUBRESOURCES: [&str; 13] = [
    "website",
    "logging",
    "notification",
    "replication",
    "requestPayment",
    "accelerate",
    "analytics",
    "inventory",
    "metrics",
    "intelligent-tiering",
    "torrent",
    "restore",
    "select",
];

/// A bucket configuration that cannot be set here, read back as S3 answers a bucket that has
/// none (tools read them all, and take "none set" for the answer it is): the error S3 gives,
/// or the empty document.
fn unset_configuration(sub: &str) -> Option<Result<Response, S3Error>> {
    let none = |code, message: &str| Some(Err(err(code, message)));
    match sub {
        "website" => none(ErrorCode::NoSuchWebsiteConfiguration, "The specified bucket does not have a website configuration"),
        "logging" => Some(Ok(Response::xml(200, xr::empty_configuration("BucketLoggingStatus")))),
        "notification" => Some(Ok(Response::xml(200, xr::empty_configuration("NotificationConfiguration")))),
        "accelerate" => Some(Ok(Response::xml(200, xr::empty_configuration("AccelerateConfiguration")))),
        "requestPayment" => Some(Ok(Response::xml(200, xr::request_payment_bucket_owner()))),
        _ => None,
    }
}

async fn route(shard: &Rc<Shard>, conn: &mut Conn, req: &Request) -> Result<Option<Response>, S3Error> {
    let method = &req.head.method;
    if let Some(sub) = UNSUPPORTED_SUBRESOURCES.iter().find(|s| req.has_query(s)) {
        if let Some(b) = &req.bucket {
            if req.key.is_none() {
                owner_only(shard, req, b)?;
            } else {
                exists(shard, b)?;
            }
            if req.key.is_none()
                && *method == Method::Get
                && let Some(answer) = unset_configuration(sub)
            {
                return answer.map(Some);
            }
        }
        return Err(err(ErrorCode::NotImplemented, format!("the {sub} subresource is not implemented")));
    }
    let Some(bucket) = req.bucket.clone() else {
        return match method {
            Method::Get => list_buckets(shard, req).map(Some),
            _ => Err(err(ErrorCode::MethodNotAllowed, "only GET is allowed on the service")),
        };
    };
    expected_owner(shard, &bucket, req.header("x-amz-expected-bucket-owner"))?;
    let Some(key) = req.key.clone() else {
        return bucket_op(shard, conn, req, bucket).await;
    };
    names::validate_key(&key).map_err(S3Error::from)?;
    match method {
        Method::Put if req.has_query("partNumber") && req.has_query("uploadId") => {
            upload_part(shard, conn, req, bucket, key).await.map(Some)
        }
        Method::Put if req.has_query("acl") => put_object_acl(shard, conn, req, bucket, key).await.map(Some),
        Method::Put if req.has_query("retention") => put_object_retention(shard, conn, req, bucket, key).await.map(Some),
        Method::Get if req.has_query("retention") => get_object_lock(shard, req, bucket, key, "s3:GetObjectRetention").await.map(Some),
        Method::Put if req.has_query("legal-hold") => put_object_legal_hold(shard, conn, req, bucket, key).await.map(Some),
        Method::Get if req.has_query("legal-hold") => get_object_lock(shard, req, bucket, key, "s3:GetObjectLegalHold").await.map(Some),
        Method::Put if req.has_query("tagging") => put_object_tagging(shard, conn, req, bucket, key).await.map(Some),
        Method::Get if req.has_query("tagging") => get_object_tagging(shard, req, bucket, key).await.map(Some),
        Method::Get if req.has_query("attributes") => get_object_attributes(shard, conn, req, bucket, key).await.map(Some),
        Method::Delete if req.has_query("tagging") => {
            access(shard, req, &bucket, Permission::Write, "s3:DeleteObjectTagging")?;
            let version = set_object_tags(shard, req, bucket, key, Vec::new()).await?;
            Ok(Some(with_version(Response::new(204), version)))
        }
        Method::Put if req.header("x-amz-copy-source").is_some() => copy_object(shard, conn, req, bucket, key).await.map(Some),
        Method::Put => put_object(shard, conn, req, bucket, key).await.map(Some),
        Method::Get if req.has_query("uploadId") => list_parts(shard, req, bucket, key).await.map(Some),
        Method::Get if req.has_query("acl") => get_object_acl(shard, req, bucket, key).await.map(Some),
        Method::Get | Method::Head => get_object(shard, conn, req, bucket, key).await,
        Method::Delete if req.has_query("uploadId") => abort_upload(shard, req, bucket, key).await.map(Some),
        Method::Delete => delete_object(shard, req, bucket, key).await.map(Some),
        Method::Post if req.has_query("uploads") => create_upload(shard, conn, req, bucket, key).await.map(Some),
        Method::Post if req.has_query("uploadId") => complete_upload(shard, conn, req, bucket, key).await.map(Some),
        _ => Err(err(ErrorCode::MethodNotAllowed, format!("{} is not allowed on an object", method.as_str()))),
    }
}

/// A configuration kept in a bucket's description, as GET and DELETE on its subresource see
/// it (each PUT parses and checks its own document, in `bucket_op`).
struct BucketConfig {
    query: &'static str,
    /// The policy actions that read and change it; `None`: its owner's alone (the policy).
    actions: Option<(&'static str, &'static str)>,
    /// The answer when it is not set.
    missing: (ErrorCode, &'static str),
    /// Its document, if set.
    render: fn(&BucketInfo) -> Option<Response>,
    clear: fn(&mut BucketInfo),
}

const BUCKET_CONFIGS: [BucketConfig; 7] = [
    BucketConfig {
        query: "encryption",
        actions: Some(("s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration")),
        missing: (ErrorCode::ServerSideEncryptionConfigurationNotFoundError, "The server side encryption configuration was not found"),
        render: |i| i.encryption.as_ref().map(|e| Response::xml(200, xr::bucket_encryption(e))),
        clear: |i| i.encryption = None,
    },
    BucketConfig {
        query: "cors",
        actions: Some(("s3:GetBucketCORS", "s3:PutBucketCORS")),
        missing: (ErrorCode::NoSuchCORSConfiguration, "The CORS configuration does not exist"),
        render: |i| i.cors.as_ref().map(|rules| Response::xml(200, xr::cors_configuration(rules))),
        clear: |i| i.cors = None,
    },
    BucketConfig {
        query: "lifecycle",
        actions: Some(("s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration")),
        missing: (ErrorCode::NoSuchLifecycleConfiguration, "The lifecycle configuration does not exist"),
        render: |i| i.lifecycle.as_ref().map(|rules| Response::xml(200, xr::lifecycle_configuration(rules))),
        clear: |i| i.lifecycle = None,
    },
    BucketConfig {
        query: "tagging",
        actions: Some(("s3:GetBucketTagging", "s3:PutBucketTagging")),
        missing: (ErrorCode::NoSuchTagSet, "The TagSet does not exist"),
        render: |i| i.tags.as_ref().map(|tags| Response::xml(200, xr::tagging(tags))),
        clear: |i| i.tags = None,
    },
    BucketConfig {
        query: "policy",
        actions: None,
        missing: (ErrorCode::NoSuchBucketPolicy, "The bucket policy does not exist"),
        render: |i| {
            i.policy.as_ref().map(|p| Response {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: p.document.clone().into_bytes(),
            })
        },
        clear: |i| i.policy = None,
    },
    BucketConfig {
        query: "publicAccessBlock",
        actions: Some(("s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock")),
        missing: (ErrorCode::NoSuchPublicAccessBlockConfiguration, "The public access block configuration was not found"),
        render: |i| i.public_access_block.as_ref().map(|b| Response::xml(200, xr::public_access_block(b))),
        clear: |i| i.public_access_block = None,
    },
    BucketConfig {
        query: "ownershipControls",
        actions: Some(("s3:GetBucketOwnershipControls", "s3:PutBucketOwnershipControls")),
        missing: (ErrorCode::OwnershipControlsNotFoundError, "The bucket ownership controls were not found"),
        render: |i| i.ownership.map(|o| Response::xml(200, xr::ownership_controls(o))),
        clear: |i| i.ownership = None,
    },
];

/// The bucket, if the requester may `action` it (`None`: the owner alone).
fn config_access(shard: &Shard, req: &Request, bucket: &str, action: Option<&'static str>) -> Result<BucketInfo, S3Error> {
    match action {
        Some(action) => owned(shard, req, bucket, action),
        None => owner_only(shard, req, bucket),
    }
}

fn config_get(shard: &Shard, req: &Request, bucket: &str, config: &BucketConfig) -> Result<Response, S3Error> {
    let info = config_access(shard, req, bucket, config.actions.map(|(get, _)| get))?;
    (config.render)(&info).ok_or_else(|| err(config.missing.0, config.missing.1).with_extra("BucketName", bucket))
}

async fn config_delete(shard: &Rc<Shard>, req: &Request, bucket: String, config: &BucketConfig) -> Result<Response, S3Error> {
    config_access(shard, req, &bucket, config.actions.map(|(_, put)| put))?;
    update_bucket(shard, bucket, config.clear).await?;
    Ok(Response::new(204))
}

async fn bucket_op(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String) -> Result<Option<Response>, S3Error> {
    if let Some(config) = BUCKET_CONFIGS.iter().find(|c| req.has_query(c.query)) {
        match req.head.method {
            Method::Get => return config_get(shard, req, &bucket, config).map(Some),
            Method::Delete => return config_delete(shard, req, bucket, config).await.map(Some),
            _ => {}
        }
    }
    match req.head.method {
        Method::Put if req.has_query("object-lock") => {
            owned(shard, req, &bucket, "s3:PutBucketObjectLockConfiguration")?;
            let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
            let config = xml::parse_object_lock_configuration(&body)?;
            let info = bucket_info(shard, &bucket)?;
            if info.object_lock.is_none() && info.versioning != Some(Versioning::Enabled) {
                return Err(err(ErrorCode::InvalidBucketState, "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"));
            }
            update_bucket(shard, bucket, move |info| info.object_lock = Some(config)).await?;
            Ok(Some(Response::new(200)))
        }
        Method::Get if req.has_query("object-lock") => {
            owned(shard, req, &bucket, "s3:GetBucketObjectLockConfiguration")?;
            match bucket_info(shard, &bucket)?.object_lock {
                Some(config) => Ok(Some(Response::xml(200, xr::object_lock_configuration(&config)))),
                None => Err(err(ErrorCode::ObjectLockConfigurationNotFoundError, "Object Lock configuration does not exist for this bucket")),
            }
        }
        Method::Put if req.has_query("versioning") => {
            owned(shard, req, &bucket, "s3:PutBucketVersioning")?;
            let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
            let config = xml::parse_versioning_configuration(&body).map_err(S3Error::from)?;
            if config.mfa_delete == Some(true) {
                return Err(err(ErrorCode::NotImplemented, "MFA delete is not implemented"));
            }
            // A body without a Status changes nothing; once set, versioning is only suspended.
            if config.status == Some(Versioning::Suspended) && bucket_info(shard, &bucket)?.object_lock.is_some() {
                return Err(err(ErrorCode::InvalidBucketState, "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."));
            }
            if let Some(status) = config.status {
                update_bucket(shard, bucket, move |info| info.versioning = Some(status)).await?;
            }
            Ok(Some(Response::new(200)))
        }
        Method::Put if req.has_query("acl") => set_acl(shard, conn, req, bucket).await.map(Some),
        Method::Put if req.has_query("tagging") => put_bucket_tagging(shard, conn, req, bucket).await.map(Some),
        Method::Put if req.has_query("cors") => {
            owned(shard, req, &bucket, "s3:PutBucketCORS")?;
            let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
            let rules = xml::parse_cors_configuration(&body)?;
            cors::check_rules(&rules)?;
            update_bucket(shard, bucket, move |info| info.cors = Some(rules)).await?;
            Ok(Some(Response::new(200)))
        }
        Method::Put if req.has_query("policy") => {
            owner_only(shard, req, &bucket)?;
            let document = read_small_body(conn, req, crate::policy::POLICY_BYTES_MAX).await?;
            let policy = crate::policy::parse(&document, Some(&bucket))?;
            let block = bucket_info(shard, &bucket)?.public_access_block.is_some_and(|b| b.block_public_policy);
            if block && policy.is_public() {
                return Err(err(ErrorCode::AccessDenied, "Access Denied: the bucket's public access block refuses public policies (BlockPublicPolicy)"));
            }
            let document = String::from_utf8(document).map_err(|_| err(ErrorCode::MalformedPolicy, "the policy is not UTF-8"))?;
            let stored = std::sync::Arc::new(super::BucketPolicy { document, policy });
            update_bucket(shard, bucket, move |info| info.policy = Some(stored)).await?;
            Ok(Some(Response::new(204)))
        }
        Method::Put if req.has_query("ownershipControls") => {
            owned(shard, req, &bucket, "s3:PutBucketOwnershipControls")?;
            let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
            let ownership = xml::parse_ownership_controls(&body)?;
            call(shard, 0, move |s: Rc<Shard>| async move {
                // Checked and set under the bucket's lock, so no ACL change slips in between.
                let _config = s.bucket_lock(&bucket).await;
                let info = s.buckets.borrow().get(&bucket).cloned().ok_or_else(|| no_such_bucket(&bucket))?;
                if ownership == acl::ObjectOwnership::BucketOwnerEnforced && info.acl != acl::private(&info.owner) {
                    return Err(err(ErrorCode::InvalidBucketAclWithObjectOwnership, "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"));
                }
                let info = BucketInfo { ownership: Some(ownership), ..info };
                s.store.put(BUCKETS_BUCKET, bucket.as_bytes(), &[], &info.encode()).await.map_err(|e| internal(format!("store bucket: {e}")))?;
                broadcast_bucket(&s, bucket, Some(info)).await;
                Ok(())
            })
            .await?;
            Ok(Some(Response::new(200)))
        }
        Method::Get if req.has_query("policyStatus") => {
            let info = owner_only(shard, req, &bucket)?;
            // A bucket with a policy is public as its policy says; one without, as its ACL
            // says (as Ceph RGW answers; AWS answers NoSuchBucketPolicy there, which tells a
            // client no more than "not public by policy").
            let public = match &info.policy {
                Some(policy) => policy.policy.is_public(),
                None => !info.acls_disabled() && !super::authz::ignores_public_acls(&info) && acl::is_public(&info.acl),
            };
            Ok(Some(Response::xml(200, xr::policy_status(public))))
        }
        Method::Put if req.has_query("encryption") => {
            owned(shard, req, &bucket, "s3:PutEncryptionConfiguration")?;
            let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
            let default = xml::parse_bucket_encryption(&body)?;
            update_bucket(shard, bucket, move |info| info.encryption = Some(default)).await?;
            Ok(Some(Response::new(200)))
        }
        Method::Put if req.has_query("publicAccessBlock") => {
            owned(shard, req, &bucket, "s3:PutBucketPublicAccessBlock")?;
            let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
            let block = xml::parse_public_access_block(&body)?;
            update_bucket(shard, bucket, move |info| info.public_access_block = Some(block)).await?;
            Ok(Some(Response::new(200)))
        }
        Method::Put if req.has_query("lifecycle") => {
            owned(shard, req, &bucket, "s3:PutLifecycleConfiguration")?;
            let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
            let mut rules = xml::parse_lifecycle_configuration(&body)?;
            lifecycle::check(&mut rules, |_| random_id(shard))?;
            update_bucket(shard, bucket, move |info| info.lifecycle = Some(std::sync::Arc::new(rules))).await?;
            Ok(Some(Response::new(200)))
        }
        Method::Put => create_bucket(shard, conn, req, bucket).await.map(Some),
        Method::Delete => delete_bucket(shard, req, bucket).await.map(Some),
        Method::Head => {
            access(shard, req, &bucket, Permission::Read, "s3:ListBucket")?;
            Ok(Some(Response::new(200).header("x-amz-bucket-region", shard.config.region.clone())))
        }
        Method::Post if req.has_query("delete") => delete_objects(shard, conn, req, bucket).await.map(Some),
        Method::Post if super::post_object::is_form(req) => super::post_object::post_object(shard, conn, req, bucket).await.map(Some),
        Method::Get if req.has_query("location") => {
            access(shard, req, &bucket, Permission::Read, "s3:GetBucketLocation")?;
            Ok(Some(Response::xml(200, xr::location_constraint(&shard.config.region))))
        }
        Method::Get if req.has_query("versioning") => {
            access(shard, req, &bucket, Permission::Read, "s3:GetBucketVersioning")?;
            Ok(Some(Response::xml(200, xr::versioning_configuration(bucket_info(shard, &bucket)?.versioning))))
        }
        Method::Get if req.has_query("acl") => {
            access(shard, req, &bucket, Permission::ReadAcp, "s3:GetBucketAcl")?;
            let info = bucket_info(shard, &bucket)?;
            Ok(Some(Response::xml(200, xr::access_control_policy(&owner_named(&info.owner), &info.acl))))
        }
        Method::Get if req.has_query("uploads") => list_uploads(shard, req, bucket).await.map(Some),
        Method::Get if req.has_query("versions") => list_objects(shard, req, bucket, ListKind::Versions).await.map(Some),
        Method::Get if req.query("list-type") == Some("2") => list_objects(shard, req, bucket, ListKind::V2).await.map(Some),
        Method::Get => list_objects(shard, req, bucket, ListKind::V1).await.map(Some),
        _ => Err(err(ErrorCode::MethodNotAllowed, format!("{} is not allowed on a bucket", req.head.method.as_str()))),
    }
}

fn owner_of(req: &Request) -> xr::Owner {
    owner_named(req.access_key().unwrap_or(""))
}

/// An owner as answers name it: its canonical ID, which is also its display name here (an
/// anonymous writer's is empty, shown as `anonymous`).
fn owner_named(id: &str) -> xr::Owner {
    let id = if id.is_empty() { "anonymous" } else { id };
    xr::Owner { display_name: id.to_string(), id: id.to_string() }
}

/// The requester's canonical ID, as an object it writes records its owner (`""`: anonymous,
/// which only a bucket whose ACL lets everyone write lets in).
fn requester(req: &Request) -> &str {
    req.access_key().unwrap_or("")
}

/// The grants a request's `x-amz-acl` or `x-amz-grant-*` headers give a new object of
/// `owner`'s in `bucket_owner`'s bucket, every user they name checked.
fn request_acl(shard: &Shard, req: &Request, owner: &str, bucket_owner: &str) -> Result<Option<Vec<acl::Grant>>, S3Error> {
    let grants = acl::from_headers(|h| req.header(h), owner, bucket_owner)?;
    if let Some(g) = &grants {
        check_grantees(shard, g)?;
    }
    Ok(grants)
}

fn check_grantees(shard: &Shard, grants: &[acl::Grant]) -> Result<(), S3Error> {
    Ok(acl::check_users(grants, |id| shard.users.borrow_mut().secret(id).is_some())?)
}

fn signed(req: &Request) -> Result<&str, S3Error> {
    req.access_key().ok_or_else(|| err(ErrorCode::AccessDenied, "anonymous requests may only read public buckets"))
}

/// Most buckets one ListBuckets page holds when `max-buckets` is given (S3's limit).
const MAX_BUCKETS_LIMIT: usize = 10_000;

/// ListBuckets: the requester's buckets in name order, with `prefix`, and pages of
/// `max-buckets` continued by `continuation-token` (the last name of the page before, encoded).
fn list_buckets(shard: &Shard, req: &Request) -> Result<Response, S3Error> {
    let ak = signed(req)?;
    let prefix = req.query("prefix").unwrap_or("");
    let max = match req.query("max-buckets") {
        None => usize::MAX,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_BUCKETS_LIMIT).contains(&n) => n,
            _ => return Err(err(ErrorCode::InvalidArgument, format!("max-buckets {v:?} is not between 1 and {MAX_BUCKETS_LIMIT}"))),
        },
    };
    let after = req.query("continuation-token").filter(|t| !t.is_empty()).map(decode_token).transpose()?;
    let mut buckets: Vec<xr::BucketEntry> = shard
        .buckets
        .borrow()
        .iter()
        .filter(|(name, b)| b.owner == ak && name.starts_with(prefix) && after.as_ref().is_none_or(|a| name.as_str() > a.as_str()))
        .map(|(name, b)| xr::BucketEntry { name: name.clone(), creation_date_ms: b.created_ms })
        .take(max.saturating_add(1))
        .collect();
    let continuation_token = (buckets.len() > max).then(|| {
        buckets.truncate(max);
        encode_token(&buckets[max - 1].name)
    });
    let prefix = req.query("prefix").map(str::to_string);
    Ok(Response::xml(200, xr::list_all_my_buckets(&xr::ListAllMyBuckets { owner: owner_of(req), buckets, prefix, continuation_token })))
}

async fn read_small_body(conn: &mut Conn, req: &Request, max: usize) -> Result<Vec<u8>, S3Error> {
    read_small_body_from(conn, BodyReader::new(req)?, max).await
}

async fn read_small_body_from(conn: &mut Conn, mut body: BodyReader, max: usize) -> Result<Vec<u8>, S3Error> {
    let mut out = Vec::new();
    while body.read(conn, &mut out, 64 << 10).await? {
        if out.len() > max {
            return Err(err(ErrorCode::MaxMessageLengthExceeded, format!("the request body exceeds {max} bytes")));
        }
    }
    Ok(out)
}

async fn create_bucket(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String) -> Result<Response, S3Error> {
    let owner = signed(req)?.to_string();
    names::validate_bucket_name(&bucket).map_err(S3Error::from)?;
    let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
    if let Some(region) = xml::parse_create_bucket(&body).map_err(S3Error::from)?
        && region != shard.config.region
        && !(region.is_empty() && shard.config.region == "us-east-1")
    {
        return Err(err(ErrorCode::InvalidLocationConstraint, format!("this server's region is {}, not {region}", shard.config.region)));
    }
    let ownership = match req.header("x-amz-object-ownership") {
        None => None,
        Some(v) => Some(acl::ObjectOwnership::parse(v).ok_or_else(|| {
            S3Error::invalid_argument(format!("x-amz-object-ownership {v:?}: BucketOwnerEnforced, BucketOwnerPreferred or ObjectWriter"), "x-amz-object-ownership", v)
        })?),
    };
    let grants = request_acl(shard, req, &owner, &owner)?.unwrap_or_else(|| acl::private(&owner));
    if ownership == Some(acl::ObjectOwnership::BucketOwnerEnforced) && grants != acl::private(&owner) {
        return Err(err(ErrorCode::InvalidBucketAclWithObjectOwnership, "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"));
    }
    // Object Lock comes with versioning, which it cannot do without.
    let locked = match req.header("x-amz-bucket-object-lock-enabled") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => return Err(S3Error::invalid_argument(format!("x-amz-bucket-object-lock-enabled {v:?}: true or false"), "x-amz-bucket-object-lock-enabled", v)),
    };
    let now_ms = req.now_ms;
    let b = bucket.clone();
    let settings = BucketSettings { ownership, locked };
    call(shard, 0, move |s: Rc<Shard>| async move { create_bucket_on_0(s, b, owner, now_ms, grants, settings).await }).await?;
    Ok(Response::new(200).header("location", format!("/{bucket}")))
}

/// Core 0 holds the bucket table: it stores the change, then updates every core's copy before
/// the client hears of it.
/// What a CreateBucket request sets besides its ACL.
struct BucketSettings {
    ownership: Option<acl::ObjectOwnership>,
    /// `x-amz-bucket-object-lock-enabled: true`: Object Lock on, versioning enabled.
    locked: bool,
}

async fn create_bucket_on_0(
    shard: Rc<Shard>,
    bucket: String,
    owner: String,
    now_ms: u64,
    acl: Vec<acl::Grant>,
    settings: BucketSettings,
) -> Result<(), S3Error> {
    let _config = shard.bucket_lock(&bucket).await;
    let existing = shard.buckets.borrow().get(&bucket).cloned();
    if let Some(info) = existing {
        // us-east-1 answers its owner's repeated create with success (AWS's legacy behaviour
        // there, which scripts that create-if-missing rely on) and changes nothing; a create
        // asking for another ACL is refused (as Ceph RGW does) rather than silently not applied.
        let us_east_1 = shard.config.region == "us-east-1";
        return Err(if info.owner == owner && us_east_1 && info.acl == acl {
            return Ok(());
        } else if info.owner == owner && !us_east_1 {
            err(ErrorCode::BucketAlreadyOwnedByYou, "Your previous request to create the named bucket succeeded and you already own it.")
        } else {
            err(ErrorCode::BucketAlreadyExists, "The requested bucket name is not available.")
        }
        .with_extra("BucketName", bucket));
    }
    let info = BucketInfo {
        owner,
        created_ms: now_ms,
        acl,
        tags: None,
        cors: None,
        lifecycle: None,
        policy: None,
        public_access_block: None,
        ownership: settings.ownership,
        versioning: settings.locked.then_some(Versioning::Enabled),
        object_lock: settings.locked.then(crate::object_lock::LockConfiguration::default),
        encryption: None,
    };
    shard.store.put(BUCKETS_BUCKET, bucket.as_bytes(), &[], &info.encode()).await.map_err(|e| internal(format!("store bucket: {e}")))?;
    broadcast_bucket(&shard, bucket, Some(info)).await;
    Ok(())
}

async fn broadcast_bucket(shard: &Rc<Shard>, bucket: String, info: Option<BucketInfo>) {
    for core in 0..shard.cores {
        let (b, i) = (bucket.clone(), info.clone());
        call(shard, core, move |s: Rc<Shard>| async move {
            match i {
                Some(i) => s.buckets.borrow_mut().insert(b, i),
                None => s.buckets.borrow_mut().remove(&b),
            };
        })
        .await;
    }
}

/// The grants a PutBucketAcl or PutObjectAcl gives: its `x-amz-acl` or `x-amz-grant-*`
/// headers, or else its `<AccessControlPolicy>` body (not both), every user named checked.
async fn acl_of_request(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, owner: &str, bucket_owner: &str) -> Result<Vec<acl::Grant>, S3Error> {
    let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
    match request_acl(shard, req, owner, bucket_owner)? {
        Some(_) if !body.is_empty() => Err(err(ErrorCode::UnexpectedContent, "This request does not support content: the ACL is given in headers")),
        Some(grants) => Ok(grants),
        None if body.is_empty() => Err(err(ErrorCode::MissingSecurityHeader, "Your request was missing a required header: x-amz-acl, x-amz-grant-* or an AccessControlPolicy body")),
        None => {
            let grants = xml::parse_access_control_policy(&body)?;
            check_grantees(shard, &grants)?;
            Ok(grants)
        }
    }
}

/// PutBucketAcl: replaces the bucket's grants (its owner stays).
async fn set_acl(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String) -> Result<Response, S3Error> {
    access(shard, req, &bucket, Permission::WriteAcp, "s3:PutBucketAcl")?;
    if acl_change_where_disabled(shard, req, &bucket)? {
        return Ok(Response::new(200));
    }
    let owner = bucket_info(shard, &bucket)?.owner;
    let grants = acl_of_request(shard, conn, req, &owner, &owner).await?;
    check_public_acl(shard, &bucket, &grants)?;
    update_bucket(shard, bucket, move |info| info.acl = grants).await?;
    Ok(Response::new(200))
}

/// PutObjectAcl: replaces the object's grants, keeping its data and the rest of its metadata,
/// if its current ACL lets the requester (checked on its core, against the version changed).
async fn put_object_acl(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    let described = bucket_info(shard, &bucket)?;
    let info = object_info(shard, req, &bucket, &key).await?;
    object_access(shard, req, &bucket, &key, &info.meta, Permission::WriteAcp, "s3:PutObjectAcl")?;
    if acl_change_where_disabled(shard, req, &bucket)? {
        return Ok(Response::new(200));
    }
    let grants = acl_of_request(shard, conn, req, &info.meta.owner, &described.owner).await?;
    check_public_acl(shard, &bucket, &grants)?;
    let who = req.access_key().map(str::to_string);
    // The policy's word is taken here; the ACL's is checked again on the object's core, against
    // the version changed.
    let policy_allows = object_policy(shard, req, &bucket, &key, "s3:PutObjectAcl")? == crate::policy::Decision::Allow;
    let ignore_public = super::authz::ignores_public_acls(&described);
    let version = change_object_meta(shard, req, &bucket, &key, "set ACL", move |meta| {
        if !policy_allows && !meta.allows(who.as_deref(), Permission::WriteAcp, ignore_public) {
            return Err(access_denied());
        }
        meta.set_grants(grants.clone());
        Ok(())
    })
    .await?;
    Ok(with_version(Response::new(200), version))
}

/// GetObjectAcl: the object's owner and grants, to whom its ACL lets read them.
async fn get_object_acl(shard: &Rc<Shard>, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    exists(shard, &bucket)?;
    let info = object_info(shard, req, &bucket, &key).await?;
    object_access(shard, req, &bucket, &key, &info.meta, Permission::ReadAcp, "s3:GetObjectAcl")?;
    // With ACLs off every object is the bucket owner's, whoever wrote it before they were.
    let bucket_info = bucket_info(shard, &bucket)?;
    if bucket_info.acls_disabled() {
        return Ok(Response::xml(200, xr::access_control_policy(&owner_named(&bucket_info.owner), &acl::private(&bucket_info.owner))));
    }
    Ok(with_stored_version(Response::xml(200, xr::access_control_policy(&owner_named(&info.meta.owner), &info.meta.grants())), &info.meta))
}

/// Changes what is stored about `bucket` on core 0, which keeps the bucket table, then tells every
/// core. Changes to one bucket go one at a time, and none beside its creation or deletion, so
/// each starts from what the last one wrote and none brings a deleted bucket back.
async fn update_bucket(shard: &Rc<Shard>, bucket: String, change: impl FnOnce(&mut BucketInfo) + Send + 'static) -> Result<(), S3Error> {
    call(shard, 0, move |s: Rc<Shard>| async move {
        let _config = s.bucket_lock(&bucket).await;
        let info = s.buckets.borrow().get(&bucket).cloned();
        let mut info = info.ok_or_else(|| err(ErrorCode::NoSuchBucket, "The specified bucket does not exist").with_extra("BucketName", &bucket))?;
        change(&mut info);
        s.store.put(BUCKETS_BUCKET, bucket.as_bytes(), &[], &info.encode()).await.map_err(|e| internal(format!("store bucket: {e}")))?;
        broadcast_bucket(&s, bucket, Some(info)).await;
        Ok(())
    })
    .await
}

async fn put_bucket_tagging(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String) -> Result<Response, S3Error> {
    owned(shard, req, &bucket, "s3:PutBucketTagging")?;
    let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
    let tags = tagging::checked(xml::parse_tagging(&body)?, tagging::BUCKET_TAGS_MAX)?;
    update_bucket(shard, bucket, move |info| info.tags = Some(tags)).await?;
    // S3 answers PutBucketTagging with 204 (PutObjectTagging with 200).
    Ok(Response::new(204))
}

async fn put_object_tagging(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    exists(shard, &bucket)?;
    let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
    let tags = tagging::checked(xml::parse_tagging(&body)?, tagging::OBJECT_TAGS_MAX)?;
    // The policy may name the tags the object has and the ones the request sets.
    let info = object_info(shard, req, &bucket, &key).await?;
    super::authz::may_retag(shard, req, &bucket, &key, &info.meta.tags, &tags, "s3:PutObjectTagging")?;
    let version = set_object_tags(shard, req, bucket, key, tags).await?;
    Ok(with_version(Response::new(200), version))
}

/// Most parts one ListParts or GetObjectAttributes answer lists, as in S3.
const PARTS_LISTED_MAX: usize = 1000;

/// GetObjectAttributes: what `x-amz-object-attributes` asks for, from the object's metadata
/// (a sector read, or the cache), without its data.
async fn get_object_attributes(shard: &Rc<Shard>, conn: &Conn, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    exists(shard, &bucket)?;
    // One header with a list, or (the Rust SDK) the header once per attribute.
    let asked: Vec<&str> = req.head.headers_all("x-amz-object-attributes").flat_map(|v| v.split(',')).map(str::trim).filter(|n| !n.is_empty()).collect();
    let mut wanted = xr::ObjectAttributes::default();
    for &name in &asked {
        match name {
            "ETag" => wanted.etag = true,
            "Checksum" => wanted.checksum = true,
            "ObjectParts" => wanted.parts = true,
            "StorageClass" => wanted.storage_class = true,
            "ObjectSize" => wanted.size = true,
            other => return Err(err(ErrorCode::InvalidArgument, format!("Invalid attribute name specified: {other:?}"))),
        }
    }
    if asked.is_empty() {
        return Err(err(ErrorCode::InvalidArgument, "x-amz-object-attributes names no attribute"));
    }
    let info = object_info(shard, req, &bucket, &key).await?;
    may_read(shard, req, &bucket, &key, &info.meta, "s3:GetObjectAttributes")?;
    // An SSE-C object's attributes, as its data, are the key holder's (AWS asks for the key).
    encrypt::for_read(shard, conn, req, &info.meta)?;
    let number = |name: &str, default: usize| match req.header(name) {
        None => Ok(default),
        Some(v) => v.trim().parse::<usize>().map_err(|_| err(ErrorCode::InvalidArgument, format!("{name} {v:?} is not a number"))),
    };
    let max_parts = number("x-amz-max-parts", PARTS_LISTED_MAX)?;
    let marker = number("x-amz-part-number-marker", 0)?;
    let body = xr::object_attributes(&wanted, &xr::ObjectAttributesResult {
        etag: info.meta.etag.clone(),
        checksums: checksums_of(&info.meta),
        checksum_type: info.meta.checksum().map(|(_, v)| multipart_checksum::kind_of_value(v)),
        size: info.size,
        part_sizes: &info.meta.part_sizes,
        part_checksums: (1..=info.meta.part_sizes.len()).map(|n| part_checksums_of(&info.meta, n)).collect(),
        part_number_marker: marker,
        max_parts: max_parts.min(PARTS_LISTED_MAX),
    });
    let modified = http::http_date_display((info.meta.modified_ms / 1000) as i64).to_string();
    Ok(with_stored_version(Response::xml(200, body).header("last-modified", modified), &info.meta))
}

async fn get_object_tagging(shard: &Rc<Shard>, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    exists(shard, &bucket)?;
    let info = object_info(shard, req, &bucket, &key).await?;
    may_read(shard, req, &bucket, &key, &info.meta, "s3:GetObjectTagging")?;
    Ok(with_stored_version(Response::xml(200, xr::tagging(&info.meta.tags)), &info.meta))
}

/// Replaces the tags of the version of `bucket`/`key` the request names (or its current one)
/// on its owning core, keeping its data, ETag and modification time (as S3 does: tags are not
/// part of an object's version); returns that version's id.
async fn set_object_tags(shard: &Rc<Shard>, req: &Request, bucket: String, key: String, tags: tagging::TagSet) -> Result<Option<VersionId>, S3Error> {
    change_object_meta(shard, req, &bucket, &key, "set tags", move |meta| {
        meta.tags = tags.clone();
        Ok(())
    })
    .await
}

/// Changes the metadata of the version of `bucket`/`key` the request names (or its current
/// one) on its owning core with `change` (`objects::change_meta`: the data stays, and `change`
/// sees the version it changes); returns that version's id. `what` names the change in errors.
async fn change_object_meta(
    shard: &Rc<Shard>,
    req: &Request,
    bucket: &str,
    key: &str,
    what: &'static str,
    change: impl Fn(&mut ObjectMeta) -> Result<(), S3Error> + Send + 'static,
) -> Result<Option<VersionId>, S3Error> {
    let version = requested_version(req)?;
    let (b, k) = (bucket.to_string(), key.to_string());
    let found = call(shard, shard.owner(bucket, key), move |s: Rc<Shard>| versions::change_meta(s, b, k, version, what, change)).await?;
    match found {
        Found::Object(at, ()) => Ok(at.version),
        other => Err(not_an_object(shard, req, bucket, key, version, other)),
    }
}

/// The version a write names in its answer: a new version's id, but not "null" (a write into
/// a suspended bucket names none, as s3-tests' `test_versioning_bucket_atomic_upload_return_version_id`
/// expects).
pub(super) fn written_version(version: Option<VersionId>) -> Option<VersionId> {
    version.filter(|v| *v != VersionId::Null)
}

/// `resp` naming the version whose metadata it answers from, if that version has an id.
fn with_stored_version(resp: Response, meta: &ObjectMeta) -> Response {
    match &meta.version_id {
        Some(id) => resp.header("x-amz-version-id", id.clone()),
        None => resp,
    }
}

/// `resp` naming the version it concerns, if the object has versions.
pub(super) fn with_version(resp: Response, version: Option<VersionId>) -> Response {
    match version {
        Some(v) => resp.header("x-amz-version-id", v.to_string()),
        None => resp,
    }
}

async fn delete_bucket(shard: &Rc<Shard>, req: &Request, bucket: String) -> Result<Response, S3Error> {
    owned(shard, req, &bucket, "s3:DeleteBucket")?;
    call(shard, 0, move |s: Rc<Shard>| async move {
        let _config = s.bucket_lock(&bucket).await;
        // First no core starts a write into the bucket, then each core's writes already begun
        // settle before it is checked: a PUT racing the delete either lands before the check
        // (and the bucket is not empty) or is refused.
        set_deleting_everywhere(&s, &bucket, true).await;
        let result = delete_bucket_if_empty(&s, &bucket).await;
        set_deleting_everywhere(&s, &bucket, false).await;
        result
    })
    .await?;
    Ok(Response::new(204))
}

async fn set_deleting_everywhere(shard: &Rc<Shard>, bucket: &str, deleting: bool) {
    for core in 0..shard.cores {
        let b = bucket.to_string();
        call(shard, core, move |c: Rc<Shard>| objects::set_bucket_deleting(c, b, deleting)).await;
    }
}

/// On core 0, with `bucket` marked deleting on every core.
async fn delete_bucket_if_empty(shard: &Rc<Shard>, bucket: &str) -> Result<(), S3Error> {
    for core in 0..shard.cores {
        let b = bucket.to_string();
        if call(shard, core, move |c: Rc<Shard>| objects::bucket_has_keys_settled(c, b)).await? {
            return Err(err(ErrorCode::BucketNotEmpty, "The bucket you tried to delete is not empty").with_extra("BucketName", bucket));
        }
    }
    shard.store.delete(BUCKETS_BUCKET, bucket.as_bytes()).await.map_err(|e| internal(format!("delete bucket: {e}")))?;
    broadcast_bucket(shard, bucket.to_string(), None).await;
    Ok(())
}

/// The metadata a PUT or a multipart create sets.
/// What a PUT, a multipart create or a copy with `x-amz-metadata-directive: REPLACE` sets: the
/// request's metadata, tags and ACL, its requester the owner.
fn meta_from_request(shard: &Shard, req: &Request, bucket: &str) -> Result<ObjectMeta, S3Error> {
    let mut user = Vec::new();
    for (n, v) in req.head.headers() {
        if let Some(name) = n.strip_prefix(names::USER_METADATA_PREFIX) {
            user.push((name.to_string(), v.to_string()));
        }
    }
    let mut meta = ObjectMeta::for_upload(user, |h| req.header(h), || request_tags(req), requester(req), req.now_ms)?;
    set_request_acl(shard, req, bucket, &mut meta)?;
    set_request_lock(shard, req, bucket, &mut meta)?;
    Ok(meta)
}

/// Sets a new version's Object Lock retention and legal hold: the request's
/// `x-amz-object-lock-*` headers, else the bucket's default retention; none in a bucket
/// without Object Lock, where the headers are refused.
fn set_request_lock(shard: &Shard, req: &Request, bucket: &str, meta: &mut ObjectMeta) -> Result<(), S3Error> {
    use crate::object_lock::{Mode, Retention};
    let mode = req.header("x-amz-object-lock-mode");
    let until = req.header("x-amz-object-lock-retain-until-date");
    let hold = req.header("x-amz-object-lock-legal-hold");
    let config = shard.buckets.borrow().get(bucket).and_then(|b| b.object_lock);
    let Some(config) = config else {
        if mode.is_some() || until.is_some() || hold.is_some() {
            return Err(err(ErrorCode::InvalidRequest, "Bucket is missing Object Lock Configuration"));
        }
        meta.retention = None;
        meta.legal_hold = false;
        return Ok(());
    };
    meta.retention = match (mode, until) {
        (None, None) => config.default.map(|d| d.retention_from(req.now_ms)),
        (Some(m), Some(u)) => {
            let mode = Mode::parse(m).ok_or_else(|| S3Error::invalid_argument(format!("x-amz-object-lock-mode {m:?}: GOVERNANCE or COMPLIANCE"), "x-amz-object-lock-mode", m))?;
            let until_ms = xml::parse_timestamp_ms(u)
                .ok_or_else(|| S3Error::invalid_argument(format!("x-amz-object-lock-retain-until-date {u:?} is not an ISO 8601 date"), "x-amz-object-lock-retain-until-date", u))?;
            if until_ms <= req.now_ms {
                return Err(S3Error::invalid_argument("The retain until date must be in the future!", "x-amz-object-lock-retain-until-date", u));
            }
            Some(Retention { mode, until_ms })
        }
        _ => return Err(err(ErrorCode::InvalidArgument, "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied")),
    };
    meta.legal_hold = match hold {
        None | Some("OFF") => false,
        Some("ON") => true,
        Some(v) => return Err(S3Error::invalid_argument(format!("x-amz-object-lock-legal-hold {v:?}: ON or OFF"), "x-amz-object-lock-legal-hold", v)),
    };
    Ok(())
}

/// Whether a request may bypass GOVERNANCE retention: it asks to
/// (`x-amz-bypass-governance-retention: true`) and is the bucket's owner or allowed
/// `s3:BypassGovernanceRetention` by its policy.
fn bypass_governance(shard: &Shard, req: &Request, bucket: &str, key: &str) -> bool {
    if !req.header("x-amz-bypass-governance-retention").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return false;
    }
    let owner = shard.buckets.borrow().get(bucket).is_some_and(|b| Some(b.owner.as_str()) == req.access_key());
    owner || object_policy(shard, req, bucket, key, "s3:BypassGovernanceRetention").is_ok_and(|d| d == crate::policy::Decision::Allow)
}

/// Refuses an Object Lock call on a bucket without Object Lock, as S3 does.
fn lock_enabled(shard: &Shard, bucket: &str) -> Result<(), S3Error> {
    if bucket_info(shard, bucket)?.object_lock.is_none() {
        return Err(err(ErrorCode::InvalidRequest, "Bucket is missing Object Lock Configuration"));
    }
    Ok(())
}

/// PutObjectRetention: a version's retention, changed as Object Lock allows (checked on the
/// version's core, against the version changed).
async fn put_object_retention(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    access(shard, req, &bucket, Permission::Write, "s3:PutObjectRetention")?;
    lock_enabled(shard, &bucket)?;
    let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
    let new = xml::parse_retention(&body)?;
    let (bypass, now_ms) = (bypass_governance(shard, req, &bucket, &key), req.now_ms);
    let version = change_object_meta(shard, req, &bucket, &key, "set retention", move |meta| {
        crate::object_lock::check_change(meta.retention, new, now_ms, bypass)?;
        meta.retention = new;
        Ok(())
    })
    .await?;
    Ok(with_version(Response::new(200), version))
}

/// PutObjectLegalHold: on or off, whatever the retention.
async fn put_object_legal_hold(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    access(shard, req, &bucket, Permission::Write, "s3:PutObjectLegalHold")?;
    lock_enabled(shard, &bucket)?;
    let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
    let on = xml::parse_legal_hold(&body)?;
    let version = change_object_meta(shard, req, &bucket, &key, "set legal hold", move |meta| {
        meta.legal_hold = on;
        Ok(())
    })
    .await?;
    Ok(with_version(Response::new(200), version))
}

/// GetObjectRetention or GetObjectLegalHold (`action` says which).
async fn get_object_lock(shard: &Rc<Shard>, req: &Request, bucket: String, key: String, action: &'static str) -> Result<Response, S3Error> {
    exists(shard, &bucket)?;
    lock_enabled(shard, &bucket)?;
    let info = object_info(shard, req, &bucket, &key).await?;
    may_read(shard, req, &bucket, &key, &info.meta, action)?;
    if action == "s3:GetObjectLegalHold" {
        return Ok(Response::xml(200, xr::legal_hold(info.meta.legal_hold)));
    }
    match info.meta.retention {
        Some(r) => Ok(Response::xml(200, xr::retention(&r))),
        None => Err(err(ErrorCode::NoSuchObjectLockConfiguration, "The specified object does not have a ObjectLock configuration")),
    }
}

/// Gives a new object the ACL its request's headers ask for, if any.
fn set_request_acl(shard: &Shard, req: &Request, bucket: &str, meta: &mut ObjectMeta) -> Result<(), S3Error> {
    let (bucket_owner, ownership) = {
        let buckets = shard.buckets.borrow();
        let info = buckets.get(bucket).ok_or_else(|| no_such_bucket(bucket))?;
        (info.owner.clone(), info.ownership)
    };
    let for_bucket_owner = req.header("x-amz-acl").map(str::trim) == Some("bucket-owner-full-control") && !has_grant_headers(req);
    match ownership {
        Some(acl::ObjectOwnership::BucketOwnerEnforced) => {
            if !for_bucket_owner && (req.header("x-amz-acl").is_some() || has_grant_headers(req)) {
                return Err(acls_not_supported());
            }
            meta.owner = bucket_owner;
            meta.acl = None;
            return Ok(());
        }
        Some(acl::ObjectOwnership::BucketOwnerPreferred) if for_bucket_owner => {
            meta.owner = bucket_owner;
            meta.acl = None;
            return Ok(());
        }
        _ => {}
    }
    if let Some(grants) = request_acl(shard, req, &meta.owner, &bucket_owner)? {
        check_public_acl(shard, bucket, &grants)?;
        meta.set_grants(grants);
    }
    Ok(())
}

fn has_grant_headers(req: &Request) -> bool {
    Permission::ALL.iter().any(|p| req.header(p.grant_header()).is_some())
}

fn acls_not_supported() -> S3Error {
    err(ErrorCode::AccessControlListNotSupported, "The bucket does not allow ACLs (its object ownership is BucketOwnerEnforced)")
}

/// For a PutBucketAcl or PutObjectAcl into a bucket whose ACLs are off: `Ok(true)` if the
/// request asks for what is already so (`bucket-owner-full-control`), and nothing is to be
/// changed; `Ok(false)` if ACLs are on.
fn acl_change_where_disabled(shard: &Shard, req: &Request, bucket: &str) -> Result<bool, S3Error> {
    let disabled = shard.buckets.borrow().get(bucket).ok_or_else(|| no_such_bucket(bucket))?.acls_disabled();
    if !disabled {
        return Ok(false);
    }
    if req.header("x-amz-acl").map(str::trim) == Some("bucket-owner-full-control") && !has_grant_headers(req) {
        return Ok(true);
    }
    Err(acls_not_supported())
}

/// Refuses public grants (to everyone, or to every signed user) where the bucket's public
/// access block says `BlockPublicAcls`.
pub(super) fn check_public_acl(shard: &Shard, bucket: &str, grants: &[acl::Grant]) -> Result<(), S3Error> {
    let blocked = shard.buckets.borrow().get(bucket).and_then(|i| i.public_access_block).is_some_and(|b| b.block_public_acls);
    if blocked && acl::is_public(grants) {
        return Err(err(ErrorCode::AccessDenied, "Access Denied: the bucket's public access block refuses public ACLs (BlockPublicAcls)"));
    }
    Ok(())
}

/// The tags a PUT, a multipart create or a copy with `x-amz-tagging-directive: REPLACE` sets.
fn request_tags(req: &Request) -> Result<tagging::TagSet, S3Error> {
    Ok(req.header("x-amz-tagging").map(tagging::parse_header).transpose()?.unwrap_or_default())
}

/// The current version's metadata and size, from its owning core (`None` if there is none,
/// or it is a delete marker).
async fn head_info(shard: &Rc<Shard>, bucket: &str, key: &str) -> Result<Option<Info>, S3Error> {
    let (b, k) = (bucket.to_string(), key.to_string());
    match call(shard, shard.owner(bucket, key), move |s: Rc<Shard>| versions::head(s, b, k, None)).await? {
        Found::Object(_, info) => Ok(Some(info)),
        Found::Missing | Found::Marker(_) => Ok(None),
    }
}

/// The version a request names (`versionId`), if it names one.
fn requested_version(req: &Request) -> Result<Option<VersionId>, S3Error> {
    match req.query("versionId") {
        None => Ok(None),
        Some(v) => VersionId::parse(v)
            .map(Some)
            .ok_or_else(|| err(ErrorCode::InvalidArgument, "Invalid version id specified").with_extra("ArgumentName", "versionId").with_extra("ArgumentValue", v)),
    }
}

/// What S3 answers when the version asked for is not an object: no such key or version, or
/// (asked by id) a delete marker, which has no data, ACL or tags.
fn not_an_object<T>(shard: &Shard, req: &Request, bucket: &str, key: &str, version: Option<VersionId>, found: Found<T>) -> S3Error {
    match (found, version) {
        (Found::Marker(id), Some(_)) => err(ErrorCode::MethodNotAllowed, "The specified method is not allowed against this resource.")
            .with_header("x-amz-delete-marker", "true")
            .with_header("x-amz-version-id", id.to_string()),
        (Found::Marker(id), None) => missing(shard, req, bucket, key).with_header("x-amz-delete-marker", "true").with_header("x-amz-version-id", id.to_string()),
        (_, Some(id)) => versions::no_such_version(key, &id.to_string()),
        (_, None) => missing(shard, req, bucket, key),
    }
}

/// The version of an object a request names (or its current one): its metadata and size.
async fn object_info(shard: &Rc<Shard>, req: &Request, bucket: &str, key: &str) -> Result<Info, S3Error> {
    let version = requested_version(req)?;
    let (b, k) = (bucket.to_string(), key.to_string());
    match call(shard, shard.owner(bucket, key), move |s: Rc<Shard>| versions::head(s, b, k, version)).await? {
        Found::Object(_, info) => Ok(info),
        other => Err(not_an_object(shard, req, bucket, key, version, other)),
    }
}

/// Where a copy reads from: the source's owning core, its names, and where it lies there.
pub(super) struct Source {
    owner: usize,
    key: String,
    at: versions::Located,
}

/// A copy's source (`version` of `bucket`/`key`): its metadata, size and, if it is large,
/// manifest, from its owning core.
async fn describe_source(shard: &Rc<Shard>, req: &Request, bucket: &str, key: &str, version: Option<VersionId>) -> Result<(Source, Info), S3Error> {
    let (b, k) = (bucket.to_string(), key.to_string());
    let owner = shard.owner(bucket, key);
    match call(shard, owner, move |s: Rc<Shard>| versions::describe(s, b, k, version)).await? {
        Found::Object(at, info) => Ok((Source { owner, key: key.to_string(), at }, info)),
        // S3 refuses to copy a delete marker as it refuses to GET one.
        other => Err(not_an_object(shard, req, bucket, key, version, other)),
    }
}

async fn put_object(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    access(shard, req, &bucket, Permission::Write, "s3:PutObject")?;
    let mut meta = meta_from_request(shard, req, &bucket)?;
    // A condition that fails now fails before the body is read; it is checked again with the
    // write itself (`commit_if`), since another write may land while the body arrives.
    let cond = versions::WriteCondition::of(req);
    if let Some(cond) = &cond {
        cond.check(head_info(shard, &bucket, &key).await?.as_ref().map(|i| i.meta.etag.as_str()))?;
    }
    let owner = shard.owner(&bucket, &key);
    let (sealed, cipher) = encrypt::one_segment(encrypt::for_write(shard, conn, &bucket, |h| req.header(h))?)?;
    let mut body = BodyReader::new(req)?;
    let mut source = encrypt::Encrypting::new(&mut body, cipher.as_ref());
    let stored = store_body(shard, conn, &mut source, owner).await?;
    let md5 = body.md5_digest.expect("the body ended");
    meta.etag = encrypt::etag(md5, sealed.as_ref(), cipher.as_ref());
    let mut resp = encrypt::with_headers(Response::new(200), sealed.as_ref()).header("etag", format!("\"{}\"", meta.etag));
    meta.sse = sealed;
    if let Some((alg, v)) = body.checksum_value.clone() {
        resp = resp.header(alg.header_name(), v.clone());
        meta.checksums.push((alg.sdk_name().to_string(), v));
    }
    let size = match &stored {
        Stored::Small(data) => data.len() as u64,
        Stored::Stream(extent) => extent.bytes,
    };
    if let Some(expiration) = expiration_header(req, size, &meta) {
        resp = resp.header("x-amz-expiration", expiration);
    }
    let version = commit_if(shard, owner, bucket, key, meta, stored, cond).await?;
    Ok(with_version(resp, written_version(version)))
}

/// Where a body went: in memory (small), or into an upload stream on the owning core.
pub(super) enum Stored {
    Small(Vec<u8>),
    Stream(engine::store::Extent),
}

/// Where an object's bytes come from: a request's body, or the file of a form (PostObject).
pub(super) trait BodySource {
    /// The length the request declared, if it did.
    fn declared_len(&self) -> Option<u64>;
    /// Appends up to about `want` more bytes to `out`; false once the bytes have ended.
    async fn read(&mut self, conn: &mut Conn, out: &mut Vec<u8>, want: usize) -> Result<bool, S3Error>;
}

impl BodySource for BodyReader {
    fn declared_len(&self) -> Option<u64> {
        BodyReader::declared_len(self)
    }

    async fn read(&mut self, conn: &mut Conn, out: &mut Vec<u8>, want: usize) -> Result<bool, S3Error> {
        BodyReader::read(self, conn, out, want).await
    }
}

/// Reads a body to its end: kept in memory if small, else streamed to core `owner` in chunks.
pub(super) async fn store_body(shard: &Rc<Shard>, conn: &mut Conn, body: &mut impl BodySource, owner: usize) -> Result<Stored, S3Error> {
    let mut piece = Vec::with_capacity(body.declared_len().map_or(64 << 10, |n| (n as usize).min(STREAM_PIECE_BYTES)));
    let small = body.declared_len().is_some_and(|n| n as usize <= SMALL_OBJECT_BYTES_MAX);
    if small || body.declared_len().is_none() {
        while piece.len() <= SMALL_OBJECT_BYTES_MAX {
            if !body.read(conn, &mut piece, 256 << 10).await? {
                return Ok(Stored::Small(piece));
            }
        }
    }
    let session = call(shard, owner, |s: Rc<Shard>| objects::begin_write(s)).await;
    let result = stream_body(shard, conn, body, owner, session, piece).await;
    match result {
        Ok(()) => Ok(Stored::Stream(call(shard, owner, move |s: Rc<Shard>| objects::finish_write(s, session)).await?)),
        Err(e) => {
            call(shard, owner, move |s: Rc<Shard>| objects::abort_write(s, session)).await;
            Err(e)
        }
    }
}

async fn stream_body(
    shard: &Rc<Shard>,
    conn: &mut Conn,
    body: &mut impl BodySource,
    owner: usize,
    session: u64,
    mut piece: Vec<u8>,
) -> Result<(), S3Error> {
    loop {
        let want = STREAM_PIECE_BYTES.saturating_sub(piece.len()).max(1);
        let more = body.read(conn, &mut piece, want).await?;
        if !piece.is_empty() && (piece.len() >= STREAM_PIECE_BYTES || !more) {
            let data = std::mem::replace(&mut piece, Vec::with_capacity(STREAM_PIECE_BYTES));
            call(shard, owner, move |s: Rc<Shard>| objects::write(s, session, data)).await?;
        }
        if !more {
            return Ok(());
        }
    }
}

/// Stores an object on its owning core; the new version's id in a versioned bucket.
pub(super) async fn commit(shard: &Rc<Shard>, owner: usize, bucket: String, key: String, meta: ObjectMeta, stored: Stored) -> Result<Option<VersionId>, S3Error> {
    commit_if(shard, owner, bucket, key, meta, stored, None).await
}

/// [`commit`] if `cond` holds for the object it replaces, checked on the owning core together
/// with the write (two conditional writes racing cannot both see the key absent).
pub(super) async fn commit_if(
    shard: &Rc<Shard>,
    owner: usize,
    bucket: String,
    key: String,
    meta: ObjectMeta,
    stored: Stored,
    cond: Option<versions::WriteCondition>,
) -> Result<Option<VersionId>, S3Error> {
    match stored {
        Stored::Small(data) => call(shard, owner, move |s: Rc<Shard>| objects::put_small(s, bucket, key, meta, data, cond)).await,
        Stored::Stream(extent) => {
            call(shard, owner, move |s: Rc<Shard>| objects::put_large(s, bucket, key, meta, vec![extent], Vec::new(), cond)).await
        }
    }
}

pub(super) fn etag_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|c| c == "*" || xml::strip_etag_quotes(c.trim_start_matches("W/")) == etag)
}

/// The headers every GET/HEAD of an object returns, written straight into `head`. Stored
/// values are echoed: one that cannot be a header is left out.
/// The headers of an object's responses that come from its metadata alone.
fn stored_headers(meta: &ObjectMeta) -> http::HeaderLines {
    let mut head = ResponseHead::new(200);
    let _ = head.try_header_fmt("etag", format_args!("\"{}\"", meta.etag));
    let _ = head.try_header_fmt("last-modified", format_args!("{}", http::http_date_display((meta.modified_ms / 1000) as i64)));
    let _ = head.try_header("content-type", meta.content_type.as_deref().unwrap_or("binary/octet-stream"));
    let _ = head.try_header("accept-ranges", "bytes");
    for (n, v) in &meta.headers {
        let _ = head.try_header(n, v);
    }
    for (n, v) in &meta.user {
        let name = format!("x-amz-meta-{n}");
        let _ = if v.is_ascii() {
            head.try_header(&name, v)
        } else {
            // As S3 answers: a value outside US-ASCII goes out RFC 2047-encoded, since HTTP
            // header values are not UTF-8 (clients decode it, or show it as sent).
            head.try_header_fmt(&name, format_args!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(v)))
        };
    }
    if !meta.tags.is_empty() {
        let _ = head.try_header_fmt("x-amz-tagging-count", format_args!("{}", meta.tags.len()));
    }
    if let Some(id) = &meta.version_id {
        let _ = head.try_header("x-amz-version-id", id);
    }
    if let Some(r) = &meta.retention {
        let _ = head.try_header("x-amz-object-lock-mode", r.mode.as_str());
        let _ = head.try_header("x-amz-object-lock-retain-until-date", &xml::format_timestamp_ms(r.until_ms));
    }
    if meta.legal_hold {
        let _ = head.try_header("x-amz-object-lock-legal-hold", "ON");
    }
    if !meta.part_sizes.is_empty() {
        let _ = head.try_header_fmt("x-amz-mp-parts-count", format_args!("{}", meta.part_sizes.len()));
    }
    for (name, value) in meta.sse.as_ref().map(crate::sse::Sealed::response_headers).unwrap_or_default() {
        let _ = head.try_header(name, &value);
    }
    head.into_header_lines()
}

/// The object's checksum and its type, when the request asks for them
/// (`x-amz-checksum-mode: ENABLED`). A part read (`partNumber` of a multipart object) gets the
/// part's checksum; a range gets none, since no checksum covers it, as in S3.
fn checksum_headers(head: &mut ResponseHead, req: &Request, meta: &ObjectMeta, partial: bool) {
    if !req.header("x-amz-checksum-mode").is_some_and(|m| m.eq_ignore_ascii_case("enabled")) {
        return;
    }
    let Some((algorithm, value)) = meta.checksum() else { return };
    let kind = multipart_checksum::kind_of_value(value);
    if partial {
        let part = req.query("partNumber").and_then(|n| n.parse::<usize>().ok()).and_then(|n| meta.part_checksum(n));
        if let Some((algorithm, value)) = part {
            let _ = head.try_header(algorithm.header_name(), &value);
            let _ = head.try_header("x-amz-checksum-type", kind.as_str());
        }
        return;
    }
    let _ = head.try_header(algorithm.header_name(), value);
    let _ = head.try_header("x-amz-checksum-type", kind.as_str());
}

/// GET/HEAD preconditions (RFC 9110 §13.2.2 order, as S3 applies them).
fn preconditions(req: &Request, meta: &ObjectMeta) -> Result<(), S3Error> {
    let modified_s = (meta.modified_ms / 1000) as i64;
    let failed = || err(ErrorCode::PreconditionFailed, "At least one of the pre-conditions you specified did not hold");
    let if_match = req.header("if-match");
    if let Some(m) = if_match
        && !etag_matches(m, &meta.etag)
    {
        return Err(failed());
    }
    if if_match.is_none()
        && let Some(t) = req.header("if-unmodified-since").and_then(http::parse_http_date)
        && modified_s > t
    {
        return Err(failed());
    }
    let if_none_match = req.header("if-none-match");
    if let Some(m) = if_none_match
        && etag_matches(m, &meta.etag)
    {
        return Err(err(ErrorCode::NotModified, "Not Modified"));
    }
    if if_none_match.is_none()
        && let Some(t) = req.header("if-modified-since").and_then(http::parse_http_date)
        && modified_s <= t
    {
        return Err(err(ErrorCode::NotModified, "Not Modified"));
    }
    Ok(())
}

/// Preconditions of a GET/HEAD: `Ok(Some(304 response))` when not modified (it carries the
/// ETag and Last-Modified, RFC 9110 §15.4.5), an error when one failed.
fn check_preconditions(req: &Request, meta: &ObjectMeta) -> Result<Option<Response>, S3Error> {
    match preconditions(req, meta) {
        Ok(()) => Ok(None),
        Err(e) if e.code == ErrorCode::NotModified => Ok(Some(
            Response::new(304)
                .header("etag", format!("\"{}\"", meta.etag))
                .header("last-modified", http::http_date((meta.modified_ms / 1000) as i64)),
        )),
        Err(e) => Err(e),
    }
}

fn no_such_key(key: &str) -> S3Error {
    err(ErrorCode::NoSuchKey, "The specified key does not exist.").with_extra("Key", key)
}

/// The byte range to send: (start, end exclusive, partial?), from the Range header or from
/// `partNumber` (one part of a multipart object, as download managers fetch them; part 1 of
/// any other object is all of it).
fn range_of(req: &Request, meta: &ObjectMeta, size: u64) -> Result<(u64, u64, bool), S3Error> {
    if let Some(n) = req.query("partNumber") {
        if req.header("range").is_some() {
            return Err(err(ErrorCode::InvalidRequest, "Cannot specify both Range header and partNumber query parameter"));
        }
        let n: usize = n.parse().ok().filter(|n| (1..=PART_NUMBER_MAX as usize).contains(n)).ok_or_else(|| {
            err(ErrorCode::InvalidArgument, format!("Part number must be an integer between 1 and {PART_NUMBER_MAX}, inclusive"))
                .with_extra("ArgumentName", "partNumber")
                .with_extra("ArgumentValue", n)
        })?;
        let parts = meta.part_sizes.len().max(1);
        if n > parts {
            return Err(err(ErrorCode::InvalidPart, format!("The requested partnumber is not satisfiable: the object has {parts} part(s)")).with_extra("PartNumber", n.to_string()));
        }
        if meta.part_sizes.is_empty() {
            return Ok((0, size, false));
        }
        let start: u64 = meta.part_sizes[..n - 1].iter().sum();
        return Ok((start, start + meta.part_sizes[n - 1], true));
    }
    let Some(value) = req.header("range") else { return Ok((0, size, false)) };
    match http::parse_range(value, size) {
        RangeResult::Full => Ok((0, size, false)),
        RangeResult::Partial { start, end_inclusive } => Ok((start, end_inclusive + 1, true)),
        RangeResult::Unsatisfiable => Err(err(ErrorCode::InvalidRange, "The requested range is not satisfiable")
            .with_extra("RangeRequested", value)
            .with_extra("ActualObjectSize", size.to_string())),
    }
}

async fn get_object(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String, key: String) -> Result<Option<Response>, S3Error> {
    exists(shard, &bucket)?;
    let is_head = req.head.method == Method::Head;
    let owner = shard.owner(&bucket, &key);
    let version = requested_version(req)?;
    // Where the version asked for lies: under the key itself, unless the bucket has versions.
    let at = if version.is_none() && versions::versioning(shard, &bucket).is_none() {
        None
    } else {
        let located = if owner == shard.core {
            versions::locate(shard, &bucket, &key, version)
        } else {
            let (b, k) = (bucket.clone(), key.clone());
            call(shard, owner, move |s: Rc<Shard>| versions::locate_owned(s, b, k, version)).await
        };
        match located {
            None => return Err(not_an_object(shard, req, &bucket, &key, version, Found::<()>::Missing)),
            Some(l) if l.marker => {
                let id = l.version.expect("a marker has a version");
                return Err(not_an_object(shard, req, &bucket, &key, version, Found::<()>::Marker(id)));
            }
            Some(l) => Some(l),
        }
    };
    let stored: (&str, &str) = match &at {
        Some(l) => (&l.bucket, &l.key),
        None => (&bucket, &key),
    };
    if owner == shard.core {
        let lsn = at.as_ref().and_then(|l| l.lsn);
        return get_local(shard, conn, req, (&bucket, &key), stored, lsn, is_head).await;
    }
    let (b, k) = (stored.0.to_string(), stored.1.to_string());
    let got = if is_head {
        call(shard, owner, move |s: Rc<Shard>| objects::head(s, b, k)).await?.map(|i| (i, None))
    } else {
        call(shard, owner, move |s: Rc<Shard>| objects::get_small(s, b, k)).await?
    };
    let Some((info, data)) = got else { return Err(missing(shard, req, &bucket, &key)) };
    may_read(shard, req, &bucket, &key, &info.meta, "s3:GetObject")?;
    let cipher = encrypt::for_read(shard, conn, req, &info.meta)?;
    if is_head {
        return send_head(conn, req, &info).await;
    }
    if let Some(data) = data {
        // The owner's cached bytes, shared, not copied.
        return send_cached(conn, req, &info.meta, &stored_headers(&info.meta), data.len() as u64, Some(&data), cipher.as_ref()).await;
    }
    if let Some(r) = check_preconditions(req, &info.meta)? {
        return Ok(Some(r));
    }
    let (start, end, partial) = range_of(req, &info.meta, info.size)?;
    let head = object_response_head(req, &info.meta, info.size, start, end, partial);
    // A large object on another core: hold its chunks there, fetch them piece by piece.
    let Some(remote) = RemoteRead::open(shard, owner, stored.0, stored.1).await? else {
        return Err(missing(shard, req, &bucket, &key));
    };
    send(conn, head).await?;
    let mut result = Ok(());
    let mut at = start;
    for r in remote.reads(start, end) {
        match remote.piece(r).await {
            Ok(mut p) => {
                if let Some(c) = &cipher {
                    c.apply(at, &mut p);
                }
                at += p.len() as u64;
                if let Err(e) = conn.stream.send_all(p).await {
                    result = Err(e.to_string());
                    break;
                }
            }
            Err(e) => {
                result = Err(e.message);
                break;
            }
        }
    }
    drop(remote);
    if let Err(e) = result {
        // Headers are out: the only way to tell the client is to cut the connection short.
        eprintln!("corestore: GET {bucket}/{key} failed mid-body: {e}");
        conn.body_unread = true;
    }
    Ok(None)
}

/// The query parameters of a GET or HEAD that replace a stored header in its response (S3's
/// `response-*`, as presigned download links use them), and the headers they replace.
const RESPONSE_OVERRIDES: [(&str, &str); 6] = [
    ("response-content-type", "content-type"),
    ("response-cache-control", "cache-control"),
    ("response-content-disposition", "content-disposition"),
    ("response-content-encoding", "content-encoding"),
    ("response-content-language", "content-language"),
    ("response-expires", "expires"),
];

/// `meta` with the request's `response-*` overrides applied, if it has any.
fn response_overrides(req: &Request, meta: &ObjectMeta) -> Option<ObjectMeta> {
    if !RESPONSE_OVERRIDES.iter().any(|(param, _)| req.has_query(param)) {
        return None;
    }
    let mut m = meta.clone();
    for (param, header) in RESPONSE_OVERRIDES {
        let Some(value) = req.query(param) else { continue };
        if header == "content-type" {
            m.content_type = Some(value.to_string());
            continue;
        }
        m.headers.retain(|(n, _)| n != header);
        m.headers.push((header.to_string(), value.to_string()));
    }
    Some(m)
}

fn object_response_head(req: &Request, meta: &ObjectMeta, size: u64, start: u64, end: u64, partial: bool) -> Vec<u8> {
    object_response_head_with(req, meta, &stored_headers(meta), size, start, end, partial)
}

/// [`object_response_head`] with the object's stored headers already rendered.
fn object_response_head_with(
    req: &Request,
    meta: &ObjectMeta,
    stored: &http::HeaderLines,
    size: u64,
    start: u64,
    end: u64,
    partial: bool,
) -> Vec<u8> {
    let mut head = conn::head_start(if partial { 206 } else { 200 }, &req.id, Some(end - start));
    let overridden = response_overrides(req, meta).map(|m| stored_headers(&m));
    head.push_lines(overridden.as_ref().unwrap_or(stored));
    for (n, v) in &req.cors {
        let _ = head.try_header(n, v);
    }
    checksum_headers(&mut head, req, meta, partial);
    if let Some(expiration) = expiration_header(req, size, meta) {
        let _ = head.try_header("x-amz-expiration", &expiration);
    }
    if req.versioned && meta.version_id.is_none() {
        // Written before the bucket had versioning: its "null" version.
        let _ = head.try_header("x-amz-version-id", "null");
    }
    if partial {
        let _ = head.try_header_fmt("content-range", format_args!("bytes {start}-{}/{size}", end.saturating_sub(1)));
    }
    conn::head_end(head, Some(end - start), false)
}

async fn send(conn: &mut Conn, bytes: Vec<u8>) -> Result<(), S3Error> {
    conn.stream.send_all(bytes).await.map(conn::recycle_out_buf).map_err(|e| {
        conn.body_unread = true;
        err(ErrorCode::InternalError, format!("send: {e}"))
    })
}

/// GET/HEAD on the owning core: data goes out from the registered buffer it was read into.
/// A GET or HEAD of an object this core owns: `(bucket, key)` as the request names it, `stored`
/// where the version it asks for lies in the store (the same names, unless the bucket has
/// versions; `located_lsn` its record's lsn if `versions::locate` just read it).
async fn get_local(
    shard: &Rc<Shard>,
    conn: &mut Conn,
    req: &Request,
    (bucket, key): (&str, &str),
    stored: (&str, &str),
    located_lsn: Option<u64>,
    is_head: bool,
) -> Result<Option<Response>, S3Error> {
    let lsn = located_lsn.or_else(|| shard.store.lsn_of(stored.0.as_bytes(), stored.1.as_bytes()).map(|(lsn, _)| lsn));
    if let Some(lsn) = lsn {
        if is_head {
            let hit = shard.cache.borrow_mut().get_meta(stored.0, stored.1, lsn);
            if let Some((cached, size)) = hit {
                may_read(shard, req, bucket, key, &cached.meta, "s3:GetObject")?;
                encrypt::for_read(shard, conn, req, &cached.meta)?;
                let stored = cached.lines.get_or_init(|| stored_headers(&cached.meta));
                return send_cached(conn, req, &cached.meta, stored, size, None, None).await;
            }
        } else {
            let hit = shard.cache.borrow_mut().get(stored.0, stored.1, lsn);
            if let Some((cached, data)) = hit {
                may_read(shard, req, bucket, key, &cached.meta, "s3:GetObject")?;
                let cipher = encrypt::for_read(shard, conn, req, &cached.meta)?;
                let stored = cached.lines.get_or_init(|| stored_headers(&cached.meta));
                return send_cached(conn, req, &cached.meta, stored, data.len() as u64, Some(&data), cipher.as_ref()).await;
            }
        }
    }
    if is_head {
        // The frame's head, not the object (and the cache keeps the metadata).
        let info = objects::head(shard.clone(), stored.0.to_string(), stored.1.to_string()).await?;
        let Some(info) = info else { return Err(missing(shard, req, bucket, key)) };
        may_read(shard, req, bucket, key, &info.meta, "s3:GetObject")?;
        encrypt::for_read(shard, conn, req, &info.meta)?;
        return send_head(conn, req, &info).await;
    }
    let got = shard.store.get(stored.0.as_bytes(), stored.1.as_bytes()).await.map_err(|e| internal(format!("get: {e}")))?;
    let Some(mut object) = got else { return Err(missing(shard, req, bucket, key)) };
    let meta = objects::decode_meta(object.meta())?;
    let size = object.size();
    if object.manifest().is_none() {
        shard.cache.borrow_mut().insert(stored.0, stored.1, object.lsn, meta.clone(), std::sync::Arc::new(object.data().to_vec()));
    }
    may_read(shard, req, bucket, key, &meta, "s3:GetObject")?;
    let cipher = encrypt::for_read(shard, conn, req, &meta)?;
    if let Some(r) = check_preconditions(req, &meta)? {
        return Ok(Some(r));
    }
    let (start, end, partial) = range_of(req, &meta, size)?;
    let mut head = object_response_head(req, &meta, size, start, end, partial);
    if start == end {
        send(conn, head).await?;
        return Ok(None);
    }
    let Some(manifest) = object.manifest() else {
        let (mut buf, range) = object.into_parts();
        let range = range.start + start as usize..range.start + end as usize;
        if let Some(c) = &cipher {
            // In place: the buffer is this request's (the cache took its own copy above).
            c.apply(start, &mut buf.as_mut_slice()[range.clone()]);
        }
        if range.len() < ZERO_COPY_BYTES_MIN {
            // One send for head and body: a copy of a few KiB costs less than a second send
            // (and a second TCP segment).
            head.extend_from_slice(&buf.as_slice()[range]);
            send(conn, head).await?;
            return Ok(None);
        }
        send(conn, head).await?;
        let zero_copy = conn.zero_copy;
        if conn.stream.send_fixed_all(buf, range, zero_copy).await.is_err() {
            conn.body_unread = true;
        }
        return Ok(None);
    };
    send(conn, head).await?;
    let _pin = object.take_pin();
    // The next chunk is read while this one is sent.
    let read = |r: engine::store::ChunkRead| {
        let store = shard.store.clone();
        engine::spawn(async move { store.read_chunk(r.id, r.n).await })
    };
    let reads = manifest.reads(start, end);
    // A whole large object small enough for the cache is kept as it goes out.
    let lsn = object.lsn;
    let mut keep = (!partial && size as usize <= cache::CACHE_OBJECT_BYTES_MAX).then(|| Vec::with_capacity(size as usize));
    let mut next = reads.first().map(|r| read(*r));
    let mut at = start;
    for (i, r) in reads.iter().enumerate() {
        let chunk = next.take().expect("a read per chunk").await;
        next = reads.get(i + 1).map(|r| read(*r));
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                eprintln!("corestore: GET {bucket}/{key} failed mid-body: {e}");
                conn.body_unread = true;
                return Ok(None);
            }
        };
        let (mut buf, range) = chunk.into_parts();
        let range = range.start + r.skip as usize..range.start + (r.skip + r.len) as usize;
        if let Some(k) = keep.as_mut() {
            k.extend_from_slice(&buf.as_slice()[range.clone()]);
        }
        if let Some(c) = &cipher {
            // In place, after the cache's copy of the ciphertext: the chunk was read for us.
            c.apply(at, &mut buf.as_mut_slice()[range.clone()]);
            at += range.len() as u64;
        }
        let zero_copy = conn.zero_copy && range.len() >= ZERO_COPY_BYTES_MIN;
        if conn.stream.send_fixed_all(buf, range, zero_copy).await.is_err() {
            conn.body_unread = true;
            return Ok(None);
        }
    }
    if let Some(data) = keep {
        shard.cache.borrow_mut().insert(stored.0, stored.1, lsn, meta, std::sync::Arc::new(data));
    }
    Ok(None)
}

/// The answer to a HEAD from an object's description.
async fn send_head(conn: &mut Conn, req: &Request, info: &Info) -> Result<Option<Response>, S3Error> {
    if let Some(r) = check_preconditions(req, &info.meta)? {
        return Ok(Some(r));
    }
    let (start, end, partial) = range_of(req, &info.meta, info.size)?;
    send(conn, object_response_head(req, &info.meta, info.size, start, end, partial)).await?;
    Ok(None)
}

/// GET/HEAD answered from the cache: a HEAD (no `data`) needs only the metadata and size.
async fn send_cached(
    conn: &mut Conn,
    req: &Request,
    meta: &ObjectMeta,
    stored: &http::HeaderLines,
    size: u64,
    data: Option<&std::sync::Arc<Vec<u8>>>,
    cipher: Option<&crate::sse::Cipher>,
) -> Result<Option<Response>, S3Error> {
    if let Some(r) = check_preconditions(req, meta)? {
        return Ok(Some(r));
    }
    let (start, end, partial) = range_of(req, meta, size)?;
    let mut head = object_response_head_with(req, meta, stored, size, start, end, partial);
    let body = start as usize..end as usize;
    let Some(data) = data.filter(|_| !body.is_empty()) else {
        send(conn, head).await?;
        return Ok(None);
    };
    if let Some(c) = cipher {
        // The cache holds ciphertext, as the store does: decrypted per request, a small body
        // straight into the head's buffer (one copy, one send).
        if body.len() <= conn::INLINE_BODY_BYTES_MAX {
            let from = head.len();
            head.extend_from_slice(&data[body]);
            c.apply(start, &mut head[from..]);
            return send(conn, head).await.map(|()| None);
        }
        let plain = encrypt::decrypted(c, start, &data[body]);
        send(conn, head).await?;
        match conn.stream.send_all(plain).await {
            Ok(back) => encrypt::recycle(back),
            Err(_) => conn.body_unread = true,
        }
        return Ok(None);
    }
    if body.len() <= conn::INLINE_BODY_BYTES_MAX {
        // One sendmsg of head and body, the body straight from the cache's bytes (copying it
        // behind the head took 5% of the core on 4 KiB GETs).
        let sent = conn.stream.send_head_and_shared(head, data.clone(), body).await;
        sent.map(conn::recycle_out_buf).map_err(|e| {
            conn.body_unread = true;
            err(ErrorCode::InternalError, format!("send: {e}"))
        })?;
    } else {
        // Straight from the cache's bytes: copying a 1 MiB body into the head's buffer (a fresh
        // allocation the copy faults in page by page) took 40% of the core on 1 MiB GETs.
        send(conn, head).await?;
        if conn.stream.send_shared_all(data.clone(), body).await.is_err() {
            conn.body_unread = true;
        }
    }
    Ok(None)
}

async fn delete_object(shard: &Rc<Shard>, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    let version = requested_version(req)?;
    let action = if version.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" };
    access(shard, req, &bucket, Permission::Write, action)?;
    let written = delete_on_owner(shard, req, bucket, key, version).await?;
    let mut resp = Response::new(204);
    if let Some(w) = written {
        resp = resp.header("x-amz-version-id", w.version.to_string());
        if w.marker {
            resp = resp.header("x-amz-delete-marker", "true");
        }
    }
    Ok(resp)
}

/// Deletes `version` of `bucket`/`key` (or, without one, the key: a delete marker in a
/// versioned bucket) on its owning core.
async fn delete_on_owner(shard: &Rc<Shard>, req: &Request, bucket: String, key: String, version: Option<VersionId>) -> Result<Option<versions::Written>, S3Error> {
    let (who, now_ms) = (requester(req).to_string(), req.now_ms);
    let bypass = version.is_some() && bypass_governance(shard, req, &bucket, &key);
    let owner = shard.owner(&bucket, &key);
    call(shard, owner, move |s: Rc<Shard>| versions::delete(s, bucket, key, version, who, now_ms, bypass)).await
}

async fn delete_objects(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String) -> Result<Response, S3Error> {
    // Without a policy the bucket's ACL decides for every key at once; a policy may speak of
    // each key, so each is checked and refused on its own, as S3 reports it.
    let per_key = shard.buckets.borrow().get(&bucket).ok_or_else(|| no_such_bucket(&bucket))?.policy.is_some();
    if !per_key {
        access(shard, req, &bucket, Permission::Write, "s3:DeleteObject")?;
    }
    let body = read_small_body(conn, req, XML_REQUEST_BYTES_MAX).await?;
    let request = xml::parse_delete_objects(&body).map_err(S3Error::from)?;
    let mut outcomes = Vec::with_capacity(request.objects.len());
    for o in request.objects {
        let key = o.key.clone();
        let outcome = match names::validate_key(&key).map_err(S3Error::from).and_then(|()| {
            let action = if o.version_id.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" };
            if per_key { may_write(shard, req, &bucket, &key, action) } else { Ok(()) }
        }) {
            Err(e) => {
                xr::DeleteOutcome::Failed(xr::DeleteFailure { key, version_id: o.version_id, code: e.code, message: e.message })
            }
            Ok(()) => {
                let deleted = match o.version_id.as_deref().map(|v| VersionId::parse(v).ok_or(v)) {
                    None => delete_on_owner(shard, req, bucket.clone(), key.clone(), None).await,
                    Some(Ok(id)) => delete_on_owner(shard, req, bucket.clone(), key.clone(), Some(id)).await,
                    Some(Err(v)) => Err(err(ErrorCode::NoSuchVersion, "The specified version does not exist.").with_extra("VersionId", v)),
                };
                match deleted {
                    Ok(written) => {
                        let (marker, marker_version) = match (&o.version_id, written) {
                            (_, None) => (false, None),
                            // A version removed for good: whether it was a delete marker.
                            (Some(_), Some(w)) => (w.marker, None),
                            // A delete marker written.
                            (None, Some(w)) => (true, Some(w.version.to_string())),
                        };
                        xr::DeleteOutcome::Deleted(xr::DeletedObject {
                            key,
                            version_id: o.version_id,
                            delete_marker: marker,
                            delete_marker_version_id: marker_version,
                        })
                    }
                    Err(e) => {
                        xr::DeleteOutcome::Failed(xr::DeleteFailure { key, version_id: o.version_id, code: e.code, message: e.message })
                    }
                }
            }
        };
        outcomes.push(outcome);
    }
    Ok(Response::xml(200, xr::delete_result(&outcomes, request.quiet)))
}

/// `x-amz-copy-source`: `[/]bucket/key[?versionId=...]`, URL-encoded.
/// `x-amz-expected-bucket-owner` (and `x-amz-source-expected-bucket-owner` for a copy's
/// source): a request that names the owner it expects is refused with AccessDenied if the
/// bucket belongs to someone else (owners are named by canonical ID, as in the bucket's ACL),
/// so that a client never writes into, or reads from, a bucket it did not mean. A bucket that
/// does not exist is left to the operation to report.
fn expected_owner(shard: &Shard, bucket: &str, expected: Option<&str>) -> Result<(), S3Error> {
    let Some(expected) = expected else { return Ok(()) };
    let owner = shard.buckets.borrow().get(bucket).map(|b| b.owner.clone());
    match owner {
        Some(owner) if owner != expected.trim() => Err(err(ErrorCode::AccessDenied, "Access Denied")),
        _ => Ok(()),
    }
}

/// [`copy_source`], checking the source bucket's owner against
/// `x-amz-source-expected-bucket-owner`.
fn copy_source_checked(shard: &Shard, req: &Request) -> Result<(String, String, Option<VersionId>), S3Error> {
    let source = copy_source(req)?;
    expected_owner(shard, &source.0, req.header("x-amz-source-expected-bucket-owner"))?;
    Ok(source)
}

fn copy_source(req: &Request) -> Result<(String, String, Option<VersionId>), S3Error> {
    let raw = req.header("x-amz-copy-source").unwrap_or("");
    let (raw, version) = match raw.split_once('?') {
        None => (raw, None),
        Some((path, query)) => {
            let id = query.strip_prefix("versionId=").ok_or_else(|| {
                err(ErrorCode::InvalidArgument, "x-amz-copy-source may name a versionId, nothing else").with_extra("ArgumentName", "x-amz-copy-source")
            })?;
            let id = VersionId::parse(id).ok_or_else(|| {
                err(ErrorCode::InvalidArgument, "Invalid version id specified").with_extra("ArgumentName", "x-amz-copy-source")
            })?;
            (path, Some(id))
        }
    };
    let decoded = http::decode_path(raw).map_err(|e| err(ErrorCode::InvalidArgument, format!("x-amz-copy-source: {e}")))?;
    let trimmed = decoded.strip_prefix('/').unwrap_or(&decoded);
    match trimmed.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.to_string(), k.to_string(), version)),
        _ => Err(err(ErrorCode::InvalidArgument, "x-amz-copy-source must name a bucket and a key")
            .with_extra("ArgumentName", "x-amz-copy-source")),
    }
}

/// What a copy hashes of its plaintext: the MD5 (its ETag) and, for a part of an upload with a
/// checksum algorithm, the part's checksum.
struct CopyDigests {
    md5: crate::checksum::Md5,
    checksum: Option<crate::checksum::Checksummer>,
}

impl CopyDigests {
    fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(c) = self.checksum.as_mut() {
            c.update(data);
        }
    }

    fn finish(self) -> ([u8; 16], Option<String>) {
        (self.md5.finish(), self.checksum.map(crate::checksum::Checksummer::finish))
    }
}

/// How a copy's bytes change on the way: decrypted with the source's cipher (at their offset
/// in the source), encrypted with the destination's (from 0). The digests are of the plaintext.
#[derive(Clone, Copy, Default)]
struct Transcode<'c> {
    from: Option<&'c crate::sse::Cipher>,
    to: Option<&'c crate::sse::Cipher>,
}

impl Transcode<'_> {
    /// `data`, the source's bytes from `src_at` and the copy's from `dst_at`, made the copy's,
    /// its plaintext hashed into `digests` on the way.
    fn apply(&self, data: &mut [u8], src_at: u64, dst_at: u64, digests: &mut CopyDigests) {
        if let Some(c) = self.from {
            c.apply(src_at, data);
        }
        digests.update(data);
        if let Some(c) = self.to {
            c.apply(dst_at, data);
        }
    }
}

/// Copies `[start, end)` of a source object into a new upload stream on core `to`; returns
/// where it went, its MD5 and its `checksum` (base64) when one is asked for.
async fn copy_data(
    shard: &Rc<Shard>,
    src: &Source,
    info: &Info,
    (start, end): (u64, u64),
    to: usize,
    transcode: Transcode<'_>,
    checksum: Option<ChecksumAlgorithm>,
) -> Result<(Stored, [u8; 16], Option<String>), S3Error> {
    let mut digests = CopyDigests { md5: crate::checksum::Md5::new(), checksum: checksum.map(crate::checksum::Checksummer::new) };
    if info.manifest.is_none() || end - start <= SMALL_OBJECT_BYTES_MAX as u64 {
        let (b, k) = (src.at.bucket.clone(), src.at.key.clone());
        let mut data = match call(shard, src.owner, move |s: Rc<Shard>| objects::get_small(s, b, k)).await? {
            Some((_, Some(data))) => data[start as usize..end as usize].to_vec(),
            Some((_, None)) => read_range(shard, src, start, end).await?,
            None => return Err(no_such_key(&src.key)),
        };
        transcode.apply(&mut data, start, 0, &mut digests);
        let (md5, checksum) = digests.finish();
        return Ok((Stored::Small(data), md5, checksum));
    }
    let Some(remote) = RemoteRead::open(shard, src.owner, &src.at.bucket, &src.at.key).await? else {
        return Err(no_such_key(&src.key));
    };
    let write_session = call(shard, to, |s: Rc<Shard>| objects::begin_write(s)).await;
    let mut result = Ok(());
    let mut at = start;
    for r in remote.reads(start, end) {
        result = match remote.piece(r).await {
            Ok(mut p) => {
                transcode.apply(&mut p, at, at - start, &mut digests);
                at += p.len() as u64;
                call(shard, to, move |s: Rc<Shard>| objects::write(s, write_session, p)).await
            }
            Err(e) => Err(e),
        };
        if result.is_err() {
            break;
        }
    }
    drop(remote);
    if let Err(e) = result {
        call(shard, to, move |s: Rc<Shard>| objects::abort_write(s, write_session)).await;
        return Err(e);
    }
    let extent = call(shard, to, move |s: Rc<Shard>| objects::finish_write(s, write_session)).await?;
    let (md5, checksum) = digests.finish();
    Ok((Stored::Stream(extent), md5, checksum))
}

/// Reads `[start, end)` of a large object into memory (small ranges of it).
async fn read_range(shard: &Rc<Shard>, src: &Source, start: u64, end: u64) -> Result<Vec<u8>, S3Error> {
    let remote = RemoteRead::open(shard, src.owner, &src.at.bucket, &src.at.key).await?.ok_or_else(|| no_such_key(&src.key))?;
    let mut out = Vec::with_capacity((end - start) as usize);
    for r in remote.reads(start, end) {
        out.extend_from_slice(&remote.piece(r).await?);
    }
    Ok(out)
}

/// A large object held open on its owning core (its chunks stay readable, even if it is replaced
/// meanwhile) and read piece by piece; dropping it lets go of the chunks there.
struct RemoteRead {
    shard: Rc<Shard>,
    owner: usize,
    session: u64,
    manifest: engine::store::Manifest,
}

impl RemoteRead {
    /// `None` if the object is missing (or small). `bucket` and `key` are the store's names
    /// on core `owner` (`versions::Located`).
    async fn open(shard: &Rc<Shard>, owner: usize, bucket: &str, key: &str) -> Result<Option<RemoteRead>, S3Error> {
        let (b, k) = (bucket.to_string(), key.to_string());
        let opened = call(shard, owner, move |s: Rc<Shard>| objects::open_read(s, b, k)).await?;
        Ok(opened.map(|(info, session)| RemoteRead {
            shard: shard.clone(),
            owner,
            session,
            manifest: info.manifest.expect("open_read returns a large object"),
        }))
    }

    fn reads(&self, start: u64, end: u64) -> Vec<engine::store::ChunkRead> {
        self.manifest.reads(start, end)
    }

    async fn piece(&self, r: engine::store::ChunkRead) -> Result<Vec<u8>, S3Error> {
        call(&self.shard, self.owner, move |s: Rc<Shard>| objects::read_chunk(s, r.id, r.n, r.skip, r.len)).await
    }
}

impl Drop for RemoteRead {
    fn drop(&mut self) {
        let (shard, owner, session) = (self.shard.clone(), self.owner, self.session);
        drop(engine::spawn(async move { call(&shard, owner, move |s: Rc<Shard>| objects::close_read(s, session)).await }));
    }
}

async fn copy_object(shard: &Rc<Shard>, conn: &Conn, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    access(shard, req, &bucket, Permission::Write, "s3:PutObject")?;
    let (src_bucket, src_key, src_version) = copy_source_checked(shard, req)?;
    exists(shard, &src_bucket)?;
    let (src, info) = describe_source(shard, req, &src_bucket, &src_key, src_version).await?;
    may_read(shard, req, &src_bucket, &src_key, &info.meta, "s3:GetObject")?;
    let from = encrypt::cipher_of(shard, &info.meta, encrypt::read_key(conn, req, true)?.as_ref())?;
    copy_preconditions(req, &info.meta)?;
    let replace = match req.header("x-amz-metadata-directive") {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(other) => return Err(err(ErrorCode::InvalidArgument, format!("x-amz-metadata-directive {other:?}: COPY or REPLACE"))),
    };
    let encryption_changes = req.header(crate::sse::HEADER).is_some() || req.header("x-amz-server-side-encryption-customer-algorithm").is_some();
    if !replace && !encryption_changes && src_bucket == bucket && src_key == key && src_version.is_none() {
        return Err(err(
            ErrorCode::InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    // The copy is the requester's, with the ACL its request gives (the source's is not copied).
    let mut meta = if replace {
        meta_from_request(shard, req, &bucket)?
    } else {
        let mut meta = ObjectMeta { owner: requester(req).to_string(), acl: None, upload_id: None, ..info.meta.clone() };
        set_request_acl(shard, req, &bucket, &mut meta)?;
        // The source's retention and legal hold are its own; the copy gets the request's.
        set_request_lock(shard, req, &bucket, &mut meta)?;
        meta
    };
    // Tags follow their own directive: copied by default, or the request's (S3's
    // x-amz-tagging-directive), whatever the metadata directive says.
    meta.tags = match req.header("x-amz-tagging-directive") {
        None | Some("COPY") => info.meta.tags.clone(),
        Some("REPLACE") => request_tags(req)?,
        Some(other) => return Err(err(ErrorCode::InvalidArgument, format!("x-amz-tagging-directive {other:?}: COPY or REPLACE"))),
    };
    meta.modified_ms = req.now_ms;
    let owner = shard.owner(&bucket, &key);
    // The copy is encrypted as its own request says (or its bucket's default), whatever the
    // source was: the source's key is the source's.
    let (sealed, to) = encrypt::one_segment(encrypt::for_write(shard, conn, &bucket, |h| req.header(h))?)?;
    let transcode = Transcode { from: from.as_ref(), to: to.as_ref() };
    let (stored, md5, _) = copy_data(shard, &src, &info, (0, info.size), owner, transcode, None).await?;
    // A copy is one object, not parts (even of a multipart source): its ETag is its MD5.
    meta.etag = encrypt::etag(md5, sealed.as_ref(), to.as_ref());
    meta.part_sizes.clear();
    // A composite checksum describes parts the copy does not have; a full-object one still holds.
    meta.checksums.retain(|(_, v)| multipart_checksum::kind_of_value(v) == xr::ChecksumType::FullObject);
    meta.part_checksums.clear();
    meta.version_id = None;
    let result = xr::CopyResult { last_modified_ms: meta.modified_ms, etag: meta.etag.clone(), ..Default::default() };
    let resp = encrypt::with_headers(Response::xml(200, xr::copy_object_result(&result)), sealed.as_ref());
    meta.sse = sealed;
    let version = commit(shard, owner, bucket, key, meta, stored).await?;
    let mut resp = with_version(resp, written_version(version));
    if let Some(v) = src.at.version {
        resp = resp.header("x-amz-copy-source-version-id", v.to_string());
    }
    Ok(resp)
}

fn copy_preconditions(req: &Request, meta: &ObjectMeta) -> Result<(), S3Error> {
    let failed = || err(ErrorCode::PreconditionFailed, "At least one of the pre-conditions you specified did not hold");
    let modified_s = (meta.modified_ms / 1000) as i64;
    if let Some(m) = req.header("x-amz-copy-source-if-match")
        && !etag_matches(m, &meta.etag)
    {
        return Err(failed());
    }
    if let Some(m) = req.header("x-amz-copy-source-if-none-match")
        && etag_matches(m, &meta.etag)
    {
        return Err(failed());
    }
    if let Some(t) = req.header("x-amz-copy-source-if-unmodified-since").and_then(http::parse_http_date)
        && modified_s > t
    {
        return Err(failed());
    }
    if let Some(t) = req.header("x-amz-copy-source-if-modified-since").and_then(http::parse_http_date)
        && modified_s <= t
    {
        return Err(failed());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Multipart uploads. All of an upload's state lives on the core owning its bucket/key.

fn random_id(shard: &Shard) -> String {
    use engine::Env;
    format!("{:016x}{:016x}", shard.env.random_u64(), shard.env.random_u64())
}

async fn create_upload(shard: &Rc<Shard>, conn: &Conn, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    access(shard, req, &bucket, Permission::Write, "s3:PutObject")?;
    let mut meta = meta_from_request(shard, req, &bucket)?;
    // The upload's object key, sealed; each part gets its own IV under it.
    meta.sse = encrypt::for_write(shard, conn, &bucket, |h| req.header(h))?.map(|(sealed, _)| sealed);
    let sealed = meta.sse.clone();
    let checksum = UploadChecksum::from_headers(req.header("x-amz-checksum-algorithm"), req.header("x-amz-checksum-type"))?;
    if let Some(c) = checksum {
        meta.checksums.push((c.algorithm.sdk_name().to_string(), c.kind.as_str().to_string()));
    }
    let upload_id = random_id(shard);
    let record = upload_key(&bucket, &key, &upload_id);
    let bucket_name = bucket.clone();
    call(shard, shard.owner(&bucket, &key), move |s: Rc<Shard>| async move {
        let _write = objects::begin_bucket_write(&s, &bucket_name)?;
        s.store.put(UPLOADS_BUCKET, &record, &meta.encode(), &[]).await.map_err(|e| internal(format!("create upload: {e}")))
    })
    .await?;
    let mut resp = encrypt::with_headers(Response::xml(200, xr::initiate_multipart_upload_result(&bucket, &key, &upload_id)), sealed.as_ref());
    if let Some(c) = checksum {
        resp = resp.header("x-amz-checksum-algorithm", c.algorithm.sdk_name()).header("x-amz-checksum-type", c.kind.as_str());
    }
    Ok(resp)
}

/// The checksum an upload was created with, from its record: the algorithm, and its type as
/// the value (empty in records written before types were kept: the algorithm's default).
fn upload_checksum(upload: &ObjectMeta) -> Option<UploadChecksum> {
    let (name, kind) = upload.checksums.first()?;
    let algorithm = ChecksumAlgorithm::from_sdk_name(name)?;
    let kind = xr::ChecksumType::parse(kind).unwrap_or(UploadChecksum::default_kind(algorithm));
    Some(UploadChecksum { algorithm, kind })
}

/// A CompleteMultipartUpload of an upload that is gone: if the key's current object is what
/// completing it made, the answer that completion gave (a client retrying after a lost answer
/// must not be told its upload failed; AWS answers such retries alike); else NoSuchUpload.
async fn completed_before(
    shard: Rc<Shard>,
    bucket: String,
    key: String,
    upload: String,
) -> Result<(String, Option<VersionId>, Option<crate::sse::Sealed>, Option<(UploadChecksum, String)>), S3Error> {
    let Found::Object(at, info) = versions::head(shard, bucket, key, None).await? else { return Err(no_such_upload(&upload)) };
    if info.meta.upload_id.as_deref() != Some(upload.as_str()) {
        return Err(no_such_upload(&upload));
    }
    let checksum = info.meta.checksum().map(|(algorithm, value)| {
        (UploadChecksum { algorithm, kind: multipart_checksum::kind_of_value(value) }, value.to_string())
    });
    Ok((info.meta.etag, at.version, info.meta.sse, checksum))
}

fn no_such_upload(upload_id: &str) -> S3Error {
    err(
        ErrorCode::NoSuchUpload,
        "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
    .with_extra("UploadId", upload_id)
}

fn upload_id(req: &Request) -> Result<String, S3Error> {
    let id = req.query("uploadId").unwrap_or("");
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(no_such_upload(id));
    }
    Ok(id.to_string())
}

/// The upload's record (its metadata), on its core.
async fn upload_meta(shard: Rc<Shard>, record: Vec<u8>) -> Result<Option<ObjectMeta>, S3Error> {
    let got = shard.store.get(UPLOADS_BUCKET, &record).await.map_err(|e| internal(format!("read upload: {e}")))?;
    Ok(got.and_then(|o| ObjectMeta::decode(o.meta())))
}

async fn upload_part(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    access(shard, req, &bucket, Permission::Write, "s3:PutObject")?;
    let upload = upload_id(req)?;
    let part: u32 =
        req.query("partNumber").and_then(|p| p.parse().ok()).filter(|p| (1..=PART_NUMBER_MAX).contains(p)).ok_or_else(|| {
            err(ErrorCode::InvalidArgument, format!("Part number must be an integer between 1 and {PART_NUMBER_MAX}, inclusive"))
        })?;
    let owner = shard.owner(&bucket, &key);
    let record = upload_key(&bucket, &key, &upload);
    let r = record.clone();
    let Some(upload_record) = call(shard, owner, move |s: Rc<Shard>| upload_meta(s, r)).await? else {
        return Err(no_such_upload(&upload));
    };
    let (part_sse, to) = encrypt::for_part(shard, conn, req, upload_record.sse.as_ref())?;
    let wanted_checksum = upload_checksum(&upload_record).map(|c| c.algorithm);
    let copy = req.header("x-amz-copy-source").is_some();
    let (extent, md5, checksum) = if copy {
        let (src_bucket, src_key, src_version) = copy_source_checked(shard, req)?;
        exists(shard, &src_bucket)?;
        let (src, info) = describe_source(shard, req, &src_bucket, &src_key, src_version).await?;
        may_read(shard, req, &src_bucket, &src_key, &info.meta, "s3:GetObject")?;
        let from = encrypt::cipher_of(shard, &info.meta, encrypt::read_key(conn, req, true)?.as_ref())?;
        copy_preconditions(req, &info.meta)?;
        let range = match req.header("x-amz-copy-source-range") {
            None => (0, info.size),
            Some(v) => copy_source_range(v, info.size)?,
        };
        let transcode = Transcode { from: from.as_ref(), to: to.as_ref() };
        let (stored, md5, checksum) = copy_data(shard, &src, &info, range, owner, transcode, wanted_checksum).await?;
        (into_extent(shard, owner, stored).await?, md5, wanted_checksum.zip(checksum))
    } else {
        let mut body = BodyReader::new(req)?;
        // The object's checksum will be built from its parts': each part of an upload with an
        // algorithm has a checksum of it, the client's or one computed here.
        if let Some(wanted) = wanted_checksum {
            match body.checksum_algorithm() {
                None => body.compute_checksum(wanted),
                Some(sent) if sent != wanted => {
                    return Err(err(
                        ErrorCode::InvalidRequest,
                        format!("Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}", wanted.sdk_name().to_lowercase(), sent.sdk_name().to_lowercase()),
                    ));
                }
                Some(_) => {}
            }
        }
        let mut source = encrypt::Encrypting::new(&mut body, to.as_ref());
        let session = call(shard, owner, |s: Rc<Shard>| objects::begin_write(s)).await;
        if let Err(e) = stream_body(shard, conn, &mut source, owner, session, Vec::new()).await {
            call(shard, owner, move |s: Rc<Shard>| objects::abort_write(s, session)).await;
            return Err(e);
        }
        let extent = call(shard, owner, move |s: Rc<Shard>| objects::finish_write(s, session)).await?;
        (extent, body.md5_digest.expect("the body ended"), body.checksum_value.clone())
    };
    let etag = encrypt::etag(md5, part_sse.as_ref(), to.as_ref());
    let mut meta = ObjectMeta { etag, modified_ms: req.now_ms, sse: part_sse.clone(), ..Default::default() };
    if let Some((alg, v)) = &checksum {
        meta.checksums.push((alg.sdk_name().to_string(), v.clone()));
    }
    let etag = meta.etag.clone();
    let last_modified_ms = meta.modified_ms;
    let committed = call(shard, owner, move |s: Rc<Shard>| async move {
        // The upload may have completed or been aborted while the part streamed in.
        let _lock = s.upload_lock(&record).await;
        if upload_meta(s.clone(), record.clone()).await?.is_none() {
            let _ = s.store.drop_chunks(&[extent.id]).await;
            return Ok(false);
        }
        s.store
            .put_chunked(PARTS_BUCKET, &part_key(&record, part), &meta.encode(), vec![extent], &[], &[])
            .await
            .map_err(|e| internal(format!("store part: {e}")))?;
        Ok::<bool, S3Error>(true)
    })
    .await?;
    if !committed {
        return Err(no_such_upload(&upload));
    }
    if copy {
        let resp = Response::xml(200, xr::copy_part_result(&xr::CopyResult { last_modified_ms, etag, ..Default::default() }));
        return Ok(encrypt::with_headers(resp, part_sse.as_ref()));
    }
    let mut resp = encrypt::with_headers(Response::new(200), part_sse.as_ref()).header("etag", format!("\"{etag}\""));
    if let Some((alg, v)) = checksum {
        resp = resp.header(alg.header_name(), v);
    }
    Ok(resp)
}

/// `x-amz-copy-source-range: bytes=first-last`, both given and inside the source. A malformed
/// range is InvalidArgument (400); one that runs past the source's end is InvalidRange (416), as
/// Ceph RGW answers and its s3-tests expect (AWS says InvalidArgument there too; no client
/// tells the two apart).
fn copy_source_range(value: &str, size: u64) -> Result<(u64, u64), S3Error> {
    let bad = || {
        err(ErrorCode::InvalidArgument, format!("The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy, within an object of {size} bytes"))
            .with_extra("ArgumentName", "x-amz-copy-source-range")
            .with_extra("ArgumentValue", value)
    };
    let (a, b) = value.strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(bad)?;
    let (first, last): (u64, u64) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    if first > last {
        return Err(bad());
    }
    if last >= size {
        return Err(err(ErrorCode::InvalidRange, format!("Range specified is not valid for source object of size: {size}"))
            .with_extra("ActualObjectSize", &size.to_string())
            .with_extra("RangeRequested", value));
    }
    Ok((first, last + 1))
}

/// Turns a copied piece into an extent on core `owner` (a small copy is written there too).
async fn into_extent(shard: &Rc<Shard>, owner: usize, stored: Stored) -> Result<engine::store::Extent, S3Error> {
    match stored {
        Stored::Stream(e) => Ok(e),
        Stored::Small(data) => {
            let session = call(shard, owner, |s: Rc<Shard>| objects::begin_write(s)).await;
            call(shard, owner, move |s: Rc<Shard>| objects::write(s, session, data)).await?;
            call(shard, owner, move |s: Rc<Shard>| objects::finish_write(s, session)).await
        }
    }
}

/// A stored part: its number, metadata, size and extent.
struct StoredPart {
    number: u32,
    meta: ObjectMeta,
    size: u64,
    extent: Option<engine::store::Extent>,
}

async fn parts_of(shard: &Rc<Shard>, record: &[u8]) -> Result<Vec<StoredPart>, S3Error> {
    let mut prefix = record.to_vec();
    prefix.push(0);
    let listed = shard.store.list(PARTS_BUCKET, &prefix, None, usize::MAX);
    let mut parts = Vec::with_capacity(listed.len());
    for l in listed {
        let number: u32 =
            std::str::from_utf8(&l.key[prefix.len()..]).ok().and_then(|n| n.parse().ok()).ok_or_else(|| internal("bad part key"))?;
        let Some(o) = shard.store.get(PARTS_BUCKET, &l.key).await.map_err(|e| internal(format!("read part: {e}")))? else { continue };
        let meta = ObjectMeta::decode(o.meta()).ok_or_else(|| internal("part metadata does not decode"))?;
        let extent = o.manifest().and_then(|m| m.extents.first().copied());
        parts.push(StoredPart { number, meta, size: o.size(), extent });
    }
    Ok(parts)
}

async fn list_parts(shard: &Rc<Shard>, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    access(shard, req, &bucket, Permission::Read, "s3:ListMultipartUploadParts")?;
    let upload = upload_id(req)?;
    let max_parts: u32 = req.query("max-parts").and_then(|m| m.parse().ok()).unwrap_or(PARTS_LISTED_MAX as u32).min(PARTS_LISTED_MAX as u32);
    let marker: u32 = req.query("part-number-marker").and_then(|m| m.parse().ok()).unwrap_or(0);
    let record = upload_key(&bucket, &key, &upload);
    let listed = call(shard, shard.owner(&bucket, &key), move |s: Rc<Shard>| async move {
        let Some(meta) = upload_meta(s.clone(), record.clone()).await? else { return Ok(None) };
        let parts = parts_of(&s, &record).await?;
        Ok::<_, S3Error>(Some((meta, parts.into_iter().map(|p| (p.number, p.meta, p.size)).collect::<Vec<_>>())))
    })
    .await?;
    let Some((meta, parts)) = listed else { return Err(no_such_upload(&upload)) };
    let after: Vec<_> = parts.into_iter().filter(|(n, _, _)| *n > marker).collect();
    let is_truncated = after.len() > max_parts as usize;
    let page: Vec<xr::PartEntry> = after
        .into_iter()
        .take(max_parts as usize)
        .map(|(n, m, size)| xr::PartEntry {
            part_number: n,
            last_modified_ms: m.modified_ms,
            etag: m.etag.clone(),
            size_bytes: size,
            checksums: checksums_of(&m),
        })
        .collect();
    let owner = owner_named(&meta.owner);
    let checksum = upload_checksum(&meta);
    let result = xr::ListParts {
        bucket,
        key,
        upload_id: upload,
        initiator: owner.clone(),
        owner,
        storage_class: "STANDARD",
        part_number_marker: marker,
        next_part_number_marker: page.last().map_or(0, |p| p.part_number),
        max_parts,
        is_truncated,
        checksum_algorithm: checksum.map(|c| c.algorithm.sdk_name()),
        checksum_type: checksum.map(|c| c.kind),
        parts: page,
    };
    Ok(Response::xml(200, xr::list_parts(&result)))
}

fn checksums_of(meta: &ObjectMeta) -> xr::Checksums {
    meta.checksum().map(|(a, v)| checksum_value(a, v.to_string())).unwrap_or_default()
}

/// Part `number`'s checksum of a multipart object, if it keeps them.
fn part_checksums_of(meta: &ObjectMeta, number: usize) -> xr::Checksums {
    meta.part_checksum(number).map(|(a, v)| checksum_value(a, v)).unwrap_or_default()
}

fn checksum_value(algorithm: ChecksumAlgorithm, value: String) -> xr::Checksums {
    let mut c = xr::Checksums::default();
    let slot = match algorithm {
        ChecksumAlgorithm::Crc32 => &mut c.crc32,
        ChecksumAlgorithm::Crc32c => &mut c.crc32c,
        ChecksumAlgorithm::Crc64Nvme => &mut c.crc64nvme,
        ChecksumAlgorithm::Sha1 => &mut c.sha1,
        ChecksumAlgorithm::Sha256 => &mut c.sha256,
    };
    *slot = Some(value);
    c
}

/// The value `c` holds for `algorithm`, trimmed.
fn checksum_for(c: &xr::Checksums, algorithm: ChecksumAlgorithm) -> Option<&str> {
    let v = match algorithm {
        ChecksumAlgorithm::Crc32 => &c.crc32,
        ChecksumAlgorithm::Crc32c => &c.crc32c,
        ChecksumAlgorithm::Crc64Nvme => &c.crc64nvme,
        ChecksumAlgorithm::Sha1 => &c.sha1,
        ChecksumAlgorithm::Sha256 => &c.sha256,
    };
    v.as_deref().map(str::trim)
}

async fn complete_upload(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    access(shard, req, &bucket, Permission::Write, "s3:PutObject")?;
    let upload = upload_id(req)?;
    // Here an x-amz-checksum-* header is the client's value for the whole object, not for this
    // XML body (`expected` below).
    let body = read_small_body_from(conn, BodyReader::new(req)?.ignoring_checksum_headers(), XML_REQUEST_BYTES_MAX).await?;
    let mut wanted = xml::parse_complete_multipart(&body).map_err(S3Error::from)?;
    if wanted.is_empty() {
        return Err(err(ErrorCode::MalformedXML, "You must specify at least one part"));
    }
    // A part named twice in a row (a client that uploaded it again and listed both answers)
    // is the last entry's, as Ceph RGW takes it; the ETag check below still holds it to the
    // part as stored.
    wanted.dedup_by(|later, earlier| {
        let same = later.part_number == earlier.part_number;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    for pair in wanted.windows(2) {
        if pair[1].part_number <= pair[0].part_number {
            return Err(err(
                ErrorCode::InvalidPartOrder,
                "The list of parts was not in ascending order. Parts must be ordered by part number.",
            ));
        }
    }
    let expected = ExpectedChecksum::of(req)?;
    let record = upload_key(&bucket, &key, &upload);
    let (b, k, u, now_ms) = (bucket.clone(), key.clone(), upload.clone(), req.now_ms);
    // As on PutObject: checked with the write, on the owning core. A failed condition leaves
    // the upload as it was (complete it again, or abort it).
    let cond = versions::WriteCondition::of(req);
    let (etag, version, sse, checksum) = call(shard, shard.owner(&bucket, &key), move |s: Rc<Shard>| async move {
        let _lock = s.upload_lock(&record).await;
        let Some(upload_meta) = upload_meta(s.clone(), record.clone()).await? else { return completed_before(s, b, k, u).await };
        let upload_checksum = upload_checksum(&upload_meta);
        expected.check_type(upload_checksum)?;
        let parts = parts_of(&s, &record).await?;
        let mut part_digests: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut extents = Vec::with_capacity(wanted.len());
        let mut ivs = Vec::new();
        let mut md5s = Vec::with_capacity(wanted.len());
        let mut sizes = Vec::with_capacity(wanted.len());
        for (i, w) in wanted.iter().enumerate() {
            let invalid = || {
                err(ErrorCode::InvalidPart, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.")
                    .with_extra("UploadId", u.clone())
                    .with_extra("PartNumber", w.part_number.to_string())
            };
            let p = parts.iter().find(|p| p.number == w.part_number).ok_or_else(invalid)?;
            if p.meta.etag != w.etag {
                return Err(invalid());
            }
            if let Some(digest) = part_checksum_digest(upload_checksum, w, p).map_err(|e| e.unwrap_or_else(invalid))? {
                part_digests.push((digest, p.size));
            }
            if i + 1 < wanted.len() && p.size < PART_BYTES_MIN {
                return Err(err(ErrorCode::EntityTooSmall, "Your proposed upload is smaller than the minimum allowed object size.")
                    .with_extra("PartNumber", w.part_number.to_string())
                    .with_extra("ProposedSize", p.size.to_string())
                    .with_extra("MinSizeAllowed", PART_BYTES_MIN.to_string()));
            }
            let md5: [u8; 16] = hex::decode(&p.meta.etag).ok().and_then(|v| v.try_into().ok()).ok_or_else(|| internal("part ETag is not an MD5"))?;
            md5s.push(md5);
            if upload_meta.sse.is_some() {
                // Each part was encrypted under its own IV; the object keeps them in order.
                let iv = p.meta.sse.as_ref().and_then(|s| s.ivs.first()).ok_or_else(|| internal("a part of an encrypted upload has no IV"))?;
                ivs.push(*iv);
            }
            sizes.push(p.size);
            extents.push(p.extent.ok_or_else(|| internal("part without chunks"))?);
        }
        let used: Vec<u64> = extents.iter().map(|e| e.id).collect();
        let release: Vec<u64> = parts.iter().filter_map(|p| p.extent).map(|e| e.id).filter(|id| !used.contains(id)).collect();
        let etag = multipart_etag(&md5s);
        let checksum = upload_checksum.map(|c| {
            let pairs: Vec<(&[u8], u64)> = part_digests.iter().map(|(d, size)| (d.as_slice(), *size)).collect();
            (c, c.object_value(&pairs))
        });
        expected.check_value(checksum.as_ref())?;
        let mut sse = upload_meta.sse.clone();
        if let Some(s) = sse.as_mut() {
            s.ivs = ivs;
        }
        let meta = ObjectMeta {
            etag: etag.clone(),
            modified_ms: now_ms,
            checksums: checksum.iter().map(|(c, v)| (c.algorithm.sdk_name().to_string(), v.clone())).collect(),
            part_checksums: part_digests.iter().flat_map(|(d, _)| d.iter().copied()).collect(),
            part_sizes: sizes,
            sse: sse.clone(),
            upload_id: Some(u.clone()),
            ..upload_meta
        };
        // The object takes over the parts' chunks; the upload record goes in the same batch, so
        // the parts never own chunks after the object does.
        let version = versions::put_large(&s, &b, &k, meta, extents, &release, &[(UPLOADS_BUCKET, &record)], cond.as_ref()).await?;
        for p in &parts {
            let _ = s.store.delete_keeping_chunks(PARTS_BUCKET, &part_key(&record, p.number)).await;
        }
        Ok((etag, version, sse, checksum))
    })
    .await?;
    let scheme = if shard.config.tls.is_some() { "https" } else { "http" };
    let location = format!("{scheme}://{}/{bucket}/{key}", shard.config.listen);
    let (checksums, checksum_type) = match checksum {
        Some((c, v)) => (checksum_value(c.algorithm, v), Some(c.kind)),
        None => (xr::Checksums::default(), None),
    };
    let result = xr::CompleteMultipartUploadResult { location, bucket, key, etag, checksums, checksum_type };
    let resp = encrypt::with_headers(Response::xml(200, xr::complete_multipart_upload_result(&result)), sse.as_ref());
    Ok(with_version(resp, written_version(version)))
}

/// Checks a completed part's checksums against the stored part's: any the request names must
/// be the part's. Returns the part's raw digest when the upload has an algorithm; `Err(None)`
/// means InvalidPart.
fn part_checksum_digest(upload: Option<UploadChecksum>, wanted: &xml::requests::CompletedPart, part: &StoredPart) -> Result<Option<Vec<u8>>, Option<S3Error>> {
    let stored = part.meta.checksum();
    for algorithm in ChecksumAlgorithm::ALL {
        if let Some(v) = checksum_for(&wanted.checksums, algorithm)
            && stored != Some((algorithm, v))
        {
            return Err(None);
        }
    }
    let Some(upload) = upload else { return Ok(None) };
    // Every part of such an upload gets a checksum of its algorithm (`upload_part`).
    let Some((_, value)) = stored.filter(|(a, _)| *a == upload.algorithm) else { return Err(None) };
    // A part named without its checksum is taken with the one stored (AWS refuses that for a
    // COMPOSITE upload with InvalidRequest; Ceph RGW, and its s3-tests, take it): the server
    // checked every part's checksum when it arrived, so nothing is left unverified.
    upload.algorithm.decode_value(value).map(Some).ok_or_else(|| Some(internal("a stored part checksum does not decode")))
}

/// What CompleteMultipartUpload's headers say the object's checksum will be: its value
/// (`x-amz-checksum-<algorithm>`) and type (`x-amz-checksum-type`), each checked against what
/// the upload builds.
struct ExpectedChecksum {
    value: Option<(ChecksumAlgorithm, String)>,
    kind: Option<xr::ChecksumType>,
}

impl ExpectedChecksum {
    fn of(req: &Request) -> Result<ExpectedChecksum, S3Error> {
        let value = ChecksumAlgorithm::ALL.into_iter().find_map(|a| req.header(a.header_name()).map(|v| (a, v.trim().to_string())));
        let kind = match req.header("x-amz-checksum-type") {
            None => None,
            Some(v) => Some(xr::ChecksumType::parse(v).ok_or_else(|| err(ErrorCode::InvalidRequest, format!("x-amz-checksum-type {v:?}: COMPOSITE or FULL_OBJECT")))?),
        };
        Ok(ExpectedChecksum { value, kind })
    }

    fn check_type(&self, upload: Option<UploadChecksum>) -> Result<(), S3Error> {
        match (self.kind, upload) {
            (Some(kind), Some(u)) if kind != u.kind => Err(err(
                ErrorCode::InvalidRequest,
                format!("The upload was created using the {} checksum mode. The complete request must use the same checksum mode.", u.kind.as_str()),
            )),
            (Some(_), None) => Err(err(ErrorCode::InvalidRequest, "The upload was created without a checksum algorithm: x-amz-checksum-type does not apply")),
            _ => Ok(()),
        }
    }

    /// Against the object's checksum as built; a composite one may be named with or without its `-N`.
    fn check_value(&self, built: Option<&(UploadChecksum, String)>) -> Result<(), S3Error> {
        let Some((algorithm, sent)) = &self.value else { return Ok(()) };
        match built {
            Some((c, value)) if c.algorithm == *algorithm => {
                let bare = value.split_once('-').map_or(value.as_str(), |(b, _)| b);
                if sent == value || sent == bare { Ok(()) } else { Err(S3Error::checksum_mismatch(algorithm.sdk_name())) }
            }
            _ => Err(err(
                ErrorCode::InvalidRequest,
                format!("The upload was not created with the {} checksum algorithm: {} cannot be checked", algorithm.sdk_name(), algorithm.header_name()),
            )),
        }
    }
}

async fn abort_upload(shard: &Rc<Shard>, req: &Request, bucket: String, key: String) -> Result<Response, S3Error> {
    access(shard, req, &bucket, Permission::Write, "s3:AbortMultipartUpload")?;
    let upload = upload_id(req)?;
    let record = upload_key(&bucket, &key, &upload);
    let u = upload.clone();
    call(shard, shard.owner(&bucket, &key), move |s: Rc<Shard>| async move {
        let _lock = s.upload_lock(&record).await;
        if upload_meta(s.clone(), record.clone()).await?.is_none() {
            return Err(no_such_upload(&u));
        }
        abort_on_owner(&s, &record).await
    })
    .await?;
    Ok(Response::new(204))
}

/// Aborts upload `record` from the background (abandoned, or timed out by a lifecycle rule)
/// unless a client completed or aborted it meanwhile; whether it aborted it.
pub async fn abort_if_open(s: &Rc<Shard>, record: &[u8]) -> Result<bool, S3Error> {
    let _lock = s.upload_lock(record).await;
    if s.store.list(UPLOADS_BUCKET, record, None, 1).first().is_none_or(|u| &u.key[..] != record) {
        return Ok(false);
    }
    abort_on_owner(s, record).await.map(|()| true)
}

/// Ends an upload: its record first (then its parts own their chunks no more), then the chunks
/// and the part records. A crash in between leaves part records with no upload: start-up
/// removes them and collects their chunks.
pub async fn abort_on_owner(s: &Rc<Shard>, record: &[u8]) -> Result<(), S3Error> {
    let parts = parts_of(s, record).await?;
    s.store.delete(UPLOADS_BUCKET, record).await.map_err(|e| internal(format!("abort upload: {e}")))?;
    let ids: Vec<u64> = parts.iter().filter_map(|p| p.extent).map(|e| e.id).collect();
    if !ids.is_empty() {
        s.store.drop_chunks(&ids).await.map_err(|e| internal(format!("abort upload: {e}")))?;
    }
    for p in &parts {
        let _ = s.store.delete_keeping_chunks(PARTS_BUCKET, &part_key(record, p.number)).await;
    }
    Ok(())
}

async fn list_uploads(shard: &Rc<Shard>, req: &Request, bucket: String) -> Result<Response, S3Error> {
    access(shard, req, &bucket, Permission::Read, "s3:ListBucketMultipartUploads")?;
    let prefix = req.query("prefix").unwrap_or("").to_string();
    let max_uploads: u32 = req.query("max-uploads").and_then(|m| m.parse().ok()).unwrap_or(1000).min(1000);
    let key_marker = req.query("key-marker").unwrap_or("").to_string();
    let mut all = Vec::new();
    for core in 0..shard.cores {
        let (b, p) = (bucket.clone(), prefix.clone());
        let listed = call(shard, core, move |s: Rc<Shard>| async move {
            let mut scan = upload_prefix(&b);
            scan.extend_from_slice(p.as_bytes());
            let mut out = Vec::new();
            for l in s.store.list(UPLOADS_BUCKET, &scan, None, usize::MAX) {
                let rest = &l.key[b.len() + 1..];
                let Some(at) = rest.iter().rposition(|&c| c == 0) else { continue };
                let (Ok(key), Ok(id)) = (std::str::from_utf8(&rest[..at]), std::str::from_utf8(&rest[at + 1..])) else { continue };
                let meta = match s.store.get(UPLOADS_BUCKET, &l.key).await {
                    Ok(Some(o)) => ObjectMeta::decode(o.meta()).unwrap_or_default(),
                    _ => continue,
                };
                out.push((key.to_string(), id.to_string(), meta.owner, meta.modified_ms));
            }
            out
        })
        .await;
        all.extend(listed);
    }
    all.sort();
    let after: Vec<_> = all.into_iter().filter(|(k, ..)| key_marker.is_empty() || *k > key_marker).collect();
    let is_truncated = after.len() > max_uploads as usize;
    let uploads: Vec<xr::UploadEntry> = after
        .into_iter()
        .take(max_uploads as usize)
        .map(|(key, upload_id, owner, initiated_ms)| {
            let o = owner_named(&owner);
            xr::UploadEntry {
                key,
                upload_id,
                initiator: o.clone(),
                owner: o,
                storage_class: "STANDARD",
                initiated_ms,
                checksum_algorithm: None,
            }
        })
        .collect();
    let result = xr::ListMultipartUploads {
        bucket,
        key_marker,
        upload_id_marker: req.query("upload-id-marker").unwrap_or("").to_string(),
        next_key_marker: uploads.last().map(|u| u.key.clone()),
        next_upload_id_marker: uploads.last().map(|u| u.upload_id.clone()),
        prefix: Some(prefix),
        delimiter: None,
        max_uploads,
        encoding_type: None,
        is_truncated,
        uploads,
        common_prefixes: Vec::new(),
    };
    Ok(Response::xml(200, xr::list_multipart_uploads(&result)))
}

// ---------------------------------------------------------------------------------------------
// Listing: every core lists its share; the pages merge in key order.

#[derive(Clone, Copy, PartialEq, Eq)]
enum ListKind {
    V1,
    V2,
    Versions,
}

/// Up to `max` entries after `after`, merged from every core (`all`: every version, for
/// ListObjectVersions, after the version-id marker if there is one; see `objects::list`).
async fn list_merged(
    shard: &Rc<Shard>,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<String>,
    max: usize,
    all: Option<Option<VersionId>>,
) -> Result<(Vec<Entry>, bool), S3Error> {
    let mut handles = Vec::with_capacity(shard.cores);
    for core in 0..shard.cores {
        let (s, b, p, d, a) = (shard.clone(), bucket.to_string(), prefix.to_string(), delimiter.map(str::to_string), after.clone());
        handles.push(engine::spawn(async move { call(&s, core, move |c: Rc<Shard>| objects::list(c, b, p, d, a, max, true, all)).await }));
    }
    let mut all = Vec::new();
    let mut truncated = false;
    for h in handles {
        let (entries, t) = h.await?;
        truncated |= t;
        all.extend(entries);
    }
    // A key lives on one core, with all its versions; a common prefix may come from several.
    let rank = |e: &Entry| match e {
        Entry::Key { version: Some(v), .. } => v.rank,
        _ => 0,
    };
    all.sort_by(|a, b| a.name().cmp(b.name()).then(rank(a).cmp(&rank(b))));
    all.dedup_by(|a, b| matches!((&*a, &*b), (Entry::Prefix(x), Entry::Prefix(y)) if x == y));
    if all.len() > max {
        all.truncate(max);
        truncated = true;
    }
    Ok((all, truncated))
}

/// Where to continue after `name`: past every key under it if it is a common prefix.
fn after_entry(e: &Entry) -> String {
    match e {
        Entry::Key { key, .. } => key.clone(),
        Entry::Prefix(p) => format!("{p}\u{10FFFF}"),
    }
}

async fn list_objects(shard: &Rc<Shard>, req: &Request, bucket: String, kind: ListKind) -> Result<Response, S3Error> {
    let action = if kind == ListKind::Versions { "s3:ListBucketVersions" } else { "s3:ListBucket" };
    access(shard, req, &bucket, Permission::Read, action)?;
    let prefix = req.query("prefix").unwrap_or("").to_string();
    let delimiter = req.query("delimiter").filter(|d| !d.is_empty()).map(str::to_string);
    let max_keys: usize = match req.query("max-keys").or(req.query("max-uploads")) {
        None => 1000,
        Some(m) => m
            .parse::<i64>()
            .map_err(|_| err(ErrorCode::InvalidArgument, "Provided max-keys not an integer or within integer range"))?
            .clamp(0, 1000) as usize,
    };
    let encoding_type = match req.query("encoding-type") {
        None => None,
        Some(v) => Some(
            xr::EncodingType::from_query(v)
                .ok_or_else(|| err(ErrorCode::InvalidArgument, "Invalid Encoding Method specified in Request"))?,
        ),
    };
    let token = req.query("continuation-token").map(str::to_string);
    let start_after = req.query("start-after").map(str::to_string);
    let marker = match kind {
        ListKind::V1 => req.query("marker").map(str::to_string),
        ListKind::Versions => req.query("key-marker").map(str::to_string),
        ListKind::V2 => match &token {
            Some(t) => Some(decode_token(t)?),
            None => start_after.clone(),
        },
    };
    let after = marker.clone().filter(|m| !m.is_empty());
    let all = match kind {
        ListKind::Versions => Some(match req.query("version-id-marker").filter(|v| !v.is_empty()) {
            None => None,
            Some(_) if after.is_none() => {
                return Err(err(ErrorCode::InvalidArgument, "A version-id marker cannot be specified without a key marker.")
                    .with_extra("ArgumentName", "version-id-marker"));
            }
            Some(v) => Some(VersionId::parse(v).ok_or_else(|| {
                err(ErrorCode::InvalidArgument, "Invalid version id specified").with_extra("ArgumentName", "version-id-marker").with_extra("ArgumentValue", v)
            })?),
        }),
        _ => None,
    };
    let (entries, is_truncated) = if max_keys == 0 {
        (Vec::new(), false)
    } else {
        list_merged(shard, &bucket, &prefix, delimiter.as_deref(), after, max_keys, all).await?
    };
    let next = entries.last().map(after_entry);
    let mut contents = Vec::new();
    let mut common_prefixes = Vec::new();
    let mut versions = Vec::new();
    let fetch_owner = kind == ListKind::V1 || req.query("fetch-owner") == Some("true");
    for e in &entries {
        match e {
            Entry::Prefix(p) => common_prefixes.push(p.clone()),
            Entry::Key { key, size, meta, version } => {
                let checksum_algorithm =
                    meta.checksums.first().and_then(|(a, _)| ChecksumAlgorithm::from_sdk_name(a)).map(|a| a.sdk_name());
                if let Some(v) = version.as_ref().filter(|v| v.marker) {
                    versions.push(xr::VersionListEntry::DeleteMarker(xr::DeleteMarkerEntry {
                        key: key.clone(),
                        version_id: v.id.clone(),
                        is_latest: v.latest,
                        last_modified_ms: meta.modified_ms,
                        owner: owner_named(&meta.owner),
                    }));
                } else if let Some(v) = version {
                    versions.push(xr::VersionListEntry::Version(xr::VersionEntry {
                        key: key.clone(),
                        version_id: v.id.clone(),
                        is_latest: v.latest,
                        last_modified_ms: meta.modified_ms,
                        etag: meta.etag.clone(),
                        size_bytes: *size,
                        storage_class: "STANDARD",
                        owner: owner_named(&meta.owner),
                        checksum_algorithm,
                        checksum_type: None,
                    }));
                } else {
                    contents.push(xr::ObjectEntry {
                        key: key.clone(),
                        last_modified_ms: meta.modified_ms,
                        etag: meta.etag.clone(),
                        size_bytes: *size,
                        storage_class: "STANDARD",
                        owner: fetch_owner.then(|| owner_named(&meta.owner)),
                        checksum_algorithm,
                        checksum_type: None,
                    });
                }
            }
        }
    }
    let page = xr::ListPage {
        bucket: bucket.clone(),
        prefix: prefix.clone(),
        delimiter: delimiter.clone(),
        max_keys: max_keys as u32,
        encoding_type,
        is_truncated,
        contents,
        common_prefixes: common_prefixes.clone(),
    };
    let body = match kind {
        ListKind::V2 => xr::list_objects_v2(&xr::ListObjectsV2 {
            page,
            continuation_token: token,
            next_continuation_token: is_truncated.then(|| encode_token(next.as_deref().unwrap_or(""))),
            start_after,
        }),
        ListKind::V1 => xr::list_objects_v1(&xr::ListObjectsV1 {
            page,
            marker: marker.unwrap_or_default(),
            next_marker: (is_truncated && delimiter.is_some()).then(|| entries.last().map(|e| e.name().to_string()).unwrap_or_default()),
        }),
        ListKind::Versions => xr::list_versions(&xr::ListVersions {
            bucket,
            prefix,
            key_marker: marker.unwrap_or_default(),
            version_id_marker: req.query("version-id-marker").unwrap_or("").to_string(),
            next_key_marker: is_truncated.then(|| entries.last().map(|e| e.name().to_string()).unwrap_or_default()),
            next_version_id_marker: match entries.last() {
                Some(Entry::Key { version: Some(v), .. }) if is_truncated => Some(v.id.clone()),
                _ => None,
            },
            max_keys: max_keys as u32,
            delimiter,
            encoding_type,
            is_truncated,
            entries: versions,
            common_prefixes,
        }),
    };
    Ok(Response::xml(200, body))
}

fn encode_token(after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after.as_bytes())
}

fn decode_token(token: &str) -> Result<String, S3Error> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.as_bytes()).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(
        || err(ErrorCode::InvalidArgument, "The continuation token provided is incorrect").with_extra("ArgumentName", "continuation-token"),
    )
}
