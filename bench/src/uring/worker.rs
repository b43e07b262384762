//! One server thread: a ring, a listener, the connections accepted on it, and the loop
//! that turns completions into the next submissions.
//!
//! Every operation's `user_data` carries a tag, the connection's slot and the slot's
//! generation, so a completion can never be taken for a later connection in the same
//! slot. A connection's slot (and its receive buffer) is freed only when no operation
//! that names it is in flight: closing cancels the pending receive and waits for the
//! cancellation's completion, and a `SEND_ZC` counts until its notification.
//!
//! The loop: enter the kernel once (submit everything queued, wait for one completion),
//! take every ready completion, handle each (which queues the next operations), repeat.
//! Without `batch`, the queued operations are submitted after every completion instead.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::mpsc;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use super::bufring::BufRing;
use super::http::{Framing, Responses};
use super::{kernel_version, Config, Features, State, MAX_QUEUED};

const TAG_ACCEPT: u64 = 1;
const TAG_RECV: u64 = 2;
const TAG_SEND: u64 = 3;
const TAG_CLOSE: u64 = 4;
const TAG_CANCEL: u64 = 5;
const TAG_STOP: u64 = 6;

/// The buffer group of the provided buffer ring.
const BGID: u16 = 7;
/// `IORING_CQE_F_NOTIF`: the notification that a `SEND_ZC` buffer is free again.
const CQE_F_NOTIF: u32 = 1 << 3;
/// Extra slots in the registered file table beyond `max_conns`: closes still in flight.
const FIXED_SLACK: u32 = 256;

fn user_data(tag: u64, idx: u32, gen: u32) -> u64 {
    (tag << 56) | ((u64::from(gen) & 0xff_ffff) << 32) | u64::from(idx)
}

fn split_user_data(ud: u64) -> (u64, u32, u32) {
    (ud >> 56, ud as u32, ((ud >> 32) & 0xff_ffff) as u32)
}

/// A connection's socket: a plain descriptor or a direct descriptor's slot.
#[derive(Debug, Clone, Copy)]
enum Sock {
    Raw(RawFd),
    Fixed(u32),
}

/// Builds an opcode with the socket as `types::Fd` or `types::Fixed`.
macro_rules! with_sock {
    ($sock:expr, $t:ident => $e:expr) => {
        match $sock {
            Sock::Raw(fd) => {
                let $t = types::Fd(fd);
                $e
            }
            Sock::Fixed(i) => {
                let $t = types::Fixed(i);
                $e
            }
        }
    };
}

