//! How `aha bench` prints its rows: an aligned table for people, or one JSON object per row for
//! scripts (`bench/compare.sh`). Both give the share of the matmul row's GFLOP/s when that row
//! was measured in the same run.

use std::io::Write;

use super::train_step::MATMUL_ROW;
use super::Row;

/// `row`'s GFLOP/s as a percentage of the matmul row's.
fn pct_of_peak(row: &Row, peak: Option<&Row>) -> Option<f64> {
    let peak = peak.filter(|p| p.name == MATMUL_ROW)?.gflop_per_s?;
    let g = row.gflop_per_s?;
    (peak > 0.0 && row.name != MATMUL_ROW).then(|| 100.0 * g / peak)
}

/// One line of JSON: `row`, `shape`, `seconds`, `tokens_per_s`, `gflop_per_s`, `pct_peak` (those
/// that apply) and the row's named fields. `peak` is the matmul row of this run, if any.
pub fn print_json(row: &Row, peak: Option<&Row>) -> anyhow::Result<()> {
    let mut obj = serde_json::Map::new();
    obj.insert("row".into(), row.name.clone().into());
    obj.insert("shape".into(), row.shape.clone().into());
    obj.insert("seconds".into(), row.seconds.into());
    let optional = [
        ("tokens_per_s", row.tokens_per_s),
        ("gflop_per_s", row.gflop_per_s),
        ("pct_peak", pct_of_peak(row, peak)),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            obj.insert(key.into(), v.into());
        }
    }
    for (key, value) in &row.fields {
        obj.insert((*key).into(), (*value).into());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::Value::Object(obj))?;
    out.flush()?;
    Ok(())
}

pub fn print_table(rows: &[Row]) {
    let peak_row = rows.iter().find(|r| r.name == MATMUL_ROW);
    let fmt_opt = |v: Option<f64>, prec: usize| match v {
        Some(v) => format!("{v:.prec$}"),
        None => "-".to_string(),
    };
    let header = [
        "bench",
        "shape",
        "median s",
        "tokens/s",
        "GFLOP/s",
        "% peak",
        "breakdown",
    ];
    let lines: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let frac = pct_of_peak(r, peak_row);
            [
                r.name.clone(),
                r.shape.clone(),
                format!("{:.4}", r.seconds),
                fmt_opt(r.tokens_per_s, 0),
                fmt_opt(r.gflop_per_s, 1),
                fmt_opt(frac, 0),
                r.detail.clone(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for l in &lines {
        for (w, c) in width.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let print = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            // Text columns left-aligned, numbers right-aligned.
            if i < 2 || i == 6 {
                s.push_str(&format!("{c:<w$}  "));
            } else {
                s.push_str(&format!("{c:>w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    print(&header.map(String::from));
    print(&width.map(|w| "-".repeat(w)));
    for l in &lines {
        print(l);
    }
    if peak_row.is_some() {
        println!(
            "% peak: GFLOP/s as a share of the matmul row. Train FLOPs = 3 x forward (forward = \
             2 per multiply-add over every matmul weight incl. the LM head, plus dense T x T \
             attention scores and values, masked half included)."
        );
    }
}
