//! From decoded audio to turns: speech regions per channel, packed into recognition windows
//! with an offset map, words mapped back to call time, and turns interleaved by time.
//!
//! Whisper always encodes 30 s. Transcribing each utterance alone wastes most of that on
//! padding; concatenating a channel's utterances (with short silent spacers) into windows of up
//! to `WINDOW_MS` and mapping each word back through the offset map keeps exact call times at a
//! fraction of the encoder work.

use std::ops::Range;

use super::vad;
use super::whisper::Word;
use crate::domain::conversation::{Role, Turn};
use crate::pipeline::decode::{DecodedAudio, SAMPLE_RATE};

const WINDOW_MS: usize = 28_000;
const SPACER_MS: usize = 600;
/// A silence this long on one channel starts a new utterance.
const UTTERANCE_GAP_MS: usize = 1_000;
/// In mono, where both voices share the channel, shorter pauses may be a change of speaker.
const MONO_UTTERANCE_GAP_MS: usize = 450;

/// Recognizes up to 30 s of 16 kHz samples into words timed from their start.
pub type Recognize<'a> = dyn FnMut(&[f32]) -> Result<Vec<Word>, String> + 'a;

/// What decides which channel is the assistant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleHints {
    /// Whoever speaks first.
    pub first_turn: Role,
    /// The 1-based channel of the assistant when the integration says so.
    pub assistant_channel: Option<u32>,
}

/// The turns of one call and how sure the speaker labels are.
#[derive(Clone, Debug, PartialEq)]
pub struct Transcript {
    pub turns: Vec<Turn>,
    pub speaker_labels_estimated: bool,
    pub channels: usize,
    pub duration_ms: i64,
}

/// Transcribes with `recognize` (up to 30 s of samples in, words out).
pub fn transcribe(
    audio: &DecodedAudio,
    hints: RoleHints,
    recognize: &mut Recognize<'_>,
) -> Result<Transcript, String> {
    let stereo = audio.channels.len() == 2 && !same_signal(&audio.channels[0], &audio.channels[1]);
    let turns = if stereo {
        let mut utterances = Vec::new();
        for (index, channel) in audio.channels.iter().enumerate() {
            for utterance in channel_utterances(channel, UTTERANCE_GAP_MS, recognize)? {
                utterances.push((index, utterance));
            }
        }
        stereo_turns(utterances, hints)
    } else {
        let mixed = audio.mixdown();
        let utterances = channel_utterances(&mixed, MONO_UTTERANCE_GAP_MS, recognize)?;
        mono_turns(&utterances, hints.first_turn)
    };
    Ok(Transcript {
        turns,
        speaker_labels_estimated: !stereo,
        channels: audio.channels.len(),
        duration_ms: audio.duration_ms(),
    })
}

/// One stretch of one speaker's speech, with its words in call time.
#[derive(Clone, Debug, PartialEq)]
pub struct Utterance {
    pub span: Range<usize>,
    pub words: Vec<Word>,
}

fn channel_utterances(
    samples: &[f32],
    gap_ms: usize,
    recognize: &mut Recognize<'_>,
) -> Result<Vec<Utterance>, String> {
    let gap = gap_ms * SAMPLE_RATE as usize / 1000;
    let spans: Vec<Range<usize>> = vad::merge_close(vad::speech_regions(samples), gap)
        .into_iter()
        .flat_map(|span| split_long(samples, span))
        .collect();
    let mut utterances: Vec<Utterance> =
        spans.iter().map(|span| Utterance { span: span.clone(), words: Vec::new() }).collect();
    for window in pack(&spans) {
        let mut packed = Vec::with_capacity(window.length);
        let spacer = vec![0.0f32; ms_to_samples(SPACER_MS)];
        for piece in &window.pieces {
            packed.extend_from_slice(&samples[spans[piece.utterance].clone()]);
            packed.extend_from_slice(&spacer);
        }
        for word in recognize(&packed)? {
            // Whisper stamps the first word after a pause too early, often inside the spacer
            // before it; its end is reliable, so the end decides the utterance.
            let end = ms_to_samples(usize::try_from(word.end_ms - 10).unwrap_or(0));
            let Some(piece) = window.piece_at(end) else { continue };
            let span = &spans[piece.utterance];
            let to_call_ms = |ms: i64| {
                let packed_at = ms_to_samples(usize::try_from(ms).unwrap_or(0));
                let offset = packed_at.saturating_sub(piece.packed_start).min(span.len());
                samples_to_ms(span.start + offset)
            };
            utterances[piece.utterance].words.push(Word {
                start_ms: to_call_ms(word.start_ms),
                end_ms: to_call_ms(word.end_ms).max(to_call_ms(word.start_ms)),
                ..word
            });
        }
    }
    utterances.retain(|utterance| !utterance.words.is_empty());
    Ok(utterances)
}

