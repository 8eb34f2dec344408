//! Request bodies: CreateBucket, DeleteObjects, CompleteMultipartUpload, PutBucketVersioning,
//! Put{Object,Bucket}Tagging, PutBucketCors, Put{Bucket,Object}Acl, PutBucketLifecycleConfiguration.
//!
//! A body is first read into a small element tree under fixed limits (size, depth, element
//! count), then the tree is read by name. Names are matched on their local part, so a namespace,
//! a prefix (`<s3:Delete>`) or none are all accepted; unknown elements and attributes are ignored,
//! as S3 ignores them. Text keeps its whitespace (keys may begin or end with spaces); numbers,
//! booleans and enumerations are trimmed.

use std::fmt;

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};

use super::responses::{Checksums, VersioningStatus};
use crate::error::{ErrorCode, S3Error};

/// Largest request body we parse. The largest legal bodies: a DeleteObjects of 1000 keys of
/// 1024 bytes each, every byte written as a 6-byte entity (`&quot;`), about 6.2 MiB; a
/// CompleteMultipartUpload of 10000 parts with a SHA-256 checksum each, about 2 MiB.
pub const XML_BODY_BYTES_MAX: usize = 8 << 20;
/// Deepest element nesting; S3's request bodies need 3.
pub const XML_DEPTH_MAX: usize = 16;
/// Most elements in one body; a 10000-part completion with every optional element needs 90001.
pub const XML_ELEMENTS_MAX: usize = 100_000;
/// Most `<Object>` entries in one DeleteObjects, as S3 allows.
pub const DELETE_OBJECTS_MAX: usize = 1000;
/// Most `<Part>` entries in one CompleteMultipartUpload: S3's part count limit.
pub const COMPLETE_PARTS_MAX: usize = 10_000;

const _: () = assert!(DELETE_OBJECTS_MAX * crate::names::KEY_BYTES_MAX * 6 < XML_BODY_BYTES_MAX);
const _: () = assert!(COMPLETE_PARTS_MAX * 9 + 1 < XML_ELEMENTS_MAX);
const _: () = assert!(DELETE_OBJECTS_MAX * 3 + 2 < XML_ELEMENTS_MAX);

/// A request body we refuse; `code` is `MalformedXML` unless said otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlError {
    pub code: ErrorCode,
    pub message: String,
}

impl XmlError {
    fn malformed(message: impl Into<String>) -> XmlError {
        XmlError { code: ErrorCode::MalformedXML, message: message.into() }
    }
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for XmlError {}

impl From<XmlError> for S3Error {
    fn from(error: XmlError) -> S3Error {
        S3Error::new(error.code, error.message)
    }
}

// ---------------------------------------------------------------------------------------------
// The bounded element tree

/// One element: its local name, its text (all text directly inside it, concatenated, entities
/// resolved) and its child elements.
#[derive(Debug, Default)]
struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |child| child.name == name)
    }

    /// The text of the only child called `name`; a repeated one is malformed.
    fn child_text<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, XmlError> {
        let mut found = self.children(name);
        let first = found.next();
        if found.next().is_some() {
            return Err(XmlError::malformed(format!("<{}> has more than one <{name}>", self.name)));
        }
        Ok(first.map(|child| child.text.as_str()))
    }
}

/// Reads `body` into an element tree and checks the root's name.
fn parse_tree(body: &[u8], root_name: &str) -> Result<Element, XmlError> {
    if body.len() > XML_BODY_BYTES_MAX {
        return Err(XmlError {
            code: ErrorCode::MaxMessageLengthExceeded,
            message: format!("request body of {} bytes exceeds the {XML_BODY_BYTES_MAX}-byte limit", body.len()),
        });
    }
    let text = std::str::from_utf8(body)
        .map_err(|error| XmlError::malformed(format!("body is not UTF-8 (invalid byte at offset {})", error.valid_up_to())))?;
    let root = TreeBuilder::default().build(text)?;
    if root.name != root_name {
        return Err(XmlError::malformed(format!("root element is <{}>, expected <{root_name}>", root.name)));
    }
    Ok(root)
}

#[derive(Default)]
struct TreeBuilder {
    /// Open elements, outermost first; never longer than `XML_DEPTH_MAX`.
    open: Vec<Element>,
    root: Option<Element>,
    elements_total: usize,
}

