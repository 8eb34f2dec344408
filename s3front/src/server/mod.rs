//! `corestore serve`: the S3 server on the thread-per-core runtime.
//!
//! Every core binds the listening address (SO_REUSEPORT), accepts its own connections, parses
//! HTTP on its own ring and authenticates. Each object belongs to one core (`engine::route` of
//! `bucket/key`); the connection's core hands the request to the owner with a cross-core call
//! ([`rpc::call`]) unless it is the owner itself. Buckets live in core 0's store; every core
//! keeps a copy of the bucket table, updated by core 0 before a bucket change is acknowledged.
//!
//! Invariants: a core touches only its own store; data crosses cores only inside call
//! messages (moved, never shared); an object write is acknowledged only after the owner's store
//! made it durable.

mod authz;
mod cache;
mod conn;
mod encrypt;
mod handlers;
pub mod meta;
mod objects;
mod post_object;
mod rpc;
pub mod users;
mod lifecycle;
mod versions;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use engine::LinuxEnv;
use engine::mesh::MeshEndpoint;
use engine::store::{ScrubReport, Store, StoreConfig, StoreError};

pub use conn::SEND_TIMEOUT;
pub use rpc::Job;

/// The internal bucket of core 0 that holds the bucket table.
const BUCKETS_BUCKET: &[u8] = b"\0buckets";
/// Default listening address.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:9000";
/// Submission queue entries of each core's ring (completion slots: twice as many): room for
/// about 30,000 connections and disk operations in flight per core.
pub const RING_ENTRIES: u32 = 16_384;
/// `bucket/key` fits in this many bytes (63 + 1 + 1024, rounded up).
const OWNER_NAME_BYTES_MAX: usize = 1152;
/// Default region.
pub const REGION_DEFAULT: &str = "us-east-1";

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub cores: Option<usize>,
    pub region: String,
    /// Virtual-hosted-style addressing: requests to `<bucket>.<domain>` name the bucket in the host.
    pub domains: Vec<String>,
    /// The root user's keys (`--access-key/--secret-key`); none: generated on first start.
    pub root: Option<(String, String)>,
    /// Size of each core's segment files (preallocated).
    pub segment_bytes: u64,
    /// Multipart uploads not completed or aborted within this long are aborted (space reclaimed).
    pub abandoned_upload_after: std::time::Duration,
    /// Memory each core gives its cache of recently read objects (0: none).
    pub cache_bytes_per_core: usize,
    /// How fast each core's scrubber re-reads and verifies its whole log (0: no scrubbing).
    pub scrub_bytes_per_s: u64,
    /// The wait after a scrub pass before the next; the first begins after this or
    /// `SCRUB_FIRST_DELAY`, whichever is shorter.
    pub scrub_every: std::time::Duration,
    /// The length of a lifecycle rule's day (`lifecycle::DAY_MS` but in tests).
    pub lifecycle_day: std::time::Duration,
    /// How long one send of a response (up to 1 MiB of it) may wait on a client that does not
    /// read before the connection is closed (`conn::SEND_TIMEOUT` by default).
    pub send_timeout: std::time::Duration,
    /// Serve HTTPS with the certificate and key in these files (`--tls-cert/--tls-key`), read
    /// again on SIGHUP; none: plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// Where the server's certificate chain and key are (PEM).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn load(&self) -> Result<net::ServerIdentity, String> {
        net::ServerIdentity::from_pem_files(&self.cert, &self.key)
    }
}

/// How long after start-up the first scrub pass begins (at most): start-up's own reads go first.
const SCRUB_FIRST_DELAY: std::time::Duration = std::time::Duration::from_secs(60);

/// Reports a scrub pass of core `core` on stderr: what it verified and every damaged place it
/// found (file, offset, the record where its head still names it). Reads of a damaged record
/// fail with the same location.
fn report_scrub(core: usize, pass: Result<&ScrubReport, &StoreError>, took: std::time::Duration) {
    let r = match pass {
        Ok(r) => r,
        Err(e) => return eprintln!("corestore: core {core}: scrub failed: {e}"),
    };
    eprintln!(
        "corestore: core {core}: scrub: {} frames ({} MiB) in {} segments verified in {:.1} s, {} damaged{}",
        r.frames,
        r.bytes >> 20,
        r.segments,
        took.as_secs_f64(),
        r.corrupt.len(),
        if r.unverified_bytes > 0 { format!(" ({} bytes unverified)", r.unverified_bytes) } else { String::new() },
    );
    for c in &r.corrupt {
        eprintln!("corestore: core {core}: scrub: damaged at {} offset {}: {}", c.path.display(), c.offset, c.what);
    }
}

