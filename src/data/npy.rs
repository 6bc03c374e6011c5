//! NumPy `.npy` input: a 2-D array of floats (or integers), C or Fortran
//! order, either byte order. Its columns are `c0`, `c1`, … unless a
//! sibling file `F.names` (the array's path with `.names` appended) holds
//! their names, comma-separated on one line.
//!
//! The header is a few dozen bytes of a Python dict literal, parsed here;
//! the data is then read in batches of rows by seeking, so a Fortran-order
//! array never has to be held whole.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{MdnError, Result};

/// Bytes of array data read per batch (C order).
const BATCH_BYTES: usize = 8 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Float,
    Int,
    Uint,
}

#[derive(Clone, Copy, Debug)]
struct Dtype {
    kind: Kind,
    size: usize,
    big_endian: bool,
}

impl Dtype {
    fn parse(descr: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "holds `{descr}` values; mdn reads arrays of floats (f4, f8) or integers \
                 (i1…i8, u1…u8)"
            )
        };
        let mut chars = descr.chars();
        let order = chars.next().ok_or_else(bad)?;
        let big_endian = match order {
            '<' | '|' | '=' => cfg!(target_endian = "big") && order == '=',
            '>' => true,
            _ => return Err(bad()),
        };
        let kind = match chars.next() {
            Some('f') => Kind::Float,
            Some('i') => Kind::Int,
            Some('u') => Kind::Uint,
            _ => return Err(bad()),
        };
        let size: usize = chars.as_str().parse().map_err(|_| bad())?;
        let ok = match kind {
            Kind::Float => matches!(size, 4 | 8),
            Kind::Int | Kind::Uint => matches!(size, 1 | 2 | 4 | 8),
        };
        if !ok {
            return Err(bad());
        }
        Ok(Dtype {
            kind,
            size,
            big_endian,
        })
    }

    fn value(&self, b: &[u8]) -> f32 {
        let mut a = [0u8; 8];
        a[..self.size].copy_from_slice(b);
        if self.big_endian {
            a[..self.size].reverse();
        }
        match (self.kind, self.size) {
            (Kind::Float, 4) => f32::from_le_bytes([a[0], a[1], a[2], a[3]]),
            (Kind::Float, _) => f64::from_le_bytes(a) as f32,
            (Kind::Int, 1) => a[0] as i8 as f32,
            (Kind::Int, 2) => i16::from_le_bytes([a[0], a[1]]) as f32,
            (Kind::Int, 4) => i32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f32,
            (Kind::Int, _) => i64::from_le_bytes(a) as f32,
            (Kind::Uint, _) => u64::from_le_bytes(a) as f32,
        }
    }
}

pub struct NpyReader {
    path: PathBuf,
    file: File,
    header: Vec<String>,
    dtype: Dtype,
    fortran: bool,
    rows: usize,
    cols: usize,
    /// Where the array's data starts in the file.
    data_at: u64,
    done: usize,
    bytes: Vec<u8>,
}

