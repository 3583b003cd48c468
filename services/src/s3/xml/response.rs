//! One plain struct per S3 response body, each with `to_xml`. Element names
//! and order follow the S3 API reference (and what S3 sends on the wire,
//! where the two differ in order: SDKs read by name either way).
//! Timestamps are Unix milliseconds, written as `2006-02-03T16:45:09.000Z`.

use alloc::string::String;
use alloc::vec::Vec;

use super::writer::XmlWriter;
use crate::s3::error::S3ErrorCode;
use crate::s3::time::format_iso8601_millis;

/// The only storage class this server has.
pub const STORAGE_CLASS: &str = "STANDARD";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub display_name: String,
}

impl Owner {
    fn write(&self, xml: &mut XmlWriter, element: &'static str) {
        xml.start(element);
        xml.element("ID", &self.id);
        xml.element("DisplayName", &self.display_name);
        xml.end();
    }
}

/// Additional checksums of an object or part, base64 as on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checksums {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

impl Checksums {
    fn write(&self, xml: &mut XmlWriter) {
        xml.optional("ChecksumCRC32", self.crc32.as_deref());
        xml.optional("ChecksumCRC32C", self.crc32c.as_deref());
        xml.optional("ChecksumCRC64NVME", self.crc64nvme.as_deref());
        xml.optional("ChecksumSHA1", self.sha1.as_deref());
        xml.optional("ChecksumSHA256", self.sha256.as_deref());
    }
}

/// With `encoding-type=url`, S3 URL-encodes keys and prefixes in listings so
/// that any byte survives XML: unreserved characters and `/` stay, a space
/// becomes `+` (SDKs decode with unquote_plus), the rest `%XX`.
pub fn url_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(byte >> 4)] as char);
                out.push(HEX[usize::from(byte & 0xf)] as char);
            }
        }
    }
    out
}

/// Writes keys and prefixes raw or URL-encoded, per the request's
/// `encoding-type`.
struct Keys {
    url: bool,
}

impl Keys {
    fn element(&self, xml: &mut XmlWriter, name: &'static str, text: &str) {
        if self.url {
            xml.element(name, &url_encode(text));
        } else {
            xml.element(name, text);
        }
    }

    fn optional(&self, xml: &mut XmlWriter, name: &'static str, text: Option<&str>) {
        if let Some(text) = text {
            self.element(xml, name, text);
        }
    }

    fn encoding_type(&self, xml: &mut XmlWriter) {
        if self.url {
            xml.element("EncodingType", "url");
        }
    }

    fn common_prefixes(&self, xml: &mut XmlWriter, prefixes: &[String]) {
        for prefix in prefixes {
            xml.start("CommonPrefixes");
            self.element(xml, "Prefix", prefix);
            xml.end();
        }
    }
}

fn timestamp(xml: &mut XmlWriter, name: &'static str, unix_ms: u64) {
    xml.element(name, &format_iso8601_millis(unix_ms));
}

/// ListBuckets: `ListAllMyBucketsResult`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListAllMyBucketsResult {
    pub owner: Owner,
    pub buckets: Vec<BucketEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketEntry {
    pub name: String,
    pub creation_date_ms: u64,
}

impl ListAllMyBucketsResult {
    pub fn to_xml(&self) -> Vec<u8> {
        let mut xml = XmlWriter::new();
        xml.start_root("ListAllMyBucketsResult");
        self.owner.write(&mut xml, "Owner");
        xml.start("Buckets");
        for bucket in &self.buckets {
            xml.start("Bucket");
            xml.element("Name", &bucket.name);
            timestamp(&mut xml, "CreationDate", bucket.creation_date_ms);
            xml.end();
        }
        xml.end();
        xml.finish()
    }
}

/// One object in a listing (`Contents`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectEntry {
    pub key: String,
    pub last_modified_ms: u64,
    /// With its quotes, as in the `ETag` header.
    pub etag: String,
    pub size: u64,
    /// Always present in V1; in V2 only with `fetch-owner=true`.
    pub owner: Option<Owner>,
}

