//! The model and the optimiser of `[lifetime]`: sizes within bounds, the
//! model fitting the environment's task, the optimiser's parameters.

use lineage_env::Task;
use lineage_learn::spec::{
    Activation, Embedding, GruSpec, LstmSpec, MlpSpec, ModelSpec, RnnSpec, SequenceInput,
    TransformerSpec,
};
use lineage_learn::{Method, OptimizerSpec, Schedule};

use crate::raw::lifetime::{BuiltInModel, RawModel, RawOptimizer};

use super::Check;

impl<E> Check<'_, E> {
    pub(super) fn model(&self, raw: &RawModel, task: &Task) -> Result<ModelSpec, E> {
        let raw = match raw {
            RawModel::BuiltIn(raw) => raw,
            RawModel::Registered { kind, fields } => return self.registered(kind, fields, task),
        };
        let (inputs, outputs) = match *task {
            Task::Regression { inputs, outputs } => (inputs, outputs),
            Task::Classification { inputs, classes } => (inputs, classes),
            Task::SequenceClassification {
                inputs, classes, ..
            } => (inputs, classes),
            Task::NextToken { vocab, .. } => (vocab, vocab),
        };
        let tokens = matches!(task, Task::NextToken { .. });
        let activation = |name: &str| {
            Activation::parse(name).ok_or_else(|| {
                (self.at)(
                    "lifetime.model.activation",
                    format!(
                        "unknown activation `{name}` (expected one of: {})",
                        Activation::NAMES.join(", ")
                    ),
                )
            })
        };
        let positive = |field: &str, v: usize| {
            if v == 0 {
                self.err(
                    &format!("model.{field}"),
                    format!("expected `{field}` of at least 1, found 0"),
                )
            } else {
                Ok(v)
            }
        };
        let seq_input = if tokens {
            SequenceInput::Tokens { vocab: inputs }
        } else {
            SequenceInput::Dense { dim: inputs }
        };
        Ok(match raw {
            BuiltInModel::Mlp {
                hidden,
                activation: a,
                bias,
                embedding,
                context,
            } => {
                if let Some(i) = hidden.iter().position(|&h| h == 0) {
                    return self.err(
                        &format!("model.hidden[{i}]"),
                        "expected a layer width of at least 1, found 0",
                    );
                }
                let embedding = match (tokens, embedding, context) {
                    (true, Some(dim), Some(context)) => Some(Embedding {
                        vocab: inputs,
                        dim: positive("embedding", *dim)?,
                        context: positive("context", *context)?,
                    }),
                    (true, _, _) => {
                        return self.err("model", "an MLP language model needs `embedding` (width per token) and `context` (tokens read)");
                    }
                    (false, None, None) => None,
                    (false, _, _) => {
                        return self.err(
                            "model",
                            "`embedding` and `context` apply to token environments only",
                        );
                    }
                };
                let first = embedding.map_or(inputs, |e| e.dim * e.context);
                let mut widths = vec![first];
                widths.extend(hidden);
                widths.push(outputs);
                ModelSpec::Mlp(MlpSpec {
                    embedding,
                    widths,
                    activation: activation(a)?,
                    bias: *bias,
                })
            }
            BuiltInModel::Linear2 { hidden } => {
                if tokens {
                    return self.err(
                        "model",
                        "a two-layer linear network reads real inputs, not tokens",
                    );
                }
                ModelSpec::Mlp(MlpSpec {
                    embedding: None,
                    widths: vec![inputs, positive("hidden", *hidden)?, outputs],
                    activation: Activation::Linear,
                    bias: false,
                })
            }
            BuiltInModel::Rnn {
                hidden,
                alpha,
                activation: a,
                bias,
            } => {
                if !(*alpha > 0.0 && *alpha <= 1.0) {
                    return self.err(
                        "model.alpha",
                        format!("expected a leak in (0, 1], found {alpha}"),
                    );
                }
                ModelSpec::Rnn(RnnSpec {
                    input: seq_input,
                    hidden: positive("hidden", *hidden)?,
                    outputs,
                    alpha: *alpha,
                    activation: activation(a)?,
                    bias: *bias,
                })
            }
            BuiltInModel::Gru { hidden } => ModelSpec::Gru(GruSpec {
                input: seq_input,
                hidden: positive("hidden", *hidden)?,
                outputs,
            }),
            BuiltInModel::Lstm { hidden } => ModelSpec::Lstm(LstmSpec {
                input: seq_input,
                hidden: positive("hidden", *hidden)?,
                outputs,
            }),
            BuiltInModel::Transformer {
                d_model,
                heads,
                layers,
                d_ff,
                layer_norm,
                activation: a,
                embed,
                positions,
                attn_out,
                attn_scale,
                head,
            } => {
                let d = positive("d_model", *d_model)?;
                let h = positive("heads", *heads)?;
                if d % h != 0 {
                    return self.err(
                        "model.heads",
                        format!("{h} heads do not divide d_model = {d}"),
                    );
                }
                self.at_most("model.head", head.len(), super::MAX_LAYERS)?;
                for (i, &w) in head.iter().enumerate() {
                    let field = format!("model.head[{i}]");
                    if w == 0 {
                        return self.err(&field, "expected a layer width of at least 1, found 0");
                    }
                    self.at_most(&field, w, super::MAX_WIDTH)?;
                }
                if !embed {
                    if tokens {
                        return self.err(
                            "model.embed",
                            "`embed = false` needs real-valued inputs: token inputs need an embedding",
                        );
                    }
                    if d != inputs {
                        return self.err(
                            "model.d_model",
                            format!(
                                "with `embed = false` the inputs are the residual stream, so d_model must equal the environment's input width {inputs}, found {d}"
                            ),
                        );
                    }
                }
                let context =
                    match *task {
                        Task::NextToken { context, .. } => context,
                        Task::SequenceClassification { steps, .. } => steps,
                        _ => return self.err(
                            "model",
                            "a transformer reads sequences; this environment gives single examples",
                        ),
                    };
                ModelSpec::Transformer(TransformerSpec {
                    input: seq_input,
                    context,
                    d_model: d,
                    heads: h,
                    layers: positive("layers", *layers)?,
                    // 0: attention-only blocks.
                    d_ff: d_ff.unwrap_or(4 * d),
                    outputs,
                    layer_norm: *layer_norm,
                    activation: a.as_deref().map_or(Ok(Activation::Gelu), activation)?,
                    embed: *embed,
                    positions: *positions,
                    attn_out: *attn_out,
                    attn_scale: *attn_scale,
                    head: head.clone(),
                })
            }
        })
    }

    /// A family registered in `lineage_learn::models::REGISTERED`, made by
    /// its constructor from the table's other fields.
    fn registered(&self, kind: &str, fields: &toml::Table, task: &Task) -> Result<ModelSpec, E> {
        let Some(registration) = lineage_learn::models::registration(kind) else {
            let known: Vec<&str> = RawModel::BUILT_IN
                .iter()
                .copied()
                .chain(lineage_learn::models::REGISTERED.iter().map(|r| r.kind))
                .collect();
            let hint = crate::validate::nearest(kind, &known)
                .map(|best| format!("; did you mean `{best}`?"))
                .unwrap_or_default();
            return self.err(
                "model.kind",
                format!(
                    "unknown model kind `{kind}`{hint} (expected one of: {})",
                    known.join(", ")
                ),
            );
        };
        let values = match serde_json::to_value(fields) {
            Ok(serde_json::Value::Object(values)) => values,
            _ => {
                return self.err(
                    "model",
                    "the model's fields cannot be read as numbers, strings and booleans",
                );
            }
        };
        let mut fields = lineage_learn::family::Fields::new(values);
        let made = (registration.new)(&mut fields, task).and_then(|family| {
            fields.finish(kind)?;
            Ok(family)
        });
        match made {
            Ok(family) => Ok(ModelSpec::Registered(family)),
            Err(e) if e.field == "model" => self.err("model", e.message),
            Err(e) => self.err(&format!("model.{}", e.field), e.message),
        }
    }

    pub(super) fn optimizer(&self, raw: &RawOptimizer) -> Result<OptimizerSpec, E> {
        let method = Method::parse(&raw.method).ok_or_else(|| {
            (self.at)(
                "lifetime.optimizer.method",
                format!(
                    "unknown optimiser `{}` (expected one of: {})",
                    raw.method,
                    Method::NAMES.join(", ")
                ),
            )
        })?;
        for (field, v, ok) in [
            ("lr", raw.lr, raw.lr > 0.0),
            ("momentum", raw.momentum, (0.0..1.0).contains(&raw.momentum)),
            ("weight_decay", raw.weight_decay, raw.weight_decay >= 0.0),
            ("beta2", raw.beta2, (0.0..1.0).contains(&raw.beta2)),
            ("eps", raw.eps, raw.eps > 0.0),
        ] {
            if !(ok && v.is_finite()) {
                return self.err(
                    &format!("optimizer.{field}"),
                    format!("`{field}` = {v} is out of range"),
                );
            }
        }
        if let Some(c) = raw.clip
            && !(c > 0.0 && c.is_finite())
        {
            return self.err(
                "optimizer.clip",
                format!("expected a positive gradient norm, found {c}"),
            );
        }
        let schedule = match raw.schedule.as_str() {
            "constant" => Schedule::Constant,
            "warmup-hold-cooldown" => Schedule::WarmupHoldCooldown {
                warmup: raw.warmup,
                cooldown: raw.cooldown,
            },
            "inverse-sqrt" => Schedule::InverseSqrt { warmup: raw.warmup },
            other => {
                return self.err(
                    "optimizer.schedule",
                    format!("unknown schedule `{other}` (expected one of: constant, warmup-hold-cooldown, inverse-sqrt)"),
                );
            }
        };
        Ok(OptimizerSpec {
            method,
            beta2: raw.beta2,
            eps: raw.eps,
            clip: raw.clip,
            schedule,
        })
    }
}

