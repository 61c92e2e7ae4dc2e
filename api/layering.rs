//! The module graph, checked: read from the sources' paths (`crate::`,
//! `super::`, `self::`, and a child module's name where it is declared with
//! `mod`), it has no circle, nothing in the domain imports the HTTP edge, only
//! `main.rs` (and tests) import `startup`, and the HTTP framework and the
//! application state are named nowhere but at the edge (see
//! [`NOT_YET_AT_THE_EDGE`]). `cargo test -p nts layering` runs the checks; the
//! last tests show each check failing on a graph made to break it.

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
        modules.insert(parts.join("::"), without_tests(&text));
    }
    modules
}

/// A source without comment lines and without the modules and items marked
/// `#[cfg(test)]` (a `mod tests;` line, or a block to its closing brace).
fn without_tests(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
    let mut kept = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "#[cfg(test)]" {
            kept.push(lines[i]);
            i += 1;
            continue;
        }
        // Skip the attribute and the item under it: one line, or a block to its closing brace.
        i += 1;
        let mut depth = 0i32;
        while i < lines.len() {
            depth += lines[i].matches('{').count() as i32 - lines[i].matches('}').count() as i32;
            i += 1;
            if depth <= 0 {
                break;
            }
        }
    }
    kept.join("\n")
}

