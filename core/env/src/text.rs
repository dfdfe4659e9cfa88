//! Language modelling on a text: byte- or character-level next-token
//! prediction.

use std::sync::Arc;

use rand::{Rng, RngCore};

use crate::{Batch, EnvError, Environment, Lifetime, Task, invalid};

/// How a text becomes tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vocabulary {
    /// Every byte value is a token (256 tokens).
    Bytes,
    /// Each distinct byte of the text is a token, numbered in byte order
    /// (a character vocabulary for ASCII text).
    Characters,
}

/// Next-token prediction on a text. The last `validation` fraction of the
/// tokens is held out: `heldout` evenly spaced windows of `context + 1`
/// tokens from it form the held-out set. A lifetime's training set is
/// windows starting anywhere in the rest, as many as its token budget
/// covers (`context` predictions per window).
#[derive(Clone, Debug)]
pub struct Text {
    tokens: Arc<[u32]>,
    vocab: usize,
    symbols: Vec<u8>,
    context: usize,
    train_len: usize,
    heldout: Arc<Batch>,
    /// The file it was read from, if any (for the run's manifest).
    file: Option<crate::DataFile>,
}

impl Text {
    /// Reads a text file.
    pub fn from_file(
        path: &std::path::Path,
        vocabulary: Vocabulary,
        context: usize,
        validation: f64,
        heldout: usize,
    ) -> Result<Self, EnvError> {
        let bytes = std::fs::read(path).map_err(|source| EnvError::Io {
            environment: "text",
            path: path.display().to_string(),
            source,
        })?;
        let mut text = Self::from_bytes(&bytes, vocabulary, context, validation, heldout)?;
        text.file = Some(crate::DataFile {
            path: path.display().to_string(),
            bytes: bytes.len() as u64,
            sha256: crate::dataset::sha256_hex(&bytes),
        });
        Ok(text)
    }

    /// Tokenises `bytes` and builds the held-out windows.
    pub fn from_bytes(
        bytes: &[u8],
        vocabulary: Vocabulary,
        context: usize,
        validation: f64,
        heldout: usize,
    ) -> Result<Self, EnvError> {
        if context == 0 || heldout == 0 || !(validation > 0.0 && validation < 1.0) {
            return Err(invalid(
                "text",
                format!(
                    "needs context >= 1, heldout >= 1 and a validation fraction in (0, 1); found {context}, {heldout}, {validation}"
                ),
            ));
        }
        let (symbols, tokens): (Vec<u8>, Vec<u32>) = match vocabulary {
            Vocabulary::Bytes => (
                (0..=255).collect(),
                bytes.iter().map(|&b| b as u32).collect(),
            ),
            Vocabulary::Characters => {
                let mut present = [false; 256];
                bytes.iter().for_each(|&b| present[b as usize] = true);
                let symbols: Vec<u8> = (0..=255).filter(|&b| present[b as usize]).collect();
                let mut index = [0u32; 256];
                for (i, &s) in symbols.iter().enumerate() {
                    index[s as usize] = i as u32;
                }
                (symbols, bytes.iter().map(|&b| index[b as usize]).collect())
            }
        };
        let window = context + 1;
        let valid_len = (tokens.len() as f64 * validation) as usize;
        let train_len = tokens.len() - valid_len;
        if train_len < window || valid_len < window {
            return Err(invalid(
                "text",
                format!(
                    "a context of {context} tokens is longer than the data: {} tokens split into {train_len} for training and {valid_len} held out",
                    tokens.len()
                ),
            ));
        }
        let heldout = heldout.min(valid_len / window);
        // Evenly spaced from the start to the end of the validation split.
        let stride = if heldout > 1 {
            (valid_len - window) / (heldout - 1)
        } else {
            0
        };
        let mut held = Vec::with_capacity(heldout * window);
        for k in 0..heldout {
            let start = train_len + k * stride;
            held.extend_from_slice(&tokens[start..start + window]);
        }
        let vocab = symbols.len();
        Ok(Text {
            file: None,
            tokens: tokens.into(),
            vocab,
            symbols,
            context,
            train_len,
            heldout: Arc::new(Batch::Tokens {
                n: heldout,
                len: window,
                tokens: held,
            }),
        })
    }

    /// The byte each token stands for.
    pub fn symbols(&self) -> &[u8] {
        &self.symbols
    }

    /// Tokens in the training part.
    pub fn train_tokens(&self) -> usize {
        self.train_len
    }
}

impl Environment for Text {
    fn data_files(&self) -> Vec<crate::DataFile> {
        self.file.iter().cloned().collect()
    }