/// The answer bytes being sent, and how far.
#[derive(Debug)]
enum Out {
    Static(&'static [u8], usize),
    Owned(Vec<u8>, usize),
}

impl Out {
    fn rest(&self) -> &[u8] {
        match self {
            Out::Static(b, off) => &b[*off..],
            Out::Owned(b, off) => &b[*off..],
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Out::Static(_, off) | Out::Owned(_, off) => *off += n,
        }
    }
}

#[derive(Debug)]
struct Conn {
    sock: Sock,
    framing: Framing,
    /// Receive buffer of the single-shot mode (empty with the buffer ring).
    buf: Vec<u8>,
    recv_armed: bool,
    /// Operations in flight that name this connection.
    inflight: u32,
    sending: Option<Out>,
    /// Whether the send in flight is a `SEND_ZC`.
    sending_zc: bool,
    /// Answers waiting behind the send in flight.
    queue: Vec<&'static [u8]>,
    queued_bytes: usize,
    /// Close once everything queued is sent (`Connection: close`, 400).
    close_after: bool,
    closing: bool,
}

#[derive(Debug, Default)]
struct Slot {
    gen: u32,
    conn: Option<Conn>,
}

struct Worker {
    ring: IoUring,
    cfg: Config,
    listener: TcpListener,
    stop: OwnedFd,
    bufring: Option<BufRing>,
    fixed: bool,
    multishot_accept: bool,
    zc_min: Option<usize>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    cqes: Vec<cqueue::Entry>,
    answers: Vec<&'static [u8]>,
    responses: &'static Responses,
    stopping: bool,
    /// Fallbacks taken at run time (a feature the kernel refused on first use), each
    /// said once on stderr.
    notes: Vec<String>,
}

/// Builds the ring with the asked-for setup flags, falling back as the kernel refuses.
fn build_ring(cfg: &Config, sq_cpu: Option<usize>) -> Result<(IoUring, State, State), String> {
    let make = |sqpoll: bool, defer: bool, coop: bool| {
        let mut b = IoUring::builder();
        b.setup_cqsize(cfg.entries.saturating_mul(4));
        if sqpoll {
            b.setup_sqpoll(cfg.sqpoll_idle_ms.unwrap_or(0));
            if let Some(c) = sq_cpu {
                b.setup_sqpoll_cpu(c as u32);
            }
        }
        if defer {
            b.setup_single_issuer().setup_defer_taskrun();
        }
        if coop {
            b.setup_coop_taskrun().setup_taskrun_flag();
        }
        b.build(cfg.entries)
    };
    let mut sqpoll_state = State::Off;
    let mut sqpoll = false;
    if cfg.sqpoll_idle_ms.is_some() {
        match make(true, false, false) {
            Ok(_) => {
                sqpoll = true;
                sqpoll_state = State::On(match sq_cpu {
                    Some(c) => format!("thread on CPU {c}"),
                    None => "thread unpinned".into(),
                });
            }
            Err(e) => sqpoll_state = State::Unsupported(format!("SQPOLL refused: {e}")),
        }
    }
    if !cfg.defer_taskrun {
        let ring = make(sqpoll, false, false).map_err(|e| format!("io_uring_setup: {e}"))?;
        return Ok((ring, State::Off, sqpoll_state));
    }
    match make(sqpoll, true, false) {
        Ok(r) => Ok((r, State::On("defer+single-issuer".into()), sqpoll_state)),
        Err(e1) => match make(sqpoll, false, true) {
            Ok(r) => Ok((
                r,
                State::On(format!("coop; DEFER_TASKRUN refused: {e1}")),
                sqpoll_state,
            )),
            Err(e2) => {
                let ring =
                    make(sqpoll, false, false).map_err(|e| format!("io_uring_setup: {e}"))?;
                // With SQPOLL the kernel runs task work on its own thread: both flags
                // are refused (EINVAL) by design, not for lack of support.
                let with = if sqpoll { "refused with SQPOLL: " } else { "" };
                Ok((
                    ring,
                    State::Unsupported(format!("{with}DEFER_TASKRUN: {e1}; COOP_TASKRUN: {e2}")),
                    sqpoll_state,
                ))
            }
        },
    }
}

/// The thread's body: set up, report readiness (or the reason it cannot run), serve.
pub(super) fn run(
    cfg: Config,
    listener: TcpListener,
    stop: OwnedFd,
    cpu: Option<usize>,
    ready: mpsc::Sender<Result<Features, String>>,
) -> Result<(), String> {
    if let Some(c) = cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(c);
        if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
            let msg = format!("cannot pin to CPU {c}: {e}");
            let _ = ready.send(Err(msg.clone()));
            return Err(msg);
        }
    }
    let mut worker = match Worker::new(cfg, listener, stop) {
        Ok((w, features)) => {
            let _ = ready.send(Ok(features));
            w
        }
        Err(e) => {
            let _ = ready.send(Err(e.clone()));
            return Err(e);
        }
    };
    let res = worker.serve();
    worker.shutdown();
    res
}

