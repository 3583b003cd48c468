//! Routing and the operation handlers. Each handler checks the caller's
//! capability on the bucket first, then validates, then touches the store;
//! errors are S3 codes from one conversion ([`store_error`]).

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use fs::catalog::Capabilities;
use fs::index::{
    ListItem, ListQuery, MAX_KEYS_LIMIT, UploadItem, UploadQuery, VersionItem, VersionQuery, list, list_parts,
    list_uploads, list_versions,
};
use fs::record::{ObjectMeta, UploadTemplate};
use fs::state::{MetaError, hex};
use fs::store::{LookupError, PutInfo, SpaceCell, StoreError};
use storage::block::BlockDevice;
use storage::object::{ObjectError, WrittenObject};
use storage::space::SpaceError;
use storage::version::{Entry, VersionId, Versioning};

use super::io::{ConnIo, Connection, ReadError};
use super::payload::{PayloadError, PayloadReader};
use super::{Authenticator, BodyCheck, Principal, Reply, ReplyBody, S3Service};
use security::checksum::ChecksumAlgorithm;

use crate::events::{Event, EventName};
use crate::s3::addressing::{decode, parse_query, resolve_target};
use crate::s3::error::{S3Error, S3ErrorCode};
use crate::s3::http::{Headers, Method, RequestHead, resolve_range, unsatisfied_content_range};
use crate::s3::time::{format_http_date, parse_http_date};
use crate::s3::validate::{USER_METADATA_PREFIX, validate_bucket_name, validate_object_key, validate_user_metadata};
use crate::s3::xml::{
    BucketEntry, Checksums, CompleteMultipartUpload, CompleteMultipartUploadResult, CopyObjectResult, CopyPartResult,
    CreateBucketConfiguration, Delete, DeleteErrorEntry, DeleteMarkerEntry, DeleteResult, DeletedEntry,
    InitiateMultipartUploadResult, ListAllMyBucketsResult, ListMultipartUploadsResult, ListObjectsV1Result,
    ListObjectsV2Result, ListPartsResult, ListVersionsResult, LocationConstraint, ObjectEntry, ObjectVersion, Owner,
    PartEntry, UploadEntry, VersionEntry, VersioningConfiguration, VersioningConfigurationRequest, VersioningStatus,
};

/// How a request failed.
pub(crate) enum Failure {
    /// Answer with this error (and the operation's name for the log).
    S3(S3Error, &'static str),
    /// The connection cannot carry a response (or only a bare status).
    Transport(ReadError),
}

type Outcome<'s, D> = Result<(Reply<'s, D>, &'static str), Failure>;

/// Who did what, for the access log: filled in as far as the request got.
#[derive(Debug, Default)]
pub(crate) struct Access {
    pub key_id: String,
    pub bucket: String,
    pub key: String,
}

/// Headers stored with an object and returned on GET and HEAD, besides
/// `x-amz-meta-*` and `Content-Type`.
const STORED_HEADERS: [&str; 5] =
    ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];

pub(crate) fn store_error(error: &StoreError) -> S3ErrorCode {
    match error {
        StoreError::Meta(meta) => match meta {
            MetaError::NoSuchBucket => S3ErrorCode::NoSuchBucket,
            MetaError::BucketAlreadyExists => S3ErrorCode::BucketAlreadyExists,
            MetaError::BucketAlreadyOwnedByYou => S3ErrorCode::BucketAlreadyOwnedByYou,
            MetaError::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
            MetaError::NoSuchKey => S3ErrorCode::NoSuchKey,
            MetaError::NoSuchVersion => S3ErrorCode::NoSuchVersion,
            MetaError::NoSuchUpload => S3ErrorCode::NoSuchUpload,
            MetaError::InvalidPart { .. } => S3ErrorCode::InvalidPart,
            MetaError::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
            MetaError::EntityTooSmall { .. } => S3ErrorCode::EntityTooSmall,
            MetaError::QuotaExceeded => S3ErrorCode::QuotaExceeded,
            MetaError::InvalidVersioningChange => S3ErrorCode::InvalidBucketState,
            MetaError::Inconsistent => S3ErrorCode::InternalError,
        },
        StoreError::Space(SpaceError::Full) | StoreError::Object(ObjectError::Space(SpaceError::Full)) => {
            S3ErrorCode::StorageFull
        }
        StoreError::RecordTooLarge => S3ErrorCode::MetadataTooLarge,
        _ => S3ErrorCode::InternalError,
    }
}

fn lookup_error(error: LookupError) -> S3ErrorCode {
    match error {
        LookupError::NoSuchBucket => S3ErrorCode::NoSuchBucket,
        LookupError::NoSuchKey | LookupError::DeleteMarker { .. } => S3ErrorCode::NoSuchKey,
        LookupError::NoSuchVersion => S3ErrorCode::NoSuchVersion,
    }
}

/// The parsed pieces of one request that every handler needs.
struct Request<'h> {
    head: &'h RequestHead,
    id: &'h str,
    bucket: Option<String>,
    key: Option<String>,
    query: Vec<(String, String)>,
    principal: Principal,
    body: Option<BodyCheck>,
    /// `/bucket/key` for error bodies.
    resource: String,
}

impl Request<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(n, _)| n == name)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name)
    }

    fn error(&self, code: S3ErrorCode) -> S3Error {
        S3Error::new(code, self.id).with_resource(self.resource.clone())
    }

    fn bucket(&self) -> &str {
        self.bucket.as_deref().unwrap_or("")
    }

    fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("")
    }

    fn version_id(&self) -> Result<Option<VersionId>, S3ErrorCode> {
        match self.param("versionId") {
            None => Ok(None),
            Some(text) => VersionId::parse(text).map(Some).ok_or(S3ErrorCode::InvalidArgument),
        }
    }

    fn owner(&self) -> Owner {
        Owner { id: self.principal.access_key.clone(), display_name: self.principal.access_key.clone() }
    }

    fn take_body(&mut self) -> BodyCheck {
        self.body.take().unwrap_or(BodyCheck::None)
    }
}

/// Authenticates, routes and runs one request.
pub(crate) async fn handle<'s, D: BlockDevice, A: Authenticator, C: Connection>(
    service: &'s S3Service<D, A>,
    io: &mut ConnIo<'_, C>,
    head: &RequestHead,
    request_id: &str,
    access: &mut Access,
) -> Outcome<'s, D> {
    let fail = |code: S3ErrorCode, op: &'static str| Failure::S3(S3Error::new(code, request_id), op);
    let target = resolve_target(head.headers.get("host"), &service.config.domain, head.path())
        .map_err(|e| fail(e.into(), "Unknown"))?;
    let query = parse_query(head.query().unwrap_or("")).map_err(|e| fail(e.into(), "Unknown"))?;
    let authenticated =
        service.auth.authenticate(head, service.now_ms() / 1000).map_err(|code| fail(code, "Authenticate"))?;
    access.key_id.clone_from(&authenticated.principal.access_key);
    access.bucket = target.bucket.clone().unwrap_or_default();
    access.key = target.key.clone().unwrap_or_default();
    let resource = match (&target.bucket, &target.key) {
        (Some(bucket), Some(key)) => format!("/{bucket}/{key}"),
        (Some(bucket), None) => format!("/{bucket}"),
        _ => String::from("/"),
    };
    let mut request = Request {
        head,
        id: request_id,
        bucket: target.bucket,
        key: target.key,
        query,
        principal: authenticated.principal,
        body: Some(authenticated.body),
        resource,
    };
    let op = route(&request);
    let result = run(service, io, &mut request, op).await;
    match result {
        Ok(reply) => Ok((reply, op.name())),
        Err(HandlerError::S3(code)) => Err(Failure::S3(request.error(code), op.name())),
        Err(HandlerError::Error(error)) => Err(Failure::S3(error, op.name())),
        Err(HandlerError::Transport(error)) => Err(Failure::Transport(error)),
    }
}

