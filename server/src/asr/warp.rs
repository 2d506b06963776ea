//! Telephone audio heard twice: as recorded, and played slower by a factor, every frequency
//! lowered by it as a longer vocal tract would speak. Each channel (a speaker) keeps the
//! hearing whose words the model is surer of: vocal tract length normalization, which speech
//! recognizers have long done by choosing, per speaker, the warp their model likes best.
//! Measured on 8 kHz calls in docs/BENCHMARKS.md.

use super::turns::{self, Recognize, Utterance};
use super::whisper::Word;
use crate::audio::decode;

/// Recognizes `samples` slowed by `factor` on `threads` threads, the words' times mapped back
/// to `samples`' own.
pub fn slowed_hearing(
    samples: &[f32],
    factor: f32,
    threads: usize,
    recognize: &Recognize<'_>,
) -> Result<Vec<Word>, String> {
    let (slowed, factor) = decode::slowed(samples, factor)?;
    let mut words = recognize(&slowed, threads)?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let back = |ms: i64| (ms as f64 * f64::from(factor)).round() as i64;
    for word in &mut words {
        word.start_ms = back(word.start_ms);
        word.end_ms = back(word.end_ms);
        word.aligned_ms = word.aligned_ms.map(back);
    }
    Ok(words)
}

/// For each of `channels`, its utterances from the hearing whose words have the higher mean
/// log probability (`plain` on a tie), in time order; an utterance of that hearing that is
/// clipped takes the words it lacks from the other (`Utterance::fill_clipped_from`).
pub fn surer_by_channel(
    plain: Vec<Utterance>,
    slowed: Vec<Utterance>,
    channels: usize,
) -> Vec<Utterance> {
    let slowed_channels: Vec<usize> = (0..channels)
        .filter(|&channel| sureness(&slowed, channel) > sureness(&plain, channel))
        .collect();
    let plain = plain.into_iter().map(|utterance| (utterance, false));
    let slowed = slowed.into_iter().map(|utterance| (utterance, true));
    let (mut chosen, mut other) = (Vec::new(), Vec::new());
    for (utterance, heard_slowed) in plain.chain(slowed) {
        if slowed_channels.contains(&utterance.channel) == heard_slowed {
            chosen.push(utterance);
        } else {
            other.push(utterance);
        }
    }
    chosen.sort_by_key(|utterance| (utterance.span.start, utterance.channel));
    other.sort_by_key(|utterance| utterance.span.start);
    let other_words: Vec<Vec<&Word>> = (0..channels)
        .map(|channel| {
            other
                .iter()
                .filter(|heard| heard.channel == channel)
                .flat_map(|heard| &heard.words)
                .collect()
        })
        .collect();
    for utterance in &mut chosen {
        let taken = utterance.fill_clipped_from(&other_words[utterance.channel]);
        if taken > 0 {
            tracing::debug!(
                channel = utterance.channel,
                start_ms = turns::samples_to_ms(utterance.span.start),
                taken,
                "a clipped utterance filled from the other hearing"
            );
        }
    }
    chosen
}

