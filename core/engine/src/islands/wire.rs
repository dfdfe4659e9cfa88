//! Migrants as bytes: one batch (the migrants one island sends another)
//! per message, every number little-endian and every float by its bits,
//! so an arrival is the same organism whichever process it came from.
//!
//! A batch is a `u32` count, then per migrant: origin island and id
//! (`u64`), the genome (bit count, its words, real count, the reals), the
//! fitness (count, values, evaluated-at flag and generation), the weights
//! (flag; birth and learned parameters, each flagged; masks, each flagged,
//! as length and words) and the curve (flag; points as step, train and
//! held-out loss; status). Probes and held-out data are not carried (see
//! [`super::emigrants`]).

use lineage_evo::BitString;
use lineage_learn::{CurvePoint, Status};
use smallvec::SmallVec;

use super::Migrant;
use crate::components::{Fitness, Genome, LearningCurve, Masks, Params, Weights};
use crate::error::EngineError;

/// `batch` as one message.
pub fn encode(batch: &[Migrant]) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.u32(batch.len() as u32);
    for m in batch {
        w.u64(m.from_island as u64);
        w.u64(m.from_id);
        w.bits(m.genome.0.bits());
        w.u64(m.genome.0.reals().len() as u64);
        for &x in m.genome.0.reals() {
            w.u64(x.to_bits());
        }
        w.u32(m.fitness.values.len() as u32);
        for &v in &m.fitness.values {
            w.u64(v.to_bits());
        }
        w.option(m.fitness.evaluated_at, Writer::u32);
        w.option(m.weights.as_ref(), |w, weights| {
            for params in [&weights.birth, &weights.learned] {
                w.option(params.as_ref(), |w, p| {
                    w.u64(p.0.len() as u64);
                    for &x in p.0.iter() {
                        w.u32(x.to_bits());
                    }
                });
            }
            w.u32(weights.masks.0.len() as u32);
            for mask in &weights.masks.0 {
                w.option(mask.as_ref(), Writer::bits);
            }
        });
        w.option(m.curve.as_ref(), |w, c| {
            w.u32(c.points.len() as u32);
            for p in &c.points {
                w.u32(p.step);
                w.u32(p.train.to_bits());
                w.u32(p.heldout.to_bits());
            }
            match c.status {
                None => w.u8(0),
                Some(Status::Completed) => w.u8(1),
                Some(Status::Diverged { step }) => {
                    w.u8(2);
                    w.u32(step);
                }
            }
        });
    }
    w.0
}

/// The batch `bytes` encodes.
pub fn decode(bytes: &[u8]) -> Result<Vec<Migrant>, EngineError> {
    let mut r = Reader { bytes, at: 0 };
    let n = r.u32()? as usize;
    // No more migrants than the message can hold at the smallest encoding
    // (origin, id, two counts, a count, three flags: 39 bytes).
    let mut batch = Vec::with_capacity(n.min(bytes.len() / 39));
    for _ in 0..n {
        let from_island = r.u64()? as usize;
        let from_id = r.u64()?;
        let bits = r.bits()?;
        let reals = r.len(8)?;
        let reals = (0..reals)
            .map(|_| r.u64().map(f64::from_bits))
            .collect::<Result<Vec<_>, _>>()?;
        let values = r.u32()? as usize;
        let values = (0..values)
            .map(|_| r.u64().map(f64::from_bits))
            .collect::<Result<SmallVec<_>, _>>()?;
        let evaluated_at = r.option(Reader::u32)?;
        let weights = r.option(|r| {
            let mut params = [None, None];
            for p in &mut params {
                *p = r.option(|r| {
                    let len = r.len(4)?;
                    (0..len)
                        .map(|_| r.u32().map(f32::from_bits))
                        .collect::<Result<Box<[f32]>, _>>()
                        .map(Params)
                })?;
            }
            let masks = r.u32()? as usize;
            let masks = (0..masks)
                .map(|_| r.option(Reader::bits))
                .collect::<Result<Vec<_>, _>>()?;
            let [birth, learned] = params;
            Ok(Weights {
                birth,
                learned,
                masks: Masks(masks),
            })
        })?;
        let curve = r.option(|r| {
            let points = r.u32()? as usize;
            let points = (0..points)
                .map(|_| {
                    Ok(CurvePoint {
                        step: r.u32()?,
                        train: f32::from_bits(r.u32()?),
                        heldout: f32::from_bits(r.u32()?),
                    })
                })
                .collect::<Result<Vec<_>, EngineError>>()?;
            let status = match r.u8()? {
                0 => None,
                1 => Some(Status::Completed),
                2 => Some(Status::Diverged { step: r.u32()? }),
                t => return Err(damaged(format!("unknown lifetime status {t}"))),
            };
            Ok(LearningCurve {
                points,
                status,
                ..LearningCurve::default()
            })
        })?;
        batch.push(Migrant {
            from_island,
            from_id,
            genome: Genome(lineage_evo::Genome::new(bits, reals)),
            fitness: Fitness {
                values,
                evaluated_at,
            },
            weights,
            curve,
        });
    }
    if r.at != bytes.len() {
        return Err(damaged(format!(
            "{} bytes left over after {n} migrants",
            bytes.len() - r.at
        )));
    }
    Ok(batch)
}

