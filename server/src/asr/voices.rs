//! Who speaks when in a mono call, where both voices share one channel and a speaker may
//! answer the other without a pause, or over them. Every utterance is seen through windows of
//! 1.6 s every 0.4 s; each window's voice is its GE2E embedding with its pitch beside it. An
//! utterance is cut where the voices of the windows before and after differ most, as long as
//! they differ clearly, and each side again (binary segmentation), at the quietest moment
//! where the two sides meet, its words following their times; then all the pieces of the call
//! are clustered into two speakers.

use std::ops::Range;

use pitch_detection::detector::PitchDetector;
use pitch_detection::detector::mcleod::McLeodDetector;

use super::speaker::{self, VoiceModels};
use super::turns::{Utterance, ms_to_samples, samples_to_ms};
use super::vad;
use super::whisper::Word;
use crate::audio::decode::SAMPLE_RATE;

/// A window: one partial of the speaker encoder (1.6 s).
const WINDOW_MS: usize = speaker::PARTIAL_MS;
/// Windows start this far apart: the resolution of a change of speaker.
const STEP_MS: usize = 400;
/// The fewest windows on each side of a cut (0.8 s of agreeing evidence beyond the first
/// window; one window alone is noise).
const MIN_SIDE_WINDOWS: usize = 2;
/// An utterance is cut where the mean voices of the two sides are further apart than this
/// (cosine distance). On the generated calls a change of speaker measured 0.25-0.40 and the
/// drift of one synthetic voice through a long monologue up to 0.14.
const CHANGE_DISTANCE: f32 = 0.2;
/// A piece weighs at most this much when the pieces are clustered: otherwise one long
/// monologue outweighs everything else and its own drift becomes the two clusters.
const MAX_PIECE_WEIGHT_MS: usize = 3_000;
/// The boundary between two voices is the middle of the quietest stretch this long around
/// where their windows meet (a short pause, or a breath, when there is one).
const QUIET_MS: usize = 90;
/// The weight of a window's pitch (its median log2 F0 less the call's mean) beside the unit
/// GE2E embedding. GE2E tells the synthetic voices of the generated calls apart poorly (their
/// utterances sit at cosine 0.6-0.9 whoever speaks) while their pitch differs by a third of an
/// octave; between voices of one pitch this adds nothing.
const PITCH_WEIGHT: f32 = 2.0;
/// Samples a pitch frame (64 ms: two periods of the lowest pitch looked for), and between
/// frames (20 ms).
const PITCH_FRAME: usize = 1_024;
const PITCH_HOP: usize = 320;
/// Pitches outside this range (Hz) are octave errors or noise, not a voice's F0.
const VOICE_PITCH_HZ: std::ops::RangeInclusive<f32> = 60.0..=500.0;
/// An overlap cuts a piece only this far from its ends: each side is speech of its own.
const OVERLAP_SIDE_MS: usize = 500;
/// The most a call's aligned times are taken to run late (`aligned_lag_ms`).
const MAX_ALIGNED_LAG_MS: i64 = 1_000;
/// How periodic a frame must be (McLeod's clarity) to count as voiced.
const VOICED_CLARITY: f32 = 0.7;

/// A stretch of one utterance spoken by one voice, with its words.
#[derive(Clone, Debug, PartialEq)]
pub struct Voiced {
    pub utterance: Utterance,
    /// 0: the voice the call starts with; 1: the other.
    pub speaker: usize,
    /// How clearly the stretch belongs to that voice, 0.5 (a guess) to 1.
    pub confidence: f32,
}

