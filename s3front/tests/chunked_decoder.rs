//! The aws-chunked decoder: round trips in every mode, any split of the input, hostile input, and
//! a negative test for every refusal.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use proptest::prelude::*;
use s3front::checksum::{ChecksumAlgorithm, checksum_base64};
use s3front::chunked::{
    AwsChunkedDecoder, CHUNK_SIZE_LINE_BYTES_MAX, CHUNK_SIZE_MAX_BYTES, ChunkError, ChunkSigner, ChunkedMode, encode_aws_chunked,
};
use s3front::sigv4::{sha256, signing_key};

const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";
const DATE_TIME: &str = "20130524T000000Z";
const SEED: [u8; 32] = [7; 32];

fn signer() -> ChunkSigner {
    ChunkSigner::new(signing_key("secret", "20130524", "us-east-1", "s3"), DATE_TIME, SCOPE, SEED)
}

fn signer_for(mode: ChunkedMode) -> Option<ChunkSigner> {
    (mode != ChunkedMode::UnsignedTrailer).then(signer)
}

fn decoder(mode: ChunkedMode, trailer: Option<ChecksumAlgorithm>, decoded_length: Option<u64>) -> AwsChunkedDecoder {
    AwsChunkedDecoder::new(mode, signer_for(mode), trailer, decoded_length)
}

fn encode(mode: ChunkedMode, data: &[u8], chunk_size: usize, trailer: Option<ChecksumAlgorithm>) -> Vec<u8> {
    encode_aws_chunked(mode, signer_for(mode), data, chunk_size, trailer)
}

/// Feeds `body` in pieces cut at `cuts`; returns the decoded data, or the first error.
fn decode_split(decoder: &mut AwsChunkedDecoder, body: &[u8], cuts: &[usize]) -> Result<Vec<u8>, ChunkError> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(body.len())).collect();
    cuts.sort_unstable();
    for end in cuts.into_iter().chain([body.len()]) {
        let piece = &body[start..end.max(start)];
        let consumed = decoder.feed(piece, &mut |d| out.extend_from_slice(d))?;
        assert!(consumed == piece.len() || decoder.is_done(), "only a finished decoder leaves input");
        start = end.max(start);
    }
    Ok(out)
}

fn decode(mode: ChunkedMode, trailer: Option<ChecksumAlgorithm>, length: Option<u64>, body: &[u8]) -> Result<Vec<u8>, ChunkError> {
    let mut d = decoder(mode, trailer, length);
    let out = decode_split(&mut d, body, &[])?;
    assert!(d.is_done(), "body ended without an error but the decoder is not done");
    Ok(out)
}

const MODES: [ChunkedMode; 3] = [ChunkedMode::Signed, ChunkedMode::SignedTrailer, ChunkedMode::UnsignedTrailer];

fn trailers_for(mode: ChunkedMode) -> Vec<Option<ChecksumAlgorithm>> {
    match mode {
        ChunkedMode::Signed => vec![None],
        _ => std::iter::once(None).chain(ChecksumAlgorithm::ALL.map(Some)).collect(),
    }
}

#[test]
fn round_trip_every_mode_and_checksum() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
    for mode in MODES {
        for trailer in trailers_for(mode) {
            for chunk_size in [1, 7, 4096, 5000, 9000] {
                let body = encode(mode, &data, chunk_size, trailer);
                let mut d = decoder(mode, trailer, Some(data.len() as u64));
                assert_eq!(decode_split(&mut d, &body, &[]).as_ref(), Ok(&data), "{mode:?} {trailer:?} {chunk_size}");
                assert!(d.is_done());
                assert_eq!(d.decoded_bytes(), data.len() as u64);
                let expected = trailer.map(|a| (a, checksum_base64(a, &data)));
                assert_eq!(d.trailer_checksum().map(|(a, v)| (a, v.to_string())), expected);
            }
        }
    }
}

#[test]
fn every_byte_boundary() {
    for mode in MODES {
        let trailer = (mode != ChunkedMode::Signed).then_some(ChecksumAlgorithm::Crc32);
        let body = encode(mode, b"hello, chunked world", 6, trailer);
        let one_byte_pieces: Vec<usize> = (1..body.len()).collect();
        let mut d = decoder(mode, trailer, Some(20));
        assert_eq!(decode_split(&mut d, &body, &one_byte_pieces).unwrap(), b"hello, chunked world");
        assert!(d.is_done());
        for cut in 0..=body.len() {
            let mut d = decoder(mode, trailer, Some(20));
            assert_eq!(decode_split(&mut d, &body, &[cut]).unwrap(), b"hello, chunked world", "{mode:?} cut at {cut}");
        }
    }
}

