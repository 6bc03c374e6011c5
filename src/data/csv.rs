//! CSV input and output. A header row is required; columns are picked by
//! name, and every problem is reported with the file, line and column.

use std::path::{Path, PathBuf};

use super::Dataset;
use crate::error::{MdnError, Result};

/// A CSV file read as text, parsed into numbers only for the columns used.
pub struct CsvTable {
    pub path: PathBuf,
    pub header: Vec<String>,
    records: Vec<::csv::StringRecord>,
}

impl CsvTable {
    pub fn read(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| MdnError::io(path, e))?;
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(::csv::Trim::All)
            .from_reader(std::io::BufReader::new(file));
        let err = |row: usize, msg: String| MdnError::Csv {
            path: path.to_path_buf(),
            row,
            column: None,
            msg,
        };
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| csv_error(path, e))?
            .iter()
            .map(str::to_string)
            .collect();
        if header.is_empty() || header.iter().all(String::is_empty) {
            return Err(err(
                1,
                "the file is empty; expected a header row such as `x,y`".into(),
            ));
        }
        if let Some(i) = header.iter().position(String::is_empty) {
            return Err(err(1, format!("header column {} has no name", i + 1)));
        }
        for (i, name) in header.iter().enumerate() {
            if header[..i].contains(name) {
                return Err(err(1, format!("column name `{name}` appears twice")));
            }
        }
        let records = reader
            .records()
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| csv_error(path, e))?;
        if records.is_empty() {
            return Err(err(2, "no data rows after the header".into()));
        }
        Ok(CsvTable {
            path: path.to_path_buf(),
            header,
            records,
        })
    }

    pub fn rows(&self) -> usize {
        self.records.len()
    }

    pub fn column_index(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| MdnError::Csv {
                path: self.path.clone(),
                row: 1,
                column: Some(name.to_string()),
                msg: format!("no such column; the header has: {}", self.header.join(", ")),
            })
    }

    /// The named columns as a row-major `[rows, names.len()]` matrix.
    pub fn numeric_columns(&self, names: &[String]) -> Result<Vec<f32>> {
        let idx = names
            .iter()
            .map(|n| self.column_index(n))
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(self.rows() * idx.len());
        for (r, rec) in self.records.iter().enumerate() {
            let line = rec.position().map(|p| p.line() as usize).unwrap_or(r + 2);
            for (&c, name) in idx.iter().zip(names) {
                let cell = rec.get(c).unwrap_or("");
                let bad = |msg: String| MdnError::Csv {
                    path: self.path.clone(),
                    row: line,
                    column: Some(name.clone()),
                    msg,
                };
                let v: f32 = cell
                    .parse()
                    .map_err(|_| bad(format!("`{cell}` is not a number")))?;
                if !v.is_finite() {
                    return Err(bad(format!("`{cell}` is not a finite number")));
                }
                out.push(v);
            }
        }
        Ok(out)
    }
}