/// The utterances of a mono call (`samples`, 16 kHz), split where the speaker changes, each
/// piece given its speaker. Where the segmentation model finds two voices at once inside a
/// piece, with speech of its own on each side, the piece is cut where the overlap starts, and
/// the two sides are told apart by turn-taking (`apart_at_overlaps`).
pub fn split_by_voice(
    samples: &[f32],
    utterances: &[Utterance],
    models: &VoiceModels,
) -> Vec<Voiced> {
    let windows: Vec<Vec<Range<usize>>> =
        utterances.iter().map(|utterance| windows(&utterance.span)).collect();
    // Windows overlap four times over: embedded from slices of the call, never copied.
    let all: Vec<&[f32]> =
        windows.iter().flatten().map(|window| &samples[window.clone()]).collect();
    let mut embedded = with_pitch(models.encoder.embed(&all), &all).into_iter();
    let mut pieces: Vec<(Utterance, Vec<f32>)> = Vec::new();
    let lag = aligned_lag_ms(utterances);
    for (utterance, windows) in utterances.iter().zip(&windows) {
        let embeddings: Vec<Vec<f32>> = embedded.by_ref().take(windows.len()).collect();
        pieces.extend(split(samples, utterance, windows, &embeddings, lag));
    }
    let overlaps = models
        .segmentation
        .as_ref()
        .map(|segmentation| segmentation.overlaps(samples))
        .unwrap_or_default();
    tracing::debug!(
        overlaps_ms = ?overlaps
            .iter()
            .map(|overlap| samples_to_ms(overlap.start)..samples_to_ms(overlap.end))
            .collect::<Vec<_>>(),
        "a mono call's overlapped speech"
    );
    let (pieces, overlap_cuts) = cut_at_overlaps(pieces, &overlaps, lag);
    let voices: Vec<Vec<f32>> = pieces.iter().map(|(_, voice)| voice.clone()).collect();
    #[allow(clippy::cast_precision_loss)]
    let weights: Vec<f32> = pieces
        .iter()
        .map(|(piece, _)| piece.span.len().min(ms_to_samples(MAX_PIECE_WEIGHT_MS)) as f32)
        .collect();
    let mut labels = speaker::two_speakers(&voices, &weights);
    let spans: Vec<Range<usize>> = pieces.iter().map(|(piece, _)| piece.span.clone()).collect();
    apart_at_overlaps(&spans, &overlap_cuts, &mut labels);
    for ((piece, _), (speaker, confidence)) in pieces.iter().zip(&labels) {
        tracing::debug!(
            start_ms = samples_to_ms(piece.span.start),
            end_ms = samples_to_ms(piece.span.end),
            words = piece.words.len(),
            speaker,
            confidence,
            "a mono call's piece of one voice"
        );
    }
    pieces
        .into_iter()
        .zip(labels)
        .map(|((utterance, _), (speaker, confidence))| Voiced { utterance, speaker, confidence })
        .collect()
}

/// `pieces` cut where an overlap (of `overlaps`) starts inside one, which goes on before it
/// and after it, with words said (`said_at_ms`) on each side of its start: a second voice
/// joined the first there, and one of them went on alone. The piece must go on
/// `OVERLAP_SIDE_MS` beyond the overlap at an end where its utterance ends, and a window
/// beyond it where the voices' embeddings already found a change, or an overlap already cut it
/// (an overlap that close is that change, placed as finely as windows can). Both sides keep
/// the piece's voice. Also returns the index of each piece that ends at such a cut.
fn cut_at_overlaps(
    pieces: Vec<(Utterance, Vec<f32>)>,
    overlaps: &[Range<usize>],
    lag_ms: i64,
) -> (Vec<(Utterance, Vec<f32>)>, Vec<usize>) {
    let (side, window) = (ms_to_samples(OVERLAP_SIDE_MS), ms_to_samples(WINDOW_MS));
    let changes: Vec<(bool, bool)> = (0..pieces.len())
        .map(|at| {
            let start = pieces[at].0.span.start;
            let end = pieces[at].0.span.end;
            let after_change = at > 0 && pieces[at - 1].0.span.end == start;
            let before_change = pieces.get(at + 1).is_some_and(|next| next.0.span.start == end);
            (after_change, before_change)
        })
        .collect();
    let mut cut: Vec<(Utterance, Vec<f32>)> = Vec::with_capacity(pieces.len());
    let mut cuts = Vec::new();
    for ((mut piece, voice), (after_change, before_change)) in pieces.into_iter().zip(changes) {
        let mut lead = if after_change { window } else { side };
        let trail = if before_change { window } else { side };
        for overlap in overlaps {
            let at = overlap.start;
            if at < piece.span.start + lead || overlap.end + trail > piece.span.end {
                continue;
            }
            let said_before = |word: &Word| {
                ms_to_samples(usize::try_from(said_at_ms(word, lag_ms)).unwrap_or(0)) < at
            };
            let before = piece.words.iter().filter(|word| said_before(word)).count();
            if before == 0 || before == piece.words.len() {
                continue;
            }
            tracing::debug!(
                at_ms = samples_to_ms(at),
                overlap_ms = samples_to_ms(overlap.len()),
                "a mono call's piece cut where two voices start to overlap"
            );
            let (words, after): (Vec<Word>, Vec<Word>) =
                std::mem::take(&mut piece.words).into_iter().partition(said_before);
            let head = Utterance { channel: piece.channel, span: piece.span.start..at, words };
            cuts.push(cut.len());
            cut.push((head, voice.clone()));
            piece = Utterance { channel: piece.channel, span: at..piece.span.end, words: after };
            lead = window;
        }
        cut.push((piece, voice));
    }
    (cut, cuts)
}

