//! PostObject: an upload from an HTML form (`POST /bucket`, `multipart/form-data`), authorised
//! by a signed policy instead of a signed request, as browsers and `generate_presigned_post`
//! send it. The form's parsing and the policy live in `crate::post`; here the fields are read
//! from the connection, checked, and the file is streamed to the owning core like a PUT's body.

use std::rc::Rc;

use md5::{Digest, Md5};

use super::Shard;
use super::conn::{BodyReader, Conn, Request, Response};
use super::encrypt;
use super::handlers::{BodySource, commit, store_body, with_version, written_version};
use super::meta::ObjectMeta;
use crate::acl;
use crate::checksum::{ChecksumAlgorithm, Checksummer};
use crate::error::{ErrorCode, S3Error};
use crate::names;
use crate::post::{self, FORM_FIELDS_BYTES_MAX, FileScanner, FormHead, PostError, PostSigner};
use crate::tagging;
use crate::xml::{self, responses as xr};

/// Bytes read from the socket at a time while looking for the end of the fields.
const FIELDS_READ_BYTES: usize = 16 << 10;

/// Whether `req` is a form upload: a POST whose body is `multipart/form-data`.
pub fn is_form(req: &Request) -> bool {
    req.header("content-type").is_some_and(|t| t.trim_start().get(..19).is_some_and(|k| k.eq_ignore_ascii_case("multipart/form-data")))
}

pub async fn post_object(shard: &Rc<Shard>, conn: &mut Conn, req: &Request, bucket: String) -> Result<Response, S3Error> {
    let boundary = post::boundary(req.header("content-type").unwrap_or(""))?;
    let mut body = BodyReader::new(req)?;
    let mut buf = Vec::new();
    let head = loop {
        if let Some(head) = post::parse_head(&buf, &boundary)? {
            break head;
        }
        if !body.read(conn, &mut buf, FIELDS_READ_BYTES).await? {
            break post::parse_head(&buf, &boundary)?.ok_or_else(|| PostError::Malformed("the body ended inside the fields".into()))?;
        }
    };
    let info = shard.buckets.borrow().get(&bucket).cloned();
    let info = info.ok_or_else(|| S3Error::new(ErrorCode::NoSuchBucket, "The specified bucket does not exist").with_extra("BucketName", &bucket))?;
    // A form without a key is malformed whatever its policy says (S3 answers 400 before 403).
    let key = match head.key() {
        Some(key) => key,
        None => return Err(S3Error::new(ErrorCode::InvalidArgument, "Bucket POST must contain a field named 'key'.")),
    };
    let (signer, policy) = authorise(shard, req, &head, &bucket)?;
    names::validate_key(&key).map_err(S3Error::from)?;
    super::authz::may_write_as(shard, req, signer.as_deref(), &bucket, &key, "s3:PutObject")?;
    let owner = signer.unwrap_or_default();
    let mut meta = meta_from_form(&head, &owner, req.now_ms)?;
    // In a bucket with Object Lock, a form's object gets the default retention as a PUT's does.
    meta.retention = info.object_lock.and_then(|c| c.default).map(|d| d.retention_from(req.now_ms));
    let acl_field = head.field("acl").map(str::trim);
    let for_bucket_owner = acl_field == Some("bucket-owner-full-control");
    match info.ownership {
        // ACLs off: the bucket owner's object, and no ACL but the one that says so.
        Some(acl::ObjectOwnership::BucketOwnerEnforced) => {
            if acl_field.is_some() && !for_bucket_owner {
                return Err(S3Error::new(ErrorCode::AccessControlListNotSupported, "The bucket does not allow ACLs"));
            }
            meta.owner = info.owner.clone();
        }
        Some(acl::ObjectOwnership::BucketOwnerPreferred) if for_bucket_owner => meta.owner = info.owner.clone(),
        _ => {
            if let Some(name) = acl_field {
                let grants = acl::canned(name, &owner, &info.owner)?;
                super::handlers::check_public_acl(shard, &bucket, &grants)?;
                meta.set_grants(grants);
            }
        }
    }

    let (sealed, cipher) = encrypt::one_segment(encrypt::for_write(shard, conn, &bucket, |f| head.field(f))?)?;
    let owner = shard.owner(&bucket, &key);
    let rest = buf.split_off(head.data_start);
    let mut file = FormFile::new(body, &boundary, rest, policy.as_ref().and_then(post::Policy::length_range));
    if let Some((algorithm, value)) = form_checksum(&head)? {
        meta.checksums.push((algorithm.sdk_name().to_string(), value.clone()));
        file.checksum = Some((Checksummer::new(algorithm), value));
    }
    let stored = store_body(shard, conn, &mut encrypt::Encrypting::new(&mut file, cipher.as_ref()), owner).await?;
    let etag = encrypt::etag(file.md5.finalize_reset().into(), sealed.as_ref(), cipher.as_ref());
    meta.etag = etag.clone();
    let resp = encrypt::with_headers(success(req, &head, &bucket, &key, &etag), sealed.as_ref());
    meta.sse = sealed;
    let version = commit(shard, owner, bucket.clone(), key.clone(), meta, stored).await?;
    file.drain(conn).await;
    Ok(with_version(resp, written_version(version)))
}

