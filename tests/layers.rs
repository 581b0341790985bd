//! The crate's layers, checked: a module of src/ names only modules of its own layer or below
//! (see "Layers" in the README). A path such as `crate::isolation::…` in `src/backend/` fails this
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
    // The backends (where the server comes from, administration, coordination, introspection,
    // cleaning); what a schema looks like.
    &["backend", "schema"],
    // A test's name, seed, token and the state its factories share.
    &["context"],
    // The isolation engine: strategies, TestDb, the harness.
    &["isolation"],
    // Factories, which write through TestDb, and the row generator (rows from the schema
    // alone: `db.rows`, and the benchmark's suites).
    &["factory", "rowgen"],
    // The strategy benchmark, which runs everything above.
    &["bench"],
];

/// Files of the facade (re-exports), which may name every layer.
const FACADE: &[&str] = &["lib.rs", "private.rs"];

/// Names at the crate root that are not modules: re-exports, by the layer they come from.
const ROOT_NAMES: &[(&str, &str)] = &[
    ("Error", "error"),
    ("Result", "error"),
    ("Strategy", "strategy"),
    ("server", "backend"),
    ("TestDb", "isolation"),
    ("Isolation", "isolation"),
    ("prelude", "bench"),
    ("__private", "bench"),
];

fn layer_of(module: &str) -> Option<usize> {
    let module = ROOT_NAMES
        .iter()
        .find(|(name, _)| *name == module)
        .map_or(module, |(_, from)| *from);
    LAYERS.iter().position(|row| row.contains(&module))
}

/// The top-level module a file of src/ belongs to (`src/isolation/slots.rs` → `isolation`).
fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

