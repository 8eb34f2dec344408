//! Server-side encryption on the request paths: which key a request's write or read uses
//! (`crate::sse` holds the format and the ciphers), and bodies encrypted as they stream in.
//!
//! Writes encrypt on the core that reads the body, before a byte reaches the owning core, so
//! the store only ever holds ciphertext. Reads decrypt on the core that sends, from whatever
//! the store, the cache or another core handed over (all of it ciphertext).

use super::conn::Conn;
use super::handlers::BodySource;
use super::conn::{Request, Response};
use super::meta::ObjectMeta;
use super::Shard;
use crate::error::{ErrorCode, S3Error};
use crate::sse::{self, Cipher, Kind, ObjectKey, Sealed, Wanted};

/// Whether a customer key may travel over this connection: HTTPS, or a loopback peer (the key
/// never crosses a network). AWS refuses SSE-C over plain HTTP; so does this server, but for
/// loopback, where the tools that test S3 servers run.
pub fn customer_key_channel_ok(conn: &Conn) -> bool {
    // `to_canonical`: a dual-stack listener sees an IPv4 client as ::ffff:a.b.c.d.
    conn.stream.is_tls() || conn.peer.ip().to_canonical().is_loopback()
}

fn insecure() -> S3Error {
    S3Error::new(ErrorCode::InvalidRequest, "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.")
}

/// The encryption a write asks for (its headers, or form fields, through `field`; the bucket's
/// default), as its new stored form (no IVs yet) and the object key; `None` for plaintext.
pub fn for_write<'a>(shard: &Shard, conn: &Conn, bucket: &str, field: impl Fn(&str) -> Option<&'a str> + Copy) -> Result<Option<(Sealed, ObjectKey)>, S3Error> {
    let default = shard.buckets.borrow().get(bucket).and_then(|b| b.encryption.clone());
    match sse::wanted(field, default.as_ref())? {
        Wanted::None => Ok(None),
        Wanted::S3 => Sealed::new(Kind::S3, shard.sse_master.kek(), String::new()).map(Some),
        Wanted::Kms(id) => Sealed::new(Kind::Kms, &shard.sse_master.kms_kek(&id), id).map(Some),
        Wanted::Customer(key) => {
            if !customer_key_channel_ok(conn) {
                return Err(insecure());
            }
            Sealed::new(Kind::Customer, &key.kek(), key.md5.clone()).map(Some)
        }
    }
}

/// The object key of `sealed`, for a request that sends `customer` (its SSE-C key, for itself
/// or its copy source): the master key opens SSE-S3, the customer's key SSE-C.
pub fn open(shard: &Shard, sealed: &Sealed, customer: Option<&sse::CustomerKey>) -> Result<ObjectKey, S3Error> {
    match (sealed.kind, customer) {
        (Kind::S3, None) => sealed.open(shard.sse_master.kek()).ok_or_else(|| S3Error::new(ErrorCode::InternalError, "the master key does not open an SSE-S3 object's key (was sse-master.key replaced?)")),
        (Kind::Kms, None) => sealed.open(&shard.sse_master.kms_kek(&sealed.label)).ok_or_else(|| {
            S3Error::new(ErrorCode::InternalError, format!("the key ring's key {:?} does not open an SSE-KMS object's key (was sse-master.key replaced?)", sealed.label))
        }),
        (Kind::S3 | Kind::Kms, Some(_)) => Err(not_applicable()),
        (Kind::Customer, None) => Err(S3Error::new(
            ErrorCode::InvalidRequest,
            "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
        )),
        (Kind::Customer, Some(key)) => {
            // The stored MD5 answers most wrong keys without a decryption; the seal decides.
            let opened = (key.md5 == sealed.label).then(|| sealed.open(&key.kek())).flatten();
            opened.ok_or_else(|| S3Error::new(ErrorCode::AccessDenied, "The provided SSE-C key does not match the key this object was encrypted with."))
        }
    }
}

fn not_applicable() -> S3Error {
    S3Error::new(ErrorCode::InvalidRequest, "The encryption parameters are not applicable to this object.")
}

/// A part's encryption: its upload's object key (opened with the key the request sends, which
/// must be the upload's) under a fresh IV; `None` for an upload in plaintext.
pub fn for_part(shard: &Shard, conn: &Conn, req: &Request, upload: Option<&Sealed>) -> Result<(Option<Sealed>, Option<Cipher>), S3Error> {
    let customer = key_sent(conn, req, false, true)?;
    let mismatch = || S3Error::new(ErrorCode::InvalidArgument, "The provided encryption parameters did not match the ones used originally.");
    let Some(sealed) = upload else {
        return if customer.is_some() { Err(mismatch()) } else { Ok((None, None)) };
    };
    let key = match (sealed.kind, customer) {
        (Kind::S3 | Kind::Kms, None) => open(shard, sealed, None)?,
        (Kind::Customer, Some(c)) => open(shard, sealed, Some(&c)).map_err(|_| mismatch())?,
        (Kind::Customer, None) => {
            return Err(S3Error::new(ErrorCode::InvalidRequest, "The multipart upload was initiated with SSE-C: each part must send the same key."));
        }
        _ => return Err(mismatch()),
    };
    let iv = sse::new_iv()?;
    let mut part = sealed.clone();
    part.ivs = vec![iv];
    Ok((Some(part), Some(Cipher::single(key, iv))))
}

/// The customer key a read sends for the object it names (`copy_source`: for its copy source).
pub fn read_key(conn: &Conn, req: &Request, copy_source: bool) -> Result<Option<sse::CustomerKey>, S3Error> {
    key_sent(conn, req, copy_source, false)
}

