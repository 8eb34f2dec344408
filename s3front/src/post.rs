//! Browser-based uploads (S3's PostObject): the `multipart/form-data` body and the POST policy
//! that authorises it. Sans-IO: bytes and text in, fields, file bytes, a checked policy or an
//! error out; the handler reads the socket and writes the store.
//!
//! A form's fields come first and its file last (S3 ignores anything after the file), so the
//! fields are parsed from a bounded prefix of the body ([`parse_head`]) and the file is then
//! streamed through [`FileScanner`], which holds back only the bytes that could begin the
//! closing delimiter.

use std::fmt;

use base64::Engine as _;
use hmac::{KeyInit, Mac};

use crate::error::{ErrorCode, S3Error};

/// Most bytes of form before the file's data: S3 refuses larger field sections with
/// `MaxPostPreDataLengthExceededError` (its limit is 20 KiB of fields; we allow more slack).
pub const FORM_FIELDS_BYTES_MAX: usize = 64 << 10;
/// Most fields before the file.
pub const FORM_FIELDS_MAX: usize = 100;
/// Longest header section of one part.
const PART_HEAD_BYTES_MAX: usize = 8 << 10;
/// Longest boundary RFC 2046 allows.
const BOUNDARY_BYTES_MAX: usize = 70;

/// Why a form or its policy was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostError {
    /// Not `multipart/form-data` with a usable boundary, or its framing is broken.
    Malformed(String),
    FieldsTooLarge,
    /// The form ended without a part named `file`.
    NoFile,
    /// The policy is not base64 JSON of the shape S3 documents.
    BadPolicy(String),
    /// The policy does not allow this upload (expired, a condition failed, a field it does not
    /// name): AccessDenied, as S3 answers.
    Denied(String),
    /// The signature fields are incomplete or inconsistent.
    BadSignatureFields(String),
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Malformed(why) => write!(f, "The body of your POST request is not well-formed multipart/form-data: {why}"),
            PostError::FieldsTooLarge => {
                write!(f, "Your POST request fields preceding the upload file were too large (at most {FORM_FIELDS_BYTES_MAX} bytes)")
            }
            PostError::NoFile => write!(f, "POST requires exactly one file upload per request."),
            PostError::BadPolicy(why) => write!(f, "Invalid Policy: {why}"),
            PostError::Denied(why) => write!(f, "Invalid according to Policy: {why}"),
            PostError::BadSignatureFields(why) => write!(f, "{why}"),
        }
    }
}

impl From<PostError> for S3Error {
    fn from(e: PostError) -> S3Error {
        let code = match &e {
            PostError::Malformed(_) => ErrorCode::MalformedPOSTRequest,
            PostError::FieldsTooLarge => ErrorCode::MaxPostPreDataLengthExceededError,
            PostError::NoFile | PostError::BadSignatureFields(_) => ErrorCode::InvalidArgument,
            PostError::BadPolicy(_) => ErrorCode::InvalidPolicyDocument,
            PostError::Denied(_) => ErrorCode::AccessDenied,
        };
        S3Error::new(code, e.to_string())
    }
}

fn malformed(why: impl Into<String>) -> PostError {
    PostError::Malformed(why.into())
}

/// The boundary of a `multipart/form-data` Content-Type.
pub fn boundary(content_type: &str) -> Result<String, PostError> {
    let mut params = content_type.split(';');
    let kind = params.next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(malformed(format!("Content-Type is {kind:?}, not multipart/form-data")));
    }
    let boundary = params
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| unquote(value.trim()))
        .ok_or_else(|| malformed("Content-Type names no boundary"))?;
    if boundary.is_empty() || boundary.len() > BOUNDARY_BYTES_MAX {
        return Err(malformed(format!("a boundary of {} bytes", boundary.len())));
    }
    Ok(boundary)
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => value.to_string(),
    }
}

