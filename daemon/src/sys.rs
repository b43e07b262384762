//! The few raw system calls the daemon makes itself, and all of its `unsafe` (outside
//! the store's LMDB setup): a leaf module that the server and the core both use.
//!
//! - SIGTERM/SIGINT without async signal handlers: the main thread blocks both signals
//!   before any worker starts (so every thread inherits the mask) and then waits for one
//!   with `sigwait`, which turns a signal into an ordinary return value.
//! - [`HeadAndBody`]: an owned two-part `writev` buffer (a response head and a slice of
//!   a cached blob), so small bodies go out with their head without being copied.
//! - `sendfile(2)` from a blob file to a client socket, with the socket switched to
//!   non-blocking for the duration, so a full socket buffer returns `EAGAIN` (and the
//!   worker awaits writability) instead of blocking the worker thread.
//! - [`local_utc_offset`]: the server's UTC offset at an instant (`localtime_r`), for
//!   dialects that speak the server's local time (photobackup's EXIF dates and dated
//!   upload folders).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use rustix::fs::OFlags;

fn term_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and modify a sigset_t we own; a zeroed
    // sigset_t is a valid argument to sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

/// Block SIGTERM and SIGINT in the calling thread (and threads it spawns later).
pub fn block_termination() -> io::Result<()> {
    let set = term_set();
    // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Wait until SIGTERM or SIGINT arrives; returns the signal number.
pub fn wait_for_termination() -> io::Result<i32> {
    let set = term_set();
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is initialised and `sig` is a valid out-pointer.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(sig)
}

fn borrow(fd: &impl AsRawFd) -> BorrowedFd<'_> {
    // SAFETY: the descriptor belongs to `fd`, which the caller holds borrowed for at
    // least as long as the returned BorrowedFd lives, so it stays open and is not reused.
    unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) }
}

/// Puts a socket in non-blocking mode and restores its previous flags on drop.
#[derive(Debug)]
pub struct NonBlocking {
    fd: RawFd,
    saved: OFlags,
}

