//! Making a llama.cpp context the way every caller here wants it: `threads` threads for single
//! tokens and batches alike, on one persistent ggml thread pool.
//!
//! Without the pool, ggml starts and ends its worker threads for every decode, that is for every
//! generated token. In the guest each thread start and exit is a handful of kernel traps (clone,
//! stack faults, futex, exit), which cost more than the token's arithmetic; a pool made once
//! keeps its threads polling between tokens.

use std::num::NonZeroU32;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::threadpool::ThreadPool;

/// A context of `context_tokens` tokens and batches of up to `batch_tokens`, computed by a
/// persistent pool of `threads` threads.
pub fn new_context<'m>(
    backend: &LlamaBackend,
    model: &'m LlamaModel,
    context_tokens: u32,
    batch_tokens: u32,
    threads: u32,
) -> Result<LlamaContext<'m>, String> {
    let threads = i32::try_from(threads.max(1)).unwrap_or(1);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(context_tokens))
        .with_n_batch(batch_tokens)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut context = model
        .new_context(backend, params)
        .map_err(|e| format!("cannot create a context: {e}"))?;
    let pool = ThreadPool::new(threads)
        .ok_or_else(|| format!("cannot start a pool of {threads} inference threads"))?;
    context.attach_threadpool(pool);
    Ok(context)
}
