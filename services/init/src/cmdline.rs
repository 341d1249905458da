//! The kernel command line's words for init (`/proc/cmdline`, or the file `NOA_CMDLINE` names in
//! the native tests): `noa.token=VALUE` (see `token`) and `noa.services=off`, which makes init run
//! its login shell instead of the services — for boots that should end with their stdin, as the
//! VMM's own tests and the boot benchmark do.

/// Where init reads the kernel command line.
pub const CMDLINE_PATH: &str = "/proc/cmdline";
/// The variable that names another file instead (the native tests use it).
pub const CMDLINE_VAR: &str = "NOA_CMDLINE";

/// The value of the last `key=` word before `--` (words after it are init's command); none when
/// the command line cannot be read.
pub fn value(key: &str) -> Option<String> {
    let path = std::env::var_os(CMDLINE_VAR).unwrap_or_else(|| CMDLINE_PATH.into());
    let line = std::fs::read(path).ok()?;
    parse(&String::from_utf8_lossy(&line), key)
}

/// Whether the command line says `noa.services=off`.
pub fn services_off() -> bool {
    value("noa.services").is_some_and(|v| v == "off")
}

fn parse(line: &str, key: &str) -> Option<String> {
    line.split_ascii_whitespace()
        .take_while(|word| *word != "--")
        .filter_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .last()
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_value_is_the_last_word_with_its_key_before_the_command() {
        let key = "noa.token";
        assert_eq!(
            parse("console=ttyS0 noa.token=abc\n", key).as_deref(),
            Some("abc")
        );
        assert_eq!(parse("noa.token=a noa.token=b", key).as_deref(), Some("b"));
        assert_eq!(parse("console=ttyS0 -- echo noa.token=x", key), None);
        assert_eq!(parse("noa.tokens=x noa.token", key), None);
        assert_eq!(parse("noa.token=", key), None);
        assert_eq!(parse("", key), None);
        assert_eq!(
            parse("noa.services=off", "noa.services").as_deref(),
            Some("off")
        );
    }
}