impl NpyReader {
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |msg: String| MdnError::Data(format!("{}: {msg}", path.display()));
        let mut file = File::open(path).map_err(|e| MdnError::io(path, e))?;
        let len = file.metadata().map_err(|e| MdnError::io(path, e))?.len();
        let mut pre = [0u8; 10];
        read_full(&mut file, &mut pre).map_err(|e| MdnError::io(path, e))?;
        if &pre[..6] != b"\x93NUMPY" {
            return Err(bad(
                "not a NumPy .npy file (it does not start with \\x93NUMPY)".into(),
            ));
        }
        let (header_len, prefix) = match pre[6] {
            1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10),
            2 | 3 => {
                let mut more = [0u8; 2];
                read_full(&mut file, &mut more).map_err(|e| MdnError::io(path, e))?;
                (
                    u32::from_le_bytes([pre[8], pre[9], more[0], more[1]]) as usize,
                    12,
                )
            }
            v => return Err(bad(format!("unknown .npy format version {v}"))),
        };
        if (prefix + header_len) as u64 > len {
            return Err(bad("the file is truncated inside its header".into()));
        }
        let mut text = vec![0u8; header_len];
        read_full(&mut file, &mut text).map_err(|e| MdnError::io(path, e))?;
        let text =
            String::from_utf8(text).map_err(|_| bad("the .npy header is not text".into()))?;
        let descr = dict_value(&text, "descr")
            .and_then(|v| v.strip_prefix('\'')?.split('\'').next().map(str::to_string))
            .ok_or_else(|| {
                bad("the .npy header has no plain `descr` (a structured array?); save a 2-D array of floats".into())
            })?;
        let dtype = Dtype::parse(&descr).map_err(|m| bad(format!("the array {m}")))?;
        let fortran = match dict_value(&text, "fortran_order") {
            Some(v) if v.starts_with("True") => true,
            Some(v) if v.starts_with("False") => false,
            _ => return Err(bad("the .npy header has no `fortran_order`".into())),
        };
        let shape = dict_value(&text, "shape")
            .and_then(|v| v.strip_prefix('('))
            .and_then(|v| v.split(')').next())
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| p.parse::<usize>())
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .and_then(|r| r.ok())
            .ok_or_else(|| bad("the .npy header has no readable `shape`".into()))?;
        let [rows, cols] = shape[..] else {
            return Err(bad(format!(
                "a 2-D array (rows × columns) is needed; this one has shape ({})",
                shape
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let data_at = (prefix + header_len) as u64;
        let need = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(dtype.size))
            .ok_or_else(|| bad("the array's shape is too large".into()))?;
        if data_at + need as u64 > len {
            return Err(bad(format!(
                "the file is truncated: a {rows}×{cols} `{descr}` array needs {need} bytes of data, the file has {}",
                len - data_at
            )));
        }
        let header = column_names(path, cols)?;
        Ok(NpyReader {
            path: path.to_path_buf(),
            file,
            header,
            dtype,
            fortran,
            rows,
            cols,
            data_at,
            done: 0,
            bytes: Vec::new(),
        })
    }

    pub fn header(&self) -> &[String] {
        &self.header
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn read_batch(
        &mut self,
        groups: &[Vec<usize>],
        max_rows: usize,
        outs: &mut [Vec<f32>],
    ) -> Result<usize> {
        let size = self.dtype.size;
        let row_bytes = self.cols * size;
        let cap = if self.fortran {
            BATCH_BYTES / size
        } else {
            BATCH_BYTES / row_bytes.max(1)
        };
        let n = (self.rows - self.done).min(max_rows.max(1)).min(cap.max(1));
        if n == 0 {
            return Ok(0);
        }
        let io = |e| MdnError::io(&self.path, e);
        if self.fortran {
            // Column-major: each selected column's run of `n` values.
            let mut columns: Vec<usize> = groups.iter().flatten().copied().collect();
            columns.sort_unstable();
            columns.dedup();
            let mut values: Vec<(usize, Vec<f32>)> = Vec::with_capacity(columns.len());
            for c in columns {
                let at = self.data_at + ((c * self.rows + self.done) * size) as u64;
                self.bytes.resize(n * size, 0);
                self.file.seek(SeekFrom::Start(at)).map_err(io)?;
                read_full(&mut self.file, &mut self.bytes).map_err(io)?;
                let v: Vec<f32> = self
                    .bytes
                    .chunks_exact(size)
                    .map(|b| self.dtype.value(b))
                    .collect();
                values.push((c, v));
            }
            let of = |c: usize| &values.iter().find(|(i, _)| *i == c).expect("read").1;
            for (g, out) in groups.iter().zip(outs.iter_mut()) {
                for r in 0..n {
                    out.extend(g.iter().map(|&c| of(c)[r]));
                }
            }
        } else {
            let at = self.data_at + (self.done * row_bytes) as u64;
            self.bytes.resize(n * row_bytes, 0);
            self.file.seek(SeekFrom::Start(at)).map_err(io)?;
            read_full(&mut self.file, &mut self.bytes).map_err(io)?;
            for (g, out) in groups.iter().zip(outs.iter_mut()) {
                out.reserve(n * g.len());
                for row in self.bytes.chunks_exact(row_bytes) {
                    out.extend(
                        g.iter()
                            .map(|&c| self.dtype.value(&row[c * size..][..size])),
                    );
                }
            }
        }
        // The values just appended: each must be finite.
        for (g, out) in groups.iter().zip(outs.iter()) {
            let fresh = &out[out.len() - n * g.len()..];
            if let Some(i) = fresh.iter().position(|v| !v.is_finite()) {
                return Err(MdnError::Data(format!(
                    "{}: column `{}`, row {}: {} is not a finite number",
                    self.path.display(),
                    self.header[g[i % g.len()]],
                    self.done + i / g.len() + 1,
                    fresh[i]
                )));
            }
        }
        self.done += n;
        Ok(n)
    }
}

/// `read_exact`, with a short file worded as such.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<()> {
    file.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            std::io::Error::new(e.kind(), "the file is truncated")
        } else {
            e
        }
    })
}

/// The text after `'key':` in a header dict, leading spaces dropped.
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text
        .find(&format!("'{key}'"))
        .or_else(|| text.find(&format!("\"{key}\"")))?;
    let rest = &text[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

/// `c0`, `c1`, … or the names in the sibling file `F.names`.
fn column_names(path: &Path, cols: usize) -> Result<Vec<String>> {
    let mut names_path = path.as_os_str().to_owned();
    names_path.push(".names");
    let names_path = PathBuf::from(names_path);
    let text = match std::fs::read_to_string(&names_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((0..cols).map(|i| format!("c{i}")).collect());
        }
        Err(e) => return Err(MdnError::io(&names_path, e)),
    };
    let line = text.lines().next().unwrap_or("");
    let names: Vec<String> = line.split(',').map(|n| n.trim().to_string()).collect();
    if names.len() != cols {
        return Err(MdnError::Data(format!(
            "{}: names {} column(s) but {} has {cols}",
            names_path.display(),
            names.len(),
            path.display()
        )));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_and_header_values() {
        assert!(Dtype::parse("<f8").is_ok());
        assert!(Dtype::parse(">f4").unwrap().big_endian);
        assert!(Dtype::parse("|u1").is_ok());
        for bad in ["<U5", "|b1", "|O", "<f2", "<c16", "", "<i3"] {
            assert!(Dtype::parse(bad).is_err(), "{bad}");
        }
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }";
        assert_eq!(
            dict_value(h, "descr"),
            Some("'<f4', 'fortran_order': False, 'shape': (3, 2), }")
        );
        assert!(dict_value(h, "shape").unwrap().starts_with("(3, 2)"));
        let be = Dtype::parse(">f8").unwrap();
        assert_eq!(be.value(&1.5f64.to_be_bytes()), 1.5);
        assert_eq!(
            Dtype::parse("<i2").unwrap().value(&(-7i16).to_le_bytes()),
            -7.0
        );
    }
}
