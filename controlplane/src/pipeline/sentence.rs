//! The answer line as a sentence in the question's language: it restates what was asked (the
//! CI, metric, aggregation, window, filters) from the plan and gives the result from the tool
//! results, with the wording of the snapshot's answer sentences (built in, or the tenant's
//! Prompt of purpose `answer`). Data the sentence cannot place leaves the generic line.

use ops_proto::v1::{Plan, TimeWindow, ToolResult};
use pbjson_types::value::Kind;

use crate::model::plan_kind::{Aggregation, Intent, Mode, View};
use crate::model::sentences::{Sentences, fill, number, render, with_unit};
use crate::model::snapshot::Snapshot;
use crate::route_plan::knowledge::table_columns;
use crate::route_plan::planner::ToolChoice;

/// Items a list names before "and N more".
const LISTED: usize = 10;

/// The answer line of `plan`'s results, or `None` when no sentence fits them.
pub(super) fn sentence(
    snapshot: &Snapshot,
    question: &str,
    plan: &Plan,
    results: &[ToolResult],
) -> Option<String> {
    let words = Words::new(snapshot, question);
    match plan.mode.parse::<Mode>().ok()? {
        Mode::Metric => words.metric(plan, results),
        Mode::Config => words.config(plan, results),
        Mode::History => words.history(plan, results),
        Mode::Graph => words.graph(plan, results),
        Mode::Document => words.documents(plan, results),
    }
}

/// "No data matched the question." in the question's language.
pub(super) fn no_data(snapshot: &Snapshot, question: &str) -> Option<String> {
    let words = Words::new(snapshot, question);
    words.say("no_data", Vec::new())
}

struct Words<'a> {
    snapshot: &'a Snapshot,
    sentences: &'a Sentences,
    lang: &'a str,
}

