//! sigv4: AWS Signature Version 4 verification for S3 requests (header and presigned-URL forms).
//!
//! Sans-IO: the HTTP layer fills a [`RequestParts`], the caller supplies the secret lookup and
//! the current time, and [`authenticate`] answers who signed the request and how the body is
//! covered ([`PayloadMode`]). Verifying the body itself is left to the caller: compare its SHA-256
//! with `PayloadMode::Sha256` ([`verify_payload_sha256`]) or run the aws-chunked decoder
//! (`crate::chunked`) with [`SignedRequest::chunk_signer`].
//!
//! Region policy: like most S3-compatible servers, any region named in the credential scope is
//! accepted and used for signing; [`SignedRequest::region_is_configured`] tells the caller whether
//! it was the configured one, so that a stricter caller can refuse with its own error.

mod canonical;
pub mod client;
mod error;
pub(crate) mod parse;

pub use canonical::{ALGORITHM, SCOPE_TERMINATOR, canonical_query, canonical_uri, hmac_sha256, sha256, signing_key, string_to_sign};
pub use error::AuthError;
pub use parse::{SERVICE, SIGNED_HEADER_COUNT_MAX};

use crate::checksum::ChecksumAlgorithm;
use crate::chunked::{ChunkSigner, ChunkedMode};
use parse::Credential;
use std::fmt;

/// Largest accepted distance between a header-signed request's time and the server's clock.
pub const CLOCK_SKEW_MAX_S: i64 = 15 * 60;
/// Longest validity of a presigned URL (`X-Amz-Expires`), one week as in S3.
pub const PRESIGNED_EXPIRES_MAX_S: i64 = 7 * 24 * 60 * 60;

pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub const STREAMING_SIGNED_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const STREAMING_SIGNED_PAYLOAD_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
pub const STREAMING_UNSIGNED_PAYLOAD_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// The part of a request that SigV4 covers, borrowed from the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct RequestParts<'a> {
    /// `GET`, `PUT`, … exactly as received.
    pub method: &'a str,
    /// The path as received, still percent-encoded, without the query.
    pub raw_path: &'a str,
    /// The query as received (after '?', without it), still percent-encoded; "" when absent.
    pub raw_query: &'a str,
    /// Every header in arrival order, names lowercased, values as received; a name may repeat.
    pub headers: &'a dyn HeaderList,
}

impl<'a> RequestParts<'a> {
    /// The first value of a header; `name` is lowercase.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        header_pairs(self.headers).find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }
}

/// Headers as SigV4 reads them: by position, so that the HTTP layer's packed head and a client's
/// list of pairs both serve without a copy.
impl std::fmt::Debug for dyn HeaderList + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(header_pairs(self)).finish()
    }
}

pub trait HeaderList {
    fn header_count(&self) -> usize;
    /// The `i`th header as (name, value).
    fn header_at(&self, i: usize) -> (&str, &str);
}

impl HeaderList for [(String, String)] {
    fn header_count(&self) -> usize {
        self.len()
    }

    fn header_at(&self, i: usize) -> (&str, &str) {
        (&self[i].0, &self[i].1)
    }
}

impl HeaderList for Vec<(String, String)> {
    fn header_count(&self) -> usize {
        self.len()
    }

    fn header_at(&self, i: usize) -> (&str, &str) {
        (&self[i].0, &self[i].1)
    }
}

impl HeaderList for crate::http::RequestHead {
    fn header_count(&self) -> usize {
        crate::http::RequestHead::header_count(self)
    }

    fn header_at(&self, i: usize) -> (&str, &str) {
        crate::http::RequestHead::header_at(self, i)
    }
}

/// Every header of `headers`, in order.
pub(crate) fn header_pairs(headers: &dyn HeaderList) -> impl Iterator<Item = (&str, &str)> {
    (0..headers.header_count()).map(|i| headers.header_at(i))
}

/// How the body is covered by the signature (from `x-amz-content-sha256`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadMode {
    /// The body's SHA-256 was signed; the caller must check the body against it before using it.
    Sha256([u8; 32]),
    /// `UNSIGNED-PAYLOAD`, and every presigned URL.
    Unsigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: aws-chunked with chunk signatures.
    StreamingSigned,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: aws-chunked without signatures, checksum trailer.
    StreamingUnsignedTrailer,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: chunk signatures and a signed trailer.
    StreamingSignedTrailer,
}

