//! From decoded audio to turns: speech regions per channel, packed into recognition windows
//! with an offset map, words mapped back to call time, and turns interleaved by time.
//!
//! Whisper was trained on 30-second windows. Transcribing each utterance alone pays a window's
//! fixed costs for every utterance and hears it without its neighbours; concatenating
//! utterances (with short silent spacers) into windows of up to `WINDOW_MS` and mapping each
//! word back through the offset map keeps exact call times at a fraction of the work. A window
//! is encoded over its own length, not over Whisper's whole 30 s (`whisper::Model::words`).

use std::ops::Range;

use super::speaker::VoiceModels;
use super::whisper::Word;
use super::{vad, voices, warp};
use crate::audio::decode::{DecodedAudio, SAMPLE_RATE};
use crate::model::conversation::{Role, Turn};
use crate::model::datapoints::search_words;

/// The longest window, spacers included, in which Whisper hears a call: under its 30 s.
const WINDOW_MS: usize = 28_000;
const SPACER_MS: usize = 600;
/// A silence this long on one channel starts a new utterance.
const UTTERANCE_GAP_MS: usize = 1_000;
/// In mono, where both voices share the channel, shorter pauses may be a change of speaker.
const MONO_UTTERANCE_GAP_MS: usize = 450;
/// An utterance this long or longer is recognized again when its words come slower than
/// `SPARSE_SHARE` of the call's pace, or than `SPARSE_FLOOR_WPS` words a second
/// (`Utterance::is_sparse`).
const SPARSE_MIN_MS: i64 = 1_500;
const SPARSE_SHARE: f64 = 0.65;
const SPARSE_FLOOR_WPS: f64 = 0.5;
/// An utterance is recognized again when this much of its speech lies before its first word's
/// aligned time or after its last's (`Utterance::is_clipped`): in the bench's calls the longest
/// a last word took, from its aligned time to the end of the speech, was 1.3 s (six digits read
/// one by one); a line whose last sentence was dropped left 1.8 s.
const CLIPPED_MS: i64 = 1_500;
/// A word of one hearing is the same word of another hearing when spelled alike and within
/// this of it by aligned time (`Utterance::fill_clipped_from`).
const ANCHOR_MS: i64 = 500;

/// Recognizes up to 30 s of 16 kHz samples into words timed from their start, on the given
/// number of CPU threads. The words must depend on the samples alone (not on what was heard
/// before, nor on the threads), so that windows can be heard side by side in any order and give
/// the words they give one by one.
pub type Recognize<'a> = dyn Fn(&[f32], usize) -> Result<Vec<Word>, String> + Sync + 'a;

/// What decides which channel is the assistant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleHints {
    /// Whoever speaks first.
    pub first_turn: Role,
    /// The 1-based channel of the assistant when the integration says so.
    pub assistant_channel: Option<u32>,
}

/// The turns of one call and how sure the speaker labels are.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transcript {
    pub turns: Vec<Turn>,
    pub speaker_labels_estimated: bool,
    pub channels: usize,
    pub duration_ms: i64,
    /// Speech voice activity found, summed over utterances.
    pub speech_ms: i64,
    /// Of that, what recognised words cover: each utterance from its first word's start to its
    /// last word's end.
    pub recognized_ms: i64,
    /// The file of the Whisper model that recognised the words.
    #[serde(default)]
    pub model: String,
}

impl Transcript {
    /// The share of the detected speech that recognised words cover; None without speech.
    pub fn speech_coverage(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        (self.speech_ms > 0).then(|| (self.recognized_ms as f64 / self.speech_ms as f64).min(1.0))
    }
}

/// Transcribes with `recognize` on `threads` threads; with a `warp` factor, the call is heard a
/// second time slowed by it, and each channel keeps the surer hearing
/// (`warp::surer_by_channel`). With two threads or more, what can be heard side by side is,
/// on a share of the threads each: the two hearings, and a hearing's windows two at a time.
/// Whisper's threads spend time waiting for each other, so two windows on a thread each take
/// less time than one after the other on two (docs/BENCHMARKS.md).
pub fn transcribe(
    audio: &DecodedAudio,
    hints: RoleHints,
    speakers: Option<&VoiceModels>,
    warp: Option<f32>,
    threads: usize,
    recognize: &Recognize<'_>,
) -> Result<Transcript, String> {
    let stereo = audio.channels.len() == 2 && !same_signal(&audio.channels[0], &audio.channels[1]);
    let mixed;
    let (channels, gap_ms) = if stereo {
        let channels: Vec<&[f32]> = audio.channels.iter().map(Vec::as_slice).collect();
        (channels, UTTERANCE_GAP_MS)
    } else {
        mixed = audio.mixdown();
        (vec![mixed.as_slice()], MONO_UTTERANCE_GAP_MS)
    };
    let heard = match warp {
        None => utterances(&channels, gap_ms, WINDOW_MS, threads, recognize)?,
        Some(factor) => {
            // A window slowed by the factor must still fit Whisper's 30 s.
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            #[allow(clippy::cast_sign_loss)]
            let window_ms = (WINDOW_MS as f32 * factor) as usize;
            let slowed = |samples: &[f32], threads| {
                warp::slowed_hearing(samples, factor, threads, recognize)
            };
            let (plain, slowed) = sharing(
                threads,
                |threads| utterances(&channels, gap_ms, WINDOW_MS, threads, recognize),
                |threads| utterances(&channels, gap_ms, window_ms, threads, &slowed),
            );
            warp::surer_by_channel(plain?, slowed?, channels.len())
        }
    };
    let turns = if stereo {
        stereo_turns(&heard, hints)
    } else if let Some(models) = speakers {
        diarized_turns(channels[0], &heard, hints.first_turn, models)
    } else {
        mono_turns(&heard, hints.first_turn)
    };
    let speech_ms = heard.iter().map(|utterance| samples_to_ms(utterance.span.len())).sum();
    let recognized_ms = heard.iter().map(Utterance::recognized_ms).sum();
    Ok(Transcript {
        turns,
        speaker_labels_estimated: !stereo,
        channels: audio.channels.len(),
        duration_ms: audio.duration_ms(),
        speech_ms,
        recognized_ms,
        model: String::new(),
    })
}

