//! The real runtime on the real kernel: the same workload as the simulator, a dropped in-flight
//! read, the mesh across cores, and start-up errors.

#![allow(clippy::disallowed_methods)] // std::thread::sleep below waits for a kernel-side event.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use common::{BLOCK, Model, Seen, decode};
use engine::arena::{ArenaConfig, ClassConfig};
use engine::rng::Prng;
use engine::uring::{Ring, RingConfig};
use engine::{Env, Executor, File, OpenMode, RuntimeConfig, RuntimeError, Storage};

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("engine-runtime");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

fn one_core() -> RuntimeConfig {
    let mut c = RuntimeConfig::cores(1).expect("one core");
    c.arena = ArenaConfig { classes: vec![ClassConfig { size_bytes: BLOCK, count: 128 }] };
    c
}

/// The simulator's workload on the real ring: every acknowledged write reads back after reopen.
#[test]
fn workload_on_real_ring_reads_back_everything_acknowledged() {
    let path = scratch("append.log");
    let blocks = 2000u64;
    let out = engine::run(one_core(), |core: engine::Core<()>| {
        let path = path.clone();
        async move {
            let model = Rc::new(RefCell::new(Model::default()));
            let timers = Rc::new(RefCell::new(common::TimerReport::default()));
            let mut rng = Prng::new(11);
            let t = engine::spawn({
                let (env, timers) = (core.env.clone(), timers.clone());
                async move { common::timers(&env, &mut rng, 8, 10, timers).await }
            });
            common::append_workload(&core.env, &path, 42, blocks, 16, model.clone()).await;
            t.await;
            let durable: BTreeMap<u64, u64> = model.borrow().durable.clone();
            let m = model.borrow();
            assert_eq!(m.write_errors + m.read_errors + m.sync_errors + m.corrupt_reads, 0, "{m:?}");
            let t = timers.borrow();
            assert_eq!(t.fired, 80);
            assert!(t.wake_order.windows(2).all(|w| w[0] <= w[1]), "timers out of deadline order");
            durable
        }
    })
    .expect("runtime");
    let durable = &out[0];
    assert_eq!(durable.len() as u64, blocks, "every block acknowledged after the final sync");

    // Reopen in a fresh runtime and read every block back.
    let bad = engine::run(one_core(), |core: engine::Core<()>| {
        let (path, durable) = (path.clone(), durable.clone());
        async move {
            let file = core.env.storage().open(&path, OpenMode::Existing).expect("reopen");
            assert_eq!(file.size().expect("size"), blocks * BLOCK as u64);
            let mut bad = Vec::new();
            for (block, nonce) in durable {
                let buf = core.env.storage().alloc(BLOCK).expect("arena");
                let (res, buf) = file.read_at(buf, block * BLOCK as u64, BLOCK).await;
                assert_eq!(res.expect("read"), BLOCK);
                if decode(buf.as_slice()) != (Seen::Valid { block, nonce }) {
                    bad.push(block);
                }
            }
            bad
        }
    })
    .expect("runtime");
    assert!(bad[0].is_empty(), "blocks read back wrong: {:?}", bad[0]);
}

/// A read dropped while in flight keeps its buffer until the kernel completes it: the buffer is
/// not handed out again, and when the data arrives it lands there and nowhere else.
#[test]
fn dropped_in_flight_read_does_not_free_its_buffer_early() {
    let ring = Rc::new(Ring::new(&RingConfig::default()).expect("ring"));
    let slots = 4;
    let arena = engine::Arena::new(&ArenaConfig { classes: vec![ClassConfig { size_bytes: 4096, count: slots }] }).expect("arena");
    ring.register_buffers(&arena).expect("register");
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (rd, wr) = (fds[0], fds[1]);
    let executor = Executor::new(ring.clone());
    executor.block_on(async {
        let mut buf = arena.alloc(4096).expect("alloc");
        buf.as_mut_capacity().fill(0xAA);
        let entry = io_uring::opcode::ReadFixed::new(io_uring::types::Fd(rd), buf.as_mut_ptr(), 4096, buf.buf_index()).build();
        // SAFETY: the entry points into `buf`, which the op holds; the pipe stays open.
        let mut op = unsafe { ring.op(entry, buf) };
        // Poll once so the read is submitted, let the loop turn so it reaches the kernel, then drop it.
        let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut op).poll(cx).is_pending())).await;
        assert!(polled, "a read of an empty pipe cannot complete");
        engine::yield_now().await;
        drop(op);
        assert_eq!(arena.free_counts(), vec![slots - 1], "the dropped op's buffer went back to the arena while in flight");

        // Take every other buffer and mark it; the kernel's write must land in none of them.
        let mut others: Vec<_> = (0..slots - 1).map(|_| arena.alloc(4096).expect("alloc")).collect();
        for b in &mut others {
            b.as_mut_capacity().fill(0x55);
        }
        assert!(arena.alloc(4096).is_err(), "only the in-flight buffer is left, and it is not free");
        let data = [0x42u8; 4096];
        // SAFETY: writing 4096 bytes from a valid array into the pipe.
        assert_eq!(unsafe { libc::write(wr, data.as_ptr().cast(), 4096) }, 4096);
        // Let the completion arrive.
        for _ in 0..1000 {
            engine::yield_now().await;
            if arena.free_counts() == vec![1] {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(arena.free_counts(), vec![1], "the buffer came back once the read completed");
        for b in &mut others {
            assert!(b.as_mut_capacity().iter().all(|&x| x == 0x55), "the kernel wrote into a buffer that was handed out again");
        }
        let back = arena.alloc(4096).expect("alloc");
        // SAFETY: reading the whole capacity of our own buffer.
        let bytes = unsafe { std::slice::from_raw_parts(back.as_ptr(), 4096) };
        assert!(bytes.iter().all(|&x| x == 0x42), "the read landed in its own buffer");
    });
    // SAFETY: closing our pipe fds.
    unsafe {
        libc::close(rd);
        libc::close(wr);
    }
}