/// How often each core looks for abandoned multipart uploads.
const ABANDONED_UPLOAD_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Aborts this core's multipart uploads older than `after`, every check interval, until stopped.
async fn reap_abandoned_uploads(shard: Rc<Shard>, after: std::time::Duration) {
    loop {
        engine::sleep(ABANDONED_UPLOAD_CHECK_INTERVAL.min(after)).await;
        let now_ms = unix_now_ms();
        for l in shard.store.list(handlers::UPLOADS_BUCKET, b"", None, usize::MAX) {
            let started_ms = match shard.store.get(handlers::UPLOADS_BUCKET, &l.key).await {
                Ok(Some(o)) => meta::ObjectMeta::decode(o.meta()).map_or(0, |m| m.modified_ms),
                _ => continue,
            };
            if now_ms.saturating_sub(started_ms) < after.as_millis() as u64 {
                continue;
            }
            if let Err(e) = handlers::abort_if_open(&shard, &l.key).await {
                eprintln!("corestore: core {}: aborting an abandoned upload: {e}", shard.core);
            }
        }
    }
}

/// Set by SIGTERM or SIGINT: every core stops accepting, checkpoints its store and returns.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// How often a core looks at `STOP`.
const STOP_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Counts SIGHUPs: every core reads the certificate files again when it changes (a renewed
/// certificate takes effect without a restart, as certbot's `systemctl reload` expects).
static TLS_RELOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// How often a core looks at `TLS_RELOADS`.
const TLS_RELOAD_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

extern "C" fn on_reload_signal(_: libc::c_int) {
    TLS_RELOADS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

fn install_stop_handler() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_stop_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_stop_signal as *const () as libc::sighandler_t);
        // Without TLS a SIGHUP changes nothing; it never ends the server, as it would by default.
        libc::signal(libc::SIGHUP, on_reload_signal as *const () as libc::sighandler_t);
    }
}

/// The TLS configuration a core gives new connections; replaced on SIGHUP.
type TlsConfig = Rc<RefCell<Arc<net::rustls::ServerConfig>>>;

/// On each SIGHUP, reads the certificate and key again and gives new connections the new
/// configuration (connections already open keep theirs). Files that do not load leave the
/// old configuration serving, with the reason on stderr.
async fn reload_tls_on_sighup(core: usize, files: TlsFiles, current: TlsConfig) {
    let mut seen = TLS_RELOADS.load(std::sync::atomic::Ordering::SeqCst);
    loop {
        engine::sleep(TLS_RELOAD_CHECK_INTERVAL).await;
        let now = TLS_RELOADS.load(std::sync::atomic::Ordering::SeqCst);
        if now == seen {
            continue;
        }
        seen = now;
        match files.load().and_then(|identity| identity.server_config().map_err(|e| e.to_string())) {
            Ok(config) => {
                *current.borrow_mut() = config;
                if core == 0 {
                    println!("corestore: TLS certificate reloaded from {}", files.cert.display());
                    use std::io::Write;
                    let _ = std::io::stdout().flush();
                }
            }
            Err(e) => eprintln!("corestore: core {core}: TLS reload failed, the old certificate stays: {e}"),
        }
    }
}

async fn stop_requested() {
    while !STOP.load(std::sync::atomic::Ordering::SeqCst) {
        engine::sleep(STOP_CHECK_INTERVAL).await;
    }
}

/// The first of two futures to finish (the other is dropped).
async fn first<A, B>(a: impl Future<Output = A>, b: impl Future<Output = B>) -> Result<A, B> {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
            return std::task::Poll::Ready(Ok(v));
        }
        b.as_mut().poll(cx).map(Err)
    })
    .await
}