#[cfg(test)]
mod tests {
    //! The recurrent families a scenario names by `kind`: an LSTM is built
    //! where a GRU is, and a bad `hidden` is refused at the same field
    //! with the same message for both. The transformer's options for
    //! Reddy's model: they parse, their defaults leave the model as it was,
    //! and bad ones are refused at their field.

    use std::path::Path;

    use lineage_learn::spec::{Activation, LstmSpec, ModelSpec, SequenceInput, TransformerSpec};

    use crate::ScenarioError;

    const ICL: &str = "{ kind = \"icl\", classes = 64, dim = 8, labels = 8, pairs = 4, \
                       burstiness = 2, heldout = 50, seed = 3 }";
    const DECISION: &str = "{ kind = \"decision\", heldout = 20, seed = 1 }";
    const CLUSTERS: &str = "{ kind = \"gaussian_clusters\", classes = 4, dim = 8, spread = 1.0, heldout = 40, seed = 7 }";

    /// A scenario learning `environment` with `model`: its model, or the
    /// error's field and message.
    fn outcome(environment: &str, model: &str) -> Result<ModelSpec, (String, String)> {
        let text = format!(
            r#"
name = "recurrent"
generations = 1
population = 2
[genome]
genes = [{{ name = "unused", min = 0.0, max = 1.0 }}]
[fitness]
function = "heldout_loss"
[lifetime]
budget = 64
steps = 4
batch = 16
environment = {environment}
model = {model}
optimizer = {{ method = "adam", lr = 1e-3 }}
"#
        );
        match crate::from_str(&text, "test.toml", Path::new("."), &Default::default()) {
            Ok(s) => Ok(s
                .pressures_at(0)
                .lifetime
                .as_ref()
                .expect("the scenario has a lifetime")
                .model
                .clone()),
            Err(ScenarioError::Invalid(d)) => Err((d.field.clone(), d.message.clone())),
            Err(e) => panic!("not a located error: {e}"),
        }
    }