/// An utterance placed in a window.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Piece {
    utterance: usize,
    packed_start: usize,
    length: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Window {
    pieces: Vec<Piece>,
    length: usize,
}

impl Window {
    /// The piece a packed sample belongs to; a sample in a spacer goes to the nearer piece.
    fn piece_at(&self, packed: usize) -> Option<&Piece> {
        self.pieces.iter().min_by_key(|piece| {
            let end = piece.packed_start + piece.length;
            if packed < piece.packed_start {
                piece.packed_start - packed
            } else {
                packed.saturating_sub(end)
            }
        })
    }
}

/// Groups spans, in order, into windows of at most `WINDOW_MS` (spacers included).
fn pack(spans: &[Range<usize>]) -> Vec<Window> {
    let limit = ms_to_samples(WINDOW_MS);
    let spacer = ms_to_samples(SPACER_MS);
    let mut windows: Vec<Window> = Vec::new();
    let mut current = Window::default();
    for (utterance, span) in spans.iter().enumerate() {
        if !current.pieces.is_empty() && current.length + span.len() + spacer > limit {
            windows.push(std::mem::take(&mut current));
        }
        current.pieces.push(Piece { utterance, packed_start: current.length, length: span.len() });
        current.length += span.len() + spacer;
    }
    if !current.pieces.is_empty() {
        windows.push(current);
    }
    windows
}

/// Splits a span longer than a window at its quietest frame in the window's last 8 seconds.
fn split_long(samples: &[f32], span: Range<usize>) -> Vec<Range<usize>> {
    let limit = ms_to_samples(WINDOW_MS - SPACER_MS);
    let mut pieces = Vec::new();
    let mut start = span.start;
    while span.end - start > limit {
        let search = (start + limit - ms_to_samples(8_000))..(start + limit);
        let cut = search
            .step_by(vad::FRAME)
            .min_by(|a, b| {
                let level =
                    |at: usize| vad::frame_db(&samples[at..(at + vad::FRAME).min(samples.len())]);
                level(*a).total_cmp(&level(*b))
            })
            .unwrap_or(start + limit);
        pieces.push(start..cut);
        start = cut;
    }
    pieces.push(start..span.end);
    pieces
}

/// A two-channel file whose channels carry the same signal is mono in disguise.
fn same_signal(left: &[f32], right: &[f32]) -> bool {
    let difference: f32 = left.iter().zip(right).map(|(a, b)| (a - b) * (a - b)).sum();
    let energy: f32 = left.iter().zip(right).map(|(a, b)| a * a + b * b).sum();
    difference <= energy * 1e-3
}

fn stereo_turns(mut utterances: Vec<(usize, Utterance)>, hints: RoleHints) -> Vec<Turn> {
    utterances
        .sort_by_key(|(_, utterance)| utterance.words.first().map_or(0, |word| word.start_ms));
    let assistant = match hints.assistant_channel {
        Some(channel @ 1..=2) => (channel - 1) as usize,
        _ => {
            let first = utterances.first().map_or(0, |(channel, _)| *channel);
            if hints.first_turn == Role::User { 1 - first } else { first }
        }
    };
    let turns = utterances.into_iter().map(|(channel, utterance)| {
        let role = if channel == assistant { Role::Assistant } else { Role::User };
        to_turn(role, Some(u32::try_from(channel + 1).unwrap_or(0)), &utterance.words, None)
    });
    merge_runs(turns)
}

/// Mono without speaker embeddings: utterances alternate speakers, starting with `first_turn`.
/// The labels are estimates and say so by their confidence.
fn mono_turns(utterances: &[Utterance], first_turn: Role) -> Vec<Turn> {
    let other = if first_turn == Role::User { Role::Assistant } else { Role::User };
    let turns = utterances.iter().enumerate().map(|(index, utterance)| {
        let role = if index % 2 == 0 { first_turn } else { other };
        to_turn(role, None, &utterance.words, Some(0.5))
    });
    turns.collect()
}

fn to_turn(
    role: Role,
    channel: Option<u32>,
    words: &[Word],
    speaker_confidence: Option<f32>,
) -> Turn {
    let content: String = words.iter().map(|word| word.text.as_str()).collect();
    let recognition =
        words.iter().map(|word| word.probability).sum::<f32>() / words.len().max(1) as f32;
    Turn {
        role,
        content: content.trim().to_owned(),
        start_ms: words.first().map_or(0, |word| word.start_ms),
        end_ms: words.last().map(|word| word.end_ms),
        channel,
        confidence: Some(
            speaker_confidence.map_or(recognition, |speaker| speaker.min(recognition)),
        ),
    }
}

