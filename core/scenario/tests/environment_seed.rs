//! An environment's `seed = "run"`: each run seed builds its own
//! environment (the rich/lazy exception averages over teachers this way).

use std::path::Path;

use lineage_env::{Environment, LinearTeacher};
use lineage_scenario::{Overrides, ScenarioError, from_str};

fn scenario(seed: &str) -> String {
    format!(
        r#"
name = "teacher-per-run"
seed = 3
generations = 1
population = 1
[genome]
genes = [{{ name = "unused", min = 0.0, max = 1.0 }}]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
tournament_size = 1
[lifetime]
budget = 64
steps = 2
batch = 8
environment = {{ kind = "linear_teacher", inputs = 4, kappa = 3.0, heldout = 10, seed = {seed} }}
model = {{ kind = "mlp", hidden = [4], activation = "linear", bias = false }}
"#
    )
}

fn direction(text: &str, run_seed: Option<u64>) -> Vec<f32> {
    let overrides = Overrides {
        seed: run_seed,
        ..Overrides::default()
    };
    let s = from_str(text, "s.toml", Path::new("."), &overrides).unwrap();
    let lifetime = s.pressures_at(0).lifetime.clone().expect("a lifetime");
    lifetime
        .environment
        .env
        .task_direction()
        .expect("a task direction")
}

fn teacher(seed: u64) -> Vec<f32> {
    LinearTeacher::new(4, 3.0, 10, seed)
        .unwrap()
        .task_direction()
        .unwrap()
}

#[test]
fn run_seeds_build_their_own_environment() {
    let text = scenario("\"run\"");
    assert_eq!(direction(&text, None), teacher(3));
    assert_eq!(direction(&text, Some(8)), teacher(8));
    assert_ne!(teacher(3), teacher(8));
    // A fixed seed stays fixed whatever the run's.
    assert_eq!(direction(&scenario("5"), Some(8)), teacher(5));
}

#[test]
fn a_seed_that_is_neither_a_number_nor_run_is_located() {
    for bad in ["\"runs\"", "-1"] {
        let err = from_str(
            &scenario(bad),
            "s.toml",
            Path::new("."),
            &Overrides::default(),
        )
        .unwrap_err();
        let ScenarioError::Invalid(d) = &err else {
            panic!("{err}")
        };
        assert!(d.field.starts_with("lifetime.environment"), "{err}");
        assert!(err.to_string().contains("\"run\""), "{err}");
    }
}
