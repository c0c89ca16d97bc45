//! `GET /MAAS/r/stream`: server-sent events for live pages. Each status or
//! power change the caller may see is one `machine` event whose data is
//! `{"system_id", "hostname", "status", "status_name", "power_state"}`;
//! the page then fetches the rows it shows. A subscriber that fell behind
//! gets a `resync` event (it reloads what it shows). A comment line every
//! 15 seconds keeps proxies from closing an idle stream.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;

use super::Ctx;
use crate::changes::NodeChange;

const KEEPALIVE: Duration = Duration::from_secs(15);

/// Whether a user may see a change: the API's rule for machines (admins
/// everything, others unowned machines and their own).
fn visible(user: &maas_store::User, change: &NodeChange) -> bool {
    user.is_superuser || change.owner_id.is_none_or(|owner| owner == user.id)
}

fn event(change: &NodeChange) -> Bytes {
    let data = serde_json::json!({
        "system_id": change.system_id,
        "hostname": change.hostname,
        "status": change.status.number(),
        "status_name": change.status.label(),
        "power_state": change.power_state.as_str(),
    });
    Bytes::from(format!("event: machine\ndata: {data}\n\n"))
}

pub fn events(ctx: &Ctx) -> Response {
    let mut receiver = ctx.region.changes.subscribe();
    let user = ctx.user.clone();
    let (sender, outgoing) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        // Tell the page the stream is open, so it can tell "live" from "not yet".
        if sender
            .send(Ok(Bytes::from_static(
                b"retry: 3000\nevent: ready\ndata: {}\n\n",
            )))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let next = tokio::time::timeout(KEEPALIVE, receiver.recv()).await;
            let chunk = match next {
                Err(_) => Bytes::from_static(b": keepalive\n\n"),
                Ok(Ok(change)) if visible(&user, &change) => event(&change),
                Ok(Ok(_)) => continue,
                Ok(Err(RecvError::Lagged(missed))) => {
                    tracing::debug!(missed, "dashboard stream lagged");
                    Bytes::from_static(b"event: resync\ndata: {}\n\n")
                }
                Ok(Err(RecvError::Closed)) => return,
            };
            if sender.send(Ok(chunk)).await.is_err() {
                // The page went away.
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(outgoing, |mut outgoing| async move {
        outgoing.recv().await.map(|item| (item, outgoing))
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