/// Messages between two cores: all delivered, in order per sender, and a core blocked in
/// io_uring_enter is woken by a message.
#[test]
fn mesh_delivers_in_order_across_cores() {
    let cores = engine::runtime::allowed_cpus().len().min(4);
    let per_pair = 20_000u64;
    let config = engine::RuntimeConfig::cores(cores).expect("cores");
    let out = engine::run(config, |core: engine::Core<(usize, u64)>| async move {
        let me = core.mesh.core();
        let n = core.mesh.cores();
        let sender = engine::spawn({
            let mesh = core.mesh.clone();
            async move {
                for i in 0..per_pair {
                    for to in 0..n {
                        mesh.send(to, (me, i)).await;
                    }
                    if i % 1000 == 0 {
                        // Give the receivers a chance to go to sleep, to exercise wake-ups.
                        engine::sleep(std::time::Duration::from_micros(200)).await;
                    }
                }
            }
        });
        let mut next = vec![0u64; n];
        for _ in 0..per_pair * n as u64 {
            let (from, (sender_core, i)) = core.mesh.recv().await;
            assert_eq!(from, sender_core);
            assert_eq!(i, next[from], "out of order from core {from}");
            next[from] += 1;
        }
        sender.await;
        next
    })
    .expect("runtime");
    for next in out {
        assert!(next.iter().all(|&c| c == per_pair));
    }
}

#[test]
fn asking_for_more_cores_than_allowed_is_a_clear_error() {
    let n = engine::runtime::allowed_cpus().len() + 1;
    let err = engine::RuntimeConfig::cores(n).expect_err("too many cores");
    assert!(matches!(err, RuntimeError::Config(_)));
    assert!(err.to_string().contains("--cores"), "{err}");
}

#[test]
fn open_missing_file_names_the_path() {
    let out = engine::run(one_core(), |core: engine::Core<()>| async move {
        let path = scratch("does-not-exist");
        let _ = std::fs::remove_file(&path);
        match core.env.storage().open(&path, OpenMode::Existing) {
            Ok(_) => panic!("opened a missing file"),
            Err(e) => e.to_string(),
        }
    })
    .expect("runtime");
    assert!(out[0].contains("does-not-exist"), "{}", out[0]);
    assert!(out[0].contains("No such file"), "{}", out[0]);
}

