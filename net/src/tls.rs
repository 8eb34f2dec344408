//! TLS on the ring: [`TlsStream`] is a [`TcpStream`] with a rustls connection in front of it.
//!
//! rustls is sans-IO: it takes ciphertext in (`read_tls`) and hands ciphertext out
//! (`write_tls`), so the ring keeps doing all socket I/O, with the same owned-buffer ops as a
//! plain stream. Receiving reads ciphertext into the stream's own [`RecvBuf`] and decrypts into
//! the caller's; sending encrypts the caller's bytes into a reused buffer and sends that. No
//! send is zero-copy under TLS: the bytes on the wire are a fresh encryption (kTLS would let the
//! kernel encrypt; kernel-notes.md, "TLS").
//!
//! Each core builds its own `rustls::ServerConfig` from one [`ServerIdentity`] (its session
//! cache is then the core's, not a lock shared between cores).
//!
//! The crypto provider is aws-lc-rs, rustls's default: the `ring` provider is deprecated for
//! lacking post-quantum key exchange (X25519MLKEM768, which current browsers and OpenSSL 3.5
//! offer first). aws-lc-sys builds with the C compiler alone (no cmake), in about two minutes
//! on two cores, once per profile.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use engine::FixedBuf;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::buf::RecvBuf;
use crate::error::NetError;
use crate::stream::TcpStream;

