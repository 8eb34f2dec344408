//! S3 error codes and the `<Error>` body every failed request carries.
//!
//! Codes and statuses follow AWS's "List of error codes" table. Where S3 reports a condition under
//! a broader code we do the same instead of inventing one: a checksum that does not match is
//! `BadDigest` (see [`S3Error::checksum_mismatch`]), too many parts is `InvalidArgument`.

use std::fmt;

use crate::xml::out::XmlOut;

/// An S3 error code: the `<Code>` of an error body, with its HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    AccessDenied,
    AccessControlListNotSupported,
    AccessForbidden,
    AuthorizationHeaderMalformed,
    BadRequest,
    BadDigest,
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    ConditionalRequestConflict,
    EntityTooLarge,
    EntityTooSmall,
    ExpiredToken,
    IllegalVersioningConfigurationException,
    IncompleteBody,
    InternalError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidBucketAclWithObjectOwnership,
    InvalidBucketName,
    InvalidBucketState,
    InvalidRetentionPeriod,
    InvalidDigest,
    InvalidLocationConstraint,
    InvalidObjectState,
    InvalidPart,
    InvalidPolicyDocument,
    InvalidPartOrder,
    InvalidRange,
    InvalidRequest,
    InvalidStorageClass,
    InvalidTag,
    InvalidURI,
    KeyTooLongError,
    MalformedACLError,
    MalformedPolicy,
    MalformedXML,
    MalformedPOSTRequest,
    MaxMessageLengthExceeded,
    MaxPostPreDataLengthExceededError,
    MetadataTooLarge,
    MethodNotAllowed,
    MissingContentLength,
    MissingRequestBodyError,
    MissingSecurityHeader,
    NoSuchBucket,
    NoSuchBucketPolicy,
    NoSuchCORSConfiguration,
    NoSuchKey,
    NoSuchLifecycleConfiguration,
    NoSuchObjectLockConfiguration,
    NoSuchPublicAccessBlockConfiguration,
    NoSuchTagSet,
    NoSuchUpload,
    NoSuchVersion,
    NoSuchWebsiteConfiguration,
    NotImplemented,
    /// 304 for a failed `If-None-Match`/`If-Modified-Since` on GET/HEAD; sent without a body.
    NotModified,
    ObjectLockConfigurationNotFoundError,
    /// 409: a conflicting operation on the resource is in progress (a PUT into a bucket that a
    /// DeleteBucket is emptying); the client may try again.
    OperationAborted,
    OwnershipControlsNotFoundError,
    PreconditionFailed,
    RequestTimeout,
    RequestTimeTooSkewed,
    ServerSideEncryptionConfigurationNotFoundError,
    ServiceUnavailable,
    SignatureDoesNotMatch,
    SlowDown,
    TooManyBuckets,
    UnexpectedContent,
    UnresolvableGrantByEmailAddress,
    XAmzContentSHA256Mismatch,
}

