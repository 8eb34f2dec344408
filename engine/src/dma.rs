//! DMA files: opened O_DIRECT, registered in the ring's file table, read and written with
//! ReadFixed/WriteFixed from the arena's registered buffers.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use io_uring::{opcode, types};

use crate::arena::{Arena, FixedBuf};
use crate::env::{File, OpenMode, Storage};
use crate::error::{IoError, OpenError};
use crate::uring::Ring;

/// One core's files on the real disk.
#[derive(Clone)]
pub struct DmaStorage {
    pub(crate) ring: Rc<Ring>,
    pub(crate) arena: Arena,
}

impl DmaStorage {
    pub fn new(ring: Rc<Ring>, arena: Arena) -> DmaStorage {
        DmaStorage { ring, arena }
    }
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

impl Storage for DmaStorage {
    type File = DmaFile;

    fn open(&self, path: &Path, mode: OpenMode) -> Result<DmaFile, OpenError> {
        let err = |source| OpenError { path: path.to_path_buf(), source };
        let c = cpath(path).map_err(err)?;
        // SAFETY: c is a valid NUL-terminated path.
        let fd = unsafe { libc::open(c.as_ptr(), open_flags(mode), 0o644) };
        if fd < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        // SAFETY: fd was just returned by open and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let slot = self.ring.register_file(fd.as_raw_fd()).map_err(err)?;
        Ok(DmaFile { ring: self.ring.clone(), fd, slot, path: path.to_path_buf() })
    }

    fn remove(&self, path: &Path) -> Result<(), OpenError> {
        std::fs::remove_file(path).map_err(|source| OpenError { path: path.to_path_buf(), source })
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), OpenError> {
        std::fs::rename(from, to).map_err(|source| OpenError { path: from.to_path_buf(), source })
    }

    fn list(&self, dir: &Path) -> Result<Vec<PathBuf>, OpenError> {
        let err = |source| OpenError { path: dir.to_path_buf(), source };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            if entry.file_type().map_err(err)?.is_file() {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }

    fn create_dir(&self, dir: &Path) -> Result<(), OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError { path: dir.to_path_buf(), source })
    }

    fn sync_dir(&self, dir: &Path) -> Result<(), OpenError> {
        // Rare (segment creation), so a blocking fsync on the core is acceptable here.
        let err = |source| OpenError { path: dir.to_path_buf(), source };
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)
    }

    async fn open_async(&self, path: &Path, mode: OpenMode) -> Result<DmaFile, OpenError> {
        let err = |source| OpenError { path: path.to_path_buf(), source };
        let fd = self.open_at(path, open_flags(mode)).await.map_err(err)?;
        let slot = self.ring.register_file(fd.as_raw_fd()).map_err(err)?;
        Ok(DmaFile { ring: self.ring.clone(), fd, slot, path: path.to_path_buf() })
    }

    async fn rename_async(&self, from: &Path, to: &Path) -> Result<(), OpenError> {
        let err = |source| OpenError { path: from.to_path_buf(), source };
        let (f, t) = (cpath(from).map_err(err)?, cpath(to).map_err(err)?);
        let cwd = types::Fd(libc::AT_FDCWD);
        let entry = opcode::RenameAt::new(cwd, f.as_ptr(), cwd, t.as_ptr()).build();
        // SAFETY: the paths live in the op's hold (a CString's bytes stay put when it moves).
        let (res, _) = unsafe { self.ring.op(entry, (f, t)) }.result().await;
        res.map(drop).map_err(err)
    }

    async fn remove_async(&self, path: &Path) -> Result<(), OpenError> {
        let err = |source| OpenError { path: path.to_path_buf(), source };
        let p = cpath(path).map_err(err)?;
        let entry = opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), p.as_ptr()).build();
        // SAFETY: the path lives in the op's hold.
        let (res, _) = unsafe { self.ring.op(entry, p) }.result().await;
        res.map(drop).map_err(err)
    }

    async fn sync_dir_async(&self, dir: &Path) -> Result<(), OpenError> {
        let err = |source| OpenError { path: dir.to_path_buf(), source };
        let fd = self.open_at(dir, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC).await.map_err(err)?;
        let entry = opcode::Fsync::new(types::Fd(fd.as_raw_fd())).build();
        // SAFETY: fsync points at no memory; `fd` is held by the op until its completion.
        let (res, _) = unsafe { self.ring.op(entry, fd) }.result().await;
        res.map(drop).map_err(err)
    }

    fn arena(&self) -> &Arena {
        &self.arena
    }
}

/// The flags every data file is opened with, by mode.
fn open_flags(mode: OpenMode) -> i32 {
    libc::O_RDWR
        | libc::O_DIRECT
        | libc::O_CLOEXEC
        | match mode {
            OpenMode::Existing => 0,
            OpenMode::Create => libc::O_CREAT,
            OpenMode::Truncate => libc::O_CREAT | libc::O_TRUNC,
        }
}

impl DmaStorage {
    /// openat(2) on the ring.
    async fn open_at(&self, path: &Path, flags: i32) -> io::Result<OwnedFd> {
        let c = cpath(path)?;
        let entry = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), c.as_ptr()).flags(flags).mode(0o644).build();
        // SAFETY: the path lives in the op's hold.
        let (res, _) = unsafe { self.ring.op(entry, c) }.result().await;
        // SAFETY: a successful openat returns a new fd that nothing else owns.
        res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// A file opened O_DIRECT on one core's ring.
