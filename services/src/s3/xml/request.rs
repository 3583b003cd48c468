//! Parsers for the XML bodies of S3 requests. The document is read into a
//! small element tree (namespaces and prefixes dropped, entities and CDATA
//! resolved), then the fields are picked by name, so whitespace, element
//! order and unknown elements do not matter, as with S3.
//!
//! A document type declaration is refused outright: S3 bodies never carry
//! one, and refusing it rules out entity-expansion attacks.

use alloc::string::String;
use alloc::vec::Vec;

use super::response::{Checksums, VersioningStatus};
use crate::s3::error::S3ErrorCode;

/// Larger request bodies are refused before parsing. The biggest legitimate
/// one, a DeleteObjects of 1000 keys of 1024 bytes, stays well below.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// S3's limit on keys per DeleteObjects request.
pub const MAX_DELETE_OBJECTS: usize = 1000;

/// S3's limit on parts per multipart upload.
pub const MAX_PARTS: usize = 10_000;

/// Nesting deeper than any S3 body: bounds the tree (and dropping it).
const MAX_DEPTH: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XmlError {
    TooLarge,
    /// Not well-formed XML (or a DTD).
    Syntax,
    UnexpectedRoot,
    MissingElement(&'static str),
    InvalidValue(&'static str),
    /// No `Part` or `Object` at all.
    Empty,
    /// More parts or objects than S3 accepts.
    TooManyEntries,
}

impl From<XmlError> for S3ErrorCode {
    fn from(error: XmlError) -> Self {
        match error {
            XmlError::TooLarge => S3ErrorCode::MaxMessageLengthExceeded,
            _ => S3ErrorCode::MalformedXML,
        }
    }
}

/// An element: its local name, its text (character data of its own, not of
/// its children) and its child elements.
#[derive(Debug, Default)]
struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn children<'e>(&'e self, name: &'e str) -> impl Iterator<Item = &'e Element> + 'e {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn required(&self, name: &'static str) -> Result<&Element, XmlError> {
        self.child(name).ok_or(XmlError::MissingElement(name))
    }

    /// A child's text without surrounding whitespace (not for keys, whose
    /// spaces are significant).
    fn trimmed(&self, name: &str) -> Option<String> {
        self.child(name).map(|c| String::from(c.text.trim()))
    }
}

fn parse_document(body: &[u8], root: &str) -> Result<Element, XmlError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(XmlError::TooLarge);
    }
    let text = core::str::from_utf8(body).map_err(|_| XmlError::Syntax)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // (prefix, local name) of each open element, to match end tags.
    let mut open: Vec<(&str, Element)> = Vec::new();
    let mut document = None;
    for token in xmlparser::Tokenizer::from(text) {
        match token.map_err(|_| XmlError::Syntax)? {
            xmlparser::Token::Declaration { .. }
            | xmlparser::Token::ProcessingInstruction { .. }
            | xmlparser::Token::Comment { .. }
            | xmlparser::Token::Attribute { .. } => {}
            xmlparser::Token::DtdStart { .. }
            | xmlparser::Token::EmptyDtd { .. }
            | xmlparser::Token::EntityDeclaration { .. }
            | xmlparser::Token::DtdEnd { .. } => return Err(XmlError::Syntax),
            xmlparser::Token::ElementStart { prefix, local, .. } => {
                if document.is_some() || open.len() >= MAX_DEPTH {
                    return Err(XmlError::Syntax);
                }
                open.push((prefix.as_str(), Element { name: String::from(local.as_str()), ..Element::default() }));
            }
            xmlparser::Token::ElementEnd { end, .. } => {
                let closed = match end {
                    xmlparser::ElementEnd::Open => continue,
                    xmlparser::ElementEnd::Empty => open.pop(),
                    xmlparser::ElementEnd::Close(prefix, local) => match open.pop() {
                        Some((p, e)) if p == prefix.as_str() && e.name == local.as_str() => Some((p, e)),
                        _ => return Err(XmlError::Syntax),
                    },
                };
                let (_, element) = closed.ok_or(XmlError::Syntax)?;
                match open.last_mut() {
                    Some((_, parent)) => parent.children.push(element),
                    None => document = Some(element),
                }
            }
            xmlparser::Token::Text { text } => match open.last_mut() {
                Some((_, element)) => decode_text(text.as_str(), &mut element.text)?,
                None if text.as_str().trim().is_empty() => {}
                None => return Err(XmlError::Syntax),
            },
            xmlparser::Token::Cdata { text, .. } => match open.last_mut() {
                Some((_, element)) => element.text.push_str(text.as_str()),
                None => return Err(XmlError::Syntax),
            },
        }
    }
    let document = document.ok_or(XmlError::Syntax)?;
    if !open.is_empty() {
        return Err(XmlError::Syntax);
    }
    if document.name != root {
        return Err(XmlError::UnexpectedRoot);
    }
    Ok(document)
}

