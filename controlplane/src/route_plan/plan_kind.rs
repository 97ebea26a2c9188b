//! The plan's kinds as types: the mode a question is about, the intent and view of its answer
//! and a metric's aggregation. The proto `Plan` (and so the trace) carries them as strings;
//! code matches on these enums and converts at the proto edge, where a plan is written or read.
//!
//! They live in `route_plan` because the planner writes them and `route_plan` is a leaf (it
//! imports nothing else of the crate); the stages read them through `model::plan_kind`.
//!
//! Parsing is exact (case included), as every comparison of these strings has been.

use std::fmt;
use std::str::FromStr;

/// A string that names no variant of a plan kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind {
    /// Which kind was parsed: "mode", "intent", "view" or "aggregation".
    pub kind: &'static str,
    pub value: String,
    /// Every string the kind accepts, in declaration order.
    pub allowed: Vec<&'static str>,
}

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a plan {}: expected one of {}",
            self.value,
            self.kind,
            self.allowed.join(", ")
        )
    }
}

impl std::error::Error for UnknownKind {}

/// One enum of a plan kind with the exact string of each variant: `as_str`, `ALL`, `FromStr`
/// and `Display` are written once here, so a string cannot drift between them.
macro_rules! plan_kind {
    ($(#[$doc:meta])* $name:ident as $kind:literal { $($variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The string the proto plan and the trace carry.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownKind;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownKind {
                        kind: $kind,
                        value: s.to_owned(),
                        allowed: Self::ALL.iter().map(Self::as_str).collect(),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

plan_kind! {
    /// What a question is about, and so which slots the planner fills and which tool answers.
    /// Also the `mode` of a Tool asset's config.
    Mode as "mode" {
        Config => "config",
        Metric => "metric",
        History => "history",
        Graph => "graph",
        Document => "document",
    }
}

plan_kind! {
    /// What the answer does with the mode's data.
    Intent as "intent" {
        Lookup => "LOOKUP",
        List => "LIST",
        Aggregate => "AGGREGATE",
        Expand => "EXPAND",
        Path => "PATH",
        Search => "SEARCH",
    }
}

plan_kind! {
    /// How the answer is shown: a summary, or one of the graph's views.
    View as "view" {
        Summary => "SUMMARY",
        Path => "PATH",
        Impact => "IMPACT",
        Composition => "COMPOSITION",
        Dependents => "DEPENDENTS",
        Dependencies => "DEPENDENCIES",
        Neighbors => "NEIGHBORS",
    }
}

plan_kind! {
    /// The aggregations a metric request can compute. A plan's aggregation is the word of the
    /// vocabulary (`aggregation:<word>`) and is kept as written; VALIDATE reads a word outside
    /// this set as `avg`.
    Aggregation as "aggregation" {
        Avg => "avg",
        Min => "min",
        Max => "max",
        Sum => "sum",
        Count => "count",
        Latest => "latest",
        P95 => "p95",
    }
}

impl View {
    /// The graph views a question can ask for, by precedence: a path names two ends, impact
    /// and composition are specific, a dependency phrase has a direction, neighbours are the
    /// rest.
    pub const GRAPH: [Self; 6] = [
        Self::Path,
        Self::Impact,
        Self::Composition,
        Self::Dependents,
        Self::Dependencies,
        Self::Neighbors,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: &[T]) -> Result<(), UnknownKind>
    where
        T: FromStr<Err = UnknownKind> + fmt::Display + PartialEq + fmt::Debug,
    {
        for variant in all {
            assert_eq!(&variant.to_string().parse::<T>()?, variant);
        }
        Ok(())
    }

    #[test]
    fn every_variant_round_trips_through_its_string() -> Result<(), UnknownKind> {
        round_trips(Mode::ALL)?;
        round_trips(Intent::ALL)?;
        round_trips(View::ALL)?;
        round_trips(Aggregation::ALL)
    }

    #[test]
    fn the_strings_are_the_ones_plans_and_traces_carry() {
        let strings = |all: &[&str]| all.join(" ");
        let modes: Vec<&str> = Mode::ALL.iter().map(Mode::as_str).collect();
        let intents: Vec<&str> = Intent::ALL.iter().map(Intent::as_str).collect();
        let views: Vec<&str> = View::ALL.iter().map(View::as_str).collect();
        let aggregations: Vec<&str> = Aggregation::ALL.iter().map(Aggregation::as_str).collect();
        assert_eq!(strings(&modes), "config metric history graph document");
        assert_eq!(
            strings(&intents),
            "LOOKUP LIST AGGREGATE EXPAND PATH SEARCH"
        );
        assert_eq!(
            strings(&views),
            "SUMMARY PATH IMPACT COMPOSITION DEPENDENTS DEPENDENCIES NEIGHBORS"
        );
        assert_eq!(strings(&aggregations), "avg min max sum count latest p95");
    }

    #[test]
    fn an_unknown_string_is_refused_naming_the_allowed_values() {
        let err = "metrics".parse::<Mode>().err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some(
                "\"metrics\" is not a plan mode: expected one of config, metric, history, graph, document"
            )
        );
        let err = "top_n".parse::<Intent>().err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("LOOKUP, LIST, AGGREGATE")),
            "{err:?}"
        );
        assert!("average".parse::<Aggregation>().is_err());
        assert!("".parse::<View>().is_err());
    }

    #[test]
    fn parsing_is_exact_as_the_string_comparisons_were() {
        assert!("Config".parse::<Mode>().is_err());
        assert!("summary".parse::<View>().is_err());
        assert!("AVG".parse::<Aggregation>().is_err());
        assert_eq!("PATH".parse::<View>(), Ok(View::Path));
        assert_eq!("PATH".parse::<Intent>(), Ok(Intent::Path));
    }
}