impl NonBlocking {
    pub fn set(sock: &impl AsRawFd) -> io::Result<NonBlocking> {
        let fd = borrow(sock);
        let saved = rustix::fs::fcntl_getfl(fd)?;
        if !saved.contains(OFlags::NONBLOCK) {
            rustix::fs::fcntl_setfl(fd, saved | OFlags::NONBLOCK)?;
        }
        Ok(NonBlocking {
            fd: sock.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for NonBlocking {
    fn drop(&mut self) {
        if !self.saved.contains(OFlags::NONBLOCK) {
            // SAFETY: the guard never outlives the socket it was made for (it is a local
            // in the send path that borrows the connection).
            let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
            let _ = rustix::fs::fcntl_setfl(fd, self.saved);
        }
    }
}

/// One `send(2)` with `MSG_MORE` (more data follows: lets the kernel coalesce a
/// response head with the file bytes that follow). Returns bytes sent.
pub fn send_more(sock: &impl AsRawFd, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::net::send(
        borrow(sock),
        buf,
        rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL,
    )?)
}

/// One `sendfile(2)` of up to `count` bytes of `file` at `*offset` to `sock`.
pub fn sendfile(
    sock: &impl AsRawFd,
    file: &impl AsRawFd,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    Ok(rustix::fs::sendfile(
        borrow(sock),
        borrow(file),
        Some(offset),
        count,
    )?)
}

/// What `fstat` says about an open file: enough to tell that it was deleted (no links
/// left), replaced, or rewritten in place since it was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileState {
    pub size: u64,
    pub mtime_ns: i64,
    pub nlink: u64,
}

/// `fstat(2)` of an open descriptor. Answered from the in-memory inode: it never waits
/// for the disk, so it is allowed on a worker thread.
pub fn fstat(fd: &impl AsRawFd) -> io::Result<FileState> {
    let st = rustix::fs::fstat(borrow(fd))?;
    Ok(FileState {
        size: st.st_size as u64,
        mtime_ns: (st.st_mtime as i64)
            .saturating_mul(1_000_000_000)
            .saturating_add(st.st_mtime_nsec as i64),
        nlink: st.st_nlink as u64,
    })
}

/// Set a socket's `SO_SNDBUF`.
pub fn set_send_buffer(sock: &impl AsRawFd, bytes: usize) -> io::Result<()> {
    rustix::net::sockopt::set_socket_send_buffer_size(borrow(sock), bytes)?;
    Ok(())
}

/// Free bytes (for unprivileged users) and total bytes of the file system holding `fd`.
pub fn fs_space(fd: &impl AsRawFd) -> io::Result<(u64, u64)> {
    let st = rustix::fs::fstatvfs(borrow(fd))?;
    Ok((
        st.f_bavail.saturating_mul(st.f_frsize),
        st.f_blocks.saturating_mul(st.f_frsize),
    ))
}

/// A response head and a byte range of a shared body, written with one `writev`.
/// Owns both parts, so the io_uring op that owns this value keeps the memory alive.
#[derive(Debug)]
pub struct HeadAndBody {
    head: Vec<u8>,
    body: std::rc::Rc<[u8]>,
    start: usize,
    end: usize,
    /// Boxed so the iovec array never moves, whatever moves the value.
    iov: Box<[libc::iovec; 2]>,
}

impl HeadAndBody {
    /// `body[start..end]` after `head`. Panics if the range is out of bounds.
    pub fn new(head: Vec<u8>, body: std::rc::Rc<[u8]>, start: usize, end: usize) -> HeadAndBody {
        let part = &body[start..end];
        let iov = Box::new([
            libc::iovec {
                iov_base: head.as_ptr() as *mut libc::c_void,
                iov_len: head.len(),
            },
            libc::iovec {
                iov_base: part.as_ptr() as *mut libc::c_void,
                iov_len: part.len(),
            },
        ]);
        HeadAndBody {
            head,
            body,
            start,
            end,
            iov,
        }
    }

    pub fn len(&self) -> usize {
        self.head.len() + (self.end - self.start)
    }

    /// The bytes after the first `n` (for the rare partial write), copied.
    pub fn rest_after(&self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len().saturating_sub(n));
        if n < self.head.len() {
            out.extend_from_slice(&self.head[n..]);
            out.extend_from_slice(&self.body[self.start..self.end]);
        } else {
            out.extend_from_slice(&self.body[self.start + (n - self.head.len())..self.end]);
        }
        out
    }

    /// Take the head buffer back for reuse.
    pub fn into_head(self) -> Vec<u8> {
        self.head
    }
}

// SAFETY: the iovecs point into `head`'s heap buffer and `body`'s shared allocation,
// both owned by this value and never mutated or reallocated while it exists; the iovec
// array itself is boxed, so its address is stable while the runtime owns the value.
unsafe impl monoio::buf::IoVecBuf for HeadAndBody {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        self.iov.as_ptr()
    }

    fn read_iovec_len(&self) -> usize {
        2
    }
}

/// The offset of the server's local time from UTC, in seconds, at unix time `secs`
/// (from `TZ` or `/etc/localtime`, as the C library resolves them; DST included).
/// `None` when the C library cannot convert the instant.
// `time_t` and `c_long` are `i64` on 64-bit Linux only: the conversions are for the rest.
#[allow(clippy::useless_conversion)]
pub fn local_utc_offset(secs: i64) -> Option<i64> {
    let t: libc::time_t = secs.try_into().ok()?;
    // SAFETY: a zeroed `tm` is a valid out-parameter; `localtime_r` is the re-entrant
    // form (it writes only to `out`) and returns null on failure, which is checked.
    let (ok, out) = unsafe {
        let mut out: libc::tm = std::mem::zeroed();
        let r = libc::localtime_r(&t, &mut out);
        (!r.is_null(), out)
    };
    ok.then_some(i64::from(out.tm_gmtoff))
}
