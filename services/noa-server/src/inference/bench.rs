//! `noa-server bench`: llama.cpp's prompt and generation speed, measured as llama-bench does
//! (pp: one batch of N prompt tokens; tg: N single-token decodes), so the same binary can be
//! timed natively and in the guest with the same thread count. Prints one JSON object.

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, serde::Serialize)]
pub struct BenchResult {
    pub model: String,
    pub threads: u32,
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    pub repetitions: u32,
    /// Median prompt tokens per second.
    pub pp_tokens_per_s: f64,
    /// Median generated tokens per second.
    pub tg_tokens_per_s: f64,
    /// How long loading the model took, in milliseconds.
    pub load_ms: f64,
}

pub fn run(
    model_path: &Path,
    threads: u32,
    prompt_tokens: u32,
    generated_tokens: u32,
    repetitions: u32,
) -> anyhow::Result<BenchResult> {
    use anyhow::Context;
    let mut backend = LlamaBackend::init()?;
    backend.void_logs();
    let started = Instant::now();
    let model = LlamaModel::load_from_file(&backend, model_path, &LlamaModelParams::default())
        .with_context(|| format!("cannot load {}", model_path.display()))?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut context = super::context::new_context(
        &backend,
        &model,
        prompt_tokens + generated_tokens + 16,
        prompt_tokens.max(1),
        threads,
    )
    .map_err(anyhow::Error::msg)?;
    let vocab_size = model.n_vocab().max(2);
    // Deterministic, varied tokens (llama-bench uses random ones).
    let token = |i: u32| LlamaToken(((i.wrapping_mul(2_654_435_761)) % vocab_size as u32) as i32);
    let mut batch = LlamaBatch::new(prompt_tokens.max(1) as usize, 1);
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    // One untimed round first: it allocates and touches the buffers.
    for round in 0..=repetitions {
        context.clear_kv_cache();
        batch.clear();
        for i in 0..prompt_tokens {
            batch.add(token(i), i as i32, &[0], i + 1 == prompt_tokens)?;
        }
        let started = Instant::now();
        context.decode(&mut batch)?;
        let pp_s = started.elapsed().as_secs_f64();

        context.clear_kv_cache();
        let started = Instant::now();
        for i in 0..generated_tokens {
            batch.clear();
            batch.add(token(i + 7), i as i32, &[0], true)?;
            context.decode(&mut batch)?;
        }
        let tg_s = started.elapsed().as_secs_f64();
        if round > 0 {
            pp.push(prompt_tokens as f64 / pp_s);
            tg.push(generated_tokens as f64 / tg_s);
        }
    }
    Ok(BenchResult {
        model: super::model_name(model_path),
        threads,
        prompt_tokens,
        generated_tokens,
        repetitions,
        pp_tokens_per_s: median(&mut pp),
        tg_tokens_per_s: median(&mut tg),
        load_ms,
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
