//! Reads the float tensors of a PyTorch checkpoint, in the legacy (pre-1.6, non-zip) format:
//! pickles of a magic number, a protocol version and system information, then the object
//! pickle, whose tensors point at storages by key, then the list of storage keys, then each
//! storage's raw data; or in the zip format of later versions: the object pickle as
//! `<archive>/data.pkl`, each storage's raw data as `<archive>/data/<key>`. Only the pickle
//! opcodes such checkpoints use are understood; anything else is an error, never code
//! execution.

use std::collections::HashMap;

const MAGIC: u128 = 0x1950_a86a_20f9_469c_fc6c;

/// A float32 tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The tensors of the state dict found under `state_key` (e.g. "model_state"), by name.
pub fn read_state_dict(bytes: &[u8], state_key: &str) -> Result<HashMap<String, Tensor>, String> {
    let mut reader = Pickle { reader: super::bytes::ByteReader::new(bytes) };
    match reader.load() {
        Ok(Value::Long(MAGIC)) => {}
        _ => return Err("not a legacy PyTorch checkpoint (no magic number)".into()),
    }
    match reader.load()? {
        Value::Int(1001) => {}
        other => return Err(format!("unsupported protocol version {other:?}")),
    }
    let _system_info = reader.load()?;
    let root = reader.load()?;
    let keys = match reader.load()? {
        Value::List(keys) => keys,
        other => return Err(format!("expected the storage key list, found {other:?}")),
    };
    let mut storages: HashMap<String, Vec<f32>> = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else { return Err("a storage key is not a string".into()) };
        let count = reader.take(8)?;
        let count =
            usize::try_from(i64::from_le_bytes(count.try_into().map_err(|_| "short read")?))
                .map_err(|_| format!("storage {key} has a negative size"))?;
        let data = reader.take(count.checked_mul(4).ok_or("storage too large")?)?;
        let floats = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        storages.insert(key, floats.collect());
    }
    state_dict(&root, state_key, &storages)
}

/// The tensors of the state dict found under `state_key` (e.g. "state_dict") of a checkpoint
/// in the zip format.
pub fn read_zip_state_dict(
    bytes: &[u8],
    state_key: &str,
) -> Result<HashMap<String, Tensor>, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|error| format!("not a zip PyTorch checkpoint: {error}"))?;
    let names = archive
        .file_names()
        .map(|name| name.map(std::borrow::Cow::into_owned))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|error| format!("the checkpoint's zip directory: {error}"))?;
    let pickle = names
        .iter()
        .find(|name| name.ends_with("/data.pkl"))
        .ok_or("the checkpoint has no data.pkl")?;
    let folder = format!("{}data/", &pickle[..pickle.len() - "data.pkl".len()]);
    let mut read = |name: &str| -> Result<Vec<u8>, String> {
        use std::io::Read;
        let mut file = archive.by_name(name).map_err(|error| format!("{name}: {error}"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|error| format!("reading {name}: {error}"))?;
        Ok(bytes)
    };
    let root = Pickle { reader: super::bytes::ByteReader::new(&read(pickle)?) }.load()?;
    let mut storages: HashMap<String, Vec<f32>> = HashMap::new();
    for name in &names {
        let Some(key) = name.strip_prefix(&folder) else { continue };
        let data = read(name)?;
        let floats = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        storages.insert(key.to_owned(), floats.collect());
    }
    state_dict(&root, state_key, &storages)
}

fn state_dict(
    root: &Value,
    state_key: &str,
    storages: &HashMap<String, Vec<f32>>,
) -> Result<HashMap<String, Tensor>, String> {
    let state = root.get(state_key).ok_or_else(|| format!("the checkpoint has no {state_key}"))?;
    let Value::Dict(entries) = state else { return Err(format!("{state_key} is not a dict")) };
    let mut tensors = HashMap::new();
    for (name, value) in entries {
        let Value::Str(name) = name else { continue };
        tensors.insert(
            name.clone(),
            rebuild_tensor(value, storages).map_err(|e| format!("{name}: {e}"))?,
        );
    }
    Ok(tensors)
}

/// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` over a float storage.
fn rebuild_tensor(value: &Value, storages: &HashMap<String, Vec<f32>>) -> Result<Tensor, String> {
    let Value::Call(function, arguments) = value else { return Err("not a tensor".into()) };
    if !matches!(&**function, Value::Global(name) if name == "torch._utils._rebuild_tensor_v2") {
        return Err(format!("not a tensor: {function:?}"));
    }
    let Value::Tuple(arguments) = &**arguments else { return Err("bad tensor arguments".into()) };
    let [
        Value::Persistent(storage),
        Value::Int(offset),
        Value::Tuple(size),
        Value::Tuple(stride),
        ..,
    ] = arguments.as_slice()
    else {
        return Err("bad tensor arguments".into());
    };
    let Value::Tuple(storage) = &**storage else { return Err("bad storage reference".into()) };
    let [Value::Str(_), Value::Global(kind), Value::Str(key), ..] = storage.as_slice() else {
        return Err("bad storage reference".into());
    };
    if kind != "torch.FloatStorage" {
        return Err(format!("{kind} tensors are not supported"));
    }
    let ints = |values: &[Value]| -> Result<Vec<usize>, String> {
        values
            .iter()
            .map(|value| match value {
                Value::Int(n) => usize::try_from(*n).map_err(|_| "negative dimension".to_owned()),
                _ => Err("a dimension is not an integer".to_owned()),
            })
            .collect()
    };
    let (shape, stride) = (ints(size)?, ints(stride)?);
    let data = storages.get(key).ok_or_else(|| format!("storage {key} is missing"))?;
    let offset = usize::try_from(*offset).map_err(|_| "negative offset")?;
    // Contiguous row-major strides only (what a saved state dict holds).
    let mut expected = 1;
    for (dim, step) in shape.iter().zip(&stride).rev() {
        if *step != expected && *dim != 1 {
            return Err("a non-contiguous tensor".into());
        }
        expected *= dim;
    }
    let count: usize = shape.iter().product();
    let data = data.get(offset..offset + count).ok_or("a tensor runs past its storage")?.to_vec();
    Ok(Tensor { shape, data })
}

#[derive(Clone, Debug, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Long(u128),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String),
    Persistent(Box<Value>),
    /// `function(*arguments)`, kept as data.
    Call(Box<Value>, Box<Value>),
    Mark,
}

impl Value {
    fn get(&self, key: &str) -> Option<&Value> {
        let Value::Dict(entries) = self else { return None };
        entries
            .iter()
            .find(|(name, _)| matches!(name, Value::Str(name) if name == key))
            .map(|(_, v)| v)
    }
}

/// The pickle machine reads through a byte reader.
struct Pickle<'a> {
    reader: super::bytes::ByteReader<'a>,
}