/// The SSE-C key a request sends (`sse::customer_key`), if the connection may carry one.
fn key_sent(conn: &Conn, req: &Request, copy_source: bool, md5_required: bool) -> Result<Option<sse::CustomerKey>, S3Error> {
    let key = sse::customer_key(|h| req.header(h), copy_source, md5_required)?;
    if key.is_some() && !customer_key_channel_ok(conn) {
        return Err(insecure());
    }
    Ok(key)
}

/// What a GET or HEAD of `meta` needs: the cipher that decrypts it, or `None` for plaintext;
/// an error if the request's keys do not fit the object.
pub fn for_read(shard: &Shard, conn: &Conn, req: &Request, meta: &ObjectMeta) -> Result<Option<Cipher>, S3Error> {
    if req.header(sse::HEADER).is_some() {
        return Err(S3Error::new(ErrorCode::InvalidArgument, "x-amz-server-side-encryption is for writes; a GET or HEAD must not send it")
            .with_extra("ArgumentName", sse::HEADER));
    }
    let customer = read_key(conn, req, false)?;
    cipher_of(shard, meta, customer.as_ref())
}

/// The cipher of the object `meta` describes, opened with `customer` (or the master key).
pub fn cipher_of(shard: &Shard, meta: &ObjectMeta, customer: Option<&sse::CustomerKey>) -> Result<Option<Cipher>, S3Error> {
    let Some(sealed) = &meta.sse else {
        return if customer.is_some() { Err(not_applicable()) } else { Ok(None) };
    };
    let key = open(shard, sealed, customer)?;
    Cipher::for_object(key, &sealed.ivs, &meta.part_sizes)
        .map(Some)
        .ok_or_else(|| S3Error::new(ErrorCode::InternalError, "an encrypted object's IVs do not match its parts"))
}

/// The largest decryption buffer a core keeps between requests.
const DECRYPT_BUF_BYTES_MAX: usize = 2 << 20;
/// How many a core keeps: one per GET in flight, up to this many (the object cache's 1 MiB
/// bodies go out over many connections at once).
const DECRYPT_BUFS_KEPT_MAX: usize = 16;

thread_local! {
    /// Reused buffers per core for bodies decrypted from shared (cached) bytes: a fresh 1 MiB
    /// allocation per GET would fault its pages in each time.
    static DECRYPT_BUFS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The bytes `data` (the object's from `offset`), decrypted into one of this core's reused
/// buffers if one is free (give it back with [`recycle`]).
pub fn decrypted(cipher: &Cipher, offset: u64, data: &[u8]) -> Vec<u8> {
    let mut out = DECRYPT_BUFS.with(|b| b.borrow_mut().pop()).unwrap_or_default();
    out.clear();
    out.extend_from_slice(data);
    cipher.apply(offset, &mut out);
    out
}

/// Returns a buffer from [`decrypted`] for the next request.
pub fn recycle(buf: Vec<u8>) {
    if buf.capacity() <= DECRYPT_BUF_BYTES_MAX {
        DECRYPT_BUFS.with(|b| {
            let mut kept = b.borrow_mut();
            if kept.len() < DECRYPT_BUFS_KEPT_MAX {
                kept.push(buf);
            }
        });
    }
}

/// A body encrypted as it is read: what goes on to the store is ciphertext; the inner body
/// still sees (and hashes) the plaintext.
pub struct Encrypting<'b, 'c, B: BodySource> {
    pub inner: &'b mut B,
    cipher: Option<&'c Cipher>,
    at: u64,
}

impl<'b, 'c, B: BodySource> Encrypting<'b, 'c, B> {
    pub fn new(inner: &'b mut B, cipher: Option<&'c Cipher>) -> Self {
        Encrypting { inner, cipher, at: 0 }
    }
}

/// A new object's encryption, ready to write one segment: its stored form (with the segment's
/// IV) and its cipher.
pub fn one_segment(new: Option<(Sealed, ObjectKey)>) -> Result<(Option<Sealed>, Option<Cipher>), S3Error> {
    let Some((mut sealed, key)) = new else { return Ok((None, None)) };
    let iv = sse::new_iv()?;
    sealed.ivs = vec![iv];
    Ok((Some(sealed), Some(Cipher::single(key, iv))))
}

/// The ETag stored for data whose MD5 is `md5`: the MD5 itself (plaintext, SSE-S3), or under
/// SSE-C and SSE-KMS the MD5 keyed with the object key (`Cipher::customer_etag`): AWS documents
/// those ETags as not MD5s of the data, and a listing should not fingerprint the plaintext.
pub fn etag(md5: [u8; 16], sealed: Option<&Sealed>, cipher: Option<&Cipher>) -> String {
    match (sealed, cipher) {
        (Some(s), Some(c)) if s.kind != Kind::S3 => hex::encode(c.customer_etag(md5)),
        _ => hex::encode(md5),
    }
}

/// Adds the headers that describe an object's encryption to a response.
pub fn with_headers(mut resp: Response, sealed: Option<&Sealed>) -> Response {
    for (name, value) in sealed.map(Sealed::response_headers).unwrap_or_default() {
        resp = resp.header(name, value);
    }
    resp
}

impl<B: BodySource> BodySource for Encrypting<'_, '_, B> {
    fn declared_len(&self) -> Option<u64> {
        self.inner.declared_len()
    }

    async fn read(&mut self, conn: &mut Conn, out: &mut Vec<u8>, want: usize) -> Result<bool, S3Error> {
        let from = out.len();
        let more = self.inner.read(conn, out, want).await?;
        if let Some(c) = self.cipher {
            c.apply(self.at, &mut out[from..]);
        }
        self.at += (out.len() - from) as u64;
        Ok(more)
    }
}
