//! chunked: the `aws-chunked` content encoding of streaming SigV4 uploads, decoded incrementally.
//!
//! Wire format (each line ends with CRLF):
//! ```text
//! <hex size>;chunk-signature=<64 hex>   (signed modes; the unsigned-trailer mode has just <hex size>)
//! <size bytes of data>
//! ... more chunks ...
//! 0;chunk-signature=<64 hex>            (the final, empty chunk)
//! x-amz-checksum-crc32c:<base64>        (trailer modes, when x-amz-trailer declared it)
//! x-amz-trailer-signature:<64 hex>      (signed-trailer mode)
//! <empty line>
//! ```
//! Sans-IO: [`AwsChunkedDecoder::feed`] takes whatever bytes arrived and streams the decoded data
//! to a sink as it goes, without buffering whole chunks. A chunk's signature can only be checked
//! once its last byte arrived, and the trailer checksum only at the end, so **the caller must not
//! make data durable or visible before [`AwsChunkedDecoder::is_done`] returns true**; an error at
//! any point means the whole body must be discarded.

mod encode;
mod signer;

pub use encode::encode_aws_chunked;
pub use signer::ChunkSigner;

use crate::checksum::{ChecksumAlgorithm, Checksummer};
use crate::sigv4::SignedRequest;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::fmt;

/// Longest chunk header line (size, extension) without CRLF; a signed one is about 85 bytes.
pub const CHUNK_SIZE_LINE_BYTES_MAX: usize = 256;
/// Largest chunk accepted; SDKs send 64 KiB to 8 MiB.
pub const CHUNK_SIZE_MAX_BYTES: u64 = 16 << 20;
/// Largest trailer section (all trailer lines together).
pub const TRAILER_BYTES_MAX: usize = 4096;
const _: () = assert!(CHUNK_SIZE_LINE_BYTES_MAX <= TRAILER_BYTES_MAX);

const CHUNK_SIGNATURE_EXTENSION: &str = "chunk-signature=";
const TRAILER_SIGNATURE_NAME: &str = "x-amz-trailer-signature";

/// Which aws-chunked flavour the body uses (see `sigv4::PayloadMode::chunked_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedMode {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: chunk signatures, no trailer.
    Signed,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: chunk signatures and a signed trailer.
    SignedTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: no signatures; a checksum trailer.
    UnsignedTrailer,
}

impl ChunkedMode {
    fn is_signed(self) -> bool {
        matches!(self, Self::Signed | Self::SignedTrailer)
    }
}

/// Why a body was refused. Chunks are numbered from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkError {
    Malformed { chunk_number: u64, message: String },
    ChunkTooLarge { chunk_number: u64, size_bytes: u64 },
    SignatureMismatch { chunk_number: u64 },
    TrailerSignatureMismatch,
    LengthMismatch { declared_bytes: u64, received_bytes: u64 },
    ChecksumMismatch { algorithm: ChecksumAlgorithm, declared_base64: String, computed_base64: String },
}

impl ChunkError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed { .. } | Self::ChunkTooLarge { .. } => "InvalidRequest",
            Self::SignatureMismatch { .. } | Self::TrailerSignatureMismatch => "SignatureDoesNotMatch",
            Self::LengthMismatch { .. } => "IncompleteBody",
            Self::ChecksumMismatch { .. } => "BadDigest",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::SignatureMismatch { .. } | Self::TrailerSignatureMismatch => 403,
            _ => 400,
        }
    }
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { chunk_number, message } => write!(f, "chunk {chunk_number}: {message}"),
            Self::ChunkTooLarge { chunk_number, size_bytes } => {
                write!(f, "chunk {chunk_number}: size {size_bytes} bytes is over the {CHUNK_SIZE_MAX_BYTES} allowed")
            }
            Self::SignatureMismatch { chunk_number } => write!(f, "chunk {chunk_number}: signature mismatch"),
            Self::TrailerSignatureMismatch => write!(f, "trailer: signature mismatch"),
            Self::LengthMismatch { declared_bytes, received_bytes } => {
                write!(f, "x-amz-decoded-content-length declared {declared_bytes} bytes but the chunks carry {received_bytes} or more")
            }
            Self::ChecksumMismatch { algorithm, declared_base64, computed_base64 } => {
                write!(f, "trailer: {} {declared_base64} does not match the computed {computed_base64}", algorithm.header_name())
            }
        }
    }
}

