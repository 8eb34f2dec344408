#![no_main]
//! PostObject's form and policy parsers on arbitrary bytes. Byte 0 picks: even, a form body
//! (byte 1 sets the piece size the file is streamed in); odd, a policy document (base64 of the
//! rest). Nothing may panic; a form's file must come out the same however the body is cut up.

use base64::Engine as _;
use s3front::post::{FORM_FIELDS_MAX, FileScanner, FormHead, parse_head, parse_policy};

const BOUNDARY: &str = "XyZ";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    if selector % 2 == 1 {
        let policy_b64 = base64::engine::general_purpose::STANDARD.encode(rest);
        if let Ok(policy) = parse_policy(&policy_b64) {
            let _ = policy.check(&FormHead::default(), "bucket", 0);
            if let Some((min, max)) = policy.length_range() {
                assert!(min <= max);
            }
        }
        return;
    }
    let Some((&step, body)) = rest.split_first() else { return };
    let Ok(Some(head)) = parse_head(body, BOUNDARY) else { return };
    assert!(head.data_start <= body.len());
    assert!(head.fields.len() <= FORM_FIELDS_MAX);
    let file = &body[head.data_start..];
    let mut whole = Vec::new();
    let whole_ended = FileScanner::new(BOUNDARY).scan(file, &mut whole);
    let mut scanner = FileScanner::new(BOUNDARY);
    let mut pieces = Vec::new();
    for piece in file.chunks(step as usize + 1) {
        if scanner.scan(piece, &mut pieces) {
            break;
        }
    }
    assert_eq!(scanner.ended(), whole_ended);
    if whole_ended {
        assert_eq!(pieces, whole, "the file differs when streamed in pieces of {}", step as usize + 1);
    } else {
        // Without the delimiter, only the bytes that could begin it are held back.
        assert!(whole.len() + 4 + BOUNDARY.len() > file.len() && pieces == whole);
    }
});
