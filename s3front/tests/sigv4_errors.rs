//! Every way `authenticate` refuses a request, each starting from a request that passes, so that
//! each case fails for the one reason it names.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use s3front::sigv4::{Auth, AuthError, PayloadMode, RequestParts, authenticate, hmac_sha256, sha256, signing_key, verify_payload_sha256};

const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const NOW_UNIX_S: i64 = 1_369_353_600;
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const ZERO_SIGNATURE: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn secrets(access_key: &str) -> Option<String> {
    (access_key == ACCESS_KEY).then(|| SECRET.to_string())
}

/// A request under construction; `sign` fills in a correct signature the way a client would.
#[derive(Clone)]
struct Req {
    method: &'static str,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn header_auth(extra: &[(&str, &str)], signed: &str, credential_tail: &str) -> Req {
        let mut headers: Vec<(String, String)> =
            [("host", "examplebucket.s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"), ("x-amz-content-sha256", EMPTY_SHA256)]
                .iter()
                .chain(extra)
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
        let authorization =
            format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{credential_tail}, SignedHeaders={signed}, Signature={ZERO_SIGNATURE}");
        headers.push(("authorization".into(), authorization));
        Req { method: "GET", path: "/bucket/key".into(), query: String::new(), headers }
    }

    fn valid() -> Req {
        Req::header_auth(&[], "host;x-amz-content-sha256;x-amz-date", "20130524/us-east-1/s3/aws4_request").sign()
    }

    fn presigned(params: &str) -> Req {
        let headers = vec![("host".to_string(), "examplebucket.s3.amazonaws.com".to_string())];
        let query = format!("{params}&X-Amz-Signature={ZERO_SIGNATURE}");
        Req { method: "GET", path: "/test.txt".into(), query, headers }
    }

    fn run_at(&self, now_unix_s: i64) -> Result<Auth, AuthError> {
        let parts = RequestParts { method: self.method, raw_path: &self.path, raw_query: &self.query, headers: &self.headers };
        authenticate(&parts, &secrets, now_unix_s, "us-east-1")
    }

    fn run(&self) -> Result<Auth, AuthError> {
        self.run_at(NOW_UNIX_S)
    }

    /// Replaces the zero signature by the right one, learnt from the string to sign S3 reports.
    fn sign(mut self) -> Req {
        let Err(AuthError::SignatureDoesNotMatch { string_to_sign, .. }) = self.run() else {
            panic!("unsigned request should fail only on its signature: {:?}", self.run());
        };
        let date = &string_to_sign.split('\n').nth(2).expect("scope line")[..8];
        let region = string_to_sign.split('\n').nth(2).expect("scope line").split('/').nth(1).expect("region");
        let signature = hex::encode(hmac_sha256(&signing_key(SECRET, date, region, "s3"), string_to_sign.as_bytes()));
        for (_, value) in self.headers.iter_mut().filter(|(n, _)| n == "authorization") {
            *value = value.replace(ZERO_SIGNATURE, &signature);
        }
        self.query = self.query.replace(ZERO_SIGNATURE, &signature);
        assert!(matches!(self.run(), Ok(Auth::Signed(_))), "{:?}", self.run());
        self
    }

    fn set_header(mut self, name: &str, value: &str) -> Req {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.into(), value.into()));
        self
    }
}

fn check(req: &Req, code: &str, status: u16, message_part: &str) {
    let error = req.run().expect_err(message_part);
    assert_eq!(error.code(), code, "{error}");
    assert_eq!(error.status(), status, "{error}");
    assert!(error.to_string().contains(message_part), "{error:?} should mention {message_part:?}");
    assert!(!error.to_string().contains(SECRET));
}

#[test]
fn anonymous_when_nothing_claims_a_signature() {
    let req = Req { method: "GET", path: "/b/k".into(), query: "prefix=a".into(), headers: vec![("host".into(), "h".into())] };
    assert_eq!(req.run(), Ok(Auth::Anonymous));
}

#[test]
fn signature_does_not_match() {
    let mut req = Req::valid();
    req.path = "/bucket/other".into();
    check(&req, "SignatureDoesNotMatch", 403, "does not match");
    let Err(AuthError::SignatureDoesNotMatch { canonical_request, .. }) = req.run() else { unreachable!() };
    assert!(canonical_request.starts_with("GET\n/bucket/other\n"), "{canonical_request}");
    let mut req = Req::valid();
    req.query = "x=1".into();
    check(&req, "SignatureDoesNotMatch", 403, "does not match");
    let req = Req::valid().set_header("x-amz-content-sha256", &hex::encode(sha256(b"x")));
    check(&req, "SignatureDoesNotMatch", 403, "does not match");
}

#[test]
fn invalid_access_key() {
    let mut req = Req::valid();
    req.headers.last_mut().unwrap().1 = req.headers.last().unwrap().1.replace(ACCESS_KEY, "AKIDUNKNOWN");
    check(&req, "InvalidAccessKeyId", 403, "AKIDUNKNOWN");
}