/// A bucket, as every core knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketInfo {
    pub owner: String,
    pub created_ms: u64,
    /// The bucket's grants (`acl`): `acl::private(owner)` unless it was given others.
    pub acl: Vec<crate::acl::Grant>,
    /// The bucket's tags, sorted by key (`tagging::TagSet`); `None` when it has no tag set
    /// (GetBucketTagging answers NoSuchTagSet), which differs from an empty one.
    pub tags: Option<Vec<(String, String)>>,
    /// The bucket's CORS rules (`cors`); `None` when it has none (GetBucketCors answers
    /// NoSuchCORSConfiguration, and cross-origin requests get no CORS headers).
    pub cors: Option<Vec<crate::cors::CorsRule>>,
    /// The bucket's lifecycle rules (`lifecycle`); `None` when it has none. Shared: a GET of
    /// an object they cover names its expiry, and takes them without copying them.
    pub lifecycle: Option<Arc<Vec<crate::lifecycle::Rule>>>,
    /// The bucket's policy (`policy`); `None` when it has none.
    pub policy: Option<Arc<BucketPolicy>>,
    /// The bucket's public access block; `None` when it has none (nothing blocked).
    pub public_access_block: Option<crate::acl::PublicAccessBlock>,
    /// The bucket's object ownership setting; `None` when never set (the writer owns).
    pub ownership: Option<crate::acl::ObjectOwnership>,
    /// The bucket's versioning; `None` while never set (unversioned: each key one object
    /// under its own name). Once set it is never unset, only suspended, as in S3.
    pub versioning: Option<crate::versioning::Versioning>,
    /// The bucket's Object Lock configuration; `None` while Object Lock is off (it can be
    /// turned on, never off).
    pub object_lock: Option<crate::object_lock::LockConfiguration>,
    /// The bucket's default encryption (SSE-S3 for writes that ask for none); `None` when unset.
    pub encryption: Option<crate::sse::BucketDefault>,
}

impl BucketInfo {
    /// Whether ACLs are off here (`BucketOwnerEnforced`).
    pub fn acls_disabled(&self) -> bool {
        self.ownership == Some(crate::acl::ObjectOwnership::BucketOwnerEnforced)
    }
}

/// A bucket policy: the document as its owner gave it (GetBucketPolicy answers it so), and
/// what it says.
#[derive(Debug, PartialEq, Eq)]
pub struct BucketPolicy {
    pub document: String,
    pub policy: crate::policy::Policy,
}

impl BucketInfo {
    fn encode(&self) -> Vec<u8> {
        let acl: Vec<String> = self.acl.iter().map(crate::acl::Grant::encode).collect();
        let mut v = serde_json::json!({"owner": self.owner, "created_ms": self.created_ms, "acl": acl});
        if let Some(tags) = &self.tags {
            v["tags"] = tags.iter().map(|(k, t)| serde_json::json!([k, t])).collect();
        }
        if let Some(rules) = &self.cors {
            v["cors"] = crate::cors::to_json(rules);
        }
        // Kept as the document GetBucketLifecycleConfiguration answers, read back by the same
        // parser that took it.
        if let Some(p) = &self.policy {
            v["policy"] = p.document.clone().into();
        }
        if let Some(o) = self.ownership {
            v["ownership"] = o.as_str().into();
        }
        if let Some(s) = self.versioning {
            v["versioning"] = s.as_str().into();
        }
        if let Some(lock) = &self.object_lock {
            v["object_lock"] = String::from_utf8_lossy(&crate::xml::responses::object_lock_configuration(lock)).into_owned().into();
        }
        if let Some(e) = &self.encryption {
            v["encryption"] = serde_json::json!({"bucket_key_enabled": e.bucket_key_enabled, "kms_key_id": e.kms_key_id});
        }
        if let Some(b) = &self.public_access_block {
            v["public_access_block"] = serde_json::json!([b.block_public_acls, b.ignore_public_acls, b.block_public_policy, b.restrict_public_buckets]);
        }
        if let Some(rules) = &self.lifecycle {
            v["lifecycle"] = String::from_utf8_lossy(&crate::xml::lifecycle_configuration(rules)).into_owned().into();
        }
        v.to_string().into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<BucketInfo> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let owner = v.get("owner")?.as_str()?.to_string();
        let acl = match v.get("acl") {
            Some(grants) => grants.as_array()?.iter().map(|g| crate::acl::Grant::decode(g.as_str()?)).collect::<Option<Vec<_>>>()?,
            // Written before ACLs (session 11): `public_read` was the only choice.
            None if v.get("public_read").and_then(|p| p.as_bool()) == Some(true) => {
                crate::acl::canned("public-read", &owner, &owner).expect("a canned ACL S3 has")
            }
            None => crate::acl::private(&owner),
        };
        Some(BucketInfo {
            created_ms: v.get("created_ms")?.as_u64()?,
            acl,
            owner,
            tags: match v.get("tags") {
                None => None,
                Some(tags) => Some(
                    tags.as_array()?
                        .iter()
                        .map(|pair| Some((pair.get(0)?.as_str()?.to_string(), pair.get(1)?.as_str()?.to_string())))
                        .collect::<Option<Vec<_>>>()?,
                ),
            },
            cors: match v.get("cors") {
                None => None,
                Some(rules) => Some(crate::cors::from_json(rules)?),
            },
            policy: match v.get("policy") {
                None => None,
                Some(doc) => {
                    let document = doc.as_str()?.to_string();
                    let policy = crate::policy::parse(document.as_bytes(), None).ok()?;
                    Some(Arc::new(BucketPolicy { document, policy }))
                }
            },
            object_lock: match v.get("object_lock") {
                None => None,
                Some(doc) => Some(crate::xml::parse_object_lock_configuration(doc.as_str()?.as_bytes()).ok()?),
            },
            versioning: match v.get("versioning") {
                None => None,
                Some(s) => Some(crate::versioning::Versioning::parse(s.as_str()?)?),
            },
            ownership: match v.get("ownership") {
                None => None,
                Some(o) => Some(crate::acl::ObjectOwnership::parse(o.as_str()?)?),
            },
            public_access_block: match v.get("public_access_block") {
                None => None,
                Some(flags) => {
                    let flag = |i: usize| flags.get(i).and_then(serde_json::Value::as_bool);
                    Some(crate::acl::PublicAccessBlock {
                        block_public_acls: flag(0)?,
                        ignore_public_acls: flag(1)?,
                        block_public_policy: flag(2)?,
                        restrict_public_buckets: flag(3)?,
                    })
                }
            },
            lifecycle: match v.get("lifecycle") {
                None => None,
                Some(doc) => Some(Arc::new(crate::xml::parse_lifecycle_configuration(doc.as_str()?.as_bytes()).ok()?)),
            },
            encryption: match v.get("encryption") {
                None => None,
                Some(e) => Some(crate::sse::BucketDefault {
                    bucket_key_enabled: e.get("bucket_key_enabled")?.as_bool()?,
                    kms_key_id: match e.get("kms_key_id") {
                        None | Some(serde_json::Value::Null) => None,
                        Some(id) => Some(id.as_str()?.to_string()),
                    },
                }),
            },
        })
    }
}

