//! Reads duration, channels and sample rate from an audio container with symphonia, without
//! decoding. CPU-bound: call it from a blocking task.

use std::io::Cursor;

use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// What probing an audio container found; None where the container does not say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AudioProperties {
    pub duration_ms: Option<i64>,
    pub channels: Option<u32>,
    pub sample_rate_hz: Option<u32>,
}

/// Probes `bytes`; the error says why the container could not be read.
pub fn probe(bytes: Vec<u8>, content_type: &str) -> Result<AudioProperties, String> {
    let mut hint = Hint::new();
    hint.mime_type(content_type);
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let probed = symphonia::default::get_probe()
        .format(&hint, source, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(|error| format!("unreadable audio: {error}"))?;
    let track = probed.format.default_track().ok_or_else(|| "audio has no tracks".to_owned())?;
    let params = &track.codec_params;
    let sample_rate_hz = params.sample_rate;
    let duration_ms = match (params.n_frames, params.time_base, sample_rate_hz) {
        (Some(frames), Some(time_base), _) => {
            let time = time_base.calc_time(frames);
            i64::try_from(time.seconds)
                .ok()
                .map(|seconds| seconds * 1000 + (time.frac * 1000.0).round() as i64)
        }
        (Some(frames), None, Some(rate)) if rate > 0 => {
            i64::try_from(frames * 1000 / u64::from(rate)).ok()
        }
        _ => None,
    };
    Ok(AudioProperties {
        duration_ms,
        channels: params.channels.map(|channels| u32::try_from(channels.count()).unwrap_or(0)),
        sample_rate_hz,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_a_wav_file() {
        let probed = probe(crate::testing::wav(2, 8000, 1500, 0), "audio/wav").unwrap();
        assert_eq!(
            probed,
            AudioProperties {
                duration_ms: Some(1500),
                channels: Some(2),
                sample_rate_hz: Some(8000)
            }
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(probe(b"RIFF\0\0\0\0WAVEgarbage".to_vec(), "audio/wav").is_err());
        assert!(probe(Vec::new(), "audio/mpeg").is_err());
    }
}
