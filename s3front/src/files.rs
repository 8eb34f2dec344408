//! Small files the server keeps beside its stores (the users file, the SSE master key),
//! replaced whole and durably.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `bytes` as `path`, atomically and durably: into `<name>.tmp.<pid>` beside it (created
/// with `mode`, before the umask), synced, renamed over `path`, and the folder synced, so a
/// crash leaves the old file or the new one, never a short one. The error names the path.
pub fn write_durably(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!("{name}.tmp.{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("write {}: {e}", path.display())
    })
}