/// The modules `module` names, each as the longest known module its paths start with.
fn imports(module: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let own: Vec<String> = module.split("::").map(str::to_owned).collect();
    let parent = own[..own.len() - 1].to_vec();
    // Children declared here (`mod x;`, `pub mod x;`) are named by their bare name.
    let children = code.lines().filter_map(|l| {
        let l = l.trim_start().trim_start_matches("pub(crate) ").trim_start_matches("pub ");
        let name = l.strip_prefix("mod ")?.strip_suffix(';')?.trim();
        Some((format!("{name}::"), own.clone()))
    });
    let prefixes: Vec<(String, Vec<String>)> =
        [("crate::".to_owned(), Vec::new()), ("super::".to_owned(), parent), ("self::".to_owned(), own.clone())]
            .into_iter()
            .chain(children)
            .collect();
    let mut found = BTreeSet::new();
    for (prefix, base) in prefixes {
        // A child's bare name resolves from this module, with the name itself as the path's start.
        let keep_name = !prefix.ends_with("crate::") && !prefix.starts_with("super") && !prefix.starts_with("self");
        for (start, _) in code.match_indices(prefix.as_str()) {
            let before = code[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = if keep_name { &code[start..] } else { &code[start + prefix.len()..] };
            resolve(base.clone(), rest, known, &mut found);
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

type Graph = BTreeMap<String, BTreeSet<String>>;

fn graph_of(modules: &BTreeMap<String, String>) -> Graph {
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules.iter().map(|(m, code)| (m.clone(), imports(m, code, &known))).collect()
}

fn graph() -> Graph {
    graph_of(&modules())
}

/// Every circle a depth-first walk of `graph` meets, as `a -> b -> a`.
fn circles(graph: &Graph) -> Vec<String> {
    // A module met again while still on the path closes a circle.
    fn visit<'a>(
        m: &'a str,
        graph: &'a Graph,
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
    let (mut done, mut found) = (BTreeSet::new(), Vec::new());
    for m in graph.keys() {
        visit(m, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

/// Where the HTTP framework or the application state may be named: the edge.
fn at_the_edge(module: &str) -> bool {
    module == "http" || module.starts_with("http::") || module == "startup" || module == "state"
}

/// Modules outside `http/` that still name `actix_web` or `AppState`, as
/// today: handlers not yet moved to the edge (issue "The house, second
/// pass"). The list only shrinks: a module leaving it must be taken off, and
/// no module may join it.
const NOT_YET_AT_THE_EDGE: &[&str] = &[
    "admin",
    "admin::audit",
    "admin::demo",
    "admin::disputes",
    "admin::events",
    "admin::guests",
    "admin::refunds",
    "checkin",
    "checkin::devices",
    "checkin::door",
    "checkin::report",
    "idempotency",
    "idempotency::store",
    "mail",
    "mail::admin",
    "mail::resend",
    "payments::attempts",
    "payments::checkouts",
    "payments::orders",
    "payments::service",
    "payments::simulated_routes",
    "payments::webhook",
    "sales",
    "sales::event_pages",
    "sales::events",
    "sales::hold_batcher",
    "sales::holds",
    "sales::orders",
    "telemetry",
];

/// Modules that name the HTTP framework or the application state.
fn naming_the_framework(modules: &BTreeMap<String, String>) -> BTreeSet<String> {
    modules
        .iter()
        .filter(|(_, code)| code.contains("actix_web") || code.contains("AppState"))
        .map(|(m, _)| m.clone())
        .collect()
}

#[test]
fn the_module_graph_has_no_circle() {
    let graph = graph();
    assert!(graph.len() > 40, "found only {} modules", graph.len());
    assert!(graph["sales::holds"].contains("sales::seats"), "the reader misses imports: {:?}", graph["sales::holds"]);
    assert!(graph["config"].contains("config::mail"), "the reader misses `mod x; pub use x::Y`: {:?}", graph["config"]);
    let found = circles(&graph);
    assert!(found.is_empty(), "circles in the module graph:\n{}", found.join("\n"));
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

#[test]
fn the_framework_and_the_state_are_named_only_at_the_edge() {
    let mut naming = naming_the_framework(&modules());
    naming.remove("layering"); // its own tests name the framework in made-up sources
    let outside: Vec<&String> = naming.iter().filter(|m| !at_the_edge(m)).collect();
    let new: Vec<&&String> = outside.iter().filter(|m| !NOT_YET_AT_THE_EDGE.contains(&m.as_str())).collect();
    assert!(new.is_empty(), "outside the HTTP edge, these name actix_web or AppState: {new:?}");
    let moved: Vec<&&str> = NOT_YET_AT_THE_EDGE.iter().filter(|m| !naming.contains(**m)).collect();
    assert!(moved.is_empty(), "these no longer name the framework: take them off NOT_YET_AT_THE_EDGE: {moved:?}");
}

/// A graph of a few made-up modules, from their sources.
fn made_up(sources: &[(&str, &str)]) -> BTreeMap<String, String> {
    sources.iter().map(|(m, code)| (m.to_string(), without_tests(code))).collect()
}

#[test]
fn a_circle_through_mod_and_pub_use_is_caught() {
    // The shape of a circle that an earlier reader missed: `config` re-exports
    // its child `config::mail` (after its tests' `mod`), which imports the
    // mailer, which imports `config`.
    let modules = made_up(&[
        ("config", "#[cfg(test)]\nmod tests;\nmod mail;\npub use mail::MailSettings;\npub struct Config;"),
        ("config::mail", "pub struct MailSettings;\nfn url() { crate::mailer::smtp_url(); }"),
        ("mailer", "use crate::config::MailSettings;\npub fn smtp_url() {}"),
        ("sales", "#[cfg(test)]\nmod tests {\n    use crate::mailer;\n}\npub fn sell() {}"),
    ]);
    let graph = graph_of(&modules);
    assert_eq!(circles(&graph), ["config -> config::mail -> mailer -> config"]);
    assert!(graph["sales"].is_empty(), "a test module's imports are not the module's: {:?}", graph["sales"]);
}

#[test]
fn the_framework_named_in_a_feature_folder_is_caught() {
    let modules = made_up(&[
        ("http::routes", "use actix_web::web;"),
        ("sales::holds", "use actix_web::HttpResponse;"),
        ("payments::paid", "use crate::state::AppState;"),
        ("domain::money", "pub struct Money;\n#[cfg(test)]\nmod tests {\n    use actix_web::test;\n}"),
    ]);
    let outside: Vec<String> = naming_the_framework(&modules).into_iter().filter(|m| !at_the_edge(m)).collect();
    assert_eq!(outside, ["payments::paid", "sales::holds"]);
}