impl PayloadMode {
    /// Parses an `x-amz-content-sha256` value; the hex form must be 64 digits.
    pub fn parse(value: &str) -> Option<PayloadMode> {
        match value {
            UNSIGNED_PAYLOAD => Some(Self::Unsigned),
            STREAMING_SIGNED_PAYLOAD => Some(Self::StreamingSigned),
            STREAMING_UNSIGNED_PAYLOAD_TRAILER => Some(Self::StreamingUnsignedTrailer),
            STREAMING_SIGNED_PAYLOAD_TRAILER => Some(Self::StreamingSignedTrailer),
            hex_value => parse::parse_signature(hex_value).map(Self::Sha256),
        }
    }

    /// The aws-chunked flavour of a streaming mode; `None` for a plain body.
    pub fn chunked_mode(self) -> Option<ChunkedMode> {
        match self {
            Self::Sha256(_) | Self::Unsigned => None,
            Self::StreamingSigned => Some(ChunkedMode::Signed),
            Self::StreamingUnsignedTrailer => Some(ChunkedMode::UnsignedTrailer),
            Self::StreamingSignedTrailer => Some(ChunkedMode::SignedTrailer),
        }
    }

    fn has_trailer(self) -> bool {
        matches!(self, Self::StreamingUnsignedTrailer | Self::StreamingSignedTrailer)
    }
}

/// `20130524/us-east-1/s3/aws4_request`, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialScope {
    /// `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
}

impl fmt::Display for CredentialScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{SCOPE_TERMINATOR}", self.date, self.region, self.service)
    }
}

/// Which signature a request carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureVersion {
    /// HMAC-SHA1 over headers and resource (`crate::sigv2`); the body is never signed.
    V2,
    /// AWS4-HMAC-SHA256 (this module).
    V4,
}

/// A request whose signature checked out. A SigV2 request (`crate::sigv2`) has the same shape so
/// that it takes the same path once authenticated; the fields only SigV4 has (`scope`,
/// `signing_key`, `seed_signature`) are then empty or zero.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub version: SignatureVersion,
    pub access_key: String,
    /// The request time as signed, `YYYYMMDDTHHMMSSZ`.
    pub date_time: String,
    pub request_time_unix_s: i64,
    pub scope: CredentialScope,
    /// Whether `scope.region` equals the region passed to [`authenticate`].
    pub region_is_configured: bool,
    /// The derived key; as powerful as the secret for this day and region, so never log it.
    pub signing_key: [u8; 32],
    /// The request signature; the first chunk signature of a streaming body chains from it.
    pub seed_signature: [u8; 32],
    pub payload: PayloadMode,
    /// `x-amz-decoded-content-length` of a streaming body, when sent.
    pub decoded_content_length: Option<u64>,
    /// The checksum the body's trailer will carry (`x-amz-trailer`), for trailer modes.
    pub trailer: Option<ChecksumAlgorithm>,
    /// Authenticated by query parameters rather than the Authorization header.
    pub presigned: bool,
}

impl SignedRequest {
    /// The chunk-signature verifier for the signed streaming modes; `None` otherwise.
    pub fn chunk_signer(&self) -> Option<ChunkSigner> {
        matches!(self.payload, PayloadMode::StreamingSigned | PayloadMode::StreamingSignedTrailer)
            .then(|| ChunkSigner::new(self.signing_key, &self.date_time, &self.scope.to_string(), self.seed_signature))
    }
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("version", &self.version)
            .field("access_key", &self.access_key)
            .field("date_time", &self.date_time)
            .field("scope", &self.scope)
            .field("region_is_configured", &self.region_is_configured)
            .field("signing_key", &"<redacted>")
            .field("seed_signature", &hex::encode(self.seed_signature))
            .field("payload", &self.payload)
            .field("decoded_content_length", &self.decoded_content_length)
            .field("trailer", &self.trailer)
            .field("presigned", &self.presigned)
            .finish()
    }
}

