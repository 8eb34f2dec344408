//! Bucket policies (PutBucketPolicy), sans-IO: the JSON document, checked as S3 checks it, and
//! its evaluation against a request.
//!
//! Evaluation follows AWS's order: a statement that denies the request wins; else a statement
//! that allows it allows it, whatever the ACLs say; else the ACLs decide (`Decision::Default`).
//! A statement applies when its principal, action and resource match the request (each may be
//! inverted: `NotPrincipal`, `NotAction`, `NotResource`) and every condition holds.
//!
//! Principals are users by canonical ID (their access key), given bare, as
//! `arn:aws:iam::ID:root` or `arn:aws:iam::ID:user/NAME`, or `*` for everyone (anonymous
//! requests included). Conditions use the operators of AWS's policy grammar (`String*`,
//! `Numeric*`, `Bool`, `IpAddress`, `NotIpAddress`, `Null`, each with `IfExists`, and
//! `ForAnyValue:`/`ForAllValues:`), on the keys the caller provides (`Context::value`); a key the
//! request does not have fails a condition, except a negated one (`StringNotEquals`, ...), which
//! it passes, as in AWS.

use std::net::IpAddr;

use serde_json::Value;

use crate::error::{ErrorCode, S3Error};

/// Largest policy document (S3's limit for bucket policies).
pub const POLICY_BYTES_MAX: usize = 20 * 1024;
/// Most statements one policy holds; more than S3's size limit leaves room for.
pub const STATEMENTS_MAX: usize = 1000;
const VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A list of patterns, or (`Not...`) everything outside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patterns {
    pub inverted: bool,
    pub patterns: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub effect: Effect,
    /// Canonical IDs, or `*`.
    pub principals: Patterns,
    pub actions: Patterns,
    pub resources: Patterns,
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Bool,
    IpAddress,
    NotIpAddress,
    Null,
}

const OPERATORS: [(&str, Operator); 16] = [
    ("StringEquals", Operator::StringEquals),
    ("StringNotEquals", Operator::StringNotEquals),
    ("StringEqualsIgnoreCase", Operator::StringEqualsIgnoreCase),
    ("StringNotEqualsIgnoreCase", Operator::StringNotEqualsIgnoreCase),
    ("StringLike", Operator::StringLike),
    ("StringNotLike", Operator::StringNotLike),
    ("NumericEquals", Operator::NumericEquals),
    ("NumericNotEquals", Operator::NumericNotEquals),
    ("NumericLessThan", Operator::NumericLessThan),
    ("NumericLessThanEquals", Operator::NumericLessThanEquals),
    ("NumericGreaterThan", Operator::NumericGreaterThan),
    ("NumericGreaterThanEquals", Operator::NumericGreaterThanEquals),
    ("Bool", Operator::Bool),
    ("IpAddress", Operator::IpAddress),
    ("NotIpAddress", Operator::NotIpAddress),
    ("Null", Operator::Null),
];

impl Operator {
    /// Negated operators hold for a request without the key.
    fn negated(self) -> bool {
        matches!(self, Operator::StringNotEquals | Operator::StringNotEqualsIgnoreCase | Operator::StringNotLike | Operator::NumericNotEquals | Operator::NotIpAddress)
    }
}

/// How a condition's values are matched against a key with several values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetMode {
    /// A single-valued key (or any one of several values).
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub operator: Operator,
    pub if_exists: bool,
    pub set: SetMode,
    /// The key, lowercase (keys match without regard to case).
    pub key: String,
    pub values: Vec<String>,
}

/// What the policy says of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// Nothing: the ACLs decide.
    Default,
}

/// A request, as policies see it.
pub trait Context {
    /// The requester's canonical ID; `None` for an anonymous request.
    fn requester(&self) -> Option<&str>;
    /// `s3:GetObject`, ...
    fn action(&self) -> &str;
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
    fn resource(&self) -> &str;
    /// A condition key's values (`key` lowercase); empty when the request has no such key.
    fn value(&self, key: &str) -> Vec<String>;
}

