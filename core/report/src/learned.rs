//! Which runs learned what they were set: `--learned METRIC>=VALUE` (or
//! `<=`). A run whose value fails the criterion, or that has none (its
//! lifetime diverged), did not learn: the report lists it apart and
//! leaves it out of every statistic, so that a lifetime that never learned
//! the task cannot pass for an extreme of a measure of how it learned.

use std::fmt;
use std::str::FromStr;

/// A criterion on one metric of a run's last generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Learned {
    /// The metric, as the report names it (`rl:recurrent/decision_accuracy`).
    pub metric: String,
    /// `>=` (true) or `<=` (false).
    pub at_least: bool,
    /// The threshold.
    pub value: f64,
}

impl Learned {
    /// Whether a run with `value` (none: no value) learned.
    pub fn holds(&self, value: Option<f64>) -> bool {
        match value {
            Some(v) if self.at_least => v >= self.value,
            Some(v) => v <= self.value,
            None => false,
        }
    }
}

impl FromStr for Learned {
    type Err = String;

    fn from_str(s: &str) -> Result<Learned, String> {
        let (metric, at_least, value) = if let Some((m, v)) = s.split_once(">=") {
            (m, true, v)
        } else if let Some((m, v)) = s.split_once("<=") {
            (m, false, v)
        } else {
            return Err(format!(
                "expected METRIC>=VALUE or METRIC<=VALUE (e.g. rl:recurrent/decision_accuracy>=0.6), found `{s}`"
            ));
        };
        let metric = metric.trim();
        if metric.is_empty() {
            return Err(format!("no metric before the comparison in `{s}`"));
        }
        let value: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("`{}` is not a finite number in `{s}`", value.trim()))?;
        Ok(Learned {
            metric: metric.to_owned(),
            at_least,
            value,
        })
    }
}

impl fmt::Display for Learned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.at_least { ">=" } else { "<=" };
        write!(f, "{}{op}{}", self.metric, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_parse_hold_and_print() {
        let c: Learned = "rl:recurrent/decision_accuracy >= 0.6".parse().unwrap();
        assert_eq!(c.metric, "rl:recurrent/decision_accuracy");
        assert!(c.holds(Some(0.6)) && !c.holds(Some(0.59)) && !c.holds(None));
        assert_eq!(c.to_string(), "rl:recurrent/decision_accuracy>=0.6");
        let c: Learned = "final_heldout<=0.5".parse().unwrap();
        assert!(c.holds(Some(0.1)) && !c.holds(Some(0.7)));
        for bad in ["accuracy", ">=0.5", "accuracy>=x", "accuracy>=inf"] {
            assert!(bad.parse::<Learned>().is_err(), "{bad}");
        }
    }
}
