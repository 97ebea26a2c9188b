//! ROUTE+PLAN benchmark (one run): the deterministic planner alone on every question of the
//! public file, of our variants and of the hospital-fm file, for the tenant each names, with
//! that data set's Knowledge (built from its assets and the tenant's rows as the snapshot
//! builds it). Reports
//! p50 and p99 per question over many rounds, and the slowest questions.
//! `cargo bench -p ops-tests --bench planner`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../planner_support/mod.rs"]
mod planner_support;

use std::collections::BTreeMap;
use std::time::Instant;

use ops_controlplane::demo;
use ops_controlplane::route_plan::planner::{self, Knowledge};
use ops_datasets::{hospital_fm, plant_ops};
use serde_json::Value as Json;

const VARIANTS_JSONL: &str = include_str!("../questions/plant-ops.variants.jsonl");

fn percentile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[((samples.len() - 1) as f64 * q) as usize]
}

fn main() {
    let tenants: BTreeMap<&str, Knowledge> = demo::DEMO_TENANTS
        .iter()
        .map(|t| (*t, planner_support::knowledge(t)))
        .chain(
            hospital_fm::TENANTS
                .iter()
                .map(|t| (*t, planner_support::hospital_knowledge(t))),
        )
        .collect();
    let questions: Vec<(String, String, time::OffsetDateTime, String)> = plant_ops::QUESTIONS_JSONL
        .lines()
        .chain(VARIANTS_JSONL.lines())
        .chain(hospital_fm::QUESTIONS_JSONL.lines())
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let q: Json = serde_json::from_str(line).expect("question line");
            let as_of = time::OffsetDateTime::parse(
                q["as_of"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            (
                q["id"].as_str().unwrap().to_owned(),
                q["tenant"].as_str().unwrap().to_owned(),
                as_of,
                q["question"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let rounds = 200;
    let mut all = Vec::new();
    let mut per_question: Vec<(String, Vec<f64>)> = Vec::new();
    for (id, tenant, as_of, question) in &questions {
        let k = &tenants[tenant.as_str()];
        for _ in 0..20 {
            std::hint::black_box(planner::plan(k, question, *as_of, None));
        }
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let started = Instant::now();
            std::hint::black_box(planner::plan(k, question, *as_of, None));
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        all.extend(samples.iter().copied());
        per_question.push((format!("{id} {question}"), samples));
    }
    println!(
        "ROUTE+PLAN over {} questions (plant-ops public + variants, hospital-fm), {rounds} rounds each: p50 {:.4} ms, p99 {:.4} ms",
        questions.len(),
        percentile(&mut all, 0.5),
        percentile(&mut all, 0.99)
    );
    let mut medians: Vec<(f64, String)> = per_question
        .iter_mut()
        .map(|(q, s)| (percentile(s, 0.5), q.clone()))
        .collect();
    medians.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
    println!("slowest questions (p50):");
    for (ms, q) in medians.iter().take(5) {
        println!("  {ms:.4} ms  {q}");
    }
}
