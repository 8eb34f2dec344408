//! checksum: the digests S3 puts on the wire.
//!
//! `x-amz-checksum-*` values (CRC32, CRC32C, CRC64/NVME, SHA-1, SHA-256) are the base64 of the
//! big-endian digest bytes; ETags are hex MD5 (single part) or `hex(md5(part md5s))-N` (multipart);
//! `Content-MD5` is the base64 of the 16-byte MD5. Every hash comes from a library crate; this
//! module only names the algorithms and fixes the encodings.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::Digest as _;

/// The five algorithms S3 accepts in `x-amz-checksum-*` and `x-amz-sdk-checksum-algorithm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256];

    /// `x-amz-checksum-crc32` → `Crc32`; the name must already be lowercase (header names are).
    pub fn from_header_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.header_name() == name)
    }

    /// `CRC32` → `Crc32`: the values of `x-amz-sdk-checksum-algorithm` and `x-amz-checksum-algorithm`.
    /// S3 treats them case-insensitively.
    pub fn from_sdk_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.sdk_name().eq_ignore_ascii_case(name))
    }

    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    pub fn sdk_name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// Length of the raw (pre-base64) digest.
    pub fn digest_size_bytes(self) -> usize {
        match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// Decodes a base64 header value and checks its length for this algorithm; `None` if either fails.
    pub fn decode_value(self, value_base64: &str) -> Option<Vec<u8>> {
        let raw = BASE64.decode(value_base64.trim()).ok()?;
        (raw.len() == self.digest_size_bytes()).then_some(raw)
    }
}

#[derive(Clone)]
enum ChecksumState {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(crc64fast_nvme::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

/// Incremental `x-amz-checksum-*` computation over a body delivered in pieces.
#[derive(Clone)]
pub struct Checksummer {
    algorithm: ChecksumAlgorithm,
    state: ChecksumState,
}

impl Checksummer {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        let state = match algorithm {
            ChecksumAlgorithm::Crc32 => ChecksumState::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Crc32c => ChecksumState::Crc32c(0),
            ChecksumAlgorithm::Crc64Nvme => ChecksumState::Crc64Nvme(crc64fast_nvme::Digest::new()),
            ChecksumAlgorithm::Sha1 => ChecksumState::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => ChecksumState::Sha256(sha2::Sha256::new()),
        };
        Checksummer { algorithm, state }
    }

    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            ChecksumState::Crc32(h) => h.update(data),
            ChecksumState::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
            ChecksumState::Crc64Nvme(d) => d.write(data),
            ChecksumState::Sha1(h) => h.update(data),
            ChecksumState::Sha256(h) => h.update(data),
        }
    }

    /// The raw digest: big-endian for the CRCs, as S3 encodes them.
    pub fn finish_bytes(self) -> Vec<u8> {
        let raw = match self.state {
            ChecksumState::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            ChecksumState::Crc32c(crc) => crc.to_be_bytes().to_vec(),
            ChecksumState::Crc64Nvme(d) => d.sum64().to_be_bytes().to_vec(),
            ChecksumState::Sha1(h) => h.finalize().to_vec(),
            ChecksumState::Sha256(h) => h.finalize().to_vec(),
        };
        assert_eq!(raw.len(), self.algorithm.digest_size_bytes());
        raw
    }

    /// The header value: base64 of the raw digest.
    pub fn finish(self) -> String {
        BASE64.encode(self.finish_bytes())
    }
}

/// One-shot convenience over [`Checksummer`].
pub fn checksum_base64(algorithm: ChecksumAlgorithm, data: &[u8]) -> String {
    let mut c = Checksummer::new(algorithm);
    c.update(data);
    c.finish()
}

/// Incremental MD5 for ETags and `Content-MD5`.
#[derive(Clone, Default)]
pub struct Md5(md5::Md5);

impl Md5 {
    pub fn new() -> Self {
        Md5(md5::Md5::new())
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> [u8; 16] {
        self.0.finalize().into()
    }

    /// The single-part ETag body: lowercase hex, without the surrounding quotes.
    pub fn finish_hex(self) -> String {
        hex::encode(self.finish())
    }
}

/// The multipart ETag body `hex(md5(md5_1 || md5_2 || ...))-N`, without the surrounding quotes.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut md5 = Md5::new();
    for part in part_md5s {
        md5.update(part);
    }
    format!("{}-{}", md5.finish_hex(), part_md5s.len())
}

/// Why a `Content-MD5` header was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentMd5Error {
    /// Not base64 of exactly 16 bytes.
    Invalid { value: String },
    /// Well-formed but different from the body's MD5.
    Mismatch { declared_base64: String, computed_base64: String },
}

impl ContentMd5Error {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "InvalidDigest",
            Self::Mismatch { .. } => "BadDigest",
        }
    }

    pub fn status(&self) -> u16 {
        400
    }
}

impl std::fmt::Display for ContentMd5Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid { value } => write!(f, "Content-MD5 {value:?} is not the base64 of a 16-byte MD5"),
            Self::Mismatch { declared_base64, computed_base64 } => {
                write!(f, "Content-MD5 {declared_base64} does not match the body's MD5 {computed_base64}")
            }
        }
    }
}