impl<'a> Pickle<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], String> {
        self.reader.take(length)
    }

    fn u8(&mut self) -> Result<u8, String> {
        self.reader.u8()
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.reader.u32()
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.reader.bytes[self.reader.offset..];
        let end = rest.iter().position(|byte| *byte == b'\n').ok_or("unterminated line")?;
        let text = String::from_utf8(rest[..end].to_vec()).map_err(|_| "a name is not UTF-8")?;
        self.reader.offset += end + 1;
        Ok(text)
    }

    /// Runs one pickle to its STOP and returns its value.
    fn load(&mut self) -> Result<Value, String> {
        let mut stack: Vec<Value> = Vec::new();
        let mut memo: HashMap<u32, Value> = HashMap::new();
        let pop = |stack: &mut Vec<Value>| stack.pop().ok_or_else(|| "stack underflow".to_owned());
        let pop_mark = |stack: &mut Vec<Value>| -> Result<Vec<Value>, String> {
            let mark = stack.iter().rposition(|value| *value == Value::Mark).ok_or("no mark")?;
            let items = stack.split_off(mark + 1);
            stack.pop();
            Ok(items)
        };
        loop {
            let opcode = self.u8()?;
            match opcode {
                0x80 => {
                    self.u8()?; // PROTO n
                }
                b'.' => return pop(&mut stack),
                b'(' => stack.push(Value::Mark),
                b'N' => stack.push(Value::None),
                0x88 => stack.push(Value::Bool(true)),
                0x89 => stack.push(Value::Bool(false)),
                b'J' => {
                    let b = self.take(4)?;
                    stack.push(Value::Int(i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))));
                }
                b'K' => {
                    let value = self.u8()?;
                    stack.push(Value::Int(i64::from(value)));
                }
                b'M' => {
                    let b = self.take(2)?;
                    stack.push(Value::Int(i64::from(u16::from_le_bytes([b[0], b[1]]))));
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes
                    let length = usize::from(self.u8()?);
                    let b = self.take(length)?;
                    if length > 16 {
                        return Err("integer too large".into());
                    }
                    let mut value: u128 = 0;
                    for (index, byte) in b.iter().enumerate() {
                        value |= u128::from(*byte) << (8 * index);
                    }
                    stack.push(match i64::try_from(value) {
                        Ok(small) if length <= 8 => Value::Int(small),
                        _ => Value::Long(value),
                    });
                }
                b'G' => {
                    let b = self.take(8)?;
                    stack
                        .push(Value::Float(f64::from_be_bytes(b.try_into().map_err(|_| "short")?)));
                }
                b'X' => {
                    let length = self.u32()? as usize;
                    let text =
                        String::from_utf8(self.take(length)?.to_vec()).map_err(|_| "bad UTF-8")?;
                    stack.push(Value::Str(text));
                }
                0x8c => {
                    let length = usize::from(self.u8()?);
                    let text =
                        String::from_utf8(self.take(length)?.to_vec()).map_err(|_| "bad UTF-8")?;
                    stack.push(Value::Str(text));
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    stack.push(Value::Global(format!("{module}.{name}")));
                }
                b')' => stack.push(Value::Tuple(Vec::new())),
                b']' => stack.push(Value::List(Vec::new())),
                b'}' => stack.push(Value::Dict(Vec::new())),
                b't' => {
                    let items = pop_mark(&mut stack)?;
                    stack.push(Value::Tuple(items));
                }
                0x85 => {
                    let a = pop(&mut stack)?;
                    stack.push(Value::Tuple(vec![a]));
                }
                0x86 => {
                    let b = pop(&mut stack)?;
                    let a = pop(&mut stack)?;
                    stack.push(Value::Tuple(vec![a, b]));
                }
                0x87 => {
                    let c = pop(&mut stack)?;
                    let b = pop(&mut stack)?;
                    let a = pop(&mut stack)?;
                    stack.push(Value::Tuple(vec![a, b, c]));
                }
                b'q' => {
                    let index = u32::from(self.u8()?);
                    memo.insert(index, stack.last().cloned().ok_or("empty stack")?);
                }
                b'r' => {
                    let index = self.u32()?;
                    memo.insert(index, stack.last().cloned().ok_or("empty stack")?);
                }
                b'h' => {
                    let index = u32::from(self.u8()?);
                    stack.push(memo.get(&index).cloned().ok_or("unknown memo")?);
                }
                b'j' => {
                    let index = self.u32()?;
                    stack.push(memo.get(&index).cloned().ok_or("unknown memo")?);
                }
                b'Q' => {
                    let id = pop(&mut stack)?;
                    stack.push(Value::Persistent(Box::new(id)));
                }
                b'R' => {
                    let arguments = pop(&mut stack)?;
                    let function = pop(&mut stack)?;
                    stack.push(match &function {
                        Value::Global(name) if name == "collections.OrderedDict" => {
                            Value::Dict(Vec::new())
                        }
                        _ => Value::Call(Box::new(function), Box::new(arguments)),
                    });
                }
                0x81 => {
                    // NEWOBJ: cls.__new__(cls, *args), kept as data like REDUCE.
                    let arguments = pop(&mut stack)?;
                    let class = pop(&mut stack)?;
                    stack.push(Value::Call(Box::new(class), Box::new(arguments)));
                }
                b'b' => {
                    let _state = pop(&mut stack)?; // BUILD: object state (e.g. _metadata): unused
                }
                b'a' => {
                    let item = pop(&mut stack)?;
                    match stack.last_mut() {
                        Some(Value::List(list)) => list.push(item),
                        _ => return Err("APPEND to a non-list".into()),
                    }
                }
                b'e' => {
                    let items = pop_mark(&mut stack)?;
                    match stack.last_mut() {
                        Some(Value::List(list)) => list.extend(items),
                        _ => return Err("APPENDS to a non-list".into()),
                    }
                }
                b's' => {
                    let value = pop(&mut stack)?;
                    let key = pop(&mut stack)?;
                    match stack.last_mut() {
                        Some(Value::Dict(entries)) => entries.push((key, value)),
                        _ => return Err("SETITEM on a non-dict".into()),
                    }
                }
                b'u' => {
                    let items = pop_mark(&mut stack)?;
                    let Some(Value::Dict(entries)) = stack.last_mut() else {
                        return Err("SETITEMS on a non-dict".into());
                    };
                    let mut items = items.into_iter();
                    while let (Some(key), Some(value)) = (items.next(), items.next()) {
                        entries.push((key, value));
                    }
                }
                other => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {}",
                        self.reader.offset - 1
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, text: &str) {
        out.push(b'X');
        out.extend_from_slice(&u32::try_from(text.len()).unwrap().to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }

    /// The object pickle of a checkpoint written by hand: {state_key: OrderedDict(w=tensor
    /// 2x2 of storage "k1")}. `NEWOBJ` marks an object (as Lightning's hyper-parameters are)
    /// kept as data.
    fn object_pickle(state_key: &str, object: bool) -> Vec<u8> {
        let mut out = vec![0x80, 2, b'}', b'('];
        if object {
            string(&mut out, "hyper_parameters");
            out.extend_from_slice(b"cpyannote.audio.core.task\nSpecifications\n)");
            out.push(0x81);
        }
        string(&mut out, state_key);
        out.extend_from_slice(b"ccollections\nOrderedDict\n");
        out.extend_from_slice(b")R(");
        string(&mut out, "w");
        out.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n");
        out.extend_from_slice(b"((");
        string(&mut out, "storage");
        out.extend_from_slice(b"ctorch\nFloatStorage\n");
        string(&mut out, "k1");
        string(&mut out, "cpu");
        out.extend_from_slice(&[
            b'K', 4, b'N', b't', b'Q', b'K', 0, b'K', 2, b'K', 2, 0x86, b'K', 2, b'K', 1, 0x86,
        ]);
        out.extend_from_slice(&[0x89, b')', b't', b'R', b'u', b'u', b'.']);
        out
    }

    fn storage() -> Vec<u8> {
        [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|value| value.to_le_bytes()).collect()
    }

    /// A legacy checkpoint written by hand: {"model_state": OrderedDict(w=tensor 2x2)}.
    fn checkpoint() -> Vec<u8> {
        let mut out = Vec::new();
        // magic as LONG1, protocol 1001 as BININT2, sys info as an empty dict
        out.extend_from_slice(&[0x80, 2, 0x8a, 10]);
        out.extend_from_slice(&MAGIC.to_le_bytes()[..10]);
        out.push(b'.');
        out.extend_from_slice(&[0x80, 2, b'M']);
        out.extend_from_slice(&1001u16.to_le_bytes());
        out.push(b'.');
        out.extend_from_slice(&[0x80, 2, b'}', b'.']);
        out.extend(object_pickle("model_state", false));
        out.extend_from_slice(&[0x80, 2, b']', b'(']);
        string(&mut out, "k1");
        out.extend_from_slice(b"e.");
        out.extend_from_slice(&4i64.to_le_bytes());
        out.extend(storage());
        out
    }

    #[test]
    fn reads_the_tensors_of_a_zip_checkpoint() {
        use std::io::Write;
        let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in [
            ("archive/data.pkl", object_pickle("state_dict", true)),
            ("archive/data/k1", storage()),
            ("archive/version", b"3\n".to_vec()),
        ] {
            archive.start_file(name, stored).unwrap();
            archive.write_all(&bytes).unwrap();
        }
        let file = archive.finish().unwrap().into_inner();
        let tensors = read_zip_state_dict(&file, "state_dict").unwrap();
        assert_eq!(tensors["w"], Tensor { shape: vec![2, 2], data: vec![1.0, 2.0, 3.0, 4.0] });
        assert!(read_zip_state_dict(&file, "model_state").unwrap_err().contains("no model_state"));
        assert!(read_zip_state_dict(&checkpoint(), "state_dict").is_err());
    }

    #[test]
    fn reads_the_tensors_of_a_legacy_checkpoint() {
        let tensors = read_state_dict(&checkpoint(), "model_state").unwrap();
        assert_eq!(tensors["w"], Tensor { shape: vec![2, 2], data: vec![1.0, 2.0, 3.0, 4.0] });
    }

    #[test]
    fn other_files_and_opcodes_are_errors_not_code() {
        assert!(read_state_dict(b"PK\x03\x04", "model_state").is_err());
        let mut file = checkpoint();
        let at = file.windows(6).position(|w| w == b"ctorch").unwrap();
        file[at] = b'i'; // INST: arbitrary construction, refused
        assert!(
            read_state_dict(&file, "model_state")
                .unwrap_err()
                .contains("unsupported pickle opcode")
        );
    }
}
