//! Streams a recording to the server, sends it as an audio-only call, and downloads it back.
//!
//! ```sh
//! EARSHOT_API_KEY=es_... EARSHOT_PROJECT_ID=... cargo run -p earshot --example upload_audio -- call.wav
//! ```

use std::time::Duration;

use earshot::{Audio, Client, Conversation};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: upload_audio <file>")?;
    let client = Client::builder_from_env().connect().await?;

    let uploaded = client.upload_audio(&path).await?;
    eprintln!(
        "uploaded {} bytes ({}) as {}",
        uploaded.size_bytes, uploaded.content_type, uploaded.audio_id
    );

    let call_id = format!("recording-{}", uploaded.sha256.get(..12).unwrap_or_default());
    // Without diarization the call is stored as audio alone; with it (the default), it waits
    // for transcription.
    client
        .ingest_conversations(
            Conversation::new(&call_id)
                .audio(Audio::uploaded(uploaded.audio_id))
                .diarization(false),
        )
        .await?;
    let datapoint = client.wait_for_datapoint(&call_id, Duration::from_secs(30)).await?;
    let audio = datapoint.audio.unwrap_or_default();
    eprintln!(
        "{call_id}: {} ms, {} channel(s), {} Hz",
        audio.duration_ms, audio.channels, audio.sample_rate_hz
    );

    let downloaded = client.download_audio(&datapoint.id).await?;
    eprintln!("downloaded {} bytes back", downloaded.bytes.len());
    Ok(())
}