/// The mean log probability of the words heard on `channel` (as Whisper judges a decoding by
/// its tokens' mean log probability: a word the model barely believes weighs more than in a
/// mean of probabilities); None when none was heard.
#[allow(clippy::cast_precision_loss)]
fn sureness(heard: &[Utterance], channel: usize) -> Option<f32> {
    let words = || heard.iter().filter(|u| u.channel == channel).flat_map(|u| &u.words);
    let count = words().count();
    let log_sum: f32 = words().map(|word| word.probability.max(1e-6).ln()).sum();
    (count > 0).then(|| log_sum / count as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::decode::SAMPLE_RATE;

    fn word(text: &str, start_ms: i64, probability: f32) -> Word {
        Word {
            text: format!(" {text}"),
            start_ms,
            end_ms: start_ms + 400,
            probability,
            aligned_ms: Some(start_ms + 10),
        }
    }

    fn utterance(channel: usize, start_s: usize, words: &[(&str, f32)]) -> Utterance {
        let start = start_s * SAMPLE_RATE as usize;
        let start_ms = i64::try_from(start_s * 1000).unwrap();
        Utterance {
            channel,
            span: start..start + SAMPLE_RATE as usize * 2,
            words: words.iter().map(|(text, p)| word(text, start_ms, *p)).collect(),
        }
    }

    #[test]
    fn a_slowed_hearings_times_are_mapped_back_to_the_samples_given() {
        let samples = vec![0.01f32; 3 * SAMPLE_RATE as usize];
        let asked = std::sync::Mutex::new(Vec::new());
        let recognize = |slowed: &[f32], threads| {
            asked.lock().unwrap().push((slowed.len(), threads));
            Ok(vec![word("dental", 1176, 0.9)])
        };
        let words = slowed_hearing(&samples, 0.85, 1, &recognize).unwrap();
        let asked = asked.into_inner().unwrap();
        assert!((asked[0].0 as f32 - samples.len() as f32 / 0.85).abs() < 100.0, "{asked:?}");
        assert_eq!(asked[0].1, 1);
        let times = (words[0].start_ms, words[0].end_ms, words[0].aligned_ms);
        assert_eq!(times, (1000, 1340, Some(1008)));
    }

    #[test]
    fn each_channel_keeps_the_hearing_it_is_surer_of() {
        let plain = vec![
            utterance(0, 0, &[("city", 0.6), ("mental", 0.5)]),
            utterance(1, 3, &[("my", 0.9), ("order", 0.9)]),
            utterance(0, 6, &[("thank", 0.7)]),
        ];
        let slowed = vec![
            utterance(0, 0, &[("city", 0.8), ("dental", 0.8)]),
            utterance(1, 3, &[("my", 0.7), ("owner", 0.6)]),
            utterance(0, 6, &[("thanks", 0.7)]),
        ];
        let chosen = surer_by_channel(plain.clone(), slowed, 2);
        assert_eq!(texts(&chosen), ["city dental", "my order", "thanks"]);
        // one word the model barely believes outweighs a higher mean probability
        let doubtful = vec![utterance(0, 0, &[("city", 0.95), ("to", 0.95), ("mental", 0.05)])];
        let even = vec![utterance(0, 0, &[("city", 0.6), ("dental", 0.6), ("office", 0.6)])];
        let chosen = surer_by_channel(doubtful, even.clone(), 1);
        assert_eq!(chosen, even);
        // a tie, or nothing heard slowed, keeps the hearing as recorded
        assert_eq!(surer_by_channel(plain.clone(), plain.clone(), 2), plain);
        let unheard: Vec<Utterance> =
            plain.iter().map(|u| Utterance { words: Vec::new(), ..u.clone() }).collect();
        assert_eq!(surer_by_channel(plain.clone(), unheard, 2), plain);
    }

    /// A 6-second utterance of channel 0 from 1 s, with `words` (text, aligned ms, probability).
    fn said(words: &[(&str, i64, f32)]) -> Utterance {
        let second = SAMPLE_RATE as usize;
        Utterance {
            channel: 0,
            span: second..7 * second,
            words: words
                .iter()
                .map(|&(text, aligned, probability)| Word {
                    aligned_ms: Some(aligned),
                    ..word(text, aligned - 10, probability)
                })
                .collect(),
        }
    }

    fn texts(heard: &[Utterance]) -> Vec<String> {
        heard
            .iter()
            .map(|u| u.words.iter().map(|w| w.text.trim()).collect::<Vec<_>>().join(" "))
            .collect()
    }

    #[test]
    fn a_clipped_utterance_takes_the_words_it_lacks_from_the_other_hearing() {
        // Slowed is surer, but its decoding started at "Which", 4.1 s into the utterance, and
        // stopped after "free", 1.6 s before the utterance's end.
        let slowed = vec![said(&[("Which", 5_100, 0.9), ("is", 5_200, 0.9), ("free", 5_400, 0.9)])];
        let plain = vec![said(&[
            ("Yes.", 1_300, 0.6),
            ("Which", 4_900, 0.6),
            ("is", 5_100, 0.6),
            ("free", 5_300, 0.6),
            ("for", 5_500, 0.6),
            ("everyone.", 5_800, 0.6),
        ])];
        let chosen = surer_by_channel(plain.clone(), slowed, 1);
        assert_eq!(texts(&chosen), ["Yes. Which is free for everyone."]);
        // The taken words keep the other hearing's times.
        assert_eq!(chosen[0].words[0].aligned_ms, Some(1_300));
        assert_eq!(chosen[0].words[4].aligned_ms, Some(5_500));

        // Past its last word, only up to the utterance's end (7 s).
        let late = vec![said(&[("free", 5_300, 0.6), ("for", 5_500, 0.6), ("all", 7_200, 0.6)])];
        let clipped = vec![said(&[("free", 5_400, 0.9)])];
        assert_eq!(texts(&surer_by_channel(late, clipped.clone(), 1)), ["free for"]);

        // Without its last word near the same time in the other hearing, nothing is taken:
        // "free" 1 s later is not the same word.
        let unlike = vec![said(&[("so", 3_000, 0.6), ("free", 6_400, 0.6), ("for", 6_600, 0.6)])];
        assert_eq!(texts(&surer_by_channel(unlike, clipped, 1)), ["free"]);

        // An utterance heard to its ends takes nothing.
        let whole = vec![said(&[("Which", 1_600, 0.9), ("is", 4_000, 0.9), ("free", 6_000, 0.9)])];
        assert_eq!(surer_by_channel(plain, whole.clone(), 1), whole);
    }
}
