//! S3 object versioning, as names (sans-IO): the bucket's state, version ids, and where each
//! version of a key lies in the store.
//!
//! The layout (ARCHITECTURE.md, s3front):
//! - A bucket that never had versioning keeps each object under its own key, as before.
//! - Once versioning is `Enabled` (or later `Suspended`), every write lands in the bucket's
//!   versions namespace, store bucket `"\0v/" + bucket`, under `version_key`: the key escaped
//!   so that no key is a prefix of another's versions, then the version's stamp inverted (the
//!   newest version of a key comes first in the index), then its kind (version or delete
//!   marker, "null" or not). The current version of a key is the first entry under its
//!   `key_prefix`, found in memory; if there is none, the object written before versioning
//!   (under its own key, S3's "null" version) is current. No write ever moves data: an
//!   overwrite adds an entry, a delete adds a marker.
//! - A version id is its stamp in 16 hex digits, or "null".

/// A bucket's versioning state once set (`None` in `BucketInfo`: never set, "unversioned").
pub use crate::xml::responses::VersioningStatus as Versioning;

impl Versioning {
    /// Reads what `as_str` wrote (a stored bucket description).
    pub fn parse(s: &str) -> Option<Versioning> {
        match s {
            "Enabled" => Some(Versioning::Enabled),
            "Suspended" => Some(Versioning::Suspended),
            _ => None,
        }
    }
}

/// A version id as a request names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionId {
    /// The version written while versioning was off or suspended (at most one per key).
    Null,
    Stamp(u64),
}

impl VersionId {
    /// Parses a `versionId`; `None` if it cannot be one of ours (S3: InvalidArgument).
    pub fn parse(s: &str) -> Option<VersionId> {
        if s == "null" {
            return Some(VersionId::Null);
        }
        if s.len() != 16 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(VersionId::Stamp)
    }
}

impl std::fmt::Display for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionId::Null => f.write_str("null"),
            VersionId::Stamp(s) => write!(f, "{s:016x}"),
        }
    }
}

/// The store bucket that holds `bucket`'s versions.
pub fn store_bucket(bucket: &str) -> String {
    format!("\0v/{bucket}")
}

/// Whether a store bucket is a versions namespace (and so not a user's bucket).
pub fn is_versions_bucket(store_bucket: &[u8]) -> bool {
    store_bucket.starts_with(b"\0v/")
}

/// `key` with each NUL written as NUL 0x01, so that `escape(a) + "\0\0"` never starts
/// `escape(b) + "\0\0"` for another key `b` (keys may hold NUL), and order is kept: escaping
/// is byte-wise and the terminator NUL NUL sorts below an escaped NUL.
pub fn escape(key: &str) -> String {
    let mut out = Vec::with_capacity(key.len());
    escape_into(&mut out, key.as_bytes());
    String::from_utf8(out).expect("escaping NUL as NUL 0x01 keeps UTF-8")
}

/// `escape`, byte-wise, appended to `out`: also for a listing cursor past a key (a common
/// prefix's 0xFF stays itself and still sorts above the prefix's keys).
pub fn escape_into(out: &mut Vec<u8>, key: &[u8]) {
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(1);
        }
    }
}

/// Every version of `key` lies under this prefix, newest first.
pub fn key_prefix(key: &str) -> String {
    // Room for the stamp and kind `version_key` appends.
    let mut out = Vec::with_capacity(key.len() + 2 + 17);
    escape_into(&mut out, key.as_bytes());
    out.extend_from_slice(b"\0\0");
    String::from_utf8(out).expect("escaping NUL as NUL 0x01 keeps UTF-8")
}

/// What a stored version is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub null: bool,
    pub marker: bool,
}

impl Kind {
    fn letter(self) -> char {
        (b'a' + self.null as u8 + 2 * self.marker as u8) as char
    }

