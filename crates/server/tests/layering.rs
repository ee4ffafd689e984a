//! The engine's modules depend one way. Each may name only the modules
//! listed before it in `ORDER` (and nothing outside the engine but the
//! metrics), so a cycle, or a low module reaching up, fails this test.
//!
//! A module may be a folder (`group/`, with a `mod.rs`): every file in it
//! counts as that module, and its own submodules depend one way too, in the
//! order `INSIDE` gives (and its `mod.rs` states).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::path::Path;

/// Lowest first: `table` → `diff` → `frame` → `budget` → `outbox` → `reads` → `group`
/// → `reader` → `registry` → `hub`.
const ORDER: &[&str] = &[
    "table", "diff", "frame", "budget", "outbox", "reads", "group", "reader", "registry", "hub",
];

/// The modules that are folders, with their submodules, lowest first. A
/// submodule names only those before it, each by its own path: reaching a
/// sibling through the folder's re-exports (`super::Item`) would hide the
/// dependency from this check. The folder's `mod.rs` may name any of them.
const INSIDE: &[(&str, &[&str])] = &[(
    "group",
    &[
        "shared", "history", "window", "related", "current", "task", "map",
    ],
)];

/// Server modules above the engine, which no engine module may name.
const ABOVE: &[&str] = &["session", "capture", "api", "http", "ws", "config", "db"];

/// One source file of the engine, before its tests.
struct File {
    /// Its module's path below `engine`: `["reader"]` for `reader.rs`,
    /// `["group"]` for `group/mod.rs`, `["group", "task"]` for `group/task.rs`.
    at: Vec<String>,
    source: String,
}

impl File {
    fn new(at: &[&str], source: &str) -> File {
        File {
            at: at.iter().map(|s| (*s).to_owned()).collect(),
            // Tests inside a module may use anything.
            source: source.split("#[cfg(test)]").next().unwrap_or("").to_owned(),
        }
    }