/// One stretch of one speaker's speech (a voice-activity span of one channel) and its words.
#[derive(Clone, Debug, PartialEq)]
pub struct Utterance {
    pub channel: usize,
    pub span: Range<usize>,
    pub words: Vec<Word>,
}

/// The utterances of every channel, in time order, with their words; an utterance recognition
/// found no words in stays, wordless, to become a turn marked not recognised. Utterances of all
/// channels share the recognition windows: speakers mostly take turns, so this packs the call's
/// speech into as few 30-second encodes as it fills. A window's decoding can end early (the
/// decoder emits end-of-text before the window's last utterances, or in one), so utterances a
/// window left without words, with far too few, or with speech before or after its words, are
/// recognized again, together in fresh windows, then each alone.
fn utterances(
    channels: &[&[f32]],
    gap_ms: usize,
    window_ms: usize,
    threads: usize,
    recognize: &Recognize<'_>,
) -> Result<Vec<Utterance>, String> {
    let gap = ms_to_samples(gap_ms);
    let mut utterances: Vec<Utterance> = Vec::new();
    for (channel, samples) in channels.iter().enumerate() {
        let spans = vad::merge_close(vad::speech_regions(samples), gap)
            .into_iter()
            .flat_map(|span| split_long(samples, span, window_ms));
        utterances.extend(spans.map(|span| Utterance { channel, span, words: Vec::new() }));
    }
    utterances.sort_by_key(|utterance| (utterance.span.start, utterance.channel));
    let mut pending: Vec<usize> = (0..utterances.len()).collect();
    let mut not_speech = std::collections::HashSet::new();
    let mut pace = None;
    for alone in [false, false, true] {
        if pending.is_empty() {
            break;
        }
        let spans: Vec<Range<usize>> =
            pending.iter().map(|&index| utterances[index].span.clone()).collect();
        let windows = if alone {
            spans.iter().enumerate().map(|(at, span)| single(at, span.clone())).collect()
        } else {
            pack(&spans, window_ms)
        };
        // A sparse utterance is heard again from scratch, and keeps whichever hearing has
        // more words.
        let earlier: Vec<Vec<Word>> =
            pending.iter().map(|&index| std::mem::take(&mut utterances[index].words)).collect();
        let packed = |window: &Window| packed_samples(channels, &utterances, &pending, window);
        let heard = hear_windows(&windows, threads, packed, recognize)?;
        for (window, words) in windows.iter().zip(heard) {
            let captioned = place_words(&mut utterances, &pending, window, &words);
            // Alone, an utterance heard only as `[Music]` or `[BLANK_AUDIO]` is not speech.
            // (In a shared window a caption may belong to a neighbour or a spacer.)
            if alone && captioned {
                not_speech.extend(window.pieces.iter().map(|piece| pending[piece.utterance]));
            }
        }
        for (&index, earlier) in pending.iter().zip(earlier) {
            if earlier.len() >= utterances[index].words.len() {
                utterances[index].words = earlier;
            }
        }
        let pace = *pace.get_or_insert_with(|| pace_of(&utterances));
        pending.retain(|&index| {
            let utterance = &utterances[index];
            utterance.is_sparse(pace) || utterance.is_clipped()
        });
    }
    for &index in &pending {
        let utterance = &utterances[index];
        let (start_ms, end_ms) = utterance.span_ms();
        let aligned = utterance.aligned_span();
        tracing::debug!(
            channel = utterance.channel,
            start_ms,
            end_ms,
            words = utterance.words.len(),
            first_aligned_ms = aligned.map(|(first, _)| first),
            last_aligned_ms = aligned.map(|(_, last)| last),
            "an utterance still sparse or clipped after hearing it again"
        );
    }
    let mut index = 0;
    utterances.retain(|utterance| {
        index += 1;
        !utterance.words.is_empty() || !not_speech.contains(&(index - 1))
    });
    Ok(utterances)
}

impl Utterance {
    /// Whether recognition left it with no words, or with far fewer than its length holds at
    /// the call's `pace` (words a second): when a window's decoding stops early, the
    /// utterance it stopped in may keep only its first words, or a word or two (a 5-second
    /// line heard as "week."), which is speech lost as surely as none.
    fn is_sparse(&self, pace: f64) -> bool {
        self.words.is_empty()
            || self
                .words_per_second()
                .is_some_and(|rate| rate < SPARSE_FLOOR_WPS.max(pace * SPARSE_SHARE))
    }

