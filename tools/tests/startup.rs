//! Start-up on a machine where io_uring is missing or forbidden: a clear message and exit code
//! 2, not a panic. A child process installs a seccomp filter that makes io_uring_setup fail the
//! way a container runtime or an old kernel does, then runs the real binary.

use std::os::unix::process::CommandExt;
use std::process::Command;

const SYS_IO_URING_SETUP: u32 = 425;

/// Runs `corestore doctor` with io_uring_setup answering `errno`.
fn doctor_with_io_uring_setup_failing(errno: u32) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corestore"));
    cmd.args(["doctor", "--cores", "1"]);
    // SAFETY: pre_exec runs in the forked child before exec; it only makes two prctl calls on
    // data that lives on this stack frame.
    unsafe {
        cmd.pre_exec(move || {
            let filter = [
                // A = seccomp_data.nr
                libc::sock_filter { code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, jt: 0, jf: 0, k: 0 },
                libc::sock_filter { code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, jt: 0, jf: 1, k: SYS_IO_URING_SETUP },
                libc::sock_filter { code: libc::BPF_RET as u16, jt: 0, jf: 0, k: libc::SECCOMP_RET_ERRNO | errno },
                libc::sock_filter { code: libc::BPF_RET as u16, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW },
            ];
            let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("running corestore doctor");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn doctor_passes_on_this_machine() {
    let out = Command::new(env!("CARGO_BIN_EXE_corestore")).args(["doctor", "--cores", "1"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 1 cores started"));
}

#[test]
fn seccomp_blocked_io_uring_is_a_clear_message() {
    let (code, stderr) = doctor_with_io_uring_setup_failing(libc::EPERM as u32);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("seccomp"), "{stderr}");
    assert!(stderr.contains("Seccomp: 2"), "should name the filter mode it saw: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn kernel_without_io_uring_is_a_clear_message() {
    let (code, stderr) = doctor_with_io_uring_setup_failing(libc::ENOSYS as u32);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("CONFIG_IO_URING"), "{stderr}");
}

#[test]
fn kernel_rejecting_ring_flags_is_a_clear_message() {
    let (code, stderr) = doctor_with_io_uring_setup_failing(libc::EINVAL as u32);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("older than 6.1"), "{stderr}");
}
