//! Host-side bindings of the `ops:plugin@0.2.0` worlds (generated from `plugins/wit`).

pub mod mapper {
    wasmtime::component::bindgen!({
        path: "../plugins/wit",
        world: "ops:plugin/mapper-plugin",
    });
}

pub mod screen {
    wasmtime::component::bindgen!({
        path: "../plugins/wit",
        world: "ops:plugin/screen-plugin",
        with: { "ops:plugin/types": super::mapper::ops::plugin::types },
    });
}

pub use mapper::exports::ops::plugin::mapper::MapInput;
pub use mapper::ops::plugin::types as wit;
pub use screen::exports::ops::plugin::screen as screen_types;