    /// Whether its words, by their aligned times, start well after its speech does or stop
    /// well before it ends: a window's decoding can drop a sentence from an utterance and
    /// stretch the timestamps of the words it kept over the whole of it ("Thank you for
    /// calling City Dental, this is Anna. How can I help you today?" heard as its first
    /// sentence, over 4.8 s), which neither the count of its words nor their timestamps show.
    fn is_clipped(&self) -> bool {
        let (start, end) = self.span_ms();
        self.aligned_span()
            .is_some_and(|(first, last)| first - start > CLIPPED_MS || end - last > CLIPPED_MS)
    }

    /// Fills a clipped end (`is_clipped`) from `other`, another hearing's words of the same
    /// channel in time order, and returns how many words it took. Past its last word (by
    /// aligned time) come the words `other` heard after the same word within `ANCHOR_MS` of
    /// it, up to the utterance's end; before its first word, those `other` heard before it,
    /// from the utterance's start. Without that word in `other` nothing is taken: the two
    /// hearings are then too unlike to splice without doubling or dropping a word. A call
    /// heard twice can lose a sentence in one hearing, every time it is heard again, that
    /// the other kept (docs/BENCHMARKS.md).
    pub(super) fn fill_clipped_from(&mut self, other: &[&Word]) -> usize {
        let (start, end) = self.span_ms();
        let Some((first, last)) = self.aligned_span() else { return 0 };
        let before = self.words.len();
        if end - last > CLIPPED_MS
            && let Some(at) = self.words.iter().rposition(|word| word.aligned_ms == Some(last))
            && let Some(anchor) = same_word_near(other, &self.words[at], last)
        {
            let tail = other[anchor + 1..]
                .iter()
                .take_while(|word| word.aligned_ms.is_some_and(|aligned| aligned < end))
                .map(|&word| word.clone());
            self.words.extend(tail);
        }
        if first - start > CLIPPED_MS
            && let Some(at) = self.words.iter().position(|word| word.aligned_ms == Some(first))
            && let Some(anchor) = same_word_near(other, &self.words[at], first)
        {
            let head: Vec<Word> = other[..anchor]
                .iter()
                .rev()
                .take_while(|word| word.aligned_ms.is_some_and(|aligned| aligned >= start))
                .map(|&word| word.clone())
                .collect();
            self.words.splice(0..0, head.into_iter().rev());
        }
        self.words.len() - before
    }

    /// Where it starts and ends in the call, in milliseconds.
    fn span_ms(&self) -> (i64, i64) {
        (samples_to_ms(self.span.start), samples_to_ms(self.span.end))
    }

    /// The first and the last of its words' aligned times, when recognition gave them.
    fn aligned_span(&self) -> Option<(i64, i64)> {
        let onsets = || self.words.iter().filter_map(|word| word.aligned_ms);
        Some((onsets().min()?, onsets().max()?))
    }

    /// Words a second, for an utterance long enough to tell.
    #[allow(clippy::cast_precision_loss)]
    fn words_per_second(&self) -> Option<f64> {
        let span_ms = samples_to_ms(self.span.len());
        (span_ms >= SPARSE_MIN_MS).then(|| self.words.len() as f64 * 1000.0 / span_ms as f64)
    }

    /// How much of the utterance its words cover: from the first word's start to the last
    /// word's end, within the utterance, and no further than `CLIPPED_MS` from the first and
    /// last aligned times (a clipped hearing's timestamps run to the utterance's ends).
    fn recognized_ms(&self) -> i64 {
        let (start, end) = self.span_ms();
        let (Some(first), Some(last)) = (self.words.first(), self.words.last()) else {
            return 0;
        };
        let (from, to) = self.aligned_span().map_or((start, end), |(first, last)| {
            (start.max(first - CLIPPED_MS), end.min(last + CLIPPED_MS))
        });
        (last.end_ms.min(to) - first.start_ms.max(from)).clamp(0, end - start)
    }
}

/// The index in `words` of the word spelled as `word` (as searches compare words: letters and
/// digits, any case or accent) whose aligned time is nearest `aligned_ms`, within `ANCHOR_MS`.
fn same_word_near(words: &[&Word], word: &Word, aligned_ms: i64) -> Option<usize> {
    let spelling = |text: &str| search_words(text).collect::<Vec<String>>();
    let wanted = spelling(&word.text);
    words
        .iter()
        .enumerate()
        .filter(|(_, other)| spelling(&other.text) == wanted)
        .filter_map(|(index, other)| Some((index, (other.aligned_ms? - aligned_ms).abs())))
        .filter(|&(_, distance)| distance <= ANCHOR_MS)
        .min_by_key(|&(_, distance)| distance)
        .map(|(index, _)| index)
}

/// The pace of a call: the median words a second of its utterances heard and long enough to
/// tell.
fn pace_of(utterances: &[Utterance]) -> f64 {
    let mut rates: Vec<f64> = utterances
        .iter()
        .filter(|utterance| !utterance.words.is_empty())
        .filter_map(Utterance::words_per_second)
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).copied().unwrap_or(0.0)
}