    #[test]
    fn an_lstm_reads_the_sequences_a_gru_reads() {
        // The ICL world: 9 + 8 values per step (one-hot label, item), 8
        // labels to answer.
        let got = outcome(ICL, "{ kind = \"lstm\", hidden = 16 }").unwrap();
        let ModelSpec::Lstm(LstmSpec {
            input: SequenceInput::Dense { dim },
            hidden: 16,
            outputs,
        }) = got
        else {
            panic!("not an LSTM reading real vectors: {got:?}");
        };
        let Ok(ModelSpec::Gru(gru)) = outcome(ICL, "{ kind = \"gru\", hidden = 16 }") else {
            panic!("the GRU does not read the ICL world");
        };
        assert_eq!(
            (gru.input, gru.outputs),
            (SequenceInput::Dense { dim }, outputs)
        );
        assert_eq!(got.family().describe()["forget_bias"], 1.0);
        let Ok(ModelSpec::Lstm(lstm)) = outcome(DECISION, "{ kind = \"lstm\", hidden = 4 }") else {
            panic!("the LSTM does not read the decision task");
        };
        assert_eq!(lstm.outputs, 3);
    }

    #[test]
    fn a_bad_lstm_is_refused_where_a_bad_gru_is() {
        for kind in ["gru", "lstm"] {
            let check = |environment: &str, fields: &str, field: &str, message: &str| {
                let model = format!("{{ kind = \"{kind}\"{fields} }}");
                let got = outcome(environment, &model);
                let Err((got_field, got_message)) = &got else {
                    panic!("{model} validated; expected an error at `{field}`");
                };
                assert!(
                    got_field == field && got_message.contains(message),
                    "{model}: expected `{field}`: …{message}…, got `{got_field}`: {got_message}"
                );
            };
            check(
                ICL,
                ", hidden = 0",
                "lifetime.model.hidden",
                "expected `hidden` of at least 1, found 0",
            );
            check(
                ICL,
                ", hidden = 2000000",
                "lifetime.model.hidden",
                "expected at most 1048576, found 2000000",
            );
            check(
                ICL,
                ", hidden = -3",
                "lifetime.model",
                "expected a non-negative integer, found integer `-3`",
            );
            check(
                ICL,
                "",
                "lifetime.model.hidden",
                "missing required key `hidden` in `lifetime.model`",
            );
            check(
                ICL,
                ", hidden = 8, alpha = 0.5",
                "lifetime.model.alpha",
                "unknown key `alpha` (valid keys here: hidden)",
            );
            check(
                CLUSTERS,
                ", hidden = 8",
                "lifetime.model",
                "this model cannot read the environment's data",
            );
        }
    }

