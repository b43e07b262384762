//! A provided buffer ring (`IORING_REGISTER_PBUF_RING`): the kernel picks a receive
//! buffer only when data arrives, so an idle connection with a multishot receive armed
//! holds no buffer of its own.
//!
//! Contract: [`BufRing::new`] allocates `entries` buffers of `size` bytes and the ring of
//! descriptors (page-aligned, as the kernel requires), registers them as group `bgid`
//! and hands every buffer to the kernel. A completion names a buffer id; [`BufRing::data`]
//! gives its bytes and [`BufRing::recycle`] hands it back (published at once, so the
//! kernel never runs dry because the user side batched its returns).
//!
//! Not done: incremental consumption (`IOU_PBUF_RING_INC`), growing the ring. The memory
//! is never freed: after the ring's file is closed the kernel tears it down
//! asynchronously, and a receive still in progress could write into a freed buffer; one
//! ring per server thread for the life of the process makes leaking the right trade.

use std::alloc::Layout;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

/// A registered buffer ring and its buffers.
#[derive(Debug)]
pub struct BufRing {
    ring: *mut BufRingEntry,
    bufs: *mut u8,
    entries: u16,
    size: usize,
    tail: u16,
    /// The buffer group id the receives name.
    pub bgid: u16,
}

impl BufRing {
    /// Allocates and registers the ring; `entries` must be a power of two up to 32768.
    pub fn new(
        submitter: &io_uring::Submitter<'_>,
        entries: u16,
        size: usize,
        bgid: u16,
    ) -> std::io::Result<BufRing> {
        if !entries.is_power_of_two() || entries > 32768 || size == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "buffer ring entries must be a power of two up to 32768",
            ));
        }
        let ring_layout = Layout::from_size_align(
            usize::from(entries) * std::mem::size_of::<BufRingEntry>(),
            4096,
        )
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let bufs_layout = Layout::from_size_align(usize::from(entries) * size, 4096)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        // SAFETY: both layouts have a non-zero size (checked above).
        let (ring, bufs) = unsafe {
            (
                std::alloc::alloc_zeroed(ring_layout).cast::<BufRingEntry>(),
                std::alloc::alloc(bufs_layout),
            )
        };
        if ring.is_null() || bufs.is_null() {
            return Err(std::io::Error::from(std::io::ErrorKind::OutOfMemory));
        }
        // SAFETY: `ring` points to `entries` zeroed descriptors, page-aligned, which are
        // never freed (see the module docs), so they outlive the registration.
        unsafe { submitter.register_buf_ring(ring as u64, entries, bgid)? };
        let mut br = BufRing {
            ring,
            bufs,
            entries,
            size,
            tail: 0,
            bgid,
        };
        for bid in 0..entries {
            br.add(bid);
        }
        br.publish();
        Ok(br)
    }

    /// Size of each buffer.
    pub fn buf_size(&self) -> usize {
        self.size
    }

    fn add(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.entries - 1));
        // SAFETY: `slot < entries`; the descriptor at the tail is ours until the tail is
        // published past it.
        let entry = unsafe { &mut *self.ring.add(slot) };
        // SAFETY: `bid < entries`, so the buffer lies inside the allocation.
        entry.set_addr(unsafe { self.bufs.add(usize::from(bid) * self.size) } as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field lives in the first descriptor's reserved word, which
        // the kernel reads atomically; it is 2-byte aligned inside a page-aligned block.
        let tail = unsafe { &*BufRingEntry::tail(self.ring).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// The first `len` bytes of buffer `bid`, which a completion just handed to us.
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        let bid = bid.min(self.entries - 1);
        let len = len.min(self.size);
        // SAFETY: the buffer lies inside the allocation; the kernel wrote `len` bytes and
        // does not touch it again until it is recycled.
        unsafe { std::slice::from_raw_parts(self.bufs.add(usize::from(bid) * self.size), len) }
    }

    /// Hands buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        if bid < self.entries {
            self.add(bid);
            self.publish();
        }
    }
}