/// Each window's words. Windows of about the same length are heard two at a time (`sharing`:
/// side by side on half the threads each when there are two or more); the others, one by one on
/// all of them. (A pair takes as long as its longer window on fewer threads: beside a much shorter
/// one, that is longer than the two one after the other on all the threads.)
fn hear_windows(
    windows: &[Window],
    threads: usize,
    packed: impl Fn(&Window) -> Vec<f32> + Sync,
    recognize: &Recognize<'_>,
) -> Result<Vec<Vec<Word>>, String> {
    let hear = |at: usize, threads: usize| {
        let started = std::time::Instant::now();
        let words = recognize(&packed(&windows[at]), threads);
        tracing::debug!(
            window_ms = samples_to_ms(windows[at].length),
            threads,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "heard a window"
        );
        words
    };
    let mut longest_first: Vec<usize> = (0..windows.len()).collect();
    longest_first.sort_by_key(|&at| std::cmp::Reverse(windows[at].length));
    let mut heard = vec![Vec::new(); windows.len()];
    let mut next = longest_first.into_iter().peekable();
    while let Some(longer) = next.next() {
        let like_length =
            |&shorter: &usize| windows[shorter].length * 4 >= windows[longer].length * 3;
        let Some(shorter) = next.next_if(like_length) else {
            heard[longer] = hear(longer, threads)?;
            continue;
        };
        let (longer_words, shorter_words) =
            sharing(threads, |threads| hear(longer, threads), |threads| hear(shorter, threads));
        heard[longer] = longer_words?;
        heard[shorter] = shorter_words?;
    }
    Ok(heard)
}

