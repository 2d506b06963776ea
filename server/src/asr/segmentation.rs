//! Where two voices of a mono call speak at once: pyannote's segmentation-3.0 (PyanNet:
//! SincNet, a 4-layer bidirectional LSTM, two linear layers, a 7-class powerset of up to
//! three local speakers, two at a time), reimplemented over its converted weights. It reads
//! 10 s chunks of 16 kHz audio and gives a class every 270 samples (16.9 ms); the classes
//! with two speakers are overlapped speech.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use ndarray::{Array1, Array2, ArrayView1, Axis, Slice};

use super::weights::{self, sigmoid};

/// Samples in a chunk: 10 s at 16 kHz, what the model was trained on.
const CHUNK: usize = 160_000;
/// Chunks start this far apart; each frame takes the mean of the chunks that see it.
const CHUNK_STEP: usize = 80_000;
/// Chunks through the LSTM at once: bounds the memory of their input projections (589 frames x
/// 512 gates x 4 bytes, 1.2 MB a chunk).
const BATCH: usize = 32;
/// Samples between frames: the sinc layer's stride (10) times three pools of 3.
const FRAME_STEP: usize = 270;
/// The first frame's centre (its receptive field is 991 samples).
const FRAME_CENTRE: usize = 495;
const SINC_FILTERS: usize = 80;
const SINC_KERNEL: usize = 251;
const SINC_STRIDE: usize = 10;
const HIDDEN: usize = 128;
const LSTM_LAYERS: usize = 4;
/// The powerset classes that hold two speakers: {0, 1}, {0, 2}, {1, 2}.
const OVERLAP_CLASSES: Range<usize> = 4..7;
/// A frame is overlapped speech when its two-speaker classes are likelier than this.
const OVERLAP_PROBABILITY: f32 = 0.5;
/// Overlaps shorter than this are dropped: 0.25 s.
const MIN_OVERLAP: usize = 4_000;

/// The loaded model; cheap to clone.
#[derive(Clone)]
pub struct Segmentation {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Segmentation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Segmentation").finish_non_exhaustive()
    }
}

struct Norm {
    weight: Array1<f32>,
    bias: Array1<f32>,
}

struct Conv {
    /// (out, in * kernel): each row an output channel's taps, input channel by channel.
    weight: Array2<f32>,
    bias: Array1<f32>,
    kernel: usize,
}

struct Direction {
    /// (4 * HIDDEN, input), gates in PyTorch's order: input, forget, cell, output.
    w_ih: Array2<f32>,
    w_hh: Array2<f32>,
    bias: Array1<f32>,
}

struct Inner {
    wav_norm: Norm,
    /// (SINC_KERNEL, SINC_FILTERS): the sinc band-pass filters as columns.
    sinc: Array2<f32>,
    norms: [Norm; 3],
    convs: [Conv; 2],
    /// Per layer: forward, then backward.
    lstm: Vec<[Direction; 2]>,
    linear: [(Array2<f32>, Array1<f32>); 2],
    classifier: (Array2<f32>, Array1<f32>),
}