/// Appends character data with the predefined entities and character
/// references resolved; any other `&` is an error.
fn decode_text(raw: &str, out: &mut String) -> Result<(), XmlError> {
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after.find(';').ok_or(XmlError::Syntax)?;
        let entity = &after[..semi];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    parse_radix(hex, 16)
                } else if let Some(decimal) = entity.strip_prefix('#') {
                    parse_radix(decimal, 10)
                } else {
                    None
                };
                code.and_then(char::from_u32).filter(|&c| c != '\0').ok_or(XmlError::Syntax)?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(())
}

fn parse_radix(digits: &str, radix: u32) -> Option<u32> {
    if digits.is_empty() || digits.len() > 8 || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// CompleteMultipartUpload's body: the parts to assemble, in request order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompleteMultipartUpload {
    pub parts: Vec<CompletedPart>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompletedPart {
    /// 1 ..= 10000.
    pub part_number: u32,
    /// As sent, normally with quotes; compare after stripping them.
    pub etag: String,
    pub checksums: Checksums,
}

impl CompleteMultipartUpload {
    pub fn parse(body: &[u8]) -> Result<Self, XmlError> {
        let document = parse_document(body, "CompleteMultipartUpload")?;
        let mut parts = Vec::new();
        for part in document.children("Part") {
            if parts.len() == MAX_PARTS {
                return Err(XmlError::TooManyEntries);
            }
            let part_number = part
                .required("PartNumber")?
                .text
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=MAX_PARTS as u32).contains(n))
                .ok_or(XmlError::InvalidValue("PartNumber"))?;
            let etag = String::from(part.required("ETag")?.text.trim());
            let checksums = Checksums {
                crc32: part.trimmed("ChecksumCRC32"),
                crc32c: part.trimmed("ChecksumCRC32C"),
                crc64nvme: part.trimmed("ChecksumCRC64NVME"),
                sha1: part.trimmed("ChecksumSHA1"),
                sha256: part.trimmed("ChecksumSHA256"),
            };
            parts.push(CompletedPart { part_number, etag, checksums });
        }
        if parts.is_empty() {
            return Err(XmlError::Empty);
        }
        Ok(Self { parts })
    }

    /// S3 requires strictly ascending part numbers: `InvalidPartOrder`.
    pub fn check_order(&self) -> Result<(), S3ErrorCode> {
        if self.parts.windows(2).all(|w| w[0].part_number < w[1].part_number) {
            Ok(())
        } else {
            Err(S3ErrorCode::InvalidPartOrder)
        }
    }
}

/// DeleteObjects' body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delete {
    pub objects: Vec<ObjectIdentifier>,
    /// Report only errors.
    pub quiet: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectIdentifier {
    /// Exactly as sent: leading and trailing spaces belong to the key.
    pub key: String,
    pub version_id: Option<String>,
}

impl Delete {
    pub fn parse(body: &[u8]) -> Result<Self, XmlError> {
        let document = parse_document(body, "Delete")?;
        let quiet = match document.trimmed("Quiet") {
            None => false,
            Some(value) if value.eq_ignore_ascii_case("true") => true,
            Some(value) if value.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(XmlError::InvalidValue("Quiet")),
        };
        let mut objects = Vec::new();
        for object in document.children("Object") {
            if objects.len() == MAX_DELETE_OBJECTS {
                return Err(XmlError::TooManyEntries);
            }
            let key = object.required("Key")?.text.clone();
            let version_id = object.trimmed("VersionId").filter(|v| !v.is_empty());
            objects.push(ObjectIdentifier { key, version_id });
        }
        if objects.is_empty() {
            return Err(XmlError::Empty);
        }
        Ok(Self { objects, quiet })
    }
}

