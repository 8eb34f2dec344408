//! Decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1).
//!
//! Incremental and sans-IO: feed whatever bytes arrived, get the data bytes out, call again with
//! the rest. State survives any split of the input, down to one byte at a time. Line endings must
//! be CRLF here (unlike the head, where httparse also takes a bare LF): lenient chunk framing is
//! a known request-smuggling vector, and every real client sends CRLF.

use super::error::HttpError;

/// Longest chunk-size line, extensions included, CRLF not. Extensions are skipped, never buffered; the
/// limit bounds how long a client can keep the decoder inside one line.
pub const CHUNK_LINE_BYTES_MAX: usize = 4096;
/// Most bytes of trailer section (all trailer lines with their CRLFs) before the final CRLF.
pub const TRAILER_BYTES_MAX: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size; `digits` counted so an empty size is caught.
    Size {
        size: u64,
        digits: usize,
    },
    /// Whitespace after the size: only more whitespace or ';' may follow (RFC 9112 BWS).
    SizeSpace {
        size: u64,
    },
    /// Inside `;ext=val` up to the CR.
    Extension {
        size: u64,
    },
    /// Saw the CR ending the size line.
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerLineStart,
    /// Inside a trailer field line (ignored).
    TrailerLine,
    TrailerLf,
    /// Saw the CR of the final empty line.
    EndLf,
    Done,
    /// An error was returned; the connection is to be closed.
    Failed,
}

/// Incremental chunked-body decoder; see the module documentation.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    body_bytes_max: u64,
    body_bytes: u64,
    /// Bytes consumed so far, for error messages.
    offset_bytes: u64,
    line_bytes: usize,
    trailer_bytes: usize,
}

impl ChunkedDecoder {
    /// A decoder that refuses (413) a body decoding to more than `body_bytes_max` bytes.
    pub fn new(body_bytes_max: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            body_bytes_max,
            body_bytes: 0,
            offset_bytes: 0,
            line_bytes: 0,
            trailer_bytes: 0,
        }
    }

    /// Whether the last chunk and trailer section have been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Data bytes decoded so far.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Decodes from `input`, appending data bytes to `out`. Returns how many input bytes were
    /// consumed: all of them unless the body ended inside `input`, in which case the rest belongs
    /// to the next request. Once done, consumes nothing. Must not be called again after an error.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HttpError> {
        self.decode_with(input, |data| out.extend_from_slice(data))
    }

    /// Like [`decode`](Self::decode) but hands each run of data bytes to `on_data` as a slice of
    /// `input`, without copying: the caller can hash or write them straight from its read buffer.
    pub fn decode_with(&mut self, input: &[u8], mut on_data: impl FnMut(&[u8])) -> Result<usize, HttpError> {
        assert!(self.state != State::Failed, "ChunkedDecoder used after it returned an error");
        let mut position = 0;
        while position < input.len() && self.state != State::Done {
            let step = match self.state {
                State::Data { remaining } => self.data(&input[position..], remaining, &mut on_data),
                _ => self.byte(input[position]).map(|()| 1),
            };
            match step {
                Ok(consumed) => {
                    assert!(consumed > 0);
                    position += consumed;
                    self.offset_bytes += consumed as u64;
                }
                Err(error) => {
                    self.state = State::Failed;
                    return Err(error);
                }
            }
        }
        assert!(position <= input.len());
        Ok(position)
    }

    fn data(&mut self, input: &[u8], remaining: u64, on_data: &mut impl FnMut(&[u8])) -> Result<usize, HttpError> {
        assert!(remaining > 0);
        let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(input.len());
        on_data(&input[..take]);
        self.body_bytes += take as u64;
        let remaining = remaining - take as u64;
        self.state = if remaining == 0 { State::DataCr } else { State::Data { remaining } };
        Ok(take)
    }

    fn fail(&self, reason: &'static str) -> HttpError {
        HttpError::Chunked { reason, offset_bytes: self.offset_bytes }
    }

    /// One byte of framing (everything but chunk data).
    fn byte(&mut self, b: u8) -> Result<(), HttpError> {
        self.state = match self.state {
            State::Size { .. } | State::SizeSpace { .. } | State::Extension { .. } => self.size_line(b)?,
            State::SizeLf { size } => self.size_line_end(b, size)?,
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size { size: 0, digits: 0 },
            State::DataCr | State::DataLf => return Err(self.fail("chunk data not followed by CRLF")),
            State::TrailerLineStart | State::TrailerLine | State::TrailerLf | State::EndLf => self.trailer(b)?,
            State::Data { .. } | State::Done | State::Failed => unreachable!("handled by decode_with"),
        };
        Ok(())
    }

    fn size_line(&mut self, b: u8) -> Result<State, HttpError> {
        self.line_bytes += usize::from(b != b'\r');
        if self.line_bytes > CHUNK_LINE_BYTES_MAX {
            return Err(self.fail("chunk-size line too long"));
        }
        let next = match (self.state, b) {
            (State::Size { size, digits }, _) if b.is_ascii_hexdigit() => {
                if size > u64::MAX >> 4 {
                    return Err(self.fail("chunk size overflows 64 bits"));
                }
                let digit = (b as char).to_digit(16).expect("checked: hex digit");
                State::Size { size: (size << 4) | u64::from(digit), digits: digits + 1 }
            }
            (State::Size { digits: 0, .. }, _) => return Err(self.fail("chunk size has no hex digits")),
            (State::Size { size, .. } | State::SizeSpace { size }, b' ' | b'\t') => State::SizeSpace { size },
            (State::Size { size, .. } | State::SizeSpace { size } | State::Extension { size }, b';') => State::Extension { size },
            (State::Size { size, .. } | State::Extension { size }, b'\r') => State::SizeLf { size },
            (State::Extension { size }, _) if b == b'\t' || !b.is_ascii_control() => State::Extension { size },
            _ => return Err(self.fail("invalid byte in chunk-size line")),
        };
        Ok(next)
    }

    fn size_line_end(&mut self, b: u8, size: u64) -> Result<State, HttpError> {
        if b != b'\n' {
            return Err(self.fail("chunk-size line not ended by CRLF"));
        }
        self.line_bytes = 0;
        if size == 0 {
            return Ok(State::TrailerLineStart);
        }
        if size > self.body_bytes_max - self.body_bytes {
            return Err(HttpError::BodyTooLarge { limit_bytes: self.body_bytes_max });
        }
        Ok(State::Data { remaining: size })
    }

    /// Trailer fields are read and dropped: S3 checksums in trailers travel inside aws-chunked,
    /// not HTTP trailers. Only their size and line structure are checked.
    fn trailer(&mut self, b: u8) -> Result<State, HttpError> {
        let next = match (self.state, b) {
            (State::TrailerLineStart, b'\r') => State::EndLf,
            (State::EndLf, b'\n') => State::Done,
            (State::TrailerLine, b'\r') => State::TrailerLf,
            (State::TrailerLf, b'\n') => State::TrailerLineStart,
            (State::TrailerLineStart | State::TrailerLine, _) if b == b'\t' || !b.is_ascii_control() => State::TrailerLine,
            _ => return Err(self.fail("invalid byte or line ending in trailer section")),
        };
        if next != State::Done {
            self.trailer_bytes += 1;
            if self.trailer_bytes > TRAILER_BYTES_MAX {
                return Err(self.fail("trailer section too large"));
            }
        }
        Ok(next)
    }
}
