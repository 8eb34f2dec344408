//! TLS on the ring against the real kernel over loopback: the server side against rustls's own
//! blocking client (a driver we did not write), the client side against our server, and the
//! refusals (an untrusted certificate, plain HTTP to a TLS port, a silent client).

#![allow(clippy::disallowed_methods)] // std client threads

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use engine::rng::Prng;
use engine::{Core, Env, RuntimeConfig, Storage};
use net::rustls;
use net::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use net::{LISTEN_BACKLOG_DEFAULT, NetError, RecvBuf, ServerCheck, ServerIdentity, TcpListener, TcpStream, TlsStream};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Message sizes: one byte, within one record, exactly one record (16 KiB), one past it, and
/// bodies that take several records and several sends.
const SIZES: [usize; 7] = [1, 100, 16 << 10, (16 << 10) + 1, 300_000, 1 << 20, (1 << 20) + 12_345];

/// A CA and a server certificate for "localhost" and 127.0.0.1 signed by it.
struct Pki {
    ca: CertificateDer<'static>,
    identity: ServerIdentity,
}

fn pki() -> Pki {
    pki_named("corestore test CA")
}

fn pki_named(ca_name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, ca_name);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("server key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("server params");
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let identity = ServerIdentity::from_der(vec![cert.der().clone()], key_der).expect("identity");
    Pki { ca: ca.der().clone(), identity }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn on_one_core<T: Send, Fut: Future<Output = T>>(main: impl Fn(Core<()>) -> Fut + Sync) -> T {
    let mut out = engine::run(RuntimeConfig::cores(1).expect("one core"), main).expect("runtime");
    out.pop().expect("one core's output")
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Prng::new(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// A TLS server on one core accepting one connection while `client` runs on a std thread;
/// returns what `serve` made of the accepted stream (or of the failed handshake).
fn serve_one<T: Send>(
    identity: &ServerIdentity,
    client: impl FnOnce(SocketAddr) + Send,
    serve: impl AsyncFn(Result<TlsStream, NetError>) -> T + Sync,
) -> T {
    let (addr_tx, addr_rx) = mpsc::channel();
    let config = identity.server_config().expect("server config");
    std::thread::scope(|s| {
        s.spawn(move || client(addr_rx.recv().expect("server address")));
        on_one_core(|core: Core<()>| {
            let (addr_tx, serve, config) = (addr_tx.clone(), &serve, config.clone());
            async move {
                let listener = TcpListener::bind(core.env.ring(), loopback(), LISTEN_BACKLOG_DEFAULT).expect("bind");
                addr_tx.send(listener.local_addr()).expect("send address");
                let (tcp, _) = listener.accept().await.expect("accept");
                serve(TlsStream::accept(tcp, config, HANDSHAKE_TIMEOUT).await).await
            }
        })
    })
}

/// Echoes until the peer closes; returns the bytes echoed.
async fn echo(stream: &TlsStream) -> usize {
    let mut buf = RecvBuf::new();
    let mut total = 0;
    loop {
        let n = stream.recv_into(&mut buf).await.expect("echo recv");
        if n == 0 {
            return total;
        }
        total += n;
        let out = buf.filled().to_vec();
        buf.consume(out.len());
        stream.send_all(out).await.expect("echo send");
    }
}

fn rustls_client_config(ca: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    net::client_config(ServerCheck::Roots(vec![ca.clone()])).expect("client config")
}

/// Our server's handshake, receives and sends against rustls's blocking `StreamOwned`: every
/// size comes back byte for byte, and the client's close_notify ends the server's stream.
#[test]
fn the_server_echoes_every_size_to_a_blocking_rustls_client() {
    let pki = pki();
    let ca = pki.ca.clone();
    let total: usize = SIZES.iter().sum();
    let (echoed, negotiated) = serve_one(
        &pki.identity,
        move |addr| {
            let tcp = std::net::TcpStream::connect(addr).expect("connect");
            tcp.set_read_timeout(Some(CLIENT_READ_TIMEOUT)).expect("timeout");
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            let conn = rustls::ClientConnection::new(rustls_client_config(&ca), name).expect("client");
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            for (i, &len) in SIZES.iter().enumerate() {
                let message = pattern(i as u64, len);
                tls.write_all(&message).expect("client write");
                let mut back = vec![0; len];
                tls.read_exact(&mut back).expect("client read");
                assert!(back == message, "message {i} ({len} bytes) came back different");
            }
            assert_eq!(tls.conn.alpn_protocol(), Some(net::ALPN_HTTP_1_1));
            tls.conn.send_close_notify();
            tls.flush().expect("close_notify");
        },
        async |stream| {
            let stream = stream.expect("handshake");
            (echo(&stream).await, stream.negotiated())
        },
    );
    assert_eq!(echoed, total);
    assert!(negotiated.starts_with("TLSv1_3"), "{negotiated}");
}

/// Our client against our server, on one core: the server's every send path (owned, shared,
/// head and shared, registered buffer) arrives intact, and the client checks the certificate
/// against the CA and the name.
#[test]
fn the_ring_client_reads_every_send_path_of_the_ring_server() {
    let pki = pki();
    let server_config = pki.identity.server_config().expect("server config");
    let client_config = rustls_client_config(&pki.ca);
    let received = on_one_core(|core: Core<()>| {
        let (server_config, client_config) = (server_config.clone(), client_config.clone());
        async move {
            let listener = TcpListener::bind(core.env.ring(), loopback(), LISTEN_BACKLOG_DEFAULT).expect("bind");
            let addr = listener.local_addr();
            let arena = core.env.storage().arena().clone();
            let server = engine::spawn(async move {
                let (tcp, _) = listener.accept().await.expect("accept");
                let tls = TlsStream::accept(tcp, server_config, HANDSHAKE_TIMEOUT).await.expect("server handshake");
                for (i, &len) in SIZES.iter().enumerate() {
                    let message = pattern(100 + i as u64, len);
                    match i % 4 {
                        0 => drop(tls.send_all(message).await.expect("send_all")),
                        1 => drop(tls.send_shared_all(Arc::new(message), 0..len).await.expect("send_shared_all")),
                        2 => {
                            let (head, body) = message.split_at(len / 3);
                            drop(tls.send_head_and_shared(head.to_vec(), Arc::new(body.to_vec()), 0..body.len()).await.expect("head and shared"));
                        }
                        _ => {
                            let mut fixed = arena.alloc(len).expect("arena buffer");
                            fixed.set_len(len);
                            fixed.as_mut_slice().copy_from_slice(&message);
                            drop(tls.send_fixed_all(fixed, 0..len).await.expect("send_fixed_all"));
                        }
                    }
                }
                tls.close().await;
            });
            let tcp = TcpStream::connect(core.env.ring(), addr).await.expect("connect");
            let tls = TlsStream::connect(tcp, client_config, "localhost", HANDSHAKE_TIMEOUT).await.expect("client handshake");
            let mut buf = RecvBuf::new();
            let mut received = Vec::new();
            loop {
                let n = tls.recv_into(&mut buf).await.expect("client recv");
                if n == 0 {
                    break;
                }
                received.extend_from_slice(buf.filled());
                buf.consume(n);
            }
            server.await;
            received
        }
    });
    let expected: Vec<u8> = SIZES.iter().enumerate().flat_map(|(i, &len)| pattern(100 + i as u64, len)).collect();
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "the bytes received differ from those sent");
}

/// A client that trusts another CA refuses the server's certificate, and says so.
#[test]
fn an_untrusted_certificate_fails_the_client_handshake() {
    let pki = pki();
    let stranger = pki_named("another CA");
    let server_config = pki.identity.server_config().expect("server config");
    let client_config = rustls_client_config(&stranger.ca);
    let (client, server) = on_one_core(|core: Core<()>| {
        let (server_config, client_config) = (server_config.clone(), client_config.clone());
        async move {
            let listener = TcpListener::bind(core.env.ring(), loopback(), LISTEN_BACKLOG_DEFAULT).expect("bind");
            let addr = listener.local_addr();
            let server = engine::spawn(async move {
                let (tcp, _) = listener.accept().await.expect("accept");
                TlsStream::accept(tcp, server_config, HANDSHAKE_TIMEOUT).await.err().map(|e| e.to_string())
            });
            let tcp = TcpStream::connect(core.env.ring(), addr).await.expect("connect");
            let client = TlsStream::connect(tcp, client_config, "localhost", HANDSHAKE_TIMEOUT).await.err().map(|e| e.to_string());
            (client, server.await)
        }
    });
    let client = client.expect("the client refused the certificate");
    assert!(client.starts_with("TLS connect to") && client.contains("UnknownIssuer"), "{client}");
    let server = server.expect("the server's handshake failed too");
    assert!(server.contains("alert") || server.contains("closed"), "{server}");
}

/// Plain HTTP to a TLS port: the handshake fails with a TLS error, and the client gets no HTTP.
#[test]
fn plain_http_to_a_tls_listener_fails_the_handshake() {
    let pki = pki();
    let (reply_tx, reply_rx) = mpsc::channel();
    let error = serve_one(
        &pki.identity,
        move |addr| {
            let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
            tcp.set_read_timeout(Some(CLIENT_READ_TIMEOUT)).expect("timeout");
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
            let mut reply = Vec::new();
            let _ = tcp.read_to_end(&mut reply);
            reply_tx.send(reply).expect("reply");
        },
        async |stream| stream.err().expect("the handshake failed"),
    );
    assert!(matches!(error, NetError::Tls { .. }), "{error}");
    let reply = reply_rx.recv().expect("reply");
    assert!(!reply.starts_with(b"HTTP"), "an HTTP answer on a TLS port: {:?}", String::from_utf8_lossy(&reply));
}

/// A client that connects and says nothing is dropped once the handshake timeout passes.
#[test]
fn a_silent_client_times_out_the_handshake() {
    let pki = pki();
    let timeout = Duration::from_millis(200);
    let config = pki.identity.server_config().expect("server config");
    let (addr_tx, addr_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (error, took) = std::thread::scope(|s| {
        s.spawn(move || {
            let _tcp = std::net::TcpStream::connect(addr_rx.recv().expect("address")).expect("connect");
            let _ = done_rx.recv_timeout(CLIENT_READ_TIMEOUT);
        });
        let out = on_one_core(|core: Core<()>| {
            let (addr_tx, config) = (addr_tx.clone(), config.clone());
            async move {
                let listener = TcpListener::bind(core.env.ring(), loopback(), LISTEN_BACKLOG_DEFAULT).expect("bind");
                addr_tx.send(listener.local_addr()).expect("address");
                let (tcp, _) = listener.accept().await.expect("accept");
                let start = engine::time::now();
                let result = TlsStream::accept(tcp, config, timeout).await;
                (result.err().expect("a silent client cannot finish a handshake"), engine::time::now().saturating_duration_since(start))
            }
        });
        done_tx.send(()).expect("done");
        out
    });
    assert!(error.is_timeout(), "{error}");
    assert!(took >= timeout, "gave up after {took:?}, before {timeout:?}");
}

/// A receive whose future is dropped mid-way (an outer timeout, not the stream's own) leaves the
/// stream poisoned: the next receive says so rather than panicking or reading past lost bytes.
#[test]
fn a_dropped_receive_poisons_the_stream() {
    let pki = pki();
    let ca = pki.ca.clone();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (first, second) = serve_one(
        &pki.identity,
        move |addr| {
            let config = net::client_config(ServerCheck::Roots(vec![ca])).expect("client config");
            let conn = rustls::ClientConnection::new(config, "localhost".try_into().expect("name")).expect("client");
            let tcp = std::net::TcpStream::connect(addr).expect("connect");
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            // Finish the handshake, then stay silent until the server is done.
            tls.conn.complete_io(&mut tls.sock).expect("handshake");
            let _ = done_rx.recv_timeout(CLIENT_READ_TIMEOUT);
        },
        async |stream| {
            let stream = stream.expect("handshake");
            let mut buf = RecvBuf::with_capacity(4096);
            let first = engine::time::timeout(Duration::from_millis(100), stream.recv_into(&mut buf)).await;
            let second = stream.recv_into(&mut buf).await;
            let _ = done_tx.send(());
            (first.is_err(), second)
        },
    );
    assert!(first, "the silent peer sent nothing: the outer timeout fired");
    let error = second.expect_err("a receive after a dropped one fails");
    assert!(matches!(error, NetError::Poisoned { .. }), "{error}");
}