/// PutBucketVersioning's body. `MfaDelete` is accepted and ignored: there
/// is no MFA here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersioningConfigurationRequest {
    pub status: VersioningStatus,
}

impl VersioningConfigurationRequest {
    pub fn parse(body: &[u8]) -> Result<Self, XmlError> {
        let document = parse_document(body, "VersioningConfiguration")?;
        let status = match document.trimmed("Status").as_deref() {
            Some("Enabled") => VersioningStatus::Enabled,
            Some("Suspended") => VersioningStatus::Suspended,
            Some(_) => return Err(XmlError::InvalidValue("Status")),
            None => return Err(XmlError::MissingElement("Status")),
        };
        Ok(Self { status })
    }
}

/// CreateBucket's optional body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateBucketConfiguration {
    /// `None` or empty means the default region.
    pub location_constraint: Option<String>,
}

impl CreateBucketConfiguration {
    /// An empty (or all-whitespace) body is no configuration, as in S3.
    pub fn parse(body: &[u8]) -> Result<Self, XmlError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let document = parse_document(body, "CreateBucketConfiguration")?;
        Ok(Self { location_constraint: document.trimmed("LocationConstraint") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_multipart_upload() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
            <CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Part><PartNumber> 1 </PartNumber><ETag>&quot;a54357aff0632cce46d942af68356b38&quot;</ETag></Part>
              <Part>
                <ETag>"0c78aef83f66abc1fa1e8477f296d394"</ETag>
                <PartNumber>2</PartNumber>
                <ChecksumCRC32>AAAAAA==</ChecksumCRC32>
                <Unknown>ignored</Unknown>
              </Part>
            </CompleteMultipartUpload>"#;
        let parsed = CompleteMultipartUpload::parse(body).unwrap();
        assert_eq!(parsed.parts.len(), 2);
        assert_eq!(parsed.parts[0].part_number, 1);
        assert_eq!(parsed.parts[0].etag, "\"a54357aff0632cce46d942af68356b38\"");
        assert_eq!(parsed.parts[1].part_number, 2);
        assert_eq!(parsed.parts[1].checksums.crc32.as_deref(), Some("AAAAAA=="));
        assert_eq!(parsed.check_order(), Ok(()));
        let reversed = CompleteMultipartUpload { parts: parsed.parts.into_iter().rev().collect() };
        assert_eq!(reversed.check_order(), Err(S3ErrorCode::InvalidPartOrder));
    }

    #[test]
    fn complete_multipart_upload_rejects() {
        let cases: [(&[u8], XmlError); 8] = [
            (b"<CompleteMultipartUpload></CompleteMultipartUpload>", XmlError::Empty),
            (b"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>", XmlError::MissingElement("PartNumber")),
            (b"<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>", XmlError::InvalidValue("PartNumber")),
            (b"<CompleteMultipartUpload><Part><PartNumber>10001</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>", XmlError::InvalidValue("PartNumber")),
            (b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>", XmlError::MissingElement("ETag")),
            (b"<Other/>", XmlError::UnexpectedRoot),
            (b"<CompleteMultipartUpload><Part></CompleteMultipartUpload>", XmlError::Syntax),
            (b"", XmlError::Syntax),
        ];
        for (body, expected) in cases {
            assert_eq!(CompleteMultipartUpload::parse(body), Err(expected), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn delete_objects() {
        let body = br#"<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Quiet>true</Quiet>
            <Object><Key> spaced key </Key></Object>
            <Object><Key>a&amp;b&lt;&#233;&#xE9;<![CDATA[<raw>&amp;]]></Key><VersionId> v1 </VersionId></Object>
        </Delete>"#;
        let parsed = Delete::parse(body).unwrap();
        assert!(parsed.quiet);
        assert_eq!(parsed.objects[0], ObjectIdentifier { key: String::from(" spaced key "), version_id: None });
        assert_eq!(parsed.objects[1].key, "a&b<éé<raw>&amp;");
        assert_eq!(parsed.objects[1].version_id.as_deref(), Some("v1"));
    }

    #[test]
    fn delete_objects_limits() {
        let mut body = String::from("<Delete>");
        for i in 0..MAX_DELETE_OBJECTS {
            body.push_str(&alloc::format!("<Object><Key>k{i}</Key></Object>"));
        }
        body.push_str("</Delete>");
        assert_eq!(Delete::parse(body.as_bytes()).unwrap().objects.len(), MAX_DELETE_OBJECTS);
        let over = body.replace("</Delete>", "<Object><Key>one more</Key></Object></Delete>");
        assert_eq!(Delete::parse(over.as_bytes()), Err(XmlError::TooManyEntries));
        assert_eq!(Delete::parse(b"<Delete><Quiet>false</Quiet></Delete>"), Err(XmlError::Empty));
        assert_eq!(Delete::parse(b"<Delete><Quiet>yes</Quiet></Delete>"), Err(XmlError::InvalidValue("Quiet")));
        let huge = alloc::vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(Delete::parse(&huge), Err(XmlError::TooLarge));
        assert_eq!(S3ErrorCode::from(XmlError::TooLarge), S3ErrorCode::MaxMessageLengthExceeded);
        assert_eq!(S3ErrorCode::from(XmlError::Empty), S3ErrorCode::MalformedXML);
    }

    #[test]
    fn versioning_configuration() {
        let body = b"<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                     <Status>Suspended</Status><MfaDelete>Disabled</MfaDelete></VersioningConfiguration>";
        let parsed = VersioningConfigurationRequest::parse(body).unwrap();
        assert_eq!(parsed.status, VersioningStatus::Suspended);
        let prefixed = b"<s3:VersioningConfiguration xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                         <s3:Status>Enabled</s3:Status></s3:VersioningConfiguration>";
        assert_eq!(VersioningConfigurationRequest::parse(prefixed).unwrap().status, VersioningStatus::Enabled);
        assert_eq!(
            VersioningConfigurationRequest::parse(
                b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>"
            ),
            Err(XmlError::InvalidValue("Status"))
        );
        assert_eq!(
            VersioningConfigurationRequest::parse(b"<VersioningConfiguration/>"),
            Err(XmlError::MissingElement("Status"))
        );
    }

    #[test]
    fn create_bucket_configuration() {
        assert_eq!(CreateBucketConfiguration::parse(b"").unwrap().location_constraint, None);
        assert_eq!(CreateBucketConfiguration::parse(b" \n").unwrap().location_constraint, None);
        let body = b"<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                     <LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>";
        assert_eq!(CreateBucketConfiguration::parse(body).unwrap().location_constraint.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn rejects_malformed_documents() {
        for body in [
            &b"<Delete><Object><Key>k</Key></Object>"[..],
            b"<Delete><Object><Key>k</Object></Key></Delete>",
            b"<Delete><Object><Key>k</Key></Object></Delete><Delete/>",
            b"<Delete><Object><Key>&bogus;</Key></Object></Delete>",
            b"<Delete><Object><Key>&#0;</Key></Object></Delete>",
            b"<Delete><Object><Key>&#xD800;</Key></Object></Delete>",
            b"<Delete><Object><Key>& </Key></Object></Delete>",
            b"text<Delete><Object><Key>k</Key></Object></Delete>",
            b"<!DOCTYPE d [<!ENTITY e \"x\">]><Delete><Object><Key>&e;</Key></Object></Delete>",
            b"<a:Delete><Object><Key>k</Key></Object></b:Delete>",
            b"\xff<Delete/>",
        ] {
            assert_eq!(Delete::parse(body), Err(XmlError::Syntax), "{}", String::from_utf8_lossy(body));
        }
        let deep = alloc::format!("<Delete>{}{}</Delete>", "<a>".repeat(100), "</a>".repeat(100));
        assert_eq!(Delete::parse(deep.as_bytes()), Err(XmlError::Syntax));
    }
}