/// The outcome of a successful [`authenticate`].
// One per request and moved once or twice: copying 248 bytes is cheaper than a heap allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// No Authorization header and no `X-Amz-Algorithm`/`X-Amz-Credential`/`X-Amz-Signature` query
    /// parameter: the caller decides what anonymous may do.
    Anonymous,
    Signed(SignedRequest),
}

/// Checks the body's SHA-256 against a signed `x-amz-content-sha256`.
pub fn verify_payload_sha256(declared: &[u8; 32], computed: &[u8; 32]) -> Result<(), AuthError> {
    if declared == computed {
        return Ok(());
    }
    Err(AuthError::XAmzContentSha256Mismatch { client_computed: hex::encode(declared), s3_computed: hex::encode(computed) })
}

/// Verifies a request's SigV4 signature.
///
/// `secrets` maps an access key to its secret; `now_unix_s` is the server's clock; `region` is the
/// configured region (see the module notes on region policy).
pub fn authenticate(
    req: &RequestParts,
    secrets: &dyn Fn(&str) -> Option<String>,
    now_unix_s: i64,
    region: &str,
) -> Result<Auth, AuthError> {
    let authorization = req.header("authorization");
    let presigned = canonical::decode_query(req.raw_query)
        .iter()
        .any(|(name, _)| matches!(name.as_slice(), b"X-Amz-Algorithm" | b"X-Amz-Credential" | b"X-Amz-Signature"));
    let claim = match (authorization, presigned) {
        (None, false) => return Ok(Auth::Anonymous),
        (Some(_), true) => {
            return Err(AuthError::InvalidArgument {
                message: "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified".into(),
            });
        }
        (Some(value), false) => header_claim(req, value, now_unix_s)?,
        (None, true) => query_claim(req, now_unix_s)?,
    };
    verify_claim(req, claim, secrets, region).map(Auth::Signed)
}

/// Signing keys derived on this thread (one per core), so a request costs one HMAC for its
/// signature instead of five: the key changes only with the secret, the day and the region.
const SIGNING_KEYS_CACHED_MAX: usize = 256;

/// (secret, date, region, service): what a signing key is derived from.
type SigningKeyId = (String, String, String, String);

thread_local! {
    static SIGNING_KEYS: std::cell::RefCell<std::collections::HashMap<SigningKeyId, [u8; 32]>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn cached_signing_key(secret: &str, yyyymmdd: &str, region: &str, service: &str) -> ([u8; 32], canonical::HmacSha256) {
    // The common case, one user signing all day, is answered without building a key, and with
    // the HMAC already keyed (keying hashes two blocks: 0.7% of a core on 4 KiB GETs).
    let last = LAST_SIGNING_KEY.with(|l| {
        l.borrow()
            .as_ref()
            .and_then(|((s, d, r, v), k, mac)| (s == secret && d == yyyymmdd && r == region && v == service).then(|| (*k, mac.clone())))
    });
    if let Some(hit) = last {
        return hit;
    }
    let k = cached_signing_key_slow(secret, yyyymmdd, region, service);
    let mac = canonical::keyed_hmac(&k);
    LAST_SIGNING_KEY
        .with(|l| *l.borrow_mut() = Some(((secret.into(), yyyymmdd.into(), region.into(), service.into()), k, mac.clone())));
    (k, mac)
}

thread_local! {
    static LAST_SIGNING_KEY: std::cell::RefCell<Option<(SigningKeyId, [u8; 32], canonical::HmacSha256)>> = const { std::cell::RefCell::new(None) };
}

fn cached_signing_key_slow(secret: &str, yyyymmdd: &str, region: &str, service: &str) -> [u8; 32] {
    SIGNING_KEYS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let id = (secret.to_string(), yyyymmdd.to_string(), region.to_string(), service.to_string());
        if let Some(k) = cache.get(&id) {
            return *k;
        }
        if cache.len() >= SIGNING_KEYS_CACHED_MAX {
            cache.clear();
        }
        let k = signing_key(secret, yyyymmdd, region, service);
        cache.insert(id, k);
        k
    })
}