impl ObjectEntry {
    fn write(&self, xml: &mut XmlWriter, keys: &Keys) {
        xml.start("Contents");
        keys.element(xml, "Key", &self.key);
        timestamp(xml, "LastModified", self.last_modified_ms);
        xml.element("ETag", &self.etag);
        xml.number("Size", self.size);
        if let Some(owner) = &self.owner {
            owner.write(xml, "Owner");
        }
        xml.element("StorageClass", STORAGE_CLASS);
        xml.end();
    }
}

/// ListObjects (V1): `ListBucketResult` with markers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListObjectsV1Result {
    pub name: String,
    pub prefix: String,
    pub marker: String,
    /// Only when a delimiter was given and the listing is truncated.
    pub next_marker: Option<String>,
    pub max_keys: u32,
    pub delimiter: Option<String>,
    pub is_truncated: bool,
    /// `encoding-type=url` was requested: keys and prefixes are encoded here.
    pub url_encoding: bool,
    pub contents: Vec<ObjectEntry>,
    pub common_prefixes: Vec<String>,
}

impl ListObjectsV1Result {
    pub fn to_xml(&self) -> Vec<u8> {
        let keys = Keys { url: self.url_encoding };
        let mut xml = XmlWriter::new();
        xml.start_root("ListBucketResult");
        xml.element("Name", &self.name);
        keys.element(&mut xml, "Prefix", &self.prefix);
        keys.element(&mut xml, "Marker", &self.marker);
        keys.optional(&mut xml, "NextMarker", self.next_marker.as_deref());
        xml.number("MaxKeys", u64::from(self.max_keys));
        keys.optional(&mut xml, "Delimiter", self.delimiter.as_deref());
        xml.boolean("IsTruncated", self.is_truncated);
        keys.encoding_type(&mut xml);
        for entry in &self.contents {
            entry.write(&mut xml, &keys);
        }
        keys.common_prefixes(&mut xml, &self.common_prefixes);
        xml.finish()
    }
}

/// ListObjectsV2: `ListBucketResult` with continuation tokens. `KeyCount`
/// is derived: objects plus common prefixes, as S3 counts it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListObjectsV2Result {
    pub name: String,
    pub prefix: String,
    pub delimiter: Option<String>,
    pub max_keys: u32,
    pub url_encoding: bool,
    /// Echoed when the request carried one; opaque, so never URL-encoded.
    pub continuation_token: Option<String>,
    pub next_continuation_token: Option<String>,
    pub start_after: Option<String>,
    pub is_truncated: bool,
    pub contents: Vec<ObjectEntry>,
    pub common_prefixes: Vec<String>,
}

impl ListObjectsV2Result {
    pub fn key_count(&self) -> usize {
        self.contents.len() + self.common_prefixes.len()
    }

    pub fn to_xml(&self) -> Vec<u8> {
        let keys = Keys { url: self.url_encoding };
        let mut xml = XmlWriter::new();
        xml.start_root("ListBucketResult");
        xml.element("Name", &self.name);
        keys.element(&mut xml, "Prefix", &self.prefix);
        keys.optional(&mut xml, "Delimiter", self.delimiter.as_deref());
        xml.number("MaxKeys", u64::from(self.max_keys));
        keys.encoding_type(&mut xml);
        xml.number("KeyCount", self.key_count() as u64);
        xml.optional("ContinuationToken", self.continuation_token.as_deref());
        xml.optional("NextContinuationToken", self.next_continuation_token.as_deref());
        keys.optional(&mut xml, "StartAfter", self.start_after.as_deref());
        xml.boolean("IsTruncated", self.is_truncated);
        for entry in &self.contents {
            entry.write(&mut xml, &keys);
        }
        keys.common_prefixes(&mut xml, &self.common_prefixes);
        xml.finish()
    }
}

