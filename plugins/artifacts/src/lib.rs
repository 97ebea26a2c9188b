//! WASM components built from `plugins/` at build time (see `build.rs`); nothing here is
//! committed as a binary.

macro_rules! component {
    ($stem:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $stem, ".wasm"))
    };
}

/// The built-in Mapping plugin (declarative Mapping rules).
pub const DEFAULT_MAPPER: &[u8] = component!("ops_plugin_default_mapper");
/// The built-in Screen plugin (declarative Screen layout).
pub const DEFAULT_SCREEN: &[u8] = component!("ops_plugin_default_screen");
/// The example custom mapper of `plugins/examples/status-board`.
pub const STATUS_BOARD: &[u8] = component!("status_board");

/// Components that exist to be refused or measured.
pub mod fixtures {
    /// A mapper whose config selects an attack: loop, memory, recursion, panic, malformed.
    pub const HOSTILE: &[u8] = component!("ops_plugin_fixture_hostile");
    /// A mapper importing WASI filesystem and sockets.
    pub const WASI_IMPORT: &[u8] = component!("ops_plugin_fixture_wasi_import");
    /// The encoding benchmark's guest (typed records vs JSON vs MessagePack).
    pub const ENCODING_PROBE: &[u8] = component!("ops_plugin_fixture_encoding_probe");
}