impl std::error::Error for ContentMd5Error {}

/// Parses a `Content-MD5` header value (base64 of 16 bytes).
pub fn parse_content_md5(value: &str) -> Result<[u8; 16], ContentMd5Error> {
    let invalid = || ContentMd5Error::Invalid { value: value.chars().take(64).collect() };
    let raw = BASE64.decode(value.trim()).map_err(|_| invalid())?;
    <[u8; 16]>::try_from(raw.as_slice()).map_err(|_| invalid())
}

/// Checks a `Content-MD5` header value against the MD5 computed over the body.
pub fn verify_content_md5(value: &str, computed: &[u8; 16]) -> Result<(), ContentMd5Error> {
    let declared = parse_content_md5(value)?;
    if declared == *computed {
        Ok(())
    } else {
        Err(ContentMd5Error::Mismatch { declared_base64: BASE64.encode(declared), computed_base64: BASE64.encode(computed) })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn check(algorithm: ChecksumAlgorithm, data: &[u8], expected_hex: &str) {
        let mut c = Checksummer::new(algorithm);
        // Split so the incremental path is exercised, not only a single update.
        let (a, b) = data.split_at(data.len() / 2);
        c.update(a);
        c.update(b);
        let raw = c.clone().finish_bytes();
        assert_eq!(hex::encode(&raw), expected_hex, "{algorithm:?}");
        assert_eq!(c.finish(), BASE64.encode(&raw));
        assert_eq!(algorithm.decode_value(&BASE64.encode(&raw)), Some(raw));
    }

    #[test]
    fn check_values_of_the_catalogue() {
        check(ChecksumAlgorithm::Crc32, b"123456789", "cbf43926");
        check(ChecksumAlgorithm::Crc32c, b"123456789", "e3069283");
        check(ChecksumAlgorithm::Crc64Nvme, b"123456789", "ae8b14860a799888");
        check(ChecksumAlgorithm::Sha1, b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d");
        check(ChecksumAlgorithm::Sha256, b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        check(ChecksumAlgorithm::Crc32, b"", "00000000");
    }

    #[test]
    fn base64_forms() {
        assert_eq!(checksum_base64(ChecksumAlgorithm::Crc32, b"123456789"), "y/Q5Jg==");
        assert_eq!(checksum_base64(ChecksumAlgorithm::Crc32c, b"123456789"), "4waSgw==");
        assert_eq!(checksum_base64(ChecksumAlgorithm::Crc64Nvme, b"123456789"), "rosUhgp5mIg=");
        assert_eq!(checksum_base64(ChecksumAlgorithm::Sha256, b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn names_round_trip() {
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::from_header_name(a.header_name()), Some(a));
            assert_eq!(ChecksumAlgorithm::from_sdk_name(a.sdk_name()), Some(a));
            assert_eq!(ChecksumAlgorithm::from_sdk_name(&a.sdk_name().to_lowercase()), Some(a));
        }
        assert_eq!(ChecksumAlgorithm::from_header_name("x-amz-checksum-md5"), None);
        assert_eq!(ChecksumAlgorithm::from_sdk_name("CRC64"), None);
        assert_eq!(ChecksumAlgorithm::Crc32.decode_value("AAAAAAA="), None, "5 bytes for a 4-byte digest");
        assert_eq!(ChecksumAlgorithm::Crc32.decode_value("!!!!"), None);
    }

    #[test]
    fn etags() {
        let mut md5 = Md5::new();
        md5.update(b"The quick brown fox ");
        md5.update(b"jumps over the lazy dog");
        let digest = md5.clone().finish();
        assert_eq!(md5.finish_hex(), "9e107d9d372bb6826bd81d3542a419d6");
        assert_eq!(Md5::new().finish_hex(), "d41d8cd98f00b204e9800998ecf8427e");
        // Expected values from Python: hashlib.md5(hashlib.md5(b"a").digest() + hashlib.md5(b"b").digest()).
        let part = |data: &[u8]| {
            let mut m = Md5::new();
            m.update(data);
            m.finish()
        };
        assert_eq!(multipart_etag(&[part(b"a"), part(b"b")]), "96e024ba2074fe77e8e965ba43a704be-2");
        assert_eq!(multipart_etag(&[part(b""), part(b"")]), "5873dd45edd01f09c1ef2e7819369e8e-2");
        assert_eq!(multipart_etag(&[digest]).len(), 32 + 2);
    }

    #[test]
    fn content_md5() {
        let computed = {
            let mut m = Md5::new();
            m.update(b"The quick brown fox jumps over the lazy dog");
            m.finish()
        };
        assert_eq!(verify_content_md5("nhB9nTcrtoJr2B01QqQZ1g==", &computed), Ok(()));
        let mismatch = verify_content_md5("1B2M2Y8AsgTpgAmY7PhCfg==", &computed).unwrap_err();
        assert_eq!(mismatch.code(), "BadDigest");
        assert_eq!(verify_content_md5("nhB9nTcrtoJr2B01QqQZ", &computed).unwrap_err().code(), "InvalidDigest");
        assert_eq!(parse_content_md5("not base64!").unwrap_err().code(), "InvalidDigest");
    }
}