impl std::error::Error for ChunkError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Collecting a chunk header line into `line`.
    SizeLine,
    /// Streaming `remaining` data bytes to the sink.
    Data {
        remaining_bytes: u64,
    },
    /// Expecting the CRLF after a chunk's data; `matched` bytes of it seen.
    DataEnd {
        matched: usize,
    },
    /// Collecting a trailer line into `line`; the empty line ends the body.
    TrailerLine,
    Done,
}

/// Incremental aws-chunked decoder; see the module notes for the durability rule.
pub struct AwsChunkedDecoder {
    mode: ChunkedMode,
    signer: Option<ChunkSigner>,
    trailer_algorithm: Option<ChecksumAlgorithm>,
    decoded_content_length: Option<u64>,
    state: State,
    failed: Option<ChunkError>,
    line: Vec<u8>,
    /// 1-based number of the chunk being read.
    chunk_number: u64,
    chunk_signature: [u8; 32],
    chunk_hasher: Sha256,
    checksummer: Option<Checksummer>,
    decoded_bytes: u64,
    trailer_bytes: usize,
    /// SHA-256 of the trailer lines as signed: `name:value\n` each.
    trailer_hasher: Sha256,
    trailer_checksum: Option<String>,
    trailer_signature_seen: bool,
}

impl AwsChunkedDecoder {
    /// `signer` is required by the signed modes and refused by the unsigned one; `trailer` is the
    /// checksum declared by `x-amz-trailer` (trailer modes only). Both are caller invariants.
    pub fn new(
        mode: ChunkedMode,
        signer: Option<ChunkSigner>,
        trailer: Option<ChecksumAlgorithm>,
        decoded_content_length: Option<u64>,
    ) -> Self {
        assert_eq!(signer.is_some(), mode.is_signed(), "a signer goes with exactly the signed modes");
        assert!(trailer.is_none() || mode != ChunkedMode::Signed, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD has no trailer");
        AwsChunkedDecoder {
            mode,
            signer,
            trailer_algorithm: trailer,
            decoded_content_length,
            state: State::SizeLine,
            failed: None,
            line: Vec::with_capacity(CHUNK_SIZE_LINE_BYTES_MAX),
            chunk_number: 1,
            chunk_signature: [0; 32],
            chunk_hasher: Sha256::new(),
            checksummer: trailer.map(Checksummer::new),
            decoded_bytes: 0,
            trailer_bytes: 0,
            trailer_hasher: Sha256::new(),
            trailer_checksum: None,
            trailer_signature_seen: false,
        }
    }

    /// The decoder for an authenticated request's body; `None` if the body is not aws-chunked.
    pub fn for_request(request: &SignedRequest) -> Option<Self> {
        let mode = request.payload.chunked_mode()?;
        Some(Self::new(mode, request.chunk_signer(), request.trailer, request.decoded_content_length))
    }

    /// True once the whole body, trailer included, was received and verified.
    pub fn is_done(&self) -> bool {
        self.state == State::Done && self.failed.is_none()
    }

    /// Decoded data bytes delivered so far.
    pub fn decoded_bytes(&self) -> u64 {
        self.decoded_bytes
    }

    /// The verified trailer checksum (algorithm, base64), once the trailer was read.
    pub fn trailer_checksum(&self) -> Option<(ChecksumAlgorithm, &str)> {
        Some((self.trailer_algorithm?, self.trailer_checksum.as_deref()?))
    }

    /// Decodes as much of `input` as possible, handing data to `sink`; returns the bytes consumed,
    /// which is less than `input.len()` only once the body is done (the rest is not part of it).
    /// After an error every later call returns the same error.
    pub fn feed(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<usize, ChunkError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.feed_inner(input, sink);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    fn feed_inner(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<usize, ChunkError> {
        let mut consumed = 0;
        while consumed < input.len() {
            let rest = &input[consumed..];
            consumed += match self.state {
                State::Done => break,
                State::SizeLine | State::TrailerLine => self.take_line(rest)?,
                State::Data { remaining_bytes } => self.take_data(rest, remaining_bytes, sink)?,
                State::DataEnd { matched } => self.take_data_end(rest, matched)?,
            };
        }
        Ok(consumed)
    }

    fn malformed(&self, message: impl Into<String>) -> ChunkError {
        ChunkError::Malformed { chunk_number: self.chunk_number, message: message.into() }
    }

    /// Appends input up to and including '\n' to `line`, then handles the complete line.
    fn take_line(&mut self, rest: &[u8]) -> Result<usize, ChunkError> {
        let newline = rest.iter().position(|&b| b == b'\n');
        let taken = newline.map_or(rest.len(), |i| i + 1);
        let line_max = match self.state {
            State::TrailerLine => TRAILER_BYTES_MAX - self.trailer_bytes,
            _ => CHUNK_SIZE_LINE_BYTES_MAX,
        };
        // The +2 leaves room for the CRLF, which the limits do not count.
        if self.line.len() + taken > line_max + 2 {
            return Err(self.malformed(format!("header or trailer line longer than {line_max} bytes")));
        }
        self.line.extend_from_slice(&rest[..taken]);
        if newline.is_some() {
            let line = std::mem::take(&mut self.line);
            let text = line.strip_suffix(b"\r\n").ok_or_else(|| self.malformed("line ends in a bare LF, not CRLF"))?;
            match self.state {
                State::SizeLine => self.on_size_line(text)?,
                _ => self.on_trailer_line(text)?,
            }
            self.line = line;
            self.line.clear();
        }
        Ok(taken)
    }

    fn take_data(&mut self, rest: &[u8], remaining_bytes: u64, sink: &mut dyn FnMut(&[u8])) -> Result<usize, ChunkError> {
        let n = usize::try_from(remaining_bytes).unwrap_or(usize::MAX).min(rest.len());
        let data = &rest[..n];
        if self.mode.is_signed() {
            self.chunk_hasher.update(data);
        }
        if let Some(checksummer) = &mut self.checksummer {
            checksummer.update(data);
        }
        self.decoded_bytes += n as u64;
        sink(data);
        let remaining_bytes = remaining_bytes - n as u64;
        self.state = State::Data { remaining_bytes };
        if remaining_bytes == 0 {
            self.verify_chunk_signature()?;
            self.state = State::DataEnd { matched: 0 };
        }
        Ok(n)
    }

    fn take_data_end(&mut self, rest: &[u8], matched: usize) -> Result<usize, ChunkError> {
        if rest[0] != b"\r\n"[matched] {
            return Err(self.malformed("chunk data is not followed by CRLF (size and data disagree)"));
        }
        self.state = if matched == 0 { State::DataEnd { matched: 1 } } else { State::SizeLine };
        if self.state == State::SizeLine {
            self.chunk_number += 1;
        }
        Ok(1)
    }

    fn verify_chunk_signature(&mut self) -> Result<(), ChunkError> {
        let chunk_sha256: [u8; 32] = std::mem::take(&mut self.chunk_hasher).finalize().into();
        let Some(signer) = &mut self.signer else { return Ok(()) };
        if signer.verify_chunk(&chunk_sha256, &self.chunk_signature) {
            Ok(())
        } else {
            Err(ChunkError::SignatureMismatch { chunk_number: self.chunk_number })
        }
    }

    /// `<hex size>[;chunk-signature=<hex>]`; the unsigned mode ignores any extension.
    fn on_size_line(&mut self, text: &[u8]) -> Result<(), ChunkError> {
        let (size_hex, extension) = match text.iter().position(|&b| b == b';') {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        let size_bytes = parse_hex_size(size_hex).ok_or_else(|| self.malformed("chunk size is not 1 to 16 hex digits"))?;
        if self.mode.is_signed() {
            self.chunk_signature = self.parse_chunk_signature(extension)?;
        }
        if size_bytes > CHUNK_SIZE_MAX_BYTES {
            return Err(ChunkError::ChunkTooLarge { chunk_number: self.chunk_number, size_bytes });
        }
        let total_bytes = self.decoded_bytes + size_bytes;
        if let Some(declared_bytes) = self.decoded_content_length.filter(|&declared| total_bytes > declared) {
            return Err(ChunkError::LengthMismatch { declared_bytes, received_bytes: total_bytes });
        }
        if size_bytes > 0 {
            self.state = State::Data { remaining_bytes: size_bytes };
            return Ok(());
        }
        // The empty final chunk is signed over sha256("") like any other, then come the trailers.
        self.verify_chunk_signature()?;
        self.state = State::TrailerLine;
        Ok(())
    }

    fn parse_chunk_signature(&self, extension: Option<&[u8]>) -> Result<[u8; 32], ChunkError> {
        let value = extension
            .and_then(|e| e.strip_prefix(CHUNK_SIGNATURE_EXTENSION.as_bytes()))
            .ok_or_else(|| self.malformed("missing ;chunk-signature= in a signed payload"))?;
        let mut signature = [0u8; 32];
        if value.len() != 64 || hex::decode_to_slice(value, &mut signature).is_err() {
            return Err(self.malformed("chunk-signature is not 64 hex digits"));
        }
        Ok(signature)
    }

    fn on_trailer_line(&mut self, text: &[u8]) -> Result<(), ChunkError> {
        self.trailer_bytes += text.len() + 2;
        if text.is_empty() {
            return self.finish();
        }
        if self.mode == ChunkedMode::Signed {
            return Err(self.malformed("trailer after the final chunk of a payload declared without trailers"));
        }
        if self.trailer_signature_seen {
            return Err(self.malformed("trailer line after x-amz-trailer-signature"));
        }
        let text = std::str::from_utf8(text).map_err(|_| self.malformed("trailer line is not UTF-8"))?;
        let (name, value) = text.split_once(':').ok_or_else(|| self.malformed("trailer line is not name:value"))?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        if name == TRAILER_SIGNATURE_NAME {
            return self.on_trailer_signature(value);
        }
        self.on_trailer_checksum(&name, value)?;
        self.trailer_hasher.update(format!("{name}:{value}\n").as_bytes());
        Ok(())
    }

    fn on_trailer_checksum(&mut self, name: &str, value: &str) -> Result<(), ChunkError> {
        let algorithm = ChecksumAlgorithm::from_header_name(name).filter(|&a| Some(a) == self.trailer_algorithm).ok_or_else(|| {
            let declared = self.trailer_algorithm.map_or("nothing", ChecksumAlgorithm::header_name);
            self.malformed(format!("trailer {name:?} was not declared by x-amz-trailer (it declared {declared})"))
        })?;
        if self.trailer_checksum.is_some() {
            return Err(self.malformed(format!("trailer {name} appears twice")));
        }
        let declared =
            algorithm.decode_value(value).ok_or_else(|| self.malformed(format!("trailer {name} is not a base64 {algorithm:?} value")))?;
        let computed = self.checksummer.take().expect("a checksummer exists whenever a trailer is declared").finish_bytes();
        if declared != computed {
            let encode = |raw: &[u8]| base64::engine::general_purpose::STANDARD.encode(raw);
            return Err(ChunkError::ChecksumMismatch { algorithm, declared_base64: encode(&declared), computed_base64: encode(&computed) });
        }
        self.trailer_checksum = Some(value.to_string());
        Ok(())
    }

    fn on_trailer_signature(&mut self, value: &str) -> Result<(), ChunkError> {
        let Some(signer) = &mut self.signer.as_mut().filter(|_| self.mode == ChunkedMode::SignedTrailer) else {
            return Err(self.malformed("x-amz-trailer-signature in a payload whose trailer is unsigned"));
        };
        let mut signature = [0u8; 32];
        if value.len() != 64 || hex::decode_to_slice(value, &mut signature).is_err() {
            return Err(self.malformed("x-amz-trailer-signature is not 64 hex digits"));
        }
        let trailer_sha256: [u8; 32] = std::mem::take(&mut self.trailer_hasher).finalize().into();
        if !signer.verify_trailer(&trailer_sha256, &signature) {
            return Err(ChunkError::TrailerSignatureMismatch);
        }
        self.trailer_signature_seen = true;
        Ok(())
    }

    /// The empty line after the trailers: everything promised must have arrived.
    fn finish(&mut self) -> Result<(), ChunkError> {
        if let Some(declared_bytes) = self.decoded_content_length.filter(|&d| d != self.decoded_bytes) {
            return Err(ChunkError::LengthMismatch { declared_bytes, received_bytes: self.decoded_bytes });
        }
        if let Some(algorithm) = self.trailer_algorithm.filter(|_| self.trailer_checksum.is_none()) {
            return Err(self.malformed(format!("trailer {} declared by x-amz-trailer is missing", algorithm.header_name())));
        }
        if self.mode == ChunkedMode::SignedTrailer && !self.trailer_signature_seen {
            return Err(self.malformed("x-amz-trailer-signature is missing"));
        }
        self.state = State::Done;
        Ok(())
    }
}

fn parse_hex_size(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}
