//! Concrete cases for every rule of the HTTP codec (s3front::http), one `check` helper per area.
#![allow(clippy::unwrap_used)]

use s3front::http::*;

/// Parses a complete head, asserting that it consumed all of `request`.
fn head(request: &str) -> RequestHead {
    match parse_head(request.as_bytes()) {
        Ok(Some((head, consumed))) => {
            assert_eq!(consumed, request.len(), "consumed bytes of {request:?}");
            head
        }
        other => panic!("{request:?} gave {other:?}"),
    }
}

/// The status of the error a head gives.
fn head_status(request: &[u8]) -> u16 {
    match parse_head(request) {
        Err(error) => error.status(),
        other => panic!("{:?} should fail, gave {other:?}", String::from_utf8_lossy(request)),
    }
}

fn head_error(request: &str) -> HttpError {
    parse_head(request.as_bytes()).unwrap_err()
}

#[test]
fn head_simple_get() {
    let h = head("GET /bucket/key%20x?list-type=2&prefix=a HTTP/1.1\r\nHost: s3.local\r\nX-Amz-Date:  20130524T000000Z \r\n\r\n");
    assert_eq!(h.method, Method::Get);
    assert_eq!(h.target(), "/bucket/key%20x?list-type=2&prefix=a");
    assert_eq!(h.path(), "/bucket/key%20x");
    assert_eq!(h.query(), "list-type=2&prefix=a");
    assert_eq!(h.version_minor, 1);
    assert_eq!(h.body, BodyFraming::None);
    assert!(h.keep_alive);
    assert!(!h.expect_continue);
    assert_eq!(h.host(), Some("s3.local"));
    assert_eq!(h.header("x-amz-date"), Some("20130524T000000Z"));
    assert_eq!(h.header("missing"), None);
    let all: Vec<_> = h.headers().collect();
    assert_eq!(all, vec![("host", "s3.local"), ("x-amz-date", "20130524T000000Z")]);
}

#[test]
fn head_consumed_excludes_body_and_leading_empty_lines_skipped() {
    let request = b"\r\nPUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
    let (h, consumed) = parse_head(request).unwrap().unwrap();
    assert_eq!(consumed, request.len() - 5);
    assert_eq!(&request[consumed..], b"hello");
    assert_eq!(h.method, Method::Put);
    assert_eq!(h.body, BodyFraming::Length(5));
}

#[test]
fn head_incomplete_is_none_at_every_prefix() {
    let request = b"PUT /b/k?uploads HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
    for end in 0..request.len() {
        assert_eq!(parse_head(&request[..end]), Ok(None), "prefix of {end} bytes");
    }
    assert!(parse_head(request).unwrap().is_some());
}

