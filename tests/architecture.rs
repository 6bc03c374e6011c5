//! The shape of the house, checked: every `crate::…` and `super::…` path in
//! `src/` points to the same floor or a lower one (src/lib.rs lists the
//! floors), and no two files import each other, directly or around a longer
//! cycle. Test modules (`#[cfg(test)] mod tests`) are left out: a test may
//! reach across floors to compare two implementations.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Floor of each top-level module, bottom up, as src/lib.rs describes them.
const FLOORS: &[(&str, usize)] = &[
    ("error", 1),
    ("fsutil", 1),
    ("fingerprint", 1),
    ("defaults", 1),
    ("simd", 1),
    ("metrics", 1),
    ("data", 2),
    ("head", 3),
    ("model", 4),
    ("train", 5),
    ("cpu", 6),
    ("gpu", 6),
    ("device", 7),
    ("infer", 7),
    ("fit", 7),
    ("bench", 8),
    ("sweep", 8),
    ("tune", 8),
    ("viz", 8),
    ("calibration_plot", 8),
    ("lib", 9),
    ("cli", 9),
    ("main", 9),
];

fn floor(top: &str) -> usize {
    FLOORS
        .iter()
        .find(|(m, _)| *m == top)
        .unwrap_or_else(|| panic!("module `{top}` has no floor in tests/architecture.rs"))
        .1
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/gpu/trainer.rs` → [gpu, trainer],
/// `src/head/mixture_diag/mod.rs` → [head, mixture_diag].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without its test module and without its `pub use`
/// re-exports: a parent that re-exports a child's items offers them, it
/// does not depend on them.
fn non_test_code(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(i) = rest.find("pub use ") {
        out.push_str(&rest[..i]);
        rest = rest[i..].find(';').map_or("", |j| &rest[i + j + 1..]);
    }
    out.push_str(rest);
    out
}

/// Module paths (as segment lists, possibly continuing into an item) that a
/// file names through `crate::`, `super::` or one of its child modules
/// (`children`: `avx2::` from `head/mixture_diag/mod.rs`).
fn referenced_paths(code: &str, here: &[String], children: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let child_prefixes: Vec<String> = children.iter().map(|c| format!("{c}::")).collect();
    let prefixes = ["crate::", "super::"]
        .into_iter()
        .chain(child_prefixes.iter().map(String::as_str));
    for prefix in prefixes {
        let mut from = 0;
        while let Some(i) = code[from..].find(prefix) {
            let start = from + i;
            from = start + prefix.len();
            // Part of a longer identifier or path (`my_crate::`,
            // `wgpu::util::`), or a comment's text.
            if start > 0
                && (bytes[start - 1].is_ascii_alphanumeric()
                    || bytes[start - 1] == b'_'
                    || bytes[start - 1] == b':')
            {
                continue;
            }
            let line_start = code[..start].rfind('\n').map_or(0, |n| n + 1);
            if code[line_start..start].trim_start().starts_with("//") {
                continue;
            }
            let mut segs: Vec<String> = match prefix {
                "crate::" => Vec::new(),
                "super::" => here[..here.len().saturating_sub(1)].to_vec(),
                child => {
                    let mut s = here.to_vec();
                    s.push(child.trim_end_matches("::").to_string());
                    s
                }
            };
            let rest = &code[from..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut chained = path.as_str();
            // `super::super::x`.
            while let Some(r) = chained.strip_prefix("super::") {
                segs.pop();
                chained = r;
            }
            segs.extend(
                chained
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
            if !segs.is_empty() {
                out.push(segs);
            }
        }
    }
    out
}

/// The longest prefix of `path` that is a file's module path.
fn owner<'a>(path: &[String], files: &'a BTreeMap<Vec<String>, PathBuf>) -> Option<&'a [String]> {
    (1..=path.len())
        .rev()
        .find_map(|n| files.get_key_value(&path[..n]).map(|(k, _)| k.as_slice()))
}

#[test]
fn floors_point_down_and_no_files_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let files: BTreeMap<Vec<String>, PathBuf> = paths
        .iter()
        .map(|p| (module_path(&src, p), p.clone()))
        .collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut upward = Vec::new();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        // The binary's modules (main.rs, cli/) reach the library as `mdn::`;
        // their own `crate::` paths are the binary's.
        let in_binary = module[0] == "main" || module[0] == "cli";
        let children: Vec<String> = files
            .keys()
            .filter(|k| k.len() == module.len() + 1 && k.starts_with(module))
            .map(|k| k[module.len()].clone())
            .collect();
        for target in referenced_paths(&non_test_code(&text), module, &children) {
            if in_binary && target[0] != "cli" {
                continue;
            }
            let Some(to) = owner(&target, &files) else {
                continue;
            };
            if to == module.as_slice() {
                continue;
            }
            let (from_floor, to_floor) = (floor(&module[0]), floor(&to[0]));
            if to_floor > from_floor {
                upward.push(format!(
                    "{} (floor {from_floor}) imports {} (floor {to_floor})",
                    path.strip_prefix(&src).unwrap().display(),
                    to.join("::")
                ));
            }
            edges.entry(module.clone()).or_default().insert(to.to_vec());
        }
    }
    assert!(
        upward.is_empty(),
        "imports from a lower floor to a higher one:\n{}",
        upward.join("\n")
    );
    // Any cycle in the file graph, found by depth-first search.
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let at = stack.iter().position(|n| n == node).unwrap();
                let mut cycle = stack[at..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in files.keys() {
        let mut stack = Vec::new();
        if let Some(cycle) = visit(node, &edges, &mut state, &mut stack) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            panic!("files that import each other: {}", names.join(" → "));
        }
    }
    assert!(
        edges.len() > 40,
        "only {} files import anything",
        edges.len()
    );
}

/// The path scanner itself: what it must find, and what it must not.
#[test]
fn the_scanner_finds_crate_super_and_child_paths() {
    let here = vec!["gpu".to_string(), "trainer".to_string()];
    let code = "use crate::head::HeadKind;\nuse super::bindings::{A, B};\n\
                // crate::viz::Not in a comment\nlet x = wgpu::util::y;\nfoo::bar();\n";
    let found = referenced_paths(code, &here, &["foo".to_string()]);
    let joined: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        joined,
        ["head::HeadKind", "gpu::bindings", "gpu::trainer::foo::bar"],
        "{joined:?}"
    );
}
