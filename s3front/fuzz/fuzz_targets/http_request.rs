#![no_main]
//! Feeds arbitrary bytes through the whole request side of the HTTP codec the way the server does:
//! head, then the chunked body if the head says so, then the target's and headers' helpers. Must
//! never panic; the checks below are the invariants a caller relies on.

use s3front::versioning::{Kind, VersionId, key_prefix, parse_version_key, version_key};
use s3front::http::{BodyFraming, ChunkedDecoder, HEAD_BYTES_MAX, RangeResult, decode_path, parse_head, parse_query, parse_range};

/// Decoded body cap: keeps memory bounded whatever sizes the input claims.
const FUZZ_BODY_BYTES_MAX: u64 = 1 << 20;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(Some((head, head_bytes))) = parse_head(data) else {
        return;
    };
    assert!(head_bytes <= data.len());
    assert!(head_bytes <= HEAD_BYTES_MAX);
    // The same head must parse identically with the body bytes cut off.
    assert_eq!(parse_head(&data[..head_bytes]), Ok(Some((head.clone(), head_bytes))));

    let body = &data[head_bytes..];
    if head.body == BodyFraming::Chunked {
        decode_in_two_ways(body);
    }
    if let Ok(pairs) = parse_query(head.query()) {
        assert!(pairs.len() <= head.query().len());
        // A `versionId` the server accepts names itself when written back.
        for (_, value) in pairs.iter().filter(|(name, _)| name == "versionId") {
            if let Some(id) = VersionId::parse(value) {
                assert_eq!(&id.to_string(), value);
            }
        }
    }
    if let Ok(path) = decode_path(head.path()) {
        // A key's versions lie under its prefix, and read back as the key.
        let stored = version_key(&path, path.len() as u64, Kind { null: path.len() % 2 == 0, marker: false });
        assert!(stored.starts_with(&key_prefix(&path)));
        assert_eq!(parse_version_key(stored.as_bytes()).map(|s| s.key).as_deref(), Some(&*path));
    }
    if let Ok(path) = decode_path(head.path()) {
        assert!(path.len() <= head.path().len());
    }
    if let Some(range) = head.header("range") {
        for object_len in [0, 1, body.len() as u64, u64::MAX] {
            if let RangeResult::Partial { start, end_inclusive } = parse_range(range, object_len) {
                assert!(start <= end_inclusive);
                assert!(end_inclusive < object_len);
            }
        }
    }
    for (name, value) in head.headers() {
        assert!(!name.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(!value.contains(['\r', '\n']));
    }
    // Server-side encryption headers: refused or accepted, never a panic; a customer key the
    // server takes is 32 bytes whose MD5 the request sent (a write must send it).
    for (copy_source, md5_required) in [(false, true), (false, false), (true, false)] {
        if let Ok(Some(key)) = s3front::sse::customer_key(|h| head.header(h), copy_source, md5_required) {
            assert_eq!(key.md5.len(), 24);
        }
    }
    let default = s3front::sse::BucketDefault { kms_key_id: (body.len() % 2 == 0).then(|| "k".to_string()), bucket_key_enabled: false };
    if let Ok(s3front::sse::Wanted::Kms(id)) = s3front::sse::wanted(|h| head.header(h), Some(&default)) {
        assert!(s3front::sse::check_kms_key_id(&id).is_ok());
    }
});

/// Whole and byte-at-a-time decoding must agree on the data and on the outcome.
fn decode_in_two_ways(body: &[u8]) {
    let mut whole = ChunkedDecoder::new(FUZZ_BODY_BYTES_MAX);
    let mut whole_out = Vec::new();
    let whole_result = whole.decode(body, &mut whole_out);

    let mut split = ChunkedDecoder::new(FUZZ_BODY_BYTES_MAX);
    let mut split_out = Vec::new();
    let mut split_result = Ok(0);
    for byte in body {
        match split.decode(std::slice::from_ref(byte), &mut split_out) {
            Ok(consumed) => {
                split_result = split_result.map(|total| total + consumed);
                if consumed == 0 {
                    break;
                }
            }
            Err(error) => {
                split_result = Err(error);
                break;
            }
        }
    }
    assert_eq!(whole_out, split_out);
    assert_eq!(whole_result, split_result);
    if whole_result.is_ok() {
        assert_eq!(whole.is_done(), split.is_done());
    }
}
