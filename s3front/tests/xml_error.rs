//! Error codes, statuses and the `<Error>` body.

use s3front::error::{ErrorCode, S3Error};

#[test]
fn statuses_match_aws_table() {
    let table: &[(ErrorCode, &str, u16)] = &[
        (ErrorCode::AccessDenied, "AccessDenied", 403),
        (ErrorCode::AuthorizationHeaderMalformed, "AuthorizationHeaderMalformed", 400),
        (ErrorCode::BadDigest, "BadDigest", 400),
        (ErrorCode::BucketAlreadyExists, "BucketAlreadyExists", 409),
        (ErrorCode::BucketAlreadyOwnedByYou, "BucketAlreadyOwnedByYou", 409),
        (ErrorCode::BucketNotEmpty, "BucketNotEmpty", 409),
        (ErrorCode::EntityTooLarge, "EntityTooLarge", 400),
        (ErrorCode::EntityTooSmall, "EntityTooSmall", 400),
        (ErrorCode::IncompleteBody, "IncompleteBody", 400),
        (ErrorCode::InternalError, "InternalError", 500),
        (ErrorCode::InvalidAccessKeyId, "InvalidAccessKeyId", 403),
        (ErrorCode::InvalidArgument, "InvalidArgument", 400),
        (ErrorCode::InvalidBucketName, "InvalidBucketName", 400),
        (ErrorCode::InvalidDigest, "InvalidDigest", 400),
        (ErrorCode::InvalidPart, "InvalidPart", 400),
        (ErrorCode::InvalidPartOrder, "InvalidPartOrder", 400),
        (ErrorCode::InvalidRange, "InvalidRange", 416),
        (ErrorCode::InvalidRequest, "InvalidRequest", 400),
        (ErrorCode::InvalidStorageClass, "InvalidStorageClass", 400),
        (ErrorCode::KeyTooLongError, "KeyTooLongError", 400),
        (ErrorCode::MalformedXML, "MalformedXML", 400),
        (ErrorCode::MetadataTooLarge, "MetadataTooLarge", 400),
        (ErrorCode::MethodNotAllowed, "MethodNotAllowed", 405),
        (ErrorCode::MissingContentLength, "MissingContentLength", 411),
        (ErrorCode::MissingSecurityHeader, "MissingSecurityHeader", 400),
        (ErrorCode::NoSuchBucket, "NoSuchBucket", 404),
        (ErrorCode::NoSuchKey, "NoSuchKey", 404),
        (ErrorCode::NoSuchUpload, "NoSuchUpload", 404),
        (ErrorCode::NoSuchVersion, "NoSuchVersion", 404),
        (ErrorCode::NotImplemented, "NotImplemented", 501),
        (ErrorCode::NotModified, "NotModified", 304),
        (ErrorCode::PreconditionFailed, "PreconditionFailed", 412),
        (ErrorCode::RequestTimeout, "RequestTimeout", 400),
        (ErrorCode::RequestTimeTooSkewed, "RequestTimeTooSkewed", 403),
        (ErrorCode::ServiceUnavailable, "ServiceUnavailable", 503),
        (ErrorCode::SignatureDoesNotMatch, "SignatureDoesNotMatch", 403),
        (ErrorCode::SlowDown, "SlowDown", 503),
        (ErrorCode::XAmzContentSHA256Mismatch, "XAmzContentSHA256Mismatch", 400),
        (ErrorCode::MaxMessageLengthExceeded, "MaxMessageLengthExceeded", 400),
    ];
    for &(code, name, status) in table {
        assert_eq!(code.as_str(), name);
        assert_eq!(code.status(), status, "{name}");
        assert_eq!(code.to_string(), name);
    }
}

#[test]
fn every_code_round_trips_by_name_and_has_a_message() {
    for code in ErrorCode::ALL {
        assert_eq!(ErrorCode::from_name(code.as_str()), Some(code));
        assert!(!code.default_message().is_empty());
        assert!((300..600).contains(&code.status()));
    }
    let mut names: Vec<&str> = ErrorCode::ALL.iter().map(ErrorCode::as_str).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ErrorCode::ALL.len(), "duplicate names");
    assert_eq!(ErrorCode::from_name("Nope"), None);
}

#[test]
fn error_body() {
    let error = S3Error::new(ErrorCode::NoSuchKey, "The resource you requested does not exist")
        .with_extra("Key", "a<b>&'\"")
        .with_resource("/mybucket/myfoto.jpg")
        .with_request_id("4442587FB7D0A2F9");
    assert_eq!(
        String::from_utf8(error.to_xml()).expect("UTF-8"),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
         <Message>The resource you requested does not exist</Message><Key>a&lt;b&gt;&amp;&apos;&quot;</Key>\
         <Resource>/mybucket/myfoto.jpg</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>"
    );
    assert_eq!(error.extra_value("Key"), Some("a<b>&'\""));
    assert_eq!(error.to_string(), "NoSuchKey (404): The resource you requested does not exist [resource /mybucket/myfoto.jpg]");
}

#[test]
fn signature_error_carries_string_to_sign() {
    let error = S3Error::from_code(ErrorCode::SignatureDoesNotMatch)
        .with_extra("StringToSign", "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n7344ae5b")
        .with_extra("CanonicalRequest", "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD")
        .with_request_id("R");
    let body = String::from_utf8(error.to_xml()).expect("UTF-8");
    assert!(body.contains("<Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match"));
    assert!(body.contains("<StringToSign>AWS4-HMAC-SHA256\n20130524T000000Z\n"));
    assert!(body.ends_with("UNSIGNED-PAYLOAD</CanonicalRequest><RequestId>R</RequestId></Error>"));
}

#[test]
fn control_characters_in_messages_stay_well_formed() {
    let body = S3Error::new(ErrorCode::InvalidArgument, "bad \u{1} value\r").to_xml();
    let body = String::from_utf8(body).expect("UTF-8");
    assert!(body.contains("<Message>bad &#x1; value&#13;</Message>"), "{body}");
}

#[test]
fn not_modified_has_no_body() {
    assert!(!ErrorCode::NotModified.has_body());
    assert!(S3Error::from_code(ErrorCode::NotModified).to_xml().is_empty());
    assert!(ErrorCode::PreconditionFailed.has_body());
}

#[test]
fn checksum_mismatch_is_bad_digest() {
    let error = S3Error::checksum_mismatch("CRC32");
    assert_eq!(error.code, ErrorCode::BadDigest);
    assert_eq!(error.message, "The CRC32 you specified did not match the calculated checksum.");
}

#[test]
fn invalid_argument_names_the_argument() {
    let error = S3Error::invalid_argument("Part number must be an integer between 1 and 10000, inclusive", "partNumber", "0");
    assert_eq!(error.code, ErrorCode::InvalidArgument);
    assert_eq!(error.extra, vec![("ArgumentName", "partNumber".to_owned()), ("ArgumentValue", "0".to_owned())]);
}
