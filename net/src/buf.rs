//! [`RecvBuf`]: the read buffer of one connection. Bytes arrive at the tail, the parser takes them
//! from the head with [`RecvBuf::consume`], and the unconsumed rest moves to the front only when
//! that copies less than it frees.
//!
//! The storage is a heap box, not arena memory: IORING_OP_RECV has no fixed-buffer mode, and a
//! connection's buffer lives as long as the connection, which would pin arena slots. For a
//! receive the box moves into the ring op (its heap address does not change when the box moves)
//! and comes back with the completion; if the receive is abandoned, the box stays with the op
//! until the kernel is done with it, and the `RecvBuf` gets fresh storage on its next receive.

/// Capacity of [`RecvBuf::new`]: room for any request head we accept plus a chunk of body.
pub const RECV_BUF_CAPACITY_BYTES: usize = 64 << 10;
/// Largest capacity of a `RecvBuf`: one receive is at most this, and the kernel takes a u32.
pub const RECV_BUF_CAPACITY_MAX_BYTES: usize = 16 << 20;

const _: () = assert!(RECV_BUF_CAPACITY_BYTES <= RECV_BUF_CAPACITY_MAX_BYTES);
const _: () = assert!(RECV_BUF_CAPACITY_MAX_BYTES <= u32::MAX as usize);

/// A connection's receive buffer of fixed capacity. `filled()` is what arrived and was not yet
/// consumed.
pub struct RecvBuf {
    /// `None` only while a receive holds it, or after a receive was abandoned.
    storage: Option<Box<[u8]>>,
    capacity_bytes: usize,
    /// Filled bytes are `storage[start..end]`.
    start: usize,
    end: usize,
}

impl Default for RecvBuf {
    fn default() -> Self {
        RecvBuf::new()
    }
}

impl RecvBuf {
    pub fn new() -> RecvBuf {
        RecvBuf::with_capacity(RECV_BUF_CAPACITY_BYTES)
    }

    pub fn with_capacity(capacity_bytes: usize) -> RecvBuf {
        assert!(capacity_bytes > 0, "a RecvBuf needs room for at least one byte");
        assert!(capacity_bytes <= RECV_BUF_CAPACITY_MAX_BYTES, "RecvBuf of {capacity_bytes} bytes beyond {RECV_BUF_CAPACITY_MAX_BYTES}");
        RecvBuf { storage: Some(vec![0; capacity_bytes].into_boxed_slice()), capacity_bytes, start: 0, end: 0 }
    }

    pub fn capacity(&self) -> usize {
        self.capacity_bytes
    }

    /// The received bytes not yet consumed.
    pub fn filled(&self) -> &[u8] {
        match &self.storage {
            Some(s) => &s[self.start..self.end],
            None => &[],
        }
    }

    pub fn len(&self) -> usize {
        if self.storage.is_none() { 0 } else { self.end - self.start }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// No room for another byte: the caller must consume before receiving again.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity_bytes
    }

