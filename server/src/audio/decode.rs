//! Decodes stored audio into 16 kHz f32 samples, one vector a channel: WAV (PCM, G.711 mu-law
//! and A-law), MP3, FLAC and Ogg/Vorbis with symphonia, Ogg/Opus with opus-pure, resampled with
//! rubato. CPU-bound: call it from a blocking task.

use std::io::Cursor;

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, CODEC_TYPE_OPUS, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// The rate every engine downstream reads.
pub const SAMPLE_RATE: u32 = 16_000;

/// Decoded audio at `SAMPLE_RATE`.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedAudio {
    /// One vector a channel, all the same length.
    pub channels: Vec<Vec<f32>>,
    /// The rate the file was recorded at.
    pub source_sample_rate: u32,
}

impl DecodedAudio {
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    pub fn duration_ms(&self) -> i64 {
        i64::try_from(self.frames()).unwrap_or(i64::MAX) * 1000 / i64::from(SAMPLE_RATE)
    }

    /// All channels averaged into one.
    pub fn mixdown(&self) -> Vec<f32> {
        match self.channels.as_slice() {
            [only] => only.clone(),
            channels => {
                let scale = 1.0 / channels.len().max(1) as f32;
                (0..self.frames())
                    .map(|frame| channels.iter().map(|channel| channel[frame]).sum::<f32>() * scale)
                    .collect()
            }
        }
    }
}

/// Decodes `bytes`. `max_seconds` bounds the decoded length (and so the memory held); the
/// error says what is wrong with the audio and is the same on every attempt.
pub fn decode(bytes: &[u8], content_type: &str, max_seconds: u32) -> Result<DecodedAudio, String> {
    let (channels, rate) = if is_ogg_opus(bytes) {
        decode_opus(bytes, max_seconds)?
    } else {
        decode_symphonia(bytes, content_type, max_seconds)?
    };
    if channels.is_empty() || channels[0].is_empty() {
        return Err("the audio holds no samples".into());
    }
    let channels = if rate == SAMPLE_RATE { channels } else { resample(&channels, rate)? };
    Ok(DecodedAudio { channels, source_sample_rate: rate })
}

fn is_ogg_opus(bytes: &[u8]) -> bool {
    bytes.starts_with(b"OggS")
        && bytes[..bytes.len().min(128)].windows(8).any(|window| window == b"OpusHead")
}

fn decode_symphonia(
    bytes: &[u8],
    content_type: &str,
    max_seconds: u32,
) -> Result<(Vec<Vec<f32>>, u32), String> {
    let mut hint = Hint::new();
    hint.mime_type(content_type);
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let probed = symphonia::default::get_probe()
        .format(&hint, source, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(|error| format!("unrecognised audio format: {error}"))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|track| track.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| "the audio has no decodable track".to_owned())?;
    if track.codec_params.codec == CODEC_TYPE_OPUS {
        return Err("Opus is supported in Ogg files only".into());
    }
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|error| format!("unsupported audio codec: {error}"))?;
    let mut rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut channels: Vec<Vec<f32>> = Vec::new();
    let mut samples = None::<SampleBuffer<f32>>;
    let mut corrupt_packets = 0usize;
    let mut packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(error))
                if error.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                break;
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(error) => return Err(format!("corrupt audio: {error}")),
        };
        if packet.track_id() != track_id {
            continue;
        }
        packets += 1;
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // A damaged frame is skipped, as players do; all-damaged audio fails below.
            Err(SymphoniaError::DecodeError(_)) => {
                corrupt_packets += 1;
                continue;
            }
            Err(error) => return Err(format!("corrupt audio: {error}")),
        };
        let spec = *decoded.spec();
        rate = spec.rate;
        let count = spec.channels.count();
        if channels.is_empty() {
            channels = vec![Vec::new(); count];
        } else if channels.len() != count {
            return Err("the channel count changes inside the file".into());
        }
        let buffer = match &mut samples {
            Some(buffer) if buffer.capacity() >= decoded.capacity() * count => buffer,
            slot => slot.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
        };
        buffer.copy_interleaved_ref(decoded);
        for frame in buffer.samples().chunks_exact(count) {
            for (channel, sample) in channels.iter_mut().zip(frame) {
                channel.push(*sample);
            }
        }
        if rate > 0 && channels[0].len() / rate as usize > max_seconds as usize {
            return Err(format!("the audio is longer than the {max_seconds}-second limit"));
        }
    }
    if packets > 0 && corrupt_packets * 2 > packets {
        return Err(format!(
            "corrupt audio: {corrupt_packets} of {packets} frames could not be decoded"
        ));
    }
    if rate == 0 {
        return Err("the audio does not state its sample rate".into());
    }
    Ok((channels, rate))
}

