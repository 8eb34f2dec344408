//! Response bodies. Each writer takes a plain struct and returns the whole body: the XML
//! declaration, then the root element with S3's namespace. Element names and their order follow
//! the AWS S3 API reference and the examples in it.
//!
//! Conventions for every struct here: timestamps are unix milliseconds (`*_ms`), written as
//! `2026-11-25T02:41:31.000Z`; ETags are stored without quotes and written in quotes
//! (`&quot;abc&quot;`), as S3 writes them; keys are written as they are, or URL-encoded when the
//! listing asked for `encoding-type=url`.

use super::out::XmlOut;
use crate::error::ErrorCode;

/// The account that owns a bucket, an object or an upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub display_name: String,
}

/// `encoding-type` of a listing request; `url` is the only value S3 defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodingType {
    Url,
}

impl EncodingType {
    /// The `encoding-type` query value; anything but `url` is S3's `InvalidArgument`.
    pub fn from_query(value: &str) -> Option<EncodingType> {
        (value == "url").then_some(EncodingType::Url)
    }

    pub fn as_str(&self) -> &'static str {
        "url"
    }
}

/// How a checksum covers a multipart object (`ChecksumType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumType {
    FullObject,
    Composite,
}

impl ChecksumType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChecksumType::FullObject => "FULL_OBJECT",
            ChecksumType::Composite => "COMPOSITE",
        }
    }

    /// `COMPOSITE` / `FULL_OBJECT`, as `x-amz-checksum-type` writes them (case-insensitively).
    pub fn parse(value: &str) -> Option<ChecksumType> {
        [ChecksumType::Composite, ChecksumType::FullObject].into_iter().find(|t| t.as_str().eq_ignore_ascii_case(value.trim()))
    }
}

/// Base64 checksum values, as in the `x-amz-checksum-*` headers; absent ones are not written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checksums {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

impl Checksums {
    fn write(&self, out: &mut XmlOut) {
        out.element_opt("ChecksumCRC32", self.crc32.as_deref());
        out.element_opt("ChecksumCRC32C", self.crc32c.as_deref());
        out.element_opt("ChecksumCRC64NVME", self.crc64nvme.as_deref());
        out.element_opt("ChecksumSHA1", self.sha1.as_deref());
        out.element_opt("ChecksumSHA256", self.sha256.as_deref());
    }
}

fn write_owner(out: &mut XmlOut, element: &'static str, owner: &Owner) {
    out.start(element);
    out.element("ID", &owner.id);
    out.element("DisplayName", &owner.display_name);
    out.end(element);
}

fn write_common_prefixes(out: &mut XmlOut, prefixes: &[String], url_encoded: bool) {
    for prefix in prefixes {
        out.start("CommonPrefixes");
        out.name_element("Prefix", prefix, url_encoded);
        out.end("CommonPrefixes");
    }
}

// ---------------------------------------------------------------------------------------------
// ListBuckets

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketEntry {
    pub name: String,
    pub creation_date_ms: u64,
}

/// GET Service (ListBuckets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListAllMyBuckets {
    pub owner: Owner,
    pub buckets: Vec<BucketEntry>,
    /// The request's `prefix`, echoed when given.
    pub prefix: Option<String>,
    /// Where the next page starts, when this one was cut at `max-buckets`.
    pub continuation_token: Option<String>,
}

pub fn list_all_my_buckets(result: &ListAllMyBuckets) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("ListAllMyBucketsResult");
    write_owner(&mut out, "Owner", &result.owner);
    out.start("Buckets");
    for bucket in &result.buckets {
        out.start("Bucket");
        out.element("Name", &bucket.name);
        out.timestamp("CreationDate", bucket.creation_date_ms);
        out.end("Bucket");
    }
    out.end("Buckets");
    out.element_opt("ContinuationToken", result.continuation_token.as_deref());
    out.element_opt("Prefix", result.prefix.as_deref());
    out.end("ListAllMyBucketsResult");
    out.finish()
}

// ---------------------------------------------------------------------------------------------
// ListObjects (V1 and V2)

/// One `<Contents>` of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEntry {
    pub key: String,
    pub last_modified_ms: u64,
    /// Without quotes.
    pub etag: String,
    pub size_bytes: u64,
    /// e.g. `STANDARD`.
    pub storage_class: &'static str,
    /// Written only when present (V2 sends it with `fetch-owner=true`; V1 always).
    pub owner: Option<Owner>,
    /// e.g. `CRC32`, for objects stored with a checksum.
    pub checksum_algorithm: Option<&'static str>,
    pub checksum_type: Option<ChecksumType>,
}