/// Checks the form's signature and policy: the signer and the policy, or neither for an
/// anonymous form (no policy, no signature), which only a bucket everyone may write takes.
fn authorise(shard: &Shard, req: &Request, head: &FormHead, bucket: &str) -> Result<(Option<String>, Option<post::Policy>), S3Error> {
    let Some(signer) = PostSigner::from_form(head)? else {
        return Ok((None, None));
    };
    let policy_b64 = head.field("policy").ok_or_else(|| S3Error::new(ErrorCode::InvalidArgument, "a signed form must carry its policy"))?;
    let secret = shard.users.borrow_mut().secret(signer.access_key());
    let secret = secret.ok_or_else(|| {
        S3Error::new(ErrorCode::InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records.")
            .with_extra("AWSAccessKeyId", signer.access_key())
    })?;
    if !signer.verifies(policy_b64, &secret) {
        return Err(S3Error::new(
            ErrorCode::SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        ));
    }
    let policy = post::parse_policy(policy_b64)?;
    policy.check(head, bucket, req.now_ms)?;
    Ok((Some(signer.access_key().to_string()), Some(policy)))
}

/// The object's metadata from the form's fields, as a PUT takes it from headers.
fn meta_from_form(head: &FormHead, owner: &str, now_ms: u64) -> Result<ObjectMeta, S3Error> {
    let user: Vec<(String, String)> = head
        .fields
        .iter()
        .filter(|(n, _)| n.len() > names::USER_METADATA_PREFIX.len() && n[..names::USER_METADATA_PREFIX.len()].eq_ignore_ascii_case(names::USER_METADATA_PREFIX))
        .map(|(n, v)| (n[names::USER_METADATA_PREFIX.len()..].to_ascii_lowercase(), v.clone()))
        .collect();
    let tags = || match head.field("tagging") {
        Some(body) => Ok(tagging::checked(xml::parse_tagging(body.as_bytes())?, tagging::OBJECT_TAGS_MAX)?),
        None => Ok(Vec::new()),
    };
    ObjectMeta::for_upload(user, |h| head.field(h), tags, owner, now_ms)
}

/// S3's answer to a stored form: a redirect if the form asks for one, else
/// `success_action_status` (200, 201 with a `PostResponse` body, or the default 204).
fn success(req: &Request, head: &FormHead, bucket: &str, key: &str, etag: &str) -> Response {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let quoted = format!("\"{etag}\"");
    let host = req.header("host").unwrap_or("localhost");
    let location = format!("http://{host}/{bucket}/{}", utf8_percent_encode(key, NON_ALPHANUMERIC));
    let redirect = head.field("success_action_redirect").or_else(|| head.field("redirect")).filter(|r| !r.is_empty());
    if let Some(target) = redirect {
        let sep = if target.contains('?') { '&' } else { '?' };
        let query = format!(
            "bucket={}&key={}&etag={}",
            utf8_percent_encode(bucket, NON_ALPHANUMERIC),
            utf8_percent_encode(key, NON_ALPHANUMERIC),
            utf8_percent_encode(&quoted, NON_ALPHANUMERIC)
        );
        return Response::new(303).header("location", format!("{target}{sep}{query}")).header("etag", quoted);
    }
    match head.field("success_action_status") {
        Some("200") => Response::new(200).header("etag", quoted).header("location", location),
        Some("201") => {
            let body = xr::post_response(&location, bucket, key, &quoted);
            Response::xml(201, body).header("etag", quoted).header("location", location)
        }
        _ => Response::new(204).header("etag", quoted).header("location", location),
    }
}

/// The file of a form, read from the body after its fields: its bytes up to the closing
/// delimiter, with their MD5 (the ETag) and the policy's length range enforced as they come.
struct FormFile {
    body: BodyReader,
    scanner: FileScanner,
    /// Body bytes read with the fields that already belong to the file.
    pending: Vec<u8>,
    md5: Md5,
    /// The form's `x-amz-checksum-<algorithm>` field: the file's checksum so far, and the value
    /// it must end as.
    checksum: Option<(Checksummer, String)>,
    len: u64,
    length_range: Option<(u64, u64)>,
}

/// The form's `x-amz-checksum-<algorithm>` field, if it has one (at most one, as for a PUT).
fn form_checksum(head: &FormHead) -> Result<Option<(ChecksumAlgorithm, String)>, S3Error> {
    let mut found = head.fields.iter().filter_map(|(name, value)| Some((ChecksumAlgorithm::from_header_name(&name.to_ascii_lowercase())?, value)));
    let Some((algorithm, value)) = found.next() else { return Ok(None) };
    if found.next().is_some() {
        return Err(S3Error::new(ErrorCode::InvalidRequest, "Expecting a single x-amz-checksum- field"));
    }
    if algorithm.decode_value(value.trim()).is_none() {
        return Err(S3Error::new(ErrorCode::InvalidRequest, format!("Value for {} is not a valid checksum", algorithm.header_name())));
    }
    Ok(Some((algorithm, value.trim().to_string())))
}

impl FormFile {
    fn new(body: BodyReader, boundary: &str, pending: Vec<u8>, length_range: Option<(u64, u64)>) -> FormFile {
        FormFile { body, scanner: FileScanner::new(boundary), pending, md5: Md5::new(), checksum: None, len: 0, length_range }
    }

    /// Reads what follows the file (fields S3 ignores), so the connection can serve the next
    /// request; a long tail is left, and the connection closes after the answer instead.
    async fn drain(&mut self, conn: &mut Conn) {
        let mut scratch = Vec::new();
        while scratch.len() < FORM_FIELDS_BYTES_MAX {
            match self.body.read(conn, &mut scratch, FIELDS_READ_BYTES).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            }
        }
    }
}

