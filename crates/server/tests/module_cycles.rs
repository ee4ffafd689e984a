//! No crate of the workspace has an import cycle between its modules.
//!
//! For every crate under `crates/`, each source file is a module (`a.rs` and
//! `a/mod.rs` are `a`, `a/b.rs` is `a::b`). Every path it names through
//! `crate::`, `super::` or `self::` (use trees included) is resolved to the
//! deepest module it reaches. A reference between two modules is an edge
//! between the two siblings under their common parent that contain them
//! (a module naming its own ancestor or descendant is no edge: children use
//! their parent's items, parents re-export their children). The siblings
//! under each parent must form a graph without cycles. Code under
//! `#[cfg(test)]` and comments are not read: tests may use anything.
//!
//! `tests/layering.rs` checks more for the engine (one fixed order); this
//! test checks the weaker property everywhere, so no cycle can hide in a
//! crate that has no stated order.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path inside its crate: `[]` is the crate root.
type ModPath = Vec<String>;

/// The source text a check reads: comments and everything from the first
/// `#[cfg(test)]` on removed (test modules sit at the end of a file).
fn code_of(source: &str) -> String {
    let source = source.split("#[cfg(test)]").next().unwrap_or("");
    source
        .lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal is rare in module paths' lines
            // and harmless: the rest of that line is only not read.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands a use tree starting at `text` (just after a `::`), appending each
/// full path to `out`. Returns how many bytes it consumed.
fn expand(text: &str, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let bytes = text.as_bytes();
    if text.starts_with('{') {
        let mut at = 1;
        loop {
            while at < bytes.len() && (bytes[at] as char).is_whitespace() {
                at += 1;
            }
            if at >= bytes.len() || bytes[at] == b'}' {
                return (at + 1).min(bytes.len());
            }
            at += expand(&text[at..], prefix, out);
            while at < bytes.len() && (bytes[at] as char).is_whitespace() {
                at += 1;
            }
            if at < bytes.len() && bytes[at] == b',' {
                at += 1;
            }
        }
    }
    let name: String = text.chars().take_while(|c| is_ident(*c)).collect();
    if name.is_empty() {
        // `*`, `self` handled by the caller's prefix, or anything else.
        out.push(prefix.to_vec());
        return text.chars().next().map_or(0, char::len_utf8);
    }
    let mut path = prefix.to_vec();
    path.push(name.clone());
    let rest = &text[name.len()..];
    if let Some(after) = rest.strip_prefix("::") {
        return name.len() + 2 + expand(after, &path, out);
    }
    out.push(path);
    name.len()
}

/// Every path `code` names through `crate::`, `super::` or `self::`, made
/// absolute from the module `here`.
fn references(code: &str, here: &ModPath) -> Vec<ModPath> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let boundary = at == 0 || !is_ident(code[..at].chars().next_back().unwrap_or(' '));
        let start = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|p| boundary && rest.starts_with(p));
        let Some(start) = start else {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let mut base: ModPath = match start {
            "crate::" => Vec::new(),
            "self::" => here.clone(),
            _ => here[..here.len().saturating_sub(1)].to_vec(),
        };
        let mut after = &rest[start.len()..];
        let mut used = start.len();
        while let Some(more) = after.strip_prefix("super::") {
            base.pop();
            after = more;
            used += "super::".len();
        }
        let mut paths = Vec::new();
        used += expand(after, &base, &mut paths);
        out.extend(paths);
        at += used.max(1);
    }
    out
}

/// The modules of the crate whose `src` is `dir`, with the code of each.
fn modules(src: &Path) -> BTreeMap<ModPath, String> {
    fn walk(dir: &Path, base: &ModPath, out: &mut BTreeMap<ModPath, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                let mut inner = base.clone();
                inner.push(name);
                walk(&path, &inner, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut module = base.clone();
                let root = base.is_empty() && (name == "lib" || name == "main");
                if name != "mod" && !root {
                    module.push(name);
                }
                let code = code_of(&std::fs::read_to_string(&path).unwrap());
                out.entry(module).or_default().push_str(&code);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &Vec::new(), &mut out);
    out
}

/// Sibling edges under each parent: parent → (from → to).
type Edges = BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>>;

fn edges(modules: &BTreeMap<ModPath, String>) -> Edges {
    let mut edges = Edges::new();
    for (here, code) in modules {
        for path in references(code, here) {
            // The deepest module the path reaches.
            let target: ModPath = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains_key(p))
                .unwrap_or_default();
            let common = here.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == here.len() || common == target.len() {
                continue; // An ancestor or a descendant (or itself).
            }
            edges
                .entry(here[..common].to_vec())
                .or_default()
                .entry(here[common].clone())
                .or_default()
                .insert(target[common].clone());
        }
    }
    edges
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut found = stack[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, stack, done) {
                return Some(found);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn crates() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .filter(|src| src.is_dir())
        .collect();
    out.sort();
    out
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let crates = crates();
    assert!(crates.len() >= 5, "every crate is read: {crates:?}");
    let mut problems = Vec::new();
    for src in &crates {
        let modules = modules(src);
        for (parent, graph) in edges(&modules) {
            if let Some(found) = cycle(&graph) {
                let at = if parent.is_empty() {
                    "the crate root".to_owned()
                } else {
                    parent.join("::")
                };
                problems.push(format!(
                    "{}: under {at}: {}",
                    src.canonicalize().unwrap().display(),
                    found.join(" → ")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "import cycles:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_sees_cycles_and_use_trees() {
    let here: ModPath = vec!["engine".into(), "group".into()];
    let refs = references(
        "use super::{diff::{self, Changes}, frame::Frame};\nlet x = crate::capture::mode::x();",
        &here,
    );
    assert!(refs.contains(&vec!["engine".into(), "diff".into(), "Changes".into()]));
    assert!(refs.contains(&vec!["engine".into(), "frame".into(), "Frame".into()]));
    assert!(refs.contains(&vec!["capture".into(), "mode".into(), "x".into()]));
    assert!(references(&code_of("self.x; myself::y; // crate::z"), &here).is_empty());
    assert_eq!(
        references("code_of(\"x\"); super::super::db::pool", &here),
        [vec!["db".to_owned(), "pool".to_owned()]]
    );

    let mut modules = BTreeMap::new();
    modules.insert(vec![], String::new());
    modules.insert(vec!["a".into()], "use crate::b::B;".into());
    modules.insert(vec!["b".into()], "use crate::c::C; use super::Root;".into());
    modules.insert(vec!["c".into()], "use crate::a::inner::A;".into());
    modules.insert(vec!["a".into(), "inner".into()], "use super::X;".into());
    let found = edges(&modules);
    let root = &found[&Vec::<String>::new()];
    assert_eq!(root["a"], BTreeSet::from(["b".to_owned()]));
    assert!(cycle(root).is_some(), "a → b → c → a is a cycle");
    modules.insert(vec!["c".into()], String::new());
    assert!(cycle(&edges(&modules)[&Vec::<String>::new()]).is_none());
}
