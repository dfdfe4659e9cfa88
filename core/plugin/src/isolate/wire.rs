//! The isolation protocol's frames: a little-endian `u64` length, then a
//! tag byte and the tag's fields. Numbers are little-endian; strings and
//! byte strings are a `u64` length and the bytes; arrays of numbers are a
//! `u64` count and the packed values.
//!
//! The engine sends `LOAD`, `CREATE` and `EVALUATE`; the worker answers
//! each with one reply, and during `EVALUATE` it may first send service
//! requests, each answered by `REPLY_OK` or `REPLY_ERR`.

/// Engine → worker: the library's bytes and where they came from.
pub(crate) const LOAD: u8 = 1;
/// Engine → worker: create an instance (offering, TOML, entries).
pub(crate) const CREATE: u8 = 2;
/// Engine → worker: score a batch (generation, ids, genomes).
pub(crate) const EVALUATE: u8 = 3;
/// Engine → worker: describe the environment instance (ABI 4).
pub(crate) const ENV_DESCRIBE: u8 = 4;
/// Engine → worker: fill an environment's buffers (what, index, seed,
/// shape).
pub(crate) const ENV_FILL: u8 = 5;
/// Engine → worker: a service's answer.
pub(crate) const REPLY_OK: u8 = 10;
/// Engine → worker: a service's error message.
pub(crate) const REPLY_ERR: u8 = 11;

/// Worker → engine: the checked descriptor.
pub(crate) const LOADED: u8 = 20;
/// Worker → engine: why the library did not load.
pub(crate) const LOAD_FAILED: u8 = 21;
/// Worker → engine: the instance exists.
pub(crate) const CREATED: u8 = 22;
/// Worker → engine: why `create` failed.
pub(crate) const CREATE_FAILED: u8 = 23;
/// Worker → engine: status, message, count written and the scores.
pub(crate) const EVALUATED: u8 = 24;

/// Worker → engine: status, message and the environment's description.
pub(crate) const DESCRIBED: u8 = 25;
/// Worker → engine: status, message, count written and the buffers.
pub(crate) const FILLED: u8 = 26;

/// Worker → engine, during `EVALUATE`: a gene's offset and count.
pub(crate) const ASK_GENE: u8 = 31;
/// Worker → engine: a weight at a stage.
pub(crate) const ASK_WEIGHTS: u8 = 32;
/// Worker → engine: a learning curve.
pub(crate) const ASK_CURVE: u8 = 33;
/// Worker → engine: held-out data.
pub(crate) const ASK_HELDOUT: u8 = 34;
/// Worker → engine: a model run.
pub(crate) const ASK_RUN: u8 = 35;
/// Worker → engine: a probe record.
pub(crate) const ASK_PROBES: u8 = 36;

/// `LOAD_FAILED` kinds, one per load error.
pub(crate) const FAIL_NOT_A_LIBRARY: u8 = 1;
pub(crate) const FAIL_NO_ENTRY: u8 = 2;
pub(crate) const FAIL_ABI: u8 = 3;
pub(crate) const FAIL_DESCRIPTOR: u8 = 4;
pub(crate) const FAIL_OTHER: u8 = 5;

/// A frame being written.
pub(crate) struct Out(Vec<u8>);

macro_rules! put_numbers {
    ($name:ident, $t:ty) => {
        pub(crate) fn $name(&mut self, values: &[$t]) -> &mut Self {
            self.usize(values.len());
            self.0.reserve(values.len() * size_of::<$t>());
            for v in values {
                self.0.extend_from_slice(&v.to_le_bytes());
            }
            self
        }
    };
}

impl Out {
    /// A frame with tag `tag`.
    pub(crate) fn new(tag: u8) -> Out {
        let mut v = Vec::with_capacity(256);
        v.extend_from_slice(&[0; 8]);
        v.push(tag);
        Out(v)
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn usize(&mut self, v: usize) -> &mut Self {
        self.u64(v as u64)
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.usize(v.len());
        self.0.extend_from_slice(v);
        self
    }

    pub(crate) fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    put_numbers!(u64s, u64);
    put_numbers!(u32s, u32);
    put_numbers!(f64s, f64);
    put_numbers!(f32s, f32);

    /// The frame with its length filled in.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let len = (self.0.len() - 8) as u64;
        self.0[..8].copy_from_slice(&len.to_le_bytes());
        self.0
    }
}

/// A frame being read (its body: the tag, then the fields).
pub(crate) struct In<'a> {
    data: &'a [u8],
    pos: usize,
}

macro_rules! get_numbers {
    ($name:ident, $t:ty) => {
        pub(crate) fn $name(&mut self) -> Result<Vec<$t>, String> {
            let n = self.usize()?;
            let bytes = self.take(
                n.checked_mul(size_of::<$t>())
                    .ok_or("an array's length overflows")?,
            )?;
            Ok(bytes
                .chunks_exact(size_of::<$t>())
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("exact chunks")))
                .collect())
        }
    };
}

impl<'a> In<'a> {
    /// Reads `body`; its first byte is the tag.
    pub(crate) fn new(body: &'a [u8]) -> In<'a> {
        In { data: body, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or("a truncated frame")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub(crate) fn usize(&mut self) -> Result<usize, String> {
        usize::try_from(self.u64()?).map_err(|_| "a size overflows".into())
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.usize()?;
        self.take(n)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?).map_err(|_| "a string is not UTF-8".into())
    }

    get_numbers!(u64s, u64);
    get_numbers!(u32s, u32);
    get_numbers!(f64s, f64);
    get_numbers!(f32s, f32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_reads_back_as_written() {
        let mut out = Out::new(EVALUATE);
        out.u8(7)
            .u32(u32::MAX)
            .u64(1 << 40)
            .str("é")
            .u64s(&[1, 2])
            .f64s(&[f64::NAN, -0.5])
            .f32s(&[1.5])
            .u32s(&[]);
        let frame = out.finish();
        let len = u64::from_le_bytes(frame[..8].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 8);
        let mut r = In::new(&frame[8..]);
        assert_eq!(r.u8().unwrap(), EVALUATE);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u32().unwrap(), u32::MAX);
        assert_eq!(r.u64().unwrap(), 1 << 40);
        assert_eq!(r.str().unwrap(), "é");
        assert_eq!(r.u64s().unwrap(), vec![1, 2]);
        let f = r.f64s().unwrap();
        assert!(f[0].is_nan() && f[1] == -0.5);
        assert_eq!(r.f32s().unwrap(), vec![1.5]);
        assert!(r.u32s().unwrap().is_empty());
        assert!(r.u8().is_err(), "reading past the end is an error");
    }
}
