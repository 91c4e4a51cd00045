//! The module graph stays acyclic: every top-level module of `src/` sits in a layer, and a
//! module may name (`use crate::x`, `crate::x::...`) only modules of lower layers. The layers
//! are the ones docs/ARCHITECTURE.md draws; a new module must be placed here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. A module may use modules of lower layers only (not its own layer: that keeps
/// the graph acyclic without a cycle search, and the order explicit).
const LAYERS: &[&[&str]] = &[
    // Vocabulary with no dependencies.
    &["error", "units", "command", "crypt"],
    // What cbk knows of Cassandra; object stores.
    &["cassandra", "store"],
    // Codecs (they choose per SSTable component).
    &["codec"],
    // The repository format.
    &["repo"],
    // The node side.
    &["agent"],
    // Transports to nodes (and the controller's end of the agent protocol).
    &["remote"],
    // Plan files: composes the configuration the modules above own.
    &["plan"],
    // The compiler: plan -> planned run.
    &["graph"],
    // Views of a planned run; the engine that applies one.
    &["render", "exec"],
    // The task implementations.
    &["tasks"],
    // The command line.
    &["cli"],
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for the crate roots).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// Top-level modules named by `crate::` paths in one file's code (comments left out), with
/// the line of each: `crate::x::...`, and each item of `crate::{x, y::z}`.
fn crate_refs(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = without_strings(code);
        let mut rest = code.as_str();
        while let Some(i) = rest.find("crate::") {
            let before = &rest[..i];
            rest = &rest[i + "crate::".len()..];
            if before.ends_with('$') || before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // Top-level items of the group; it may continue on the following lines.
                let mut depth = 1;
                let mut item = String::new();
                let mut at_start = true;
                let tail: String = std::iter::once(group)
                    .chain(text.lines().skip(n + 1))
                    .collect::<Vec<_>>()
                    .join("\n");
                for c in tail.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        ',' if depth == 1 => {
                            at_start = true;
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 1 && at_start {
                        if c.is_alphanumeric() || c == '_' {
                            item.push(c);
                        } else if !item.is_empty() {
                            out.push((std::mem::take(&mut item), n + 1));
                            at_start = false;
                        }
                    }
                }
                if !item.is_empty() {
                    out.push((item, n + 1));
                }
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((name, n + 1));
            }
        }
    }
    out
}

/// `line` with the text of its string literals left out (`"..."`, escapes honoured).
fn without_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_str = false;
    let mut escaped = false;
    for c in line.chars() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    in_str = false;
                    out.push(c);
                }
                _ => {}
            }
        } else {
            if c == '"' {
                in_str = true;
            }
            out.push(c);
        }
    }
    out
}

/// Every `from -> to` use between top-level modules, with where it is.
fn module_uses() -> BTreeMap<(String, String), Vec<String>> {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut uses: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for f in &files {
        let Some(from) = module_of(&src, f) else {
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        for (to, line) in crate_refs(&text) {
            if to == from || to == "VERSION" || to == "self" {
                continue;
            }
            let at = format!("{}:{line}", f.strip_prefix(&src).unwrap_or(f).display());
            uses.entry((from.clone(), to)).or_default().push(at);
        }
    }
    uses
}

fn layer_of(m: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&m))
}

#[test]
fn every_module_is_in_a_layer() {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(&src, f)).collect();
    let missing: Vec<_> = modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "modules without a layer in tests/it/architecture.rs (add them to LAYERS and to the \
         module graph of docs/ARCHITECTURE.md): {missing:?}"
    );
    let listed: BTreeSet<String> = LAYERS
        .iter()
        .flat_map(|l| l.iter().map(|m| m.to_string()))
        .collect();
    let gone: Vec<_> = listed.difference(&modules).collect();
    assert!(
        gone.is_empty(),
        "LAYERS names modules that do not exist: {gone:?}"
    );
}

#[test]
fn modules_use_only_lower_layers() {
    let mut bad = Vec::new();
    for ((from, to), at) in module_uses() {
        let (Some(a), Some(b)) = (layer_of(&from), layer_of(&to)) else {
            continue;
        };
        if b >= a {
            bad.push(format!(
                "{from} (layer {a}) uses {to} (layer {b}) at {}",
                at.join(", ")
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "a module uses one of its own or a higher layer (move the type to the lower module, or \
         pass it in):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_reference_parser_sees_grouped_and_inline_paths() {
    let text = "use crate::{plan::model::X,\n    store::{A, B}};\nfn f() { crate::repo::g(); }\n// crate::cli::x\nmacro_rules! m { () => { $crate::exec::y } }\nconst S: &str = \"see [`crate::tasks`] \\\" crate::cli\"; crate::units::f();\n";
    let refs: Vec<String> = crate_refs(text).into_iter().map(|(m, _)| m).collect();
    assert_eq!(refs, ["plan", "store", "repo", "units"]);
}
