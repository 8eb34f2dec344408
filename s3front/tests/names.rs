//! Bucket name, key and user metadata rules.

use s3front::error::{ErrorCode, S3Error};
use s3front::names::*;

fn bucket_rule(name: &str) -> Option<BucketRule> {
    match validate_bucket_name(name) {
        Ok(()) => None,
        Err(NameError::Bucket { name: reported, rule }) => {
            assert_eq!(reported, name);
            Some(rule)
        }
        Err(other) => panic!("bucket name {name:?} refused for a non-bucket reason: {other}"),
    }
}

#[test]
fn bucket_names_aws_accepts() {
    for name in ["docexamplebucket1", "log-delivery-march-2020", "my-hosted-content", "a.b.c", "abc", &"a".repeat(63), "1-2", "192.168.5"] {
        assert_eq!(bucket_rule(name), None, "{name}");
    }
}

#[test]
fn bucket_names_aws_refuses() {
    let cases: &[(&str, BucketRule)] = &[
        ("ab", BucketRule::Length { length_bytes: 2 }),
        ("", BucketRule::Length { length_bytes: 0 }),
        (&"a".repeat(64), BucketRule::Length { length_bytes: 64 }),
        ("doc_example_bucket", BucketRule::Character { found: '_', index: 3 }),
        ("DocExampleBucket", BucketRule::Character { found: 'D', index: 0 }),
        ("bucket name", BucketRule::Character { found: ' ', index: 6 }),
        ("bücket", BucketRule::Character { found: 'ü', index: 1 }),
        ("doc-example-bucket-", BucketRule::Boundary),
        ("-bucket", BucketRule::Boundary),
        (".bucket", BucketRule::Boundary),
        ("bucket.", BucketRule::Boundary),
        ("my..bucket", BucketRule::AdjacentPeriods),
        ("foo.-bar", BucketRule::DashBesidePeriod),
        ("foo-.bar", BucketRule::DashBesidePeriod),
        ("192.168.5.4", BucketRule::IpAddress),
        ("999.1.1.1", BucketRule::IpAddress),
        ("xn--bucket", BucketRule::ReservedPrefix("xn--")),
        ("sthree-bucket", BucketRule::ReservedPrefix("sthree-")),
        ("sthree-configurator-x", BucketRule::ReservedPrefix("sthree-")),
        ("amzn-s3-demo-bucket", BucketRule::ReservedPrefix("amzn-s3-demo-")),
        ("bucket-s3alias", BucketRule::ReservedSuffix("-s3alias")),
        ("bucket--ol-s3", BucketRule::ReservedSuffix("--ol-s3")),
        ("bucket.mrap", BucketRule::ReservedSuffix(".mrap")),
        ("bucket--x-s3", BucketRule::ReservedSuffix("--x-s3")),
        ("bucket--table-s3", BucketRule::ReservedSuffix("--table-s3")),
    ];
    for (name, rule) in cases {
        assert_eq!(bucket_rule(name).as_ref(), Some(rule), "{name}");
    }
}

#[test]
fn bucket_error_says_which_rule() {
    let error = validate_bucket_name("my..bucket").expect_err("adjacent periods");
    assert_eq!(error.code(), ErrorCode::InvalidBucketName);
    assert_eq!(error.to_string(), "The specified bucket is not valid: bucket name \"my..bucket\" must not contain two adjacent periods");
    let s3_error = S3Error::from(error);
    assert_eq!(s3_error.code, ErrorCode::InvalidBucketName);
    assert_eq!(s3_error.extra_value("BucketName"), Some("my..bucket"));
}

#[test]
fn keys() {
    assert_eq!(validate_key("a"), Ok(()));
    assert_eq!(validate_key("."), Ok(()));
    assert_eq!(validate_key("../x/\u{1}"), Ok(()));
    assert_eq!(validate_key(&"k".repeat(KEY_BYTES_MAX)), Ok(()));
    assert_eq!(validate_key(""), Err(NameError::KeyEmpty));
    assert_eq!(validate_key(&"k".repeat(KEY_BYTES_MAX + 1)), Err(NameError::KeyTooLong { length_bytes: 1025 }));
    // Bytes, not characters: 512 two-byte characters fit, 513 do not.
    assert_eq!(validate_key(&"é".repeat(512)), Ok(()));
    let error = validate_key(&"é".repeat(513)).expect_err("1026 bytes");
    assert_eq!(error.code(), ErrorCode::KeyTooLongError);
    let s3_error = S3Error::from(error);
    assert_eq!(s3_error.code, ErrorCode::KeyTooLongError);
    assert_eq!(s3_error.extra_value("Size"), Some("1026"));
    assert_eq!(s3_error.extra_value("MaxSizeAllowed"), Some("1024"));
    assert_eq!(NameError::KeyEmpty.code(), ErrorCode::InvalidArgument);
}

fn pair(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

#[test]
fn user_metadata_limit_counts_names_without_prefix_and_values() {
    assert_eq!(user_metadata_bytes(&[pair("x-amz-meta-ab", "cde"), pair("X-Amz-Meta-f", "g"), pair("h", "ij")]), 2 + 3 + 1 + 1 + 1 + 2);
    let at_limit = [pair("x-amz-meta-k", &"v".repeat(METADATA_BYTES_MAX - 1))];
    assert_eq!(validate_user_metadata(&at_limit), Ok(()));
    let over = [pair("x-amz-meta-k", &"v".repeat(METADATA_BYTES_MAX - 1)), pair("x-amz-meta-", "v")];
    assert_eq!(validate_user_metadata(&over), Err(NameError::MetadataTooLarge { size_bytes: 2049 }));
    let s3_error = S3Error::from(NameError::MetadataTooLarge { size_bytes: 2049 });
    assert_eq!(s3_error.code, ErrorCode::MetadataTooLarge);
    assert_eq!(s3_error.extra_value("MaxSizeAllowed"), Some("2048"));
    assert_eq!(validate_user_metadata(&[]), Ok(()));
}