/// Joins consecutive turns of one speaker into one.
fn merge_runs(turns: impl Iterator<Item = Turn>) -> Vec<Turn> {
    let mut merged: Vec<Turn> = Vec::new();
    for turn in turns {
        match merged.last_mut() {
            Some(last) if last.role == turn.role && last.channel == turn.channel => {
                last.content.push(' ');
                last.content.push_str(&turn.content);
                last.end_ms = turn.end_ms.or(last.end_ms);
                last.confidence = match (last.confidence, turn.confidence) {
                    (Some(a), Some(b)) => Some((a + b) / 2.0),
                    (a, b) => a.or(b),
                };
            }
            _ => merged.push(turn),
        }
    }
    merged
}

fn ms_to_samples(ms: usize) -> usize {
    ms * SAMPLE_RATE as usize / 1000
}

fn samples_to_ms(samples: usize) -> i64 {
    i64::try_from(samples * 1000 / SAMPLE_RATE as usize).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, start_ms: i64, end_ms: i64) -> Word {
        Word { text: format!(" {text}"), start_ms, end_ms, probability: 0.9 }
    }

    #[test]
    fn packing_respects_the_window_and_maps_positions_back() {
        let second = SAMPLE_RATE as usize;
        let spans = vec![0..10 * second, 12 * second..22 * second, 30 * second..40 * second];
        let windows = pack(&spans);
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[0].pieces.len(), 2);
        let piece = windows[0].piece_at(11 * second).unwrap();
        assert_eq!(piece.utterance, 1);
        // a position inside the spacer after the first piece belongs to the first piece
        assert_eq!(windows[0].piece_at(10 * second + 100).unwrap().utterance, 0);
    }

    #[test]
    fn long_speech_is_split_at_its_quietest_point() {
        let second = SAMPLE_RATE as usize;
        let mut samples = vec![0.3f32; 40 * second];
        for sample in &mut samples[24 * second..24 * second + 2 * vad::FRAME] {
            *sample = 0.0;
        }
        let pieces = split_long(&samples, 0..samples.len());
        assert_eq!(pieces.len(), 2);
        assert!((24 * second..24 * second + 2 * vad::FRAME).contains(&pieces[0].end));
        assert_eq!(pieces[1].end, samples.len());
    }

    #[test]
    fn stereo_turns_interleave_by_time_and_follow_the_role_hints() {
        let utterance = |words: Vec<Word>| Utterance { span: 0..1, words };
        let utterances = vec![
            (1, utterance(vec![word("hi", 2000, 2300), word("there", 2300, 2600)])),
            (0, utterance(vec![word("hello", 100, 500)])),
            (0, utterance(vec![word("how", 3000, 3200)])),
            (0, utterance(vec![word("are", 4500, 4700), word("you", 4700, 4900)])),
        ];
        let hints = RoleHints { first_turn: Role::Assistant, assistant_channel: None };
        let turns = stereo_turns(utterances.clone(), hints);
        let summary: Vec<(Role, &str, i64)> =
            turns.iter().map(|turn| (turn.role, turn.content.as_str(), turn.start_ms)).collect();
        assert_eq!(
            summary,
            [
                (Role::Assistant, "hello", 100),
                (Role::User, "hi there", 2000),
                (Role::Assistant, "how are you", 3000),
            ]
        );
        assert_eq!(turns[1].channel, Some(2));
        assert_eq!(turns[2].end_ms, Some(4900));

        let user_first = RoleHints { first_turn: Role::User, assistant_channel: None };
        assert_eq!(stereo_turns(utterances.clone(), user_first)[0].role, Role::User);
        let mapped = RoleHints { first_turn: Role::Assistant, assistant_channel: Some(2) };
        assert_eq!(stereo_turns(utterances, mapped)[0].role, Role::User);
    }

    #[test]
    fn identical_channels_are_mono() {
        let signal: Vec<f32> = (0..1000).map(|i| (i as f32 / 10.0).sin()).collect();
        assert!(same_signal(&signal, &signal));
        assert!(!same_signal(&signal, &vec![0.0; 1000]));
    }

    #[test]
    fn mono_turns_alternate_from_the_first_speaker_with_low_confidence() {
        let utterances = vec![
            Utterance { span: 0..1, words: vec![word("hello", 0, 400)] },
            Utterance { span: 2..3, words: vec![word("hi", 900, 1200)] },
        ];
        let turns = mono_turns(&utterances, Role::User);
        assert_eq!(
            turns.iter().map(|turn| turn.role).collect::<Vec<_>>(),
            [Role::User, Role::Assistant]
        );
        assert!(turns.iter().all(|turn| turn.confidence == Some(0.5)));
    }
}