impl TreeBuilder {
    fn build(mut self, text: &str) -> Result<Element, XmlError> {
        let mut reader = Reader::from_str(text);
        loop {
            let position = reader.buffer_position();
            let event = reader.read_event().map_err(|error| {
                XmlError::malformed(format!("not well-formed XML near byte {}: {error}", reader.error_position().max(position)))
            })?;
            match event {
                Event::Start(start) => self.open_element(&start)?,
                Event::Empty(start) => {
                    self.open_element(&start)?;
                    self.close_element();
                }
                Event::End(_) => self.close_element(),
                Event::Text(content) => self.push_text(&content.xml10_content())?,
                Event::CData(content) => self.push_text(&content.xml10_content())?,
                Event::GeneralRef(reference) => self.push_text(&resolve_reference(&reference)?)?,
                Event::DocType(_) => return Err(XmlError::malformed("document type declarations are not allowed")),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => break,
            }
        }
        if let Some(open) = self.open.last() {
            return Err(XmlError::malformed(format!("body ends inside <{}>", open.name)));
        }
        self.root.ok_or_else(|| XmlError::malformed("body has no root element"))
    }

    fn open_element(&mut self, start: &BytesStart<'_>) -> Result<(), XmlError> {
        if self.root.is_some() {
            return Err(XmlError::malformed("content after the root element"));
        }
        if self.open.len() == XML_DEPTH_MAX {
            return Err(XmlError::malformed(format!("elements nest deeper than {XML_DEPTH_MAX} levels")));
        }
        if self.elements_total == XML_ELEMENTS_MAX {
            return Err(XmlError::malformed(format!("body has more than {XML_ELEMENTS_MAX} elements")));
        }
        self.elements_total += 1;
        let local_name = start.local_name();
        let name: &str = local_name.as_ref();
        let name = name.to_owned();
        self.open.push(Element { name, ..Element::default() });
        Ok(())
    }

    /// Closes the innermost element. quick-xml has already checked that the end tag matches
    /// (`check_end_names`), so there is always one open here.
    fn close_element(&mut self) {
        let Some(element) = self.open.pop() else { unreachable!("quick-xml reports an end tag without a start tag as an error") };
        match self.open.last_mut() {
            Some(parent) => parent.children.push(element),
            None => self.root = Some(element),
        }
    }

    fn push_text(&mut self, text: &str) -> Result<(), XmlError> {
        match self.open.last_mut() {
            Some(element) => element.text.push_str(text),
            // Whitespace around the root is allowed; anything else there is not XML.
            None if text.trim_ascii().is_empty() => {}
            None => return Err(XmlError::malformed("text outside the root element")),
        }
        Ok(())
    }
}

/// `&lt;`, `&#x41;`, ...; entities other than XML's five are not defined in S3 bodies.
fn resolve_reference(reference: &BytesRef<'_>) -> Result<String, XmlError> {
    match reference.resolve_char_ref() {
        Ok(Some(ch)) => return Ok(ch.to_string()),
        Ok(None) => {}
        Err(error) => return Err(XmlError::malformed(format!("bad character reference &{};: {error}", &**reference))),
    }
    match resolve_predefined_entity(reference) {
        Some(text) => Ok(text.to_owned()),
        None => Err(XmlError::malformed(format!("undefined entity &{};", &**reference))),
    }
}

// ---------------------------------------------------------------------------------------------
// The bodies

