#![no_main]
//! Input: byte 0 picks the mode, byte 1 the declared trailer checksum, byte 2 whether the decoded
//! length is declared (then bytes 3..5 give it), byte 6 the piece size; the rest is the body, fed
//! in pieces. The signing key, date and seed are fixed so seeds made with `encode_aws_chunked` and
//! the same values decode fully.

use s3front::checksum::ChecksumAlgorithm;
use s3front::chunked::{AwsChunkedDecoder, ChunkSigner, ChunkedMode};
use s3front::sigv4::signing_key;

const HEADER_BYTES: usize = 7;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((header, body)) = data.split_first_chunk::<HEADER_BYTES>() else { return };
    let mode = [ChunkedMode::Signed, ChunkedMode::SignedTrailer, ChunkedMode::UnsignedTrailer][usize::from(header[0] % 3)];
    let trailer = match mode {
        ChunkedMode::Signed => None,
        _ => ChecksumAlgorithm::ALL.get(usize::from(header[1] % 6)).copied(),
    };
    let decoded_length = (header[2] & 1 == 1).then(|| u64::from(u16::from_le_bytes([header[3], header[4]])) | (u64::from(header[5]) << 16));
    let signer = (mode != ChunkedMode::UnsignedTrailer).then(|| {
        let key = signing_key("secret", "20130524", "us-east-1", "s3");
        ChunkSigner::new(key, "20130524T000000Z", "20130524/us-east-1/s3/aws4_request", [7; 32])
    });
    let piece_bytes = usize::from(header[6]).max(1);
    let mut decoder = AwsChunkedDecoder::new(mode, signer, trailer, decoded_length);
    let mut delivered: u64 = 0;
    for piece in body.chunks(piece_bytes) {
        match decoder.feed(piece, &mut |d| delivered += d.len() as u64) {
            Ok(consumed) => {
                assert!(consumed <= piece.len());
                if consumed < piece.len() {
                    assert!(decoder.is_done(), "input left over only after the end");
                    break;
                }
            }
            Err(_) => {
                assert!(!decoder.is_done());
                break;
            }
        }
        if let Some(length) = decoded_length {
            assert!(delivered <= length, "never more data than declared");
        }
    }
    assert_eq!(delivered, decoder.decoded_bytes());
});
