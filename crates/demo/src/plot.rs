//! Line plots rasterised by hand into PNG files: the demo's curves over GRPO steps.
//!
//! Plotting crates draw text through the system's fonts, which a fresh CI machine may lack; this
//! file draws everything itself — axes, grid, ticks, lines, a legend and a title — with a built-in
//! 5×7 bitmap font (digits, capitals, a little punctuation; lowercase is drawn as capitals), and
//! encodes with the `png` crate. It does not do log axes, bars or anything the demo does not use.

use std::path::Path;

use crate::DemoError;

/// One curve: `(x, y)` points in x order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: [u8; 3],
}

/// A plot: title, axis names and curves. `y_range` fixes the y axis (e.g. 0..1 for accuracy);
/// otherwise it spans the data.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub y_range: Option<(f64, f64)>,
}

/// Colours for up to four curves (blue, orange, green, red).
pub const PALETTE: [[u8; 3]; 4] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40]];

const WIDTH: usize = 640;
const HEIGHT: usize = 400;
/// Glyph pixels are drawn as SCALE×SCALE squares.
const SCALE: usize = 2;
const LEFT: usize = 90;
const RIGHT: usize = 20;
const TOP: usize = 44;
const BOTTOM: usize = 60;

/// An RGB image, row-major.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: vec![255; w * h * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }

    /// A line `thick` pixels wide (Bresenham, stamping squares).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), thick: i64, c: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.rect(x - thick / 2, y - thick / 2, thick, thick, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text with its top-left corner at (x, y); returns the width drawn.
    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) -> i64 {
        let mut cx = x;
        for ch in s.chars() {
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        let (px, py) = (cx + (col * SCALE) as i64, y + (r * SCALE) as i64);
                        self.rect(px, py, SCALE as i64, SCALE as i64, c);
                    }
                }
            }
            cx += (6 * SCALE) as i64;
        }
        cx - x
    }

    /// Text rotated a quarter turn counter-clockwise, reading bottom to top from (x, y).
    fn text_up(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) {
        let mut cy = y;
        for ch in s.chars() {
            for (r, bits) in glyph(ch).iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        let (px, py) = (x + (r * SCALE) as i64, cy - (col * SCALE) as i64);
                        self.rect(px, py, SCALE as i64, SCALE as i64, c);
                    }
                }
            }
            cy -= (6 * SCALE) as i64;
        }
    }
}

fn text_width(s: &str) -> i64 {
    (s.chars().count() * 6 * SCALE) as i64
}

/// Round tick positions covering `[lo, hi]`: multiples of 1, 2 or 5 × 10^k, about five of them.
pub fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick label with as many decimals as the tick spacing needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.starts_with("-0") && s.trim_start_matches(['-', '0', '.']).is_empty() {
        s[1..].to_string()
    } else {
        s
    }
}

/// The data's x and y spans, widened when flat so the plot has height.
fn spans(plot: &LinePlot) -> ((f64, f64), (f64, f64)) {
    let pts = plot.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if let Some(r) = plot.y_range {
        (y0, y1) = r;
    } else if y1 - y0 < 1e-12 {
        let pad = if y0.abs() > 1e-12 {
            y0.abs() * 0.1
        } else {
            1.0
        };
        (y0, y1) = (y0 - pad, y1 + pad);
    } else {
        let pad = (y1 - y0) * 0.05;
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    ((x0, x1), (y0, y1))
}

/// Draws the plot into an RGB buffer of `WIDTH × HEIGHT`.
fn render(plot: &LinePlot) -> Canvas {
    let mut c = Canvas::new(WIDTH, HEIGHT);
    let (black, grey, light) = ([0, 0, 0], [90, 90, 90], [225, 225, 225]);
    let ((x0, x1), (y0, y1)) = spans(plot);
    let (pl, pr) = (LEFT as i64, (WIDTH - RIGHT) as i64);
    let (pt, pb) = (TOP as i64, (HEIGHT - BOTTOM) as i64);
    let to_px = |x: f64, y: f64| -> (i64, i64) {
        let fx = (x - x0) / (x1 - x0);
        let fy = (y - y0) / (y1 - y0);
        (
            pl + (fx * (pr - pl) as f64).round() as i64,
            pb - (fy * (pb - pt) as f64).round() as i64,
        )
    };

    let yt = nice_ticks(y0, y1);
    let ystep = if yt.len() > 1 { yt[1] - yt[0] } else { 1.0 };
    for &v in &yt {
        let (_, py) = to_px(x0, v);
        c.line((pl, py), (pr, py), 1, light);
        let label = tick_label(v, ystep);
        c.text(pl - 8 - text_width(&label), py - 7, &label, grey);
    }
    let xt = nice_ticks(x0, x1);
    let xstep = if xt.len() > 1 { xt[1] - xt[0] } else { 1.0 };
    for &v in &xt {
        let (px, _) = to_px(v, y0);
        c.line((px, pt), (px, pb), 1, light);
        let label = tick_label(v, xstep);
        c.text(px - text_width(&label) / 2, pb + 8, &label, grey);
    }
    c.line((pl, pb), (pr, pb), 1, black);
    c.line((pl, pt), (pl, pb), 1, black);

    for s in &plot.series {
        let pts: Vec<(i64, i64)> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| to_px(x, y.clamp(y0, y1)))
            .collect();
        for w in pts.windows(2) {
            c.line(w[0], w[1], 2, s.color);
        }
        if pts.len() <= 2 {
            for &(x, y) in &pts {
                c.rect(x - 3, y - 3, 7, 7, s.color);
            }
        }
    }

    c.text(
        (WIDTH as i64 - text_width(&plot.title)) / 2,
        12,
        &plot.title,
        black,
    );
    c.text(
        (pl + pr - text_width(&plot.x_label)) / 2,
        pb + 32,
        &plot.x_label,
        black,
    );
    c.text_up(
        12,
        (pt + pb + text_width(&plot.y_label)) / 2,
        &plot.y_label,
        black,
    );

    // Legend, top-left inside the axes, one row per curve.
    if plot.series.len() > 1 {
        for (i, s) in plot.series.iter().enumerate() {
            let y = pt + 8 + i as i64 * 20;
            c.rect(pl + 10, y + 3, 18, 6, s.color);
            c.text(pl + 34, y, &s.label, black);
        }
    }
    c
}