/// One core's server state.
pub struct Shard {
    pub core: usize,
    pub cores: usize,
    pub env: LinuxEnv,
    pub store: Store<LinuxEnv>,
    pub mesh: MeshEndpoint<Job>,
    rpc: rpc::Rpc,
    pub config: Arc<ServeConfig>,
    pub buckets: RefCell<BTreeMap<String, BucketInfo>>,
    pub users: RefCell<users::UserTable>,
    /// The key that seals SSE-S3 objects' keys (`sse`).
    pub sse_master: crate::sse::MasterKey,
    /// Streams in progress on this core (uploads being chunked, large reads holding chunks).
    sessions: RefCell<objects::Sessions>,
    /// Writes in progress per bucket, and buckets being deleted (objects.rs).
    bucket_writes: RefCell<objects::BucketWrites>,
    /// Recently read objects, by key and record lsn (see cache.rs).
    cache: RefCell<cache::ObjectCache>,
    next_request: Cell<u64>,
    /// Multipart uploads with a commit in progress (part, complete, abort), and who waits.
    upload_locks: engine::keylock::KeyLocks,
    /// The last version stamp this core gave (`versions::new_stamp`).
    last_stamp: Cell<u64>,
    /// Start-up: this core holds core 0's bucket table; (core 0) cores ready to serve.
    table_ready: Cell<bool>,
    cores_ready: Cell<usize>,
    startup_waker: RefCell<Option<std::task::Waker>>,
}

impl Shard {
    /// The core that owns `bucket`/`key`.
    pub fn owner(&self, bucket: &str, key: &str) -> usize {
        // On the stack: bucket names (63) and keys (1024) are bounded, and this runs per request.
        let mut name = [0u8; OWNER_NAME_BYTES_MAX];
        let len = bucket.len() + 1 + key.len();
        if len > OWNER_NAME_BYTES_MAX {
            return engine::route(format!("{bucket}/{key}").as_bytes(), self.cores);
        }
        name[..bucket.len()].copy_from_slice(bucket.as_bytes());
        name[bucket.len()] = b'/';
        name[bucket.len() + 1..len].copy_from_slice(key.as_bytes());
        engine::route(&name[..len], self.cores)
    }

    /// Serialises the commits of one multipart upload: a part must not land after the upload
    /// completed (its chunks would then belong to the object and to the part).
    pub async fn upload_lock(&self, key: &[u8]) -> engine::keylock::KeyGuard {
        self.upload_locks.lock(key.to_vec()).await
    }

