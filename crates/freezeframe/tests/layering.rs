//! The layering `lib.rs` documents is the real one: no module imports from
//! a layer above its own. The order is read from the layer table in
//! `lib.rs` itself, so the documentation and this test cannot drift apart;
//! `ARCHITECTURE.md` must state the same order.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The layers, lowest first, from the `//! | \`name\` |` rows of lib.rs.
fn documented_order() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .filter_map(|l| l.split_once('`').map(|(name, _)| name.to_owned()))
        .collect()
}

/// The top-level modules `lib.rs` declares (`contract` is test support,
/// above every layer).
fn declared_modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub(crate) mod "))
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect()
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

/// Every layer a line names through `crate::<layer>` (also inside
/// `crate::{a::X, b::Y}` groups).
fn named_layers(line: &str, layers: &[String]) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let group = rest.strip_prefix('{');
        let names: Vec<&str> = match group {
            Some(g) => g
                .split('}')
                .next()
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim())
                .collect(),
            None => vec![rest],
        };
        for n in names {
            let head: String = n
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if layers.contains(&head) {
                found.push(head);
            }
        }
    }
    found
}

/// `(file, line, imported layer)` for every import from a layer above.
fn violations(order: &[String]) -> Vec<String> {
    let mut bad = Vec::new();
    for (rank, layer) in order.iter().enumerate() {
        let mut files = Vec::new();
        rust_files(&src().join(layer), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                for used in named_layers(line, order) {
                    let r = order.iter().position(|l| *l == used).unwrap();
                    if r > rank {
                        bad.push(format!(
                            "{}:{}: `{layer}` imports from `{used}`, a layer above it: {}",
                            f.strip_prefix(src()).unwrap().display(),
                            n + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    bad
}

#[test]
fn the_documented_order_covers_every_module() {
    let order = documented_order();
    assert!(order.len() >= 8, "no layer table in lib.rs: {order:?}");
    let documented: BTreeSet<String> = order.iter().cloned().collect();
    assert_eq!(
        documented,
        declared_modules(),
        "lib.rs's table and its modules"
    );
    let arch = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ARCHITECTURE.md"),
    )
    .unwrap();
    let stated = order.join(" < ");
    assert!(
        arch.contains(&stated),
        "ARCHITECTURE.md must state the layer order `{stated}`"
    );
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let bad = violations(&documented_order());
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn the_checker_sees_plain_and_grouped_imports() {
    let order: Vec<String> = ["sys", "config", "engine"].map(String::from).to_vec();
    assert_eq!(
        named_layers("use crate::engine::Toolbox;", &order),
        ["engine"]
    );
    assert_eq!(
        named_layers("use crate::{config::Config, engine::plan};", &order),
        ["config", "engine"]
    );
    assert_eq!(
        named_layers("let x = crate::sys::host_name();", &order),
        ["sys"]
    );
    assert!(named_layers("// see crate::engine", &order).is_empty());
    assert!(named_layers("use crate::enginex::Y;", &order).is_empty());
}
