//! The OpenAI-compatible API: `GET /v1/models`, `POST /v1/completions`,
//! `POST /v1/chat/completions` (whole or streamed as server-sent events, ending `data: [DONE]`),
//! and `GET /health`, which answers while the model loads and says how far it is.

mod error;
mod types;

pub use error::ApiError;

use crate::inference::{
    ChatMessage, Engine, Event, FinishReason, GenerateError, GenerateRequest, Prompt, Sampling,
};
use axum::extract::{FromRequest, Request, State};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use types::{ChatRequest, CompletionRequest, Content, SamplingFields, Usage};

/// The most tokens a request may ask for.
const MAX_TOKENS: u32 = 4096;
/// OpenAI's default for /v1/completions.
const DEFAULT_COMPLETION_TOKENS: u32 = 16;
const MAX_STOPS: usize = 4;

pub fn routes(engine: Engine) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .with_state(engine)
}

/// `axum::Json`, with its rejections in OpenAI's error shape.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(ApiJson(value))
    }
}

async fn health(State(engine): State<Engine>) -> Json<Value> {
    Json(json!({ "status": "ok", "model": engine.state() }))
}

async fn models(State(engine): State<Engine>) -> Json<Value> {
    let data: Vec<Value> = engine
        .model_id()
        .into_iter()
        .map(
            |id| json!({ "id": id, "object": "model", "created": started_at(), "owned_by": "noa" }),
        )
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

async fn completions(
    State(engine): State<Engine>,
    ApiJson(request): ApiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let mut prompts = request.prompt.into_vec();
    if prompts.len() != 1 {
        return Err(ApiError::invalid("give exactly one prompt", Some("prompt")));
    }
    let prompt = Prompt::Text(prompts.remove(0));
    let tokens = DEFAULT_COMPLETION_TOKENS;
    answer(
        &engine,
        prompt,
        request.sampling,
        tokens,
        Kind::Completion,
        request.model,
    )
    .await
}

async fn chat_completions(
    State(engine): State<Engine>,
    ApiJson(request): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let prompt = Prompt::Chat(chat_messages(request.messages)?);
    answer(
        &engine,
        prompt,
        request.sampling,
        MAX_TOKENS,
        Kind::Chat,
        request.model,
    )
    .await
}

/// What both endpoints do once the prompt is known: check the sampling fields, queue the
/// request, then stream it or wait for the whole text.
async fn answer(
    engine: &Engine,
    prompt: Prompt,
    fields: SamplingFields,
    default_tokens: u32,
    kind: Kind,
    model: Option<String>,
) -> Result<Response, ApiError> {
    let stream = fields.stream;
    let include_usage = fields
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let generate = request_from(prompt, fields, default_tokens)?;
    let reply = Reply::new(kind, engine, model);
    let events = engine.generate(generate)?;
    if stream {
        return Ok(reply.stream(events, kind, include_usage).into_response());
    }
    let (text, finish, usage) = crate::inference::collect(events).await?;
    let choice = match kind {
        Kind::Completion => {
            json!({ "index": 0, "text": text, "logprobs": null, "finish_reason": finish })
        }
        Kind::Chat => json!({
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "logprobs": null,
            "finish_reason": finish,
        }),
    };
    let object = match kind {
        Kind::Completion => "text_completion",
        Kind::Chat => "chat.completion",
    };
    Ok(Json(json!({
        "id": reply.id,
        "object": object,
        "created": reply.created,
        "model": reply.model,
        "choices": [choice],
        "usage": Usage::from(&usage),
    }))
    .into_response())
}

fn chat_messages(messages: Vec<types::Message>) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "messages must not be empty",
            Some("messages"),
        ));
    }
    messages
        .into_iter()
        .map(|message| {
            let role = match message.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                "tool" => "tool",
                other => {
                    return Err(ApiError::invalid(
                        format!("unknown message role '{other}'"),
                        Some("messages"),
                    ));
                }
            };
            let content = match message.content {
                None => String::new(),
                Some(Content::Text(text)) => text,
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for part in parts {
                        match (part.kind.as_str(), part.text) {
                            ("text", Some(piece)) => text.push_str(&piece),
                            (kind, _) => {
                                return Err(ApiError::invalid(
                                    format!("content parts of type '{kind}' are not supported"),
                                    Some("messages"),
                                ));
                            }
                        }
                    }
                    text
                }
            };
            Ok(ChatMessage {
                role: role.into(),
                content,
            })
        })
        .collect()
}

