#![no_main]
// Placeholder until the codec exists; replaced by the module's owner.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = data;
});
