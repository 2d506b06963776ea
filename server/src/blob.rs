//! The audio store: content-addressed blobs (key `sha256/<2 hex>/<64 hex>`) over object_store,
//! at the URL of `blob_url`: a local directory by default (`<data_dir>/audio`), written with
//! fsync so a stored blob survives a crash, or an S3-compatible bucket (`s3://bucket/prefix`:
//! AWS S3, Cloudflare R2, MinIO, Ceph), whose endpoint, region and credentials come from the
//! usual AWS variables.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::error::Error;

#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
}

/// Where `blob_url` says blobs live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobLocation {
    /// `file:///absolute/path`; an empty URL is `<data_dir>/audio`.
    Directory(PathBuf),
    /// `s3://bucket` or `s3://bucket/prefix`.
    S3 { bucket: String, prefix: String },
}

impl BlobLocation {
    /// Parses `url`; the error says what a valid one looks like.
    pub fn parse(url: &str, data_dir: &Path) -> Result<Self, String> {
        if url.is_empty() {
            return Ok(Self::Directory(data_dir.join("audio")));
        }
        if let Some(path) = url.strip_prefix("file://") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(
                    "a file:// URL needs an absolute path (file:///var/lib/earshot/audio)".into()
                );
            }
            return Ok(Self::Directory(path));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|byte| {
                    byte.is_ascii_lowercase() || byte.is_ascii_digit() || b".-".contains(&byte)
                });
            if !bucket_ok {
                return Err("the bucket of an s3:// URL must be 3 to 63 lowercase letters, digits, dots or hyphens".into());
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|part| part == "." || part == "..") || prefix.contains("//") {
                return Err("the prefix of an s3:// URL must not have empty, . or .. parts".into());
            }
            return Ok(Self::S3 { bucket: bucket.to_owned(), prefix: prefix.to_owned() });
        }
        Err("must be empty (<data_dir>/audio), file:///absolute/path or s3://bucket/prefix".into())
    }
}

impl BlobStore {
    /// The store `location` names. An S3 bucket takes its endpoint (`AWS_ENDPOINT_URL`),
    /// region (`AWS_REGION`, `AWS_DEFAULT_REGION`), credentials (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, or the instance's role) and addressing
    /// (path-style unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`) from the environment; an
    /// `http://` endpoint (a MinIO on the local network) is allowed because it was named.
    pub fn open(location: &BlobLocation) -> Result<Self, Error> {
        match location {
            BlobLocation::Directory(directory) => Self::local(directory),
            BlobLocation::S3 { bucket, prefix } => {
                crate::crypto::install_tls_provider();
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_allow_http(true)
                    .build()
                    .map_err(|error| Error::internal("opening the audio bucket", error))?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(store)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(store, prefix.as_str()))
                };
                Ok(Self { store })
            }
        }
    }

    /// A store rooted at `directory`, created if missing.
    pub fn local(directory: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(directory)
            .map_err(|error| Error::internal("creating the audio directory", error))?;
        let store = LocalFileSystem::new_with_prefix(directory)
            .map_err(|error| Error::internal("opening the audio directory", error))?
            .with_fsync(true);
        Ok(Self { store: Arc::new(store) })
    }

    /// The key a blob with this SHA-256 (hex) is stored under.
    pub fn key_for(sha256_hex: &str) -> String {
        format!("sha256/{}/{sha256_hex}", &sha256_hex[..2])
    }

    /// Stores `bytes` under `key` durably, unless a blob is already there (content-addressed keys
    /// make an existing blob the same bytes).
    pub async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<(), Error> {
        let path = ObjectPath::from(key);
        match self.store.head(&path).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(Error::internal("checking the audio store", error)),
        }
        let context = "writing audio";
        if bytes.len() <= WRITER_CHUNK_BYTES {
            self.store
                .put(&path, PutPayload::from_bytes(bytes))
                .await
                .map_err(|error| Error::internal(context, error))?;
            return Ok(());
        }
        // Large audio (a long recording fetched from a URL) in parts, as uploads are: one S3
        // PUT carries at most 5 GiB, and a failed part is retried alone.
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|error| Error::internal(context, error))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, WRITER_CHUNK_BYTES);
        for chunk in bytes.chunks(WRITER_CHUNK_BYTES) {
            writer.wait_for_capacity(2).await.map_err(|error| Error::internal(context, error))?;
            writer.write(chunk);
        }
        writer.finish().await.map_err(|error| Error::internal(context, error))?;
        Ok(())
    }

    /// Starts writing a blob whose hash is known only at the end (an upload as it arrives): the
    /// bytes go to a staging object and are hashed on the way; `BlobWriter::commit` moves them
    /// under their content address.
    pub async fn writer(&self) -> Result<BlobWriter, Error> {
        let staging = ObjectPath::from(format!("staging/{}", uuid::Uuid::new_v4().simple()));
        let upload = self
            .store
            .put_multipart(&staging)
            .await
            .map_err(|error| Error::internal("starting an audio upload", error))?;
        Ok(BlobWriter {
            upload: WriteMultipart::new_with_chunk_size(upload, WRITER_CHUNK_BYTES),
            staging,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::with_capacity(HEAD_BYTES),
        })
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, Error> {
        let result = self
            .store
            .get(&ObjectPath::from(key))
            .await
            .map_err(|error| Error::internal("reading audio", error))?;
        result.bytes().await.map_err(|error| Error::internal("reading audio", error))
    }

    /// Bytes `range` of the blob under `key` (a player seeking in a recording).
    pub async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes, Error> {
        self.store
            .get_range(&ObjectPath::from(key), range)
            .await
            .map_err(|error| Error::internal("reading audio", error))
    }

    /// Removes the blob under `key`; one already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(Error::internal("removing audio", error)),
        }
    }

    /// The blob as a stream of chunks, for large downloads.
    pub async fn stream(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, Error>>, Error> {
        let result = self
            .store
            .get(&ObjectPath::from(key))
            .await
            .map_err(|error| Error::internal("reading audio", error))?;
        Ok(result.into_stream().map_err(|error| Error::internal("reading audio", error)).boxed())
    }
}

