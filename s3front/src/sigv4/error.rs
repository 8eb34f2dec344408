//! Why a request failed authentication, in the terms S3 answers with.

use std::fmt;

/// An authentication failure. `code()` is the S3 error code, `status()` the HTTP status; the
/// message names what was wrong and never contains a secret or a signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The signature is well formed but wrong. S3 returns both strings in the error body so a client
    /// can compare them with its own.
    SignatureDoesNotMatch {
        access_key: String,
        string_to_sign: String,
        canonical_request: String,
    },
    InvalidAccessKeyId {
        access_key: String,
    },
    AccessDenied {
        message: String,
    },
    RequestTimeTooSkewed {
        request_time: String,
        server_time_unix_s: i64,
        skew_s: i64,
    },
    AuthorizationHeaderMalformed {
        message: String,
    },
    AuthorizationQueryParametersError {
        message: String,
    },
    MissingSecurityHeader {
        header: &'static str,
    },
    /// The body's SHA-256 differs from `x-amz-content-sha256` (checked by the caller, see
    /// [`super::verify_payload_sha256`]).
    XAmzContentSha256Mismatch {
        client_computed: String,
        s3_computed: String,
    },
    InvalidArgument {
        message: String,
    },
    InvalidRequest {
        message: String,
    },
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::SignatureDoesNotMatch { .. } => "SignatureDoesNotMatch",
            Self::InvalidAccessKeyId { .. } => "InvalidAccessKeyId",
            Self::AccessDenied { .. } => "AccessDenied",
            Self::RequestTimeTooSkewed { .. } => "RequestTimeTooSkewed",
            Self::AuthorizationHeaderMalformed { .. } => "AuthorizationHeaderMalformed",
            Self::AuthorizationQueryParametersError { .. } => "AuthorizationQueryParametersError",
            Self::MissingSecurityHeader { .. } => "MissingSecurityHeader",
            Self::XAmzContentSha256Mismatch { .. } => "XAmzContentSHA256Mismatch",
            Self::InvalidArgument { .. } => "InvalidArgument",
            Self::InvalidRequest { .. } => "InvalidRequest",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::SignatureDoesNotMatch { .. }
            | Self::InvalidAccessKeyId { .. }
            | Self::AccessDenied { .. }
            | Self::RequestTimeTooSkewed { .. } => 403,
            Self::AuthorizationHeaderMalformed { .. }
            | Self::AuthorizationQueryParametersError { .. }
            | Self::MissingSecurityHeader { .. }
            | Self::XAmzContentSha256Mismatch { .. }
            | Self::InvalidArgument { .. }
            | Self::InvalidRequest { .. } => 400,
        }
    }

    /// The `<Message>` of the S3 error body.
    pub fn message(&self) -> String {
        match self {
            Self::SignatureDoesNotMatch { access_key, .. } => format!(
                "The request signature we calculated does not match the signature you provided (access key {access_key}). \
                 Check your key and signing method."
            ),
            Self::InvalidAccessKeyId { access_key } => {
                format!("The AWS Access Key Id you provided does not exist in our records: {access_key}")
            }
            Self::AccessDenied { message }
            | Self::AuthorizationHeaderMalformed { message }
            | Self::AuthorizationQueryParametersError { message }
            | Self::InvalidArgument { message }
            | Self::InvalidRequest { message } => message.clone(),
            Self::RequestTimeTooSkewed { request_time, server_time_unix_s, skew_s } => format!(
                "The difference between the request time {request_time} and the server's time (unix {server_time_unix_s} s) \
                 is {skew_s} s, more than allowed."
            ),
            Self::MissingSecurityHeader { header } => format!("Your request was missing a required header: {header}"),
            Self::XAmzContentSha256Mismatch { client_computed, s3_computed } => {
                format!("The provided 'x-amz-content-sha256' header {client_computed} does not match what was computed: {s3_computed}")
            }
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for AuthError {}