impl ErrorCode {
    /// Every code, for table-driven tests and for looking a code up by name.
    pub const ALL: [ErrorCode; 72] = [
        ErrorCode::AccessDenied,
        ErrorCode::AccessControlListNotSupported,
        ErrorCode::AccessForbidden,
        ErrorCode::AuthorizationHeaderMalformed,
        ErrorCode::BadRequest,
        ErrorCode::BadDigest,
        ErrorCode::BucketAlreadyExists,
        ErrorCode::BucketAlreadyOwnedByYou,
        ErrorCode::BucketNotEmpty,
        ErrorCode::ConditionalRequestConflict,
        ErrorCode::EntityTooLarge,
        ErrorCode::EntityTooSmall,
        ErrorCode::ExpiredToken,
        ErrorCode::IllegalVersioningConfigurationException,
        ErrorCode::IncompleteBody,
        ErrorCode::InternalError,
        ErrorCode::InvalidAccessKeyId,
        ErrorCode::InvalidArgument,
        ErrorCode::InvalidBucketAclWithObjectOwnership,
        ErrorCode::InvalidBucketName,
        ErrorCode::InvalidBucketState,
        ErrorCode::InvalidRetentionPeriod,
        ErrorCode::InvalidDigest,
        ErrorCode::InvalidLocationConstraint,
        ErrorCode::InvalidObjectState,
        ErrorCode::InvalidPart,
        ErrorCode::InvalidPolicyDocument,
        ErrorCode::InvalidPartOrder,
        ErrorCode::InvalidRange,
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidStorageClass,
        ErrorCode::InvalidTag,
        ErrorCode::InvalidURI,
        ErrorCode::KeyTooLongError,
        ErrorCode::MalformedACLError,
        ErrorCode::MalformedPolicy,
        ErrorCode::MalformedXML,
        ErrorCode::MalformedPOSTRequest,
        ErrorCode::MaxMessageLengthExceeded,
        ErrorCode::MaxPostPreDataLengthExceededError,
        ErrorCode::MetadataTooLarge,
        ErrorCode::MethodNotAllowed,
        ErrorCode::MissingContentLength,
        ErrorCode::MissingRequestBodyError,
        ErrorCode::MissingSecurityHeader,
        ErrorCode::NoSuchBucket,
        ErrorCode::NoSuchBucketPolicy,
        ErrorCode::NoSuchCORSConfiguration,
        ErrorCode::NoSuchKey,
        ErrorCode::NoSuchLifecycleConfiguration,
        ErrorCode::NoSuchObjectLockConfiguration,
        ErrorCode::NoSuchPublicAccessBlockConfiguration,
        ErrorCode::NoSuchTagSet,
        ErrorCode::NoSuchUpload,
        ErrorCode::NoSuchVersion,
        ErrorCode::NoSuchWebsiteConfiguration,
        ErrorCode::NotImplemented,
        ErrorCode::NotModified,
        ErrorCode::ObjectLockConfigurationNotFoundError,
        ErrorCode::OperationAborted,
        ErrorCode::OwnershipControlsNotFoundError,
        ErrorCode::PreconditionFailed,
        ErrorCode::RequestTimeout,
        ErrorCode::RequestTimeTooSkewed,
        ErrorCode::ServerSideEncryptionConfigurationNotFoundError,
        ErrorCode::ServiceUnavailable,
        ErrorCode::SignatureDoesNotMatch,
        ErrorCode::SlowDown,
        ErrorCode::TooManyBuckets,
        ErrorCode::UnexpectedContent,
        ErrorCode::UnresolvableGrantByEmailAddress,
        ErrorCode::XAmzContentSHA256Mismatch,
    ];

