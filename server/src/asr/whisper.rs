//! Whisper through whisper.cpp: one loaded model, shared by the transcription threads, and a
//! decoding state made for each window it hears.

use std::path::Path;
use std::sync::Arc;

use whisper_rs::{
    DtwMode, DtwModelPreset, DtwParameters, FullParams, SamplingStrategy, WhisperContext,
    WhisperContextParameters, WhisperState,
};

use crate::audio::decode::SAMPLE_RATE;

/// A recognised word; times in milliseconds from the start of the samples given.
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    /// With its leading space when the model wrote one.
    pub text: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub probability: f32,
    /// When the word is spoken, by dynamic time warping over the alignment heads' attention:
    /// more exact than `start_ms`, which whisper.cpp infers from timestamp tokens.
    pub aligned_ms: Option<i64>,
}

/// A loaded model, shared by the worker threads.
#[derive(Clone)]
pub struct Model {
    context: Arc<WhisperContext>,
    /// The model file's name (`ggml-base-q8_0.bin`): which model a transcript came from.
    name: String,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Model").finish_non_exhaustive()
    }
}

impl Model {
    pub fn load(path: &Path) -> Result<Self, String> {
        whisper_rs::install_logging_hooks();
        // Word times by DTW over the model's alignment heads (OpenAI's word_timestamps method).
        let dtw_parameters = DtwParameters {
            mode: DtwMode::ModelPreset { model_preset: alignment_heads(path)? },
            ..Default::default()
        };
        let parameters =
            WhisperContextParameters { use_gpu: false, dtw_parameters, ..Default::default() };
        let context = WhisperContext::new_with_params(path, parameters)
            .map_err(|error| format!("loading the speech model {}: {error}", path.display()))?;
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned());
        Ok(Self { context: Arc::new(context), name: name.unwrap_or_default() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Transcribes up to 30 s of 16 kHz English speech into words with timings, on `threads`
    /// CPU threads: greedily (the best of two samples when temperature fallback samples), or
    /// with a beam of `beam_size` when it is over 1. The encoder runs over the samples' length
    /// and 2 s more (50 positions a second), not over Whisper's whole 30 s.
    ///
    /// Each call decodes on a state made for it (under 20 ms), so the words depend on the
    /// samples alone, and calls may run side by side: whisper.cpp seeds the sampler of a
    /// state's first decoder once, when the state is made, so on a state used before a
    /// temperature fallback's words would depend on what that state heard before.
    pub fn words(
        &self,
        samples: &[f32],
        beam_size: u32,
        threads: usize,
    ) -> Result<Vec<Word>, String> {
        let mut state = self
            .context
            .create_state()
            .map_err(|error| format!("creating a decoding state: {error}"))?;
        decode(&mut state, self.context.token_eot(), samples, beam_size, threads)
    }
}

/// The alignment heads of the model in the ggml file at `path`, told by its size and
/// vocabulary (the header's `n_audio_state` and `n_vocab`).
fn alignment_heads(path: &Path) -> Result<DtwModelPreset, String> {
    use std::io::Read;
    let mut header = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut header))
        .map_err(|error| format!("reading the speech model {}: {error}", path.display()))?;
    let field = |at: usize| {
        i32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let (n_vocab, n_audio_state) = (field(4), field(12));
    let english_only = n_vocab == 51_864;
    match (n_audio_state, english_only) {
        (384, true) => Ok(DtwModelPreset::TinyEn),
        (384, false) => Ok(DtwModelPreset::Tiny),
        (512, true) => Ok(DtwModelPreset::BaseEn),
        (512, false) => Ok(DtwModelPreset::Base),
        (768, true) => Ok(DtwModelPreset::SmallEn),
        (768, false) => Ok(DtwModelPreset::Small),
        _ => Err(format!(
            "the speech model {} is of no known size (n_audio_state {n_audio_state})",
            path.display()
        )),
    }
}

/// whisper.cpp refuses input shorter than a second.
const MIN_SAMPLES: usize = SAMPLE_RATE as usize * 11 / 10;

/// The most tokens a window's decoding may take: `TOKENS_PER_SECOND` a second of its samples
/// and `TOKENS_AT_START` more. whisper.cpp decodes until every beam has ended, and a beam caught
/// repeating itself runs to its limit (224 tokens) however few the winning beam needs: a
/// 13-second slowed window of a mono bench call took 4.9 s instead of 1.9 s. Speech takes about
/// 3 tokens a second. A window cut short by the cap leaves speech after its last word, which
/// is heard again alone (`turns::Utterance::is_clipped`).
const TOKENS_PER_SECOND: usize = 6;
const TOKENS_AT_START: usize = 16;

/// The token cap of a window of `seconds` (`TOKENS_PER_SECOND`).
fn max_tokens(seconds: usize) -> i32 {
    i32::try_from(seconds * TOKENS_PER_SECOND + TOKENS_AT_START).unwrap_or(i32::MAX)
}

/// The encoder positions a window of `seconds` is encoded over: its length and 2 s more, 50
/// positions a second, rounded up to a multiple of 8 (at most 1,496, 29.92 s, for Whisper's
/// 1,500). ggml's tiled matrix kernels (llamafile's tinyBLAS) take an attention product only
/// when its positions are a multiple of 8; otherwise it falls back to a dot product per output.
fn audio_positions(seconds: usize) -> i32 {
    const MOST: u16 = 1_496;
    let positions = ((seconds + 2) * 50).next_multiple_of(8);
    u16::try_from(positions).map_or(MOST, |positions| positions.min(MOST)).into()
}

/// `Model::words` on `state`; tokens from `end_of_text` on are special or timestamps.
fn decode(
    state: &mut WhisperState,
    end_of_text: i32,
    samples: &[f32],
    beam_size: u32,
    threads: usize,
) -> Result<Vec<Word>, String> {
    let mut padded;
    let samples = if samples.len() < MIN_SAMPLES {
        padded = samples.to_vec();
        padded.resize(MIN_SAMPLES, 0.0);
        &padded[..]
    } else {
        samples
    };
    let strategy = match i32::try_from(beam_size) {
        Ok(beam_size @ 2..) => SamplingStrategy::BeamSearch { beam_size, patience: -1.0 },
        _ => SamplingStrategy::Greedy { best_of: 2 },
    };
    let mut params = FullParams::new(strategy);
    params.set_n_threads(i32::try_from(threads).unwrap_or(1));
    params.set_language(Some("en"));
    params.set_translate(false);
    // Each window is decoded on its own: a hallucination cannot carry into the next.
    params.set_no_context(true);
    params.set_token_timestamps(true);
    params.set_suppress_blank(true);
    params.set_print_special(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    // One segment a window: the decoder never seeks inside it, so the DTW alignment always
    // spans the whole window (whisper.cpp aborts the process when a seek leaves it fewer
    // than 8 audio positions to filter). Words are placed by their aligned times, not by
    // segments.
    params.set_single_segment(true);
    // Whisper encodes 30 s whatever it is given, unless told how many positions to encode.
    let seconds = samples.len().div_ceil(SAMPLE_RATE as usize);
    params.set_max_tokens(max_tokens(seconds));
    params.set_audio_ctx(audio_positions(seconds));
    state.full(params, samples).map_err(|error| format!("speech recognition failed: {error}"))?;
    let mut words: Vec<Word> = Vec::new();
    let mut probabilities: Vec<f32> = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for segment in state.as_iter() {
        for index in 0..segment.n_tokens() {
            let Some(token) = segment.get_token(index) else { continue };
            let data = token.token_data();
            if data.id >= end_of_text {
                continue; // special and timestamp tokens
            }
            let bytes = token.to_bytes().map_err(|error| format!("reading a token: {error}"))?;
            let starts_word = bytes.first() == Some(&b' ') || words.is_empty();
            if starts_word && !pending.is_empty() {
                if let Some(last) = words.last_mut() {
                    last.text.push_str(&String::from_utf8_lossy(&pending));
                }
                pending.clear();
            }
            if starts_word {
                if let Some(last) = words.last_mut() {
                    last.probability = mean(&probabilities);
                }
                probabilities.clear();
                words.push(Word {
                    text: String::new(),
                    start_ms: data.t0 * 10,
                    end_ms: data.t1 * 10,
                    probability: 0.0,
                    aligned_ms: (data.t_dtw >= 0).then_some(data.t_dtw * 10),
                });
            }
            pending.extend_from_slice(bytes);
            probabilities.push(data.p);
            if let Some(last) = words.last_mut() {
                last.end_ms = last.end_ms.max(data.t1 * 10);
            }
        }
    }
    if let Some(last) = words.last_mut() {
        last.text.push_str(&String::from_utf8_lossy(&pending));
        last.probability = mean(&probabilities);
    }
    words.retain(|word| !word.text.trim().is_empty());
    Ok(words)
}

fn mean(values: &[f32]) -> f32 {
    if values.is_empty() { 0.0 } else { values.iter().sum::<f32>() / values.len() as f32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ggml file's first 16 bytes: magic, n_vocab, n_audio_ctx, n_audio_state.
    fn header(n_vocab: i32, n_audio_state: i32) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let bytes: Vec<u8> = [0x6767_6d6c, n_vocab, 1500, n_audio_state]
            .iter()
            .flat_map(|value: &i32| value.to_le_bytes())
            .collect();
        std::fs::write(file.path(), bytes).unwrap();
        file
    }

    #[test]
    fn the_token_cap_holds_fast_speech_and_stays_within_whispers_limit() {
        // A whole 28-second window of fast speech (4 words a second, 5 tokens) fits.
        assert!(max_tokens(28) >= 28 * 5);
        // A second of speech padded to whisper.cpp's shortest input: a sentence of 12 words.
        assert!(max_tokens(2) >= 16 + 12);
        // The longest window, slowed by the warp (0.9), stays under the decoder's 224 tokens.
        assert!(max_tokens(30 * 10 / 9 + 1) < 224);
    }

    #[test]
    fn a_window_is_encoded_over_its_length_and_two_seconds_in_multiples_of_8_positions() {
        // 27 s and 2 s more: 1,450 positions, rounded up to 1,456.
        assert_eq!(audio_positions(27), 1_456);
        assert_eq!(audio_positions(14), 800);
        // The longest window, 28 s: within Whisper's 1,500 positions, still a multiple of 8.
        assert_eq!(audio_positions(28), 1_496);
        assert!((1..=40).all(|seconds| {
            let positions = audio_positions(seconds);
            let least = i32::try_from((seconds.min(28) + 1) * 50).unwrap();
            positions % 8 == 0 && positions <= 1_500 && positions >= least
        }));
    }

    #[test]
    fn the_alignment_heads_follow_the_models_size_and_vocabulary() {
        let preset = |n_vocab, state| alignment_heads(header(n_vocab, state).path());
        assert!(matches!(preset(51_864, 384), Ok(DtwModelPreset::TinyEn)));
        assert!(matches!(preset(51_865, 512), Ok(DtwModelPreset::Base)));
        assert!(matches!(preset(51_864, 768), Ok(DtwModelPreset::SmallEn)));
        assert!(preset(51_865, 1280).unwrap_err().contains("no known size"));
        assert!(alignment_heads(Path::new("/nonexistent/model.bin")).is_err());
    }
}