/// The fields of a form, up to its file part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormHead {
    /// (name as sent, value), in order.
    pub fields: Vec<(String, String)>,
    /// The file part's `filename` parameter (for `${filename}` in the key).
    pub file_name: Option<String>,
    /// Where the file's data begins in the body.
    pub data_start: usize,
}

impl FormHead {
    /// A field's value; names match without regard to case, as S3 matches them.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The object's key: the `key` field with `${filename}` replaced by the file's name. The
    /// policy's conditions on `$key` see this key, as S3 checks them.
    pub fn key(&self) -> Option<String> {
        self.field("key").map(|k| k.replace("${filename}", self.file_name.as_deref().unwrap_or("")))
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// Parses the fields before the part named `file` from the first `buf.len()` bytes of a body.
/// `Ok(None)`: more bytes are needed (the caller reads on, up to `FORM_FIELDS_BYTES_MAX`).
pub fn parse_head(buf: &[u8], boundary: &str) -> Result<Option<FormHead>, PostError> {
    let dash = format!("--{boundary}").into_bytes();
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    let limit = |head: Result<Option<FormHead>, PostError>| match head {
        Ok(None) if buf.len() >= FORM_FIELDS_BYTES_MAX => Err(PostError::FieldsTooLarge),
        other => other,
    };
    // A preamble may precede the first boundary; the first delimiter needs no CRLF before it.
    let first = if buf.starts_with(&dash) {
        0
    } else {
        match find(buf, &delimiter, 0) {
            Some(p) => p + 2,
            None => return limit(Ok(None)),
        }
    };
    let mut at = first + dash.len();
    let mut head = FormHead::default();
    loop {
        match buf.get(at..at + 2) {
            None => return limit(Ok(None)),
            Some(b"--") => return Err(PostError::NoFile),
            Some(b"\r\n") => at += 2,
            Some(_) => return Err(malformed("a boundary is followed by neither CRLF nor --")),
        }
        if buf.get(at..at + 2).is_some_and(|b| b == b"\r\n") {
            return Err(malformed("a part has no headers"));
        }
        let Some(head_end) = find(buf, b"\r\n\r\n", at) else {
            if buf.len() - at > PART_HEAD_BYTES_MAX {
                return Err(malformed("a part's headers are too long"));
            }
            return limit(Ok(None));
        };
        let (name, file_name) = part_names(&buf[at..head_end])?;
        at = head_end + 4;
        if name.eq_ignore_ascii_case("file") {
            head.file_name = file_name;
            head.data_start = at;
            return Ok(Some(head));
        }
        let Some(value_end) = find(buf, &delimiter, at) else { return limit(Ok(None)) };
        let value = std::str::from_utf8(&buf[at..value_end]).map_err(|_| malformed(format!("field {name:?} is not UTF-8")))?;
        if head.fields.len() == FORM_FIELDS_MAX {
            return Err(malformed(format!("more than {FORM_FIELDS_MAX} fields")));
        }
        if head.field(&name).is_some() {
            return Err(malformed(format!("field {name:?} appears twice")));
        }
        head.fields.push((name, value.to_string()));
        at = value_end + delimiter.len();
    }
}

/// A part's `name` and `filename` from its Content-Disposition.
fn part_names(headers: &[u8]) -> Result<(String, Option<String>), PostError> {
    let text = std::str::from_utf8(headers).map_err(|_| malformed("part headers are not UTF-8"))?;
    for line in text.split("\r\n") {
        let Some((header, value)) = line.split_once(':') else { continue };
        if !header.trim().eq_ignore_ascii_case("content-disposition") {
            continue;
        }
        let mut params = value.split(';');
        if !params.next().is_some_and(|kind| kind.trim().eq_ignore_ascii_case("form-data")) {
            return Err(malformed(format!("Content-Disposition {:?} is not form-data", value.trim())));
        }
        let (mut name, mut file_name) = (None, None);
        for p in params {
            let Some((k, v)) = p.split_once('=') else { continue };
            match k.trim().to_ascii_lowercase().as_str() {
                "name" => name = Some(unquote(v.trim())),
                "filename" => file_name = Some(unquote(v.trim())),
                _ => {}
            }
        }
        let name = name.ok_or_else(|| malformed("a part's Content-Disposition has no name"))?;
        return Ok((name, file_name));
    }
    Err(malformed("a part has no Content-Disposition"))
}

/// Streams a file part's data: everything up to the closing delimiter, whatever the bytes are
/// and however the body arrives. Holds back at most the delimiter's length less one.
pub struct FileScanner {
    delimiter: Vec<u8>,
    held: Vec<u8>,
    ended: bool,
}

impl FileScanner {
    pub fn new(boundary: &str) -> FileScanner {
        FileScanner { delimiter: format!("\r\n--{boundary}").into_bytes(), held: Vec::new(), ended: false }
    }

    /// Appends the file bytes in `input` to `out`; true once the delimiter that ends the file
    /// has been seen (the rest of the body is ignored, as S3 ignores fields after the file).
    pub fn scan(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        if self.ended {
            return true;
        }
        self.held.extend_from_slice(input);
        if let Some(p) = find(&self.held, &self.delimiter, 0) {
            out.extend_from_slice(&self.held[..p]);
            self.held = Vec::new();
            self.ended = true;
            return true;
        }
        let emit = self.held.len().saturating_sub(self.delimiter.len() - 1);
        out.extend_from_slice(&self.held[..emit]);
        self.held.drain(..emit);
        false
    }

    pub fn ended(&self) -> bool {
        self.ended
    }
}

// ---------------------------------------------------------------------------------------------
// The policy

/// Fields a policy need not name (S3: the signature fields, the policy, the file, and
/// `x-ignore-*`).
fn exempt(field: &str) -> bool {
    const EXEMPT: [&str; 5] = ["policy", "signature", "awsaccesskeyid", "x-amz-signature", "file"];
    // A checksum field is checked against the file itself (as Ceph RGW exempts it).
    let lower = field.to_ascii_lowercase();
    EXEMPT.iter().any(|e| field.eq_ignore_ascii_case(e)) || lower.starts_with("x-ignore-") || lower.starts_with("x-amz-checksum-")
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Lowercase field name (without `$`), and the value it must equal.
    Eq { field: String, value: String },
    StartsWith { field: String, prefix: String },
    LengthRange { min: u64, max: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub expiration_ms: u64,
    pub conditions: Vec<Condition>,
}

/// Most conditions we read from one policy.
const POLICY_CONDITIONS_MAX: usize = 256;

/// Decodes a form's `policy` field: base64 of `{"expiration": "...", "conditions": [...]}`.
/// The two top-level names are case-sensitive, as in S3; condition names and operators are not.
pub fn parse_policy(policy_b64: &str) -> Result<Policy, PostError> {
    let bad = |why: &str| PostError::BadPolicy(why.to_string());
    let json = base64::engine::general_purpose::STANDARD.decode(policy_b64.trim()).map_err(|_| bad("the policy is not base64"))?;
    let doc: serde_json::Value = serde_json::from_slice(&json).map_err(|e| PostError::BadPolicy(format!("the policy is not JSON: {e}")))?;
    let expiration = doc.get("expiration").ok_or_else(|| bad("the policy has no expiration"))?;
    // S3 takes only ISO 8601 in UTC as it documents it (`2030-01-01T12:00:00.000Z`), not the
    // other forms RFC 3339 allows (a space for the `T`, an offset): Python's `str(datetime)`
    // is refused.
    let expiration_ms = expiration
        .as_str()
        .filter(|t| t.as_bytes().get(10) == Some(&b'T') && t.ends_with('Z'))
        .and_then(crate::xml::parse_timestamp_ms)
        .ok_or_else(|| PostError::BadPolicy(format!("expiration {expiration} is not an ISO 8601 time in UTC")))?;
    let list = doc.get("conditions").and_then(|c| c.as_array()).ok_or_else(|| bad("the policy has no conditions list"))?;
    if list.len() > POLICY_CONDITIONS_MAX {
        return Err(PostError::BadPolicy(format!("{} conditions; at most {POLICY_CONDITIONS_MAX}", list.len())));
    }
    let mut conditions = Vec::with_capacity(list.len());
    for c in list {
        match c {
            serde_json::Value::Object(map) => {
                if map.is_empty() {
                    return Err(bad("an empty condition"));
                }
                for (field, value) in map {
                    let value = value.as_str().ok_or_else(|| PostError::BadPolicy(format!("condition {field:?}: the value is not a string")))?;
                    conditions.push(Condition::Eq { field: field.to_ascii_lowercase(), value: value.to_string() });
                }
            }
            serde_json::Value::Array(items) => conditions.push(array_condition(items)?),
            other => return Err(PostError::BadPolicy(format!("condition {other} is neither an object nor a list"))),
        }
    }
    Ok(Policy { expiration_ms, conditions })
}

fn array_condition(items: &[serde_json::Value]) -> Result<Condition, PostError> {
    let bad = |why: String| PostError::BadPolicy(why);
    let op = items.first().and_then(|o| o.as_str()).ok_or_else(|| bad(format!("condition {items:?} names no operation")))?;
    if op.eq_ignore_ascii_case("content-length-range") {
        let bound = |i: usize| items.get(i).and_then(|v| v.as_u64());
        return match (bound(1), bound(2), items.len()) {
            (Some(min), Some(max), 3) if min <= max => Ok(Condition::LengthRange { min, max }),
            _ => Err(bad(format!("content-length-range {items:?} wants two lengths, the least first"))),
        };
    }
    let (Some(field), Some(value), 3) = (items.get(1).and_then(|f| f.as_str()), items.get(2).and_then(|v| v.as_str()), items.len()) else {
        return Err(bad(format!("condition {items:?} wants an operation, a $field and a value")));
    };
    let field = field.strip_prefix('$').ok_or_else(|| bad(format!("condition field {field:?} does not begin with $")))?.to_ascii_lowercase();
    match op.to_ascii_lowercase().as_str() {
        "eq" => Ok(Condition::Eq { field, value: value.to_string() }),
        "starts-with" => Ok(Condition::StartsWith { field, prefix: value.to_string() }),
        _ => Err(bad(format!("condition operation {op:?} is neither eq nor starts-with"))),
    }
}

impl Policy {
    /// Whether the form's fields (and the bucket it posts to) satisfy every condition and the
    /// policy has not expired; the file's length is checked apart ([`Policy::length_range`]),
    /// once known.
    pub fn check(&self, head: &FormHead, bucket: &str, now_ms: u64) -> Result<(), PostError> {
        if now_ms > self.expiration_ms {
            return Err(PostError::Denied("Policy expired.".into()));
        }
        let key = head.key();
        let value_of = |field: &str| match field {
            "bucket" => Some(bucket),
            "key" => key.as_deref(),
            _ => head.field(field),
        };
        for c in &self.conditions {
            let ok = match c {
                Condition::Eq { field, value } => value_of(field).unwrap_or("") == value,
                // A field the form lacks reads as empty, as for `eq`: `starts-with ""` allows it.
                Condition::StartsWith { field, prefix } => value_of(field).unwrap_or("").starts_with(prefix.as_str()),
                Condition::LengthRange { .. } => true,
            };
            if !ok {
                return Err(PostError::Denied(format!("Policy Condition failed: {c:?}")));
            }
        }
        for (name, _) in &head.fields {
            let named = self.conditions.iter().any(|c| match c {
                Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => name.eq_ignore_ascii_case(field),
                Condition::LengthRange { .. } => false,
            });
            if !named && !exempt(name) {
                return Err(PostError::Denied(format!("Extra input fields: {name}")));
            }
        }
        Ok(())
    }

    /// The `content-length-range` the file's length must lie in, if the policy sets one.
    pub fn length_range(&self) -> Option<(u64, u64)> {
        self.conditions.iter().find_map(|c| match c {
            Condition::LengthRange { min, max } => Some((*min, *max)),
            _ => None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The signature

/// Who signed a form's policy, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostSigner {
    /// `x-amz-algorithm`, `x-amz-credential` (`AK/YYYYMMDD/region/s3/aws4_request`),
    /// `x-amz-signature`: hex HMAC-SHA256 of the policy with the SigV4 signing key.
    V4 { access_key: String, date: String, region: String, signature: String },
    /// `AWSAccessKeyId`, `signature`: base64 HMAC-SHA1 of the policy with the secret key.
    V2 { access_key: String, signature: String },
}

impl PostSigner {
    pub fn access_key(&self) -> &str {
        match self {
            PostSigner::V4 { access_key, .. } | PostSigner::V2 { access_key, .. } => access_key,
        }
    }

    /// The signer the form's fields name, or `None` for an anonymous form (no policy and no
    /// signature fields).
    pub fn from_form(head: &FormHead) -> Result<Option<PostSigner>, PostError> {
        let bad = |why: &str| PostError::BadSignatureFields(why.to_string());
        if let Some(signature) = head.field("x-amz-signature") {
            let algorithm = head.field("x-amz-algorithm").ok_or_else(|| bad("x-amz-signature without x-amz-algorithm"))?;
            if algorithm != crate::sigv4::ALGORITHM {
                return Err(PostError::BadSignatureFields(format!("x-amz-algorithm {algorithm:?} is not {}", crate::sigv4::ALGORITHM)));
            }
            let credential = head.field("x-amz-credential").ok_or_else(|| bad("x-amz-signature without x-amz-credential"))?;
            let parts: Vec<&str> = credential.split('/').collect();
            let [access_key, date, region, service, terminator] = parts[..] else {
                return Err(PostError::BadSignatureFields(format!("x-amz-credential {credential:?} is not AK/date/region/s3/aws4_request")));
            };
            if service != crate::sigv4::SERVICE || terminator != crate::sigv4::SCOPE_TERMINATOR || date.len() != 8 {
                return Err(PostError::BadSignatureFields(format!("x-amz-credential {credential:?} is not AK/date/region/s3/aws4_request")));
            }
            return Ok(Some(PostSigner::V4 {
                access_key: access_key.to_string(),
                date: date.to_string(),
                region: region.to_string(),
                signature: signature.to_string(),
            }));
        }
        if let Some(signature) = head.field("signature") {
            let access_key = head.field("awsaccesskeyid").ok_or_else(|| bad("signature without AWSAccessKeyId"))?;
            return Ok(Some(PostSigner::V2 { access_key: access_key.to_string(), signature: signature.to_string() }));
        }
        if head.field("policy").is_some() {
            return Err(bad("a policy without a signature (x-amz-signature, or AWSAccessKeyId and signature)"));
        }
        Ok(None)
    }

    /// Whether the signature over `policy_b64` (the field as sent) is the one `secret` makes.
    pub fn verifies(&self, policy_b64: &str, secret: &str) -> bool {
        match self {
            PostSigner::V4 { date, region, signature, .. } => {
                let key = crate::sigv4::signing_key(secret, date, region, crate::sigv4::SERVICE);
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
                mac.update(policy_b64.as_bytes());
                hex::decode(signature).is_ok_and(|s| mac.verify_slice(&s).is_ok())
            }
            PostSigner::V2 { signature, .. } => crate::sigv2::signature_matches(secret, policy_b64.as_bytes(), signature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "----formBoundary7MA4YWxk";

    fn form(fields: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in fields {
            out.extend_from_slice(format!("--{B}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n").as_bytes());
        out.extend_from_slice(file);
        out.extend_from_slice(format!("\r\n--{B}\r\nContent-Disposition: form-data; name=\"after\"\r\n\r\nignored\r\n--{B}--\r\n").as_bytes());
        out
    }

    /// The file's bytes, fed to the scanner in pieces of `step` bytes.
    fn file_of(body: &[u8], step: usize) -> Vec<u8> {
        let head = parse_head(body, B).expect("parses").expect("complete");
        let mut scanner = FileScanner::new(B);
        let mut out = Vec::new();
        for piece in body[head.data_start..].chunks(step) {
            if scanner.scan(piece, &mut out) {
                break;
            }
        }
        assert!(scanner.ended());
        out
    }

    #[test]
    fn fields_then_file_in_any_pieces() {
        // A file holding near-delimiters: CRLF, dashes, most of the boundary.
        let file = format!("line\r\n--{}\r\n--\r\nend", &B[..B.len() - 1]).into_bytes();
        let body = form(&[("key", "dir/${filename}"), ("Content-Type", "text/plain")], &file);
        let head = parse_head(&body, B).expect("test input").expect("test input");
        assert_eq!(head.fields, vec![("key".into(), "dir/${filename}".into()), ("Content-Type".into(), "text/plain".into())]);
        assert_eq!(head.field("content-type"), Some("text/plain"));
        assert_eq!(head.file_name.as_deref(), Some("a.txt"));
        for step in [1, 2, 7, 40, 1000] {
            assert_eq!(file_of(&body, step), file, "pieces of {step}");
        }
        // Every prefix short of the file part asks for more, never errs.
        for cut in 0..head.data_start {
            assert_eq!(parse_head(&body[..cut], B), Ok(None), "cut at {cut}");
        }
        assert_eq!(file_of(&form(&[], b""), 3), b"");
    }

    #[test]
    fn broken_forms_are_refused() {
        let no_file = format!("--{B}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--{B}--\r\n");
        assert_eq!(parse_head(no_file.as_bytes(), B), Err(PostError::NoFile));
        let twice = form(&[("key", "a"), ("Key", "b")], b"x");
        assert!(matches!(parse_head(&twice, B), Err(PostError::Malformed(_))));
        let not_form_data = format!("--{B}\r\nContent-Disposition: attachment; name=\"key\"\r\n\r\nk\r\n--{B}--\r\n");
        assert!(matches!(parse_head(not_form_data.as_bytes(), B), Err(PostError::Malformed(_))));
        let huge = vec![b'x'; FORM_FIELDS_BYTES_MAX];
        assert_eq!(parse_head(&huge, B), Err(PostError::FieldsTooLarge));
        assert_eq!(boundary("multipart/form-data; boundary=\"q b\""), Ok("q b".into()));
        assert!(boundary("application/x-www-form-urlencoded").is_err());
        assert!(boundary("multipart/form-data").is_err());
    }

    fn b64(json: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    #[test]
    fn policies_as_s3_reads_them() {
        let p = parse_policy(&b64(
            r#"{"expiration": "2030-01-01T00:00:00.000Z", "conditions": [{"bUcKeT": "b"}, ["StArTs-WiTh", "$KeY", "up/"],
            ["content-length-range", 0, 1024], ["eq", "$Content-Type", "text/plain"], ["starts-with", "$x-amz-meta-tag", ""]]}"#,
        ))
        .expect("test input");
        assert_eq!(p.length_range(), Some((0, 1024)));
        let head = |fields: &[(&str, &str)]| FormHead {
            fields: fields.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            ..FormHead::default()
        };
        let ok = head(&[("key", "up/a"), ("content-type", "text/plain"), ("X-Amz-Meta-Tag", "t"), ("policy", "p"), ("x-ignore-me", "")]);
        assert_eq!(p.check(&ok, "b", 0), Ok(()));
        assert!(matches!(p.check(&ok, "other", 0), Err(PostError::Denied(_))), "wrong bucket");
        assert!(matches!(p.check(&ok, "b", u64::MAX), Err(PostError::Denied(m)) if m.contains("expired")));
        let bad_key = head(&[("key", "down/a"), ("content-type", "text/plain"), ("x-amz-meta-tag", "")]);
        assert!(matches!(p.check(&bad_key, "b", 0), Err(PostError::Denied(_))));
        let extra = head(&[("key", "up/a"), ("content-type", "text/plain"), ("x-amz-meta-tag", ""), ("x-amz-meta-other", "")]);
        assert!(matches!(p.check(&extra, "b", 0), Err(PostError::Denied(m)) if m.contains("x-amz-meta-other")));
        // `$key` conditions see the key with `${filename}` in place, as the object is stored.
        let named = |file_name: &str| FormHead {
            file_name: Some(file_name.into()),
            ..head(&[("key", "${filename}"), ("content-type", "text/plain"), ("x-amz-meta-tag", "")])
        };
        assert_eq!(named("up/f.txt").key().as_deref(), Some("up/f.txt"));
        assert_eq!(p.check(&named("up/f.txt"), "b", 0), Ok(()));
        assert!(matches!(p.check(&named("f.txt"), "b", 0), Err(PostError::Denied(_))));
        for bad in [
            r#"{"conditions": []}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z"}"#,
            r#"{"EXPIRATION": "2030-01-01T00:00:00Z", "conditions": []}"#,
            r#"{"expiration": "2030-13-01T00:00:00Z", "conditions": []}"#,
            r#"{"expiration": "2030-01-01 00:00:00.445525+00:00", "conditions": []}"#,
            r#"{"expiration": "2030-01-01T00:00:00+00:00", "conditions": []}"#,
            r#"{"expiration": "2030-01-01", "conditions": []}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [{}]}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", 0]]}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", -1, 0]]}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["eq", "key", "x"]]}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["ends-with", "$key", "x"]]}"#,
        ] {
            assert!(matches!(parse_policy(&b64(bad)), Err(PostError::BadPolicy(_))), "{bad}");
        }
        assert!(matches!(parse_policy("not base64!"), Err(PostError::BadPolicy(_))));
    }

    #[test]
    fn signatures_v2_and_v4() {
        let policy = b64(r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": []}"#);
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let mut v2 = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("test input");
        v2.update(policy.as_bytes());
        let v2_sig = base64::engine::general_purpose::STANDARD.encode(v2.finalize().into_bytes());
        let signer = PostSigner::V2 { access_key: "AK".into(), signature: v2_sig };
        assert!(signer.verifies(&policy, secret));
        assert!(!signer.verifies(&policy, "other"));
        let key = crate::sigv4::signing_key(secret, "20261206", "us-east-1", "s3");
        let v4_sig = hex::encode(crate::sigv4::hmac_sha256(&key, policy.as_bytes()));
        let head = FormHead {
            fields: vec![
                ("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()),
                ("x-amz-credential".into(), "AK/20261206/us-east-1/s3/aws4_request".into()),
                ("x-amz-signature".into(), v4_sig),
                ("policy".into(), policy.clone()),
            ],
            ..FormHead::default()
        };
        let signer = PostSigner::from_form(&head).expect("test input").expect("test input");
        assert_eq!(signer.access_key(), "AK");
        assert!(signer.verifies(&policy, secret));
        assert!(!signer.verifies(&format!("{policy} "), secret));
        let unsigned = FormHead { fields: vec![("policy".into(), policy)], ..FormHead::default() };
        assert!(matches!(PostSigner::from_form(&unsigned), Err(PostError::BadSignatureFields(_))));
        assert_eq!(PostSigner::from_form(&FormHead::default()), Ok(None));
    }
}
