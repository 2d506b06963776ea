//! Energy voice activity detection for channel-separated phone audio: 30 ms frames, a noise
//! floor estimated from the quietest frames, speech at 15 dB above it (and above an absolute
//! floor), short gaps bridged and blips dropped.

use std::ops::Range;

use crate::audio::decode::SAMPLE_RATE;

/// Samples a frame: 30 ms at 16 kHz.
pub const FRAME: usize = SAMPLE_RATE as usize * 30 / 1000;
const ABOVE_FLOOR_DB: f32 = 15.0;
/// Nothing quieter than this is speech, however quiet the line (-50 dBFS).
const ABSOLUTE_FLOOR_DB: f32 = -50.0;
/// Gaps shorter than this inside speech are kept (stops, breaths).
const BRIDGE_MS: usize = 300;
/// Speech shorter than this is a click or a cough.
const MIN_SPEECH_MS: usize = 120;
/// Padding kept on both sides of speech, so word edges are not cut.
const PAD_MS: usize = 90;

/// Sample ranges of speech in `samples` (16 kHz), in order, not overlapping.
pub fn speech_regions(samples: &[f32]) -> Vec<Range<usize>> {
    let energies: Vec<f32> = samples.chunks(FRAME).map(frame_db).collect();
    if energies.is_empty() {
        return Vec::new();
    }
    let threshold = (noise_floor(&energies) + ABOVE_FLOOR_DB).max(ABSOLUTE_FLOOR_DB);
    let mut regions: Vec<Range<usize>> = Vec::new();
    let mut start = None;
    for (index, energy) in energies.iter().enumerate() {
        match (start, *energy >= threshold) {
            (None, true) => start = Some(index),
            (Some(first), false) => {
                regions.push(first..index);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(first) = start {
        regions.push(first..energies.len());
    }
    let frames = |ms: usize| ms.div_ceil(30);
    let bridged = merge_close(regions, frames(BRIDGE_MS));
    let pad = PAD_MS * SAMPLE_RATE as usize / 1000;
    bridged
        .into_iter()
        .filter(|region| region.len() >= frames(MIN_SPEECH_MS))
        .map(|region| {
            (region.start * FRAME).saturating_sub(pad)
                ..(region.end * FRAME + pad).min(samples.len())
        })
        .fold(Vec::new(), |mut merged: Vec<Range<usize>>, region| {
            match merged.last_mut() {
                Some(last) if region.start <= last.end => last.end = last.end.max(region.end),
                _ => merged.push(region),
            }
            merged
        })
}

/// Joins ranges separated by fewer than `gap` units.
pub fn merge_close(ranges: Vec<Range<usize>>, gap: usize) -> Vec<Range<usize>> {
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start.saturating_sub(last.end) < gap => last.end = range.end,
            _ => merged.push(range),
        }
    }
    merged
}

/// RMS level of a frame in dBFS.
pub fn frame_db(frame: &[f32]) -> f32 {
    let power = frame.iter().map(|sample| sample * sample).sum::<f32>() / frame.len().max(1) as f32;
    10.0 * power.max(1e-10).log10()
}

/// The level of the quietest tenth of frames: the line's noise when anyone is silent at all.
fn noise_floor(energies: &[f32]) -> f32 {
    let mut sorted = energies.to_vec();
    sorted.sort_by(f32::total_cmp);
    sorted[sorted.len() / 10]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(parts: &[(f32, f32)]) -> Vec<f32> {
        // (seconds, amplitude): a 300 Hz tone at that amplitude, over faint noise.
        let mut samples = Vec::new();
        let mut state = 12_345u32;
        for (seconds, amplitude) in parts {
            for i in 0..(seconds * SAMPLE_RATE as f32) as usize {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                let tone =
                    (2.0 * std::f32::consts::PI * 300.0 * i as f32 / SAMPLE_RATE as f32).sin();
                samples.push(amplitude * tone + 0.001 * noise);
            }
        }
        samples
    }

    fn seconds(region: &Range<usize>) -> (f32, f32) {
        (region.start as f32 / SAMPLE_RATE as f32, region.end as f32 / SAMPLE_RATE as f32)
    }

    #[test]
    fn finds_speech_between_silences_with_padding() {
        let samples = signal(&[(1.0, 0.0), (1.5, 0.3), (2.0, 0.0), (1.0, 0.2), (1.0, 0.0)]);
        let regions = speech_regions(&samples);
        assert_eq!(regions.len(), 2, "{regions:?}");
        let (start, end) = seconds(&regions[0]);
        assert!((0.85..1.0).contains(&start) && (2.5..2.65).contains(&end), "{start} {end}");
        let (start, end) = seconds(&regions[1]);
        assert!((4.35..4.5).contains(&start) && (5.5..5.65).contains(&end), "{start} {end}");
    }

    #[test]
    fn short_gaps_are_bridged_and_blips_dropped() {
        let samples = signal(&[
            (1.0, 0.0),
            (0.5, 0.3),
            (0.2, 0.0),
            (0.5, 0.3),
            (1.0, 0.0),
            (0.05, 0.5),
            (1.0, 0.0),
        ]);
        let regions = speech_regions(&samples);
        assert_eq!(regions.len(), 1, "{regions:?}");
    }

    #[test]
    fn silence_and_empty_input_have_no_speech() {
        assert!(speech_regions(&signal(&[(2.0, 0.0)])).is_empty());
        assert!(speech_regions(&[]).is_empty());
    }
}