#[test]
fn head_methods() {
    for (token, method) in [
        ("GET", Method::Get),
        ("HEAD", Method::Head),
        ("PUT", Method::Put),
        ("POST", Method::Post),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
        ("PATCH", Method::Other("PATCH".into())),
        ("get", Method::Other("get".into())),
    ] {
        let h = head(&format!("{token} / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert_eq!(h.method, method);
        assert_eq!(h.method.as_str(), token);
    }
}

#[test]
fn head_header_names_lowercased_in_order_with_repeats() {
    let h = head("GET / HTTP/1.1\r\nHost: h\r\nX-Amz-Meta-A: 1\r\nx-amz-meta-a: 2\r\nX-AMZ-META-B:\t3\t\r\n\r\n");
    assert_eq!(h.headers_all("x-amz-meta-a").collect::<Vec<_>>(), vec!["1", "2"]);
    assert_eq!(h.header("x-amz-meta-a"), Some("1"));
    assert_eq!(h.header("x-amz-meta-b"), Some("3"));
    assert_eq!(h.headers().count(), 4);
}

#[test]
#[should_panic(expected = "lowercase")]
fn head_header_lookup_in_capitals_is_a_bug() {
    let h = head("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let _ = h.header("Host");
}

#[test]
fn head_empty_header_value_kept() {
    let h = head("GET / HTTP/1.1\r\nHost: h\r\nx-amz-meta-empty:\r\n\r\n");
    assert_eq!(h.header("x-amz-meta-empty"), Some(""));
}

#[test]
fn head_utf8_header_value_accepted_non_utf8_refused() {
    let h = head("GET / HTTP/1.1\r\nHost: h\r\nx-amz-meta-name: caf\u{e9}\r\n\r\n");
    assert_eq!(h.header("x-amz-meta-name"), Some("caf\u{e9}"));
    let error = parse_head(b"GET / HTTP/1.1\r\nHost: h\r\nx-amz-meta-name: caf\xe9\r\n\r\n").unwrap_err();
    assert_eq!(error, HttpError::HeaderNotUtf8 { name: "x-amz-meta-name".into() });
    assert_eq!(error.status(), 400);
    assert_eq!(error.to_string(), "header 'x-amz-meta-name' value is not UTF-8");
}

#[test]
fn head_target_forms() {
    let h = head("GET http://s3.local:9000/b/k?acl HTTP/1.1\r\nHost: s3.local:9000\r\n\r\n");
    assert_eq!((h.path(), h.query()), ("/b/k", "acl"));
    let h = head("GET HTTPS://s3.local HTTP/1.1\r\nHost: s3.local\r\n\r\n");
    assert_eq!((h.path(), h.query()), ("/", ""));
    let h = head("GET http://s3.local?location HTTP/1.1\r\nHost: s3.local\r\n\r\n");
    assert_eq!((h.path(), h.query()), ("/", "location"));
    let h = head("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((h.path(), h.query()), ("*", ""));
    let h = head("GET /b?x=1?y HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((h.path(), h.query()), ("/b", "x=1?y"));
    let h = head("GET /b? HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((h.path(), h.query()), ("/b", ""));
    assert_eq!(head_error("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), HttpError::TargetForm { target: "*".into() });
    assert_eq!(head_status(b"GET b/k HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(head_status(b"CONNECT s3.local:443 HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}

#[test]
fn head_versions() {
    let h = head("GET / HTTP/1.0\r\n\r\n");
    assert_eq!(h.version_minor, 0);
    assert_eq!(h.host(), None);
    for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/3.0", "HTTP/0.9"] {
        let error = head_error(&format!("GET / {version}\r\nHost: h\r\n\r\n"));
        assert_eq!(error, HttpError::VersionUnsupported { version: version.into() });
        assert_eq!(error.status(), 505);
    }
    // Cut off after a version that can only be unsupported.
    assert_eq!(head_status(b"GET / HTTP/2"), 505);
    for garbage in ["HTTX/1.1", "HTTP/1.1x", "HTTP/1.10", "http/1.1", "HTTP/x.1"] {
        assert_eq!(head_status(format!("GET / {garbage}\r\nHost: h\r\n\r\n").as_bytes()), 400, "{garbage}");
    }
    assert_eq!(head_status(b"GET /\r\n\r\n"), 400, "HTTP/0.9 simple request");
}

#[test]
fn head_syntax_errors_are_400() {
    for request in [
        &b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHo\x01st: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\x00\r\n\r\n",
        b"GET / HTTP/1.1\rHost: h\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n",
        b" GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        assert_eq!(head_status(request), 400, "{:?}", String::from_utf8_lossy(request));
    }
}

#[test]
fn head_host_rules() {
    assert_eq!(head_error("GET / HTTP/1.1\r\n\r\n"), HttpError::HostMissing);
    assert_eq!(head_error("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), HttpError::HeaderDuplicate { name: "host" });
    assert_eq!(head_status(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    assert_eq!(head("GET / HTTP/1.1\r\nHost:\r\n\r\n").host(), Some(""));
}

#[test]
fn head_limits() {
    // A huge target is 414 even before the head is complete.
    let target = "/".repeat(TARGET_BYTES_MAX + 1);
    let error = head_error(&format!("GET {target}"));
    assert_eq!(error, HttpError::TargetTooLong { length_bytes: TARGET_BYTES_MAX + 1 });
    assert_eq!(error.status(), 414);
    assert_eq!(head_status(format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes()), 414);
    let target = "/".repeat(TARGET_BYTES_MAX);
    assert_eq!(head(&format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n")).target().len(), TARGET_BYTES_MAX);

    // A head that has reached HEAD_BYTES_MAX without ending is 431, complete or not.
    let mut long = b"GET / HTTP/1.1\r\nHost: h\r\nx-big: ".to_vec();
    long.resize(HEAD_BYTES_MAX - 1, b'a');
    assert_eq!(parse_head(&long), Ok(None));
    long.push(b'a');
    assert_eq!(parse_head(&long).unwrap_err(), HttpError::HeadTooLarge { length_bytes: HEAD_BYTES_MAX });
    long.extend_from_slice(b"\r\n\r\n");
    assert_eq!(head_status(&long), 431);

    // A head of exactly HEAD_BYTES_MAX bytes is fine.
    let mut exact = b"GET / HTTP/1.1\r\nHost: h\r\nx-big: ".to_vec();
    exact.resize(HEAD_BYTES_MAX - 4, b'a');
    exact.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse_head(&exact).unwrap().unwrap().1, HEAD_BYTES_MAX);

    let with_headers = |count: usize| {
        let mut request = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 1..count {
            request.push_str(&format!("x-h{i}: v\r\n"));
        }
        request + "\r\n"
    };
    assert_eq!(head(&with_headers(HEADERS_MAX)).headers().count(), HEADERS_MAX);
    let error = head_error(&with_headers(HEADERS_MAX + 1));
    assert_eq!(error, HttpError::HeadersTooMany);
    assert_eq!(error.status(), 431);
}

fn framing(headers: &str) -> Result<BodyFraming, HttpError> {
    framing_version(1, headers)
}

fn framing_version(minor: u8, headers: &str) -> Result<BodyFraming, HttpError> {
    let request = format!("PUT /b/k HTTP/1.{minor}\r\nHost: h\r\n{headers}\r\n");
    parse_head(request.as_bytes()).map(|parsed| parsed.unwrap().0.body)
}

#[test]
fn framing_content_length() {
    assert_eq!(framing(""), Ok(BodyFraming::None));
    assert_eq!(framing("Content-Length: 0\r\n"), Ok(BodyFraming::Length(0)));
    assert_eq!(framing("Content-Length: 18446744073709551615\r\n"), Ok(BodyFraming::Length(u64::MAX)));
    assert_eq!(framing("Content-Length: 7\r\nContent-Length: 7\r\n"), Ok(BodyFraming::Length(7)));
    assert_eq!(framing("Content-Length: 7, 7\r\n"), Ok(BodyFraming::Length(7)));
    assert_eq!(framing("Content-Length: 7\r\nContent-Length: 8\r\n"), Err(HttpError::ContentLengthConflict { first: 7, second: 8 }));
    assert_eq!(framing("Content-Length: 7, 8\r\n"), Err(HttpError::ContentLengthConflict { first: 7, second: 8 }));
    for bad in ["abc", "+5", "-1", "5 5", "0x10", "", "5,", "18446744073709551616", "1.0"] {
        let error = framing(&format!("Content-Length: {bad}\r\n")).unwrap_err();
        assert_eq!(error.status(), 400, "{bad:?}");
        assert!(matches!(error, HttpError::ContentLengthInvalid { .. }), "{bad:?}: {error:?}");
    }
    assert_eq!(framing("Content-Length: abc\r\n").unwrap_err().to_string(), "header 'content-length' value 'abc' is not a number");
}

#[test]
fn framing_aws_chunked_is_content_length() {
    let headers = "Content-Encoding: aws-chunked\r\nx-amz-decoded-content-length: 66560\r\nContent-Length: 66824\r\n";
    assert_eq!(framing(headers), Ok(BodyFraming::Length(66824)));
}

#[test]
fn framing_transfer_encoding() {
    assert_eq!(framing("Transfer-Encoding: chunked\r\n"), Ok(BodyFraming::Chunked));
    assert_eq!(framing("Transfer-Encoding: Chunked\r\n"), Ok(BodyFraming::Chunked));
    assert_eq!(framing("Transfer-Encoding: chunked,\r\n"), Ok(BodyFraming::Chunked));
    let status = |headers: &str| framing(headers).unwrap_err().status();
    assert_eq!(framing("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), Err(HttpError::TransferEncodingWithContentLength));
    assert_eq!(framing("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), Err(HttpError::TransferEncodingWithContentLength));
    assert_eq!(status("Transfer-Encoding: gzip\r\nContent-Length: 5\r\n"), 400);
    assert_eq!(status("Transfer-Encoding: gzip\r\n"), 501);
    assert_eq!(status("Transfer-Encoding: gzip, chunked\r\n"), 501);
    assert_eq!(status("Transfer-Encoding: chunked, gzip\r\n"), 501);
    assert_eq!(status("Transfer-Encoding: identity\r\n"), 501);
    assert_eq!(status("Transfer-Encoding: chunked;q=1\r\n"), 501);
    assert_eq!(status("Transfer-Encoding: chunked, chunked\r\n"), 400);
    assert_eq!(status("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 400);
    assert_eq!(status("Transfer-Encoding:\r\n"), 400);
    let error = framing_version(0, "Transfer-Encoding: chunked\r\n").unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(error.to_string(), "header 'transfer-encoding' value 'chunked' is invalid: not allowed in HTTP/1.0");
    assert_eq!(
        framing("Transfer-Encoding: gzip\r\n").unwrap_err().to_string(),
        "header 'transfer-encoding' value 'gzip' is not implemented (only 'chunked' is)"
    );
}

#[test]
fn keep_alive_rules() {
    let keep_alive = |version: &str, connection: &str| {
        let request = format!("GET / {version}\r\nHost: h\r\n{connection}\r\n");
        parse_head(request.as_bytes()).unwrap().unwrap().0.keep_alive
    };
    assert!(keep_alive("HTTP/1.1", ""));
    assert!(!keep_alive("HTTP/1.1", "Connection: close\r\n"));
    assert!(!keep_alive("HTTP/1.1", "Connection: Close\r\n"));
    assert!(!keep_alive("HTTP/1.1", "Connection: keep-alive, close\r\n"));
    assert!(!keep_alive("HTTP/1.1", "Connection: te\r\nConnection: close\r\n"));
    assert!(keep_alive("HTTP/1.1", "Connection: keep-alive\r\n"));
    assert!(!keep_alive("HTTP/1.0", ""));
    assert!(keep_alive("HTTP/1.0", "Connection: Keep-Alive\r\n"));
    assert!(!keep_alive("HTTP/1.0", "Connection: keep-alive, close\r\n"));
}

#[test]
fn expect_continue_rules() {
    let expect = |version: &str, headers: &str| {
        let request = format!("PUT /b/k {version}\r\nHost: h\r\nContent-Length: 1\r\n{headers}\r\n");
        parse_head(request.as_bytes()).unwrap().unwrap().0.expect_continue
    };
    assert!(expect("HTTP/1.1", "Expect: 100-continue\r\n"));
    assert!(expect("HTTP/1.1", "Expect: 100-Continue\r\n"));
    assert!(!expect("HTTP/1.1", ""));
    assert!(!expect("HTTP/1.1", "Expect: 200-ok\r\n"));
    assert!(!expect("HTTP/1.0", "Expect: 100-continue\r\n"));
}

/// Feeds `body` to a fresh decoder in one call; returns (data, consumed) or the error.
fn chunked(body: &[u8]) -> Result<(Vec<u8>, usize, bool), HttpError> {
    let mut decoder = ChunkedDecoder::new(u64::MAX);
    let mut out = Vec::new();
    let consumed = decoder.decode(body, &mut out)?;
    Ok((out, consumed, decoder.is_done()))
}

#[test]
fn chunked_valid_bodies() {
    let whole = |body: &[u8], data: &[u8]| assert_eq!(chunked(body), Ok((data.to_vec(), body.len(), true)), "{body:?}");
    whole(b"0\r\n\r\n", b"");
    whole(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world");
    whole(b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789");
    whole(b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789");
    whole(b"0005\r\nhello\r\n000\r\n\r\n", b"hello");
    whole(b"5;name=value;flag\r\nhello\r\n0;last\r\n\r\n", b"hello");
    whole(b"5 ;name=\"quoted \xc3\xa9\"\r\nhello\r\n0\r\n\r\n", b"hello");
    whole(b"5\t; a = b\r\nhello\r\n0\r\n\r\n", b"hello");
    whole(b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32: AAAAAA==\r\nOther: x\r\n\r\n", b"hello");
    whole(b"3\r\n\r\n\r\r\n0\r\n\r\n", b"\r\n\r");
}

#[test]
fn chunked_stops_at_end_of_body() {
    let body = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    assert_eq!(chunked(body), Ok((b"abc".to_vec(), 13, true)));
    let mut decoder = ChunkedDecoder::new(u64::MAX);
    let mut out = Vec::new();
    assert_eq!(decoder.decode(b"3\r\nabc\r\n0\r\n\r\n", &mut out), Ok(13));
    assert_eq!(decoder.decode(b"more", &mut out), Ok(0));
    assert_eq!(decoder.body_bytes(), 3);
}

#[test]
fn chunked_incomplete_is_not_done() {
    for body in [&b""[..], b"5", b"5\r", b"5\r\nhel", b"5\r\nhello", b"5\r\nhello\r\n0\r\n", b"0\r\nx: y\r\n", b"0\r\n\r"] {
        let (_, consumed, done) = chunked(body).unwrap();
        assert_eq!((consumed, done), (body.len(), false), "{body:?}");
    }
}

#[test]
fn chunked_decode_with_borrows_input() {
    let input = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let mut decoder = ChunkedDecoder::new(u64::MAX);
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let consumed = decoder.decode_with(input, |data| pieces.push(data.to_vec())).unwrap();
    assert_eq!(consumed, input.len());
    assert_eq!(pieces, vec![b"hello".to_vec(), b" world".to_vec()]);
}

#[test]
fn chunked_errors() {
    let reason = |body: &[u8]| match chunked(body) {
        Err(HttpError::Chunked { reason, offset_bytes }) => (reason, offset_bytes),
        other => panic!("{body:?} gave {other:?}"),
    };
    assert_eq!(reason(b"\r\n"), ("chunk size has no hex digits", 0));
    assert_eq!(reason(b";ext\r\n"), ("chunk size has no hex digits", 0));
    assert_eq!(reason(b"g\r\n"), ("chunk size has no hex digits", 0));
    assert_eq!(reason(b"5x\r\n"), ("invalid byte in chunk-size line", 1));
    assert_eq!(reason(b"-5\r\n"), ("chunk size has no hex digits", 0));
    assert_eq!(reason(b"5 \r\n"), ("invalid byte in chunk-size line", 2));
    assert_eq!(reason(b"5\nhello"), ("invalid byte in chunk-size line", 1));
    assert_eq!(reason(b"5\rhello"), ("chunk-size line not ended by CRLF", 2));
    assert_eq!(reason(b"5;a\x00\r\n"), ("invalid byte in chunk-size line", 3));
    assert_eq!(reason(b"5\r\nhelloX"), ("chunk data not followed by CRLF", 8));
    assert_eq!(reason(b"5\r\nhello\n"), ("chunk data not followed by CRLF", 8));
    assert_eq!(reason(b"5\r\nhello\rX"), ("chunk data not followed by CRLF", 9));
    assert_eq!(reason(b"0\r\nx: y\n"), ("invalid byte or line ending in trailer section", 7));
    assert_eq!(reason(b"0\r\n\rX"), ("invalid byte or line ending in trailer section", 4));
    assert_eq!(reason(b"0\r\nx\x01\r\n\r\n"), ("invalid byte or line ending in trailer section", 4));
    assert_eq!(reason(b"10000000000000000\r\n"), ("chunk size overflows 64 bits", 16));
    assert_eq!(reason(b"ffffffffffffffff0\r\n"), ("chunk size overflows 64 bits", 16));
    let error = chunked(b"5x").unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(error.to_string(), "chunked body at byte 1: invalid byte in chunk-size line");
}

#[test]
fn chunked_size_of_sixteen_hex_digits_is_accepted() {
    let mut decoder = ChunkedDecoder::new(u64::MAX);
    let mut out = Vec::new();
    assert_eq!(decoder.decode(b"ffffffffffffffff\r\nab", &mut out), Ok(20));
    assert_eq!(out, b"ab");
    assert!(!decoder.is_done());
}

#[test]
fn chunked_limits() {
    let mut line = b"1;".to_vec();
    line.resize(CHUNK_LINE_BYTES_MAX, b'x');
    line.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
    assert_eq!(chunked(&line).unwrap().0, b"a");
    let mut line = b"1;".to_vec();
    line.resize(CHUNK_LINE_BYTES_MAX + 1, b'x');
    assert!(matches!(chunked(&line), Err(HttpError::Chunked { reason: "chunk-size line too long", .. })));
    let mut zeros = vec![b'0'; CHUNK_LINE_BYTES_MAX + 1];
    zeros.extend_from_slice(b"1\r\n");
    assert!(matches!(chunked(&zeros), Err(HttpError::Chunked { reason: "chunk-size line too long", .. })));

    let trailer_line = format!("x: {}\r\n", "v".repeat(1000));
    let trailers_within = trailer_line.repeat(TRAILER_BYTES_MAX / trailer_line.len());
    assert!(chunked(format!("0\r\n{trailers_within}\r\n").as_bytes()).unwrap().2);
    let trailers_over = trailer_line.repeat(TRAILER_BYTES_MAX / trailer_line.len() + 1);
    assert!(matches!(
        chunked(format!("0\r\n{trailers_over}\r\n").as_bytes()),
        Err(HttpError::Chunked { reason: "trailer section too large", .. })
    ));

    let mut decoder = ChunkedDecoder::new(10);
    let mut out = Vec::new();
    assert_eq!(decoder.decode(b"6\r\nabcdef\r\n4\r\nghij\r\n", &mut out), Ok(20));
    let error = decoder.decode(b"1\r\n", &mut out).unwrap_err();
    assert_eq!(error, HttpError::BodyTooLarge { limit_bytes: 10 });
    assert_eq!(error.status(), 413);
}

#[test]
#[should_panic(expected = "after it returned an error")]
fn chunked_use_after_error_is_a_bug() {
    let mut decoder = ChunkedDecoder::new(u64::MAX);
    let mut out = Vec::new();
    assert!(decoder.decode(b"x", &mut out).is_err());
    let _ = decoder.decode(b"0\r\n\r\n", &mut out);
}

fn query(raw: &str) -> Vec<(String, String)> {
    parse_query(raw).unwrap()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

#[test]
fn query_cases() {
    assert_eq!(query(""), pairs(&[]));
    assert_eq!(query("uploads"), pairs(&[("uploads", "")]));
    assert_eq!(
        query("list-type=2&prefix=photos%2F2024&delimiter=%2F"),
        pairs(&[("list-type", "2"), ("prefix", "photos/2024"), ("delimiter", "/")])
    );
    assert_eq!(query("a=1&&b=&"), pairs(&[("a", "1"), ("b", "")]));
    assert_eq!(query("a+b=c+d%20e"), pairs(&[("a+b", "c+d e")]));
    assert_eq!(query("k=a=b"), pairs(&[("k", "a=b")]));
    assert_eq!(query("x-id=PutObject&versionId=3%2FL4kqtJl"), pairs(&[("x-id", "PutObject"), ("versionId", "3/L4kqtJl")]));
    assert_eq!(query("a=1&a=2"), pairs(&[("a", "1"), ("a", "2")]));
    assert_eq!(query("caf%C3%A9=%e2%82%ac"), pairs(&[("caf\u{e9}", "\u{20ac}")]));
    assert_eq!(parse_query("a=1&b=%zz"), Err(HttpError::PercentEscape { part: "query", offset: 6 }));
    assert_eq!(parse_query("a%2"), Err(HttpError::PercentEscape { part: "query", offset: 1 }));
    assert_eq!(parse_query("a=%"), Err(HttpError::PercentEscape { part: "query", offset: 2 }));
    assert_eq!(parse_query("a=%ff"), Err(HttpError::DecodedNotUtf8 { part: "query" }));
    assert_eq!(parse_query("a=%ff").unwrap_err().status(), 400);
}

#[test]
fn path_cases() {
    assert_eq!(decode_path("/bucket/key"), Ok("/bucket/key".into()));
    assert_eq!(decode_path("/b/a%20b+c%2Fd"), Ok("/b/a b+c/d".into()));
    assert_eq!(decode_path("/b/%E2%82%AC"), Ok("/b/\u{20ac}".into()));
    assert_eq!(decode_path("/b/%25"), Ok("/b/%".into()));
    assert_eq!(decode_path("/b/%00"), Ok("/b/\0".into()));
    assert_eq!(decode_path("/b/%g0"), Err(HttpError::PercentEscape { part: "path", offset: 3 }));
    assert_eq!(decode_path("/b/%"), Err(HttpError::PercentEscape { part: "path", offset: 3 }));
    assert_eq!(decode_path("/b/%C3"), Err(HttpError::DecodedNotUtf8 { part: "path" }));
    assert_eq!(decode_path("/b/%C3").unwrap_err().status(), 400);
    assert_eq!(decode_path("/b/%C3").unwrap_err().to_string(), "percent-decoded path is not UTF-8");
}

fn partial(start: u64, end_inclusive: u64) -> RangeResult {
    RangeResult::Partial { start, end_inclusive }
}

#[test]
fn range_cases() {
    let check = |value: &str, len: u64, expected: RangeResult| assert_eq!(parse_range(value, len), expected, "{value:?} on {len}");
    check("bytes=0-499", 1000, partial(0, 499));
    check("bytes=500-999", 1000, partial(500, 999));
    check("bytes=500-5000", 1000, partial(500, 999));
    check("bytes=999-999", 1000, partial(999, 999));
    check("bytes=0-0", 1, partial(0, 0));
    check("bytes=900-", 1000, partial(900, 999));
    check("bytes=0-", 1000, partial(0, 999));
    check("bytes=-100", 1000, partial(900, 999));
    check("bytes=-1000", 1000, partial(0, 999));
    check("bytes=-5000", 1000, partial(0, 999));
    check("Bytes = 1-2", 1000, partial(1, 2));
    check(" bytes= 1-2 ", 1000, partial(1, 2));
    check("bytes=0-99999999999999999999999", 1000, partial(0, 999));
    check("bytes=-99999999999999999999999", 1000, partial(0, 999));
    // Unsatisfiable: 416.
    check("bytes=1000-", 1000, RangeResult::Unsatisfiable);
    check("bytes=1000-2000", 1000, RangeResult::Unsatisfiable);
    check("bytes=99999999999999999999999-", 1000, RangeResult::Unsatisfiable);
    check("bytes=-0", 1000, RangeResult::Unsatisfiable);
    check("bytes=0-", 0, RangeResult::Unsatisfiable);
    check("bytes=0-0", 0, RangeResult::Unsatisfiable);
    check("bytes=-5", 0, RangeResult::Unsatisfiable);
    // Ignored: full object, 200.
    for ignored in [
        "",
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=5-3",
        "bytes=a-b",
        "bytes=1-2x",
        "bytes=+1-2",
        "bytes=0-1,5-6",
        "bytes=0-1, 5-6",
        "items=0-1",
        "bytes=1 - 2",
        "bytes=--1",
        "bytes=1-2-3",
        "0-1",
    ] {
        check(ignored, 1000, RangeResult::Full);
    }
    check("bytes=0-1,2-3", 0, RangeResult::Full);
}

#[test]
fn response_head_bytes() {
    let mut out = Vec::new();
    ResponseHead::new(200).header("ETag", "\"abc\"").header("x-amz-request-id", "R1").content_length(11).write_into(&mut out);
    assert_eq!(out, b"HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nx-amz-request-id: R1\r\nContent-Length: 11\r\n\r\n");
    let mut out = Vec::new();
    ResponseHead::new(204).write_into(&mut out);
    assert_eq!(out, b"HTTP/1.1 204 No Content\r\n\r\n");
    let mut out = b"previous".to_vec();
    ResponseHead::new(599).content_length(0).write_into(&mut out);
    assert_eq!(out, b"previousHTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n");
    assert_eq!(ResponseHead::new(416).status(), 416);
    assert_eq!(CONTINUE_100, b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn header_lines_rendered_once_append_as_if_added_in_place() {
    let mut stored = ResponseHead::new(200);
    stored.try_header("etag", "\"abc\"").expect("a plain value");
    assert!(stored.try_header("x-amz-meta-evil", "a\r\nset-cookie: x").is_err(), "a CRLF never reaches the lines");
    stored.try_header("x-amz-meta-colour", "blue").expect("a plain value");
    let lines = stored.into_header_lines();
    assert_eq!(lines.len(), "etag: \"abc\"\r\nx-amz-meta-colour: blue\r\n".len(), "no status line, nothing refused");
    let mut reused = ResponseHead::new(206).header("x-amz-request-id", "R1");
    reused.push_lines(&lines);
    let direct = ResponseHead::new(206).header("x-amz-request-id", "R1").header("etag", "\"abc\"").header("x-amz-meta-colour", "blue");
    assert_eq!(reused.content_length(3).into_bytes(), direct.content_length(3).into_bytes());
}

#[test]
fn response_reason_phrases() {
    for (status, reason) in [
        (100, "Continue"),
        (200, "OK"),
        (204, "No Content"),
        (206, "Partial Content"),
        (301, "Moved Permanently"),
        (304, "Not Modified"),
        (307, "Temporary Redirect"),
        (400, "Bad Request"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (409, "Conflict"),
        (411, "Length Required"),
        (412, "Precondition Failed"),
        (413, "Content Too Large"),
        (414, "URI Too Long"),
        (416, "Range Not Satisfiable"),
        (431, "Request Header Fields Too Large"),
        (500, "Internal Server Error"),
        (501, "Not Implemented"),
        (503, "Service Unavailable"),
        (505, "HTTP Version Not Supported"),
    ] {
        assert_eq!(reason_phrase(status), reason);
        let mut out = Vec::new();
        ResponseHead::new(status).write_into(&mut out);
        assert_eq!(out, format!("HTTP/1.1 {status} {reason}\r\n\r\n").as_bytes());
    }
}

#[test]
fn response_header_injection_refused() {
    let mut head = ResponseHead::new(200);
    for (name, value) in [("x-amz-meta-a", "v\r\nSet-Cookie: x"), ("x-amz-meta-a", "v\n"), ("x-amz-meta-a", "v\r"), ("x-amz-meta-a", "\0")]
    {
        let error = head.try_header(name, value).unwrap_err();
        assert_eq!(error.reason, "value contains CR, LF or another control byte");
    }
    for name in ["", "bad name", "bad:name", "bad\r\nname"] {
        assert_eq!(head.try_header(name, "v").unwrap_err().reason, "name is not an HTTP token");
    }
    assert_eq!(head.try_header("content-length", "5").unwrap_err().reason, "set Content-Length with content_length()");
    assert_eq!(
        head.try_header("x-a", "\n").unwrap_err().to_string(),
        "response header 'x-a' refused: value contains CR, LF or another control byte"
    );
    assert_eq!(head.try_header("x-amz-meta-ok", "caf\u{e9}\tok"), Ok(()));
    let mut out = Vec::new();
    head.write_into(&mut out);
    assert_eq!(out, "HTTP/1.1 200 OK\r\nx-amz-meta-ok: caf\u{e9}\tok\r\n\r\n".as_bytes());
}

#[test]
#[should_panic(expected = "control byte")]
fn response_header_with_crlf_panics() {
    let _ = ResponseHead::new(200).header("x-a", "a\r\nb: c");
}

#[test]
#[should_panic(expected = "content-length set twice")]
fn response_content_length_twice_panics() {
    let _ = ResponseHead::new(200).content_length(1).content_length(2);
}

#[test]
#[should_panic(expected = "no content-length on 204")]
fn response_content_length_on_204_panics() {
    let _ = ResponseHead::new(204).content_length(0);
}

#[test]
#[should_panic(expected = "three-digit")]
fn response_status_out_of_range_panics() {
    let _ = ResponseHead::new(1000);
}

#[test]
fn http_dates() {
    assert_eq!(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(-5), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
    assert_eq!(parse_http_date(" Sun, 06 Nov 1994 08:49:37 GMT "), Some(784111777));
    assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784111777));
    assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(784111777));
    assert_eq!(parse_http_date("2024-01-01T00:00:00Z"), None);
    assert_eq!(parse_http_date(""), None);
    for unix_s in [0, 1, 784111777, 1_700_000_000, 253_402_300_799] {
        assert_eq!(parse_http_date(&http_date(unix_s)), Some(unix_s));
    }
}

#[test]
fn error_statuses() {
    for (error, status) in [
        (HttpError::HostMissing, 400),
        (HttpError::Syntax { what: "x" }, 400),
        (HttpError::BodyTooLarge { limit_bytes: 1 }, 413),
        (HttpError::TargetTooLong { length_bytes: 1 }, 414),
        (HttpError::HeadTooLarge { length_bytes: 1 }, 431),
        (HttpError::HeadersTooMany, 431),
        (HttpError::TransferEncodingUnsupported { value: "gzip".into() }, 501),
        (HttpError::VersionUnsupported { version: "HTTP/2.0".into() }, 505),
    ] {
        assert_eq!(error.status(), status, "{error:?}");
    }
    let long = "x".repeat(1000);
    let message = framing(&format!("Content-Length: {long}\r\n")).unwrap_err().to_string();
    assert!(message.len() < 200, "echoed input is shortened: {message}");
}

/// Formatted values are checked like plain ones, and a refused one leaves nothing behind; the
/// per-thread cached Date is the same text as `http_date`, and follows the second it is given.
#[test]
fn formatted_headers_and_the_cached_date() {
    let mut head = ResponseHead::new(200);
    assert_eq!(head.try_header_fmt("etag", format_args!("\"{}\"", "abc")), Ok(()));
    let refused = head.try_header_fmt("x-a", format_args!("{}{}", "v", "\r\nx-b: 1")).unwrap_err();
    assert_eq!(refused.reason, "value contains CR, LF or another control byte");
    let head = head.date(784_111_777).date(784_111_778).date(784_111_777);
    let mut out = Vec::new();
    head.write_into(&mut out);
    let (a, b) = (http_date(784_111_777), http_date(784_111_778));
    assert_eq!(a, "Sun, 06 Nov 1994 08:49:37 GMT");
    let expected = format!("HTTP/1.1 200 OK\r\netag: \"abc\"\r\ndate: {a}\r\ndate: {b}\r\ndate: {a}\r\n\r\n");
    assert_eq!(String::from_utf8_lossy(&out), expected);
}
