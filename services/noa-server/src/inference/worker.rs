//! The inference thread: loads the model, warms it up, then runs queued requests one at a time
//! on one reused llama.cpp context.

use super::text::{Pushed, TextStream};
use super::{
    EngineConfig, Event, FinishReason, GenerateError, GenerateRequest, Job, ModelState, Prompt,
    Usage, model_name,
};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Tokens decoded per llama_decode call while reading a prompt.
const BATCH_TOKENS: u32 = 512;

type Events = mpsc::Sender<Result<Event, GenerateError>>;

pub(super) fn run(
    path: PathBuf,
    config: EngineConfig,
    state: Arc<Mutex<ModelState>>,
    mut queue: mpsc::Receiver<Job>,
) {
    let name = model_name(&path);
    let set = |new: ModelState| *state.lock().unwrap_or_else(|e| e.into_inner()) = new;
    let started = std::time::Instant::now();
    let (backend, model) = match load(&path) {
        Ok(loaded) => loaded,
        Err(error) => return refuse_all(&path, name, error, &set, queue),
    };
    let mut session = match Session::new(&backend, &model, &config) {
        Ok(session) => session,
        Err(error) => return refuse_all(&path, name, error, &set, queue),
    };
    tracing::info!(
        model = %path.display(),
        ms = started.elapsed().as_millis() as u64,
        threads = config.threads,
        "model ready"
    );
    set(ModelState::Ready {
        name,
        context_tokens: session.context.n_ctx(),
        threads: config.threads,
    });
    while let Some(job) = queue.blocking_recv() {
        if job.events.is_closed() {
            continue;
        }
        if let Err(error) = session.generate(&job.request, &job.events) {
            let _ = job.events.blocking_send(Err(error));
        }
    }
}

/// The model failed: say so, and answer every request (queued during the load or later) with why.
fn refuse_all(
    path: &Path,
    name: String,
    error: String,
    set: &dyn Fn(ModelState),
    mut queue: mpsc::Receiver<Job>,
) {
    tracing::error!(model = %path.display(), "cannot load the model: {error}");
    set(ModelState::Failed {
        name,
        error: error.clone(),
    });
    while let Some(job) = queue.blocking_recv() {
        let refusal = Err(GenerateError::ModelFailed(error.clone()));
        let _ = job.events.blocking_send(refusal);
    }
}

fn load(path: &Path) -> Result<(LlamaBackend, LlamaModel), String> {
    let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
    if !tracing::enabled!(tracing::Level::DEBUG) {
        backend.void_logs();
    }
    // llama.cpp maps the file once (MAP_POPULATE: its pages are touched here, in the
    // background, not on the first request).
    let params = LlamaModelParams::default();
    let model = LlamaModel::load_from_file(&backend, path, &params).map_err(|e| e.to_string())?;
    Ok((backend, model))
}

/// A loaded model with its context.
struct Session<'m> {
    model: &'m LlamaModel,
    context: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
}

