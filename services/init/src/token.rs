//! The API token the VMM hands the guest on the kernel command line (`noa.token=VALUE`), passed
//! to services as `NOA_TOKEN=VALUE`. It lives only in init's memory and the services'
//! environments: never written to a file.

/// The kernel command-line word's key.
const KEY: &str = "noa.token";
/// The variable services get.
pub const TOKEN_VAR: &str = "NOA_TOKEN";

/// The token on the kernel command line, if there is one. No readable command line means none.
pub fn from_cmdline() -> Option<String> {
    crate::cmdline::value(KEY)
}
