//! Access control lists: S3's ACLs on buckets and objects, sans-IO.
//!
//! An ACL is a list of grants, each a grantee (a user, by canonical ID; everyone; every signed
//! user; the log-delivery group) and a permission. Its owner is kept beside it (the bucket's or
//! the object's), and always may read and change the ACL whatever it says, as in S3; everything
//! else the owner may do, it may do only as the grants say (an owner that removed its own grants
//! can no longer write into its bucket until it grants itself again).
//!
//! A user's canonical ID here is its access key: the user table holds nothing else, and the
//! `Owner` every answer names is the same.
//!
//! What each permission allows (S3's legacy ACL model):
//! - on a bucket: `READ` lists it (objects, versions, uploads) and answers HEAD; `WRITE` puts,
//!   overwrites and deletes any object in it; `READ_ACP`/`WRITE_ACP` read and replace its ACL;
//! - on an object: `READ` reads its data and metadata (GET, HEAD, tags, attributes, copy
//!   source); `READ_ACP`/`WRITE_ACP` its ACL; `WRITE` means nothing (writes are the bucket's);
//! - `FULL_CONTROL` is all of them. Deleting a bucket and its configurations (tags, CORS) are
//!   the bucket owner's alone.

use crate::error::{ErrorCode, S3Error};

/// Most grants one ACL holds (S3's limit).
pub const GRANTS_MAX: usize = 100;

pub const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
pub const AUTHENTICATED_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
pub const LOG_DELIVERY_URI: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    Read,
    Write,
    ReadAcp,
    WriteAcp,
    FullControl,
}

