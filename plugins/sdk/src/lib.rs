//! Everything a plugin author needs: the contract's types, the `Mapper` and `Screen` traits and
//! the macros that export an implementation as a component.
//!
//! ```ignore
//! use ops_plugin_sdk::prelude::*;
//!
//! struct Echo;
//! impl Mapper for Echo {
//!     fn describe() -> PluginInfo { PluginInfo::new("echo", "1.0.0", "every result as a table") }
//!     fn map(input: MapInput) -> Result<Vec<Block>, PluginError> {
//!         Ok(input.results.into_iter().map(|r| Block::table(&r.tool, r.rows)).collect())
//!     }
//! }
//! ops_plugin_sdk::export_mapper!(Echo);
//! ```

// The generated code names the runtime through the SDK (`ops_plugin_sdk::__rt`) so authors
// need no direct wit-bindgen dependency; this makes that path resolve inside the SDK too.
extern crate self as ops_plugin_sdk;

mod helpers;
mod rows;

/// Generated bindings of the `mapper-plugin` world (owns the shared `types` interface).
#[doc(hidden)]
pub mod mapper_world {
    wit_bindgen::generate!({
        path: "../wit",
        world: "ops:plugin/mapper-plugin",
        pub_export_macro: true,
        default_bindings_module: "ops_plugin_sdk::mapper_world",
        runtime_path: "ops_plugin_sdk::__rt",
        additional_derives: [PartialEq],
    });
}

/// Generated bindings of the `screen-plugin` world; its types are the mapper world's.
#[doc(hidden)]
pub mod screen_world {
    wit_bindgen::generate!({
        path: "../wit",
        world: "ops:plugin/screen-plugin",
        pub_export_macro: true,
        default_bindings_module: "ops_plugin_sdk::screen_world",
        runtime_path: "ops_plugin_sdk::__rt",
        additional_derives: [PartialEq],
        with: { "ops:plugin/types@0.2.0": crate::mapper_world::ops::plugin::types },
    });
}

#[doc(hidden)]
pub use wit_bindgen::rt as __rt;

/// `export_mapper!(MyMapper);` exports a `Mapper` implementation as the component's mapper.
///
/// Only wasm builds export: a native build of the same crate (its unit tests) links no
/// component exports, whose names native linkers cannot spell.
#[macro_export]
macro_rules! export_mapper {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::mapper_world::export!($ty);
        // Natively nothing else names the (unit) struct; this keeps dead-code lints quiet.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _ = $ty;
        };
    };
}

/// `export_screen!(MyScreen);` exports a `Screen` implementation as the component's screen.
#[macro_export]
macro_rules! export_screen {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::screen_world::export!($ty);
        // Natively nothing else names the (unit) struct; this keeps dead-code lints quiet.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _ = $ty;
        };
    };
}

/// The contract's data types.
pub mod types {
    pub use crate::mapper_world::ops::plugin::types::*;
}

/// The version of the `ops:plugin` package this SDK implements.
pub const CONTRACT_VERSION: &str = "0.2.0";

pub mod mapper {
    //! The mapper world: tool results + config -> answer blocks.
    pub use crate::mapper_world::exports::ops::plugin::mapper::{Guest as Mapper, MapInput};
}

pub mod screen {
    //! The screen world: answer blocks + config -> screen model.
    pub use crate::screen_world::exports::ops::plugin::screen::{
        Action, Component, Guest as Screen, Layout, PresentInput, ScreenModel,
    };
}

pub use helpers::{BLOCK_KINDS, Record, block_kind, render_template, template_fields};

/// `use ops_plugin_sdk::prelude::*;` brings in what a plugin usually needs.
pub mod prelude {
    pub use crate::helpers::{Record, block_kind, render_template, template_fields};
    pub use crate::mapper::{MapInput, Mapper};
    pub use crate::screen::{Action, Component, Layout, PresentInput, Screen, ScreenModel};
    pub use crate::types::{
        Block, BlockContent, ChartBlock, Column, ColumnData, Field, Graph, GraphEdge, GraphNode,
        NumberBlock, PackedTexts, PluginError, PluginInfo, Reference, RowSet, Series, SeriesPoint,
        TableBlock, ToolResult, Value,
    };
}
