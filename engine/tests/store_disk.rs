//! The store on the real kernel and filesystem: what it writes reads back after reopen, a torn
//! tail is cut, damage to synced data is refused with its location, a corrupted record is never
//! returned as data.

use std::future::Future;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use engine::arena::{ArenaConfig, ClassConfig};
use engine::store::{CompactionPolicy, RecoveryReport, Store, StoreConfig, StoreError};
use engine::{LinuxEnv, RuntimeConfig, SECTOR_SIZE};

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("store-disk").join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn runtime() -> RuntimeConfig {
    let mut c = RuntimeConfig::cores(1).expect("one core");
    c.arena =
        ArenaConfig { classes: vec![ClassConfig { size_bytes: SECTOR_SIZE, count: 256 }, ClassConfig { size_bytes: 64 << 10, count: 16 }] };
    c
}

fn config(dir: &Path) -> StoreConfig {
    StoreConfig { dir: dir.to_path_buf(), segment_bytes: 1 << 20, batch_bytes: 64 << 10 }
}

/// Runs `test` on one core with the store in `config.dir` open (recovering what is there) and
/// returns what it returns.
fn with_store<T: Send, Fut: Future<Output = T>>(config: StoreConfig, test: impl Fn(Store<LinuxEnv>) -> Fut + Sync) -> T {
    let out = engine::run(runtime(), |core: engine::Core<()>| {
        let (config, test) = (config.clone(), &test);
        async move {
            let (store, _) = Store::open(core.env.clone(), config).await.expect("open");
            test(store).await
        }
    })
    .expect("runtime");
    out.into_iter().next().expect("one core")
}

fn data(i: u32) -> Vec<u8> {
    (0..(i as usize * 37) % 9000).map(|j| (i as usize + j) as u8).collect()
}

/// Writes `n` objects, `concurrent` at a time; returns the store's bytes written.
fn write(dir: &Path, n: u32, concurrent: bool) -> u64 {
    let out = engine::run(runtime(), |core: engine::Core<()>| {
        let dir = dir.to_path_buf();
        async move {
            let (store, _) = Store::open(core.env.clone(), config(&dir)).await.expect("open");
            if concurrent {
                let tasks: Vec<_> = (0..n)
                    .map(|i| {
                        let s = store.clone();
                        engine::spawn(async move { s.put(b"b", format!("k{i}").as_bytes(), b"m", &data(i)).await.expect("put") })
                    })
                    .collect();
                for t in tasks {
                    t.await;
                }
            } else {
                for i in 0..n {
                    store.put(b"b", format!("k{i}").as_bytes(), b"m", &data(i)).await.expect("put");
                }
            }
            // No close: end as a crash would, without an index checkpoint, so reopening
            // exercises the log scan.
            store.stats().bytes_written
        }
    })
    .expect("runtime");
    out[0]
}

/// Reopens and reads everything back; returns the recovery report, or the open error.
fn reopen_and_check(dir: &Path, n: u32) -> Result<RecoveryReport, String> {
    let out = engine::run(runtime(), |core: engine::Core<()>| {
        let dir = dir.to_path_buf();
        async move {
            let (store, report) = Store::open(core.env.clone(), config(&dir)).await.map_err(|e| e.to_string())?;
            for i in 0..n {
                let got = store.get(b"b", format!("k{i}").as_bytes()).await.map_err(|e| e.to_string())?;
                let got = got.ok_or(format!("k{i} missing"))?;
                if got.data() != data(i) || got.meta() != b"m" {
                    return Err(format!("k{i} read back wrong"));
                }
            }
            Ok(report)
        }
    })
    .expect("runtime");
    out.into_iter().next().expect("one core")
}

fn segment(dir: &Path) -> PathBuf {
    dir.join("seg-00000001.log")
}

#[test]
fn concurrent_puts_share_syncs_and_read_back_after_reopen() {
    let d = dir("concurrent");
    write(&d, 500, true);
    let report = reopen_and_check(&d, 500).expect("reopen");
    assert_eq!(report.records, 500);
    assert!(report.batches < 500, "500 concurrent puts should share batches, got {}", report.batches);
    assert_eq!(report.cut_at, None);
}

