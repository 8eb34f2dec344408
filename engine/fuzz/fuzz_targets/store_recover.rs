//! Arbitrary bytes as a segment file and as an index checkpoint, then a full start-up in the
//! simulator: recovery must end in a store or a clear error, never a panic, and every object
//! it lists must read back or fail with a clear error.
#![no_main]

use std::path::Path;

use engine::arena::{ArenaConfig, ClassConfig};
use engine::sim::{FaultConfig, SimEnv, SimWorld};
use engine::store::{Store, StoreConfig};
use engine::{Env, Executor, File, OpenMode, SECTOR_SIZE, Storage};
use libfuzzer_sys::fuzz_target;

async fn write_file(env: &SimEnv, path: &Path, bytes: &[u8]) {
    let file = env.storage().open(path, OpenMode::Truncate).expect("create");
    let mut offset = 0u64;
    for chunk in bytes.chunks(32 << 10) {
        let len = chunk.len().next_multiple_of(SECTOR_SIZE);
        let mut buf = env.storage().alloc(len).expect("buffer");
        buf.set_len(len);
        buf.as_mut_slice()[..chunk.len()].copy_from_slice(chunk);
        buf.as_mut_slice()[chunk.len()..].fill(0);
        let (r, _) = file.write_at(buf, offset).await;
        r.expect("write");
        offset += len as u64;
    }
    file.sync_data().await.expect("sync");
}

/// Input: `0 | segment bytes`, or `1 | u32 checkpoint length | checkpoint | segment`.
fn split(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.split_first() {
        Some((1, rest)) if rest.len() >= 4 => {
            let n = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize % (rest.len() - 4 + 1);
            (&rest[4 + n..], Some(&rest[4..4 + n]))
        }
        Some((_, rest)) => (rest, None),
        None => (data, None),
    }
}

fuzz_target!(|data: &[u8]| {
    let (segment, checkpoint) = split(data);
    let world = SimWorld::new(1, FaultConfig::none());
    let arena = ArenaConfig { classes: vec![ClassConfig { size_bytes: SECTOR_SIZE, count: 16 }, ClassConfig { size_bytes: 32 << 10, count: 16 }] };
    let env = SimEnv::new(world.clone(), &arena);
    let executor = Executor::new(world);
    executor.block_on(async {
        write_file(&env, Path::new("/s/seg-00000001.log"), segment).await;
        if let Some(checkpoint) = checkpoint {
            write_file(&env, Path::new("/s/index.ckpt"), checkpoint).await;
        }
        let config = StoreConfig { dir: "/s".into(), segment_bytes: 1 << 20, batch_bytes: 32 << 10 };
        let Ok((store, _)) = Store::open(env.clone(), config).await else { return };
        for bucket in [&b""[..], b"b"] {
            for listed in store.list(bucket, b"", None, 100) {
                let _ = store.get(bucket, &listed.key).await;
            }
        }
        let _ = store.put(b"b", b"after", b"", b"x").await;
    });
});
