//! How many heaps glibc's allocator keeps, set once at start for the whole process (Rust
//! code and ONNX Runtime's C++ alike).
//!
//! By default glibc gives threads up to eight heaps ("arenas") per core, and each keeps the
//! memory its threads freed for reuse. The server's threads (HTTP, task workers, inference)
//! each decode photos into blocks of megabytes and the model load parses and copies SFace
//! (37 MB), so an idle server held tens of megabytes it had freed. One heap per core keeps
//! 36 MB less resident (docs/PERFORMANCE.md, "Memory by enrolled people") with no change in
//! `rollcall bench`'s throughput. Returning every large block at once (a low mmap or trim
//! threshold) would save more but halved throughput: inference allocates and frees blocks of
//! hundreds of kilobytes for every layer.
#![allow(unsafe_code)]

/// Limits the allocator to one heap per core; call first thing in `main`, before other
/// threads start.
pub fn one_heap_per_core() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let heaps = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` only changes the allocator's parameters; it takes no pointers
        // and is safe to call at any time (glibc takes its own lock).
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, heaps);
        }
    }
}