enum HandlerError {
    S3(S3ErrorCode),
    Error(S3Error),
    Transport(ReadError),
}

impl From<S3ErrorCode> for HandlerError {
    fn from(code: S3ErrorCode) -> Self {
        Self::S3(code)
    }
}

impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        if !matches!(error, StoreError::Meta(_)) {
            crate::error!("s3", "store error: {:?}", error);
        }
        Self::S3(store_error(&error))
    }
}

impl From<ReadError> for HandlerError {
    fn from(error: ReadError) -> Self {
        Self::Transport(error)
    }
}

impl From<PayloadError> for HandlerError {
    fn from(error: PayloadError) -> Self {
        match error {
            PayloadError::S3(code) => Self::S3(code),
            PayloadError::Transport(error) => Self::Transport(error),
        }
    }
}

type Handled<'s, D> = Result<Reply<'s, D>, HandlerError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    ListBuckets,
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    GetBucketLocation,
    GetBucketVersioning,
    PutBucketVersioning,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListMultipartUploads,
    DeleteObjects,
    PutObject,
    CopyObject,
    GetObject,
    HeadObject,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    /// A bucket subresource we do not implement (`?acl`, `?policy`, ...).
    NotImplemented,
    MethodNotAllowed,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::ListBuckets => "ListBuckets",
            Op::CreateBucket => "CreateBucket",
            Op::DeleteBucket => "DeleteBucket",
            Op::HeadBucket => "HeadBucket",
            Op::GetBucketLocation => "GetBucketLocation",
            Op::GetBucketVersioning => "GetBucketVersioning",
            Op::PutBucketVersioning => "PutBucketVersioning",
            Op::ListObjects => "ListObjects",
            Op::ListObjectsV2 => "ListObjectsV2",
            Op::ListObjectVersions => "ListObjectVersions",
            Op::ListMultipartUploads => "ListMultipartUploads",
            Op::DeleteObjects => "DeleteObjects",
            Op::PutObject => "PutObject",
            Op::CopyObject => "CopyObject",
            Op::GetObject => "GetObject",
            Op::HeadObject => "HeadObject",
            Op::DeleteObject => "DeleteObject",
            Op::CreateMultipartUpload => "CreateMultipartUpload",
            Op::UploadPart => "UploadPart",
            Op::UploadPartCopy => "UploadPartCopy",
            Op::CompleteMultipartUpload => "CompleteMultipartUpload",
            Op::AbortMultipartUpload => "AbortMultipartUpload",
            Op::ListParts => "ListParts",
            Op::NotImplemented => "NotImplemented",
            Op::MethodNotAllowed => "MethodNotAllowed",
        }
    }
}

/// Bucket subresources that select another API we do not offer.
const UNSUPPORTED_SUBRESOURCES: [&str; 16] = [
    "acl",
    "policy",
    "cors",
    "lifecycle",
    "tagging",
    "website",
    "encryption",
    "logging",
    "notification",
    "replication",
    "object-lock",
    "retention",
    "legal-hold",
    "accelerate",
    "requestPayment",
    "ownershipControls",
];

fn route(request: &Request<'_>) -> Op {
    let method = request.head.method;
    if UNSUPPORTED_SUBRESOURCES.iter().any(|name| request.has(name)) {
        return Op::NotImplemented;
    }
    match (&request.bucket, &request.key) {
        (None, _) => match method {
            Method::Get => Op::ListBuckets,
            _ => Op::MethodNotAllowed,
        },
        (Some(_), None) => match method {
            Method::Get if request.has("location") => Op::GetBucketLocation,
            Method::Get if request.has("versioning") => Op::GetBucketVersioning,
            Method::Get if request.has("versions") => Op::ListObjectVersions,
            Method::Get if request.has("uploads") => Op::ListMultipartUploads,
            Method::Get if request.param("list-type") == Some("2") => Op::ListObjectsV2,
            Method::Get => Op::ListObjects,
            Method::Put if request.has("versioning") => Op::PutBucketVersioning,
            Method::Put => Op::CreateBucket,
            Method::Delete => Op::DeleteBucket,
            Method::Head => Op::HeadBucket,
            Method::Post if request.has("delete") => Op::DeleteObjects,
            _ => Op::MethodNotAllowed,
        },
        (Some(_), Some(_)) => {
            let upload = request.has("uploadId");
            match method {
                Method::Put if upload && request.header("x-amz-copy-source").is_some() => Op::UploadPartCopy,
                Method::Put if upload => Op::UploadPart,
                Method::Put if request.header("x-amz-copy-source").is_some() => Op::CopyObject,
                Method::Put => Op::PutObject,
                Method::Get if upload => Op::ListParts,
                Method::Get => Op::GetObject,
                Method::Head => Op::HeadObject,
                Method::Delete if upload => Op::AbortMultipartUpload,
                Method::Delete => Op::DeleteObject,
                Method::Post if request.has("uploads") => Op::CreateMultipartUpload,
                Method::Post if upload => Op::CompleteMultipartUpload,
                _ => Op::MethodNotAllowed,
            }
        }
    }
}

async fn run<'s, D: BlockDevice, A: Authenticator, C: Connection>(
    service: &'s S3Service<D, A>,
    io: &mut ConnIo<'_, C>,
    request: &mut Request<'_>,
    op: Op,
) -> Handled<'s, D> {
    let handler = Handler { service };
    match op {
        Op::ListBuckets => handler.list_buckets(request),
        Op::CreateBucket => handler.create_bucket(io, request).await,
        Op::DeleteBucket => handler.delete_bucket(request).await,
        Op::HeadBucket => handler.head_bucket(request),
        Op::GetBucketLocation => {
            handler.authorize(request, Capabilities::LIST, false)?;
            Ok(Reply::xml(LocationConstraint { region: service.config.region.clone() }.to_xml()))
        }
        Op::GetBucketVersioning => handler.get_versioning(request),
        Op::PutBucketVersioning => handler.put_versioning(io, request).await,
        Op::ListObjects => handler.list_objects(request, false),
        Op::ListObjectsV2 => handler.list_objects(request, true),
        Op::ListObjectVersions => handler.list_versions(request),
        Op::ListMultipartUploads => handler.list_uploads(request),
        Op::DeleteObjects => handler.delete_objects(io, request).await,
        Op::PutObject => handler.put_object(io, request).await,
        Op::CopyObject => handler.copy_object(request, None).await,
        Op::GetObject => handler.get_object(request, true),
        Op::HeadObject => handler.get_object(request, false),
        Op::DeleteObject => handler.delete_object(request).await,
        Op::CreateMultipartUpload => handler.create_upload(request).await,
        Op::UploadPart => handler.upload_part(io, request).await,
        Op::UploadPartCopy => {
            let (upload_id, part_number) = upload_part_params(request)?;
            handler.copy_object(request, Some((upload_id, part_number))).await
        }
        Op::CompleteMultipartUpload => handler.complete_upload(io, request).await,
        Op::AbortMultipartUpload => handler.abort_upload(request).await,
        Op::ListParts => handler.list_parts(request),
        Op::NotImplemented => Err(S3ErrorCode::NotImplemented.into()),
        Op::MethodNotAllowed => Err(S3ErrorCode::MethodNotAllowed.into()),
    }
}

