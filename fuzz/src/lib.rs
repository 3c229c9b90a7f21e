//! wsportal's fuzz targets. Each module's `run` takes libFuzzer's bytes and
//! panics when an invariant breaks; `fuzz_targets/*.rs` are one-line shims.
//!
//! Invariants every target checks: no panic; no allocation proportional to a
//! length field before the bytes arrive (the largest single allocation made
//! by the code under test is bounded by what the input supplies, see
//! [`largest_allocation`]); every refusal maps to the documented HTTP status
//! or close code.

pub mod client_response;
pub mod frame_diff;
pub mod frame_reader;
pub mod input;
pub mod request_head;
pub mod route;
pub mod sse_event;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, recording the largest single request.
struct Recording;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` unchanged; the only addition is
// an atomic store, which allocates nothing. (The library itself forbids
// unsafe code; this harness crate needs it only for a global allocator.)
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Recording = Recording;

/// Runs `f` and returns its result with the largest single allocation (in
/// bytes) made while it ran. Targets are single-threaded.
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.store(0, Ordering::Relaxed);
    let out = f();
    (out, LARGEST.load(Ordering::Relaxed))
}
