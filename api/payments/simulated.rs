//! A payment provider that moves no money. It keeps its own records
//! (`simulated_intents`) and honours idempotency keys like a real provider, and
//! can misbehave on purpose: decline, lose responses, answer slowly.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::gateway::{
    GatewayError, Intent, IntentRequest, IntentStatus, ListedIntent, PaymentGateway, PaymentMethod, Provider,
    ProviderWindow, Refund, RefundStatus,
};
use crate::config::SimulatedFaults;
use crate::domain::secret::random_token;

pub struct SimulatedGateway {
    pool: PgPool,
    faults: SimulatedFaults,
}

struct Row {
    id: String,
    status: String,
    amount_minor: i64,
    currency: String,
    refunded: bool,
    order_id: Uuid,
    payment_id: Uuid,
}

impl From<Row> for Intent {
    fn from(r: Row) -> Self {
        let status = match r.status.as_str() {
            "requires_confirmation" => IntentStatus::Open,
            "processing" => IntentStatus::Processing,
            "succeeded" => IntentStatus::Succeeded,
            "declined" => IntentStatus::Failed { code: "card_declined".into() },
            _ => IntentStatus::Canceled,
        };
        Intent {
            provider_ref: r.id,
            status,
            amount_minor: r.amount_minor,
            currency: r.currency,
            refunded: r.refunded,
            client_secret: None,
            order_id: Some(r.order_id),
            payment_id: Some(r.payment_id),
        }
    }
}

impl SimulatedGateway {
    pub fn new(pool: PgPool, faults: SimulatedFaults) -> Self {
        Self { pool, faults }
    }

    async fn before_call(&self) {
        if self.faults.roll(self.faults.slow_rate) {
            tokio::time::sleep(self.faults.slow_delay).await;
        }
    }

    /// The provider did the work; maybe the answer never reaches us.
    fn deliver(&self, intent: Intent) -> Result<Intent, GatewayError> {
        if self.faults.roll(self.faults.lost_response_rate) {
            return Err(GatewayError::Unknown("simulated lost response".into()));
        }
        Ok(intent)
    }

    async fn fetch(&self, provider_ref: &str) -> Result<Intent, GatewayError> {
        sqlx::query_as!(
            Row,
            r#"SELECT id, status, amount_minor, currency AS "currency!", refunded, order_id, payment_id
               FROM simulated_intents WHERE id = $1"#,
            provider_ref
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        .map(Intent::from)
        .ok_or_else(|| missing(provider_ref))
    }

    async fn by_key(&self, idempotency_key: &str) -> Result<Row, GatewayError> {
        sqlx::query_as!(
            Row,
            r#"SELECT id, status, amount_minor, currency AS "currency!", refunded, order_id, payment_id
               FROM simulated_intents WHERE idempotency_key = $1"#,
            idempotency_key
        )
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)
    }
}

/// The one refund a simulated intent can have: all of it, at once.
fn refund_of(intent: &Intent) -> Refund {
    Refund {
        provider_ref: format!("sim_re_{}", intent.provider_ref.trim_start_matches("sim_pi_")),
        status: RefundStatus::Succeeded,
        payment_ref: Some(intent.provider_ref.clone()),
        failure_reason: None,
        amount: intent.amount_minor,
        amount_minor: intent.amount_minor,
        currency: intent.currency.clone(),
        key: None,
    }
}

fn missing(provider_ref: &str) -> GatewayError {
    GatewayError::Refused { code: "resource_missing".into(), message: format!("no intent {provider_ref}") }
}

fn method_unsupported() -> GatewayError {
    GatewayError::Refused {
        code: "payment_method_unsupported".into(),
        message: "the simulated provider takes an outcome, not a payment method".into(),
    }
}

fn unavailable(e: sqlx::Error) -> GatewayError {
    GatewayError::Unknown(storage_failed(&e))
}

fn storage_failed(e: &sqlx::Error) -> String {
    format!("simulated provider storage: {e}")
}

#[async_trait]
impl PaymentGateway for SimulatedGateway {
    fn provider(&self) -> Provider {
        Provider::Simulated
    }

    async fn create_intent(&self, req: &IntentRequest) -> Result<Intent, GatewayError> {
        let mut answers = self.create_intents(std::slice::from_ref(req)).await;
        answers.pop().expect("one answer per request")
    }

