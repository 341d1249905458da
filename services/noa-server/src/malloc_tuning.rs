//! glibc malloc settings for a program whose heap grows by megabytes at start-up (llama.cpp's
//! vocabulary and metadata while the model loads).
//!
//! By default each thread gets its own arena, and glibc grows a thread arena by exactly what an
//! allocation needs: one `mprotect` per page or so — about 1,200 while the model loads. Natively
//! that is nothing; in our guest each system call is a trap into an emulated kernel (milliseconds
//! on PVM hosts). One arena, grown through `brk` with 1 MiB of slack each time, makes that a few
//! dozen calls. The threads here allocate little at once (one inference worker, a few tokio
//! workers), so the shared arena costs no measurable contention.

/// Slack added to each `brk` growth of the main arena.
const TOP_PAD: i32 = 1 << 20;

/// Applies the settings; call first thing in `main`, before any thread starts.
pub fn apply() {
    // SAFETY: mallopt only changes malloc's parameters; no thread allocates concurrently yet.
    let applied = unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1) == 1 && libc::mallopt(libc::M_TOP_PAD, TOP_PAD) == 1
    };
    if !applied {
        // Only slower, never wrong: say so and go on.
        eprintln!("noa-server: glibc did not take the malloc settings");
    }
}
