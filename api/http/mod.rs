//! The HTTP edge: everything between a request and a handler, and between an
//! error and its answer. It may import the domain and [`state`](crate::state);
//! nothing in the domain imports it.

pub mod auth;
pub mod body_limit;
pub mod cors;
pub mod error;
pub mod fallback;
pub mod idempotency;
pub mod openapi;
pub mod ops;
pub mod rate_limit;
pub mod scrape;
pub mod security_headers;

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `.rs` file under `dir`, with its text.
    fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }

    /// The code of a file before its unit tests, without comments.
    fn code(text: &str) -> String {
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
        text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn the_domain_never_imports_the_http_edge_and_only_main_imports_startup() {
        let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("api");
        let mut files = Vec::new();
        for domain in ["sales", "payments", "domain", "mail", "checkin", "admin"] {
            sources(&api.join(domain), &mut files);
        }
        for (path, text) in &files {
            assert!(!code(text).contains("crate::http"), "{path} imports the HTTP edge");
        }
        let mut all = Vec::new();
        sources(&api, &mut all);
        for (path, text) in &all {
            let imports_startup = code(text).contains("crate::startup") || code(text).contains("nts::startup");
            // Tests start whole applications.
            let allowed = ["main.rs", "lib.rs", "startup.rs", "tests.rs"].iter().any(|f| path.ends_with(f))
                || path.contains("torture");
            assert!(!imports_startup || allowed, "{path} imports startup");
        }
    }
}