impl<'m> Session<'m> {
    fn new(
        backend: &LlamaBackend,
        model: &'m LlamaModel,
        config: &EngineConfig,
    ) -> Result<Session<'m>, String> {
        let context_tokens = config.context_tokens.min(model.n_ctx_train().max(1));
        let context = super::context::new_context(
            backend,
            model,
            context_tokens,
            BATCH_TOKENS,
            config.threads,
        )?;
        let mut session = Session {
            model,
            context,
            batch: LlamaBatch::new(BATCH_TOKENS as usize, 1),
        };
        session.warm_up()?;
        Ok(session)
    }

    /// One decode, so the compute buffers are allocated and touched before the first request.
    fn warm_up(&mut self) -> Result<(), String> {
        let token = self.model.vocab().bos();
        self.batch.clear();
        self.batch
            .add(token, 0, &[0], true)
            .map_err(|e| e.to_string())?;
        self.context
            .decode(&mut self.batch)
            .map_err(|e| format!("warm-up failed: {e}"))?;
        self.context.clear_kv_cache();
        Ok(())
    }

    fn prompt_text(&self, prompt: &Prompt) -> Result<String, GenerateError> {
        match prompt {
            Prompt::Text(text) => Ok(text.clone()),
            Prompt::Chat(messages) => {
                let template = self.model.chat_template(None).map_err(|e| {
                    GenerateError::Internal(format!("the model has no chat template: {e}"))
                })?;
                let chat = messages
                    .iter()
                    .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| GenerateError::Internal(format!("bad message: {e}")))?;
                self.model
                    .apply_chat_template(&template, &chat, true)
                    .map_err(|e| {
                        GenerateError::Internal(format!("cannot apply the chat template: {e}"))
                    })
            }
        }
    }

    /// Reads `tokens` into the (cleared) context; the logits of the last one are kept.
    fn read_prompt(&mut self, tokens: &[LlamaToken]) -> Result<(), GenerateError> {
        self.context.clear_kv_cache();
        let chunks = tokens.chunks(BATCH_TOKENS as usize);
        let last_chunk = chunks.len().saturating_sub(1);
        for (index, chunk) in chunks.enumerate() {
            self.batch.clear();
            let base = index * BATCH_TOKENS as usize;
            for (offset, token) in chunk.iter().enumerate() {
                let last = index == last_chunk && offset + 1 == chunk.len();
                self.batch
                    .add(*token, (base + offset) as i32, &[0], last)
                    .map_err(|e| GenerateError::Internal(e.to_string()))?;
            }
            self.context
                .decode(&mut self.batch)
                .map_err(|e| GenerateError::Internal(format!("decode failed: {e}")))?;
        }
        Ok(())
    }

    fn generate(
        &mut self,
        request: &GenerateRequest,
        events: &Events,
    ) -> Result<(), GenerateError> {
        let text = self.prompt_text(&request.prompt)?;
        let vocab = self.model.vocab();
        let tokens = vocab.tokenize(text.as_bytes(), true, true);
        let context = self.context.n_ctx();
        if tokens.is_empty() || tokens.len() >= context as usize {
            return Err(GenerateError::PromptTooLong {
                tokens: tokens.len(),
                context,
            });
        }
        self.read_prompt(&tokens)?;
        let mut sampler = sampler(&request.sampling);
        let mut stream = TextStream::new(request.stop.clone());
        let room = context as usize - tokens.len();
        let budget = (request.max_tokens as usize).min(room);
        let mut usage = Usage {
            prompt_tokens: tokens.len() as u32,
            completion_tokens: 0,
        };
        let mut position = tokens.len() as i32;
        let mut reason = FinishReason::Length;
        let send = |event: Event| events.blocking_send(Ok(event)).is_ok();
        while (usage.completion_tokens as usize) < budget {
            let token = sampler.sample(&self.context, self.batch.n_tokens() - 1);
            usage.completion_tokens += 1;
            if vocab.is_eog(token) {
                reason = FinishReason::Stop;
                break;
            }
            let piece = vocab.token_to_piece(token, false, None);
            match stream.push(&piece) {
                Pushed::Text(text) => {
                    if !text.is_empty() && !send(Event::Text(text)) {
                        return Ok(()); // The client went away.
                    }
                }
                Pushed::Stopped(text) => {
                    if !text.is_empty() {
                        send(Event::Text(text));
                    }
                    reason = FinishReason::Stop;
                    send(Event::Done(reason, usage));
                    return Ok(());
                }
            }
            self.batch.clear();
            self.batch
                .add(token, position, &[0], true)
                .map_err(|e| GenerateError::Internal(e.to_string()))?;
            position += 1;
            self.context
                .decode(&mut self.batch)
                .map_err(|e| GenerateError::Internal(format!("decode failed: {e}")))?;
        }
        let rest = stream.finish();
        if !rest.is_empty() {
            send(Event::Text(rest));
        }
        send(Event::Done(reason, usage));
        Ok(())
    }
}

fn sampler(sampling: &super::Sampling) -> LlamaSampler {
    if sampling.temperature <= 0.0 {
        return LlamaSampler::greedy();
    }
    let seed = sampling.seed.unwrap_or_else(rand_seed);
    LlamaSampler::chain_simple([
        LlamaSampler::top_p(sampling.top_p.clamp(0.0, 1.0), 1),
        LlamaSampler::temp(sampling.temperature),
        LlamaSampler::dist(seed),
    ])
}

/// A seed from the clock (requests without one need not be reproducible).
fn rand_seed() -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_nanos() as u32) ^ std::process::id()
}
