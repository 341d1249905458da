//! The MCP server: tools (`generate`, `run_python`, `run_command`, `read_file`, `write_file`,
//! `list_dir`), the workspace files as resources, and two prompts — one handler served over
//! Streamable HTTP at `/mcp` and over stdio. rmcp does the protocol, both eras: the 2025-11-25
//! `initialize` handshake with sessions, and the stateless 2026-07-28 revision with
//! `server/discover`.

mod prompts;
mod resources;
mod tools;

use crate::exec::Limits;
use crate::inference::Engine;
use crate::workspace::Workspace;
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    Implementation, ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, prompt_handler, tool_handler};

/// What the tools work with; shared by every session.
#[derive(Clone)]
pub struct NoaMcp {
    engine: Engine,
    workspace: Workspace,
    limits: Limits,
    tool_router: ToolRouter<NoaMcp>,
    prompt_router: PromptRouter<NoaMcp>,
}

impl NoaMcp {
    pub fn new(engine: Engine, workspace: Workspace, limits: Limits) -> NoaMcp {
        NoaMcp {
            engine,
            workspace,
            limits,
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for NoaMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("noa-server", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "NOA ARK OS guest services: `generate` runs the local language model; `run_python` \
             and `run_command` run code in the guest with CPU, memory, time and output limits; \
             the file tools and resources see the workspace folder only.",
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(resources::list(&self.workspace))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        resources::read(&self.workspace, &request.uri).map(Into::into)
    }
}
