//! The OPS gRPC API. Each package exports its generated types, its tonic client and server,
//! serde impls following the proto3 JSON mapping, and its `FILE_DESCRIPTOR_SET` for server
//! reflection.

/// Generated code is not held to the workspace lints.
#[allow(clippy::all, clippy::pedantic, clippy::unwrap_used, missing_docs)]
pub mod ops {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/ops.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/ops.v1.serde.rs"));

        /// Encoded `FileDescriptorSet` of `ops.v1` and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/ops.v1.fds.bin"));
    }

    pub mod executor {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/ops.executor.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/ops.executor.v1.serde.rs"));

            /// Encoded `FileDescriptorSet` of `ops.executor.v1` and its imports.
            pub const FILE_DESCRIPTOR_SET: &[u8] =
                include_bytes!(concat!(env!("OUT_DIR"), "/ops.executor.v1.fds.bin"));
        }
    }
}

pub use ops::executor::v1 as executor;
pub use ops::v1;

pub mod cells;
pub mod convert;
pub mod executor_api;