impl Permission {
    pub const ALL: [Permission; 5] = [Permission::Read, Permission::Write, Permission::ReadAcp, Permission::WriteAcp, Permission::FullControl];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
            Permission::FullControl => "FULL_CONTROL",
        }
    }

    pub fn parse(text: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// The header that grants this permission (`x-amz-grant-read`, ...).
    pub fn grant_header(self) -> &'static str {
        match self {
            Permission::Read => "x-amz-grant-read",
            Permission::Write => "x-amz-grant-write",
            Permission::ReadAcp => "x-amz-grant-read-acp",
            Permission::WriteAcp => "x-amz-grant-write-acp",
            Permission::FullControl => "x-amz-grant-full-control",
        }
    }

    /// One character in the stored form.
    fn code(self) -> char {
        match self {
            Permission::Read => 'r',
            Permission::Write => 'w',
            Permission::ReadAcp => 'R',
            Permission::WriteAcp => 'W',
            Permission::FullControl => 'F',
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Grantee {
    /// A user, by canonical ID (here its access key).
    User(String),
    /// Everyone, signed or not.
    AllUsers,
    /// Every request signed by a known user.
    AuthenticatedUsers,
    /// S3's log-delivery group: kept and answered, but nothing here acts as it.
    LogDelivery,
}

impl Grantee {
    pub fn group_uri(&self) -> Option<&'static str> {
        match self {
            Grantee::User(_) => None,
            Grantee::AllUsers => Some(ALL_USERS_URI),
            Grantee::AuthenticatedUsers => Some(AUTHENTICATED_USERS_URI),
            Grantee::LogDelivery => Some(LOG_DELIVERY_URI),
        }
    }

    pub fn from_group_uri(uri: &str) -> Option<Grantee> {
        match uri {
            ALL_USERS_URI => Some(Grantee::AllUsers),
            AUTHENTICATED_USERS_URI => Some(Grantee::AuthenticatedUsers),
            LOG_DELIVERY_URI => Some(Grantee::LogDelivery),
            _ => None,
        }
    }

    /// Whether a request by `requester` (`None`: anonymous) is this grantee.
    fn covers(&self, requester: Option<&str>) -> bool {
        match self {
            Grantee::User(id) => requester == Some(id.as_str()),
            Grantee::AllUsers => true,
            Grantee::AuthenticatedUsers => requester.is_some(),
            Grantee::LogDelivery => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

impl Grant {
    pub fn new(grantee: Grantee, permission: Permission) -> Grant {
        Grant { grantee, permission }
    }

    fn full_control(id: &str) -> Grant {
        Grant::new(Grantee::User(id.to_string()), Permission::FullControl)
    }

    /// The stored form: a permission character, a grantee character, then the user's ID
    /// (`Fu` + key, `ra`, ...). Canonical IDs are printable without newlines (`users::validate`).
    pub fn encode(&self) -> String {
        let (kind, id) = match &self.grantee {
            Grantee::User(id) => ('u', id.as_str()),
            Grantee::AllUsers => ('a', ""),
            Grantee::AuthenticatedUsers => ('A', ""),
            Grantee::LogDelivery => ('l', ""),
        };
        format!("{}{kind}{id}", self.permission.code())
    }

    pub fn decode(text: &str) -> Option<Grant> {
        let mut chars = text.chars();
        let code = chars.next()?;
        let permission = Permission::ALL.into_iter().find(|p| p.code() == code)?;
        let grantee = match chars.next()? {
            'u' => Grantee::User(chars.as_str().to_string()),
            'a' => Grantee::AllUsers,
            'A' => Grantee::AuthenticatedUsers,
            'l' => Grantee::LogDelivery,
            _ => return None,
        };
        Some(Grant { grantee, permission })
    }
}

/// The grants a new bucket or object has when none are given: its owner's full control.
pub fn private(owner: &str) -> Vec<Grant> {
    vec![Grant::full_control(owner)]
}

/// Whether `grants`, owned by `owner`, let `requester` (`None`: anonymous) do what `wanted`
/// allows. The owner may always read and change the ACL.
pub fn allows(grants: &[Grant], owner: &str, requester: Option<&str>, wanted: Permission) -> bool {
    if requester == Some(owner) && matches!(wanted, Permission::ReadAcp | Permission::WriteAcp) {
        return true;
    }
    grants.iter().any(|g| (g.permission == wanted || g.permission == Permission::FullControl) && g.grantee.covers(requester))
}

/// Whether `grants` give anything to everyone or to every signed user.
pub fn is_public(grants: &[Grant]) -> bool {
    grants.iter().any(|g| matches!(g.grantee, Grantee::AllUsers | Grantee::AuthenticatedUsers))
}

/// [`allows`], with grants to everyone and every signed user left out when `ignore_public`
/// (a bucket's `IgnorePublicAcls`).
pub fn allows_unless_public(grants: &[Grant], owner: &str, requester: Option<&str>, wanted: Permission, ignore_public: bool) -> bool {
    if !ignore_public {
        return allows(grants, owner, requester, wanted);
    }
    let private: Vec<Grant> = grants.iter().filter(|g| matches!(g.grantee, Grantee::User(_))).cloned().collect();
    allows(&private, owner, requester, wanted)
}

/// A bucket's public access block (PutPublicAccessBlock): what it refuses or ignores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublicAccessBlock {
    /// Refuse requests that set a public ACL (on the bucket or an object).
    pub block_public_acls: bool,
    /// Act as if public grants were not there.
    pub ignore_public_acls: bool,
    /// Refuse a public bucket policy.
    pub block_public_policy: bool,
    /// With a public policy in place, let its Allows open the bucket to its owner only.
    pub restrict_public_buckets: bool,
}

/// Who owns the objects written into a bucket (PutBucketOwnershipControls).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectOwnership {
    /// The bucket's owner owns every object, and ACLs are off: they decide nothing, and a
    /// request that sets one (other than `bucket-owner-full-control`) is refused.
    BucketOwnerEnforced,
    /// An object written with `bucket-owner-full-control` becomes the bucket owner's.
    BucketOwnerPreferred,
    /// The writer owns what it writes (S3's legacy model, and the default here).
    ObjectWriter,
}

impl ObjectOwnership {
    pub const ALL: [ObjectOwnership; 3] = [ObjectOwnership::BucketOwnerEnforced, ObjectOwnership::BucketOwnerPreferred, ObjectOwnership::ObjectWriter];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectOwnership::BucketOwnerEnforced => "BucketOwnerEnforced",
            ObjectOwnership::BucketOwnerPreferred => "BucketOwnerPreferred",
            ObjectOwnership::ObjectWriter => "ObjectWriter",
        }
    }

    pub fn parse(text: &str) -> Option<ObjectOwnership> {
        ObjectOwnership::ALL.into_iter().find(|o| o.as_str() == text.trim())
    }
}