/// A zero-copy send posts its result, then a notification once the kernel no longer reads the
/// buffer (for TCP: once the peer has the data). The op resolves only with the notification,
/// with the byte count of the first CQE; a dropped op's buffer stays out of the arena until the
/// notification too; and the peer receives exactly the buffer's bytes.
#[test]
fn send_zc_resolves_and_frees_its_buffer_only_after_the_notification() {
    use engine::uring::io_uring::{opcode, types};
    use std::io::Read;
    use std::os::fd::AsRawFd;

    const LEN: usize = 64 << 10;
    let ring = Rc::new(Ring::new(&RingConfig::default()).expect("ring"));
    let arena = engine::Arena::new(&ArenaConfig { classes: vec![ClassConfig { size_bytes: LEN, count: 2 }] }).expect("arena");
    ring.register_buffers(&arena).expect("register");

    // The receiver's window is a few KiB (SO_RCVBUF is set on the listener, so the handshake
    // already advertises it) and it reads only when told: most of a send stays queued on our
    // side, so its notification waits for the reader, while the send's result does not.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    set_sockopt(listener.as_raw_fd(), libc::SO_RCVBUF, 4096);
    let sender = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    set_sockopt(sender.as_raw_fd(), libc::SO_SNDBUF, 1 << 20);
    let (mut receiver, _) = listener.accept().expect("accept");
    let (go, go_rx) = std::sync::mpsc::channel::<usize>();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        for len in go_rx {
            let mut chunk = vec![0u8; len];
            receiver.read_exact(&mut chunk).expect("read");
            got.extend_from_slice(&chunk);
        }
        got
    });
    let pattern = |seed: u8| (0..LEN).map(move |i| (i as u8).wrapping_mul(31).wrapping_add(seed));
    let fd = types::Fd(sender.as_raw_fd());
    let send_zc = |seed: u8| {
        let mut buf = arena.alloc(LEN).expect("alloc");
        for (b, v) in buf.as_mut_slice().iter_mut().zip(pattern(seed)) {
            *b = v;
        }
        let entry = opcode::SendZc::new(fd, buf.as_ptr(), LEN as u32)
            .buf_index(Some(buf.buf_index()))
            .zc_flags(engine::uring::SEND_ZC_REPORT_USAGE)
            .build();
        // SAFETY: the entry points into `buf`, which the op holds; the socket outlives the op.
        unsafe { ring.op(entry, buf) }
    };

    let executor = Executor::new(ring.clone());
    executor.block_on(async {
        // (a) The op resolves with the byte count, and not before the notification.
        let base = ring.stats();
        let mut op = send_zc(1);
        assert!(still_pending(&mut op).await, "a send is not done before it is submitted");
        let first_in = turn_until(|| ring.stats().cqes > base.cqes).await;
        assert!(first_in, "the send's first CQE never came");
        assert_eq!(ring.stats().notifs, base.notifs, "notification before the reader read anything");
        assert!(still_pending(&mut op).await, "the op resolved on its first CQE, while the kernel still holds the buffer");
        go.send(LEN).expect("reader");
        let (completion, buf) = op.completion().await;
        assert_eq!(completion.result, LEN as i32, "the op resolves with the first CQE's byte count");
        assert!(completion.notification.is_some(), "the op resolved without its notification");
        let after = ring.stats();
        assert_eq!(after.cqes - base.cqes, 2, "result and notification");
        assert_eq!(after.notifs - base.notifs, 1);
        drop(buf);
        assert_eq!(arena.free_counts(), vec![2]);

        // (b) Dropped before its result came in, and dropped after: either way the buffer stays
        // out of the arena until the notification.
        for (seed, drop_after_result) in [(2u8, false), (3, true)] {
            let base = ring.stats();
            let mut op = send_zc(seed);
            assert!(still_pending(&mut op).await);
            if drop_after_result {
                assert!(turn_until(|| ring.stats().cqes > base.cqes).await, "the send's first CQE never came");
            }
            drop(op);
            assert!(turn_until(|| ring.stats().cqes > base.cqes).await, "the send's first CQE never came");
            for _ in 0..20 {
                engine::yield_now().await;
            }
            assert_eq!(ring.stats().notifs, base.notifs, "notification before the reader read anything");
            assert_eq!(arena.free_counts(), vec![1], "the dropped send's buffer went back before its notification");
            go.send(LEN).expect("reader");
            let back = turn_until(|| {
                let free = arena.free_counts() == vec![2];
                assert!(!free || ring.stats().notifs == base.notifs + 1, "buffer back before the notification");
                free
            })
            .await;
            assert!(back, "the dropped send's buffer never came back");
        }
        let copied = ring.stats().notifs_copied;
        eprintln!("send_zc on loopback: {copied} of 3 notifications say the kernel copied the data");
    });
    drop(go);
    // (c) The peer got every buffer's bytes, in order.
    let got = reader.join().expect("reader thread");
    assert_eq!(got.len(), 3 * LEN);
    for (i, seed) in [1u8, 2, 3].into_iter().enumerate() {
        assert!(got[i * LEN..(i + 1) * LEN].iter().copied().eq(pattern(seed)), "bytes of send {seed} differ");
    }
}

/// Polls `op` once: true if it is still pending.
async fn still_pending<F: std::future::Future + Unpin>(op: &mut F) -> bool {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *op).poll(cx).is_pending())).await
}

fn set_sockopt(fd: i32, option: i32, value: i32) {
    // SAFETY: a c_int option value of the right size for SOL_SOCKET options.
    let r = unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, option, (&value as *const i32).cast(), std::mem::size_of::<i32>() as libc::socklen_t)
    };
    assert_eq!(r, 0, "setsockopt {option}: {}", std::io::Error::last_os_error());
}

