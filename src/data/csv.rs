//! CSV input and output. A header row is required; columns are picked by
//! name, and every problem is reported with the file, line and column.
//!
//! The reader parses bytes, never a `String` per cell, and only the columns
//! asked for. The text is read in blocks of a few megabytes, cut at
//! newlines, and each block is parsed on all cores straight into `f32`.
//! A quoted field may hold a comma or a newline, so from the first line
//! holding a `"` on, the file is read by one sequential `csv` reader.

use std::fs::File;
use std::io::{Chain, Cursor, Read};
use std::path::{Path, PathBuf};

use ::csv::{ByteRecord, ReaderBuilder, Trim};
use rayon::prelude::*;

use crate::error::{MdnError, Result};

pub use super::table::{ColumnChoice, load_dataset, load_inputs};

/// Text read per batch: megabytes for every core to parse, and never the
/// whole file at once.
const BLOCK_BYTES: usize = 8 << 20;
/// The smallest piece of a block handed to one core.
const MIN_PIECE_BYTES: usize = 256 << 10;

type Rest = Chain<Cursor<Vec<u8>>, File>;

/// A CSV file being read: its header, and the text not yet parsed.
pub struct CsvReader {
    path: PathBuf,
    header: Vec<String>,
    file: Option<File>,
    buf: Vec<u8>,
    /// Where the unparsed text starts in `buf`.
    start: usize,
    eof: bool,
    /// The file's line number of `buf[start]`.
    line: usize,
    /// Set from the first line holding a `"` on.
    seq: Option<Sequential>,
    /// Bytes of text parsed in blocks so far.
    parsed: usize,
}

struct Sequential {
    reader: ::csv::Reader<Rest>,
    /// The file's line number of the reader's first line.
    first_line: usize,
    record: ByteRecord,
}

fn builder(has_headers: bool) -> ReaderBuilder {
    let mut b = ReaderBuilder::new();
    b.has_headers(has_headers).flexible(true).trim(Trim::All);
    b
}

/// A cell error within a block, before its line is known in the file.
struct CellError {
    /// 1-based line within the block.
    line: usize,
    column: Option<usize>,
    msg: String,
}

