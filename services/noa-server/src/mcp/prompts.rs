//! The MCP prompts: ready-made requests a client may offer its user.

use super::NoaMcp;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{PromptMessage, Role};
use rmcp::{prompt, prompt_router};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FileArgs {
    /// A path relative to the workspace.
    pub path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TaskArgs {
    /// What the Python code should do.
    pub task: String,
}

#[prompt_router(vis = "pub(super)")]
impl NoaMcp {
    #[prompt(
        name = "summarize_file",
        description = "Summarize a file of the workspace."
    )]
    async fn summarize_file(&self, Parameters(args): Parameters<FileArgs>) -> Vec<PromptMessage> {
        let body = match self.workspace.read_text(&args.path) {
            Ok(text) => text,
            Err(error) => format!("(the file cannot be read: {error})"),
        };
        vec![PromptMessage::new_text(
            Role::User,
            format!(
                "Summarize this file, `{}`, in a few sentences:\n\n{body}",
                args.path
            ),
        )]
    }

    #[prompt(
        name = "python_task",
        description = "Solve a task by writing Python and running it with run_python."
    )]
    async fn python_task(&self, Parameters(args): Parameters<TaskArgs>) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            format!(
                "Write a short Python 3 program for this task, run it with the `run_python` \
                 tool, and report the result: {}",
                args.task
            ),
        )]
    }
}