#[test]
fn empty_body_and_what_follows_it() {
    for mode in MODES {
        let mut body = encode(mode, b"", 10, None);
        let len = body.len();
        body.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut d = decoder(mode, None, Some(0));
        assert_eq!(d.feed(&body, &mut |_| panic!("no data expected")), Ok(len), "{mode:?}: input after the body is not consumed");
        assert!(d.is_done());
    }
}

fn error_of(mode: ChunkedMode, trailer: Option<ChecksumAlgorithm>, length: Option<u64>, body: &[u8]) -> ChunkError {
    decode(mode, trailer, length, body).expect_err("body should be refused")
}

fn check_error(error: ChunkError, code: &str, message_part: &str) {
    assert_eq!(error.code(), code, "{error}");
    assert!(error.to_string().contains(message_part), "{error} should mention {message_part:?}");
}

fn replace(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(body.to_vec()).expect("test bodies are text");
    assert!(text.contains(from), "{from:?} not in body");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn signature_errors() {
    let body = encode(ChunkedMode::Signed, b"0123456789abcdef", 4, None);
    // Chunk 3's data changed: its signature no longer holds.
    let tampered = replace(&body, "89ab", "89aB");
    check_error(error_of(ChunkedMode::Signed, None, None, &tampered), "SignatureDoesNotMatch", "chunk 3: signature mismatch");
    assert_eq!(error_of(ChunkedMode::Signed, None, None, &tampered).status(), 403);
    // Chunks swapped: the chain breaks at the first.
    let a = encode(ChunkedMode::Signed, b"AAAA", 4, None);
    let mut other = ChunkSigner::new(signing_key("secret", "20130524", "us-east-1", "s3"), DATE_TIME, SCOPE, [8; 32]);
    let sig = hex::encode(other.sign_chunk(&sha256(b"AAAA")));
    let forged = format!("4;chunk-signature={sig}\r\nAAAA\r\n{}", String::from_utf8(a[a.len() - 86..].to_vec()).unwrap());
    check_error(error_of(ChunkedMode::Signed, None, None, forged.as_bytes()), "SignatureDoesNotMatch", "chunk 1");
    // The final empty chunk is signed too.
    let text = String::from_utf8(body.clone()).unwrap();
    let last_sig_at = text.rfind("chunk-signature=").unwrap() + 16;
    let mut wrong_final = body.clone();
    wrong_final[last_sig_at] = if wrong_final[last_sig_at] == b'0' { b'1' } else { b'0' };
    check_error(error_of(ChunkedMode::Signed, None, None, &wrong_final), "SignatureDoesNotMatch", "chunk 5: signature mismatch");
}

#[test]
fn framing_errors() {
    let body = encode(ChunkedMode::Signed, b"0123456789", 4, None);
    let text = String::from_utf8(body.clone()).unwrap();
    let sig = &text[text.find('=').unwrap() + 1..text.find('=').unwrap() + 65];
    for (bad, part) in [
        ("4\r\n0123\r\n".to_string(), "missing ;chunk-signature="),
        (format!("4;chunk-signature={}\r\n0123\r\n", &sig[..63]), "64 hex"),
        (format!("4;chunk-signatur={sig}\r\n0123\r\n"), "missing ;chunk-signature="),
        (format!("x4;chunk-signature={sig}\r\n"), "hex digits"),
        (format!(";chunk-signature={sig}\r\n"), "hex digits"),
        (format!("00000000000000004;chunk-signature={sig}\r\n"), "hex digits"),
        (format!("4;chunk-signature={sig}\n"), "bare LF"),
        (format!("4;chunk-signature={sig}{}\r\n", "x".repeat(CHUNK_SIZE_LINE_BYTES_MAX)), "longer than"),
    ] {
        check_error(error_of(ChunkedMode::Signed, None, None, bad.as_bytes()), "InvalidRequest", part);
    }
    // Data longer than its size line says: the chunk's own bytes verify, the extra byte is not CRLF.
    let longer = replace(&body, "0123\r\n", "01234\r\n");
    check_error(error_of(ChunkedMode::Signed, None, None, &longer), "InvalidRequest", "chunk 1: chunk data is not followed by CRLF");
    let unsigned = encode(ChunkedMode::UnsignedTrailer, b"0123456789", 4, None);
    let longer = replace(&unsigned, "0123\r\n", "01234\r\n");
    check_error(
        error_of(ChunkedMode::UnsignedTrailer, None, None, &longer),
        "InvalidRequest",
        "chunk 1: chunk data is not followed by CRLF",
    );
    let too_big = format!("{:x}\r\n", CHUNK_SIZE_MAX_BYTES + 1);
    check_error(error_of(ChunkedMode::UnsignedTrailer, None, None, too_big.as_bytes()), "InvalidRequest", "over the");
}

#[test]
fn length_errors() {
    let body = encode(ChunkedMode::Signed, b"0123456789", 4, None);
    check_error(error_of(ChunkedMode::Signed, None, Some(11), &body), "IncompleteBody", "declared 11 bytes");
    check_error(error_of(ChunkedMode::Signed, None, Some(9), &body), "IncompleteBody", "declared 9 bytes");
    // More than declared is refused as soon as the size line says so, before the data is delivered.
    let mut d = decoder(ChunkedMode::Signed, None, Some(3));
    let mut delivered = 0;
    assert!(d.feed(&body, &mut |x| delivered += x.len()).is_err());
    assert_eq!(delivered, 0);
}

#[test]
fn trailer_errors() {
    let crc = Some(ChecksumAlgorithm::Crc32c);
    for mode in [ChunkedMode::SignedTrailer, ChunkedMode::UnsignedTrailer] {
        let body = encode(mode, b"0123456789", 4, crc);
        let good = checksum_base64(ChecksumAlgorithm::Crc32c, b"0123456789");
        let wrong = checksum_base64(ChecksumAlgorithm::Crc32c, b"x");
        let mismatched = replace(&body, &good, &wrong);
        // The checksum is compared before the signature that covers it.
        check_error(error_of(mode, crc, None, &mismatched), "BadDigest", "does not match the computed");
        check_error(error_of(mode, crc, None, &replace(&body, &good, "AAAA")), "InvalidRequest", "not a base64");
        check_error(error_of(mode, Some(ChecksumAlgorithm::Crc32), None, &body), "InvalidRequest", "not declared");
        check_error(error_of(mode, None, None, &body), "InvalidRequest", "declared nothing");
        let missing = encode(mode, b"0123456789", 4, None);
        check_error(error_of(mode, crc, None, &missing), "InvalidRequest", "is missing");
        let dup = replace(&body, "x-amz-checksum-crc32c", &format!("x-amz-checksum-crc32c:{good}\r\nx-amz-checksum-crc32c"));
        check_error(error_of(mode, crc, None, &dup), "InvalidRequest", "twice");
        let junk = replace(&body, "x-amz-checksum-crc32c", "junk\r\nx-amz-checksum-crc32c");
        check_error(error_of(mode, crc, None, &junk), "InvalidRequest", "name:value");
        let long = replace(&body, "x-amz-checksum-crc32c", &format!("x-amz-meta:{}\r\nx-amz-checksum-crc32c", "v".repeat(5000)));
        check_error(error_of(mode, crc, None, &long), "InvalidRequest", "longer than");
    }
    // Signed trailer: its signature is checked, required, and nothing may follow it.
    let body = encode(ChunkedMode::SignedTrailer, b"0123456789", 4, crc);
    let text = String::from_utf8(body.clone()).unwrap();
    let at = text.find("x-amz-trailer-signature:").unwrap() + 24;
    let mut wrong = body.clone();
    wrong[at] = if wrong[at] == b'0' { b'1' } else { b'0' };
    check_error(error_of(ChunkedMode::SignedTrailer, crc, None, &wrong), "SignatureDoesNotMatch", "trailer: signature mismatch");
    let without = format!("{}\r\n", &text[..text.find("x-amz-trailer-signature:").unwrap()]);
    check_error(
        error_of(ChunkedMode::SignedTrailer, crc, None, without.as_bytes()),
        "InvalidRequest",
        "x-amz-trailer-signature is missing",
    );
    let after = format!("{}x-amz-meta:a\r\n\r\n", &text[..text.len() - 2]);
    check_error(error_of(ChunkedMode::SignedTrailer, crc, None, after.as_bytes()), "InvalidRequest", "after x-amz-trailer-signature");
    // No trailer at all where none was declared.
    let signed = encode(ChunkedMode::Signed, b"01", 4, None);
    let with_trailer = format!("{}x-amz-checksum-crc32c:AAAAAA==\r\n\r\n", String::from_utf8(signed[..signed.len() - 2].to_vec()).unwrap());
    check_error(error_of(ChunkedMode::Signed, None, None, with_trailer.as_bytes()), "InvalidRequest", "without trailers");
    // A trailer signature in the unsigned mode.
    let unsigned = encode(ChunkedMode::UnsignedTrailer, b"01", 4, None);
    let signed_trailer = format!(
        "{}x-amz-trailer-signature:{}\r\n\r\n",
        String::from_utf8(unsigned[..unsigned.len() - 2].to_vec()).unwrap(),
        "0".repeat(64)
    );
    check_error(error_of(ChunkedMode::UnsignedTrailer, None, None, signed_trailer.as_bytes()), "InvalidRequest", "unsigned");
}

#[test]
fn errors_are_sticky() {
    let body = encode(ChunkedMode::Signed, b"0123456789", 4, None);
    let tampered = replace(&body, "0123", "0124");
    let mut d = decoder(ChunkedMode::Signed, None, None);
    let first = d.feed(&tampered, &mut |_| {}).unwrap_err();
    assert_eq!(d.feed(&body, &mut |_| {}), Err(first));
    assert!(!d.is_done());
}

fn mode_strategy() -> impl Strategy<Value = ChunkedMode> {
    prop::sample::select(MODES.to_vec())
}

fn trailer_strategy() -> impl Strategy<Value = Option<ChecksumAlgorithm>> {
    prop::option::of(prop::sample::select(ChecksumAlgorithm::ALL.to_vec()))
}

proptest! {
    #[test]
    fn any_split_decodes_the_same(
        mode in mode_strategy(),
        trailer in trailer_strategy(),
        data in prop::collection::vec(any::<u8>(), 0..3000),
        chunk_size in 1usize..700,
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let trailer = trailer.filter(|_| mode != ChunkedMode::Signed);
        let body = encode(mode, &data, chunk_size, trailer);
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
        let mut d = decoder(mode, trailer, Some(data.len() as u64));
        prop_assert_eq!(decode_split(&mut d, &body, &cuts).unwrap(), data);
        prop_assert!(d.is_done());
    }

    #[test]
    fn changed_data_is_refused(
        mode in prop::sample::select(vec![ChunkedMode::Signed, ChunkedMode::SignedTrailer]),
        data in prop::collection::vec(any::<u8>(), 1..600),
        chunk_size in 1usize..200,
        which in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        // The changed data under the original signatures.
        let original = encode(mode, &data, chunk_size, None);
        let mut forged = original.clone();
        forged[locate_data_byte(&original, chunk_size, which.index(data.len()))] ^= flip;
        let result = decode(mode, None, None, &forged);
        prop_assert!(matches!(result, Err(ChunkError::SignatureMismatch { .. })), "{:?}", result);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        mode in mode_strategy(),
        trailer in trailer_strategy(),
        length in prop::option::of(0u64..100),
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let trailer = trailer.filter(|_| mode != ChunkedMode::Signed);
        let mut d = decoder(mode, trailer, length);
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        let _ = decode_split(&mut d, &bytes, &cuts);
    }

    #[test]
    fn mutated_bodies_never_panic(
        mode in mode_strategy(),
        data in prop::collection::vec(any::<u8>(), 0..200),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let trailer = (mode != ChunkedMode::Signed).then_some(ChecksumAlgorithm::Crc32);
        let mut body = encode(mode, &data, 64, trailer);
        let i = at.index(body.len());
        body[i] = byte;
        let mut d = decoder(mode, trailer, Some(data.len() as u64));
        let _ = decode_split(&mut d, &body, &[i]);
    }
}

/// Offset in an encoded signed body of data byte `index`.
fn locate_data_byte(body: &[u8], chunk_size: usize, index: usize) -> usize {
    let mut offset = 0;
    let mut remaining = index;
    loop {
        let line_end = body[offset..].windows(2).position(|w| w == b"\r\n").expect("size line") + offset + 2;
        let size = usize::from_str_radix(std::str::from_utf8(&body[offset..line_end - 2]).unwrap().split(';').next().unwrap(), 16).unwrap();
        assert!(size <= chunk_size && size > 0);
        if remaining < size {
            return line_end + remaining;
        }
        remaining -= size;
        offset = line_end + size + 2;
    }
}

/// The committed fuzz seeds were made by an independent (Python) encoder; each must decode fully,
/// which cross-checks the chunk and trailer string-to-sign formats. Layout: see the fuzz target.
#[test]
fn fuzz_seeds_decode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/aws_chunked");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let seed = std::fs::read(&path).unwrap();
        let (header, body) = seed.split_at(7);
        let mode = MODES[usize::from(header[0] % 3)];
        let trailer = ChecksumAlgorithm::ALL.get(usize::from(header[1] % 6)).copied().filter(|_| mode != ChunkedMode::Signed);
        let length = (header[2] & 1 == 1).then(|| u64::from(u16::from_le_bytes([header[3], header[4]])) | (u64::from(header[5]) << 16));
        let mut d = decoder(mode, trailer, length);
        let cuts: Vec<usize> = (1..body.len()).step_by(usize::from(header[6]).max(1)).collect();
        decode_split(&mut d, body, &cuts).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(d.is_done(), "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} seeds in {}", dir.display());
}