/// What is wrong with an ACL a request gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclError {
    /// An unknown canned ACL name.
    UnknownCanned(String),
    /// `x-amz-acl` and `x-amz-grant-*` together.
    CannedAndGrants,
    /// A grant header's value that does not read as `type="value", ...`.
    BadGrantHeader { header: &'static str, value: String },
    /// A grantee type other than `id`, `uri` or `emailAddress`, or a group URI S3 does not have.
    BadGrantee(String),
    /// A grant to an e-mail address: no user here has one.
    Email(String),
    /// A grant to a canonical ID no user has.
    UnknownUser(String),
    TooManyGrants(usize),
}

impl From<AclError> for S3Error {
    fn from(e: AclError) -> S3Error {
        match e {
            AclError::UnknownCanned(name) => S3Error::invalid_argument(format!("canned ACL {name:?} is not one S3 has"), "x-amz-acl", &name),
            AclError::CannedAndGrants => S3Error::new(ErrorCode::InvalidRequest, "Specifying both Canned ACLs and Header Grants is not allowed"),
            AclError::BadGrantHeader { header, value } => {
                S3Error::invalid_argument(format!("{header} {value:?} is not a list of type=\"value\" grantees"), header, &value)
            }
            AclError::BadGrantee(what) => S3Error::new(ErrorCode::InvalidArgument, format!("grantee {what} is not valid")),
            AclError::Email(address) => S3Error::new(
                ErrorCode::UnresolvableGrantByEmailAddress,
                format!("no user here has the e-mail address {address:?}: grant by canonical ID"),
            ),
            AclError::UnknownUser(id) => S3Error::new(ErrorCode::InvalidArgument, format!("Invalid id: no user has the canonical ID {id:?}")),
            AclError::TooManyGrants(n) => S3Error::new(ErrorCode::MalformedACLError, format!("the ACL has {n} grants; at most {GRANTS_MAX} are allowed")),
        }
    }
}

/// A canned ACL (`x-amz-acl`) for a resource owned by `owner`; `bucket_owner` is the owner of
/// the bucket an object goes into (`bucket-owner-read` and `bucket-owner-full-control` name it;
/// on a bucket they are the owner itself, and mean `private`, as in S3).
pub fn canned(name: &str, owner: &str, bucket_owner: &str) -> Result<Vec<Grant>, AclError> {
    let mut grants = private(owner);
    let mut also = |grantee: Grantee, permission| grants.push(Grant::new(grantee, permission));
    match name {
        "private" | "aws-exec-read" => {}
        "public-read" => also(Grantee::AllUsers, Permission::Read),
        "public-read-write" => {
            also(Grantee::AllUsers, Permission::Read);
            also(Grantee::AllUsers, Permission::Write);
        }
        "authenticated-read" => also(Grantee::AuthenticatedUsers, Permission::Read),
        "bucket-owner-read" if bucket_owner != owner => also(Grantee::User(bucket_owner.to_string()), Permission::Read),
        "bucket-owner-full-control" if bucket_owner != owner => also(Grantee::User(bucket_owner.to_string()), Permission::FullControl),
        "bucket-owner-read" | "bucket-owner-full-control" => {}
        "log-delivery-write" => {
            also(Grantee::LogDelivery, Permission::Write);
            also(Grantee::LogDelivery, Permission::ReadAcp);
        }
        other => return Err(AclError::UnknownCanned(other.to_string())),
    }
    Ok(grants)
}

/// One grant header's value: grantees as `type="value"` separated by commas (`id="..."`,
/// `uri="..."`, `emailAddress="..."`; quotes optional).
pub fn parse_grant_header(header: &'static str, value: &str, permission: Permission) -> Result<Vec<Grant>, AclError> {
    let bad = || AclError::BadGrantHeader { header, value: value.to_string() };
    value
        .split(',')
        .map(|item| {
            let (kind, v) = item.split_once('=').ok_or_else(bad)?;
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
            let grantee = grantee_of(kind.trim(), v)?;
            Ok(Grant::new(grantee, permission))
        })
        .collect()
}

