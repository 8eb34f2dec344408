//! Large objects: chunks and the manifest that names them.
//!
//! An object too large for one record is written as chunks, each an ordinary `Put` record in the
//! internal bucket [`CHUNK_BUCKET`] under the key `id (u64 BE) | chunk number (u32 BE)`, and then
//! committed by one `Manifest` record under the object's own key. The manifest lists extents:
//! runs of chunks of one id (a single upload is one extent; a multipart object is one extent
//! per part). Chunks are never shared by two live manifests: ownership moves (an upload's parts
//! become the completed object's extents) or ends with a `DropChunks` record in the same batch as
//! the manifest's replacement, so a crash never leaves a manifest without its chunks.
//!
//! Byte format of a manifest (the data of a `Manifest` record), little-endian:
//! `u32 version (1) | u64 size | u32 extents | extents × (u64 id | u64 bytes | u32 chunk_bytes)`.

/// The internal bucket holding chunks. User bucket names never start with a zero byte.
pub const CHUNK_BUCKET: &[u8] = b"\0chunks";
/// Manifest format version.
const VERSION: u32 = 1;
/// Extents one manifest may list: S3's 10,000 parts.
pub const EXTENTS_MAX: usize = 10_000;
const EXTENT_BYTES: usize = 8 + 8 + 4;
const HEAD_BYTES: usize = 4 + 8 + 4;

/// Whether `bucket` is internal to the store (never a user bucket).
pub fn is_internal_bucket(bucket: &[u8]) -> bool {
    bucket.first() == Some(&0)
}

/// A run of chunks of one id: `bytes` of data in chunks of `chunk_bytes` (the last may be
/// shorter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub id: u64,
    pub bytes: u64,
    pub chunk_bytes: u32,
}

impl Extent {
    pub fn chunks(&self) -> u32 {
        u32::try_from(self.bytes.div_ceil(self.chunk_bytes as u64)).expect("chunk count fits u32")
    }
}

/// The key of chunk `n` of `id` in [`CHUNK_BUCKET`].
pub fn chunk_key(id: u64, n: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&id.to_be_bytes());
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

/// The id a chunk key belongs to.
pub fn chunk_id(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(..8)?.try_into().ok()?))
}

/// A decoded manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub size: u64,
    pub extents: Vec<Extent>,
}

/// One piece of a read: `len` bytes from `skip` into chunk `n` of `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRead {
    pub id: u64,
    pub n: u32,
    pub skip: u64,
    pub len: u64,
}

impl Manifest {
    pub fn new(extents: Vec<Extent>) -> Manifest {
        assert!(extents.len() <= EXTENTS_MAX, "{} extents exceed {EXTENTS_MAX}", extents.len());
        for e in &extents {
            assert!(e.chunk_bytes > 0, "extent {} has zero-byte chunks", e.id);
        }
        Manifest { size: extents.iter().map(|e| e.bytes).sum(), extents }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD_BYTES + self.extents.len() * EXTENT_BYTES);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&(self.extents.len() as u32).to_le_bytes());
        for e in &self.extents {
            out.extend_from_slice(&e.id.to_le_bytes());
            out.extend_from_slice(&e.bytes.to_le_bytes());
            out.extend_from_slice(&e.chunk_bytes.to_le_bytes());
        }
        out
    }

    /// Decodes and validates a manifest; `None` if the bytes are not one (the record's checksum
    /// passed, so this means a bug or a format we do not know).
    pub fn decode(bytes: &[u8]) -> Option<Manifest> {
        let u32_at = |o: usize| Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
        let u64_at = |o: usize| Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
        if u32_at(0)? != VERSION {
            return None;
        }
        let size = u64_at(4)?;
        let count = u32_at(12)? as usize;
        if count > EXTENTS_MAX || bytes.len() != HEAD_BYTES + count * EXTENT_BYTES {
            return None;
        }
        let mut extents = Vec::with_capacity(count);
        for i in 0..count {
            let at = HEAD_BYTES + i * EXTENT_BYTES;
            let e = Extent { id: u64_at(at)?, bytes: u64_at(at + 8)?, chunk_bytes: u32_at(at + 16)? };
            if e.chunk_bytes == 0 || e.bytes.div_ceil(e.chunk_bytes as u64) > u32::MAX as u64 {
                return None;
            }
            extents.push(e);
        }
        let total = extents.iter().try_fold(0u64, |sum, e| sum.checked_add(e.bytes))?;
        (total == size).then_some(Manifest { size, extents })
    }

    /// The decoded size of a manifest record's data without decoding the extents.
    pub fn size_of(bytes: &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?))
    }

    /// The chunk reads that return bytes `[start, end)` of the object, in order.
    pub fn reads(&self, start: u64, end: u64) -> Vec<ChunkRead> {
        assert!(start <= end && end <= self.size, "range {start}..{end} outside an object of {} bytes", self.size);
        let mut reads = Vec::new();
        let mut base = 0u64;
        for e in &self.extents {
            let (lo, hi) = (start.max(base), end.min(base + e.bytes));
            let chunk = e.chunk_bytes as u64;
            let mut at = lo;
            while at < hi {
                let within = at - base;
                let n = within / chunk;
                let skip = within % chunk;
                let len = (chunk - skip).min(hi - at);
                reads.push(ChunkRead { id: e.id, n: n as u32, skip, len });
                at += len;
            }
            base += e.bytes;
        }
        reads
    }
}

