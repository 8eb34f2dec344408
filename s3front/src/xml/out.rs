//! The one place that writes XML: a thin layer over `quick_xml::Writer` that every body goes
//! through, so escaping, the declaration, timestamps and `encoding-type=url` are decided once.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesRef, BytesStart, BytesText, Event};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// The namespace S3 puts on the root element of its result bodies (not on `<Error>`).
pub const S3_XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// `2026-11-25T02:41:31.000Z`: what S3 writes in `LastModified`, `CreationDate`, `Initiated`.
const TIMESTAMP_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// The latest instant `time` can represent without its `large-dates` feature (9999-12-31T23:59:59.999Z).
const TIMESTAMP_MS_MAX: u64 = 253_402_300_799_999;

/// Bytes `encoding-type=url` leaves as they are: letters, digits and `-_.*/`, as S3 (and MinIO,
/// which mirrors it) does; a space becomes `+` and everything else, `~` and `+` included, `%XX`.
const URL_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'*').remove(b'/');

/// Formats unix milliseconds as S3 writes timestamps in XML. Instants past year 9999 (never
/// produced by a correct clock) are written as the last representable millisecond.
pub fn format_timestamp_ms(unix_ms: u64) -> String {
    let clamped_ms = unix_ms.min(TIMESTAMP_MS_MAX);
    let nanos = i128::from(clamped_ms) * 1_000_000;
    let datetime = match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(datetime) => datetime,
        Err(error) => panic!("timestamp {clamped_ms} ms is within the clamped range yet rejected: {error}"),
    };
    match datetime.format(TIMESTAMP_FORMAT) {
        Ok(text) => text,
        Err(error) => panic!("formatting timestamp {clamped_ms} ms failed: {error}"),
    }
}

/// Parses an S3 XML timestamp (`2026-11-25T02:41:31.000Z`, fractional seconds optional, any
/// RFC 3339 offset) into unix milliseconds; `None` if it is not one or lies before 1970.
pub fn parse_timestamp_ms(text: &str) -> Option<u64> {
    let datetime = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let unix_ms = datetime.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(unix_ms).ok()
}

/// Encodes a key or prefix for a listing requested with `encoding-type=url`. A space is `%20`:
/// AWS and MinIO write `+`, which only decoders of the form encoding (`unquote_plus`, Go's
/// `QueryUnescape`) read back as a space, while `%20` reads back right in those and in plain
/// percent-decoders alike (and is what Ceph's s3-tests expect).
pub fn url_encode_name(name: &str) -> String {
    utf8_percent_encode(name, URL_ENCODE_SET).to_string()
}

/// Characters XML 1.0 cannot carry, even escaped (S3 keys may contain them). S3 writes them as
/// numeric character references such as `&#x1;`, which strict XML 1.0 parsers reject; that is why
/// S3, and we, recommend `encoding-type=url` for such keys (botocore asks for it by default).
fn is_xml10_forbidden(ch: char) -> bool {
    matches!(ch, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
}

/// A body being written. Writing into a `Vec` cannot fail, so the methods return nothing; a
/// failure would be a bug in quick-xml and stops the process rather than send a truncated body.
pub(crate) struct XmlOut {
    writer: Writer<Vec<u8>>,
    /// Names of the open elements, to check that every `end` closes the element it should.
    open: Vec<&'static str>,
}

impl XmlOut {
    /// Starts a body with `<?xml version="1.0" encoding="UTF-8"?>` and a newline, as S3 does.
    pub(crate) fn new() -> XmlOut {
        let mut out = XmlOut { writer: Writer::new(Vec::with_capacity(512)), open: Vec::new() };
        out.event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        out.event(Event::Text(BytesText::from_escaped("\n")));
        out
    }

    /// Opens the root element with the S3 namespace.
    pub(crate) fn root(&mut self, name: &'static str) {
        assert!(self.open.is_empty());
        let start = BytesStart::new(name).with_attributes([("xmlns", S3_XMLNS)]);
        self.event(Event::Start(start));
        self.open.push(name);
    }

    /// A root element with the namespace and nothing in it: `<Name xmlns="..."/>`.
    pub(crate) fn empty_root(&mut self, name: &'static str) {
        assert!(self.open.is_empty());
        let start = BytesStart::new(name).with_attributes([("xmlns", S3_XMLNS)]);
        self.event(Event::Empty(start));
    }

    pub(crate) fn start(&mut self, name: &'static str) {
        self.event(Event::Start(BytesStart::new(name)));
        self.open.push(name);
    }

    /// Opens an element with fixed attributes (ours, never the client's).
    pub(crate) fn start_with(&mut self, name: &'static str, attributes: &[(&'static str, &'static str)]) {
        let start = BytesStart::new(name).with_attributes(attributes.iter().copied());
        self.event(Event::Start(start));
        self.open.push(name);
    }

    pub(crate) fn end(&mut self, name: &'static str) {
        let open = self.open.pop();
        assert_eq!(open, Some(name), "closing an element that is not the innermost open one");
        self.event(Event::End(BytesEnd::new(name)));
    }

    /// `<name>value</name>`, with `value` escaped.
    pub(crate) fn element(&mut self, name: &'static str, value: &str) {
        self.start(name);
        self.text(value);
        self.end(name);
    }

    /// Like [`element`](Self::element), but only when there is a value.
    pub(crate) fn element_opt(&mut self, name: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.element(name, value);
        }
    }

    /// A key, prefix or marker: URL-encoded first when the listing asked for `encoding-type=url`.
    pub(crate) fn name_element(&mut self, name: &'static str, value: &str, url_encoded: bool) {
        let value: Cow<'_, str> = if url_encoded { Cow::Owned(url_encode_name(value)) } else { Cow::Borrowed(value) };
        self.element(name, &value);
    }

    pub(crate) fn number(&mut self, name: &'static str, value: u64) {
        self.element(name, &value.to_string());
    }

    pub(crate) fn boolean(&mut self, name: &'static str, value: bool) {
        self.element(name, if value { "true" } else { "false" });
    }

    pub(crate) fn timestamp(&mut self, name: &'static str, unix_ms: u64) {
        self.element(name, &format_timestamp_ms(unix_ms));
    }

    /// An ETag as S3 writes it: in double quotes, which the escaping turns into `&quot;`. The
    /// value is stored without quotes; a quoted one here is a caller bug that would double them.
    pub(crate) fn etag(&mut self, etag: &str) {
        assert!(!etag.starts_with('"'), "ETag {etag:?} must be stored without quotes");
        self.element("ETag", &format!("\"{etag}\""));
    }

    /// Escaped text; characters XML 1.0 forbids become character references (see
    /// [`is_xml10_forbidden`]).
    pub(crate) fn text(&mut self, value: &str) {
        let mut rest = value;
        while let Some(index) = rest.find(is_xml10_forbidden) {
            let (run, tail) = rest.split_at(index);
            if !run.is_empty() {
                self.event(Event::Text(BytesText::new(run)));
            }
            let mut chars = tail.chars();
            let Some(forbidden) = chars.next() else { unreachable!("find returned an index inside the string") };
            self.event(Event::GeneralRef(BytesRef::new(format!("#x{:X}", u32::from(forbidden)))));
            rest = chars.as_str();
        }
        if !rest.is_empty() {
            self.event(Event::Text(BytesText::new(rest)));
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        assert!(self.open.is_empty(), "elements left open: {:?}", self.open);
        self.writer.into_inner()
    }

    fn event(&mut self, event: Event<'_>) {
        if let Err(error) = self.writer.write_event(event) {
            panic!("writing XML into memory failed: {error}");
        }
    }
}