impl CsvReader {
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| MdnError::io(path, e))?;
        let mut buf = Vec::new();
        let mut eof = false;
        // Up to the end of the first record: the first newline after a
        // byte that is not a line ending.
        let header_end = loop {
            let first = buf.iter().position(|&b| b != b'\n' && b != b'\r');
            if let Some(end) =
                first.and_then(|f| memchr::memchr(b'\n', &buf[f..]).map(|n| f + n + 1))
            {
                break end;
            }
            if eof {
                break buf.len();
            }
            eof = fill(&mut file, &mut buf, 64 << 10).map_err(|e| MdnError::io(path, e))?;
        };
        let head = &buf[..header_end];
        // A quote, or a lone `\r` ending records inside this line: the
        // header is read by a sequential reader, and so is the rest.
        let bare_cr = head
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\r' && head.get(i + 1).is_some_and(|&n| n != b'\n'));
        if head.contains(&b'"') || bare_cr {
            let mut reader = builder(true).from_reader(Cursor::new(buf).chain(file));
            let header = reader
                .byte_headers()
                .map_err(|e| csv_error(path, 1, e))?
                .clone();
            let header = header_strings(path, &header)?;
            return Ok(CsvReader {
                path: path.to_path_buf(),
                header,
                file: None,
                buf: Vec::new(),
                start: 0,
                eof: true,
                line: 0,
                seq: Some(Sequential {
                    reader,
                    first_line: 1,
                    record: ByteRecord::new(),
                }),
                parsed: 0,
            });
        }
        let mut reader = builder(true).from_reader(head);
        let header = reader
            .byte_headers()
            .map_err(|e| csv_error(path, 1, e))?
            .clone();
        let header = header_strings(path, &header)?;
        let line = 1 + memchr::memchr_iter(b'\n', head).count();
        Ok(CsvReader {
            path: path.to_path_buf(),
            header,
            file: Some(file),
            buf,
            start: header_end,
            eof,
            line,
            seq: None,
            parsed: header_end,
        })
    }

    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// A guess of the rows left, from the file's size and the text read so
    /// far, for reserving memory once instead of doubling.
    pub fn size_hint(&self, rows_read: usize, bytes_read: usize) -> Option<usize> {
        let len = self.file.as_ref()?.metadata().ok()?.len() as usize;
        (rows_read > 0 && bytes_read > 0)
            .then(|| ((len as f64 / bytes_read as f64) * rows_read as f64 * 1.02) as usize)
    }

    /// Bytes of text parsed so far (of the parallel part of the file).
    pub fn consumed(&self) -> usize {
        self.parsed
    }

    /// Appends up to about `max_rows` rows to `outs`: for each group of
    /// column indices, the row-major values of those columns. Returns the
    /// rows read; 0 only at the end of the file.
    pub fn read_batch(
        &mut self,
        groups: &[Vec<usize>],
        max_rows: usize,
        outs: &mut [Vec<f32>],
    ) -> Result<usize> {
        let max_rows = max_rows.max(1);
        loop {
            if let Some(seq) = &mut self.seq {
                return read_sequential(&self.path, &self.header, seq, groups, max_rows, outs);
            }
            let cut = loop {
                if let Some(cut) = find_cut(&self.buf[self.start..], max_rows, self.eof) {
                    break cut;
                }
                self.refill()?;
            };
            let text = &self.buf[self.start..self.start + cut];
            let quoted_at = memchr::memchr(b'"', text)
                .map(|q| memchr::memrchr(b'\n', &text[..q]).map_or(0, |n| n + 1));
            let safe = quoted_at.unwrap_or(cut);
            if safe > 0 {
                // Blank lines only read as no rows: go on to the next.
                match self.parse_parallel(safe, groups, outs)? {
                    0 => continue,
                    n => return Ok(n),
                }
            }
            if cut == 0 {
                return Ok(0);
            }
            // The next line holds a quote: the rest of the file goes to a
            // sequential reader, starting with the text in hand.
            let rest = self.buf.split_off(self.start);
            self.buf = Vec::new();
            self.start = 0;
            let file = self.file.take().expect("the file is open until then");
            self.seq = Some(Sequential {
                reader: builder(false).from_reader(Cursor::new(rest).chain(file)),
                first_line: self.line,
                record: ByteRecord::new(),
            });
        }
    }

    /// Drops the parsed text and reads another block after the rest.
    fn refill(&mut self) -> Result<()> {
        self.buf.drain(..self.start);
        self.start = 0;
        let file = self
            .file
            .as_mut()
            .expect("the file is open while parsing in blocks");
        self.eof =
            fill(file, &mut self.buf, BLOCK_BYTES).map_err(|e| MdnError::io(&self.path, e))?;
        Ok(())
    }

    fn parse_parallel(
        &mut self,
        len: usize,
        groups: &[Vec<usize>],
        outs: &mut [Vec<f32>],
    ) -> Result<usize> {
        let text = &self.buf[self.start..self.start + len];
        let pieces = split_at_newlines(text, rayon::current_num_threads() * 2);
        let width = self.header.len();
        let parsed: Vec<_> = pieces
            .par_iter()
            .map(|p| parse_block(p, width, groups))
            .collect();
        let mut line = self.line;
        let mut rows = 0;
        for (piece, result) in pieces.iter().zip(parsed) {
            match result {
                Ok((n, values)) => {
                    for (out, v) in outs.iter_mut().zip(values) {
                        out.extend_from_slice(&v);
                    }
                    rows += n;
                }
                Err(e) => {
                    return Err(MdnError::Csv {
                        path: self.path.clone(),
                        row: line + e.line - 1,
                        column: e.column.map(|c| self.header[c].clone()),
                        msg: e.msg,
                    });
                }
            }
            line += memchr::memchr_iter(b'\n', piece).count();
        }
        self.line = line;
        self.start += len;
        self.parsed += len;
        Ok(rows)
    }
}