/// Encodes a `DropChunks` record's data.
pub fn encode_ids(ids: &[u64]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_be_bytes()).collect()
}

/// Decodes a `DropChunks` record's data.
pub fn decode_ids(bytes: &[u8]) -> Option<Vec<u64>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(bytes.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes"))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_cover_a_range_across_extents() {
        let m = Manifest::new(vec![Extent { id: 7, bytes: 10, chunk_bytes: 4 }, Extent { id: 9, bytes: 5, chunk_bytes: 8 }]);
        assert_eq!(m.size, 15);
        assert_eq!(
            m.reads(3, 13),
            vec![
                ChunkRead { id: 7, n: 0, skip: 3, len: 1 },
                ChunkRead { id: 7, n: 1, skip: 0, len: 4 },
                ChunkRead { id: 7, n: 2, skip: 0, len: 2 },
                ChunkRead { id: 9, n: 0, skip: 0, len: 3 },
            ]
        );
        assert_eq!(m.reads(15, 15), vec![]);
    }

    #[test]
    fn decode_refuses_a_size_that_disagrees() {
        let mut bytes = Manifest::new(vec![Extent { id: 1, bytes: 10, chunk_bytes: 4 }]).encode();
        bytes[4] = 11;
        assert_eq!(Manifest::decode(&bytes), None);
    }

    proptest! {
        #[test]
        fn encode_decode_and_reads_partition_the_object(
            parts in proptest::collection::vec((1u64..50, 1u32..9), 0..6),
            a in 0u64..300, b in 0u64..300,
        ) {
            let extents: Vec<Extent> = parts.iter().enumerate().map(|(i, (bytes, chunk))| Extent { id: i as u64, bytes: *bytes, chunk_bytes: *chunk }).collect();
            let m = Manifest::new(extents);
            prop_assert_eq!(Manifest::decode(&m.encode()), Some(m.clone()));
            prop_assert_eq!(Manifest::size_of(&m.encode()), Some(m.size));
            let (start, end) = (a.min(b).min(m.size), a.max(b).min(m.size));
            let reads = m.reads(start, end);
            prop_assert_eq!(reads.iter().map(|r| r.len).sum::<u64>(), end - start);
            for r in &reads {
                let e = m.extents.iter().find(|e| e.id == r.id).unwrap();
                prop_assert!(r.len > 0 && r.skip + r.len <= e.chunk_bytes as u64);
                prop_assert!(r.n < e.chunks());
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Manifest::decode(&bytes);
            let _ = decode_ids(&bytes);
        }
    }
}