#[test]
fn torn_tail_is_cut_and_nothing_acknowledged_is_lost() {
    let d = dir("torn");
    let tail = write(&d, 50, false);
    // A frame of a batch that never finished: the first sector of a copy of frame 1, placed at
    // the tail with a broken checksum.
    let f = std::fs::OpenOptions::new().read(true).write(true).open(segment(&d)).expect("segment");
    let mut sector = vec![0u8; SECTOR_SIZE];
    f.read_exact_at(&mut sector, 0).expect("read");
    // Inside the frame's key (the checksum covers the header and the payload, not the padding).
    sector[engine::store::record::HEADER_BYTES + 1] ^= 0xFF;
    f.write_all_at(&sector, tail).expect("write torn frame");
    f.sync_all().expect("sync");
    let report = reopen_and_check(&d, 50).expect("reopen");
    assert_eq!(report.cut_at, Some((1, tail)), "cut exactly at the end of the last complete batch: {report:?}");
    assert_eq!(report.records, 50);
    // The store appends after the cut and still reads everything.
    write(&d, 60, false);
    reopen_and_check(&d, 60).expect("reopen after appending past the cut");
}

/// A segment file reused from the free pool still holds its earlier life's frames past the
/// log's end. Valid frames of batches below the log's end are that, not a torn tail: start-up
/// neither cuts there nor loses anything, and the log goes on after them.
#[test]
fn frames_of_an_earlier_life_past_the_tail_end_the_log_cleanly() {
    let d = dir("earlier-life");
    let tail = write(&d, 50, false);
    let f = std::fs::OpenOptions::new().read(true).write(true).open(segment(&d)).expect("segment");
    let mut frames = vec![0u8; 4 * SECTOR_SIZE];
    f.read_exact_at(&mut frames, 0).expect("read");
    f.write_all_at(&frames, tail).expect("write stale copies");
    f.sync_all().expect("sync");
    let report = reopen_and_check(&d, 50).expect("reopen");
    assert_eq!((report.cut_at, report.records), (None, 50), "{report:?}");
    write(&d, 60, false);
    let report = reopen_and_check(&d, 60).expect("reopen after appending over them");
    assert_eq!(report.cut_at, None, "{report:?}");
}

#[test]
fn damage_to_synced_data_refuses_to_open_and_names_the_place() {
    let d = dir("midlog");
    write(&d, 20, false);
    let f = std::fs::OpenOptions::new().read(true).write(true).open(segment(&d)).expect("segment");
    let mut b = [0u8; 1];
    // Inside the first record's key field, just past the header; padding after the payload is
    // not checksummed, on purpose.
    let at = engine::store::record::HEADER_BYTES as u64 + 2;
    f.read_exact_at(&mut b, at).expect("read");
    f.write_all_at(&[b[0] ^ 0x01], at).expect("flip one bit in the first record");
    f.sync_all().expect("sync");
    let err = reopen_and_check(&d, 20).expect_err("a flipped bit in synced data must not be cut away silently");
    assert!(err.contains("seg-00000001.log"), "{err}");
    assert!(err.contains("offset 0"), "{err}");
    assert!(err.contains("later batch"), "{err}");
}

#[test]
fn corrupted_record_is_an_error_with_location_never_data() {
    let d = dir("readcorrupt");
    let out = with_store(config(&d), |store| {
        let d = d.clone();
        async move {
            store.put(b"b", b"victim", b"m", &[7u8; 5000]).await.expect("put");
            store.put(b"b", b"bystander", b"m", &[8u8; 100]).await.expect("put");
            // Damage the victim's data on disk behind the store's back.
            let f = std::fs::OpenOptions::new().write(true).open(segment(&d)).expect("segment");
            f.write_all_at(&[0u8; 16], 1000).expect("write");
            f.sync_all().expect("sync");
            let victim = store.get(b"b", b"victim").await;
            let bystander = store.get(b"b", b"bystander").await.expect("bystander").expect("present");
            (
                victim.map(|o| o.map(|o| o.data().len())).map_err(|e| (e.to_string(), matches!(e, StoreError::Corrupt { .. }))),
                bystander.data().to_vec(),
            )
        }
    });
    let (victim, bystander) = out;
    let (msg, is_corrupt) = victim.expect_err("corrupted data must not be returned");
    assert!(is_corrupt, "{msg}");
    assert!(msg.contains("seg-00000001.log") && msg.contains("b/victim"), "error names file and object: {msg}");
    assert_eq!(bystander, vec![8u8; 100]);
}