type Vars = Vec<(&'static str, String)>;

impl<'a> Words<'a> {
    fn new(snapshot: &'a Snapshot, question: &str) -> Self {
        let sentences = &snapshot.sentences;
        Words {
            snapshot,
            sentences,
            lang: sentences.language_of(question),
        }
    }

    /// The sentence of `case`; of `<case>_none` or `<case>_one` first when the count is 0 or
    /// 1 and the language has one (English nouns change with the count, Korean ones do not).
    fn say(&self, case: &str, vars: Vars) -> Option<String> {
        let count = vars
            .iter()
            .find(|(k, _)| *k == "count")
            .map(|(_, v)| v.as_str());
        let variant = match count {
            Some("0") => Some(format!("{case}_none")),
            Some("1") => Some(format!("{case}_one")),
            _ => None,
        };
        let template = variant
            .and_then(|v| self.sentences.sentence_exact(self.lang, &v))
            .or_else(|| self.sentences.sentence(self.lang, case))?;
        Some(render(template, &vars))
    }

    fn word(&self, key: &str, vars: &[(&str, String)]) -> String {
        self.sentences
            .word(self.lang, key)
            .map(|w| fill(w, vars))
            .unwrap_or_default()
    }

    /// `display` when it is written in the question's language, else the fullest synonym
    /// that is ("CPU 사용률" rather than "CPU"; the first among equals), else `fallback`.
    fn pick(&self, display: &str, synonyms: &[String], fallback: &str) -> String {
        if !display.is_empty() && self.sentences.is_in(self.lang, display) {
            return display.to_owned();
        }
        synonyms
            .iter()
            .filter(|c| self.sentences.is_in(self.lang, c))
            .min_by_key(|c| std::cmp::Reverse(c.chars().count()))
            .cloned()
            .unwrap_or_else(|| fallback.to_owned())
    }

    /// A CI as the answer names it: its name in the question's language with its code.
    fn entity(&self, code: &str) -> String {
        let Some(entity) = self
            .snapshot
            .knowledge
            .entities
            .iter()
            .find(|e| e.code == code)
        else {
            return code.to_owned();
        };
        let name = entity
            .names
            .iter()
            .find(|n| self.sentences.is_in(self.lang, n) && !n.eq_ignore_ascii_case(code));
        match name {
            Some(name) => self.word(
                "named",
                &[("name", name.clone()), ("code", code.to_owned())],
            ),
            None => code.to_owned(),
        }
    }

    fn entities(&self, plan: &Plan) -> String {
        let names: Vec<String> = plan.ci_codes.iter().map(|c| self.entity(c)).collect();
        names.join(&self.word("and", &[]))
    }

    /// A catalog name in the question's language: its display name or a synonym written in
    /// it, else the display name, else the name.
    fn label(&self, name: &str, display: &str, synonyms: &[String]) -> String {
        let fallback = if display.is_empty() { name } else { display };
        self.pick(display, synonyms, fallback)
    }

    fn metric_name(&self, metric: &str) -> String {
        let catalog = &self.snapshot.catalog.spec;
        catalog
            .metrics
            .as_ref()
            .and_then(|m| m.metrics.iter().find(|d| d.name == metric))
            .map_or_else(
                || metric.to_owned(),
                |d| self.label(&d.name, &d.display_name, &d.synonyms),
            )
    }

    fn table_name(&self, table: &str) -> String {
        let catalog = &self.snapshot.catalog.spec;
        catalog.tables.iter().find(|t| t.name == table).map_or_else(
            || table.to_owned(),
            |t| self.label(&t.name, &t.display_name, &t.synonyms),
        )
    }

    fn column_name(&self, table: &str, column: &str) -> String {
        table_columns(&self.snapshot.catalog.spec, table)
            .find(|c| c.name == column)
            .map_or_else(
                || column.to_owned(),
                |c| self.label(&c.name, &c.display_name, &c.synonyms),
            )
    }

    /// A column value in the question's language: a vocabulary synonym of it
    /// (`value:<table>.<column>=<value>`) written in that language, else the value.
    /// A column's value with the catalog's unit when it is a number ("600 kW").
    fn measured(&self, table: &str, column: &str, value: &str) -> String {
        let unit = table_columns(&self.snapshot.catalog.spec, table)
            .find(|c| c.name == column)
            .map(|c| c.unit.as_str())
            .unwrap_or_default();
        match value.parse::<f64>() {
            Ok(n) if !unit.is_empty() => with_unit(n, unit),
            _ => value.to_owned(),
        }
    }

    fn value_name(&self, table: &str, column: &str, value: &str) -> String {
        let meaning = format!("value:{table}.{column}={value}");
        let terms = self.snapshot.knowledge.vocabulary.terms(&meaning);
        if self.sentences.is_in(self.lang, value) || value.chars().all(|c| !c.is_alphabetic()) {
            return value.to_owned();
        }
        self.pick("", terms, value)
    }

    fn window(&self, window: Option<&TimeWindow>) -> String {
        let Some(w) = window else {
            return String::new();
        };
        let named = w.label.replace(' ', "_");
        if self
            .sentences
            .word(self.lang, &format!("window.{named}"))
            .is_some()
        {
            return self.word(&format!("window.{named}"), &[]);
        }
        let (Some(from), Some(to)) = (&w.from, &w.to) else {
            return String::new();
        };
        let hours = (to.seconds - from.seconds) / 3600;
        match hours {
            1 => self.word("window.hour", &[]),
            h if h >= 48 && h % 24 == 0 => self.word("window.days", &[("n", (h / 24).to_string())]),
            h => self.word("window.hours", &[("n", h.to_string())]),
        }
    }

    fn aggregation(&self, aggregation: &str) -> String {
        self.word(&format!("aggregation.{aggregation}"), &[])
    }

    fn tool(&self, plan: &Plan) -> Option<&'a ToolChoice> {
        let name = plan.tools.first()?;
        self.snapshot
            .knowledge
            .tools
            .iter()
            .find(|t| &t.name == name)
    }

    /// "average and maximum" / "평균과 최댓값": the last item joined by the language's "and".
    fn series(&self, mut items: Vec<String>) -> String {
        let Some(last) = items.pop() else {
            return String::new();
        };
        if items.is_empty() {
            return last;
        }
        let and_last = self
            .sentences
            .word(self.lang, "and_last")
            .unwrap_or(" and ");
        // Filled as one text, so a particle in "and" follows the item before it.
        fill(
            &format!("{}{and_last}{last}", items.join(&self.word("and", &[]))),
            &[],
        )
    }

    /// `items` joined, the first [`LISTED`] of them, and the "and N more" of the rest.
    fn listed(&self, items: Vec<String>) -> (String, String) {
        let more = items.len().saturating_sub(LISTED);
        let shown: Vec<String> = items.into_iter().take(LISTED).collect();
        let more = if more > 0 {
            self.word("more", &[("n", more.to_string())])
        } else {
            String::new()
        };
        (shown.join(&self.word("and", &[])), more)
    }

    /// "configuration items with system ERP, type server": a table's rows narrowed by filters.
    fn subject(&self, table: &str, things: String, filters: &[(String, String)]) -> String {
        self.subject_with(table, things, filters, Vec::new())
    }

    /// [`Self::subject`] with further conditions already worded (comparisons).
    fn subject_with(
        &self,
        table: &str,
        things: String,
        filters: &[(String, String)],
        more: Vec<String>,
    ) -> String {
        if filters.is_empty() && more.is_empty() {
            return things;
        }
        // A key may name another table's column ("ci_master.system" on events).
        let mut described: Vec<String> = filters
            .iter()
            .map(|(key, value)| {
                let (table, column) = key.split_once('.').unwrap_or((table, key));
                format!(
                    "{} {}",
                    self.column_name(table, column),
                    self.value_name(table, column, value)
                )
            })
            .collect();
        described.extend(more);
        self.word(
            "filtered",
            &[
                ("things", things),
                ("filters", described.join(&self.word("and", &[]))),
            ],
        )
    }

    fn metric(&self, plan: &Plan, results: &[ToolResult]) -> Option<String> {
        let metric = plan.metric.as_ref()?;
        let result = results.iter().rev().find(|r| r.kind == "metric")?;
        let unit = text_field(result, "unit");
        let rows = Rows::new(result);
        let code_of = |row: usize| rows.text(row, "ci_code");
        let value_of = |row: usize| rows.number(row, "value");
        let mut vars: Vars = vec![
            ("metric", self.metric_name(&metric.metric)),
            ("aggregation", self.aggregation(&metric.aggregation)),
            ("window", self.window(metric.window.as_ref())),
            ("entity", self.entities(plan)),
        ];
        // "CPU above 80%": the CIs whose aggregate passed, however many.
        if !metric.threshold_op.is_empty() && metric.bucket.is_empty() {
            let items: Vec<String> = (0..rows.len())
                .filter_map(|row| {
                    let value = with_unit(value_of(row)?, &unit);
                    let code = code_of(row)?;
                    Some(self.word("item_value", &[("code", code), ("value", value)]))
                })
                .collect();
            let count = items.len().to_string();
            let (items, more) = self.listed(items);
            vars.extend([
                (
                    "threshold",
                    self.word(
                        &format!("threshold.{}", metric.threshold_op),
                        &[("value", with_unit(metric.threshold, &unit))],
                    ),
                ),
                ("count", count),
                ("items", items),
                ("more", more),
            ]);
            return self.say("metric_threshold", vars);
        }
        // "average and peak": one single-valued result per aggregation.
        let per_aggregation: Vec<&ToolResult> =
            results.iter().filter(|r| r.kind == "metric").collect();
        if per_aggregation.len() > 1
            && metric.bucket.is_empty()
            && metric.top_n == 0
            && per_aggregation.iter().all(|r| r.rows.len() == 1)
        {
            let mut names = Vec::new();
            let mut values = Vec::new();
            for r in &per_aggregation {
                let rows = Rows::new(r);
                names.push(self.aggregation(&text_field(r, "aggregation")));
                values.push(with_unit(rows.number(0, "value")?, &unit));
            }
            if let Some(code) = Rows::new(per_aggregation[0]).text(0, "ci_code") {
                vars.retain(|(k, _)| *k != "entity");
                vars.push(("entity", self.entity(&code)));
            }
            vars.retain(|(k, _)| *k != "aggregation");
            vars.extend([
                ("aggregations", self.series(names)),
                ("values", self.series(values)),
            ]);
            return self.say("metric_aggregates", vars);
        }
        if !metric.bucket.is_empty() {
            let values: Vec<f64> = (0..rows.len()).filter_map(value_of).collect();
            let min = values.iter().copied().reduce(f64::min)?;
            let max = values.iter().copied().reduce(f64::max)?;
            vars.extend([
                ("points", values.len().to_string()),
                ("min", with_unit(min, &unit)),
                ("max", with_unit(max, &unit)),
            ]);
            return self.say("metric_series", vars);
        }
        let items: Vec<String> = (0..rows.len())
            .filter_map(|row| {
                let value = with_unit(value_of(row)?, &unit);
                Some(match code_of(row) {
                    Some(code) => self.word("item_value", &[("code", code), ("value", value)]),
                    None => value,
                })
            })
            .collect();
        if metric.top_n > 0 {
            let order = if metric.ascending { "bottom" } else { "top" };
            vars.extend([
                ("order", self.word(&format!("order.{order}"), &[])),
                ("n", items.len().to_string()),
                ("items", items.join(&self.word("and", &[]))),
            ]);
            return self.say("metric_rank", vars);
        }
        if rows.len() == 1 {
            let value = with_unit(value_of(0)?, &unit);
            if let Some(code) = code_of(0) {
                vars.retain(|(k, _)| *k != "entity");
                vars.push(("entity", self.entity(&code)));
            }
            vars.push(("value", value));
            let latest = metric.aggregation.parse() == Ok(Aggregation::Latest);
            return self.say(
                if latest {
                    "metric_latest"
                } else {
                    "metric_value"
                },
                vars,
            );
        }
        if items.is_empty() {
            return None;
        }
        let (items, more) = self.listed(items);
        vars.extend([("items", items), ("more", more)]);
        // A two-step question restates the events its CIs had.
        if let Some((events, events_window)) =
            plan.subject.as_deref().and_then(|s| self.events_phrase(s))
        {
            vars.extend([("events", events), ("events_window", events_window)]);
            return self.say("metric_values_with", vars);
        }
        self.say("metric_values", vars)
    }

    fn config(&self, plan: &Plan, results: &[ToolResult]) -> Option<String> {
        let tool = self.tool(plan)?;
        let table = tool.table.as_str();
        let result = results.last()?;
        let intent = plan.intent.parse::<Intent>().ok()?;
        let filters: Vec<(String, String)> = plan
            .filters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect();
        // "capacity over 100", "registered before 2025-01-01".
        let compared: Vec<String> = plan
            .comparisons
            .iter()
            .map(|c| {
                let day = c
                    .value
                    .get(..10)
                    .filter(|d| c.value.len() > 10 && d.as_bytes().get(4) == Some(&b'-'));
                let (key, value) = match day {
                    Some(day) => (format!("compare.date_{}", c.op), day.to_owned()),
                    None => (format!("compare.{}", c.op), c.value.clone()),
                };
                self.word(
                    &key,
                    &[
                        ("column", self.column_name(table, &c.column)),
                        ("value", value),
                    ],
                )
            })
            .collect();
        let subject = self.subject_with(table, self.table_name(table), &filters, compared);
        let rows = Rows::new(result);
        match intent {
            Intent::Aggregate => {
                let count = number_field(result, "count")?;
                self.say(
                    "count",
                    vec![("subject", subject), ("count", number(count))],
                )
            }
            Intent::Lookup if !plan.attributes.is_empty() => {
                // Rows of (code, attribute, value).
                let pairs: Vec<(String, String, String)> = (0..rows.len())
                    .filter_map(|row| {
                        Some((
                            rows.cell_text(row, 0)?,
                            rows.cell_text(row, 1)?,
                            rows.cell_text(row, 2).unwrap_or_default(),
                        ))
                    })
                    .collect();
                if let [(code, attribute, value)] = pairs.as_slice() {
                    return self.say(
                        "attribute",
                        vec![
                            ("entity", self.entity(code)),
                            ("attribute", self.column_name(table, attribute)),
                            ("value", self.measured(table, attribute, value)),
                        ],
                    );
                }
                let code = pairs.first().map(|p| p.0.clone())?;
                let details = pairs
                    .iter()
                    .map(|(_, a, v)| {
                        self.detail(&self.column_name(table, a), &self.measured(table, a, v))
                    })
                    .collect::<Vec<_>>()
                    .join(&self.word("and", &[]));
                self.say(
                    "lookup",
                    vec![("entity", self.entity(&code)), ("details", details)],
                )
            }
            Intent::Lookup => {
                let code_column = tool.config.get("code_column")?.as_str()?;
                let code = rows.text(0, code_column)?;
                // The CI's filterable attributes: what it is, where, in what state.
                let details: Vec<String> = table_columns(&self.snapshot.catalog.spec, table)
                    .filter(|c| c.filterable)
                    .filter_map(|c| {
                        let value = rows.text(0, &c.name).filter(|v| !v.is_empty())?;
                        Some(self.detail(
                            &self.column_name(table, &c.name),
                            &self.value_name(table, &c.name, &value),
                        ))
                    })
                    .collect();
                if details.is_empty() {
                    return None;
                }
                self.say(
                    "lookup",
                    vec![
                        ("entity", self.entity(&code)),
                        ("details", details.join(&self.word("and", &[]))),
                    ],
                )
            }
            _ => {
                let code_column = tool.config.get("code_column").and_then(|c| c.as_str());
                let codes: Vec<String> = (0..rows.len())
                    .filter_map(|row| match code_column {
                        Some(c) => rows.text(row, c),
                        None => rows.cell_text(row, 0),
                    })
                    .collect();
                let count = if result.truncated {
                    format!("{}+", codes.len())
                } else {
                    codes.len().to_string()
                };
                let (items, more) = self.listed(codes);
                self.say(
                    "list",
                    vec![
                        ("subject", subject),
                        ("count", count),
                        ("items", items),
                        ("more", more),
                    ],
                )
            }
        }
    }

    /// "type GasTurbine" / "유형은 가스터빈".
    fn detail(&self, label: &str, value: &str) -> String {
        self.word(
            "detail",
            &[("label", label.to_owned()), ("value", value.to_owned())],
        )
    }

    /// How a history plan's events are named ("critical alarm events on servers") and their
    /// window, in the question's language.
    fn events_phrase(&self, plan: &Plan) -> Option<(String, String)> {
        let history = plan.history.as_ref()?;
        let tool = self.tool(plan)?;
        let table = tool.table.as_str();
        let role = |key: &str| tool.config.get(key).and_then(|c| c.as_str());
        // "critical alarm events": severities and types in the question's words.
        let mut words: Vec<String> = Vec::new();
        if history.unresolved_only {
            words.push(self.word("unresolved", &[]));
        }
        if let Some(column) = role("severity_column")
            && !history.severities.is_empty()
        {
            let named = history
                .severities
                .iter()
                .map(|s| self.value_name(table, column, s))
                .collect();
            words.push(self.series(named));
        }
        let types: Vec<String> = match role("type_column") {
            Some(column) => history
                .event_types
                .iter()
                .map(|t| self.value_name(table, column, t))
                .collect(),
            None => Vec::new(),
        };
        let things = self.table_name(table);
        // "alarm events" / "알람": how a language names events of some types.
        words.push(if types.is_empty() {
            things
        } else {
            self.word(
                "typed",
                &[
                    ("types", types.join(&self.word("and", &[]))),
                    ("things", things),
                ],
            )
        });
        // The events' own filters describe them; the CIs' ("ci_master.os") describe the CIs
        // they happened on.
        let mut own: Vec<(String, String)> = Vec::new();
        let mut of_cis: Vec<(String, String)> = Vec::new();
        for (key, value) in &plan.filters {
            match key.split_once('.') {
                Some((t, _)) if t != table => of_cis.push((key.clone(), value.clone())),
                _ => own.push((key.clone(), value.clone())),
            }
        }
        own.sort();
        of_cis.sort();
        let mut subject = self.subject(table, words.join(" "), &own);
        let graph_step = plan
            .subject
            .as_deref()
            .filter(|s| s.mode == Mode::Graph.as_str());
        let cis = if let Some(step) = graph_step {
            Some(self.related_by(step))
        } else if !plan.ci_codes.is_empty() {
            Some(self.entities(plan))
        } else if let (false, Some(entity_table)) = (of_cis.is_empty(), role("entity_table")) {
            Some(self.subject(entity_table, self.table_name(entity_table), &of_cis))
        } else {
            None
        };
        if let Some(cis) = cis {
            subject = self.word("of_entity", &[("subject", subject), ("entity", cis)]);
        }
        Some((subject, self.window(history.window.as_ref())))
    }

    fn history(&self, plan: &Plan, results: &[ToolResult]) -> Option<String> {
        let (subject, window) = self.events_phrase(plan)?;
        let tool = self.tool(plan)?;
        let table = tool.table.as_str();
        let result = results.last()?;
        let rows = Rows::new(result);
        if plan.intent.parse() == Ok(Intent::Aggregate) {
            let count = number_field(result, "count")?;
            return self.say(
                "history_count",
                vec![
                    ("subject", subject),
                    ("window", window),
                    ("count", number(count)),
                ],
            );
        }
        let id_column = table_columns(&self.snapshot.catalog.spec, table)
            .find(|c| c.primary_key)
            .map(|c| c.name.clone());
        let ids: Vec<String> = (0..rows.len())
            .filter_map(|row| match &id_column {
                Some(c) => rows.text(row, c),
                None => rows.cell_text(row, 0),
            })
            .collect();
        let count = ids.len().to_string();
        let (items, more) = self.listed(ids);
        self.say(
            "history_list",
            vec![
                ("subject", subject),
                ("window", window),
                ("count", count),
                ("items", items),
                ("more", more),
            ],
        )
    }

    fn graph(&self, plan: &Plan, results: &[ToolResult]) -> Option<String> {
        let result = results.iter().rev().find(|r| r.graph.is_some())?;
        let network = result.graph.as_ref()?;
        let entity = self.entities(plan);
        let view = plan.view.parse::<View>().ok()?;
        let kind_names = || self.kind_names(plan);
        if view == View::Path {
            // A path to the nearest CI of a kind ends at the CI it found.
            let target_code = plan
                .graph
                .as_ref()
                .map(|g| g.target_ci_code.clone())
                .filter(|c| !c.is_empty())
                .or_else(|| network.path.last().cloned());
            let target = match target_code {
                Some(code) => self.entity(&code),
                None => kind_names(),
            };
            if network.path.is_empty() {
                return self.say("no_path", vec![("entity", entity), ("target", target)]);
            }
            return self.say(
                "path",
                vec![
                    ("entity", entity),
                    ("target", target),
                    ("path", network.path.join(" → ")),
                ],
            );
        }
        let related: Vec<String> = network
            .nodes
            .iter()
            .filter(|n| n.depth > 0)
            .map(|n| n.id.clone())
            .collect();
        // Neighbours along the relation the question named ("monitored by") say which.
        let relation = match view {
            View::Neighbors | View::Summary => self.relation_name(plan),
            _ => None,
        };
        let case = match view {
            View::Impact => "impact",
            View::Dependents => "dependents",
            View::Dependencies => "dependencies",
            View::Composition => "composition",
            _ if relation.is_some() => "neighbors_via",
            _ => "neighbors",
        };
        let count = related.len().to_string();
        let (items, more) = self.listed(related);
        let (words, word_one) = self.related_words(plan);
        self.say(
            case,
            vec![
                ("entity", entity),
                ("count", count),
                ("items", items),
                ("more", more),
                ("related", words),
                ("related_one", word_one),
                ("relation", relation.unwrap_or_default()),
            ],
        )
    }

    /// The related CIs' kinds the question named ("servers", "a steam turbine").
    fn kind_names(&self, plan: &Plan) -> String {
        let (table, column) = self
            .snapshot
            .catalog
            .spec
            .graph
            .as_ref()
            .map(|g| (g.node_table.clone(), g.node_kind_column.clone()))
            .unwrap_or_default();
        let named = plan
            .graph
            .iter()
            .flat_map(|g| &g.node_kinds)
            .map(|k| self.value_name(&table, &column, k))
            .collect();
        self.series(named)
    }

    /// "servers" when the question narrowed the related CIs to kinds, else "CIs" (plural and
    /// singular).
    fn related_words(&self, plan: &Plan) -> (String, String) {
        if plan.graph.as_ref().is_none_or(|g| g.node_kinds.is_empty()) {
            return (self.word("related", &[]), self.word("related_one", &[]));
        }
        let kinds = self.kind_names(plan);
        (
            self.word("related_kinds", &[("kinds", kinds.clone())]),
            self.word("related_kinds_one", &[("kinds", kinds)]),
        )
    }

    /// The CIs a two-step question's graph step finds, named by its view ("the CIs affected
    /// if SAN-01 fails").
    fn related_by(&self, step: &Plan) -> String {
        let view = match step.view.parse::<View>() {
            Ok(View::Impact) => "impact",
            Ok(View::Dependents) => "dependents",
            Ok(View::Dependencies) => "dependencies",
            Ok(View::Composition) => "composition",
            _ => "neighbors",
        };
        let (related, _) = self.related_words(step);
        self.word(
            &format!("related_by.{view}"),
            &[("related", related), ("entity", self.entities(step))],
        )
    }

    /// The relation a graph plan follows, in the question's language (its display name or a
    /// synonym), when the plan names exactly one.
    fn relation_name(&self, plan: &Plan) -> Option<String> {
        let [name] = plan.graph.as_ref()?.relation_types.as_slice() else {
            return None;
        };
        let relation = self
            .snapshot
            .catalog
            .spec
            .graph
            .as_ref()?
            .relation_types
            .iter()
            .find(|r| &r.name == name)?;
        let own = relation.name.replace('_', " ");
        let display = if relation.display_name.is_empty() {
            &own
        } else {
            &relation.display_name
        };
        Some(self.pick(display, &relation.synonyms, &own))
    }

    fn documents(&self, plan: &Plan, results: &[ToolResult]) -> Option<String> {
        let tool = self.tool(plan)?;
        let result = results.iter().rev().find(|r| r.kind == "document")?;
        let column = |key: &str, default: &str| {
            tool.config
                .get(key)
                .and_then(|c| c.as_str())
                .unwrap_or(default)
                .to_owned()
        };
        let (id_column, title_column) =
            (column("id_column", "id"), column("title_column", "title"));
        let rows = Rows::new(result);
        let docs: Vec<String> = (0..rows.len())
            .filter_map(|row| {
                let id = rows.text(row, &id_column)?;
                Some(match rows.text(row, &title_column) {
                    Some(title) => self.word("named", &[("name", title), ("code", id)]),
                    None => id,
                })
            })
            .collect();
        let count = docs.len().to_string();
        let (items, more) = self.listed(docs);
        self.say(
            "documents",
            vec![("count", count), ("items", items), ("more", more)],
        )
    }
}