    /// One statement for all of them: each new intent, or the one its key
    /// created before.
    async fn create_intents(&self, reqs: &[IntentRequest]) -> Vec<Result<Intent, GatewayError>> {
        self.before_call().await;
        let sendable: Vec<&IntentRequest> = reqs.iter().filter(|r| r.payment_method.is_none()).collect();
        let ids: Vec<String> = sendable.iter().map(|_| format!("sim_pi_{}", random_token(12))).collect();
        let keys: Vec<&str> = sendable.iter().map(|r| r.idempotency_key.as_str()).collect();
        let order_ids: Vec<Uuid> = sendable.iter().map(|r| r.order_id).collect();
        let payment_ids: Vec<Uuid> = sendable.iter().map(|r| r.payment_id).collect();
        let amounts: Vec<i64> = sendable.iter().map(|r| r.amount.minor()).collect();
        let currencies: Vec<String> = sendable.iter().map(|r| r.amount.currency().as_str().to_owned()).collect();
        // An intent that a concurrent creation under the same key committed
        // after this statement's snapshot is in neither half: read again below.
        let rows = sqlx::query!(
            r#"WITH req AS (
                   SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::int8[], $6::text[])
                                 AS r(id, idempotency_key, order_id, payment_id, amount_minor, currency)
               ), ins AS (
                   INSERT INTO simulated_intents (id, idempotency_key, order_id, payment_id, amount_minor, currency,
                                                  status)
                   SELECT id, idempotency_key, order_id, payment_id, amount_minor, currency, 'requires_confirmation'
                   FROM req
                   ON CONFLICT (idempotency_key) DO NOTHING
                   RETURNING id, idempotency_key, status, amount_minor, currency, refunded, order_id, payment_id
               )
               SELECT id AS "id!", idempotency_key AS "idempotency_key!", status AS "status!",
                      amount_minor AS "amount_minor!", currency AS "currency!", refunded AS "refunded!",
                      order_id AS "order_id!", payment_id AS "payment_id!"
               FROM ins
               UNION ALL
               SELECT s.id, s.idempotency_key, s.status, s.amount_minor, s.currency, s.refunded, s.order_id,
                      s.payment_id
               FROM simulated_intents s JOIN req ON req.idempotency_key = s.idempotency_key
               WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.idempotency_key = s.idempotency_key)"#,
            &ids,
            &keys as &[&str],
            &order_ids,
            &payment_ids,
            &amounts,
            &currencies,
        )
        .fetch_all(&self.pool)
        .await;
        let mut found: HashMap<String, Row> = match rows {
            Ok(rows) => rows
                .into_iter()
                .map(|r| {
                    let row = Row {
                        id: r.id,
                        status: r.status,
                        amount_minor: r.amount_minor,
                        currency: r.currency,
                        refunded: r.refunded,
                        order_id: r.order_id,
                        payment_id: r.payment_id,
                    };
                    (r.idempotency_key, row)
                })
                .collect(),
            Err(e) => {
                let detail = storage_failed(&e);
                return reqs.iter().map(|_| Err(GatewayError::Unknown(detail.clone()))).collect();
            }
        };
        let mut answers = Vec::with_capacity(reqs.len());
        for req in reqs {
            if req.payment_method.is_some() {
                answers.push(Err(method_unsupported()));
                continue;
            }
            let row = match found.remove(&req.idempotency_key) {
                Some(row) => Ok(row),
                None => self.by_key(&req.idempotency_key).await,
            };
            answers.push(row.and_then(|row| self.deliver(row.into())));
        }
        answers
    }

    async fn confirm(&self, provider_ref: &str, _key: &str, method: &PaymentMethod) -> Result<Intent, GatewayError> {
        self.before_call().await;
        let succeed = match method {
            PaymentMethod::Simulated { succeed } => *succeed && !self.faults.roll(self.faults.decline_rate),
            PaymentMethod::Provider(_) => return Err(method_unsupported()),
        };
        let outcome = if succeed { "succeeded" } else { "declined" };
        // One statement on every purchase's path: the intent as confirmed now,
        // or as it was if it was not awaiting confirmation. Still awaiting it
        // after that means a concurrent change won the row after this
        // statement's snapshot: read what it left.
        let row = sqlx::query_as!(
            Row,
            r#"WITH upd AS (
                   UPDATE simulated_intents SET status = $2, updated_at = now()
                   WHERE id = $1 AND status = 'requires_confirmation'
                   RETURNING id, status, amount_minor, currency, refunded, order_id, payment_id
               )
               SELECT id AS "id!", status AS "status!", amount_minor AS "amount_minor!", currency AS "currency!",
                      refunded AS "refunded!", order_id AS "order_id!", payment_id AS "payment_id!"
               FROM upd
               UNION ALL
               SELECT id, status, amount_minor, currency, refunded, order_id, payment_id
               FROM simulated_intents WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM upd)"#,
            provider_ref,
            outcome
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| missing(provider_ref))?;
        if row.status == "requires_confirmation" {
            let now = self.fetch(provider_ref).await?;
            return self.deliver(now);
        }
        self.deliver(row.into())
    }

    async fn retrieve(&self, provider_ref: &str) -> Result<Intent, GatewayError> {
        self.before_call().await;
        let intent = self.fetch(provider_ref).await?;
        self.deliver(intent)
    }

    async fn cancel(&self, provider_ref: &str, _key: &str) -> Result<Intent, GatewayError> {
        self.before_call().await;
        sqlx::query!(
            "UPDATE simulated_intents SET status = 'canceled', updated_at = now()
             WHERE id = $1 AND status IN ('requires_confirmation', 'processing')",
            provider_ref
        )
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        let intent = self.fetch(provider_ref).await?;
        self.deliver(intent)
    }

    async fn refund(&self, provider_ref: &str, _key: &str) -> Result<Refund, GatewayError> {
        self.before_call().await;
        sqlx::query!(
            "UPDATE simulated_intents SET refunded = TRUE, updated_at = now()
             WHERE id = $1 AND status = 'succeeded' AND NOT refunded",
            provider_ref
        )
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        let intent = self.fetch(provider_ref).await?;
        if !intent.refunded {
            return Err(GatewayError::Refused {
                code: "charge_not_refundable".into(),
                message: format!("intent {provider_ref} has not succeeded"),
            });
        }
        if self.faults.roll(self.faults.lost_response_rate) {
            return Err(GatewayError::Unknown("simulated lost response".into()));
        }
        Ok(refund_of(&intent))
    }

    /// Simulated refunds succeed at once.
    async fn retrieve_refund(&self, refund_ref: &str) -> Result<Refund, GatewayError> {
        self.before_call().await;
        let intent = self.fetch(&format!("sim_pi_{}", refund_ref.trim_start_matches("sim_re_"))).await?;
        if !intent.refunded {
            return Err(GatewayError::Refused {
                code: "resource_missing".into(),
                message: format!("no refund {refund_ref}"),
            });
        }
        Ok(refund_of(&intent))
    }

    async fn find_refund(&self, provider_ref: &str) -> Result<Option<Refund>, GatewayError> {
        let intent = self.fetch(provider_ref).await?;
        Ok(intent.refunded.then(|| refund_of(&intent)))
    }

    /// Every simulated intent: they share nts's database, so none predates it.
    async fn list_intents(&self, _since: Option<OffsetDateTime>) -> Result<Vec<Intent>, GatewayError> {
        let rows = sqlx::query_as!(
            Row,
            r#"SELECT id, status, amount_minor, currency AS "currency!", refunded, order_id, payment_id
               FROM simulated_intents ORDER BY created_at, id"#
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(rows.into_iter().map(Intent::from).collect())
    }

    async fn refunds_of(&self, provider_ref: &str) -> Result<Vec<Refund>, GatewayError> {
        let intent = self.fetch(provider_ref).await?;
        Ok(intent.refunded.then(|| refund_of(&intent)).into_iter().collect())
    }

    /// Amounts are kept in nts's minor units here: the simulated provider's units.
    async fn list_window(&self, since: OffsetDateTime, until: OffsetDateTime) -> Result<ProviderWindow, GatewayError> {
        let rows = sqlx::query!(
            r#"SELECT id, status, amount_minor, currency AS "currency!", refunded, order_id, payment_id, created_at
               FROM simulated_intents WHERE created_at BETWEEN $1 AND $2 ORDER BY created_at, id"#,
            since,
            until
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let intents: Vec<ListedIntent> = rows
            .into_iter()
            .map(|r| {
                let created = r.created_at;
                let row = Row {
                    id: r.id,
                    status: r.status,
                    amount_minor: r.amount_minor,
                    currency: r.currency,
                    refunded: r.refunded,
                    order_id: r.order_id,
                    payment_id: r.payment_id,
                };
                let intent = Intent::from(row);
                ListedIntent { raw_amount: intent.amount_minor, intent, created }
            })
            .collect();
        Ok(ProviderWindow {
            refunds: intents.iter().filter(|i| i.intent.refunded).map(|i| refund_of(&i.intent)).collect(),
            intents,
        })
    }
}

#[cfg(test)]
mod tests;
