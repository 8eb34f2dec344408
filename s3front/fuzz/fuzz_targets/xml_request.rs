#![no_main]
//! Every request body parser on arbitrary bytes: the first byte picks the parser, the rest is the
//! body (or, for 5, the `x-amz-tagging` header; 6 is a CORS configuration, 7 an ACL, 8 lifecycle rules, 9 a public access block, 10 ownership controls, 11 an Object Lock configuration, 12 a retention, 13 a legal hold, 14 a bucket's default encryption). A parser may refuse a body; it must never panic,
//! and what it accepts must obey the limits.

use s3front::tagging::{self, OBJECT_TAGS_MAX, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX};
use s3front::xml::{
    COMPLETE_PARTS_MAX, DELETE_OBJECTS_MAX, TAGGING_TAGS_READ_MAX, XML_BODY_BYTES_MAX, parse_complete_multipart, parse_create_bucket,
    parse_cors_configuration, parse_delete_objects, parse_tagging, parse_versioning_configuration,
};

/// A checked tag set obeys every limit, in key order with no key twice.
fn assert_checked(tags: &[(String, String)], max: usize) {
    assert!(tags.len() <= max);
    assert!(tags.windows(2).all(|w| w[0].0 < w[1].0));
    for (k, v) in tags {
        assert!(!k.is_empty() && k.chars().count() <= TAG_KEY_CHARS_MAX && v.chars().count() <= TAG_VALUE_CHARS_MAX);
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 15 {
        0 => {
            if let Ok(Some(location)) = parse_create_bucket(body) {
                assert!(!location.is_empty());
            }
        }
        1 => {
            if let Ok(request) = parse_delete_objects(body) {
                assert!(!request.objects.is_empty());
                assert!(request.objects.len() <= DELETE_OBJECTS_MAX);
                assert!(body.len() <= XML_BODY_BYTES_MAX);
            }
        }
        2 => {
            if let Ok(parts) = parse_complete_multipart(body) {
                assert!(!parts.is_empty());
                assert!(parts.len() <= COMPLETE_PARTS_MAX);
            }
        }
        3 => {
            let _ = parse_versioning_configuration(body);
        }
        4 => {
            if let Ok(tags) = parse_tagging(body) {
                assert!(tags.len() <= TAGGING_TAGS_READ_MAX);
                if let Ok(set) = tagging::checked(tags, tagging::BUCKET_TAGS_MAX) {
                    assert_checked(&set, tagging::BUCKET_TAGS_MAX);
                }
            }
        }
        6 => {
            if let Ok(rules) = parse_cors_configuration(body)
                && s3front::cors::check_rules(&rules).is_ok()
            {
                assert!(!rules.is_empty() && rules.len() <= s3front::cors::CORS_RULES_MAX);
                let _ = s3front::cors::matching(&rules, "https://a.example", "GET", &["x-amz-date"]);
            }
        }
        7 => {
            if let Ok(grants) = s3front::xml::parse_access_control_policy(body) {
                assert!(grants.len() <= s3front::acl::GRANTS_MAX);
                let stored = s3front::acl::encode(&grants);
                assert_eq!(s3front::acl::decode(&stored), Some(grants));
            }
        }
        8 => {
            if let Ok(mut rules) = s3front::xml::parse_lifecycle_configuration(body)
                && s3front::lifecycle::check(&mut rules, |i| format!("rule-{i}")).is_ok()
            {
                assert!(!rules.is_empty() && rules.len() <= s3front::lifecycle::RULES_MAX);
                // What is stored (the written document) reads back as the same rules.
                let written = s3front::xml::lifecycle_configuration(&rules);
                assert_eq!(s3front::xml::parse_lifecycle_configuration(&written).ok(), Some(rules));
            }
        }
        9 => {
            let _ = s3front::xml::parse_public_access_block(body);
        }
        10 => {
            if let Ok(ownership) = s3front::xml::parse_ownership_controls(body) {
                let written = s3front::xml::ownership_controls(ownership);
                assert_eq!(s3front::xml::parse_ownership_controls(&written).ok(), Some(ownership));
            }
        }
        11 => {
            // What is accepted reads back the same from what GetObjectLockConfiguration writes.
            if let Ok(config) = s3front::xml::parse_object_lock_configuration(body) {
                let written = s3front::xml::object_lock_configuration(&config);
                assert_eq!(s3front::xml::parse_object_lock_configuration(&written).ok(), Some(config));
            }
        }
        12 => {
            if let Ok(Some(retention)) = s3front::xml::parse_retention(body) {
                let written = s3front::xml::retention(&retention);
                let back = s3front::xml::parse_retention(&written).ok().flatten().expect("a written retention reads back");
                assert_eq!(back.mode, retention.mode);
            }
        }
        13 => {
            if let Ok(on) = s3front::xml::parse_legal_hold(body) {
                assert_eq!(s3front::xml::parse_legal_hold(&s3front::xml::legal_hold(on)).ok(), Some(on));
            }
        }
        14 => {
            if let Ok(default) = s3front::xml::parse_bucket_encryption(body) {
                let written = s3front::xml::responses::bucket_encryption(&default);
                assert_eq!(s3front::xml::parse_bucket_encryption(&written).ok(), Some(default));
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(body)
                && let Ok(set) = tagging::parse_header(text)
            {
                assert_checked(&set, OBJECT_TAGS_MAX);
            }
        }
    }
});
