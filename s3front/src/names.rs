//! Bucket names, object keys and user metadata: what S3 accepts, checked before any store call.
//!
//! Bucket names follow AWS's rules for general purpose buckets; each rule broken has its own
//! [`BucketRule`] so the message says which. Keys may hold any Unicode text, as in S3 (characters
//! XML 1.0 cannot carry included: see `xml`), up to [`KEY_BYTES_MAX`] bytes.

use std::fmt;

use crate::error::{ErrorCode, S3Error};

pub const BUCKET_NAME_BYTES_MIN: usize = 3;
pub const BUCKET_NAME_BYTES_MAX: usize = 63;
/// Longest key S3 accepts, in UTF-8 bytes.
pub const KEY_BYTES_MAX: usize = 1024;
/// Most user metadata per object: the UTF-8 bytes of every `x-amz-meta-*` name (without that
/// prefix, as AWS counts it; MinIO counts the prefix too) plus every value.
pub const METADATA_BYTES_MAX: usize = 2048;

/// The prefix of user metadata headers, which [`validate_user_metadata`] does not count.
pub const USER_METADATA_PREFIX: &str = "x-amz-meta-";

const BUCKET_PREFIXES_RESERVED: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
const BUCKET_SUFFIXES_RESERVED: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

/// The bucket naming rule a name breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketRule {
    /// Outside `BUCKET_NAME_BYTES_MIN..=BUCKET_NAME_BYTES_MAX`.
    Length {
        length_bytes: usize,
    },
    /// Not a lowercase ASCII letter, digit, `.` or `-`.
    Character {
        found: char,
        index: usize,
    },
    /// Begins or ends with `.` or `-`.
    Boundary,
    /// Two periods in a row.
    AdjacentPeriods,
    /// A dash beside a period (`a.-b`, `a-.b`): each dot-separated label of a DNS name begins
    /// and ends with a letter or digit (virtual-hosted addressing puts the name in DNS).
    DashBesidePeriod,
    /// Four dot-separated groups of digits, like `192.168.5.4`.
    IpAddress,
    ReservedPrefix(&'static str),
    ReservedSuffix(&'static str),
}

/// A name S3 would refuse, saying why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    Bucket { name: String, rule: BucketRule },
    KeyEmpty,
    KeyTooLong { length_bytes: usize },
    MetadataTooLarge { size_bytes: usize },
}

impl NameError {
    pub fn code(&self) -> ErrorCode {
        match self {
            NameError::Bucket { .. } => ErrorCode::InvalidBucketName,
            NameError::KeyEmpty => ErrorCode::InvalidArgument,
            NameError::KeyTooLong { .. } => ErrorCode::KeyTooLongError,
            NameError::MetadataTooLarge { .. } => ErrorCode::MetadataTooLarge,
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Bucket { name, rule } => write!(f, "The specified bucket is not valid: bucket name {name:?} {rule}"),
            NameError::KeyEmpty => f.write_str("The object key must not be empty"),
            NameError::KeyTooLong { length_bytes } => {
                write!(f, "Your key is too long: {length_bytes} bytes, at most {KEY_BYTES_MAX} are allowed")
            }
            NameError::MetadataTooLarge { size_bytes } => write!(
                f,
                "Your metadata headers exceed the maximum allowed metadata size: {size_bytes} bytes, at most {METADATA_BYTES_MAX} are allowed"
            ),
        }
    }
}

impl fmt::Display for BucketRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BucketRule::Length { length_bytes } => write!(
                f,
                "is {length_bytes} characters long; it must be {BUCKET_NAME_BYTES_MIN} to {BUCKET_NAME_BYTES_MAX} characters long"
            ),
            BucketRule::Character { found, index } => {
                write!(f, "contains {found:?} at position {index}; only lowercase letters, digits, periods and hyphens are allowed")
            }
            BucketRule::Boundary => f.write_str("must begin and end with a letter or digit"),
            BucketRule::AdjacentPeriods => f.write_str("must not contain two adjacent periods"),
            BucketRule::DashBesidePeriod => f.write_str("must not have a dash beside a period"),
            BucketRule::IpAddress => f.write_str("must not be formatted as an IP address"),
            BucketRule::ReservedPrefix(prefix) => write!(f, "must not begin with the reserved prefix {prefix:?}"),
            BucketRule::ReservedSuffix(suffix) => write!(f, "must not end with the reserved suffix {suffix:?}"),
        }
    }
}

impl std::error::Error for NameError {}

