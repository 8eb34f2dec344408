//! Thin wrappers over the socket syscalls that do not go through the ring: creating sockets and
//! setting options are one-off, non-blocking calls, so a ring round trip would buy nothing.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A socket address in the kernel's layout, boxed into an op's hold so its address stays put.
pub(crate) struct RawAddr {
    pub storage: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

impl RawAddr {
    /// Room for any address the kernel writes (accept).
    pub fn empty() -> RawAddr {
        // SAFETY: sockaddr_storage is plain data; all zeroes is a valid (AF_UNSPEC) value.
        RawAddr { storage: unsafe { zeroed() }, len: size_of::<libc::sockaddr_storage>() as libc::socklen_t }
    }

    pub fn from_addr(addr: SocketAddr) -> RawAddr {
        let mut raw = RawAddr::empty();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write((&raw mut raw.storage).cast::<libc::sockaddr_in>(), sin) };
                raw.len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { std::ptr::write((&raw mut raw.storage).cast::<libc::sockaddr_in6>(), sin6) };
                raw.len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        raw
    }

    /// The address the kernel wrote, or `None` for a family other than IPv4/IPv6.
    pub fn to_addr(&self) -> Option<SocketAddr> {
        match i32::from(self.storage.ss_family) {
            libc::AF_INET if self.len as usize >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let sin = unsafe { &*(&raw const self.storage).cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 if self.len as usize >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let sin6 = unsafe { &*(&raw const self.storage).cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(sin6.sin6_port), sin6.sin6_flowinfo, sin6.sin6_scope_id)))
            }
            _ => None,
        }
    }

    pub fn as_ptr(&self) -> *const libc::sockaddr {
        (&raw const self.storage).cast()
    }

    pub fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (&raw mut self.storage).cast()
    }
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// A blocking-mode TCP socket for `addr`'s family. The ring never blocks on it: io_uring tries
/// socket ops non-blocking and arms a poll when they would block.
pub(crate) fn tcp_socket(addr: SocketAddr) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain syscall; the fd is owned right away.
    let fd = check(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, libc::IPPROTO_TCP) })?;
    // SAFETY: the fd was just created and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn set_int_option(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    let len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value is a live c_int of the size passed.
    check(unsafe { libc::setsockopt(fd, level, name, (&raw const value).cast(), len) }).map(|_| ())
}

pub(crate) fn bind(fd: &OwnedFd, addr: SocketAddr) -> io::Result<()> {
    let raw = RawAddr::from_addr(addr);
    // SAFETY: raw lives across the call and len matches its content.
    check(unsafe { libc::bind(fd.as_raw_fd(), raw.as_ptr(), raw.len) }).map(|_| ())
}

pub(crate) fn listen(fd: &OwnedFd, backlog: u32) -> io::Result<()> {
    let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
    // SAFETY: plain syscall on a socket we own.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(|_| ())
}

/// `getsockname` (local) or `getpeername` (peer).
pub(crate) fn socket_addr(fd: RawFd, peer: bool) -> io::Result<SocketAddr> {
    let mut raw = RawAddr::empty();
    // SAFETY: raw has room for any address; the kernel writes at most `len` bytes.
    let r = unsafe {
        if peer { libc::getpeername(fd, raw.as_mut_ptr(), &mut raw.len) } else { libc::getsockname(fd, raw.as_mut_ptr(), &mut raw.len) }
    };
    check(r)?;
    raw.to_addr().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "socket address of an unknown family"))
}

/// `shutdown(2)`. Unlike `close`, it acts on the socket itself, so it also ends ring ops that
/// still hold a reference to the file after its fd was closed.
pub(crate) fn shutdown(fd: RawFd, how: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::shutdown(fd, how) }).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_round_trip(text: &str) {
        let addr: SocketAddr = text.parse().expect("test address parses");
        assert_eq!(RawAddr::from_addr(addr).to_addr(), Some(addr), "{text}");
    }

    #[test]
    fn addresses_survive_the_kernel_layout() {
        check_round_trip("127.0.0.1:80");
        check_round_trip("10.1.2.3:65535");
        check_round_trip("0.0.0.0:0");
        check_round_trip("[::1]:8080");
        check_round_trip("[fe80::1%3]:9000");
    }

    #[test]
    fn an_empty_address_is_no_address() {
        assert_eq!(RawAddr::empty().to_addr(), None);
    }
}
