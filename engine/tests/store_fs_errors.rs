//! Disk full and a filesystem gone read-only, on a real ext4 in a loop-mounted image: the
//! writer gets a clear error with its errno, reads keep working, nothing acknowledged is lost.
//! Needs root (mount); fails loudly otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use engine::store::{Store, StoreConfig, StoreError};
use engine::{ArenaConfig, ClassConfig, RuntimeConfig, SECTOR_SIZE};

/// A small ext4 mounted for the test's lifetime.
struct LoopFs {
    mount: PathBuf,
    image: PathBuf,
}

fn sh(cmd: &str, args: &[&str]) {
    let out =
        Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e} (this test needs root and e2fsprogs/util-linux)"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl LoopFs {
    fn new(name: &str, size_mib: u64) -> LoopFs {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("loopfs");
        std::fs::create_dir_all(&base).expect("dir");
        let image = base.join(format!("{name}.img"));
        let mount = base.join(name);
        let _ = Command::new("umount").arg(&mount).output();
        let _ = std::fs::remove_file(&image);
        std::fs::create_dir_all(&mount).expect("mount point");
        let f = std::fs::File::create(&image).expect("image");
        f.set_len(size_mib << 20).expect("size");
        let image_s = image.to_str().expect("utf8 path");
        sh("mkfs.ext4", &["-q", "-F", image_s]);
        let fs = LoopFs { mount, image };
        fs.mount();
        fs
    }

    fn mount(&self) {
        let (image, mount) = (self.image.to_str().expect("utf8"), self.mount.to_str().expect("utf8"));
        // errors=remount-ro: on a filesystem error ext4 turns read-only, as production mounts do.
        sh("mount", &["-o", "loop,errors=remount-ro", image, mount]);
    }

    /// Makes ext4 report an internal error, which (errors=remount-ro) turns it read-only under
    /// the open files, as a failing disk's metadata would.
    fn fail_read_only(&self) {
        let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
        let mount = self.mount.to_str().expect("utf8");
        let dev = mounts.lines().find(|l| l.split(' ').nth(1) == Some(mount)).and_then(|l| l.split(' ').next()).expect("our mount");
        let dev = Path::new(dev).file_name().expect("device name").to_str().expect("utf8");
        std::fs::write(format!("/sys/fs/ext4/{dev}/trigger_fs_error"), "1").expect("trigger ext4 error");
    }

    /// Unmounts, repairs and mounts again read-write.
    fn repair(&self) {
        sh("umount", &[self.mount.to_str().expect("utf8")]);
        let out = Command::new("e2fsck").args(["-fy"]).arg(&self.image).output().expect("e2fsck");
        // 0: clean, 1: errors corrected.
        assert!(matches!(out.status.code(), Some(0) | Some(1)), "e2fsck: {}", String::from_utf8_lossy(&out.stdout));
        self.mount();
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).output();
    }
}

fn runtime() -> RuntimeConfig {
    let mut c = RuntimeConfig::cores(1).expect("core");
    c.arena =
        ArenaConfig { classes: vec![ClassConfig { size_bytes: SECTOR_SIZE, count: 64 }, ClassConfig { size_bytes: 64 << 10, count: 16 }] };
    c
}

fn config(dir: &Path) -> StoreConfig {
    StoreConfig { dir: dir.to_path_buf(), segment_bytes: 4 << 20, batch_bytes: 64 << 10 }
}

fn value(i: u32) -> Vec<u8> {
    vec![i as u8; 50_000]
}

/// Puts until one fails; returns (acknowledged count, the error).
async fn fill(store: &Store<engine::LinuxEnv>, limit: u32) -> (u32, Option<StoreError>) {
    for i in 0..limit {
        if let Err(e) = store.put(b"b", format!("k{i}").as_bytes(), b"", &value(i)).await {
            return (i, Some(e));
        }
    }
    (limit, None)
}

async fn check_all(store: &Store<engine::LinuxEnv>, n: u32) {
    for i in 0..n {
        let got = store.get(b"b", format!("k{i}").as_bytes()).await.expect("get").expect("acknowledged object present");
        assert_eq!(got.data(), value(i), "k{i}");
    }
}

#[test]
fn disk_full_is_a_clear_error_and_loses_nothing() {
    let fs = LoopFs::new("full", 16);
    let dir = fs.mount.join("store");
    let acked = engine::run(runtime(), |core: engine::Core<()>| {
        let dir = dir.clone();
        async move {
            let (store, _) = Store::open(core.env.clone(), config(&dir)).await.expect("open");
            let (acked, err) = fill(&store, 10_000).await;
            let err = err.expect("a 16 MiB filesystem fills up");
            assert_eq!(err.errno(), Some(libc::ENOSPC), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("put b/k") && msg.contains("No space left"), "error names the operation, object and cause: {msg}");
            // Still serving reads, and still answering writes with the same clear error.
            check_all(&store, acked).await;
            let again = store.put(b"b", b"more", b"", &value(0)).await.expect_err("still full");
            assert_eq!(again.errno(), Some(libc::ENOSPC), "{again}");
            // The checkpoint written at close may not fit on a full disk; that is an error too.
            if let Err(e) = store.close().await {
                assert_eq!(e.errno(), Some(libc::ENOSPC), "{e}");
            }
            acked
        }
    })
    .expect("runtime")[0];
    assert!(acked > 100, "only {acked} puts before ENOSPC");
    // Reopen: everything acknowledged is there.
    engine::run(runtime(), |core: engine::Core<()>| {
        let dir = dir.clone();
        async move {
            let (store, _) = Store::open(core.env.clone(), config(&dir)).await.expect("reopen after ENOSPC");
            check_all(&store, acked).await;
        }
    })
    .expect("runtime");
}

#[test]
fn read_only_filesystem_stops_writes_keeps_reads() {
    let fs = LoopFs::new("readonly", 32);
    let dir = fs.mount.join("store");
    let acked = engine::run(runtime(), |core: engine::Core<()>| {
        let (dir, fs) = (dir.clone(), &fs);
        async move {
            let (store, _) = Store::open(core.env.clone(), config(&dir)).await.expect("open");
            let (acked, err) = fill(&store, 40).await;
            assert!(err.is_none(), "{err:?}");
            fs.fail_read_only();
            let err = store.put(b"b", b"late", b"", &value(1)).await.expect_err("read-only filesystem");
            assert_eq!(err.errno(), Some(libc::EROFS), "{err}");
            assert!(err.to_string().contains("put b/late"), "{err}");
            let next = store.put(b"b", b"later", b"", &value(1)).await.expect_err("writes stay stopped");
            assert!(matches!(next, StoreError::Failed { .. }), "{next}");
            check_all(&store, acked).await;
            acked
        }
    })
    .expect("runtime")[0];
    fs.repair();
    engine::run(runtime(), |core: engine::Core<()>| {
        let dir = dir.clone();
        async move {
            let (store, _) = Store::open(core.env.clone(), config(&dir)).await.expect("reopen read-write");
            check_all(&store, acked).await;
            assert!(store.get(b"b", b"late").await.expect("get").is_none(), "the failed put is not there");
        }
    })
    .expect("runtime");
}