/// What a request says about its signature, before the signature is checked.
struct Claim<'a> {
    credential: Credential,
    date_time: String,
    request_time_unix_s: i64,
    signed_headers_raw: std::borrow::Cow<'a, str>,
    signature: [u8; 32],
    payload_hash: &'a str,
    payload: PayloadMode,
    presigned: bool,
}

fn header_malformed(message: impl Into<String>) -> AuthError {
    AuthError::AuthorizationHeaderMalformed { message: message.into() }
}

fn query_malformed(message: impl Into<String>) -> AuthError {
    AuthError::AuthorizationQueryParametersError { message: message.into() }
}

fn header_claim<'a>(req: &RequestParts<'a>, authorization: &'a str, now_unix_s: i64) -> Result<Claim<'a>, AuthError> {
    if parse::is_sigv2(authorization) {
        // The server sends these to `crate::sigv2` (`sigv2::is_sigv2`); this verifier alone refuses them.
        return Err(AuthError::InvalidRequest { message: format!("Signature Version 2 is verified by sigv2, not as {ALGORITHM}") });
    }
    let fields =
        parse::parse_authorization(authorization).map_err(|m| header_malformed(format!("The authorization header is malformed: {m}")))?;
    let credential =
        parse::parse_credential(fields.credential).map_err(|m| header_malformed(format!("The authorization header is malformed: {m}")))?;
    let signed_headers = parse::parse_signed_headers(fields.signed_headers).map_err(|m| header_malformed(format!("SignedHeaders: {m}")))?;
    let signature = parse::parse_signature(fields.signature).ok_or_else(|| header_malformed("Signature must be 64 hex digits"))?;
    let (date_header, date_time, request_time_unix_s) = request_time(req)?;
    if !signed_headers.contains("host") {
        return Err(header_malformed("SignedHeaders must include host"));
    }
    if !signed_headers.contains(date_header) {
        return Err(header_malformed(format!("SignedHeaders must include {date_header}")));
    }
    check_credential_date(&credential, &date_time).map_err(header_malformed)?;
    let skew_s = now_unix_s.saturating_sub(request_time_unix_s).saturating_abs();
    if skew_s > CLOCK_SKEW_MAX_S {
        return Err(AuthError::RequestTimeTooSkewed { request_time: date_time, server_time_unix_s: now_unix_s, skew_s });
    }
    let payload_hash = req.header("x-amz-content-sha256").ok_or(AuthError::MissingSecurityHeader { header: "x-amz-content-sha256" })?;
    let payload = PayloadMode::parse(payload_hash).ok_or_else(|| AuthError::InvalidArgument {
        message: format!("x-amz-content-sha256 {payload_hash:?} must be UNSIGNED-PAYLOAD, a STREAMING-* value, or a valid sha256 value"),
    })?;
    check_amz_headers_signed(req, signed_headers)?;
    Ok(Claim {
        credential,
        date_time,
        request_time_unix_s,
        signed_headers_raw: fields.signed_headers.into(),
        signature,
        payload_hash,
        payload,
        presigned: false,
    })
}

/// The time the request was signed: `x-amz-date`, else `Date`. Returns which header it came from.
fn request_time(req: &RequestParts) -> Result<(&'static str, String, i64), AuthError> {
    let denied = || AuthError::AccessDenied { message: "AWS authentication requires a valid Date or x-amz-date header".into() };
    if let Some(value) = req.header("x-amz-date") {
        let unix_s = parse::parse_amz_date(value.trim()).ok_or_else(denied)?;
        return Ok(("x-amz-date", value.trim().to_string(), unix_s));
    }
    let value = req.header("date").ok_or_else(denied)?;
    let unix_s = parse::parse_http_date(value).ok_or_else(denied)?;
    let date_time = parse::format_amz_date(unix_s).ok_or_else(denied)?;
    Ok(("date", date_time, unix_s))
}

fn check_credential_date(credential: &Credential, date_time: &str) -> Result<(), String> {
    if date_time.get(..8) == Some(credential.date.as_str()) {
        Ok(())
    } else {
        Err(format!("Invalid credential date {}: it is not the date of the request time {date_time}", credential.date))
    }
}