/// A tool result's rows, read by column name.
struct Rows<'r> {
    result: &'r ToolResult,
}

impl<'r> Rows<'r> {
    fn new(result: &'r ToolResult) -> Self {
        Rows { result }
    }

    fn len(&self) -> usize {
        self.result.rows.len()
    }

    fn cell(&self, row: usize, index: usize) -> Option<&'r Kind> {
        self.result.rows.get(row)?.values.get(index)?.kind.as_ref()
    }

    fn index(&self, column: &str) -> Option<usize> {
        self.result.columns.iter().position(|c| c == column)
    }

    fn cell_text(&self, row: usize, index: usize) -> Option<String> {
        match self.cell(row, index)? {
            Kind::StringValue(s) => Some(s.clone()),
            Kind::NumberValue(n) => Some(number(*n)),
            Kind::BoolValue(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn text(&self, row: usize, column: &str) -> Option<String> {
        self.cell_text(row, self.index(column)?)
    }

    fn number(&self, row: usize, column: &str) -> Option<f64> {
        match self.cell(row, self.index(column)?)? {
            Kind::NumberValue(n) => Some(*n),
            Kind::StringValue(s) => s.parse().ok(),
            _ => None,
        }
    }
}

fn field<'r>(result: &'r ToolResult, name: &str) -> Option<&'r Kind> {
    result.fields.as_ref()?.fields.get(name)?.kind.as_ref()
}

fn text_field(result: &ToolResult, name: &str) -> String {
    match field(result, name) {
        Some(Kind::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

fn number_field(result: &ToolResult, name: &str) -> Option<f64> {
    match field(result, name)? {
        Kind::NumberValue(n) => Some(*n),
        _ => None,
    }
}
