//! The crate's layers, checked: a module of src/ names only modules of its own layer or below
//! (see "Layers" in the README). A path such as `crate::isolation::…` in `src/server/` fails this
//! test with the file, the line and the two layers.

#![allow(
    clippy::expect_used,
    reason = "a failure to read the sources is the test's failure"
)]

use std::path::{Path, PathBuf};

/// Bottom to top. Modules of one row may name each other; a row never names a row below it.
const LAYERS: &[&[&str]] = &[
    // The crate's vocabulary and leaf helpers.
    &["error", "strategy", "util", "sql"],
    // Where the server comes from; what a schema looks like.
    &["server", "schema"],
    // A test's name, seed, token and the state its factories share.
    &["context"],
    // The isolation engine: strategies, TestDb, the harness.
    &["isolation"],
    // Factories, which write through TestDb.
    &["factory"],
    // The strategy benchmark, which runs everything above.
    &["bench"],
];

/// Files of the facade (re-exports), which may name every layer.
const FACADE: &[&str] = &["lib.rs", "private.rs"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

/// The top-level module a file of src/ belongs to (`src/isolation/lock.rs` → `isolation`).
fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

/// The top-level modules `source` names through `crate::`, by line number: plain paths
/// (`crate::isolation::lock`) and the groups of `use crate::{a, b::c}`. Comments are skipped
/// (doc links may point anywhere).
fn named_modules(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_block_comment = false;
    let mut group: Option<(usize, String)> = None;
    for (index, raw) in source.lines().enumerate() {
        let number = index + 1;
        let mut line = raw.trim();
        if in_block_comment {
            match line.find("*/") {
                Some(end) => {
                    in_block_comment = false;
                    line = &line[end + 2..];
                }
                None => continue,
            }
        }
        if let Some(start) = line.find("/*") {
            in_block_comment = !line[start..].contains("*/");
            line = &line[..start];
        }
        let line = match line.find("//") {
            Some(comment) => &line[..comment],
            None => line,
        };
        if let Some((start, text)) = group.as_mut() {
            text.push_str(line);
            if line.contains('}') {
                let (start, text) = (*start, std::mem::take(text));
                group = None;
                found.extend(group_modules(&text).into_iter().map(|m| (start, m)));
            }
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            // `$crate::` in macros is the facade's path for users, not an import.
            let before = &rest[..at];
            let after = &rest[at + "crate::".len()..];
            if before.ends_with('$') || before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
            {
                rest = after;
                continue;
            }
            if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) => found.extend(
                        group_modules(&inner[..end])
                            .into_iter()
                            .map(|m| (number, m)),
                    ),
                    None => group = Some((number, inner.to_string())),
                }
                rest = "";
                continue;
            }
            let module: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !module.is_empty() {
                found.push((number, module));
            }
            rest = after;
        }
    }
    found
}

/// The first segment of each path of a `use` group (`a, b::{c, d}, e::f` → a, b, e).
fn group_modules(group: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut depth = 0;
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(item) = items.last_mut() {
            item.push(c);
        }
    }
    items
        .iter()
        .map(|item| {
            item.trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {dir:?}: {e}"));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every upward reference in `source`, a file of module `module`, as messages.
fn violations(file: &str, module: &str, source: &str) -> Vec<String> {
    let Some(own) = layer_of(module) else {
        return vec![format!(
            "{file}: module `{module}` is in no layer: add it to LAYERS in tests/layers.rs and \
             to the README's layers"
        )];
    };
    named_modules(source)
        .into_iter()
        .filter_map(|(line, named)| {
            let layer = layer_of(&named)?;
            (layer > own).then(|| {
                format!(
                    "{file}:{line}: `{module}` (layer {own}) names `crate::{named}` (layer \
                     {layer}), a layer above it"
                )
            })
        })
        .collect()
}

#[test]
fn no_module_names_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 20,
        "found only {} files under {src:?}",
        files.len()
    );
    let mut found = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&src).expect("under src");
        if FACADE.iter().any(|f| relative == Path::new(f)) {
            continue;
        }
        let module = module_of(relative).expect("a module name");
        let source = std::fs::read_to_string(path).expect("readable source");
        found.extend(violations(
            &relative.display().to_string(),
            &module,
            &source,
        ));
    }
    assert!(
        found.is_empty(),
        "imports from a lower layer to a higher one:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_upward_paths_in_every_form() {
    let source = "use crate::error::Result;\n\
                  use crate::{sql, isolation::lock};\n\
                  use crate::{\n    util,\n    factory::{Table, Column},\n};\n\
                  // crate::bench in a comment is not an import\n\
                  fn f() { crate::context::current(); $crate::x(); }\n";
    let found = violations("src/server/x.rs", "server", source);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains("src/server/x.rs:2") && found[0].contains("crate::isolation"));
    assert!(found[1].contains("src/server/x.rs:3") && found[1].contains("crate::factory"));
    assert!(found[2].contains(":8") && found[2].contains("crate::context"));
    assert!(violations("src/bench/x.rs", "bench", source).is_empty());
    assert_eq!(violations("src/new/x.rs", "new", "").len(), 1);
}
