//! The baseline: the smallest tokio-tungstenite room-broadcast server we could write
//! (no auth, no persistence, no JSON). `GET /?room=NAME` joins a room; every text frame
//! a client sends is broadcast as-is to every socket of its room, the sender included.
//! Each socket gets a bounded queue (overflow drops the frame) and a writer that
//! drains it and flushes once per batch; the frame bytes are shared, not copied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Frames queued per socket before new ones are dropped.
const QUEUE: usize = 1024;
/// Frames written before one flush.
const MAX_BATCH: usize = 128;

type Room = Arc<RwLock<HashMap<u64, mpsc::Sender<Message>>>>;

#[derive(Default)]
struct Rooms {
    rooms: RwLock<HashMap<String, Room>>,
    next_id: AtomicU64,
}

impl Rooms {
    fn room(&self, name: &str) -> Room {
        if let Some(room) = self
            .rooms
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return room.clone();
        }
        self.rooms
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

/// Small buffers, like the gateway's defaults (4 KiB read, 8 KiB write gather).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(8192)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let rooms = Arc::new(Rooms::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let _ = handle(stream, rooms).await;
        });
    }
}

fn room_of(uri: &str) -> String {
    uri.split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("room=")))
        .unwrap_or("default")
        .to_string()
}

// tungstenite's handshake callback must return its (large) `ErrorResponse`.
#[allow(clippy::result_large_err)]
async fn handle(
    stream: TcpStream,
    rooms: Arc<Rooms>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let _ = stream.set_nodelay(true);
    let mut name = String::new();
    let callback = |req: &Request, resp: Response| {
        name = room_of(&req.uri().to_string());
        Ok(resp)
    };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config()))
        .await?;
    let room = rooms.room(&name);
    let id = rooms.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    room.write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, tx);
    let (mut sink, mut source) = ws.split();
    let writer = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(16);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            for message in batch.drain(..) {
                if sink.feed(message).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = source.next().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                for peer in room.read().unwrap_or_else(|p| p.into_inner()).values() {
                    let _ = peer.try_send(message.clone());
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    room.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
    writer.abort();
    Ok(())
}