/// How late the aligned times of a call run behind the speech: the median, over its
/// utterances, of the first word's aligned time less the utterance's start (0 to
/// `MAX_ALIGNED_LAG_MS`; 0 without aligned times). On the generated mono calls a line's first
/// word was aligned a median 150 ms (base) or 290 ms (tiny.en) after it began.
fn aligned_lag_ms(utterances: &[Utterance]) -> i64 {
    let mut lags: Vec<i64> = utterances
        .iter()
        .filter_map(|utterance| {
            let first = utterance.words.first()?.aligned_ms?;
            Some(first - samples_to_ms(utterance.span.start))
        })
        .collect();
    if lags.is_empty() {
        return 0;
    }
    lags.sort_unstable();
    lags[lags.len() / 2].clamp(0, MAX_ALIGNED_LAG_MS)
}

/// Where a piece was cut at an overlap (`cuts`: the pieces before such a cut), the voice
/// before it and the voice after it are two voices: the one that was speaking, and the one
/// that joined and goes on alone, as at a change of turn spoken over. Both sides have the same
/// embedding, so clustering gives them one speaker; the shorter side, whose own voice the
/// embedding describes least, is then the other speaker, as a guess (confidence 0.5).
fn apart_at_overlaps(spans: &[Range<usize>], cuts: &[usize], labels: &mut [(usize, f32)]) {
    for &before in cuts {
        let after = before + 1;
        if labels[before].0 != labels[after].0 {
            continue;
        }
        let shorter = if spans[before].len() < spans[after].len() { before } else { after };
        labels[shorter] = (1 - labels[shorter].0, 0.5);
    }
}

/// Embeddings with their window's pitch beside them: the median log2 F0 of its voiced frames
/// less the call's mean (a window without voiced frames gets the mean), times `PITCH_WEIGHT`.
fn with_pitch(embeddings: Vec<Vec<f32>>, stretches: &[&[f32]]) -> Vec<Vec<f32>> {
    let mut detector = McLeodDetector::<f32>::new(PITCH_FRAME, PITCH_FRAME / 2);
    let pitches: Vec<Option<f32>> =
        stretches.iter().map(|stretch| median_pitch(&mut detector, stretch)).collect();
    let voiced: Vec<f32> = pitches.iter().flatten().copied().collect();
    #[allow(clippy::cast_precision_loss)]
    let mean = voiced.iter().sum::<f32>() / voiced.len().max(1) as f32;
    embeddings
        .into_iter()
        .zip(pitches)
        .map(|(mut embedding, pitch)| {
            embedding.push(PITCH_WEIGHT * (pitch.unwrap_or(mean) - mean));
            embedding
        })
        .collect()
}

/// The median log2 F0 of the clearly voiced frames of `samples` (16 kHz); None when none is.
fn median_pitch(detector: &mut McLeodDetector<f32>, samples: &[f32]) -> Option<f32> {
    // A frame at -45 dBFS.
    #[allow(clippy::cast_precision_loss)]
    let power_threshold = PITCH_FRAME as f32 * 10f32.powf(-4.5);
    let mut pitches: Vec<f32> = samples
        .windows(PITCH_FRAME)
        .step_by(PITCH_HOP)
        .filter_map(|frame| {
            detector.get_pitch(frame, SAMPLE_RATE as usize, power_threshold, VOICED_CLARITY)
        })
        .map(|pitch| pitch.frequency)
        .filter(|frequency| VOICE_PITCH_HZ.contains(frequency))
        .map(f32::log2)
        .collect();
    if pitches.is_empty() {
        return None;
    }
    pitches.sort_by(f32::total_cmp);
    Some(pitches[pitches.len() / 2])
}