impl Segmentation {
    pub fn load(path: &Path) -> Result<Self, String> {
        weights::load(path, "segmentation model", |tensors| {
            let values = |name: &str| tensors.values(name);
            let vector = |name: &str| tensors.vector(name);
            let matrix = |name: &str| tensors.matrix(name);
            let norm = |name: &str| -> Result<Norm, String> {
                Ok(Norm {
                    weight: vector(&format!("{name}.weight"))?,
                    bias: vector(&format!("{name}.bias"))?,
                })
            };
            let conv = |index: usize| -> Result<Conv, String> {
                let (shape, _) = values(&format!("sincnet.conv1d.{index}.weight"))?;
                Ok(Conv {
                    weight: matrix(&format!("sincnet.conv1d.{index}.weight"))?,
                    bias: vector(&format!("sincnet.conv1d.{index}.bias"))?,
                    kernel: shape.last().copied().unwrap_or(1),
                })
            };
            let direction = |suffix: String| -> Result<Direction, String> {
                Ok(Direction {
                    w_ih: matrix(&format!("lstm.weight_ih{suffix}"))?,
                    w_hh: matrix(&format!("lstm.weight_hh{suffix}"))?,
                    bias: vector(&format!("lstm.bias_ih{suffix}"))?
                        + vector(&format!("lstm.bias_hh{suffix}"))?,
                })
            };
            let linear = |name: &str| -> Result<(Array2<f32>, Array1<f32>), String> {
                Ok((matrix(&format!("{name}.weight"))?, vector(&format!("{name}.bias"))?))
            };
            let filterbank = "sincnet.conv1d.0.filterbank";
            let sinc = sinc_filters(
                &values(&format!("{filterbank}.low_hz_"))?.1,
                &values(&format!("{filterbank}.band_hz_"))?.1,
                &values(&format!("{filterbank}.n_"))?.1,
                &values(&format!("{filterbank}.window_"))?.1,
            )?;
            let lstm = (0..LSTM_LAYERS)
                .map(|layer| {
                    Ok([direction(format!("_l{layer}"))?, direction(format!("_l{layer}_reverse"))?])
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Self {
                inner: Arc::new(Inner {
                    wav_norm: norm("sincnet.wav_norm1d")?,
                    sinc,
                    norms: [
                        norm("sincnet.norm1d.0")?,
                        norm("sincnet.norm1d.1")?,
                        norm("sincnet.norm1d.2")?,
                    ],
                    convs: [conv(1)?, conv(2)?],
                    lstm,
                    linear: [linear("linear.0")?, linear("linear.1")?],
                    classifier: linear("classifier")?,
                }),
            })
        })
    }

    /// The stretches of 16 kHz `samples` where two voices speak at once, in order.
    pub fn overlaps(&self, samples: &[f32]) -> Vec<Range<usize>> {
        let frames = samples.len() / FRAME_STEP + 1;
        let mut sum = vec![0.0f32; frames];
        let mut seen = vec![0u16; frames];
        let mut starts = vec![0];
        while starts[starts.len() - 1] + CHUNK < samples.len() {
            starts.push(starts[starts.len() - 1] + CHUNK_STEP);
        }
        for batch in starts.chunks(BATCH) {
            let chunks: Vec<Vec<f32>> = batch
                .iter()
                .map(|&start| {
                    let mut chunk = samples[start..(start + CHUNK).min(samples.len())].to_vec();
                    chunk.resize(CHUNK, 0.0);
                    chunk
                })
                .collect();
            for (start, probabilities) in batch.iter().zip(self.forward(&chunks)) {
                for (frame, row) in probabilities.outer_iter().enumerate() {
                    let at = (start + frame * FRAME_STEP + FRAME_CENTRE) / FRAME_STEP;
                    if at < frames {
                        sum[at] += OVERLAP_CLASSES.map(|class| row[class]).sum::<f32>();
                        seen[at] += 1;
                    }
                }
            }
        }
        let mut overlaps: Vec<Range<usize>> = Vec::new();
        let mut open: Option<usize> = None;
        for frame in 0..=frames {
            let overlapped = frame < frames
                && seen[frame] > 0
                && sum[frame] / f32::from(seen[frame]) > OVERLAP_PROBABILITY;
            match (overlapped, open) {
                (true, None) => open = Some(frame),
                (false, Some(first)) => {
                    let span = first * FRAME_STEP..(frame * FRAME_STEP).min(samples.len());
                    if span.len() >= MIN_OVERLAP {
                        overlaps.push(span);
                    }
                    open = None;
                }
                _ => {}
            }
        }
        overlaps
    }

    /// The class probabilities of each chunk: (frames, 7). The chunks go through the LSTM
    /// side by side, so that each of its steps is one matrix product for them all.
    fn forward(&self, chunks: &[Vec<f32>]) -> Vec<Array2<f32>> {
        let inner = &*self.inner;
        // (frames, 60) a chunk -> LSTM -> (frames, 256)
        let mut sequences: Vec<Array2<f32>> =
            chunks.iter().map(|chunk| self.sincnet(chunk)).collect();
        for [forward, backward] in &inner.lstm {
            let ahead = run_lstm(&sequences, forward, false);
            let behind = run_lstm(&sequences, backward, true);
            sequences = ahead
                .iter()
                .zip(&behind)
                .map(|(ahead, behind)| {
                    ndarray::concatenate(Axis(1), &[ahead.view(), behind.view()])
                        .unwrap_or_else(|_| Array2::zeros((0, 0)))
                })
                .collect();
        }
        sequences
            .into_iter()
            .map(|mut sequence| {
                for (weight, bias) in &inner.linear {
                    sequence = sequence.dot(&weight.t()) + bias;
                    sequence.mapv_inplace(leaky_relu);
                }
                let (weight, bias) = &inner.classifier;
                let mut logits = sequence.dot(&weight.t()) + bias;
                for mut row in logits.outer_iter_mut() {
                    let top = row.fold(f32::NEG_INFINITY, |top, value| top.max(*value));
                    row.mapv_inplace(|value| (value - top).exp());
                    let total = row.sum();
                    row.mapv_inplace(|value| value / total);
                }
                logits
            })
            .collect()
    }

    /// SincNet over one chunk: (frames, 60).
    fn sincnet(&self, chunk: &[f32]) -> Array2<f32> {
        let inner = &*self.inner;
        let mut wave = Array2::from_shape_vec((1, chunk.len()), chunk.to_vec())
            .unwrap_or_else(|_| Array2::zeros((1, 0)));
        instance_norm(&mut wave, &inner.wav_norm);
        let wave = wave.row(0);
        let taps = (chunk.len() - SINC_KERNEL) / SINC_STRIDE + 1;
        let mut patches = Array2::<f32>::zeros((taps, SINC_KERNEL));
        for (tap, mut row) in patches.outer_iter_mut().enumerate() {
            let from = tap * SINC_STRIDE;
            row.assign(&wave.slice_axis(Axis(0), Slice::from(from..from + SINC_KERNEL)));
        }
        let mut features = patches.dot(&inner.sinc).reversed_axes();
        features.mapv_inplace(f32::abs);
        let mut features = pool3(&features);
        instance_norm(&mut features, &inner.norms[0]);
        features.mapv_inplace(leaky_relu);
        for (conv, norm) in inner.convs.iter().zip(&inner.norms[1..]) {
            let mut next = pool3(&convolve(&features, conv));
            instance_norm(&mut next, norm);
            next.mapv_inplace(leaky_relu);
            features = next;
        }
        features.reversed_axes().as_standard_layout().to_owned()
    }
}

/// asteroid's `ParamSincFB` filters from their learned bands: 40 cosine (even) filters then 40
/// sine (odd) ones, each `SINC_KERNEL` taps, as the columns of the result.
fn sinc_filters(
    low_hz: &[f32],
    band_hz: &[f32],
    n: &[f32],
    window: &[f32],
) -> Result<Array2<f32>, String> {
    let half = SINC_KERNEL / 2;
    if low_hz.len() != SINC_FILTERS / 2
        || band_hz.len() != low_hz.len()
        || n.len() != half
        || window.len() != half
    {
        return Err("the segmentation model's sinc filters have unexpected shapes".into());
    }
    // pyannote's SincNet builds its ParamSincFB with min_low_hz = min_band_hz = 50.
    let (min_low, min_band) = (50.0f32, 50.0f32);
    let mut filters = Array2::<f32>::zeros((SINC_KERNEL, SINC_FILTERS));
    for (band, (low, width)) in low_hz.iter().zip(band_hz).enumerate() {
        let low = min_low + low.abs();
        #[allow(clippy::cast_precision_loss)]
        let nyquist = crate::audio::decode::SAMPLE_RATE as f32 / 2.0;
        let high = (low + min_band + width.abs()).clamp(min_low, nyquist);
        let bandwidth = high - low;
        for (tap, (n, window)) in n.iter().zip(window).enumerate() {
            let (at_low, at_high) = (low * n, high * n);
            let even = (at_high.sin() - at_low.sin()) / (n / 2.0) * window / (2.0 * bandwidth);
            let odd = (at_low.cos() - at_high.cos()) / (n / 2.0) * window / (2.0 * bandwidth);
            filters[[tap, band]] = even;
            filters[[SINC_KERNEL - 1 - tap, band]] = even;
            filters[[tap, band + SINC_FILTERS / 2]] = odd;
            filters[[SINC_KERNEL - 1 - tap, band + SINC_FILTERS / 2]] = -odd;
        }
        filters[[half, band]] = 1.0;
    }
    Ok(filters)
}

/// Each row (channel) of `x` normalised over time, then scaled and shifted (InstanceNorm1d).
fn instance_norm(x: &mut Array2<f32>, norm: &Norm) {
    for (mut row, (weight, bias)) in x.outer_iter_mut().zip(norm.weight.iter().zip(&norm.bias)) {
        #[allow(clippy::cast_precision_loss)]
        let count = row.len().max(1) as f32;
        let mean = row.sum() / count;
        let variance = row.iter().map(|value| (value - mean).powi(2)).sum::<f32>() / count;
        let scale = weight / (variance + 1e-5).sqrt();
        row.mapv_inplace(|value| (value - mean) * scale + bias);
    }
}

/// Max-pooling by 3 along time (a remainder under 3 frames dropped).
fn pool3(x: &Array2<f32>) -> Array2<f32> {
    let frames = x.ncols() / 3;
    Array2::from_shape_fn((x.nrows(), frames), |(channel, frame)| {
        let at = frame * 3;
        x[[channel, at]].max(x[[channel, at + 1]]).max(x[[channel, at + 2]])
    })
}

/// A 1-D convolution without padding: (in, time) -> (out, time - kernel + 1).
fn convolve(x: &Array2<f32>, conv: &Conv) -> Array2<f32> {
    let (channels, length) = x.dim();
    let steps = length + 1 - conv.kernel;
    let mut patches = Array2::<f32>::zeros((steps, channels * conv.kernel));
    for (step, mut row) in patches.outer_iter_mut().enumerate() {
        for channel in 0..channels {
            let taps: ArrayView1<'_, f32> =
                x.row(channel).slice_axis_move(Axis(0), Slice::from(step..step + conv.kernel));
            row.slice_axis_mut(
                Axis(0),
                Slice::from(channel * conv.kernel..(channel + 1) * conv.kernel),
            )
            .assign(&taps);
        }
    }
    (patches.dot(&conv.weight.t()) + &conv.bias).reversed_axes()
}

/// One direction of one LSTM layer over sequences of one length, each (time, input): each
/// (time, HIDDEN).
fn run_lstm(sequences: &[Array2<f32>], direction: &Direction, backward: bool) -> Vec<Array2<f32>> {
    let projected: Vec<Array2<f32>> = sequences
        .iter()
        .map(|sequence| sequence.dot(&direction.w_ih.t()) + &direction.bias)
        .collect();
    let (batch, steps) = (sequences.len(), sequences.first().map_or(0, Array2::nrows));
    let mut outputs = vec![Array2::<f32>::zeros((steps, HIDDEN)); batch];
    let mut hidden = Array2::<f32>::zeros((batch, HIDDEN));
    let mut cell = Array2::<f32>::zeros((batch, HIDDEN));
    let w_hh = direction.w_hh.t();
    for index in 0..steps {
        let t = if backward { steps - 1 - index } else { index };
        let mut gates = hidden.dot(&w_hh);
        for (b, mut row) in gates.outer_iter_mut().enumerate() {
            row += &projected[b].row(t);
            for unit in 0..HIDDEN {
                let input = sigmoid(row[unit]);
                let forget = sigmoid(row[HIDDEN + unit]);
                let candidate = tanh(row[2 * HIDDEN + unit]);
                let out = sigmoid(row[3 * HIDDEN + unit]);
                let c = forget * cell[[b, unit]] + input * candidate;
                cell[[b, unit]] = c;
                hidden[[b, unit]] = out * tanh(c);
            }
            outputs[b].row_mut(t).assign(&hidden.row(b));
        }
    }
    outputs
}

/// tanh through one `exp`: libm's `tanhf` (by `expm1f`) took most of the LSTM's time, and this
/// differs from it by under 1e-6.
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / ((2.0 * x).exp() + 1.0)
}

