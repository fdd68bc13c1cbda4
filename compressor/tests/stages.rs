//! The compressor's modules are the pipeline's stages, in order (see `src/lib.rs`): a module may
//! import from its own stage and the ones before it, never from a later one. This reads every
//! `.rs` file under `src/`, finds its `crate::` paths (also inside `use crate::{a::.., b::..}`
//! groups) and the `super::` chains that climb to the crate root, and fails naming the file, the
//! line and the import of each one that reaches forward. Comments are skipped: a doc link to a
//! later stage says where something is used, it is not a dependency. A second test fails on an
//! import cycle between two modules of one stage.

use std::path::{Path, PathBuf};

/// The stages, first to last; `src/<stage>/` or `src/<stage>.rs` holds each.
const STAGES: [&str; 8] = [
    "support", "data", "nn", "train", "methods", "run", "analysis", "cli",
];

fn stage_of(name: &str) -> Option<usize> {
    STAGES.iter().position(|s| *s == name)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source with comments blanked out (same length and line breaks, so positions keep their
/// line numbers). String literals are kept, so `"http://..."` is not taken for a comment.
fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let (mut i, mut in_str) = (0, false);
    while i < b.len() {
        if in_str {
            if b[i] == b'\\' {
                i += 2;
                continue;
            }
            in_str = b[i] != b'"';
        } else if b[i] == b'"' && !(i > 0 && b[i - 1] == b'\'' && b.get(i + 1) == Some(&b'\'')) {
            in_str = true;
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                out[i] = b' ';
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segments a `crate::`-rooted path names, with their offsets in `after`: one for
/// `crate::a::..`, each item's first for `crate::{a::.., b}`.
fn roots(after: &str) -> Vec<(usize, String)> {
    let lead = after.len() - after.trim_start().len();
    let after = after.trim_start();
    if let Some(group) = after.strip_prefix('{') {
        let (mut depth, mut items, mut start) = (0usize, Vec::new(), 0);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&group[start..i]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        items
            .into_iter()
            .map(|it| {
                let at = it.as_ptr() as usize - after.as_ptr() as usize;
                let skip = it.len() - it.trim_start().len();
                (lead + at + skip, ident_at(it.trim_start()).to_string())
            })
            .filter(|(_, s)| !s.is_empty())
            .collect()
    } else {
        vec![(lead, ident_at(after).to_string())]
    }
}

/// Every forward import in `src`: `(line, text)`, for a file whose module path is `module`
/// (`src/nn/ops/conv.rs` is `[nn, ops, conv]`).
fn forward_imports(src: &str, module: &[String], own: usize) -> Vec<(usize, String)> {
    let code = strip_comments(src);
    let line_of = |pos: usize| code[..pos].matches('\n').count() + 1;
    let mut bad = Vec::new();
    let mut check = |pos: usize, root: &str, shown: String| {
        if let Some(s) = stage_of(root) {
            if s > own {
                bad.push((line_of(pos), shown));
            }
        }
    };
    for (pos, _) in code.match_indices("crate::") {
        let prev = code[..pos].chars().next_back();
        if prev.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        for (at, r) in roots(&code[pos + 7..]) {
            check(pos + 7 + at, &r, format!("crate::{r}"));
        }
    }
    // `super::super::..` that climbs to the crate root and then down into another stage.
    for (pos, _) in code.match_indices("super::") {
        if code[..pos].ends_with("super::") {
            continue;
        }
        let mut rest = &code[pos..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        if ups >= module.len() {
            for (_, r) in roots(rest) {
                check(pos, &r, format!("{}{r}", "super::".repeat(ups)));
            }
        }
    }
    bad
}

#[test]
fn no_module_imports_from_a_later_stage() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    let mut seen_stages = [false; STAGES.len()];
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let mut module: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        let top = module[0].as_str();
        let own = match top {
            "lib" => continue,
            // The binary is the command line's.
            "main" => stage_of("cli").unwrap(),
            _ => stage_of(top).unwrap_or_else(|| {
                panic!(
                    "{}: `{top}` is not a stage; put it in one of {STAGES:?} (and say so in src/lib.rs)",
                    rel.display()
                )
            }),
        };
        seen_stages[own] = true;
        let text = std::fs::read_to_string(f).unwrap();
        for (line, import) in forward_imports(&text, &module, own) {
            bad.push(format!(
                "src/{}:{line}: `{import}` (stage {}) is imported by stage {}",
                rel.display(),
                import
                    .trim_start_matches("crate::")
                    .trim_start_matches("super::"),
                STAGES[own]
            ));
        }
    }
    assert!(
        seen_stages.iter().all(|&s| s),
        "a stage has no file: {seen_stages:?}"
    );
    assert!(
        bad.is_empty(),
        "imports from a later stage (order: {}):\n{}",
        STAGES.join(" → "),
        bad.join("\n")
    );
}

/// The first two segments of every `crate::` path in `src` (`crate::nn::model::Model` gives
/// `[nn, model]`; a group gives one per item), for the module graph.
fn crate_paths(src: &str) -> Vec<Vec<String>> {
    let code = strip_comments(src);
    let mut out = Vec::new();
    for (pos, _) in code.match_indices("crate::") {
        let prev = code[..pos].chars().next_back();
        if prev.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let after = &code[pos + 7..];
        for (at, first) in roots(after) {
            let rest = &after[at + first.len()..];
            let mut segs = vec![first];
            if let Some(r) = rest.strip_prefix("::") {
                let second = roots(r);
                // `crate::a::{b, c}` names two modules of `a`; `crate::a::b` one.
                segs.extend(second.into_iter().map(|(_, s)| s).take(1));
            }
            out.push(segs);
        }
    }
    out
}

/// No two modules import each other, directly or round a longer loop: a module is a file or
/// folder directly in a stage (`nn::model`, `nn::ops`, `analysis::sweep`); what a folder's own
/// files import from one another is inside it. A stage's `mod.rs` counts as the module it
/// re-exports (`crate::methods::Method` is `methods::method`'s).
#[test]
fn no_import_cycle_between_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut units = std::collections::BTreeSet::new();
    let mut unit_files = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let mut m: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if m.last().is_some_and(|x| x == "mod") {
            m.pop();
        }
        if matches!(m[0].as_str(), "lib" | "main") {
            continue;
        }
        m.truncate(2);
        let unit = m.join("::");
        units.insert(unit.clone());
        unit_files.push((unit, std::fs::read_to_string(f).unwrap()));
    }
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for (unit, text) in &unit_files {
        let e = edges.entry(unit.clone()).or_default();
        for p in crate_paths(text) {
            let two = p.join("::");
            let target = if units.contains(&two) {
                two
            } else {
                p[0].clone()
            };
            if &target != unit {
                e.insert(target);
            }
        }
        // A stage's `pub use x::*;` makes `crate::stage::Item` an import from `stage::x`.
        if !unit.contains("::") {
            for line in text.lines() {
                if let Some(r) = line.trim().strip_prefix("pub use ") {
                    let m = format!("{unit}::{}", ident_at(r));
                    if units.contains(&m) {
                        e.insert(m);
                    }
                }
            }
        }
    }
    // Depth-first search; a back edge closes a cycle.
    fn visit(
        u: &str,
        edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        state: &mut std::collections::BTreeMap<String, u8>,
        path: &mut Vec<String>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(u.to_string(), 1);
        path.push(u.to_string());
        for v in edges.get(u).into_iter().flatten() {
            match state.get(v.as_str()).copied().unwrap_or(0) {
                0 => visit(v, edges, state, path, cycles),
                1 => {
                    let from = path.iter().position(|p| p == v).unwrap();
                    cycles.push(format!("{} → {v}", path[from..].join(" → ")));
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(u.to_string(), 2);
    }
    let mut state = std::collections::BTreeMap::new();
    let mut cycles = Vec::new();
    for u in edges.keys() {
        if !state.contains_key(u.as_str()) {
            visit(u, &edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between modules:\n{}",
        cycles.join("\n")
    );
}

/// The scanner itself: plain paths, groups over several lines, `super::` chains that reach the
/// root, comments and an earlier stage are told apart.
#[test]
fn the_scanner_finds_forward_imports() {
    let module = ["nn".to_string(), "model".to_string()];
    let nn = stage_of("nn").unwrap();
    let src = "use crate::support::io;\n\
               use crate::{data::augment,\n    methods::baq::Baq};\n\
               // see crate::run::export\n\
               fn f() { crate::train::fit(); }\n\
               use super::super::cli::Cli;\n\
               use super::ops;\n";
    let got = forward_imports(src, &module, nn);
    assert_eq!(
        got,
        vec![
            (3, "crate::methods".to_string()),
            (5, "crate::train".to_string()),
            (6, "super::super::cli".to_string()),
        ]
    );
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        crate_paths(src),
        vec![
            s(&["support", "io"]),
            s(&["data", "augment"]),
            s(&["methods", "baq"]),
            s(&["train", "fit"]),
        ]
    );
}

/// `cli` is the only module that knows clap: a stage below it takes plain values, so it can be
/// driven from a test, a notebook or another program without a command line.
#[test]
fn only_the_command_line_knows_clap() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        if rel == "cli.rs" || rel == "main.rs" {
            continue;
        }
        let text = strip_comments(&std::fs::read_to_string(f).unwrap());
        for (i, line) in text.lines().enumerate() {
            if line.contains("clap::") || line.contains("use clap") || line.contains("#[arg(") {
                bad.push(format!("src/{rel}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "clap outside src/cli.rs:\n{}",
        bad.join("\n")
    );
}
