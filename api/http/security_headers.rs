//! Headers that make browsers treat our answers safely: no MIME sniffing and
//! no referrer on every answer; on pages (everything outside `/api/` and
//! `/healthz`) a Content-Security-Policy that allows only our own origin,
//! plus the payment provider's origins when one is configured, and forbids
//! framing.

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

/// The policy of our pages, built once at startup.
pub struct SecurityHeaders {
    page_csp: HeaderValue,
    docs_csp: HeaderValue,
}

impl SecurityHeaders {
    /// `extra_origins`: origins pages may load scripts and frames from and
    /// connect to (Stripe.js: `https://js.stripe.com`, `https://api.stripe.com`).
    pub fn new(extra_origins: &[&str]) -> Self {
        SecurityHeaders {
            page_csp: HeaderValue::from_str(&content_security_policy(extra_origins, false))
                .expect("a valid header value"),
            docs_csp: HeaderValue::from_str(&content_security_policy(&[], true)).expect("a valid header value"),
        }
    }
}

/// `default-src 'self'` with framing forbidden. Swagger UI (`docs`) sets inline
/// styles and shows inline images, so its pages also allow those.
pub fn content_security_policy(extra_origins: &[&str], docs: bool) -> String {
    let extra: String = extra_origins.iter().map(|o| format!(" {o}")).collect();
    // Ticket QR codes are fetched with the buyer's secret and shown from `blob:` URLs.
    let (style, img) = if docs { ("'self' 'unsafe-inline'", "'self' data:") } else { ("'self'", "'self' data: blob:") };
    format!(
        "default-src 'self'; script-src 'self'{extra}; frame-src 'self'{extra}; connect-src 'self'{extra}; \
         style-src {style}; img-src {img}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

fn is_page(path: &str) -> bool {
    !(path.starts_with("/api/") || path == "/healthz")
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let csp = req.app_data::<web::Data<SecurityHeaders>>().and_then(|policy| {
        let path = req.path();
        is_page(path).then(|| if path.starts_with("/docs") { policy.docs_csp.clone() } else { policy.page_csp.clone() })
    });
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Some(csp) = csp {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payment_provider_origins_are_allowed_only_when_given() {
        let plain = content_security_policy(&[], false);
        assert!(plain.starts_with("default-src 'self';"));
        assert!(plain.contains("frame-ancestors 'none'"));
        assert!(!plain.contains("unsafe-inline"));
        let stripe = content_security_policy(&["https://js.stripe.com", "https://api.stripe.com"], false);
        assert!(stripe.contains("script-src 'self' https://js.stripe.com https://api.stripe.com;"));
        assert!(stripe.contains("connect-src 'self' https://js.stripe.com https://api.stripe.com;"));
        assert!(!plain.contains("stripe"));
    }
}
