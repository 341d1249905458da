//! Keeps `docs/syscalls.md` honest against the kernel's source. This is plain text parsing: the
//! kernel is a `no_std` binary for another target and cannot be linked into a host test.
//!
//! - Every assigned syscall number (`guest-os/linux-abi/src/syscalls.rs`, `TABLE`) has exactly
//!   one row, under its ABI name. That includes 0..=334 and clone3 (435).
//! - A row is `full` or `partial` exactly when the kernel has a handler for that number, and
//!   `ENOSYS` otherwise. Handlers are the `nr::SYS_*` entries of each family's `TABLE` (the
//!   families are the `x::TABLE`s merged in `syscall/mod.rs`), plus the `nr::SYS_* =>` arms of
//!   `with_registers` in `syscall/mod.rs` (the calls that need the user registers).
//! - The summary counts match the table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const DOC: &str = "docs/syscalls.md";
const ABI: &str = "guest-os/linux-abi/src/syscalls.rs";
const SYSCALL_DIR: &str = "guest-os/kernel/src/syscall";

fn read(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text from the first occurrence of `start` up to the next `end` after it.
fn section<'a>(text: &'a str, start: &str, end: &str, what: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{what}: no `{start}`"));
    let rest = &text[from..];
    let to = rest
        .find(end)
        .unwrap_or_else(|| panic!("{what}: no `{end}` after `{start}`"));
    &rest[..to]
}

/// Every identifier `X` written as `nr::SYS_X` in `text`; `arms_only` keeps only those followed
/// by `=>` (match arms).
fn sys_idents(text: &str, arms_only: bool) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("nr::SYS_") {
        let rest = &text[at + "nr::SYS_".len()..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len == 0 {
            continue;
        }
        if arms_only && !rest[len..].trim_start().starts_with("=>") {
            continue;
        }
        found.push(rest[..len].to_string());
    }
    found
}

struct Abi {
    /// `SYS_X` constants: `X` → number.
    consts: BTreeMap<String, u32>,
    /// The number → name table.
    names: BTreeMap<u32, String>,
}

fn abi() -> Abi {
    let text = read(ABI);
    let mut consts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const SYS_") else {
            continue;
        };
        let Some((name, value)) = rest.split_once(": usize = ") else {
            continue;
        };
        // `SYS_MAX = SYS_REMOVEXATTRAT` and the like are aliases, not numbers: skipped.
        if let Ok(number) = value.trim_end_matches(';').trim().parse::<u32>() {
            consts.insert(name.to_string(), number);
        }
    }
    let mut names = BTreeMap::new();
    for line in section(&text, "pub static TABLE", "];", ABI).lines() {
        // `    (0, "read"),`
        let Some(entry) = line.trim().strip_prefix('(') else {
            continue;
        };
        let Some((number, name)) = entry.split_once(',') else {
            continue;
        };
        let name = name.trim().trim_end_matches(',').trim_end_matches(')');
        let (Ok(number), Some(name)) = (
            number.trim().parse::<u32>(),
            name.strip_prefix('"').and_then(|n| n.strip_suffix('"')),
        ) else {
            continue;
        };
        assert!(
            names.insert(number, name.to_string()).is_none(),
            "{ABI}: {number} twice in TABLE"
        );
    }
    assert!(
        consts.len() > 300 && names.len() > 300,
        "{ABI}: parsed only {} constants and {} names",
        consts.len(),
        names.len()
    );
    Abi { consts, names }
}

/// The numbers the kernel dispatches to a handler.
fn implemented(abi: &Abi) -> BTreeSet<u32> {
    let dispatcher = read(&format!("{SYSCALL_DIR}/mod.rs"));
    let mut idents = Vec::new();
    // The families merged into the table: `file::TABLE,` … in build_table.
    let mut families = BTreeSet::new();
    for (at, _) in dispatcher.match_indices("::TABLE") {
        let before = &dispatcher[..at];
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let family = &before[start..];
        if !family.is_empty() {
            families.insert(family.to_string());
        }
    }
    assert!(
        families.len() >= 5,
        "{SYSCALL_DIR}/mod.rs: found only families {families:?}"
    );
    for family in &families {
        let path = format!("{SYSCALL_DIR}/{family}.rs");
        let text = read(&path);
        let start = if text.contains("pub static TABLE") {
            "pub static TABLE"
        } else {
            "pub const TABLE"
        };
        let table = section(&text, start, "];", &path);
        let found = sys_idents(table, false);
        assert!(!found.is_empty(), "{path}: TABLE names no nr::SYS_*");
        idents.extend(found);
    }
    // The calls the dispatcher handles itself, outside the table (they need the registers).
    let dispatch = section(
        &dispatcher,
        "fn with_registers(",
        "\n}",
        "syscall/mod.rs with_registers",
    );
    let direct = sys_idents(dispatch, true);
    for must in ["CLONE", "EXECVE", "RT_SIGRETURN", "EXIT_GROUP"] {
        assert!(
            direct.iter().any(|d| d == must),
            "syscall/mod.rs with_registers: no `nr::SYS_{must} =>` arm found (parser out of date?)"
        );
    }
    idents.extend(direct);
    idents
        .iter()
        .map(|ident| {
            *abi.consts
                .get(ident)
                .unwrap_or_else(|| panic!("nr::SYS_{ident} is not a constant in {ABI}"))
        })
        .collect()
}

