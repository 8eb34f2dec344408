//! Cross-origin resource sharing: a bucket's CORS rules, as S3 keeps and applies them. Sans-IO:
//! rules in, the headers a preflight (`OPTIONS`) or an actual cross-origin request gets out.
//! The XML form is read in `xml::requests` and written in `xml::responses`.

use crate::error::{ErrorCode, S3Error};

/// Most rules in one configuration, as S3 allows.
pub const CORS_RULES_MAX: usize = 100;
/// Methods a rule may allow.
pub const CORS_METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorsRule {
    pub id: Option<String>,
    /// Exact origins, or patterns with one `*` (`https://*.example.com`, `*`).
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    /// Header names a preflight may ask for, case-insensitive, with one `*` at most.
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<u64>,
}

/// Refuses a configuration S3 would refuse, saying why.
pub fn check_rules(rules: &[CorsRule]) -> Result<(), S3Error> {
    let invalid = |m: String| S3Error::new(ErrorCode::InvalidRequest, m);
    if rules.is_empty() || rules.len() > CORS_RULES_MAX {
        return Err(S3Error::new(ErrorCode::MalformedXML, format!("a CORS configuration holds 1 to {CORS_RULES_MAX} rules, not {}", rules.len())));
    }
    for rule in rules {
        if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
            return Err(S3Error::new(ErrorCode::MalformedXML, "each CORSRule needs an AllowedOrigin and an AllowedMethod"));
        }
        if let Some(m) = rule.allowed_methods.iter().find(|m| !CORS_METHODS.contains(&m.as_str())) {
            return Err(invalid(format!("Found unsupported HTTP method in CORS config. Unsupported method is {m}")));
        }
        let all = rule.allowed_origins.iter().chain(&rule.allowed_headers).chain(&rule.expose_headers).chain(&rule.id);
        if let Some(v) = all.into_iter().find(|v| v.chars().any(char::is_control)) {
            // Values go out in response headers: a control character would break the head.
            return Err(invalid(format!("CORS rule value {v:?} holds a control character")));
        }
        if let Some(o) = rule.allowed_origins.iter().find(|o| o.matches('*').count() > 1) {
            return Err(invalid(format!("AllowedOrigin \"{o}\" can not have more than one wildcard.")));
        }
        if let Some(h) = rule.allowed_headers.iter().find(|h| h.matches('*').count() > 1) {
            return Err(invalid(format!("AllowedHeader \"{h}\" can not have more than one wildcard.")));
        }
    }
    Ok(())
}

/// Whether `value` matches `pattern`, which holds at most one `*` (any run of characters).
fn wildcard_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| if ignore_case { a.eq_ignore_ascii_case(b) } else { a == b };
    match pattern.split_once('*') {
        None => eq(pattern, value),
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.is_char_boundary(prefix.len())
                && value.is_char_boundary(value.len() - suffix.len())
                && eq(&value[..prefix.len()], prefix)
                && eq(&value[value.len() - suffix.len()..], suffix)
        }
    }
}

impl CorsRule {
    fn allows(&self, origin: &str, method: &str, headers: &[&str]) -> bool {
        self.allowed_origins.iter().any(|o| wildcard_match(o, origin, false))
            && self.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| self.allowed_headers.iter().any(|a| wildcard_match(a, h, true)))
    }
}

/// The first rule allowing `origin` to use `method` with `headers` (a preflight's
/// Access-Control-Request-Headers; none for an actual request).
pub fn matching<'r>(rules: &'r [CorsRule], origin: &str, method: &str, headers: &[&str]) -> Option<&'r CorsRule> {
    rules.iter().find(|r| r.allows(origin, method, headers))
}

/// The headers a request from `origin` that `rule` allows gets: for a preflight also the
/// headers it asked for and the rule's max age.
pub fn response_headers(rule: &CorsRule, origin: &str, preflight_headers: Option<&[&str]>) -> Vec<(String, String)> {
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    let mut out = vec![
        ("access-control-allow-origin".to_string(), if any_origin { "*".to_string() } else { origin.to_string() }),
        ("access-control-allow-methods".to_string(), rule.allowed_methods.join(", ")),
        ("vary".to_string(), "Origin, Access-Control-Request-Headers, Access-Control-Request-Method".to_string()),
    ];
    if !any_origin {
        out.push(("access-control-allow-credentials".to_string(), "true".to_string()));
    }
    if !rule.expose_headers.is_empty() {
        out.push(("access-control-expose-headers".to_string(), rule.expose_headers.join(", ")));
    }
    if let Some(headers) = preflight_headers {
        if !headers.is_empty() {
            out.push(("access-control-allow-headers".to_string(), headers.join(", ")));
        }
        if let Some(age) = rule.max_age_seconds {
            out.push(("access-control-max-age".to_string(), age.to_string()));
        }
    }
    out
}

