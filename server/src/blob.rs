//! The audio store: content-addressed blobs (key `sha256/<2 hex>/<64 hex>`) over object_store.
//! A local directory by default (`<data_dir>/audio`), written with fsync so a stored blob
//! survives a crash; `s3://`-style stores plug in through the same interface later.

use std::path::Path;
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

impl BlobStore {
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
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|error| Error::internal("writing audio", error))?;
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

/// Bytes buffered before a part is written to the staging object.
const WRITER_CHUNK_BYTES: usize = 1 << 20;
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

    #[tokio::test]
    async fn blobs_round_trip_and_existing_keys_are_kept() {
        let directory = tempfile::tempdir().unwrap();
        let store = BlobStore::local(directory.path()).unwrap();
        let sha = crate::crypto::sha256_hex(b"audio bytes");
        let key = BlobStore::key_for(&sha);
        store.put_if_absent(&key, Bytes::from_static(b"audio bytes")).await.unwrap();
        store.put_if_absent(&key, Bytes::from_static(b"audio bytes")).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"audio bytes"));
        let chunks: Vec<Bytes> = store.stream(&key).await.unwrap().try_collect().await.unwrap();
        assert_eq!(chunks.concat(), b"audio bytes");
        assert!(directory.path().join(&key).is_file());
    }
}
