//! Raft records in the store's log on the real kernel and filesystem: entries, truncations and
//! hard states of many groups share one batch (one write, durable on completion), come back per
//! group after reopen with truncations applied in lsn order, and a torn tail loses only what was
//! never acknowledged.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use engine::arena::{ArenaConfig, ClassConfig};
use engine::store::{RaftHardState, RaftRecord, RecoveryReport, Store, StoreConfig};
use engine::{RuntimeConfig, SECTOR_SIZE};

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("store-raft").join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn runtime() -> RuntimeConfig {
    let mut c = RuntimeConfig::cores(1).expect("one core");
    c.arena = ArenaConfig {
        classes: vec![ClassConfig { size_bytes: SECTOR_SIZE, count: 256 }, ClassConfig { size_bytes: BATCH_BYTES, count: 4 }],
    };
    c
}

fn config(dir: &Path) -> StoreConfig {
    StoreConfig { dir: dir.to_path_buf(), segment_bytes: 8 << 20, batch_bytes: BATCH_BYTES }
}

/// Every frame takes at least a sector, so a batch holds at most this / 4 KiB records.
const BATCH_BYTES: usize = 1 << 20;
/// Groups written in one batch: 6 frames each must fit `BATCH_BYTES`.
const GROUPS: u64 = 40;
const _: () = assert!(GROUPS as usize * 6 * SECTOR_SIZE <= BATCH_BYTES);

fn payload(group: u64, index: u64, term: u64) -> Vec<u8> {
    format!("g{group} i{index} t{term}").into_bytes()
}

/// Runs `f` on one core with the store in `dir` open; no close (ends as a crash would).
fn with_store<T: Send + 'static>(
    dir: &Path,
    f: impl Fn(Store<engine::LinuxEnv>) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + Sync + 'static,
) -> T {
    with_store_report(dir, move |store, _| f(store))
}

/// `with_store`, with what start-up reported.
fn with_store_report<T: Send + 'static>(
    dir: &Path,
    f: impl Fn(Store<engine::LinuxEnv>, RecoveryReport) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + Sync + 'static,
) -> T {
    let f = std::sync::Arc::new(f);
    let out = engine::run(runtime(), move |core: engine::Core<()>| {
        let (dir, f) = (dir.to_path_buf(), f.clone());
        async move {
            let (store, report) = Store::open(core.env.clone(), config(&dir)).await.expect("open");
            f(store, report).await
        }
    })
    .expect("runtime");
    out.into_iter().next().expect("one core")
}

fn entries(store: &Store<engine::LinuxEnv>, group: u64) -> Vec<(u64, u64)> {
    store.raft_group(group).map(|g| g.entries.iter().map(|(i, e)| (i, e.term)).collect()).unwrap_or_default()
}

async fn check_payloads(store: &Store<engine::LinuxEnv>, group: u64) {
    for (index, term) in entries(store, group) {
        let (t, object) = store.read_raft_entry(group, index).await.expect("read").expect("live");
        assert_eq!(t, term);
        assert_eq!(object.data(), payload(group, index, term));
        assert_eq!(object.meta(), b"n");
    }
}

/// Group `g` gets entries 1..=5 of term 1 and a hard state, all groups in one call.
async fn five_each(store: &Store<engine::LinuxEnv>, groups: u64) -> u64 {
    let data: Vec<(u64, u64, Vec<u8>)> = (1..=groups).flat_map(|g| (1..=5).map(move |i| (g, i, payload(g, i, 1)))).collect();
    let mut records: Vec<RaftRecord<'_>> =
        data.iter().map(|(g, i, d)| RaftRecord::Entry { group: *g, term: 1, index: *i, meta: b"n", data: d }).collect();
    for g in 1..=groups {
        records.push(RaftRecord::HardState { group: g, state: RaftHardState { term: 1, vote: g, commit: 3 } });
    }
    store.append_raft(&records).await.expect("append")
}

