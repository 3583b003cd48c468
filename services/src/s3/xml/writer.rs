//! A minimal XML writer: enough for S3 response bodies, which are elements
//! and text only, with the S3 namespace on the root.

use alloc::string::ToString;
use alloc::vec::Vec;

/// The namespace of every S3 response root except `<Error>`.
pub const S3_XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

const PROLOG: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Writes a document: the prolog on creation, then elements in order.
/// Element names are `&'static str` because they come from the S3 schema,
/// never from clients; only text is escaped.
#[derive(Debug)]
pub struct XmlWriter {
    out: Vec<u8>,
    open: Vec<&'static str>,
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlWriter {
    pub fn new() -> Self {
        Self { out: PROLOG.to_vec(), open: Vec::new() }
    }

    /// Opens `name` with no attributes.
    pub fn start(&mut self, name: &'static str) {
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
        self.open.push(name);
    }

    /// Opens the root element of an S3 response, in the S3 namespace.
    pub fn start_root(&mut self, name: &'static str) {
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b" xmlns=\"");
        self.out.extend_from_slice(S3_XMLNS.as_bytes());
        self.out.extend_from_slice(b"\">");
        self.open.push(name);
    }

    /// Closes the innermost open element.
    pub fn end(&mut self) {
        if let Some(name) = self.open.pop() {
            self.out.extend_from_slice(b"</");
            self.out.extend_from_slice(name.as_bytes());
            self.out.push(b'>');
        }
    }

    pub fn text(&mut self, text: &str) {
        escape_into(text, &mut self.out);
    }

    /// `<name>text</name>`.
    pub fn element(&mut self, name: &'static str, text: &str) {
        self.start(name);
        self.text(text);
        self.end();
    }

    /// `<name>text</name>` if there is a text, nothing otherwise.
    pub fn optional(&mut self, name: &'static str, text: Option<&str>) {
        if let Some(text) = text {
            self.element(name, text);
        }
    }

    pub fn number(&mut self, name: &'static str, value: u64) {
        self.element(name, &value.to_string());
    }

    pub fn boolean(&mut self, name: &'static str, value: bool) {
        self.element(name, if value { "true" } else { "false" });
    }

    /// Closes what is still open and returns the document.
    pub fn finish(mut self) -> Vec<u8> {
        while !self.open.is_empty() {
            self.end();
        }
        self.out
    }
}

/// Escapes text and attribute values. Control characters, which XML 1.0
/// cannot carry at all, become character references as S3 writes them;
/// clients that cannot read those ask for `encoding-type=url` instead.
pub fn escape_into(text: &str, out: &mut Vec<u8>) {
    let mut plain_from = 0;
    for (i, c) in text.char_indices() {
        let escaped: &[u8] = match c {
            '&' => b"&amp;",
            '<' => b"&lt;",
            '>' => b"&gt;",
            '"' => b"&quot;",
            '\'' => b"&apos;",
            // Kept as a reference so that parsers' line-end normalization
            // does not turn it into \n.
            '\r' => b"&#13;",
            c if c.is_control() && c != '\t' && c != '\n' => {
                out.extend_from_slice(&text.as_bytes()[plain_from..i]);
                out.extend_from_slice(alloc::format!("&#{};", u32::from(c)).as_bytes());
                plain_from = i + c.len_utf8();
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&text.as_bytes()[plain_from..i]);
        out.extend_from_slice(escaped);
        plain_from = i + c.len_utf8();
    }
    out.extend_from_slice(&text.as_bytes()[plain_from..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn writes_nested_elements() {
        let mut xml = XmlWriter::new();
        xml.start_root("Root");
        xml.start("A");
        xml.element("B", "x");
        xml.number("N", 42);
        xml.boolean("T", true);
        xml.optional("Absent", None);
        let out = String::from_utf8(xml.finish()).unwrap();
        assert_eq!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Root xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <A><B>x</B><N>42</N><T>true</T></A></Root>"
        );
    }

    #[test]
    fn escapes_text() {
        let mut out = Vec::new();
        escape_into("a&b<c>d\"e'f\r\u{1}\tü\u{7f}", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "a&amp;b&lt;c&gt;d&quot;e&apos;f&#13;&#1;\tü&#127;");
    }
}