fn write_object_entry(out: &mut XmlOut, entry: &ObjectEntry, url_encoded: bool) {
    out.start("Contents");
    out.name_element("Key", &entry.key, url_encoded);
    out.timestamp("LastModified", entry.last_modified_ms);
    out.etag(&entry.etag);
    out.element_opt("ChecksumAlgorithm", entry.checksum_algorithm);
    out.element_opt("ChecksumType", entry.checksum_type.as_ref().map(ChecksumType::as_str));
    out.number("Size", entry.size_bytes);
    out.element("StorageClass", entry.storage_class);
    if let Some(owner) = &entry.owner {
        write_owner(out, "Owner", owner);
    }
    out.end("Contents");
}

/// What V1 and V2 listings share. The caller has already split the page into objects and
/// common prefixes, each in key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    pub bucket: String,
    /// Written even when empty, as S3 does.
    pub prefix: String,
    pub delimiter: Option<String>,
    pub max_keys: u32,
    pub encoding_type: Option<EncodingType>,
    pub is_truncated: bool,
    pub contents: Vec<ObjectEntry>,
    pub common_prefixes: Vec<String>,
}

impl ListPage {
    fn url_encoded(&self) -> bool {
        self.encoding_type.is_some()
    }

    /// `encode_prefix`: ListObjectsV2 URL-encodes the request's prefix it echoes, ListObjects
    /// (v1) does not (botocore decodes v1's `Prefix` only inside `CommonPrefixes`).
    fn write_head(&self, out: &mut XmlOut, encode_prefix: bool) {
        out.element("Name", &self.bucket);
        out.name_element("Prefix", &self.prefix, encode_prefix && self.url_encoded());
    }

    fn write_limits(&self, out: &mut XmlOut) {
        out.number("MaxKeys", u64::from(self.max_keys));
        if let Some(delimiter) = &self.delimiter {
            out.name_element("Delimiter", delimiter, self.url_encoded());
        }
        out.element_opt("EncodingType", self.encoding_type.as_ref().map(EncodingType::as_str));
    }

    fn write_entries(&self, out: &mut XmlOut) {
        out.boolean("IsTruncated", self.is_truncated);
        for entry in &self.contents {
            write_object_entry(out, entry, self.url_encoded());
        }
        write_common_prefixes(out, &self.common_prefixes, self.url_encoded());
    }
}

/// GET Bucket (ListObjectsV2, `list-type=2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListObjectsV2 {
    pub page: ListPage,
    /// Opaque tokens: never URL-encoded.
    pub continuation_token: Option<String>,
    pub next_continuation_token: Option<String>,
    pub start_after: Option<String>,
}

/// `KeyCount` is computed: objects plus common prefixes on this page, as S3 counts it.
pub fn list_objects_v2(result: &ListObjectsV2) -> Vec<u8> {
    let page = &result.page;
    let mut out = XmlOut::new();
    out.root("ListBucketResult");
    page.write_head(&mut out, true);
    page.write_limits(&mut out);
    out.number("KeyCount", (page.contents.len() + page.common_prefixes.len()) as u64);
    out.element_opt("ContinuationToken", result.continuation_token.as_deref());
    out.element_opt("NextContinuationToken", result.next_continuation_token.as_deref());
    if let Some(start_after) = &result.start_after {
        out.name_element("StartAfter", start_after, page.url_encoded());
    }
    page.write_entries(&mut out);
    out.end("ListBucketResult");
    out.finish()
}

/// GET Bucket (ListObjects, version 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListObjectsV1 {
    pub page: ListPage,
    /// Written even when empty, as S3 does.
    pub marker: String,
    /// S3 returns it only when a delimiter was given and the page is truncated; the caller decides.
    pub next_marker: Option<String>,
}

pub fn list_objects_v1(result: &ListObjectsV1) -> Vec<u8> {
    let page = &result.page;
    let mut out = XmlOut::new();
    out.root("ListBucketResult");
    page.write_head(&mut out, false);
    out.name_element("Marker", &result.marker, page.url_encoded());
    if let Some(next_marker) = &result.next_marker {
        out.name_element("NextMarker", next_marker, page.url_encoded());
    }
    page.write_limits(&mut out);
    page.write_entries(&mut out);
    out.end("ListBucketResult");
    out.finish()
}

