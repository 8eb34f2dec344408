//! TLS for the generator's connections (`--tls`, warp's flag, or an `https://` host): the ring's
//! connections through `net::TlsStream`, the blocking control requests through rustls's
//! `StreamOwned`. The server's certificate is checked against the system's roots (rustls-native-
//! certs, which also reads `SSL_CERT_FILE` and `SSL_CERT_DIR`), or not at all with `--insecure`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use net::rustls;
use net::{NetError, ServerCheck, Stream, TcpStream, TlsStream};

/// A server that does not finish a handshake within this long has stalled.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How to speak TLS to one server.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    /// The name its certificate must carry (SNI): the host without its port.
    pub server_name: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl Tls {
    /// For `host` (`name:port`, `name`, `[v6]:port`), checking certificates unless `insecure`.
    pub fn new(host: &str, insecure: bool) -> Result<Tls, String> {
        let check = if insecure { ServerCheck::Insecure } else { ServerCheck::Roots(Vec::new()) };
        let config = net::client_config(check)?;
        Ok(Tls { config, server_name: server_name(host).to_string() })
    }

    /// For `host`, trusting the PEM certificates in `roots` as well as the system's.
    pub fn trusting(host: &str, roots: &std::path::Path) -> Result<Tls, String> {
        let config = net::client_config(ServerCheck::Roots(net::pem_certificates(roots)?))?;
        Ok(Tls { config, server_name: server_name(host).to_string() })
    }
}

/// `name:port` → `name`; `[::1]:443` → `::1`.
fn server_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// A connection on the ring: plain, or TLS once the handshake is done.
pub async fn connect(ring: &Rc<engine::uring::Ring>, addr: SocketAddr, tls: Option<&Tls>) -> Result<Stream, NetError> {
    let tcp = TcpStream::connect(ring, addr).await?;
    match tls {
        None => Ok(Stream::from(tcp)),
        Some(t) => Ok(Stream::from(TlsStream::connect(tcp, t.config.clone(), &t.server_name, HANDSHAKE_TIMEOUT).await?)),
    }
}

/// A blocking connection for control requests.
pub enum BlockingStream {
    Plain(std::net::TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>),
}

/// Connects (and for TLS, shakes hands on the first read or write) with `timeout` on every
/// socket operation.
pub fn connect_blocking(addr: SocketAddr, tls: Option<&Tls>, timeout: Duration) -> Result<BlockingStream, String> {
    let tcp = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(timeout)).and_then(|()| tcp.set_write_timeout(Some(timeout))).map_err(|e| format!("socket timeouts: {e}"))?;
    let Some(t) = tls else { return Ok(BlockingStream::Plain(tcp)) };
    let name = rustls::pki_types::ServerName::try_from(t.server_name.clone()).map_err(|e| format!("TLS server name {:?}: {e}", t.server_name))?;
    let conn = rustls::ClientConnection::new(t.config.clone(), name).map_err(|e| format!("TLS: {e}"))?;
    Ok(BlockingStream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
}

impl BlockingStream {
    /// The socket underneath (for its timeouts).
    pub fn tcp(&self) -> &std::net::TcpStream {
        match self {
            BlockingStream::Plain(s) => s,
            BlockingStream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            BlockingStream::Plain(s) => s.read(buf),
            BlockingStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for BlockingStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            BlockingStream::Plain(s) => s.write(buf),
            BlockingStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            BlockingStream::Plain(s) => s.flush(),
            BlockingStream::Tls(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server_name;

    #[test]
    fn server_names_drop_the_port() {
        assert_eq!(server_name("localhost:9000"), "localhost");
        assert_eq!(server_name("s3.example.com"), "s3.example.com");
        assert_eq!(server_name("127.0.0.1:443"), "127.0.0.1");
        assert_eq!(server_name("[::1]:9000"), "::1");
        assert_eq!(server_name("::1"), "::1");
    }
}