fn decode_opus(bytes: &[u8], max_seconds: u32) -> Result<(Vec<Vec<f32>>, u32), String> {
    let corrupt = |error: opus_pure::Error| format!("corrupt Ogg/Opus audio: {error}");
    let mut reader = opus_pure::OggOpusReader::new(Cursor::new(bytes)).map_err(corrupt)?;
    let count = usize::from(reader.head().channel_count);
    let rate = SAMPLE_RATE;
    let mut decoder = reader.head().decoder(rate as i32).map_err(corrupt)?;
    let mut trim = opus_pure::Trim::new(reader.head(), rate as i32, count).map_err(corrupt)?;
    let mut block = vec![0.0f32; opus_pure::MAX_PACKET_SAMPLES * count];
    let mut channels = vec![Vec::new(); count];
    for packet in reader.packets() {
        let packet = packet.map_err(corrupt)?;
        let decoded = decoder
            .decode(&packet.data, opus_pure::MAX_PACKET_SAMPLES, &mut block)
            .map_err(corrupt)?;
        for frame in trim.keep(&packet, &block[..decoded * count]).chunks_exact(count) {
            for (channel, sample) in channels.iter_mut().zip(frame) {
                channel.push(*sample);
            }
        }
        if channels[0].len() / rate as usize > max_seconds as usize {
            return Err(format!("the audio is longer than the {max_seconds}-second limit"));
        }
    }
    Ok((channels, rate))
}

fn resample(channels: &[Vec<f32>], rate: u32) -> Result<Vec<Vec<f32>>, String> {
    let failed = |error: &dyn std::fmt::Display| format!("resampling {rate} Hz audio: {error}");
    let frames = channels[0].len();
    let mut resampler = Fft::<f32>::new(
        rate as usize,
        SAMPLE_RATE as usize,
        1024,
        channels.len(),
        FixedSync::Input,
    )
    .map_err(|error| failed(&error))?;
    let input = SequentialSliceOfVecs::new(channels, channels.len(), frames)
        .map_err(|error| failed(&error))?;
    let output = resampler.process_all(&input, frames, None).map_err(|error| failed(&error))?;
    let count = channels.len();
    let interleaved = output.take_data();
    Ok((0..count)
        .map(|channel| interleaved.iter().skip(channel).step_by(count).copied().collect())
        .collect())
}