/// Reads at least `want` more bytes unless the file ends first; true at
/// the end of the file.
fn fill(file: &mut File, buf: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    let goal = buf.len() + want;
    buf.reserve(want);
    while buf.len() < goal {
        let n = file
            .by_ref()
            .take((goal - buf.len()) as u64)
            .read_to_end(buf)?;
        if n == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Where the next batch of `text` ends: after `max_rows` newlines, or
/// after the last newline of a full block, or at the end of the file.
/// `None` when more text must be read first.
fn find_cut(text: &[u8], max_rows: usize, eof: bool) -> Option<usize> {
    if let Some(n) = memchr::memchr_iter(b'\n', text).nth(max_rows - 1) {
        return Some(n + 1);
    }
    if eof {
        return Some(text.len());
    }
    if text.len() >= BLOCK_BYTES {
        return memchr::memrchr(b'\n', text).map(|n| n + 1);
    }
    None
}

/// Up to `parts` pieces of `text`, each ending at a newline (the last at
/// the end of the text).
fn split_at_newlines(text: &[u8], parts: usize) -> Vec<&[u8]> {
    let parts = parts.clamp(1, (text.len() / MIN_PIECE_BYTES).max(1));
    let mut pieces = Vec::with_capacity(parts);
    let mut from = 0;
    for i in 1..parts {
        let aim = (text.len() * i / parts).max(from);
        let Some(n) = memchr::memchr(b'\n', &text[aim..]) else {
            break;
        };
        let to = aim + n + 1;
        pieces.push(&text[from..to]);
        from = to;
    }
    pieces.push(&text[from..]);
    pieces
}

/// Parses whole lines of unquoted CSV: the rows read, and per group the
/// values of its columns.
fn parse_block(
    text: &[u8],
    width: usize,
    groups: &[Vec<usize>],
) -> std::result::Result<(usize, Vec<Vec<f32>>), CellError> {
    let lines_guess = text.len() / 16 + 1;
    let mut outs: Vec<Vec<f32>> = groups
        .iter()
        .map(|g| Vec::with_capacity(lines_guess * g.len()))
        .collect();
    let mut reader = builder(false).from_reader(text);
    let mut record = ByteRecord::new();
    let mut rows = 0;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                return Err(CellError {
                    line: e.position().map_or(1, |p| p.line() as usize),
                    column: None,
                    msg: e.to_string(),
                });
            }
        }
        // Counted from the record's byte offset: the csv crate's own line
        // count skips some blank lines.
        let line = || {
            // The offset is where the previous record ended: blank
            // lines before this one are counted too.
            let mut at = record.position().map_or(0, |p| p.byte() as usize);
            while at < text.len() && matches!(text[at], b'\n' | b'\r') {
                at += 1;
            }
            1 + memchr::memchr_iter(b'\n', &text[..at]).count()
        };
        if let Err((column, msg)) = take_row(&record, width, groups, &mut outs) {
            return Err(CellError {
                line: line(),
                column,
                msg,
            });
        }
        rows += 1;
    }
    Ok((rows, outs))
}

/// Checks one record's field count and appends its chosen cells.
fn take_row(
    record: &ByteRecord,
    width: usize,
    groups: &[Vec<usize>],
    outs: &mut [Vec<f32>],
) -> std::result::Result<(), (Option<usize>, String)> {
    if record.len() != width {
        return Err((
            None,
            format!(
                "this row has {} fields but the header has {width}",
                record.len()
            ),
        ));
    }
    for (g, out) in groups.iter().zip(outs.iter_mut()) {
        for &c in g {
            out.push(parse_cell(&record[c]).map_err(|msg| (Some(c), msg))?);
        }
    }
    Ok(())
}

/// One cell as a finite `f32`, rounded exactly as `str::parse` rounds.
pub fn parse_cell(cell: &[u8]) -> std::result::Result<f32, String> {
    match fast_float2::parse::<f32, _>(cell) {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "`{}` is not a finite number",
            String::from_utf8_lossy(cell)
        )),
        Err(_) => match std::str::from_utf8(cell) {
            Ok(s) => Err(format!("`{s}` is not a number")),
            Err(_) => Err("the file is not UTF-8 text".into()),
        },
    }
}

fn read_sequential(
    path: &Path,
    header: &[String],
    seq: &mut Sequential,
    groups: &[Vec<usize>],
    max_rows: usize,
    outs: &mut [Vec<f32>],
) -> Result<usize> {
    let offset = seq.first_line - 1;
    let mut rows = 0;
    while rows < max_rows {
        match seq.reader.read_byte_record(&mut seq.record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, offset, e)),
        }
        if let Err((column, msg)) = take_row(&seq.record, header.len(), groups, outs) {
            return Err(MdnError::Csv {
                path: path.to_path_buf(),
                row: offset + seq.record.position().map_or(0, |p| p.line() as usize),
                column: column.map(|c| header[c].clone()),
                msg,
            });
        }
        rows += 1;
    }
    Ok(rows)
}