// ---------------------------------------------------------------------------------------------
// ListObjectVersions

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionEntry {
    pub key: String,
    /// `null` for objects written while versioning was never enabled.
    pub version_id: String,
    pub is_latest: bool,
    pub last_modified_ms: u64,
    /// Without quotes.
    pub etag: String,
    pub size_bytes: u64,
    pub storage_class: &'static str,
    pub owner: Owner,
    pub checksum_algorithm: Option<&'static str>,
    pub checksum_type: Option<ChecksumType>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteMarkerEntry {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub last_modified_ms: u64,
    pub owner: Owner,
}

/// Versions and delete markers come interleaved, in key then version order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionListEntry {
    Version(VersionEntry),
    DeleteMarker(DeleteMarkerEntry),
}

/// GET Bucket versions (ListObjectVersions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListVersions {
    pub bucket: String,
    pub prefix: String,
    /// Both written even when empty, as S3 does.
    pub key_marker: String,
    pub version_id_marker: String,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
    pub max_keys: u32,
    pub delimiter: Option<String>,
    pub encoding_type: Option<EncodingType>,
    pub is_truncated: bool,
    pub entries: Vec<VersionListEntry>,
    pub common_prefixes: Vec<String>,
}

pub fn list_versions(result: &ListVersions) -> Vec<u8> {
    let url_encoded = result.encoding_type.is_some();
    let mut out = XmlOut::new();
    out.root("ListVersionsResult");
    out.element("Name", &result.bucket);
    out.name_element("Prefix", &result.prefix, url_encoded);
    out.name_element("KeyMarker", &result.key_marker, url_encoded);
    out.element("VersionIdMarker", &result.version_id_marker);
    if let Some(next_key_marker) = &result.next_key_marker {
        out.name_element("NextKeyMarker", next_key_marker, url_encoded);
    }
    out.element_opt("NextVersionIdMarker", result.next_version_id_marker.as_deref());
    out.number("MaxKeys", u64::from(result.max_keys));
    if let Some(delimiter) = &result.delimiter {
        out.name_element("Delimiter", delimiter, url_encoded);
    }
    out.element_opt("EncodingType", result.encoding_type.as_ref().map(EncodingType::as_str));
    out.boolean("IsTruncated", result.is_truncated);
    for entry in &result.entries {
        match entry {
            VersionListEntry::Version(version) => write_version(&mut out, version, url_encoded),
            VersionListEntry::DeleteMarker(marker) => write_delete_marker(&mut out, marker, url_encoded),
        }
    }
    write_common_prefixes(&mut out, &result.common_prefixes, url_encoded);
    out.end("ListVersionsResult");
    out.finish()
}

fn write_version(out: &mut XmlOut, version: &VersionEntry, url_encoded: bool) {
    out.start("Version");
    out.name_element("Key", &version.key, url_encoded);
    out.element("VersionId", &version.version_id);
    out.boolean("IsLatest", version.is_latest);
    out.timestamp("LastModified", version.last_modified_ms);
    out.etag(&version.etag);
    out.element_opt("ChecksumAlgorithm", version.checksum_algorithm);
    out.element_opt("ChecksumType", version.checksum_type.as_ref().map(ChecksumType::as_str));
    out.number("Size", version.size_bytes);
    out.element("StorageClass", version.storage_class);
    write_owner(out, "Owner", &version.owner);
    out.end("Version");
}

fn write_delete_marker(out: &mut XmlOut, marker: &DeleteMarkerEntry, url_encoded: bool) {
    out.start("DeleteMarker");
    out.name_element("Key", &marker.key, url_encoded);
    out.element("VersionId", &marker.version_id);
    out.boolean("IsLatest", marker.is_latest);
    out.timestamp("LastModified", marker.last_modified_ms);
    write_owner(out, "Owner", &marker.owner);
    out.end("DeleteMarker");
}

// ---------------------------------------------------------------------------------------------
// Bucket configuration

/// GET Bucket location. S3 answers an empty element for us-east-1 (and for an empty region).
pub fn location_constraint(region: &str) -> Vec<u8> {
    let mut out = XmlOut::new();
    if region.is_empty() || region == "us-east-1" {
        out.empty_root("LocationConstraint");
    } else {
        out.root("LocationConstraint");
        out.text(region);
        out.end("LocationConstraint");
    }
    out.finish()
}

/// `Status` of a bucket's versioning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersioningStatus {
    Enabled,
    Suspended,
}

