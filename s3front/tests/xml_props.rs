//! Properties: the parsers never panic, and what the writers write reads back as written.

use proptest::prelude::*;
use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use s3front::error::ErrorCode;
use s3front::names::{validate_bucket_name, validate_key};
use s3front::xml::*;

/// Reads every `<name>` text of a body with quick-xml, resolving references as a client would.
fn texts_of(body: &[u8], name: &str) -> Vec<String> {
    let text = std::str::from_utf8(body).expect("writers produce UTF-8");
    let mut reader = Reader::from_str(text);
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event().expect("writers produce XML quick-xml reads") {
            Event::Start(start) if start.local_name().as_ref() == name => current = Some(String::new()),
            Event::End(end) if end.local_name().as_ref() == name => found.extend(current.take()),
            Event::Text(content) => {
                if let Some(current) = current.as_mut() {
                    current.push_str(&content.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(current) = current.as_mut() {
                    match reference.resolve_char_ref().expect("valid character reference") {
                        Some(ch) => current.push(ch),
                        None => current.push_str(resolve_predefined_entity(&reference).expect("predefined entity")),
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    found
}

/// Any key S3 accepts, except U+0000: a reference to it is not XML in any version, and quick-xml
/// (like every parser) refuses it. Biased towards the characters that need escaping.
fn key_strategy() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec!['<', '>', '&', '\'', '"', '\r', '\n', '\t', ' ', '\u{1}', '\u{1f}', '\u{fffe}', '/', '%', '+']);
    let any = any::<char>().prop_filter("NUL cannot be carried", |ch| *ch != '\0');
    prop::collection::vec(prop_oneof![special, any], 1..40)
        .prop_map(|chars| chars.into_iter().collect::<String>())
        .prop_filter("a valid key", |key| validate_key(key).is_ok())
}

/// Plain percent-decoding, with no `+` for a space: what the encoding must survive.
fn percent_decode(encoded: &str) -> String {
    percent_encoding::percent_decode_str(encoded).decode_utf8().expect("UTF-8").into_owned()
}

fn list_body(keys: &[String], encoding_type: Option<EncodingType>) -> Vec<u8> {
    let contents = keys
        .iter()
        .map(|key| ObjectEntry {
            key: key.clone(),
            last_modified_ms: 0,
            etag: "e".into(),
            size_bytes: 1,
            storage_class: "STANDARD",
            owner: None,
            checksum_algorithm: None,
            checksum_type: None,
        })
        .collect();
    let page = ListPage {
        bucket: "b".into(),
        prefix: String::new(),
        delimiter: None,
        max_keys: 1000,
        encoding_type,
        is_truncated: false,
        contents,
        common_prefixes: keys.to_vec(),
    };
    list_objects_v2(&ListObjectsV2 { page, continuation_token: None, next_continuation_token: None, start_after: None })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_create_bucket(&body);
        let _ = parse_delete_objects(&body);
        let _ = parse_complete_multipart(&body);
        let _ = parse_versioning_configuration(&body);
    }

    #[test]
    fn parsers_never_panic_on_xml_like_text(body in "(<[/!?]?[A-Za-z:]{0,12}( [a-z]+=\"[^\"]{0,4}\")?/?>|&[#a-z0-9]{0,5};|[a-z0-9 \"<>&]{0,6}){0,40}") {
        for root in ["", "<Delete>", "<CompleteMultipartUpload>", "<CreateBucketConfiguration>", "<VersioningConfiguration>"] {
            let body = format!("{root}{body}");
            let _ = parse_create_bucket(body.as_bytes());
            let _ = parse_delete_objects(body.as_bytes());
            let _ = parse_complete_multipart(body.as_bytes());
            let _ = parse_versioning_configuration(body.as_bytes());
        }
    }

    #[test]
    fn delete_result_keys_read_back(keys in prop::collection::vec(key_strategy(), 1..20), quiet in any::<bool>()) {
        let outcomes: Vec<DeleteOutcome> = keys.iter().enumerate().map(|(index, key)| {
            if index % 3 == 0 {
                DeleteOutcome::Failed(DeleteFailure { key: key.clone(), version_id: None, code: ErrorCode::AccessDenied, message: key.clone() })
            } else {
                DeleteOutcome::Deleted(DeletedObject { key: key.clone(), version_id: None, delete_marker: false, delete_marker_version_id: None })
            }
        }).collect();
        let expected: Vec<String> = keys.iter().enumerate().filter(|(index, _)| !quiet || index % 3 == 0).map(|(_, key)| key.clone()).collect();
        let body = delete_result(&outcomes, quiet);
        prop_assert_eq!(texts_of(&body, "Key"), expected);
    }

    #[test]
    fn list_keys_read_back(keys in prop::collection::vec(key_strategy(), 0..20)) {
        let body = list_body(&keys, None);
        prop_assert_eq!(texts_of(&body, "Key"), keys.clone());
        prop_assert_eq!(texts_of(&body, "Prefix").split_off(1), keys);
    }

    #[test]
    fn url_encoded_keys_are_plain_xml_and_decode_back(keys in prop::collection::vec(key_strategy(), 0..20)) {
        let body = list_body(&keys, Some(EncodingType::Url));
        // Every byte of an encoded key is a letter, digit or one of -_.*/%, so the body is XML 1.0.
        let encoded = texts_of(&body, "Key");
        for text in &encoded {
            prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.*/%".contains(&b)), "{}", text);
        }
        let decoded: Vec<String> = encoded.iter().map(|text| percent_decode(text)).collect();
        prop_assert_eq!(decoded, keys);
    }

    #[test]
    fn delete_request_keys_round_trip(keys in prop::collection::vec(key_strategy(), 1..20), quiet in any::<bool>()) {
        // A client body built with quick-xml's escaping, as an SDK escapes.
        let mut body = String::from("<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
        for key in &keys {
            let escaped = quick_xml::escape::escape(key.as_str());
            // Characters XML forbids go as references, as in a listing.
            let escaped: String = escaped.chars().map(|ch| {
                if (ch as u32) < 0x20 && !matches!(ch, '\t' | '\n' | '\r') || matches!(ch, '\u{fffe}' | '\u{ffff}') {
                    format!("&#x{:X};", ch as u32)
                } else {
                    ch.to_string()
                }
            }).collect();
            body.push_str(&format!("<Object><Key>{escaped}</Key></Object>"));
        }
        body.push_str(&format!("<Quiet>{quiet}</Quiet></Delete>"));
        let request = parse_delete_objects(body.as_bytes()).expect("client body");
        prop_assert_eq!(request.quiet, quiet);
        let parsed: Vec<String> = request.objects.into_iter().map(|object| object.key).collect();
        prop_assert_eq!(parsed, keys);
    }

    #[test]
    fn bucket_validation_never_panics(name in "\\PC{0,70}") {
        let _ = validate_bucket_name(&name);
    }

    #[test]
    fn timestamps_round_trip(unix_ms in 0u64..253_402_300_799_999) {
        prop_assert_eq!(parse_timestamp_ms(&format_timestamp_ms(unix_ms)), Some(unix_ms));
    }
}
