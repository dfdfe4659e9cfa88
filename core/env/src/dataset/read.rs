//! Arrays from data files: NumPy `.npy` and `.npz`, `.safetensors`, and
//! CSV, each read with a well-kept crate (`npyz`, `zip`, `safetensors`,
//! `csv`) and checked before anything is sized from it.
//!
//! A header's shape is never trusted for an allocation: the values it
//! claims must fit in the bytes the file (or the archive member) holds
//! before any is read, and values are collected as they are decoded. A
//! truncated, corrupt or wrongly typed file is a [`ReadError`] that names
//! the file and the array, never a panic.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use npyz::{DType, NpyFile, TypeChar};

/// The values of one array: floating-point data as `f32`, integer data
/// (labels, tokens) as `i64`.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// Floating-point values (`f2` is refused, `f8` is narrowed).
    Float(Vec<f32>),
    /// Integer (or boolean) values.
    Int(Vec<i64>),
}

impl Values {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::Float(v) => v.len(),
            Values::Int(v) => v.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One array read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// Its extents, row-major.
    pub shape: Vec<usize>,
    /// Its values, `shape`'s product of them.
    pub values: Values,
}

/// Why an array could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}{}: {message}", array.as_ref().map(|a| format!(", array `{a}`")).unwrap_or_default())]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// The array, where one is concerned.
    pub array: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// The file formats a data set can come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// NumPy `.npy`: one array.
    Npy,
    /// NumPy `.npz`: a zip archive of named `.npy` arrays.
    Npz,
    /// `.safetensors`: named tensors.
    Safetensors,
    /// CSV with a header row: named columns.
    Csv,
}

impl Format {
    /// The format of `path`, by its extension.
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "npy" => Format::Npy,
            "npz" => Format::Npz,
            "safetensors" => Format::Safetensors,
            "csv" => Format::Csv,
            _ => return None,
        })
    }
}

/// Reads the arrays `names` from `path`. A `.npy` file holds one array
/// (named after the file, whatever is asked); a CSV file's arrays are
/// columns: `names` with a trailing `*` stands for every column not named
/// otherwise (the inputs), in file order, read as one `[rows, columns]`
/// array.
pub fn read(path: &Path, names: &[&str]) -> Result<Vec<Array>, ReadError> {
    let err = |array: Option<&str>, message: String| ReadError {
        path: path.to_owned(),
        array: array.map(str::to_owned),
        message,
    };
    let format = Format::of(path).ok_or_else(|| {
        err(
            None,
            "unknown format: expected a .npy, .npz, .safetensors or .csv file".into(),
        )
    })?;
    let file = File::open(path).map_err(|e| err(None, format!("cannot open: {e}")))?;
    let size = file
        .metadata()
        .map_err(|e| err(None, format!("cannot read: {e}")))?
        .len();
    match format {
        Format::Npy => {
            let name = names.first().copied();
            let array = npy(BufReader::new(file), size).map_err(|m| err(name, m))?;
            Ok(names.iter().map(|_| array.clone()).collect())
        }
        Format::Npz => {
            let mut zip = zip::ZipArchive::new(BufReader::new(file))
                .map_err(|e| err(None, format!("not a valid .npz (zip) archive: {e}")))?;
            let have: Vec<String> = zip
                .file_names()
                .filter_map(Result::ok)
                .filter_map(|f| f.strip_suffix(".npy").map(|f| format!("`{f}`")))
                .collect();
            names
                .iter()
                .map(|&name| {
                    let mut member = match zip.by_name(&format!("{name}.npy")) {
                        Ok(m) => m,
                        Err(zip::result::ZipError::FileNotFound) => {
                            return Err(err(
                                Some(name),
                                format!("no such array (the archive holds {})", list(&have)),
                            ));
                        }
                        Err(e) => return Err(err(Some(name), format!("cannot read: {e}"))),
                    };
                    // A deflated member expands at most ~1032:1; neither it
                    // nor the size the archive declares bounds an
                    // allocation, only the values actually decoded do.
                    let room = member
                        .size()
                        .min(member.compressed_size().saturating_mul(1032) + 1024);
                    let reader: &mut dyn Read = &mut member;
                    npy(reader, room).map_err(|m| err(Some(name), m))
                })
                .collect()
        }
        Format::Safetensors => {
            let mut bytes = Vec::new();
            BufReader::new(file)
                .take(size)
                .read_to_end(&mut bytes)
                .map_err(|e| err(None, format!("cannot read: {e}")))?;
            let tensors = safetensors::SafeTensors::deserialize(&bytes)
                .map_err(|e| err(None, format!("not a valid .safetensors file: {e}")))?;
            names
                .iter()
                .map(|&name| {
                    let view = tensors.tensor(name).map_err(|_| {
                        let mut have: Vec<String> =
                            tensors.names().iter().map(|n| format!("`{n}`")).collect();
                        have.sort();
                        err(
                            Some(name),
                            format!("no such tensor (the file holds {})", list(&have)),
                        )
                    })?;
                    tensor(&view).map_err(|m| err(Some(name), m))
                })
                .collect()
        }
        Format::Csv => csv(BufReader::new(file), names).map_err(|(a, m)| err(a.as_deref(), m)),
    }
}