impl VersioningStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            VersioningStatus::Enabled => "Enabled",
            VersioningStatus::Suspended => "Suspended",
        }
    }
}

/// GET Bucket versioning. `None` (versioning never enabled) is an empty element, as S3 answers.
pub fn versioning_configuration(status: Option<VersioningStatus>) -> Vec<u8> {
    let mut out = XmlOut::new();
    match status {
        None => out.empty_root("VersioningConfiguration"),
        Some(status) => {
            out.root("VersioningConfiguration");
            out.element("Status", status.as_str());
            out.end("VersioningConfiguration");
        }
    }
    out.finish()
}

/// GET Bucket/Object acl: the owner and the grants. Grants are listed groups first, then users
/// by canonical ID, each in the order given, as Ceph RGW lists them (AWS puts the owner first;
/// no client depends on the order, but Ceph's s3-tests compare grant lists in order).
pub fn access_control_policy(owner: &Owner, grants: &[crate::acl::Grant]) -> Vec<u8> {
    use crate::acl::Grantee;
    const XSI_NAMESPACE: (&str, &str) = ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance");
    let mut listed: Vec<&crate::acl::Grant> = grants.iter().collect();
    // A stable sort: groups (no ID) before users, users by ID, equal IDs as given.
    listed.sort_by_key(|g| match &g.grantee {
        Grantee::User(id) => Some(id.as_str()),
        _ => None,
    });
    let mut out = XmlOut::new();
    out.root("AccessControlPolicy");
    write_owner(&mut out, "Owner", owner);
    out.start("AccessControlList");
    for grant in listed {
        out.start("Grant");
        match &grant.grantee {
            // A user's display name is its canonical ID here (the user table has no other).
            Grantee::User(id) => {
                out.start_with("Grantee", &[XSI_NAMESPACE, ("xsi:type", "CanonicalUser")]);
                out.element("ID", id);
                out.element("DisplayName", id);
            }
            group => {
                out.start_with("Grantee", &[XSI_NAMESPACE, ("xsi:type", "Group")]);
                out.element("URI", group.group_uri().unwrap_or_default());
            }
        }
        out.end("Grantee");
        out.element("Permission", grant.permission.as_str());
        out.end("Grant");
    }
    out.end("AccessControlList");
    out.end("AccessControlPolicy");
    out.finish()
}

/// GetBucketLifecycleConfiguration: the rules as they were given (a rule's objects named in
/// the form it used: `<Prefix>`, `<Filter>`, or neither).
pub fn lifecycle_configuration(rules: &[crate::lifecycle::Rule]) -> Vec<u8> {
    use crate::lifecycle::{Expiration, FilterForm};
    let mut out = XmlOut::new();
    out.root("LifecycleConfiguration");
    for rule in rules {
        out.start("Rule");
        out.element("ID", &rule.id);
        match rule.form {
            FilterForm::Legacy => out.element("Prefix", rule.filter.prefix.as_deref().unwrap_or("")),
            FilterForm::None => {}
            FilterForm::Filter => write_lifecycle_filter(&mut out, &rule.filter),
        }
        out.element("Status", if rule.enabled { "Enabled" } else { "Disabled" });
        if rule.expiration.is_some() || rule.expired_object_delete_marker.is_some() {
            out.start("Expiration");
            match rule.expiration {
                Some(Expiration::Days(days)) => out.number("Days", days.into()),
                Some(Expiration::DateMs(ms)) => out.element("Date", &super::out::format_timestamp_ms(ms)),
                None => {}
            }
            if let Some(marker) = rule.expired_object_delete_marker {
                out.element("ExpiredObjectDeleteMarker", if marker { "true" } else { "false" });
            }
            out.end("Expiration");
        }
        if rule.noncurrent_days.is_some() || rule.newer_noncurrent_versions.is_some() {
            out.start("NoncurrentVersionExpiration");
            if let Some(days) = rule.noncurrent_days {
                out.number("NoncurrentDays", days.into());
            }
            if let Some(n) = rule.newer_noncurrent_versions {
                out.number("NewerNoncurrentVersions", n.into());
            }
            out.end("NoncurrentVersionExpiration");
        }
        if let Some(days) = rule.abort_incomplete_upload_days {
            out.start("AbortIncompleteMultipartUpload");
            out.number("DaysAfterInitiation", days.into());
            out.end("AbortIncompleteMultipartUpload");
        }
        out.end("Rule");
    }
    out.end("LifecycleConfiguration");
    out.finish()
}

