//! The fuzz targets' properties (`fuzz/src/guard_case.rs`, `fuzz/src/planner_case.rs`) on
//! stable, bounded: every seed (the SQL
//! guard corpus in each dialect, every question of the question files) and a fixed number of
//! inputs mutated from them by a seeded generator, so a run is the same every time. The
//! coverage-guided runs are `cargo +nightly fuzz run sql_guard|planner` in `fuzz/`;
//! `write_seed_corpus` (ignored) writes their seed corpora from the same seeds.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod planner_support;

#[path = "../fuzz/src/guard_case.rs"]
mod guard_case;
#[path = "../fuzz/src/planner_case.rs"]
mod planner_case;

use std::time::Instant;

const GUARD_CORPUS: &str = include_str!("../sqlguard/src/sql_guard_corpus.yaml");
const VARIANTS: &str = include_str!("questions/plant-ops.variants.jsonl");
/// Mutated inputs per target in CI.
const GUARD_MUTANTS: usize = 20_000;
const PLANNER_MUTANTS: usize = 5_000;

/// Fragments the mutator inserts: what SQL injection, quoting and the planner's vocabulary are
/// made of.
const TOKENS: &[&str] = &[
    "'",
    "\"",
    "`",
    ";",
    "--",
    "/*",
    "*/",
    "(",
    ")",
    ",",
    " UNION SELECT ",
    " users ",
    " credentials ",
    " FROM ",
    " WHERE ",
    " OR 1=1",
    " LIMIT ",
    " OFFSET ",
    "$1",
    "?",
    ":name",
    " WITH x AS (",
    " SELECT * ",
    " JOIN ",
    " tenant_id ",
    "'globex'",
    "\\",
    "\u{0}",
    "\u{feff}",
    "é",
    "한글",
    "최근 7일",
    "GT-01",
    "SAN-01",
    " last week",
    " average",
    " 장애 시 ",
    "%",
    "9999999999999999999999",
    "-1",
    "NULL",
    " pg_sleep(1) ",
    " information_schema.tables ",
    " INTO OUTFILE ",
    " LOAD_FILE(",
    " ATTACH ",
    " PRAGMA ",
    " COPY ",
    "\n",
    "\t",
];

/// xorshift64*: small, seeded, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four edits of a seed: byte flips, inserted fragments, cut or repeated ranges, or
/// another seed's tail spliced on. `keep_first` keeps the dialect byte of guard inputs.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], keep_first: bool) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    let start = usize::from(keep_first);
    for _ in 0..=rng.below(4) {
        let len = data.len();
        let at = start + rng.below(len.saturating_sub(start) + 1);
        let at = at.min(len);
        match rng.below(5) {
            0 if at < len => data[at] ^= 1 << rng.below(8),
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                data.splice(at..at, token.iter().copied());
            }
            2 if at < len => {
                let end = (at + 1 + rng.below(8)).min(len);
                data.drain(at..end);
            }
            3 if at < len => {
                let end = (at + 1 + rng.below(16)).min(len);
                let copy: Vec<u8> = data[at..end].to_vec();
                data.splice(at..at, copy);
            }
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1).max(start).min(other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

fn guard_seeds() -> Vec<Vec<u8>> {
    let entries: Vec<serde_yaml::Value> = serde_yaml::from_str(GUARD_CORPUS).unwrap();
    let mut seeds = Vec::new();
    for entry in &entries {
        let sql = entry["sql"].as_str().unwrap();
        for dialect in 0..3u8 {
            let mut seed = vec![dialect];
            seed.extend_from_slice(sql.as_bytes());
            seeds.push(seed);
        }
    }
    seeds
}

fn planner_seeds() -> Vec<Vec<u8>> {
    [
        ops_datasets::plant_ops::QUESTIONS_JSONL,
        VARIANTS,
        ops_datasets::hospital_fm::QUESTIONS_JSONL,
    ]
    .iter()
    .flat_map(|file| file.lines().filter(|l| !l.trim().is_empty()))
    .map(|line| {
        let q: serde_json::Value = serde_json::from_str(line).unwrap();
        q["question"].as_str().unwrap().as_bytes().to_vec()
    })
    .collect()
}

/// Runs every seed and `mutants` mutated inputs through `case`; how many mutants it reports
/// as fully checked (for the guard: accepted, so the rewrite's properties were checked).
fn run(
    name: &str,
    seeds: &[Vec<u8>],
    mutants: usize,
    keep_first: bool,
    case: fn(&[u8]) -> bool,
) -> usize {
    let started = Instant::now();
    for seed in seeds {
        case(seed);
    }
    let mut rng = Rng(0x0b5e_55ed_f00d_cafe);
    let mut checked = 0;
    for _ in 0..mutants {
        checked += usize::from(case(&mutate(&mut rng, seeds, keep_first)));
    }
    println!(
        "{name}: {} seeds and {mutants} mutants ({checked} fully checked) in {:.1} s, no property violated",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    checked
}

#[test]
fn the_sql_guard_holds_on_its_corpus_and_mutants() {
    let seeds = guard_seeds();
    assert!(seeds.len() > 300, "{}", seeds.len());
    let accepted = run(
        "sql_guard",
        &seeds,
        GUARD_MUTANTS,
        true,
        guard_case::guard_case,
    );
    // Enough mutants get through the guard for the rewrite's properties to be exercised.
    assert!(accepted > GUARD_MUTANTS / 100, "{accepted}");
}

#[test]
fn the_planner_holds_on_the_questions_and_mutants() {
    let seeds = planner_seeds();
    assert!(seeds.len() > 150, "{}", seeds.len());
    run(
        "planner",
        &seeds,
        PLANNER_MUTANTS,
        false,
        planner_case::planner_case,
    );
}

/// Inputs the coverage-guided runs found to crash, kept as regressions: a window of
/// 99,999,999,999 days overflowed the date arithmetic (found by the planner target in 17 s).
#[test]
fn crashes_the_fuzzers_found_stay_fixed() {
    let planner_crashes: &[&[u8]] = &[
        b"Average and p\xc0eak CPU u99999999999d p\xc0eak CPU u999999999999999999\xbc 1\xec\xa3\xbc+9999999\xbc 1\xec\xa3\xbc+\xec\x9dast 7 day3",
        "GT-01 CPU average over the last 99999999999 days".as_bytes(),
        "최근 999999999999999시간 GT-01 CPU 평균".as_bytes(),
    ];
    for input in planner_crashes {
        planner_case::planner_case(input);
    }
}

/// `cargo test -p ops-tests --test fuzz_smoke -- --ignored write_seed_corpus` writes the seeds
/// as libFuzzer corpora under `fuzz/corpus/<target>/`.
#[test]
#[ignore = "writes files for the coverage-guided runs"]
fn write_seed_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, seeds) in [("sql_guard", guard_seeds()), ("planner", planner_seeds())] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:04}")), seed).unwrap();
        }
        println!("{}: {} seeds", dir.display(), seeds.len());
    }
}
