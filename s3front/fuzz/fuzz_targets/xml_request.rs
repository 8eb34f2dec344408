#![no_main]
//! Every request body parser on arbitrary bytes: the first byte picks the parser, the rest is the
//! body. A parser may refuse a body; it must never panic, and what it accepts must obey the limits.

use s3front::xml::{
    COMPLETE_PARTS_MAX, DELETE_OBJECTS_MAX, XML_BODY_BYTES_MAX, parse_complete_multipart, parse_create_bucket, parse_delete_objects,
    parse_versioning_configuration,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 4 {
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
        _ => {
            let _ = parse_versioning_configuration(body);
        }
    }
});
