//! TensorBoard event files, written by hand: `tensorboard --logdir runs/` reads a run's metrics
//! without a Python dependency here.
//!
//! A file is a sequence of TFRecords (`u64` length, masked CRC-32C of the length, the bytes,
//! masked CRC-32C of the bytes), each an `Event` protobuf (tensorflow/core/util/event.proto):
//! first `file_version = "brain.Event:2"`, then per step one `Summary` of `simple_value`
//! scalars. A resumed run opens a new file starting with `SessionLog.START` at its first step,
//! which tells TensorBoard to drop the points a killed run wrote past its checkpoint.
//! Only the few protobuf fields needed are encoded; nothing here reads event files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{Error, Result};

/// Appends events to one `events.out.tfevents.*` file, flushing after each step.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates a new event file in `dir`; `resumed_at` is the first step of a resumed run.
    pub fn create(dir: &Path, resumed_at: Option<usize>) -> Result<Self> {
        let now = wall_time();
        // TensorBoard orders a run's files by name: seconds, then a suffix unique to this process.
        let name = format!(
            "events.out.tfevents.{}.aha.{}.{}",
            now as u64,
            std::process::id(),
            (now.fract() * 1e6) as u64
        );
        let path = dir.join(name);
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = Self {
            path,
            out: BufWriter::new(file),
        };
        let mut version = event_header(now, 0);
        put_bytes(&mut version, 3, b"brain.Event:2");
        w.record(&version)?;
        if let Some(step) = resumed_at {
            // SessionLog { status: START }
            let mut e = event_header(now, step as i64);
            put_bytes(&mut e, 7, &[0x08, 0x01]);
            w.record(&e)?;
        }
        w.flush()?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One `Summary` event at `step` holding `(tag, value)` scalars.
    pub fn scalars(&mut self, step: usize, values: &[(String, f64)]) -> Result<()> {
        let mut summary = Vec::new();
        for (tag, v) in values {
            let mut value = Vec::new();
            put_bytes(&mut value, 1, tag.as_bytes());
            put_key(&mut value, 2, 5); // simple_value: float, fixed32
            value.extend_from_slice(&(*v as f32).to_le_bytes());
            put_bytes(&mut summary, 1, &value);
        }
        let mut e = event_header(wall_time(), step as i64);
        put_bytes(&mut e, 5, &summary);
        self.record(&e)?;
        self.flush()
    }

    /// Every number of `metrics` (a struct serialising to a JSON object) except `step`, as
    /// scalars tagged `{prefix}/{field}`; null and non-numeric fields are left out.
    pub fn metrics<T: Serialize>(&mut self, prefix: &str, step: usize, metrics: &T) -> Result<()> {
        let value = serde_json::to_value(metrics).map_err(|e| Error::Checkpoint {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let scalars = match value {
            serde_json::Value::Object(map) => map
                .into_iter()
                .filter(|(k, _)| k != "step")
                .filter_map(|(k, v)| v.as_f64().map(|x| (format!("{prefix}/{k}"), x)))
                .collect(),
            _ => Vec::new(),
        };
        self.scalars(step, &scalars)
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut write = |b: &[u8]| self.out.write_all(b);
        write(&len)
            .and_then(|()| write(&masked_crc32c(&len).to_le_bytes()))
            .and_then(|()| write(data))
            .and_then(|()| write(&masked_crc32c(data).to_le_bytes()))
            .map_err(|e| Error::io(&self.path, e))
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}

fn wall_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `Event.wall_time` (field 1, double) and `Event.step` (field 2, int64).
fn event_header(wall_time: f64, step: i64) -> Vec<u8> {
    let mut e = Vec::new();
    put_key(&mut e, 1, 1);
    e.extend_from_slice(&wall_time.to_le_bytes());
    put_key(&mut e, 2, 0);
    put_varint(&mut e, step as u64);
    e
}

fn put_key(buf: &mut Vec<u8>, field: u32, wire_type: u32) {
    put_varint(buf, u64::from(field << 3 | wire_type));
}

/// A length-delimited field (strings, bytes, embedded messages).
fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(buf, field, 2);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses.
pub fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !data.iter().fold(!0u32, |c, &b| {
        TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// TFRecord's masked CRC: rotated and offset so that CRCs of CRCs stay well distributed.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_values() {
        // RFC 3720 B.4 and the standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
    }

    #[test]
    fn varints_match_protobuf() {
        let mut b = Vec::new();
        put_varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        let mut k = Vec::new();
        put_key(&mut k, 7, 2);
        assert_eq!(k, [0x3a]);
    }
}