fn malformed(message: impl Into<String>) -> S3Error {
    S3Error::new(ErrorCode::MalformedPolicy, message)
}

/// A string or a list of strings (AWS accepts either wherever a list is meant).
fn strings(value: &Value, what: &str) -> Result<Vec<String>, S3Error> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(|| malformed(format!("{what}: every entry must be a string"))))
            .collect(),
        _ => Err(malformed(format!("{what} must be a string or a non-empty list of strings"))),
    }
}

/// Parses and checks a bucket policy for `bucket`: its resources must be that bucket or its
/// objects, its actions S3's. Without a bucket (a policy stored before, read back) the
/// resources are not checked again.
pub fn parse(document: &[u8], bucket: Option<&str>) -> Result<Policy, S3Error> {
    if document.len() > POLICY_BYTES_MAX {
        return Err(S3Error::new(ErrorCode::InvalidArgument, format!("the policy is {} bytes; at most {POLICY_BYTES_MAX} are allowed", document.len())));
    }
    let doc: Value = serde_json::from_slice(document).map_err(|e| malformed(format!("Policies must be valid JSON: {e}")))?;
    let object = doc.as_object().ok_or_else(|| malformed("the policy must be a JSON object"))?;
    if let Some(version) = object.get("Version")
        && !version.as_str().is_some_and(|v| VERSIONS.contains(&v))
    {
        return Err(malformed(format!("unknown policy Version {version}: use 2012-10-17")));
    }
    let statements = match object.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => return Err(malformed("the policy has no Statement")),
    };
    if statements.is_empty() || statements.len() > STATEMENTS_MAX {
        return Err(malformed(format!("a policy needs 1 to {STATEMENTS_MAX} statements")));
    }
    let statements = statements.into_iter().map(|s| statement(s, bucket)).collect::<Result<Vec<_>, _>>()?;
    Ok(Policy { statements })
}

fn statement(value: &Value, bucket: Option<&str>) -> Result<Statement, S3Error> {
    let s = value.as_object().ok_or_else(|| malformed("each Statement must be a JSON object"))?;
    let effect = match s.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err(malformed("Invalid effect: a statement's Effect must be Allow or Deny")),
    };
    let principals = either(s, "Principal", "NotPrincipal", principal_ids)?;
    let actions = either(s, "Action", "NotAction", |v| strings(v, "Action"))?;
    for action in &actions.patterns {
        if !(action == "*" || action.to_ascii_lowercase().starts_with("s3:")) {
            return Err(malformed(format!("Policy has an invalid action: {action}")));
        }
    }
    let resources = either(s, "Resource", "NotResource", |v| strings(v, "Resource"))?;
    let bucket_arn = format!("arn:aws:s3:::{}", bucket.unwrap_or_default());
    for resource in resources.patterns.iter().filter(|_| bucket.is_some()) {
        let own = resource == &bucket_arn || resource.strip_prefix(bucket_arn.as_str()).is_some_and(|rest| rest.starts_with('/')) || resource == "*";
        // A pattern that could name this bucket (`arn:aws:s3:::buck*`) or its objects
        // (`arn:aws:s3:::*/*`) is taken as S3 takes it.
        let pattern = resource.starts_with("arn:aws:s3:::")
            && (glob(resource, &bucket_arn, false) || glob(resource, &format!("{bucket_arn}/"), false));
        if !own && !pattern {
            return Err(malformed(format!("Policy has invalid resource: {resource} is not bucket {} or its objects", bucket.unwrap_or_default())));
        }
    }
    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(c) => conditions(c)?,
    };
    Ok(Statement { effect, principals, actions, resources, conditions })
}

/// `name` or its inverse `not_name` (one of them, not both).
fn either(
    s: &serde_json::Map<String, Value>,
    name: &str,
    not_name: &str,
    read: impl Fn(&Value) -> Result<Vec<String>, S3Error>,
) -> Result<Patterns, S3Error> {
    match (s.get(name), s.get(not_name)) {
        (Some(_), Some(_)) => Err(malformed(format!("a statement may not have both {name} and {not_name}"))),
        (Some(v), None) => Ok(Patterns { inverted: false, patterns: read(v)? }),
        (None, Some(v)) => Ok(Patterns { inverted: true, patterns: read(v)? }),
        (None, None) => Err(malformed(format!("Missing required field {name}"))),
    }
}