/// The normalised mean of embeddings.
fn mean(embeddings: &[Vec<f32>]) -> Vec<f32> {
    let mut sum = vec![0.0f32; embeddings.first().map_or(0, Vec::len)];
    for embedding in embeddings {
        for (total, value) in sum.iter_mut().zip(embedding) {
            *total += value;
        }
    }
    speaker::normalized(&sum)
}

/// The windows of a span: one every `STEP_MS`, the last ending with the span; a span no
/// longer than a window is one window.
fn windows(span: &Range<usize>) -> Vec<Range<usize>> {
    let (length, step) = (ms_to_samples(WINDOW_MS), ms_to_samples(STEP_MS));
    if span.len() <= length {
        return vec![span.clone()];
    }
    let mut windows: Vec<Range<usize>> =
        (span.start..=span.end - length).step_by(step).map(|start| start..start + length).collect();
    if windows.last().is_some_and(|last| last.end < span.end) {
        windows.push(span.end - length..span.end);
    }
    windows
}

/// One utterance in pieces of one voice (`change_points` over its windows' `embeddings`), each
/// with its words (by `said_at_ms`, the call's aligned times running `lag_ms` late) and its
/// voice (the mean of its windows). A piece that got no words joins its neighbour: a change of
/// voice is only believed where both sides said something.
fn split(
    samples: &[f32],
    utterance: &Utterance,
    windows: &[Range<usize>],
    embeddings: &[Vec<f32>],
    lag_ms: i64,
) -> Vec<(Utterance, Vec<f32>)> {
    if utterance.words.is_empty() {
        return vec![(utterance.clone(), mean(embeddings))];
    }
    let mut cuts = vec![0, embeddings.len()];
    change_points(&prefix_sums(embeddings), 0..embeddings.len(), &mut cuts);
    cuts.sort_unstable();
    let sides: Vec<Range<usize>> = cuts.windows(2).map(|pair| pair[0]..pair[1]).collect();
    let centre = |window: &Range<usize>| (window.start + window.end) / 2;
    let mut pieces: Vec<(Utterance, Vec<f32>)> = Vec::with_capacity(sides.len());
    let mut start = utterance.span.start;
    for (at, side) in sides.iter().enumerate() {
        let end = match sides.get(at + 1) {
            Some(next) => quietest(
                samples,
                centre(&windows[side.end - 1])..centre(&windows[next.start]),
                &utterance.span,
            ),
            None => utterance.span.end,
        };
        let piece = Utterance { channel: utterance.channel, span: start..end, words: Vec::new() };
        pieces.push((piece, mean(&embeddings[side.clone()])));
        start = end;
    }
    for word in &utterance.words {
        let at = ms_to_samples(usize::try_from(said_at_ms(word, lag_ms)).unwrap_or(0));
        let piece = pieces.iter().rposition(|(piece, _)| piece.span.start <= at).unwrap_or(0);
        tracing::trace!(
            text = word.text,
            start_ms = word.start_ms,
            end_ms = word.end_ms,
            aligned_ms = word.aligned_ms,
            piece,
            "a mono call's word placed"
        );
        pieces[piece].0.words.push(word.clone());
    }
    let mut merged: Vec<(Utterance, Vec<f32>)> = Vec::with_capacity(pieces.len());
    for (piece, voice) in pieces {
        match merged.last_mut() {
            Some((last, last_voice)) if last.words.is_empty() || piece.words.is_empty() => {
                if last.words.is_empty() {
                    *last_voice = voice;
                }
                last.span.end = piece.span.end;
                last.words.extend(piece.words);
            }
            _ => merged.push((piece, voice)),
        }
    }
    merged
}

/// Where a word was said, for the piece it goes to: its aligned time less the call's lag
/// (`aligned_lag_ms`), or the middle of its timestamps when it has no aligned time. At the
/// generated mono calls' line onsets the first word's aligned time came a median 150-290 ms
/// after the line began, half of them within 120-380 ms, while its timestamps either began
/// with the line or ran 0.8 s late, and in a long window drift by seconds: an 8 kHz mono
/// call's "It will reach" was stamped at 10-14 s, spoken at 4.8-5.3 s where its aligned times
/// put it (docs/BENCHMARKS.md).
fn said_at_ms(word: &Word, lag_ms: i64) -> i64 {
    word.aligned_ms.map_or((word.start_ms + word.end_ms) / 2, |aligned| aligned - lag_ms)
}

