//! The client side of aws-chunked, for tests, fuzz seeds and the load generator.

use super::{ChunkSigner, ChunkedMode};
use crate::checksum::{ChecksumAlgorithm, Checksummer};
use crate::sigv4::sha256;

/// Encodes `data` in chunks of `chunk_size_bytes` (the last may be shorter), then the empty final
/// chunk, the `trailer` checksum (trailer modes) and, in the signed-trailer mode, the trailer
/// signature. `signer` must be given exactly for the signed modes.
pub fn encode_aws_chunked(
    mode: ChunkedMode,
    mut signer: Option<ChunkSigner>,
    data: &[u8],
    chunk_size_bytes: usize,
    trailer: Option<ChecksumAlgorithm>,
) -> Vec<u8> {
    assert!(chunk_size_bytes > 0);
    assert_eq!(signer.is_some(), mode != ChunkedMode::UnsignedTrailer);
    let mut out = Vec::with_capacity(data.len() + 128 * (data.len() / chunk_size_bytes + 2));
    for chunk in data.chunks(chunk_size_bytes).chain([&[][..]]) {
        out.extend_from_slice(format!("{:x}", chunk.len()).as_bytes());
        if let Some(signer) = &mut signer {
            let signature = signer.sign_chunk(&sha256(chunk));
            out.extend_from_slice(format!(";chunk-signature={}", hex::encode(signature)).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if !chunk.is_empty() {
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
    }
    if let Some(algorithm) = trailer {
        let mut checksummer = Checksummer::new(algorithm);
        checksummer.update(data);
        let line = format!("{}:{}", algorithm.header_name(), checksummer.finish());
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(signer) = signer.as_mut().filter(|_| mode == ChunkedMode::SignedTrailer) {
            let signature = signer.sign_trailer(&sha256(format!("{line}\n").as_bytes()));
            out.extend_from_slice(format!("x-amz-trailer-signature:{}\r\n", hex::encode(signature)).as_bytes());
        }
    } else if let Some(signer) = signer.as_mut().filter(|_| mode == ChunkedMode::SignedTrailer) {
        let signature = signer.sign_trailer(&sha256(b""));
        out.extend_from_slice(format!("x-amz-trailer-signature:{}\r\n", hex::encode(signature)).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}