fn header_strings(path: &Path, record: &ByteRecord) -> Result<Vec<String>> {
    record
        .iter()
        .map(|f| {
            std::str::from_utf8(f)
                .map(str::to_string)
                .map_err(|_| MdnError::Csv {
                    path: path.to_path_buf(),
                    row: 1,
                    column: None,
                    msg: "the header is not UTF-8 text".into(),
                })
        })
        .collect()
}

/// A `csv` error with its line in the file (`offset` lines before the
/// reader's first).
fn csv_error(path: &Path, offset: usize, e: ::csv::Error) -> MdnError {
    let row = offset + e.position().map_or(0, |p| p.line() as usize);
    let msg = match e.kind() {
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

/// CSV text of a header and row-major values, numbers written in full
/// precision (Rust's shortest round-trip form).
pub fn to_csv_string(header: &[String], values: &[f32]) -> String {
    let mut out = header.join(",").into_bytes();
    out.push(b'\n');
    out.extend_from_slice(&csv_rows(header.len(), values));
    String::from_utf8(out).expect("column names are text and numbers ASCII")
}

/// The rows of [`to_csv_string`] without the header, as bytes, so a file
/// can be written a chunk at a time with the same bytes.
pub fn csv_rows(width: usize, values: &[f32]) -> Vec<u8> {
    if width == 0 {
        return Vec::new();
    }
    // Formatting floats is most of `predict` on big inputs: rows are
    // formatted in parallel blocks, then joined in order (same bytes).
    const ROWS_PER_BLOCK: usize = 16_384;
    let blocks: Vec<Vec<u8>> = values
        .par_chunks(width * ROWS_PER_BLOCK)
        .map(|block| {
            let mut text = Vec::with_capacity(block.len() * 12);
            push_csv_rows(&mut text, width, block);
            text
        })
        .collect();
    blocks.concat()
}

/// Appends `values` as CSV rows of `width` numbers, on this thread.
pub fn push_csv_rows(out: &mut Vec<u8>, width: usize, values: &[f32]) {
    for row in values.chunks_exact(width) {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_shortest(out, *v);
        }
        out.push(b'\n');
    }
}

/// Whether `v`'s shortest digits can be a tie between two candidates,
/// where std rounds half up and the fast formatter half to even. A tie needs the exact
/// decimal value of `v` to have one significant digit more than the
/// shortest form, so at most 10 for an f32. `v = m·2^e` with `m` odd has
/// exactly the significant digits of `m·2^e` (e ≥ 0) or `m·5^-e` (e < 0),
/// never a trailing zero: only values with fewer than 10¹⁰ of those can tie
/// (0.5, 3.0, 2⁻¹²…), and they go through std.
fn may_tie(v: f32) -> bool {
    let bits = v.to_bits();
    let exp_bits = ((bits >> 23) & 0xff) as i32;
    let frac = (bits & 0x7f_ffff) as u64;
    let (mut m, mut e) = if exp_bits == 0 {
        (frac, -149)
    } else {
        (frac | 0x80_0000, exp_bits - 150)
    };
    if m == 0 {
        return true;
    }
    let z = m.trailing_zeros();
    m >>= z;
    e += z as i32;
    const LIMIT: u64 = 10_000_000_000;
    if e >= 0 {
        e < 34 && m << e < LIMIT
    } else {
        (0..-e)
            .try_fold(m, |acc, _| acc.checked_mul(5).filter(|&x| x < LIMIT))
            .is_some()
    }
}

/// Appends `v` exactly as `format!("{v}")` writes it (the shortest digits
/// that read back to `v`, positional, no exponent), several times faster:
/// the digits come from `zmij` (Schubfach; shortest and closest, as std's
/// are, and ~2× ryu's speed here). Where it writes positional notation
/// (nearly every value `predict` writes) its text is std's but for the
/// ".0" it gives whole numbers; elsewhere only the layout is redone here.
/// Non-finite values and possible ties go through std. The test below holds
/// it to std on millions of values.
pub fn push_shortest(out: &mut Vec<u8>, v: f32) {
    if !v.is_finite() || may_tie(v) {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{v}");
        return;
    }
    let mut buf = zmij::Buffer::new();
    let text = buf.format_finite(v).as_bytes();
    // Inside zmij's positional range for f32 (10⁻⁶ ≤ |v| < 10¹³, kept
    // clear of its edges) the text needs no search for an exponent: reading
    // back the bytes just written stalls on store forwarding, and this is
    // the hot path. The test below checks every decade across the range.
    let a = v.abs();
    if (1e-5..1e12).contains(&a) {
        let whole = a == a.trunc();
        out.extend_from_slice(&text[..text.len() - 2 * whole as usize]);
        return;
    }
    let Some(e_at) = text.iter().position(|&c| c == b'e') else {
        out.extend_from_slice(text.strip_suffix(b".0").unwrap_or(text));
        return;
    };
    let (neg, mantissa) = match text[..e_at].strip_prefix(b"-") {
        Some(t) => (true, t),
        None => (false, &text[..e_at]),
    };
    let exp: i32 = std::str::from_utf8(&text[e_at + 1..])
        .ok()
        .and_then(|e| e.parse().ok())
        .expect("zmij writes an integer exponent");
    // The mantissa's digits (at most 9, and "0." or ".0"), no allocation.
    let mut digs = [0u8; 24];
    let mut n = 0;
    let mut whole = mantissa.len();
    for (i, &c) in mantissa.iter().enumerate() {
        if c == b'.' {
            whole = i;
        } else {
            digs[n] = c;
            n += 1;
        }
    }
    // digits × 10^(point − len): strip zeros on both ends.
    let mut point = whole as i32 + exp;
    let mut start = 0;
    while start < n && digs[start] == b'0' {
        start += 1;
        point -= 1;
    }
    let mut end = n;
    while end > start && digs[end - 1] == b'0' {
        end -= 1;
    }
    let digits = &digs[start..end];
    if neg {
        out.push(b'-');
    }
    if digits.is_empty() {
        out.push(b'0');
        return;
    }
    let len = digits.len() as i32;
    if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-point) as usize));
        out.extend_from_slice(digits);
    } else if point >= len {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', (point - len) as usize));
    } else {
        out.extend_from_slice(&digits[..point as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[point as usize..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// `push_shortest` writes what `{}` writes: every power of two and its
    /// neighbours, the edges of f32, and 2 million values spread over every
    /// exponent.
    #[test]
    fn shortest_floats_are_written_as_std_writes_them() {
        let check = |v: f32| {
            let mut got = Vec::new();
            push_shortest(&mut got, v);
            assert_eq!(got, format!("{v}").as_bytes(), "bits {:#010x}", v.to_bits());
        };
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            f32::EPSILON,
            1e-45,
            123_456_790.0,
            f32::NAN,
            f32::INFINITY,
        ] {
            check(v);
        }
        for e in 0..255u32 {
            let base = e << 23;
            for m in [0, 1, 2, 0x3f_ffff, 0x40_0000, 0x7f_fffe, 0x7f_ffff] {
                check(f32::from_bits(base | m));
                check(-f32::from_bits(base | m));
            }
        }
        let mut x = 0x2545_f491u32;
        for _ in 0..2_000_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            check(f32::from_bits(x));
        }
        // Where zmij writes positional text (the fast path here), and
        // the whole numbers it writes with ".0", densely.
        for p in -8..15 {
            let scale = 10f32.powi(p);
            for _ in 0..40_000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let u = (x >> 8) as f32 / (1u32 << 24) as f32;
                check(u * scale);
                check(-(u * scale).round());
            }
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn err_text(text: &str, cols: &ColumnChoice) -> String {
        let f = file(text);
        load_dataset(f.path(), cols).unwrap_err().to_string()
    }

    fn read_ab(text: &str) -> Vec<f32> {
        let f = file(text);
        let d = load_dataset(f.path(), &ColumnChoice::from_flags(Some("a"), Some("b"))).unwrap();
        d.inputs
            .iter()
            .zip(&d.targets)
            .flat_map(|(a, b)| [*a, *b])
            .collect()
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
        let e = err_text("x,x\n1,2\n", &none);
        assert!(e.contains("line 1") && e.contains("twice"), "{e}");
        // Blank lines are skipped but counted; quoted text keeps its lines.
        let e = err_text("x,y\n\n1,2\n\n3,q\n", &none);
        assert!(e.contains("line 5") && e.contains("`q`"), "{e}");
        let e = err_text("x,y\n1,2\n\"3\",\"a\nb\"\n4,z\n", &none);
        assert!(e.contains("line 3") && e.contains("a\nb"), "{e}");
        let e = err_text("x,y\n1,2\n\"3\",\"4\n\"\n4,5,6\n", &none);
        assert!(e.contains("line 5") && e.contains("3 fields"), "{e}");
        let e = err_text("\"x\",y\n1,2\n3,w\n", &none);
        assert!(e.contains("line 3") && e.contains("`w`"), "{e}");
    }

    #[test]
    fn line_numbers_hold_across_blocks_and_pieces() {
        // Far more text than one piece, so several cores parse it, and a
        // bad cell near the end.
        let rows = 200_000;
        let mut text = String::from("a,b\n");
        for i in 0..rows {
            text.push_str(&format!("{i},{}\n", i as f32 * 0.25));
        }
        text.push_str("1,oops\n");
        let e = err_text(&text, &ColumnChoice::default());
        assert!(
            e.contains(&format!("line {}", rows + 2)) && e.contains("oops"),
            "{e}"
        );
    }

    #[test]
    fn quotes_crlf_and_blank_lines_read_as_the_csv_crate_does() {
        let plain = read_ab("a,b\n1,2\n3,4\n");
        assert_eq!(plain, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(read_ab("a,b\r\n1,2\r\n\r\n3,4\r\n"), plain);
        assert_eq!(read_ab("a,b\n1,2\n\"3\",\" 4 \"\n"), plain);
        assert_eq!(read_ab("\"a\",\"b\"\n1,2\n3,4"), plain);
        assert_eq!(read_ab("\u{feff}a,b\n 1 , 2\n3,4\n"), plain);
        assert_eq!(read_ab("a,b\r1,2\r3,4\r"), plain);
        assert_eq!(read_ab("\n\na,b\n1,2\n3,4\n"), plain);
    }

    #[test]
    fn cells_parse_as_str_parse_does() {
        for s in [
            "1",
            "-0",
            "+1.5",
            ".5",
            "5.",
            "1e-45",
            "3.4028235e38",
            "1e39",
            "inf",
            "-Infinity",
            "NaN",
            "nan",
            "0x10",
            "1e",
            "",
            " ",
            "1_0",
            "1.0f",
            "--1",
            "0.1",
            "16777217",
            "1.00000005960464477539",
            "7.0e-46",
        ] {
            let want = s.parse::<f32>().ok().filter(|v| v.is_finite());
            let got = parse_cell(s.as_bytes()).ok();
            assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "`{s}`");
        }
    }

    #[test]
    fn csv_text_round_trips() {
        let values = vec![0.1, -2.5e-7, 3.0, 4.0];
        let text = to_csv_string(&["a".into(), "b".into()], &values);
        assert_eq!(read_ab(&text), values);
        // Several parallel blocks of rows come back in order.
        let values: Vec<f32> = (0..100_000).map(|i| i as f32 * 0.5 - 7.25).collect();
        let text = to_csv_string(&["a".into(), "b".into()], &values);
        assert_eq!(read_ab(&text), values);
    }

    #[test]
    fn batches_of_a_few_rows_give_the_whole() {
        let values: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 7.25).collect();
        let mut text = to_csv_string(&["a".into(), "b".into()], &values);
        let mid = text[text.len() / 2..].find('\n').unwrap() + text.len() / 2;
        text.insert(mid, '\n'); // a blank line mid-file
        let f = file(&text);
        for max in [1, 7, 1000, 5000] {
            let mut r = CsvReader::open(f.path()).unwrap();
            let mut out = vec![Vec::new()];
            let groups = vec![vec![0, 1]];
            while r.read_batch(&groups, max, &mut out).unwrap() > 0 {}
            assert_eq!(out[0], values, "batches of {max}");
        }
    }
}
