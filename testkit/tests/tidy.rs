//! The layout rules of the workspace, checked on its source files: which crate may depend on
//! which, no two modules of a crate using each other in a circle, and every file opening with a
//! `//!` line that says what it is for.
//!
//! The module check reads `crate::…` and `super::…` paths (in `use` lines and in code) outside
//! comments and `#[cfg(test)] mod tests`, maps each to the deepest module that exists, and, for
//! every folder, builds the graph of its child modules: a child uses another if any file under
//! it names anything under the other. Each such graph must be acyclic.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each workspace crate's folder and the `pivitals-*` crates its `[dependencies]` may name.
/// `testkit` and `bench` are tools: nothing may depend on them outside `[dev-dependencies]`.
const CRATE_RULES: &[(&str, &[&str])] = &[
    ("common", &[]),
    ("collect", &["pivitals-common"]),
    ("exec", &["pivitals-common"]),
    (
        "agent",
        &["pivitals-common", "pivitals-collect", "pivitals-exec"],
    ),
    (
        "primary",
        &["pivitals-common", "pivitals-collect", "pivitals-exec"],
    ),
    (
        "bench",
        &["pivitals-common", "pivitals-collect", "pivitals-agent"],
    ),
    (
        "testkit",
        &[
            "pivitals-common",
            "pivitals-collect",
            "pivitals-agent",
            "pivitals-primary",
        ],
    ),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit sits in the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `pivitals-*` names in one section (`[dependencies]`) of a Cargo.toml.
fn pivitals_deps(manifest: &str, section: &str) -> BTreeSet<String> {
    let mut in_section = false;
    let mut deps = BTreeSet::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == section;
            continue;
        }
        if in_section
            && let Some(name) = line.split(['=', '.', ' ']).next()
            && name.starts_with("pivitals-")
        {
            deps.insert(name.to_owned());
        }
    }
    deps
}

