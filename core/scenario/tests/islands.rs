//! `[islands]`: validation with located errors, per-island overrides, and
//! who sends migrants to whom.

use std::path::Path;

use lineage_scenario::{Choice, Overrides, Topology, from_str};
use rand::SeedableRng;

const BASE: &str = r#"
name = "archipelago"
seed = 5
generations = 20
population = 10
[genome]
bits = 32
[fitness]
function = "onemax"
[selection]
method = "tournament"
tournament_size = 2
[mutation]
bit_rate = 0.03
"#;

fn with(islands: &str) -> String {
    format!("{BASE}\n{islands}\n")
}

fn error(islands: &str) -> String {
    match from_str(
        &with(islands),
        "a.toml",
        Path::new("."),
        &Overrides::default(),
    ) {
        Ok(_) => panic!("accepted:\n{islands}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn islands_take_their_overrides_in_order() {
    let text = with(
        r#"[islands]
count = 4
migration_interval = 3
migrants = 2
topology = "full"
emigrants = "random"
[[islands.override]]
islands = [1, 3]
set = { mutation = { bit_rate = 0.1 } }
[[islands.override]]
islands = [3]
set = { population = 12 }
"#,
    );
    let s = from_str(&text, "a.toml", Path::new("."), &Overrides::default()).unwrap();
    let islands = s.islands.expect("islands");
    assert_eq!(
        (islands.count, islands.migration_interval, islands.migrants),
        (4, 3, 2)
    );
    assert_eq!(islands.topology, Topology::Full);
    assert_eq!(
        (islands.emigrants, islands.replace),
        (Choice::Random, Choice::Worst)
    );
    let rates: Vec<f64> = islands
        .scenarios
        .iter()
        .map(|s| s.pressures_at(0).mutation.bit_rate)
        .collect();
    assert_eq!(rates, [0.03, 0.1, 0.03, 0.1]);
    let populations: Vec<usize> = islands
        .scenarios
        .iter()
        .map(|s| s.pressures_at(0).population)
        .collect();
    assert_eq!(populations, [10, 10, 10, 12]);
    // Every island's resolved scenario loads back without the table.
    for island in &islands.scenarios {
        assert!(island.islands.is_none());
        let back = from_str(
            &island.resolved_toml,
            "i.toml",
            Path::new("."),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(back.pressures_at(0), island.pressures_at(0));
    }
}

#[test]
fn bad_islands_are_named_where_they_are() {
    let cases: [(&str, &[&str]); 9] = [
        ("[islands]\ncount = 0", &["islands.count", "found 0"]),
        (
            "[islands]\ncount = 3\nmigration_interval = 0",
            &["islands.migration_interval"],
        ),
        (
            "[islands]\ncount = 3\ntopology = \"rnig\"",
            &["islands.topology", "did you mean `ring`"],
        ),
        (
            "[islands]\ncount = 3\ntopology = \"random\"",
            &["islands.topology", "islands.degree"],
        ),
        (
            "[islands]\ncount = 3\ntopology = \"random\"\ndegree = 3",
            &["islands.degree", "1 to 2"],
        ),
        (
            "[islands]\ncount = 6\ntopology = \"torus\"\nrows = 4",
            &["islands.rows", "4 does not divide 6"],
        ),
        (
            "[islands]\ncount = 3\nmigrants = 10",
            &["islands.migrants", "10 organisms"],
        ),
        (
            "[islands]\ncount = 3\n[[islands.override]]\nislands = [3]\nset = { population = 4 }",
            &[
                "islands.override[0].islands",
                "island 3 does not exist",
                "0 to 2",
            ],
        ),
        (
            "[islands]\ncount = 3\n[[islands.override]]\nislands = [0]\nset = { generations = 4 }",
            &[
                "islands.override[0].set.generations",
                "cannot be set per island",
            ],
        ),
    ];
    for (islands, needles) in cases {
        let err = error(islands);
        for n in needles {
            assert!(err.contains(n), "expected {n:?} in:\n{err}");
        }
        assert!(err.contains("a.toml:"), "no location in:\n{err}");
    }
}

#[test]
fn topologies_send_to_the_expected_islands() {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
    assert_eq!(Topology::Ring.targets(3, 4, &mut rng), [0]);
    assert_eq!(Topology::Ring.targets(0, 1, &mut rng), Vec::<usize>::new());
    assert_eq!(Topology::Full.targets(1, 4, &mut rng), [0, 2, 3]);
    // A 2 x 3 torus: island 4 is row 1, column 1.
    assert_eq!(
        Topology::Torus { rows: 2 }.targets(4, 6, &mut rng),
        [1, 3, 5]
    );
    for island in 0..5 {
        let t = Topology::Random { degree: 2 }.targets(island, 5, &mut rng);
        assert_eq!(t.len(), 2);
        assert!(!t.contains(&island) && t.iter().all(|&k| k < 5), "{t:?}");
    }
}