/// The variable naming an S3 bucket URL (`s3://bucket`, with the AWS variables of its server)
/// where tests may store blobs; unset, they use a local directory.
#[cfg(any(test, feature = "testing"))]
pub const TEST_BLOB_URL_VARIABLE: &str = "EARSHOT_TEST_BLOB_URL";

#[cfg(any(test, feature = "testing"))]
impl BlobStore {
    /// A store for a test: a fresh prefix of the bucket of EARSHOT_TEST_BLOB_URL when it is set,
    /// else `directory`.
    #[allow(clippy::unwrap_used)]
    pub fn for_tests(directory: &Path) -> Self {
        let location = match std::env::var(TEST_BLOB_URL_VARIABLE) {
            Ok(url) => {
                let url =
                    format!("{}/{}", url.trim_end_matches('/'), uuid::Uuid::new_v4().simple());
                BlobLocation::parse(&url, directory).unwrap()
            }
            Err(_) => BlobLocation::Directory(directory.to_owned()),
        };
        Self::open(&location).unwrap()
    }

    /// Every key in the store, sorted.
    #[allow(clippy::unwrap_used)]
    pub async fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .store
            .list(None)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        keys
    }
}

/// Bytes buffered before a part is written to the staging object: S3's smallest part (every
/// part of a multipart upload but the last must have at least 5 MiB).
const WRITER_CHUNK_BYTES: usize = 5 << 20;
/// Leading bytes kept for sniffing the format.
const HEAD_BYTES: usize = 64;

/// A blob being written; see `BlobStore::writer`. Call `commit` or `abort`: dropped, it leaves a
/// staging object behind.
pub struct BlobWriter {
    upload: WriteMultipart,
    staging: ObjectPath,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BlobWriter")
            .field("staging", &self.staging)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl BlobWriter {
    /// Appends `chunk`, waiting while earlier parts are still being written.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.upload
            .wait_for_capacity(2)
            .await
            .map_err(|error| Error::internal("writing audio", error))?;
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        let room = HEAD_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        self.upload.write(chunk);
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The first bytes, enough for `sniff_audio_content_type`.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// The SHA-256 (hex) of everything written.
    pub fn sha256_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.hasher.clone().finalize())
    }

    /// Makes the bytes durable under `key` (normally `BlobStore::key_for` of `sha256_hex`).
    /// Content-addressed keys make an existing blob the same bytes, so replacing it is harmless.
    pub async fn commit(self, store: &BlobStore, key: &str) -> Result<(), Error> {
        self.upload.finish().await.map_err(|error| Error::internal("writing audio", error))?;
        store
            .store
            .rename(&self.staging, &ObjectPath::from(key))
            .await
            .map_err(|error| Error::internal("storing audio", error))
    }

    /// Discards what was written.
    pub async fn abort(self) {
        if let Err(error) = self.upload.abort().await {
            tracing::warn!(error = %error, "discarding an audio upload");
        }
    }
}