/// ListObjectVersions: `ListVersionsResult`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListVersionsResult {
    pub name: String,
    pub prefix: String,
    pub key_marker: String,
    pub version_id_marker: String,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
    pub max_keys: u32,
    pub delimiter: Option<String>,
    pub is_truncated: bool,
    pub url_encoding: bool,
    /// Versions and delete markers interleaved in key, then newest-first order.
    pub entries: Vec<VersionEntry>,
    pub common_prefixes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionEntry {
    Version(ObjectVersion),
    DeleteMarker(DeleteMarkerEntry),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectVersion {
    pub key: String,
    /// `null` for objects written while versioning was off.
    pub version_id: String,
    pub is_latest: bool,
    pub last_modified_ms: u64,
    pub etag: String,
    pub size: u64,
    pub owner: Owner,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteMarkerEntry {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub last_modified_ms: u64,
    pub owner: Owner,
}

impl ListVersionsResult {
    pub fn to_xml(&self) -> Vec<u8> {
        let keys = Keys { url: self.url_encoding };
        let mut xml = XmlWriter::new();
        xml.start_root("ListVersionsResult");
        xml.element("Name", &self.name);
        keys.element(&mut xml, "Prefix", &self.prefix);
        keys.element(&mut xml, "KeyMarker", &self.key_marker);
        xml.element("VersionIdMarker", &self.version_id_marker);
        keys.optional(&mut xml, "NextKeyMarker", self.next_key_marker.as_deref());
        xml.optional("NextVersionIdMarker", self.next_version_id_marker.as_deref());
        xml.number("MaxKeys", u64::from(self.max_keys));
        keys.optional(&mut xml, "Delimiter", self.delimiter.as_deref());
        xml.boolean("IsTruncated", self.is_truncated);
        keys.encoding_type(&mut xml);
        for entry in &self.entries {
            match entry {
                VersionEntry::Version(version) => {
                    xml.start("Version");
                    keys.element(&mut xml, "Key", &version.key);
                    xml.element("VersionId", &version.version_id);
                    xml.boolean("IsLatest", version.is_latest);
                    timestamp(&mut xml, "LastModified", version.last_modified_ms);
                    xml.element("ETag", &version.etag);
                    xml.number("Size", version.size);
                    version.owner.write(&mut xml, "Owner");
                    xml.element("StorageClass", STORAGE_CLASS);
                    xml.end();
                }
                VersionEntry::DeleteMarker(marker) => {
                    xml.start("DeleteMarker");
                    keys.element(&mut xml, "Key", &marker.key);
                    xml.element("VersionId", &marker.version_id);
                    xml.boolean("IsLatest", marker.is_latest);
                    timestamp(&mut xml, "LastModified", marker.last_modified_ms);
                    marker.owner.write(&mut xml, "Owner");
                    xml.end();
                }
            }
        }
        keys.common_prefixes(&mut xml, &self.common_prefixes);
        xml.finish()
    }
}

/// CreateMultipartUpload: `InitiateMultipartUploadResult`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitiateMultipartUploadResult {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
}

impl InitiateMultipartUploadResult {
    pub fn to_xml(&self) -> Vec<u8> {
        let mut xml = XmlWriter::new();
        xml.start_root("InitiateMultipartUploadResult");
        xml.element("Bucket", &self.bucket);
        xml.element("Key", &self.key);
        xml.element("UploadId", &self.upload_id);
        xml.finish()
    }
}

/// CompleteMultipartUpload: `CompleteMultipartUploadResult`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompleteMultipartUploadResult {
    /// The object's URL, e.g. `https://host/bucket/key`.
    pub location: String,
    pub bucket: String,
    pub key: String,
    /// `"<md5 of part md5s>-<parts>"`, with quotes.
    pub etag: String,
    pub checksums: Checksums,
}

impl CompleteMultipartUploadResult {
    pub fn to_xml(&self) -> Vec<u8> {
        let mut xml = XmlWriter::new();
        xml.start_root("CompleteMultipartUploadResult");
        xml.element("Location", &self.location);
        xml.element("Bucket", &self.bucket);
        xml.element("Key", &self.key);
        xml.element("ETag", &self.etag);
        self.checksums.write(&mut xml);
        xml.finish()
    }
}

/// ListParts: `ListPartsResult`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPartsResult {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub part_number_marker: u32,
    pub next_part_number_marker: u32,
    pub max_parts: u32,
    pub is_truncated: bool,
    pub parts: Vec<PartEntry>,
    pub initiator: Owner,
    pub owner: Owner,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartEntry {
    pub part_number: u32,
    pub last_modified_ms: u64,
    pub etag: String,
    pub size: u64,
    pub checksums: Checksums,
}

