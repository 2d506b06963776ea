//! Converts a Whisper model in CTranslate2 format into whisper.cpp's ggml file.
//!
//! The registries reachable here ship Whisper only as CTranslate2 weights; whisper.cpp, which
//! runs it fastest on two cores, reads ggml. The two hold the same tensors under other names,
//! with the attention projections fused in CTranslate2 (query, key and value in one matrix).
//! The output is a pure function of the input, so its sha256 can be pinned.

use std::io::{self, Write};

use half::f16;

use super::ct2::{Ct2Model, DType, Variable};

const GGML_MAGIC: u32 = 0x6767_6d6c;
/// Byte-level BPE tokens of the English-only models' vocabulary (GPT-2's); whisper.cpp adds
/// the special tokens itself.
const TEXT_TOKENS: usize = 50_256;
/// The multilingual models' vocabulary has one text token more, its special tokens one place
/// later (whisper.cpp tells them apart by `n_vocab`).
const MULTILINGUAL_TEXT_TOKENS: usize = 50_257;
const MULTILINGUAL_VOCAB: i32 = 51_865;

/// Element type written for one tensor (ggml's type numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    F32 = 0,
    F16 = 1,
    Q8_0 = 8,
}

/// How the large weight matrices are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F16,
    /// ggml's q8_0: blocks of 32 weights as one f16 scale and 32 signed bytes. Convolutions
    /// stay f16 and vectors f32, as whisper.cpp's own quantizer leaves them.
    Q8_0,
}

impl Precision {
    /// The file's `ftype`, with ggml's quantization version folded in for quantized files.
    fn ftype(self) -> i32 {
        match self {
            Precision::F16 => 1,
            Precision::Q8_0 => 7 + 2 * 1000,
        }
    }
}

const Q8_BLOCK: usize = 32;

/// Writes the ggml file for `model` (a CTranslate2 `WhisperSpec`) and `vocabulary` (its
/// `vocabulary.txt`, one byte-level BPE token a line) to `out`.
pub fn convert(
    model: &Ct2Model<'_>,
    vocabulary: &str,
    precision: Precision,
    out: &mut impl Write,
) -> Result<(), String> {
    if model.spec != "WhisperSpec" {
        return Err(format!("expected a WhisperSpec model, found {}", model.spec));
    }
    let hparams = HParams::read(model)?;
    let io_error = |error: io::Error| format!("writing the ggml file: {error}");
    let mut writer = Writer { out, model, precision };

    writer.i32(GGML_MAGIC as i32).map_err(io_error)?;
    for value in hparams.as_array(precision) {
        writer.i32(value).map_err(io_error)?;
    }
    let filters = crate::audio::mel::mel_filters(hparams.n_mels);
    writer.i32(hparams.n_mels).map_err(io_error)?;
    writer.i32(i32::try_from(crate::audio::mel::N_FFT / 2 + 1).unwrap_or(0)).map_err(io_error)?;
    for value in filters {
        writer.out.write_all(&value.to_le_bytes()).map_err(io_error)?;
    }
    let text_tokens =
        if hparams.n_vocab >= MULTILINGUAL_VOCAB { MULTILINGUAL_TEXT_TOKENS } else { TEXT_TOKENS };
    let tokens = token_bytes(vocabulary, text_tokens)?;
    writer.i32(i32::try_from(tokens.len()).unwrap_or(0)).map_err(io_error)?;
    for token in &tokens {
        writer.i32(i32::try_from(token.len()).unwrap_or(0)).map_err(io_error)?;
        writer.out.write_all(token).map_err(io_error)?;
    }

    writer.encoder(&hparams)?;
    writer.decoder(&hparams)?;
    Ok(())
}

#[derive(Debug)]
struct HParams {
    n_vocab: i32,
    n_audio_ctx: i32,
    n_audio_state: i32,
    n_audio_head: i32,
    n_audio_layer: i32,
    n_text_ctx: i32,
    n_text_state: i32,
    n_text_head: i32,
    n_text_layer: i32,
    n_mels: i32,
}