/// PUT Bucket (CreateBucket). An empty body, or an empty `LocationConstraint`, means the default
/// region: `None`.
pub fn parse_create_bucket(body: &[u8]) -> Result<Option<String>, XmlError> {
    if body.trim_ascii().is_empty() {
        return Ok(None);
    }
    let root = parse_tree(body, "CreateBucketConfiguration")?;
    let location = root.child_text("LocationConstraint")?.map(str::trim).filter(|location| !location.is_empty());
    Ok(location.map(str::to_owned))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectIdentifier {
    /// As sent; the caller validates it and reports a bad one as that key's `<Error>`.
    pub key: String,
    pub version_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRequest {
    pub quiet: bool,
    /// In request order; 1 to `DELETE_OBJECTS_MAX` entries.
    pub objects: Vec<ObjectIdentifier>,
}

/// POST Bucket `?delete` (DeleteObjects).
pub fn parse_delete_objects(body: &[u8]) -> Result<DeleteRequest, XmlError> {
    let root = parse_tree(body, "Delete")?;
    let quiet = match root.child_text("Quiet")? {
        None => false,
        Some(text) => parse_bool(text, "Quiet")?,
    };
    let count = root.children("Object").count();
    if count == 0 {
        return Err(XmlError::malformed("<Delete> lists no <Object>"));
    }
    if count > DELETE_OBJECTS_MAX {
        return Err(XmlError::malformed(format!("<Delete> lists {count} objects; at most {DELETE_OBJECTS_MAX} are allowed")));
    }
    let objects = root.children("Object").map(parse_object_identifier).collect::<Result<Vec<_>, _>>()?;
    assert_eq!(objects.len(), count);
    Ok(DeleteRequest { quiet, objects })
}

fn parse_object_identifier(object: &Element) -> Result<ObjectIdentifier, XmlError> {
    let key = object.child_text("Key")?.ok_or_else(|| XmlError::malformed("<Object> has no <Key>"))?;
    let version_id = object.child_text("VersionId")?.map(|version_id| version_id.trim().to_owned());
    Ok(ObjectIdentifier { key: key.to_owned(), version_id })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    /// As sent; the caller checks the range (1..=10000), the ascending order and that it exists.
    pub part_number: u32,
    /// With surrounding whitespace and one pair of double quotes removed.
    pub etag: String,
    pub checksums: Checksums,
}

/// POST Object `?uploadId=` (CompleteMultipartUpload). Parts come back in the client's order.
pub fn parse_complete_multipart(body: &[u8]) -> Result<Vec<CompletedPart>, XmlError> {
    let root = parse_tree(body, "CompleteMultipartUpload")?;
    let count = root.children("Part").count();
    if count == 0 {
        return Err(XmlError::malformed("<CompleteMultipartUpload> lists no <Part>"));
    }
    if count > COMPLETE_PARTS_MAX {
        return Err(XmlError::malformed(format!(
            "<CompleteMultipartUpload> lists {count} parts; at most {COMPLETE_PARTS_MAX} are allowed"
        )));
    }
    root.children("Part").map(parse_completed_part).collect()
}

fn parse_completed_part(part: &Element) -> Result<CompletedPart, XmlError> {
    let number_text = part.child_text("PartNumber")?.ok_or_else(|| XmlError::malformed("<Part> has no <PartNumber>"))?;
    let part_number = parse_part_number(number_text)?;
    let etag_text = part.child_text("ETag")?.ok_or_else(|| XmlError::malformed(format!("part {part_number} has no <ETag>")))?;
    let checksums = Checksums {
        crc32: part.child_text("ChecksumCRC32")?.map(trimmed),
        crc32c: part.child_text("ChecksumCRC32C")?.map(trimmed),
        crc64nvme: part.child_text("ChecksumCRC64NVME")?.map(trimmed),
        sha1: part.child_text("ChecksumSHA1")?.map(trimmed),
        sha256: part.child_text("ChecksumSHA256")?.map(trimmed),
    };
    Ok(CompletedPart { part_number, etag: strip_etag_quotes(etag_text).to_owned(), checksums })
}

/// Digits only: `u32::from_str` would also take a leading `+`.
fn parse_part_number(text: &str) -> Result<u32, XmlError> {
    let digits = text.trim();
    let malformed = || XmlError::malformed(format!("<PartNumber> {digits:?} is not a part number"));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    digits.parse::<u32>().map_err(|_| malformed())
}

/// `"abc"` → `abc`; clients send ETags as they received them, in quotes, and some without.
pub fn strip_etag_quotes(etag: &str) -> &str {
    let etag = etag.trim();
    etag.strip_prefix('"').and_then(|inner| inner.strip_suffix('"')).unwrap_or(etag)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersioningConfiguration {
    /// `None` when the body has no `<Status>`, which changes nothing.
    pub status: Option<VersioningStatus>,
    /// `Some(true)` asks for MFA delete, which the caller refuses.
    pub mfa_delete: Option<bool>,
}

/// PUT Bucket `?versioning` (PutBucketVersioning).
pub fn parse_versioning_configuration(body: &[u8]) -> Result<VersioningConfiguration, XmlError> {
    let root = parse_tree(body, "VersioningConfiguration")?;
    let status = match root.child_text("Status")?.map(str::trim) {
        None => None,
        Some("Enabled") => Some(VersioningStatus::Enabled),
        Some("Suspended") => Some(VersioningStatus::Suspended),
        Some(other) => return Err(XmlError::malformed(format!("<Status> {other:?} is neither Enabled nor Suspended"))),
    };
    let mfa_delete = match root.child_text("MfaDelete")?.map(str::trim) {
        None => None,
        Some("Enabled") => Some(true),
        Some("Disabled") => Some(false),
        Some(other) => return Err(XmlError::malformed(format!("<MfaDelete> {other:?} is neither Enabled nor Disabled"))),
    };
    Ok(VersioningConfiguration { status, mfa_delete })
}

/// Most `<Tag>` elements we read from a tagging body: more than any tag set may hold, so the
/// caller's check (`tagging::checked`) says how many were sent rather than this parser.
pub const TAGGING_TAGS_READ_MAX: usize = 1000;

/// PUT Object/Bucket `?tagging` (Put{Object,Bucket}Tagging): the tags in the order sent, not yet
/// checked against S3's limits (`tagging::checked` does that, as the two limits differ). A tag
/// with no `<Value>`, or an empty one, has an empty value.
pub fn parse_tagging(body: &[u8]) -> Result<Vec<(String, String)>, XmlError> {
    let root = parse_tree(body, "Tagging")?;
    let mut sets = root.children("TagSet");
    let set = sets.next().ok_or_else(|| XmlError::malformed("<Tagging> has no <TagSet>"))?;
    if sets.next().is_some() {
        return Err(XmlError::malformed("<Tagging> has more than one <TagSet>"));
    }
    let count = set.children("Tag").count();
    if count > TAGGING_TAGS_READ_MAX {
        return Err(XmlError { code: ErrorCode::InvalidTag, message: format!("<TagSet> lists {count} tags") });
    }
    set.children("Tag")
        .map(|tag| {
            let key = tag.child_text("Key")?.ok_or_else(|| XmlError::malformed("<Tag> has no <Key>"))?;
            let value = tag.child_text("Value")?.unwrap_or("");
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// PUT Bucket `?cors` (PutBucketCors): the rules in order, not yet checked
/// (`cors::check_rules` does that). Values are trimmed.
pub fn parse_cors_configuration(body: &[u8]) -> Result<Vec<crate::cors::CorsRule>, XmlError> {
    let root = parse_tree(body, "CORSConfiguration")?;
    if root.children("CORSRule").count() > crate::cors::CORS_RULES_MAX {
        return Err(XmlError::malformed(format!("more than {} CORSRule elements", crate::cors::CORS_RULES_MAX)));
    }
    root.children("CORSRule")
        .map(|rule| {
            let all = |name: &str| rule.children(name).map(|c| c.text.trim().to_owned()).collect::<Vec<_>>();
            let max_age_seconds = match rule.child_text("MaxAgeSeconds")? {
                None => None,
                Some(text) => Some(
                    text.trim().parse::<u64>().map_err(|_| XmlError::malformed(format!("<MaxAgeSeconds> {text:?} is not a number of seconds")))?,
                ),
            };
            Ok(crate::cors::CorsRule {
                id: rule.child_text("ID")?.map(|id| id.trim().to_owned()),
                allowed_origins: all("AllowedOrigin"),
                allowed_methods: all("AllowedMethod"),
                allowed_headers: all("AllowedHeader"),
                expose_headers: all("ExposeHeader"),
                max_age_seconds,
            })
        })
        .collect()
}

/// PUT Bucket/Object `?acl` (Put{Bucket,Object}Acl): the grants of an `<AccessControlPolicy>`,
/// in order, duplicates dropped. Its `<Owner>` is not read: PutAcl does not change who owns a
/// resource. A grantee is known by its child element (`ID`, `URI`, `EmailAddress`), so the
/// `xsi:type` attribute is not needed. An ACL S3 would not take is `MalformedACLError`; a grant
/// by e-mail is `UnresolvableGrantByEmailAddress` (no user here has an address).
pub fn parse_access_control_policy(body: &[u8]) -> Result<Vec<crate::acl::Grant>, S3Error> {
    use crate::acl::{self, Grant, Permission};
    let malformed = |message: String| S3Error::new(ErrorCode::MalformedACLError, message);
    let root = parse_tree(body, "AccessControlPolicy")?;
    let mut lists = root.children("AccessControlList");
    let list = lists.next().ok_or_else(|| malformed("<AccessControlPolicy> has no <AccessControlList>".into()))?;
    if lists.next().is_some() {
        return Err(malformed("<AccessControlPolicy> has more than one <AccessControlList>".into()));
    }
    let count = list.children("Grant").count();
    if count > acl::GRANTS_MAX {
        return Err(acl::AclError::TooManyGrants(count).into());
    }
    let grants = list
        .children("Grant")
        .map(|grant| {
            let mut grantees = grant.children("Grantee");
            let grantee = grantees.next().ok_or_else(|| malformed("<Grant> has no <Grantee>".into()))?;
            if grantees.next().is_some() {
                return Err(malformed("<Grant> has more than one <Grantee>".into()));
            }
            let mut named = ["ID", "URI", "EmailAddress"].into_iter().filter_map(|kind| Some((kind, grantee.child_text(kind).transpose()?)));
            let (kind, value) = named.next().ok_or_else(|| malformed("<Grantee> has no <ID>, <URI> or <EmailAddress>".into()))?;
            if named.next().is_some() {
                return Err(malformed("<Grantee> names more than one of <ID>, <URI> and <EmailAddress>".into()));
            }
            let grantee = acl::grantee_of(kind, value?.trim())?;
            let permission = grant.child_text("Permission")?.ok_or_else(|| malformed("<Grant> has no <Permission>".into()))?;
            let permission =
                Permission::parse(permission.trim()).ok_or_else(|| malformed(format!("<Permission> {:?} is not an S3 permission", permission.trim())))?;
            Ok(Grant::new(grantee, permission))
        })
        .collect::<Result<Vec<_>, S3Error>>()?;
    Ok(acl::checked(grants)?)
}

/// PUT Bucket `?lifecycle` (PutBucketLifecycleConfiguration): the rules in order, not yet
/// checked as a whole (`lifecycle::check` does that: IDs, actions, day counts). What is malformed
/// in one rule is refused here: a `Status` other than `Enabled`/`Disabled`, a rule with both a
/// `<Prefix>` and a `<Filter>`, an `<Expiration>` with both `<Days>` and `<Date>`, a `<Filter>`
/// with two conditions outside `<And>`, a date that is not midnight UTC. Transitions are
/// refused as not implemented: there is one storage class.
pub fn parse_lifecycle_configuration(body: &[u8]) -> Result<Vec<crate::lifecycle::Rule>, S3Error> {
    use crate::lifecycle::{Expiration, FilterForm, RULES_MAX, Rule};
    let root = parse_tree(body, "LifecycleConfiguration")?;
    let count = root.children("Rule").count();
    if count > RULES_MAX {
        return Err(S3Error::new(ErrorCode::InvalidArgument, format!("{count} rules: at most {RULES_MAX} are allowed")));
    }
    root.children("Rule")
        .map(|rule| {
            for refused in ["Transition", "NoncurrentVersionTransition"] {
                if let Some(transition) = rule.children(refused).next() {
                    // A malformed transition is the client's error (400) before it is one we
                    // do not implement (501).
                    if let Some(date) = transition.child_text("Date")? {
                        lifecycle_date(date)?;
                    }
                    return Err(S3Error::new(ErrorCode::NotImplemented, format!("<{refused}>: there is one storage class here, STANDARD")));
                }
            }
            let enabled = match rule.child_text("Status")?.map(str::trim) {
                Some("Enabled") => true,
                Some("Disabled") => false,
                Some(other) => return Err(XmlError::malformed(format!("<Status> {other:?} is neither Enabled nor Disabled")).into()),
                None => return Err(XmlError::malformed("<Rule> has no <Status>").into()),
            };
            let legacy = rule.child_text("Prefix")?;
            let filter = only_child(rule, "Filter")?;
            let (filter, form) = match (legacy, filter) {
                (Some(_), Some(_)) => return Err(XmlError::malformed("<Rule> has both <Prefix> and <Filter>").into()),
                (Some(prefix), None) => {
                    (crate::lifecycle::Filter { prefix: Some(prefix.to_owned()), ..Default::default() }, FilterForm::Legacy)
                }
                (None, Some(filter)) => (lifecycle_filter(filter)?, FilterForm::Filter),
                (None, None) => (crate::lifecycle::Filter::default(), FilterForm::None),
            };
            let expiration = only_child(rule, "Expiration")?;
            let days = |element: Option<&Element>, name: &str| -> Result<Option<u32>, S3Error> {
                let Some(text) = element.map(|e| e.child_text(name)).transpose()?.flatten() else { return Ok(None) };
                let days = text.trim().parse::<u32>().map_err(|_| {
                    S3Error::new(ErrorCode::InvalidArgument, format!("<{name}> {:?} is not a positive number of days", text.trim()))
                })?;
                Ok(Some(days))
            };
            let expiration_days = days(expiration, "Days")?;
            let date = expiration.map(|e| e.child_text("Date")).transpose()?.flatten().map(lifecycle_date).transpose()?;
            let expiration_action = match (expiration_days, date) {
                (Some(_), Some(_)) => return Err(XmlError::malformed("<Expiration> has both <Days> and <Date>").into()),
                (Some(d), None) => Some(Expiration::Days(d)),
                (None, Some(ms)) => Some(Expiration::DateMs(ms)),
                (None, None) => None,
            };
            let marker = expiration.map(|e| e.child_text("ExpiredObjectDeleteMarker")).transpose()?.flatten();
            let marker = marker.map(|m| parse_bool(m, "ExpiredObjectDeleteMarker")).transpose()?;
            if marker.is_some() && expiration_action.is_some() {
                return Err(XmlError::malformed("<ExpiredObjectDeleteMarker> cannot be given with <Days> or <Date>").into());
            }
            let noncurrent = only_child(rule, "NoncurrentVersionExpiration")?;
            let abort = only_child(rule, "AbortIncompleteMultipartUpload")?;
            Ok(Rule {
                id: rule.child_text("ID")?.unwrap_or("").to_owned(),
                enabled,
                filter,
                form,
                expiration: expiration_action,
                expired_object_delete_marker: marker,
                abort_incomplete_upload_days: days(abort, "DaysAfterInitiation")?,
                noncurrent_days: days(noncurrent, "NoncurrentDays")?,
                newer_noncurrent_versions: days(noncurrent, "NewerNoncurrentVersions")?,
            })
        })
        .collect()
}

/// The only child called `name`, if any; a repeated one is malformed.
fn only_child<'a>(parent: &'a Element, name: &'a str) -> Result<Option<&'a Element>, XmlError> {
    let mut found = parent.children(name);
    let first = found.next();
    if found.next().is_some() {
        return Err(XmlError::malformed(format!("<{}> has more than one <{name}>", parent.name)));
    }
    Ok(first)
}

/// A lifecycle `<Filter>`: one condition, or several inside `<And>`.
fn lifecycle_filter(filter: &Element) -> Result<crate::lifecycle::Filter, S3Error> {
    let conditions = filter.children.len();
    let and = only_child(filter, "And")?;
    if conditions > 1 {
        return Err(XmlError::malformed("<Filter> has more than one condition: put them in <And>").into());
    }
    let from = and.unwrap_or(filter);
    let size = |name: &str| -> Result<Option<u64>, S3Error> {
        let Some(text) = from.child_text(name)? else { return Ok(None) };
        Ok(Some(text.trim().parse::<u64>().map_err(|_| S3Error::new(ErrorCode::InvalidArgument, format!("<{name}> {:?} is not a size", text.trim())))?))
    };
    let tags = from
        .children("Tag")
        .map(|tag| {
            let key = tag.child_text("Key")?.ok_or_else(|| XmlError::malformed("<Tag> has no <Key>"))?;
            Ok((key.to_owned(), tag.child_text("Value")?.unwrap_or("").to_owned()))
        })
        .collect::<Result<Vec<_>, XmlError>>()?;
    Ok(crate::lifecycle::Filter {
        prefix: from.child_text("Prefix")?.map(str::to_owned),
        tags,
        size_greater_than: size("ObjectSizeGreaterThan")?,
        size_less_than: size("ObjectSizeLessThan")?,
    })
}

/// An expiration `<Date>`: ISO 8601 at midnight UTC (`2027-01-01T00:00:00Z`, or the date alone).
fn lifecycle_date(text: &str) -> Result<u64, S3Error> {
    let text = text.trim();
    let full = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.to_owned() };
    let invalid = || S3Error::new(ErrorCode::InvalidArgument, format!("<Date> {text:?} is not an ISO 8601 date at midnight UTC"));
    let ms = super::out::parse_timestamp_ms(&full).ok_or_else(invalid)?;
    if !ms.is_multiple_of(crate::lifecycle::DAY_MS) {
        return Err(invalid());
    }
    Ok(ms)
}

/// PUT Bucket `?publicAccessBlock` (PutPublicAccessBlock): the four flags, each `false` when
/// left out.
pub fn parse_public_access_block(body: &[u8]) -> Result<crate::acl::PublicAccessBlock, XmlError> {
    let root = parse_tree(body, "PublicAccessBlockConfiguration")?;
    let flag = |name: &str| -> Result<bool, XmlError> { root.child_text(name)?.map_or(Ok(false), |t| parse_bool(t, name)) };
    Ok(crate::acl::PublicAccessBlock {
        block_public_acls: flag("BlockPublicAcls")?,
        ignore_public_acls: flag("IgnorePublicAcls")?,
        block_public_policy: flag("BlockPublicPolicy")?,
        restrict_public_buckets: flag("RestrictPublicBuckets")?,
    })
}

/// PUT Bucket `?ownershipControls`: the one rule's `ObjectOwnership`.
pub fn parse_ownership_controls(body: &[u8]) -> Result<crate::acl::ObjectOwnership, XmlError> {
    let root = parse_tree(body, "OwnershipControls")?;
    let rule = only_child(&root, "Rule")?.ok_or_else(|| XmlError::malformed("<OwnershipControls> has no <Rule>"))?;
    let value = rule.child_text("ObjectOwnership")?.ok_or_else(|| XmlError::malformed("<Rule> has no <ObjectOwnership>"))?;
    crate::acl::ObjectOwnership::parse(value).ok_or_else(|| XmlError::malformed(format!("<ObjectOwnership> {value:?} is not BucketOwnerEnforced, BucketOwnerPreferred or ObjectWriter")))
}

/// PUT Bucket `?encryption` (PutBucketEncryption): the one rule's default, AES256 (SSE-S3) or
/// aws:kms with an optional `KMSMasterKeyID` (SSE-KMS from the built-in key ring; AWS's
/// managed `aws/s3` without one), and `BucketKeyEnabled`, kept and echoed (a key ring derived
/// from one master key has no per-request KMS call for it to save).
pub fn parse_bucket_encryption(body: &[u8]) -> Result<crate::sse::BucketDefault, S3Error> {
    let root = parse_tree(body, "ServerSideEncryptionConfiguration")?;
    let rule = only_child(&root, "Rule")?.ok_or_else(|| XmlError::malformed("<ServerSideEncryptionConfiguration> has no <Rule>"))?;
    let by_default = only_child(rule, "ApplyServerSideEncryptionByDefault")?
        .ok_or_else(|| XmlError::malformed("<Rule> has no <ApplyServerSideEncryptionByDefault>"))?;
    let algorithm = by_default.child_text("SSEAlgorithm")?.map(str::trim).unwrap_or("");
    let key_id = by_default.child_text("KMSMasterKeyID")?.map(str::trim);
    let kms_key_id = match (algorithm, key_id) {
        (crate::sse::ALGORITHM, None) => None,
        (crate::sse::ALGORITHM, Some(_)) => return Err(S3Error::new(ErrorCode::InvalidArgument, "a KMSMasterKeyID is only valid with SSEAlgorithm aws:kms")),
        (crate::sse::KMS, id) => {
            let id = id.unwrap_or(crate::sse::KMS_DEFAULT_KEY_ID);
            crate::sse::check_kms_key_id(id)?;
            Some(id.to_string())
        }
        ("aws:kms:dsse", _) => return Err(S3Error::new(ErrorCode::NotImplemented, "SSEAlgorithm aws:kms:dsse (dual-layer) is not offered; AES256 and aws:kms are")),
        (other, _) => return Err(XmlError::malformed(format!("<SSEAlgorithm> {other:?} is not AES256, aws:kms or aws:kms:dsse")).into()),
    };
    let bucket_key_enabled = rule.child_text("BucketKeyEnabled")?.map_or(Ok(false), |t| parse_bool(t, "BucketKeyEnabled"))?;
    Ok(crate::sse::BucketDefault { kms_key_id, bucket_key_enabled })
}

fn parse_bool(text: &str, element: &str) -> Result<bool, XmlError> {
    match text.trim() {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        other => Err(XmlError::malformed(format!("<{element}> {other:?} is not a boolean"))),
    }
}

fn trimmed(text: &str) -> String {
    text.trim().to_owned()
}

/// PUT Bucket `?object-lock` (PutObjectLockConfiguration): `ObjectLockEnabled` must say
/// `Enabled`; the optional rule's default retention has a mode and either `Days` or `Years`.
pub fn parse_object_lock_configuration(body: &[u8]) -> Result<crate::object_lock::LockConfiguration, S3Error> {
    use crate::object_lock::{DefaultRetention, LockConfiguration, Mode, Period};
    let root = parse_tree(body, "ObjectLockConfiguration")?;
    match root.child_text("ObjectLockEnabled")?.map(str::trim) {
        Some("Enabled") => {}
        other => return Err(XmlError::malformed(format!("<ObjectLockEnabled> {other:?} is not Enabled")).into()),
    }
    let Some(rule) = only_child(&root, "Rule")? else { return Ok(LockConfiguration::default()) };
    let retention = only_child(rule, "DefaultRetention")?.ok_or_else(|| XmlError::malformed("<Rule> has no <DefaultRetention>"))?;
    let mode = retention.child_text("Mode")?.map(str::trim).unwrap_or("");
    let mode = Mode::parse(mode).ok_or_else(|| XmlError::malformed(format!("<Mode> {mode:?} is neither GOVERNANCE nor COMPLIANCE")))?;
    let number = |name: &str| -> Result<Option<u32>, S3Error> {
        let Some(text) = retention.child_text(name)? else { return Ok(None) };
        let n = text.trim().parse::<u32>().map_err(|_| S3Error::new(ErrorCode::InvalidRetentionPeriod, format!("<{name}> {:?} is not a positive number", text.trim())))?;
        Ok(Some(n))
    };
    let period = match (number("Days")?, number("Years")?) {
        (Some(d), None) => Period::Days(d),
        (None, Some(y)) => Period::Years(y),
        (Some(_), Some(_)) => return Err(XmlError::malformed("<DefaultRetention> has both <Days> and <Years>").into()),
        (None, None) => return Err(XmlError::malformed("<DefaultRetention> has neither <Days> nor <Years>").into()),
    };
    Ok(LockConfiguration { default: Some(DefaultRetention::new(mode, period)?) })
}

/// PUT Object `?retention` (PutObjectRetention): a mode and a date, or neither (lifts it).
pub fn parse_retention(body: &[u8]) -> Result<Option<crate::object_lock::Retention>, S3Error> {
    use crate::object_lock::{Mode, Retention};
    let root = parse_tree(body, "Retention")?;
    let mode = root.child_text("Mode")?.map(str::trim);
    let date = root.child_text("RetainUntilDate")?.map(str::trim);
    match (mode, date) {
        (None, None) => Ok(None),
        (Some(m), Some(d)) => {
            let mode = Mode::parse(m).ok_or_else(|| XmlError::malformed(format!("<Mode> {m:?} is neither GOVERNANCE nor COMPLIANCE")))?;
            let until_ms = super::out::parse_timestamp_ms(d)
                .ok_or_else(|| S3Error::new(ErrorCode::InvalidArgument, format!("<RetainUntilDate> {d:?} is not an ISO 8601 date and time")))?;
            Ok(Some(Retention { mode, until_ms }))
        }
        _ => Err(XmlError::malformed("<Retention> needs both <Mode> and <RetainUntilDate>, or neither").into()),
    }
}

/// PUT Object `?legal-hold` (PutObjectLegalHold): `ON` or `OFF`.
pub fn parse_legal_hold(body: &[u8]) -> Result<bool, XmlError> {
    let root = parse_tree(body, "LegalHold")?;
    match root.child_text("Status")?.map(str::trim) {
        Some("ON") => Ok(true),
        Some("OFF") => Ok(false),
        other => Err(XmlError::malformed(format!("<Status> {other:?} is neither ON nor OFF"))),
    }
}
