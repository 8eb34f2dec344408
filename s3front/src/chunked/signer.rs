//! The signature chain of a streaming SigV4 body: each chunk (and the trailer) is signed with the
//! request's signing key over a string that names the previous signature, starting from the seed
//! (the request signature), so chunks can be neither reordered, dropped nor replayed.

use crate::sigv4::{hmac_sha256, sha256};
use hmac::{KeyInit as _, Mac as _};

const CHUNK_ALGORITHM: &str = "AWS4-HMAC-SHA256-PAYLOAD";
const TRAILER_ALGORITHM: &str = "AWS4-HMAC-SHA256-TRAILER";

/// Verifies (or, for clients and tests, produces) the chained chunk and trailer signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkSigner {
    signing_key: [u8; 32],
    date_time: String,
    scope: String,
    previous_signature: [u8; 32],
}

impl std::fmt::Debug for ChunkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSigner")
            .field("signing_key", &"<redacted>")
            .field("date_time", &self.date_time)
            .field("scope", &self.scope)
            .field("previous_signature", &hex::encode(self.previous_signature))
            .finish()
    }
}

impl ChunkSigner {
    /// `date_time` is `YYYYMMDDTHHMMSSZ`, `scope` is `YYYYMMDD/region/s3/aws4_request`, and
    /// `seed_signature` is the signature of the request itself.
    pub fn new(signing_key: [u8; 32], date_time: &str, scope: &str, seed_signature: [u8; 32]) -> Self {
        ChunkSigner { signing_key, date_time: date_time.to_string(), scope: scope.to_string(), previous_signature: seed_signature }
    }

    /// The signature the next chunk or trailer chains from.
    pub fn previous_signature(&self) -> [u8; 32] {
        self.previous_signature
    }

    /// `AWS4-HMAC-SHA256-PAYLOAD\n<date>\n<scope>\n<previous>\n<sha256("")>\n<sha256(chunk)>`.
    pub fn chunk_string_to_sign(&self, chunk_sha256: &[u8; 32]) -> String {
        format!(
            "{CHUNK_ALGORITHM}\n{}\n{}\n{}\n{}\n{}",
            self.date_time,
            self.scope,
            hex::encode(self.previous_signature),
            hex::encode(sha256(b"")),
            hex::encode(chunk_sha256)
        )
    }

    /// `AWS4-HMAC-SHA256-TRAILER\n<date>\n<scope>\n<previous>\n<sha256(trailer lines)>`.
    pub fn trailer_string_to_sign(&self, trailer_sha256: &[u8; 32]) -> String {
        format!(
            "{TRAILER_ALGORITHM}\n{}\n{}\n{}\n{}",
            self.date_time,
            self.scope,
            hex::encode(self.previous_signature),
            hex::encode(trailer_sha256)
        )
    }

    /// Signs the next chunk and chains from it (the client side; used by tests and tools).
    pub fn sign_chunk(&mut self, chunk_sha256: &[u8; 32]) -> [u8; 32] {
        let signature = hmac_sha256(&self.signing_key, self.chunk_string_to_sign(chunk_sha256).as_bytes());
        self.previous_signature = signature;
        signature
    }

    /// Signs the trailer and chains from it.
    pub fn sign_trailer(&mut self, trailer_sha256: &[u8; 32]) -> [u8; 32] {
        let signature = hmac_sha256(&self.signing_key, self.trailer_string_to_sign(trailer_sha256).as_bytes());
        self.previous_signature = signature;
        signature
    }

    /// Constant-time check of a chunk's signature; on success the chain moves on to it.
    pub fn verify_chunk(&mut self, chunk_sha256: &[u8; 32], signature: &[u8; 32]) -> bool {
        let string_to_sign = self.chunk_string_to_sign(chunk_sha256);
        self.verify(string_to_sign.as_bytes(), signature)
    }

    /// Constant-time check of the trailer's signature; on success the chain moves on to it.
    pub fn verify_trailer(&mut self, trailer_sha256: &[u8; 32], signature: &[u8; 32]) -> bool {
        let string_to_sign = self.trailer_string_to_sign(trailer_sha256);
        self.verify(string_to_sign.as_bytes(), signature)
    }

    fn verify(&mut self, string_to_sign: &[u8], signature: &[u8; 32]) -> bool {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.signing_key).expect("HMAC takes keys of any length");
        mac.update(string_to_sign);
        let matches = mac.verify_slice(signature).is_ok();
        if matches {
            self.previous_signature = *signature;
        }
        matches
    }
}
