//! The host's load average, read from /proc/loadavg before and after a benchmark, so that a
//! report says how busy the machine was. llama.cpp's figures in particular depend on it: ggml's
//! thread pool spins, and with more runnable threads than free cores its speed collapses.
//!
//! Owns reading and parsing that one file; it never judges the figures.

use serde::Serialize;

/// One reading of /proc/loadavg.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadAverage {
    /// Runnable tasks averaged over 1, 5 and 15 minutes.
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
    /// Tasks runnable at the moment of reading (the reader itself included).
    pub runnable_now: u32,
}

/// The load average now; `None` where /proc/loadavg is missing or unreadable.
pub fn now() -> Option<LoadAverage> {
    parse(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// Parses `1.00 0.50 0.25 3/600 12345`.
pub fn parse(text: &str) -> Option<LoadAverage> {
    let mut words = text.split_whitespace();
    let one = words.next()?.parse().ok()?;
    let five = words.next()?.parse().ok()?;
    let fifteen = words.next()?.parse().ok()?;
    let runnable_now = words.next()?.split_once('/')?.0.parse().ok()?;
    Some(LoadAverage {
        one,
        five,
        fifteen,
        runnable_now,
    })
}

/// `load average 3.79, 3.55, 3.29`, or `load average unknown`.
pub fn words(load: Option<&LoadAverage>) -> String {
    match load {
        Some(l) => format!("load average {:.2}, {:.2}, {:.2}", l.one, l.five, l.fifteen),
        None => "load average unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_loadavg() {
        assert_eq!(
            parse("3.79 3.55 3.29 5/600 12345\n"),
            Some(LoadAverage {
                one: 3.79,
                five: 3.55,
                fifteen: 3.29,
                runnable_now: 5
            })
        );
        assert_eq!(parse(""), None);
        assert_eq!(parse("1 2 3 x 4"), None);
        assert_eq!(
            words(parse("1 2 3 1/9 9").as_ref()),
            "load average 1.00, 2.00, 3.00"
        );
        assert_eq!(words(None), "load average unknown");
    }

    #[test]
    fn this_host_has_one() {
        if std::path::Path::new("/proc/loadavg").exists() {
            assert!(now().is_some());
        }
    }
}
