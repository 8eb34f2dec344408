//! [`FrameReader`]: length-prefixed frames read from a [`TcpStream`] (raftlog's node-to-node
//! messages, the bench replicas' client protocol), each handed out whole.

use crate::{RecvBuf, TcpStream};

/// Accumulates received bytes and hands out one whole frame at a time.
pub struct FrameReader {
    buf: RecvBuf,
    pending: Vec<u8>,
    /// Where the next frame starts in `pending` (frames before it were handed out).
    at: usize,
}

impl FrameReader {
    /// `recv_capacity_bytes`: the receive buffer (one recv's most).
    pub fn new(recv_capacity_bytes: usize) -> FrameReader {
        FrameReader { buf: RecvBuf::with_capacity(recv_capacity_bytes), pending: Vec::new(), at: 0 }
    }

    /// The next whole frame (length prefix included). `frame_len` says how long the frame at
    /// the start of its bytes is: `Ok(None)` if they do not tell yet, `Err` if they cannot be a
    /// frame. `None` once the stream ended or failed, or its bytes were refused.
    pub async fn next<E>(&mut self, stream: &TcpStream, frame_len: impl Fn(&[u8]) -> Result<Option<usize>, E>) -> Option<&[u8]> {
        loop {
            match frame_len(&self.pending[self.at..]) {
                Ok(Some(len)) if self.pending.len() - self.at >= len => {
                    let frame = self.at..self.at + len;
                    self.at += len;
                    return Some(&self.pending[frame]);
                }
                Ok(_) => {}
                Err(_) => return None,
            }
            // Drop what was handed out before reading more.
            self.pending.drain(..self.at);
            self.at = 0;
            match stream.recv_into(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            self.pending.extend_from_slice(self.buf.filled());
            let n = self.buf.len();
            self.buf.consume(n);
        }
    }
}
