//! What a gate calls, with its device token.

use reqwest::StatusCode;

use super::wire::*;
use super::{ApiResult, Client};

impl Client {
    pub async fn gate_state(&self, device_token: &str) -> ApiResult<GateState> {
        self.get("/api/v1/checkin", Some(device_token)).await
    }

    /// A refused scan is an error whose body is a [`CheckinRefusal`] (`ApiError::body_as`).
    pub async fn check_in(&self, device_token: &str, scan: &NewCheckin) -> ApiResult<Checkin> {
        self.post("/api/v1/checkins", Some(device_token), scan, &[StatusCode::CREATED]).await
    }

    pub async fn upload_offline(&self, device_token: &str, upload: &OfflineUpload) -> ApiResult<OfflineUploadResult> {
        self.post("/api/v1/checkins/offline", Some(device_token), upload, &[StatusCode::OK]).await
    }
}