/// A head read verifies the frame's head (header, key, metadata) on its own: damage to the data
/// leaves it answering (the metadata is still proven) while a get refuses; damage to the
/// metadata makes the head refuse too, naming the place.
#[test]
fn a_head_verifies_the_metadata_apart_from_the_data() {
    let d = dir("headcorrupt");
    let out = with_store(config(&d), |store| {
        let d = d.clone();
        async move {
            store.put(b"b", b"victim", b"meta", &[7u8; 20_000]).await.expect("put");
            let head = store.head(b"b", b"victim").await.expect("head").expect("present");
            let clean = (head.meta().to_vec(), head.size);
            drop(head);
            // The first frame of the segment: a 96-byte header, the key field (2 + 1 + 6 bytes),
            // the metadata (4), then the data from offset 109.
            let f = std::fs::OpenOptions::new().write(true).open(segment(&d)).expect("segment");
            f.write_all_at(&[0u8; 16], 109 + 12_000).expect("damage the data");
            f.sync_all().expect("sync");
            let after_data = store.head(b"b", b"victim").await.map(|h| h.map(|h| (h.meta().to_vec(), h.size)));
            let get = store.get(b"b", b"victim").await.map(|o| o.is_some());
            f.write_all_at(b"ATEM", 105).expect("damage the metadata");
            f.sync_all().expect("sync");
            let after_meta = store.head(b"b", b"victim").await.map(|h| h.map(|h| h.meta().to_vec()));
            (
                clean,
                after_data.expect("a head beside damaged data still verifies"),
                get.map_err(|e| e.to_string()),
                after_meta.map_err(|e| e.to_string()),
            )
        }
    });
    let (clean, after_data, get, after_meta) = out;
    assert_eq!(clean, (b"meta".to_vec(), 20_000));
    assert_eq!(after_data, Some(clean));
    let msg = get.expect_err("damaged data must not be returned");
    assert!(msg.contains("b/victim"), "{msg}");
    let msg = after_meta.expect_err("damaged metadata must not be returned");
    assert!(
        msg.contains("seg-00000001.log") && msg.contains("offset 0") && msg.contains("head b/victim"),
        "error names file, offset and object: {msg}"
    );
}

#[test]
fn scrubber_finds_damage_at_rest_and_names_the_place() {
    let d = dir("scrub");
    let out = with_store(config(&d), |store| {
        let d = d.clone();
        async move {
            for i in 0..30 {
                store.put(b"b", format!("k{i}").as_bytes(), b"m", &data(i)).await.expect("put");
            }
            let clean = store.scrub(u64::MAX).await.expect("scrub");
            // Damage two records at rest, behind the store's back. Each put was its own batch,
            // so record i is the i-th sector: record 3's data (after a 96-byte header, the key
            // field "b"/"k3" and the metadata "m", 102 bytes in all; it holds 111 bytes of
            // data), and record 10's header (its lsn).
            let f = std::fs::OpenOptions::new().write(true).open(segment(&d)).expect("segment");
            f.write_all_at(&[0xEE; 8], 4096 * 3 + 200).expect("write");
            f.write_all_at(&[0xEE; 8], 4096 * 10 + 8).expect("write");
            f.sync_all().expect("sync");
            let dirty = store.scrub(u64::MAX).await.expect("scrub");
            (clean, dirty, store.last_scrub())
        }
    });
    let (clean, dirty, last) = out;
    assert!(clean.corrupt.is_empty(), "{clean:?}");
    assert_eq!(clean.frames, 30);
    assert_eq!(clean.unverified_bytes, 0);
    assert_eq!(dirty.corrupt.len(), 2, "{dirty:?}");
    assert!(dirty.corrupt.iter().all(|c| c.path.ends_with("seg-00000001.log")), "{dirty:?}");
    // The first frame's head still verifies: the finding names the object whose data is bad.
    assert_eq!(dirty.corrupt[0].offset, 4096 * 3);
    assert!(dirty.corrupt[0].what.contains("b/k3"), "{dirty:?}");
    // The second one's header is damaged: the scrub finds the next good frame and goes on.
    assert_eq!(dirty.corrupt[1].offset, 4096 * 10);
    assert!(dirty.corrupt[1].what.contains("no valid frame for 4096 bytes"), "{dirty:?}");
    assert_eq!(dirty.frames, 28, "every other frame verified, after the damage too");
    assert_eq!(dirty.unverified_bytes, 4096 * 2, "the two damaged frames, a sector each");
    assert_eq!(last, Some(dirty));
}