#[test]
fn many_groups_share_one_write_and_come_back_after_reopen() {
    let d = dir("many");
    let stats = with_store(&d, |store| {
        Box::pin(async move {
            five_each(&store, GROUPS).await;
            store.stats()
        })
    });
    assert_eq!(stats.batches, 1, "{GROUPS} groups' entries and hard states in one batch");
    assert_eq!(stats.syncs, 1);
    assert_eq!(stats.records, GROUPS * 6);
    with_store(&d, |store| {
        Box::pin(async move {
            assert_eq!(store.raft_group_ids(), (1..=GROUPS).collect::<Vec<u64>>());
            for g in 1..=GROUPS {
                assert_eq!(entries(&store, g), (1..=5).map(|i| (i, 1)).collect::<Vec<_>>());
                let hs = store.raft_group(g).and_then(|g| g.hard_state);
                assert_eq!(hs, Some(RaftHardState { term: 1, vote: g, commit: 3 }));
                check_payloads(&store, g).await;
            }
        })
    });
}

#[test]
fn truncate_drops_the_conflicting_suffix_in_lsn_order() {
    let d = dir("truncate");
    with_store(&d, |store| {
        Box::pin(async move {
            five_each(&store, 2).await;
            // Group 1: a new leader of term 2 overwrites from index 3; group 2 untouched.
            let (a, b) = (payload(1, 3, 2), payload(1, 4, 2));
            store
                .append_raft(&[
                    RaftRecord::Truncate { group: 1, from_index: 3 },
                    RaftRecord::Entry { group: 1, term: 2, index: 3, meta: b"n", data: &a },
                    RaftRecord::Entry { group: 1, term: 2, index: 4, meta: b"n", data: &b },
                    RaftRecord::HardState { group: 1, state: RaftHardState { term: 2, vote: 0, commit: 2 } },
                ])
                .await
                .expect("append");
            // Truncate and rewrite again in a later batch: replay must apply it after the above.
            let c = payload(1, 4, 3);
            store.append_raft(&[RaftRecord::Truncate { group: 1, from_index: 4 }]).await.expect("truncate");
            store.append_raft(&[RaftRecord::Entry { group: 1, term: 3, index: 4, meta: b"n", data: &c }]).await.expect("append");
        })
    });
    with_store(&d, |store| {
        Box::pin(async move {
            assert_eq!(entries(&store, 1), vec![(1, 1), (2, 1), (3, 2), (4, 3)]);
            assert_eq!(entries(&store, 2), (1..=5).map(|i| (i, 1)).collect::<Vec<_>>());
            assert_eq!(store.raft_group(1).and_then(|g| g.hard_state), Some(RaftHardState { term: 2, vote: 0, commit: 2 }));
            check_payloads(&store, 1).await;
            check_payloads(&store, 2).await;
        })
    });
}

#[test]
fn an_entry_overwriting_without_truncate_is_refused_before_it_is_written() {
    let d = dir("no-truncate");
    with_store(&d, |store| Box::pin(async move { five_each(&store, 1).await }));
    // The writer asserts before sealing (the message is on the core's thread); nothing reaches
    // the disk.
    let crashed = std::panic::catch_unwind(|| {
        with_store(&d, |store| {
            Box::pin(async move {
                let a = payload(1, 3, 2);
                let _ = store.append_raft(&[RaftRecord::Entry { group: 1, term: 2, index: 3, meta: b"n", data: &a }]).await;
            })
        })
    });
    assert!(crashed.is_err(), "an overwrite without Truncate must stop the core");
    with_store(&d, |store| {
        Box::pin(async move {
            assert_eq!(entries(&store, 1), (1..=5).map(|i| (i, 1)).collect::<Vec<_>>());
        })
    });
}

