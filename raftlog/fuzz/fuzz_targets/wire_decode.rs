//! Any bytes as a message body from a peer (what `TcpTransport` hands the decoder after the
//! length prefix): no panic; a message it accepts encodes to a frame whose length prefix says
//! its size and whose body decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftlog::wire;

fuzz_target!(|bytes: &[u8]| {
    let _ = wire::frame_len(bytes);
    let Ok(message) = wire::decode(bytes) else { return };
    let mut out = Vec::new();
    wire::encode(&message, &mut out);
    assert_eq!(wire::frame_len(&out), Ok(Some(out.len())), "the prefix says the frame's size");
    assert_eq!(wire::decode(&out[wire::LENGTH_BYTES..]).as_ref(), Ok(&message), "encode then decode changed the message");
});