impl HParams {
    fn read(model: &Ct2Model<'_>) -> Result<Self, String> {
        let dim = |name: &str, axis: usize| -> Result<i32, String> {
            let variable = model.get(name)?;
            variable
                .dims
                .get(axis)
                .and_then(|dim| i32::try_from(*dim).ok())
                .ok_or_else(|| format!("{name} has no axis {axis}"))
        };
        let heads = |name: &str| -> Result<i32, String> {
            model
                .get(name)?
                .scalar_int()
                .and_then(|heads| i32::try_from(heads).ok())
                .ok_or_else(|| format!("{name} is not an integer scalar"))
        };
        let layers = |prefix: &str| {
            let count = (0..)
                .take_while(|i| {
                    model.variables.contains_key(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
                })
                .count();
            i32::try_from(count).unwrap_or(0)
        };
        Ok(Self {
            n_vocab: dim("decoder/embeddings/weight", 0)?,
            n_audio_ctx: dim("encoder/position_encodings/encodings", 0)?,
            n_audio_state: dim("encoder/conv1/weight", 0)?,
            n_audio_head: heads("encoder/num_heads")?,
            n_audio_layer: layers("encoder"),
            n_text_ctx: dim("decoder/position_encodings/encodings", 0)?,
            n_text_state: dim("decoder/embeddings/weight", 1)?,
            n_text_head: heads("decoder/num_heads")?,
            n_text_layer: layers("decoder"),
            n_mels: dim("encoder/conv1/weight", 1)?,
        })
    }

    fn as_array(&self, precision: Precision) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            precision.ftype(),
        ]
    }
}

struct Writer<'m, 'a, W> {
    out: &'m mut W,
    model: &'m Ct2Model<'a>,
    precision: Precision,
}

impl<W: Write> Writer<'_, '_, W> {
    fn i32(&mut self, value: i32) -> io::Result<()> {
        self.out.write_all(&value.to_le_bytes())
    }

    fn encoder(&mut self, hparams: &HParams) -> Result<(), String> {
        let state = hparams.n_audio_state as usize;
        self.copy("encoder.positional_embedding", "encoder/position_encodings/encodings")?;
        for conv in ["conv1", "conv2"] {
            self.copy(&format!("encoder.{conv}.weight"), &format!("encoder/{conv}/weight"))?;
            // whisper.cpp adds the bias to an (n_ctx, n_state) result: shape (n_state, 1).
            let bias = self.model.get(&format!("encoder/{conv}/bias"))?;
            self.tensor(&format!("encoder.{conv}.bias"), &[state, 1], bias, 0..state)?;
        }
        for layer in 0..hparams.n_audio_layer {
            let from = format!("encoder/layer_{layer}");
            let to = format!("encoder.blocks.{layer}");
            self.self_attention(&from, &to, state)?;
            self.ffn(&from, &to)?;
        }
        self.layer_norm("encoder.ln_post", "encoder/layer_norm")
    }

    fn decoder(&mut self, hparams: &HParams) -> Result<(), String> {
        let state = hparams.n_text_state as usize;
        self.copy("decoder.positional_embedding", "decoder/position_encodings/encodings")?;
        self.copy("decoder.token_embedding.weight", "decoder/embeddings/weight")?;
        for layer in 0..hparams.n_text_layer {
            let from = format!("decoder/layer_{layer}");
            let to = format!("decoder.blocks.{layer}");
            self.self_attention(&from, &to, state)?;
            // Cross-attention: linear_0 is the query, linear_1 fuses key and value.
            let query = format!("{from}/attention/linear_0");
            self.copy(&format!("{to}.cross_attn.query.weight"), &format!("{query}/weight"))?;
            self.copy(&format!("{to}.cross_attn.query.bias"), &format!("{query}/bias"))?;
            let key_value = format!("{from}/attention/linear_1");
            self.rows(
                &format!("{to}.cross_attn.key.weight"),
                &format!("{key_value}/weight"),
                0..state,
            )?;
            self.rows(
                &format!("{to}.cross_attn.value.weight"),
                &format!("{key_value}/weight"),
                state..2 * state,
            )?;
            self.rows(
                &format!("{to}.cross_attn.value.bias"),
                &format!("{key_value}/bias"),
                state..2 * state,
            )?;
            let out = format!("{from}/attention/linear_2");
            self.copy(&format!("{to}.cross_attn.out.weight"), &format!("{out}/weight"))?;
            self.copy(&format!("{to}.cross_attn.out.bias"), &format!("{out}/bias"))?;
            self.layer_norm(
                &format!("{to}.cross_attn_ln"),
                &format!("{from}/attention/layer_norm"),
            )?;
            self.ffn(&from, &to)?;
        }
        self.layer_norm("decoder.ln", "decoder/layer_norm")
    }

