//! Object and bucket tags: the `x-amz-tagging` header's form, and the limits S3 puts on a tag
//! set. Sans-IO: text in, a checked tag set or an `InvalidTag` error out. The XML form of a tag
//! set is read in `xml::requests` and written in `xml::responses`.

use std::fmt;

use percent_encoding::percent_decode_str;

use crate::error::{ErrorCode, S3Error};

/// Most tags on one object, as S3 allows.
pub const OBJECT_TAGS_MAX: usize = 10;
/// Most tags on one bucket, as S3 allows.
pub const BUCKET_TAGS_MAX: usize = 50;
/// Longest tag key, in Unicode characters (S3 counts characters, not bytes).
pub const TAG_KEY_CHARS_MAX: usize = 128;
/// Longest tag value, in Unicode characters.
pub const TAG_VALUE_CHARS_MAX: usize = 256;
/// Longest `x-amz-tagging` header we decode: `OBJECT_TAGS_MAX` pairs at their longest, every
/// character a 4-byte one written as 12 bytes of `%XX`, with `=` and `&` between.
pub const TAGGING_HEADER_BYTES_MAX: usize = OBJECT_TAGS_MAX * ((TAG_KEY_CHARS_MAX + TAG_VALUE_CHARS_MAX) * 12 + 2);

/// (key, value) pairs, sorted by key, keys unique: the form we store and answer with (S3 and
/// Ceph answer in key order, whatever order the tags were sent in).
pub type TagSet = Vec<(String, String)>;

/// A tag set S3 would refuse, saying why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagError {
    TooMany { count: usize, max: usize },
    KeyEmpty,
    KeyTooLong { key: String, chars: usize },
    ValueTooLong { key: String, chars: usize },
    DuplicateKey { key: String },
    /// The header is not `key=value&...` in URL encoding (bad `%XX`, or not UTF-8).
    HeaderEncoding,
    HeaderTooLong { bytes: usize },
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagError::TooMany { count, max } => write!(f, "{count} tags were given; at most {max} are allowed"),
            TagError::KeyEmpty => write!(f, "a tag key must not be empty"),
            TagError::KeyTooLong { key, chars } => {
                write!(f, "the tag key {key:?} has {chars} characters; at most {TAG_KEY_CHARS_MAX} are allowed")
            }
            TagError::ValueTooLong { key, chars } => {
                write!(f, "the value of tag {key:?} has {chars} characters; at most {TAG_VALUE_CHARS_MAX} are allowed")
            }
            TagError::DuplicateKey { key } => write!(f, "Cannot provide multiple Tags with the same key: {key:?}"),
            TagError::HeaderEncoding => write!(f, "x-amz-tagging must be URL-encoded key=value pairs joined by '&'"),
            TagError::HeaderTooLong { bytes } => {
                write!(f, "x-amz-tagging is {bytes} bytes; at most {TAGGING_HEADER_BYTES_MAX} are decoded")
            }
        }
    }
}

impl From<TagError> for S3Error {
    fn from(e: TagError) -> S3Error {
        S3Error::new(ErrorCode::InvalidTag, e.to_string())
    }
}

/// Checks `tags` against S3's limits (`max` tags: `OBJECT_TAGS_MAX` or `BUCKET_TAGS_MAX`) and
/// returns them sorted by key.
pub fn checked(mut tags: Vec<(String, String)>, max: usize) -> Result<TagSet, TagError> {
    if tags.len() > max {
        return Err(TagError::TooMany { count: tags.len(), max });
    }
    for (k, v) in &tags {
        let key_chars = k.chars().count();
        if key_chars == 0 {
            return Err(TagError::KeyEmpty);
        }
        if key_chars > TAG_KEY_CHARS_MAX {
            return Err(TagError::KeyTooLong { key: k.clone(), chars: key_chars });
        }
        let value_chars = v.chars().count();
        if value_chars > TAG_VALUE_CHARS_MAX {
            return Err(TagError::ValueTooLong { key: k.clone(), chars: value_chars });
        }
    }
    tags.sort();
    if let Some(pair) = tags.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(TagError::DuplicateKey { key: pair[0].0.clone() });
    }
    Ok(tags)
}