#[test]
fn torn_raft_batch_is_cut_and_nothing_acknowledged_is_lost() {
    let d = dir("torn");
    with_store(&d, |store| Box::pin(async move { five_each(&store, 3).await }));
    // A second batch (group 1, entries 6 and 7) written, then torn: its second frame damaged,
    // as if power failed mid-write before the write returned (so it was never acknowledged).
    let second = with_store(&d, |store| {
        Box::pin(async move {
            let (a, b) = (payload(1, 6, 1), payload(1, 7, 1));
            store
                .append_raft(&[
                    RaftRecord::Entry { group: 1, term: 1, index: 6, meta: b"n", data: &a },
                    RaftRecord::Entry { group: 1, term: 1, index: 7, meta: b"n", data: &b },
                ])
                .await
                .expect("append");
            let at = store.raft_group(1).expect("group 1").entries.get(7).expect("entry 7").at;
            assert_eq!(at.segment, 1);
            at.offset
        })
    });
    let f = std::fs::OpenOptions::new().read(true).write(true).open(d.join("seg-00000001.log")).expect("segment");
    // A byte of the frame's key field, covered by its checksum.
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, second + 90).expect("read");
    byte[0] ^= 0xFF;
    f.write_all_at(&byte, second + 90).expect("tear");
    f.sync_all().expect("sync");
    with_store(&d, |store| {
        Box::pin(async move {
            for g in 1..=3 {
                assert_eq!(entries(&store, g), (1..=5).map(|i| (i, 1)).collect::<Vec<_>>(), "group {g}: the torn batch is cut whole");
                check_payloads(&store, g).await;
            }
        })
    });
}

#[test]
fn a_corrupted_entry_is_an_error_never_data() {
    let d = dir("corrupt");
    let seg = d.join("seg-00000001.log");
    let msg = with_store(&d, move |store| {
        let seg = seg.clone();
        Box::pin(async move {
            five_each(&store, 1).await;
            let at = store.raft_group(1).expect("group").entries.get(2).expect("entry 2").at.offset;
            // Damage entry 2's payload on disk behind the store's back.
            let f = std::fs::OpenOptions::new().write(true).open(&seg).expect("segment");
            f.write_all_at(&[0xEEu8; 4], at + 90).expect("write");
            f.sync_all().expect("sync");
            let err = store.read_raft_entry(1, 2).await.expect_err("a damaged entry must not be returned");
            let (t, ok) = store.read_raft_entry(1, 3).await.expect("bystander").expect("live");
            assert_eq!((t, ok.data()), (1, &payload(1, 3, 1)[..]));
            (err.to_string(), at)
        })
    });
    let (msg, at) = msg;
    assert!(msg.contains("seg-00000001.log") && msg.contains(&format!("offset {at}")) && msg.contains("entry 2 of group 1"), "{msg}");
}

/// An idle group's last hard state does not keep its segment from compaction forever: it is
/// copied forward with the segment's live objects, and comes back after a restart. A newer hard
/// state written while the copy is on its way wins: the copy is voided, never lands after it.
#[test]
fn compaction_copies_a_last_hard_state_forward_and_a_newer_one_wins() {
    const GROUPS_RACED: u64 = 8;
    let d = dir("hard-state-copy");
    let older = |g: u64| RaftHardState { term: 3, vote: g, commit: 0 };
    let newer = |g: u64| RaftHardState { term: 7, vote: g + 100, commit: 0 };
    let expected = move |g: u64| if g <= GROUPS_RACED { newer(g) } else { older(g) };
    with_store(&d, move |store| {
        Box::pin(async move {
            // Groups 1..=2*GROUPS_RACED: only a hard state each (idle groups, no entries), in
            // the first segment, beside objects.
            let records: Vec<RaftRecord<'_>> = (1..=2 * GROUPS_RACED).map(|g| RaftRecord::HardState { group: g, state: older(g) }).collect();
            store.append_raft(&records).await.expect("hard states");
            let big = vec![7u8; 512 << 10];
            let mut n = 0;
            while store.segment_ids().len() < 3 {
                store.put(b"b", format!("k{}", n % 8).as_bytes(), b"", &big).await.expect("put");
                n += 1;
            }
            let first = store.segment_ids()[0];
            // The first half of the groups get a newer hard state while the copy is on its way.
            let compacting = engine::spawn({
                let store = store.clone();
                async move { store.compact_segment(first, u64::MAX).await }
            });
            for g in 1..=GROUPS_RACED {
                store.append_raft(&[RaftRecord::HardState { group: g, state: newer(g) }]).await.expect("newer hard state");
            }
            let report = compacting.await.expect("compaction");
            assert!(report.is_some(), "the segment went");
            assert!(!store.segment_ids().contains(&first));
            for g in 1..=2 * GROUPS_RACED {
                assert_eq!(store.raft_group(g).and_then(|x| x.hard_state), Some(expected(g)), "group {g} before the restart");
            }
        })
    });
    let states = with_store(&d, move |store| {
        Box::pin(async move { (1..=2 * GROUPS_RACED).map(|g| store.raft_group(g).and_then(|x| x.hard_state)).collect::<Vec<_>>() })
    });
    for (i, s) in states.into_iter().enumerate() {
        let g = i as u64 + 1;
        assert_eq!(s, Some(expected(g)), "group {g} after the restart");
    }
}