impl Worker {
    fn new(
        cfg: Config,
        listener: TcpListener,
        stop: OwnedFd,
    ) -> Result<(Worker, Features), String> {
        let ((major, minor), release) = kernel_version();
        let at_least = |maj: u32, min: u32| (major, minor) >= (maj, min);
        let cpus = super::allowed_cpus();
        let sq_cpu = (cpus.len() == 1).then(|| cpus[0]);
        let (ring, taskrun, sqpoll) = build_ring(&cfg, sq_cpu)?;
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| format!("IORING_REGISTER_PROBE: {e}"))?;
        for (name, code) in [
            ("ACCEPT", opcode::Accept::CODE),
            ("RECV", opcode::Recv::CODE),
            ("SEND", opcode::Send::CODE),
            ("CLOSE", opcode::Close::CODE),
            ("ASYNC_CANCEL", opcode::AsyncCancel::CODE),
            ("POLL_ADD", opcode::PollAdd::CODE),
        ] {
            if !probe.is_supported(code) {
                return Err(format!("this kernel's io_uring lacks IORING_OP_{name}"));
            }
        }
        let multishot_accept = if !cfg.multishot_accept {
            State::Off
        } else if at_least(5, 19) {
            State::On(String::new())
        } else {
            State::Unsupported(format!("needs 5.19, kernel is {release}"))
        };
        let fixed = if !cfg.fixed_files {
            State::Off
        } else if !at_least(5, 19) {
            State::Unsupported(format!(
                "accept into direct descriptors needs 5.19, kernel is {release}"
            ))
        } else {
            match ring
                .submitter()
                .register_files_sparse(cfg.max_conns.saturating_add(FIXED_SLACK))
            {
                Ok(()) => State::On(format!("{} slots", cfg.max_conns + FIXED_SLACK)),
                Err(e) => State::Unsupported(format!("IORING_REGISTER_FILES2 sparse: {e}")),
            }
        };
        let mut bufring = None;
        let multishot_recv = if !cfg.multishot_recv {
            State::Off
        } else if !at_least(6, 0) {
            State::Unsupported(format!("needs 6.0, kernel is {release}"))
        } else {
            match BufRing::new(&ring.submitter(), cfg.ring_buffers, cfg.buf_size, BGID) {
                Ok(b) => {
                    let d = format!("{} x {} B buffer ring", cfg.ring_buffers, cfg.buf_size);
                    bufring = Some(b);
                    State::On(d)
                }
                Err(e) => State::Unsupported(format!("IORING_REGISTER_PBUF_RING: {e}")),
            }
        };
        let send_zc = match cfg.send_zc_min {
            None => State::Off,
            Some(_) if !probe.is_supported(opcode::SendZc::CODE) => {
                State::Unsupported(format!("no IORING_OP_SEND_ZC (6.0) in kernel {release}"))
            }
            Some(m) => State::On(format!(">= {m} B")),
        };
        let batch = if cfg.batch {
            State::On(String::new())
        } else {
            State::Off
        };
        let features = Features {
            kernel: release,
            states: vec![
                ("multishot-accept", multishot_accept.clone()),
                ("multishot-recv", multishot_recv),
                ("fixed-files", fixed.clone()),
                ("taskrun", taskrun),
                ("sqpoll", sqpoll),
                ("send-zc", send_zc.clone()),
                ("batch", batch),
            ],
        };
        let zc_min = match send_zc {
            State::On(_) => cfg.send_zc_min,
            _ => None,
        };
        let mut w = Worker {
            ring,
            listener,
            stop,
            bufring,
            fixed: matches!(fixed, State::On(_)),
            multishot_accept: matches!(multishot_accept, State::On(_)),
            zc_min,
            slots: Vec::new(),
            free: Vec::new(),
            cqes: Vec::with_capacity(cfg.entries as usize * 4),
            answers: Vec::new(),
            responses: Responses::shared(),
            stopping: false,
            notes: Vec::new(),
            cfg,
        };
        w.arm_accept();
        let stop_poll = opcode::PollAdd::new(types::Fd(w.stop.as_raw_fd()), libc::POLLIN as u32)
            .build()
            .user_data(user_data(TAG_STOP, 0, 0));
        w.push(stop_poll);
        w.ring
            .submit()
            .map_err(|e| format!("first io_uring_enter: {e}"))?;
        Ok((w, features))
    }

    fn note(&mut self, text: String) {
        if !self.notes.contains(&text) {
            eprintln!("ceiling-uring: {text}");
            self.notes.push(text);
        }
    }

    /// Queues an entry, flushing the submission queue when it is full.
    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every entry points at memory that outlives the operation: the
            // process-wide answers, a connection's buffer or answer (freed only when
            // nothing in flight names the connection), the buffer ring (never freed).
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                // EBUSY: the completion queue is full; the loop drains it next.
                if e.raw_os_error() != Some(libc::EBUSY) {
                    self.note(format!("submit: {e}"));
                }
            }
        }
    }

    fn arm_accept(&mut self) {
        let lfd = types::Fd(self.listener.as_raw_fd());
        let entry = if self.multishot_accept {
            opcode::AcceptMulti::new(lfd)
                .allocate_file_index(self.fixed)
                .flags(if self.fixed { 0 } else { libc::SOCK_CLOEXEC })
                .build()
        } else if self.fixed {
            opcode::Accept::new(lfd, std::ptr::null_mut(), std::ptr::null_mut())
                .file_index(Some(types::DestinationSlot::auto_target()))
                .build()
        } else {
            opcode::Accept::new(lfd, std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_CLOEXEC)
                .build()
        };
        self.push(entry.user_data(user_data(TAG_ACCEPT, 0, 0)));
    }

    fn serve(&mut self) -> Result<(), String> {
        while !self.stopping {
            if let Err(e) = self.ring.submit_and_wait(1) {
                match e.raw_os_error() {
                    Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {}
                    _ => return Err(format!("io_uring_enter: {e}")),
                }
            }
            let mut cqes = std::mem::take(&mut self.cqes);
            cqes.extend(self.ring.completion());
            for cqe in cqes.drain(..) {
                self.handle(cqe);
                if !self.cfg.batch && !self.ring.submission().is_empty() {
                    let _ = self.ring.submit();
                }
            }
            self.cqes = cqes;
        }
        Ok(())
    }

    /// After a stop: connections and their buffers are leaked, not freed, because the
    /// kernel finishes cancelling their operations after the ring's file is closed.
    fn shutdown(&mut self) {
        std::mem::forget(std::mem::take(&mut self.slots));
    }

    fn handle(&mut self, cqe: cqueue::Entry) {
        let (tag, idx, gen) = split_user_data(cqe.user_data());
        match tag {
            TAG_ACCEPT => self.on_accept(cqe.result(), cqe.flags()),
            TAG_RECV => self.on_recv(idx, gen, cqe.result(), cqe.flags()),
            TAG_SEND => self.on_send(idx, gen, cqe.result(), cqe.flags()),
            TAG_STOP => self.stopping = true,
            // Closes and cancellations need nothing more.
            _ => {}
        }
    }

    fn on_accept(&mut self, res: i32, flags: u32) {
        if res >= 0 {
            let sock = if self.fixed {
                Sock::Fixed(res as u32)
            } else {
                Sock::Raw(res)
            };
            match self.alloc_slot() {
                Some(idx) => {
                    let buf = if self.bufring.is_some() {
                        Vec::new()
                    } else {
                        vec![0u8; self.cfg.buf_size]
                    };
                    self.slots[idx as usize].conn = Some(Conn {
                        sock,
                        framing: Framing::default(),
                        buf,
                        recv_armed: false,
                        inflight: 0,
                        sending: None,
                        sending_zc: false,
                        queue: Vec::new(),
                        queued_bytes: 0,
                        close_after: false,
                        closing: false,
                    });
                    self.arm_recv(idx);
                }
                None => self.close_sock(sock),
            }
        } else if res == -libc::EINVAL && self.multishot_accept {
            // A kernel that refuses multishot accept at run time: fall back.
            self.multishot_accept = false;
            self.note("multishot accept refused (EINVAL): single accepts instead".into());
        }
        if !cqueue::more(flags) && !self.stopping {
            self.arm_accept();
        }
    }

    fn alloc_slot(&mut self) -> Option<u32> {
        if let Some(i) = self.free.pop() {
            return Some(i);
        }
        if self.slots.len() < self.cfg.max_conns as usize {
            self.slots.push(Slot::default());
            return Some(self.slots.len() as u32 - 1);
        }
        None
    }

    fn close_sock(&mut self, sock: Sock) {
        let entry = with_sock!(sock, t => opcode::Close::new(t).build());
        self.push(entry.user_data(user_data(TAG_CLOSE, 0, 0)));
    }

    fn arm_recv(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        let gen = slot.gen;
        let Some(conn) = slot.conn.as_mut() else {
            return;
        };
        let entry = match &self.bufring {
            Some(br) => with_sock!(conn.sock, t => opcode::RecvMulti::new(t, br.bgid).build()),
            None => {
                let (ptr, len) = (conn.buf.as_mut_ptr(), conn.buf.len() as u32);
                with_sock!(conn.sock, t => opcode::Recv::new(t, ptr, len).build())
            }
        };
        conn.recv_armed = true;
        conn.inflight += 1;
        self.push(entry.user_data(user_data(TAG_RECV, idx, gen)));
    }

    fn conn_mut(&mut self, idx: u32, gen: u32) -> Option<&mut Conn> {
        let slot = self.slots.get_mut(idx as usize)?;
        if slot.gen & 0xff_ffff != gen {
            return None;
        }
        slot.conn.as_mut()
    }

    fn on_recv(&mut self, idx: u32, gen: u32, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let responses = self.responses;
        let mut answers = std::mem::take(&mut self.answers);
        let Some(conn) = self
            .slots
            .get_mut(idx as usize)
            .filter(|s| s.gen & 0xff_ffff == gen)
            .and_then(|s| s.conn.as_mut())
        else {
            if let (Some(b), Some(br)) = (bid, self.bufring.as_mut()) {
                br.recycle(b);
            }
            self.answers = answers;
            return;
        };
        if !more {
            conn.inflight -= 1;
            conn.recv_armed = false;
        }
        let mut fed_close = false;
        if res > 0 {
            if !conn.closing && !conn.close_after {
                let fed = match (&self.bufring, bid) {
                    (Some(br), Some(b)) => {
                        conn.framing
                            .feed(br.data(b, res as usize), responses, |a| answers.push(a))
                    }
                    _ => {
                        let n = (res as usize).min(conn.buf.len());
                        let buf = std::mem::take(&mut conn.buf);
                        let fed = conn.framing.feed(&buf[..n], responses, |a| answers.push(a));
                        conn.buf = buf;
                        fed
                    }
                };
                fed_close = fed.close_after;
            }
            if let (Some(b), Some(br)) = (bid, self.bufring.as_mut()) {
                br.recycle(b);
            }
        }
        let conn_state = (conn.closing, conn.recv_armed);
        if res > 0 {
            for a in answers.drain(..) {
                conn.queued_bytes += a.len();
                conn.queue.push(a);
            }
            let too_much = conn.queued_bytes > MAX_QUEUED;
            if fed_close {
                conn.close_after = true;
            }
            let close_after = conn.close_after;
            self.answers = answers;
            if too_much {
                self.begin_close(idx, gen);
            } else {
                if close_after && conn_state.1 {
                    // Stop reading: nothing after this request is answered.
                    self.cancel_recv(idx, gen);
                } else if !more && !close_after && !conn_state.0 {
                    self.arm_recv(idx);
                }
                self.flush(idx, gen);
            }
        } else {
            self.answers = answers;
            if res == -libc::ENOBUFS && !conn_state.0 {
                // The ring ran dry for a moment; buffers are back by now.
                if !more {
                    self.arm_recv(idx);
                }
            } else if !more {
                // End of stream, an error, or the cancellation of a closing connection.
                self.begin_close(idx, gen);
            }
        }
        self.maybe_finish(idx, gen);
    }

    fn cancel_recv(&mut self, idx: u32, gen: u32) {
        let entry = opcode::AsyncCancel::new(user_data(TAG_RECV, idx, gen))
            .build()
            .user_data(user_data(TAG_CANCEL, idx, gen));
        self.push(entry);
    }

    /// Starts sending what is queued when nothing is being sent.
    fn flush(&mut self, idx: u32, gen: u32) {
        let Some(conn) = self.conn_mut(idx, gen) else {
            return;
        };
        if conn.sending.is_some() || conn.queue.is_empty() || conn.closing {
            return;
        }
        let out = if conn.queue.len() == 1 {
            Out::Static(conn.queue[0], 0)
        } else {
            // Pipelined requests: one send of all their answers.
            let mut v = Vec::with_capacity(conn.queued_bytes);
            for a in &conn.queue {
                v.extend_from_slice(a);
            }
            Out::Owned(v, 0)
        };
        conn.queue.clear();
        conn.queued_bytes = 0;
        conn.sending = Some(out);
        self.submit_send(idx, gen);
    }

    fn submit_send(&mut self, idx: u32, gen: u32) {
        let zc_min = self.zc_min;
        let Some(conn) = self.conn_mut(idx, gen) else {
            return;
        };
        let Some(out) = conn.sending.as_ref() else {
            return;
        };
        let rest = out.rest();
        let (ptr, len) = (rest.as_ptr(), rest.len().min(u32::MAX as usize) as u32);
        let zc = zc_min.is_some_and(|m| rest.len() >= m);
        let flags = libc::MSG_NOSIGNAL | libc::MSG_WAITALL;
        let entry = if zc {
            with_sock!(conn.sock, t => opcode::SendZc::new(t, ptr, len).flags(flags).build())
        } else {
            with_sock!(conn.sock, t => opcode::Send::new(t, ptr, len).flags(flags).build())
        };
        conn.sending_zc = zc;
        conn.inflight += 1;
        self.push(entry.user_data(user_data(TAG_SEND, idx, gen)));
    }

    fn on_send(&mut self, idx: u32, gen: u32, res: i32, flags: u32) {
        let Some(conn) = self.conn_mut(idx, gen) else {
            return;
        };
        if flags & CQE_F_NOTIF != 0 {
            // A SEND_ZC's buffer is free again; the bytes were counted already.
            conn.inflight -= 1;
            self.maybe_finish(idx, gen);
            return;
        }
        // A SEND_ZC's result with MORE: its notification follows and ends the operation.
        if !cqueue::more(flags) {
            conn.inflight -= 1;
        }
        if res < 0 {
            if conn.sending_zc && (res == -libc::EOPNOTSUPP || res == -libc::EINVAL) {
                self.zc_min = None;
                self.note(format!("SEND_ZC refused ({res}): plain sends instead"));
                self.submit_send(idx, gen);
            } else {
                self.begin_close(idx, gen);
            }
            self.maybe_finish(idx, gen);
            return;
        }
        let done = match conn.sending.as_mut() {
            Some(out) => {
                out.advance(res as usize);
                out.rest().is_empty()
            }
            None => true,
        };
        if !done {
            if conn.closing {
                conn.sending = None;
            } else {
                self.submit_send(idx, gen);
            }
        } else {
            conn.sending = None;
            if conn.close_after && conn.queue.is_empty() {
                self.begin_close(idx, gen);
            } else {
                self.flush(idx, gen);
            }
        }
        self.maybe_finish(idx, gen);
    }

    fn begin_close(&mut self, idx: u32, gen: u32) {
        let Some(conn) = self.conn_mut(idx, gen) else {
            return;
        };
        if conn.closing {
            return;
        }
        conn.closing = true;
        if conn.recv_armed {
            self.cancel_recv(idx, gen);
        }
    }

    /// Frees a closing connection's slot once nothing in flight names it.
    fn maybe_finish(&mut self, idx: u32, gen: u32) {
        let Some(conn) = self.conn_mut(idx, gen) else {
            return;
        };
        if !conn.closing || conn.inflight > 0 {
            return;
        }
        let sock = conn.sock;
        let slot = &mut self.slots[idx as usize];
        slot.conn = None;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(idx);
        self.close_sock(sock);
    }
}
