//! When no route matched: is it a path of the API (as the OpenAPI document
//! lists them) asked with a method it does not answer? Then 405 with `Allow`;
//! else a JSON 404 for the API, and the friendly page for a person.

use std::sync::OnceLock;

use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::http::openapi::ApiDoc;
use crate::state::AppState;

/// A documented path as segments (`None` stands for a `{parameter}`) with its methods.
struct Route {
    segments: Vec<Option<String>>,
    methods: Vec<&'static str>,
}

fn routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        ApiDoc::openapi()
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let segments = path
                    .split('/')
                    .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned()))
                    .collect();
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, present)| present.then_some(method))
                .collect();
                Route { segments, methods }
            })
            .collect()
    })
}

/// The methods a documented path answers, if `path` is one.
fn allowed_methods(path: &str) -> Option<&'static [&'static str]> {
    let parts: Vec<&str> = path.split('/').collect();
    routes()
        .iter()
        .find(|r| {
            r.segments.len() == parts.len()
                && r.segments.iter().zip(&parts).all(|(s, p)| s.as_deref().map_or(!p.is_empty(), |s| s == *p))
        })
        .map(|r| r.methods.as_slice())
}

/// The 405 answer, when the path is documented and the method is not one of its.
pub fn method_not_allowed(req: &HttpRequest) -> Option<ApiError> {
    let methods = allowed_methods(req.path())?;
    (!methods.contains(&req.method().as_str()))
        .then(|| ApiError::MethodNotAllowed { method: req.method().to_string(), allow: methods.join(", ") })
}

/// 405 for a known path asked with the wrong method; else JSON 404 for the API,
/// the friendly page for a person who mistyped an address.
pub async fn not_found(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Some(wrong_method) = method_not_allowed(&req) {
        return Err(wrong_method);
    }
    if !req.path().starts_with("/api/") {
        if let Ok(page) = std::fs::read(state.static_dir.join("404.html")) {
            return Ok(HttpResponse::NotFound().content_type("text/html; charset=utf-8").body(page));
        }
    }
    Err(ApiError::NotFound("no such resource"))
}

#[cfg(test)]
mod tests {
    use super::allowed_methods;

    #[test]
    fn documented_paths_are_recognised_with_their_methods() {
        assert_eq!(allowed_methods("/api/v1/events"), Some(&["GET"][..]));
        assert_eq!(allowed_methods("/api/v1/holds/abc"), Some(&["GET", "DELETE"][..]));
        assert_eq!(allowed_methods("/api/v1/holds/abc/checkout"), Some(&["POST"][..]));
        assert_eq!(allowed_methods("/api/v1/holds/"), None);
        assert_eq!(allowed_methods("/api/v1/nothing"), None);
    }
}
