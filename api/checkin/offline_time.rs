//! When an offline gate says it let a holder in. The time comes from the
//! device's clock, so it is only believed within the device's life: not before
//! the device existed, not after the organiser revoked it, and not later than
//! now give or take a phone clock running a little fast.

use time::{Duration, OffsetDateTime};

use super::devices::UploadingDevice;

/// How far ahead of the server's clock a device's clock may run.
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// A device's time of an offline scan, within the device's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineTime(OffsetDateTime);

/// Why an offline scan's time is not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadTime {
    /// Before the device was created, or later than now plus [`CLOCK_SKEW`].
    OutOfRange,
    /// At or after the device's revocation: it was no longer the organiser's gate.
    AfterRevocation,
}

impl OfflineTime {
    /// `at` as the `device` said, checked against its life and the server's clock `now`.
    pub fn check(at: OffsetDateTime, device: &UploadingDevice, now: OffsetDateTime) -> Result<Self, BadTime> {
        if at < device.created_at || at > now + CLOCK_SKEW {
            return Err(BadTime::OutOfRange);
        }
        if device.revoked_at.is_some_and(|revoked| at >= revoked) {
            return Err(BadTime::AfterRevocation);
        }
        Ok(OfflineTime(at))
    }

    pub fn at(self) -> OffsetDateTime {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::checkin::devices::Device;

    fn device(revoked_at: Option<OffsetDateTime>) -> UploadingDevice {
        UploadingDevice {
            device: Device { id: Uuid::nil(), name: "Gate".into(), event_id: Uuid::nil() },
            created_at: datetime!(2026-12-01 18:00 UTC),
            revoked_at,
        }
    }

    #[test]
    fn a_time_is_believed_only_within_the_devices_life() {
        let now = datetime!(2026-12-01 20:00 UTC);
        let live = device(None);
        let check = |at, d: &UploadingDevice| OfflineTime::check(at, d, now);
        assert_eq!(check(datetime!(2026-12-01 18:00 UTC), &live).map(OfflineTime::at), Ok(live.created_at));
        assert!(check(datetime!(2026-12-01 19:59 UTC), &live).is_ok());
        assert!(check(now + CLOCK_SKEW, &live).is_ok());
        assert_eq!(check(now + CLOCK_SKEW + Duration::seconds(1), &live), Err(BadTime::OutOfRange));
        assert_eq!(check(datetime!(2026-12-01 17:59:59 UTC), &live), Err(BadTime::OutOfRange));
        assert_eq!(check(datetime!(2999-01-01 0:00 UTC), &live), Err(BadTime::OutOfRange));

        let revoked = device(Some(datetime!(2026-12-01 19:00 UTC)));
        assert!(check(datetime!(2026-12-01 18:59:59 UTC), &revoked).is_ok());
        assert_eq!(check(datetime!(2026-12-01 19:00 UTC), &revoked), Err(BadTime::AfterRevocation));
        assert_eq!(check(datetime!(2026-12-01 19:30 UTC), &revoked), Err(BadTime::AfterRevocation));
        assert_eq!(check(datetime!(2026-12-01 17:00 UTC), &revoked), Err(BadTime::OutOfRange));
    }
}