#[test]
fn clock_skew() {
    let req = Req::valid();
    assert!(req.run_at(NOW_UNIX_S + 900).is_ok());
    assert!(req.run_at(NOW_UNIX_S - 900).is_ok());
    for now in [NOW_UNIX_S + 901, NOW_UNIX_S - 901, i64::MIN, i64::MAX] {
        let error = req.run_at(now).unwrap_err();
        assert_eq!((error.code(), error.status()), ("RequestTimeTooSkewed", 403), "{error}");
    }
}

#[test]
fn malformed_authorization_header() {
    for (authorization, part) in [
        ("AWS4-HMAC-SHA256", "malformed"),
        ("AWS4-ECDSA-P256-SHA256 Credential=a, SignedHeaders=host, Signature=b", "unsupported algorithm"),
        (
            &*format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date"),
            "missing Signature",
        ),
        (
            &*format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
            ),
            "64 hex",
        ),
        (
            &*format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130524/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature={ZERO_SIGNATURE}"
            ),
            "service",
        ),
        (
            &*format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130524/us-east-1/s3/aws5_request, SignedHeaders=host;x-amz-date, Signature={ZERO_SIGNATURE}"
            ),
            "terminator",
        ),
        (
            &*format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130525/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={ZERO_SIGNATURE}"
            ),
            "credential date",
        ),
        (
            &*format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, SignedHeaders=x-amz-content-sha256;x-amz-date, Signature={ZERO_SIGNATURE}"
            ),
            "include host",
        ),
        (
            &*format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256, Signature={ZERO_SIGNATURE}"
            ),
            "include x-amz-date",
        ),
        (
            &*format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, SignedHeaders=Host;x-amz-date, Signature={ZERO_SIGNATURE}"
            ),
            "lowercase",
        ),
        (
            &*format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature={ZERO_SIGNATURE}"
            ),
            "\"range\" is not present",
        ),
    ] {
        let req = Req::valid().set_header("authorization", authorization);
        check(&req, "AuthorizationHeaderMalformed", 400, part);
    }
}

#[test]
fn sigv2_is_refused() {
    let req = Req::valid().set_header("authorization", "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=");
    check(&req, "InvalidRequest", 400, "Signature Version 2");
}

#[test]
fn missing_or_bad_payload_hash() {
    let mut req = Req::valid();
    req.headers.retain(|(n, _)| n != "x-amz-content-sha256");
    check(&req, "MissingSecurityHeader", 400, "x-amz-content-sha256");
    for bad in ["", "UNSIGNED", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", &EMPTY_SHA256[1..], "zz"] {
        check(&Req::valid().set_header("x-amz-content-sha256", bad), "InvalidArgument", 400, "x-amz-content-sha256");
    }
}

#[test]
fn missing_or_bad_date() {
    let mut req = Req::valid();
    req.headers.retain(|(n, _)| n != "x-amz-date");
    check(&req, "AccessDenied", 403, "Date or x-amz-date");
    check(&Req::valid().set_header("x-amz-date", "2013-05-24T00:00:00Z"), "AccessDenied", 403, "Date or x-amz-date");
}

#[test]
fn date_header_instead_of_x_amz_date() {
    let mut req = Req::header_auth(
        &[("date", "Fri, 24 May 2013 00:00:00 GMT")],
        "date;host;x-amz-content-sha256",
        "20130524/us-east-1/s3/aws4_request",
    );
    req.headers.retain(|(n, _)| n != "x-amz-date");
    let req = req.sign();
    let Ok(Auth::Signed(signed)) = req.run() else { unreachable!() };
    assert_eq!(signed.date_time, "20130524T000000Z");
}

#[test]
fn unsigned_amz_headers_are_refused() {
    let req = Req::valid().set_header("x-amz-meta-color", "blue");
    check(&req, "AccessDenied", 403, "x-amz-meta-color");
    // Header names with non-ASCII bytes are not x-amz-* headers (a fuzz-found panic).
    assert!(Req::valid().set_header("co\u{fffd}ngth", "1").run().is_ok());
    assert!(Req::valid().set_header("x-amz\u{fffd}", "1").run().is_ok());
    // Other unsigned headers are fine (SDKs leave user-agent and the like unsigned).
    assert!(Req::valid().set_header("user-agent", "test").run().is_ok());
}

#[test]
fn only_one_mechanism() {
    let mut req = Req::valid();
    req.query = "X-Amz-Algorithm=AWS4-HMAC-SHA256".into();
    check(&req, "InvalidArgument", 400, "Only one auth mechanism");
}

#[test]
fn other_regions_are_accepted_and_reported() {
    let req = Req::header_auth(&[], "host;x-amz-content-sha256;x-amz-date", "20130524/eu-west-1/s3/aws4_request").sign();
    let Ok(Auth::Signed(signed)) = req.run() else { unreachable!() };
    assert_eq!(signed.scope.region, "eu-west-1");
    assert!(!signed.region_is_configured);
}

