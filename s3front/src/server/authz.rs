//! Who may do what: every request's check against its bucket's policy and the ACLs, in AWS's
//! order. A statement of the bucket's policy that denies the request refuses it; one that
//! allows it lets it through; else the ACL decides (the bucket's for bucket operations and for
//! writes into it, the object's for reading it or its ACL; the owner alone for the bucket's
//! configurations). The bucket table is borrowed, never copied, on this path.

use super::conn::Request;
use super::meta::ObjectMeta;
use super::{BucketInfo, Shard};
use crate::acl::{self, Permission};
use crate::error::{ErrorCode, S3Error};
use crate::policy::{Context, Decision};

pub(super) fn no_such_bucket(bucket: &str) -> S3Error {
    S3Error::new(ErrorCode::NoSuchBucket, "The specified bucket does not exist").with_extra("BucketName", bucket)
}

pub(super) fn access_denied() -> S3Error {
    S3Error::new(ErrorCode::AccessDenied, "Access Denied")
}

/// A request as a bucket policy sees it: the action (`s3:GetObject`), the resource, and the
/// condition keys the request carries.
struct PolicyRequest<'a> {
    req: &'a Request,
    /// The requester: the request's signer, or a form's (PostObject).
    requester: Option<&'a str>,
    action: &'static str,
    resource: String,
    /// The object's tags, for `s3:ExistingObjectTag/<key>` (reads of an existing object).
    tags: Option<&'a [(String, String)]>,
    /// The tags the request sets, for `s3:RequestObjectTag/<key>`, when they come in its body
    /// (PutObjectTagging); otherwise its `x-amz-tagging` header is read.
    request_tags: Option<&'a [(String, String)]>,
}

impl Context for PolicyRequest<'_> {
    fn requester(&self) -> Option<&str> {
        self.requester
    }

    fn action(&self) -> &str {
        self.action
    }

    fn resource(&self) -> &str {
        &self.resource
    }

    fn value(&self, key: &str) -> Vec<String> {
        let one = |v: Option<&str>| v.map(|v| vec![v.to_string()]).unwrap_or_default();
        match key {
            "aws:sourceip" => vec![self.req.peer.to_string()],
            "aws:securetransport" => vec![self.req.secure.to_string()],
            "aws:useragent" => one(self.req.header("user-agent")),
            "aws:referer" => one(self.req.header("referer")),
            "aws:userid" | "aws:username" => one(self.requester),
            "aws:principaltype" => vec![if self.requester.is_some() { "User" } else { "Anonymous" }.to_string()],
            "s3:prefix" | "s3:delimiter" | "s3:max-keys" => one(self.req.query(&key[3..])),
            // Every `s3:x-amz-...` key is the request's header of that name: `x-amz-acl`, the
            // `x-amz-grant-*` headers, `x-amz-server-side-encryption` (and its key id and
            // customer algorithm), `x-amz-copy-source`, `x-amz-metadata-directive`, ...
            k if k.starts_with("s3:x-amz-") => one(self.req.header(&key[3..])),
            _ => {
                if let Some(tag) = key.strip_prefix("s3:existingobjecttag/") {
                    let tags = self.tags.unwrap_or_default();
                    return tags.iter().filter(|(k, _)| k.eq_ignore_ascii_case(tag)).map(|(_, v)| v.clone()).collect();
                }
                if let Some(tag) = key.strip_prefix("s3:requestobjecttag/") {
                    let sent = match self.request_tags {
                        Some(tags) => tags.to_vec(),
                        None => self.req.header("x-amz-tagging").and_then(|h| crate::tagging::parse_header(h).ok()).unwrap_or_default(),
                    };
                    return sent.into_iter().filter(|(k, _)| k.eq_ignore_ascii_case(tag)).map(|(_, v)| v).collect();
                }
                Vec::new()
            }
        }
    }
}

/// What a request asks: `action` by `requester` on `bucket` (`key` `None`) or one of its
/// objects (`tags`: the object's, when it exists and is at hand).
struct Ask<'a> {
    requester: Option<&'a str>,
    bucket: &'a str,
    key: Option<&'a str>,
    action: &'static str,
    tags: Option<&'a [(String, String)]>,
    request_tags: Option<&'a [(String, String)]>,
}