/// Runs `first` and `second`, each on its share of `threads`: side by side on half the threads
/// each when there are two or more, otherwise one after the other on all of them.
fn sharing<A, B: Send>(
    threads: usize,
    first: impl FnOnce(usize) -> A,
    second: impl FnOnce(usize) -> B + Send,
) -> (A, B) {
    if threads < 2 {
        let first = first(threads);
        return (first, second(threads));
    }
    std::thread::scope(|scope| {
        let second = scope.spawn(move || second(threads / 2));
        let first = first(threads - threads / 2);
        (first, second.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// The samples of a window of `pending` utterances: each utterance, then a spacer.
fn packed_samples(
    channels: &[&[f32]],
    utterances: &[Utterance],
    pending: &[usize],
    window: &Window,
) -> Vec<f32> {
    let spacer = vec![0.0f32; ms_to_samples(SPACER_MS)];
    let mut packed = Vec::with_capacity(window.length);
    for piece in &window.pieces {
        let utterance = &utterances[pending[piece.utterance]];
        packed.extend_from_slice(&channels[utterance.channel][utterance.span.clone()]);
        packed.extend_from_slice(&spacer);
    }
    packed
}

/// Gives each of a window's `pending` utterances its words, heard in the window, in call time;
/// whether recognition captioned a sound (`[Music]`) in it.
fn place_words(
    utterances: &mut [Utterance],
    pending: &[usize],
    window: &Window,
    words: &[Word],
) -> bool {
    let mut captioned = false;
    for word in without_stacked_runs(words) {
        if is_annotation(&word.text) {
            captioned = true;
            continue;
        }
        // The aligned time when there is one; otherwise the end (whisper.cpp stamps the first
        // word after a pause too early, often inside the spacer before it).
        let at_ms = word.aligned_ms.unwrap_or(word.end_ms - 10);
        let Some(piece) = window.piece_at(ms_to_samples(usize::try_from(at_ms).unwrap_or(0)))
        else {
            continue;
        };
        let utterance = &mut utterances[pending[piece.utterance]];
        let span = utterance.span.clone();
        let to_call_ms = |ms: i64| {
            let packed_at = ms_to_samples(usize::try_from(ms).unwrap_or(0));
            let offset = packed_at.saturating_sub(piece.packed_start).min(span.len());
            samples_to_ms(span.start + offset)
        };
        let (start_ms, end_ms) = (to_call_ms(word.start_ms), to_call_ms(word.end_ms));
        let aligned_ms = word.aligned_ms.map(to_call_ms);
        utterance.words.push(Word { start_ms, end_ms: end_ms.max(start_ms), aligned_ms, ..word });
    }
    captioned
}

/// Words stamped at one instant, `STACKED_WORDS` or more in a row, are not speech: Whisper
/// decoding past the end of a window's audio can repeat what it heard before, every word at
/// the window's last timestamp (seen on an 8 kHz mono call: its whole text twice more, all at
/// one millisecond, given to the last utterance).
fn without_stacked_runs(words: &[Word]) -> Vec<Word> {
    const STACKED_WORDS: usize = 3;
    words
        .chunk_by(|a, b| (a.start_ms, a.end_ms) == (b.start_ms, b.end_ms))
        .filter(|run| run.len() < STACKED_WORDS)
        .flatten()
        .cloned()
        .collect()
}

/// A window of one span, the `at`th of those being recognized.
fn single(at: usize, span: Range<usize>) -> Window {
    let length = span.len() + ms_to_samples(SPACER_MS);
    Window { pieces: vec![Piece { utterance: at, packed_start: 0, length: span.len() }], length }
}

/// Whisper's captions for sounds that are not speech: `[Music]`, `(laughs)`, `[BLANK_AUDIO]`.
fn is_annotation(word: &str) -> bool {
    let word = word.trim();
    (word.starts_with('[') && word.ends_with(']')) || (word.starts_with('(') && word.ends_with(')'))
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
    /// The piece a packed sample belongs to. A sample in the spacer after a piece belongs to
    /// that piece: aligned word times lag the audio, never lead it by a whole spacer.
    fn piece_at(&self, packed: usize) -> Option<&Piece> {
        self.pieces.iter().rev().find(|piece| piece.packed_start <= packed).or(self.pieces.first())
    }
}

/// Groups spans, in order, into windows of at most `window_ms` (spacers included).
fn pack(spans: &[Range<usize>], window_ms: usize) -> Vec<Window> {
    let limit = ms_to_samples(window_ms);
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
fn split_long(samples: &[f32], span: Range<usize>, window_ms: usize) -> Vec<Range<usize>> {
    let limit = ms_to_samples(window_ms - SPACER_MS);
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

fn stereo_turns(utterances: &[Utterance], hints: RoleHints) -> Vec<Turn> {
    let assistant = match hints.assistant_channel {
        Some(channel @ 1..=2) => (channel - 1) as usize,
        _ => {
            let first = utterances.first().map_or(0, |utterance| utterance.channel);
            if hints.first_turn == Role::User { 1 - first } else { first }
        }
    };
    let turns = utterances.iter().map(|utterance| {
        let role = if utterance.channel == assistant { Role::Assistant } else { Role::User };
        to_turn(role, Some(u32::try_from(utterance.channel + 1).unwrap_or(0)), utterance, None)
    });
    merge_runs(turns)
}

/// Mono: utterances split where the voice changes (`voices`), the call's first voice given the
/// role `first_turn`.
fn diarized_turns(
    samples: &[f32],
    utterances: &[Utterance],
    first_turn: Role,
    models: &VoiceModels,
) -> Vec<Turn> {
    let other = if first_turn == Role::User { Role::Assistant } else { Role::User };
    let turns = voices::split_by_voice(samples, utterances, models).into_iter().map(|voiced| {
        let role = if voiced.speaker == 0 { first_turn } else { other };
        to_turn(role, None, &voiced.utterance, Some(voiced.confidence))
    });
    merge_runs(turns)
}

/// Mono without the speaker model (not installed): utterances alternate speakers, starting with
/// `first_turn`. The labels are guesses and say so by their confidence.
fn mono_turns(utterances: &[Utterance], first_turn: Role) -> Vec<Turn> {
    let other = if first_turn == Role::User { Role::Assistant } else { Role::User };
    let turns = utterances.iter().enumerate().map(|(index, utterance)| {
        let role = if index % 2 == 0 { first_turn } else { other };
        to_turn(role, None, utterance, Some(0.5))
    });
    turns.collect()
}

/// A turn spans its utterance's voice activity: on a channel of its own, that is where the
/// speaker spoke, more exactly than Whisper's word times.
fn to_turn(
    role: Role,
    channel: Option<u32>,
    utterance: &Utterance,
    speaker_confidence: Option<f32>,
) -> Turn {
    let words = &utterance.words;
    let content: String = words.iter().map(|word| word.text.as_str()).collect();
    let recognition =
        words.iter().map(|word| word.probability).sum::<f32>() / words.len().max(1) as f32;
    Turn {
        role,
        content: content.trim().to_owned(),
        start_ms: samples_to_ms(utterance.span.start),
        end_ms: Some(samples_to_ms(utterance.span.end)),
        channel,
        confidence: Some(
            speaker_confidence.map_or(recognition, |speaker| speaker.min(recognition)),
        ),
        unrecognized: words.is_empty(),
    }
}

/// Joins consecutive turns of one speaker into one; a turn not recognised stays on its own,
/// so its span shows where speech was lost.
fn merge_runs(turns: impl Iterator<Item = Turn>) -> Vec<Turn> {
    let mut merged: Vec<Turn> = Vec::new();
    for turn in turns {
        match merged.last_mut() {
            Some(last)
                if last.role == turn.role
                    && last.channel == turn.channel
                    && !last.unrecognized
                    && !turn.unrecognized =>
            {
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

pub(super) fn ms_to_samples(ms: usize) -> usize {
    ms * SAMPLE_RATE as usize / 1000
}

pub(super) fn samples_to_ms(samples: usize) -> i64 {
    i64::try_from(samples * 1000 / SAMPLE_RATE as usize).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn word(text: &str, start_ms: i64, end_ms: i64) -> Word {
        Word { text: format!(" {text}"), start_ms, end_ms, probability: 0.9, aligned_ms: None }
    }

    #[test]
    fn packing_respects_the_window_and_maps_positions_back() {
        let second = SAMPLE_RATE as usize;
        let spans = vec![0..10 * second, 12 * second..22 * second, 30 * second..40 * second];
        let windows = pack(&spans, WINDOW_MS);
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[0].pieces.len(), 2);
        let piece = windows[0].piece_at(11 * second).unwrap();
        assert_eq!(piece.utterance, 1);
        // a position inside the spacer after the first piece belongs to the first piece
        assert_eq!(windows[0].piece_at(10 * second + 100).unwrap().utterance, 0);
        assert_eq!(windows[0].piece_at(0).unwrap().utterance, 0);
        // shorter windows (for a recognizer that slows what it hears) hold one span each
        assert_eq!(pack(&spans, 20_000).len(), 3);
    }

    #[test]
    fn long_speech_is_split_at_its_quietest_point() {
        let second = SAMPLE_RATE as usize;
        let mut samples = vec![0.3f32; 40 * second];
        for sample in &mut samples[24 * second..24 * second + 2 * vad::FRAME] {
            *sample = 0.0;
        }
        let pieces = split_long(&samples, 0..samples.len(), WINDOW_MS);
        assert_eq!(pieces.len(), 2);
        assert!((24 * second..24 * second + 2 * vad::FRAME).contains(&pieces[0].end));
        assert_eq!(pieces[1].end, samples.len());
    }

    #[test]
    fn stereo_turns_interleave_by_time_and_follow_the_role_hints() {
        let ms = |ms: usize| ms * SAMPLE_RATE as usize / 1000;
        let utterance = |channel: usize, from: usize, to: usize, words: Vec<Word>| Utterance {
            channel,
            span: ms(from)..ms(to),
            words,
        };
        let utterances = vec![
            utterance(0, 100, 500, vec![word("hello", 100, 500)]),
            utterance(1, 2000, 2600, vec![word("hi", 2000, 2300), word("there", 2300, 2600)]),
            utterance(0, 3000, 3200, vec![word("how", 3000, 3200)]),
            utterance(0, 4500, 4900, vec![word("are", 4500, 4700), word("you", 4700, 4900)]),
        ];
        let hints = RoleHints { first_turn: Role::Assistant, assistant_channel: None };
        let turns = stereo_turns(&utterances, hints);
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
        assert_eq!(stereo_turns(&utterances, user_first)[0].role, Role::User);
        let mapped = RoleHints { first_turn: Role::Assistant, assistant_channel: Some(2) };
        assert_eq!(stereo_turns(&utterances, mapped)[0].role, Role::User);
    }

    /// `(channel, amplitude)` stretches of a 300 Hz tone, one second each with 1.5 s of
    /// silence after, on two channels.
    fn call_of(stretches: &[(usize, f32)]) -> DecodedAudio {
        let rate = SAMPLE_RATE as usize;
        let mut channels = vec![vec![0.0f32; rate / 2], vec![0.0f32; rate / 2]];
        for (channel, amplitude) in stretches {
            let at = channels[0].len();
            for samples in &mut channels {
                samples.resize(at + rate * 5 / 2, 0.0);
            }
            tone(&mut channels[*channel][at..at + rate], *amplitude);
        }
        DecodedAudio { channels, source_sample_rate: SAMPLE_RATE }
    }

    /// Fills `samples` with a 300 Hz tone of `amplitude`.
    fn tone(samples: &mut [f32], amplitude: f32) {
        let rate = SAMPLE_RATE as f32;
        for (index, sample) in samples.iter_mut().enumerate() {
            let phase = 2.0 * std::f32::consts::PI * 300.0 * index as f32 / rate;
            *sample = amplitude * phase.sin();
        }
    }

    /// A recognizer for tests: a word per stretch of sound it is given, named by the
    /// stretch's amplitude; it stops after `limit` words (as Whisper's decoder may end a
    /// window early) and hears nothing in stretches quieter than `deaf_below`.
    fn recognizer(
        limit: usize,
        deaf_below: f32,
    ) -> impl Fn(&[f32], usize) -> Result<Vec<Word>, String> + Sync {
        move |samples: &[f32], _threads| {
            let ms = |at: usize| samples_to_ms(at);
            let words = vad::speech_regions(samples)
                .into_iter()
                .filter_map(|region| {
                    let peak =
                        samples[region.clone()].iter().fold(0.0f32, |peak, s| peak.max(s.abs()));
                    (peak >= deaf_below).then(|| Word {
                        text: format!(" w{peak:.1}"),
                        start_ms: ms(region.start),
                        end_ms: ms(region.end),
                        probability: 0.9,
                        aligned_ms: Some(ms(region.start) + 100),
                    })
                })
                .take(limit)
                .collect();
            Ok(words)
        }
    }

    /// Each turn's role, words and whether it was recognised.
    fn summary(transcript: &Transcript) -> Vec<(Role, &str, bool)> {
        transcript
            .turns
            .iter()
            .map(|turn| (turn.role, turn.content.as_str(), turn.unrecognized))
            .collect()
    }

    fn stereo_hints() -> RoleHints {
        RoleHints { first_turn: Role::Assistant, assistant_channel: Some(1) }
    }

    #[test]
    fn utterances_a_window_left_without_words_are_recognized_again() {
        let audio = call_of(&[(0, 0.5), (1, 0.4), (0, 0.5), (1, 0.4)]);
        // The decoder ends every window after its first word.
        let transcript =
            transcribe(&audio, stereo_hints(), None, None, 1, &recognizer(1, 0.0)).unwrap();
        let summary = summary(&transcript);
        assert_eq!(
            summary,
            [
                (Role::Assistant, "w0.5", false),
                (Role::User, "w0.4", false),
                (Role::Assistant, "w0.5", false),
                (Role::User, "w0.4", false)
            ]
        );
        assert!(transcript.speech_coverage().unwrap() > 0.9, "{transcript:?}");
    }

    /// The assistant's line, `bursts` bursts of 0.8 s 600 ms apart (one utterance), then the
    /// caller's, one second, 1.5 s after it.
    fn line_then_reply(bursts: usize) -> DecodedAudio {
        let rate = SAMPLE_RATE as usize;
        let burst_at = |burst: usize| rate / 2 + burst * rate * 14 / 10;
        let reply = burst_at(bursts - 1) + rate * 8 / 10 + rate * 3 / 2;
        let mut channels = vec![vec![0.0f32; reply + 2 * rate]; 2];
        for burst in 0..bursts {
            tone(&mut channels[0][burst_at(burst)..burst_at(burst) + rate * 8 / 10], 0.5);
        }
        tone(&mut channels[1][reply..reply + rate], 0.4);
        DecodedAudio { channels, source_sample_rate: SAMPLE_RATE }
    }

    /// Hears every stretch of sound, except that the first window's words are `altered` (as a
    /// window's decoding may stop early or drop a sentence); counts the windows in `windows`.
    fn first_window_altered<'a>(
        windows: &'a AtomicUsize,
        altered: impl Fn(Vec<Word>) -> Vec<Word> + Sync + 'a,
    ) -> impl Fn(&[f32], usize) -> Result<Vec<Word>, String> + Sync + 'a {
        let hears = recognizer(usize::MAX, 0.0);
        move |samples: &[f32], threads| {
            let first = windows.fetch_add(1, Ordering::Relaxed) == 0;
            let words = hears(samples, threads)?;
            Ok(if first { altered(words) } else { words })
        }
    }

    #[test]
    fn an_utterance_left_with_a_word_or_two_is_heard_again() {
        // A line of four words in 5 s.
        let audio = line_then_reply(4);
        // The first window's decoding stops after one word; later ones hear everything.
        let windows = AtomicUsize::new(0);
        let stops_once = first_window_altered(&windows, |words| words[..1].to_vec());
        let transcript = transcribe(&audio, stereo_hints(), None, None, 1, &stops_once).unwrap();
        assert_eq!(
            summary(&transcript),
            [(Role::Assistant, "w0.5 w0.5 w0.5 w0.5", false), (Role::User, "w0.4", false)]
        );
    }

    /// Hears as `recognizer` does, and notes each window's length in seconds and threads.
    fn noting<'a>(
        asked: &'a Mutex<Vec<(usize, usize)>>,
    ) -> impl Fn(&[f32], usize) -> Result<Vec<Word>, String> + Sync + 'a {
        let hears = recognizer(usize::MAX, 0.0);
        move |samples: &[f32], threads| {
            let seconds = samples.len() / SAMPLE_RATE as usize;
            asked.lock().unwrap().push((seconds, threads));
            hears(samples, threads)
        }
    }

    #[test]
    fn windows_of_a_like_length_are_heard_side_by_side_with_the_same_words() {
        // 36 one-second lines, 1.8 s each in a window (voice activity's margins and the spacer
        // included): windows of 15, 15 and 6 lines.
        let lines: Vec<(usize, f32)> = (0..36).map(|line| (line % 2, 0.5)).collect();
        let audio = call_of(&lines);
        let heard = |threads: usize| {
            let asked = Mutex::new(Vec::new());
            let transcript =
                transcribe(&audio, stereo_hints(), None, None, threads, &noting(&asked)).unwrap();
            let mut asked = asked.into_inner().unwrap();
            asked.sort_unstable();
            (transcript, asked)
        };
        let (one_by_one, asked) = heard(1);
        assert_eq!(asked, [(10, 1), (27, 1), (27, 1)]);
        assert_eq!(one_by_one.turns.len(), 36);
        // The two long windows side by side, a thread each; the short one on both threads.
        let (side_by_side, asked) = heard(2);
        assert_eq!(asked, [(10, 2), (27, 1), (27, 1)]);
        assert_eq!(side_by_side, one_by_one);
    }

    #[test]
    fn a_slowed_hearing_runs_beside_the_first_on_half_the_threads_or_after_it() {
        let audio = line_then_reply(3);
        let heard = |threads: usize| {
            let asked = Mutex::new(Vec::new());
            let transcript =
                transcribe(&audio, stereo_hints(), None, Some(0.9), threads, &noting(&asked));
            let mut asked = asked.into_inner().unwrap();
            asked.sort_unstable();
            (transcript.unwrap(), asked)
        };
        let (after, asked) = heard(1);
        // One window a hearing, as recorded and slowed, each on one thread.
        assert_eq!(asked, [(6, 1), (6, 1)]);
        let (beside, asked) = heard(2);
        assert_eq!(asked, [(6, 1), (6, 1)]);
        assert_eq!(beside, after);
    }

    #[test]
    fn an_utterance_whose_last_words_were_dropped_is_heard_again() {
        // A line of six words in 7.8 s.
        let audio = line_then_reply(6);
        // The first window's decoding drops the line's last word: five words in 7.8 s is the
        // call's pace, not sparse, but 2.1 s of speech come after the fifth word.
        let windows = AtomicUsize::new(0);
        let drops_the_last = first_window_altered(&windows, |words| words[..5].to_vec());
        let transcript =
            transcribe(&audio, stereo_hints(), None, None, 1, &drops_the_last).unwrap();
        assert_eq!(
            summary(&transcript),
            [
                (Role::Assistant, "w0.5 w0.5 w0.5 w0.5 w0.5 w0.5", false),
                (Role::User, "w0.4", false)
            ]
        );
        assert_eq!(windows.load(Ordering::Relaxed), 2, "heard again once, then complete");
    }

    #[test]
    fn speech_after_the_last_aligned_word_is_not_counted_as_recognized() {
        let word = |start_ms, end_ms, aligned_ms| Word {
            aligned_ms: Some(aligned_ms),
            ..word("w", start_ms, end_ms)
        };
        // The dental call's first line, heard as its first sentence: the timestamps of the
        // last words all at the utterance's end, their aligned times 1.8 s before it.
        let span = ms_to_samples(420)..ms_to_samples(5_190);
        let clipped = Utterance {
            channel: 0,
            span: span.clone(),
            words: vec![word(600, 1_850, 940), word(5_190, 5_190, 3_380)],
        };
        assert!(clipped.is_clipped());
        assert_eq!(clipped.recognized_ms(), 3_380 + CLIPPED_MS - 600);
        let whole = Utterance {
            channel: 0,
            span,
            words: vec![word(600, 1_850, 940), word(4_600, 5_100, 4_700)],
        };
        assert!(!whole.is_clipped());
        assert_eq!(whole.recognized_ms(), 5_100 - 600);
    }

    #[test]
    fn speech_recognition_cannot_hear_is_a_turn_marked_not_recognised() {
        let audio = call_of(&[(0, 0.5), (1, 0.1), (0, 0.5)]);
        let transcript =
            transcribe(&audio, stereo_hints(), None, None, 1, &recognizer(usize::MAX, 0.2))
                .unwrap();
        let summary = summary(&transcript);
        // The assistant's two lines stay apart: the caller spoke between them.
        assert_eq!(
            summary,
            [
                (Role::Assistant, "w0.5", false),
                (Role::User, "", true),
                (Role::Assistant, "w0.5", false)
            ]
        );
        let lost = &transcript.turns[1];
        assert!((2_800..3_100).contains(&lost.start_ms), "{lost:?}");
        assert!((3_900..4_200).contains(&lost.end_ms.unwrap()), "{lost:?}");
        assert_eq!(lost.channel, Some(2));
        // A third of the speech found is not covered by words.
        let coverage = transcript.speech_coverage().unwrap();
        assert!((0.6..0.7).contains(&coverage), "{coverage}");
    }

    #[test]
    fn a_stretch_heard_alone_as_a_sound_caption_is_not_speech() {
        let audio = call_of(&[(0, 0.5), (1, 0.1), (0, 0.5)]);
        let hears = recognizer(usize::MAX, 0.2);
        // What the recognizer cannot hear as words it captions, as Whisper does for music.
        let captions = |samples: &[f32], threads| {
            let words = hears(samples, threads)?;
            if !words.is_empty() {
                return Ok(words);
            }
            let caption = Word {
                text: " [Music]".to_owned(),
                start_ms: 0,
                end_ms: 500,
                probability: 0.5,
                aligned_ms: Some(100),
            };
            Ok(vec![caption])
        };
        let transcript = transcribe(&audio, stereo_hints(), None, None, 1, &captions).unwrap();
        // The assistant's two lines, and nothing for the music between them: no turn, and not
        // counted as speech lost.
        assert_eq!(summary(&transcript), [(Role::Assistant, "w0.5 w0.5", false)]);
        assert!(transcript.speech_coverage().unwrap() > 0.9, "{transcript:?}");
    }

    #[test]
    fn words_stamped_at_one_instant_are_not_speech() {
        let words = vec![
            word("no", 0, 200),
            word("a", 300, 300),
            word("b", 300, 300),
            word("purchase", 400, 900),
            word("i", 900, 900),
            word("see", 900, 900),
            word("two", 900, 900),
            word("orders", 900, 900),
        ];
        let kept = without_stacked_runs(&words);
        let texts: Vec<&str> = kept.iter().map(|word| word.text.trim()).collect();
        // Two zero-length words in a row happen in speech; a loop stamps many at once.
        assert_eq!(texts, ["no", "a", "b", "purchase"]);
    }

    #[test]
    fn sound_captions_are_not_words() {
        assert!(is_annotation(" [Music]"));
        assert!(is_annotation("(laughs)"));
        assert!(!is_annotation(" music"));
        assert!(!is_annotation(" [9:30"));
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
            Utterance { channel: 0, span: 0..1, words: vec![word("hello", 0, 400)] },
            Utterance { channel: 0, span: 2..3, words: vec![word("hi", 900, 1200)] },
        ];
        let turns = mono_turns(&utterances, Role::User);
        assert_eq!(
            turns.iter().map(|turn| turn.role).collect::<Vec<_>>(),
            [Role::User, Role::Assistant]
        );
        assert!(turns.iter().all(|turn| turn.confidence == Some(0.5)));
    }
}