fn upload_part_params(request: &Request<'_>) -> Result<(String, u32), HandlerError> {
    let upload_id = request.param("uploadId").unwrap_or("").to_owned();
    let part_number = request
        .param("partNumber")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| (1..=10_000).contains(n))
        .ok_or(S3ErrorCode::InvalidArgument)?;
    Ok((upload_id, part_number))
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

fn checksums_of(stored: &[(String, String)]) -> Checksums {
    let find = |name: &str| stored.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    Checksums {
        crc32: find("CRC32"),
        crc32c: find("CRC32C"),
        crc64nvme: find("CRC64NVME"),
        sha1: find("SHA1"),
        sha256: find("SHA256"),
    }
}

/// The value of `Content-Encoding` without the `aws-chunked` coding, which
/// describes the request's framing and not the object.
fn stored_content_encoding(value: &str) -> Option<String> {
    let rest: Vec<&str> =
        value.split(',').map(str::trim).filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked")).collect();
    (!rest.is_empty()).then(|| rest.join(", "))
}

/// What a PUT or CreateMultipartUpload stores besides the bytes.
fn put_info(headers: &Headers) -> Result<PutInfo, S3ErrorCode> {
    validate_user_metadata(headers)?;
    let mut stored = Vec::new();
    for (name, value) in headers.iter() {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with(USER_METADATA_PREFIX) {
            stored.push((lower, value.to_owned()));
        } else if STORED_HEADERS.contains(&lower.as_str()) {
            if lower == "content-encoding" {
                if let Some(value) = stored_content_encoding(value) {
                    stored.push((lower, value));
                }
            } else {
                stored.push((lower, value.to_owned()));
            }
        }
    }
    Ok(PutInfo { content_type: headers.get("content-type").map(str::to_owned), headers: stored, checksums: Vec::new() })
}

struct Handler<'s, D: BlockDevice, A: Authenticator> {
    service: &'s S3Service<D, A>,
}

impl<'s, D: BlockDevice, A: Authenticator> Handler<'s, D, A> {
    fn now_ms(&self) -> u64 {
        self.service.now_ms()
    }

    /// Queues the event of a change that just committed. A failure here
    /// (the store stopped) is logged: the change itself stands.
    fn emit(
        &self,
        request: &Request<'_>,
        name: EventName,
        key: &str,
        object: Option<(&ObjectMeta, VersionId)>,
        version: Option<VersionId>,
    ) {
        let Some(events) = &self.service.events else { return };
        let event = Event {
            name,
            bucket: request.bucket(),
            key,
            size: object.map(|(meta, _)| meta.size_bytes),
            etag: object.map(|(meta, _)| meta.etag.as_str()),
            version_id: object.map(|(_, id)| id).or(version).map(|id| id.to_string()),
            principal: &request.principal.access_key,
            request_id: request.id,
            time_ms: self.now_ms(),
        };
        if let Err(error) = events.emit(&self.service.store, &event) {
            crate::warn!("events", "event not queued: {:?}", error);
        }
    }

    /// The caller may do `need` on the request's bucket. A key with no
    /// capability there learns nothing, not even whether the bucket exists.
    /// `Ok(true)`: the caller may also list (and so may learn that a key
    /// does not exist).
    fn authorize(&self, request: &Request<'_>, need: Capabilities, allow_missing: bool) -> Result<bool, S3ErrorCode> {
        let principal = &request.principal;
        self.service.store.with_state(|state| match state.buckets.get(request.bucket()) {
            None if principal.admin || allow_missing => Err(S3ErrorCode::NoSuchBucket),
            None => Err(S3ErrorCode::AccessDenied),
            Some(_) if principal.admin => Ok(true),
            Some(bucket) if bucket.owner == principal.access_key => Ok(true),
            Some(bucket) => {
                let granted = bucket.grants.get(&principal.access_key).copied().unwrap_or(Capabilities::NONE);
                // `NONE` asks for any capability at all (HeadBucket).
                let allowed = if need.is_empty() { !granted.is_empty() } else { granted.contains(need) };
                if allowed { Ok(granted.contains(Capabilities::LIST)) } else { Err(S3ErrorCode::AccessDenied) }
            }
        })
    }

    fn list_buckets(&self, request: &Request<'_>) -> Handled<'s, D> {
        let principal = &request.principal;
        let buckets = self.service.store.with_state(|state| {
            state
                .buckets
                .iter()
                .filter(|(_, bucket)| {
                    principal.admin
                        || bucket.owner == principal.access_key
                        || bucket.grants.get(&principal.access_key).is_some_and(|caps| !caps.is_empty())
                })
                .map(|(name, bucket)| BucketEntry { name: name.clone(), creation_date_ms: bucket.created_ms })
                .collect()
        });
        Ok(Reply::xml(ListAllMyBucketsResult { owner: request.owner(), buckets }.to_xml()))
    }

    async fn create_bucket<C: Connection>(&self, io: &mut ConnIo<'_, C>, request: &Request<'_>) -> Handled<'s, D> {
        validate_bucket_name(request.bucket())?;
        let body = io
            .read_small_body(self.service.config.max_xml_bytes)
            .await?
            .ok_or(S3ErrorCode::MaxMessageLengthExceeded)?;
        let config = CreateBucketConfiguration::parse(&body).map_err(|_| S3ErrorCode::MalformedXML)?;
        if let Some(region) = config.location_constraint.as_deref()
            && !region.is_empty()
            && region != self.service.config.region
        {
            return Err(S3ErrorCode::InvalidLocationConstraint.into());
        }
        let owner = &request.principal.access_key;
        let exists =
            self.service.store.with_state(|state| state.buckets.get(request.bucket()).map(|b| b.owner == *owner));
        match exists {
            Some(true) => return Err(S3ErrorCode::BucketAlreadyOwnedByYou.into()),
            Some(false) => return Err(S3ErrorCode::BucketAlreadyExists.into()),
            None => {}
        }
        self.service.store.create_bucket(request.bucket(), owner, self.now_ms()).await?;
        let mut reply = Reply::empty(200);
        reply.response.header("Location", &format!("/{}", request.bucket()));
        Ok(reply)
    }