impl BodySource for FormFile {
    fn declared_len(&self) -> Option<u64> {
        None
    }

    async fn read(&mut self, conn: &mut Conn, out: &mut Vec<u8>, want: usize) -> Result<bool, S3Error> {
        let start = out.len();
        while !self.scanner.ended() && out.len() - start < want {
            if !self.pending.is_empty() {
                let pending = std::mem::take(&mut self.pending);
                self.scanner.scan(&pending, out);
                continue;
            }
            let mut raw = Vec::with_capacity(want);
            let more = self.body.read(conn, &mut raw, want).await?;
            self.scanner.scan(&raw, out);
            if !more && !self.scanner.ended() {
                return Err(PostError::Malformed("the body ended inside the file".into()).into());
            }
        }
        self.md5.update(&out[start..]);
        if let Some((summer, _)) = &mut self.checksum {
            summer.update(&out[start..]);
        }
        self.len += (out.len() - start) as u64;
        if self.scanner.ended()
            && let Some((summer, expected)) = self.checksum.take()
        {
            let algorithm = summer.algorithm();
            if algorithm.decode_value(&expected).as_deref() != Some(summer.finish_bytes().as_slice()) {
                return Err(S3Error::checksum_mismatch(algorithm.sdk_name()));
            }
        }
        if let Some((min, max)) = self.length_range {
            if self.len > max {
                return Err(S3Error::new(ErrorCode::EntityTooLarge, format!("Your proposed upload exceeds the maximum allowed size ({max} bytes)")));
            }
            if self.scanner.ended() && self.len < min {
                return Err(S3Error::new(ErrorCode::EntityTooSmall, format!("Your proposed upload is smaller than the minimum allowed size ({min} bytes)")));
            }
        }
        Ok(out.len() > start || !self.scanner.ended())
    }
}