    /// Drops the first `n` filled bytes (the parser used them).
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.len(), "consume {n} of {} filled bytes", self.len());
        self.start += n;
        if self.start == self.end {
            // Empty: start over at the front for free.
            self.start = 0;
            self.end = 0;
        }
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Moves the filled bytes to the front when the tail is full, or when moving them copies
    /// fewer bytes than it frees (amortized: each byte moves at most once per byte consumed).
    fn compact(&mut self, storage: &mut [u8]) {
        // Not `len()`: the storage is out of `self` here.
        let filled = self.end - self.start;
        let tail_room = self.capacity_bytes - self.end;
        if self.start == 0 || (tail_room > 0 && filled >= self.start) {
            return;
        }
        storage.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    /// Takes the storage out for a receive into its tail. Returns it and the tail's offset.
    /// Lets `fill` write into the free tail (compacting first if that pays, as a receive
    /// does); `fill` returns how many bytes it wrote. The buffer must not be full.
    pub(crate) fn fill_with<E>(&mut self, fill: impl FnOnce(&mut [u8]) -> Result<usize, E>) -> Result<usize, E> {
        let (mut storage, offset) = self.take_for_recv();
        let result = fill(&mut storage[offset..]);
        let written = *result.as_ref().unwrap_or(&0);
        self.put_back(storage, written);
        result
    }

    pub(crate) fn take_for_recv(&mut self) -> (Box<[u8]>, usize) {
        assert!(!self.is_full(), "receive into a full RecvBuf ({} bytes): consume first", self.capacity_bytes);
        let mut storage = match self.storage.take() {
            Some(s) => s,
            // The last receive was abandoned with the storage; its bytes are gone with it.
            None => {
                self.clear();
                vec![0; self.capacity_bytes].into_boxed_slice()
            }
        };
        self.compact(&mut storage);
        assert!(self.end < self.capacity_bytes, "compaction left no tail room");
        (storage, self.end)
    }

    /// Gives the storage back after the receive's completion, with `received` new bytes.
    pub(crate) fn put_back(&mut self, storage: Box<[u8]>, received: usize) {
        assert!(self.storage.is_none(), "RecvBuf got storage back twice");
        assert_eq!(storage.len(), self.capacity_bytes, "RecvBuf got foreign storage back");
        assert!(self.end + received <= self.capacity_bytes, "receive of {received} bytes overran the tail at {}", self.end);
        self.storage = Some(storage);
        self.end += received;
    }

    #[cfg(test)]
    fn fill_for_test(&mut self, bytes: &[u8]) {
        let (mut storage, offset) = self.take_for_recv();
        storage[offset..offset + bytes.len()].copy_from_slice(bytes);
        self.put_back(storage, bytes.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills `fill` bytes, consumes `consume`, then prepares a receive: checks the tail offset the
    /// receive would use and that the filled bytes survived the compaction.
    fn check(capacity: usize, fill: usize, consume: usize, expected_offset: usize) {
        let mut buf = RecvBuf::with_capacity(capacity);
        let bytes: Vec<u8> = (0..fill).map(|i| i as u8).collect();
        buf.fill_for_test(&bytes);
        buf.consume(consume);
        let (storage, offset) = buf.take_for_recv();
        assert_eq!(offset, expected_offset, "capacity {capacity} fill {fill} consume {consume}");
        buf.put_back(storage, 0);
        assert_eq!(buf.filled(), &bytes[consume..]);
    }

    #[test]
    fn compacts_only_when_it_pays() {
        check(16, 0, 0, 0);
        check(16, 8, 0, 8);
        // Consumed everything: back at the front without a copy.
        check(16, 8, 8, 0);
        // 6 left, 2 freed: not worth a copy while the tail has room.
        check(16, 8, 2, 8);
        // 2 left, 6 freed: compact.
        check(16, 8, 6, 2);
        // Tail full: compact whatever is left.
        check(16, 16, 1, 15);
        check(16, 16, 15, 1);
    }

    #[test]
    fn abandoned_storage_is_replaced_and_its_bytes_are_gone() {
        let mut buf = RecvBuf::with_capacity(8);
        buf.fill_for_test(b"abc");
        let (lost, _) = buf.take_for_recv();
        drop(lost);
        assert_eq!(buf.filled(), b"");
        assert_eq!(buf.len(), 0);
        let (storage, offset) = buf.take_for_recv();
        assert_eq!(offset, 0);
        assert_eq!(storage.len(), 8);
        buf.put_back(storage, 0);
        assert!(buf.is_empty());
    }

    #[test]
    #[should_panic(expected = "full RecvBuf")]
    fn receiving_into_a_full_buffer_asserts() {
        let mut buf = RecvBuf::with_capacity(4);
        buf.fill_for_test(b"abcd");
        let _ = buf.take_for_recv();
    }

    #[test]
    #[should_panic(expected = "consume 5 of 4")]
    fn consuming_more_than_filled_asserts() {
        let mut buf = RecvBuf::with_capacity(8);
        buf.fill_for_test(b"abcd");
        buf.consume(5);
    }
}