/// The most bytes of values `path` can hold once decoded: an archive's
/// declared member sizes, else the file's length (0 where it cannot be
/// read; reading it later names the problem). Cheap: no values are read.
pub fn decoded_bound(path: &Path) -> u64 {
    let Ok(file) = File::open(path) else {
        return 0;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    if Format::of(path) != Some(Format::Npz) {
        return len;
    }
    match zip::ZipArchive::new(BufReader::new(file)) {
        Ok(mut zip) => (0..zip.len())
            .filter_map(|i| zip.by_index_raw(i).ok().map(|m| m.size()))
            .fold(0u64, u64::saturating_add),
        Err(_) => len,
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Checks that `n` values of `width` bytes fit in `room` bytes.
fn fits(shape: &[u64], width: u64, room: u64) -> Result<usize, String> {
    let n = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or("the header's shape overflows")?;
    let bytes = n.checked_mul(width).ok_or("the header's shape overflows")?;
    if bytes > room {
        return Err(format!(
            "the header says {shape:?} ({n} values of {width} bytes) but only {room} bytes follow: \
             the file is truncated or its header is corrupt"
        ));
    }
    usize::try_from(n).map_err(|_| "the array is too large for this machine".into())
}

/// One `.npy` image from `reader`, which holds at most `room` bytes.
fn npy(reader: impl Read, room: u64) -> Result<Array, String> {
    let file = NpyFile::new(reader).map_err(|e| format!("not a valid .npy array: {e}"))?;
    if file.order() == npyz::Order::Fortran {
        return Err(
            "the array is in Fortran order: save it C-ordered (numpy.ascontiguousarray)".into(),
        );
    }
    let shape_u64 = file.shape().to_vec();
    let DType::Plain(ts) = file.dtype() else {
        return Err("structured arrays are not supported: save one plain array per name".into());
    };
    let width = ts.size_field();
    let n = fits(&shape_u64, width, room)?;
    let shape: Vec<usize> = shape_u64.iter().map(|&d| d as usize).collect();
    let short = |e: io::Error| format!("the data ends early or is unreadable: {e}");
    let values = match (ts.type_char(), width) {
        (TypeChar::Float, 4) => Values::Float(file.into_vec::<f32>().map_err(short)?),
        (TypeChar::Float, 8) => Values::Float(
            file.into_vec::<f64>()
                .map_err(short)?
                .into_iter()
                .map(|v| v as f32)
                .collect(),
        ),
        (TypeChar::Int, 1) => ints(file.into_vec::<i8>().map_err(short)?),
        (TypeChar::Int, 2) => ints(file.into_vec::<i16>().map_err(short)?),
        (TypeChar::Int, 4) => ints(file.into_vec::<i32>().map_err(short)?),
        (TypeChar::Int, 8) => ints(file.into_vec::<i64>().map_err(short)?),
        (TypeChar::Uint | TypeChar::Bool, 1) => ints(file.into_vec::<u8>().map_err(short)?),
        (TypeChar::Uint, 2) => ints(file.into_vec::<u16>().map_err(short)?),
        (TypeChar::Uint, 4) => ints(file.into_vec::<u32>().map_err(short)?),
        (TypeChar::Uint, 8) => {
            let v = file.into_vec::<u64>().map_err(short)?;
            Values::Int(
                v.into_iter()
                    .map(|x| i64::try_from(x).map_err(|_| format!("the value {x} is too large")))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => {
            return Err(format!(
                "unsupported dtype `{ts}`: expected floats (f4, f8) or integers"
            ));
        }
    };
    if values.len() != n {
        return Err(format!(
            "the header says {n} values but {} were read",
            values.len()
        ));
    }
    Ok(Array { shape, values })
}

fn ints<T: Into<i64>>(v: Vec<T>) -> Values {
    Values::Int(v.into_iter().map(Into::into).collect())
}

/// One tensor of a `.safetensors` file (whose reader has checked that its
/// bytes lie inside the file).
fn tensor(view: &safetensors::tensor::TensorView<'_>) -> Result<Array, String> {
    use safetensors::Dtype;
    let data = view.data();
    let shape = view.shape().to_vec();
    let le = |width: usize| data.chunks_exact(width);
    let values = match view.dtype() {
        Dtype::F32 => Values::Float(
            le(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
        ),
        Dtype::F64 => Values::Float(
            le(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
        ),
        Dtype::U8 | Dtype::BOOL => Values::Int(data.iter().map(|&b| i64::from(b)).collect()),
        Dtype::I8 => Values::Int(data.iter().map(|&b| i64::from(b as i8)).collect()),
        Dtype::I16 => Values::Int(
            le(2)
                .map(|b| i64::from(i16::from_le_bytes(b.try_into().unwrap())))
                .collect(),
        ),
        Dtype::U16 => Values::Int(
            le(2)
                .map(|b| i64::from(u16::from_le_bytes(b.try_into().unwrap())))
                .collect(),
        ),
        Dtype::I32 => Values::Int(
            le(4)
                .map(|b| i64::from(i32::from_le_bytes(b.try_into().unwrap())))
                .collect(),
        ),
        Dtype::U32 => Values::Int(
            le(4)
                .map(|b| i64::from(u32::from_le_bytes(b.try_into().unwrap())))
                .collect(),
        ),
        Dtype::I64 => Values::Int(
            le(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                .collect(),
        ),
        other => {
            return Err(format!(
                "unsupported dtype {other:?}: expected F32, F64 or an integer type"
            ));
        }
    };
    Ok(Array { shape, values })
}

/// Columns of a CSV file with a header row, every cell a number. Each name
/// is a column (read as integers when every cell is a whole number, else
/// as floats), except a trailing `*`, which reads every column not named
/// as one `[rows, columns]` float array.
fn csv(reader: impl Read, names: &[&str]) -> Result<Vec<Array>, (Option<String>, String)> {
    let mut csv = ::csv::ReaderBuilder::new().from_reader(reader);
    let header: Vec<String> = csv
        .headers()
        .map_err(|e| (None, format!("not a valid CSV file: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut columns = Vec::new();
    let mut rest = false;
    for &name in names {
        if name == "*" {
            rest = true;
            continue;
        }
        let at = header.iter().position(|h| h == name).ok_or_else(|| {
            (
                Some(name.to_owned()),
                format!("no such column (the header has {})", header.join(", ")),
            )
        })?;
        columns.push(at);
    }
    let others: Vec<usize> = (0..header.len()).filter(|c| !columns.contains(c)).collect();
    let mut cells: Vec<Vec<f64>> = vec![Vec::new(); header.len()];
    for (row, record) in csv.records().enumerate() {
        let record = record.map_err(|e| (None, format!("row {}: {e}", row + 2)))?;
        if record.len() != header.len() {
            return Err((
                None,
                format!(
                    "row {} has {} cells but the header has {}",
                    row + 2,
                    record.len(),
                    header.len()
                ),
            ));
        }
        for (c, cell) in record.iter().enumerate() {
            let v: f64 = cell.trim().parse().map_err(|_| {
                (
                    Some(header[c].clone()),
                    format!("row {}: `{cell}` is not a number", row + 2),
                )
            })?;
            cells[c].push(v);
        }
    }
    let rows = cells.first().map_or(0, Vec::len);
    let mut out = Vec::new();
    for &c in &columns {
        let column = &cells[c];
        let values = if column.iter().all(|v| v.fract() == 0.0 && v.abs() < 9e15) {
            Values::Int(column.iter().map(|&v| v as i64).collect())
        } else {
            Values::Float(column.iter().map(|&v| v as f32).collect())
        };
        out.push(Array {
            shape: vec![rows],
            values,
        });
    }
    if rest {
        let x: Vec<f32> = (0..rows)
            .flat_map(|r| {
                others
                    .iter()
                    .map(|&c| cells[c][r] as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let array = Array {
            shape: vec![rows, others.len()],
            values: Values::Float(x),
        };
        let at = names.iter().position(|&n| n == "*").unwrap_or(out.len());
        out.insert(at.min(out.len()), array);
    }
    Ok(out)
}