/// Ciphertext received and not yet decrypted: room for a few full TLS records (16 KiB of
/// plaintext each, plus headers and tags).
const CIPHERTEXT_RECV_BYTES: usize = 64 << 10;
/// Plaintext encrypted per send: a 1 MiB body goes out as 4 sends of about 256 KiB, so the
/// ciphertext buffer a connection holds stays bounded whatever the body.
const CIPHERTEXT_SEND_CHUNK_BYTES: usize = 256 << 10;
/// Ciphertext buffers kept for reuse between sends on one stream (at most this large).
const CIPHERTEXT_KEPT_BYTES_MAX: usize = CIPHERTEXT_SEND_CHUNK_BYTES + (32 << 10);
/// The protocol offered over TLS (ALPN): corestore speaks HTTP/1.1 only.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server's certificate chain and private key, loaded once (from PEM files) and turned into
/// a `rustls::ServerConfig` on each core.
pub struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for ServerIdentity {
    fn clone(&self) -> ServerIdentity {
        ServerIdentity { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ServerIdentity").field("certificates", &self.chain.len()).finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
    /// SEC1), and checks that they make a usable server configuration.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerIdentity, String> {
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| format!("read TLS certificate {}: {e}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("read TLS certificate {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!("TLS certificate {}: no CERTIFICATE block in it", cert.display()));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("read TLS private key {}: {e}", key.display()))?;
        let identity = ServerIdentity { chain, key: key_der };
        identity.server_config().map_err(|e| format!("TLS certificate {} with key {}: {e}", cert.display(), key.display()))?;
        Ok(identity)
    }

    /// From DER certificates and key already in memory (tests, generated identities).
    pub fn from_der(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<ServerIdentity, String> {
        let identity = ServerIdentity { chain, key };
        identity.server_config().map_err(|e| format!("TLS identity: {e}"))?;
        Ok(identity)
    }

    /// A server configuration of its own for one core: TLS 1.2 and 1.3, no client
    /// certificates, ALPN `http/1.1`.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        Ok(Arc::new(config))
    }
}

/// How a client checks the server's certificate.
pub enum ServerCheck {
    /// Against the system's trust store (`/etc/ssl/certs`) and any extra PEM roots.
    Roots(Vec<CertificateDer<'static>>),
    /// Not at all (`--insecure`): any certificate, any name. For test servers with
    /// self-signed certificates only.
    Insecure,
}

/// A client configuration: TLS 1.2 and 1.3, ALPN `http/1.1`.
pub fn client_config(check: ServerCheck) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client configuration: {e}"))?;
    let mut config = match check {
        ServerCheck::Roots(extra) => {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            for cert in extra {
                roots.add(cert).map_err(|e| format!("TLS root certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("TLS: no trusted root certificates (none in the system store, none given)".into());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        ServerCheck::Insecure => builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider()))).with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// Reads the PEM certificates in `path` (a CA bundle).
pub fn pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("read certificates {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("read certificates {}: {e}", path.display()))
}

/// `--insecure`: accepts every certificate; signatures are still checked to be well formed by
/// the provider's algorithms, so the handshake itself stays sound.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TCP stream with TLS, driven by one task at a time: unlike a [`TcpStream`], whose receive
/// and send may overlap from two tasks, a TLS receive may itself send (the handshake, an alert,
/// the answer to a key update), so a send started while a receive is in flight could be the
/// second send the socket asserts against. The rustls state is borrowed only between awaits,
/// never across one.
pub struct TlsStream {
    tcp: TcpStream,
    tls: RefCell<rustls::Connection>,
    /// Ciphertext received and not yet handed to rustls. Taken out while a receive is in flight.
    ciphertext_in: RefCell<Option<RecvBuf>>,
    /// A ciphertext buffer kept for the next send.
    ciphertext_out: Cell<Vec<u8>>,
    /// The peer sent close_notify, or closed its side of the socket.
    peer_closed: Cell<bool>,
}

impl TlsStream {
    /// The server side of a handshake on an accepted connection; fails if the client does not
    /// finish it within `timeout`.
    pub async fn accept(tcp: TcpStream, config: Arc<rustls::ServerConfig>, timeout: Duration) -> Result<TlsStream, NetError> {
        let conn = rustls::ServerConnection::new(config).map_err(|e| tls_error("TLS accept from", tcp.peer_addr(), e))?;
        let stream = TlsStream::new(tcp, rustls::Connection::Server(conn));
        stream.handshake("TLS accept from", timeout).await?;
        Ok(stream)
    }

    /// The client side: `server_name` is the name (or IP address) the certificate must carry.
    pub async fn connect(tcp: TcpStream, config: Arc<rustls::ClientConfig>, server_name: &str, timeout: Duration) -> Result<TlsStream, NetError> {
        let peer = tcp.peer_addr();
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| NetError::Tls { op: "TLS connect to", addr: peer, message: format!("server name {server_name:?}: {e}") })?;
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| tls_error("TLS connect to", peer, e))?;
        let stream = TlsStream::new(tcp, rustls::Connection::Client(conn));
        stream.handshake("TLS connect to", timeout).await?;
        Ok(stream)
    }

    fn new(tcp: TcpStream, conn: rustls::Connection) -> TlsStream {
        TlsStream {
            tcp,
            tls: RefCell::new(conn),
            ciphertext_in: RefCell::new(Some(RecvBuf::with_capacity(CIPHERTEXT_RECV_BYTES))),
            ciphertext_out: Cell::new(Vec::new()),
            peer_closed: Cell::new(false),
        }
    }

    async fn handshake(&self, op: &'static str, timeout: Duration) -> Result<(), NetError> {
        let deadline = engine::time::now().saturating_add(timeout);
        loop {
            self.flush().await?;
            if !self.tls.borrow().is_handshaking() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(engine::time::now());
            if left.is_zero() || !self.receive_ciphertext(op, Some(left)).await? {
                return Err(NetError::Tls { op, addr: self.peer_addr(), message: "the peer closed the connection during the handshake".into() });
            }
        }
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.tcp.peer_addr()
    }

    /// The negotiated protocol version and cipher suite, e.g. "TLSv1_3 TLS13_AES_128_GCM_SHA256".
    pub fn negotiated(&self) -> String {
        let tls = self.tls.borrow();
        let version = tls.protocol_version().map_or_else(|| "?".to_string(), |v| format!("{v:?}"));
        let suite = tls.negotiated_cipher_suite().map_or_else(|| "?".to_string(), |s| format!("{:?}", s.suite()));
        format!("{version} {suite}")
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Receives one more piece of ciphertext and lets rustls process it; false once the peer
    /// closed its side (TCP EOF or close_notify). `timeout`: none waits for ever.
    async fn receive_ciphertext(&self, op: &'static str, timeout: Option<Duration>) -> Result<bool, NetError> {
        // Missing only if an earlier receive's future was dropped between its ring ops (an
        // outer timeout or select): its ciphertext went with it, so the stream cannot go on.
        let Some(mut raw) = self.ciphertext_in.borrow_mut().take() else {
            use std::os::fd::AsRawFd as _;
            return Err(NetError::Poisoned { op, addr: self.peer_addr(), fd: self.tcp.as_raw_fd(), abandoned: "TLS receive" });
        };
        let received = if raw.is_empty() {
            let r = match timeout {
                Some(t) => self.tcp.recv_timeout(&mut raw, t).await,
                None => self.tcp.recv_into(&mut raw).await,
            };
            match r {
                Ok(n) => n,
                Err(e) => {
                    *self.ciphertext_in.borrow_mut() = Some(raw);
                    return Err(e);
                }
            }
        } else {
            raw.len()
        };
        let result = self.feed(op, &mut raw, received == 0);
        *self.ciphertext_in.borrow_mut() = Some(raw);
        if let Err(e) = result {
            // Tell the peer why (the alert rustls queued), then fail.
            let _ = self.flush().await;
            return Err(e);
        }
        Ok(!self.peer_closed.get())
    }

    /// Hands `raw`'s bytes to rustls (an EOF if `eof`) and processes them.
    fn feed(&self, op: &'static str, raw: &mut RecvBuf, eof: bool) -> Result<(), NetError> {
        let mut tls = self.tls.borrow_mut();
        let mut bytes = raw.filled();
        let before = bytes.len();
        let read = tls.read_tls(&mut bytes).map_err(|e| NetError::io(op, self.peer_addr(), -1, e))?;
        raw.consume(before - bytes.len());
        if eof || (read == 0 && before > 0) {
            self.peer_closed.set(true);
        }
        let state = tls.process_new_packets().map_err(|e| tls_error(op, self.peer_addr(), e))?;
        if state.peer_has_closed() {
            self.peer_closed.set(true);
        }
        Ok(())
    }

    /// Sends whatever rustls has queued (handshake messages, alerts, session tickets).
    async fn flush(&self) -> Result<(), NetError> {
        loop {
            let mut out = self.ciphertext_out.take();
            out.clear();
            {
                let mut tls = self.tls.borrow_mut();
                while tls.wants_write() {
                    tls.write_tls(&mut out).map_err(|e| NetError::io("TLS send to", self.peer_addr(), -1, e))?;
                }
            }
            if out.is_empty() {
                self.keep_out(out);
                return Ok(());
            }
            let out = self.tcp.send_all(out).await?;
            self.keep_out(out);
        }
    }

    fn keep_out(&self, out: Vec<u8>) {
        if out.capacity() <= CIPHERTEXT_KEPT_BYTES_MAX {
            self.ciphertext_out.set(out);
        }
    }

    /// Receives plaintext into `buf`'s free tail; 0 once the peer closed (close_notify or EOF).
    pub async fn recv_into(&self, buf: &mut RecvBuf) -> Result<usize, NetError> {
        self.recv(buf, None).await
    }

    /// [`TlsStream::recv_into`] with a deadline for each piece of ciphertext, as
    /// [`TcpStream::recv_timeout`].
    pub async fn recv_timeout(&self, buf: &mut RecvBuf, timeout: Duration) -> Result<usize, NetError> {
        self.recv(buf, Some(timeout)).await
    }

    async fn recv(&self, buf: &mut RecvBuf, timeout: Option<Duration>) -> Result<usize, NetError> {
        loop {
            let n = self.read_plaintext(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.peer_closed.get() {
                return Ok(0);
            }
            // A post-handshake message (a key update, a ticket) may want an answer.
            if self.tls.borrow().wants_write() && !self.tcp.send_in_flight() {
                self.flush().await?;
            }
            self.receive_ciphertext("TLS receive from", timeout).await?;
        }
    }

    /// Moves decrypted bytes rustls holds into `buf`'s free tail.
    fn read_plaintext(&self, buf: &mut RecvBuf) -> Result<usize, NetError> {
        let mut tls = self.tls.borrow_mut();
        buf.fill_with(|tail| match tls.reader().read(tail) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            // A TCP EOF without close_notify after all the data: a close, for HTTP's framing
            // to judge (a body cut short is an error there).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            Err(e) => Err(e),
        })
        .map_err(|e| NetError::io("TLS receive from", self.peer_addr(), -1, e))
    }

    /// Encrypts `parts` one after the other and sends the ciphertext, in sends of about
    /// `CIPHERTEXT_SEND_CHUNK_BYTES`.
    async fn send_parts(&self, parts: &[&[u8]]) -> Result<(), NetError> {
        let mut out = self.ciphertext_out.take();
        for part in parts {
            let mut at = 0;
            while at < part.len() {
                out.clear();
                {
                    let mut tls = self.tls.borrow_mut();
                    while at < part.len() && out.len() < CIPHERTEXT_SEND_CHUNK_BYTES {
                        let end = part.len().min(at + CIPHERTEXT_SEND_CHUNK_BYTES - out.len());
                        let took = tls.writer().write(&part[at..end]).map_err(|e| NetError::io("TLS send to", self.peer_addr(), -1, e))?;
                        // Its queue was drained before: refusing everything would loop for ever.
                        assert!(took > 0, "rustls accepted none of {} bytes with its send queue empty", end - at);
                        at += took;
                        while tls.wants_write() {
                            tls.write_tls(&mut out).map_err(|e| NetError::io("TLS send to", self.peer_addr(), -1, e))?;
                        }
                    }
                }
                out = self.tcp.send_all(out).await?;
            }
        }
        self.keep_out(out);
        Ok(())
    }

    /// Sends all of `data`; returns it for reuse.
    pub async fn send_all(&self, data: Vec<u8>) -> Result<Vec<u8>, NetError> {
        self.send_parts(&[&data]).await?;
        Ok(data)
    }

    pub async fn send_shared_all(&self, data: Arc<Vec<u8>>, range: std::ops::Range<usize>) -> Result<Arc<Vec<u8>>, NetError> {
        self.send_parts(&[&data[range]]).await?;
        Ok(data)
    }

    pub async fn send_head_and_shared(&self, head: Vec<u8>, data: Arc<Vec<u8>>, range: std::ops::Range<usize>) -> Result<Vec<u8>, NetError> {
        self.send_parts(&[&head, &data[range]]).await?;
        Ok(head)
    }

    pub async fn send_fixed_all(&self, buf: FixedBuf, range: std::ops::Range<usize>) -> Result<FixedBuf, NetError> {
        assert!(range.end <= buf.len(), "send range {range:?} beyond the buffer's {} valid bytes", buf.len());
        self.send_parts(&[&buf.as_slice()[range]]).await?;
        Ok(buf)
    }

    /// Sends close_notify (best effort) and then FIN.
    pub async fn close(&self) {
        self.tls.borrow_mut().send_close_notify();
        if self.flush().await.is_ok() {
            let _ = self.tcp.shutdown_write();
        }
    }
}

fn tls_error(op: &'static str, addr: SocketAddr, e: rustls::Error) -> NetError {
    NetError::Tls { op, addr, message: e.to_string() }
}

/// A connection with or without TLS, as servers and clients hold it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Stream {
        Stream::Plain(s)
    }
}

impl From<TlsStream> for Stream {
    fn from(s: TlsStream) -> Stream {
        Stream::Tls(Box::new(s))
    }
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.tcp(),
        }
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.tcp().peer_addr()
    }

    pub fn is_poisoned(&self) -> bool {
        self.tcp().is_poisoned()
    }

    pub async fn recv_into(&self, buf: &mut RecvBuf) -> Result<usize, NetError> {
        match self {
            Stream::Plain(s) => s.recv_into(buf).await,
            Stream::Tls(s) => s.recv_into(buf).await,
        }
    }

    pub async fn recv_timeout(&self, buf: &mut RecvBuf, timeout: Duration) -> Result<usize, NetError> {
        match self {
            Stream::Plain(s) => s.recv_timeout(buf, timeout).await,
            Stream::Tls(s) => s.recv_timeout(buf, timeout).await,
        }
    }

    pub async fn send_all(&self, data: Vec<u8>) -> Result<Vec<u8>, NetError> {
        match self {
            Stream::Plain(s) => s.send_all(data).await,
            Stream::Tls(s) => s.send_all(data).await,
        }
    }

    pub async fn send_shared_all(&self, data: Arc<Vec<u8>>, range: std::ops::Range<usize>) -> Result<Arc<Vec<u8>>, NetError> {
        match self {
            Stream::Plain(s) => s.send_shared_all(data, range).await,
            Stream::Tls(s) => s.send_shared_all(data, range).await,
        }
    }

    pub async fn send_head_and_shared(&self, head: Vec<u8>, data: Arc<Vec<u8>>, range: std::ops::Range<usize>) -> Result<Vec<u8>, NetError> {
        match self {
            Stream::Plain(s) => s.send_head_and_shared(head, data, range).await,
            Stream::Tls(s) => s.send_head_and_shared(head, data, range).await,
        }
    }

    /// `zero_copy` applies to plain streams only: under TLS the bytes sent are a fresh
    /// encryption.
    pub async fn send_fixed_all(&self, buf: FixedBuf, range: std::ops::Range<usize>, zero_copy: bool) -> Result<FixedBuf, NetError> {
        match self {
            Stream::Plain(s) => s.send_fixed_all(buf, range, zero_copy).await,
            Stream::Tls(s) => s.send_fixed_all(buf, range).await,
        }
    }

    /// Ends the connection politely: close_notify under TLS; nothing to do for plain TCP
    /// (dropping closes it).
    pub async fn close(&self) {
        if let Stream::Tls(s) = self {
            s.close().await;
        }
    }
}
