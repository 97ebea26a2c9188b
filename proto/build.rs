//! Generates the API from `proto/` with protox (no system protoc): tonic/prost code, serde
//! impls in the canonical proto3 JSON mapping (pbjson), and one descriptor set per package.

use std::path::PathBuf;

use prost::Message;

const PACKAGES: &[(&str, &[&str])] = &[
    (
        "ops.v1",
        &[
            "ops/v1/common.proto",
            "ops/v1/assets.proto",
            "ops/v1/registry.proto",
            "ops/v1/trace.proto",
            "ops/v1/ops_service.proto",
            "ops/v1/inspector.proto",
            "ops/v1/regression.proto",
            "ops/v1/alerts.proto",
            "ops/v1/access.proto",
        ],
    ),
    ("ops.executor.v1", &["ops/executor/v1/executor.proto"]),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", root.display());

    for (package, files) in PACKAGES {
        let descriptors = protox::compile(*files, [&root])?;
        let encoded = descriptors.encode_to_vec();
        std::fs::write(out_dir.join(format!("{package}.fds.bin")), &encoded)?;

        tonic_prost_build::configure()
            // pbjson_types: well-known types with serde in the proto3 JSON mapping.
            .compile_well_known_types(true)
            // Ordered maps make the encoding canonical, so equal content hashes equally.
            .btree_map(".")
            .extern_path(".google.protobuf", "::pbjson_types")
            .compile_fds(descriptors)?;
        pbjson_build::Builder::new()
            .register_descriptors(&encoded)?
            .btree_map(["."])
            // snake_case JSON, as in the OPS guides and in asset bundles kept in git.
            .preserve_proto_field_names()
            .build(&[format!(".{package}")])?;
    }
    Ok(())
}
