//! `noa-server`: the NOA ARK OS unified server — one static binary that runs in the guest (init
//! starts it from `/etc/noa/services.toml`) and natively for development and tests.
//!
//! - `noa-server serve`: the OpenAI-compatible API (`/v1/…`, `/health`) and MCP (`/mcp`, Streamable
//!   HTTP) on one port, over the llama.cpp model found in `--models`;
//! - `noa-server mcp --stdio`: the same MCP server over stdin/stdout;
//! - `noa-server bench`: llama.cpp prompt and generation speed, as JSON (bench/ runs it natively
//!   and in the guest).
//!
//! Exit codes: 0 after a clean stop (SIGTERM/SIGINT, or stdin closed for `--stdio`); 1 when it
//! cannot run (the port is taken, the workspace cannot be made); 2 for bad usage (clap).

mod access;
mod exec;
mod inference;
mod malloc_tuning;
mod mcp;
mod openai;
mod server;
mod workspace;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "NOA ARK OS unified server: OpenAI-compatible API, MCP, llama.cpp inference"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OpenAI API and MCP over HTTP.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the bearer token is read from when NOA_TOKEN is not set (missing: no token).
        #[arg(long, default_value = "/etc/noa/token")]
        token_file: PathBuf,
        /// A browser origin allowed besides the loopback ones (repeatable).
        #[arg(long = "allow-origin")]
        allow_origins: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Serve MCP.
    Mcp {
        /// Over stdin and stdout (the only transport of this subcommand).
        #[arg(long, required = true)]
        stdio: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Measure llama.cpp's prompt and generation speed on a model; prints JSON.
    Bench {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        threads: Option<u32>,
        #[arg(long, default_value_t = 128)]
        prompt_tokens: u32,
        #[arg(long, default_value_t = 32)]
        gen_tokens: u32,
        #[arg(long, default_value_t = 3)]
        repetitions: u32,
    },
}

/// What `serve` and `mcp` share: the model, the workspace and the limits on tools.
#[derive(Args)]
struct Common {
    /// The folder models are taken from (the first `.gguf` by name).
    #[arg(long, default_value = "/storage/models")]
    models: PathBuf,
    /// A model file to use instead of looking in --models.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The folder the file tools and resources see.
    #[arg(long, default_value = "/storage/workspace")]
    workspace: PathBuf,
    /// llama.cpp threads (default: the CPUs we may run on).
    #[arg(long)]
    threads: Option<u32>,
    /// Context size in tokens.
    #[arg(long, default_value_t = 4096)]
    context: u32,
    /// CPU seconds a run_python/run_command child may use.
    #[arg(long, default_value_t = 10)]
    cpu_seconds: u64,
    /// Address space a child may map, in MiB.
    #[arg(long, default_value_t = 512)]
    memory_mib: u64,
    /// Wall-clock seconds a child may run.
    #[arg(long, default_value_t = 30)]
    timeout_seconds: u64,
    /// Bytes of stdout (and of stderr) a child's result keeps.
    #[arg(long, default_value_t = 256 << 10)]
    output_bytes: usize,
}

impl Common {
    fn mcp(&self) -> anyhow::Result<mcp::NoaMcp> {
        let engine = inference::Engine::start(inference::EngineConfig {
            model: inference::find_model(self.model.as_deref(), &self.models),
            threads: self.threads.unwrap_or_else(cpus),
            context_tokens: self.context.max(64),
        });
        let workspace = workspace::Workspace::open(&self.workspace)
            .with_context(|| format!("cannot open the workspace {}", self.workspace.display()))?;
        let limits = exec::Limits {
            cpu_seconds: self.cpu_seconds.max(1),
            memory_bytes: self.memory_mib.max(16) << 20,
            wall: Duration::from_secs(self.timeout_seconds.max(1)),
            output_bytes: self.output_bytes,
        };
        Ok(mcp::NoaMcp::new(engine, workspace, limits))
    }
}

fn cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

fn main() {
    malloc_tuning::apply();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "noa_server=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    if let Err(error) = run(cli) {
        eprintln!("noa-server: {error:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench {
            model,
            threads,
            prompt_tokens,
            gen_tokens,
            repetitions,
        } => {
            let result = inference::bench::run(
                &model,
                threads.unwrap_or_else(cpus),
                prompt_tokens.max(1),
                gen_tokens.max(1),
                repetitions.max(1),
            )?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }
        Command::Serve {
            listen,
            token_file,
            allow_origins,
            common,
        } => {
            let access = access::Access::load(&token_file, allow_origins)?;
            let mcp = common.mcp()?;
            runtime()?.block_on(server::serve(listen, mcp, access))
        }
        Command::Mcp { stdio: _, common } => {
            let mcp = common.mcp()?;
            runtime()?.block_on(async move {
                use rmcp::ServiceExt;
                let running = mcp
                    .serve(rmcp::transport::stdio())
                    .await
                    .context("MCP over stdio failed")?;
                tokio::select! {
                    result = running.waiting() => { result.context("MCP over stdio failed")?; }
                    () = server::stop_signal() => {}
                }
                Ok(())
            })
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