/// Adds to `cuts` the windows of `range` where a new voice starts (circular binary
/// segmentation): the stretch of windows whose mean voice is furthest from the mean of the
/// rest of the range (a stretch at either end is one cut, one in the middle two: the other
/// voice answering and the first taking over again), when further than `CHANGE_DISTANCE`; then
/// the same within each part. `sums`: the prefix sums of the utterance's window embeddings.
fn change_points(sums: &[Vec<f32>], range: Range<usize>, cuts: &mut Vec<usize>) {
    if range.len() < 2 * MIN_SIDE_WINDOWS {
        return;
    }
    let sum_of = |stretch: Range<usize>| -> Vec<f32> {
        sums[stretch.end].iter().zip(&sums[stretch.start]).map(|(end, start)| end - start).collect()
    };
    let total = sum_of(range.clone());
    let mut furthest: Option<(Range<usize>, f32)> = None;
    for start in range.start..=range.end - MIN_SIDE_WINDOWS {
        for end in start + MIN_SIDE_WINDOWS..=range.end {
            if range.len() - (end - start) < MIN_SIDE_WINDOWS {
                continue;
            }
            let inside = sum_of(start..end);
            let outside: Vec<f32> =
                total.iter().zip(&inside).map(|(all, part)| all - part).collect();
            let distance = 1.0
                - speaker::cosine(&speaker::normalized(&inside), &speaker::normalized(&outside));
            if furthest.as_ref().is_none_or(|(_, best)| distance > *best) {
                furthest = Some((start..end, distance));
            }
        }
    }
    let Some((stretch, distance)) = furthest else { return };
    if distance <= CHANGE_DISTANCE {
        return;
    }
    let mut bounds = vec![range.start];
    bounds.extend(
        [stretch.start, stretch.end].into_iter().filter(|at| range.start < *at && *at < range.end),
    );
    bounds.push(range.end);
    cuts.extend(&bounds[1..bounds.len() - 1]);
    for part in bounds.windows(2) {
        change_points(sums, part[0]..part[1], cuts);
    }
}

/// Prefix sums of embeddings: `[k]` is the sum of the first k.
fn prefix_sums(embeddings: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let mut sums = vec![vec![0.0f32; embeddings.first().map_or(0, Vec::len)]];
    for embedding in embeddings {
        let next: Vec<f32> =
            sums[sums.len() - 1].iter().zip(embedding).map(|(sum, value)| sum + value).collect();
        sums.push(next);
    }
    sums
}

