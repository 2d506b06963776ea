//! Speaker embeddings for mono calls: the GE2E encoder of Resemblyzer (3-layer LSTM over
//! 40-bin mel power frames, 25 ms windows every 10 ms, a linear layer, ReLU, L2 norm),
//! reimplemented over its converted weights; and two-speaker clustering of stretches of speech.

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array2, ArrayView2, Axis, Slice};
use realfft::RealFftPlanner;

use super::weights::{self, sigmoid};
use crate::audio::decode::SAMPLE_RATE;

const MELS: usize = 40;
const N_FFT: usize = 400;
const HOP: usize = 160;
const HIDDEN: usize = 256;
/// Frames a partial utterance: 1.6 s.
const PARTIAL_FRAMES: usize = 160;
/// A partial's length in milliseconds: the shortest stretch one embedding fully describes.
pub const PARTIAL_MS: usize = PARTIAL_FRAMES * HOP * 1_000 / SAMPLE_RATE as usize;
/// Frames between partials: 0.8 s (Resemblyzer's rate of 1.25 a second).
const PARTIAL_STEP: usize = 80;
/// Partials through the encoder at once: bounds the memory of its input projections
/// (160 frames x 1,024 gates x 4 bytes, 640 KB a partial).
const BATCH: usize = 64;
/// Resemblyzer raises quiet audio to this level before its mel frames.
const TARGET_DBFS: f32 = -30.0;

struct Lstm {
    /// (4 * HIDDEN, input), gates in PyTorch's order: input, forget, cell, output.
    w_ih: Array2<f32>,
    w_hh: Array2<f32>,
    bias: ndarray::Array1<f32>,
}

/// What tells the voices of a mono call apart: the speaker encoder, and the segmentation
/// model that finds where they speak at once (None until `earshot models install` adds it).
#[derive(Clone, Debug)]
pub struct VoiceModels {
    pub encoder: SpeakerEncoder,
    pub segmentation: Option<super::segmentation::Segmentation>,
}

/// The loaded encoder; cheap to clone.
#[derive(Clone)]
pub struct SpeakerEncoder {
    inner: Arc<Inner>,
}

struct Inner {
    layers: Vec<Lstm>,
    linear_w: Array2<f32>,
    linear_b: ndarray::Array1<f32>,
    /// (MELS, N_FFT / 2 + 1)
    filters: Array2<f32>,
    window: Vec<f32>,
}

impl std::fmt::Debug for SpeakerEncoder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SpeakerEncoder").finish_non_exhaustive()
    }
}

