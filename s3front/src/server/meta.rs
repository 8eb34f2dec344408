//! What the store keeps beside an object's data: its S3 metadata, encoded compactly as the
//! record's opaque metadata field (engine/docs/format.md leaves it to us).
//!
//! Encoding: a version byte, then fields as `tag (u8) | length (u16 LE) | bytes`.
//!
//! Fields are added without a new version, so an older build may meet tags it does not know.
//! Tags below `TAG_OPTIONAL_MIN` change what the object is or who may touch it (its encryption,
//! its version, its lock): a build that skipped one would serve ciphertext as data, or delete a
//! locked version. So an unknown tag there refuses the object (an error naming it, never a
//! wrong answer); only tags from `TAG_OPTIONAL_MIN` up, for fields whose absence is harmless,
//! are skipped.

/// Encoding version.
const VERSION: u8 = 1;

const TAG_ETAG: u8 = 1;
const TAG_MODIFIED_MS: u8 = 2;
const TAG_CONTENT_TYPE: u8 = 3;
const TAG_HEADER: u8 = 4;
const TAG_USER: u8 = 5;
const TAG_CHECKSUM: u8 = 6;
const TAG_OWNER: u8 = 7;
const TAG_PARTS: u8 = 8;
/// One object tag (`tagging`): a pair, in key order.
const TAG_OBJECT_TAG: u8 = 9;
/// The object's ACL (`acl::encode`), when it is not its owner's full control alone.
const TAG_ACL: u8 = 10;
/// The version's id (`versioning::VersionId`), in a bucket that has versioning.
const TAG_VERSION_ID: u8 = 11;
/// Object Lock retention: the mode (0 GOVERNANCE, 1 COMPLIANCE), then the end in Unix ms.
const TAG_RETENTION: u8 = 12;
/// Object Lock legal hold, present only while on.
const TAG_LEGAL_HOLD: u8 = 13;
/// Server-side encryption: the sealed object key (`sse::Sealed::encode_head`).
const TAG_SSE: u8 = 14;
/// Server-side encryption: segment IVs, in order, 16 bytes each (several fields for many parts).
const TAG_SSE_IVS: u8 = 15;
/// Tags from here up may be skipped by a build that does not know them.
const TAG_OPTIONAL_MIN: u8 = 128;
/// A multipart object's part checksums: raw digests of its checksum's algorithm, in part order
/// (several fields for many parts). Optional: without them only per-part answers lack checksums.
const TAG_PART_CHECKSUMS: u8 = TAG_OPTIONAL_MIN;
/// The multipart upload a completed object came from (optional: a build that skips it only
/// answers a repeated CompleteMultipartUpload NoSuchUpload).
const TAG_UPLOAD_ID: u8 = TAG_OPTIONAL_MIN + 1;

/// Standard headers stored and returned as sent (besides Content-Type).
pub const STORED_HEADERS: [&str; 5] = ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];

/// A standard header's value as stored: `aws-chunked` in Content-Encoding names how the request
/// body was framed, not the object, and is dropped (with the header, if nothing else is left),
/// as S3 does.
fn stored_value(name: &str, value: &str) -> Option<String> {
    if name != "content-encoding" {
        return Some(value.to_string());
    }
    let kept: Vec<&str> = value.split(',').map(str::trim).filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked")).collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Hex MD5 of the data, or `hex-N` for a multipart object (no quotes).
    pub etag: String,
    pub modified_ms: u64,
    pub content_type: Option<String>,
    /// Stored standard headers (`STORED_HEADERS`), lowercase names.
    pub headers: Vec<(String, String)>,
    /// `x-amz-meta-*` without the prefix, lowercase names.
    pub user: Vec<(String, String)>,
    /// (SDK algorithm name, base64 value). A multipart object's value ends in `-N` when it is
    /// composite (`multipart_checksum::kind_of_value`), so no field says its type. An upload's
    /// record keeps its algorithm here with its type (`COMPOSITE`, `FULL_OBJECT`) as the value.
    pub checksums: Vec<(String, String)>,
    /// Access key of the writer (multipart uploads: the initiator).
    pub owner: String,
    /// For a multipart object: each part's size, for `partNumber` reads and part counts.
    pub part_sizes: Vec<u64>,
    /// For a multipart object with a checksum: each part's raw digest, concatenated in part
    /// order (`part_checksum`).
    pub part_checksums: Vec<u8>,
    /// For a multipart object: the id of the upload it was completed from, so that a retried
    /// CompleteMultipartUpload gets the same answer.
    pub upload_id: Option<String>,
    /// The object's tags, sorted by key (`tagging::TagSet`).
    pub tags: Vec<(String, String)>,
    /// The object's grants (`acl`); `None` for the default, its owner's full control, which is
    /// most objects' and costs nothing stored.
    pub acl: Option<Vec<crate::acl::Grant>>,
    /// The version's id, as responses name it; `None` for an object of an unversioned bucket.
    pub version_id: Option<String>,
    /// Object Lock: the version's retention, if it has one.
    pub retention: Option<crate::object_lock::Retention>,
    /// Object Lock: whether a legal hold is on.
    pub legal_hold: bool,
    /// Server-side encryption, if the data is encrypted (`sse`).
    pub sse: Option<crate::sse::Sealed>,
}