/// A principal: `"*"`, or `{"AWS": ...}`/`{"CanonicalUser": ...}` naming users.
fn principal_ids(value: &Value) -> Result<Vec<String>, S3Error> {
    let raw = match value {
        Value::String(s) if s == "*" => vec!["*".to_string()],
        Value::Object(map) if !map.is_empty() => {
            let mut all = Vec::new();
            for (kind, ids) in map {
                if kind != "AWS" && kind != "CanonicalUser" {
                    return Err(malformed(format!("Invalid principal type {kind:?}: AWS or CanonicalUser")));
                }
                all.extend(strings(ids, "Principal")?);
            }
            all
        }
        _ => return Err(malformed("Invalid principal in policy: \"*\" or {\"AWS\": [...]}")),
    };
    Ok(raw.into_iter().map(|p| canonical_id(&p)).collect())
}

/// `arn:aws:iam::ID:root` and `arn:aws:iam::ID:user/NAME` name user ID; anything else is an ID.
fn canonical_id(principal: &str) -> String {
    match principal.strip_prefix("arn:aws:iam::").and_then(|rest| rest.split_once(':')) {
        Some((id, _)) if !id.is_empty() => id.to_string(),
        _ => principal.to_string(),
    }
}

fn conditions(value: &Value) -> Result<Vec<Condition>, S3Error> {
    let map = value.as_object().ok_or_else(|| malformed("Condition must be a JSON object"))?;
    let mut out = Vec::new();
    for (name, keys) in map {
        let (set, rest) = match name.split_once(':') {
            Some(("ForAnyValue", rest)) => (SetMode::ForAnyValue, rest),
            Some(("ForAllValues", rest)) => (SetMode::ForAllValues, rest),
            Some(_) => return Err(malformed(format!("Invalid Condition operator {name:?}"))),
            None => (SetMode::Single, name.as_str()),
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let operator = OPERATORS.iter().find(|(n, _)| *n == base).map(|(_, o)| *o).ok_or_else(|| malformed(format!("Invalid Condition operator {name:?}")))?;
        let keys = keys.as_object().ok_or_else(|| malformed(format!("Condition {name}: a JSON object of keys")))?;
        for (key, values) in keys {
            let values = match values {
                Value::Bool(b) => vec![b.to_string()],
                Value::Number(n) => vec![n.to_string()],
                other => strings(other, "Condition value")?,
            };
            if matches!(operator, Operator::IpAddress | Operator::NotIpAddress) && let Some(bad) = values.iter().find(|v| cidr(v).is_none()) {
                return Err(malformed(format!("Condition {name}: {bad:?} is not an IP address or CIDR block")));
            }
            out.push(Condition { operator, if_exists, set, key: key.to_ascii_lowercase(), values });
        }
    }
    Ok(out)
}

/// `*` and `?` wildcards; actions match without regard to case.
pub fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let eq = |a: char, b: char| if ignore_case { a.eq_ignore_ascii_case(&b) } else { a == b };
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point (the last `*`): linear in practice.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match text.split_once('/') {
        Some((a, b)) => (a.parse::<IpAddr>().ok()?, b.parse::<u8>().ok()?),
        None => {
            let a = text.parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((addr, bits))
}

fn in_cidr(ip: &str, block: &str) -> bool {
    let (Some((net, bits)), Ok(ip)) = (cidr(block), ip.parse::<IpAddr>()) else { return false };
    let (a, b, width): (u128, u128, u32) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n).into(), u32::from(i).into(), 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (a >> shift) == (b >> shift)
}

impl Condition {
    fn holds(&self, ctx: &dyn Context) -> bool {
        let present = ctx.value(&self.key);
        if self.operator == Operator::Null {
            // `"Null": {"key": "true"}`: holds when the key is absent.
            let want_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return want_absent == present.is_empty();
        }
        if present.is_empty() {
            return self.if_exists || self.operator.negated() || self.set == SetMode::ForAllValues;
        }
        let one = |v: &str| self.matches_one(v);
        match self.set {
            SetMode::ForAllValues => present.iter().all(|v| one(v)),
            SetMode::Single | SetMode::ForAnyValue => {
                if self.operator.negated() {
                    // A negated operator: none of the request's values matches a listed one.
                    present.iter().all(|v| one(v))
                } else {
                    present.iter().any(|v| one(v))
                }
            }
        }
    }

    /// Whether one request value satisfies the operator against the listed values.
    fn matches_one(&self, v: &str) -> bool {
        let any = |f: &dyn Fn(&str) -> bool| self.values.iter().any(|w| f(w));
        let number = |s: &str| s.trim().parse::<f64>().ok();
        let compare = |f: fn(f64, f64) -> bool| number(v).is_some_and(|x| self.values.iter().any(|w| number(w).is_some_and(|y| f(x, y))));
        match self.operator {
            Operator::StringEquals => any(&|w| w == v),
            Operator::StringNotEquals => !any(&|w| w == v),
            Operator::StringEqualsIgnoreCase => any(&|w| w.eq_ignore_ascii_case(v)),
            Operator::StringNotEqualsIgnoreCase => !any(&|w| w.eq_ignore_ascii_case(v)),
            Operator::StringLike => any(&|w| glob(w, v, false)),
            Operator::StringNotLike => !any(&|w| glob(w, v, false)),
            Operator::NumericEquals => compare(|x, y| x == y),
            Operator::NumericNotEquals => !compare(|x, y| x == y),
            Operator::NumericLessThan => compare(|x, y| x < y),
            Operator::NumericLessThanEquals => compare(|x, y| x <= y),
            Operator::NumericGreaterThan => compare(|x, y| x > y),
            Operator::NumericGreaterThanEquals => compare(|x, y| x >= y),
            Operator::Bool => any(&|w| w.eq_ignore_ascii_case(v)),
            Operator::IpAddress => any(&|w| in_cidr(v, w)),
            Operator::NotIpAddress => !any(&|w| in_cidr(v, w)),
            Operator::Null => unreachable!("handled before"),
        }
    }
}

impl Patterns {
    fn matches(&self, f: impl Fn(&str) -> bool) -> bool {
        self.patterns.iter().any(|p| f(p)) != self.inverted
    }
}

impl Statement {
    fn applies(&self, ctx: &dyn Context) -> bool {
        let requester = ctx.requester();
        self.principals.matches(|p| p == "*" || requester == Some(p))
            && self.actions.matches(|p| glob(p, ctx.action(), true))
            && self.resources.matches(|p| glob(p, ctx.resource(), false))
            && self.conditions.iter().all(|c| c.holds(ctx))
    }
}

impl Policy {
    /// Whether the policy opens anything to everyone: an Allow whose principal takes in
    /// anonymous requests and that no address condition narrows (S3's "public" for
    /// `BlockPublicPolicy`, `RestrictPublicBuckets` and GetBucketPolicyStatus).
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            let everyone = s.principals.inverted || s.principals.patterns.iter().any(|p| p == "*");
            let narrowed = s.conditions.iter().any(|c| c.key == "aws:sourceip" && c.operator == Operator::IpAddress)
                || s.conditions.iter().any(|c| matches!(c.key.as_str(), "aws:userid" | "aws:username" | "aws:principaltype"));
            s.effect == Effect::Allow && everyone && !narrowed
        })
    }

    pub fn evaluate(&self, ctx: &dyn Context) -> Decision {
        let mut allowed = false;
        for s in self.statements.iter().filter(|s| s.applies(ctx)) {
            match s.effect {
                Effect::Deny => return Decision::Deny,
                Effect::Allow => allowed = true,
            }
        }
        if allowed { Decision::Allow } else { Decision::Default }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Req<'a> {
        requester: Option<&'a str>,
        action: &'a str,
        resource: &'a str,
        values: Vec<(&'a str, &'a str)>,
    }

    impl Context for Req<'_> {
        fn requester(&self) -> Option<&str> {
            self.requester
        }
        fn action(&self) -> &str {
            self.action
        }
        fn resource(&self) -> &str {
            self.resource
        }
        fn value(&self, key: &str) -> Vec<String> {
            self.values.iter().filter(|(k, _)| *k == key).map(|(_, v)| v.to_string()).collect()
        }
    }

    fn req<'a>(requester: Option<&'a str>, action: &'a str, resource: &'a str) -> Req<'a> {
        Req { requester, action, resource, values: Vec::new() }
    }

    #[test]
    fn public_read_of_objects_and_a_deny_that_wins() {
        let p = parse(
            br#"{"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::web/*"},
                {"Effect": "Deny", "Principal": {"AWS": ["arn:aws:iam::mallory:root"]}, "Action": "s3:*", "Resource": ["arn:aws:s3:::web", "arn:aws:s3:::web/*"]}
            ]}"#,
            Some("web"),
        )
        .expect("valid");
        assert_eq!(p.evaluate(&req(None, "s3:GetObject", "arn:aws:s3:::web/index.html")), Decision::Allow);
        assert_eq!(p.evaluate(&req(None, "s3:getobject", "arn:aws:s3:::web/a/b")), Decision::Allow, "actions match without case");
        assert_eq!(p.evaluate(&req(None, "s3:PutObject", "arn:aws:s3:::web/x")), Decision::Default);
        assert_eq!(p.evaluate(&req(None, "s3:ListBucket", "arn:aws:s3:::web")), Decision::Default);
        assert_eq!(p.evaluate(&req(Some("mallory"), "s3:GetObject", "arn:aws:s3:::web/index.html")), Decision::Deny);
    }

    #[test]
    fn conditions_follow_aws_rules_for_missing_keys() {
        let p = parse(
            br#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
                "Condition": {"StringLike": {"s3:prefix": "home/bob/*"}, "NumericLessThanEquals": {"s3:max-keys": 100}}}}"#,
            Some("b"),
        )
        .expect("valid");
        let mut r = req(Some("bob"), "s3:ListBucket", "arn:aws:s3:::b");
        assert_eq!(p.evaluate(&r), Decision::Default, "no prefix: StringLike fails");
        r.values = vec![("s3:prefix", "home/bob/docs"), ("s3:max-keys", "50")];
        assert_eq!(p.evaluate(&r), Decision::Allow);
        r.values = vec![("s3:prefix", "home/alice/"), ("s3:max-keys", "50")];
        assert_eq!(p.evaluate(&r), Decision::Default);
        r.values = vec![("s3:prefix", "home/bob/"), ("s3:max-keys", "1000")];
        assert_eq!(p.evaluate(&r), Decision::Default);

        let deny = parse(
            br#"{"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*",
                "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "::1"]}}},
               {"Effect": "Allow", "Principal": "*", "NotAction": "s3:Delete*", "NotResource": "arn:aws:s3:::b/private/*"}]}"#,
            Some("b"),
        )
        .expect("valid");
        let mut r = req(None, "s3:GetObject", "arn:aws:s3:::b/k");
        r.values = vec![("aws:sourceip", "10.1.2.3")];
        assert_eq!(deny.evaluate(&r), Decision::Allow);
        r.values = vec![("aws:sourceip", "192.168.0.1")];
        assert_eq!(deny.evaluate(&r), Decision::Deny);
        r.values = vec![("aws:sourceip", "::1")];
        assert_eq!(deny.evaluate(&r), Decision::Allow);
        r.values = Vec::new();
        assert_eq!(deny.evaluate(&r), Decision::Deny, "a negated operator holds for a missing key");
        let mut d = req(None, "s3:DeleteObject", "arn:aws:s3:::b/k");
        d.values = vec![("aws:sourceip", "10.0.0.1")];
        assert_eq!(deny.evaluate(&d), Decision::Default, "NotAction");
        let mut g = req(None, "s3:GetObject", "arn:aws:s3:::b/private/x");
        g.values = vec![("aws:sourceip", "10.0.0.1")];
        assert_eq!(deny.evaluate(&g), Decision::Default, "NotResource");
    }

    #[test]
    fn malformed_policies_are_refused() {
        let refused = |doc: &str| parse(doc.as_bytes(), Some("b")).expect_err(doc).code;
        let ok = r#""Effect": "Allow", "Principal": "*", "Action": "s3:GetObject""#;
        assert_eq!(refused("not json"), ErrorCode::MalformedPolicy);
        assert_eq!(refused(r#"{"Statement": []}"#), ErrorCode::MalformedPolicy);
        assert_eq!(refused(&format!(r#"{{"Statement": [{{{ok}, "Resource": "arn:aws:s3:::other/*"}}]}}"#)), ErrorCode::MalformedPolicy);
        assert_eq!(refused(&format!(r#"{{"Version": "2020-01-01", "Statement": [{{{ok}, "Resource": "arn:aws:s3:::b/*"}}]}}"#)), ErrorCode::MalformedPolicy);
        assert_eq!(refused(r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ec2:Run", "Resource": "arn:aws:s3:::b"}]}"#), ErrorCode::MalformedPolicy);
        assert_eq!(refused(r#"{"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}]}"#), ErrorCode::MalformedPolicy);
        assert_eq!(refused(r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}]}"#), ErrorCode::MalformedPolicy);
        assert_eq!(
            refused(&format!(r#"{{"Statement": [{{{ok}, "Resource": "arn:aws:s3:::b/*", "Condition": {{"StringSortOf": {{"s3:prefix": "a"}}}}}}]}}"#)),
            ErrorCode::MalformedPolicy
        );
        assert_eq!(
            refused(&format!(r#"{{"Statement": [{{{ok}, "Resource": "arn:aws:s3:::b/*", "Condition": {{"IpAddress": {{"aws:SourceIp": "10.0.0.0/99"}}}}}}]}}"#)),
            ErrorCode::MalformedPolicy
        );
        assert_eq!(refused(&" ".repeat(POLICY_BYTES_MAX + 1)), ErrorCode::InvalidArgument);
        assert!(parse(format!(r#"{{"Statement": [{{{ok}, "Resource": "arn:aws:s3:::b*"}}]}}"#).as_bytes(), Some("b")).is_ok(), "a pattern naming the bucket");
        assert!(parse(format!(r#"{{"Statement": [{{{ok}, "Resource": "arn:aws:s3:::*/*"}}]}}"#).as_bytes(), Some("b")).is_ok(), "a pattern naming its objects");
        assert_eq!(refused(&format!(r#"{{"Statement": [{{{ok}, "Resource": "arn:aws:s3:::c*/*"}}]}}"#)), ErrorCode::MalformedPolicy);
    }

    #[test]
    fn public_means_open_to_everyone_without_an_address_condition() {
        let public = |doc: &str| parse(doc.as_bytes(), Some("b")).expect(doc).is_public();
        assert!(public(r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}"#));
        assert!(public(r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "s3:*", "Resource": "arn:aws:s3:::b"}]}"#));
        assert!(public(r#"{"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": "bob"}, "Action": "s3:*", "Resource": "arn:aws:s3:::b"}]}"#));
        assert!(!public(r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:*", "Resource": "arn:aws:s3:::b"}]}"#));
        assert!(!public(r#"{"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}]}"#));
        assert!(!public(
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}"#
        ));
    }

    #[test]
    fn globs() {
        assert!(glob("s3:Get*", "s3:GetObjectAcl", true));
        assert!(glob("arn:aws:s3:::b/*/x?", "arn:aws:s3:::b/a/b/xy", false));
        assert!(!glob("arn:aws:s3:::b/*/x?", "arn:aws:s3:::b/a/b/x", false));
        assert!(glob("*", "", false));
        assert!(!glob("a", "A", false));
        assert!(in_cidr("192.168.1.7", "192.168.0.0/16") && !in_cidr("192.169.1.7", "192.168.0.0/16"));
        assert!(in_cidr("1.2.3.4", "0.0.0.0/0") && !in_cidr("::1", "0.0.0.0/0"));
    }
}