impl ListPartsResult {
    pub fn to_xml(&self) -> Vec<u8> {
        let mut xml = XmlWriter::new();
        xml.start_root("ListPartsResult");
        xml.element("Bucket", &self.bucket);
        xml.element("Key", &self.key);
        xml.element("UploadId", &self.upload_id);
        self.initiator.write(&mut xml, "Initiator");
        self.owner.write(&mut xml, "Owner");
        xml.element("StorageClass", STORAGE_CLASS);
        xml.number("PartNumberMarker", u64::from(self.part_number_marker));
        xml.number("NextPartNumberMarker", u64::from(self.next_part_number_marker));
        xml.number("MaxParts", u64::from(self.max_parts));
        xml.boolean("IsTruncated", self.is_truncated);
        for part in &self.parts {
            xml.start("Part");
            xml.number("PartNumber", u64::from(part.part_number));
            timestamp(&mut xml, "LastModified", part.last_modified_ms);
            xml.element("ETag", &part.etag);
            xml.number("Size", part.size);
            part.checksums.write(&mut xml);
            xml.end();
        }
        xml.finish()
    }
}

/// ListMultipartUploads: `ListMultipartUploadsResult`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListMultipartUploadsResult {
    pub bucket: String,
    pub key_marker: String,
    pub upload_id_marker: String,
    pub next_key_marker: String,
    pub next_upload_id_marker: String,
    pub prefix: String,
    pub delimiter: Option<String>,
    pub max_uploads: u32,
    pub is_truncated: bool,
    pub url_encoding: bool,
    pub uploads: Vec<UploadEntry>,
    pub common_prefixes: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadEntry {
    pub key: String,
    pub upload_id: String,
    pub initiator: Owner,
    pub owner: Owner,
    pub initiated_ms: u64,
}

impl ListMultipartUploadsResult {
    pub fn to_xml(&self) -> Vec<u8> {
        let keys = Keys { url: self.url_encoding };
        let mut xml = XmlWriter::new();
        xml.start_root("ListMultipartUploadsResult");
        xml.element("Bucket", &self.bucket);
        keys.element(&mut xml, "KeyMarker", &self.key_marker);
        xml.element("UploadIdMarker", &self.upload_id_marker);
        keys.element(&mut xml, "NextKeyMarker", &self.next_key_marker);
        xml.element("NextUploadIdMarker", &self.next_upload_id_marker);
        keys.element(&mut xml, "Prefix", &self.prefix);
        keys.optional(&mut xml, "Delimiter", self.delimiter.as_deref());
        xml.number("MaxUploads", u64::from(self.max_uploads));
        xml.boolean("IsTruncated", self.is_truncated);
        keys.encoding_type(&mut xml);
        for upload in &self.uploads {
            xml.start("Upload");
            keys.element(&mut xml, "Key", &upload.key);
            xml.element("UploadId", &upload.upload_id);
            upload.initiator.write(&mut xml, "Initiator");
            upload.owner.write(&mut xml, "Owner");
            xml.element("StorageClass", STORAGE_CLASS);
            timestamp(&mut xml, "Initiated", upload.initiated_ms);
            xml.end();
        }
        keys.common_prefixes(&mut xml, &self.common_prefixes);
        xml.finish()
    }
}

/// CopyObject: `CopyObjectResult`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyObjectResult {
    pub etag: String,
    pub last_modified_ms: u64,
    pub checksums: Checksums,
}

impl CopyObjectResult {
    pub fn to_xml(&self) -> Vec<u8> {
        copy_result("CopyObjectResult", &self.etag, self.last_modified_ms, &self.checksums)
    }
}

/// UploadPartCopy: `CopyPartResult`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyPartResult {
    pub etag: String,
    pub last_modified_ms: u64,
    pub checksums: Checksums,
}

impl CopyPartResult {
    pub fn to_xml(&self) -> Vec<u8> {
        copy_result("CopyPartResult", &self.etag, self.last_modified_ms, &self.checksums)
    }
}

