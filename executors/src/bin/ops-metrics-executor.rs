//! The metrics executor sidecar.

fn main() -> std::process::ExitCode {
    ops_executors::server::main_for(ops_proto::executor::ExecutorKind::Metrics)
}
