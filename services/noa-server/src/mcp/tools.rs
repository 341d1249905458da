//! The MCP tools. A tool's own failure (no model yet, a path outside the workspace, a command
//! that cannot start) is a tool result with `isError`, which the client's model can read; only a
//! malformed call is a JSON-RPC error (rmcp answers those).

use super::NoaMcp;
use crate::exec::{self, Limits};
use crate::inference::{ChatMessage, GenerateRequest, Prompt, Sampling};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;

/// The most tokens one `generate` call may ask for.
const MAX_GENERATE_TOKENS: u32 = 2048;
/// The largest program `run_python` takes (it goes on python3's command line).
const MAX_CODE_BYTES: usize = 100 << 10;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GenerateArgs {
    /// What to ask the model.
    pub prompt: String,
    /// An optional system message.
    #[serde(default)]
    pub system: Option<String>,
    /// Most tokens to generate (default 256, at most 2048).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2 (default 0.7; 0 is greedy).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Seed for reproducible sampling.
    #[serde(default)]
    pub seed: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RunPythonArgs {
    /// Python 3 source to run with `python3 -c`.
    pub code: String,
    /// Text for the program's standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Wall-clock limit in seconds (at most the server's limit).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RunCommandArgs {
    /// The program and its arguments; the program is looked up in PATH.
    pub argv: Vec<String>,
    /// Text for the command's standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Wall-clock limit in seconds (at most the server's limit).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PathArgs {
    /// A path relative to the workspace.
    pub path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListDirArgs {
    /// A folder relative to the workspace (default: the workspace itself).
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WriteFileArgs {
    /// A path relative to the workspace.
    pub path: String,
    /// The file's new content (UTF-8 text).
    pub content: String,
    /// Create missing parent folders (default true).
    #[serde(default)]
    pub create_dirs: Option<bool>,
}

fn failed(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

fn outcome(result: Result<exec::Outcome, exec::ExecError>) -> CallToolResult {
    match result {
        Ok(outcome) => match serde_json::to_value(&outcome) {
            Ok(value) => CallToolResult::structured(value),
            Err(error) => failed(error.to_string()),
        },
        Err(error) => failed(error.to_string()),
    }
}

impl NoaMcp {
    fn limits_for(&self, timeout_seconds: Option<u64>) -> Limits {
        let mut limits = self.limits;
        if let Some(seconds) = timeout_seconds.filter(|&s| s > 0) {
            limits.wall = limits.wall.min(Duration::from_secs(seconds));
        }
        limits
    }
}

#[tool_router(vis = "pub(super)")]
impl NoaMcp {
    #[tool(
        description = "Generate text with the local language model (SmolLM2 by default). \
        Waits while the model is still loading."
    )]
    async fn generate(
        &self,
        Parameters(args): Parameters<GenerateArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let temperature = args.temperature.unwrap_or(0.7);
        if !(0.0..=2.0).contains(&temperature) {
            return Ok(failed("temperature must be between 0 and 2"));
        }
        let mut messages = Vec::new();
        if let Some(system) = args.system {
            messages.push(ChatMessage {
                role: "system".into(),
                content: system,
            });
        }
        messages.push(ChatMessage {
            role: "user".into(),
            content: args.prompt,
        });
        let request = GenerateRequest {
            prompt: Prompt::Chat(messages),
            max_tokens: args.max_tokens.unwrap_or(256).clamp(1, MAX_GENERATE_TOKENS),
            sampling: Sampling {
                temperature,
                top_p: 0.95,
                seed: args.seed,
            },
            stop: Vec::new(),
        };
        Ok(match self.engine.complete(request).await {
            Ok((text, _, _)) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(error) => failed(error.to_string()),
        })
    }

    #[tool(
        description = "Run Python 3 code in the guest (python3 -c) in the workspace folder, \
        with limits on CPU time, memory, wall time and output. Returns stdout, stderr and the \
        exit code."
    )]
    async fn run_python(
        &self,
        Parameters(args): Parameters<RunPythonArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        if args.code.len() > MAX_CODE_BYTES {
            return Ok(failed(format!("the code is over {MAX_CODE_BYTES} bytes")));
        }
        if args.code.contains('\0') {
            return Ok(failed("the code contains a NUL byte"));
        }
        let argv = vec!["python3".to_string(), "-c".to_string(), args.code];
        let limits = self.limits_for(args.timeout_seconds);
        Ok(outcome(
            exec::run(&argv, args.stdin.as_deref(), self.workspace.root(), limits).await,
        ))
    }

    #[tool(
        description = "Run a command (an argv list, no shell) in the guest in the workspace \
        folder, with limits on CPU time, memory, wall time and output. Returns stdout, stderr \
        and the exit code."
    )]
    async fn run_command(
        &self,
        Parameters(args): Parameters<RunCommandArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        if args.argv.iter().any(|a| a.contains('\0')) {
            return Ok(failed("an argument contains a NUL byte"));
        }
        let limits = self.limits_for(args.timeout_seconds);
        Ok(outcome(
            exec::run(
                &args.argv,
                args.stdin.as_deref(),
                self.workspace.root(),
                limits,
            )
            .await,
        ))
    }

    #[tool(description = "Read a UTF-8 text file from the workspace (at most 1 MiB).")]
    async fn read_file(
        &self,
        Parameters(args): Parameters<PathArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(match self.workspace.read_text(&args.path) {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(error) => failed(error.to_string()),
        })
    }

    #[tool(description = "Write a UTF-8 text file in the workspace (replacing it; at most 1 MiB).")]
    async fn write_file(
        &self,
        Parameters(args): Parameters<WriteFileArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let create_dirs = args.create_dirs.unwrap_or(true);
        Ok(
            match self
                .workspace
                .write_text(&args.path, &args.content, create_dirs)
            {
                Ok(bytes) => CallToolResult::success(vec![ContentBlock::text(format!(
                    "wrote {bytes} bytes to {}",
                    args.path
                ))]),
                Err(error) => failed(error.to_string()),
            },
        )
    }

    #[tool(description = "List a folder of the workspace: name, kind and size of each entry.")]
    async fn list_dir(
        &self,
        Parameters(args): Parameters<ListDirArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = args.path.unwrap_or_else(|| ".".into());
        Ok(match self.workspace.list(&path) {
            Ok(entries) => CallToolResult::structured(serde_json::json!({ "entries": entries })),
            Err(error) => failed(error.to_string()),
        })
    }
}
