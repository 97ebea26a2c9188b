//! The deterministic planner: a question in, a route and a plan out. Every word it reacts to
//! comes from the tenant's assets ([`Knowledge`]); the code only knows the *shape* of a plan.
//!
//! Order: reject rules, direct intents, resolver, entities, mode, then the mode's slots
//! (filters, metric, window, history, graph view, document terms). A slot the question leaves
//! open that the mode cannot do without is listed in `missing_slots`, never guessed.

use std::collections::BTreeMap;

use ops_proto::convert::timestamp;
use ops_proto::v1::{
    Comparison, DocumentPlan, GraphPlan, HistoryPlan, MetricPlan, Plan, Resolution,
    SchemaCatalogSpec, SemanticType, TimeWindow,
};
use regex::Regex;
use time::{Duration, OffsetDateTime};

use super::knowledge::table_columns;
use super::plan_kind::{Aggregation, Intent, Mode, View};
use super::resolver::{ResolverEngine, compile_bounded};
use super::text::{self, Span};
use super::vocabulary::Vocabulary;

/// One CI the tenant owns, as the planner recognises it.
#[derive(Debug, Clone)]
pub struct Entity {
    pub code: String,
    /// Names in every language the source holds (matched case-insensitively).
    pub names: Vec<String>,
    /// Attribute values (column → value) used to single out an entity from filters.
    pub attributes: BTreeMap<String, String>,
}

/// A value a filterable column holds in the source.
#[derive(Debug, Clone)]
pub struct ColumnValue {
    pub table: String,
    pub column: String,
    pub value: String,
}

/// A reject rule compiled from the Policy.
#[derive(Debug)]
pub struct RejectRule {
    pub name: String,
    pub reason: String,
    pub terms: Vec<String>,
    pub patterns: Vec<Regex>,
}

/// What the planner knows about one tenant: all of it from published assets and the source's
/// own values.
#[derive(Default)]
pub struct Knowledge {
    pub vocabulary: Vocabulary,
    pub resolver: Option<ResolverEngine>,
    pub catalog: SchemaCatalogSpec,
    pub entities: Vec<Entity>,
    pub values: Vec<ColumnValue>,
    pub reject_rules: Vec<RejectRule>,
    pub restricted_tables: Vec<String>,
    pub policy_name: String,
    /// Tools by name with the mode (and shape) they answer, from Tool asset configs.
    pub tools: Vec<ToolChoice>,
    /// Regex finding code-like tokens, to report an unknown CI instead of ignoring it.
    pub code_pattern: Option<Regex>,
    /// Number-and-unit regexes derived from the vocabulary.
    pub patterns: Patterns,
}

/// Regexes the planner derives from its vocabulary: compiled once per [`Knowledge`], not on
/// every question.
#[derive(Debug, Default)]
pub struct Patterns {
    /// "최근 24시간", "last 3 days": a number and a unit, with the unit's length in hours.
    windows: Vec<(Regex, i64)>,
    /// "3개", "top 3": a number next to a count word (`unit:count`).
    count: Option<Regex>,
    /// A date (2024-05-01) or a number, the value of a comparison.
    number: Option<Regex>,
}

impl Patterns {
    pub fn compile(v: &Vocabulary) -> Result<Self, String> {
        let mut windows = Vec::new();
        for (unit, hours) in [("hours", 1i64), ("days", 24), ("weeks", 24 * 7)] {
            // An ASCII unit ends at a word boundary ("3 d" is not "3 databases"); a Korean
            // one may carry a particle ("3일간의").
            let terms: Vec<String> = v
                .terms(&format!("unit:{unit}"))
                .iter()
                .map(|t| {
                    if t.ends_with(|c: char| c.is_ascii_alphanumeric()) {
                        format!(r"{}\b", regex::escape(t))
                    } else {
                        regex::escape(t)
                    }
                })
                .collect();
            if !terms.is_empty() {
                let re = compile_bounded(&format!(r"(\d+)\s*(?:{})", terms.join("|")))
                    .map_err(|e| e.to_string())?;
                windows.push((re, hours));
            }
        }
        let units: Vec<String> = v
            .terms("unit:count")
            .iter()
            .map(|u| regex::escape(u))
            .collect();
        let count = (!units.is_empty())
            .then(|| {
                compile_bounded(&format!(
                    r"(?:(\d+)\s*(?:{0})|(?:{0})\s*(\d+))",
                    units.join("|")
                ))
            })
            .transpose()
            .map_err(|e| e.to_string())?;
        let number =
            Some(compile_bounded(r"\d{4}-\d{2}-\d{2}|\d+(?:\.\d+)?").map_err(|e| e.to_string())?);
        Ok(Self {
            windows,
            count,
            number,
        })
    }
}

/// A column value a question names, where it names it.
#[derive(Debug, Clone)]
struct Candidate {
    column: String,
    value: String,
    span: Span,
    exact: bool,
}

/// A Tool asset as the planner chooses among them.
#[derive(Debug, Clone)]
pub struct ToolChoice {
    pub name: String,
    /// `None` when the config names no mode the planner knows: no plan chooses the tool.
    pub mode: Option<Mode>,
    pub shape: String,
    /// The table whose filterable columns filter this tool's rows.
    pub table: String,
    /// The Tool asset's whole config (column roles such as `type_column`).
    pub config: serde_json::Value,
}

/// The route decision and, for ORCH, the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    Direct { intent: String },
    Reject { rule: String, reason: String },
    Plan(Plan),
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub routed: Routed,
    pub resolution: Option<Resolution>,
    /// Why this route: the rule, intent or mode words that decided.
    pub reason: String,
    /// Set when the plan is a guess: no word named a mode, a table, a CI or a value (the
    /// configuration listing is only the default), or a slot other than an unknown CI stayed
    /// unfilled. An LLM planner in `fallback` mode is asked then.
    pub doubt: Option<String>,
}

/// Plans `question` as of `as_of`. `forced_mode` (a mode-fixed request) skips mode detection
/// but not the rest.
pub fn plan(
    k: &Knowledge,
    question: &str,
    as_of: OffsetDateTime,
    forced_mode: Option<&str>,
) -> Planned {
    let lower = question.to_lowercase();
    if let Some(planned) = reject(k, &lower) {
        return planned;
    }
    if forced_mode.is_none()
        && let Some((intent, _)) = k
            .vocabulary
            .with_prefix("direct:")
            .find(|(_, terms)| text::find_any(&lower, terms.iter().map(String::as_str)).is_some())
    {
        return Planned {
            routed: Routed::Direct {
                intent: intent.to_owned(),
            },
            resolution: None,
            reason: format!("direct intent `{intent}`"),
            doubt: None,
        };
    }
    let resolution = k.resolver.as_ref().map(|r| r.resolve(question));
    let cased = resolution
        .as_ref()
        .map_or_else(|| question.to_owned(), |r| r.output.clone());
    let resolved = cased.to_lowercase();
    let mut planner = Planner {
        k,
        v: &k.vocabulary,
        cased: (cased.len() == resolved.len()).then_some(cased),
        text: resolved,
        as_of,
        plan: Plan::default(),
        reasons: Vec::new(),
        named: Vec::new(),
        group_filters: BTreeMap::new(),
        doubt: None,
    };
    planner.run(forced_mode);
    // A CI missing while the question names a code-like token is an unknown code, not a
    // doubt: the planner knows what is missing, and no reading of the words makes it exist.
    let unknown_code = k
        .code_pattern
        .as_ref()
        .is_some_and(|re| re.is_match(question));
    let unfilled: Vec<&str> = planner
        .plan
        .missing_slots
        .iter()
        .map(String::as_str)
        .filter(|s| {
            !(s.starts_with("entity:")
                || (unknown_code && matches!(*s, "entity" | "target_entity")))
        })
        .collect();
    let doubt = planner
        .doubt
        .take()
        .or_else(|| (!unfilled.is_empty()).then(|| format!("unfilled: {}", unfilled.join(", "))));
    Planned {
        doubt,
        reason: planner.reasons.join("; "),
        routed: Routed::Plan(planner.plan),
        resolution,
    }
}

fn reject(k: &Knowledge, lower: &str) -> Option<Planned> {
    for rule in &k.reject_rules {
        let term = text::find_any(lower, rule.terms.iter().map(String::as_str));
        let pattern = rule.patterns.iter().any(|p| p.is_match(lower));
        if term.is_some() || pattern {
            return Some(Planned {
                routed: Routed::Reject {
                    rule: format!("policy:{}/{}", k.policy_name, rule.name),
                    reason: rule.reason.clone(),
                },
                resolution: None,
                reason: format!("reject rule `{}` of policy:{}", rule.name, k.policy_name),
                doubt: None,
            });
        }
    }
    for table in &k.restricted_tables {
        if !text::find_all(lower, &table.to_lowercase()).is_empty() {
            return Some(Planned {
                routed: Routed::Reject {
                    rule: format!("policy:{}/restricted_tables", k.policy_name),
                    reason: format!("the table `{table}` is restricted"),
                },
                resolution: None,
                reason: format!("restricted table `{table}` named"),
                doubt: None,
            });
        }
    }
    None
}

