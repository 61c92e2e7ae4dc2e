//! The scope of a key: the route's template, its UUIDs in canonical form, and
//! the credential; and the hash that tells one request from another.

use actix_web::http::header;
use actix_web::HttpRequest;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The scope of a request's key, and its route template.
pub fn scope(req: &HttpRequest) -> (String, String) {
    let (template, ids) = route(req.path());
    let credential = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
    let mut scope = Sha256::new().chain_update(&template);
    for id in &ids {
        scope.update([0]);
        scope.update(id.as_bytes());
    }
    (hex::encode(scope.chain_update([0]).chain_update(credential).finalize()), template)
}

/// What makes two requests with one key the same request: query, content type and body.
pub fn request_hash(req: &HttpRequest, body: &[u8]) -> Vec<u8> {
    Sha256::new()
        .chain_update(req.query_string())
        .chain_update([0])
        .chain_update(req.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes()).unwrap_or_default())
        .chain_update([0])
        .chain_update(body)
        .finalize()
        .to_vec()
}

/// The route of a path: its template (every UUID segment as `{id}`) and its
/// UUIDs in canonical form, in order.
fn route(path: &str) -> (String, Vec<Uuid>) {
    let mut template = String::with_capacity(path.len());
    let mut ids = Vec::new();
    for segment in path.split('/').skip(1) {
        template.push('/');
        match Uuid::parse_str(&percent_decoded(segment)) {
            Ok(id) => {
                template.push_str("{id}");
                ids.push(id);
            }
            Err(_) => template.push_str(segment),
        }
    }
    (template, ids)
}

/// `%41` → `A`, as the router decodes a path before matching it (other bytes stay).
fn percent_decoded(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                if b.is_ascii_alphanumeric() || b == b'-' {
                    out.push(b as char);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_canonical_whatever_the_case_or_encoding_of_their_ids() {
        let id = "0b9c6a5e-2f5d-4c4e-9a53-6f1f6f3e2d10";
        let (template, ids) = route(&format!("/api/v1/events/{id}/holds"));
        assert_eq!(template, "/api/v1/events/{id}/holds");
        assert_eq!(ids, [Uuid::parse_str(id).unwrap()]);
        assert_eq!(route(&format!("/api/v1/events/{}/holds", id.to_uppercase())), (template.clone(), ids.clone()));
        assert_eq!(route(&format!("/api/v1/events/{}/holds", id.replace('-', ""))), (template.clone(), ids.clone()));
        assert_eq!(route(&format!("/api/v1/events/%30{}/holds", &id[1..])), (template, ids));
        assert_eq!(route("/api/v1/admin/events").0, "/api/v1/admin/events");
        assert_eq!(route("/api/v1/x/%E2%82%AC%4").0, "/api/v1/x/%E2%82%AC%4");
    }
}