    /// Serialises the versioned writes of one key (a new version reads which null version it
    /// supersedes, and takes a stamp above the newest).
    pub async fn version_lock(&self, bucket: &str, key: &str) -> engine::keylock::KeyGuard {
        let mut lock = crate::versioning::store_bucket(bucket).into_bytes();
        lock.push(b'/');
        lock.extend_from_slice(key.as_bytes());
        self.upload_locks.lock(lock).await
    }

    /// Serialises changes to one bucket's stored description (on core 0): creation, deletion,
    /// ACL and tags. A NUL first byte keeps these keys apart from uploads' (`upload_lock`).
    pub async fn bucket_lock(&self, bucket: &str) -> engine::keylock::KeyGuard {
        let mut key = b"\0bucket/".to_vec();
        key.extend_from_slice(bucket.as_bytes());
        self.upload_locks.lock(key).await
    }

    /// A request id unique in this process: core, then a per-core count.
    pub fn request_id(&self) -> String {
        let n = self.next_request.get();
        self.next_request.set(n + 1);
        format!("{:04X}{:012X}", self.core, n)
    }
}

/// Wall-clock time for S3 (Last-Modified, SigV4 skew checks). The one place the server reads it.
#[allow(clippy::disallowed_methods)] // S3 timestamps are wall-clock time by definition
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The data directory's layout: one store per core. The core count is fixed at the first start
/// (objects are placed by it); starting with another count is refused.
fn check_layout(data: &std::path::Path, cores: usize) -> Result<(), String> {
    std::fs::create_dir_all(data).map_err(|e| format!("create data directory {}: {e}", data.display()))?;
    let layout = data.join("layout.json");
    match std::fs::read_to_string(&layout) {
        Ok(text) => {
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", layout.display()))?;
            let stored = v.get("cores").and_then(|c| c.as_u64()).ok_or_else(|| format!("{}: no core count", layout.display()))?;
            if stored as usize != cores {
                return Err(format!(
                    "{} was created with {stored} cores and objects are placed by that count; start with --cores {stored}",
                    data.display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = serde_json::json!({"cores": cores, "version": 1}).to_string();
            std::fs::write(&layout, text).map_err(|e| format!("write {}: {e}", layout.display()))?;
            std::fs::File::open(data).and_then(|d| d.sync_all()).map_err(|e| format!("sync {}: {e}", data.display()))
        }
        Err(e) => Err(format!("read {}: {e}", layout.display())),
    }
}

/// Binds (without listening) a SO_REUSEPORT socket to `addr` and keeps it for the life of the
/// process: it learns the port when `addr` says port 0, and holds the port so that no other
/// process can join the reuse group between now and the cores binding it. A socket that does
/// not listen is never handed connections.
fn reserve_port(addr: SocketAddr) -> Result<SocketAddr, String> {
    let fail = |what: &str| format!("reserve {addr}: {what}: {}", std::io::Error::last_os_error());
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket calls on a descriptor we own; the sockaddr buffers outlive the calls.
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(fail("socket"));
        }
        let one: libc::c_int = 1;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            if libc::setsockopt(fd, libc::SOL_SOCKET, opt, (&one as *const libc::c_int).cast(), 4) != 0 {
                return Err(fail("setsockopt"));
            }
        }
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        if libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len as libc::socklen_t) != 0 {
            return Err(fail("bind"));
        }
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, (&mut storage as *mut libc::sockaddr_storage).cast(), &mut len) != 0 {
            return Err(fail("getsockname"));
        }
        let port = match addr {
            SocketAddr::V4(_) => u16::from_be((*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()).sin_port),
            SocketAddr::V6(_) => u16::from_be((*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()).sin6_port),
        };
        // Deliberately never closed: it reserves the port for as long as the server runs.
        Ok(SocketAddr::new(addr.ip(), port))
    }
}

/// Makes sure a root user exists; returns its access key.
fn ensure_root(config: &ServeConfig) -> Result<(String, bool), String> {
    if let Some((ak, sk)) = &config.root {
        let existing = users::load(&config.data)?;
        let same = existing.iter().any(|u| u.root && u.access_key == *ak && u.secret_key == *sk);
        if !same {
            let mut others: Vec<users::User> = existing.into_iter().filter(|u| !u.root && u.access_key != *ak).collect();
            users::validate(ak, sk)?;
            others.push(users::User { access_key: ak.clone(), secret_key: sk.clone(), root: true });
            users::save(&config.data, &others)?;
        }
        return Ok((ak.clone(), false));
    }
    if let Some(root) = users::load(&config.data)?.into_iter().find(|u| u.root) {
        return Ok((root.access_key, false));
    }
    let random = |n: usize| -> Result<String, String> {
        let mut bytes = vec![0u8; n];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
            .map_err(|e| format!("read /dev/urandom: {e}"))?;
        Ok(bytes.iter().map(|b| (b'A' + b % 26) as char).collect())
    };
    let (ak, sk) = (format!("CS{}", random(18)?), random(40)?);
    users::upsert(&config.data, users::User { access_key: ak.clone(), secret_key: sk.clone(), root: true })?;
    println!("corestore: generated root secret key {sk} (kept in {})", users::path(&config.data).display());
    Ok((ak, true))
}

