//! The engine's modules depend one way. Each may name only the modules
//! listed before it in `ORDER` (and nothing outside the engine but the
//! metrics), so a cycle, or a low module reaching up, fails this test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::path::Path;

/// Lowest first: `table` → `diff` → `frame` → `outbox` → `reads` → `group`
/// → `reader` → `registry` → `hub`.
const ORDER: &[&str] = &[
    "table", "diff", "frame", "outbox", "reads", "group", "reader", "registry", "hub",
];

/// Server modules above the engine, which no engine module may name.
const ABOVE: &[&str] = &["session", "capture", "api", "http", "ws", "config", "db"];

/// The engine modules `source` names, through `super::` or `crate::engine::`.
fn named(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["super::", "crate::engine::"] {
        let mut rest = source;
        while let Some(at) = rest.find(prefix) {
            rest = &rest[at + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
            // `super::{a, b}`: every name in the braces.
            if rest.starts_with('{') {
                let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
                for part in group.split(',') {
                    let name = part.trim().split("::").next().unwrap_or("").trim();
                    if !name.is_empty() {
                        out.push(name.to_owned());
                    }
                }
            }
        }
    }
    out
}

#[test]
fn engine_modules_depend_one_way() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let mut checked = 0;
    for (rank, module) in ORDER.iter().enumerate() {
        let source = std::fs::read_to_string(dir.join(format!("{module}.rs"))).unwrap();
        // Tests inside a module may use anything.
        let source = source.split("#[cfg(test)]").next().unwrap_or("");
        for name in named(source) {
            if let Some(pos) = ORDER.iter().position(|m| *m == name) {
                assert!(
                    pos < rank,
                    "engine::{module} names engine::{name}, which is not below it (order: {ORDER:?})"
                );
            }
        }
        for above in ABOVE {
            assert!(
                !source.contains(&format!("crate::{above}")),
                "engine::{module} reaches up into crate::{above}"
            );
        }
        checked += 1;
    }
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files,
        checked + 1,
        "every engine module (besides mod.rs) is in ORDER"
    );
}

#[test]
fn the_check_sees_a_cycle() {
    // `named` must find the names the check relies on.
    assert_eq!(named("use super::group::{Batch, Groups};"), ["group"]);
    assert_eq!(named("use super::{diff, frame::Frame};"), ["diff", "frame"]);
    assert_eq!(named("crate::engine::hub::Hub"), ["hub"]);
}
