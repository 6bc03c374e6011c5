//! A data file of named numeric columns, whatever its format: CSV,
//! Parquet (`.parquet`) or NumPy (`.npy`), chosen by the file's extension.
//! Columns are picked by name the same way for every format, and read in
//! batches of rows straight into row-major `f32` buffers.

use std::path::{Path, PathBuf};

use super::Dataset;
use super::csv::CsvReader;
use super::npy::NpyReader;
use super::parquet::ParquetReader;
use crate::error::{MdnError, Result};

/// Rows per batch when a whole file is loaded.
const LOAD_BATCH_ROWS: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
    Npy,
}

impl Format {
    /// By the file's extension (case-insensitive); anything else is CSV.
    pub fn of(path: &Path) -> Self {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("parquet") | Some("pq") => Format::Parquet,
            Some("npy") => Format::Npy,
            _ => Format::Csv,
        }
    }
}

enum Reader {
    Csv(CsvReader),
    Parquet(ParquetReader),
    Npy(NpyReader),
}

/// An open data file: its column names, and the rows not yet read.
pub struct Table {
    pub path: PathBuf,
    pub format: Format,
    pub header: Vec<String>,
    reader: Reader,
}

impl Table {
    pub fn open(path: &Path) -> Result<Self> {
        let format = Format::of(path);
        let reader = match format {
            Format::Csv => Reader::Csv(CsvReader::open(path)?),
            Format::Parquet => Reader::Parquet(ParquetReader::open(path)?),
            Format::Npy => Reader::Npy(NpyReader::open(path)?),
        };
        let header = match &reader {
            Reader::Csv(r) => r.header().to_vec(),
            Reader::Parquet(r) => r.header().to_vec(),
            Reader::Npy(r) => r.header().to_vec(),
        };
        let t = Table {
            path: path.to_path_buf(),
            format,
            header,
            reader,
        };
        t.check_header()?;
        Ok(t)
    }

    fn check_header(&self) -> Result<()> {
        let header = &self.header;
        if header.is_empty() || header.iter().all(String::is_empty) {
            return Err(self.header_error(match self.format {
                Format::Csv => "the file is empty; expected a header row such as `x,y`".into(),
                _ => "the file has no columns".into(),
            }));
        }
        if let Some(i) = header.iter().position(String::is_empty) {
            return Err(self.header_error(format!("header column {} has no name", i + 1)));
        }
        for (i, name) in header.iter().enumerate() {
            if header[..i].contains(name) {
                return Err(self.header_error(format!("column name `{name}` appears twice")));
            }
        }
        Ok(())
    }

    /// A problem with the column names: at line 1 of a CSV file.
    fn header_error(&self, msg: String) -> MdnError {
        match self.format {
            Format::Csv => MdnError::Csv {
                path: self.path.clone(),
                row: 1,
                column: None,
                msg,
            },
            _ => MdnError::Data(format!("{}: {msg}", self.path.display())),
        }
    }

