//! The API's JSON as the wire carries it (openapi.yaml's schemas), written
//! down independently of the service's own types. Every struct refuses
//! unknown fields and every nullable field must be present, so comparing two
//! values compares the whole answers.

use serde::{Deserialize, Deserializer};

mod admin;
mod checkin;
mod sales;

pub use admin::*;
pub use checkin::*;
pub use sales::*;

/// A field always sent, possibly `null` (serde alone would also accept it missing).
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

/// A field left out when there is nothing to say: when sent, never `null`.
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

pub(crate) mod rfc3339_nullable {
    use serde::{Deserialize, Deserializer};
    use time::OffsetDateTime;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
        #[derive(Deserialize)]
        struct At(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);
        Ok(Option::<At>::deserialize(d)?.map(|At(t)| t))
    }
}