#[test]
fn checkpoint_at_close_makes_start_up_replay_only_what_came_after() {
    let d = dir("checkpoint");
    let cfg = StoreConfig { dir: d.clone(), segment_bytes: 256 << 10, batch_bytes: 64 << 10 };
    let run = |f: fn(Store<engine::LinuxEnv>) -> std::pin::Pin<Box<dyn std::future::Future<Output = RecoveryReport>>>| {
        let cfg = cfg.clone();
        engine::run(runtime(), move |core: engine::Core<()>| {
            let cfg = cfg.clone();
            async move {
                let (store, report) = Store::open(core.env.clone(), cfg).await.expect("open");
                let _ = f(store).await;
                report
            }
        })
        .expect("runtime")
        .remove(0)
    };
    // 1. 200 objects, clean close: a checkpoint.
    run(|s| {
        Box::pin(async move {
            for i in 0..200 {
                s.put(b"b", format!("k{i}").as_bytes(), b"m", &data(i)).await.expect("put");
            }
            s.close().await.expect("close");
            RecoveryReport::default()
        })
    });
    // 2. Reopen: everything from the checkpoint, nothing replayed; then 50 more, no close.
    let r = run(|s| {
        Box::pin(async move {
            for i in 0..200 {
                assert_eq!(s.get(b"b", format!("k{i}").as_bytes()).await.expect("get").expect("present").data(), data(i));
            }
            for i in 200..250 {
                s.put(b"b", format!("k{i}").as_bytes(), b"m", &data(i)).await.expect("put");
            }
            s.delete(b"b", b"k0").await.expect("delete");
            RecoveryReport::default()
        })
    });
    assert_eq!((r.checkpoint_objects, r.records, r.checkpoint_unused.clone()), (Some(200), 0, None), "{r:?}");
    // 3. Reopen after the "crash": checkpoint plus the 51 records after it.
    let r = run(|s| {
        Box::pin(async move {
            assert!(s.get(b"b", b"k0").await.expect("get").is_none(), "the delete after the checkpoint is replayed");
            for i in 1..250 {
                assert_eq!(s.get(b"b", format!("k{i}").as_bytes()).await.expect("get").expect("present").data(), data(i));
            }
            // Overwrite everything so the old segments hold nothing live, then compact them away.
            for i in 0..250 {
                s.put(b"b", format!("k{i}").as_bytes(), b"n", &data(i + 1)).await.expect("put");
            }
            // Compact while some full segment is at most half live (compact_next itself takes
            // the cheapest whatever its live share, so looping on it would churn forever).
            let mut compacted = 0;
            while s.compaction_candidate(0.5).is_some() {
                s.compact_next(u64::MAX).await.expect("compact").expect("a candidate");
                compacted += 1;
                assert!(compacted < 100, "compaction does not converge");
            }
            RecoveryReport::default()
        })
    });
    assert_eq!((r.checkpoint_objects, r.records), (Some(200), 51), "{r:?}");
    // 4. The checkpoint's segment is gone: start-up begins at the next segment, and drops the
    // checkpoint's entries that lay in removed segments (all of them: everything was
    // overwritten, and replay puts the new versions back).
    let r = run(|s| {
        Box::pin(async move {
            for i in 0..250 {
                let o = s.get(b"b", format!("k{i}").as_bytes()).await.expect("get").expect("present");
                assert_eq!((o.meta(), o.data()), (&b"n"[..], &data(i + 1)[..]));
            }
            RecoveryReport::default()
        })
    });
    assert_eq!((r.checkpoint_objects, r.checkpoint_unused.clone(), r.checkpoint_entries_gone), (Some(200), None, 200), "{r:?}");
}

/// Files named `free-*.log` in `dir`, and the bytes they hold.
fn free_files(dir: &Path) -> (usize, u64) {
    let listed =
        std::fs::read_dir(dir).expect("list").filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("free-"));
    listed.fold((0, 0), |(n, bytes), e| (n + 1, bytes + e.metadata().expect("metadata").len()))
}

#[test]
fn compaction_past_the_free_pool_gives_the_space_back_a_step_at_a_time() {
    let d = dir("trim");
    let out = with_store(config(&d), |store| {
        let d = d.clone();
        async move {
            // Twelve segments of objects, all but the last ten objects then deleted: compaction
            // empties far more segments than the pool keeps.
            for i in 0..1200u32 {
                store.put(b"b", format!("k{i}").as_bytes(), b"m", &vec![i as u8; 8000]).await.expect("put");
            }
            for i in 0..1190u32 {
                store.delete(b"b", format!("k{i}").as_bytes()).await.expect("delete");
            }
            let before = store.segment_ids().len();
            while store.compaction_candidate(0.9).is_some() {
                store.compact_next(u64::MAX).await.expect("compact");
            }
            let compacted = before - store.segment_ids().len();
            // The trimmer runs beside the store, paced: wait for it, until its count has caught
            // up too (a file's removal completes before the trimmer counts it, so the directory
            // can be listed between the two).
            for _ in 0..200 {
                let files = free_files(&d).0;
                let counted = store.stats().segments_trimmed as usize;
                if files <= engine::store::SEGMENTS_FREE_MAX && counted + files >= compacted {
                    break;
                }
                engine::sleep(std::time::Duration::from_millis(20)).await;
            }
            let (files, bytes) = free_files(&d);
            let trimmed = store.stats().segments_trimmed;
            store.close().await.expect("close");
            (compacted, files, bytes, trimmed)
        }
    });
    let (compacted, files, bytes, trimmed) = out;
    assert!(compacted > engine::store::SEGMENTS_FREE_MAX + 2, "only {compacted} segments compacted");
    assert_eq!(files, engine::store::SEGMENTS_FREE_MAX, "the pool keeps its files, the trimmer removed the rest");
    assert_eq!(bytes, files as u64 * config(&d).segment_bytes, "kept files are whole");
    assert_eq!(trimmed as usize, compacted - files, "every excess file was trimmed and removed");
    // What stayed reads back after a restart.
    let out = with_store(config(&d), |store| async move {
        for i in 1190..1200u32 {
            let got = store.get(b"b", format!("k{i}").as_bytes()).await.expect("get").expect("kept");
            assert_eq!(got.data(), &vec![i as u8; 8000][..]);
        }
        store.objects()
    });
    assert_eq!(out, 10);
}

