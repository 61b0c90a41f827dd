//! The module map has one direction (README "Where things live"): a module may use only
//! the modules below it. This reads every `crate::…` path in `src/` and fails on any that
//! points up or sideways, so an import circle cannot come back unnoticed. It is the
//! project's stand-in for `cargo modules dependencies --acyclic`, with no extra tool to
//! install: `cargo test --test layers`.

use std::fs;
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up. A module may use those of a lower rank; two
/// modules of one rank are siblings and may not use each other.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("json", 1),
    ("model", 2),
    ("read", 3),
    ("outbox", 3),
    ("store", 4),
    ("sources", 4),
    ("metrics", 5),
    ("config", 6),
    ("forward", 7),
    ("tls", 7),
    // The command line and the HTTP layer are two faces over the same services: neither
    // reaches into the other (a read both need lives in the store).
    ("http", 8),
    ("cli", 8),
];

fn rank(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line names through `crate::a…` or `crate::{a…, b…}`.
fn named_modules(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        // `$crate::` (macros) and `hooklatch::` are not this crate's own paths here.
        let before = &rest[..at];
        rest = &rest[at + "crate::".len()..];
        if before.ends_with('$') || before.ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            found.push(item);
        } else {
            found.push(rest.to_string());
        }
    }
    found
        .into_iter()
        .filter_map(|path| {
            let name: String = path
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

#[test]
fn every_module_uses_only_the_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_string())
            .unwrap_or_default();
        // The crate root and the binary sit above every module.
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(own) = rank(&top) else {
            unknown.push(format!(
                "{}: module `{top}` has no layer",
                relative.display()
            ));
            continue;
        };
        let text = fs::read_to_string(file).expect("source is readable");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for used in named_modules(code) {
                if used == top {
                    continue;
                }
                match rank(&used) {
                    Some(theirs) if theirs < own => {}
                    Some(_) => wrong.push(format!(
                        "{}:{}: `{top}` uses `{used}`, which is not below it",
                        relative.display(),
                        number + 1
                    )),
                    None => unknown.push(format!(
                        "{}:{}: `crate::{used}` names a module with no layer",
                        relative.display(),
                        number + 1
                    )),
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "give every top-level module a layer in tests/layers.rs:\n{}",
        unknown.join("\n")
    );
    assert!(
        wrong.is_empty(),
        "imports that point up or sideways:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_sees_grouped_and_plain_paths() {
    assert_eq!(named_modules("use crate::store::Store;"), ["store"]);
    assert_eq!(
        named_modules("use crate::{model::{A, B}, read::C};"),
        ["model", "read"]
    );
    assert_eq!(
        named_modules("$crate::store::migration_file!"),
        Vec::<String>::new()
    );
    assert_eq!(
        named_modules("let x = crate::json::f(); crate::error::g()"),
        ["json", "error"]
    );
}