    /// The `<Code>` text, exactly as S3 spells it.
    pub fn as_str(&self) -> &'static str {
        self.entry().0
    }

    /// The HTTP status S3 answers with for this code.
    pub fn status(&self) -> u16 {
        self.entry().1
    }

    /// S3's usual `<Message>` for this code, for errors that have nothing more specific to say.
    pub fn default_message(&self) -> &'static str {
        self.entry().2
    }

    /// False for 304 Not Modified, which HTTP forbids to carry a body.
    pub fn has_body(&self) -> bool {
        self.status() != 304
    }

    /// The code whose `<Code>` text is `name`, if we know it.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|code| code.as_str() == name)
    }

    fn entry(&self) -> (&'static str, u16, &'static str) {
        use ErrorCode as C;
        match self {
            C::AccessForbidden => ("AccessForbidden", 403, "CORSResponse: This CORS request is not allowed."),
            C::AccessDenied => ("AccessDenied", 403, "Access Denied"),
            C::BadRequest => ("BadRequest", 400, "Bad Request"),
            C::AuthorizationHeaderMalformed => {
                ("AuthorizationHeaderMalformed", 400, "The authorization header that you provided is not valid.")
            }
            C::BadDigest => {
                ("BadDigest", 400, "The Content-MD5 or checksum value that you specified did not match what the server received.")
            }
            C::BucketAlreadyExists => (
                "BucketAlreadyExists",
                409,
                "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
            ),
            C::BucketAlreadyOwnedByYou => {
                ("BucketAlreadyOwnedByYou", 409, "Your previous request to create the named bucket succeeded and you already own it.")
            }
            C::BucketNotEmpty => ("BucketNotEmpty", 409, "The bucket you tried to delete is not empty"),
            C::ConditionalRequestConflict => {
                ("ConditionalRequestConflict", 409, "A conflicting operation occurred. If using PutObject you can retry the request.")
            }
            C::EntityTooLarge => ("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed object size."),
            C::EntityTooSmall => ("EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size."),
            C::ExpiredToken => ("ExpiredToken", 400, "The provided token has expired."),
            C::IllegalVersioningConfigurationException => {
                ("IllegalVersioningConfigurationException", 400, "The versioning configuration specified in the request is invalid.")
            }
            C::IncompleteBody => {
                ("IncompleteBody", 400, "You did not provide the number of bytes specified by the Content-Length HTTP header.")
            }
            C::InternalError => ("InternalError", 500, "We encountered an internal error. Please try again."),
            C::InvalidAccessKeyId => ("InvalidAccessKeyId", 403, "The AWS access key ID that you provided does not exist in our records."),
            C::InvalidArgument => ("InvalidArgument", 400, "Invalid Argument"),
            C::AccessControlListNotSupported => ("AccessControlListNotSupported", 400, "The bucket does not allow ACLs"),
            C::InvalidBucketAclWithObjectOwnership => {
                ("InvalidBucketAclWithObjectOwnership", 400, "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting")
            }
            C::InvalidBucketName => ("InvalidBucketName", 400, "The specified bucket is not valid."),
            C::InvalidBucketState => ("InvalidBucketState", 409, "The request is not valid for the current state of the bucket."),
            C::InvalidRetentionPeriod => ("InvalidRetentionPeriod", 400, "The retention period must be a positive integer."),
            C::NoSuchObjectLockConfiguration => ("NoSuchObjectLockConfiguration", 404, "The specified object does not have a ObjectLock configuration"),
            C::InvalidDigest => ("InvalidDigest", 400, "The Content-MD5 you specified is not valid."),
            C::InvalidLocationConstraint => ("InvalidLocationConstraint", 400, "The specified location-constraint is not valid."),
            C::InvalidObjectState => ("InvalidObjectState", 403, "The operation is not valid for the current state of the object."),
            C::InvalidPolicyDocument => ("InvalidPolicyDocument", 400, "The content of the form does not meet the conditions specified in the policy document."),
            C::InvalidPart => (
                "InvalidPart",
                400,
                "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
            ),
            C::InvalidPartOrder => (
                "InvalidPartOrder",
                400,
                "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
            ),
            C::InvalidRange => ("InvalidRange", 416, "The requested range is not satisfiable"),
            C::InvalidRequest => ("InvalidRequest", 400, "Invalid Request"),
            C::InvalidStorageClass => ("InvalidStorageClass", 400, "The storage class you specified is not valid."),
            C::InvalidTag => ("InvalidTag", 400, "The tag provided was not a valid tag."),
            C::InvalidURI => ("InvalidURI", 400, "Couldn't parse the specified URI."),
            C::KeyTooLongError => ("KeyTooLongError", 400, "Your key is too long"),
            C::MalformedPOSTRequest => ("MalformedPOSTRequest", 400, "The body of your POST request is not well-formed multipart/form-data."),
            C::MalformedACLError => ("MalformedACLError", 400, "The XML you provided was not well-formed or did not validate against our published schema."),
            C::MalformedPolicy => ("MalformedPolicy", 400, "Policies must be valid JSON and the first byte must be '{'"),
            C::MalformedXML => {
                ("MalformedXML", 400, "The XML you provided was not well-formed or did not validate against our published schema")
            }
            C::MaxPostPreDataLengthExceededError => ("MaxPostPreDataLengthExceededError", 400, "Your POST request fields preceding the upload file were too large."),
            C::MaxMessageLengthExceeded => ("MaxMessageLengthExceeded", 400, "Your request was too big."),
            C::MetadataTooLarge => ("MetadataTooLarge", 400, "Your metadata headers exceed the maximum allowed metadata size."),
            C::MethodNotAllowed => ("MethodNotAllowed", 405, "The specified method is not allowed against this resource."),
            C::MissingContentLength => ("MissingContentLength", 411, "You must provide the Content-Length HTTP header."),
            C::MissingRequestBodyError => ("MissingRequestBodyError", 400, "Request Body is empty"),
            C::MissingSecurityHeader => ("MissingSecurityHeader", 400, "Your request is missing a required header."),
            C::NoSuchCORSConfiguration => ("NoSuchCORSConfiguration", 404, "The CORS configuration does not exist"),
            C::NoSuchBucketPolicy => ("NoSuchBucketPolicy", 404, "The bucket policy does not exist"),
            C::NoSuchBucket => ("NoSuchBucket", 404, "The specified bucket does not exist"),
            C::NoSuchPublicAccessBlockConfiguration => ("NoSuchPublicAccessBlockConfiguration", 404, "The public access block configuration was not found"),
            C::NoSuchLifecycleConfiguration => ("NoSuchLifecycleConfiguration", 404, "The lifecycle configuration does not exist"),
            C::NoSuchKey => ("NoSuchKey", 404, "The specified key does not exist."),
            C::NoSuchTagSet => ("NoSuchTagSet", 404, "The TagSet does not exist"),
            C::NoSuchUpload => (
                "NoSuchUpload",
                404,
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
            ),
            C::NoSuchWebsiteConfiguration => ("NoSuchWebsiteConfiguration", 404, "The specified bucket does not have a website configuration"),
            C::NoSuchVersion => ("NoSuchVersion", 404, "The specified version does not exist."),
            C::NotImplemented => ("NotImplemented", 501, "A header you provided implies functionality that is not implemented"),
            C::ObjectLockConfigurationNotFoundError => ("ObjectLockConfigurationNotFoundError", 404, "Object Lock configuration does not exist for this bucket"),
            C::NotModified => ("NotModified", 304, "Not Modified"),
            C::OwnershipControlsNotFoundError => ("OwnershipControlsNotFoundError", 404, "The bucket ownership controls were not found"),
            C::OperationAborted => {
                ("OperationAborted", 409, "A conflicting conditional operation is currently in progress against this resource. Please try again.")
            }
            C::PreconditionFailed => ("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold"),
            C::RequestTimeout => {
                ("RequestTimeout", 400, "Your socket connection to the server was not read from or written to within the timeout period.")
            }
            C::ServerSideEncryptionConfigurationNotFoundError => ("ServerSideEncryptionConfigurationNotFoundError", 404, "The server side encryption configuration was not found"),
            C::RequestTimeTooSkewed => {
                ("RequestTimeTooSkewed", 403, "The difference between the request time and the server's time is too large.")
            }
            C::ServiceUnavailable => ("ServiceUnavailable", 503, "Please reduce your request rate."),
            C::SignatureDoesNotMatch => (
                "SignatureDoesNotMatch",
                403,
                "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            ),
            C::SlowDown => ("SlowDown", 503, "Please reduce your request rate."),
            C::TooManyBuckets => ("TooManyBuckets", 400, "You have attempted to create more buckets than allowed"),
            C::UnexpectedContent => ("UnexpectedContent", 400, "This request does not support content."),
            C::UnresolvableGrantByEmailAddress => {
                ("UnresolvableGrantByEmailAddress", 400, "The email address you provided does not match any account on record.")
            }
            C::XAmzContentSHA256Mismatch => {
                ("XAmzContentSHA256Mismatch", 400, "The provided 'x-amz-content-sha256' header does not match what was computed.")
            }
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed request as S3 reports it: code, message, the resource it concerned and the request id,
/// plus code-specific elements (`StringToSign`, `CanonicalRequest`, `Key`, `BucketName`,
/// `ArgumentName`, `ArgumentValue`, `Size`, `MaxSizeAllowed`, ...) in the order added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Error {
    pub code: ErrorCode,
    pub message: String,
    /// The path the request named, e.g. `/bucket/key`; omitted from the body when empty.
    pub resource: String,
    pub request_id: String,
    pub extra: Vec<(&'static str, String)>,
    /// Response headers the error goes out with besides S3's own (a cross-origin request's CORS
    /// headers, so that the page may read why it failed). Boxed: errors travel in every
    /// `Result`, and most have none.
    pub headers: Option<Box<[(String, String)]>>,
}

impl S3Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> S3Error {
        S3Error {
            code,
            message: message.into(),
            resource: String::new(),
            request_id: String::new(),
            extra: Vec::new(),
            headers: None,
        }
    }

    /// An error with S3's usual message for its code.
    pub fn from_code(code: ErrorCode) -> S3Error {
        S3Error::new(code, code.default_message())
    }

    pub fn with_resource(mut self, resource: impl Into<String>) -> S3Error {
        self.resource = resource.into();
        self
    }

    /// Adds a response header (S3's `x-amz-delete-marker` on a GET of a deleted key).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> S3Error {
        let mut headers = self.headers.take().map(Vec::from).unwrap_or_default();
        headers.push((name.to_string(), value.into()));
        self.headers = Some(headers.into_boxed_slice());
        self
    }

    pub fn with_request_id(mut self, request_id: impl Into<String>) -> S3Error {
        self.request_id = request_id.into();
        self
    }

    /// Adds a code-specific element. Element names are ours, never the client's, so they are
    /// asserted to be plain XML names.
    pub fn with_extra(mut self, name: &'static str, value: impl Into<String>) -> S3Error {
        assert!(!name.is_empty());
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric()), "extra element name {name:?}");
        self.extra.push((name, value.into()));
        self
    }

    /// `InvalidArgument` naming the argument, as S3 reports a bad query parameter or header.
    pub fn invalid_argument(message: impl Into<String>, name: &str, value: &str) -> S3Error {
        S3Error::new(ErrorCode::InvalidArgument, message).with_extra("ArgumentName", name).with_extra("ArgumentValue", value)
    }

    /// A body checksum (`x-amz-checksum-*`) that does not match the data. S3 reports this as
    /// `BadDigest` with the algorithm in the message, not under a code of its own.
    pub fn checksum_mismatch(algorithm: &str) -> S3Error {
        S3Error::new(ErrorCode::BadDigest, format!("The {algorithm} you specified did not match the calculated checksum."))
    }

    /// The value of the first extra element called `name`, e.g. `extra_value("Key")`.
    pub fn extra_value(&self, name: &str) -> Option<&str> {
        self.extra.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The response body: the XML declaration and an `<Error>` element. Empty for codes that are
    /// sent without a body (304).
    pub fn to_xml(&self) -> Vec<u8> {
        if !self.code.has_body() {
            return Vec::new();
        }
        let mut out = XmlOut::new();
        out.start("Error");
        out.element("Code", self.code.as_str());
        out.element("Message", &self.message);
        for (name, value) in &self.extra {
            out.element(name, value);
        }
        if !self.resource.is_empty() {
            out.element("Resource", &self.resource);
        }
        out.element("RequestId", &self.request_id);
        out.end("Error");
        out.finish()
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code.as_str(), self.code.status(), self.message)?;
        if !self.resource.is_empty() {
            write!(f, " [resource {}]", self.resource)?;
        }
        Ok(())
    }
}

impl std::error::Error for S3Error {}
