//! The module graph, checked: read from the sources' `crate::` and `super::`
//! paths, it has no circle, nothing in the domain imports the HTTP edge, and
//! only `main.rs` (and tests) import `startup`. `cargo test -p nts layering`
//! runs the checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file of the service crate.
pub(crate) fn source_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("the service's sources") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(env!("CARGO_MANIFEST_DIR")), &mut files);
    files
}

/// The service crate's sources: module path (`sales::holds`) → code before
/// its unit tests, without comments. Test-only files are left out.
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = source_files();
    let mut modules = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(root).expect("under the crate").with_extension("");
        let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).filter(|p| *p != "mod").collect();
        if parts.iter().any(|p| *p == "tests" || *p == "test_db") || parts == ["lib"] || parts == ["main"] {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a readable source");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: Vec<&str> = code.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
        modules.insert(parts.join("::"), code.join("\n"));
    }
    modules
}

/// The modules `module` names, each as the longest known module its paths start with.
fn imports(module: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let parent: Vec<String> =
        module.split("::").map(str::to_owned).collect::<Vec<_>>()[..module.matches("::").count()].to_vec();
    let mut found = BTreeSet::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        for (start, _) in code.match_indices(prefix) {
            let before = code[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            resolve(base.clone(), &code[start + prefix.len()..], known, &mut found);
        }
    }
    found.retain(|target| target != module && !module.starts_with(&format!("{target}::")));
    found
}

/// Follows one path (`a::b::{c, d::E}`…) from `base` as far as it names modules.
fn resolve(mut base: Vec<String>, mut rest: &str, known: &BTreeSet<String>, found: &mut BTreeSet<String>) {
    while let Some(next) = rest.strip_prefix("super::") {
        base.pop();
        rest = next;
    }
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut item) = (0, 0);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => return resolve(base.clone(), &group[item..i], known, found),
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        resolve(base.clone(), group[item..i].trim_start(), known, found);
                        item = i + 1;
                    }
                    _ => {}
                }
            }
            return;
        }
        let name: String = rest.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let candidate = [base.clone(), vec![name.clone()]].concat().join("::");
        if name.is_empty() || !known.contains(&candidate) {
            break;
        }
        base.push(name.clone());
        match rest.trim_start()[name.len()..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    if !base.is_empty() {
        found.insert(base.join("::"));
    }
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules.iter().map(|(m, code)| (m.clone(), imports(m, code, &known))).collect()
}

#[test]
fn the_module_graph_has_no_circle() {
    let graph = graph();
    assert!(graph.len() > 40, "found only {} modules", graph.len());
    assert!(graph["sales::holds"].contains("sales::seats"), "the reader misses imports: {:?}", graph["sales::holds"]);
    // Depth-first search; a module met again while still on the path closes a circle.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        circles: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|p| *p == m) {
            circles.push([&path[i..], &[m]].concat().join(" -> "));
            return;
        }
        if !done.insert(m) {
            return;
        }
        path.push(m);
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done, circles);
        }
        path.pop();
    }
    let (mut done, mut circles) = (BTreeSet::new(), Vec::new());
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done, &mut circles);
    }
    assert!(circles.is_empty(), "circles in the module graph:\n{}", circles.join("\n"));
}

#[test]
fn the_domain_never_imports_the_http_edge_and_only_main_imports_startup() {
    for (module, imports) in graph() {
        let domain = ["sales", "payments", "domain", "mail", "checkin", "admin"]
            .iter()
            .any(|d| module == *d || module.starts_with(&format!("{d}::")));
        if domain {
            assert!(!imports.iter().any(|i| i == "http" || i.starts_with("http::")), "{module} imports the HTTP edge");
        }
        assert!(!imports.contains("startup"), "{module} imports startup");
    }
}
