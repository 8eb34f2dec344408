//! multipart_checksum: the checksum S3 gives an object made of parts.
//!
//! An upload names its algorithm and type when it is created (`x-amz-checksum-algorithm`,
//! `x-amz-checksum-type`); every part then has a checksum of that algorithm. At completion the
//! object's checksum is built from the parts' digests alone, never by reading the data again:
//! - COMPOSITE: the algorithm over the concatenated raw part digests, `base64(H(d1 || d2 ..))-N`;
//! - FULL_OBJECT (CRCs only): the CRC of the whole object, combined from each part's CRC and
//!   length (`crc_combine`, zlib's `crc32_combine` generalised to the three reflected CRCs).
//!
//! A value's type can be read back from the value itself: base64 never holds `-`, so a value
//! ending in `-N` is composite and any other full-object (`kind_of_value`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::checksum::{ChecksumAlgorithm, Checksummer};
use crate::error::{ErrorCode, S3Error};
use crate::xml::responses::ChecksumType;

/// What an upload was created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadChecksum {
    pub algorithm: ChecksumAlgorithm,
    pub kind: ChecksumType,
}

fn invalid_request(message: String) -> S3Error {
    S3Error::new(ErrorCode::InvalidRequest, message)
}

impl UploadChecksum {
    /// From CreateMultipartUpload's `x-amz-checksum-algorithm` and `x-amz-checksum-type`, with
    /// AWS's defaults and limits: CRC64NVME is full-object only, SHA-1 and SHA-256 composite
    /// only, CRC32 and CRC32C either (composite unless asked).
    pub fn from_headers(algorithm: Option<&str>, kind: Option<&str>) -> Result<Option<UploadChecksum>, S3Error> {
        let kind = match kind {
            None => None,
            Some(v) => Some(
                ChecksumType::parse(v).ok_or_else(|| invalid_request(format!("x-amz-checksum-type {v:?}: COMPOSITE or FULL_OBJECT")))?,
            ),
        };
        let Some(name) = algorithm else {
            return match kind {
                None => Ok(None),
                Some(_) => Err(invalid_request("x-amz-checksum-type needs x-amz-checksum-algorithm".into())),
            };
        };
        let algorithm = ChecksumAlgorithm::from_sdk_name(name.trim()).ok_or_else(|| {
            invalid_request(format!("Checksum algorithm {name:?} is not supported: CRC32, CRC32C, CRC64NVME, SHA1 or SHA256"))
        })?;
        let kind = kind.unwrap_or(Self::default_kind(algorithm));
        let allowed = match algorithm {
            ChecksumAlgorithm::Crc64Nvme => kind == ChecksumType::FullObject,
            ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => kind == ChecksumType::Composite,
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => true,
        };
        if !allowed {
            return Err(invalid_request(format!(
                "The {} checksum type cannot be used with the {} checksum algorithm.",
                kind.as_str(),
                algorithm.sdk_name()
            )));
        }
        Ok(Some(UploadChecksum { algorithm, kind }))
    }

    pub fn default_kind(algorithm: ChecksumAlgorithm) -> ChecksumType {
        match algorithm {
            ChecksumAlgorithm::Crc64Nvme => ChecksumType::FullObject,
            _ => ChecksumType::Composite,
        }
    }

    /// The object's checksum value (base64, `-N` for composite) from its parts' raw digests
    /// and sizes, in part order.
    pub fn object_value(&self, parts: &[(&[u8], u64)]) -> String {
        for (raw, _) in parts {
            assert_eq!(raw.len(), self.algorithm.digest_size_bytes(), "part digest of {:?}", self.algorithm);
        }
        match self.kind {
            ChecksumType::Composite => {
                let mut c = Checksummer::new(self.algorithm);
                for (raw, _) in parts {
                    c.update(raw);
                }
                format!("{}-{}", c.finish(), parts.len())
            }
            ChecksumType::FullObject => {
                let crc = Crc::of(self.algorithm).expect("full-object checksums are CRCs (from_headers)");
                let mut whole = crc.empty;
                for (raw, size) in parts {
                    whole = crc.combine(whole, from_be(raw), *size);
                }
                let bytes = whole.to_be_bytes();
                BASE64.encode(&bytes[8 - self.algorithm.digest_size_bytes()..])
            }
        }
    }
}