/// Churn of short-lived objects (put, then delete) behind an oldest segment full of cold live
/// data, compacted as the background compactor chooses (`compaction_choice`). Tombstones are
/// carried forward until they reach the oldest segment, which the cheapest-first choice never
/// takes here; the rotation does once they pass a share of the live bytes, so they stay
/// bounded instead of growing with every delete. After a crash nothing deleted comes back and
/// the cold data is intact. Returns the largest carried bytes and segment count seen after
/// the first rounds.
fn churn_behind_cold_data(name: &str, policy: CompactionPolicy) -> (u64, usize) {
    const COLD: u32 = 150;
    const ROUNDS: u32 = 60;
    const CHURN_PER_ROUND: u32 = 100;
    let d = dir(name);
    let config = move |d: &Path| StoreConfig { dir: d.to_path_buf(), segment_bytes: 64 << 10, batch_bytes: 16 << 10 };
    let cold = |i: u32| vec![i as u8; 1000];
    let out = with_store(config(&d), |store| {
        async move {
            for i in 0..COLD {
                store.put(b"b", format!("cold{i:04}").as_bytes(), b"m", &cold(i)).await.expect("put cold");
            }
            let (mut carried_max, mut segments_max) = (0, 0);
            for round in 0..ROUNDS {
                let tasks: Vec<_> = (0..16u32)
                    .map(|t| {
                        let s = store.clone();
                        engine::spawn(async move {
                            for j in (t..CHURN_PER_ROUND).step_by(16) {
                                let key = format!("tmp{round:03}-{j:03}");
                                s.put(b"b", key.as_bytes(), b"m", b"short-lived").await.expect("put");
                                s.delete(b"b", key.as_bytes()).await.expect("delete");
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await;
                }
                while let Some(id) = store.compaction_choice(&policy).segment {
                    if store.compact_segment(id, u64::MAX).await.expect("compact").is_none() {
                        break;
                    }
                }
                let space = store.space();
                // From the tenth round on: the cold data, put one at a time, takes a sector each
                // until its first compaction packs it.
                if round >= 10 {
                    carried_max = carried_max.max(space.carried_bytes);
                    segments_max = segments_max.max(space.segments);
                }
            }
            // No close: the crash replays the log, tombstones and all.
            (carried_max, segments_max)
        }
    });
    with_store(config(&d), |store| async move {
        assert!(store.list(b"b", b"tmp", None, usize::MAX).is_empty(), "a deleted object came back");
        for i in 0..COLD {
            let got = store.read_all(b"b", format!("cold{i:04}").as_bytes()).await.expect("read");
            assert_eq!(got, Some((b"m".to_vec(), cold(i))), "cold{i:04}");
        }
    });
    out
}

#[test]
fn tombstones_behind_cold_data_stay_bounded() {
    // 6000 tombstones of 128 bytes are 750 KiB, twelve 64 KiB segments if all were kept; the
    // cold data is about three segments. Without the rotation (`carry_share_max` infinite)
    // this run carried 852,224 bytes in 23 segments at the end.
    let (carried, segments) = churn_behind_cold_data("tombstones", CompactionPolicy::default());
    assert!(carried <= 3 * (64 << 10), "carried records grew to {carried} bytes");
    assert!(segments <= 9, "the log grew to {segments} segments");
}

/// Where record `k{i}`'s data starts in the segment (written by `write`: bucket "b", metadata
/// "m"): right after its key field and metadata, which are unique in the file.
fn data_offset(d: &Path, i: u32) -> u64 {
    let bytes = std::fs::read(segment(d)).expect("read segment");
    let field = [&[1u8, 0, b'b'][..], format!("k{i}").as_bytes(), b"m"].concat();
    let at = bytes.windows(field.len()).position(|w| w == field).expect("the key field is in the segment");
    (at + field.len()) as u64
}

/// Where record `k{i}`'s frame starts (each of `write`'s puts is alone in its frame).
fn frame_offset(d: &Path, i: u32) -> u64 {
    let field_len = 3 + format!("k{i}").len() + 1;
    data_offset(d, i) - (field_len + engine::store::record::HEADER_BYTES) as u64
}

/// Two batches in flight at a crash: the earlier torn, the later whole. The later one was never
/// acknowledged (acknowledgements follow every earlier batch's durable write), and says so: its
/// `durable_lsn` does not reach the torn batch. Start-up cuts both, as one torn tail, erases the
/// later one, and the log grows again over them. Erasing matters: the same put written again at
/// the cut takes the torn batch's place and lsn exactly, and would bring the stale later batch
/// back into sequence right behind it.
#[test]
fn a_whole_batch_behind_a_torn_one_is_cut_and_erased() {
    use engine::store::record;
    let d = dir("in-flight-pair");
    write(&d, 20, false);
    let (torn, later) = (frame_offset(&d, 18), frame_offset(&d, 19));
    let f = std::fs::OpenOptions::new().read(true).write(true).open(segment(&d)).expect("segment");
    // k19's batch, resealed as if submitted while k18's was in flight.
    let mut frame = vec![0u8; 2 * SECTOR_SIZE];
    f.read_exact_at(&mut frame, later).expect("read k19's frame");
    let (mut header, key, meta, body) = {
        let fr = record::decode(&frame).expect("k19's frame is valid");
        (fr.header, fr.key.to_vec(), fr.meta.to_vec(), fr.data.to_vec())
    };
    assert_eq!(header.durable_lsn, header.batch_first_lsn, "written alone, after k18's batch was durable");
    header.durable_lsn -= 1;
    record::encode(&header, &key, &meta, &body, &mut frame[..header.frame_len as usize]);
    f.write_all_at(&frame[..header.frame_len as usize], later).expect("reseal k19");
    // k18's batch torn: a byte of its key never reached the disk.
    let mut b = [0u8; 1];
    let at = torn + record::HEADER_BYTES as u64 + 4;
    f.read_exact_at(&mut b, at).expect("read");
    f.write_all_at(&[b[0] ^ 0xFF], at).expect("tear k18");
    f.sync_all().expect("sync");

    let (report, reads) = reopen_after_damage(&d, 20).expect("two batches in flight at a crash are a torn tail, not damage");
    assert_eq!((report.cut_at, report.records), (Some((1, torn)), 18), "{report:?}");
    // k19's batch, and only it: its batch starts on a sector.
    let sectors = (later + header.frame_len as u64).next_multiple_of(SECTOR_SIZE as u64) - later;
    assert_eq!(report.erased_bytes, sectors, "{report:?}");
    assert_eq!((&reads[18], &reads[19]), (&Ok(None), &Ok(None)), "neither batch was acknowledged");
    // k18 again: same length, same lsn, same place as the torn batch.
    with_store(config(&d), |store| async move { store.put(b"b", b"k18", b"m", &data(18)).await.expect("put k18 again") });
    let (report, reads) = reopen_after_damage(&d, 20).expect("reopen");
    assert_eq!((report.cut_at, report.records), (None, 19), "the erased batch stays gone: {report:?}");
    assert_eq!((&reads[18], &reads[19]), (&Ok(Some(data(18))), &Ok(None)));
}

/// Damages record `k{i}`'s data on disk, behind the store's back.
fn damage_data(d: &Path, i: u32) {
    let f = std::fs::OpenOptions::new().write(true).open(segment(d)).expect("segment");
    f.write_all_at(&[0xEE; 8], data_offset(d, i) + 50).expect("damage the data");
    f.sync_all().expect("sync");
}

/// Reopens after damage to one record's data: the report, and what reading each record gives
/// (its data if intact, else the error).
fn reopen_after_damage(d: &Path, n: u32) -> Result<(RecoveryReport, Vec<Result<Option<Vec<u8>>, String>>), String> {
    let out = engine::run(runtime(), |core: engine::Core<()>| {
        let d = d.to_path_buf();
        async move {
            let (store, report) = Store::open(core.env.clone(), config(&d)).await.map_err(|e| e.to_string())?;
            let mut reads = Vec::new();
            for i in 0..n {
                let got = store.get(b"b", format!("k{i}").as_bytes()).await;
                reads.push(got.map(|o| o.map(|o| o.data().to_vec())).map_err(|e| e.to_string()));
            }
            Ok((report, reads))
        }
    })
    .expect("runtime");
    out.into_iter().next().expect("one core")
}

/// Damage at rest to one record's data, in a batch later batches prove was synced (so
/// acknowledged): its head still verifies (format 2), so start-up indexes the record as it was
/// and reports it; a read of it fails with its location, and everything else is served. (Damage
/// to a head still refuses to open: `damage_to_synced_data_refuses_to_open_and_names_the_place`.)
#[test]
fn damaged_data_of_a_synced_record_is_reported_and_refused_not_fatal() {
    let d = dir("damaged-data");
    write(&d, 20, false);
    damage_data(&d, 5);
    let (report, reads) = reopen_after_damage(&d, 20).expect("opens despite the damage");
    assert_eq!((report.cut_at, report.records), (None, 20), "{report:?}");
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert!(report.damaged[0].path.ends_with("seg-00000001.log") && report.damaged[0].what.contains("b/k5"), "{report:?}");
    for (i, read) in reads.into_iter().enumerate() {
        match read {
            Err(e) if i == 5 => assert!(e.contains("seg-00000001.log") && e.contains("b/k5"), "{e}"),
            Ok(Some(got)) if i != 5 => assert_eq!(got, data(i as u32), "k{i}"),
            other => panic!("k{i}: {other:?}"),
        }
    }
}

/// The same damage in the last batch cannot be told from a torn write of a batch never
/// acknowledged (no later batch proves it was synced): it is cut, as before.
#[test]
fn damaged_data_in_the_last_batch_is_cut_like_a_torn_write() {
    let d = dir("damaged-last");
    write(&d, 20, false);
    damage_data(&d, 19);
    let (report, reads) = reopen_after_damage(&d, 20).expect("opens");
    assert!(report.cut_at.is_some() && report.damaged.is_empty(), "{report:?}");
    assert_eq!(report.records, 19);
    assert_eq!(reads[19], Ok(None), "the cut batch's put is gone");
    assert!(reads[..19].iter().enumerate().all(|(i, r)| *r == Ok(Some(data(i as u32)))));
}

/// A segment whose compaction finds a damaged live record cannot be emptied: it stays, the
/// compactor stops taking it (it would fail again and, being the cheapest, stall every other
/// compaction), and the other segments are still compacted.
#[test]
fn a_damaged_segment_is_left_and_compaction_goes_on_elsewhere() {
    let d = dir("damaged-compaction");
    let small = StoreConfig { dir: d.clone(), segment_bytes: 64 << 10, batch_bytes: 16 << 10 };
    // Each put its own batch of a sector: 16 to a segment.
    with_store(small.clone(), |store| async move {
        for i in 0..100u32 {
            store.put(b"b", format!("k{i}").as_bytes(), b"m", &[i as u8; 100]).await.expect("put");
        }
        for i in (0..100u32).filter(|i| *i != 3) {
            store.put(b"b", format!("k{i}").as_bytes(), b"m", b"replaced").await.expect("overwrite");
        }
    });
    damage_data(&d, 3);
    let (err, left, uncompactable, k3) = with_store(small, |store| async move {
        let err = store.compact_segment(1, u64::MAX).await.expect_err("k3 cannot be copied forward").to_string();
        // Everything else compacts as the compactor would take it; segment 1 is never taken again.
        let mut passes = 0;
        while let Some(id) = store.compaction_candidate(1.0) {
            assert_ne!(id, 1, "a segment known damaged is taken again");
            store.compact_segment(id, u64::MAX).await.expect("compact another segment");
            passes += 1;
            assert!(passes < 100);
        }
        let k3 = store.get(b"b", b"k3").await.map(|o| o.is_some()).map_err(|e| e.to_string());
        (err, store.segment_ids(), store.uncompactable_segments(), k3)
    });
    assert!(err.contains("seg-00000001.log"), "{err}");
    assert_eq!(uncompactable, vec![1]);
    assert_eq!(left.first(), Some(&1), "the damaged segment stays");
    assert!(left.len() <= 3, "the others were compacted: {left:?}");
    assert!(k3.is_err_and(|e| e.contains("b/k3")), "k3 is refused, not lost silently");
}

/// Writes large objects `big0`..`big2` (chunks and a manifest each), replaces `big1` (its old
/// chunks dropped in the manifest's batch), then `n` small puts as later batches, which prove
/// the large objects' batches were synced.
fn write_large(d: &Path, n: u32) {
    engine::run(runtime(), |core: engine::Core<()>| {
        let d = d.to_path_buf();
        async move {
            let (store, _) = Store::open(core.env.clone(), config(&d)).await.expect("open");
            for (k, seed) in [("big0", 0u8), ("big1", 1), ("big2", 2), ("big1", 3)] {
                let mut w = store.chunk_writer();
                w.write(&vec![seed; 150_000]).await.expect("chunks");
                let extent = w.finish().await.expect("finish");
                store.put_chunked(b"b", k.as_bytes(), b"large", vec![extent], &[], &[]).await.expect("manifest");
            }
            for i in 0..n {
                store.put(b"b", format!("k{i}").as_bytes(), b"m", &data(i)).await.expect("put");
            }
        }
    })
    .expect("runtime");
}

/// Where the data of the last record with key field `field` (and metadata `meta`) starts.
fn last_data_offset(d: &Path, field: &[u8], meta: &[u8]) -> u64 {
    let bytes = std::fs::read(segment(d)).expect("read segment");
    let needle = [field, meta].concat();
    let at = bytes.windows(needle.len()).rposition(|w| w == needle).expect("the record is in the segment");
    (at + needle.len()) as u64
}

fn damage_at(d: &Path, offset: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(segment(d)).expect("segment");
    f.write_all_at(&[0xEE; 4], offset).expect("damage");
    f.sync_all().expect("sync");
}

/// Damage at rest to a large object's manifest data (its head still verifies), and to a chunk
/// drop's ids: start-up goes on and reports both. The damaged object reads and heads as
/// damaged (its size and chunks are lost with the manifest), the others read back whole, and
/// orphan collection, unable to tell what the damaged manifest owned, drops nothing.
#[test]
fn damaged_manifest_and_chunk_drop_are_reported_not_fatal() {
    let d = dir("damaged-manifest");
    write_large(&d, 5);
    // big0's manifest; the drop that replaced big1 (bucket "\0chunks", empty key, no metadata).
    damage_at(&d, last_data_offset(&d, b"\x01\x00bbig0", b"large") + 2);
    let drop_field = [&[engine::store::CHUNK_BUCKET.len() as u8, 0][..], engine::store::CHUNK_BUCKET].concat();
    damage_at(&d, last_data_offset(&d, &drop_field, b"") + 1);
    let out = engine::run(runtime(), |core: engine::Core<()>| {
        let d = d.to_path_buf();
        async move {
            let (store, report) = Store::open(core.env.clone(), config(&d)).await.map_err(|e| e.to_string())?;
            let mut whats: Vec<String> = report.damaged.iter().map(|f| f.what.clone()).collect();
            whats.sort();
            let head = store.head(b"b", b"big0").await.map(|h| h.map(|h| h.size)).map_err(|e| e.to_string());
            let get = store.read_all(b"b", b"big0").await.map(|o| o.map(|(_, data)| data.len())).map_err(|e| e.to_string());
            let others: Vec<Option<Vec<u8>>> = {
                let mut v = Vec::new();
                for k in ["big1", "big2"] {
                    v.push(store.read_all(b"b", k.as_bytes()).await.map_err(|e| e.to_string())?.map(|(_, data)| data));
                }
                v
            };
            let chunks_before = store.chunks_stored();
            let dropped = store.collect_orphan_chunks(store.next_chunk_id()).await.map_err(|e| e.to_string())?;
            let listed_size = store.list(b"b", b"big0", None, 1).first().map(|l| l.size);
            Ok::<_, String>((whats, head, get, others, chunks_before, dropped, store.chunks_stored(), listed_size))
        }
    })
    .expect("runtime");
    let (whats, head, get, others, chunks_before, dropped, chunks_after, listed_size) =
        out.into_iter().next().expect("one core").expect("opens despite the damage");
    assert_eq!(whats.len(), 2, "{whats:?}");
    assert!(whats[0].contains("chunk drop") && whats[1].contains("manifest of b/big0"), "{whats:?}");
    assert!(head.as_ref().is_err_and(|e| e.contains("b/big0")), "head of the damaged object: {head:?}");
    assert!(get.as_ref().is_err_and(|e| e.contains("b/big0")), "read of the damaged object: {get:?}");
    assert_eq!(others, vec![Some(vec![3u8; 150_000]), Some(vec![2u8; 150_000])]);
    assert_eq!(listed_size, Some(0), "a damaged manifest's size is lost with it");
    // big1's first chunks stayed (their drop is damaged) beside everyone's live ones; none goes.
    assert_eq!((dropped.len(), chunks_after), (0, chunks_before));
}