    async fn delete_bucket(&self, request: &Request<'_>) -> Handled<'s, D> {
        self.authorize(request, Capabilities::OWNER, false)?;
        // In-progress uploads would be orphaned: S3 refuses too.
        let busy = self.service.store.with_state(|state| state.uploads.values().any(|u| u.bucket == request.bucket()));
        if busy {
            return Err(S3ErrorCode::BucketNotEmpty.into());
        }
        self.service.store.delete_bucket(request.bucket()).await?;
        Ok(Reply::empty(204))
    }

    fn head_bucket(&self, request: &Request<'_>) -> Handled<'s, D> {
        // Any capability on the bucket lets a key see that it exists.
        self.authorize(request, Capabilities::NONE, false)?;
        let mut reply = Reply::empty(200);
        reply.response.header("x-amz-bucket-region", &self.service.config.region);
        Ok(reply)
    }

    fn get_versioning(&self, request: &Request<'_>) -> Handled<'s, D> {
        self.authorize(request, Capabilities::LIST, false)?;
        let versioning =
            self.service.store.with_state(|state| state.buckets.get(request.bucket()).map(|b| b.versioning));
        let status = match versioning.ok_or(S3ErrorCode::NoSuchBucket)? {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(VersioningStatus::Enabled),
            Versioning::Suspended => Some(VersioningStatus::Suspended),
        };
        Ok(Reply::xml(VersioningConfiguration { status }.to_xml()))
    }

    async fn put_versioning<C: Connection>(&self, io: &mut ConnIo<'_, C>, request: &Request<'_>) -> Handled<'s, D> {
        self.authorize(request, Capabilities::OWNER, false)?;
        let body = io
            .read_small_body(self.service.config.max_xml_bytes)
            .await?
            .ok_or(S3ErrorCode::MaxMessageLengthExceeded)?;
        let config = VersioningConfigurationRequest::parse(&body).map_err(|_| S3ErrorCode::MalformedXML)?;
        let versioning = match config.status {
            VersioningStatus::Enabled => Versioning::Enabled,
            VersioningStatus::Suspended => Versioning::Suspended,
        };
        self.service.store.set_versioning(request.bucket(), versioning).await?;
        Ok(Reply::empty(200))
    }

    fn max_keys(request: &Request<'_>, name: &str) -> Result<usize, S3ErrorCode> {
        match request.param(name) {
            None => Ok(MAX_KEYS_LIMIT),
            Some(text) => text
                .parse::<i64>()
                .map(|n| n.clamp(0, MAX_KEYS_LIMIT as i64) as usize)
                .map_err(|_| S3ErrorCode::InvalidArgument),
        }
    }

    fn url_encoding(request: &Request<'_>) -> Result<bool, S3ErrorCode> {
        match request.param("encoding-type") {
            None => Ok(false),
            Some("url") => Ok(true),
            Some(_) => Err(S3ErrorCode::InvalidArgument),
        }
    }

    fn list_objects(&self, request: &Request<'_>, v2: bool) -> Handled<'s, D> {
        self.authorize(request, Capabilities::LIST, false)?;
        let prefix = request.param("prefix").unwrap_or("").to_owned();
        let delimiter = request.param("delimiter").filter(|d| !d.is_empty()).map(str::to_owned);
        let max_keys = Self::max_keys(request, "max-keys")?;
        let url_encoding = Self::url_encoding(request)?;
        let continuation = if v2 {
            match request.param("continuation-token") {
                Some(token) => Some(decode_token(token).ok_or(S3ErrorCode::InvalidArgument)?),
                None => None,
            }
        } else {
            None
        };
        let start_after =
            if v2 { request.param("start-after") } else { request.param("marker") }.filter(|s| !s.is_empty());
        let from = continuation.as_deref().or(start_after);
        let fetch_owner = !v2 || request.param("fetch-owner") == Some("true");
        let (contents, common_prefixes, next_marker, is_truncated) = self.service.store.with_state(|state| {
            let Some(bucket) = state.buckets.get(request.bucket()) else {
                return Err(S3ErrorCode::NoSuchBucket);
            };
            let owner = Owner { id: bucket.owner.clone(), display_name: bucket.owner.clone() };
            let query = ListQuery { prefix: &prefix, delimiter: delimiter.as_deref(), start_after: from, max_keys };
            let page = list(&bucket.objects, &query, |versions| versions.current_object().is_some());
            let mut contents = Vec::new();
            let mut prefixes = Vec::new();
            for item in &page.items {
                match item {
                    ListItem::Key(key, versions) => {
                        if let Some((_, object)) = versions.current_object() {
                            contents.push(ObjectEntry {
                                key: (*key).to_owned(),
                                last_modified_ms: object.last_modified_ms,
                                etag: quoted(&object.etag),
                                size: object.size_bytes,
                                owner: fetch_owner.then(|| owner.clone()),
                            });
                        }
                    }
                    ListItem::CommonPrefix(prefix) => prefixes.push(prefix.clone()),
                }
            }
            Ok((contents, prefixes, page.next_marker().map(str::to_owned), page.is_truncated))
        })?;
        let body = if v2 {
            ListObjectsV2Result {
                name: request.bucket().to_owned(),
                prefix,
                delimiter,
                max_keys: max_keys as u32,
                url_encoding,
                continuation_token: request.param("continuation-token").map(str::to_owned),
                next_continuation_token: next_marker.as_deref().map(encode_token),
                start_after: request.param("start-after").map(str::to_owned),
                is_truncated,
                contents,
                common_prefixes,
            }
            .to_xml()
        } else {
            ListObjectsV1Result {
                name: request.bucket().to_owned(),
                prefix,
                marker: request.param("marker").unwrap_or("").to_owned(),
                next_marker: if delimiter.is_some() { next_marker } else { None },
                max_keys: max_keys as u32,
                delimiter,
                is_truncated,
                url_encoding,
                contents,
                common_prefixes,
            }
            .to_xml()
        };
        Ok(Reply::xml(body))
    }

    fn list_versions(&self, request: &Request<'_>) -> Handled<'s, D> {
        self.authorize(request, Capabilities::LIST, false)?;
        let prefix = request.param("prefix").unwrap_or("").to_owned();
        let delimiter = request.param("delimiter").filter(|d| !d.is_empty()).map(str::to_owned);
        let max_keys = Self::max_keys(request, "max-keys")?;
        let url_encoding = Self::url_encoding(request)?;
        let key_marker = request.param("key-marker").filter(|s| !s.is_empty());
        let version_id_marker = match request.param("version-id-marker").filter(|s| !s.is_empty()) {
            Some(text) => Some(VersionId::parse(text).ok_or(S3ErrorCode::InvalidArgument)?),
            None => None,
        };
        let result = self.service.store.with_state(|state| {
            let Some(bucket) = state.buckets.get(request.bucket()) else {
                return Err(S3ErrorCode::NoSuchBucket);
            };
            let owner = Owner { id: bucket.owner.clone(), display_name: bucket.owner.clone() };
            let query = VersionQuery {
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                key_marker,
                version_id_marker,
                max_keys,
            };
            let page = list_versions(&bucket.objects, &query);
            let mut entries = Vec::new();
            let mut prefixes = Vec::new();
            for item in &page.items {
                match item {
                    VersionItem::Version { key, entry, is_latest } => entries.push(match entry {
                        Entry::Object { id, value } => VersionEntry::Version(ObjectVersion {
                            key: (*key).to_owned(),
                            version_id: id.to_string(),
                            is_latest: *is_latest,
                            last_modified_ms: value.last_modified_ms,
                            etag: quoted(&value.etag),
                            size: value.size_bytes,
                            owner: owner.clone(),
                        }),
                        Entry::DeleteMarker { id, last_modified_ms } => VersionEntry::DeleteMarker(DeleteMarkerEntry {
                            key: (*key).to_owned(),
                            version_id: id.to_string(),
                            is_latest: *is_latest,
                            last_modified_ms: *last_modified_ms,
                            owner: owner.clone(),
                        }),
                    }),
                    VersionItem::CommonPrefix(prefix) => prefixes.push(prefix.clone()),
                }
            }
            let next = page.next_markers();
            Ok(ListVersionsResult {
                name: request.bucket().to_owned(),
                prefix: prefix.clone(),
                key_marker: key_marker.unwrap_or("").to_owned(),
                version_id_marker: request.param("version-id-marker").unwrap_or("").to_owned(),
                next_key_marker: next.map(|(key, _)| key.to_owned()),
                next_version_id_marker: next.and_then(|(_, id)| id).map(|id| id.to_string()),
                max_keys: max_keys as u32,
                delimiter: delimiter.clone(),
                is_truncated: page.is_truncated,
                url_encoding,
                entries,
                common_prefixes: prefixes,
            })
        })?;
        Ok(Reply::xml(result.to_xml()))
    }

    fn list_uploads(&self, request: &Request<'_>) -> Handled<'s, D> {
        self.authorize(request, Capabilities::LIST, false)?;
        let prefix = request.param("prefix").unwrap_or("").to_owned();
        let delimiter = request.param("delimiter").filter(|d| !d.is_empty()).map(str::to_owned);
        let max_uploads = Self::max_keys(request, "max-uploads")?;
        let url_encoding = Self::url_encoding(request)?;
        let key_marker = request.param("key-marker").filter(|s| !s.is_empty());
        let id_marker = request.param("upload-id-marker").filter(|s| !s.is_empty());
        let owner = request.owner();
        let result = self.service.store.with_state(|state| {
            let uploads = state
                .uploads
                .iter()
                .filter(|(_, upload)| upload.bucket == request.bucket())
                .map(|(id, upload)| (upload.key.as_str(), id.as_str(), upload));
            let query = UploadQuery {
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                key_marker,
                upload_id_marker: id_marker,
                max_uploads,
            };
            let page = list_uploads(uploads, &query);
            let mut entries = Vec::new();
            let mut prefixes = Vec::new();
            for item in &page.items {
                match item {
                    UploadItem::Upload { key, upload_id, upload } => entries.push(UploadEntry {
                        key: (*key).to_owned(),
                        upload_id: (*upload_id).to_owned(),
                        initiator: owner.clone(),
                        owner: owner.clone(),
                        initiated_ms: upload.initiated_ms,
                    }),
                    UploadItem::CommonPrefix(prefix) => prefixes.push(prefix.clone()),
                }
            }
            let next = page.next_markers();
            ListMultipartUploadsResult {
                bucket: request.bucket().to_owned(),
                key_marker: key_marker.unwrap_or("").to_owned(),
                upload_id_marker: id_marker.unwrap_or("").to_owned(),
                next_key_marker: next.map(|(key, _)| key.to_owned()).unwrap_or_default(),
                next_upload_id_marker: next.and_then(|(_, id)| id).map(str::to_owned).unwrap_or_default(),
                prefix: prefix.clone(),
                delimiter: delimiter.clone(),
                max_uploads: max_uploads as u32,
                is_truncated: page.is_truncated,
                url_encoding,
                uploads: entries,
                common_prefixes: prefixes,
            }
        });
        Ok(Reply::xml(result.to_xml()))
    }

    async fn delete_objects<C: Connection>(&self, io: &mut ConnIo<'_, C>, request: &Request<'_>) -> Handled<'s, D> {
        let can_list = self.authorize(request, Capabilities::WRITE, false)?;
        let body = io
            .read_small_body(self.service.config.max_xml_bytes)
            .await?
            .ok_or(S3ErrorCode::MaxMessageLengthExceeded)?;
        let delete = Delete::parse(&body).map_err(|_| S3ErrorCode::MalformedXML)?;
        let _ = can_list;
        let mut result = DeleteResult::default();
        for object in delete.objects {
            let version = match object.version_id.as_deref().map(VersionId::parse) {
                None => None,
                Some(Some(id)) => Some(id),
                Some(None) => {
                    result.errors.push(DeleteErrorEntry {
                        key: object.key,
                        version_id: object.version_id,
                        code: S3ErrorCode::NoSuchVersion,
                        message: None,
                    });
                    continue;
                }
            };
            if validate_object_key(&object.key).is_err() {
                result.errors.push(DeleteErrorEntry {
                    key: object.key,
                    version_id: object.version_id,
                    code: S3ErrorCode::KeyTooLongError,
                    message: None,
                });
                continue;
            }
            match self.service.store.delete_object(request.bucket(), &object.key, version, self.now_ms()).await {
                Ok(outcome) => {
                    let name =
                        if outcome.marker.is_some() { EventName::DeleteMarkerCreated } else { EventName::Delete };
                    self.emit(request, name, &object.key, None, outcome.marker.or(version));
                    if !delete.quiet {
                        result.deleted.push(DeletedEntry {
                            key: object.key,
                            version_id: object.version_id,
                            delete_marker: outcome.marker.is_some(),
                            delete_marker_version_id: outcome.marker.map(|id| id.to_string()),
                        });
                    }
                }
                // Deleting what is not there succeeds in S3.
                Err(StoreError::Meta(MetaError::NoSuchKey | MetaError::NoSuchVersion)) => {
                    if !delete.quiet {
                        result.deleted.push(DeletedEntry {
                            key: object.key,
                            version_id: object.version_id,
                            delete_marker: false,
                            delete_marker_version_id: None,
                        });
                    }
                }
                Err(error) => {
                    let code = store_error(&error);
                    if code == S3ErrorCode::InternalError {
                        return Err(error.into());
                    }
                    result.errors.push(DeleteErrorEntry {
                        key: object.key,
                        version_id: object.version_id,
                        code,
                        message: None,
                    });
                }
            }
        }
        Ok(Reply::xml(result.to_xml()))
    }

    /// Streams a request body into a new object; returns what was written.
    async fn receive_object<C: Connection>(
        &self,
        io: &mut ConnIo<'_, C>,
        request: &mut Request<'_>,
    ) -> Result<(WrittenObject<'s, SpaceCell>, Vec<(String, String)>), HandlerError> {
        let headers = &request.head.headers;
        let declared = declared_size(request)?;
        let max = self.service.config.max_object_bytes;
        if declared.is_some_and(|n| n > max) {
            return Err(S3ErrorCode::EntityTooLarge.into());
        }
        let content_md5 = match headers.get("content-md5") {
            Some(text) => Some(decode_md5(text).ok_or(S3ErrorCode::InvalidDigest)?),
            None => None,
        };
        let checks = super::checksums::checks_for(headers)?;
        let body = request.take_body();
        let mut writer = self.service.store.writer();
        // A buffer the size of a small object, not of a chunk: it is
        // zeroed when made, and a small object's buffer is what waits in
        // memory until its write-back.
        if let Some(size) = declared {
            writer.expect_size(size);
        }
        let mut payload = PayloadReader::new(io, body, declared, max, checks);
        let mut piece = Vec::new();
        while payload.next(&mut piece).await? {
            writer.write(&piece).await.map_err(|e| HandlerError::from(StoreError::Object(e)))?;
        }
        let checksums = payload.finish()?;
        let written = writer.finish().await.map_err(|e| HandlerError::from(StoreError::Object(e)))?;
        if content_md5.is_some_and(|md5| md5 != written.md5) {
            return Err(S3ErrorCode::BadDigest.into());
        }
        Ok((written, checksums))
    }

    async fn put_object<C: Connection>(&self, io: &mut ConnIo<'_, C>, request: &mut Request<'_>) -> Handled<'s, D> {
        self.authorize(request, Capabilities::WRITE, false)?;
        validate_object_key(request.key())?;
        let mut info = put_info(&request.head.headers)?;
        // Refuse over quota before reading the body, when its size is known.
        if let Some(size) = declared_size(request)? {
            self.service
                .store
                .with_state(|state| state.put_fits_quota(request.bucket(), request.key(), size))
                .map_err(|e| HandlerError::from(StoreError::Meta(e)))?;
        }
        let (written, checksums) = self.receive_object(io, request).await?;
        info.checksums = checksums.clone();
        let (id, meta) =
            self.service.store.put_object(request.bucket(), request.key(), written, info, self.now_ms()).await?;
        self.emit(request, EventName::Put, request.key(), Some((&meta, id)), None);
        let mut reply = Reply::empty(200);
        reply.response.header("ETag", &quoted(&meta.etag));
        if id != VersionId::Null {
            reply.response.header("x-amz-version-id", &id.to_string());
        }
        add_checksum_headers(&mut reply.response, &checksums);
        Ok(reply)
    }

    fn get_object(&self, request: &Request<'_>, send_body: bool) -> Handled<'s, D> {
        let can_list = self.authorize(request, Capabilities::READ, false)?;
        let version = request.version_id()?;
        let missing = |code: S3ErrorCode| if can_list { code } else { S3ErrorCode::AccessDenied };
        let handle = match self.service.store.open_object(request.bucket(), request.key(), version) {
            Ok(handle) => handle,
            Err(LookupError::DeleteMarker { id, last_modified_ms }) if can_list => {
                let code = if version.is_some() { S3ErrorCode::MethodNotAllowed } else { S3ErrorCode::NoSuchKey };
                let mut error = request.error(code);
                error.extra_headers.push(("x-amz-delete-marker".into(), "true".into()));
                error.extra_headers.push(("x-amz-version-id".into(), id.to_string()));
                error.extra_headers.push(("Last-Modified".into(), format_http_date(last_modified_ms / 1000)));
                return Err(HandlerError::Error(error));
            }
            Err(error) => return Err(missing(lookup_error(error)).into()),
        };
        let meta = &handle.meta;
        let size = meta.size_bytes;
        let etag = quoted(&meta.etag);
        check_conditions(&request.head.headers, &etag, meta.last_modified_ms)?;
        let mut status = 200;
        let (mut start, mut end) = (0, size);
        let mut content_range = None;
        if let Some(part) = request.param("partNumber") {
            let number = part.parse::<usize>().ok().filter(|n| *n >= 1).ok_or(S3ErrorCode::InvalidArgument)?;
            let sizes: Vec<u64> = if meta.part_sizes.is_empty() { alloc::vec![size] } else { meta.part_sizes.clone() };
            if number > sizes.len() {
                return Err(S3ErrorCode::InvalidPartNumber.into());
            }
            start = sizes[..number - 1].iter().sum();
            end = start + sizes[number - 1];
            if !meta.part_sizes.is_empty() {
                status = 206;
                content_range = Some(format!("bytes {start}-{}/{size}", end.saturating_sub(1)));
            }
        } else if let Some(range) = request.header("range") {
            match resolve_range(range, size) {
                Ok(Some(range)) => {
                    status = 206;
                    start = range.start;
                    end = range.start + range.len();
                    content_range = Some(range.content_range(size));
                }
                Ok(None) => {}
                Err(_) => {
                    let mut error = request.error(S3ErrorCode::InvalidRange);
                    error.extra_headers.push(("Content-Range".into(), unsatisfied_content_range(size)));
                    return Err(HandlerError::Error(error));
                }
            }
        }
        let mut response = crate::s3::http::Response::new(status);
        object_headers(&mut response, meta, handle.id, request, status == 200);
        if let Some(range) = content_range {
            response.header("Content-Range", &range);
        }
        if !meta.part_sizes.is_empty() && request.param("partNumber").is_some() {
            response.header("x-amz-mp-parts-count", &meta.part_sizes.len().to_string());
        }
        Ok(Reply { response, body: ReplyBody::Object { handle, start, end, send: send_body } })
    }

    async fn delete_object(&self, request: &Request<'_>) -> Handled<'s, D> {
        self.authorize(request, Capabilities::WRITE, false)?;
        let version = request.version_id()?;
        let mut reply = Reply::empty(204);
        match self.service.store.delete_object(request.bucket(), request.key(), version, self.now_ms()).await {
            Ok(outcome) => {
                let name = if outcome.marker.is_some() { EventName::DeleteMarkerCreated } else { EventName::Delete };
                self.emit(request, name, request.key(), None, outcome.marker.or(version));
                if let Some(marker) = outcome.marker {
                    reply.response.header("x-amz-delete-marker", "true");
                    reply.response.header("x-amz-version-id", &marker.to_string());
                } else if let Some(id) = version {
                    reply.response.header("x-amz-version-id", &id.to_string());
                }
            }
            Err(StoreError::Meta(MetaError::NoSuchKey | MetaError::NoSuchVersion)) => {}
            Err(error) => return Err(error.into()),
        }
        Ok(reply)
    }

    async fn create_upload(&self, request: &Request<'_>) -> Handled<'s, D> {
        self.authorize(request, Capabilities::WRITE, false)?;
        validate_object_key(request.key())?;
        let info = put_info(&request.head.headers)?;
        let template = UploadTemplate { content_type: info.content_type, headers: info.headers };
        let upload_id =
            self.service.store.create_multipart(request.bucket(), request.key(), template, self.now_ms()).await?;
        let result = InitiateMultipartUploadResult {
            bucket: request.bucket().to_owned(),
            key: request.key().to_owned(),
            upload_id,
        };
        let mut reply = Reply::xml(result.to_xml());
        if let Some(algorithm) = request.header("x-amz-checksum-algorithm") {
            reply.response.header("x-amz-checksum-algorithm", algorithm);
        }
        Ok(reply)
    }

    /// The upload exists and belongs to the request's bucket and key.
    fn check_upload(&self, request: &Request<'_>, upload_id: &str) -> Result<(), S3ErrorCode> {
        self.service.store.with_state(|state| match state.uploads.get(upload_id) {
            Some(upload) if upload.bucket == request.bucket() && upload.key == request.key() => Ok(()),
            _ => Err(S3ErrorCode::NoSuchUpload),
        })
    }

    async fn upload_part<C: Connection>(&self, io: &mut ConnIo<'_, C>, request: &mut Request<'_>) -> Handled<'s, D> {
        self.authorize(request, Capabilities::WRITE, false)?;
        let (upload_id, part_number) = upload_part_params(request)?;
        self.check_upload(request, &upload_id)?;
        let (written, checksums) = self.receive_object(io, request).await?;
        let part =
            self.service.store.put_part(&upload_id, part_number, written, checksums.clone(), self.now_ms()).await?;
        let mut reply = Reply::empty(200);
        reply.response.header("ETag", &quoted(&hex(&part.md5)));
        add_checksum_headers(&mut reply.response, &checksums);
        Ok(reply)
    }

    /// CopyObject, or UploadPartCopy when `part` is given.
    async fn copy_object(&self, request: &Request<'_>, part: Option<(String, u32)>) -> Handled<'s, D> {
        self.authorize(request, Capabilities::WRITE, false)?;
        validate_object_key(request.key())?;
        let source = request.header("x-amz-copy-source").unwrap_or("");
        let (source_path, source_version) = match source.split_once("?versionId=") {
            Some((path, version)) => (path, Some(VersionId::parse(version).ok_or(S3ErrorCode::InvalidArgument)?)),
            None => (source, None),
        };
        let source_path = decode(source_path.trim_start_matches('/')).map_err(|_| S3ErrorCode::InvalidArgument)?;
        let (source_bucket, source_key) = source_path.split_once('/').ok_or(S3ErrorCode::InvalidArgument)?;
        let source_request = Request {
            head: request.head,
            id: request.id,
            bucket: Some(source_bucket.to_owned()),
            key: Some(source_key.to_owned()),
            query: Vec::new(),
            principal: request.principal.clone(),
            body: None,
            resource: format!("/{source_path}"),
        };
        let can_list = self.authorize(&source_request, Capabilities::READ, false)?;
        let handle = self
            .service
            .store
            .open_object(source_bucket, source_key, source_version)
            .map_err(|e| if can_list { lookup_error(e) } else { S3ErrorCode::AccessDenied })?;
        let etag = quoted(&handle.meta.etag);
        check_copy_conditions(&request.head.headers, &etag, handle.meta.last_modified_ms)?;
        let size = handle.meta.size_bytes;
        let (start, end) = match (&part, request.header("x-amz-copy-source-range")) {
            (Some(_), Some(range)) => match resolve_range(range, size) {
                Ok(Some(range)) => (range.start, range.start + range.len()),
                _ => return Err(S3ErrorCode::InvalidRange.into()),
            },
            _ => (0, size),
        };
        let mut writer = self.service.store.writer();
        let mut reader = handle.read(start..end).map_err(|e| HandlerError::from(StoreError::Object(e)))?;
        while let Some(piece) = reader.next().await {
            let piece = piece.map_err(|e| HandlerError::from(StoreError::Object(e)))?;
            writer.write(piece.as_slice()).await.map_err(|e| HandlerError::from(StoreError::Object(e)))?;
        }
        let written = writer.finish().await.map_err(|e| HandlerError::from(StoreError::Object(e)))?;
        let now = self.now_ms();
        if let Some((upload_id, part_number)) = part {
            self.check_upload(request, &upload_id)?;
            let part = self.service.store.put_part(&upload_id, part_number, written, Vec::new(), now).await?;
            let result = CopyPartResult {
                etag: quoted(&hex(&part.md5)),
                last_modified_ms: now,
                checksums: Checksums::default(),
            };
            return Ok(Reply::xml(result.to_xml()));
        }
        let info = match request.header("x-amz-metadata-directive") {
            Some(d) if d.eq_ignore_ascii_case("REPLACE") => put_info(&request.head.headers)?,
            Some(d) if !d.eq_ignore_ascii_case("COPY") => return Err(S3ErrorCode::InvalidArgument.into()),
            _ => PutInfo {
                content_type: handle.meta.content_type.clone(),
                headers: handle.meta.headers.clone(),
                checksums: handle.meta.checksums.clone(),
            },
        };
        let source_version_id = handle.id;
        drop(handle);
        let (id, meta) = self.service.store.put_object(request.bucket(), request.key(), written, info, now).await?;
        self.emit(request, EventName::Copy, request.key(), Some((&meta, id)), None);
        let result = CopyObjectResult {
            etag: quoted(&meta.etag),
            last_modified_ms: meta.last_modified_ms,
            checksums: checksums_of(&meta.checksums),
        };
        let mut reply = Reply::xml(result.to_xml());
        if id != VersionId::Null {
            reply.response.header("x-amz-version-id", &id.to_string());
        }
        if source_version_id != VersionId::Null {
            reply.response.header("x-amz-copy-source-version-id", &source_version_id.to_string());
        }
        Ok(reply)
    }

    async fn complete_upload<C: Connection>(&self, io: &mut ConnIo<'_, C>, request: &Request<'_>) -> Handled<'s, D> {
        self.authorize(request, Capabilities::WRITE, false)?;
        let upload_id = request.param("uploadId").unwrap_or("").to_owned();
        self.check_upload(request, &upload_id)?;
        let body = io
            .read_small_body(self.service.config.max_xml_bytes)
            .await?
            .ok_or(S3ErrorCode::MaxMessageLengthExceeded)?;
        let complete = CompleteMultipartUpload::parse(&body).map_err(|_| S3ErrorCode::MalformedXML)?;
        complete.check_order()?;
        let parts: Vec<(u32, String)> = complete.parts.iter().map(|p| (p.part_number, p.etag.clone())).collect();
        let (bucket, key, id, meta) = self.service.store.complete_multipart(&upload_id, &parts, self.now_ms()).await?;
        self.emit(request, EventName::CompleteMultipartUpload, &key, Some((&meta, id)), None);
        let result = CompleteMultipartUploadResult {
            location: format!("/{bucket}/{key}"),
            bucket,
            key,
            etag: quoted(&meta.etag),
            checksums: Checksums::default(),
        };
        let mut reply = Reply::xml(result.to_xml());
        if id != VersionId::Null {
            reply.response.header("x-amz-version-id", &id.to_string());
        }
        Ok(reply)
    }

    async fn abort_upload(&self, request: &Request<'_>) -> Handled<'s, D> {
        self.authorize(request, Capabilities::WRITE, false)?;
        let upload_id = request.param("uploadId").unwrap_or("").to_owned();
        self.check_upload(request, &upload_id)?;
        self.service.store.abort_multipart(&upload_id).await?;
        Ok(Reply::empty(204))
    }

    fn list_parts(&self, request: &Request<'_>) -> Handled<'s, D> {
        self.authorize(request, Capabilities::READ, false)?;
        let upload_id = request.param("uploadId").unwrap_or("").to_owned();
        self.check_upload(request, &upload_id)?;
        let max_parts = Self::max_keys(request, "max-parts")?;
        let marker = match request.param("part-number-marker") {
            Some(text) => text.parse::<u32>().map_err(|_| S3ErrorCode::InvalidArgument)?,
            None => 0,
        };
        let owner = request.owner();
        let (parts, next) = self.service.store.with_state(|state| {
            let Some(upload) = state.uploads.get(&upload_id) else {
                return Err(S3ErrorCode::NoSuchUpload);
            };
            let (page, next) = list_parts(&upload.parts, (marker > 0).then_some(marker), max_parts);
            let parts: Vec<PartEntry> = page
                .into_iter()
                .map(|(number, part)| PartEntry {
                    part_number: number,
                    last_modified_ms: part.last_modified_ms,
                    etag: quoted(&hex(&part.md5)),
                    size: part.size_bytes,
                    checksums: checksums_of(&part.checksums),
                })
                .collect();
            Ok((parts, next))
        })?;
        let is_truncated = next.is_some();
        let result = ListPartsResult {
            bucket: request.bucket().to_owned(),
            key: request.key().to_owned(),
            upload_id,
            part_number_marker: marker,
            next_part_number_marker: parts.last().map_or(0, |p| p.part_number),
            max_parts: max_parts as u32,
            is_truncated,
            parts,
            initiator: owner.clone(),
            owner,
        };
        Ok(Reply::xml(result.to_xml()))
    }
}

/// The headers of GET and HEAD for a stored object.
/// `whole`: the response carries the whole object, so the whole object's
/// checksum applies (a range or a part gets none, as in S3: a client
/// would check the partial bytes against it and fail).
fn object_headers(
    response: &mut crate::s3::http::Response,
    meta: &ObjectMeta,
    id: VersionId,
    request: &Request<'_>,
    whole: bool,
) {
    response.header("ETag", &quoted(&meta.etag));
    response.header("Last-Modified", &format_http_date(meta.last_modified_ms / 1000));
    response.header("Accept-Ranges", "bytes");
    let content_type = meta.content_type.as_deref().unwrap_or("binary/octet-stream");
    response.header("Content-Type", request.param("response-content-type").unwrap_or(content_type));
    for (name, value) in &meta.headers {
        let overridden = match name.as_str() {
            "cache-control" => request.param("response-cache-control"),
            "content-disposition" => request.param("response-content-disposition"),
            "content-encoding" => request.param("response-content-encoding"),
            "content-language" => request.param("response-content-language"),
            "expires" => request.param("response-expires"),
            _ => None,
        };
        response.header(name, overridden.unwrap_or(value));
    }
    for (param, header, name) in [
        ("response-cache-control", "Cache-Control", "cache-control"),
        ("response-content-disposition", "Content-Disposition", "content-disposition"),
        ("response-content-encoding", "Content-Encoding", "content-encoding"),
        ("response-content-language", "Content-Language", "content-language"),
        ("response-expires", "Expires", "expires"),
    ] {
        if let Some(value) = request.param(param)
            && !meta.headers.iter().any(|(n, _)| n == name)
        {
            response.header(header, value);
        }
    }
    if id != VersionId::Null {
        response.header("x-amz-version-id", &id.to_string());
    }
    if whole
        && request.header("x-amz-checksum-mode").is_some_and(|m| m.eq_ignore_ascii_case("ENABLED"))
        && meta.part_sizes.is_empty()
    {
        add_checksum_headers(response, &meta.checksums);
    }
}

fn add_checksum_headers(response: &mut crate::s3::http::Response, checksums: &[(String, String)]) {
    for (algorithm, value) in checksums {
        if let Some(algorithm) = ChecksumAlgorithm::from_algorithm_name(algorithm) {
            response.header(algorithm.header_name(), value);
        }
    }
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate == etag || candidate.trim_start_matches("W/") == etag)
}

/// If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, with
/// RFC 9110's precedence (an ETag condition makes the date one moot).
fn check_conditions(headers: &Headers, etag: &str, last_modified_ms: u64) -> Result<(), S3ErrorCode> {
    let modified_s = (last_modified_ms / 1000) as i64;
    if let Some(list) = headers.get("if-match") {
        if !etag_matches(list, etag) {
            return Err(S3ErrorCode::PreconditionFailed);
        }
    } else if let Some(date) = headers.get("if-unmodified-since").and_then(parse_http_date)
        && modified_s > date
    {
        return Err(S3ErrorCode::PreconditionFailed);
    }
    if let Some(list) = headers.get("if-none-match") {
        if etag_matches(list, etag) {
            return Err(S3ErrorCode::NotModified);
        }
    } else if let Some(date) = headers.get("if-modified-since").and_then(parse_http_date)
        && modified_s <= date
    {
        return Err(S3ErrorCode::NotModified);
    }
    Ok(())
}

/// The `x-amz-copy-source-if-*` conditions of CopyObject.
fn check_copy_conditions(headers: &Headers, etag: &str, last_modified_ms: u64) -> Result<(), S3ErrorCode> {
    let modified_s = (last_modified_ms / 1000) as i64;
    if let Some(list) = headers.get("x-amz-copy-source-if-match")
        && !etag_matches(list, etag)
    {
        return Err(S3ErrorCode::PreconditionFailed);
    }
    if let Some(list) = headers.get("x-amz-copy-source-if-none-match")
        && etag_matches(list, etag)
    {
        return Err(S3ErrorCode::PreconditionFailed);
    }
    if let Some(date) = headers.get("x-amz-copy-source-if-unmodified-since").and_then(parse_http_date)
        && modified_s > date
    {
        return Err(S3ErrorCode::PreconditionFailed);
    }
    if let Some(date) = headers.get("x-amz-copy-source-if-modified-since").and_then(parse_http_date)
        && modified_s <= date
    {
        return Err(S3ErrorCode::PreconditionFailed);
    }
    Ok(())
}

/// The payload size the client announced: the decoded length of an
/// aws-chunked body, else the HTTP framing's (`None`: plain chunked, not
/// known until the end).
fn declared_size(request: &Request<'_>) -> Result<Option<u64>, S3ErrorCode> {
    match request.header("x-amz-decoded-content-length") {
        Some(text) => text.trim().parse().map(Some).map_err(|_| S3ErrorCode::InvalidArgument),
        None => Ok(match request.head.body {
            crate::s3::http::BodyFraming::Length(n) => Some(n),
            crate::s3::http::BodyFraming::Chunked => None,
            crate::s3::http::BodyFraming::None => Some(0),
        }),
    }
}

/// Continuation tokens are the hex of the key to resume after: opaque to
/// clients and safe in any URL or XML without escaping.
fn encode_token(marker: &str) -> String {
    hex(marker.as_bytes())
}

fn decode_token(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..token.len()).step_by(2).map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

/// `Content-MD5`: base64 of 16 bytes.
fn decode_md5(text: &str) -> Option<[u8; 16]> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()?;
    bytes.try_into().ok()
}
