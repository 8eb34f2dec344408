//! The background scrubber of `corestore serve`: damage at rest is found and reported with its
//! place and object, and the damaged object is refused while every other one is served.
#![allow(clippy::disallowed_methods)] // a test process of its own: plain threads, sleeps and wall time, no ring

use crate::harness::*;

/// Where `needle` first occurs in the data directory's segment files.
fn find_in_segments(data_dir: &std::path::Path, needle: &[u8]) -> Option<(std::path::PathBuf, u64)> {
    for core in std::fs::read_dir(data_dir).ok()?.flatten() {
        let Ok(files) = std::fs::read_dir(core.path()) else { continue };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if !name.starts_with("seg-") {
                continue;
            }
            let bytes = std::fs::read(f.path()).expect("read segment");
            if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
                return Some((f.path(), at as u64));
            }
        }
    }
    None
}

/// Puts a victim and a bystander of 20,000 bytes each, stops the server (`kill`: SIGKILL, else
/// a clean stop), and damages 16 bytes at `at` from the start of the victim's data on disk.
/// Returns the data directory, the segment file, where the damage is, and the bystander.
async fn damage_an_object(name: &str, kill: bool, at: i64) -> (std::path::PathBuf, std::path::PathBuf, u64, Vec<u8>) {
    let server = Server::start(name);
    let client = server.client();
    create_bucket(&client, "cs-scrub").await;
    let victim = pattern(20_000, 71);
    put(&client, "cs-scrub", "victim", &victim).await;
    let bystander = pattern(20_000, 72);
    put(&client, "cs-scrub", "bystander", &bystander).await;
    let data_dir = if kill { server.kill() } else { server.stop() };
    let (path, data_at) = find_in_segments(&data_dir, &victim[..64]).expect("the victim's data is in a segment");
    let damaged_at = data_at.checked_add_signed(at).expect("inside the file");
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(&path).expect("open segment");
    f.write_all_at(&[0u8; 16], damaged_at).expect("damage");
    f.sync_all().expect("sync");
    (data_dir, path, damaged_at, bystander)
}

/// After a clean stop, start-up reads the index checkpoint and does not replay the damaged
/// record: the server starts, and the scrubber is what finds the damage.
#[tokio::test]
async fn scrubber_reports_damage_at_rest_and_the_object_is_refused() {
    let (data_dir, path, damaged_at, bystander) = damage_an_object("scrub", false, 10_000).await;

    let server = Server::start_on_with(data_dir, &["--scrub-every-s", "1", "--scrub-mib-per-s", "1000"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let report = loop {
        let stderr = server.stderr();
        if let Some(line) = stderr.lines().find(|l| l.contains("scrub: damaged at")) {
            break line.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no scrub finding reported within 30 s:\n{stderr}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(server.stderr().lines().any(|l| l.contains("scrub:") && l.contains("1 damaged")), "{}", server.stderr());
    assert_reported_and_refused(&server, &report, &path, damaged_at, &bystander).await;
}

/// `line` names the place (the file, and the damaged frame's offset at most an object before
/// the damaged byte) and the victim; the server refuses the victim and serves the bystander.
async fn assert_reported_and_refused(server: &Server, line: &str, path: &std::path::Path, damaged_at: u64, bystander: &[u8]) {
    assert!(line.contains(&path.display().to_string()) && line.contains("cs-scrub/victim"), "{line}");
    let offset: u64 = line.split(" offset ").nth(1).and_then(|r| r.split(':').next()).and_then(|o| o.parse().ok()).expect("offset");
    assert!(offset <= damaged_at && damaged_at - offset < 21_000, "{line}");
    let client = server.client();
    let (status, code) = expect_error(client.get_object().bucket("cs-scrub").key("victim").send().await);
    assert_eq!((status, code.as_str()), (500, "InternalError"), "damaged data is refused, never served");
    assert_same_bytes(&get(&client, "cs-scrub", "bystander").await, bystander, "the bystander");
}

/// After a crash, start-up replays the log through the damaged record. Its head still verifies
/// and a later batch proves it was acknowledged, so the server starts, says at start-up what is
/// damaged, refuses that object and serves the rest. Damage to a record's head (what the record
/// is cannot be known) makes it refuse to start, naming the file and offset, and exit (it used
/// to wait for the failed core for ever).
#[tokio::test]
async fn damage_found_at_start_up_is_reported_and_the_rest_served() {
    let (data_dir, path, damaged_at, bystander) = damage_an_object("scrub-crash", true, 10_000).await;
    let server = Server::start_on(data_dir);
    let stderr = server.stderr();
    let line = stderr.lines().find(|l| l.contains("damaged at start-up")).unwrap_or_else(|| panic!("no damage reported:\n{stderr}"));
    assert_reported_and_refused(&server, line, &path, damaged_at, &bystander).await;
}

#[tokio::test]
async fn damage_to_a_head_found_at_start_up_ends_the_process_with_the_place() {
    // 40 bytes before the data: inside the record's metadata, part of its head.
    let (data_dir, path, damaged_at, _) = damage_an_object("scrub-crash-head", true, -40).await;
    let stderr_path = data_dir.with_extension("stderr");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_corestore"))
        .arg("serve")
        .arg("--data")
        .arg(&data_dir)
        .args(["--listen", "127.0.0.1:0", "--cores", "2", "--segment-mib", "64"])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("run corestore serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("corestore serve neither started nor exited within 30 s:\n{}", std::fs::read_to_string(&stderr_path).unwrap_or_default());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let line = stderr.lines().find(|l| l.contains("corrupt record")).unwrap_or_else(|| panic!("no corruption reported:\n{stderr}"));
    assert!(line.contains(&path.display().to_string()), "{line}");
    let offset: u64 = line.split("at offset ").nth(1).and_then(|r| r.split(':').next()).and_then(|o| o.parse().ok()).expect("offset");
    assert!(offset <= damaged_at && damaged_at - offset < 21_000, "{line}");
    let _ = std::fs::remove_dir_all(&data_dir);
}
