//! What the organiser calls, with the client's admin token.

use reqwest::{Method, StatusCode};
use serde::Serialize;
use uuid::Uuid;

use super::wire::*;
use super::{send, ApiResult, Client};

const CREATED: &[StatusCode] = &[StatusCode::CREATED];
const OK: &[StatusCode] = &[StatusCode::OK];
const OK_OR_ACCEPTED: &[StatusCode] = &[StatusCode::OK, StatusCode::ACCEPTED];

impl Client {
    async fn admin_get<T: serde::de::DeserializeOwned>(&self, path: &str) -> ApiResult<T> {
        send(self.admin(Method::GET, path), OK).await
    }

    async fn admin_post<B: Serialize + ?Sized, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
        ok: &[StatusCode],
    ) -> ApiResult<T> {
        // Calls without parameters send `{}`, as the pages do.
        let req = self.admin(Method::POST, path);
        send(if let Some(b) = body { req.json(b) } else { req.json(&serde_json::json!({})) }, ok).await
    }

    pub async fn admin_events(&self) -> ApiResult<Vec<AdminEvent>> {
        self.admin_get("/api/v1/admin/events").await
    }

    pub async fn create_event(&self, event: &NewEvent) -> ApiResult<AdminEvent> {
        self.admin_post("/api/v1/admin/events", Some(event), CREATED).await
    }

    pub async fn demo_reset(&self) -> ApiResult<AdminEvent> {
        self.admin_post::<(), _>("/api/v1/admin/demo/reset", None, OK).await
    }

    /// As JSON (`?format=csv` answers text: use [`Client::raw`]).
    pub async fn guests(&self, event: Uuid) -> ApiResult<Vec<Guest>> {
        self.admin_get(&format!("/api/v1/admin/events/{event}/guests")).await
    }

    pub async fn devices(&self, event: Uuid) -> ApiResult<Vec<Device>> {
        self.admin_get(&format!("/api/v1/admin/events/{event}/checkin-devices")).await
    }

    pub async fn create_device(&self, event: Uuid, name: &str) -> ApiResult<CreatedDevice> {
        let device = NewDevice { name: name.to_owned() };
        self.admin_post(&format!("/api/v1/admin/events/{event}/checkin-devices"), Some(&device), CREATED).await
    }

    pub async fn revoke_device(&self, event: Uuid, device: Uuid) -> ApiResult<()> {
        let path = format!("/api/v1/admin/events/{event}/checkin-devices/{device}");
        send(self.admin(Method::DELETE, &path), &[StatusCode::NO_CONTENT]).await
    }

    pub async fn checkin_report(&self, event: Uuid) -> ApiResult<CheckinReport> {
        self.admin_get(&format!("/api/v1/admin/events/{event}/checkins")).await
    }

    pub async fn undo_checkin(&self, event: Uuid, ticket: &str, by: Option<&str>) -> ApiResult<UndoneCheckin> {
        let undo = UndoCheckin { by: by.map(str::to_owned) };
        self.admin_post(&format!("/api/v1/admin/events/{event}/checkins/{ticket}/undo"), Some(&undo), OK).await
    }

    /// The e-mail outbox; `query` is e.g. `"?status=failed&limit=5"` or `""`.
    pub async fn outbox(&self, query: &str) -> ApiResult<Outbox> {
        self.admin_get(&format!("/api/v1/admin/mail{query}")).await
    }

    pub async fn retry_mail(&self, outbox_id: Uuid) -> ApiResult<OutboxRow> {
        self.admin_post::<(), _>(&format!("/api/v1/admin/mail/{outbox_id}/retry"), None, OK).await
    }

    /// 200 when the provider refunded at once, 202 while the refund is pending.
    pub async fn refund(&self, order: Uuid, release_seats: bool) -> ApiResult<Refund> {
        let body = RefundRequest { release_seats };
        self.admin_post(&format!("/api/v1/admin/orders/{order}/refund"), Some(&body), OK_OR_ACCEPTED).await
    }

    pub async fn retry_refund(&self, order: Uuid) -> ApiResult<Refund> {
        self.admin_post::<(), _>(&format!("/api/v1/admin/orders/{order}/refund/retry"), None, OK_OR_ACCEPTED).await
    }

    pub async fn release_seats(&self, order: Uuid) -> ApiResult<SeatsReleased> {
        self.admin_post::<(), _>(&format!("/api/v1/admin/orders/{order}/release-seats"), None, OK).await
    }

    /// `query` is e.g. `"?status=refund_failed"` or `""`.
    pub async fn refunds(&self, query: &str) -> ApiResult<Vec<RefundRow>> {
        self.admin_get(&format!("/api/v1/admin/refunds{query}")).await
    }

    pub async fn payments_audit(&self) -> ApiResult<AuditReport> {
        self.admin_get("/api/v1/admin/payments/audit").await
    }

    /// `query` is e.g. `"?since=2026-12-01T00:00:00Z"` or `""`.
    pub async fn payments_audit_of(&self, query: &str) -> ApiResult<AuditReport> {
        self.admin_get(&format!("/api/v1/admin/payments/audit{query}")).await
    }

    /// `query` is e.g. `"?event_id=…"` or `""`.
    pub async fn disputes(&self, query: &str) -> ApiResult<Vec<Dispute>> {
        self.admin_get(&format!("/api/v1/admin/disputes{query}")).await
    }
}