/// `source` with its comments and the contents of its string and character literals blanked
/// (newlines kept, so line numbers stay): doc links and SQL may name anything.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && {
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                j += 1;
            }
            chars.get(j) == Some(&'"')
        } {
            // A raw string: r#"…"#, closed by a quote and as many hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars[j] == '#' {
                hashes += 1;
                j += 1;
            }
            out.extend(std::iter::repeat_n(' ', j + 1 - i));
            i = j + 1;
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|h| chars.get(i + h) == Some(&'#')) {
                    out.extend(std::iter::repeat_n(' ', hashes + 1));
                    i += hashes + 1;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if let Some(&ch) = chars.get(i) {
                    out.push(blank(ch));
                }
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A character literal (a lifetime has no closing quote).
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The top-level modules `source` names through `crate::` (plain paths and every item of a
/// `use crate::{…}` group, nested groups and several lines included), or through a chain of
/// `super::` that climbs `depth` modules or more (the crate root, from a file `depth` modules
/// deep), by line number.
fn named_modules(source: &str, depth: usize) -> Vec<(usize, String)> {
    let code = code_only(source);
    let chars: Vec<char> = code.chars().collect();
    let line_at = |pos: usize| chars[..pos].iter().filter(|c| **c == '\n').count() + 1;
    let ident = |from: usize| -> String {
        chars[from..]
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_')
            .collect()
    };
    let starts_word = |pos: usize| {
        pos == 0
            || !(chars[pos - 1].is_alphanumeric() || chars[pos - 1] == '_' || chars[pos - 1] == '$')
    };
    let matches_at = |pos: usize, word: &str| {
        word.chars()
            .enumerate()
            .all(|(k, w)| chars.get(pos + k) == Some(&w))
    };
    let mut found = Vec::new();
    // Brace level, and the levels at which inline modules (`mod tests { … }`) opened: each is
    // one module deeper for `super::`.
    let mut level = 0usize;
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        // The position just after a path that reaches the crate root, if one starts here.
        let mut root = None;
        if starts_word(i) && matches_at(i, "crate::") {
            root = Some(i + "crate::".len());
        } else if starts_word(i) && matches_at(i, "super::") {
            let mut j = i;
            let mut supers = 0;
            while matches_at(j, "super::") {
                supers += 1;
                j += "super::".len();
            }
            if supers >= depth + inline_mods.len() {
                root = Some(j);
            } else {
                i = j;
                continue;
            }
        } else if starts_word(i) && matches_at(i, "mod ") {
            let name_at = i + "mod ".len();
            let name = ident(name_at);
            let mut j = name_at + name.len();
            while chars.get(j).is_some_and(|c| c.is_whitespace()) {
                j += 1;
            }
            if !name.is_empty() && chars.get(j) == Some(&'{') {
                inline_mods.push(level);
            }
            i = name_at;
            continue;
        }
        let Some(after) = root else {
            match chars[i] {
                '{' => level += 1,
                '}' => {
                    level = level.saturating_sub(1);
                    if inline_mods.last() == Some(&level) {
                        inline_mods.pop();
                    }
                }
                _ => {}
            }
            i += 1;
            continue;
        };
        let line = line_at(i);
        if chars.get(after) == Some(&'{') {
            // The group up to its matching brace; its items' first segments.
            let mut level = 0;
            let mut end = after;
            while end < chars.len() {
                match chars[end] {
                    '{' => level += 1,
                    '}' => {
                        level -= 1;
                        if level == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                end += 1;
            }
            let group: String = chars[after + 1..end.min(chars.len())].iter().collect();
            found.extend(group_modules(&group).into_iter().map(|m| (line, m)));
            i = end;
        } else {
            let module = ident(after);
            if !module.is_empty() {
                found.push((line, module));
            }
            i = after;
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

/// Every upward reference in `source`, a file of module `module` that sits `depth` modules below
/// the crate root, as messages; a name at the root that is in no layer is one too.
fn violations(file: &str, module: &str, depth: usize, source: &str) -> Vec<String> {
    let Some(own) = layer_of(module) else {
        return vec![format!(
            "{file}: module `{module}` is in no layer: add it to LAYERS in tests/layers.rs and \
             to the README's layers"
        )];
    };
    named_modules(source, depth)
        .into_iter()
        .filter_map(|(line, named)| match layer_of(&named) {
            None => Some(format!(
                "{file}:{line}: `crate::{named}` is in no layer: add it to LAYERS or ROOT_NAMES \
                 in tests/layers.rs"
            )),
            Some(layer) => (layer > own).then(|| {
                format!(
                    "{file}:{line}: `{module}` (layer {own}) names `crate::{named}` (layer \
                     {layer}), a layer above it"
                )
            }),
        })
        .collect()
}

/// How many modules below the crate root each file of src/ is: by its path (`server/os.rs` is
/// 2, `server/mod.rs` 1), or, for a file included with `#[path = "…"] mod name;`, one below the
/// file that includes it.
fn depths(src: &Path, files: &[PathBuf]) -> std::collections::HashMap<PathBuf, usize> {
    let by_path = |relative: &Path| {
        let parts = relative.components().count();
        if relative.file_name().is_some_and(|f| f == "mod.rs") {
            parts - 1
        } else {
            parts
        }
    };
    let mut depths: std::collections::HashMap<PathBuf, usize> = files
        .iter()
        .map(|path| {
            let relative = path.strip_prefix(src).expect("under src").to_path_buf();
            let depth = by_path(&relative);
            (relative, depth)
        })
        .collect();
    for path in files {
        let relative = path.strip_prefix(src).expect("under src");
        let source = std::fs::read_to_string(path).expect("readable source");
        for line in source.lines() {
            let Some(rest) = line.trim().strip_prefix("#[path = \"") else {
                continue;
            };
            let Some(included) = rest.split('"').next() else {
                continue;
            };
            let dir = relative.parent().unwrap_or(Path::new(""));
            depths.insert(dir.join(included), by_path(relative) + 1);
        }
    }
    depths
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
    let depths = depths(&src, &files);
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
            depths[relative],
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
                  use crate::{\n    util,\n    schema::{Table, Column},\n    factory::Thing,\n};\n\
                  // crate::bench in a comment is not an import, nor /* in a comment\n\
                  fn f() { crate::context::current(); $crate::x(); }\n\
                  const S: &str = \"crate::bench in a string\"; use crate::{a::{b}, bench};\n\
                  use super::super::isolation::engine;\n\
                  use super::os;\n";
    let found = violations("src/backend/x.rs", "backend", 2, source);
    assert_eq!(found.len(), 6, "{found:#?}");
    assert!(found[0].contains("src/backend/x.rs:2") && found[0].contains("crate::isolation"));
    assert!(found[1].contains("src/backend/x.rs:3") && found[1].contains("crate::factory"));
    assert!(found[2].contains(":9") && found[2].contains("crate::context"));
    assert!(found[3].contains(":10") && found[3].contains("crate::a` is in no layer"));
    assert!(found[4].contains(":10") && found[4].contains("crate::bench"));
    assert!(found[5].contains(":11") && found[5].contains("crate::isolation"));
    assert!(
        violations(
            "src/bench/x.rs",
            "bench",
            2,
            "use crate::{isolation, factory};"
        )
        .is_empty()
    );
    assert_eq!(violations("src/new/x.rs", "new", 2, "").len(), 1);
    // Inside an inline module, one more `super::` reaches the root.
    let inline = "mod tests {\n    use super::super::os;\n}\nuse super::super::factory::Node;\n";
    let found = violations("src/backend/x.rs", "backend", 2, inline);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains(":4") && found[0].contains("crate::factory"));
}