impl<'a> Ask<'a> {
    fn of(req: &'a Request, bucket: &'a str, key: Option<&'a str>, action: &'static str) -> Ask<'a> {
        Ask { requester: req.access_key(), bucket, key, action, tags: None, request_tags: None }
    }
}

/// What the bucket's policy (`info`) says of `ask`. Under `RestrictPublicBuckets`, a public
/// policy's Allows open the bucket to its owner only.
fn policy_decision(info: &BucketInfo, req: &Request, ask: &Ask<'_>) -> Decision {
    let Some(policy) = &info.policy else { return Decision::Default };
    let resource = match ask.key {
        Some(k) => format!("arn:aws:s3:::{}/{k}", ask.bucket),
        None => format!("arn:aws:s3:::{}", ask.bucket),
    };
    let decision = policy.policy.evaluate(&PolicyRequest {
        req,
        requester: ask.requester,
        action: ask.action,
        resource,
        tags: ask.tags,
        request_tags: ask.request_tags,
    });
    let restricted = info.public_access_block.is_some_and(|b| b.restrict_public_buckets) && policy.policy.is_public();
    if decision == Decision::Allow && restricted && ask.requester != Some(info.owner.as_str()) {
        return Decision::Default;
    }
    decision
}

/// Whether the bucket's public access block says to ignore public grants.
pub(super) fn ignores_public_acls(info: &BucketInfo) -> bool {
    info.public_access_block.is_some_and(|b| b.ignore_public_acls)
}

/// The bucket's ACL grants `wanted` to `requester` (public grants left out if it ignores them).
/// With ACLs off (`BucketOwnerEnforced`), the bucket's owner alone.
fn bucket_acl_allows(info: &BucketInfo, requester: Option<&str>, wanted: Permission) -> bool {
    if info.acls_disabled() {
        return requester == Some(info.owner.as_str());
    }
    acl::allows_unless_public(&info.acl, &info.owner, requester, wanted, ignores_public_acls(info))
}

/// The policy decides if it speaks; else `acl_allows`.
fn authorize(shard: &Shard, req: &Request, ask: Ask<'_>, acl_allows: impl FnOnce(&BucketInfo) -> bool) -> Result<(), S3Error> {
    let buckets = shard.buckets.borrow();
    let info = buckets.get(ask.bucket).ok_or_else(|| no_such_bucket(ask.bucket))?;
    match policy_decision(info, req, &ask) {
        Decision::Deny => Err(access_denied()),
        Decision::Allow => Ok(()),
        Decision::Default if acl_allows(info) => Ok(()),
        Decision::Default => Err(access_denied()),
    }
}

/// Checks that the requester may do `action` in `bucket`, whose ACL must grant `wanted` when
/// the policy says nothing. The resource is the request's object if it names one.
pub(super) fn access(shard: &Shard, req: &Request, bucket: &str, wanted: Permission, action: &'static str) -> Result<(), S3Error> {
    authorize(shard, req, Ask::of(req, bucket, req.key.as_deref(), action), |info| bucket_acl_allows(info, req.access_key(), wanted))
}

/// Changing the tags of an object whose tags are `existing` to `sent` (`action`:
/// `s3:PutObjectTagging`): the policy sees both (`s3:ExistingObjectTag/<key>`,
/// `s3:RequestObjectTag/<key>`); the bucket's WRITE when the policy says nothing.
pub(super) fn may_retag(
    shard: &Shard,
    req: &Request,
    bucket: &str,
    key: &str,
    existing: &[(String, String)],
    sent: &[(String, String)],
    action: &'static str,
) -> Result<(), S3Error> {
    let ask = Ask { tags: Some(existing), request_tags: Some(sent), ..Ask::of(req, bucket, Some(key), action) };
    authorize(shard, req, ask, |info| bucket_acl_allows(info, req.access_key(), Permission::Write))
}

/// A write into `bucket` of `key` (a key of a multi-delete): `action` on that object, with the
/// bucket's WRITE when the policy says nothing.
pub(super) fn may_write(shard: &Shard, req: &Request, bucket: &str, key: &str, action: &'static str) -> Result<(), S3Error> {
    may_write_as(shard, req, req.access_key(), bucket, key, action)
}

