//! Capture's modules depend one way. Each may name only the modules listed
//! before it in `ORDER` (through `super::` or `crate::capture::`), and none
//! may name the server modules above capture, so a cycle, a low module
//! reaching up, or one reaching into `capture/mod.rs` (whose re-exports are
//! for the rest of the server) fails this test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::path::{Path, PathBuf};

/// Lowest first, as paths below `capture`: `wal/session` is
/// `capture::wal::session`, `wal` is `capture/wal/mod.rs`, and `""` is
/// `capture/mod.rs`, which starts one mode or the other.
const ORDER: &[&str] = &[
    "kind",
    "error",
    "status",
    "transaction",
    "slot",
    "mode",
    "listener",
    "wal/settings",
    "wal/visible",
    "wal/session",
    "wal",
    "",
];

/// Server modules above capture (or beside it and depending on it), which no
/// capture module may name.
const ABOVE: &[&str] = &["config", "session", "api", "http", "ws", "health"];

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module a path of `module`'s starts from after `super::`, or `None`
/// when it leaves capture.
fn parent(module: &str) -> Option<&str> {
    match module {
        "" => None,
        _ => Some(module.rsplit_once('/').map_or("", |(up, _)| up)),
    }
}

fn child(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}/{name}")
    }
}

/// `text` up to the `}` that closes the group it starts in, split at its
/// top-level commas.
fn group_parts(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut from) = (0usize, 0usize);
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                parts.push(&text[from..at]);
                return parts;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[from..at]);
                from = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[from..]);
    parts
}

/// The capture modules a path names, given the module it starts from
/// (`base`) and what follows (`rest`, after a `::`): it descends while the
/// next name is a module, and names the module it stops in.
fn walk(base: &str, rest: &str, out: &mut Vec<String>) {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        for part in group_parts(group) {
            if !part.trim().is_empty() {
                walk(base, part, out);
            }
        }
        return;
    }
    let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
    let below = child(base, &name);
    if name != "self" && ORDER.contains(&below.as_str()) {
        match rest[name.len()..].strip_prefix("::") {
            Some(tail) => walk(&below, tail, out),
            None => out.push(below),
        }
    } else {
        out.push(base.to_owned());
    }
}

/// Code without comments or tests (tests inside a module may use anything).
fn code(source: &str) -> String {
    let source = source.split("#[cfg(test)]").next().unwrap_or("");
    source
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The capture modules that `module`'s `source` names.
fn named(module: &str, source: &str) -> Vec<String> {
    let source = code(source);
    let mut out = Vec::new();
    let mut at = 0;
    while at < source.len() {
        let rest = &source[at..];
        let before = source[..at].chars().next_back();
        let starts = before.is_none_or(|c| !is_ident(c) && c != ':');
        if starts && let Some(tail) = rest.strip_prefix("crate::capture::") {
            walk("", tail, &mut out);
        } else if starts && rest.starts_with("super::") {
            let mut base = Some(module);
            let mut tail = rest;
            while let Some(after) = tail.strip_prefix("super::") {
                base = base.and_then(parent);
                tail = after;
            }
            if let Some(base) = base {
                walk(base, tail, &mut out);
            }
        }
        at += rest.chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// What is wrong with `module`'s `source`: each module it names that is not
/// below it, and each server module above capture that it names.
fn violations(module: &str, source: &str) -> Vec<String> {
    let rank = ORDER.iter().position(|m| *m == module).unwrap();
    let mut found = Vec::new();
    for name in named(module, source) {
        let pos = ORDER.iter().position(|m| *m == name).unwrap();
        if name != module && pos >= rank {
            found.push(format!(
                "{} names {}, which is not below it (order: {ORDER:?})",
                shown(module),
                shown(&name)
            ));
        }
    }
    let code = code(source);
    for above in ABOVE {
        let path = format!("crate::{above}");
        let reaches = code
            .match_indices(&path)
            .any(|(at, _)| !code[at + path.len()..].starts_with(is_ident));
        if reaches {
            found.push(format!("{} reaches up into {path}", shown(module)));
        }
    }
    found
}

/// `wal/session` as `capture::wal::session`, `""` as `capture`.
fn shown(module: &str) -> String {
    if module.is_empty() {
        "capture (mod.rs)".to_owned()
    } else {
        format!("capture::{}", module.replace('/', "::"))
    }
}

fn file_of(dir: &Path, module: &str) -> PathBuf {
    if module.is_empty() {
        return dir.join("mod.rs");
    }
    let folder = dir.join(module);
    if folder.is_dir() {
        folder.join("mod.rs")
    } else {
        dir.join(format!("{module}.rs"))
    }
}

fn rust_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| {
            if path.is_dir() {
                rust_files(&path)
            } else {
                usize::from(path.extension().is_some_and(|e| e == "rs"))
            }
        })
        .sum()
}

#[test]
fn capture_modules_depend_one_way() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/capture");
    let mut found = Vec::new();
    for module in ORDER {
        let file = file_of(&dir, module);
        let source = std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        found.extend(violations(module, &source));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    assert_eq!(
        rust_files(&dir),
        ORDER.len(),
        "every capture module is in ORDER"
    );
}

#[test]
fn the_check_sees_a_cycle() {
    // `named` finds the modules the check relies on, in every form of path.
    assert_eq!(
        named("listener", "use super::{error::CaptureError, mode};"),
        ["error", "mode"]
    );
    assert_eq!(
        named("wal/session", "use super::visible::{self, Unseen};"),
        ["wal/visible", "wal/visible"]
    );
    assert_eq!(
        named("wal/session", "crate::capture::status::CaptureStatus"),
        ["status"]
    );
    assert_eq!(named("wal/session", "super::super::slot::lag(c)"), ["slot"]);
    assert_eq!(named("wal", "use super::{mode, slot};"), ["mode", "slot"]);
    // An item of a parent is a name of the parent.
    assert_eq!(named("wal/session", "use super::prepare;"), ["wal"]);
    assert_eq!(named("slot", "use super::CaptureError;"), [""]);
    // Comments and tests do not count.
    assert!(named("kind", "// see super::wal\n").is_empty());
    assert!(named("kind", "#[cfg(test)]\nmod tests { use super::*; }").is_empty());

    // And the check fails on a back-reference, a reach into the re-exports,
    // and a reach above capture.
    assert!(violations("listener", "use super::mode::ensure;").is_empty());
    assert_eq!(violations("mode", "use super::listener::start;").len(), 1);
    assert_eq!(
        violations("wal/settings", "use super::session::Ended;").len(),
        1
    );
    assert_eq!(violations("status", "use super::CaptureMode;").len(), 1);
    assert_eq!(violations("kind", "use crate::config::Config;").len(), 1);
    assert_eq!(violations("wal/visible", "crate::session::Limits").len(), 1);
    assert!(violations("kind", "use crate::configured;").is_empty());
}