pub struct DmaFile {
    ring: Rc<Ring>,
    fd: OwnedFd,
    slot: u32,
    path: PathBuf,
}

impl DmaFile {
    fn io_error(&self, op: &'static str, offset: u64, len: usize, source: io::Error) -> IoError {
        IoError::new(op, self.path.clone(), offset, len, source)
    }

    async fn write_fixed(&self, buf: FixedBuf, offset: u64, rw_flags: i32, op: &'static str) -> (Result<usize, IoError>, FixedBuf) {
        let len = buf.len();
        crate::env::assert_dma_aligned(offset, len, &buf);
        let entry = opcode::WriteFixed::new(types::Fixed(self.slot), buf.as_ptr(), len as u32, buf.buf_index())
            .offset(offset)
            .rw_flags(rw_flags)
            .build();
        // SAFETY: the entry points into `buf`, an arena buffer held by the op; the file slot lives
        // as long as `self`, which the caller borrows across the await.
        let (res, buf) = unsafe { self.ring.op(entry, buf) }.result().await;
        match res {
            Ok(n) if n as usize == len => (Ok(len), buf),
            // A short O_DIRECT write means the device ran out of room mid-way.
            Ok(n) => {
                let short = io::Error::new(io::ErrorKind::WriteZero, format!("short write: {n} of {len} bytes"));
                (Err(self.io_error(op, offset, len, short)), buf)
            }
            Err(e) => (Err(self.io_error(op, offset, len, e)), buf),
        }
    }
}

impl File for DmaFile {
    async fn read_at(&self, mut buf: FixedBuf, offset: u64, len: usize) -> (Result<usize, IoError>, FixedBuf) {
        crate::env::assert_dma_aligned(offset, len, &buf);
        let entry = opcode::ReadFixed::new(types::Fixed(self.slot), buf.as_mut_ptr(), len as u32, buf.buf_index()).offset(offset).build();
        // SAFETY: the entry points into `buf`, an arena buffer held by the op; the file slot lives
        // as long as `self`, which the caller borrows across the await.
        let (res, mut buf) = unsafe { self.ring.op(entry, buf) }.result().await;
        match res {
            Ok(n) => {
                buf.set_len(n as usize);
                (Ok(n as usize), buf)
            }
            Err(e) => {
                buf.set_len(0);
                (Err(self.io_error("read", offset, len, e)), buf)
            }
        }
    }

    async fn write_at(&self, buf: FixedBuf, offset: u64) -> (Result<usize, IoError>, FixedBuf) {
        self.write_fixed(buf, offset, 0, "write").await
    }

    async fn write_at_durable(&self, buf: FixedBuf, offset: u64) -> (Result<usize, IoError>, FixedBuf) {
        self.write_fixed(buf, offset, libc::RWF_DSYNC, "write (dsync)").await
    }

    async fn sync_data(&self) -> Result<(), IoError> {
        let entry = opcode::Fsync::new(types::Fixed(self.slot)).flags(types::FsyncFlags::DATASYNC).build();
        // SAFETY: fsync points at no memory; the file slot lives as long as `self`.
        let (res, ()) = unsafe { self.ring.op(entry, ()) }.result().await;
        res.map(|_| ()).map_err(|e| self.io_error("fdatasync", 0, 0, e))
    }

    fn allocate(&self, len: u64) -> Result<(), IoError> {
        // SAFETY: valid fd; fallocate mode 0 extends the file and reserves blocks.
        let r = unsafe { libc::fallocate(self.fd.as_raw_fd(), 0, 0, len as libc::off_t) };
        if r != 0 {
            return Err(self.io_error("fallocate", 0, len as usize, io::Error::last_os_error()));
        }
        Ok(())
    }

    async fn allocate_async(&self, len: u64) -> Result<(), IoError> {
        let entry = opcode::Fallocate::new(types::Fixed(self.slot), len).offset(0).mode(0).build();
        // SAFETY: fallocate points at no memory; the file slot lives as long as `self`.
        let (res, ()) = unsafe { self.ring.op(entry, ()) }.result().await;
        res.map(drop).map_err(|e| self.io_error("fallocate", 0, len as usize, e))
    }

    fn truncate(&self, len: u64) -> Result<(), IoError> {
        // SAFETY: valid fd.
        let r = unsafe { libc::ftruncate(self.fd.as_raw_fd(), len as libc::off_t) };
        if r != 0 {
            return Err(self.io_error("ftruncate", len, 0, io::Error::last_os_error()));
        }
        Ok(())
    }

    async fn truncate_async(&self, len: u64) -> Result<(), IoError> {
        let entry = opcode::Ftruncate::new(types::Fixed(self.slot), len).build();
        // SAFETY: ftruncate points at no memory; the file slot lives as long as `self`.
        let (res, ()) = unsafe { self.ring.op(entry, ()) }.result().await;
        match res {
            Ok(_) => Ok(()),
            // IORING_OP_FTRUNCATE came in Linux 6.9; before, the call blocks the core briefly.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.truncate(len),
            Err(e) => Err(self.io_error("ftruncate", len, 0, e)),
        }
    }

    fn size(&self) -> Result<u64, IoError> {
        // SAFETY: fstat into a zeroed stat struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::fstat(self.fd.as_raw_fd(), &mut st) };
        if r != 0 {
            return Err(self.io_error("fstat", 0, 0, io::Error::last_os_error()));
        }
        Ok(st.st_size as u64)
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DmaFile {
    fn drop(&mut self) {
        self.ring.unregister_file(self.slot);
    }
}