/// The middle of the quietest `QUIET_MS` stretch of `samples` in `between` widened by half a
/// step on each side, inside `within`.
fn quietest(samples: &[f32], between: Range<usize>, within: &Range<usize>) -> usize {
    let widen = ms_to_samples(STEP_MS) / 2;
    let from = between.start.saturating_sub(widen).max(within.start);
    let to = (between.end + widen).min(within.end);
    let frames: Vec<f32> = samples[from..to]
        .chunks_exact(vad::FRAME)
        .map(|frame| frame.iter().map(|sample| sample * sample).sum())
        .collect();
    let span = (ms_to_samples(QUIET_MS) / vad::FRAME).max(1);
    if frames.len() < span {
        return (from + to) / 2;
    }
    let quietest = (0..=frames.len() - span)
        .min_by(|a, b| {
            let energy = |first: usize| frames[first..first + span].iter().sum::<f32>();
            energy(*a).total_cmp(&energy(*b))
        })
        .unwrap_or(0);
    from + quietest * vad::FRAME + span * vad::FRAME / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: usize = SAMPLE_RATE as usize;

    fn word(text: &str, start_ms: i64, end_ms: i64) -> Word {
        Word { text: format!(" {text}"), start_ms, end_ms, probability: 0.9, aligned_ms: None }
    }

    fn texts(piece: &Utterance) -> Vec<&str> {
        piece.words.iter().map(|word| word.text.trim()).collect()
    }

    #[test]
    fn windows_cover_the_span_every_step_and_end_with_it() {
        let short = windows(&(100..SECOND));
        assert_eq!((short.len(), &short[0]), (1, &(100..SECOND)));
        let span = SECOND..SECOND * 4;
        let windows = windows(&span);
        let step = ms_to_samples(STEP_MS);
        assert_eq!(windows[0], SECOND..SECOND + ms_to_samples(WINDOW_MS));
        assert_eq!(windows[1].start, SECOND + step);
        assert_eq!(windows.last().unwrap().end, span.end);
        assert!(windows.iter().all(|window| window.len() == ms_to_samples(WINDOW_MS)));
        assert_eq!(windows.len(), 5);
    }

    /// Speech (a tone) everywhere in `length` seconds except the silent `pauses`.
    fn speech_with_pauses(length: usize, pauses: &[Range<usize>]) -> Vec<f32> {
        (0..length * SECOND)
            .map(|index| {
                if pauses.iter().any(|pause| pause.contains(&index)) {
                    0.0
                } else {
                    0.3 * (index as f32 * 0.1).sin()
                }
            })
            .collect()
    }

    /// A window's voice: two voices at cosine 0.7 (distance 0.3, as at a change of speaker in
    /// the generated calls).
    fn voice(other: bool) -> Vec<f32> {
        if other { vec![0.714, 0.7] } else { vec![0.0, 1.0] }
    }

    /// One voice until a 200 ms pause at 2.3 s (shorter than the pause that ends a mono
    /// utterance), the other after it: a 5-second utterance of `words`, the pause, and its pieces.
    fn split_at_a_pause(
        words: Vec<Word>,
        lag_ms: i64,
    ) -> (Range<usize>, Vec<(Utterance, Vec<f32>)>) {
        let pause = 2_300 * SECOND / 1000..2_500 * SECOND / 1000;
        let samples = speech_with_pauses(5, std::slice::from_ref(&pause));
        let utterance = Utterance { channel: 0, span: 0..5 * SECOND, words };
        let windows = windows(&utterance.span);
        let embeddings: Vec<Vec<f32>> = windows
            .iter()
            .map(|window| voice((window.start + window.end) / 2 > pause.start))
            .collect();
        (pause, split(&samples, &utterance, &windows, &embeddings, lag_ms))
    }

    #[test]
    fn an_utterance_is_split_where_the_voice_changes_at_the_pause_between_them() {
        let (pause, pieces) = split_at_a_pause(
            vec![word("one", 200, 900), word("two", 1_000, 2_200), word("three", 2_600, 4_000)],
            0,
        );
        assert_eq!(pieces.len(), 2, "{pieces:#?}");
        let (first, second) = (&pieces[0].0, &pieces[1].0);
        assert!(pause.contains(&first.span.end), "{pieces:#?}");
        assert_eq!(first.span.start, 0);
        assert_eq!(second.span, first.span.end..5 * SECOND);
        assert_eq!(texts(first), ["one", "two"]);
        assert_eq!(texts(second), ["three"]);
        // Each piece carries the voice of its own windows.
        assert!(speaker::cosine(&pieces[0].1, &voice(false)) > 0.999, "{pieces:?}");
        assert!(speaker::cosine(&pieces[1].1, &voice(true)) > 0.999, "{pieces:?}");
    }

    #[test]
    fn words_go_to_the_piece_of_their_aligned_time_less_the_calls_lag() {
        let aligned = |text, start_ms, end_ms, aligned_ms| Word {
            aligned_ms: Some(aligned_ms),
            ..word(text, start_ms, end_ms)
        };
        let (_, pieces) = split_at_a_pause(
            vec![
                // Stamped seconds after the change of voice, aligned before it.
                aligned("one", 3_000, 3_600, 300),
                // Aligned after the pause, but less the lag before it.
                aligned("two", 2_600, 3_000, 2_550),
                // Stamped before the change, aligned (less the lag) after it.
                aligned("three", 1_700, 2_200, 2_900),
                // No aligned time: the timestamps.
                word("four", 4_500, 4_900),
            ],
            300,
        );
        let words: Vec<Vec<&str>> = pieces.iter().map(|(piece, _)| texts(piece)).collect();
        assert_eq!(words, [vec!["one", "two"], vec!["three", "four"]], "{pieces:#?}");
    }

    #[test]
    fn a_calls_lag_is_the_median_of_its_first_words_aligned_after_their_utterances_start() {
        let utterance = |start_ms: usize, aligned_ms: Option<i64>| Utterance {
            channel: 0,
            span: ms_to_samples(start_ms)..ms_to_samples(start_ms + 1_000),
            words: vec![Word { aligned_ms, ..word("a", 0, 100) }],
        };
        let call = [
            utterance(1_000, Some(1_200)),
            utterance(3_000, Some(3_300)),
            utterance(5_000, Some(5_250)),
            utterance(7_000, None),
        ];
        assert_eq!(aligned_lag_ms(&call), 250);
        assert_eq!(aligned_lag_ms(&[utterance(1_000, None)]), 0);
        assert_eq!(aligned_lag_ms(&[utterance(1_000, Some(900))]), 0);
        assert_eq!(aligned_lag_ms(&[utterance(1_000, Some(9_000))]), MAX_ALIGNED_LAG_MS);
        assert_eq!(aligned_lag_ms(&[]), 0);
    }

    /// A piece of `span` (seconds) with a word said at each of `at` (seconds), in one voice.
    fn piece_with_words(span: Range<usize>, at: &[usize]) -> (Utterance, Vec<f32>) {
        let words = at
            .iter()
            .map(|second| {
                let ms = i64::try_from(second * 1_000).unwrap();
                word(&format!("w{second}"), ms, ms + 300)
            })
            .collect();
        (
            Utterance { channel: 0, span: span.start * SECOND..span.end * SECOND, words },
            voice(false),
        )
    }

    #[test]
    fn a_second_voice_joining_inside_a_piece_cuts_it_and_the_shorter_side_is_the_other_voice() {
        // One voice from 0 s, a second over it from 2 to 3 s, then on alone until 8 s.
        let pieces = vec![piece_with_words(0..8, &[1, 4, 6])];
        let overlap = 2 * SECOND..3 * SECOND;
        let (pieces, cuts) = cut_at_overlaps(pieces, std::slice::from_ref(&overlap), 0);
        let spans: Vec<Range<usize>> = pieces.iter().map(|(piece, _)| piece.span.clone()).collect();
        assert_eq!(spans, [0..2 * SECOND, 2 * SECOND..8 * SECOND]);
        assert_eq!(texts(&pieces[0].0), ["w1"]);
        assert_eq!(texts(&pieces[1].0), ["w4", "w6"]);
        assert_eq!(cuts, [0]);
        // Clustered alike (one embedding for both), told apart by turn-taking.
        let mut labels = vec![(0, 1.0), (0, 1.0)];
        apart_at_overlaps(&spans, &cuts, &mut labels);
        assert_eq!(labels, [(1, 0.5), (0, 1.0)]);
        // Already apart: kept.
        let mut labels = vec![(0, 0.9), (1, 0.8)];
        apart_at_overlaps(&spans, &cuts, &mut labels);
        assert_eq!(labels, [(0, 0.9), (1, 0.8)]);
    }

    #[test]
    fn an_overlap_cuts_nothing_without_speech_of_its_own_on_each_side() {
        let overlap = 2 * SECOND..3 * SECOND;
        let uncut = |pieces: Vec<(Utterance, Vec<f32>)>| {
            let before = pieces.clone();
            let (after, cuts) = cut_at_overlaps(pieces, std::slice::from_ref(&overlap), 0);
            assert!(cuts.is_empty(), "{after:#?}");
            assert_eq!(after, before);
        };
        // No word said before the overlap starts.
        uncut(vec![piece_with_words(0..8, &[4, 6])]);
        // The piece ends soon after the overlap: no voice went on alone.
        uncut(vec![piece_with_words(0..3, &[1])]);
        // The piece starts at a change of voice the embeddings found under a window before the
        // overlap: that change is this overlap, placed as finely as windows can.
        uncut(vec![piece_with_words(0..1, &[0]), piece_with_words(1..8, &[1, 4, 6])]);
    }

    #[test]
    fn three_voices_in_a_row_make_three_pieces() {
        let samples = speech_with_pauses(8, &[]);
        let utterance = Utterance {
            channel: 0,
            span: 0..8 * SECOND,
            words: vec![word("a", 500, 1_500), word("b", 3_500, 4_500), word("c", 6_500, 7_500)],
        };
        let windows = windows(&utterance.span);
        let middle = 3 * SECOND..5 * SECOND;
        let embeddings: Vec<Vec<f32>> = windows
            .iter()
            .map(|window| voice(middle.contains(&((window.start + window.end) / 2))))
            .collect();
        let pieces = split(&samples, &utterance, &windows, &embeddings, 0);
        let words: Vec<Vec<&str>> = pieces.iter().map(|(piece, _)| texts(piece)).collect();
        assert_eq!(words, [["a"], ["b"], ["c"]], "{pieces:#?}");
    }

    #[test]
    fn one_window_of_another_voice_is_noise() {
        let samples = speech_with_pauses(4, &[]);
        let utterance = Utterance {
            channel: 0,
            span: 0..4 * SECOND,
            words: vec![word("a", 300, 900), word("b", 1_500, 2_000), word("c", 3_000, 3_500)],
        };
        let windows = windows(&utterance.span);
        let mut embeddings = vec![voice(false); windows.len()];
        embeddings[2] = voice(true);
        let pieces = split(&samples, &utterance, &windows, &embeddings, 0);
        assert_eq!(pieces.len(), 1, "{pieces:#?}");
        assert_eq!(pieces[0].0, utterance);
    }

    #[test]
    fn a_change_of_voice_with_no_words_on_one_side_is_not_believed() {
        let samples = speech_with_pauses(4, &[]);
        let utterance = Utterance {
            channel: 0,
            span: 0..4 * SECOND,
            words: vec![word("only", 300, 900), word("words", 900, 1_500)],
        };
        let windows = windows(&utterance.span);
        // The windows of the last two seconds sound like the other voice, but nothing was
        // recognised there.
        let embeddings: Vec<Vec<f32>> =
            windows.iter().map(|window| voice(window.start >= 2 * SECOND)).collect();
        let pieces = split(&samples, &utterance, &windows, &embeddings, 0);
        assert_eq!(pieces.len(), 1, "{pieces:#?}");
        assert_eq!(pieces[0].0, utterance);
    }

    #[test]
    fn a_wordless_utterance_stays_whole_with_the_voice_of_all_its_windows() {
        let samples = speech_with_pauses(4, &[]);
        let utterance = Utterance { channel: 0, span: 0..4 * SECOND, words: Vec::new() };
        let windows = windows(&utterance.span);
        let embeddings: Vec<Vec<f32>> =
            windows.iter().map(|window| voice(window.start >= 2 * SECOND)).collect();
        let pieces = split(&samples, &utterance, &windows, &embeddings, 0);
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].0, utterance);
        let mean = &pieces[0].1;
        assert!(mean[0] > 0.0 && mean[1] > 0.0, "{mean:?}");
    }

    /// A voiced sound at `hz`: a fundamental and two harmonics.
    fn voiced(hz: f32, seconds: f32) -> Vec<f32> {
        (0..(seconds * SECOND as f32) as usize)
            .map(|index| {
                let t = index as f32 / SECOND as f32;
                (1..=3)
                    .map(|harmonic| {
                        let h = harmonic as f32;
                        0.2 / h * (2.0 * std::f32::consts::PI * hz * h * t).sin()
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn pitch_is_the_median_f0_of_voiced_frames_and_none_in_silence() {
        let mut detector = McLeodDetector::<f32>::new(PITCH_FRAME, PITCH_FRAME / 2);
        let low = median_pitch(&mut detector, &voiced(110.0, 1.0)).unwrap();
        assert!((low - 110f32.log2()).abs() < 0.03, "{}", low.exp2());
        let high = median_pitch(&mut detector, &voiced(220.0, 1.0)).unwrap();
        assert!((high - low - 1.0).abs() < 0.05, "an octave apart: {low} {high}");
        assert_eq!(median_pitch(&mut detector, &vec![0.0; SECOND]), None);
        // Mostly one pitch with a little of another: the median keeps the first.
        let mut mixed = voiced(110.0, 0.8);
        mixed.extend(voiced(300.0, 0.3));
        let median = median_pitch(&mut detector, &mixed).unwrap();
        assert!((median - 110f32.log2()).abs() < 0.05, "{}", median.exp2());
    }

    #[test]
    fn the_quietest_moment_between_two_windows_is_the_boundary() {
        let pause = 2_000 * SECOND / 1000..2_150 * SECOND / 1000;
        let samples = speech_with_pauses(4, std::slice::from_ref(&pause));
        let boundary =
            quietest(&samples, 1_800 * SECOND / 1000..2_200 * SECOND / 1000, &(0..4 * SECOND));
        assert!(pause.contains(&boundary), "{boundary}");
        // Never outside the utterance.
        let edge = quietest(&samples, 0..SECOND / 10, &(SECOND / 20..4 * SECOND));
        assert!(edge >= SECOND / 20);
    }
}