/// A grantee from its type and value, as grant headers and (by element name) ACL bodies give them.
pub fn grantee_of(kind: &str, value: &str) -> Result<Grantee, AclError> {
    match kind {
        k if k.eq_ignore_ascii_case("id") => {
            if value.is_empty() {
                return Err(AclError::BadGrantee("with an empty ID".to_string()));
            }
            // No user's key holds one (`users::validate`), and the stored form ends a grant at
            // a newline.
            if value.chars().any(char::is_control) {
                return Err(AclError::BadGrantee(format!("ID {value:?} (control characters)")));
            }
            Ok(Grantee::User(value.to_string()))
        }
        k if k.eq_ignore_ascii_case("uri") => Grantee::from_group_uri(value).ok_or_else(|| AclError::BadGrantee(format!("group {value:?}"))),
        k if k.eq_ignore_ascii_case("emailAddress") => Err(AclError::Email(value.to_string())),
        other => Err(AclError::BadGrantee(format!("type {other:?}"))),
    }
}

/// The ACL a request's headers give, if any: a canned `x-amz-acl` or `x-amz-grant-*` headers
/// (not both). `header` looks a request header up by lowercase name.
pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>, owner: &str, bucket_owner: &str) -> Result<Option<Vec<Grant>>, AclError> {
    let canned_name = header("x-amz-acl");
    let mut grants = Vec::new();
    for permission in Permission::ALL {
        if let Some(value) = header(permission.grant_header()) {
            grants.extend(parse_grant_header(permission.grant_header(), value, permission)?);
        }
    }
    match canned_name {
        Some(_) if !grants.is_empty() => Err(AclError::CannedAndGrants),
        Some(name) => canned(name.trim(), owner, bucket_owner).map(Some),
        None if grants.is_empty() => Ok(None),
        None => checked(grants).map(Some),
    }
}

/// `grants` with duplicates dropped (first kept), if within `GRANTS_MAX`.
pub fn checked(mut grants: Vec<Grant>) -> Result<Vec<Grant>, AclError> {
    let mut seen = std::collections::HashSet::new();
    grants.retain(|g| seen.insert(g.clone()));
    if grants.len() > GRANTS_MAX {
        return Err(AclError::TooManyGrants(grants.len()));
    }
    Ok(grants)
}

/// Refuses grants to canonical IDs that `known` does not know.
pub fn check_users(grants: &[Grant], known: impl Fn(&str) -> bool) -> Result<(), AclError> {
    for g in grants {
        if let Grantee::User(id) = &g.grantee
            && !known(id)
        {
            return Err(AclError::UnknownUser(id.clone()));
        }
    }
    Ok(())
}

/// The stored form of a list of grants, one per line.
pub fn encode(grants: &[Grant]) -> String {
    grants.iter().map(Grant::encode).collect::<Vec<_>>().join("\n")
}

