//! Users and their keys: `users.json` in the data directory.
//!
//! A small file, read and written whole: `corestore admin user add|list|remove` edits it whether
//! the server runs or not (write to a temporary file, fsync, rename, fsync the directory), and
//! each core notices a change by its modification time, checked at most every
//! `RELOAD_CHECK_INTERVAL`. Plain blocking file I/O on the core thread: the file is tiny and
//! read rarely.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

/// How often a core looks at the file's modification time.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Access key length bounds (AWS: 16..=128).
pub const ACCESS_KEY_BYTES_MIN: usize = 3;
pub const ACCESS_KEY_BYTES_MAX: usize = 128;
pub const SECRET_KEY_BYTES_MIN: usize = 8;
pub const SECRET_KEY_BYTES_MAX: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub access_key: String,
    pub secret_key: String,
    /// The root user given at start-up (`--access-key`); it is not removable with `admin`.
    pub root: bool,
}

pub fn path(data: &Path) -> PathBuf {
    data.join("users.json")
}

/// Checks a new key pair's shape.
pub fn validate(access_key: &str, secret_key: &str) -> Result<(), String> {
    let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b',' && b != b'=');
    if !(ACCESS_KEY_BYTES_MIN..=ACCESS_KEY_BYTES_MAX).contains(&access_key.len()) || !printable(access_key) {
        return Err(format!(
            "access key {access_key:?}: {ACCESS_KEY_BYTES_MIN} to {ACCESS_KEY_BYTES_MAX} printable characters without '/', ',' or '='"
        ));
    }
    if !(SECRET_KEY_BYTES_MIN..=SECRET_KEY_BYTES_MAX).contains(&secret_key.len()) || !secret_key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("secret key: {SECRET_KEY_BYTES_MIN} to {SECRET_KEY_BYTES_MAX} printable characters"));
    }
    Ok(())
}

/// Reads the users file; a missing file is no users.
pub fn load(data: &Path) -> Result<Vec<User>, String> {
    let p = path(data);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("read {}: {e}", p.display())),
    };
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("parse {}: {e}", p.display()))?;
    let list = doc.get("users").and_then(Value::as_array).ok_or_else(|| format!("{}: no \"users\" array", p.display()))?;
    list.iter()
        .map(|u| {
            let field = |name: &str| u.get(name).and_then(Value::as_str).map(str::to_string);
            Ok(User {
                access_key: field("access_key").ok_or_else(|| format!("{}: a user without access_key", p.display()))?,
                secret_key: field("secret_key").ok_or_else(|| format!("{}: a user without secret_key", p.display()))?,
                root: u.get("root").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect()
}

/// Writes the users file atomically and durably.
pub fn save(data: &Path, users: &[User]) -> Result<(), String> {
    std::fs::create_dir_all(data).map_err(|e| format!("create {}: {e}", data.display()))?;
    let doc = json!({
        "users": users.iter().map(|u| json!({"access_key": u.access_key, "secret_key": u.secret_key, "root": u.root})).collect::<Vec<_>>()
    });
    // 0o666 before the umask: what `File::create` gave it.
    crate::files::write_durably(&path(data), serde_json::to_string_pretty(&doc).expect("json").as_bytes(), 0o666)
}

/// Adds or replaces a user.
pub fn upsert(data: &Path, user: User) -> Result<(), String> {
    validate(&user.access_key, &user.secret_key)?;
    let mut users = load(data)?;
    users.retain(|u| u.access_key != user.access_key);
    users.push(user);
    save(data, &users)
}

/// Removes a user; the root user cannot be removed.
pub fn remove(data: &Path, access_key: &str) -> Result<(), String> {
    let mut users = load(data)?;
    match users.iter().find(|u| u.access_key == access_key) {
        None => return Err(format!("no user with access key {access_key:?}")),
        Some(u) if u.root => return Err(format!("{access_key:?} is the root user (given to `corestore serve`); it cannot be removed")),
        Some(_) => {}
    }
    users.retain(|u| u.access_key != access_key);
    save(data, &users)
}

/// One core's view of the users file.
pub struct UserTable {
    data: PathBuf,
    users: Vec<User>,
    /// What the file looked like when read: modification time, inode (a rename makes a new
    /// one), length.
    version: Option<(SystemTime, u64, u64)>,
    checked: Option<engine::Instant>,
}

fn file_version(data: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path(data)).ok()?;
    Some((m.modified().ok()?, m.ino(), m.len()))
}

impl UserTable {
    pub fn new(data: PathBuf) -> Result<UserTable, String> {
        let mut t = UserTable { data, users: Vec::new(), version: None, checked: None };
        t.reload()?;
        Ok(t)
    }

    fn reload(&mut self) -> Result<(), String> {
        self.version = file_version(&self.data);
        self.users = load(&self.data)?;
        Ok(())
    }

    /// The secret of `access_key`, re-reading the file if it changed: checked at most every
    /// `RELOAD_CHECK_INTERVAL`, and at once for a key it does not know (a user just added must
    /// work on every core; a stat per unknown key is cheap).
    pub fn secret(&mut self, access_key: &str) -> Option<String> {
        let now = engine::time::now();
        let known = self.users.iter().any(|u| u.access_key == access_key);
        let due = !known || self.checked.is_none_or(|c| now >= c.saturating_add(RELOAD_CHECK_INTERVAL));
        if due {
            self.checked = Some(now);
            if file_version(&self.data) != self.version {
                // A file half-edited by hand keeps the previous table.
                let _ = self.reload();
            }
        }
        self.users.iter().find(|u| u.access_key == access_key).map(|u| u.secret_key.clone())
    }
}
