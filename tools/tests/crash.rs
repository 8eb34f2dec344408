//! Real processes, real disk: a child writes to its store under load and is killed with SIGKILL
//! at a random moment; the parent reopens the store and checks every write the child reported
//! as acknowledged. Several rounds on one directory, so recovery also runs on logs that earlier
//! crashes cut.
#![allow(clippy::disallowed_methods)] // a test process of its own: plain threads, sleeps and wall time, no ring

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use engine::store::{Store, StoreConfig};

const KEYS: u64 = 64;
const ROUNDS: u64 = 6;

#[derive(Default)]
struct Round {
    /// op -> (key, len) for every put the child started.
    issued: BTreeMap<u64, (u64, usize)>,
    /// key -> (lsn, op) acknowledged.
    acked: BTreeMap<u64, Vec<(u64, u64)>>,
}

fn run_child(dir: &PathBuf, first_op: u64, kill_after: Duration) -> Round {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corestore"))
        .args(["debug", "store-load", "--dir"])
        .arg(dir)
        .args(["--keys", &KEYS.to_string(), "--first-op", &first_op.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corestore debug store-load");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut round = Round::default();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let f: Vec<&str> = line.split(' ').collect();
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).expect("number in child's line");
            match f.first() {
                Some(&"I") => {
                    round.issued.insert(n(2), (n(1), n(3) as usize));
                }
                Some(&"A") => round.acked.entry(n(1)).or_default().push((n(3), n(2))),
                _ => panic!("unexpected line from child: {line}"),
            }
        }
        round
    });
    std::thread::sleep(kill_after);
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("wait");
    let stderr = child.stderr.take().map(std::io::read_to_string).transpose().expect("stderr").unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "child ended on its own before the kill: {stderr}");
    reader.join().expect("reader thread")
}

/// key -> (lsn, op) as the store holds it now.
fn read_back(dir: &PathBuf) -> BTreeMap<u64, (u64, u64, Vec<u8>, Vec<u8>)> {
    let mut config = engine::RuntimeConfig::cores(1).expect("core");
    config.arena = engine::ArenaConfig {
        classes: vec![engine::ClassConfig { size_bytes: 4096, count: 256 }, engine::ClassConfig { size_bytes: 64 << 10, count: 64 }],
    };
    let out = engine::run(config, |core: engine::Core<()>| {
        let dir = dir.clone();
        async move {
            let (store, _) = Store::open(core.env.clone(), StoreConfig { dir, segment_bytes: 4 << 20, batch_bytes: 64 << 10 }).await.expect("reopen after SIGKILL");
            let mut seen = BTreeMap::new();
            for k in 0..KEYS {
                if let Some(o) = store.get(b"crash", format!("key-{k}").as_bytes()).await.expect("get after SIGKILL") {
                    let op = u64::from_le_bytes(o.meta()[..8].try_into().expect("op id"));
                    seen.insert(k, (o.lsn, op, o.meta().to_vec(), o.data().to_vec()));
                }
            }
            seen
        }
    })
    .expect("runtime");
    out.into_iter().next().expect("one core")
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_write() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("crash-store");
    let _ = std::fs::remove_dir_all(&dir);
    // What each key held after the previous round's recovery: (lsn, op).
    let mut base: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut first_op = 1u64;
    let mut seed = 0x5EED_u64;
    let (mut acked_total, mut checked_total) = (0usize, 0usize);
    for round in 0..ROUNDS {
        let (r, s) = engine::rng::splitmix64(seed);
        seed = s;
        let kill_after = Duration::from_millis(150 + r % 600);
        let child = run_child(&dir, first_op, kill_after);
        first_op += 10_000_000;
        acked_total += child.acked.values().map(Vec::len).sum::<usize>();
        let seen = read_back(&dir);
        for k in 0..KEYS {
            // The newest acknowledged state: this round's last ack, else what the key held.
            let last_ack = child.acked.get(&k).and_then(|v| v.iter().max().copied()).or(base.get(&k).copied());
            let got = seen.get(&k);
            match (last_ack, got) {
                (None, None) => {}
                (Some((lsn, op)), None) => panic!("round {round}: key {k} lost acknowledged op {op} (lsn {lsn})"),
                (ack, Some((lsn, op, meta, data))) => {
                    if let Some((ack_lsn, ack_op)) = ack {
                        assert!(*lsn >= ack_lsn, "round {round}: key {k} went back from acknowledged op {ack_op} (lsn {ack_lsn}) to op {op} (lsn {lsn})");
                        if *lsn == ack_lsn {
                            assert_eq!(*op, ack_op, "round {round}: key {k} lsn {lsn} holds another op");
                        }
                    }
                    // Anything newer must be a put this round started (acknowledged or not).
                    let is_base = base.get(&k) == Some(&(*lsn, *op));
                    let issued = child.issued.get(op);
                    assert!(is_base || issued.is_some_and(|(key, _)| *key == k), "round {round}: key {k} holds op {op}, never written to it");
                    if let Some((_, len)) = issued {
                        assert_eq!(data.len(), *len, "round {round}: key {k} op {op} has the wrong length");
                    }
                    let hash = u64::from_le_bytes(meta[8..16].try_into().expect("hash"));
                    assert_eq!(xxhash_rust::xxh3::xxh3_64(data), hash, "round {round}: key {k} op {op}: data does not match its hash");
                    checked_total += 1;
                }
            }
        }
        base = seen.into_iter().map(|(k, (lsn, op, _, _))| (k, (lsn, op))).collect();
    }
    eprintln!("{ROUNDS} SIGKILL rounds: {acked_total} acknowledged puts, {checked_total} key checks after recovery");
    assert!(acked_total > 100, "the child acknowledged too little for the test to mean anything");
}