/// `may_write` for `requester` (a form upload's signer, or `None`: anonymous).
pub(super) fn may_write_as(shard: &Shard, req: &Request, requester: Option<&str>, bucket: &str, key: &str, action: &'static str) -> Result<(), S3Error> {
    let ask = Ask { requester, key: Some(key), ..Ask::of(req, bucket, None, action) };
    authorize(shard, req, ask, |info| bucket_acl_allows(info, requester, Permission::Write))
}

/// The bucket, if the requester may do `action` (a bucket configuration: tags, CORS,
/// lifecycle, versioning; or deleting it): its owner, or whom the policy allows.
pub(super) fn owned(shard: &Shard, req: &Request, bucket: &str, action: &'static str) -> Result<BucketInfo, S3Error> {
    authorize(shard, req, Ask::of(req, bucket, None, action), |info| req.access_key() == Some(info.owner.as_str()))?;
    bucket_info(shard, bucket)
}

/// Whether the requester owns `bucket`: its policy is its owner's alone to read and change,
/// whatever the policy says (as the account's root user may, in AWS).
pub(super) fn owner_only(shard: &Shard, req: &Request, bucket: &str) -> Result<BucketInfo, S3Error> {
    let info = bucket_info(shard, bucket)?;
    if req.access_key() == Some(info.owner.as_str()) { Ok(info) } else { Err(access_denied()) }
}

/// The bucket's entry, whoever asks.
pub(super) fn bucket_info(shard: &Shard, bucket: &str) -> Result<BucketInfo, S3Error> {
    shard.buckets.borrow().get(bucket).cloned().ok_or_else(|| no_such_bucket(bucket))
}

/// Fails unless the bucket exists: object reads are decided with the object's own ACL.
pub(super) fn exists(shard: &Shard, bucket: &str) -> Result<(), S3Error> {
    if shard.buckets.borrow().contains_key(bucket) { Ok(()) } else { Err(no_such_bucket(bucket)) }
}

/// Checks that the requester may do `action` on an object (`meta`: the version at hand), whose
/// ACL must grant `wanted` when the policy says nothing.
pub(super) fn object_access(
    shard: &Shard,
    req: &Request,
    bucket: &str,
    key: &str,
    meta: &ObjectMeta,
    wanted: Permission,
    action: &'static str,
) -> Result<(), S3Error> {
    let ask = Ask { tags: Some(&meta.tags), ..Ask::of(req, bucket, Some(key), action) };
    // With ACLs off every object is the bucket owner's, whoever wrote it.
    authorize(shard, req, ask, |info| {
        if info.acls_disabled() { req.access_key() == Some(info.owner.as_str()) } else { meta.allows(req.access_key(), wanted, ignores_public_acls(info)) }
    })
}

/// Reading an object's data or metadata (`action`: `s3:GetObject`, `s3:GetObjectTagging`, ...).
pub(super) fn may_read(shard: &Shard, req: &Request, bucket: &str, key: &str, meta: &ObjectMeta, action: &'static str) -> Result<(), S3Error> {
    object_access(shard, req, bucket, key, meta, Permission::Read, action)
}

/// What the policy alone says of `action` on an object: a change checked on the object's core
/// against the version it changes (`PutObjectAcl`) takes the policy's word from here.
pub(super) fn object_policy(shard: &Shard, req: &Request, bucket: &str, key: &str, action: &'static str) -> Result<Decision, S3Error> {
    let buckets = shard.buckets.borrow();
    let info = buckets.get(bucket).ok_or_else(|| no_such_bucket(bucket))?;
    Ok(policy_decision(info, req, &Ask::of(req, bucket, Some(key), action)))
}

/// The answer for an object that is not there: NoSuchKey to whom may list the bucket, and
/// AccessDenied to others, so that they learn nothing of which keys exist (as S3 answers).
pub(super) fn missing(shard: &Shard, req: &Request, bucket: &str, key: &str) -> S3Error {
    let ask = Ask::of(req, bucket, None, "s3:ListBucket");
    let listable = authorize(shard, req, ask, |info| bucket_acl_allows(info, req.access_key(), Permission::Read));
    match listable {
        Ok(()) => S3Error::new(ErrorCode::NoSuchKey, "The specified key does not exist.").with_extra("Key", key),
        Err(e) => e,
    }
}