/// The header names of an `Access-Control-Request-Headers` value, lowercase.
pub fn requested_headers(value: &str) -> Vec<String> {
    value.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect()
}

/// Rules as the bucket table stores them (JSON), and back.
pub fn to_json(rules: &[CorsRule]) -> serde_json::Value {
    rules
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id, "origins": r.allowed_origins, "methods": r.allowed_methods,
                "headers": r.allowed_headers, "expose": r.expose_headers, "max_age_s": r.max_age_seconds,
            })
        })
        .collect()
}

pub fn from_json(value: &serde_json::Value) -> Option<Vec<CorsRule>> {
    let strings = |v: &serde_json::Value, name: &str| -> Option<Vec<String>> {
        v.get(name)?.as_array()?.iter().map(|s| s.as_str().map(str::to_string)).collect()
    };
    value
        .as_array()?
        .iter()
        .map(|r| {
            Some(CorsRule {
                id: r.get("id").and_then(|i| i.as_str()).map(str::to_string),
                allowed_origins: strings(r, "origins")?,
                allowed_methods: strings(r, "methods")?,
                allowed_headers: strings(r, "headers")?,
                expose_headers: strings(r, "expose")?,
                max_age_seconds: r.get("max_age_s").and_then(|a| a.as_u64()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            ..CorsRule::default()
        }
    }

    #[test]
    fn origins_methods_and_headers_match_as_s3_does() {
        // The patterns of Ceph's test_cors_origin_response.
        let rules = vec![
            rule(&["*suffix"], &["GET"], &[]),
            rule(&["start*end"], &["GET"], &[]),
            rule(&["prefix*"], &["GET"], &[]),
            rule(&["*.put"], &["PUT"], &[]),
            rule(&["https://app.example.com"], &["GET", "PUT"], &["x-amz-*", "content-type"]),
        ];
        let first = |origin: &str, method: &str, headers: &[&str]| matching(&rules, origin, method, headers).map(|r| r.allowed_origins[0].as_str());
        assert_eq!(first("foo.suffix", "GET", &[]), Some("*suffix"));
        assert_eq!(first("foo.bar", "GET", &[]), None);
        assert_eq!(first("startend", "GET", &[]), Some("start*end"));
        assert_eq!(first("start1end", "GET", &[]), Some("start*end"));
        assert_eq!(first("prefix", "GET", &[]), Some("prefix*"));
        assert_eq!(first("foo.put", "GET", &[]), None);
        assert_eq!(first("foo.put", "PUT", &[]), Some("*.put"));
        assert_eq!(first("https://app.example.com", "PUT", &["x-amz-meta-a", "Content-Type"]), Some("https://app.example.com"));
        assert_eq!(first("https://app.example.com", "PUT", &["authorization"]), None, "a header no rule allows");
        assert_eq!(first("https://APP.example.com", "GET", &[]), None, "origins are case-sensitive");
        assert!(!wildcard_match("ab*ba", "aba", false), "prefix and suffix may not overlap");
    }

    #[test]
    fn headers_and_checks() {
        let mut r = rule(&["*"], &["GET", "HEAD"], &["*"]);
        r.expose_headers = vec!["ETag".into()];
        r.max_age_seconds = Some(600);
        let h = response_headers(&r, "https://a.example", Some(&["x-amz-date"]));
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("access-control-allow-origin"), Some("*"));
        assert_eq!(get("access-control-allow-methods"), Some("GET, HEAD"));
        assert_eq!(get("access-control-allow-headers"), Some("x-amz-date"));
        assert_eq!(get("access-control-max-age"), Some("600"));
        assert_eq!(get("access-control-expose-headers"), Some("ETag"));
        assert_eq!(get("access-control-allow-credentials"), None);
        assert_eq!(from_json(&to_json(std::slice::from_ref(&r))), Some(vec![r.clone()]));
        assert!(check_rules(&[r.clone()]).is_ok());
        assert!(check_rules(&[]).is_err());
        assert!(check_rules(&[rule(&["*"], &["PATCH"], &[])]).is_err());
        assert!(check_rules(&[rule(&["*a*"], &["GET"], &[])]).is_err());
        assert!(check_rules(&[rule(&["https://a\r\nx-injected: 1"], &["GET"], &[])]).is_err());
        assert_eq!(requested_headers(" X-Amz-Date, content-type ,"), vec!["x-amz-date", "content-type"]);
    }
}