    fn name(&self) -> &str {
        "text"
    }

    fn task(&self) -> Task {
        Task::NextToken {
            vocab: self.vocab,
            context: self.context,
        }
    }

    fn lifetime(&self, rng: &mut dyn RngCore, budget: usize) -> Result<Lifetime, EnvError> {
        let window = self.context + 1;
        let n = crate::windows(budget, self.context);
        let mut tokens = Vec::with_capacity(n * window);
        for _ in 0..n {
            let start = rng.random_range(0..=self.train_len - window);
            tokens.extend_from_slice(&self.tokens[start..start + window]);
        }
        Ok(Lifetime {
            train: Batch::Tokens {
                n,
                len: window,
                tokens,
            },
            heldout: self.heldout.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_evo::rng::{Purpose, stream};

    const TEXT: &[u8] =
        b"To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer \
the slings and arrows of outrageous fortune, or to take arms against a sea of troubles.";

    #[test]
    fn a_text_read_from_a_file_records_it_for_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        std::fs::write(&path, TEXT).unwrap();
        let env = Text::from_file(&path, Vocabulary::Characters, 8, 0.25, 4).unwrap();
        let files = env.data_files();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].bytes, TEXT.len() as u64);
        assert_eq!(files[0].sha256, crate::dataset::sha256_hex(TEXT));
        assert_eq!(files[0], crate::dataset::data_file(&path).unwrap());
        let from_bytes = Text::from_bytes(TEXT, Vocabulary::Characters, 8, 0.25, 4).unwrap();
        assert!(from_bytes.data_files().is_empty());
    }

    #[test]
    fn windows_are_contiguous_text_from_the_right_split() {
        let env = Text::from_bytes(TEXT, Vocabulary::Characters, 8, 0.25, 4).unwrap();
        let Task::NextToken { vocab, context } = env.task() else {
            panic!("a token task")
        };
        assert_eq!(context, 8);
        assert!(vocab < 40 && vocab == env.symbols().len());
        let decode = |w: &[u32]| {
            w.iter()
                .map(|&t| env.symbols()[t as usize])
                .collect::<Vec<u8>>()
        };
        let split = env.train_tokens();
        let life = env
            .lifetime(&mut stream(3, 0, 1, Purpose::Learn), 40)
            .unwrap();
        let Batch::Tokens { n, len, tokens } = &life.train else {
            panic!("tokens")
        };
        assert_eq!(
            (*n, *len),
            (5, 9),
            "40 tokens of budget are 5 windows of 8 predictions"
        );
        for w in tokens.chunks_exact(9) {
            let text = decode(w);
            let at = TEXT
                .windows(9)
                .position(|x| x == &text[..])
                .expect("a window is a piece of the text");
            assert!(
                at + 9 <= split,
                "training windows stay in the training split"
            );
        }
        let Batch::Tokens { n, tokens, .. } = &*life.heldout else {
            panic!("tokens")
        };
        assert_eq!(*n, 4);
        for w in tokens.chunks_exact(9) {
            let at = TEXT.windows(9).position(|x| x == &decode(w)[..]).unwrap();
            assert!(
                at >= split,
                "held-out windows come from the validation split"
            );
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        let err = Text::from_bytes(TEXT, Vocabulary::Bytes, 200, 0.1, 4)
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer than the data"), "{err}");
        assert!(Text::from_bytes(TEXT, Vocabulary::Bytes, 8, 1.5, 4).is_err());
        let missing = Text::from_file(
            "/nonexistent/corpus.txt".as_ref(),
            Vocabulary::Bytes,
            8,
            0.1,
            4,
        );
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/corpus.txt")
        );
    }
}

#[cfg(test)]
mod corpus {
    use super::*;
    use lineage_evo::rng::{Purpose, stream};

    /// The corpus the project ships (`scenarios/data/shakespeare.txt`)
    /// loads as a character-level task.
    #[test]
    fn shipped_shakespeare_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scenarios/data/shakespeare.txt");
        let env = Text::from_file(&path, Vocabulary::Characters, 64, 0.1, 256).unwrap();
        let Task::NextToken { vocab, .. } = env.task() else {
            panic!("a token task")
        };
        assert!(
            (60..=100).contains(&vocab),
            "plain-ASCII English has about 80 distinct characters, found {vocab}"
        );
        assert!(env.train_tokens() > 4_500_000);
        let life = env
            .lifetime(&mut stream(1, 0, 0, Purpose::Learn), 25_000)
            .unwrap();
        assert_eq!(life.train.len(), 391);
        assert_eq!(life.heldout.len(), 256);
    }
}