/// Runs the server until the process is stopped.
pub fn serve(config: ServeConfig) -> Result<(), String> {
    let runtime = match config.cores {
        Some(n) => engine::RuntimeConfig::cores(n),
        None => Ok(engine::RuntimeConfig::all_cores()),
    }
    .map_err(|e| e.to_string())?;
    let mut runtime = runtime;
    // Every open connection keeps a receive in flight, and each op holds a completion slot
    // until it completes: the ring must have room for every connection a core may hold idle
    // (the default 512 slots stalled new requests behind 511 idle connections).
    runtime.ring.entries = RING_ENTRIES;
    let cores = runtime.cpus.len();
    check_layout(&config.data, cores)?;
    if let Some(files) = &config.tls {
        files.load()?;
    }
    let (access_key, _generated) = ensure_root(&config)?;
    let sse_master = crate::sse::MasterKey::load_or_create(&config.data)?;
    let listen = reserve_port(config.listen)?;
    install_stop_handler();
    let config = Arc::new(ServeConfig { listen, ..config });
    println!("corestore: data directory {}", config.data.display());
    println!("corestore: {cores} cores, region {}", config.region);
    println!("corestore: root access key {access_key}");
    let results = engine::run(runtime, |core: engine::Core<Job>| {
        let config = config.clone();
        let sse_master = sse_master.clone();
        async move {
            let result = run_core(core, config, sse_master).await;
            if let Err(e) = &result
                && !STOP.load(std::sync::atomic::Ordering::SeqCst)
            {
                // The other cores would wait for this one for ever at start-up, or serve without
                // it: end the process with the reason (a store that refuses to open names the
                // file and offset). Every store is crash-safe, so this is like a crash.
                eprintln!("corestore: {e}");
                std::process::exit(1);
            }
            result
        }
    })
    .map_err(|e| e.to_string())?;
    results.into_iter().collect::<Result<Vec<()>, String>>().map(|_| ())
}

/// Part records whose upload is gone (completed or aborted before a crash cut the cleanup short)
/// are deleted; their chunks belong to the completed object or to nobody (collected next).
async fn remove_stale_parts(shard: &Shard) -> Result<(), String> {
    for l in shard.store.list(handlers::PARTS_BUCKET, b"", None, usize::MAX) {
        let Some(at) = l.key.iter().rposition(|&c| c == 0) else { continue };
        let upload = &l.key[..at];
        if shard.store.list(handlers::UPLOADS_BUCKET, upload, None, 1).first().is_none_or(|u| &*u.key != upload) {
            shard
                .store
                .delete_keeping_chunks(handlers::PARTS_BUCKET, &l.key)
                .await
                .map_err(|e| format!("core {}: remove a stale part: {e}", shard.core))?;
        }
    }
    Ok(())
}

/// On core 0: sends core `to` the bucket table, taken in the same turn as the send so that it
/// holds every change sent before it and none after.
async fn send_table(zero: Rc<Shard>, to: usize) {
    loop {
        let table = zero.buckets.borrow().clone();
        let job: Job = Box::new(move |s: Rc<Shard>| {
            *s.buckets.borrow_mut() = table;
            s.table_ready.set(true);
            wake_startup(&s);
        });
        match zero.mesh.try_send(to, job) {
            Ok(()) => return,
            Err(_) => engine::yield_now().await,
        }
    }
}

fn wake_startup(s: &Shard) {
    if let Some(w) = s.startup_waker.borrow_mut().take() {
        w.wake();
    }
}

async fn wait_until(shard: &Shard, done: impl Fn(&Shard) -> bool) {
    std::future::poll_fn(|cx| {
        if done(shard) {
            return std::task::Poll::Ready(());
        }
        *shard.startup_waker.borrow_mut() = Some(cx.waker().clone());
        std::task::Poll::Pending
    })
    .await
}

