//! Parquet input: the top-level numeric columns (FLOAT, DOUBLE, INT32,
//! INT64, nullable ones too as long as no value is null), named by the
//! schema, read a row group's column chunks at a time through the
//! `parquet` crate's column readers.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::basic::{LogicalType, Type as Physical};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{DataType, DoubleType, FloatType, Int32Type, Int64Type};
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::error::{MdnError, Result};

/// One selected column's reader in the current row group.
enum Column {
    F32(ColumnReaderImpl<FloatType>),
    F64(ColumnReaderImpl<DoubleType>),
    I32(ColumnReaderImpl<Int32Type>, bool),
    I64(ColumnReaderImpl<Int64Type>, bool),
}

pub struct ParquetReader {
    path: PathBuf,
    file: SerializedFileReader<File>,
    header: Vec<String>,
    /// The leaf column (in the file's schema) of each header column.
    leaves: Vec<usize>,
    rows: usize,
    /// Rows read so far.
    done: usize,
    next_group: usize,
    /// Rows left in the current row group, and its selected columns by
    /// header index.
    left: usize,
    /// (header index, reader, max definition level)
    open: Vec<(usize, Column, i16)>,
    def: Vec<i16>,
}

impl ParquetReader {
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| MdnError::io(path, e))?;
        let file = SerializedFileReader::new(f).map_err(|e| {
            MdnError::Data(format!(
                "{}: not a readable Parquet file: {e}",
                path.display()
            ))
        })?;
        let meta = file.metadata().file_metadata();
        let schema = meta.schema_descr();
        let (mut header, mut leaves) = (Vec::new(), Vec::new());
        for (i, col) in schema.columns().iter().enumerate() {
            // Top-level columns only: a nested or repeated field has no
            // single value per row.
            if col.path().parts().len() == 1 && col.max_rep_level() == 0 {
                header.push(col.name().to_string());
                leaves.push(i);
            }
        }
        let rows = usize::try_from(meta.num_rows()).unwrap_or(0);
        Ok(ParquetReader {
            path: path.to_path_buf(),
            file,
            header,
            leaves,
            rows,
            done: 0,
            next_group: 0,
            left: 0,
            open: Vec::new(),
            def: Vec::new(),
        })
    }

    pub fn header(&self) -> &[String] {
        &self.header
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    fn error(&self, column: usize, msg: impl std::fmt::Display) -> MdnError {
        MdnError::Data(format!(
            "{}: column `{}`: {msg}",
            self.path.display(),
            self.header[column]
        ))
    }

    /// Opens the selected columns of the next row group with rows.
    fn next_row_group(&mut self, columns: &[usize]) -> Result<bool> {
        let groups = self.file.metadata().num_row_groups();
        while self.next_group < groups {
            let g = self.next_group;
            self.next_group += 1;
            let rg = self.file.get_row_group(g).map_err(|e| self.file_error(e))?;
            let n = usize::try_from(rg.metadata().num_rows()).unwrap_or(0);
            if n == 0 {
                continue;
            }
            let mut open = Vec::with_capacity(columns.len());
            for &c in columns {
                let leaf = self.leaves[c];
                let descr = rg.metadata().column(leaf).column_descr();
                let unsigned = match descr.logical_type_ref() {
                    None => false,
                    Some(LogicalType::Integer { is_signed, .. }) => !is_signed,
                    Some(other) => {
                        return Err(
                            self.error(c, format!("holds {other:?} values, not plain numbers"))
                        );
                    }
                };
                let physical = descr.physical_type();
                let max_def = descr.max_def_level();
                let reader = rg.get_column_reader(leaf).map_err(|e| self.file_error(e))?;
                let col = match (physical, reader) {
                    (_, ColumnReader::FloatColumnReader(r)) => Column::F32(r),
                    (_, ColumnReader::DoubleColumnReader(r)) => Column::F64(r),
                    (_, ColumnReader::Int32ColumnReader(r)) => Column::I32(r, unsigned),
                    (_, ColumnReader::Int64ColumnReader(r)) => Column::I64(r, unsigned),
                    (p, _) => return Err(self.error(c, not_numbers(p))),
                };
                open.push((c, col, max_def));
            }
            self.open = open;
            self.left = n;
            return Ok(true);
        }
        Ok(false)
    }

    fn file_error(&self, e: parquet::errors::ParquetError) -> MdnError {
        MdnError::Data(format!(
            "{}: a damaged Parquet file: {e}",
            self.path.display()
        ))
    }

    pub fn read_batch(
        &mut self,
        groups: &[Vec<usize>],
        max_rows: usize,
        outs: &mut [Vec<f32>],
    ) -> Result<usize> {
        let mut columns: Vec<usize> = groups.iter().flatten().copied().collect();
        columns.sort_unstable();
        columns.dedup();
        if self.left == 0 && !self.next_row_group(&columns)? {
            return Ok(0);
        }
        let n = self.left.min(max_rows.max(1));
        // Each selected column's next `n` values, then interleaved row-major.
        let mut values: Vec<(usize, Vec<f32>)> = Vec::with_capacity(self.open.len());
        let mut open = std::mem::take(&mut self.open);
        for (c, col, max_def) in &mut open {
            let (c, d) = (*c, *max_def);
            let v = match col {
                Column::F32(r) => self.read_column(c, d, r, n, |v| v)?,
                Column::F64(r) => self.read_column(c, d, r, n, |v| v as f32)?,
                Column::I32(r, false) => self.read_column(c, d, r, n, |v| v as f32)?,
                Column::I32(r, true) => self.read_column(c, d, r, n, |v| v as u32 as f32)?,
                Column::I64(r, false) => self.read_column(c, d, r, n, |v| v as f32)?,
                Column::I64(r, true) => self.read_column(c, d, r, n, |v| v as u64 as f32)?,
            };
            values.push((c, v));
        }
        self.open = open;
        let of = |c: usize| &values.iter().find(|(i, _)| *i == c).expect("opened").1;
        for (g, out) in groups.iter().zip(outs.iter_mut()) {
            let cols: Vec<&Vec<f32>> = g.iter().map(|&c| of(c)).collect();
            out.reserve(n * g.len());
            for r in 0..n {
                out.extend(cols.iter().map(|v| v[r]));
            }
        }
        self.left -= n;
        self.done += n;
        Ok(n)
    }

    /// The next `n` values of one column as finite `f32`s.
    fn read_column<T: DataType>(
        &mut self,
        column: usize,
        max_def: i16,
        reader: &mut ColumnReaderImpl<T>,
        n: usize,
        to_f32: impl Fn(T::T) -> f32,
    ) -> Result<Vec<f32>>
    where
        T::T: Copy,
    {
        let mut raw: Vec<T::T> = Vec::with_capacity(n);
        self.def.clear();
        let nullable = max_def > 0;
        let (records, got, _) = reader
            .read_records(n, nullable.then_some(&mut self.def), None, &mut raw)
            .map_err(|e| self.file_error(e))?;
        if records < n {
            return Err(self.error(
                column,
                format!("the file is truncated: {records} of {n} rows in a row group"),
            ));
        }
        if got < n {
            let r = self.def.iter().position(|&d| d < max_def).unwrap_or(0);
            return Err(self.error(
                column,
                format!(
                    "row {} is empty (null); every row needs a number",
                    self.done + r + 1
                ),
            ));
        }
        let out: Vec<f32> = raw.into_iter().map(to_f32).collect();
        if let Some(r) = out.iter().position(|v| !v.is_finite()) {
            return Err(self.error(
                column,
                format!(
                    "row {}: {} is not a finite number",
                    self.done + r + 1,
                    out[r]
                ),
            ));
        }
        Ok(out)
    }
}

fn not_numbers(p: Physical) -> String {
    let what = match p {
        Physical::BOOLEAN => "true/false values",
        Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY => "text or bytes",
        Physical::INT96 => "timestamps",
        _ => "values",
    };
    format!("holds {what} ({p}), not numbers; mdn reads float and integer columns")
}