/// `samples` (at `SAMPLE_RATE`) played slower by `factor` (under 1): every frequency scaled by
/// it and the length by its inverse, as a tape played slow; the factor is taken to the nearest
/// rate in whole hertz, and returned with the samples.
pub fn slowed(samples: &[f32], factor: f32) -> Result<(Vec<f32>, f32), String> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rate = (SAMPLE_RATE as f32 * factor).round() as u32;
    let factor = rate as f32 / SAMPLE_RATE as f32;
    let mut slowed = resample(&[samples.to_vec()], rate)?;
    Ok((slowed.pop().unwrap_or_default(), factor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn slowed_audio_is_lower_and_longer_by_the_factor() {
        let (lower, factor) = slowed(&tone(1000.0, SAMPLE_RATE, 2.0), 0.85).unwrap();
        assert!((factor - 0.85).abs() < 1e-6);
        let expected = 2.0 * SAMPLE_RATE as f32 / 0.85;
        assert!((lower.len() as f32 - expected).abs() < 100.0, "{}", lower.len());
        assert!((frequency(&lower[1000..30_000]) - 850.0).abs() < 10.0);
        let (_, rounded) = slowed(&tone(1000.0, SAMPLE_RATE, 0.5), 0.777_77).unwrap();
        assert!((rounded * SAMPLE_RATE as f32 - 12_444.0).abs() < 1e-2, "{rounded}");
    }

    fn tone(frequency: f32, rate: u32, seconds: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * frequency * i as f32 / rate as f32).sin())
            .collect()
    }

    /// The dominant frequency of `samples` at 16 kHz, by counting zero crossings.
    fn frequency(samples: &[f32]) -> f32 {
        let crossings =
            samples.windows(2).filter(|pair| (pair[0] < 0.0) != (pair[1] < 0.0)).count();
        crossings as f32 / 2.0 / (samples.len() as f32 / SAMPLE_RATE as f32)
    }

    #[test]
    fn pcm_wav_keeps_channels_apart_and_is_resampled_to_16k() {
        let left = tone(440.0, 8000, 1.0);
        let right = tone(1000.0, 8000, 1.0);
        let wav = testing::wav_from_channels(&[left, right], 8000);
        let decoded = decode(&wav, "audio/wav", 60).unwrap();
        assert_eq!(decoded.source_sample_rate, 8000);
        assert_eq!(decoded.channels.len(), 2);
        assert!((decoded.frames() as i64 - 16_000).abs() < 200, "{}", decoded.frames());
        assert!((frequency(&decoded.channels[0]) - 440.0).abs() < 10.0);
        assert!((frequency(&decoded.channels[1]) - 1000.0).abs() < 10.0);
    }

    #[test]
    fn g711_mu_law_and_a_law_wav_decode() {
        for format in [testing::G711::MuLaw, testing::G711::ALaw] {
            let wav = testing::g711_wav(&[tone(500.0, 8000, 0.5), tone(700.0, 8000, 0.5)], format);
            let decoded = decode(&wav, "audio/wav", 60).unwrap();
            assert_eq!(decoded.channels.len(), 2, "{format:?}");
            assert!((frequency(&decoded.channels[0]) - 500.0).abs() < 10.0, "{format:?}");
            assert!((frequency(&decoded.channels[1]) - 700.0).abs() < 10.0, "{format:?}");
            let peak =
                decoded.channels[0].iter().fold(0.0f32, |peak, sample| peak.max(sample.abs()));
            assert!((0.4..0.6).contains(&peak), "{format:?}: peak {peak}");
        }
    }

    #[test]
    fn ogg_opus_decodes_without_symphonia() {
        let rate = 48_000;
        let pcm = tone(600.0, rate, 1.0);
        let opus = testing::ogg_opus(&pcm, rate);
        let decoded = decode(&opus, "audio/ogg", 60).unwrap();
        assert_eq!(decoded.channels.len(), 1);
        assert!((decoded.frames() as i64 - 16_000).abs() < 400, "{}", decoded.frames());
        assert!((frequency(&decoded.channels[0]) - 600.0).abs() < 15.0);
    }

    #[test]
    fn compressed_formats_made_by_sox_decode() {
        let wav = testing::wav_from_channels(
            &[tone(440.0, 16_000, 1.0), tone(880.0, 16_000, 1.0)],
            16_000,
        );
        for (extension, content_type) in
            [("mp3", "audio/mpeg"), ("flac", "audio/flac"), ("ogg", "audio/ogg")]
        {
            let encoded = testing::sox_convert(&wav, extension);
            let decoded = decode(&encoded, content_type, 60).unwrap();
            assert_eq!(decoded.channels.len(), 2, "{extension}");
            assert!(
                (decoded.frames() as i64 - 16_000).abs() < 2000,
                "{extension}: {}",
                decoded.frames()
            );
            assert!(
                (frequency(&decoded.channels[1][2000..14_000]) - 880.0).abs() < 15.0,
                "{extension}"
            );
        }
    }

    #[test]
    fn corrupt_unsupported_and_overlong_audio_are_errors() {
        assert!(decode(b"RIFF\0\0\0\0WAVEgarbage", "audio/wav", 60).is_err());
        assert!(
            decode(&[0x42; 4096], "application/octet-stream", 60)
                .unwrap_err()
                .contains("unrecognised")
        );
        let mut truncated_mp3 = vec![0xFF, 0xFB, 0x90, 0x00];
        truncated_mp3.extend_from_slice(&[0x11; 64]);
        assert!(decode(&truncated_mp3, "audio/mpeg", 60).is_err());
        let long = testing::wav(1, 8000, 3000, 1);
        assert!(decode(&long, "audio/wav", 1).unwrap_err().contains("1-second limit"));
    }

    #[test]
    fn mixdown_averages_channels() {
        let audio = DecodedAudio {
            channels: vec![vec![1.0, 0.0], vec![0.0, 0.5]],
            source_sample_rate: 16_000,
        };
        assert_eq!(audio.mixdown(), vec![0.5, 0.25]);
        assert_eq!(audio.duration_ms(), 0);
    }
}