    fn name(&self) -> String {
        format!("engine::{}", self.at.join("::"))
    }
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The items of a `{...}` list at the start of `s` (which starts after the
/// brace), split at its top-level commas.
fn items(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                out.push(&s[start..i]);
                return out;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The paths `path` names (the text after a path's prefix), each appended to
/// `base`: `diff::{self, Changes}` and `{diff, frame::Frame}` expand to one
/// path per item. Only the first two segments matter to the check.
fn expand(base: Vec<String>, path: &str, out: &mut Vec<Vec<String>>) {
    let path = path.trim_start();
    if let Some(list) = path.strip_prefix('{') {
        for item in items(list) {
            expand(base.clone(), item, out);
        }
        return;
    }
    let name = ident(path);
    if name.is_empty() || name == "self" {
        out.push(base);
        return;
    }
    let mut base = base;
    base.push(name.to_owned());
    match path[name.len()..].strip_prefix("::") {
        Some(rest) if base.len() < 2 => expand(base, rest, out),
        _ => out.push(base),
    }
}

/// The engine paths `source`, in the module at `at` (below `engine`), names
/// through `super::` (any number of them) or `crate::engine::`, resolved
/// from the engine and cut to two segments: `super::diff::Changes` in
/// `reader.rs`, `super::super::diff::Changes` in `group/task.rs` and
/// `crate::engine::diff::Changes` anywhere are all `["diff", "Changes"]`;
/// `super::shared::Batch` in `group/task.rs` is `["group", "shared"]`.
fn named(source: &str, at: &[&str]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = ["super::", "crate::engine::"]
        .iter()
        .filter_map(|prefix| source[from..].find(prefix))
        .min()
    {
        let found = from + found;
        let after = &source[found..];
        // The `super::` after another (in `super::super::`) was read with
        // the first, and `a_super::` is no path of ours.
        let inside = source[..found]
            .chars()
            .next_back()
            .is_some_and(|c| c == ':' || c == '_' || c.is_ascii_alphanumeric());
        let (base, path) = if let Some(path) = after.strip_prefix("crate::engine::") {
            (Vec::new(), path)
        } else {
            let mut path = after;
            let mut up = 0;
            while let Some(next) = path.strip_prefix("super::") {
                path = next;
                up += 1;
            }
            // The first `super::` leaves the file's module, each further one
            // goes up a level more.
            let base = at[..at.len().saturating_sub(up)]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            (base, path)
        };
        if !inside {
            expand(base, path, &mut out);
        }
        from = found + after.find("::").unwrap_or(0) + 2;
    }
    out
}

/// Where `module` stands in `order`.
fn rank(order: &[&str], module: &str) -> Option<usize> {
    order.iter().position(|m| *m == module)
}

/// Every reference in `files` that breaks the order, as a sentence.
fn violations(files: &[File]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files {
        let module = file.at[0].as_str();
        let Some(mine) = rank(ORDER, module) else {
            found.push(format!("{} is not in ORDER ({ORDER:?})", file.name()));
            continue;
        };
        let inside = INSIDE.iter().find(|(folder, _)| *folder == module);
        let sub = file.at.get(1).map(String::as_str);
        let at: Vec<&str> = file.at.iter().map(String::as_str).collect();
        for path in named(&file.source, &at) {
            let Some(name) = path.first().map(String::as_str) else {
                continue;
            };
            let Some(pos) = rank(ORDER, name) else {
                continue;
            };
            if name != module {
                if pos >= mine {
                    found.push(format!(
                        "{} names engine::{name}, which is not below it (order: {ORDER:?})",
                        file.name()
                    ));
                }
                continue;
            }
            // A name inside the file's own folder module.
            let (Some((_, subs)), Some(sub)) = (inside, sub) else {
                continue;
            };
            let mine = rank(subs, sub);
            match path.get(1).and_then(|s| rank(subs, s)) {
                Some(pos) if mine.is_some_and(|mine| pos < mine) => {}
                Some(_) => found.push(format!(
                    "{} names engine::{}, which is not below it (order: {subs:?})",
                    file.name(),
                    path.join("::")
                )),
                None => found.push(format!(
                    "{} names engine::{} through {module}'s re-exports; name the submodule",
                    file.name(),
                    path.join("::")
                )),
            }
        }
        for above in ABOVE {
            if file.source.contains(&format!("crate::{above}")) {
                found.push(format!("{} reaches up into crate::{above}", file.name()));
            }
        }
        if let (Some((_, subs)), Some(sub)) = (inside, sub)
            && rank(subs, sub).is_none()
        {
            found.push(format!(
                "{} is not in {module}'s order ({subs:?})",
                file.name()
            ));
        }
        if inside.is_none() && file.at.len() > 1 {
            found.push(format!(
                "{} is in a folder that INSIDE does not order",
                file.name()
            ));
        }
    }
    for module in ORDER {
        if !files.iter().any(|f| f.at == [*module]) {
            found.push(format!("engine::{module} has no file"));
        }
    }
    for (folder, subs) in INSIDE {
        for sub in *subs {
            if !files.iter().any(|f| f.at == [*folder, *sub]) {
                found.push(format!("engine::{folder}::{sub} has no file"));
            }
        }
    }
    found
}

/// The engine's files: `engine/x.rs` and `engine/x/mod.rs` are module `x`,
/// `engine/x/y.rs` its submodule `y`.
fn engine_files(dir: &Path) -> Vec<File> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() {
            for inner in std::fs::read_dir(&path).unwrap() {
                let inner = inner.unwrap().path();
                let stem = inner.file_stem().unwrap().to_str().unwrap();
                let source = std::fs::read_to_string(&inner).unwrap();
                let at = if stem == "mod" {
                    vec![name.as_str()]
                } else {
                    vec![name.as_str(), stem]
                };
                files.push(File::new(&at, &source));
            }
        } else if name != "mod.rs" {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            files.push(File::new(&[stem], &std::fs::read_to_string(&path).unwrap()));
        }
    }
    files
}

/// The `//!` doc comment of `source`, as one line.
fn doc(source: &str) -> String {
    source
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("//!"))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn engine_modules_depend_one_way() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let files = engine_files(&dir);
    let found = violations(&files);
    assert!(found.is_empty(), "{}", found.join("\n"));
    // Each folder's doc comment states the order this test checks.
    for (folder, subs) in INSIDE {
        let source = std::fs::read_to_string(dir.join(folder).join("mod.rs")).unwrap();
        let stated = subs
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(" → ");
        assert!(
            doc(&source).contains(&stated),
            "engine/{folder}/mod.rs states the order {stated}"
        );
    }
}

#[test]
fn the_check_sees_a_cycle() {
    // `named` must find the names the check relies on.
    let names = |source: &str, at: &[&str]| -> Vec<String> {
        named(source, at).iter().map(|p| p.join("::")).collect()
    };
    assert_eq!(
        names("use super::group::{Batch, Groups};", &["reader"]),
        ["group::Batch", "group::Groups"]
    );
    assert_eq!(
        names("use super::{diff, frame::Frame};", &["reader"]),
        ["diff", "frame::Frame"]
    );
    assert_eq!(names("crate::engine::hub::Hub", &["reader"]), ["hub::Hub"]);
    // In a folder, `super::` is the folder and `super::super::` the engine.
    assert_eq!(
        names("use super::shared::{self, Batch};", &["group", "task"]),
        ["group::shared"]
    );
    assert_eq!(
        names(
            "use super::super::{diff::{self, Changes}, frame};",
            &["group", "task"]
        ),
        ["diff", "diff::Changes", "frame"]
    );
    assert_eq!(
        names("crate::engine::table::Key", &["group", "map"]),
        ["table::Key"]
    );
    assert_eq!(
        names("pub use map::Groups;", &["group"]),
        Vec::<String>::new()
    );

    // A clean tree passes; each back-reference fails it.
    let tree = |extra: Option<(&[&str], &str)>| {
        // Every module and submodule, empty, then a few references that
        // keep the order: down to the engine, down inside the folder, and
        // into the folder through its re-exports from outside it.
        let mut files: Vec<File> = ORDER.iter().map(|m| File::new(&[*m], "")).collect();
        for (folder, subs) in INSIDE {
            files.extend(subs.iter().map(|sub| File::new(&[*folder, *sub], "")));
        }
        files.push(File::new(
            &["group"],
            "pub use map::Groups;\npub use shared::Batch;",
        ));
        files.push(File::new(
            &["group", "shared"],
            "use crate::engine::reads::Reads;",
        ));
        files.push(File::new(
            &["group", "task"],
            "use super::shared::GroupShared;\nuse super::super::table::Key;",
        ));
        files.push(File::new(&["reader"], "use super::group::{Batch, Groups};"));
        if let Some((at, source)) = extra {
            files.push(File::new(at, source));
        }
        violations(&files)
    };
    assert_eq!(tree(None), Vec::<String>::new());
    for (at, source) in [
        // Low engine modules reaching up, from a file and from a folder.
        (&["table"][..], "use super::hub::Hub;"),
        (
            &["group", "task"][..],
            "use super::super::reader::ReaderShared;",
        ),
        (
            &["group", "map"][..],
            "use crate::engine::registry::Registry;",
        ),
        (&["group"][..], "pub use super::reader::run;"),
        // A cycle inside the folder, and a way around the check.
        (&["group", "shared"][..], "use super::task::GroupTask;"),
        (&["group", "shared"][..], "use super::GroupShared;"),
        // Files the order does not place.
        (&["group", "ring"][..], ""),
        (&["relations"][..], ""),
        // The server above the engine.
        (&["group", "map"][..], "use crate::session::Session;"),
    ] {
        assert!(
            !tree(Some((at, source))).is_empty(),
            "{at:?} naming {source:?} passed"
        );
    }
    // Tests may name anything.
    assert_eq!(
        tree(Some((
            &["group", "map"],
            "#[cfg(test)]\nuse super::super::hub::Hub;"
        ))),
        Vec::<String>::new()
    );
}
