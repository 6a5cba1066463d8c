//! [`AppHandler`]: the peer listener's side of the application requests other members send this
//! one: an operation for the leader (performed by [`Leader`] if this member leads, otherwise
//! answered `NotLeader`) or a formation probe.

use std::sync::Weak;
use std::time::Duration;

use kuboard_storage::StoreError;
use tokio::time::Instant;

use crate::codec;
use crate::formation::probe_reply;
use crate::leader::Leader;
use crate::member::MemberState;
use crate::member_messages::{AppRequest, AppResponse, OpError, MAX_APP_MESSAGE_BYTES};
use crate::peer::AppRequestHandler;

/// Serves other members' application requests. Holds the member weakly: the member owns the peer
/// listener that owns this handler.
pub(crate) struct AppHandler {
    pub(crate) member: Weak<MemberState>,
}

impl AppRequestHandler for AppHandler {
    async fn handle(&self, from: u64, request: Vec<u8>) -> Result<Vec<u8>, String> {
        let request: AppRequest =
            codec::decode_with_limit(&request, MAX_APP_MESSAGE_BYTES).map_err(|e| format!("bad request: {e}"))?;
        let response = match self.member.upgrade() {
            None => match request {
                AppRequest::Leader { .. } => {
                    AppResponse::Leader(Err(OpError::NotPerformed("the member is shutting down".into())))
                }
                AppRequest::Probe => return Err("the member is shutting down".into()),
            },
            Some(member) => match request {
                AppRequest::Leader { op, timeout_ms } => {
                    let kind = op.kind();
                    tracing::debug!(from, op = kind, "performing a forwarded request");
                    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
                    let response = AppResponse::Leader(Leader::new(&member).perform(op, deadline).await);
                    return encode_answer(&response, kind);
                }
                AppRequest::Probe => AppResponse::Probe(probe_reply(&member, from).await.map_err(|e| e.to_string())?),
            },
        };
        codec::encode(&response).map_err(|e| e.to_string())
    }
}

/// Encode the answer to a forwarded operation. One larger than any member reads cannot be sent;
/// the caller is then told plainly that the operation was performed (or attempted) and its answer
/// lost, never that it was refused.
fn encode_answer(response: &AppResponse, kind: &str) -> Result<Vec<u8>, String> {
    let bytes = codec::encode(response).map_err(|e| e.to_string())?;
    if bytes.len() <= MAX_APP_MESSAGE_BYTES {
        return Ok(bytes);
    }
    tracing::warn!(
        op = kind,
        bytes = bytes.len(),
        "the answer to a forwarded request is too large to send"
    );
    let lost = AppResponse::Leader(Err(OpError::Store(StoreError::Internal(format!(
        "the {kind} was performed, but its answer of {} bytes exceeds the {MAX_APP_MESSAGE_BYTES} bytes members \
         send each other; send it to the leader",
        bytes.len()
    )))));
    codec::encode(&lost).map_err(|e| e.to_string())
}