/// COMPOSITE for a value ending in `-N`, FULL_OBJECT otherwise (a single PUT's checksum too).
pub fn kind_of_value(value: &str) -> ChecksumType {
    if value.contains('-') { ChecksumType::Composite } else { ChecksumType::FullObject }
}

fn from_be(raw: &[u8]) -> u64 {
    raw.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// A reflected CRC with all-ones init and final XOR (all three S3 CRCs), for combining.
struct Crc {
    /// The polynomial, bit-reversed, without its top term.
    poly_reflected: u64,
    /// x^0 in the reflected representation: the CRC's top bit.
    one: u64,
    /// The CRC of no bytes: 0 for these CRCs (init and final XOR cancel).
    empty: u64,
    /// `x_pow[k]` = x^(2^k) mod P.
    x_pow: [u64; 64],
}

impl Crc {
    fn of(algorithm: ChecksumAlgorithm) -> Option<Crc> {
        let (poly_reflected, width) = match algorithm {
            ChecksumAlgorithm::Crc32 => (0xEDB8_8320, 32),
            ChecksumAlgorithm::Crc32c => (0x82F6_3B78, 32),
            ChecksumAlgorithm::Crc64Nvme => (0x9A6C_9329_AC4B_C9B5, 64),
            ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => return None,
        };
        let mut crc = Crc { poly_reflected, one: 1 << (width - 1), empty: 0, x_pow: [0; 64] };
        let mut p = crc.one >> 1; // x^1
        for k in 0..64 {
            crc.x_pow[k] = p;
            p = crc.mul(p, p);
        }
        Some(crc)
    }

    /// a·b mod P, both reflected (zlib's `multmodp`).
    fn mul(&self, a: u64, mut b: u64) -> u64 {
        let mut m = self.one;
        let mut product = 0;
        while m != 0 {
            if a & m != 0 {
                product ^= b;
                if a & (m - 1) == 0 {
                    break;
                }
            }
            m >>= 1;
            b = if b & 1 != 0 { (b >> 1) ^ self.poly_reflected } else { b >> 1 };
        }
        product
    }

    /// x^(8·bytes) mod P (zlib's `x2nmodp(bytes, 3)`).
    fn x_pow_bytes(&self, bytes: u64) -> u64 {
        let mut p = self.one;
        let mut n = bytes;
        let mut k = 3;
        while n != 0 {
            if n & 1 != 0 {
                p = self.mul(self.x_pow[k], p);
            }
            n >>= 1;
            k += 1;
        }
        p
    }

    /// CRC(A || B) from CRC(A), CRC(B) and B's length.
    fn combine(&self, crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
        self.mul(self.x_pow_bytes(len_b), crc_a) ^ crc_b
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn digest(algorithm: ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
        let mut c = Checksummer::new(algorithm);
        c.update(data);
        c.finish_bytes()
    }

    /// Builds the object value of `parts` as an upload of `algorithm`/`kind` would.
    fn check(algorithm: ChecksumAlgorithm, kind: ChecksumType, parts: &[&[u8]], expected: &str) {
        let digests: Vec<Vec<u8>> = parts.iter().map(|p| digest(algorithm, p)).collect();
        let pairs: Vec<(&[u8], u64)> = digests.iter().zip(parts).map(|(d, p)| (d.as_slice(), p.len() as u64)).collect();
        assert_eq!(UploadChecksum { algorithm, kind }.object_value(&pairs), expected, "{algorithm:?} {kind:?}");
    }

    #[test]
    fn s3_tests_vectors() {
        // ceph/s3-tests test_multipart_use_cksum_helper_*: three parts of 5 MiB of 'A', 'B', 'C'
        // (the CRC32 and SHA values checked again with Python's zlib and hashlib).
        let parts: Vec<Vec<u8>> = [b'A', b'B', b'C'].iter().map(|&c| vec![c; 5 << 20]).collect();
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        check(ChecksumAlgorithm::Crc32, ChecksumType::FullObject, &parts, "WgDhBQ==");
        check(ChecksumAlgorithm::Crc32c, ChecksumType::FullObject, &parts, "xU+Krw==");
        check(ChecksumAlgorithm::Crc64Nvme, ChecksumType::FullObject, &parts, "i+6LR0y3eFo=");
        check(ChecksumAlgorithm::Sha1, ChecksumType::Composite, &parts, "sizjvY4eud3MrcHdZM3cQ/ol39o=-3");
        check(ChecksumAlgorithm::Sha256, ChecksumType::Composite, &parts, "uWBwpe1dxI4Vw8Gf0X9ynOdw/SS6VBzfWm9giiv1sf4=-3");
    }

    #[test]
    fn composite_small() {
        // Python: base64(zlib.crc32(b''.join(crc32(p).to_bytes(4, 'big') ...))) and hashlib.sha256 likewise.
        let parts: [&[u8]; 3] = [b"hello ", b"multipart ", b"world"];
        check(ChecksumAlgorithm::Crc32, ChecksumType::Composite, &parts, "J7mL2w==-3");
        check(ChecksumAlgorithm::Sha256, ChecksumType::Composite, &parts, "UYV0bcwuzEmGPOgFo9nkcueJF+Ch/ne/cVDrBOSh85s=-3");
        // Python: base64(zlib.crc32(b'hello multipart world')).
        check(ChecksumAlgorithm::Crc32, ChecksumType::FullObject, &parts, "KeSq5w==");
    }

    #[test]
    fn combine_equals_whole_buffer() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for algorithm in [ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Crc64Nvme] {
            let whole = from_be(&digest(algorithm, &data));
            for cuts in [vec![0, 100_000], vec![1, 2, 3, 99_999], vec![0, 0, 50_000, 50_000], vec![4096, 65_536, 65_537]] {
                let crc = Crc::of(algorithm).unwrap();
                let mut at = 0;
                let mut got = crc.empty;
                for end in cuts.into_iter().chain([data.len()]) {
                    got = crc.combine(got, from_be(&digest(algorithm, &data[at..end])), (end - at) as u64);
                    at = end;
                }
                assert_eq!(got, whole, "{algorithm:?}");
            }
        }
    }

    #[test]
    fn upload_headers() {
        let ok = |a: Option<&str>, t: Option<&str>| UploadChecksum::from_headers(a, t).unwrap();
        let refused = |a: Option<&str>, t: Option<&str>| UploadChecksum::from_headers(a, t).unwrap_err().code;
        use ChecksumAlgorithm as A;
        use ChecksumType as T;
        assert_eq!(ok(None, None), None);
        assert_eq!(ok(Some("CRC32"), None), Some(UploadChecksum { algorithm: A::Crc32, kind: T::Composite }));
        assert_eq!(ok(Some("crc32c"), Some("FULL_OBJECT")), Some(UploadChecksum { algorithm: A::Crc32c, kind: T::FullObject }));
        assert_eq!(ok(Some("CRC64NVME"), None), Some(UploadChecksum { algorithm: A::Crc64Nvme, kind: T::FullObject }));
        assert_eq!(ok(Some("SHA256"), Some("COMPOSITE")), Some(UploadChecksum { algorithm: A::Sha256, kind: T::Composite }));
        assert_eq!(refused(Some("SHA1"), Some("FULL_OBJECT")), ErrorCode::InvalidRequest);
        assert_eq!(refused(Some("CRC64NVME"), Some("COMPOSITE")), ErrorCode::InvalidRequest);
        assert_eq!(refused(Some("MD5"), None), ErrorCode::InvalidRequest);
        assert_eq!(refused(Some("CRC32"), Some("PARTIAL")), ErrorCode::InvalidRequest);
        assert_eq!(refused(None, Some("COMPOSITE")), ErrorCode::InvalidRequest);
    }

    #[test]
    fn kinds_of_values() {
        assert_eq!(kind_of_value("J7mL2w==-3"), ChecksumType::Composite);
        assert_eq!(kind_of_value("KeSq5w=="), ChecksumType::FullObject);
        assert_eq!(kind_of_value("+/9="), ChecksumType::FullObject);
    }
}