fn copy_result(root: &'static str, etag: &str, last_modified_ms: u64, checksums: &Checksums) -> Vec<u8> {
    let mut xml = XmlWriter::new();
    xml.start_root(root);
    xml.element("ETag", etag);
    timestamp(&mut xml, "LastModified", last_modified_ms);
    checksums.write(&mut xml);
    xml.finish()
}

/// DeleteObjects: `DeleteResult`. In quiet mode the handler leaves
/// `deleted` empty; errors are always reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteResult {
    pub deleted: Vec<DeletedEntry>,
    pub errors: Vec<DeleteErrorEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeletedEntry {
    pub key: String,
    pub version_id: Option<String>,
    /// The delete created a delete marker, or removed one.
    pub delete_marker: bool,
    pub delete_marker_version_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteErrorEntry {
    pub key: String,
    pub version_id: Option<String>,
    pub code: S3ErrorCode,
    /// `None` for the code's default message.
    pub message: Option<String>,
}

impl DeleteResult {
    pub fn to_xml(&self) -> Vec<u8> {
        let mut xml = XmlWriter::new();
        xml.start_root("DeleteResult");
        for deleted in &self.deleted {
            xml.start("Deleted");
            xml.element("Key", &deleted.key);
            xml.optional("VersionId", deleted.version_id.as_deref());
            if deleted.delete_marker {
                xml.boolean("DeleteMarker", true);
            }
            xml.optional("DeleteMarkerVersionId", deleted.delete_marker_version_id.as_deref());
            xml.end();
        }
        for error in &self.errors {
            xml.start("Error");
            xml.element("Key", &error.key);
            xml.optional("VersionId", error.version_id.as_deref());
            xml.element("Code", error.code.as_str());
            xml.element("Message", error.message.as_deref().unwrap_or(error.code.default_message()));
            xml.end();
        }
        xml.finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersioningStatus {
    Enabled,
    Suspended,
}

impl VersioningStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            VersioningStatus::Enabled => "Enabled",
            VersioningStatus::Suspended => "Suspended",
        }
    }
}

/// GetBucketVersioning: `VersioningConfiguration`, without `Status` for a
/// bucket that never had versioning enabled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersioningConfiguration {
    pub status: Option<VersioningStatus>,
}

impl VersioningConfiguration {
    pub fn to_xml(&self) -> Vec<u8> {
        let mut xml = XmlWriter::new();
        xml.start_root("VersioningConfiguration");
        xml.optional("Status", self.status.map(VersioningStatus::as_str));
        xml.finish()
    }
}

/// GetBucketLocation: `LocationConstraint`, empty for us-east-1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocationConstraint {
    pub region: String,
}