/// Renders `plot` to a PNG file at `path`.
pub fn write_png(plot: &LinePlot, path: &Path) -> Result<(), DemoError> {
    let canvas = render(plot);
    let io = |e: std::io::Error| DemoError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), WIDTH as u32, HEIGHT as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let as_io = |e: png::EncodingError| match e {
        png::EncodingError::IoError(e) => io(e),
        other => io(std::io::Error::other(other.to_string())),
    };
    let mut writer = enc.write_header().map_err(as_io)?;
    writer.write_image_data(&canvas.px).map_err(as_io)?;
    writer.finish().map_err(as_io)
}

/// 5×7 glyphs, one 5-bit row each, top to bottom; unknown characters draw as a hollow box.
fn glyph(ch: char) -> [u8; 7] {
    match ch.to_ascii_uppercase() {
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [28, 18, 17, 17, 17, 18, 28],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 17, 10, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        ' ' => [0; 7],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        ',' => [0, 0, 0, 0, 12, 4, 8],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        '+' => [0, 4, 4, 31, 4, 4, 0],
        '=' => [0, 0, 31, 0, 31, 0, 0],
        '%' => [24, 25, 2, 4, 8, 19, 3],
        '/' => [0, 1, 2, 4, 8, 16, 0],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        '@' => [14, 17, 1, 13, 21, 21, 14],
        '×' => [0, 17, 10, 4, 10, 17, 0],
        _ => [31, 17, 17, 17, 17, 17, 31],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 1.0),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(
            nice_ticks(0.0, 100.0),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(nice_ticks(3.0, 47.0), vec![10.0, 20.0, 30.0, 40.0]);
        assert_eq!(tick_label(0.6000000000000001, 0.2), "0.6");
        assert_eq!(tick_label(40.0, 10.0), "40");
        assert_eq!(tick_label(-0.0001, 0.01), "0.00");
    }

    #[test]
    fn draws_the_curve_where_the_data_is() {
        let plot = LinePlot {
            title: "Accuracy".into(),
            x_label: "step".into(),
            y_label: "accuracy".into(),
            series: vec![Series {
                label: "train".into(),
                points: vec![(0.0, 0.0), (10.0, 1.0)],
                color: PALETTE[0],
            }],
            y_range: Some((0.0, 1.0)),
        };
        let c = render(&plot);
        let at = |x: usize, y: usize| {
            let i = (y * WIDTH + x) * 3;
            [c.px[i], c.px[i + 1], c.px[i + 2]]
        };
        // The diagonal passes through the middle of the axes box; the corners off it stay white.
        let (mx, my) = ((LEFT + WIDTH - RIGHT) / 2, (TOP + HEIGHT - BOTTOM) / 2);
        assert_eq!(at(mx, my), PALETTE[0]);
        assert_eq!(at(WIDTH - RIGHT - 5, HEIGHT - BOTTOM - 5), [255, 255, 255]);
    }

    #[test]
    fn writes_a_png_that_decodes() {
        let dir = std::env::temp_dir().join(format!("aha-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.png");
        let plot = LinePlot {
            title: "Mean response length (tokens)".into(),
            x_label: "GRPO step".into(),
            y_label: "tokens".into(),
            series: vec![
                Series {
                    label: "mean".into(),
                    points: (0..50).map(|i| (i as f64, 8.0 + i as f64 * 0.7)).collect(),
                    color: PALETTE[0],
                },
                Series {
                    label: "think share".into(),
                    points: vec![(0.0, 10.0), (49.0, 40.0)],
                    color: PALETTE[1],
                },
            ],
            y_range: None,
        };
        write_png(&plot, &path).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let reader = dec.read_info().unwrap();
        assert_eq!(reader.info().width as usize, WIDTH);
        assert_eq!(reader.info().height as usize, HEIGHT);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