/// The audio format of `bytes` by its magic numbers, as a MIME type; None when unrecognised.
pub fn sniff_audio_content_type(bytes: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if bytes.len() >= 12 && starts(b"RIFF") && &bytes[8..12] == b"WAVE" {
        Some("audio/wav")
    } else if starts(b"ID3") || (bytes.len() >= 2 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0) {
        Some("audio/mpeg")
    } else if starts(b"OggS") {
        Some("audio/ogg")
    } else if starts(b"fLaC") {
        Some("audio/flac")
    } else if starts(b".snd") {
        Some("audio/basic")
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        Some("audio/mp4")
    } else if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some("audio/webm")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_common_audio_formats() {
        let mut wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        wav.extend_from_slice(&[0; 8]);
        assert_eq!(sniff_audio_content_type(&wav), Some("audio/wav"));
        assert_eq!(sniff_audio_content_type(b"ID3\x04\0\0\0\0"), Some("audio/mpeg"));
        assert_eq!(sniff_audio_content_type(&[0xFF, 0xFB, 0x90, 0x00]), Some("audio/mpeg"));
        assert_eq!(sniff_audio_content_type(b"OggS\0\x02"), Some("audio/ogg"));
        assert_eq!(sniff_audio_content_type(b"fLaC\0\0\0\x22"), Some("audio/flac"));
        assert_eq!(sniff_audio_content_type(b"hello world, not audio"), None);
    }

    #[test]
    fn blob_urls_name_a_directory_or_a_bucket() {
        let data = Path::new("/var/lib/earshot");
        let parse = |url| BlobLocation::parse(url, data);
        assert_eq!(parse(""), Ok(BlobLocation::Directory(data.join("audio"))));
        assert_eq!(parse("file:///srv/audio"), Ok(BlobLocation::Directory("/srv/audio".into())));
        let bucket = |bucket: &str, prefix: &str| {
            Ok(BlobLocation::S3 { bucket: bucket.into(), prefix: prefix.into() })
        };
        assert_eq!(parse("s3://calls"), bucket("calls", ""));
        assert_eq!(parse("s3://calls/"), bucket("calls", ""));
        assert_eq!(parse("s3://calls.eu-1/earshot/prod/"), bucket("calls.eu-1", "earshot/prod"));
        for bad in [
            "file://relative/audio",
            "s3://",
            "s3://Calls",
            "s3://ab",
            "s3://calls/a//b",
            "s3://calls/../x",
            "gs://calls",
            "/srv/audio",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    /// On a local directory, or on S3 when EARSHOT_TEST_BLOB_URL is set.
    #[tokio::test]
    async fn blobs_round_trip_and_existing_keys_are_kept() {
        let directory = tempfile::tempdir().unwrap();
        let store = BlobStore::for_tests(directory.path());
        let sha = crate::crypto::sha256_hex(b"audio bytes");
        let key = BlobStore::key_for(&sha);
        store.put_if_absent(&key, Bytes::from_static(b"audio bytes")).await.unwrap();
        store.put_if_absent(&key, Bytes::from_static(b"audio bytes")).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"audio bytes"));
        let chunks: Vec<Bytes> = store.stream(&key).await.unwrap().try_collect().await.unwrap();
        assert_eq!(chunks.concat(), b"audio bytes");
        assert_eq!(store.keys().await, [key]);
    }

    /// An upload larger than two parts (S3 refuses parts under 5 MiB but the last) lands under
    /// its content address, byte for byte, and leaves no staging object; an aborted one leaves
    /// nothing.
    #[tokio::test]
    async fn uploads_land_under_their_content_address() {
        let directory = tempfile::tempdir().unwrap();
        let store = BlobStore::for_tests(directory.path());
        let bytes: Vec<u8> =
            (0..(11 << 20) + 123).map(|index: usize| (index * 7 % 251) as u8).collect();
        let mut writer = store.writer().await.unwrap();
        for chunk in bytes.chunks(64 << 10) {
            writer.write(chunk).await.unwrap();
        }
        assert_eq!(writer.sha256_hex(), crate::crypto::sha256_hex(&bytes));
        let key = BlobStore::key_for(&writer.sha256_hex());
        writer.commit(&store, &key).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), bytes.as_slice());
        assert_eq!(store.keys().await, std::slice::from_ref(&key));

        // Bytes in hand, larger than a part: stored in parts, byte for byte.
        let other: Vec<u8> = bytes.iter().rev().copied().collect();
        let other_key = BlobStore::key_for(&crate::crypto::sha256_hex(&other));
        store.put_if_absent(&other_key, Bytes::from(other.clone())).await.unwrap();
        assert_eq!(store.get(&other_key).await.unwrap(), other.as_slice());
        let mut expected = vec![key.clone(), other_key];
        expected.sort();
        assert_eq!(store.keys().await, expected);

        let mut aborted = store.writer().await.unwrap();
        aborted.write(&bytes[..1000]).await.unwrap();
        aborted.abort().await;
        assert_eq!(store.keys().await, expected);
    }
}
