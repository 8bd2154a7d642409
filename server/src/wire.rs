//! The wire format agents and clients speak over TCP.
//!
//! A frame is `[length: u32 big-endian][version: u8][payload]`, where `length` counts the
//! version byte and the payload, and the payload is one [`Wire`] message in JSON (serde's
//! externally tagged form: `{"Request":{"id":1,"request":{"Read":"/a"}}}`). This is wire
//! version [`VERSION`]. A frame of another version is refused with a message naming both
//! versions; a frame longer than [`MAX_FRAME`] is refused before it is read.
//!
//! Every connection starts with a [`Wire::Hello`] from the side that dialled: the cluster id
//! it expects and, from an agent, its id. The listening agent answers a wrong cluster with
//! [`Wire::Refused`] and closes. After that, agents send [`Wire::Raft`] messages one way (each
//! agent dials each peer it sends to), clients send [`Wire::Request`]s and get
//! [`Wire::Response`]s with the same id, in any order.

use serde::{Deserialize, Serialize};
use tenure_core::agent::{Request, Response};
use tenure_core::raft::{Message, NodeId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The wire version this build speaks.
pub const VERSION: u8 = 1;
/// The longest frame accepted (64 MiB: a snapshot of a large store fits).
pub const MAX_FRAME: u32 = 64 << 20;

/// One message on a connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Wire {
    /// The first frame of a connection, from the side that dialled.
    Hello {
        cluster: String,
        /// The dialling agent's id; `None` for a client.
        agent: Option<NodeId>,
    },
    /// The listener will not talk: why. The connection then closes.
    Refused(String),
    Raft(Message),
    Request {
        id: u64,
        request: Request,
    },
    Response {
        id: u64,
        response: Response,
    },
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("a frame of {0} bytes is longer than the {MAX_FRAME} allowed")]
    TooLong(u32),
    #[error("an empty frame (no version byte)")]
    Empty,
    #[error("a frame of wire version {0}; this build speaks version {VERSION}")]
    Version(u8),
    #[error("a frame that does not decode: {0}")]
    Decode(serde_json::Error),
}

/// Writes `msg` as one frame.
pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, msg: &Wire) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg).expect("wire messages serialize");
    let len = u32::try_from(body.len() + 1)
        .ok()
        .filter(|l| *l <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::other("a message too long for one frame"))?;
    let mut buf = Vec::with_capacity(5 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.push(VERSION);
    buf.extend_from_slice(&body);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Reads one frame; `Ok(None)` at a clean end of the stream.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Wire>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await?;
    if body[0] != VERSION {
        return Err(FrameError::Version(body[0]));
    }
    serde_json::from_slice(&body[1..])
        .map(Some)
        .map_err(FrameError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn frames_round_trip_and_bad_frames_are_named() {
        rt().block_on(async {
            let msgs = [
                Wire::Hello {
                    cluster: "c".into(),
                    agent: Some(2),
                },
                Wire::Request {
                    id: 7,
                    request: Request::Health,
                },
            ];
            let mut buf = Vec::new();
            for m in &msgs {
                write(&mut buf, m).await.unwrap();
            }
            let mut r = &buf[..];
            for m in &msgs {
                assert_eq!(read(&mut r).await.unwrap().as_ref(), Some(m));
            }
            assert!(read(&mut r).await.unwrap().is_none());
            // A newer version.
            let mut newer = buf.clone();
            newer[4] = VERSION + 1;
            let e = read(&mut &newer[..]).await.unwrap_err();
            assert!(e.to_string().contains("version 2"), "{e}");
            // Too long, garbage, empty.
            let e = read(&mut &[0xff, 0xff, 0xff, 0xff][..]).await.unwrap_err();
            assert!(matches!(e, FrameError::TooLong(_)), "{e}");
            let e = read(&mut &[0, 0, 0, 3, VERSION, b'{', b'x'][..])
                .await
                .unwrap_err();
            assert!(matches!(e, FrameError::Decode(_)), "{e}");
            let e = read(&mut &[0, 0, 0, 0][..]).await.unwrap_err();
            assert!(matches!(e, FrameError::Empty), "{e}");
            // Cut short in the middle of a frame.
            assert!(read(&mut &buf[..6]).await.is_err());
        });
    }
}