fn write_lifecycle_filter(out: &mut XmlOut, filter: &crate::lifecycle::Filter) {
    let conditions = filter.prefix.is_some() as usize
        + filter.tags.len()
        + filter.size_greater_than.is_some() as usize
        + filter.size_less_than.is_some() as usize;
    out.start("Filter");
    if conditions > 1 {
        out.start("And");
    }
    if let Some(prefix) = &filter.prefix {
        out.element("Prefix", prefix);
    }
    for (key, value) in &filter.tags {
        out.start("Tag");
        out.element("Key", key);
        out.element("Value", value);
        out.end("Tag");
    }
    if let Some(gt) = filter.size_greater_than {
        out.number("ObjectSizeGreaterThan", gt);
    }
    if let Some(lt) = filter.size_less_than {
        out.number("ObjectSizeLessThan", lt);
    }
    if conditions > 1 {
        out.end("And");
    }
    out.end("Filter");
}

/// GetPublicAccessBlock.
pub fn public_access_block(b: &crate::acl::PublicAccessBlock) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("PublicAccessBlockConfiguration");
    let flag = |v: bool| if v { "true" } else { "false" };
    out.element("BlockPublicAcls", flag(b.block_public_acls));
    out.element("IgnorePublicAcls", flag(b.ignore_public_acls));
    out.element("BlockPublicPolicy", flag(b.block_public_policy));
    out.element("RestrictPublicBuckets", flag(b.restrict_public_buckets));
    out.end("PublicAccessBlockConfiguration");
    out.finish()
}

/// GetBucketOwnershipControls.
pub fn ownership_controls(ownership: crate::acl::ObjectOwnership) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("OwnershipControls");
    out.start("Rule");
    out.element("ObjectOwnership", ownership.as_str());
    out.end("Rule");
    out.end("OwnershipControls");
    out.finish()
}

/// GetBucketEncryption.
pub fn bucket_encryption(default: &crate::sse::BucketDefault) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("ServerSideEncryptionConfiguration");
    out.start("Rule");
    out.start("ApplyServerSideEncryptionByDefault");
    match &default.kms_key_id {
        None => out.element("SSEAlgorithm", crate::sse::ALGORITHM),
        Some(id) => {
            out.element("SSEAlgorithm", crate::sse::KMS);
            out.element("KMSMasterKeyID", id);
        }
    }
    out.end("ApplyServerSideEncryptionByDefault");
    out.element("BucketKeyEnabled", if default.bucket_key_enabled { "true" } else { "false" });
    out.end("Rule");
    out.end("ServerSideEncryptionConfiguration");
    out.finish()
}

/// GetBucketPolicyStatus.
pub fn policy_status(is_public: bool) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("PolicyStatus");
    out.element("IsPublic", if is_public { "true" } else { "false" });
    out.end("PolicyStatus");
    out.finish()
}

/// GET Object/Bucket tagging: the tag set, in the order given (stored sorted by key).
pub fn tagging(tags: &[(String, String)]) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("Tagging");
    out.start("TagSet");
    for (key, value) in tags {
        out.start("Tag");
        out.element("Key", key);
        out.element("Value", value);
        out.end("Tag");
    }
    out.end("TagSet");
    out.end("Tagging");
    out.finish()
}

/// An empty configuration document: GET Bucket logging, notification or accelerate of a bucket
/// that has none set (S3 answers these with an empty element, not an error).
pub fn empty_configuration(root: &'static str) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.empty_root(root);
    out.finish()
}

/// GET Bucket requestPayment: the bucket's owner pays, as for every bucket here.
pub fn request_payment_bucket_owner() -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("RequestPaymentConfiguration");
    out.element("Payer", "BucketOwner");
    out.end("RequestPaymentConfiguration");
    out.finish()
}

/// Which attributes GetObjectAttributes was asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectAttributes {
    pub etag: bool,
    pub checksum: bool,
    pub parts: bool,
    pub storage_class: bool,
    pub size: bool,
}

/// An object as GetObjectAttributes describes it.
pub struct ObjectAttributesResult<'a> {
    /// Without quotes.
    pub etag: String,
    pub checksums: Checksums,
    /// `FULL_OBJECT` or `COMPOSITE`, when the object has a checksum.
    pub checksum_type: Option<ChecksumType>,
    pub size: u64,
    /// A multipart object's part sizes (none for a single PUT).
    pub part_sizes: &'a [u64],
    /// Its parts' checksums, in part order (none if it does not keep them).
    pub part_checksums: Vec<Checksums>,
    pub part_number_marker: usize,
    pub max_parts: usize,
}

