//! Any bytes given to the frame decoder: no panic; a frame it accepts re-encodes to the same bytes
//! (in its own format), and its head decodes alone to the same header, key and metadata.
#![no_main]

use engine::store::record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(frame) = record::decode(bytes) else { return };
    let len = frame.header.frame_len as usize;
    let mut out = vec![0u8; len];
    record::encode(&frame.header, frame.key, frame.meta, frame.data, &mut out);
    // The checksum does not cover the padding, so compare header and payload only.
    let covered = frame.header.header_bytes() + frame.header.payload_len();
    assert_eq!(&out[..covered], &bytes[..covered], "decode then encode changed the frame");
    let head = record::decode_head(&bytes[..frame.header.head_len()]).expect("a valid frame's head is valid");
    assert_eq!((head.header, head.key, head.meta), (frame.header, frame.key, frame.meta));
});
