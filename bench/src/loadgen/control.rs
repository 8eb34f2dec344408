//! The few requests around a phase, made one at a time on a blocking socket from the calling
//! thread: create the bucket, list what a run left, delete it in batches, start and complete a
//! multipart upload. Errors name the operation, the bucket or key, the host and the answer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::http;
use super::request::{self, Body, uri_encode};
use super::runner::{Host, Target};
use super::sign::Signer;
use super::work::{LIST_PAGE_KEYS, error_text, parse_list_page, xml_value};

/// Keys per multi-delete request of the cleanup (S3's maximum).
const CLEANUP_BATCH_KEYS: usize = 1000;
/// A control request that takes longer than this has stalled.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

/// A blocking client for `target`'s first host.
pub struct Control<'a> {
    target: &'a Target,
    host: &'a Host,
    signer: Option<Signer>,
}

impl<'a> Control<'a> {
    pub fn new(target: &'a Target) -> Control<'a> {
        let host = target.hosts.first().expect("a target has a host");
        Control { target, host, signer: target.credentials.clone().map(Signer::new) }
    }

    fn bucket_path(&self) -> String {
        format!("/{}", uri_encode(&self.target.bucket, false))
    }

    fn key_path(&self, key: &str) -> String {
        format!("/{}/{}", uri_encode(&self.target.bucket, false), uri_encode(key, true))
    }

    /// Sends one request: (status, body).
    fn call(&self, what: &str, method: &str, path: &str, query: &str, body: Body) -> Result<(u16, Vec<u8>), String> {
        let unix_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mut bytes = Vec::new();
        let spec = request::Spec { method, path, query, body, sse: &self.target.sse };
        request::build(&mut bytes, &self.host.name, self.signer.as_ref(), self.target.payload, &spec, unix_s);
        let context = |e: String| format!("{what} on {} ({}): {e}", self.host.name, self.host.addr);
        let mut stream = super::tls::connect_blocking(self.host.addr, self.target.tls.first(), CONTROL_TIMEOUT).map_err(context)?;
        http::request_blocking(&mut stream, &bytes).map_err(context)
    }

    fn refused(&self, what: &str, status: u16, body: &[u8]) -> String {
        format!("{what} on {}: status {status}: {}", self.host.name, error_text(body))
    }

    /// Creates the bucket unless it exists (and is ours).
    pub fn ensure_bucket(&self) -> Result<(), String> {
        let what = format!("create bucket {}", self.target.bucket);
        match self.call(&what, "PUT", &self.bucket_path(), "", Body::None)? {
            (200, _) => Ok(()),
            (409, body) if error_text(&body).starts_with("BucketAlreadyOwnedByYou") => Ok(()),
            // Some servers (s3s-fs) answer BucketAlreadyExists to the bucket's own user: a
            // listing these credentials may read says the bucket is usable. (A listing, not a
            // HEAD: the blocking reader would wait for a body a HEAD's Content-Length announces.)
            (409, body) => match self.call(&format!("list bucket {}", self.target.bucket), "GET", &self.bucket_path(), "list-type=2&max-keys=1", Body::None)? {
                (200, _) => Ok(()),
                _ => Err(self.refused(&what, 409, &body)),
            },
            (status, body) => Err(self.refused(&what, status, &body)),
        }
    }

    /// Sets the bucket's versioning (`Enabled` or `Suspended`).
    pub fn set_versioning(&self, status: &str) -> Result<(), String> {
        let what = format!("set versioning of {} to {status}", self.target.bucket);
        let xml = format!("<VersioningConfiguration><Status>{status}</Status></VersioningConfiguration>");
        match self.call(&what, "PUT", &self.bucket_path(), "versioning=", Body::Xml(xml.as_bytes()))? {
            (200, _) => Ok(()),
            (status, body) => Err(self.refused(&what, status, &body)),
        }
    }

    /// Every key under `prefix`.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = format!("list-type=2&max-keys={LIST_PAGE_KEYS}&prefix={}", uri_encode(prefix, false));
            if let Some(t) = &token {
                query.push_str("&continuation-token=");
                query.push_str(&uri_encode(t, false));
            }
            let what = format!("list {}/{prefix}", self.target.bucket);
            let (status, body) = self.call(&what, "GET", &self.bucket_path(), &query, Body::None)?;
            if status != 200 {
                return Err(self.refused(&what, status, &body));
            }
            let page = parse_list_page(&body).map_err(|e| format!("{what} on {}: {e}", self.host.name))?;
            keys.extend(page.keys);
            match page.next_token {
                Some(t) => token = Some(t),
                None => return Ok(keys),
            }
        }
    }

    /// Deletes `keys` in batches of [`CLEANUP_BATCH_KEYS`].
    pub fn delete_all(&self, keys: &[String]) -> Result<(), String> {
        for batch in keys.chunks(CLEANUP_BATCH_KEYS) {
            let mut xml = String::from("<Delete><Quiet>true</Quiet>");
            for k in batch {
                xml.push_str(&format!("<Object><Key>{}</Key></Object>", k.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")));
            }
            xml.push_str("</Delete>");
            let what = format!("delete {} objects from {}", batch.len(), self.target.bucket);
            let (status, body) = self.call(&what, "POST", &self.bucket_path(), "delete=", Body::Xml(xml.as_bytes()))?;
            if status != 200 || String::from_utf8_lossy(&body).contains("<Error>") {
                return Err(self.refused(&what, status, &body));
            }
        }
        Ok(())
    }

    /// Starts a multipart upload of `key`: its upload id.
    pub fn create_multipart(&self, key: &str) -> Result<String, String> {
        let what = format!("create multipart upload {}/{key}", self.target.bucket);
        let (status, body) = self.call(&what, "POST", &self.key_path(key), "uploads=", Body::None)?;
        if status != 200 {
            return Err(self.refused(&what, status, &body));
        }
        let text = String::from_utf8_lossy(&body);
        xml_value(&text, "UploadId").map(str::to_string).ok_or_else(|| format!("{what} on {}: no UploadId in {text}", self.host.name))
    }

    /// Completes the upload with `parts` (ascending part numbers): the object's ETag.
    pub fn complete_multipart(&self, key: &str, upload_id: &str, parts: &[(u32, String)]) -> Result<String, String> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (number, etag) in parts {
            xml.push_str(&format!("<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>", etag.replace('"', "&quot;")));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let what = format!("complete multipart upload {}/{key} ({} parts)", self.target.bucket, parts.len());
        let query = format!("uploadId={}", uri_encode(upload_id, false));
        let (status, body) = self.call(&what, "POST", &self.key_path(key), &query, Body::Xml(xml.as_bytes()))?;
        let text = String::from_utf8_lossy(&body);
        // S3 may answer 200 with an error document once it started answering.
        if status != 200 || text.contains("<Error>") {
            return Err(self.refused(&what, status, &body));
        }
        xml_value(&text, "ETag").map(|e| e.replace("&quot;", "\"")).ok_or_else(|| format!("{what} on {}: no ETag in {text}", self.host.name))
    }

    /// Aborts the upload (nothing was uploaded, or cleanup of a failed run).
    pub fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), String> {
        let what = format!("abort multipart upload {}/{key}", self.target.bucket);
        let query = format!("uploadId={}", uri_encode(upload_id, false));
        match self.call(&what, "DELETE", &self.key_path(key), &query, Body::None)? {
            (204 | 200, _) => Ok(()),
            (status, body) => Err(self.refused(&what, status, &body)),
        }
    }
}
