//! The graph executor sidecar.

fn main() -> std::process::ExitCode {
    ops_executors::server::main_for(ops_proto::executor::ExecutorKind::Graph)
}
