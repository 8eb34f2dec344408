//! Property tests of the HTTP codec: any split of a valid request decodes as the whole does;
//! the chunked decoder gives the same answer (data and error) for any split of any input;
//! arbitrary bytes never panic; response headers that pass the checks round-trip through httparse.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use s3front::http::*;

/// A chunked request: the head, the chunk data, and the encoding with optional extensions and
/// trailers.
#[derive(Debug, Clone)]
struct ChunkedRequest {
    bytes: Vec<u8>,
    head_bytes: usize,
    data: Vec<u8>,
    path: String,
}

fn chunked_request() -> impl Strategy<Value = ChunkedRequest> {
    (
        "/[a-zA-Z0-9/_.~-]{0,24}",
        prop::collection::vec(("x-[a-z]{1,8}", "[ -~]{0,16}"), 0..6),
        prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 1..40), prop::option::of("[a-z]{1,6}(=[a-z0-9]{0,6})?"), any::<bool>()),
            0..6,
        ),
        prop::collection::vec(("x-t[a-z]{0,6}", "[ -~]{0,20}"), 0..3),
    )
        .prop_map(|(path, headers, chunks, trailers)| {
            let mut bytes = format!("PUT {path} HTTP/1.1\r\nHost: s3.local\r\nTransfer-Encoding: chunked\r\n").into_bytes();
            for (name, value) in &headers {
                bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            bytes.extend_from_slice(b"\r\n");
            let head_bytes = bytes.len();
            let mut data = Vec::new();
            for (chunk, extension, upper) in &chunks {
                let size = if *upper { format!("{:X}", chunk.len()) } else { format!("{:x}", chunk.len()) };
                bytes.extend_from_slice(size.as_bytes());
                if let Some(extension) = extension {
                    bytes.extend_from_slice(format!(";{extension}").as_bytes());
                }
                bytes.extend_from_slice(b"\r\n");
                bytes.extend_from_slice(chunk);
                bytes.extend_from_slice(b"\r\n");
                data.extend_from_slice(chunk);
            }
            bytes.extend_from_slice(b"0\r\n");
            for (name, value) in &trailers {
                bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            bytes.extend_from_slice(b"\r\n");
            ChunkedRequest { bytes, head_bytes, data, path }
        })
}

/// Cuts `bytes` at the given points (taken modulo its length, sorted, deduplicated).
fn pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
}

/// Drives head parsing and chunked decoding the way a server loop would, one piece at a time.
/// Returns the head, the decoded body, the total bytes consumed.
fn drive(request_pieces: &[Vec<u8>]) -> (RequestHead, Vec<u8>, usize) {
    let mut buffered = Vec::new();
    let mut head: Option<RequestHead> = None;
    let mut decoder = ChunkedDecoder::new(u64::MAX);
    let mut body = Vec::new();
    let mut consumed_total = 0;
    for piece in request_pieces {
        buffered.extend_from_slice(piece);
        if head.is_none() {
            match parse_head(&buffered).unwrap() {
                None => continue,
                Some((parsed, head_bytes)) => {
                    assert_eq!(parsed.body, BodyFraming::Chunked);
                    head = Some(parsed);
                    buffered.drain(..head_bytes);
                    consumed_total += head_bytes;
                }
            }
        }
        let consumed = decoder.decode(&buffered, &mut body).unwrap();
        buffered.drain(..consumed);
        consumed_total += consumed;
    }
    assert!(decoder.is_done());
    assert!(buffered.is_empty());
    (head.unwrap(), body, consumed_total)
}

/// Decodes `input` in the given pieces; the data so far and the outcome.
fn decode_pieces(input_pieces: &[Vec<u8>]) -> (Vec<u8>, Result<(usize, bool), HttpError>) {
    let mut decoder = ChunkedDecoder::new(1 << 20);
    let mut out = Vec::new();
    let mut consumed_total = 0;
    for piece in input_pieces {
        match decoder.decode(piece, &mut out) {
            Ok(consumed) => {
                assert!(consumed <= piece.len());
                consumed_total += consumed;
                if consumed < piece.len() {
                    assert!(decoder.is_done(), "stops early only at the end of the body");
                    break;
                }
            }
            Err(error) => return (out, Err(error)),
        }
    }
    (out, Ok((consumed_total, decoder.is_done())))
}