    pub fn column_index(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| match self.format {
                Format::Csv => MdnError::Csv {
                    path: self.path.clone(),
                    row: 1,
                    column: Some(name.to_string()),
                    msg: format!("no such column; the header has: {}", self.header.join(", ")),
                },
                _ => MdnError::Data(format!(
                    "{}: no column `{name}`; the file has: {}",
                    self.path.display(),
                    self.header.join(", ")
                )),
            })
    }

    pub fn column_indices(&self, names: &[String]) -> Result<Vec<usize>> {
        names.iter().map(|n| self.column_index(n)).collect()
    }

    /// Appends up to about `max_rows` rows to `outs`: for each group of
    /// column indices, the row-major values of those columns. Returns the
    /// rows read; 0 only at the end of the file. Every value is finite.
    pub fn read_batch(
        &mut self,
        groups: &[Vec<usize>],
        max_rows: usize,
        outs: &mut [Vec<f32>],
    ) -> Result<usize> {
        match &mut self.reader {
            Reader::Csv(r) => r.read_batch(groups, max_rows, outs),
            Reader::Parquet(r) => r.read_batch(groups, max_rows, outs),
            Reader::Npy(r) => r.read_batch(groups, max_rows, outs),
        }
    }

    /// Rows in the file when its format says so up front.
    fn known_rows(&self) -> Option<usize> {
        match &self.reader {
            Reader::Csv(_) => None,
            Reader::Parquet(r) => Some(r.rows()),
            Reader::Npy(r) => Some(r.rows()),
        }
    }

    /// The error for a file with a header but no rows.
    pub fn no_rows_error(&self) -> MdnError {
        match self.format {
            Format::Csv => MdnError::Csv {
                path: self.path.clone(),
                row: 2,
                column: None,
                msg: "no data rows after the header".into(),
            },
            _ => MdnError::Data(format!("{}: the file has no rows", self.path.display())),
        }
    }

    /// Every row of the column groups; an error for a file without rows.
    pub fn read_all(&mut self, groups: &[Vec<usize>]) -> Result<Vec<Vec<f32>>> {
        let mut outs: Vec<Vec<f32>> = vec![Vec::new(); groups.len()];
        if let Some(rows) = self.known_rows() {
            for (o, g) in outs.iter_mut().zip(groups) {
                o.reserve_exact(rows * g.len());
            }
        }
        let mut rows = 0;
        let mut reserved = self.known_rows().is_some();
        loop {
            let n = self.read_batch(groups, LOAD_BATCH_ROWS, &mut outs)?;
            if n == 0 {
                break;
            }
            rows += n;
            // A CSV file's row count is guessed once from its first batch,
            // so the buffers grow once instead of doubling.
            if let (false, Reader::Csv(r)) = (reserved, &self.reader) {
                reserved = true;
                if let Some(total) = r.size_hint(rows, r.consumed()) {
                    for (o, g) in outs.iter_mut().zip(groups) {
                        o.reserve_exact(total.saturating_sub(rows) * g.len());
                    }
                }
            }
        }
        if rows == 0 {
            return Err(self.no_rows_error());
        }
        for o in &mut outs {
            o.shrink_to_fit();
        }
        Ok(outs)
    }
}

/// Which columns are inputs and which targets; `None` means the defaults
/// (all but the last / the last).
#[derive(Clone, Debug, Default)]
pub struct ColumnChoice {
    pub input: Option<Vec<String>>,
    pub target: Option<Vec<String>>,
}

impl ColumnChoice {
    /// Parses `--input a,b` / `--target c` as given on the command line.
    pub fn from_flags(input: Option<&str>, target: Option<&str>) -> Self {
        let split = |s: &str| s.split(',').map(|p| p.trim().to_string()).collect();
        ColumnChoice {
            input: input.map(split),
            target: target.map(split),
        }
    }

    /// The input and target column names of a file with this header.
    pub fn resolve(&self, path: &Path, header: &[String]) -> Result<(Vec<String>, Vec<String>)> {
        let target = match &self.target {
            Some(t) => t.clone(),
            None => vec![header.last().cloned().unwrap_or_default()],
        };
        let input = match &self.input {
            Some(i) => i.clone(),
            None => header
                .iter()
                .filter(|h| !target.contains(h))
                .cloned()
                .collect(),
        };
        if input.is_empty() {
            return Err(MdnError::Data(format!(
                "{}: no input columns (the file has only `{}`); a dataset needs an input and a target column",
                path.display(),
                header.join(",")
            )));
        }
        for (what, cols) in [("input", &input), ("target", &target)] {
            if let Some((_, c)) = cols
                .iter()
                .enumerate()
                .find(|(i, c)| cols[..*i].contains(c))
            {
                return Err(MdnError::Config(format!(
                    "column `{c}` is listed twice among the {what} columns"
                )));
            }
        }
        if let Some(c) = input.iter().find(|c| target.contains(c)) {
            return Err(MdnError::Config(format!(
                "column `{c}` is both an input and a target"
            )));
        }
        Ok((input, target))
    }
}

/// Reads a training or evaluation set from a CSV, Parquet or NPY file.
pub fn load_dataset(path: &Path, columns: &ColumnChoice) -> Result<Dataset> {
    let mut table = Table::open(path)?;
    let (input, target) = columns.resolve(path, &table.header)?;
    let groups = vec![
        table.column_indices(&input)?,
        table.column_indices(&target)?,
    ];
    let mut outs = table.read_all(&groups)?;
    let targets = outs.pop().expect("two groups");
    let inputs = outs.pop().expect("two groups");
    Dataset::new(inputs, targets, input, target)
}

/// Reads the named input columns only (for `predict` and `sample`).
pub fn load_inputs(path: &Path, names: &[String]) -> Result<Vec<f32>> {
    let mut table = Table::open(path)?;
    let groups = vec![table.column_indices(names)?];
    Ok(table.read_all(&groups)?.pop().expect("one group"))
}