/// GET Object `?attributes`.
pub fn object_attributes(wanted: &ObjectAttributes, r: &ObjectAttributesResult<'_>) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("GetObjectAttributesResponse");
    if wanted.etag {
        out.element("ETag", &r.etag);
    }
    if wanted.checksum && r.checksums != Checksums::default() {
        out.start("Checksum");
        r.checksums.write(&mut out);
        out.element_opt("ChecksumType", r.checksum_type.as_ref().map(ChecksumType::as_str));
        out.end("Checksum");
    }
    if wanted.parts && !r.part_sizes.is_empty() {
        let total = r.part_sizes.len();
        let page: Vec<(usize, u64)> =
            r.part_sizes.iter().copied().enumerate().map(|(i, size)| (i + 1, size)).filter(|(n, _)| *n > r.part_number_marker).take(r.max_parts).collect();
        let next = page.last().map_or(r.part_number_marker, |(n, _)| *n);
        out.start("ObjectParts");
        // The SDKs' `TotalPartsCount` is `PartsCount` on the wire.
        out.element("PartsCount", &total.to_string());
        out.element("PartNumberMarker", &r.part_number_marker.to_string());
        out.element("NextPartNumberMarker", &next.to_string());
        out.element("MaxParts", &r.max_parts.to_string());
        out.element("IsTruncated", if next < total { "true" } else { "false" });
        for (n, size) in page {
            out.start("Part");
            out.element("PartNumber", &n.to_string());
            out.element("Size", &size.to_string());
            if let Some(c) = r.part_checksums.get(n - 1) {
                c.write(&mut out);
            }
            out.end("Part");
        }
        out.end("ObjectParts");
    }
    if wanted.storage_class {
        out.element("StorageClass", "STANDARD");
    }
    if wanted.size {
        out.element("ObjectSize", &r.size.to_string());
    }
    out.end("GetObjectAttributesResponse");
    out.finish()
}

/// GET Bucket cors: the rules as stored.
pub fn cors_configuration(rules: &[crate::cors::CorsRule]) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("CORSConfiguration");
    for rule in rules {
        out.start("CORSRule");
        out.element_opt("ID", rule.id.as_deref());
        for (name, values) in [
            ("AllowedHeader", &rule.allowed_headers),
            ("AllowedMethod", &rule.allowed_methods),
            ("AllowedOrigin", &rule.allowed_origins),
            ("ExposeHeader", &rule.expose_headers),
        ] {
            for v in values {
                out.element(name, v);
            }
        }
        if let Some(age) = rule.max_age_seconds {
            out.element("MaxAgeSeconds", &age.to_string());
        }
        out.end("CORSRule");
    }
    out.end("CORSConfiguration");
    out.finish()
}

/// PostObject with `success_action_status=201`. `etag` is sent quoted, as S3 writes it here,
/// and the root has no namespace, as in S3's own example (clients find `Key` by its bare name).
pub fn post_response(location: &str, bucket: &str, key: &str, etag: &str) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.start("PostResponse");
    out.element("Location", location);
    out.element("Bucket", bucket);
    out.element("Key", key);
    out.element("ETag", etag);
    out.end("PostResponse");
    out.finish()
}

// ---------------------------------------------------------------------------------------------
// Copy

/// The result of CopyObject and UploadPartCopy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyResult {
    pub last_modified_ms: u64,
    /// Without quotes.
    pub etag: String,
    /// CopyObject only; S3 does not write it in `CopyPartResult`.
    pub checksum_type: Option<ChecksumType>,
    pub checksums: Checksums,
}

pub fn copy_object_result(result: &CopyResult) -> Vec<u8> {
    write_copy_result("CopyObjectResult", result)
}

pub fn copy_part_result(result: &CopyResult) -> Vec<u8> {
    write_copy_result("CopyPartResult", result)
}

fn write_copy_result(root: &'static str, result: &CopyResult) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root(root);
    out.timestamp("LastModified", result.last_modified_ms);
    out.etag(&result.etag);
    out.element_opt("ChecksumType", result.checksum_type.as_ref().map(ChecksumType::as_str));
    result.checksums.write(&mut out);
    out.end(root);
    out.finish()
}

// ---------------------------------------------------------------------------------------------
// Multipart uploads