impl SpeakerEncoder {
    pub fn load(path: &Path) -> Result<Self, String> {
        weights::load(path, "speaker model", |tensors| {
            let matrix = |name: &str| tensors.matrix(name);
            let vector = |name: &str| tensors.vector(name);
            let mut layers = Vec::new();
            for layer in 0..3 {
                let bias = vector(&format!("lstm.bias_ih_l{layer}"))?
                    + vector(&format!("lstm.bias_hh_l{layer}"))?;
                layers.push(Lstm {
                    w_ih: matrix(&format!("lstm.weight_ih_l{layer}"))?,
                    w_hh: matrix(&format!("lstm.weight_hh_l{layer}"))?,
                    bias,
                });
            }
            let filters = crate::audio::mel::mel_filters(MELS as i32);
            let filters = Array2::from_shape_vec((MELS, N_FFT / 2 + 1), filters)
                .map_err(|e| e.to_string())?;
            // Periodic Hann, as librosa's STFT uses.
            let window = (0..N_FFT)
                .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / N_FFT as f32).cos())
                .collect();
            Ok(Self {
                inner: Arc::new(Inner {
                    layers,
                    linear_w: matrix("linear.weight")?,
                    linear_b: vector("linear.bias")?,
                    filters,
                    window,
                }),
            })
        })
    }

    /// Mel power frames of 16 kHz `samples` (librosa's centred STFT with reflected edges):
    /// (frames, 40).
    pub fn mel_frames(&self, samples: &[f32]) -> Array2<f32> {
        let pad = N_FFT / 2;
        let reflect = |index: isize| -> f32 {
            let n = samples.len() as isize;
            if n < 2 {
                return samples.first().copied().unwrap_or(0.0);
            }
            let mut i = index;
            while i < 0 || i >= n {
                i = if i < 0 { -i } else { 2 * (n - 1) - i };
            }
            samples[i as usize]
        };
        let frames = 1 + samples.len() / HOP;
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(N_FFT);
        let mut input = fft.make_input_vec();
        let mut spectrum = fft.make_output_vec();
        let mut power = Array2::<f32>::zeros((frames, N_FFT / 2 + 1));
        for frame in 0..frames {
            let start = (frame * HOP) as isize - pad as isize;
            for (i, value) in input.iter_mut().enumerate() {
                *value = reflect(start + i as isize) * self.inner.window[i];
            }
            if fft.process(&mut input, &mut spectrum).is_ok() {
                for (bin, value) in spectrum.iter().enumerate() {
                    power[[frame, bin]] = value.norm_sqr();
                }
            }
        }
        power.dot(&self.inner.filters.t())
    }

    /// One L2-normalised embedding a stretch of audio: the mean of its 1.6 s partials'
    /// embeddings, each partial as Resemblyzer computes it. Partials go through the encoder
    /// `BATCH` at a time as they are cut, so memory stays bounded however many stretches
    /// (a long mono call has tens of thousands of overlapping windows).
    pub fn embed(&self, stretches: &[&[f32]]) -> Vec<Vec<f32>> {
        let mut sums = vec![vec![0.0f32; HIDDEN]; stretches.len()];
        let mut partials: Vec<Array2<f32>> = Vec::with_capacity(BATCH);
        let mut owners: Vec<usize> = Vec::with_capacity(BATCH);
        let mut flush = |partials: &mut Vec<Array2<f32>>, owners: &mut Vec<usize>| {
            for (embedding, owner) in self.forward(partials).outer_iter().zip(owners.drain(..)) {
                for (sum, value) in sums[owner].iter_mut().zip(embedding) {
                    *sum += value;
                }
            }
            partials.clear();
        };
        for (owner, samples) in stretches.iter().enumerate() {
            let samples = normalize_volume(samples);
            let mel = self.mel_frames(&samples);
            let frames = mel.nrows();
            let mut start = 0;
            loop {
                let mut partial = Array2::<f32>::zeros((PARTIAL_FRAMES, MELS));
                let end = (start + PARTIAL_FRAMES).min(frames);
                partial
                    .slice_axis_mut(Axis(0), Slice::from(0..end - start))
                    .assign(&mel.slice_axis(Axis(0), Slice::from(start..end)));
                partials.push(partial);
                owners.push(owner);
                if partials.len() == BATCH {
                    flush(&mut partials, &mut owners);
                }
                // Resemblyzer drops a last partial that covers less than 75 % of its frames.
                if start + PARTIAL_STEP + PARTIAL_FRAMES * 3 / 4 > frames {
                    break;
                }
                start += PARTIAL_STEP;
            }
        }
        if !partials.is_empty() {
            flush(&mut partials, &mut owners);
        }
        sums.into_iter().map(|sum| normalized(&sum)).collect()
    }

    /// The encoder over a batch of (PARTIAL_FRAMES, MELS) partials: (batch, 256).
    fn forward(&self, partials: &[Array2<f32>]) -> Array2<f32> {
        let batch = partials.len();
        // (time, batch, features)
        let mut sequence: Vec<Array2<f32>> = (0..PARTIAL_FRAMES)
            .map(|t| {
                let mut step = Array2::<f32>::zeros((batch, MELS));
                for (b, partial) in partials.iter().enumerate() {
                    step.row_mut(b).assign(&partial.row(t));
                }
                step
            })
            .collect();
        let mut last = Array2::<f32>::zeros((batch, HIDDEN));
        for layer in &self.inner.layers {
            // All time steps' input projections in one product.
            let stacked = ndarray::concatenate(
                Axis(0),
                &sequence.iter().map(|step| step.view()).collect::<Vec<ArrayView2<'_, f32>>>(),
            )
            .unwrap_or_else(|_| Array2::zeros((0, 0)));
            let projected = stacked.dot(&layer.w_ih.t()) + &layer.bias;
            let mut hidden = Array2::<f32>::zeros((batch, HIDDEN));
            let mut cell = Array2::<f32>::zeros((batch, HIDDEN));
            for (t, output) in sequence.iter_mut().enumerate() {
                let mut gates = projected
                    .slice_axis(Axis(0), Slice::from(t * batch..(t + 1) * batch))
                    .to_owned();
                gates += &hidden.dot(&layer.w_hh.t());
                for b in 0..batch {
                    let row = gates.row(b);
                    for unit in 0..HIDDEN {
                        let input = sigmoid(row[unit]);
                        let forget = sigmoid(row[HIDDEN + unit]);
                        let candidate = row[2 * HIDDEN + unit].tanh();
                        let out = sigmoid(row[3 * HIDDEN + unit]);
                        let c = forget * cell[[b, unit]] + input * candidate;
                        cell[[b, unit]] = c;
                        hidden[[b, unit]] = out * c.tanh();
                    }
                }
                *output = hidden.clone();
            }
            last = hidden;
        }
        let mut embeddings = last.dot(&self.inner.linear_w.t()) + &self.inner.linear_b;
        embeddings.mapv_inplace(|value| value.max(0.0));
        for mut row in embeddings.outer_iter_mut() {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-9);
            row.mapv_inplace(|value| value / norm);
        }
        embeddings
    }
}

/// `vector` scaled to unit length.
pub fn normalized(vector: &[f32]) -> Vec<f32> {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-9);
    vector.iter().map(|v| v / norm).collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Raises quiet audio to -30 dBFS (never lowers it), as Resemblyzer's preprocessing does.