pub fn decode(text: &str) -> Option<Vec<Grant>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split('\n').map(Grant::decode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, p: Permission) -> Grant {
        Grant::new(Grantee::User(id.into()), p)
    }

    #[test]
    fn owner_keeps_acp_but_not_data_rights_without_grants() {
        let none: Vec<Grant> = Vec::new();
        assert!(allows(&none, "alice", Some("alice"), Permission::ReadAcp));
        assert!(allows(&none, "alice", Some("alice"), Permission::WriteAcp));
        assert!(!allows(&none, "alice", Some("alice"), Permission::Read));
        assert!(!allows(&none, "alice", Some("alice"), Permission::Write));
        let private = private("alice");
        for p in Permission::ALL {
            assert!(allows(&private, "alice", Some("alice"), p), "{p:?}");
            assert!(!allows(&private, "alice", Some("bob"), p), "{p:?}");
            assert!(!allows(&private, "alice", None, p), "{p:?}");
        }
    }

    #[test]
    fn groups_cover_whom_they_name() {
        let public = canned("public-read", "alice", "alice").expect("canned");
        assert!(allows(&public, "alice", None, Permission::Read));
        assert!(allows(&public, "alice", Some("bob"), Permission::Read));
        assert!(!allows(&public, "alice", None, Permission::Write));
        let authenticated = canned("authenticated-read", "alice", "alice").expect("canned");
        assert!(!allows(&authenticated, "alice", None, Permission::Read));
        assert!(allows(&authenticated, "alice", Some("bob"), Permission::Read));
        let rw = canned("public-read-write", "alice", "alice").expect("canned");
        assert!(allows(&rw, "alice", None, Permission::Write));
        assert!(!allows(&rw, "alice", None, Permission::WriteAcp));
        let log = canned("log-delivery-write", "alice", "alice").expect("canned");
        assert!(!allows(&log, "alice", Some("bob"), Permission::Write));
    }

    #[test]
    fn bucket_owner_canned_acls_name_the_bucket_owner() {
        assert_eq!(canned("bucket-owner-read", "bob", "alice"), Ok(vec![user("bob", Permission::FullControl), user("alice", Permission::Read)]));
        assert_eq!(
            canned("bucket-owner-full-control", "bob", "alice"),
            Ok(vec![user("bob", Permission::FullControl), user("alice", Permission::FullControl)])
        );
        assert_eq!(canned("bucket-owner-full-control", "alice", "alice"), Ok(private("alice")));
        assert_eq!(canned("public", "a", "a"), Err(AclError::UnknownCanned("public".into())));
    }

    #[test]
    fn grant_headers_are_the_whole_acl() {
        let headers = [
            ("x-amz-grant-read", r#"id="bob", uri="http://acs.amazonaws.com/groups/global/AllUsers""#),
            ("x-amz-grant-full-control", "id=carol"),
        ];
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let grants = from_headers(get, "alice", "alice").expect("valid").expect("some");
        assert_eq!(
            grants,
            vec![user("bob", Permission::Read), Grant::new(Grantee::AllUsers, Permission::Read), user("carol", Permission::FullControl)]
        );
        let both = |name: &str| match name {
            "x-amz-acl" => Some("private"),
            "x-amz-grant-read" => Some("id=bob"),
            _ => None,
        };
        assert_eq!(from_headers(both, "alice", "alice"), Err(AclError::CannedAndGrants));
        let none = |_: &str| None;
        assert_eq!(from_headers(none, "alice", "alice"), Ok(None));
        let email = |name: &str| (name == "x-amz-grant-write").then_some(r#"emailAddress="a@b.c""#);
        assert_eq!(from_headers(email, "alice", "alice"), Err(AclError::Email("a@b.c".into())));
        let garbage = |name: &str| (name == "x-amz-grant-write").then_some("bob");
        assert!(matches!(from_headers(garbage, "alice", "alice"), Err(AclError::BadGrantHeader { .. })));
        let control = |name: &str| (name == "x-amz-grant-write").then_some("id=\"a\nb\"");
        assert!(matches!(from_headers(control, "alice", "alice"), Err(AclError::BadGrantee(_))));
        let group = |name: &str| (name == "x-amz-grant-write").then_some("uri=http://example.com/everyone");
        assert!(matches!(from_headers(group, "alice", "alice"), Err(AclError::BadGrantee(_))));
    }

    #[test]
    fn limits_and_unknown_users_are_refused() {
        let many: Vec<Grant> = (0..=GRANTS_MAX).map(|i| user(&format!("u{i}"), Permission::Read)).collect();
        assert_eq!(checked(many.clone()), Err(AclError::TooManyGrants(GRANTS_MAX + 1)));
        let doubled: Vec<Grant> = many[..GRANTS_MAX].iter().chain(many[..GRANTS_MAX].iter()).cloned().collect();
        assert_eq!(checked(doubled).map(|g| g.len()), Ok(GRANTS_MAX));
        assert_eq!(check_users(&many, |id| id != "u7"), Err(AclError::UnknownUser("u7".into())));
        assert_eq!(check_users(&many, |_| true), Ok(()));
    }

    #[test]
    fn public_grants_can_be_ignored() {
        let grants = canned("public-read", "alice", "alice").expect("canned");
        assert!(is_public(&grants) && !is_public(&private("alice")));
        assert!(is_public(&canned("authenticated-read", "a", "a").expect("canned")));
        assert!(allows_unless_public(&grants, "alice", None, Permission::Read, false));
        assert!(!allows_unless_public(&grants, "alice", None, Permission::Read, true));
        assert!(allows_unless_public(&grants, "alice", Some("alice"), Permission::Read, true), "the owner's own grant stays");
    }

    #[test]
    fn stored_form_round_trips() {
        let grants = vec![
            user("AKIA-x.y_z~", Permission::FullControl),
            Grant::new(Grantee::AllUsers, Permission::Read),
            Grant::new(Grantee::AuthenticatedUsers, Permission::Write),
            Grant::new(Grantee::LogDelivery, Permission::ReadAcp),
            user("bob", Permission::WriteAcp),
        ];
        assert_eq!(decode(&encode(&grants)), Some(grants));
        assert_eq!(decode(""), Some(Vec::new()));
        assert_eq!(decode("Xu"), None);
        assert_eq!(decode("rZ"), None);
    }
}