/// POST Object `?uploads` (CreateMultipartUpload).
pub fn initiate_multipart_upload_result(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("InitiateMultipartUploadResult");
    out.element("Bucket", bucket);
    out.element("Key", key);
    out.element("UploadId", upload_id);
    out.end("InitiateMultipartUploadResult");
    out.finish()
}

/// POST Object `?uploadId=` (CompleteMultipartUpload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompleteMultipartUploadResult {
    /// The object's URL, e.g. `http://host/bucket/key`.
    pub location: String,
    pub bucket: String,
    pub key: String,
    /// Without quotes, e.g. `3858f62230ac3c915f300c664312c11f-9`.
    pub etag: String,
    pub checksums: Checksums,
    pub checksum_type: Option<ChecksumType>,
}

pub fn complete_multipart_upload_result(result: &CompleteMultipartUploadResult) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("CompleteMultipartUploadResult");
    out.element("Location", &result.location);
    out.element("Bucket", &result.bucket);
    out.element("Key", &result.key);
    out.etag(&result.etag);
    result.checksums.write(&mut out);
    out.element_opt("ChecksumType", result.checksum_type.as_ref().map(ChecksumType::as_str));
    out.end("CompleteMultipartUploadResult");
    out.finish()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartEntry {
    pub part_number: u32,
    pub last_modified_ms: u64,
    /// Without quotes.
    pub etag: String,
    pub size_bytes: u64,
    pub checksums: Checksums,
}

/// GET Object `?uploadId=` (ListParts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListParts {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub initiator: Owner,
    pub owner: Owner,
    pub storage_class: &'static str,
    pub part_number_marker: u32,
    /// The last part on this page; S3 writes it on every page (0 when there are no parts).
    pub next_part_number_marker: u32,
    pub max_parts: u32,
    pub is_truncated: bool,
    pub checksum_algorithm: Option<&'static str>,
    pub checksum_type: Option<ChecksumType>,
    pub parts: Vec<PartEntry>,
}

pub fn list_parts(result: &ListParts) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("ListPartsResult");
    out.element("Bucket", &result.bucket);
    out.element("Key", &result.key);
    out.element("UploadId", &result.upload_id);
    write_owner(&mut out, "Initiator", &result.initiator);
    write_owner(&mut out, "Owner", &result.owner);
    out.element("StorageClass", result.storage_class);
    out.number("PartNumberMarker", u64::from(result.part_number_marker));
    out.number("NextPartNumberMarker", u64::from(result.next_part_number_marker));
    out.number("MaxParts", u64::from(result.max_parts));
    out.boolean("IsTruncated", result.is_truncated);
    out.element_opt("ChecksumAlgorithm", result.checksum_algorithm);
    out.element_opt("ChecksumType", result.checksum_type.as_ref().map(ChecksumType::as_str));
    for part in &result.parts {
        out.start("Part");
        out.number("PartNumber", u64::from(part.part_number));
        out.timestamp("LastModified", part.last_modified_ms);
        out.etag(&part.etag);
        out.number("Size", part.size_bytes);
        part.checksums.write(&mut out);
        out.end("Part");
    }
    out.end("ListPartsResult");
    out.finish()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadEntry {
    pub key: String,
    pub upload_id: String,
    pub initiator: Owner,
    pub owner: Owner,
    pub storage_class: &'static str,
    pub initiated_ms: u64,
    pub checksum_algorithm: Option<&'static str>,
}

/// GET Bucket `?uploads` (ListMultipartUploads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListMultipartUploads {
    pub bucket: String,
    /// Both written even when empty, as S3 does.
    pub key_marker: String,
    pub upload_id_marker: String,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
    pub prefix: Option<String>,
    pub delimiter: Option<String>,
    pub max_uploads: u32,
    pub encoding_type: Option<EncodingType>,
    pub is_truncated: bool,
    pub uploads: Vec<UploadEntry>,
    pub common_prefixes: Vec<String>,
}

pub fn list_multipart_uploads(result: &ListMultipartUploads) -> Vec<u8> {
    let url_encoded = result.encoding_type.is_some();
    let mut out = XmlOut::new();
    out.root("ListMultipartUploadsResult");
    out.element("Bucket", &result.bucket);
    out.name_element("KeyMarker", &result.key_marker, url_encoded);
    out.element("UploadIdMarker", &result.upload_id_marker);
    if let Some(next_key_marker) = &result.next_key_marker {
        out.name_element("NextKeyMarker", next_key_marker, url_encoded);
    }
    out.element_opt("NextUploadIdMarker", result.next_upload_id_marker.as_deref());
    if let Some(prefix) = &result.prefix {
        out.name_element("Prefix", prefix, url_encoded);
    }
    if let Some(delimiter) = &result.delimiter {
        out.name_element("Delimiter", delimiter, url_encoded);
    }
    out.number("MaxUploads", u64::from(result.max_uploads));
    out.element_opt("EncodingType", result.encoding_type.as_ref().map(EncodingType::as_str));
    out.boolean("IsTruncated", result.is_truncated);
    for upload in &result.uploads {
        write_upload(&mut out, upload, url_encoded);
    }
    write_common_prefixes(&mut out, &result.common_prefixes, url_encoded);
    out.end("ListMultipartUploadsResult");
    out.finish()
}