    fn from_letter(c: u8) -> Option<Kind> {
        let bits = c.checked_sub(b'a').filter(|b| *b < 4)?;
        Some(Kind { null: bits & 1 != 0, marker: bits & 2 != 0 })
    }
}

/// Where the version `stamp` of `key` lies in the versions namespace.
pub fn version_key(key: &str, stamp: u64, kind: Kind) -> String {
    let mut k = stamp_prefix(key, stamp);
    k.push(kind.letter());
    k
}

/// The version `stamp` of `key`, whatever its kind: a lookup by version id lists this prefix.
pub fn stamp_prefix(key: &str, stamp: u64) -> String {
    format!("{}{:016x}", key_prefix(key), !stamp)
}

/// A versions-namespace key, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub key: String,
    pub stamp: u64,
    pub kind: Kind,
}

impl Stored {
    pub fn version_id(&self) -> VersionId {
        self.kind.version_id(self.stamp)
    }
}

impl Kind {
    /// The id of the version `stamp` of this kind.
    pub fn version_id(self, stamp: u64) -> VersionId {
        if self.null { VersionId::Null } else { VersionId::Stamp(stamp) }
    }
}

/// The stamp and kind of a key `version_key` wrote (its last 17 bytes), without the key.
pub fn stamp_and_kind(stored: &[u8]) -> Option<(u64, Kind)> {
    let n = stored.len().checked_sub(19)?;
    if &stored[n..n + 2] != b"\0\0" {
        return None;
    }
    let kind = Kind::from_letter(stored[stored.len() - 1])?;
    let hex = std::str::from_utf8(&stored[n + 2..n + 18]).ok()?;
    Some((!u64::from_str_radix(hex, 16).ok()?, kind))
}

/// Reads a key `version_key` wrote; `None` for anything else.
pub fn parse_version_key(stored: &[u8]) -> Option<Stored> {
    // The last 17 bytes are the inverted stamp and the kind; before them the terminator.
    let (stamp, kind) = stamp_and_kind(stored)?;
    let escaped = std::str::from_utf8(&stored[..stored.len() - 19]).ok()?;
    Some(Stored { key: escaped.replace("\0\u{1}", "\0"), stamp, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_round_trip_and_sort_newest_first_within_key_order() {
        let keys = ["a", "a\0", "a\0b", "a/b", "ab", "\0", "名"];
        let mut stored = Vec::new();
        for k in keys {
            for (stamp, null, marker) in [(1u64, false, false), (7, true, false), (u64::MAX, false, true), (0, true, true)] {
                let kind = Kind { null, marker };
                let v = version_key(k, stamp, kind);
                assert!(v.starts_with(&key_prefix(k)));
                assert!(v.starts_with(&stamp_prefix(k, stamp)));
                assert_eq!(parse_version_key(v.as_bytes()), Some(Stored { key: k.to_string(), stamp, kind }));
                stored.push((v, k, stamp));
            }
        }
        stored.sort();
        let order: Vec<(&str, u64)> = stored.iter().map(|(_, k, s)| (*k, *s)).collect();
        let mut want: Vec<(&str, u64)> = order.clone();
        want.sort_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
        assert_eq!(order, want, "store order is key order, then newest first");
        for k in keys {
            for other in keys.iter().filter(|o| **o != k) {
                assert!(!version_key(other, 3, Kind { null: false, marker: false }).starts_with(&key_prefix(k)));
            }
        }
    }

    #[test]
    fn version_ids() {
        assert_eq!(VersionId::parse("null"), Some(VersionId::Null));
        let id = VersionId::Stamp(0x0123_4567_89ab_cdef);
        assert_eq!(id.to_string(), "0123456789abcdef");
        assert_eq!(VersionId::parse(&id.to_string()), Some(id));
        for bad in ["", "Null", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "+123456789abcdef", "x"] {
            assert_eq!(VersionId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(parse_version_key(b"plain"), None);
        assert_eq!(parse_version_key(b"k\0\0ffffffffffffffffz"), None);
    }
}