impl LocationConstraint {
    pub fn to_xml(&self) -> Vec<u8> {
        let mut xml = XmlWriter::new();
        xml.start_root("LocationConstraint");
        xml.text(&self.region);
        xml.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const PROLOG: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    const NS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";
    const T0: u64 = 1_138_985_109_000;

    fn text(xml: Vec<u8>) -> String {
        String::from_utf8(xml).unwrap()
    }

    fn owner() -> Owner {
        Owner { id: String::from("id1"), display_name: String::from("admin") }
    }

    #[test]
    fn list_buckets() {
        let result = ListAllMyBucketsResult {
            owner: owner(),
            buckets: vec![BucketEntry { name: String::from("b1"), creation_date_ms: T0 }],
        };
        assert_eq!(
            text(result.to_xml()),
            alloc::format!(
                "{PROLOG}<ListAllMyBucketsResult {NS}><Owner><ID>id1</ID><DisplayName>admin</DisplayName></Owner>\
                 <Buckets><Bucket><Name>b1</Name><CreationDate>2006-02-03T16:45:09.000Z</CreationDate></Bucket>\
                 </Buckets></ListAllMyBucketsResult>"
            )
        );
    }

    #[test]
    fn list_objects_v2_with_url_encoding() {
        let result = ListObjectsV2Result {
            name: String::from("b"),
            prefix: String::from("a b/"),
            delimiter: Some(String::from("/")),
            max_keys: 2,
            url_encoding: true,
            continuation_token: Some(String::from("tok+/=")),
            next_continuation_token: Some(String::from("next")),
            start_after: None,
            is_truncated: true,
            contents: vec![ObjectEntry {
                key: String::from("a b/ü&\u{1}"),
                last_modified_ms: T0,
                etag: String::from("\"e\""),
                size: 3,
                owner: None,
            }],
            common_prefixes: vec![String::from("a b/c/")],
        };
        assert_eq!(result.key_count(), 2);
        assert_eq!(
            text(result.to_xml()),
            alloc::format!(
                "{PROLOG}<ListBucketResult {NS}><Name>b</Name><Prefix>a+b/</Prefix><Delimiter>/</Delimiter>\
                 <MaxKeys>2</MaxKeys><EncodingType>url</EncodingType><KeyCount>2</KeyCount>\
                 <ContinuationToken>tok+/=</ContinuationToken><NextContinuationToken>next</NextContinuationToken>\
                 <IsTruncated>true</IsTruncated><Contents><Key>a+b/%C3%BC%26%01</Key>\
                 <LastModified>2006-02-03T16:45:09.000Z</LastModified><ETag>&quot;e&quot;</ETag><Size>3</Size>\
                 <StorageClass>STANDARD</StorageClass></Contents><CommonPrefixes><Prefix>a+b/c/</Prefix>\
                 </CommonPrefixes></ListBucketResult>"
            )
        );
    }

    #[test]
    fn list_objects_v1_has_markers_and_owner() {
        let result = ListObjectsV1Result {
            name: String::from("b"),
            marker: String::from("m<"),
            next_marker: Some(String::from("n")),
            max_keys: 1000,
            contents: vec![ObjectEntry { key: String::from("k"), owner: Some(owner()), ..ObjectEntry::default() }],
            ..ListObjectsV1Result::default()
        };
        let xml = text(result.to_xml());
        assert!(
            xml.contains("<Prefix></Prefix><Marker>m&lt;</Marker><NextMarker>n</NextMarker><MaxKeys>1000</MaxKeys>")
        );
        assert!(xml.contains("<IsTruncated>false</IsTruncated><Contents><Key>k</Key>"));
        assert!(xml.contains("<Size>0</Size><Owner><ID>id1</ID><DisplayName>admin</DisplayName></Owner>"));
        assert!(!xml.contains("EncodingType"));
    }

    #[test]
    fn list_versions_interleaves_entries() {
        let result = ListVersionsResult {
            name: String::from("b"),
            max_keys: 1000,
            entries: vec![
                VersionEntry::DeleteMarker(DeleteMarkerEntry {
                    key: String::from("k"),
                    version_id: String::from("v2"),
                    is_latest: true,
                    last_modified_ms: T0,
                    owner: owner(),
                }),
                VersionEntry::Version(ObjectVersion {
                    key: String::from("k"),
                    version_id: String::from("null"),
                    etag: String::from("\"e\""),
                    size: 1,
                    owner: owner(),
                    ..ObjectVersion::default()
                }),
            ],
            ..ListVersionsResult::default()
        };
        let xml = text(result.to_xml());
        let marker = xml.find("<DeleteMarker><Key>k</Key><VersionId>v2</VersionId><IsLatest>true</IsLatest>").unwrap();
        let version = xml.find("<Version><Key>k</Key><VersionId>null</VersionId><IsLatest>false</IsLatest>").unwrap();
        assert!(marker < version);
        assert!(xml.contains("<KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker><MaxKeys>1000</MaxKeys>"));
    }

    #[test]
    fn multipart_results() {
        let initiate = InitiateMultipartUploadResult {
            bucket: String::from("b"),
            key: String::from("k"),
            upload_id: String::from("u"),
        };
        assert_eq!(
            text(initiate.to_xml()),
            alloc::format!(
                "{PROLOG}<InitiateMultipartUploadResult {NS}><Bucket>b</Bucket><Key>k</Key><UploadId>u</UploadId>\
                 </InitiateMultipartUploadResult>"
            )
        );
        let complete = CompleteMultipartUploadResult {
            location: String::from("https://h/b/k"),
            etag: String::from("\"x-2\""),
            checksums: Checksums { sha256: Some(String::from("s")), ..Checksums::default() },
            ..CompleteMultipartUploadResult::default()
        };
        let xml = text(complete.to_xml());
        assert!(xml.contains("<Location>https://h/b/k</Location><Bucket></Bucket><Key></Key>"));
        assert!(xml.contains("<ETag>&quot;x-2&quot;</ETag><ChecksumSHA256>s</ChecksumSHA256></Complete"));
        let parts = ListPartsResult {
            max_parts: 1000,
            next_part_number_marker: 1,
            parts: vec![PartEntry { part_number: 1, size: 5, ..PartEntry::default() }],
            ..ListPartsResult::default()
        };
        let xml = text(parts.to_xml());
        assert!(xml.contains("<PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>1</NextPartNumberMarker>"));
        assert!(xml.contains("<Part><PartNumber>1</PartNumber><LastModified>1970-01-01T00:00:00.000Z</LastModified>"));
        let uploads = ListMultipartUploadsResult {
            uploads: vec![UploadEntry {
                key: String::from("k"),
                upload_id: String::from("u"),
                ..UploadEntry::default()
            }],
            max_uploads: 1000,
            ..ListMultipartUploadsResult::default()
        };
        let xml = text(uploads.to_xml());
        assert!(xml.contains("<Upload><Key>k</Key><UploadId>u</UploadId><Initiator>"));
        assert!(
            xml.contains(
                "<StorageClass>STANDARD</StorageClass><Initiated>1970-01-01T00:00:00.000Z</Initiated></Upload>"
            )
        );
    }

    #[test]
    fn copy_results() {
        let copy =
            CopyObjectResult { etag: String::from("\"e\""), last_modified_ms: T0, ..CopyObjectResult::default() };
        assert_eq!(
            text(copy.to_xml()),
            alloc::format!(
                "{PROLOG}<CopyObjectResult {NS}><ETag>&quot;e&quot;</ETag>\
                 <LastModified>2006-02-03T16:45:09.000Z</LastModified></CopyObjectResult>"
            )
        );
        let part = CopyPartResult { etag: String::from("e"), ..CopyPartResult::default() };
        assert!(text(part.to_xml()).contains("<CopyPartResult xmlns"));
    }

    #[test]
    fn delete_result() {
        let result = DeleteResult {
            deleted: vec![
                DeletedEntry { key: String::from("a"), ..DeletedEntry::default() },
                DeletedEntry {
                    key: String::from("b"),
                    delete_marker: true,
                    delete_marker_version_id: Some(String::from("dm")),
                    ..DeletedEntry::default()
                },
            ],
            errors: vec![DeleteErrorEntry {
                key: String::from("c"),
                version_id: Some(String::from("v")),
                code: S3ErrorCode::AccessDenied,
                message: None,
            }],
        };
        assert_eq!(
            text(result.to_xml()),
            alloc::format!(
                "{PROLOG}<DeleteResult {NS}><Deleted><Key>a</Key></Deleted><Deleted><Key>b</Key>\
                 <DeleteMarker>true</DeleteMarker><DeleteMarkerVersionId>dm</DeleteMarkerVersionId></Deleted>\
                 <Error><Key>c</Key><VersionId>v</VersionId><Code>AccessDenied</Code>\
                 <Message>Access Denied</Message></Error></DeleteResult>"
            )
        );
    }

    #[test]
    fn bucket_configuration_results() {
        let never = VersioningConfiguration { status: None };
        assert_eq!(
            text(never.to_xml()),
            alloc::format!("{PROLOG}<VersioningConfiguration {NS}></VersioningConfiguration>")
        );
        let enabled = VersioningConfiguration { status: Some(VersioningStatus::Enabled) };
        assert!(text(enabled.to_xml()).contains("<Status>Enabled</Status>"));
        let location = LocationConstraint { region: String::from("eu-west-1") };
        assert_eq!(
            text(location.to_xml()),
            alloc::format!("{PROLOG}<LocationConstraint {NS}>eu-west-1</LocationConstraint>")
        );
    }

    #[test]
    fn url_encoding() {
        assert_eq!(url_encode("a-_.~/Z9"), "a-_.~/Z9");
        assert_eq!(url_encode("a b+c%"), "a+b%2Bc%25");
        assert_eq!(url_encode("é"), "%C3%A9");
    }
}