/// The S3 error for a refused name, with the elements S3 adds (`BucketName`; `Size` and
/// `MaxSizeAllowed` for keys and metadata).
impl From<NameError> for S3Error {
    fn from(error: NameError) -> S3Error {
        let s3_error = S3Error::new(error.code(), error.to_string());
        match &error {
            NameError::Bucket { name, .. } => s3_error.with_extra("BucketName", name.clone()),
            NameError::KeyEmpty => s3_error,
            NameError::KeyTooLong { length_bytes } => {
                s3_error.with_extra("Size", length_bytes.to_string()).with_extra("MaxSizeAllowed", KEY_BYTES_MAX.to_string())
            }
            NameError::MetadataTooLarge { size_bytes } => {
                s3_error.with_extra("Size", size_bytes.to_string()).with_extra("MaxSizeAllowed", METADATA_BYTES_MAX.to_string())
            }
        }
    }
}

/// Checks a general purpose bucket name against AWS's rules, in the order AWS lists them.
pub fn validate_bucket_name(name: &str) -> Result<(), NameError> {
    bucket_rule_broken(name).map_or(Ok(()), |rule| Err(NameError::Bucket { name: name.to_owned(), rule }))
}

fn bucket_rule_broken(name: &str) -> Option<BucketRule> {
    if !(BUCKET_NAME_BYTES_MIN..=BUCKET_NAME_BYTES_MAX).contains(&name.len()) {
        return Some(BucketRule::Length { length_bytes: name.len() });
    }
    let allowed = |ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '.' || ch == '-';
    if let Some((index, found)) = name.char_indices().find(|&(_, ch)| !allowed(ch)) {
        return Some(BucketRule::Character { found, index });
    }
    // Only ASCII from here on, so byte positions are character positions.
    let alphanumeric = |byte: Option<&u8>| byte.is_some_and(u8::is_ascii_alphanumeric);
    if !alphanumeric(name.as_bytes().first()) || !alphanumeric(name.as_bytes().last()) {
        return Some(BucketRule::Boundary);
    }
    if name.contains("..") {
        return Some(BucketRule::AdjacentPeriods);
    }
    if name.contains(".-") || name.contains("-.") {
        return Some(BucketRule::DashBesidePeriod);
    }
    if looks_like_ipv4(name) {
        return Some(BucketRule::IpAddress);
    }
    if let Some(prefix) = BUCKET_PREFIXES_RESERVED.iter().find(|prefix| name.starts_with(*prefix)) {
        return Some(BucketRule::ReservedPrefix(prefix));
    }
    if let Some(suffix) = BUCKET_SUFFIXES_RESERVED.iter().find(|suffix| name.ends_with(*suffix)) {
        return Some(BucketRule::ReservedSuffix(suffix));
    }
    None
}

/// Four groups of one to three digits. Broader than a valid address (`999.1.1.1` counts), since
/// what S3 forbids is the look of one, which would confuse virtual-host addressing.
fn looks_like_ipv4(name: &str) -> bool {
    let groups: Vec<&str> = name.split('.').collect();
    groups.len() == 4 && groups.iter().all(|group| (1..=3).contains(&group.len()) && group.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks an object key: not empty, at most [`KEY_BYTES_MAX`] UTF-8 bytes. S3 accepts every
/// other Unicode string, `.`, `..` and control characters included, and so do we: keys are not
/// file paths here.
pub fn validate_key(key: &str) -> Result<(), NameError> {
    if key.is_empty() {
        return Err(NameError::KeyEmpty);
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(NameError::KeyTooLong { length_bytes: key.len() });
    }
    Ok(())
}

/// Checks user metadata `(name, value)` pairs against [`METADATA_BYTES_MAX`]. Names may be given
/// with or without the `x-amz-meta-` prefix (any case); the prefix is not counted.
pub fn validate_user_metadata(metadata: &[(String, String)]) -> Result<(), NameError> {
    let size_bytes = user_metadata_bytes(metadata);
    if size_bytes > METADATA_BYTES_MAX {
        return Err(NameError::MetadataTooLarge { size_bytes });
    }
    Ok(())
}

/// The size S3 counts for user metadata: name bytes without the prefix plus value bytes.
pub fn user_metadata_bytes(metadata: &[(String, String)]) -> usize {
    metadata.iter().map(|(name, value)| strip_metadata_prefix(name).len() + value.len()).sum()
}

fn strip_metadata_prefix(name: &str) -> &str {
    let prefix_len = USER_METADATA_PREFIX.len();
    match name.get(..prefix_len) {
        Some(head) if head.eq_ignore_ascii_case(USER_METADATA_PREFIX) => &name[prefix_len..],
        _ => name,
    }
}