    /// Self-attention: linear_0 fuses query, key (its bias is zero and dropped) and value.
    fn self_attention(&mut self, from: &str, to: &str, state: usize) -> Result<(), String> {
        let qkv = format!("{from}/self_attention/linear_0");
        let (weight, bias) = (format!("{qkv}/weight"), format!("{qkv}/bias"));
        self.rows(&format!("{to}.attn.query.weight"), &weight, 0..state)?;
        self.rows(&format!("{to}.attn.query.bias"), &bias, 0..state)?;
        self.rows(&format!("{to}.attn.key.weight"), &weight, state..2 * state)?;
        self.rows(&format!("{to}.attn.value.weight"), &weight, 2 * state..3 * state)?;
        self.rows(&format!("{to}.attn.value.bias"), &bias, 2 * state..3 * state)?;
        let out = format!("{from}/self_attention/linear_1");
        self.copy(&format!("{to}.attn.out.weight"), &format!("{out}/weight"))?;
        self.copy(&format!("{to}.attn.out.bias"), &format!("{out}/bias"))?;
        self.layer_norm(&format!("{to}.attn_ln"), &format!("{from}/self_attention/layer_norm"))
    }

    fn ffn(&mut self, from: &str, to: &str) -> Result<(), String> {
        for (index, linear) in [(0, "linear_0"), (2, "linear_1")] {
            for part in ["weight", "bias"] {
                self.copy(
                    &format!("{to}.mlp.{index}.{part}"),
                    &format!("{from}/ffn/{linear}/{part}"),
                )?;
            }
        }
        self.layer_norm(&format!("{to}.mlp_ln"), &format!("{from}/ffn/layer_norm"))
    }

    fn layer_norm(&mut self, to: &str, from: &str) -> Result<(), String> {
        self.copy(&format!("{to}.weight"), &format!("{from}/gamma"))?;
        self.copy(&format!("{to}.bias"), &format!("{from}/beta"))
    }

    fn copy(&mut self, to: &str, from: &str) -> Result<(), String> {
        let variable = self.model.get(from)?;
        let rows = variable.dims.first().copied().unwrap_or(1);
        let dims = variable.dims.clone();
        self.tensor(to, &dims, variable, 0..rows)
    }

    /// Rows `range` of `from` (its first axis), as a tensor of its own.
    fn rows(&mut self, to: &str, from: &str, range: std::ops::Range<usize>) -> Result<(), String> {
        let variable = self.model.get(from)?;
        let mut dims = variable.dims.clone();
        match dims.first_mut() {
            Some(first) if range.end <= *first => *first = range.len(),
            _ => return Err(format!("{from} has fewer than {} rows", range.end)),
        }
        self.tensor(to, &dims, variable, range)
    }

    /// Writes rows `range` of `variable` under `name` with the row-major shape `dims`.
    fn tensor(
        &mut self,
        name: &str,
        dims: &[usize],
        variable: &Variable<'_>,
        range: std::ops::Range<usize>,
    ) -> Result<(), String> {
        let rows = variable.dims.first().copied().unwrap_or(1);
        let row_bytes = variable.data.len() / rows.max(1);
        let data = &variable.data[range.start * row_bytes..range.end * row_bytes];
        // whisper.cpp keeps 1-D tensors, conv biases and positional embeddings in f32.
        let kind = if dims.len() < 2
            || name.ends_with("conv1.bias")
            || name.ends_with("conv2.bias")
            || name.ends_with("positional_embedding")
        {
            Out::F32
        } else if dims.len() == 2 && self.precision == Precision::Q8_0 {
            Out::Q8_0
        } else {
            Out::F16
        };
        let io_error = |error: io::Error| format!("writing {name}: {error}");
        let to_i32 =
            |value: usize| i32::try_from(value).map_err(|_| format!("{name} is too large"));
        self.i32(to_i32(dims.len())?).map_err(io_error)?;
        self.i32(to_i32(name.len())?).map_err(io_error)?;
        self.i32(kind as i32).map_err(io_error)?;
        for dim in dims.iter().rev() {
            self.i32(to_i32(*dim)?).map_err(io_error)?;
        }
        self.out.write_all(name.as_bytes()).map_err(io_error)?;
        let converted = match (variable.dtype, kind) {
            (DType::F16, Out::F16) | (DType::F32, Out::F32) => data.to_vec(),
            (DType::F16, Out::F32) => data
                .chunks_exact(2)
                .flat_map(|pair| f16::from_le_bytes([pair[0], pair[1]]).to_f32().to_le_bytes())
                .collect(),
            (DType::F32, Out::F16) => data
                .chunks_exact(4)
                .flat_map(|quad| {
                    f16::from_f32(f32::from_le_bytes([quad[0], quad[1], quad[2], quad[3]]))
                        .to_le_bytes()
                })
                .collect(),
            (DType::F16 | DType::F32, Out::Q8_0) => {
                let values = to_f32(data, variable.dtype);
                if !values.len().is_multiple_of(Q8_BLOCK) {
                    return Err(format!("{name} has rows that are not whole q8_0 blocks"));
                }
                quantize_q8_0(&values)
            }
            (other, _) => {
                return Err(format!(
                    "{name}: {other:?} weights are not supported (quantized model?)"
                ));
            }
        };
        self.out.write_all(&converted).map_err(io_error)
    }
}