async fn run_core(core: engine::Core<Job>, config: Arc<ServeConfig>, sse_master: crate::sse::MasterKey) -> Result<(), String> {
    use engine::Env;
    let id = core.env.core();
    let dir = config.data.join(format!("core-{id:03}"));
    let (store, report) = Store::open(core.env.clone(), StoreConfig { segment_bytes: config.segment_bytes, ..StoreConfig::new(&dir) })
        .await
        .map_err(|e| format!("core {id}: open store: {e}"))?;
    // Records whose data is damaged at rest: indexed, refused when read, named here.
    for d in &report.damaged {
        eprintln!("corestore: core {id}: damaged at start-up: {} offset {}: {}", d.path.display(), d.offset, d.what);
    }
    let _checkpointer = store.spawn_checkpointer(256 << 20, std::time::Duration::from_secs(5));
    let _compactor = store.spawn_compactor(engine::store::CompactionPolicy::default());
    let users = users::UserTable::new(config.data.clone())?;
    let shard = Rc::new(Shard {
        core: id,
        cores: core.mesh.cores(),
        env: core.env.clone(),
        store,
        mesh: core.mesh,
        rpc: rpc::Rpc::default(),
        config: config.clone(),
        buckets: RefCell::new(BTreeMap::new()),
        users: RefCell::new(users),
        sse_master,
        sessions: RefCell::new(objects::Sessions::default()),
        bucket_writes: RefCell::new(objects::BucketWrites::default()),
        cache: RefCell::new(cache::ObjectCache::new(config.cache_bytes_per_core)),
        next_request: Cell::new(0),
        upload_locks: engine::keylock::KeyLocks::default(),
        last_stamp: Cell::new(0),
        table_ready: Cell::new(id == 0),
        cores_ready: Cell::new(0),
        startup_waker: RefCell::new(None),
    });
    remove_stale_parts(&shard).await?;
    // Before serving writes: chunks of uploads a crash interrupted belong to nobody.
    let below = shard.store.next_chunk_id();
    shard.store.collect_orphan_chunks(below).await.map_err(|e| format!("core {id}: collect orphan chunks: {e}"))?;
    if id == 0 {
        let table: BTreeMap<String, BucketInfo> = shard
            .store
            .list(BUCKETS_BUCKET, b"", None, usize::MAX)
            .into_iter()
            .filter_map(|l| String::from_utf8(l.key.into()).ok())
            .map(|name| (name, BucketInfo { owner: String::new(), created_ms: 0, acl: Vec::new(), tags: None, cors: None, lifecycle: None, policy: None, public_access_block: None, ownership: None, versioning: None, object_lock: None, encryption: None }))
            .collect();
        let mut loaded = BTreeMap::new();
        for name in table.keys() {
            let obj = shard.store.get(BUCKETS_BUCKET, name.as_bytes()).await.map_err(|e| format!("load bucket {name}: {e}"))?;
            // A description that does not decode is a bug, never skipped: the bucket and its
            // objects would vanish from every listing.
            if let Some(o) = obj {
                let info = BucketInfo::decode(o.data()).ok_or_else(|| format!("load bucket {name}: its stored description does not decode"))?;
                loaded.insert(name.clone(), info);
            }
        }
        *shard.buckets.borrow_mut() = loaded;
    }
    let _jobs = engine::spawn(rpc::serve_jobs(shard.clone()));
    let _reaper = engine::spawn(reap_abandoned_uploads(shard.clone(), config.abandoned_upload_after));
    let _lifecycle = engine::spawn(lifecycle::run(shard.clone(), config.lifecycle_day));
    let _scrubber = (config.scrub_bytes_per_s > 0).then(|| {
        let first_after = config.scrub_every.min(SCRUB_FIRST_DELAY);
        shard.store.spawn_scrubber(config.scrub_bytes_per_s, first_after, config.scrub_every, move |pass, took| report_scrub(id, pass, took))
    });
    if id != 0 {
        // Core 0 sends its table as a job that replaces ours when it arrives: jobs from core 0
        // arrive in the order core 0 sent them, so no bucket change can slip between.
        rpc::post(&shard, 0, Box::new(move |zero: Rc<Shard>| drop(engine::spawn(send_table(zero, id))))).await;
        wait_until(&shard, |s| s.table_ready.get()).await;
    }
    // Each core its own TLS configuration, so that its session cache is no lock between cores.
    let tls: Option<TlsConfig> = match &config.tls {
        Some(files) => {
            let identity = files.load().map_err(|e| format!("core {id}: {e}"))?;
            Some(Rc::new(RefCell::new(identity.server_config().map_err(|e| format!("core {id}: TLS configuration: {e}"))?)))
        }
        None => None,
    };
    let _tls_reloader = config.tls.clone().zip(tls.clone()).map(|(files, current)| engine::spawn(reload_tls_on_sighup(id, files, current)));
    let listener = net::TcpListener::bind(shard.env.ring(), config.listen, net::LISTEN_BACKLOG_DEFAULT)
        .map_err(|e| format!("core {id}: listen on {}: {e}", config.listen))?;
    rpc::post(
        &shard,
        0,
        Box::new(|zero: Rc<Shard>| {
            zero.cores_ready.set(zero.cores_ready.get() + 1);
            wake_startup(&zero);
        }),
    )
    .await;
    if id == 0 {
        // Only once every core listens and knows every bucket.
        wait_until(&shard, |s| s.cores_ready.get() == s.cores).await;
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        println!("corestore: listening on {scheme}://{}", config.listen);
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    loop {
        match first(listener.accept(), stop_requested()).await {
            Ok(Ok((stream, peer))) => {
                let tls = tls.as_ref().map(|t| t.borrow().clone());
                stream.set_send_timeout(Some(config.send_timeout));
                drop(engine::spawn(conn::accept_connection(shard.clone(), stream, peer, tls)));
            }
            Ok(Err(e)) => {
                eprintln!("corestore: core {id}: accept: {e}");
                engine::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(()) => break,
        }
    }
    // Stopping: no new connections; the store finishes its batches and checkpoints its index,
    // so the next start replays nothing. Requests in flight end with their connections.
    drop(listener);
    shard.store.close().await.map_err(|e| format!("core {id}: close store: {e}"))?;
    if id == 0 {
        println!("corestore: stopped");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{Grant, Grantee, ObjectOwnership, Permission, PublicAccessBlock};

    /// Everything a bucket's description holds comes back from its stored form, and a
    /// description from before ACLs (`public_read`) reads as the canned ACL it meant.
    #[test]
    fn bucket_descriptions_round_trip() {
        let plain = BucketInfo {
            owner: "alice".into(),
            created_ms: 1_700_000_000_000,
            acl: crate::acl::private("alice"),
            tags: None,
            cors: None,
            lifecycle: None,
            policy: None,
            public_access_block: None,
            ownership: None,
            versioning: None,
            object_lock: None,
            encryption: None,
        };
        assert_eq!(BucketInfo::decode(&plain.encode()), Some(plain.clone()));
        let lifecycle = br#"<LifecycleConfiguration><Rule><ID>r</ID><Filter><And><Prefix>logs/</Prefix><Tag><Key>k</Key><Value>v &amp; w</Value></Tag></And></Filter>
            <Status>Enabled</Status><Expiration><Days>3</Days></Expiration></Rule></LifecycleConfiguration>"#;
        let document = r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}"#;
        let full = BucketInfo {
            acl: vec![Grant::new(Grantee::User("alice".into()), Permission::FullControl), Grant::new(Grantee::AllUsers, Permission::Read)],
            tags: Some(vec![("team".into(), "storage".into())]),
            lifecycle: Some(Arc::new(crate::xml::parse_lifecycle_configuration(lifecycle).expect("valid"))),
            policy: Some(Arc::new(BucketPolicy { document: document.into(), policy: crate::policy::parse(document.as_bytes(), Some("b")).expect("valid") })),
            public_access_block: Some(PublicAccessBlock { block_public_acls: true, restrict_public_buckets: true, ..Default::default() }),
            ownership: Some(ObjectOwnership::BucketOwnerPreferred),
            versioning: Some(crate::versioning::Versioning::Suspended),
            object_lock: Some(crate::object_lock::LockConfiguration {
                default: Some(crate::object_lock::DefaultRetention { mode: crate::object_lock::Mode::Governance, period: crate::object_lock::Period::Years(2) }),
            }),
            encryption: Some(crate::sse::BucketDefault { kms_key_id: Some("arn:aws:kms:us-east-1:1:key/k".into()), bucket_key_enabled: true }),
            ..plain.clone()
        };
        assert_eq!(BucketInfo::decode(&full.encode()), Some(full));
        let old = br#"{"owner": "alice", "created_ms": 1700000000000, "public_read": true}"#;
        let decoded = BucketInfo::decode(old).expect("an old description");
        assert_eq!(decoded.acl, crate::acl::canned("public-read", "alice", "alice").expect("canned"));
        assert_eq!(BucketInfo::decode(br#"{"owner": "alice"}"#), None, "no creation time: not a description");
    }
}