fn normalize_volume(samples: &[f32]) -> Vec<f32> {
    let power = samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32;
    let level = 10.0 * power.max(1e-12).log10();
    let change = TARGET_DBFS - level;
    if change <= 0.0 {
        return samples.to_vec();
    }
    let gain = 10f32.powf(change / 20.0);
    samples.iter().map(|s| s * gain).collect()
}

/// Which of two speakers each embedding belongs to (0 is the first embedding's speaker), and
/// how clearly: 2-means on cosine similarity, weighted by `weights` (durations), over the
/// embeddings less their weighted mean (what every utterance of the call shares: line, codec,
/// room), which leaves the voices' differences. When the two groups' raw centres are nearly the
/// same voice, everything is speaker 0.
pub fn two_speakers(embeddings: &[Vec<f32>], weights: &[f32]) -> Vec<(usize, f32)> {
    const SAME_VOICE: f32 = 0.97;
    if embeddings.is_empty() {
        return Vec::new();
    }
    let dimensions = first_len(embeddings);
    let total: f32 = weights.iter().sum::<f32>().max(1e-9);
    let mut mean = vec![0.0f32; dimensions];
    for (embedding, weight) in embeddings.iter().zip(weights) {
        for (m, v) in mean.iter_mut().zip(embedding) {
            *m += v * weight / total;
        }
    }
    let centred: Vec<Vec<f32>> = embeddings
        .iter()
        .map(|embedding| {
            normalized(&embedding.iter().zip(&mean).map(|(v, m)| v - m).collect::<Vec<_>>())
        })
        .collect();
    let first = centred[0].clone();
    let farthest = centred
        .iter()
        .min_by(|a, b| cosine(a, &first).total_cmp(&cosine(b, &first)))
        .cloned()
        .unwrap_or_else(|| first.clone());
    let mut centres = [first, farthest];
    let mut labels = vec![usize::MAX; centred.len()];
    for _ in 0..20 {
        let next: Vec<usize> = centred
            .iter()
            .map(|e| usize::from(cosine(e, &centres[1]) > cosine(e, &centres[0])))
            .collect();
        for (cluster, centre) in centres.iter_mut().enumerate() {
            let sum = weighted_sum(&centred, &next, weights, cluster, dimensions);
            if sum.iter().any(|v| *v != 0.0) {
                *centre = normalized(&sum);
            }
        }
        let stable = next == labels;
        labels = next;
        if stable {
            break;
        }
    }
    let raw = [
        normalized(&weighted_sum(embeddings, &labels, weights, 0, dimensions)),
        normalized(&weighted_sum(embeddings, &labels, weights, 1, dimensions)),
    ];
    let one_voice = labels.iter().all(|l| *l == labels[0]) || cosine(&raw[0], &raw[1]) > SAME_VOICE;
    // Speaker 0 is whoever the first embedding belongs to.
    let flip = labels[0] == 1;
    centred
        .iter()
        .zip(&labels)
        .map(|(embedding, label)| {
            if one_voice {
                return (0, 0.5);
            }
            let own = cosine(embedding, &centres[*label]);
            let other = cosine(embedding, &centres[1 - label]);
            let confidence = 0.5 + 0.5 * ((own - other) / 0.5).clamp(0.0, 1.0);
            (usize::from((*label == 1) != flip), confidence)
        })
        .collect()
}

fn weighted_sum(
    embeddings: &[Vec<f32>],
    labels: &[usize],
    weights: &[f32],
    cluster: usize,
    dimensions: usize,
) -> Vec<f32> {
    let mut sum = vec![0.0f32; dimensions];
    for ((embedding, label), weight) in embeddings.iter().zip(labels).zip(weights) {
        if *label == cluster {
            for (s, v) in sum.iter_mut().zip(embedding) {
                *s += v * weight;
            }
        }
    }
    sum
}

fn first_len(embeddings: &[Vec<f32>]) -> usize {
    embeddings.first().map_or(0, Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_speakers_separates_two_voices_and_keeps_the_first_as_speaker_0() {
        let a = normalized(&[1.0, 0.1, 0.0]);
        let b = normalized(&[0.0, 0.2, 1.0]);
        let near_a = normalized(&[0.9, 0.2, 0.1]);
        let labels = two_speakers(&[a.clone(), b.clone(), near_a, b], &[1.0; 4]);
        let speakers: Vec<usize> = labels.iter().map(|(speaker, _)| *speaker).collect();
        assert_eq!(speakers, [0, 1, 0, 1]);
        assert!(labels.iter().all(|(_, confidence)| *confidence > 0.5));
        let same = two_speakers(&[a.clone(), a.clone(), a], &[1.0; 3]);
        assert!(same.iter().all(|(speaker, _)| *speaker == 0));
    }

    #[test]
    fn quiet_audio_is_raised_and_loud_audio_kept() {
        let quiet = vec![0.001f32; 1000];
        let raised = normalize_volume(&quiet);
        let level = 10.0 * (raised.iter().map(|s| s * s).sum::<f32>() / 1000.0).log10();
        assert!((level - TARGET_DBFS).abs() < 0.1, "{level}");
        let loud = vec![0.5f32; 10];
        assert_eq!(normalize_volume(&loud), loud);
    }
}
