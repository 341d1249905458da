//! A persistent ggml CPU thread pool (added by NOA ARK OS; not in upstream 0.1.160).
//!
//! Without an attached pool, ggml's CPU backend makes a disposable pool for every graph it
//! computes: one `pthread_create` and one thread exit per extra thread per `llama_decode`, which
//! for token generation means per token. Where creating a thread is expensive (a paravirtual
//! guest traps on every clone, mmap and futex), that cost dominates generation. A pool made once
//! and attached to the context keeps its threads between decodes (they poll, then sleep).

use crate::ptr::Ptr;

/// An owned `ggml_threadpool`, freed on drop.
#[derive(Debug)]
pub struct ThreadPool {
    pool: Ptr<llama_cpp_sys_2::ggml_threadpool>,
}

// SAFETY: the pool is only handed to llama.cpp, which drives it from the thread that decodes;
// ggml_threadpool_free may run on any thread.
unsafe impl Send for ThreadPool {}

impl ThreadPool {
    /// A pool of `n_threads` threads (the caller included) with ggml's default parameters:
    /// normal priority, no CPU mask, hybrid polling.
    ///
    /// # Errors
    /// `None` when `n_threads` is below 1 or ggml cannot make the pool.
    #[must_use]
    pub fn new(n_threads: i32) -> Option<Self> {
        if n_threads < 1 {
            return None;
        }
        // SAFETY: plain-data call; the params are a value ggml fills in.
        let mut params = unsafe { llama_cpp_sys_2::ggml_threadpool_params_default(n_threads) };
        // SAFETY: params is a valid, initialised ggml_threadpool_params for the call's duration.
        let pool = unsafe { llama_cpp_sys_2::ggml_threadpool_new(&mut params) };
        Ptr::new(pool).map(|pool| Self { pool })
    }

    /// The number of threads in the pool.
    #[must_use]
    pub fn n_threads(&self) -> i32 {
        // SAFETY: self.pool is a live pool until drop.
        unsafe { llama_cpp_sys_2::ggml_threadpool_get_n_threads(self.pool.as_mut_ptr_unsound()) }
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut llama_cpp_sys_2::ggml_threadpool {
        self.pool.as_mut_ptr()
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        // SAFETY: the pool is live and, by LlamaContext's field order, no context uses it any more.
        unsafe { llama_cpp_sys_2::ggml_threadpool_free(self.pool.as_mut_ptr()) }
    }
}
