//! The bytes of one S3 request as warp's client (minio-go) sends them over plain HTTP: object
//! bodies in aws-chunked with a signature per chunk (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), or
//! with a checksum trailer (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, warp's `--checksum`), or plain
//! (`UNSIGNED-PAYLOAD`, warp's `--disable-sha256-payload`); no signature at all without keys
//! (minio-go's anonymous client, for servers without auth such as nginx).

use base64::Engine as _;
use s3front::checksum::{ChecksumAlgorithm, Md5};
use s3front::chunked::{ChunkedMode, encode_aws_chunked};
use s3front::sigv4::{STREAMING_SIGNED_PAYLOAD, STREAMING_UNSIGNED_PAYLOAD_TRAILER, UNSIGNED_PAYLOAD};

use super::sign::{SignInput, Signer};

/// Data bytes per aws-chunked chunk: minio-go's streaming chunk size.
pub const STREAMING_CHUNK_BYTES: usize = 64 << 10;

/// How object bodies are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Plain body, `x-amz-content-sha256: UNSIGNED-PAYLOAD` when signed.
    Unsigned,
    /// aws-chunked, every chunk signed (warp's default over plain HTTP).
    StreamingSigned,
    /// aws-chunked, unsigned chunks and a checksum trailer.
    UnsignedTrailer(ChecksumAlgorithm),
}

impl Payload {
    pub fn name(self) -> String {
        match self {
            Payload::Unsigned => UNSIGNED_PAYLOAD.to_string(),
            Payload::StreamingSigned => STREAMING_SIGNED_PAYLOAD.to_string(),
            Payload::UnsignedTrailer(a) => format!("{STREAMING_UNSIGNED_PAYLOAD_TRAILER} ({})", a.header_name()),
        }
    }
}