fn csv_error(path: &Path, e: ::csv::Error) -> MdnError {
    let row = e.position().map(|p| p.line() as usize).unwrap_or(0);
    let msg = match e.kind() {
        ::csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("this row has {len} fields but the header has {expected_len}"),
        ::csv::ErrorKind::Utf8 { .. } => "the file is not UTF-8 text".to_string(),
        ::csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string(),
    };
    MdnError::Csv {
        path: path.to_path_buf(),
        row,
        column: None,
        msg,
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
}

/// Reads a training or evaluation set.
pub fn load_dataset(path: &Path, columns: &ColumnChoice) -> Result<Dataset> {
    let table = CsvTable::read(path)?;
    let header = &table.header;
    let target = match &columns.target {
        Some(t) => t.clone(),
        None => vec![header.last().cloned().unwrap_or_default()],
    };
    let input = match &columns.input {
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
    let inputs = table.numeric_columns(&input)?;
    let targets = table.numeric_columns(&target)?;
    Dataset::new(inputs, targets, input, target)
}

/// Reads the named input columns only (for `predict` and `sample`).
pub fn load_inputs(path: &Path, names: &[String]) -> Result<Vec<f32>> {
    CsvTable::read(path)?.numeric_columns(names)
}

/// CSV text of a header and row-major values, numbers written in full
/// precision (Rust's shortest round-trip form).
pub fn to_csv_string(header: &[String], values: &[f32]) -> String {
    use rayon::prelude::*;
    use std::fmt::Write;
    let mut out = String::with_capacity(values.len() * 12 + 64);
    out.push_str(&header.join(","));
    out.push('\n');
    if header.is_empty() {
        return out;
    }
    // Formatting floats is most of `predict` on big inputs: rows are
    // formatted in parallel blocks, then joined in order (same bytes).
    const ROWS_PER_BLOCK: usize = 16_384;
    let width = header.len();
    let blocks: Vec<String> = values
        .par_chunks(width * ROWS_PER_BLOCK)
        .map(|block| {
            let mut text = String::with_capacity(block.len() * 12);
            for row in block.chunks_exact(width) {
                for (i, v) in row.iter().enumerate() {
                    if i > 0 {
                        text.push(',');
                    }
                    // Writing to a String cannot fail.
                    let _ = write!(text, "{v}");
                }
                text.push('\n');
            }
            text
        })
        .collect();
    for block in blocks {
        out.push_str(&block);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn err_text(text: &str, cols: &ColumnChoice) -> String {
        let f = file(text);
        load_dataset(f.path(), cols).unwrap_err().to_string()
    }

    #[test]
    fn reads_defaults_and_named_columns() {
        let f = file("a,b,c\n1,2,3\n4,5,6\n");
        let d = load_dataset(f.path(), &ColumnChoice::default()).unwrap();
        assert_eq!(d.input_names, vec!["a", "b"]);
        assert_eq!(d.inputs, vec![1.0, 2.0, 4.0, 5.0]);
        assert_eq!(d.targets, vec![3.0, 6.0]);
        let d = load_dataset(f.path(), &ColumnChoice::from_flags(Some("c"), Some("a,b"))).unwrap();
        assert_eq!(d.inputs, vec![3.0, 6.0]);
        assert_eq!(d.targets, vec![1.0, 2.0, 4.0, 5.0]);
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let none = ColumnChoice::default();
        assert!(err_text("", &none).contains("empty"));
        assert!(err_text("x,y\n", &none).contains("no data rows"));
        let e = err_text("x,y\n1,2\n3,abc\n", &none);
        assert!(
            e.contains("line 3") && e.contains("`y`") && e.contains("abc"),
            "{e}"
        );
        let e = err_text("x,y\n1,NaN\n", &none);
        assert!(e.contains("line 2") && e.contains("finite"), "{e}");
        assert!(err_text("x,y\n1,inf\n", &none).contains("finite"));
        let e = err_text("x,y\n1,2\n3\n", &none);
        assert!(e.contains("line 3") && e.contains("fields"), "{e}");
        let e = err_text("x,y\n1,2\n", &ColumnChoice::from_flags(Some("z"), None));
        assert!(e.contains("`z`") && e.contains("x, y"), "{e}");
        assert!(err_text("y\n1\n", &none).contains("no input columns"));
    }

    #[test]
    fn csv_text_round_trips() {
        let text = to_csv_string(&["a".into(), "b".into()], &[0.1, -2.5e-7, 3.0, 4.0]);
        let f = file(&text);
        let t = CsvTable::read(f.path()).unwrap();
        assert_eq!(
            t.numeric_columns(&["a".into(), "b".into()]).unwrap(),
            vec![0.1, -2.5e-7, 3.0, 4.0]
        );
        // Several parallel blocks of rows come back in order.
        let values: Vec<f32> = (0..100_000).map(|i| i as f32 * 0.5 - 7.25).collect();
        let text = to_csv_string(&["a".into(), "b".into()], &values);
        let f = file(&text);
        let t = CsvTable::read(f.path()).unwrap();
        assert_eq!(
            t.numeric_columns(&["a".into(), "b".into()]).unwrap(),
            values
        );
    }
}