fn damaged(what: String) -> EngineError {
    EngineError::Fabric(format!("a migrant batch arrived damaged: {what}"))
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, x: u8) {
        self.0.push(x);
    }

    fn u32(&mut self, x: u32) {
        self.0.extend(x.to_le_bytes());
    }

    fn u64(&mut self, x: u64) {
        self.0.extend(x.to_le_bytes());
    }

    fn bits(&mut self, b: &BitString) {
        self.u64(b.len() as u64);
        for &word in b.words() {
            self.u64(word);
        }
    }

    fn option<T>(&mut self, x: Option<T>, put: impl FnOnce(&mut Writer, T)) {
        match x {
            None => self.u8(0),
            Some(x) => {
                self.u8(1);
                put(self, x);
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], EngineError> {
        let end = self.at + N;
        let chunk = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| damaged(format!("it ends at byte {}", self.bytes.len())))?;
        self.at = end;
        Ok(chunk.try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> Result<u8, EngineError> {
        self.take::<1>().map(|b| b[0])
    }

    fn u32(&mut self) -> Result<u32, EngineError> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, EngineError> {
        self.take().map(u64::from_le_bytes)
    }

    /// A count of items of `size` bytes that the rest of the message can
    /// hold (so a damaged count allocates nothing).
    fn len(&mut self, size: usize) -> Result<usize, EngineError> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.at) / size;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| damaged(format!("a count of {n} is more than it holds")))
    }

    fn bits(&mut self) -> Result<BitString, EngineError> {
        let len = self.u64()? as usize;
        let words = len.div_ceil(64);
        if words > (self.bytes.len() - self.at) / 8 {
            return Err(damaged(format!(
                "a bit string of {len} bits is more than it holds"
            )));
        }
        let words = (0..words).map(|_| self.u64()).collect::<Result<_, _>>()?;
        Ok(BitString::from_words(words, len))
    }

    fn option<T>(
        &mut self,
        get: impl FnOnce(&mut Self) -> Result<T, EngineError>,
    ) -> Result<Option<T>, EngineError> {
        match self.u8()? {
            0 => Ok(None),
            1 => get(self).map(Some),
            t => Err(damaged(format!("a flag reads {t}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrant(k: u64) -> Migrant {
        let mut bits = BitString::zeros(70);
        bits.set(3, true);
        bits.set(69, true);
        let mut mask = BitString::zeros(5);
        mask.set(k as usize % 5, true);
        Migrant {
            from_island: k as usize,
            from_id: 1000 + k,
            genome: Genome(lineage_evo::Genome::new(
                bits,
                vec![0.5, -0.0, f64::MIN_POSITIVE],
            )),
            fitness: Fitness {
                values: SmallVec::from_slice(&[f64::NAN, -1.25]),
                evaluated_at: Some(7),
            },
            weights: Some(Weights {
                birth: None,
                learned: Some(Params(vec![1.0, f32::from_bits(0x7fc0_0001), -0.0].into())),
                masks: Masks(vec![None, Some(mask)]),
            }),
            curve: Some(LearningCurve {
                points: vec![CurvePoint {
                    step: 4,
                    train: 0.5,
                    heldout: f32::INFINITY,
                }],
                status: Some(Status::Diverged { step: 4 }),
                ..LearningCurve::default()
            }),
        }
    }

    /// Bits of every float, so NaN payloads and signed zeros count.
    fn bits_of(m: &Migrant) -> String {
        let f64s = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let f32s = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let w = m.weights.as_ref();
        format!(
            "{} {} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            m.from_island,
            m.from_id,
            m.genome.0.bits().words(),
            f64s(m.genome.0.reals()),
            f64s(&m.fitness.values),
            m.fitness.evaluated_at,
            w.map(|w| (
                w.birth.as_ref().map(|p| f32s(&p.0)),
                w.learned.as_ref().map(|p| f32s(&p.0))
            )),
            w.map(|w| w
                .masks
                .0
                .iter()
                .map(|m| m.as_ref().map(|b| (b.len(), b.words().to_vec())))
                .collect::<Vec<_>>()),
            m.curve.as_ref().map(|c| c
                .points
                .iter()
                .map(|p| (p.step, p.train.to_bits(), p.heldout.to_bits()))
                .collect::<Vec<_>>()),
            m.curve.as_ref().map(|c| c.status),
        )
    }

    #[test]
    fn a_batch_comes_back_bit_for_bit() {
        let mut plain = migrant(2);
        plain.weights = None;
        plain.curve = None;
        let batch = vec![migrant(0), plain, migrant(3)];
        let back = decode(&encode(&batch)).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in batch.iter().zip(&back) {
            assert_eq!(bits_of(a), bits_of(b));
        }
        assert!(decode(&encode(&[])).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_batch_is_an_error_not_a_panic() {
        let bytes = encode(&[migrant(1), migrant(4)]);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            decode(&longer)
                .unwrap_err()
                .to_string()
                .contains("left over")
        );
        // A forged count reserves no more than the message can hold.
        let mut forged = u32::MAX.to_le_bytes().to_vec();
        forged.resize(1 << 20, 0);
        assert!(
            decode(&forged)
                .unwrap_err()
                .to_string()
                .contains("ends at byte")
        );
        // Every single-byte corruption decodes to something or fails
        // cleanly.
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0xa5;
            let _ = decode(&bad);
        }
    }
}