fn write_upload(out: &mut XmlOut, upload: &UploadEntry, url_encoded: bool) {
    out.start("Upload");
    out.name_element("Key", &upload.key, url_encoded);
    out.element("UploadId", &upload.upload_id);
    write_owner(out, "Initiator", &upload.initiator);
    write_owner(out, "Owner", &upload.owner);
    out.element("StorageClass", upload.storage_class);
    out.timestamp("Initiated", upload.initiated_ms);
    out.element_opt("ChecksumAlgorithm", upload.checksum_algorithm);
    out.end("Upload");
}

// ---------------------------------------------------------------------------------------------
// DeleteObjects

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedObject {
    pub key: String,
    /// The version the request named, echoed back.
    pub version_id: Option<String>,
    /// Whether a delete marker was written, or the version removed was one.
    pub delete_marker: bool,
    /// Set when the delete created a delete marker (versioned buckets).
    pub delete_marker_version_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteFailure {
    pub key: String,
    pub version_id: Option<String>,
    pub code: ErrorCode,
    pub message: String,
}

/// The outcome for one key, in request order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted(DeletedObject),
    Failed(DeleteFailure),
}

/// POST Bucket `?delete` (DeleteObjects). In quiet mode S3 lists only the failures.
pub fn delete_result(outcomes: &[DeleteOutcome], quiet: bool) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("DeleteResult");
    for outcome in outcomes {
        match outcome {
            DeleteOutcome::Deleted(deleted) if !quiet => write_deleted(&mut out, deleted),
            DeleteOutcome::Deleted(_) => {}
            DeleteOutcome::Failed(failure) => write_delete_failure(&mut out, failure),
        }
    }
    out.end("DeleteResult");
    out.finish()
}

fn write_deleted(out: &mut XmlOut, deleted: &DeletedObject) {
    out.start("Deleted");
    out.element("Key", &deleted.key);
    out.element_opt("VersionId", deleted.version_id.as_deref());
    if deleted.delete_marker {
        out.boolean("DeleteMarker", true);
    }
    out.element_opt("DeleteMarkerVersionId", deleted.delete_marker_version_id.as_deref());
    out.end("Deleted");
}

fn write_delete_failure(out: &mut XmlOut, failure: &DeleteFailure) {
    out.start("Error");
    out.element("Key", &failure.key);
    out.element_opt("VersionId", failure.version_id.as_deref());
    out.element("Code", failure.code.as_str());
    out.element("Message", &failure.message);
    out.end("Error");
}

/// GetObjectLockConfiguration.
pub fn object_lock_configuration(config: &crate::object_lock::LockConfiguration) -> Vec<u8> {
    use crate::object_lock::Period;
    let mut out = XmlOut::new();
    out.root("ObjectLockConfiguration");
    out.element("ObjectLockEnabled", "Enabled");
    if let Some(d) = &config.default {
        out.start("Rule");
        out.start("DefaultRetention");
        out.element("Mode", d.mode.as_str());
        match d.period {
            Period::Days(n) => out.number("Days", u64::from(n)),
            Period::Years(n) => out.number("Years", u64::from(n)),
        }
        out.end("DefaultRetention");
        out.end("Rule");
    }
    out.end("ObjectLockConfiguration");
    out.finish()
}

/// GetObjectRetention.
pub fn retention(r: &crate::object_lock::Retention) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("Retention");
    out.element("Mode", r.mode.as_str());
    out.timestamp("RetainUntilDate", r.until_ms);
    out.end("Retention");
    out.finish()
}

/// GetObjectLegalHold.
pub fn legal_hold(on: bool) -> Vec<u8> {
    let mut out = XmlOut::new();
    out.root("LegalHold");
    out.element("Status", if on { "ON" } else { "OFF" });
    out.end("LegalHold");
    out.finish()
}
