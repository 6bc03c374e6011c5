//! Loading a data set: 2 million rows of the inverse toy problem as CSV,
//! Parquet (snappy, the pandas default, row groups of 2^20) and NPY (f4, C
//! order), through `load_dataset` as `train --data` does. Throughput is the
//! file's bytes per second.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mdn::data::csv::{ColumnChoice, load_dataset, to_csv_string};
use mdn::data::toy::{ToyProblem, toy_dataset};
use npyz::WriterBuilder;
use parquet::basic::Compression;
use parquet::data_type::FloatType;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

const ROWS: usize = 2_000_000;

fn write_parquet(path: &Path, y: &[f32], x: &[f32]) {
    let schema =
        Arc::new(parse_message_type("message m { required float y; required float x; }").unwrap());
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut w = SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
    for (ys, xs) in y.chunks(1 << 20).zip(x.chunks(1 << 20)) {
        let mut rg = w.next_row_group().unwrap();
        for col in [ys, xs] {
            let mut c = rg.next_column().unwrap().unwrap();
            c.typed::<FloatType>().write_batch(col, None, None).unwrap();
            c.close().unwrap();
        }
        rg.close().unwrap();
    }
    w.close().unwrap();
}

fn write_npy(path: &Path, y: &[f32], x: &[f32]) {
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[y.len() as u64, 2])
        .writer(std::io::BufWriter::new(File::create(path).unwrap()))
        .begin_nd()
        .unwrap();
    w.extend(y.iter().zip(x).flat_map(|(a, b)| [*a, *b]))
        .unwrap();
    w.finish().unwrap();
}

fn load(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let data = toy_dataset(ToyProblem::Inverse, ROWS, 1);
    let header = [data.input_names[0].clone(), data.target_names[0].clone()];
    let values: Vec<f32> = data
        .inputs
        .iter()
        .zip(&data.targets)
        .flat_map(|(a, b)| [*a, *b])
        .collect();
    let files = [
        ("csv", dir.path().join("d.csv")),
        ("parquet", dir.path().join("d.parquet")),
        ("npy", dir.path().join("d.npy")),
    ];
    std::fs::write(&files[0].1, to_csv_string(&header, &values)).unwrap();
    write_parquet(&files[1].1, &data.inputs, &data.targets);
    write_npy(&files[2].1, &data.inputs, &data.targets);
    let mut group = c.benchmark_group("load_2M_rows");
    group.sample_size(10);
    for (name, path) in &files {
        group.throughput(Throughput::Bytes(std::fs::metadata(path).unwrap().len()));
        let cols = if *name == "npy" {
            ColumnChoice::from_flags(None, None)
        } else {
            ColumnChoice {
                input: Some(vec!["y".into()]),
                target: Some(vec!["x".into()]),
            }
        };
        group.bench_function(*name, |b| {
            b.iter(|| {
                let d = load_dataset(path, &cols).unwrap();
                assert_eq!(d.len(), ROWS);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