#[test]
fn crates_depend_only_downwards() {
    let root = workspace();
    let members = fs::read_to_string(root.join("Cargo.toml")).expect("workspace manifest");
    let mut problems = Vec::new();
    for (dir, allowed) in CRATE_RULES {
        assert!(
            members.contains(&format!("\"{dir}\"")),
            "{dir} is not a workspace member"
        );
        let manifest = fs::read_to_string(root.join(dir).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{dir}/Cargo.toml: {e}"));
        for dep in pivitals_deps(&manifest, "[dependencies]") {
            if !allowed.contains(&dep.as_str()) {
                problems.push(format!("{dir}/Cargo.toml depends on {dep}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_dependency_check_sees_a_forbidden_dependency() {
    let manifest = "[package]\nname = \"x\"\n\n[dependencies]\npivitals-agent.workspace = true\n\
                    serde = \"1\"\n\n[dev-dependencies]\npivitals-testkit.workspace = true\n";
    let deps = pivitals_deps(manifest, "[dependencies]");
    assert_eq!(deps, BTreeSet::from(["pivitals-agent".to_owned()]));
}

#[test]
fn every_file_opens_with_a_doc_line() {
    let root = workspace();
    let mut files = Vec::new();
    for (dir, _) in CRATE_RULES {
        for sub in ["src", "tests", "examples", "benches"] {
            rust_files(&root.join(dir).join(sub), &mut files);
        }
    }
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            !fs::read_to_string(f)
                .unwrap_or_default()
                .trim_start()
                .starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` line:\n{}",
        missing.join("\n")
    );
}

type ModPath = Vec<String>;

/// The module a file under `src` defines: `a/b.rs` and `a/b/mod.rs` are `a::b`; `lib.rs` and
/// `main.rs` are the crate root.
fn module_of(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts: ModPath = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its unit tests.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths of a `use` tree body (after `crate::` or `super::`), e.g. `a::{b, c::d}` gives
/// `a::b` and `a::c::d`.
fn expand_tree(prefix: &[String], tree: &str, out: &mut Vec<ModPath>) {
    let tree = tree.trim();
    if let Some(inner) = tree.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_tree(prefix, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_tree(prefix, &inner[start..], out);
        return;
    }
    match tree.split_once("::") {
        Some((head, rest)) => {
            let mut next = prefix.to_vec();
            next.push(head.trim().to_owned());
            expand_tree(&next, rest, out);
        }
        None => {
            let name = tree.split_whitespace().next().unwrap_or_default();
            let mut path = prefix.to_vec();
            if !name.is_empty() && name != "self" && name != "*" {
                path.push(name.to_owned());
            }
            out.push(path);
        }
    }
}

/// Every path the code names after `keyword::` (`crate` or `super`), one `use` tree or one
/// expression path at a time.
fn paths_after(code: &str, keyword: &str) -> Vec<ModPath> {
    let mut out = Vec::new();
    let needle = format!("{keyword}::");
    let mut from = 0;
    while let Some(found) = code[from..].find(&needle) {
        let at = from + found;
        from = at + needle.len();
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[from..];
        let end = if rest.starts_with('{') {
            let mut depth = 0;
            rest.char_indices()
                .find(|&(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i + 1)
        } else {
            rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len())
        };
        expand_tree(&[], &rest[..end], &mut out);
    }
    out
}

/// The deepest existing module a path names.
fn resolve(modules: &BTreeSet<ModPath>, path: &[String]) -> Option<ModPath> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
}

/// Edges "module uses module" of one crate's `src`.
fn module_uses(src: &Path) -> (BTreeSet<ModPath>, BTreeSet<(ModPath, ModPath)>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<ModPath> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges = BTreeSet::new();
    for file in &files {
        let from = module_of(src, file);
        let code = code_of(&fs::read_to_string(file).unwrap_or_default());
        let parent = from[..from.len().saturating_sub(1)].to_vec();
        let targets = paths_after(&code, "crate").into_iter().chain(
            paths_after(&code, "super")
                .into_iter()
                .map(|p| parent.iter().cloned().chain(p).collect()),
        );
        for target in targets {
            if let Some(to) = resolve(&modules, &target)
                && to != from
            {
                edges.insert((from.clone(), to));
            }
        }
    }
    (modules, edges)
}

/// A circle among the children of `parent`, if there is one, as the names along it.
fn circle_under(parent: &[String], edges: &BTreeSet<(ModPath, ModPath)>) -> Option<Vec<String>> {
    let depth = parent.len();
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in edges {
        if from.len() > depth
            && to.len() > depth
            && from[..depth] == *parent
            && to[..depth] == *parent
            && from[depth] != to[depth]
        {
            graph
                .entry(from[depth].as_str())
                .or_default()
                .insert(to[depth].as_str());
        }
    }
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| *n == node) {
            let mut circle: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if !done.insert(node) {
            return None;
        }
        stack.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, stack, done) {
                return Some(circle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    let starts: Vec<&str> = graph.keys().copied().collect();
    starts
        .into_iter()
        .find_map(|start| visit(start, &graph, &mut Vec::new(), &mut done))
}

fn circles_in(src: &Path) -> Vec<String> {
    let (modules, edges) = module_uses(src);
    let parents: BTreeSet<ModPath> = modules
        .iter()
        .filter(|m| !m.is_empty())
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    parents
        .iter()
        .filter_map(|parent| {
            let circle = circle_under(parent, &edges)?;
            let place = if parent.is_empty() {
                "crate".to_owned()
            } else {
                parent.join("::")
            };
            Some(format!(
                "{}: in {place}: {}",
                src.display(),
                circle.join(" -> ")
            ))
        })
        .collect()
}

#[test]
fn no_module_circles_in_any_crate() {
    let root = workspace();
    let circles: Vec<String> = CRATE_RULES
        .iter()
        .flat_map(|(dir, _)| circles_in(&root.join(dir).join("src")))
        .collect();
    assert!(
        circles.is_empty(),
        "modules that use each other:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_circle_check_finds_a_circle_and_reads_use_trees() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("store")).unwrap();
    let write = |path: &str, text: &str| fs::write(src.join(path), text).unwrap();
    write("lib.rs", "//! x\npub mod a;\npub mod b;\npub mod store;\n");
    write("a.rs", "//! a\nuse crate::{b::{self, Thing}, store};\n");
    write(
        "b.rs",
        "//! b\n// crate::a::Nothing in a comment does not count\npub struct Thing;\n",
    );
    write("store/mod.rs", "//! s\nmod x;\nmod y;\n");
    write("store/x.rs", "//! x\nuse super::y::Y;\n");
    write(
        "store/y.rs",
        "//! y\npub struct Y;\nfn f() { super::x::g() }\n#[cfg(test)]\nmod tests {\n    use super::a::A;\n}\n",
    );
    let circles = circles_in(&src);
    assert_eq!(circles.len(), 1, "{circles:?}");
    assert!(circles[0].contains("in store: x -> y -> x"), "{circles:?}");

    write(
        "b.rs",
        "//! b\nfn f() { crate::a::f() }\npub struct Thing;\n",
    );
    let circles = circles_in(&src);
    assert_eq!(circles.len(), 2, "{circles:?}");
    assert!(circles[0].contains("in crate: a -> b -> a"), "{circles:?}");
}