/// Server-side encryption the run asks for: warp's `--encrypt` (SSE-C with a random key per
/// run) and `--sse-s3-encrypt`.
#[derive(Clone, Debug, Default)]
pub enum Sse {
    #[default]
    None,
    /// `x-amz-server-side-encryption: AES256` on every object upload.
    S3,
    /// The three SSE-C headers on every object GET, HEAD and upload (signed, as minio-go does).
    Customer(Vec<(&'static str, String)>),
}

impl Sse {
    pub fn customer(key: [u8; 32]) -> Sse {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut md5 = Md5::new();
        md5.update(&key);
        Sse::Customer(vec![
            ("x-amz-server-side-encryption-customer-algorithm", "AES256".to_string()),
            ("x-amz-server-side-encryption-customer-key", b64.encode(key)),
            ("x-amz-server-side-encryption-customer-key-md5", b64.encode(md5.finish())),
        ])
    }

    pub fn name(&self) -> &'static str {
        match self {
            Sse::None => "none",
            Sse::S3 => "SSE-S3",
            Sse::Customer(_) => "SSE-C",
        }
    }

    /// The headers `spec` carries: uploads (PUT of an object or part, CreateMultipartUpload)
    /// and, under SSE-C, reads of an object; nothing for bucket requests, deletes, listings.
    fn headers(&self, spec: &Spec) -> Vec<(&'static str, String)> {
        let object = spec.path.trim_start_matches('/').contains('/');
        let create_upload = spec.method == "POST" && spec.query.split('&').any(|p| p == "uploads" || p == "uploads=");
        let upload = (spec.method == "PUT" && matches!(spec.body, Body::Object(_))) || create_upload;
        let read = matches!(spec.method, "GET" | "HEAD") && !spec.query.contains("uploadId");
        let part = spec.query.contains("partNumber=");
        match self {
            Sse::S3 if object && upload && !part => vec![("x-amz-server-side-encryption", "AES256".to_string())],
            Sse::Customer(headers) if object && (upload || read) => headers.clone(),
            _ => Vec::new(),
        }
    }
}

/// What one request carries.
pub enum Body<'a> {
    None,
    /// Object data, sent as the run's [`Payload`] says.
    Object(&'a [u8]),
    /// A small XML document (multi-delete, complete multipart): plain, with Content-MD5 (S3
    /// requires it for multi-delete).
    Xml(&'a [u8]),
}

pub struct Spec<'a> {
    pub method: &'a str,
    /// Percent-encoded path, `/bucket/key`.
    pub path: &'a str,
    /// Percent-encoded query without `?`.
    pub query: &'a str,
    pub body: Body<'a>,
    pub sse: &'a Sse,
}

/// One request's bytes in `out` (cleared first). `signer` is `None` for anonymous requests.
pub fn build(out: &mut Vec<u8>, host: &str, signer: Option<&Signer>, payload: Payload, spec: &Spec, unix_s: i64) {
    out.clear();
    out.extend_from_slice(spec.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(spec.path.as_bytes());
    if !spec.query.is_empty() {
        out.push(b'?');
        out.extend_from_slice(spec.query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    let sse = spec.sse.headers(spec);
    match spec.body {
        Body::None => {
            sign_into(out, signer, spec, host, UNSIGNED_PAYLOAD, &sse, unix_s);
            push_extra(out, &sse);
            out.extend_from_slice(b"\r\n");
        }
        Body::Xml(xml) => {
            let mut md5 = Md5::new();
            md5.update(xml);
            let md5 = base64::engine::general_purpose::STANDARD.encode(md5.finish());
            let mut extra = vec![("content-md5", md5)];
            extra.extend(sse);
            sign_into(out, signer, spec, host, UNSIGNED_PAYLOAD, &extra, unix_s);
            push_extra(out, &extra);
            push_header(out, "Content-Type", "application/xml");
            push_body(out, xml);
        }
        Body::Object(data) => object_body(out, host, signer, payload, spec, data, sse, unix_s),
    }
}

#[allow(clippy::too_many_arguments)]
fn object_body(out: &mut Vec<u8>, host: &str, signer: Option<&Signer>, payload: Payload, spec: &Spec, data: &[u8], sse: Vec<(&'static str, String)>, unix_s: i64) {
    let decoded = data.len().to_string();
    match (payload, signer) {
        (Payload::StreamingSigned, Some(signer)) => {
            let mut extra = vec![("content-encoding", "aws-chunked".to_string()), ("x-amz-decoded-content-length", decoded)];
            extra.extend(sse);
            let input = SignInput { method: spec.method, path: spec.path, query: spec.query, host, payload: STREAMING_SIGNED_PAYLOAD, extra: &extra };
            let signed = signer.sign(&input, unix_s);
            out.extend_from_slice(signed.headers.as_bytes());
            push_extra(out, &extra);
            let body = encode_aws_chunked(ChunkedMode::Signed, Some(signed.chunk_signer()), data, STREAMING_CHUNK_BYTES, None);
            push_body(out, &body);
        }
        (Payload::UnsignedTrailer(algorithm), _) => {
            let mut extra = vec![
                ("content-encoding", "aws-chunked".to_string()),
                ("x-amz-decoded-content-length", decoded),
                ("x-amz-trailer", algorithm.header_name().to_string()),
            ];
            extra.extend(sse);
            sign_into(out, signer, spec, host, STREAMING_UNSIGNED_PAYLOAD_TRAILER, &extra, unix_s);
            if signer.is_none() {
                // Anonymous: the server still needs to know the body's framing.
                push_header(out, "x-amz-content-sha256", STREAMING_UNSIGNED_PAYLOAD_TRAILER);
            }
            push_extra(out, &extra);
            let body = encode_aws_chunked(ChunkedMode::UnsignedTrailer, None, data, STREAMING_CHUNK_BYTES, Some(algorithm));
            push_body(out, &body);
        }
        // Unsigned payload, or an anonymous client's plain body.
        _ => {
            sign_into(out, signer, spec, host, UNSIGNED_PAYLOAD, &sse, unix_s);
            push_extra(out, &sse);
            push_body(out, data);
        }
    }
}

fn sign_into(out: &mut Vec<u8>, signer: Option<&Signer>, spec: &Spec, host: &str, payload: &str, extra: &[(&str, String)], unix_s: i64) {
    if let Some(signer) = signer {
        let input = SignInput { method: spec.method, path: spec.path, query: spec.query, host, payload, extra };
        out.extend_from_slice(signer.sign(&input, unix_s).headers.as_bytes());
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_extra(out: &mut Vec<u8>, extra: &[(&str, String)]) {
    for (n, v) in extra {
        push_header(out, n, v);
    }
}

fn push_body(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}

/// Percent-encodes a query value or key segment as SigV4 wants it (RFC 3986 unreserved kept;
/// `/` kept when `keep_slash`, as in paths).
pub fn uri_encode(value: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for b in value.bytes() {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::sign::Credentials;

    const NOW: i64 = 1_790_000_000;

    fn credentials() -> Credentials {
        Credentials { access_key: "AKID".into(), secret_key: "secret-key-1".into(), region: "us-east-1".into() }
    }

    /// (head lines, body) of a request built here.
    fn split(request: &[u8]) -> (Vec<(String, String)>, Vec<u8>, String) {
        let text_end = request.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
        let head = String::from_utf8(request[..text_end].to_vec()).expect("ascii head");
        let mut lines = head.split("\r\n");
        let request_line = lines.next().expect("request line").to_string();
        let headers = lines.map(|l| l.split_once(": ").expect("header")).map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())).collect();
        (headers, request[text_end + 4..].to_vec(), request_line)
    }

    /// Runs s3front's own verifier and aws-chunked decoder over what `build` made: the body that
    /// comes out must be the data that went in.
    fn check(payload: Payload, data: &[u8]) {
        let signer = Signer::new(credentials());
        let mut out = Vec::new();
        let spec = Spec { method: "PUT", path: "/b/k%20ey", query: "partNumber=2&uploadId=a%2Fb", body: Body::Object(data), sse: &Sse::None };
        build(&mut out, "127.0.0.1:9000", Some(&signer), payload, &spec, NOW);
        let (mut headers, body, request_line) = split(&out);
        assert_eq!(request_line, "PUT /b/k%20ey?partNumber=2&uploadId=a%2Fb HTTP/1.1");
        let length: usize = headers.iter().find(|(n, _)| n == "content-length").expect("content-length").1.parse().expect("number");
        assert_eq!(length, body.len());
        headers.retain(|(n, _)| n != "content-length");
        let parts = s3front::sigv4::RequestParts { method: "PUT", raw_path: "/b/k%20ey", raw_query: "partNumber=2&uploadId=a%2Fb", headers: &headers };
        let secrets = |ak: &str| (ak == "AKID").then(|| "secret-key-1".to_string());
        let signed = match s3front::sigv4::authenticate(&parts, &secrets, NOW, "us-east-1") {
            Ok(s3front::sigv4::Auth::Signed(s)) => s,
            other => panic!("{payload:?}: {other:?}"),
        };
        let decoded = match s3front::chunked::AwsChunkedDecoder::for_request(&signed) {
            None => body,
            Some(mut decoder) => {
                let mut decoded = Vec::new();
                let used = decoder.feed(&body, &mut |piece| decoded.extend_from_slice(piece)).unwrap_or_else(|e| panic!("{payload:?}: {e}"));
                assert_eq!(used, body.len(), "{payload:?}: the whole body is one aws-chunked body");
                assert!(decoder.is_done(), "{payload:?}: the body ends");
                decoded
            }
        };
        assert_eq!(decoded, data, "{payload:?}");
    }

    #[test]
    fn object_bodies_pass_the_servers_verifier_and_decoder() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        for payload in [Payload::Unsigned, Payload::StreamingSigned, Payload::UnsignedTrailer(ChecksumAlgorithm::Crc32)] {
            check(payload, &data);
            check(payload, &data[..STREAMING_CHUNK_BYTES]);
            check(payload, b"");
        }
    }

    #[test]
    fn a_wrong_chunk_is_refused() {
        let signer = Signer::new(credentials());
        let mut out = Vec::new();
        let data = vec![b'x'; 100_000];
        let spec = Spec { method: "PUT", path: "/b/k", query: "", body: Body::Object(&data), sse: &Sse::None };
        build(&mut out, "h", Some(&signer), Payload::StreamingSigned, &spec, NOW);
        let (mut headers, mut body, _) = split(&out);
        headers.retain(|(n, _)| n != "content-length");
        let last = body.len() - 200;
        body[last] ^= 1;
        let parts = s3front::sigv4::RequestParts { method: "PUT", raw_path: "/b/k", raw_query: "", headers: &headers };
        let secrets = |_: &str| Some("secret-key-1".to_string());
        let Ok(s3front::sigv4::Auth::Signed(signed)) = s3front::sigv4::authenticate(&parts, &secrets, NOW, "us-east-1") else { panic!("head signature") };
        let mut decoder = s3front::chunked::AwsChunkedDecoder::for_request(&signed).expect("streaming");
        assert!(decoder.feed(&body, &mut |_| {}).is_err(), "a flipped byte fails its chunk's signature");
    }

    #[test]
    fn encryption_headers_go_on_object_uploads_and_reads_only() {
        let customer = Sse::customer([7; 32]);
        let data = [1u8; 10];
        let spec = |method, path, query, body| Spec { method, path, query, body, sse: &customer };
        let names = |sse: &Sse, s: Spec| sse.headers(&s).into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        let c3 = 3;
        assert_eq!(names(&customer, spec("PUT", "/b/k", "", Body::Object(&data))).len(), c3);
        assert_eq!(names(&customer, spec("PUT", "/b/k", "partNumber=1&uploadId=u", Body::Object(&data))).len(), c3);
        assert_eq!(names(&customer, spec("GET", "/b/k", "", Body::None)).len(), c3);
        assert_eq!(names(&customer, spec("HEAD", "/b/k", "", Body::None)).len(), c3);
        assert_eq!(names(&customer, spec("POST", "/b/k", "uploads=", Body::None)).len(), c3);
        assert!(names(&customer, spec("DELETE", "/b/k", "", Body::None)).is_empty());
        assert!(names(&customer, spec("PUT", "/b", "", Body::None)).is_empty());
        assert!(names(&customer, spec("GET", "/b", "list-type=2", Body::None)).is_empty());
        assert!(names(&customer, spec("POST", "/b/k", "uploadId=u", Body::Xml(b"<x/>"))).is_empty());
        let s3 = Sse::S3;
        assert_eq!(names(&s3, spec("PUT", "/b/k", "", Body::Object(&data))), ["x-amz-server-side-encryption"]);
        assert!(names(&s3, spec("PUT", "/b/k", "partNumber=1&uploadId=u", Body::Object(&data))).is_empty());
        assert!(names(&s3, spec("GET", "/b/k", "", Body::None)).is_empty());
        // The server's own parser takes the key, and the headers are signed.
        let signer = Signer::new(credentials());
        let mut out = Vec::new();
        build(&mut out, "h", Some(&signer), Payload::StreamingSigned, &spec("PUT", "/b/k", "", Body::Object(&data)), NOW);
        let (headers, _, _) = split(&out);
        let header = |n: &str| headers.iter().find(|(h, _)| h == n).map(|(_, v)| v.as_str());
        assert!(s3front::sse::customer_key(header, false, true).expect("valid SSE-C headers").is_some());
        let auth = header("authorization").expect("signed");
        assert!(auth.contains("x-amz-server-side-encryption-customer-key-md5"), "{auth}");
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(uri_encode("a b/c~d+e", false), "a%20b%2Fc~d%2Be");
        assert_eq!(uri_encode("p/k-1.x", true), "p/k-1.x");
    }
}