fn put_field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("metadata field fits u16 (headers are bounded far below)");
    out.push(tag);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_pair(out: &mut Vec<u8>, tag: u8, name: &str, value: &str) {
    let mut pair = Vec::with_capacity(2 + name.len() + value.len());
    pair.extend_from_slice(&(name.len() as u16).to_le_bytes());
    pair.extend_from_slice(name.as_bytes());
    pair.extend_from_slice(value.as_bytes());
    put_field(out, tag, &pair);
}

fn split_pair(bytes: &[u8]) -> Option<(String, String)> {
    let n = u16::from_le_bytes([*bytes.first()?, *bytes.get(1)?]) as usize;
    let rest = bytes.get(2..)?;
    let (name, value) = (rest.get(..n)?, rest.get(n..)?);
    Some((String::from_utf8(name.to_vec()).ok()?, String::from_utf8(value.to_vec()).ok()?))
}

impl ObjectMeta {
    /// The object's checksum: its algorithm and base64 value (`-N` when composite).
    pub fn checksum(&self) -> Option<(crate::checksum::ChecksumAlgorithm, &str)> {
        self.checksums.iter().find_map(|(a, v)| Some((crate::checksum::ChecksumAlgorithm::from_sdk_name(a)?, v.as_str())).filter(|(_, v)| !v.is_empty()))
    }

    /// Part `number`'s checksum (base64), if the object keeps its parts' checksums.
    pub fn part_checksum(&self, number: usize) -> Option<(crate::checksum::ChecksumAlgorithm, String)> {
        use base64::Engine as _;
        let (algorithm, _) = self.checksum()?;
        let size = algorithm.digest_size_bytes();
        let raw = self.part_checksums.get(number.checked_sub(1)? * size..number * size)?;
        Some((algorithm, base64::engine::general_purpose::STANDARD.encode(raw)))
    }

    /// Whether the object's ACL lets `requester` (`None`: anonymous) do what `wanted` allows.
    /// With `ignore_public` (the bucket's `IgnorePublicAcls`), grants to everyone and to every
    /// signed user count for nothing.
    pub fn allows(&self, requester: Option<&str>, wanted: crate::acl::Permission, ignore_public: bool) -> bool {
        match &self.acl {
            None => !self.owner.is_empty() && requester == Some(self.owner.as_str()),
            Some(grants) => crate::acl::allows_unless_public(grants, &self.owner, requester, wanted, ignore_public),
        }
    }

    /// The object's grants, as GetObjectAcl lists them.
    pub fn grants(&self) -> Vec<crate::acl::Grant> {
        match &self.acl {
            None => crate::acl::private(&self.owner),
            Some(grants) => grants.clone(),
        }
    }

    /// Sets the object's grants, stored only when they differ from the default.
    pub fn set_grants(&mut self, grants: Vec<crate::acl::Grant>) {
        self.acl = (grants != crate::acl::private(&self.owner)).then_some(grants);
    }