fn to_f32(data: &[u8], dtype: DType) -> Vec<f32> {
    if dtype == DType::F16 {
        data.chunks_exact(2).map(|pair| f16::from_le_bytes([pair[0], pair[1]]).to_f32()).collect()
    } else {
        data.chunks_exact(4)
            .map(|quad| f32::from_le_bytes([quad[0], quad[1], quad[2], quad[3]]))
            .collect()
    }
}

/// ggml's reference q8_0 quantizer (`quantize_row_q8_0_ref`): per block of 32, the scale is
/// max |x| / 127 and each weight round(x / scale).
fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / Q8_BLOCK * (2 + Q8_BLOCK));
    for block in values.chunks_exact(Q8_BLOCK) {
        let max = block.iter().fold(0.0f32, |max, value| max.max(value.abs()));
        let scale = max / 127.0;
        let inverse = if scale == 0.0 { 0.0 } else { 1.0 / scale };
        out.extend_from_slice(&f16::from_f32(scale).to_le_bytes());
        out.extend(block.iter().map(|value| ((value * inverse).round() as i8).to_le_bytes()[0]));
    }
    out
}

/// The raw bytes of the first `count` tokens: GPT-2's byte-level BPE maps every byte to a
/// printable character; this undoes that mapping.
fn token_bytes(vocabulary: &str, count: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut to_byte = std::collections::HashMap::new();
    let mut extra = 0u32;
    for byte in 0..=255u8 {
        let printable = matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let code = if printable {
            u32::from(byte)
        } else {
            extra += 1;
            255 + extra
        };
        to_byte.insert(char::from_u32(code).unwrap_or_default(), byte);
    }
    let tokens: Vec<&str> = vocabulary.split('\n').take(count).collect();
    if tokens.len() < count {
        return Err(format!("the vocabulary has {} tokens, fewer than {count}", tokens.len()));
    }
    tokens
        .iter()
        .enumerate()
        .map(|(id, token)| {
            token
                .chars()
                .map(|character| to_byte.get(&character).copied())
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| format!("vocabulary token {id} is not byte-level BPE"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_blocks_hold_a_scale_and_rounded_bytes() {
        let mut values = vec![0.0f32; 32];
        values[0] = 1.27;
        values[1] = -0.635;
        values[2] = 0.004_9;
        let block = quantize_q8_0(&values);
        assert_eq!(block.len(), 34);
        let scale = f16::from_le_bytes([block[0], block[1]]).to_f32();
        assert!((scale - 0.01).abs() < 1e-5, "{scale}");
        assert_eq!(block[2] as i8, 127);
        assert_eq!(block[3] as i8, -64); // -63.5 rounds away from zero
        assert_eq!(block[4] as i8, 0);
        assert!(quantize_q8_0(&[0.0; 32]).iter().all(|byte| *byte == 0));
    }

    #[test]
    fn byte_level_tokens_decode_to_their_bytes() {
        let mut vocabulary: Vec<String> = vec!["x".to_owned(); TEXT_TOKENS];
        vocabulary[0] = "!".into();
        vocabulary[1] = "Ġthe".into(); // Ġ is the space byte
        vocabulary[2] = "Ċ".into(); // newline
        vocabulary[3] = "Ã©".into(); // é as two UTF-8 bytes
        let tokens = token_bytes(&vocabulary.join("\n"), TEXT_TOKENS).unwrap();
        assert_eq!(tokens[0], b"!");
        assert_eq!(tokens[1], b" the");
        assert_eq!(tokens[2], b"\n");
        assert_eq!(tokens[3], "é".as_bytes());
        assert!(token_bytes("a\nb", TEXT_TOKENS).unwrap_err().contains("fewer than"));
        // The multilingual vocabulary's token 50256 is empty, and is kept as no bytes.
        vocabulary.push(String::new());
        let multilingual = token_bytes(&vocabulary.join("\n"), MULTILINGUAL_TEXT_TOKENS).unwrap();
        assert_eq!(multilingual.len(), MULTILINGUAL_TEXT_TOKENS);
        assert!(multilingual[TEXT_TOKENS].is_empty());
    }
}
