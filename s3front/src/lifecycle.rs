//! Bucket lifecycle rules (PutBucketLifecycleConfiguration), sans-IO: what a rule says, whether
//! it is valid, which objects it covers, and when it expires them.
//!
//! What runs here: `Expiration` (`Days` after an object's last modification, rounded up to the
//! next midnight UTC as S3 rounds it, or a `Date`) deletes current objects;
//! `AbortIncompleteMultipartUpload` aborts uploads that many days after they began. Rules
//! about noncurrent versions and delete markers are accepted and kept, and have nothing to act
//! on until versioning exists. Transitions are refused: there is one storage class.
//!
//! A "day" is `DAY_MS` unless the server is started with a shorter one (`--lifecycle-day-s`),
//! so that tests (and Ceph's s3-tests, as with its `rgw_lc_debug_interval`) see rules act in
//! seconds.

use crate::error::{ErrorCode, S3Error};

/// Most rules one configuration holds (S3's limit).
pub const RULES_MAX: usize = 1000;
/// Longest rule ID (S3's limit).
pub const RULE_ID_CHARS_MAX: usize = 255;
pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// The objects a rule covers: every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub prefix: Option<String>,
    pub tags: Vec<(String, String)>,
    pub size_greater_than: Option<u64>,
    pub size_less_than: Option<u64>,
}

/// How the rule named its objects, so that GetBucketLifecycle answers in the same form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterForm {
    /// The deprecated rule-level `<Prefix>`.
    Legacy,
    /// `<Filter>`.
    Filter,
    /// Neither.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiration {
    Days(u32),
    /// Midnight UTC of a date, in Unix milliseconds.
    DateMs(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    pub filter: Filter,
    pub form: FilterForm,
    pub expiration: Option<Expiration>,
    pub expired_object_delete_marker: Option<bool>,
    pub abort_incomplete_upload_days: Option<u32>,
    pub noncurrent_days: Option<u32>,
    pub newer_noncurrent_versions: Option<u32>,
}

impl Filter {
    /// Whether an object with this key, size and tags is covered.
    pub fn covers(&self, key: &str, size: u64, tags: &[(String, String)]) -> bool {
        self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && self.tags.iter().all(|t| tags.contains(t))
            && self.size_greater_than.is_none_or(|gt| size > gt)
            && self.size_less_than.is_none_or(|lt| size < lt)
    }

    /// Whether an upload of this key is covered: uploads have no size or tags yet, so a rule
    /// naming either cannot abort them (S3 refuses such rules, `check`).
    fn covers_upload(&self, key: &str) -> bool {
        self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
    }
}

/// `at_ms` plus `days`, rounded up to the next day boundary (S3: "the next midnight UTC").
pub fn after_days_ms(at_ms: u64, days: u32, day_ms: u64) -> u64 {
    at_ms.saturating_add(days as u64 * day_ms).div_ceil(day_ms).saturating_mul(day_ms)
}

/// When the earliest enabled rule of `rules` expires an object modified at `modified_ms`
/// (key, size, tags), and that rule's ID; `None` if no rule expires it.
pub fn expiry<'a>(rules: &'a [Rule], key: &str, size: u64, tags: &[(String, String)], modified_ms: u64, day_ms: u64) -> Option<(u64, &'a str)> {
    rules
        .iter()
        .filter(|r| r.enabled && r.filter.covers(key, size, tags))
        .filter_map(|r| {
            let at = match r.expiration? {
                Expiration::Days(days) => after_days_ms(modified_ms, days, day_ms),
                Expiration::DateMs(date) => date,
            };
            Some((at, r.id.as_str()))
        })
        .min()
}

/// When the earliest enabled rule expires a noncurrent version of an object (key, size,
/// tags): `noncurrent_ms` is when it stopped being current (its successor's writing), `newer`
/// how many noncurrent versions of the key are newer than it (a rule's
/// `NewerNoncurrentVersions` keeps that many whatever their age).
pub fn noncurrent_expiry(rules: &[Rule], key: &str, size: u64, tags: &[(String, String)], noncurrent_ms: u64, newer: u32, day_ms: u64) -> Option<u64> {
    rules
        .iter()
        .filter(|r| r.enabled && r.filter.covers(key, size, tags))
        .filter(|r| r.newer_noncurrent_versions.is_none_or(|keep| newer >= keep))
        .filter_map(|r| Some(after_days_ms(noncurrent_ms, r.noncurrent_days?, day_ms)))
        .min()
}

/// Whether an enabled rule removes `key`'s delete marker once it is the key's only version.
pub fn removes_lone_marker(rules: &[Rule], key: &str) -> bool {
    rules.iter().any(|r| r.enabled && r.expired_object_delete_marker == Some(true) && r.filter.prefix.as_deref().is_none_or(|p| key.starts_with(p)))
}

/// When the earliest enabled rule aborts an upload of `key` begun at `started_ms`.
pub fn upload_expiry(rules: &[Rule], key: &str, started_ms: u64, day_ms: u64) -> Option<u64> {
    rules
        .iter()
        .filter(|r| r.enabled && r.filter.covers_upload(key))
        .filter_map(|r| Some(after_days_ms(started_ms, r.abort_incomplete_upload_days?, day_ms)))
        .min()
}