/// S3 refuses header-signed requests carrying `x-amz-*` headers that were not signed, since they
/// change what the request does (storage class, ACLs, checksums, …).
fn check_amz_headers_signed(req: &RequestParts, signed_headers: parse::SignedHeaders) -> Result<(), AuthError> {
    let unsigned: Vec<&str> = header_pairs(req.headers)
        .map(|(name, _)| name)
        // Bytes, not str slicing: a header name may hold non-ASCII bytes (found by fuzzing).
        .filter(|name| name.as_bytes().get(..6).is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"x-amz-")))
        .filter(|name| !signed_headers.names().any(|s| s.eq_ignore_ascii_case(name)))
        .collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    Err(AuthError::AccessDenied {
        message: format!("There were headers present in the request which were not signed: {}", unsigned.join(", ")),
    })
}

const PRESIGNED_REQUIRED: &str = "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.";

fn query_claim<'a>(req: &RequestParts<'a>, now_unix_s: i64) -> Result<Claim<'a>, AuthError> {
    let params = parse::PresignedParams::from_query(req.raw_query).map_err(query_malformed)?;
    let [Some(algorithm), Some(credential), Some(date), Some(expires), Some(signed_headers_raw), Some(signature)] =
        [&params.algorithm, &params.credential, &params.date, &params.expires, &params.signed_headers, &params.signature]
    else {
        return Err(query_malformed(PRESIGNED_REQUIRED));
    };
    if algorithm != ALGORITHM {
        return Err(query_malformed(format!("X-Amz-Algorithm only supports \"{ALGORITHM}\", not {algorithm:?}")));
    }
    let credential =
        parse::parse_credential(credential).map_err(|m| query_malformed(format!("Error parsing the X-Amz-Credential parameter: {m}")))?;
    let request_time_unix_s = parse::parse_amz_date(date)
        .ok_or_else(|| query_malformed("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""))?;
    check_credential_date(&credential, date).map_err(query_malformed)?;
    let expires_s = parse_expires(expires)?;
    let signed_headers =
        parse::parse_signed_headers(signed_headers_raw).map_err(|m| query_malformed(format!("X-Amz-SignedHeaders: {m}")))?;
    if !signed_headers.contains("host") {
        return Err(query_malformed("X-Amz-SignedHeaders must include host"));
    }
    let signature = parse::parse_signature(signature).ok_or_else(|| query_malformed("X-Amz-Signature must be 64 hex digits"))?;
    if now_unix_s > request_time_unix_s.saturating_add(expires_s) {
        return Err(AuthError::AccessDenied { message: "Request has expired".into() });
    }
    if request_time_unix_s > now_unix_s.saturating_add(CLOCK_SKEW_MAX_S) {
        return Err(AuthError::AccessDenied { message: "Request is not valid yet: X-Amz-Date is in the future".into() });
    }
    Ok(Claim {
        credential,
        date_time: date.to_string(),
        request_time_unix_s,
        signed_headers_raw: signed_headers_raw.to_string().into(),
        signature,
        payload_hash: UNSIGNED_PAYLOAD,
        payload: PayloadMode::Unsigned,
        presigned: true,
    })
}

fn parse_expires(value: &str) -> Result<i64, AuthError> {
    let expires_s: i64 = value
        .parse()
        .ok()
        .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| query_malformed(format!("X-Amz-Expires {value:?} must be a whole number of seconds")))?;
    if expires_s < 1 {
        return Err(query_malformed("X-Amz-Expires must be positive"));
    }
    if expires_s > PRESIGNED_EXPIRES_MAX_S {
        return Err(query_malformed(format!("X-Amz-Expires must be less than a week (in seconds) that is {PRESIGNED_EXPIRES_MAX_S}")));
    }
    Ok(expires_s)
}

thread_local! {
    /// (canonical request, string to sign) of the last request this thread verified.
    static SIGNING_SCRATCH: std::cell::RefCell<(String, String)> = const { std::cell::RefCell::new((String::new(), String::new())) };
}

