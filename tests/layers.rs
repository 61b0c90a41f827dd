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

/// The paths the README's "Where things live" map names, with `{a,b}` expanded.
fn mapped_paths(readme: &str) -> Vec<String> {
    let section = readme
        .split("## Where things live")
        .nth(1)
        .and_then(|s| s.split("\n```\n").nth(1))
        .expect("the README has a map in a code block under \"Where things live\"");
    let mut paths = Vec::new();
    for line in section.lines() {
        // Continuation lines of a description start with spaces, not a path.
        if line.starts_with(' ') {
            continue;
        }
        // A line names one path, or several separated by ", ".
        for word in line.split_whitespace() {
            paths.extend(expand(word.trim_end_matches(',')));
            if !word.ends_with(',') {
                break;
            }
        }
    }
    paths
}

fn expand(word: &str) -> Vec<String> {
    match (word.find('{'), word.find('}')) {
        (Some(open), Some(close)) if open < close => word[open + 1..close]
            .split(',')
            .flat_map(|part| expand(&format!("{}{part}{}", &word[..open], &word[close + 1..])))
            .collect(),
        _ => vec![word.to_string()],
    }
}

/// The map matches the tree: every path it names exists, and every file under `src`
/// is named, itself or through a folder the map names.
#[test]
fn the_readme_map_matches_the_tree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).expect("README.md");
    let named = mapped_paths(&readme);
    let missing: Vec<_> = named
        .iter()
        .filter(|p| !p.contains("NNN") && !p.contains('<') && !root.join(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "the README map names paths that do not exist: {missing:?}"
    );

    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let unmapped: Vec<_> = files
        .iter()
        .map(|f| {
            f.strip_prefix(root)
                .expect("under the root")
                .display()
                .to_string()
        })
        .filter(|f| !f.ends_with("/tests.rs"))
        .filter(|f| {
            !named
                .iter()
                .any(|p| f == p || (p.ends_with('/') && f.starts_with(p.as_str())))
        })
        .collect();
    assert!(
        unmapped.is_empty(),
        "add these files to the README's \"Where things live\" map (one line per room): {unmapped:?}"
    );
}