/// Puts objects (four keys overwritten, so little stays live) until the log rolls to a new tail
/// segment; returns the segment that was the tail.
async fn roll(store: &Store<engine::LinuxEnv>) -> u32 {
    let tail = *store.segment_ids().last().expect("a segment");
    let big = vec![5u8; 512 << 10];
    let mut n = 0;
    while store.segment_ids().last() == Some(&tail) {
        store.put(b"b", format!("k{}", n % 4).as_bytes(), b"", &big).await.expect("put");
        n += 1;
    }
    tail
}

/// Start-up from a checkpoint that names entries whose segment compaction removed since, when
/// the Truncate that dropped them went too (it lay in that same segment, with no older entry
/// frames to supersede): nothing replayed drops them, so start-up must forget them itself.
#[test]
fn a_checkpoint_forgets_entries_whose_segment_and_truncation_are_gone() {
    let d = dir("checkpoint-gone");
    let first = with_store(&d, |store| {
        Box::pin(async move {
            five_each(&store, 2).await;
            let ckpt = store.checkpoint().await.expect("checkpoint with Raft state");
            assert_eq!(ckpt, 0, "no objects yet");
            // Group 1 loses every entry, in the same segment; nothing is appended after.
            store.append_raft(&[RaftRecord::Truncate { group: 1, from_index: 1 }]).await.expect("truncate");
            // Group 2's entries are compacted into a snapshot, its record copied forward.
            store.append_raft(&[RaftRecord::Compact { group: 2, index: 5, term: 1, meta: b"m", data: b"image" }]).await.expect("compact");
            let first = roll(&store).await;
            let report = store.compact_segment(first, u64::MAX).await.expect("compaction");
            assert!(report.is_some(), "segment {first} holds no live entry and no Truncate that matters: it goes");
            assert_eq!(entries(&store, 1), vec![]);
            first
        })
    });
    let (report, group1, group2, hard) = with_store_report(&d, |store, report| {
        Box::pin(async move {
            (
                report,
                entries(&store, 1),
                store.raft_group(2).and_then(|g| g.compacted).map(|c| (c.index, c.term)),
                store.raft_group(1).and_then(|g| g.hard_state),
            )
        })
    });
    assert!(!d.join(format!("seg-{first:08}.log")).exists());
    assert_eq!(group1, vec![], "group 1's entries lay in a removed segment and were truncated");
    assert_eq!(report.checkpoint_raft_groups, Some(2), "Raft state from the checkpoint: {report:?}");
    assert_eq!(report.checkpoint_raft_entries_gone, 10, "both groups' entries lay in the removed segment: {report:?}");
    assert_eq!(report.checkpoint_unused, None);
    assert_eq!(group2, Some((5, 1)), "group 2's compaction record was copied forward");
    assert_eq!(hard, Some(RaftHardState { term: 1, vote: 1, commit: 3 }), "the hard state was copied forward");
}