/// The canonical request (SigV4 task 1) of `req` as `claim` signed it, appended to `out`.
fn write_canonical_request(out: &mut String, req: &RequestParts, presigned: bool, signed_headers_raw: &str, payload_hash: &str) -> Result<(), AuthError> {
    out.push_str(req.method);
    out.push('\n');
    canonical::write_canonical_uri(out, req.raw_path);
    out.push('\n');
    canonical::write_canonical_query(out, req.raw_query, presigned.then_some("X-Amz-Signature"));
    out.push('\n');
    // Parsed (and validated) when the claim was built.
    canonical::write_canonical_headers(out, req.headers, signed_headers_raw.split(';')).map_err(|missing| {
        let message = format!("signed header {missing:?} is not present in the request");
        if presigned { query_malformed(message) } else { header_malformed(message) }
    })?;
    out.push('\n');
    out.push_str(signed_headers_raw);
    out.push('\n');
    out.push_str(payload_hash);
    Ok(())
}

fn verify_claim(
    req: &RequestParts,
    claim: Claim,
    secrets: &dyn Fn(&str) -> Option<String>,
    region: &str,
) -> Result<SignedRequest, AuthError> {
    let Credential { access_key, date, region: scope_region, service } = claim.credential;
    let secret = secrets(&access_key).ok_or_else(|| AuthError::InvalidAccessKeyId { access_key: access_key.clone() })?;
    let scope = CredentialScope { date, region: scope_region, service };
    let (key, mac) = cached_signing_key(&secret, &scope.date, &scope.region, &scope.service);
    // The canonical request and string to sign are built in this thread's scratch buffers:
    // only a mismatch, whose error shows them, copies them out.
    SIGNING_SCRATCH.with_borrow_mut(|(canonical_request, string_to_sign)| {
        canonical_request.clear();
        string_to_sign.clear();
        write_canonical_request(canonical_request, req, claim.presigned, &claim.signed_headers_raw, claim.payload_hash)?;
        canonical::write_string_to_sign(string_to_sign, &claim.date_time, &scope, canonical_request);
        if !canonical::keyed_signature_matches(mac, string_to_sign.as_bytes(), &claim.signature) {
            let (string_to_sign, canonical_request) = (string_to_sign.clone(), canonical_request.clone());
            return Err(AuthError::SignatureDoesNotMatch { access_key: access_key.clone(), string_to_sign, canonical_request });
        }
        Ok(())
    })?;
    let (decoded_content_length, trailer) = streaming_headers(req, claim.payload)?;
    Ok(SignedRequest {
        version: SignatureVersion::V4,
        access_key,
        date_time: claim.date_time,
        request_time_unix_s: claim.request_time_unix_s,
        region_is_configured: scope.region == region,
        scope,
        signing_key: key,
        seed_signature: claim.signature,
        payload: claim.payload,
        decoded_content_length,
        trailer,
        presigned: claim.presigned,
    })
}

/// `x-amz-decoded-content-length` and `x-amz-trailer`, which only streaming bodies may carry.
pub(crate) fn streaming_headers(req: &RequestParts, payload: PayloadMode) -> Result<(Option<u64>, Option<ChecksumAlgorithm>), AuthError> {
    let invalid = |message: String| AuthError::InvalidArgument { message };
    let decoded_content_length = match req.header("x-amz-decoded-content-length") {
        Some(value) if payload.chunked_mode().is_some() => Some(
            value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|_| value.trim().bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| invalid(format!("x-amz-decoded-content-length {value:?} is not a byte count")))?,
        ),
        _ => None,
    };
    let trailer = match req.header("x-amz-trailer").map(str::trim).filter(|v| !v.is_empty()) {
        None => None,
        Some(value) if payload.has_trailer() => Some(
            ChecksumAlgorithm::from_header_name(&value.to_ascii_lowercase())
                .ok_or_else(|| invalid(format!("x-amz-trailer {value:?} is not a supported checksum header")))?,
        ),
        Some(value) => {
            return Err(AuthError::InvalidRequest {
                message: format!(
                    "x-amz-trailer {value:?} needs x-amz-content-sha256 {STREAMING_UNSIGNED_PAYLOAD_TRAILER} or {STREAMING_SIGNED_PAYLOAD_TRAILER}"
                ),
            });
        }
    };
    Ok((decoded_content_length, trailer))
}
