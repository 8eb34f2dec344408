//! What machine a report was measured on, and this process's resident memory.

use std::path::Path;

fn first_line(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.lines().next().unwrap_or("").trim().to_string()).unwrap_or_default()
}

pub fn describe(file: &Path) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown cpu".into());
    let cpus = engine::runtime::allowed_cpus().len();
    let kernel = first_line("/proc/sys/kernel/osrelease");
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    format!("{cpus} cpus ({cpu}), {} GiB RAM, Linux {kernel}, file on {}", mem_kib >> 20, filesystem(file))
}

/// Filesystem type and device of the directory holding `file`, from /proc/self/mounts.
pub fn filesystem(file: &Path) -> String {
    let dir = file.parent().unwrap_or(Path::new("/"));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || !dir.starts_with(f[1]) {
            continue;
        }
        if best.as_ref().is_none_or(|(len, _)| f[1].len() >= *len) {
            best = Some((f[1].len(), format!("{} ({} at {})", f[2], f[0], f[1])));
        }
    }
    best.map(|(_, s)| s).unwrap_or_else(|| "unknown filesystem".into())
}

/// Resident set size of this process in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// The process heap as glibc's malloc sees it (`mallinfo2`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Heap {
    /// Bytes in chunks handed out and not freed (including mmapped ones).
    pub live_bytes: u64,
    /// Bytes free inside the heap: fragments malloc holds but nothing uses.
    pub free_bytes: u64,
}

pub fn heap() -> Heap {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let m = unsafe { libc::mallinfo2() };
    Heap { live_bytes: (m.uordblks + m.hblkhd) as u64, free_bytes: m.fordblks as u64 }
}

/// Bytes free to an unprivileged writer on the filesystem holding `dir`.
pub fn free_bytes(dir: &std::path::Path) -> Result<u64, String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| format!("{}: path holds a NUL byte", dir.display()))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a statvfs to fill.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(format!("statvfs {}: {}", dir.display(), std::io::Error::last_os_error()));
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// The machine section of `corestore-bench all`'s report: cpus, memory, kernel, and the disk
/// and filesystem holding `dir` (where the benchmarks' files go).
pub fn markdown(dir: &Path) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("unknown").trim();
    let online = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let allowed = engine::runtime::allowed_cpus();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = |key: &str| -> u64 {
        meminfo.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
    };
    let probe = dir.join("x");
    let (device, fs) = mount_of(&probe);
    let disk = device.as_deref().map_or_else(|| "unknown".to_string(), block_device);
    let free = free_bytes(dir).map_or_else(|e| e, |b| format!("{} GiB free", b >> 30));
    let virt = first_line("/sys/class/dmi/id/sys_vendor");
    let mut md = String::new();
    md.push_str("| what | this run |\n|---|---|\n");
    md.push_str(&format!("| cpus | {online} online, {} allowed to this process ({allowed:?}); {model} |\n", allowed.len()));
    md.push_str(&format!("| memory | {} GiB ({} GiB available at start) |\n", mem_kib("MemTotal:") >> 20, mem_kib("MemAvailable:") >> 20));
    md.push_str(&format!("| kernel | Linux {} |\n", first_line("/proc/sys/kernel/osrelease")));
    md.push_str(&format!("| benchmark files | {} on {fs} ({free}) |\n", dir.display()));
    md.push_str(&format!("| disk | {disk} |\n"));
    if !virt.is_empty() {
        md.push_str(&format!("| system vendor (DMI) | {virt} |\n"));
    }
    md.push_str(&format!("| load average at start | {} |\n", first_line("/proc/loadavg")));
    md
}

/// (device, "fstype (device at mountpoint)") of the mount holding `file`.
fn mount_of(file: &Path) -> (Option<String>, String) {
    let fs = filesystem(file);
    let device = fs.split_once(" (").and_then(|(_, rest)| rest.split_whitespace().next()).map(str::to_string);
    (device, fs)
}

/// What sysfs says of a block device: size, rotational, scheduler, virtio or not.
fn block_device(device: &str) -> String {
    let name = device.trim_start_matches("/dev/");
    // A partition (vda1, nvme0n1p2) reports its queue through its parent disk.
    let disk = std::fs::read_dir("/sys/block")
        .ok()
        .and_then(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|d| name.starts_with(d.as_str())).max_by_key(|d| d.len()))
        .unwrap_or_else(|| name.to_string());
    let sys = format!("/sys/block/{disk}");
    if !Path::new(&sys).exists() {
        return format!("{device} (not a block device in /sys/block)");
    }
    let sectors: u64 = first_line(&format!("{sys}/size")).parse().unwrap_or(0);
    let rotational = match first_line(&format!("{sys}/queue/rotational")).as_str() {
        "0" => "non-rotational",
        "1" => "rotational (as the kernel is told: virtual disks often say 1)",
        _ => "rotational unknown",
    };
    let model = first_line(&format!("{sys}/device/model"));
    let bus = first_line(&format!("{sys}/device/modalias"));
    format!(
        "{device}: {} GiB, {rotational}, scheduler {}, {}{}",
        (sectors * 512) >> 30,
        first_line(&format!("{sys}/queue/scheduler")),
        if model.is_empty() { "no model in sysfs".to_string() } else { format!("model {model}") },
        if bus.is_empty() { String::new() } else { format!(", bus {bus}") },
    )
}