struct Row {
    name: String,
    state: String,
}

/// The table rows: lines `| number | name | state | notes |`.
fn doc_rows() -> BTreeMap<u32, Row> {
    let text = read(DOC);
    let mut rows = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let Some(inner) = line.strip_prefix('|') else {
            continue;
        };
        let cells: Vec<&str> = inner.split('|').map(str::trim).collect();
        let Ok(number) = cells[0].parse::<u32>() else {
            continue;
        };
        assert!(
            cells.len() >= 4,
            "{DOC}:{}: a row needs number, name, state and notes: {line}",
            i + 1
        );
        let row = Row {
            name: cells[1].trim_matches('`').to_string(),
            state: cells[2].trim_matches('`').to_string(),
        };
        assert!(
            rows.insert(number, row).is_none(),
            "{DOC}:{}: syscall {number} has a second row",
            i + 1
        );
    }
    rows
}

#[test]
fn every_number_once_under_its_name() {
    let abi = abi();
    let rows = doc_rows();
    for number in (0..=334).chain([435]) {
        assert!(
            rows.contains_key(&number),
            "{DOC}: no row for syscall {number}"
        );
    }
    for (number, name) in &abi.names {
        let row = rows
            .get(number)
            .unwrap_or_else(|| panic!("{DOC}: no row for syscall {number} ({name})"));
        assert_eq!(
            &row.name, name,
            "{DOC}: syscall {number} has the wrong name"
        );
    }
    for number in rows.keys() {
        assert!(
            abi.names.contains_key(number),
            "{DOC}: {number} is not an assigned x86-64 syscall number"
        );
    }
}

#[test]
fn states_match_the_dispatcher() {
    let abi = abi();
    let implemented = implemented(&abi);
    let rows = doc_rows();
    for number in &implemented {
        assert!(
            abi.names.contains_key(number),
            "the kernel handles {number}, which {ABI} does not name"
        );
    }
    let mut wrong = Vec::new();
    for (number, row) in &rows {
        let has_handler = implemented.contains(number);
        match (row.state.as_str(), has_handler) {
            ("full" | "partial", true) | ("ENOSYS", false) => {}
            ("full" | "partial" | "ENOSYS", _) => wrong.push(format!(
                "{number} {}: documented {}, but the kernel {}",
                row.name,
                row.state,
                if has_handler {
                    "has a handler"
                } else {
                    "has no handler (ENOSYS)"
                }
            )),
            (other, _) => wrong.push(format!(
                "{number} {}: unknown state `{other}` (full, partial or ENOSYS)",
                row.name
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{DOC} is out of date:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn summary_counts_match_the_table() {
    let rows = doc_rows();
    let count = |numbers: &mut dyn Iterator<Item = u32>| {
        let mut counts = [0usize; 3];
        let mut total = 0;
        for number in numbers {
            let Some(row) = rows.get(&number) else {
                continue;
            };
            total += 1;
            match row.state.as_str() {
                "full" => counts[0] += 1,
                "partial" => counts[1] += 1,
                _ => counts[2] += 1,
            }
        }
        [counts[0], counts[1], counts[2], total]
    };
    let text = read(DOC);
    let expected = [
        (
            "| 0–334 and clone3 (435) |",
            count(&mut (0..=334).chain([435])),
        ),
        (
            "| every assigned number (0–334, 424–466) |",
            count(&mut rows.keys().copied()),
        ),
    ];
    for (label, counts) in expected {
        let line = text
            .lines()
            .find(|l| l.trim().starts_with(label))
            .unwrap_or_else(|| panic!("{DOC}: no summary row `{label}`"));
        let numbers: Vec<usize> = line.trim()[label.len()..]
            .split('|')
            .filter_map(|c| c.trim().parse().ok())
            .collect();
        assert_eq!(
            numbers, counts,
            "{DOC}: summary `{label}` should read full, partial, ENOSYS, total = {counts:?}"
        );
    }
}