/// Checks the sampling fields and makes the request.
fn request_from(
    prompt: Prompt,
    fields: SamplingFields,
    default_tokens: u32,
) -> Result<GenerateRequest, ApiError> {
    if fields.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("only n=1 is supported", Some("n")));
    }
    let temperature = fields.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid(
            "temperature must be between 0 and 2",
            Some("temperature"),
        ));
    }
    let top_p = fields.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid("top_p must be in (0, 1]", Some("top_p")));
    }
    let max_tokens = fields
        .max_completion_tokens
        .or(fields.max_tokens)
        .unwrap_or(default_tokens);
    if max_tokens == 0 || max_tokens > MAX_TOKENS {
        return Err(ApiError::invalid(
            format!("max_tokens must be between 1 and {MAX_TOKENS}"),
            Some("max_tokens"),
        ));
    }
    let stop = fields.stop.map(|s| s.into_vec()).unwrap_or_default();
    if stop.len() > MAX_STOPS {
        return Err(ApiError::invalid(
            format!("at most {MAX_STOPS} stop sequences"),
            Some("stop"),
        ));
    }
    Ok(GenerateRequest {
        prompt,
        max_tokens,
        sampling: Sampling {
            temperature,
            top_p,
            seed: fields.seed.map(|s| s as u32),
        },
        stop,
    })
}

#[derive(Clone, Copy)]
enum Kind {
    Completion,
    Chat,
}

/// The id, time and model name every object of one answer carries.
struct Reply {
    id: String,
    created: u64,
    model: String,
}

impl Reply {
    fn new(kind: Kind, engine: &Engine, asked: Option<String>) -> Reply {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let created = now();
        let prefix = match kind {
            Kind::Completion => "cmpl",
            Kind::Chat => "chatcmpl",
        };
        Reply {
            id: format!(
                "{prefix}-{created:x}{:06x}",
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            created,
            model: engine.model_id().or(asked).unwrap_or_default(),
        }
    }

    fn chunk(
        &self,
        kind: Kind,
        text: Option<&str>,
        first: bool,
        finish: Option<FinishReason>,
    ) -> Value {
        match kind {
            Kind::Completion => json!({
                "id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": [{ "index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish }],
            }),
            Kind::Chat => {
                let mut delta = serde_json::Map::new();
                if first {
                    delta.insert("role".into(), "assistant".into());
                }
                if let Some(text) = text {
                    delta.insert("content".into(), text.into());
                }
                json!({
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model,
                    "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
                })
            }
        }
    }

    /// Server-sent events: one chunk per piece of text, a last chunk with the finish reason,
    /// the usage chunk if asked for, then `[DONE]`. A failure mid-stream is sent as an error
    /// object. A client that goes away cancels generation (the engine sees its channel close).
    fn stream(
        self,
        mut events: mpsc::Receiver<Result<Event, GenerateError>>,
        kind: Kind,
        include_usage: bool,
    ) -> Sse<ReceiverStream<Result<SseEvent, Infallible>>> {
        let (out, stream) = mpsc::channel(64);
        tokio::spawn(async move {
            let send = |value: Value| {
                let out = out.clone();
                async move {
                    out.send(Ok(SseEvent::default().data(value.to_string())))
                        .await
                        .is_ok()
                }
            };
            let mut first = true;
            if matches!(kind, Kind::Chat) {
                first = false;
                if !send(self.chunk(kind, Some(""), true, None)).await {
                    return;
                }
            }
            while let Some(event) = events.recv().await {
                match event {
                    Ok(Event::Text(text)) => {
                        if !send(self.chunk(kind, Some(&text), first, None)).await {
                            return;
                        }
                        first = false;
                    }
                    Ok(Event::Done(finish, usage)) => {
                        let mut last = self.chunk(kind, None, first, Some(finish));
                        if matches!(kind, Kind::Completion) {
                            last["choices"][0]["text"] = "".into();
                        }
                        send(last).await;
                        if include_usage {
                            let mut usage_chunk = self.chunk(kind, None, false, None);
                            usage_chunk["choices"] = json!([]);
                            usage_chunk["usage"] = json!(Usage::from(&usage));
                            send(usage_chunk).await;
                        }
                        break;
                    }
                    Err(error) => {
                        send(ApiError::from(error).body()).await;
                        break;
                    }
                }
            }
            let _ = out.send(Ok(SseEvent::default().data("[DONE]"))).await;
        });
        Sse::new(ReceiverStream::new(stream))
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// When this server started (the `created` time of the models it lists).
fn started_at() -> u64 {
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *STARTED.get_or_init(now)
}