/// Turns the loop until `done` holds, for at most about 5 s.
async fn turn_until(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..5000 {
        engine::yield_now().await;
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    false
}

/// With every op slot taken, an op waiting for a slot is dropped and another waits: when a slot
/// frees, the live waiter must get it (a stale waker left by the dropped one used to take the
/// only wake-up).
#[test]
fn a_dropped_slot_waiter_does_not_swallow_the_wake_up() {
    // 1 SQ entry -> 2 CQ entries -> 2 op slots.
    let ring = Rc::new(Ring::new(&RingConfig { entries: 1, sqpoll_idle_ms: None, files_max: 4 }).expect("ring"));
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (rd, wr) = (fds[0], fds[1]);
    let read_op = |ring: &Rc<Ring>| {
        let buf = Box::new([0u8; 1]);
        let ptr = buf.as_ptr() as *mut u8;
        let entry = engine::uring::io_uring::opcode::Read::new(engine::uring::io_uring::types::Fd(rd), ptr, 1).build();
        // SAFETY: the entry points into `buf`, which the op holds; the pipe stays open.
        unsafe { ring.op(entry, buf) }
    };
    let executor = Executor::new(ring.clone());
    executor.block_on(async {
        // Two reads of an empty pipe take both slots.
        let a = engine::spawn(read_op(&ring));
        let b = engine::spawn(read_op(&ring));
        engine::yield_now().await;
        // A third op waits for a slot, then is dropped while waiting.
        let mut waiting = Box::pin(read_op(&ring));
        let pending = std::future::poll_fn(|cx| std::task::Poll::Ready(waiting.as_mut().poll(cx).is_pending())).await;
        assert!(pending, "no slot is free");
        drop(waiting);
        // A fourth op waits for real.
        let live = engine::spawn(read_op(&ring));
        engine::yield_now().await;
        // One byte completes one of the first two reads and frees its slot; the other stays
        // pending, so the only way the live op reaches the kernel is through that freed slot.
        assert_eq!(ring.stats().sqes, 2);
        // SAFETY: writing one byte into our pipe.
        assert_eq!(unsafe { libc::write(wr, b"x".as_ptr().cast(), 1) }, 1);
        for _ in 0..200 {
            engine::sleep(std::time::Duration::from_millis(1)).await;
            if ring.stats().sqes == 3 {
                break;
            }
        }
        assert_eq!(ring.stats().sqes, 3, "a slot freed, but the live waiter never submitted its op");
        // Two more bytes finish the remaining reads so the executor ends cleanly.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::write(wr, b"yz".as_ptr().cast(), 2) }, 2);
        let _ = (a.await, b.await, live.await);
    });
    // SAFETY: closing our pipe fds.
    unsafe {
        libc::close(rd);
        libc::close(wr);
    }
}

/// A turn whose tasks keep the core busy hands queued storage I/O to the kernel before the turn
/// ends (`SUBMIT_DELAY_NS_MAX`): the fsync a first task queued is submitted by the time a third
/// task runs, because the second one ran long; a turn of quick tasks keeps its one enter, and so
/// does a long turn that queued only non-storage ops (sockets cost less batched).
#[test]
fn a_long_turn_submits_queued_storage_io_before_it_ends() {
    let ring = Rc::new(Ring::new(&RingConfig { entries: 8, sqpoll_idle_ms: None, files_max: 4 }).expect("ring"));
    let executor = Executor::new(ring.clone());
    let file = std::fs::File::create(scratch("mid-turn-fsync")).expect("scratch file");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let fsync = |ring: &Rc<Ring>| {
        let entry = engine::uring::io_uring::opcode::Fsync::new(engine::uring::io_uring::types::Fd(fd)).build();
        // SAFETY: an fsync points at no memory; the file outlives the executor below.
        unsafe { ring.op(entry, ()) }
    };
    let nop = |ring: &Rc<Ring>| {
        let entry = engine::uring::io_uring::opcode::Nop::new().build();
        // SAFETY: a Nop points at no memory.
        unsafe { ring.op(entry, ()) }
    };
    let spin = |d: std::time::Duration| {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < d {
            std::hint::spin_loop();
        }
    };
    let long = std::time::Duration::from_nanos(engine::limits::SUBMIT_DELAY_NS_MAX * 10);
    executor.block_on(async {
        for (storage, busy, submitted_mid_turn) in
            [(true, long, true), (true, std::time::Duration::ZERO, false), (false, long, false)]
        {
            let base = ring.stats();
            let queued = if storage { engine::spawn(fsync(&ring)) } else { engine::spawn(nop(&ring)) };
            let busy_task = engine::spawn(async move { spin(busy) });
            let r = ring.clone();
            let observer = engine::spawn(async move { r.stats() });
            let seen = observer.await;
            assert_eq!(seen.sqes, base.sqes + 1, "the first task queued its op");
            assert_eq!(
                seen.enters > base.enters,
                submitted_mid_turn,
                "storage {storage}, busy for {busy:?}: enters {} -> {} before the turn ended",
                base.enters,
                seen.enters
            );
            let _ = (queued.await, busy_task.await);
        }
    });
}