fn leaky_relu(x: f32) -> f32 {
    if x > 0.0 { x } else { 0.01 * x }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use crate::testing::ScriptedLine as Line;

    fn model() -> Segmentation {
        let path = testing::model_dir().join(crate::speech_models::SEGMENTATION.file_name);
        Segmentation::load(&path).unwrap()
    }

    fn ms(samples: usize) -> i64 {
        i64::try_from(samples * 1_000 / 16_000).unwrap()
    }

    #[test]
    fn tanh_by_exp_is_libm_tanh() {
        for step in -2_000..=2_000 {
            #[allow(clippy::cast_precision_loss)]
            let x = step as f32 / 100.0;
            assert!((tanh(x) - x.tanh()).abs() < 1e-6, "{x}");
        }
    }

    #[test]
    fn finds_where_a_second_voice_speaks_over_the_first() {
        let call = testing::spoken_call(&[
            Line::new(0, 500, "Thanks for waiting, I will check the order for you now."),
            Line::new(1, -900, "You are welcome, have a good evening."),
        ]);
        let overlaps = model().overlaps(&call.mono());
        let (first_end, second_start) = (call.lines[0].3, call.lines[1].2);
        assert_eq!(overlaps.len(), 1, "{overlaps:?} vs {:?}", call.lines);
        let (start, end) = (ms(overlaps[0].start), ms(overlaps[0].end));
        assert!((start - second_start).abs() < 300, "{start} vs {second_start}");
        assert!(end <= first_end + 300 && end - start >= 250, "{start}..{end} vs {first_end}");
    }

    #[test]
    fn voices_taking_turns_do_not_overlap() {
        let call = testing::spoken_call(&[
            Line::new(0, 500, "Thanks for waiting, I will check the order for you now."),
            Line::new(1, 400, "You are welcome, have a good evening."),
            Line::new(0, 300, "Is there anything else I can do?"),
        ]);
        assert!(model().overlaps(&call.mono()).is_empty());
        // Silence, and a call shorter than a chunk.
        assert!(model().overlaps(&[0.0; 4_000]).is_empty());
    }
}