    /// What an upload sets, from a PUT's headers or a form's fields: its user metadata
    /// (`x-amz-meta-*` without the prefix, checked against S3's size limit), the stored standard
    /// headers and Content-Type as `value_of` gives them, and its tags (read once the user
    /// metadata passed, so an error names the first thing wrong). The ETag comes later.
    pub fn for_upload<'a>(
        user: Vec<(String, String)>,
        value_of: impl Fn(&str) -> Option<&'a str>,
        tags: impl FnOnce() -> Result<Vec<(String, String)>, crate::error::S3Error>,
        owner: &str,
        now_ms: u64,
    ) -> Result<ObjectMeta, crate::error::S3Error> {
        crate::names::validate_user_metadata(&user)?;
        let tags = tags()?;
        Ok(ObjectMeta {
            etag: String::new(),
            modified_ms: now_ms,
            content_type: value_of("content-type").map(str::to_string),
            headers: STORED_HEADERS.iter().filter_map(|h| stored_value(h, value_of(h)?).map(|v| (h.to_string(), v))).collect(),
            user,
            checksums: Vec::new(),
            owner: owner.to_string(),
            part_sizes: Vec::new(),
            part_checksums: Vec::new(),
            upload_id: None,
            tags,
            acl: None,
            version_id: None,
            retention: None,
            legal_hold: false,
            sse: None,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        put_field(&mut out, TAG_ETAG, self.etag.as_bytes());
        put_field(&mut out, TAG_MODIFIED_MS, &self.modified_ms.to_le_bytes());
        if let Some(ct) = &self.content_type {
            put_field(&mut out, TAG_CONTENT_TYPE, ct.as_bytes());
        }
        for (n, v) in &self.headers {
            put_pair(&mut out, TAG_HEADER, n, v);
        }
        for (n, v) in &self.user {
            put_pair(&mut out, TAG_USER, n, v);
        }
        for (n, v) in &self.checksums {
            put_pair(&mut out, TAG_CHECKSUM, n, v);
        }
        for (n, v) in &self.tags {
            put_pair(&mut out, TAG_OBJECT_TAG, n, v);
        }
        put_field(&mut out, TAG_OWNER, self.owner.as_bytes());
        if let Some(grants) = &self.acl {
            put_field(&mut out, TAG_ACL, crate::acl::encode(grants).as_bytes());
        }
        if let Some(id) = &self.version_id {
            put_field(&mut out, TAG_VERSION_ID, id.as_bytes());
        }
        if let Some(r) = &self.retention {
            let mut field = vec![(r.mode == crate::object_lock::Mode::Compliance) as u8];
            field.extend_from_slice(&r.until_ms.to_le_bytes());
            put_field(&mut out, TAG_RETENTION, &field);
        }
        if self.legal_hold {
            put_field(&mut out, TAG_LEGAL_HOLD, &[1]);
        }
        if !self.part_sizes.is_empty() {
            let sizes: Vec<u8> = self.part_sizes.iter().flat_map(|s| s.to_le_bytes()).collect();
            // 10,000 parts need 80,000 bytes: more than one field holds.
            for piece in sizes.chunks(8 * 8000) {
                put_field(&mut out, TAG_PARTS, piece);
            }
        }
        // 10,000 SHA-256 digests are 320,000 bytes: several fields, each whole digests.
        for piece in self.part_checksums.chunks(32 * 2000) {
            put_field(&mut out, TAG_PART_CHECKSUMS, piece);
        }
        if let Some(id) = &self.upload_id {
            put_field(&mut out, TAG_UPLOAD_ID, id.as_bytes());
        }
        if let Some(sse) = &self.sse {
            put_field(&mut out, TAG_SSE, &sse.encode_head());
            let ivs: Vec<u8> = sse.ivs.iter().flatten().copied().collect();
            for piece in ivs.chunks(crate::sse::IV_BYTES * 4000) {
                put_field(&mut out, TAG_SSE_IVS, piece);
            }
        }
        out
    }

    /// Decodes what `encode` wrote; `None` for bytes it did not write (a checksummed record
    /// holds them, so that means a bug, reported as an internal error) or holding a field below
    /// `TAG_OPTIONAL_MIN` that this build does not know (written by a newer one).
    pub fn decode(bytes: &[u8]) -> Option<ObjectMeta> {
        if bytes.first() != Some(&VERSION) {
            return None;
        }
        let mut m = ObjectMeta::default();
        let mut at = 1;
        while at < bytes.len() {
            let tag = bytes[at];
            let len = u16::from_le_bytes([*bytes.get(at + 1)?, *bytes.get(at + 2)?]) as usize;
            let field = bytes.get(at + 3..at + 3 + len)?;
            at += 3 + len;
            let text = || String::from_utf8(field.to_vec()).ok();
            match tag {
                TAG_ETAG => m.etag = text()?,
                TAG_MODIFIED_MS => m.modified_ms = u64::from_le_bytes(field.try_into().ok()?),
                TAG_CONTENT_TYPE => m.content_type = Some(text()?),
                TAG_HEADER => m.headers.push(split_pair(field)?),
                TAG_USER => m.user.push(split_pair(field)?),
                TAG_CHECKSUM => m.checksums.push(split_pair(field)?),
                TAG_OBJECT_TAG => m.tags.push(split_pair(field)?),
                TAG_OWNER => m.owner = text()?,
                TAG_ACL => m.acl = Some(crate::acl::decode(&text()?)?),
                TAG_VERSION_ID => m.version_id = Some(text()?),
                TAG_RETENTION => {
                    let (&mode, until) = field.split_first()?;
                    let mode = if mode == 1 { crate::object_lock::Mode::Compliance } else { crate::object_lock::Mode::Governance };
                    m.retention = Some(crate::object_lock::Retention { mode, until_ms: u64::from_le_bytes(until.try_into().ok()?) });
                }
                TAG_LEGAL_HOLD => m.legal_hold = true,
                TAG_SSE => m.sse = Some(crate::sse::Sealed::decode_head(field)?),
                TAG_SSE_IVS => {
                    let sse = m.sse.as_mut()?;
                    sse.ivs.extend(field.chunks_exact(crate::sse::IV_BYTES).map(|c| <[u8; crate::sse::IV_BYTES]>::try_from(c).expect("16 bytes")));
                }
                TAG_PARTS => m.part_sizes.extend(field.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))),
                TAG_PART_CHECKSUMS => m.part_checksums.extend_from_slice(field),
                TAG_UPLOAD_ID => m.upload_id = Some(text()?),
                // Optional fields this build does not know (the known ones matched above).
                t if t >= TAG_OPTIONAL_MIN => {}
                _ => return None,
            }
        }
        Some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = ObjectMeta {
            etag: "0123abcd-3".into(),
            modified_ms: 1_700_000_000_123,
            content_type: Some("text/plain".into()),
            headers: vec![("cache-control".into(), "no-cache".into())],
            user: vec![("a".into(), "b c".into()), ("empty".into(), String::new())],
            checksums: vec![("CRC32".into(), "y/Q5Jg==".into())],
            owner: "AKIA".into(),
            part_sizes: (0..10_000).collect(),
            part_checksums: (0..10_000u32 * 32).map(|i| (i % 253) as u8).collect(),
            upload_id: Some("VXBsb2FkIElE".into()),
            tags: vec![("k".into(), String::new()), ("名".into(), "値 v".into())],
            acl: Some(vec![crate::acl::Grant::new(crate::acl::Grantee::AllUsers, crate::acl::Permission::Read)]),
            version_id: Some("0123456789abcdef".into()),
            retention: Some(crate::object_lock::Retention { mode: crate::object_lock::Mode::Compliance, until_ms: 1_900_000_000_000 }),
            legal_hold: true,
            sse: Some({
                let master = crate::sse::MasterKey::from_bytes([5; 32]);
                let (mut s, _) = crate::sse::Sealed::new(crate::sse::Kind::Customer, master.kek(), "DWygnHRtgiJ77HCm+1rvHw==".into()).expect("sealed");
                s.ivs = (0..10_000u32).map(|i| [(i % 251) as u8; 16]).collect();
                s
            }),
        };
        assert_eq!(ObjectMeta::decode(&m.encode()), Some(m.clone()));
        let explicit_none = ObjectMeta { acl: Some(Vec::new()), ..m.clone() };
        assert_eq!(ObjectMeta::decode(&explicit_none.encode()), Some(explicit_none));
        let default = ObjectMeta { acl: None, ..m };
        assert_eq!(ObjectMeta::decode(&default.encode()), Some(default));
        assert_eq!(ObjectMeta::decode(&[9, 1, 2]), None);
    }

    #[test]
    fn aws_chunked_is_not_the_objects_encoding() {
        assert_eq!(stored_value("content-encoding", "gzip, aws-chunked").as_deref(), Some("gzip"));
        assert_eq!(stored_value("content-encoding", "aws-chunked,gzip,br").as_deref(), Some("gzip, br"));
        assert_eq!(stored_value("content-encoding", "aws-chunked"), None);
        assert_eq!(stored_value("content-encoding", "gzip").as_deref(), Some("gzip"));
        assert_eq!(stored_value("cache-control", "aws-chunked").as_deref(), Some("aws-chunked"));
    }

    #[test]
    fn unknown_fields_are_skipped_only_when_optional() {
        let m = ObjectMeta { etag: "e".into(), modified_ms: 7, ..Default::default() };
        let with = |tag: u8| {
            let mut bytes = m.encode();
            put_field(&mut bytes, tag, b"from a newer build");
            ObjectMeta::decode(&bytes)
        };
        assert_eq!(with(TAG_UPLOAD_ID + 1), Some(m.clone()), "the next optional tag");
        assert_eq!(with(u8::MAX), Some(m.clone()));
        // The next essential tag a newer build might add: refused, not silently dropped.
        assert_eq!(with(TAG_SSE_IVS + 1), None);
        assert_eq!(with(TAG_OPTIONAL_MIN - 1), None);
    }
}