/// Bytes that look like chunked framing often enough to get past the first byte.
fn chunkish_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b"\r\n".to_vec()),
            Just(b"0\r\n\r\n".to_vec()),
            Just(b";x=y".to_vec()),
            "[0-9a-fA-F]{1,3}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..8),
        ],
        0..16,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_split_of_a_chunked_request_decodes_the_same(request in chunked_request(), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        let (whole_head, whole_body, whole_consumed) = drive(std::slice::from_ref(&request.bytes));
        prop_assert_eq!(&whole_body, &request.data);
        prop_assert_eq!(whole_consumed, request.bytes.len());
        prop_assert_eq!(whole_head.path(), request.path.as_str());
        let (head, body, consumed) = drive(&pieces(&request.bytes, &cuts));
        prop_assert_eq!(head, whole_head);
        prop_assert_eq!(body, whole_body);
        prop_assert_eq!(consumed, whole_consumed);
    }

    #[test]
    fn byte_at_a_time_decodes_the_same(request in chunked_request()) {
        let body = &request.bytes[request.head_bytes..];
        let single: Vec<Vec<u8>> = body.iter().map(|&b| vec![b]).collect();
        prop_assert_eq!(decode_pieces(&single), (request.data.clone(), Ok((body.len(), true))));
    }

    #[test]
    fn chunked_outcome_does_not_depend_on_splits(input in chunkish_bytes(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        prop_assert_eq!(decode_pieces(&pieces(&input, &cuts)), decode_pieces(std::slice::from_ref(&input)));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_head_parser(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_head(&bytes);
        let mut prefixed = b"GET / HTTP/1.1\r\n".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = parse_head(&prefixed);
    }

    #[test]
    fn mutated_requests_never_panic(request in chunked_request(), position in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = request.bytes.clone();
        let index = position % bytes.len();
        bytes[index] = byte;
        if let Ok(Some((head, head_bytes))) = parse_head(&bytes) {
            if head.body == BodyFraming::Chunked {
                let _ = decode_pieces(&[bytes[head_bytes..].to_vec()]);
            }
            let _ = parse_query(head.query());
            let _ = decode_path(head.path());
        }
    }

    #[test]
    fn arbitrary_strings_never_panic_the_helpers(text in "\\PC{0,40}", raw in "[a-z0-9=&%+/-]{0,40}", len in any::<u64>()) {
        let _ = parse_query(&text);
        let _ = parse_query(&raw);
        let _ = decode_path(&text);
        let _ = decode_path(&raw);
        let _ = parse_http_date(&text);
        for value in [text.as_str(), raw.as_str()] {
            if let RangeResult::Partial { start, end_inclusive } = parse_range(value, len) {
                prop_assert!(start <= end_inclusive);
                prop_assert!(end_inclusive < len);
            }
        }
    }

    #[test]
    fn ranges_stay_within_the_object(first in prop::option::of(0u64..2000), last in prop::option::of(0u64..2000), len in 0u64..1500) {
        let value = format!("bytes={}-{}", first.map(|n| n.to_string()).unwrap_or_default(), last.map(|n| n.to_string()).unwrap_or_default());
        let result = parse_range(&value, len);
        match result {
            RangeResult::Partial { start, end_inclusive } => {
                prop_assert!(start <= end_inclusive && end_inclusive < len);
                if let Some(first) = first {
                    prop_assert_eq!(start, first);
                }
            }
            RangeResult::Unsatisfiable => prop_assert!(len == 0 || first.is_some_and(|f| f >= len) || (first.is_none() && last == Some(0))),
            RangeResult::Full => prop_assert!((first.is_none() && last.is_none()) || matches!((first, last), (Some(f), Some(l)) if f > l)),
        }
    }

    #[test]
    fn checked_response_headers_round_trip(name in "[!-~]{0,12}", value in "\\PC{0,24}|[\\x00-\\x7f]{0,24}") {
        let mut head = ResponseHead::new(200);
        if head.try_header(&name, &value).is_ok() {
            let mut out = Vec::new();
            head.content_length(0).write_into(&mut out);
            let mut headers = [httparse::EMPTY_HEADER; 4];
            let mut response = httparse::Response::new(&mut headers);
            let status = response.parse(&out);
            prop_assert_eq!(status, Ok(httparse::Status::Complete(out.len())));
            prop_assert_eq!(response.headers.len(), 2);
            prop_assert_eq!(response.headers[0].name, name.as_str());
            prop_assert_eq!(response.headers[0].value, value.trim_matches([' ', '\t']).as_bytes());
        }
    }

    #[test]
    fn http_dates_round_trip(unix_s in 0i64..253_402_300_800) {
        prop_assert_eq!(parse_http_date(&http_date(unix_s)), Some(unix_s));
    }
}