    /// Reddy's world: 8 pairs, one-hot positions at a random offset in 65
    /// slots and 63 content dimensions, so tokens are 128 wide.
    const REDDY_ICL: &str = "{ kind = \"icl\", classes = 64, dim = 63, labels = 32, pairs = 8, \
                             burstiness = 4, positions = \"random_offset\", max_pairs = 32, \
                             heldout = 20, probe_sequences = 0, seed = 3 }";
    const REDDY: &str = "kind = \"transformer\", d_model = 128, heads = 1, layers = 2, d_ff = 0, \
                         layer_norm = false, embed = false, positions = false, attn_out = false, \
                         attn_scale = false, head = [128, 128, 128]";
    const HMM: &str = "{ kind = \"hmm\", tokens = 16, states = 4, context = 8, corpus = 500, heldout = 8, seed = 1 }";

    fn transformer(environment: &str, fields: &str) -> Result<TransformerSpec, (String, String)> {
        match outcome(environment, &format!("{{ {fields} }}"))? {
            ModelSpec::Transformer(t) => Ok(t),
            other => panic!("not a transformer: {other:?}"),
        }
    }

    #[test]
    fn reddys_transformer_reads_his_tokens_as_its_residual_stream() {
        let t = transformer(REDDY_ICL, REDDY).unwrap();
        assert_eq!(
            t,
            TransformerSpec {
                input: SequenceInput::Dense { dim: 128 },
                context: 17,
                d_model: 128,
                heads: 1,
                layers: 2,
                d_ff: 0,
                outputs: 32,
                layer_norm: false,
                activation: Activation::Gelu,
                embed: false,
                positions: false,
                attn_out: false,
                attn_scale: false,
                head: vec![128, 128, 128],
            }
        );
        let names: Vec<String> = ModelSpec::Transformer(t)
            .params()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names.first().map(String::as_str), Some("layers.0.attn.qkv"));
        assert_eq!(names.len(), 2 + 3 * 2 + 1);
    }

    #[test]
    fn a_transformer_without_the_new_keys_is_the_one_it_was() {
        let t = transformer(
            REDDY_ICL,
            "kind = \"transformer\", d_model = 16, heads = 2, layers = 1",
        )
        .unwrap();
        assert_eq!(
            (t.d_ff, t.layer_norm, t.activation, t.embed, t.positions),
            (64, true, Activation::Gelu, true, true)
        );
        assert_eq!((t.attn_out, t.attn_scale, t.head.len()), (true, true, 0));
        let t = transformer(
            HMM,
            "kind = \"transformer\", d_model = 16, heads = 2, layers = 1, d_ff = 0",
        )
        .unwrap();
        assert_eq!((t.d_ff, t.input), (0, SequenceInput::Tokens { vocab: 16 }));
    }

    #[test]
    fn bad_transformer_options_are_located() {
        let check = |environment: &str, fields: &str, field: &str, message: &str| {
            let got = transformer(environment, fields);
            let Err((got_field, got_message)) = &got else {
                panic!("{fields} validated; expected an error at `{field}`");
            };
            assert!(
                got_field == field && got_message.contains(message),
                "{fields}: expected `{field}`: …{message}…, got `{got_field}`: {got_message}"
            );
        };
        let reddy = |change: &str| format!("{REDDY}, {change}");
        check(
            REDDY_ICL,
            &REDDY.replace("d_model = 128", "d_model = 64"),
            "lifetime.model.d_model",
            "with `embed = false` the inputs are the residual stream, so d_model must equal the environment's input width 128, found 64",
        );
        check(
            REDDY_ICL,
            &REDDY.replace("head = [128, 128, 128]", "head = [128, 0]"),
            "lifetime.model.head[1]",
            "expected a layer width of at least 1, found 0",
        );
        check(
            REDDY_ICL,
            &REDDY.replace("head = [128, 128, 128]", "head = [2000000]"),
            "lifetime.model.head[0]",
            "expected at most 1048576, found 2000000",
        );
        check(
            REDDY_ICL,
            &REDDY.replace("head = [128, 128, 128]", "head = 128"),
            "lifetime.model",
            "expected a sequence, found integer `128`",
        );
        check(
            HMM,
            "kind = \"transformer\", d_model = 16, heads = 1, layers = 1, embed = false",
            "lifetime.model.embed",
            "`embed = false` needs real-valued inputs",
        );
        check(
            REDDY_ICL,
            &reddy("attn_bias = false"),
            "lifetime.model.attn_bias",
            "unknown key `attn_bias`",
        );
    }
}