const PRESIGNED: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-SignedHeaders=host";

#[test]
fn presigned_parameters() {
    let valid = Req::presigned(&format!("{PRESIGNED}&X-Amz-Expires=60")).sign();
    assert!(valid.run_at(NOW_UNIX_S + 60).is_ok());
    let error = valid.run_at(NOW_UNIX_S + 61).unwrap_err();
    assert_eq!((error.code(), error.message()), ("AccessDenied", "Request has expired".to_string()));
    let error = valid.run_at(NOW_UNIX_S - 901).unwrap_err();
    assert_eq!(error.code(), "AccessDenied", "{error}");

    for (params, part) in [
        (format!("{PRESIGNED}&X-Amz-Expires=0"), "positive"),
        (format!("{PRESIGNED}&X-Amz-Expires=604801"), "604800"),
        (format!("{PRESIGNED}&X-Amz-Expires=-5"), "whole number"),
        (format!("{PRESIGNED}&X-Amz-Expires=1e3"), "whole number"),
        (PRESIGNED.to_string(), "requires the X-Amz-Algorithm"),
        (format!("{}&X-Amz-Expires=60", PRESIGNED.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1")), "only supports"),
        (format!("{}&X-Amz-Expires=60", PRESIGNED.replace("20130524T000000Z", "20130524")), "ISO8601"),
        (format!("{}&X-Amz-Expires=60", PRESIGNED.replace("X-Amz-Date=20130524", "X-Amz-Date=20130525")), "credential date"),
        (format!("{}&X-Amz-Expires=60", PRESIGNED.replace("SignedHeaders=host", "SignedHeaders=range")), "include host"),
        (format!("{}&X-Amz-Expires=60", PRESIGNED.replace("SignedHeaders=host", "SignedHeaders=host%3Brange")), "\"range\" is not present"),
        (format!("{PRESIGNED}&X-Amz-Expires=60&X-Amz-Expires=60"), "more than once"),
        (format!("{}&X-Amz-Expires=60", PRESIGNED.replace("%2Fs3%2F", "%2Fsqs%2F")), "service"),
    ] {
        check(&Req::presigned(&params), "AuthorizationQueryParametersError", 400, part);
    }
    let mut req = valid.clone();
    req.query = req.query.replace("X-Amz-Expires=60", "X-Amz-Expires=61");
    check(&req, "SignatureDoesNotMatch", 403, "does not match");
}

#[test]
fn streaming_headers() {
    let streaming = |extra: &[(&str, &str)], signed: &str| {
        Req::header_auth(extra, &format!("host;x-amz-content-sha256;x-amz-date;{signed}"), "20130524/us-east-1/s3/aws4_request")
    };
    let trailer = [("x-amz-trailer", "x-amz-checksum-crc32c")];
    let ok = streaming(&trailer, "x-amz-trailer").set_header("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER").sign();
    let Ok(Auth::Signed(signed)) = ok.run() else { unreachable!() };
    assert_eq!(signed.payload, PayloadMode::StreamingUnsignedTrailer);
    assert_eq!(signed.trailer, Some(s3front::checksum::ChecksumAlgorithm::Crc32c));
    assert!(signed.chunk_signer().is_none());

    let req = streaming(&trailer, "x-amz-trailer")
        .set_header("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        .sign_expecting_error();
    check(&req, "InvalidRequest", 400, "x-amz-trailer");
    let req = streaming(&[("x-amz-trailer", "x-amz-checksum-md5")], "x-amz-trailer")
        .set_header("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
        .sign_expecting_error();
    check(&req, "InvalidArgument", 400, "x-amz-trailer");
    let req = streaming(&[("x-amz-decoded-content-length", "12a")], "x-amz-decoded-content-length")
        .set_header("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        .sign_expecting_error();
    check(&req, "InvalidArgument", 400, "x-amz-decoded-content-length");
}

impl Req {
    /// Like `sign`, for requests whose signature is right but which fail a later check.
    fn sign_expecting_error(mut self) -> Req {
        let Err(AuthError::SignatureDoesNotMatch { string_to_sign, .. }) = self.run() else { panic!("{:?}", self.run()) };
        let signature = hex::encode(hmac_sha256(&signing_key(SECRET, "20130524", "us-east-1", "s3"), string_to_sign.as_bytes()));
        for (_, value) in self.headers.iter_mut().filter(|(n, _)| n == "authorization") {
            *value = value.replace(ZERO_SIGNATURE, &signature);
        }
        assert!(!matches!(self.run(), Err(AuthError::SignatureDoesNotMatch { .. })));
        self
    }
}

#[test]
fn payload_hash_mismatch() {
    assert_eq!(verify_payload_sha256(&sha256(b"a"), &sha256(b"a")), Ok(()));
    let error = verify_payload_sha256(&sha256(b"a"), &sha256(b"b")).unwrap_err();
    assert_eq!((error.code(), error.status()), ("XAmzContentSHA256Mismatch", 400));
}