/// What keeps a segment from compaction survives a checkpoint: a Truncate whose segment is
/// newer than the entry frames it superseded must stay while they do, after a start-up from
/// the checkpoint too, or a later replay of the whole log would bring those entries back.
#[test]
fn a_truncation_still_holds_its_segment_after_a_start_up_from_a_checkpoint() {
    let d = dir("checkpoint-holds");
    let truncated_in = with_store(&d, |store| {
        Box::pin(async move {
            let data: Vec<Vec<u8>> = (1..=3).map(|i| payload(1, i, 1)).collect();
            let records: Vec<RaftRecord<'_>> =
                (1..=3).map(|i| RaftRecord::Entry { group: 1, term: 1, index: i, meta: b"n", data: &data[i as usize - 1] }).collect();
            store.append_raft(&records).await.expect("entries");
            roll(&store).await;
            store.append_raft(&[RaftRecord::Truncate { group: 1, from_index: 2 }]).await.expect("truncate");
            let truncated_in = roll(&store).await;
            store.checkpoint().await.expect("checkpoint");
            truncated_in
        })
    });
    let went = with_store_report(&d, move |store, report| {
        Box::pin(async move {
            assert_eq!(report.checkpoint_raft_groups, Some(1), "{report:?}");
            assert_eq!(entries(&store, 1), vec![(1, 1)]);
            store.compact_segment(truncated_in, u64::MAX).await.expect("compaction").is_some()
        })
    });
    assert!(!went, "segment {truncated_in} holds the Truncate of entries 2 and 3, whose frames lie in an older segment");
    std::fs::remove_file(d.join("index.ckpt")).expect("remove the checkpoint");
    let replayed = with_store_report(&d, |store, report| Box::pin(async move { (report.checkpoint_raft_groups, entries(&store, 1)) }));
    assert_eq!(replayed, (None, vec![(1, 1)]), "a replay of the whole log");
}

/// Appends entries `indexes` of `group` at `term`, after a Truncate from the first if `truncate`.
async fn append_entries(store: &Store<engine::LinuxEnv>, group: u64, term: u64, indexes: std::ops::RangeInclusive<u64>, truncate: bool) {
    let data: Vec<(u64, Vec<u8>)> = indexes.clone().map(|i| (i, payload(group, i, term))).collect();
    let mut records = Vec::new();
    if truncate {
        records.push(RaftRecord::Truncate { group, from_index: *indexes.start() });
    }
    records.extend(data.iter().map(|(i, d)| RaftRecord::Entry { group, term, index: *i, meta: b"n", data: d }));
    store.append_raft(&records).await.expect("append");
}

/// Live entries do not keep their segment: compaction copies them forward as `RaftMove` frames,
/// which replace the entry at their index and drop nothing after it. So a group whose older
/// entries moved keeps its newer ones (which lie before the moves in the log), and a group
/// truncated meanwhile keeps only what survived the Truncate, before and after a restart, from
/// the checkpoint and from a replay of the whole log.
#[test]
fn compaction_moves_live_entries_forward_and_keeps_what_follows_them() {
    let d = dir("entry-moves");
    let expected = |store: &Store<engine::LinuxEnv>| {
        assert_eq!(entries(store, 1), (1..=8).map(|i| (i, 1)).collect::<Vec<_>>(), "group 1");
        assert_eq!(entries(store, 2), vec![(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)], "group 2");
    };
    let first = with_store(&d, move |store| {
        Box::pin(async move {
            five_each(&store, 2).await;
            let first = roll(&store).await;
            append_entries(&store, 1, 1, 6..=8, false).await;
            append_entries(&store, 2, 2, 4..=5, true).await;
            let report = store.compact_segment(first, u64::MAX).await.expect("compaction").expect("the segment went");
            assert_eq!(report.raft_entries_relocated, 5 + 3, "group 1's entries 1-5 and group 2's live 1-3 moved: {report:?}");
            assert!(!store.segment_ids().contains(&first));
            assert_eq!(store.stats().raft_entries_moved, 8);
            expected(&store);
            check_payloads(&store, 1).await;
            check_payloads(&store, 2).await;
            store.checkpoint().await.expect("checkpoint");
            first
        })
    });
    assert!(!d.join(format!("seg-{first:08}.log")).exists());
    // Both start-ups must find the same logs; returns whether the Raft state came from the checkpoint.
    let reopen = || {
        with_store_report(&d, move |store, report| {
            Box::pin(async move {
                expected(&store);
                check_payloads(&store, 1).await;
                check_payloads(&store, 2).await;
                report.checkpoint_raft_groups
            })
        })
    };
    assert_eq!(reopen(), Some(2), "start-up took the Raft state from the checkpoint");
    std::fs::remove_file(d.join("index.ckpt")).expect("remove the checkpoint");
    assert_eq!(reopen(), None, "a replay of the whole log");
}