/// The `x-amz-tagging` header of PutObject, CopyObject (with `x-amz-tagging-directive:
/// REPLACE`) and CreateMultipartUpload: `k1=v1&k2=v2` in URL encoding (`+` is a space, as in a
/// form; a key without `=` has an empty value), checked as an object's tag set.
pub fn parse_header(value: &str) -> Result<TagSet, TagError> {
    if value.len() > TAGGING_HEADER_BYTES_MAX {
        return Err(TagError::HeaderTooLong { bytes: value.len() });
    }
    let mut tags = Vec::new();
    for pair in value.split('&').filter(|pair| !pair.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        tags.push((decode_form(k)?, decode_form(v)?));
        // Refused below anyway; stop decoding a header that lists thousands.
        if tags.len() > OBJECT_TAGS_MAX {
            break;
        }
    }
    checked(tags, OBJECT_TAGS_MAX)
}

fn decode_form(text: &str) -> Result<String, TagError> {
    let spaced = text.replace('+', " ");
    let bytes: Vec<u8> = percent_decode_str(&spaced).collect();
    // `percent_decode` passes a malformed escape (`%zz`, a lone `%`) through as it is: refuse it.
    if spaced.as_bytes().iter().enumerate().any(|(i, &b)| {
        b == b'%' && !(spaced.as_bytes().get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)))
    }) {
        return Err(TagError::HeaderEncoding);
    }
    String::from_utf8(bytes).map_err(|_| TagError::HeaderEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn header_forms() {
        // Ceph's s3-tests send this one: a key without a value, answered in key order.
        assert_eq!(parse_header("foo=bar&bar"), Ok(pairs(&[("bar", ""), ("foo", "bar")])));
        assert_eq!(parse_header("a%20b=c+d&e=%E4%BD%A0"), Ok(pairs(&[("a b", "c d"), ("e", "你")])));
        assert_eq!(parse_header(""), Ok(Vec::new()));
        assert_eq!(parse_header("k=v%2"), Err(TagError::HeaderEncoding));
        assert_eq!(parse_header("k=%ff"), Err(TagError::HeaderEncoding));
        assert_eq!(parse_header("=v"), Err(TagError::KeyEmpty));
        assert_eq!(parse_header("k=1&k=2"), Err(TagError::DuplicateKey { key: "k".into() }));
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert_eq!(parse_header(&eleven.join("&")), Err(TagError::TooMany { count: 11, max: OBJECT_TAGS_MAX }));
    }

    #[test]
    fn limits_count_characters() {
        let key = "é".repeat(TAG_KEY_CHARS_MAX);
        let value = "€".repeat(TAG_VALUE_CHARS_MAX);
        assert!(checked(vec![(key.clone(), value.clone())], OBJECT_TAGS_MAX).is_ok());
        let long_key = format!("{key}x");
        assert_eq!(
            checked(vec![(long_key.clone(), String::new())], OBJECT_TAGS_MAX),
            Err(TagError::KeyTooLong { key: long_key, chars: TAG_KEY_CHARS_MAX + 1 })
        );
        assert_eq!(
            checked(vec![(key.clone(), format!("{value}x"))], OBJECT_TAGS_MAX),
            Err(TagError::ValueTooLong { key, chars: TAG_VALUE_CHARS_MAX + 1 })
        );
        let fifty: Vec<(String, String)> = (0..BUCKET_TAGS_MAX).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(checked(fifty.clone(), BUCKET_TAGS_MAX).is_ok());
        assert!(matches!(checked(fifty, OBJECT_TAGS_MAX), Err(TagError::TooMany { count: 50, .. })));
    }
}
