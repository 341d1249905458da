//! Running a client's code (`run_python`, `run_command`) as a child process with limits: CPU
//! seconds and address space (setrlimit, which the kernel enforces: SIGKILL past the CPU limit,
//! ENOMEM past the memory one), wall time (the whole process group is killed), and output (what
//! passes the cap is read and dropped, so the child never blocks on a full pipe). The child runs in
//! the workspace, in its own process group, with stdin from the request (or empty).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    pub wall: Duration,
    /// Bytes kept of stdout and of stderr, each.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_seconds: 10,
            memory_bytes: 512 << 20,
            wall: Duration::from_secs(30),
            output_bytes: 256 << 10,
        }
    }
}

/// What the child did.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    /// The exit code; 128 + N when signal N ended it (as a shell reports it).
    pub exit_code: i32,
    /// The wall-time limit was reached and the process group was killed.
    pub timed_out: bool,
    /// Output past the limit was dropped.
    pub truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("the command is empty")]
    Empty,
    #[error("cannot start '{program}': {error}")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
}

pub async fn run(
    argv: &[String],
    stdin: Option<&str>,
    dir: &Path,
    limits: Limits,
) -> Result<Outcome, ExecError> {
    let (program, args) = argv.split_first().ok_or(ExecError::Empty)?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let (cpu, memory) = (limits.cpu_seconds, limits.memory_bytes);
    // SAFETY: the closure runs in the child between fork and exec and only calls setrlimit,
    // which is async-signal-safe, on values copied in beforehand.
    unsafe {
        command.pre_exec(move || {
            set_limit(libc::RLIMIT_CPU, cpu)?;
            set_limit(libc::RLIMIT_AS, memory)?;
            set_limit(libc::RLIMIT_CORE, 0)
        });
    }
    let mut child = command.spawn().map_err(|error| ExecError::Spawn {
        program: program.clone(),
        error,
    })?;
    let pid = child.id();
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.as_bytes().to_vec();
        // A child that does not read its stdin must not stall us: write on the side.
        tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
        });
    }
    // The pipes may be held open by a grandchild that left the group: stop reading a little
    // after the wall limit whatever happens.
    let deadline = tokio::time::Instant::now() + limits.wall + Duration::from_secs(2);
    let stdout = tokio::spawn(read_capped(
        child.stdout.take(),
        limits.output_bytes,
        deadline,
    ));
    let stderr = tokio::spawn(read_capped(
        child.stderr.take(),
        limits.output_bytes,
        deadline,
    ));
    let (status, timed_out) = match tokio::time::timeout(limits.wall, child.wait()).await {
        Ok(status) => (status.ok(), false),
        Err(_) => {
            kill_group(pid);
            (child.wait().await.ok(), true)
        }
    };
    // Grandchildren may hold the pipes open: the group goes too once the child is done.
    kill_group(pid);
    let (stdout, out_cut) = stdout.await.unwrap_or_default();
    let (stderr, err_cut) = stderr.await.unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    let exit_code = status.map_or(-1, |s| {
        s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
    });
    Ok(Outcome {
        stdout,
        stderr,
        exit_code,
        timed_out,
        truncated: out_cut || err_cut,
    })
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill with a negative pid signals the child's own process group (made with
        // process_group(0)); it touches no memory.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

/// Reads `pipe` to its end (or `deadline`), keeping the first `cap` bytes (as lossy UTF-8) and whether any
/// were dropped.
async fn read_capped<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    cap: usize,
    deadline: tokio::time::Instant,
) -> (String, bool) {
    let Some(mut pipe) = pipe else {
        return (String::new(), false);
    };
    let mut kept = Vec::new();
    let mut dropped = false;
    let mut buffer = vec![0u8; 16 << 10];
    loop {
        let read = tokio::time::timeout_at(deadline, pipe.read(&mut buffer)).await;
        let n = match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buffer[..n.min(room)]);
        dropped |= n > room;
    }
    (String::from_utf8_lossy(&kept).into_owned(), dropped)
}
