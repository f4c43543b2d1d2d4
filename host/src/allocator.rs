//! The process's memory allocator, set for the way Sluice moves buffers between threads.
//!
//! glibc's malloc gives threads arenas of their own, up to eight per core, and an arena keeps what was
//! freed into it for its own later use. Sluice hands large buffers from thread to thread: a chunk is read
//! on the async runtime, parsed on a plugin's thread, and its rows encoded on another (a Delta table's
//! files). With every arena holding its share, a 1 GB sync into Delta peaked at about 290 MB resident;
//! with two arenas, at 195 MB and the same speed (BENCHMARKS.md, the Delta sync bench).

/// Caps glibc's malloc at two arenas. The `sluice` binary calls it first thing; a program that embeds
/// Sluice may too. It must run before the process starts other threads, and does nothing where the C
/// library is not glibc.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt changes a tuning parameter of glibc's allocator; it takes no pointers, and arenas
    // already made stay valid.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