/// The longest window a question can ask for (a hundred years).
const MAX_WINDOW_HOURS: i64 = 100 * 366 * 24;

/// `hours` before `to`, at most [`MAX_WINDOW_HOURS`] and never before the calendar's start.
fn hours_before(to: OffsetDateTime, hours: i64) -> OffsetDateTime {
    to.saturating_sub(Duration::hours(hours.clamp(0, MAX_WINDOW_HOURS)))
}

struct Planner<'k> {
    k: &'k Knowledge,
    v: &'k Vocabulary,
    /// The resolved question, lower-cased.
    text: String,
    /// The resolved question as written, with entities masked like `text` (when lower-casing
    /// kept byte offsets, so spans carry over): exact-case value matches win.
    cased: Option<String>,
    as_of: OffsetDateTime,
    plan: Plan,
    reasons: Vec<String>,
    /// CIs found by name rather than code: (the name, the code).
    named: Vec<(String, String)>,
    /// Filters a named CI stands for when it names a group (see `named_groups`).
    group_filters: BTreeMap<String, String>,
    /// Why the plan is a guess (see [`Planned::doubt`]).
    doubt: Option<String>,
}

impl Planner<'_> {
    fn run(&mut self, forced_mode: Option<&str>) {
        let (codes, spans) = self.entities();
        let masked = text::replace_spans(&self.text, &spans, "{ci}");
        self.cased = self
            .cased
            .take()
            .map(|c| text::replace_spans(&c, &spans, "{ci}"));
        self.plan.ci_codes = codes;
        // A forced mode is kept as it was asked, even one the planner does not know (a
        // hand-written StageTest input): that plan gets config's slots and no tool.
        let (mut mode, mut mode_text) = match forced_mode {
            Some(requested) => {
                self.reasons.push(format!("mode `{requested}` requested"));
                (requested.parse::<Mode>().ok(), requested)
            }
            None => {
                let mode = self.mode(&masked);
                (Some(mode), mode.as_str())
            }
        };
        if matches!(mode, Some(Mode::Config | Mode::Metric | Mode::History)) {
            self.named_groups(&masked);
        }
        // "CPU of the servers that had critical alarms yesterday": the events' clause is a
        // history plan whose CIs the metric is about.
        let split = match mode {
            Some(Mode::Metric) if self.plan.ci_codes.is_empty() => self.event_clause(&masked),
            _ => None,
        };
        let (intent, view) = match (mode, split) {
            (Some(Mode::Metric), Some((main, clause))) => {
                let answer = self.metric(&main);
                self.subject_from(&clause);
                answer
            }
            (Some(Mode::Metric), None) => self.metric(&masked),
            (Some(Mode::History), _) => self.history(&masked),
            (Some(Mode::Graph), _) => {
                let answer = self.graph(&masked);
                // "Open incidents on what SAN-01's failure would impact": events are asked
                // for, of the CIs the graph finds.
                match self.events_beside_graph(&masked, answer.1) {
                    Some(events) if forced_mode.is_none() => {
                        (mode, mode_text) = (Some(Mode::History), Mode::History.as_str());
                        self.events_of_related(&events, answer)
                    }
                    _ => answer,
                }
            }
            (Some(Mode::Document), _) => self.document(&masked),
            (Some(Mode::Config) | None, _) => {
                let answer = self.config(&masked);
                if forced_mode.is_none() && !self.config_evidence(&masked) {
                    self.doubt = Some("no word names a mode, a table, a CI or a value".into());
                }
                answer
            }
        };
        match mode.and_then(|m| self.tool(m)) {
            Some(tool) => self.plan.tools.push(tool),
            None => self.plan.missing_slots.push(format!("tool:{mode_text}")),
        }
        // The proto edge: the one place the typed kinds become the plan's strings.
        self.plan.mode = mode_text.to_owned();
        self.plan.intent = intent.as_str().to_owned();
        self.plan.view = view.as_str().to_owned();
    }

    fn setting(&self, key: &str) -> Option<&str> {
        self.v.setting(key)
    }

    /// A `link:had` phrase splits a metric question into the metric (the side naming one) and
    /// a condition on the CIs' events (the side naming events: a history word, an event type
    /// or severity), in either order ("servers that had critical alarms" / "critical 알람이
    /// 발생한 서버"). Returns (the metric side, the events side).
    fn event_clause(&self, masked: &str) -> Option<(String, String)> {
        let span = text::find_any(masked, self.v.terms("link:had").iter().map(String::as_str))?;
        let (before, after) = (masked.get(..span.0)?, masked.get(span.1..)?);
        let events = |t: &str| {
            self.v.has(t, "mode:history")
                || self.history_type_named(t)
                || !self
                    .value_matches(t, &self.tool_table(Mode::History), &[])
                    .is_empty()
        };
        let metric = |t: &str| self.metric_name(t).is_some();
        if metric(before) && events(after) && !metric(after) {
            Some((before.to_owned(), after.to_owned()))
        } else if metric(after) && events(before) && !metric(before) {
            Some((after.to_owned(), before.to_owned()))
        } else {
            None
        }
    }

    /// The question without its graph phrase, when what is left asks for events (a history
    /// word, the events' table, an event type or "open"): the events of the related CIs.
    fn events_beside_graph(&self, masked: &str, view: View) -> Option<String> {
        if view == View::Path {
            return None;
        }
        let mut rest = masked.to_owned();
        for (_, terms) in self.v.with_prefix("view:") {
            for term in terms {
                for (start, end) in text::find_all(&rest.clone(), term) {
                    rest.replace_range(start..end, &" ".repeat(end - start));
                }
            }
        }
        if view == View::Impact {
            rest = without_failure_word(&rest);
        }
        let events = self.v.has(&rest, "mode:history")
            || self.table_named(&rest, Mode::History)
            || self.history_type_named(&rest)
            || self.v.has(&rest, "filter:unresolved");
        events.then_some(rest)
    }

    /// Turns the graph plan into the subject of a history plan over `events` (the question
    /// without its graph phrase): the events' CIs are those the graph finds.
    fn events_of_related(
        &mut self,
        events: &str,
        (intent, view): (Intent, View),
    ) -> (Intent, View) {
        let mut graph = std::mem::take(&mut self.plan);
        match self.tool(Mode::Graph) {
            Some(tool) => graph.tools.push(tool),
            None => graph.missing_slots.push("tool:graph".into()),
        }
        graph.mode = Mode::Graph.as_str().to_owned();
        graph.intent = intent.as_str().to_owned();
        graph.view = view.as_str().to_owned();
        self.plan.missing_slots = std::mem::take(&mut graph.missing_slots);
        let answer = self.history(events);
        self.reasons
            .push("two steps: the events of the CIs the graph finds".into());
        self.plan.subject = Some(Box::new(graph));
        answer
    }

    /// The history plan of a two-step question's events clause. The CI attributes the metric
    /// side named ("servers") narrow the events' CIs, and the metric's CIs come from them.
    fn subject_from(&mut self, clause: &str) {
        let mut sub = Planner {
            k: self.k,
            v: self.v,
            text: clause.to_owned(),
            cased: None,
            as_of: self.as_of,
            plan: Plan::default(),
            reasons: Vec::new(),
            named: Vec::new(),
            group_filters: BTreeMap::new(),
            doubt: None,
        };
        let (intent, view) = sub.history(clause);
        let entity_table = sub.history_entity_table();
        for (column, value) in std::mem::take(&mut self.plan.filters) {
            sub.plan
                .filters
                .insert(format!("{entity_table}.{column}"), value);
        }
        // The metric has its CIs now: no entity slot is missing.
        self.plan.missing_slots.retain(|s| s != "entity");
        match sub.tool(Mode::History) {
            Some(tool) => sub.plan.tools.push(tool),
            None => self.plan.missing_slots.push("tool:history".into()),
        }
        sub.plan.mode = Mode::History.as_str().to_owned();
        sub.plan.intent = intent.as_str().to_owned();
        sub.plan.view = view.as_str().to_owned();
        self.plan
            .missing_slots
            .extend(sub.plan.missing_slots.clone());
        self.reasons
            .push("two steps: the metric of the CIs whose events match".into());
        self.reasons
            .extend(sub.reasons.into_iter().map(|r| format!("events: {r}")));
        self.plan.subject = Some(Box::new(sub.plan));
    }

    /// CI codes (after the resolver) and, failing those, CI names. Unknown code-like tokens
    /// are reported as a missing entity.
    fn entities(&mut self) -> (Vec<String>, Vec<Span>) {
        let mut found: Vec<(Span, String)> = Vec::new();
        let mut by_len: Vec<&Entity> = self.k.entities.iter().collect();
        by_len.sort_by_key(|e| std::cmp::Reverse(e.code.len()));
        for entity in &by_len {
            for span in text::find_code(&self.text, &entity.code.to_lowercase()) {
                if !found.iter().any(|(s, _)| text::overlaps(*s, span)) {
                    found.push((span, entity.code.clone()));
                }
            }
        }
        if found.is_empty() {
            let mut names: Vec<(&str, &Entity)> = self
                .k
                .entities
                .iter()
                .flat_map(|e| e.names.iter().map(move |n| (n.as_str(), e)))
                .filter(|(n, _)| n.chars().count() >= 4)
                .collect();
            names.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
            for (name, entity) in names {
                for span in text::find_all(&self.text, &name.to_lowercase()) {
                    if !found.iter().any(|(s, _)| text::overlaps(*s, span)) {
                        found.push((span, entity.code.clone()));
                        self.named.push((name.to_owned(), entity.code.clone()));
                    }
                }
            }
        }
        if let Some(pattern) = &self.k.code_pattern {
            let upper = self.text.to_uppercase();
            for m in pattern.find_iter(&upper) {
                let span = (m.start(), m.end());
                let is_value = self
                    .k
                    .values
                    .iter()
                    .any(|v| v.value.eq_ignore_ascii_case(m.as_str()));
                if upper.len() == self.text.len()
                    && !is_value
                    && !found.iter().any(|(s, _)| text::overlaps(*s, span))
                {
                    self.plan
                        .missing_slots
                        .push(format!("entity:{}", m.as_str()));
                }
            }
        }
        found.sort_by_key(|(span, _)| *span);
        let mut codes: Vec<String> = Vec::new();
        for (_, code) in &found {
            if !codes.contains(code) {
                codes.push(code.clone());
            }
        }
        if !codes.is_empty() {
            self.reasons.push(format!("entities {}", codes.join(", ")));
        }
        (codes, found.into_iter().map(|(s, _)| s).collect())
    }

    /// "servers in the HR System": a CI found by name that the question's own filters
    /// exclude (a System is not a Server) names a group, not itself. Its attributes spelled in
    /// its name (system=HR) become filters and it leaves the entities.
    fn named_groups(&mut self, masked: &str) {
        let all_named = self
            .plan
            .ci_codes
            .iter()
            .all(|c| self.named.iter().any(|(_, named)| named == c));
        if self.named.is_empty() || !all_named {
            return;
        }
        let table = self.tool_table(Mode::Config);
        let (filters, _) = self.filters(masked, &table);
        if filters.is_empty() {
            return;
        }
        let mut group = BTreeMap::new();
        for (name, code) in &self.named {
            let Some(entity) = self.k.entities.iter().find(|e| &e.code == code) else {
                return;
            };
            let excluded = filters.iter().any(|(column, value)| {
                entity
                    .attributes
                    .get(column)
                    .is_some_and(|a| !a.eq_ignore_ascii_case(value))
            });
            if !excluded {
                return;
            }
            let name = name.to_lowercase();
            for (column, value) in &entity.attributes {
                if !filters.contains_key(column)
                    && !text::find_all(&name, &value.to_lowercase()).is_empty()
                {
                    group.insert(column.clone(), value.clone());
                }
            }
        }
        if group.is_empty() {
            return;
        }
        self.reasons.push(format!(
            "{} named as a group: {}",
            self.plan.ci_codes.join(", "),
            group
                .iter()
                .map(|(c, v)| format!("{c}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        self.plan.ci_codes.clear();
        self.group_filters = group;
    }

    /// Graph views are the most specific phrases, then documents, metrics and history;
    /// config is what a question about CIs is when nothing else claims it.
    fn mode(&mut self, masked: &str) -> Mode {
        let metric = self.metric_name(masked).is_some();
        // "PLCs monitored by SCADA-SRV-02": a relation type named next to a CI asks for its
        // neighbours along that relation (a metric named wins: "공급 온도" is no relation).
        let graph = graph_view(self.v, masked).is_some()
            || (!metric
                && !self.plan.ci_codes.is_empty()
                && !self.relation_types(masked).is_empty());
        let mode = if graph {
            Mode::Graph
        } else if self.v.has(masked, "mode:document") || self.table_named(masked, Mode::Document) {
            Mode::Document
        } else if metric {
            Mode::Metric
        } else if self.v.has(masked, "mode:history")
            || self.table_named(masked, Mode::History)
            || self.history_type_named(masked)
        {
            Mode::History
        } else {
            Mode::Config
        };
        self.reasons.push(format!("mode `{mode}` from its words"));
        mode
    }

    /// "deployments in the last 14 days": a value of the history table's type column names
    /// events, unless a configuration value claims the same words as long or longer ("servers
    /// in maintenance" is a status).
    fn history_type_named(&self, masked: &str) -> bool {
        let Some(tool) = self.k.tools.iter().find(|t| t.mode == Some(Mode::History)) else {
            return false;
        };
        let Some(type_column) = tool.config.get("type_column").and_then(|c| c.as_str()) else {
            return false;
        };
        let config = self.value_matches(masked, &self.tool_table(Mode::Config), &[]);
        let len = |s: Span| s.1 - s.0;
        self.value_matches(masked, &tool.table, &[])
            .iter()
            .filter(|c| c.column == type_column)
            .any(|c| {
                !config
                    .iter()
                    .any(|o| text::overlaps(o.span, c.span) && len(o.span) >= len(c.span))
            })
    }

    /// Whether a configuration plan rests on the question's words: a CI, a value, an
    /// attribute, a comparison or the table named (else configuration was only the default).
    fn config_evidence(&self, masked: &str) -> bool {
        let p = &self.plan;
        !p.ci_codes.is_empty()
            || !p.filters.is_empty()
            || !p.attributes.is_empty()
            || !p.comparisons.is_empty()
            || !self.group_filters.is_empty()
            || self.table_named(masked, Mode::Config)
    }

    /// True when a synonym of the table that mode's tool reads appears.
    fn table_named(&self, masked: &str, mode: Mode) -> bool {
        let Some(tool) = self.k.tools.iter().find(|t| t.mode == Some(mode)) else {
            return false;
        };
        self.k
            .catalog
            .tables
            .iter()
            .filter(|t| t.name == tool.table)
            .any(|t| text::find_synonym(masked, &t.synonyms).is_some())
    }

    fn tool(&self, mode: Mode) -> Option<String> {
        self.chosen_tool(mode).map(|t| t.name.clone())
    }

    /// The tool of `mode` the question targets: one whose table the question names (a
    /// second config tool over another table), then one of the wanted shape (a series),
    /// then the first.
    fn chosen_tool(&self, mode: Mode) -> Option<&ToolChoice> {
        let series = self
            .plan
            .metric
            .as_ref()
            .is_some_and(|m| !m.bucket.is_empty());
        let wanted_shape = if mode == Mode::Metric && series {
            "series"
        } else {
            ""
        };
        let of_mode: Vec<&ToolChoice> = self
            .k
            .tools
            .iter()
            .filter(|t| t.mode == Some(mode))
            .collect();
        let named = |t: &&&ToolChoice| {
            !t.table.is_empty()
                && of_mode.iter().any(|o| o.table != t.table)
                && self.k.catalog.tables.iter().any(|table| {
                    table.name == t.table
                        && text::find_synonym(
                            &self.text,
                            table
                                .synonyms
                                .iter()
                                .chain([&table.display_name, &table.name])
                                .filter(|n| !n.is_empty()),
                        )
                        .is_some()
                })
        };
        of_mode
            .iter()
            .filter(named)
            .find(|t| t.shape == wanted_shape)
            .or_else(|| of_mode.iter().find(named))
            .or_else(|| of_mode.iter().find(|t| t.shape == wanted_shape))
            .or_else(|| of_mode.first())
            .copied()
    }

    fn tool_table(&self, mode: Mode) -> String {
        self.chosen_tool(mode)
            .filter(|t| !t.table.is_empty())
            .or_else(|| {
                self.k
                    .tools
                    .iter()
                    .find(|t| t.mode == Some(mode) && !t.table.is_empty())
            })
            .map(|t| t.table.clone())
            .unwrap_or_default()
    }

    /// Filters on the filterable columns of `table`: source values and vocabulary synonyms
    /// (`value:<table>.<column>=<value>`). One span binds one column (an exact-case match
    /// wins, then the longer match); the first value of a column binds it. Returns the
    /// filters and the qualifiers (see below), which only single out entities.
    fn filters(
        &mut self,
        masked: &str,
        table: &str,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let taken = self.value_matches(masked, table, &[]);
        self.bind_filters(masked, &taken)
    }

    /// The values of `table`'s filterable columns the question names, one per span (an
    /// exact-case match wins, then the longer match), in question order; spans in `claimed`
    /// are another table's words and are skipped.
    fn value_matches(&self, masked: &str, table: &str, claimed: &[Span]) -> Vec<Candidate> {
        let filterable: Vec<&str> = table_columns(&self.k.catalog, table)
            .filter(|c| c.filterable)
            .map(|c| c.name.as_str())
            .collect();
        let mut candidates: Vec<Candidate> = Vec::new();
        for value in self.k.values.iter().filter(|v| v.table == table) {
            if !filterable.contains(&value.column.as_str()) {
                continue;
            }
            for span in text::find_all(masked, &value.value.to_lowercase()) {
                let exact = self.cased.as_ref().and_then(|c| c.get(span.0..span.1))
                    == Some(value.value.as_str());
                candidates.push(Candidate {
                    column: value.column.clone(),
                    value: value.value.clone(),
                    span,
                    exact,
                });
            }
        }
        let prefix = format!("value:{table}.");
        for (key, terms) in self.v.with_prefix(&prefix) {
            let Some((column, value)) = key.split_once('=') else {
                continue;
            };
            for term in terms {
                for span in text::find_all(masked, term) {
                    candidates.push(Candidate {
                        column: column.to_owned(),
                        value: value.to_owned(),
                        span,
                        exact: false,
                    });
                }
            }
        }
        // "whose system is MES", "시스템이 ERP인": a column named right before one of its
        // values binds that value, and its name is no value of another column.
        let (explicit, names): (Vec<Span>, Vec<Span>) = self
            .explicit_pairs(masked, table, &candidates)
            .into_iter()
            .unzip();
        // One span, one column: explicit pairs first, exact case next, then the longer match.
        candidates.sort_by_key(|c| {
            (
                std::cmp::Reverse(explicit.contains(&c.span)),
                std::cmp::Reverse(c.exact),
                std::cmp::Reverse(c.span.1 - c.span.0),
            )
        });
        let mut taken: Vec<Candidate> = Vec::new();
        for c in candidates {
            if !taken.iter().any(|t| text::overlaps(t.span, c.span))
                && !claimed.iter().any(|s| text::overlaps(*s, c.span))
                && !names.iter().any(|s| text::overlaps(*s, c.span))
            {
                taken.push(c);
            }
        }
        taken.sort_by_key(|c| c.span);
        taken
    }

    /// Columns named right before a value of theirs, with `compare:eq` between ("system is
    /// MES", "status가 maintenance"): (the value's span, the column name's span).
    fn explicit_pairs(
        &self,
        masked: &str,
        table: &str,
        candidates: &[Candidate],
    ) -> Vec<(Span, Span)> {
        let mut copulas: Vec<String> = self.v.terms("compare:eq").to_vec();
        copulas.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let mut pairs = Vec::new();
        for column in table_columns(&self.k.catalog, table).filter(|c| c.filterable) {
            for span in column_spans(masked, column) {
                let Some(rest) = masked.get(span.1..) else {
                    continue;
                };
                let after = rest.trim_start();
                // An English copula stands apart ("system is"); a Korean particle may be
                // attached ("시스템이").
                let spaced = after.len() < rest.len();
                let Some(copula) = copulas
                    .iter()
                    .find(|c| after.starts_with(c.as_str()) && (spaced || !c.is_ascii()))
                else {
                    continue;
                };
                let value_at = masked.len() - after[copula.len()..].trim_start().len();
                if let Some(c) = candidates
                    .iter()
                    .find(|c| c.column == column.name && c.span.0 == value_at)
                {
                    pairs.push((c.span, span));
                }
            }
        }
        pairs
    }

    /// Filters and qualifiers from matched values: the first value of a column binds it.
    fn bind_filters(
        &self,
        masked: &str,
        taken: &[Candidate],
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let adjacent = |a: Span, b: Span| {
            let (first, second) = if a.0 < b.0 { (a, b) } else { (b, a) };
            masked
                .get(first.1..second.0)
                .is_some_and(|gap| gap.trim().is_empty())
        };
        // "ERP 시스템" is the system ERP: a value that names the column of the value next to
        // it (ci_type=System beside system=ERP) qualifies that value instead of filtering.
        let mut filters: BTreeMap<String, String> = BTreeMap::new();
        let mut qualifiers: BTreeMap<String, String> = BTreeMap::new();
        for (i, c) in taken.iter().enumerate() {
            let qualifies = taken.iter().enumerate().any(|(j, o)| {
                j != i
                    && o.column != c.column
                    && o.column.eq_ignore_ascii_case(&c.value)
                    && adjacent(o.span, c.span)
            });
            let target = if qualifies {
                &mut qualifiers
            } else {
                &mut filters
            };
            target
                .entry(c.column.clone())
                .or_insert_with(|| c.value.clone());
        }
        (filters, qualifiers)
    }

    fn attributes(&self, masked: &str, table: &str) -> Vec<String> {
        let mut found: Vec<(Span, String)> = Vec::new();
        for column in table_columns(&self.k.catalog, table) {
            let terms = column
                .synonyms
                .iter()
                .chain(std::iter::once(&column.display_name));
            if let Some(span) = text::find_synonym(masked, terms) {
                found.push((span, column.name.clone()));
            }
        }
        found.sort();
        found.into_iter().map(|(_, c)| c).collect()
    }

    fn intent_count(&self, masked: &str) -> bool {
        self.v.has(masked, "intent:count")
    }

    /// The slots of a config question, and the plan's intent and view.
    fn config(&mut self, masked: &str) -> (Intent, View) {
        let table = self.tool_table(Mode::Config);
        let (mut filters, _) = self.filters(masked, &table);
        filters.extend(self.group_filters.clone());
        let intent = if self.plan.ci_codes.is_empty() {
            // "criticality high or above": an ordered column compared is a range, not a value.
            let mut ranges = Vec::new();
            for c in self.value_matches(masked, &table, &[]) {
                if filters.get(&c.column) == Some(&c.value)
                    && let Some(op) = self.ordered_op(masked, &table, &c)
                {
                    filters.remove(&c.column);
                    ranges.push(Comparison {
                        column: c.column.clone(),
                        op: op.to_owned(),
                        value: c.value.clone(),
                    });
                }
            }
            self.plan.filters = filters.into_iter().collect();
            self.plan.comparisons = self.comparisons(masked, &table);
            self.plan.comparisons.extend(ranges);
            if self.intent_count(masked) {
                Intent::Aggregate
            } else {
                Intent::List
            }
        } else {
            self.plan.attributes = self.attributes(masked, &table);
            Intent::Lookup
        };
        (intent, View::Summary)
    }

    /// True when `at` (a byte offset of `masked`) lies in a number-and-unit window ("over
    /// the last 7 days": 7 is the window's, not a value to compare with).
    fn in_window(&self, masked: &str, at: usize) -> bool {
        self.k.patterns.windows.iter().any(|(re, _)| {
            re.find_iter(masked)
                .any(|m| (m.start()..m.end()).contains(&at))
        })
    }

    /// `<op> <number>` (or `<number> <op>`) within a few words after `span`: "above 80%",
    /// "80% 이상". The number is not a window's.
    fn compared_number(&self, masked: &str, span: Span) -> Option<(&'static str, f64)> {
        let number = self.k.patterns.number.as_ref()?;
        let ahead = prefix(masked.get(span.1..)?, 48);
        let m = number
            .find_iter(ahead)
            .find(|m| !self.in_window(masked, span.1 + m.start()))?;
        let (between, after) = (&ahead[..m.start()], prefix(&ahead[m.end()..], 16));
        let op = ["gte", "lte", "gt", "lt"].into_iter().find(|op| {
            let terms = self.v.terms(&format!("compare:{op}"));
            text::find_any(between, terms.iter().map(String::as_str)).is_some()
                || text::find_any(after, terms.iter().map(String::as_str)).is_some()
        })?;
        Some((op, m.as_str().parse().ok()?))
    }

    /// "capacity over 100", "용량 200 이상", "registered before 2025": a measure or timestamp
    /// column of `table`, then within a few words a comparison word and a number or a date.
    fn comparisons(&mut self, masked: &str, table: &str) -> Vec<Comparison> {
        let Some(number) = self.k.patterns.number.as_ref() else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let columns = table_columns(&self.k.catalog, table).filter(|c| {
            c.semantic_type == SemanticType::Measure as i32
                || c.semantic_type == SemanticType::Timestamp as i32
        });
        for column in columns {
            let names = column
                .synonyms
                .iter()
                .chain(std::iter::once(&column.display_name))
                .filter(|n| !n.is_empty());
            let Some(span) = text::find_synonym(masked, names) else {
                continue;
            };
            // The value after the column ("capacity over 100"), else just before it
            // ("2024년 이후 등록된").
            let ahead = prefix(&masked[span.1..], 48);
            let behind = suffix(&masked[..span.0], 32);
            let first_ahead = number
                .find_iter(ahead)
                .find(|m| !self.in_window(masked, span.1 + m.start()));
            let (m, between, after) = if let Some(m) = first_ahead {
                (m, &ahead[..m.start()], prefix(&ahead[m.end()..], 16))
            } else if let Some(m) = number.find_iter(behind).last() {
                (m, "", &behind[m.end()..])
            } else {
                continue;
            };
            let said = |op: &str| {
                let terms = self.v.terms(&format!("compare:{op}"));
                text::find_any(between, terms.iter().map(String::as_str)).is_some()
                    || text::find_any(after, terms.iter().map(String::as_str)).is_some()
            };
            let comparison = if column.semantic_type == SemanticType::Timestamp as i32 {
                let Some(day) = calendar_day(m.as_str()) else {
                    continue;
                };
                let next = if m.as_str().len() == 4 {
                    day.replace_year(day.year() + 1).ok()
                } else {
                    day.next_day()
                };
                let at = |d: time::Date| {
                    d.with_time(time::Time::MIDNIGHT)
                        .assume_utc()
                        .format(&time::format_description::well_known::Rfc3339)
                        .ok()
                };
                if said("before") {
                    at(day).map(|v| ("lt", v))
                } else if said("after") {
                    next.and_then(at).map(|v| ("gte", v))
                } else if said("since") {
                    at(day).map(|v| ("gte", v))
                } else {
                    None
                }
            } else {
                ["gte", "lte", "gt", "lt"]
                    .into_iter()
                    .find(|op| said(op))
                    .map(|op| (op, m.as_str().to_owned()))
            };
            if let Some((op, value)) = comparison {
                self.reasons
                    .push(format!("comparison {} {op} {value}", column.name));
                found.push(Comparison {
                    column: column.name.clone(),
                    op: op.to_owned(),
                    value,
                });
            }
        }
        found
    }

    fn metric_name(&self, masked: &str) -> Option<(Span, String)> {
        let metrics = self.k.catalog.metrics.as_ref()?;
        let found = metrics
            .metrics
            .iter()
            .filter_map(|m| {
                let terms = m.synonyms.iter().chain([&m.name, &m.display_name]);
                text::find_synonym(masked, terms).map(|span| (span, m.name.clone()))
            })
            .min_by_key(|(span, _)| (span.0, std::cmp::Reverse(span.1)))?;
        // The longest phrase wins: "rated power" names a column, not the metric "power".
        let inside_a_column = self
            .column_mentions(masked)
            .into_iter()
            .any(|c| c.0 <= found.0.0 && found.0.1 <= c.1 && c.1 - c.0 > found.0.1 - found.0.0);
        (!inside_a_column).then_some(found)
    }

    /// Where the question names a column of the config tool's table (its name, display name
    /// or a synonym).
    fn column_mentions(&self, masked: &str) -> Vec<Span> {
        let table = self.tool_table(Mode::Config);
        table_columns(&self.k.catalog, &table)
            .flat_map(|column| column_spans(masked, column))
            .collect()
    }

    /// The slots of a metric question, and the plan's intent and view. The aggregation is the
    /// vocabulary's word, kept as written.
    fn metric(&mut self, masked: &str) -> (Intent, View) {
        let mut metric = MetricPlan::default();
        match self.metric_name(masked) {
            Some((_, name)) => metric.metric = name,
            None => self.plan.missing_slots.push("metric".into()),
        }
        // Every aggregation the question names, in its order ("average and peak"); the
        // current value only alone (it has no window to aggregate over).
        let mut named: Vec<(Span, &str)> = self
            .v
            .with_prefix("aggregation:")
            .filter_map(|(agg, terms)| {
                text::find_any(masked, terms.iter().map(String::as_str)).map(|s| (s, agg))
            })
            .collect();
        named.sort_by_key(|(s, _)| s.0);
        let mut aggregations: Vec<String> = named.iter().map(|(_, a)| (*a).to_owned()).collect();
        if aggregations.len() > 1 {
            aggregations.retain(|a| a.parse() != Ok(Aggregation::Latest));
        }
        let explicit = !aggregations.is_empty();
        metric.aggregation = if explicit {
            aggregations.remove(0)
        } else {
            self.setting("default:aggregation")
                .unwrap_or_default()
                .to_owned()
        };
        metric.extra_aggregations = aggregations;
        let series = self.v.has(masked, "shape:series");
        if series {
            metric.bucket = self
                .setting("default:series_bucket")
                .unwrap_or_default()
                .to_owned();
        }
        // "가장 온도가 높은": a superlative and a direction word apart also rank.
        let superlative = self.v.has(masked, "rank:superlative");
        let rank_desc =
            self.v.has(masked, "rank:desc") || (superlative && self.v.has(masked, "rank:high"));
        let rank_asc =
            self.v.has(masked, "rank:asc") || (superlative && self.v.has(masked, "rank:low"));
        // A superlative about the CIs the question names ("lowest RX power on X yesterday")
        // asks for their extreme, not for a ranking of every CI.
        let about_named = !self.plan.ci_codes.is_empty() && self.count_number(masked).is_none();
        if (rank_desc || rank_asc) && about_named {
            if !explicit {
                metric.aggregation = if rank_desc { "max" } else { "min" }.to_owned();
                self.reasons.push(format!(
                    "superlative about named CIs: {}",
                    metric.aggregation
                ));
            }
        } else if rank_desc || rank_asc {
            metric.ascending = rank_asc && !rank_desc;
            metric.top_n = self.count_number(masked).unwrap_or_else(|| {
                self.setting("default:top_n")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            });
        }
        metric.window = Some(
            if metric.aggregation.parse() == Ok(Aggregation::Latest) && !self.has_window(masked) {
                TimeWindow {
                    from: None,
                    to: Some(timestamp(self.as_of)),
                    label: "latest".into(),
                    defaulted: false,
                }
            } else {
                self.window(masked, "default:metric_window")
            },
        );
        // "CPU above 80% in the last day": the CIs whose aggregate passes.
        if self.plan.ci_codes.is_empty()
            && metric.top_n == 0
            && metric.bucket.is_empty()
            && let Some((op, value)) = self
                .metric_name(masked)
                .and_then(|(span, _)| self.compared_number(masked, span))
        {
            metric.threshold_op = op.to_owned();
            metric.threshold = value;
            self.reasons.push(format!("threshold {op} {value}"));
        }
        let intent = if metric.top_n > 0 || !metric.threshold_op.is_empty() {
            Intent::Aggregate
        } else {
            Intent::Lookup
        };
        if self.plan.ci_codes.is_empty() {
            let table = self.tool_table(Mode::Config);
            let (mut filters, _) = self.filters(masked, &table);
            filters.extend(self.group_filters.clone());
            if filters.is_empty() && metric.top_n == 0 && metric.threshold_op.is_empty() {
                self.plan.missing_slots.push("entity".into());
            }
            self.plan.filters = filters.into_iter().collect();
        }
        self.plan.metric = Some(metric);
        (intent, View::Summary)
    }

    /// "3개", "top 3": a number next to a count word.
    fn count_number(&self, masked: &str) -> Option<u32> {
        self.k
            .patterns
            .count
            .as_ref()?
            .captures_iter(masked)
            .find_map(|c| c.get(1).or_else(|| c.get(2)))
            .and_then(|m| m.as_str().parse().ok())
    }

    fn has_window(&self, masked: &str) -> bool {
        self.relative_window(masked).is_some()
            || self.v.with_prefix("time:").any(|(_, terms)| {
                text::find_any(masked, terms.iter().map(String::as_str)).is_some()
            })
    }

    /// "최근 24시간", "last 3 days": the hours of the earliest number-and-unit of
    /// `unit:hours|days|weeks`.
    fn relative_window(&self, masked: &str) -> Option<i64> {
        let mut best: Option<(usize, i64)> = None;
        for (re, hours) in &self.k.patterns.windows {
            for c in re.captures_iter(masked) {
                let (Some(all), Some(n)) = (c.get(0), c.get(1)) else {
                    continue;
                };
                let Ok(n) = n.as_str().parse::<i64>() else {
                    continue;
                };
                if best.is_none_or(|(at, _)| all.start() < at) {
                    // "the last 99999999999 days" means as far back as anything goes.
                    let total = n.saturating_mul(*hours).clamp(0, MAX_WINDOW_HOURS);
                    best = Some((all.start(), total));
                }
            }
        }
        best.map(|(_, hours)| hours)
    }

    fn window(&mut self, masked: &str, default_key: &str) -> TimeWindow {
        let to = self.as_of;
        if let Some(hours) = self.relative_window(masked) {
            return TimeWindow {
                from: Some(timestamp(hours_before(to, hours))),
                to: Some(timestamp(to)),
                label: format!("last {}", span_label(hours)),
                defaulted: false,
            };
        }
        let midnight = to.replace_time(time::Time::MIDNIGHT);
        for (name, terms) in self.v.with_prefix("time:") {
            if text::find_any(masked, terms.iter().map(String::as_str)).is_none() {
                continue;
            }
            let (from, end) = match name {
                "yesterday" => (midnight - Duration::days(1), midnight),
                "today" => (midnight, to),
                "this_week" => (
                    midnight - Duration::days(i64::from(to.weekday().number_days_from_monday())),
                    to,
                ),
                "last_week" => (to - Duration::days(7), to),
                "this_month" => (midnight.replace_day(1).unwrap_or(midnight), to),
                "last_month" => {
                    let first = midnight.replace_day(1).unwrap_or(midnight);
                    let previous = (first - Duration::days(1)).replace_day(1).unwrap_or(first);
                    (previous, first)
                }
                "this_year" => (
                    midnight
                        .replace_day(1)
                        .and_then(|d| d.replace_month(time::Month::January))
                        .unwrap_or(midnight),
                    to,
                ),
                _ => continue,
            };
            return TimeWindow {
                from: Some(timestamp(from)),
                to: Some(timestamp(end)),
                label: name.replace('_', " "),
                defaulted: false,
            };
        }
        let default = self.setting(default_key).unwrap_or("24h").to_owned();
        let hours = parse_hours(&default).unwrap_or(24);
        self.reasons.push(format!("default window {default}"));
        TimeWindow {
            from: Some(timestamp(hours_before(to, hours))),
            to: Some(timestamp(to)),
            label: format!("last {}", span_label(hours)),
            defaulted: true,
        }
    }

    /// The table of the CIs events happen to (the history Tool's `entity_table`).
    fn history_entity_table(&self) -> String {
        self.k
            .tools
            .iter()
            .find(|t| t.mode == Some(Mode::History))
            .and_then(|t| t.config.get("entity_table"))
            .and_then(|c| c.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| self.tool_table(Mode::Config))
    }

    /// The slots of a history question, and the plan's intent and view.
    fn history(&mut self, masked: &str) -> (Intent, View) {
        let table = self.tool_table(Mode::History);
        let own = self.value_matches(masked, &table, &[]);
        let (filters, _) = self.bind_filters(masked, &own);
        // Attributes of the CIs narrow their events ("SCADA 서버 이벤트"), in words the
        // events' own values did not claim; a named group stands for its attributes.
        let mut entity_filters = BTreeMap::new();
        if self.plan.ci_codes.is_empty() {
            let entity_table = self.history_entity_table();
            let claimed: Vec<Span> = own.iter().map(|c| c.span).collect();
            let matched = self.value_matches(masked, &entity_table, &claimed);
            // A qualifier ("ERP 시스템": the type beside the system) only says which column.
            let (mut found, _) = self.bind_filters(masked, &matched);
            found.extend(self.group_filters.clone());
            for (column, value) in found {
                entity_filters.insert(format!("{entity_table}.{column}"), value);
            }
        }
        let mut history = HistoryPlan {
            window: Some(self.window(masked, "default:history_window")),
            unresolved_only: self.v.has(masked, "filter:unresolved"),
            ..Default::default()
        };
        // The history tool names which of its columns hold the event type and severity.
        let role = |key: &str| {
            self.k
                .tools
                .iter()
                .find(|t| t.mode == Some(Mode::History))
                .and_then(|t| t.config.get(key))
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        };
        let (type_column, severity_column) = (role("type_column"), role("severity_column"));
        let mut rest = entity_filters;
        for (column, value) in filters {
            // "major 이상": an ordered column's value with a comparison is a range of values.
            let values = own
                .iter()
                .find(|c| c.column == column && c.value == value)
                .and_then(|c| self.ordered_range(masked, &table, c))
                .unwrap_or_else(|| vec![value.clone()]);
            if type_column.as_deref() == Some(column.as_str()) {
                history.event_types.extend(values);
            } else if severity_column.as_deref() == Some(column.as_str()) {
                history.severities.extend(values);
            } else {
                rest.insert(column, value);
            }
        }
        // "P1 or P2", "critical and major alarms": every type and severity named counts.
        for c in &own {
            let list = if type_column.as_deref() == Some(c.column.as_str()) {
                &mut history.event_types
            } else if severity_column.as_deref() == Some(c.column.as_str()) {
                &mut history.severities
            } else {
                continue;
            };
            if !list.contains(&c.value) {
                list.push(c.value.clone());
            }
        }
        self.plan.filters = rest.into_iter().collect();
        self.plan.history = Some(history);
        let intent = if self.intent_count(masked) {
            Intent::Aggregate
        } else {
            Intent::List
        };
        (intent, View::Summary)
    }

    /// The slots of a graph question, and the plan's intent and view (the graph view asked).
    fn graph(&mut self, masked: &str) -> (Intent, View) {
        let view = graph_view(self.v, masked).unwrap_or(View::Neighbors);
        let intent = if view == View::Path {
            Intent::Path
        } else {
            Intent::Expand
        };
        let named = !self.plan.ci_codes.is_empty();
        if !named {
            self.single_out_entity(masked);
        }
        let mut graph = GraphPlan::default();
        // "Which servers would be hit": a kind narrows the related CIs (not words that
        // singled out the CI itself, as in "SCADA 시스템 구성 요소").
        if named && view != View::Path {
            graph.node_kinds = self.node_kinds(masked);
            if !graph.node_kinds.is_empty() {
                self.reasons.push(format!(
                    "related CIs of kind {}",
                    graph.node_kinds.join(", ")
                ));
            }
        }
        match view {
            View::Path => {
                if self.plan.ci_codes.len() >= 2 {
                    graph.target_ci_code = self.plan.ci_codes[1].clone();
                    self.plan.ci_codes.truncate(1);
                } else {
                    // "path from GT-05 to a steam turbine": to the nearest CI of that kind.
                    let kinds = if named {
                        self.node_kinds(masked)
                    } else {
                        Vec::new()
                    };
                    if kinds.is_empty() {
                        self.plan.missing_slots.push("target_entity".into());
                    } else {
                        self.reasons.push(format!(
                            "path to the nearest CI of kind {}",
                            kinds.join(", ")
                        ));
                        graph.node_kinds = kinds;
                    }
                }
                graph.direction = "both".into();
            }
            View::Dependents | View::Dependencies => {
                graph.direction = if view == View::Dependents {
                    "incoming"
                } else {
                    "outgoing"
                }
                .into();
                graph.depth = 1;
                graph.relation_types = self.relation_types(masked);
            }
            View::Impact => graph.direction = "incoming".into(),
            View::Neighbors => {
                graph.direction = "both".into();
                graph.depth = 1;
                graph.relation_types = self.relation_types(masked);
            }
            View::Composition | View::Summary => {}
        }
        if self.plan.ci_codes.is_empty() {
            self.plan.missing_slots.push("entity".into());
        }
        self.plan.graph = Some(graph);
        (intent, view)
    }

    /// A graph question naming no CI may name one by its attributes ("SCADA 시스템" is the
    /// one System CI whose system is SCADA).
    fn single_out_entity(&mut self, masked: &str) {
        let table = self.tool_table(Mode::Config);
        let (mut filters, qualifiers) = self.filters(masked, &table);
        for (column, value) in qualifiers {
            filters.entry(column).or_insert(value);
        }
        if filters.is_empty() {
            return;
        }
        let matching: Vec<&Entity> = self
            .k
            .entities
            .iter()
            .filter(|e| {
                filters
                    .iter()
                    .all(|(c, v)| e.attributes.get(c).is_some_and(|a| a == v))
            })
            .collect();
        if let [entity] = matching.as_slice() {
            self.reasons
                .push(format!("{} singled out by its attributes", entity.code));
            self.plan.ci_codes.push(entity.code.clone());
        }
    }

    /// "major 이상", "P2 or higher", "at least major": the comparison next to a value of an
    /// ordered enum column (its values listed highest first), if the question makes one.
    fn ordered_op(&self, masked: &str, table: &str, c: &Candidate) -> Option<&'static str> {
        let column = table_columns(&self.k.catalog, table)
            .find(|col| col.name == c.column && col.ordered)?;
        column
            .enum_values
            .iter()
            .position(|v| v.eq_ignore_ascii_case(&c.value))?;
        let mut after = masked.get(c.span.1..)?.trim_start();
        // "major severity or higher": the column's own name may sit between.
        for name in column
            .synonyms
            .iter()
            .chain([&column.display_name, &column.name])
        {
            let name = name.to_lowercase();
            if !name.is_empty() && text::starts_with_word(after, &name) {
                after = after[name.len()..].trim_start();
                break;
            }
        }
        let before = masked.get(..c.span.0)?.trim_end();
        let said = |op: &str| {
            self.v
                .terms(&format!("compare:{op}"))
                .iter()
                .any(|t| text::starts_with_word(after, t) || before.ends_with(t.as_str()))
        };
        ["gte", "lte", "gt", "lt"].into_iter().find(|op| said(op))
    }

    /// The values of an ordered enum column at or above, above, at or below, or below the
    /// one named, when the question compares it.
    fn ordered_range(&self, masked: &str, table: &str, c: &Candidate) -> Option<Vec<String>> {
        let op = self.ordered_op(masked, table, c)?;
        let column = table_columns(&self.k.catalog, table).find(|col| col.name == c.column)?;
        ordered_values(&column.enum_values, &c.value, op)
    }

    /// Values of the graph's node kind column the question names.
    fn node_kinds(&self, masked: &str) -> Vec<String> {
        let Some(graph) = self.k.catalog.graph.as_ref() else {
            return Vec::new();
        };
        if graph.node_kind_column.is_empty() {
            return Vec::new();
        }
        let mut kinds: Vec<String> = Vec::new();
        for c in self.value_matches(masked, &graph.node_table, &[]) {
            if c.column == graph.node_kind_column && !kinds.contains(&c.value) {
                kinds.push(c.value);
            }
        }
        kinds
    }

    /// The relation type the question names (the first one), by its name or synonyms. Words
    /// of the neighbours view ("connected to", "연결된") ask for every relation, not the one
    /// whose synonym they contain.
    fn relation_types(&self, masked: &str) -> Vec<String> {
        let Some(graph) = self.k.catalog.graph.as_ref() else {
            return Vec::new();
        };
        let view_words = text::find_synonym(masked, self.v.terms("view:neighbors"));
        let mut found: Vec<(Span, String)> = graph
            .relation_types
            .iter()
            .filter_map(|r| {
                let terms = r.synonyms.iter().chain(std::iter::once(&r.name));
                text::find_synonym(masked, terms).map(|span| (span, r.name.clone()))
            })
            .filter(|(span, _)| view_words.is_none_or(|v| !text::overlaps(*span, v)))
            .collect();
        found.sort();
        found.into_iter().map(|(_, name)| name).take(1).collect()
    }

    /// The slots of a document question, and the plan's intent and view.
    fn document(&mut self, masked: &str) -> (Intent, View) {
        let stop: Vec<&str> = self
            .v
            .terms("stopword")
            .iter()
            .map(String::as_str)
            .collect();
        let particles: Vec<&str> = self
            .v
            .terms("particle")
            .iter()
            .map(String::as_str)
            .collect();
        let mut terms: Vec<String> = Vec::new();
        for word in masked
            .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
            .filter(|w| !w.is_empty())
        {
            let mut word = word.to_owned();
            for particle in &particles {
                if word.chars().count() > particle.chars().count() + 1
                    && let Some(stem) = word.strip_suffix(particle)
                {
                    word = stem.to_owned();
                    break;
                }
            }
            if !stop.contains(&word.as_str()) && !terms.contains(&word) {
                terms.push(word);
            }
        }
        // A concept the question names in one language is searched in every spelling the
        // glossary (`search:<concept>`) gives it: an English question finds a Korean title.
        for (concept, spellings) in self.v.with_prefix("search:") {
            if terms.is_empty()
                || text::find_any(masked, spellings.iter().map(String::as_str)).is_none()
            {
                continue;
            }
            for word in spellings.iter().flat_map(|s| s.split_whitespace()) {
                let word = word.to_lowercase();
                if !terms.contains(&word) {
                    terms.push(word);
                }
            }
            self.reasons
                .push(format!("search `{concept}` in every spelling"));
        }
        if terms.is_empty() {
            self.plan.missing_slots.push("document_query".into());
        }
        self.plan.document = Some(DocumentPlan {
            query: terms.join(" "),
            top_k: self
                .setting("default:document_top_k")
                .and_then(|n| n.parse().ok())
                .unwrap_or(3),
        });
        (Intent::Search, View::Summary)
    }
}

/// The graph view a question asks for, in [`View::GRAPH`]'s precedence; the vocabulary
/// names each by its lower-case string (`view:path`).
/// Where the question names a column: by a synonym, its display name or its own name (`_`
/// read as a space).
fn column_spans(masked: &str, column: &ops_proto::v1::CatalogColumn) -> Vec<Span> {
    let own = column.name.replace('_', " ");
    column
        .synonyms
        .iter()
        .chain([&column.display_name, &own])
        .filter(|n| !n.is_empty())
        .flat_map(|name| text::find_all(masked, &name.to_lowercase()))
        .collect()
}

/// The values of an ordered scale (highest first) that compare with `value` by `op`.
pub fn ordered_values(scale: &[String], value: &str, op: &str) -> Option<Vec<String>> {
    let at = scale.iter().position(|v| v.eq_ignore_ascii_case(value))?;
    let range = match op {
        "gte" => &scale[..=at],
        "lte" => &scale[at..],
        "gt" => &scale[..at],
        "lt" => &scale[at + 1..],
        _ => return None,
    };
    Some(range.to_vec())
}

/// An impact question names the CI's failure next to it ("SAN-01's failure", "outage of
/// SAN-01"); that word is the cause asked about, not events asked for: blanked.
fn without_failure_word(masked: &str) -> String {
    let mut out = masked.to_owned();
    let mut blank = |start: usize, end: usize| {
        out.replace_range(start..end, &" ".repeat(end - start));
    };
    let mut at = 0;
    while let Some(found) = masked[at..].find("{ci}") {
        let ci = at + found;
        let after = ci + "{ci}".len();
        let tail = &masked[after..];
        let skip = ["'s ", "’s ", "의 ", " "]
            .iter()
            .find(|p| tail.starts_with(**p))
            .map_or(0, |p| p.len());
        let word = &tail[skip..];
        let len = word.find(char::is_whitespace).unwrap_or(word.len());
        if len > 0 && skip > 0 {
            blank(after + skip, after + skip + len);
        }
        let head = &masked[..ci];
        if let Some(before) = head.strip_suffix(" of ") {
            let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
            blank(start, before.len());
        }
        at = after;
    }
    out
}

fn graph_view(v: &Vocabulary, masked: &str) -> Option<View> {
    View::GRAPH
        .into_iter()
        .find(|view| v.has(masked, &format!("view:{}", view.as_str().to_lowercase())))
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// At most the last `max` bytes of `text`, cut at a character boundary.
fn suffix(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// "2024" (its first day) or "2024-05-01".
fn calendar_day(text: &str) -> Option<time::Date> {
    let mut parts = text.split('-');
    let year: i32 = parts.next()?.parse().ok()?;
    if !(1900..=2200).contains(&year) {
        return None;
    }
    let month: u8 = parts.next().map_or(Some(1), |m| m.parse().ok())?;
    let day: u8 = parts.next().map_or(Some(1), |d| d.parse().ok())?;
    time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()
}

fn parse_hours(text: &str) -> Option<i64> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = number.parse().ok()?;
    match unit {
        "h" => Some(n),
        "d" => Some(n * 24),
        "w" => Some(n * 24 * 7),
        _ => None,
    }
}

/// A window's length in words, whatever language the question used: "24 hours", "7 days".
pub fn span_label(hours: i64) -> String {
    match hours {
        1 => "hour".to_owned(),
        h if h >= 48 && h % 24 == 0 => format!("{} days", h / 24),
        h => format!("{h} hours"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knowledge(entries: &[(&str, &[&str])]) -> Knowledge {
        let mut k = Knowledge::default();
        for (meaning, terms) in entries {
            k.vocabulary.add(meaning, terms.iter().copied());
        }
        k.patterns = Patterns::compile(&k.vocabulary).unwrap_or_default();
        k
    }

    #[test]
    fn the_failure_named_beside_the_ci_is_no_event_asked_for() {
        let blanked = |t: &str| {
            without_failure_word(t)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            blanked("incidents on what {ci}'s failure would impact"),
            "incidents on what {ci}'s would impact"
        );
        assert_eq!(
            blanked("impact of an outage of {ci}"),
            "impact of an of {ci}"
        );
        assert_eq!(blanked("{ci} 장애 시 영향"), "{ci} 시 영향");
        // Words elsewhere stay: they are what the question asks for.
        assert_eq!(blanked("alarms on {ci}"), "alarms on {ci}");
    }

    #[test]
    fn relative_windows_read_number_and_unit() {
        let k = knowledge(&[
            ("unit:hours", &["시간", "hours", "hour", "h"]),
            ("unit:days", &["일간", "일", "days", "day", "d"]),
        ]);
        let planner = Planner {
            k: &k,
            v: &k.vocabulary,
            text: String::new(),
            cased: None,
            as_of: OffsetDateTime::UNIX_EPOCH,
            plan: Plan::default(),
            reasons: Vec::new(),
            named: Vec::new(),
            group_filters: BTreeMap::new(),
            doubt: None,
        };
        assert_eq!(
            planner.relative_window("max of {ci} over the last 3 days?"),
            Some(72)
        );
        assert_eq!(planner.relative_window("지난 7일간의 알람"), Some(168));
        assert_eq!(planner.relative_window("top 3 databases"), None);
    }

    #[test]
    fn named_windows_cover_days_weeks_months_and_the_year() {
        let k = knowledge(&[
            ("time:this_month", &["이번 달", "this month"]),
            ("time:last_month", &["지난달", "last month"]),
            ("time:this_year", &["올해", "this year"]),
            ("time:today", &["오늘", "today"]),
        ]);
        let as_of = OffsetDateTime::parse(
            "2026-03-15T10:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut planner = Planner {
            k: &k,
            v: &k.vocabulary,
            text: String::new(),
            cased: None,
            as_of,
            plan: Plan::default(),
            reasons: Vec::new(),
            named: Vec::new(),
            group_filters: BTreeMap::new(),
            doubt: None,
        };
        let day = |text: &str| {
            let t = OffsetDateTime::parse(
                &format!("{text}T00:00:00Z"),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            Some(timestamp(t))
        };
        for (question, from, to, label) in [
            (
                "이번 달 알람",
                day("2026-03-01"),
                Some(timestamp(as_of)),
                "this month",
            ),
            (
                "alarms last month",
                day("2026-02-01"),
                day("2026-03-01"),
                "last month",
            ),
            (
                "올해 장애",
                day("2026-01-01"),
                Some(timestamp(as_of)),
                "this year",
            ),
            (
                "events today",
                day("2026-03-15"),
                Some(timestamp(as_of)),
                "today",
            ),
        ] {
            let w = planner.window(question, "default:history_window");
            assert_eq!(
                (w.from, w.to, w.label.as_str()),
                (from, to, label),
                "{question}"
            );
            assert!(!w.defaulted);
        }
    }

    #[test]
    fn a_named_column_binds_its_value_and_an_ordered_one_compares_along_its_scale() {
        let mut k = knowledge(&[
            ("compare:eq", &["is", "이"]),
            ("compare:gte", &["or above", "이상"]),
            ("value:assets.kind=System", &["system", "시스템"]),
        ]);
        let column = |name: &str, values: &[&str], ordered: bool| ops_proto::v1::CatalogColumn {
            name: name.into(),
            filterable: true,
            ordered,
            enum_values: values.iter().map(|v| (*v).to_owned()).collect(),
            synonyms: if name == "system" {
                vec!["시스템".into()]
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        k.catalog.tables = vec![ops_proto::v1::CatalogTable {
            name: "assets".into(),
            columns: vec![
                column("system", &[], false),
                column("kind", &[], false),
                column("criticality", &["critical", "high", "low"], true),
            ],
            ..Default::default()
        }];
        for (column, value) in [
            ("system", "MES"),
            ("kind", "System"),
            ("kind", "Server"),
            ("criticality", "high"),
        ] {
            k.values.push(ColumnValue {
                table: "assets".into(),
                column: column.into(),
                value: value.into(),
            });
        }
        k.tools = vec![ToolChoice {
            name: "asset_tool".into(),
            mode: Some(Mode::Config),
            shape: String::new(),
            table: "assets".into(),
            config: serde_json::json!({"mode": "config", "table": "assets"}),
        }];
        let planned = |q: &str| match plan(&k, q, OffsetDateTime::UNIX_EPOCH, None).routed {
            Routed::Plan(p) => p,
            _ => Plan::default(),
        };
        // "system" is the column here, not the kind System.
        for q in ["assets whose system is MES", "시스템이 MES인 자산"] {
            let p = planned(q);
            let filters: Vec<(&str, &str)> = p
                .filters
                .iter()
                .map(|(c, v)| (c.as_str(), v.as_str()))
                .collect();
            assert_eq!(filters, [("system", "MES")], "{q}");
        }
        assert_eq!(
            planned("the system assets")
                .filters
                .get("kind")
                .map(String::as_str),
            Some("System"),
            "without a value after it the word is still a value"
        );
        let p = planned("assets of criticality high or above");
        assert!(p.filters.is_empty(), "{:?}", p.filters);
        let ranges: Vec<(&str, &str, &str)> = p
            .comparisons
            .iter()
            .map(|c| (c.column.as_str(), c.op.as_str(), c.value.as_str()))
            .collect();
        assert_eq!(ranges, [("criticality", "gte", "high")]);
        assert_eq!(
            ordered_values(
                &["critical".into(), "high".into(), "low".into()],
                "high",
                "gte"
            ),
            Some(vec!["critical".to_owned(), "high".to_owned()])
        );
    }

    #[test]
    #[allow(clippy::panic)]
    fn a_metric_of_the_cis_whose_events_match_is_planned_in_two_steps() {
        let mut k = knowledge(&[
            ("mode:history", &["alarms", "알람"]),
            ("link:had", &["that had", "이 발생한"]),
            ("time:yesterday", &["yesterday", "어제"]),
            ("default:metric_window", &["24h"]),
            ("default:history_window", &["30d"]),
            ("default:aggregation", &["avg"]),
        ]);
        k.catalog.metrics = Some(ops_proto::v1::MetricMapping {
            metrics: vec![ops_proto::v1::MetricDefinition {
                name: "cpu_usage".into(),
                synonyms: vec!["cpu".into()],
                ..Default::default()
            }],
            ..Default::default()
        });
        let tool = |name: &str, mode: Mode, config: serde_json::Value| ToolChoice {
            name: name.into(),
            mode: Some(mode),
            shape: String::new(),
            table: config["table"].as_str().unwrap_or_default().to_owned(),
            config,
        };
        k.tools = vec![
            tool(
                "metric_tool",
                Mode::Metric,
                serde_json::json!({"mode": "metric"}),
            ),
            tool(
                "history_tool",
                Mode::History,
                serde_json::json!({"mode": "history", "table": "events", "entity_table": "ci_master"}),
            ),
        ];
        let planned = |q: &str| match plan(&k, q, OffsetDateTime::UNIX_EPOCH, None).routed {
            Routed::Plan(p) => p,
            other => panic!("{q}: {other:?}"),
        };
        for q in [
            "average cpu of the CIs that had alarms yesterday",
            "어제 알람이 발생한 CI의 cpu 평균",
        ] {
            let p = planned(q);
            assert_eq!(p.mode, "metric", "{q}");
            assert!(p.missing_slots.is_empty(), "{q}: {:?}", p.missing_slots);
            let subject = p
                .subject
                .as_deref()
                .unwrap_or_else(|| panic!("{q}: no subject"));
            assert_eq!(
                (subject.mode.as_str(), subject.tools.as_slice()),
                ("history", &["history_tool".to_owned()][..])
            );
            let events_window = subject.history.as_ref().and_then(|h| h.window.as_ref());
            assert_eq!(
                events_window.map(|w| w.label.as_str()),
                Some("yesterday"),
                "{q}"
            );
            // The window named belongs to the events; the metric keeps its default.
            let metric_window = p.metric.as_ref().and_then(|m| m.window.as_ref());
            assert!(
                metric_window.is_some_and(|w| w.defaulted),
                "{q}: {metric_window:?}"
            );
        }
        assert!(
            planned("average cpu yesterday of the CIs")
                .subject
                .is_none()
        );
    }

    #[test]
    fn a_question_naming_a_table_picks_the_tool_over_it() {
        let mut k = knowledge(&[]);
        let table = |name: &str, synonyms: &[&str]| ops_proto::v1::CatalogTable {
            name: name.into(),
            synonyms: synonyms.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        k.catalog.tables = vec![
            table("ci_master", &["asset", "자산"]),
            table("contracts", &["contract", "계약"]),
        ];
        let tool = |name: &str, table: &str| ToolChoice {
            name: name.into(),
            mode: Some(Mode::Config),
            shape: String::new(),
            table: table.into(),
            config: serde_json::json!({"mode": "config", "table": table}),
        };
        k.tools = vec![
            tool("ci_tool", "ci_master"),
            tool("contract_tool", "contracts"),
        ];
        let chosen = |q: &str| match plan(&k, q, OffsetDateTime::UNIX_EPOCH, None).routed {
            Routed::Plan(p) => p.tools,
            _ => Vec::new(),
        };
        assert_eq!(chosen("list all contracts"), ["contract_tool"]);
        assert_eq!(chosen("계약 목록"), ["contract_tool"]);
        assert_eq!(chosen("list all assets"), ["ci_tool"]);
        // Naming neither: the first tool of the mode.
        assert_eq!(chosen("list everything"), ["ci_tool"]);
    }

    #[test]
    fn window_labels_are_the_same_in_every_language() {
        assert_eq!(span_label(1), "hour");
        assert_eq!(span_label(24), "24 hours");
        assert_eq!(span_label(36), "36 hours");
        assert_eq!(span_label(168), "7 days");
    }
}
