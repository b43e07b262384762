//! SIGTERM/SIGINT handling without async signal handlers: the main thread blocks both
//! signals before any worker starts (so every thread inherits the mask) and then waits
//! for one with `sigwait`, which turns a signal into an ordinary return value.
//!
//! All `unsafe` in the daemon's signal handling lives here.

use std::io;

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
