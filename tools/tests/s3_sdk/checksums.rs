//! Additional checksums (CRC32, CRC32C, SHA1, SHA256, CRC64NVME) and Content-MD5.

use std::str::FromStr;

use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};

use crate::harness::*;

const ALGORITHMS: [ChecksumAlgorithm; 5] = [
    ChecksumAlgorithm::Crc32,
    ChecksumAlgorithm::Crc32C,
    ChecksumAlgorithm::Sha1,
    ChecksumAlgorithm::Sha256,
    ChecksumAlgorithm::Crc64Nvme,
];

/// The base64 header value of `algorithm` over `data`, computed independently of the upload.
fn expected_checksum(algorithm: &ChecksumAlgorithm, data: &[u8]) -> String {
    let name = algorithm.as_str().to_ascii_lowercase();
    let mut checksum = aws_smithy_checksums::ChecksumAlgorithm::from_str(&name).expect("known algorithm").into_impl();
    checksum.update(data);
    checksum.header_value().to_str().expect("ASCII header value").to_string()
}

/// The checksum of `algorithm` that an output (or a part) carries.
macro_rules! checksum_of {
    ($output:expr, $algorithm:expr) => {
        match $algorithm {
            ChecksumAlgorithm::Crc32 => $output.checksum_crc32(),
            ChecksumAlgorithm::Crc32C => $output.checksum_crc32_c(),
            ChecksumAlgorithm::Sha1 => $output.checksum_sha1(),
            ChecksumAlgorithm::Sha256 => $output.checksum_sha256(),
            ChecksumAlgorithm::Crc64Nvme => $output.checksum_crc64_nvme(),
            other => panic!("unexpected algorithm {other:?}"),
        }
    };
}
pub(crate) use checksum_of;

/// The SDK computes the checksum while streaming and sends it as an aws-chunked trailer.
#[tokio::test]
async fn put_with_each_algorithm_as_trailer() {
    let server = Server::start("checksum_trailers");
    let client = server.client();
    create_bucket(&client, "cs-sums").await;
    for (index, algorithm) in ALGORITHMS.iter().enumerate() {
        for size in [0, 1000, 3 * MIB + 17] {
            let data = pattern(size, 100 + index as u64);
            let key = format!("{}-{size}", algorithm.as_str());
            let expected = expected_checksum(algorithm, &data);
            let put = client
                .put_object()
                .bucket("cs-sums")
                .key(&key)
                .body(body(&data))
                .checksum_algorithm(algorithm.clone())
                .send()
                .await
                .ok_or_panic(&format!("PutObject {key}"));
            assert_eq!(checksum_of!(put, algorithm), Some(expected.as_str()), "PutObject response checksum of {key}");
            assert_eq!(put.e_tag(), Some(etag_of(&data).as_str()), "ETag stays the MD5 with a checksum: {key}");

            let head = client
                .head_object()
                .bucket("cs-sums")
                .key(&key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .ok_or_panic("HeadObject checksum mode");
            assert_eq!(checksum_of!(head, algorithm), Some(expected.as_str()), "HeadObject checksum of {key}");

            let get = client
                .get_object()
                .bucket("cs-sums")
                .key(&key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .ok_or_panic("GetObject checksum mode");
            assert_eq!(checksum_of!(get, algorithm), Some(expected.as_str()), "GetObject checksum of {key}");
            // The SDK validates the body against the returned checksum while collecting it.
            assert_same_bytes(&collect(get).await, &data, &key);
        }
    }
}

/// A precomputed checksum in a header (no trailer, plain body): right value stored, wrong value
/// refused with BadDigest and nothing stored.
#[tokio::test]
async fn precomputed_checksum_header() {
    let server = Server::start("checksum_headers");
    let client = server.client_checksum_when_required();
    create_bucket(&client, "cs-sumh").await;
    let data = pattern(5000, 7);
    let crc32c = expected_checksum(&ChecksumAlgorithm::Crc32C, &data);
    let sha256 = expected_checksum(&ChecksumAlgorithm::Sha256, &data);
    let put = client
        .put_object()
        .bucket("cs-sumh")
        .key("good")
        .body(body(&data))
        .checksum_crc32_c(&crc32c)
        .send()
        .await
        .ok_or_panic("PutObject with x-amz-checksum-crc32c");
    assert_eq!(put.checksum_crc32_c(), Some(crc32c.as_str()));
    let put = client
        .put_object()
        .bucket("cs-sumh")
        .key("good-sha")
        .body(body(&data))
        .checksum_sha256(&sha256)
        .send()
        .await
        .ok_or_panic("PutObject with x-amz-checksum-sha256");
    assert_eq!(put.checksum_sha256(), Some(sha256.as_str()));

    let wrong = expected_checksum(&ChecksumAlgorithm::Crc32C, b"something else");
    let (status, code) = expect_error(
        client.put_object().bucket("cs-sumh").key("bad").body(body(&data)).checksum_crc32_c(wrong).send().await,
    );
    assert_eq!((status, code.as_str()), (400, "BadDigest"), "wrong x-amz-checksum-crc32c");
    let (status, code) = expect_error(client.head_object().bucket("cs-sumh").key("bad").send().await);
    assert_eq!((status, code.as_str()), (404, "NotFound"), "the refused object was not stored");
}

#[tokio::test]
async fn content_md5() {
    let server = Server::start("content_md5");
    let client = server.client_checksum_when_required();
    create_bucket(&client, "cs-md5").await;
    let data = pattern(10_000, 9);
    let right = aws_smithy_types::base64::encode(md5(&data));
    let wrong = aws_smithy_types::base64::encode(md5(b"other bytes"));

    let put = client
        .put_object()
        .bucket("cs-md5")
        .key("right")
        .body(body(&data))
        .content_md5(&right)
        .send()
        .await
        .ok_or_panic("PutObject with the right Content-MD5");
    assert_eq!(put.e_tag(), Some(etag_of(&data).as_str()));

    let (status, code) =
        expect_error(client.put_object().bucket("cs-md5").key("wrong").body(body(&data)).content_md5(wrong).send().await);
    assert_eq!((status, code.as_str()), (400, "BadDigest"), "wrong Content-MD5");
    let (status, _) = expect_error(client.head_object().bucket("cs-md5").key("wrong").send().await);
    assert_eq!(status, 404, "the refused object was not stored");

    let (status, code) = expect_error(
        client.put_object().bucket("cs-md5").key("malformed").body(body(&data)).content_md5("not-an-md5").send().await,
    );
    assert_eq!((status, code.as_str()), (400, "InvalidDigest"), "Content-MD5 that is not a base64 MD5");
}
