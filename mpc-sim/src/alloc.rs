//! A global allocator that backs large buffers with transparent huge pages.
//!
//! Dealer material is hundreds of megabytes per layer (2 KB of DCF keys per comparison in
//! one-round mode), written once by the dealer, read once by the online phase, then freed. With
//! 4 KiB pages the kernel pays per page on both ends: a fault (and zeroing) on first write, and
//! an unmap on free. Measured on 100,000 ReLUs (206 MB of material per party): freeing it took
//! 12–17 ms, as long as the DCF evaluation. [`HugePages`] asks the kernel (`madvise`
//! `MADV_HUGEPAGE`) to back every allocation of at least [`MIN_BYTES`] with 2 MiB pages, which
//! cuts the page count 512-fold. The allocation itself is the system allocator's; on systems
//! without the advice (or with transparent huge pages disabled) nothing changes.
//!
//! Binaries opt in with
//! ```ignore
//! #[global_allocator]
//! static ALLOC: masq_mpc::alloc::HugePages = masq_mpc::alloc::HugePages;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};

/// Size of a huge page (x86-64 and aarch64 with 4 KiB base pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// Allocations at least this large are advised (smaller ones would round to little).
pub const MIN_BYTES: usize = 8 << 20;

/// The system allocator, with huge-page advice on large allocations.
#[derive(Debug, Clone, Copy, Default)]
pub struct HugePages;

/// The whole huge pages inside `[ptr, ptr + len)`.
fn huge_span(ptr: usize, len: usize) -> Option<(usize, usize)> {
    let start = ptr.checked_add(HUGE_PAGE - 1)? & !(HUGE_PAGE - 1);
    let end = ptr.checked_add(len)? & !(HUGE_PAGE - 1);
    (end > start).then_some((start, end - start))
}

fn advise(ptr: *mut u8, len: usize) {
    if ptr.is_null() || len < MIN_BYTES {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Some((start, len)) = huge_span(ptr as usize, len) {
        // SAFETY: the range lies inside an allocation the system allocator just handed out;
        // MADV_HUGEPAGE only changes how the kernel backs it, never its contents or validity.
        // A failure (e.g. THP compiled out) leaves the pages as they were, which is fine.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
    }
}

// SAFETY: every call is forwarded to `System` with the same arguments; `advise` does not touch
// the memory's contents or the allocator's bookkeeping.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        advise(p, new_size);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_huge_pages_inside_the_allocation_are_advised() {
        assert_eq!(huge_span(0, HUGE_PAGE), Some((0, HUGE_PAGE)));
        assert_eq!(huge_span(1, HUGE_PAGE), None);
        assert_eq!(huge_span(1, 3 * HUGE_PAGE), Some((HUGE_PAGE, 2 * HUGE_PAGE)));
        assert_eq!(huge_span(1, 2 * HUGE_PAGE), Some((HUGE_PAGE, HUGE_PAGE)));
        assert_eq!(huge_span(HUGE_PAGE - 8, 2 * HUGE_PAGE + 8), Some((HUGE_PAGE, 2 * HUGE_PAGE)));
        assert_eq!(huge_span(usize::MAX - 10, 100), None);
    }

    #[test]
    fn large_and_small_buffers_work_through_it() {
        let a = HugePages;
        for size in [64, MIN_BYTES - 1, MIN_BYTES, 3 * MIN_BYTES + 12_345] {
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: nonzero size; the pointer is checked, used within its size and freed once.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert_eq!(*p.add(size - 1), 0);
                *p.add(size / 2) = 7;
                let q = a.realloc(p, layout, size * 2);
                assert!(!q.is_null());
                assert_eq!(*q.add(size / 2), 7);
                a.dealloc(q, Layout::from_size_align(size * 2, 8).unwrap());
            }
        }
    }
}
