//! Reads a CTranslate2 `model.bin` (binary version 5 and later): a spec name, then named
//! little-endian tensors, then aliases. Only what the Whisper conversion needs.

use std::collections::BTreeMap;

/// Element type of a stored tensor, by CTranslate2's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One stored variable, borrowing its bytes from the file.
#[derive(Clone, Debug)]
pub struct Variable<'a> {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: &'a [u8],
}

impl Variable<'_> {
    /// A scalar integer variable (`encoder/num_heads`).
    pub fn scalar_int(&self) -> Option<i64> {
        if !self.dims.is_empty() {
            return None;
        }
        Some(match (self.dtype, self.data) {
            (DType::I8, [byte]) => i64::from(i8::from_le_bytes([*byte])),
            (DType::I16, [a, b]) => i64::from(i16::from_le_bytes([*a, *b])),
            (DType::I32, [a, b, c, d]) => i64::from(i32::from_le_bytes([*a, *b, *c, *d])),
            _ => return None,
        })
    }
}

/// A parsed model: the spec name and its variables by name, aliases resolved.
#[derive(Debug)]
pub struct Ct2Model<'a> {
    pub spec: String,
    pub variables: BTreeMap<String, Variable<'a>>,
}

impl<'a> Ct2Model<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        let mut reader = Reader::new(bytes);
        let version = reader.u32()?;
        if version < 5 {
            return Err(format!("CTranslate2 binary version {version} is older than 5"));
        }
        let spec = string(&mut reader)?;
        let _revision = reader.u32()?;
        let count = reader.u32()?;
        let mut variables = BTreeMap::new();
        for _ in 0..count {
            let name = string(&mut reader)?;
            let rank = reader.u8()?;
            let dims = (0..rank)
                .map(|_| reader.u32().map(|dim| dim as usize))
                .collect::<Result<_, _>>()?;
            let code = reader.u8()?;
            let dtype = DType::from_code(code)
                .ok_or_else(|| format!("variable {name}: unknown dtype {code}"))?;
            let length = reader.u32()? as usize;
            let data = reader.take(length)?;
            let variable = Variable { dims, dtype, data };
            let elements: usize = variable.dims.iter().product();
            if elements * dtype.size() != length {
                return Err(format!("variable {name}: {length} bytes do not match its shape"));
            }
            variables.insert(name, variable);
        }
        let aliases = reader.u32()?;
        for _ in 0..aliases {
            let alias = string(&mut reader)?;
            let target = string(&mut reader)?;
            let variable = variables
                .get(&target)
                .cloned()
                .ok_or_else(|| format!("alias {alias} names a missing variable {target}"))?;
            variables.insert(alias, variable);
        }
        if reader.offset != bytes.len() {
            return Err(format!("{} trailing bytes", bytes.len() - reader.offset));
        }
        Ok(Self { spec, variables })
    }

    pub fn get(&self, name: &str) -> Result<&Variable<'a>, String> {
        self.variables.get(name).ok_or_else(|| format!("the model has no variable {name}"))
    }
}

type Reader<'a> = super::bytes::ByteReader<'a>;

/// A u16 length that counts a trailing NUL, then the bytes.
fn string(reader: &mut Reader<'_>) -> Result<String, String> {
    let length = usize::from(reader.u16()?);
    let bytes = reader.take(length)?;
    let text = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    String::from_utf8(text.to_vec()).map_err(|_| "a name is not UTF-8".to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a model.bin in memory: `(name, dims, dtype code, data)` and aliases.
    pub(crate) fn encode(
        variables: &[(&str, &[u32], u8, Vec<u8>)],
        aliases: &[(&str, &str)],
    ) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, text: &str) {
            out.extend_from_slice(&u16::try_from(text.len() + 1).unwrap().to_le_bytes());
            out.extend_from_slice(text.as_bytes());
            out.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        string(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&u32::try_from(variables.len()).unwrap().to_le_bytes());
        for (name, dims, dtype, data) in variables {
            string(&mut out, name);
            out.push(u8::try_from(dims.len()).unwrap());
            for dim in *dims {
                out.extend_from_slice(&dim.to_le_bytes());
            }
            out.push(*dtype);
            out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&u32::try_from(aliases.len()).unwrap().to_le_bytes());
        for (alias, target) in aliases {
            string(&mut out, alias);
            string(&mut out, target);
        }
        out
    }

    #[test]
    fn parses_variables_scalars_and_aliases() {
        let bytes = encode(
            &[
                ("encoder/num_heads", &[], 2, 6i16.to_le_bytes().to_vec()),
                ("decoder/embeddings/weight", &[2, 2], 4, vec![0; 8]),
            ],
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        );
        let model = Ct2Model::parse(&bytes).unwrap();
        assert_eq!(model.spec, "WhisperSpec");
        assert_eq!(model.get("encoder/num_heads").unwrap().scalar_int(), Some(6));
        let projection = model.get("decoder/projection/weight").unwrap();
        assert_eq!((projection.dims.as_slice(), projection.dtype), ([2, 2].as_slice(), DType::F16));
    }

    #[test]
    fn truncated_or_inconsistent_files_are_errors() {
        let bytes = encode(&[("a", &[4], 4, vec![0; 8])], &[]);
        assert!(Ct2Model::parse(&bytes[..bytes.len() - 3]).unwrap_err().contains("truncated"));
        let wrong_size = encode(&[("a", &[5], 4, vec![0; 8])], &[]);
        assert!(Ct2Model::parse(&wrong_size).unwrap_err().contains("do not match"));
        assert!(Ct2Model::parse(&4u32.to_le_bytes()).unwrap_err().contains("older than 5"));
    }
}
