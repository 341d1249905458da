//! The inference service: one llama.cpp model on one worker thread, shared by the OpenAI API and
//! the MCP `generate` tool.
//!
//! The model loads in the background ([`Engine::start`] returns at once), so `/health` and MCP
//! answer while it loads; requests queue behind the load and then run one at a time. One context
//! (its KV cache and compute buffers) is made once and reused: fresh memory costs a first touch
//! per page in the guest, so nothing large is allocated per request.

mod context;
mod text;
mod worker;

pub mod bench;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// How many requests may wait for the worker before new ones get "busy".
const QUEUE_DEPTH: usize = 64;

/// Where the model stands (what `/health` reports).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ModelState {
    /// No model file was found.
    Absent {
        reason: String,
    },
    Loading {
        name: String,
    },
    Ready {
        name: String,
        context_tokens: u32,
        threads: u32,
    },
    Failed {
        name: String,
        error: String,
    },
}

/// A chat message as the chat template takes it.
#[derive(Debug, Clone)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone)]
pub enum Prompt {
    /// Raw text, tokenized as is.
    Text(String),
    /// Messages rendered with the model's chat template, ending with the assistant's turn.
    Chat(Vec<ChatMessage>),
}

#[derive(Debug, Clone)]
pub struct Sampling {
    /// 0 means greedy.
    pub temperature: f32,
    pub top_p: f32,
    /// None: a fresh seed per request.
    pub seed: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub prompt: Prompt,
    pub max_tokens: u32,
    pub sampling: Sampling,
    pub stop: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// The model ended its answer or a stop sequence appeared.
    Stop,
    /// max_tokens or the context ran out.
    Length,
}

#[derive(Debug, Clone)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// What a running request yields: text as it is generated, then one `Done`.
#[derive(Debug)]
pub enum Event {
    Text(String),
    Done(FinishReason, Usage),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum GenerateError {
    #[error("no model is loaded: {0}")]
    NoModel(String),
    #[error("the model failed to load: {0}")]
    ModelFailed(String),
    #[error("the prompt has {tokens} tokens; the context holds {context}")]
    PromptTooLong { tokens: usize, context: u32 },
    #[error("the server is busy: {QUEUE_DEPTH} requests are waiting")]
    Busy,
    #[error("inference failed: {0}")]
    Internal(String),
}

struct Job {
    request: GenerateRequest,
    events: mpsc::Sender<Result<Event, GenerateError>>,
}

/// A handle on the inference worker; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    state: Arc<Mutex<ModelState>>,
    jobs: mpsc::Sender<Job>,
}

/// How to run the model.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The model file, if one was found.
    pub model: Result<PathBuf, String>,
    pub threads: u32,
    pub context_tokens: u32,
}

impl Engine {
    /// Starts the worker thread, which loads the model and then serves requests.
    pub fn start(config: EngineConfig) -> Engine {
        let state = Arc::new(Mutex::new(match &config.model {
            Ok(path) => ModelState::Loading {
                name: model_name(path),
            },
            Err(reason) => ModelState::Absent {
                reason: reason.clone(),
            },
        }));
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        if let Ok(path) = config.model.clone() {
            let state = state.clone();
            std::thread::Builder::new()
                .name("inference".into())
                .spawn(move || worker::run(path, config, state, queue))
                .expect("cannot start the inference thread");
        }
        Engine { state, jobs }
    }

    pub fn state(&self) -> ModelState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The model's id for `/v1/models` (its file name without `.gguf`), if there is one.
    pub fn model_id(&self) -> Option<String> {
        match self.state() {
            ModelState::Absent { .. } => None,
            ModelState::Loading { name }
            | ModelState::Ready { name, .. }
            | ModelState::Failed { name, .. } => Some(name),
        }
    }

    /// Queues a request; its events arrive on the returned channel. Waits for the model while
    /// it loads. Dropping the receiver cancels the request at the next token.
    pub fn generate(
        &self,
        request: GenerateRequest,
    ) -> Result<mpsc::Receiver<Result<Event, GenerateError>>, GenerateError> {
        match self.state() {
            ModelState::Absent { reason } => return Err(GenerateError::NoModel(reason)),
            ModelState::Failed { error, .. } => return Err(GenerateError::ModelFailed(error)),
            ModelState::Loading { .. } | ModelState::Ready { .. } => {}
        }
        let (events, receiver) = mpsc::channel(256);
        self.jobs
            .try_send(Job { request, events })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => GenerateError::Busy,
                mpsc::error::TrySendError::Closed(_) => {
                    GenerateError::Internal("the inference thread has stopped".into())
                }
            })?;
        Ok(receiver)
    }

    /// Runs a request to the end and returns its whole text.
    pub async fn complete(
        &self,
        request: GenerateRequest,
    ) -> Result<(String, FinishReason, Usage), GenerateError> {
        collect(self.generate(request)?).await
    }
}

/// Waits for a running request's whole text.
pub async fn collect(
    mut events: mpsc::Receiver<Result<Event, GenerateError>>,
) -> Result<(String, FinishReason, Usage), GenerateError> {
    let mut text = String::new();
    while let Some(event) = events.recv().await {
        match event? {
            Event::Text(piece) => text.push_str(&piece),
            Event::Done(reason, usage) => return Ok((text, reason, usage)),
        }
    }
    Err(GenerateError::Internal(
        "the inference thread stopped mid-request".into(),
    ))
}

/// A model's name: its file name without `.gguf`.
pub fn model_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.strip_suffix(".gguf").unwrap_or(&name).to_string()
}

/// The model to serve: `explicit` if given, else the first `.gguf` file (by name) in `dir`.
pub fn find_model(explicit: Option<&Path>, dir: &Path) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("{} is not a file", path.display()))
        };
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut models: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "gguf") && path.is_file())
        .collect();
    models.sort();
    models
        .into_iter()
        .next()
        .ok_or_else(|| format!("no .gguf file in {}", dir.display()))
}
