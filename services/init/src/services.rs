//! `/etc/noa/services.toml`: the services init starts when it has no command to run. Owns the
//! file's format and its checks; starting and watching the services is `supervise`'s.
//!
//! ```toml
//! [[service]]
//! name = "noa-server"
//! command = ["/usr/bin/noa-server", "serve", "--listen", "0.0.0.0:8080"]
//! restart = "on-failure"        # or "always" / "never"; on-failure if left out
//! env = { RUST_LOG = "info" }   # optional
//! ```
//!
//! Unknown keys are errors (a misspelt `restart` must not silently mean the default). A
//! missing file, or one with no `[[service]]`, means "no services".

use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Where init reads its services in the guest.
pub const CONFIG_PATH: &str = "/etc/noa/services.toml";
/// The variable that names another file instead (the native tests use it).
pub const CONFIG_VAR: &str = "NOA_SERVICES";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    service: Vec<Service>,
}

/// One `[[service]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// A name for messages (`init: started NAME (pid N)`); unique in the file.
    pub name: String,
    /// The program (looked up in PATH when it has no `/`) and its arguments.
    pub command: Vec<String>,
    #[serde(default)]
    pub restart: Restart,
    /// Variables added to (or replacing those of) the environment init gives every child.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// When a service that exited is started again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Unless it exited with status 0.
    #[default]
    OnFailure,
    Always,
    Never,
}

/// The file init reads: `$NOA_SERVICES` if set, else [`CONFIG_PATH`].
pub fn config_path() -> PathBuf {
    std::env::var_os(CONFIG_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CONFIG_PATH))
}

/// The services listed in `path`: empty when the file is missing or lists none. An error is a
/// message that names the file and what is wrong with it.
pub fn load(path: &Path) -> Result<Vec<Service>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    parse(&text).map_err(|e| format!("{}: {}", path.display(), e.trim_end()))
}

fn parse(text: &str) -> Result<Vec<Service>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut names = HashSet::new();
    for (index, service) in file.service.iter().enumerate() {
        let which = format!("service {} ({:?})", index + 1, service.name);
        if service.name.is_empty() {
            return Err(format!("service {}: empty name", index + 1));
        }
        if !names.insert(service.name.as_str()) {
            return Err(format!("{which}: the name is used twice"));
        }
        if service
            .command
            .first()
            .is_none_or(|program| program.is_empty())
        {
            return Err(format!("{which}: empty command"));
        }
        if let Some(name) = service
            .env
            .keys()
            .find(|name| name.is_empty() || name.contains('='))
        {
            return Err(format!("{which}: {name:?} is not a variable name"));
        }
        let strings = service
            .command
            .iter()
            .chain(service.env.keys())
            .chain(service.env.values());
        if strings.chain([&service.name]).any(|s| s.contains('\0')) {
            return Err(format!("{which}: a string contains a NUL byte"));
        }
    }
    Ok(file.service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let services = parse(
            r#"
            [[service]]
            name = "noa-server"
            command = ["/usr/bin/noa-server", "serve", "--listen", "0.0.0.0:8080"]
            restart = "on-failure"
            env = { RUST_LOG = "info" }

            [[service]]
            name = "other"
            command = ["other"]
            "#,
        )
        .unwrap();
        assert_eq!(services.len(), 2);
        assert_eq!(services[0].command[3], "0.0.0.0:8080");
        assert_eq!(services[0].env["RUST_LOG"], "info");
        assert_eq!(services[1].restart, Restart::OnFailure);
        assert!(services[1].env.is_empty());
    }

    #[test]
    fn nothing_listed_is_no_services() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse("# just a comment\n").unwrap().is_empty());
    }

    #[test]
    fn mistakes_are_errors_that_say_what() {
        for (text, says) in [
            ("[[service]]\nname = \"a\"\n", "command"),
            ("[[service]]\nname = \"a\"\ncommand = []\n", "empty command"),
            (
                "[[service]]\nname = \"a\"\ncommand = [\"\"]\n",
                "empty command",
            ),
            (
                "[[service]]\nname = \"\"\ncommand = [\"x\"]\n",
                "empty name",
            ),
            (
                "[[service]]\nname = \"a\"\ncommand = [\"x\"]\nrestart = \"sometimes\"\n",
                "sometimes",
            ),
            (
                "[[service]]\nname = \"a\"\ncommand = [\"x\"]\nrestrat = \"never\"\n",
                "restrat",
            ),
            (
                "[[service]]\nname = \"a\"\ncommand = [\"x\"]\n[[service]]\nname = \"a\"\ncommand = [\"y\"]\n",
                "twice",
            ),
            (
                "[[service]]\nname = \"a\"\ncommand = [\"x\"]\nenv = { \"A=B\" = \"c\" }\n",
                "not a variable",
            ),
            (
                "[[service]]\nname = \"a\"\ncommand = [\"x\\u0000\"]\n",
                "NUL",
            ),
            ("[[service]\n", "line 1"),
        ] {
            let error = parse(text)
                .err()
                .unwrap_or_else(|| panic!("accepted {text:?}"));
            assert!(error.contains(says), "{text:?}: {error}");
        }
    }
}