/// Whether any enabled rule may act on objects, their versions or uploads here.
pub fn acts(rules: &[Rule]) -> bool {
    rules.iter().any(|r| {
        r.enabled
            && (r.expiration.is_some()
                || r.abort_incomplete_upload_days.is_some()
                || r.noncurrent_days.is_some()
                || r.expired_object_delete_marker == Some(true))
    })
}

/// Checks a configuration as S3 does (each rule's ID unique and short enough, an action per
/// rule, positive day counts, no upload abort on a rule that filters by tag or size), and
/// gives a rule without an ID one (`id_for(index)`).
pub fn check(rules: &mut [Rule], id_for: impl Fn(usize) -> String) -> Result<(), S3Error> {
    let invalid = |message: String| Err(S3Error::new(ErrorCode::InvalidArgument, message));
    if rules.is_empty() {
        return Err(S3Error::new(ErrorCode::MalformedXML, "a lifecycle configuration needs at least one <Rule>"));
    }
    if rules.len() > RULES_MAX {
        return invalid(format!("{} rules: at most {RULES_MAX} are allowed", rules.len()));
    }
    for (i, rule) in rules.iter_mut().enumerate() {
        if rule.id.is_empty() {
            rule.id = id_for(i);
        }
        // The configuration is stored as the document GetBucketLifecycleConfiguration writes
        // and read back at start-up; text XML cannot carry as it is would not come back the same.
        let texts = std::iter::once(&rule.id).chain(rule.filter.prefix.iter()).chain(rule.filter.tags.iter().flat_map(|(k, v)| [k, v]));
        for text in texts {
            if text.chars().any(|c| c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}') {
                return invalid(format!("rule {:?}: {text:?} holds control characters", rule.id));
            }
        }
        if rule.id.chars().count() > RULE_ID_CHARS_MAX {
            return invalid(format!("rule ID {:?}... is longer than {RULE_ID_CHARS_MAX} characters", rule.id.chars().take(16).collect::<String>()));
        }
        if rule.expiration.is_none() && rule.expired_object_delete_marker.is_none() && rule.abort_incomplete_upload_days.is_none() && rule.noncurrent_days.is_none()
        {
            return Err(S3Error::new(ErrorCode::InvalidRequest, format!("rule {:?} names no action: at least one action needs to be specified in a rule", rule.id)));
        }
        for days in [rule.abort_incomplete_upload_days, rule.noncurrent_days, match rule.expiration {
            Some(Expiration::Days(d)) => Some(d),
            _ => None,
        }]
        .into_iter()
        .flatten()
        {
            if days == 0 {
                return invalid(format!("rule {:?}: a number of days must be a positive integer", rule.id));
            }
        }
        if rule.abort_incomplete_upload_days.is_some() && (!rule.filter.tags.is_empty() || rule.filter.size_greater_than.is_some() || rule.filter.size_less_than.is_some()) {
            return Err(S3Error::new(
                ErrorCode::InvalidRequest,
                format!("rule {:?}: AbortIncompleteMultipartUpload cannot be specified with tags or object sizes", rule.id),
            ));
        }
        if let (Some(gt), Some(lt)) = (rule.filter.size_greater_than, rule.filter.size_less_than)
            && gt >= lt
        {
            return invalid(format!("rule {:?}: ObjectSizeGreaterThan must be below ObjectSizeLessThan", rule.id));
        }
    }
    for (i, rule) in rules.iter().enumerate() {
        if rules[..i].iter().any(|r| r.id == rule.id) {
            return invalid(format!("rule ID {:?} is used twice: rule IDs must be unique", rule.id));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, prefix: Option<&str>, expiration: Option<Expiration>) -> Rule {
        Rule {
            id: id.into(),
            enabled: true,
            filter: Filter { prefix: prefix.map(str::to_string), ..Filter::default() },
            form: FilterForm::Filter,
            expiration,
            expired_object_delete_marker: None,
            abort_incomplete_upload_days: None,
            noncurrent_days: None,
            newer_noncurrent_versions: None,
        }
    }

    #[test]
    fn days_round_up_to_the_next_day_boundary() {
        // Modified 2024-01-01 10:00 UTC, 1 day: expires 2024-01-03 00:00 UTC.
        let modified = 1_704_103_200_000;
        assert_eq!(after_days_ms(modified, 1, DAY_MS), 1_704_240_000_000);
        // Exactly at midnight stays there.
        assert_eq!(after_days_ms(1_704_067_200_000, 2, DAY_MS), 1_704_067_200_000 + 2 * DAY_MS);
        // A 10-second "day" (tests): 25 s + 1 day = 35 s, up to 40 s.
        assert_eq!(after_days_ms(25_000, 1, 10_000), 40_000);
    }

    #[test]
    fn the_earliest_enabled_covering_rule_decides() {
        let mut rules = vec![
            rule("logs", Some("logs/"), Some(Expiration::Days(1))),
            rule("all", None, Some(Expiration::Days(30))),
            rule("date", Some("tmp/"), Some(Expiration::DateMs(5 * DAY_MS))),
            rule("off", Some("logs/"), Some(Expiration::DateMs(0))),
        ];
        rules[3].enabled = false;
        rules[1].filter.tags = vec![("class".into(), "scratch".into())];
        let none: Vec<(String, String)> = Vec::new();
        assert_eq!(expiry(&rules, "logs/a", 1, &none, 0, DAY_MS), Some((DAY_MS, "logs")));
        assert_eq!(expiry(&rules, "other", 1, &none, 0, DAY_MS), None, "the catch-all rule wants a tag");
        let scratch = vec![("class".to_string(), "scratch".to_string()), ("x".to_string(), "y".to_string())];
        assert_eq!(expiry(&rules, "other", 1, &scratch, 0, DAY_MS), Some((30 * DAY_MS, "all")));
        assert_eq!(expiry(&rules, "tmp/x", 1, &none, 0, DAY_MS), Some((5 * DAY_MS, "date")));
        rules[0].filter.size_greater_than = Some(100);
        assert_eq!(expiry(&rules, "logs/a", 100, &none, 0, DAY_MS), None);
        assert_eq!(expiry(&rules, "logs/a", 101, &none, 0, DAY_MS), Some((DAY_MS, "logs")));
        assert!(acts(&rules));
        assert!(!acts(&rules[3..]));
    }

    #[test]
    fn noncurrent_versions_expire_after_their_successor_and_beyond_the_kept_newer_ones() {
        let mut keep_two = rule("keep", Some("docs/"), None);
        keep_two.noncurrent_days = Some(3);
        keep_two.newer_noncurrent_versions = Some(2);
        let mut markers = rule("markers", Some("tmp/"), None);
        markers.expired_object_delete_marker = Some(true);
        let rules = vec![keep_two, markers];
        let none: Vec<(String, String)> = Vec::new();
        // Noncurrent since day 1: due 3 days later, if 2 newer noncurrent versions exist.
        assert_eq!(noncurrent_expiry(&rules, "docs/a", 1, &none, DAY_MS, 2, DAY_MS), Some(4 * DAY_MS));
        assert_eq!(noncurrent_expiry(&rules, "docs/a", 1, &none, DAY_MS, 1, DAY_MS), None, "one of the two kept");
        assert_eq!(noncurrent_expiry(&rules, "other", 1, &none, DAY_MS, 5, DAY_MS), None);
        assert!(removes_lone_marker(&rules, "tmp/x"));
        assert!(!removes_lone_marker(&rules, "docs/x"));
        assert!(acts(&rules[..1]) && acts(&rules[1..]));
    }

    #[test]
    fn uploads_follow_abort_rules_by_prefix() {
        let mut r = rule("mp", Some("big/"), None);
        r.abort_incomplete_upload_days = Some(2);
        let rules = vec![r];
        assert_eq!(upload_expiry(&rules, "big/file", 0, DAY_MS), Some(2 * DAY_MS));
        assert_eq!(upload_expiry(&rules, "small/file", 0, DAY_MS), None);
    }

    #[test]
    fn checks_refuse_what_s3_refuses() {
        let ok = |mut rules: Vec<Rule>| check(&mut rules, |i| format!("rule-{i}")).map(|()| rules);
        let code = |rules: Vec<Rule>| ok(rules).expect_err("refused").code;
        let given = ok(vec![rule("", None, Some(Expiration::Days(1))), rule("b", None, Some(Expiration::Days(2)))]).expect("valid");
        assert_eq!(given[0].id, "rule-0", "a rule without an ID gets one");
        assert_eq!(code(vec![rule("a", None, Some(Expiration::Days(1))), rule("a", None, Some(Expiration::Days(2)))]), ErrorCode::InvalidArgument);
        assert_eq!(code(vec![rule(&"x".repeat(256), None, Some(Expiration::Days(1)))]), ErrorCode::InvalidArgument);
        assert!(ok(vec![rule(&"x".repeat(255), None, Some(Expiration::Days(1)))]).is_ok());
        assert_eq!(code(vec![rule("a", None, None)]), ErrorCode::InvalidRequest);
        assert_eq!(code(vec![rule("a", None, Some(Expiration::Days(0)))]), ErrorCode::InvalidArgument);
        assert_eq!(code(Vec::new()), ErrorCode::MalformedXML);
        let mut tagged = rule("a", None, None);
        tagged.abort_incomplete_upload_days = Some(1);
        tagged.filter.tags = vec![("k".into(), "v".into())];
        assert_eq!(code(vec![tagged]), ErrorCode::InvalidRequest);
        assert_eq!(code(vec![rule("a", Some("tm\0p/"), Some(Expiration::Days(1)))]), ErrorCode::InvalidArgument);
        assert_eq!(code(vec![rule("a\r", None, Some(Expiration::Days(1)))]), ErrorCode::InvalidArgument);
        let mut sizes = rule("a", None, Some(Expiration::Days(1)));
        sizes.filter.size_greater_than = Some(10);
        sizes.filter.size_less_than = Some(10);
        assert_eq!(code(vec![sizes]), ErrorCode::InvalidArgument);
    }
}
