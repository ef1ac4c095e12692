use clap::Parser as _;

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let args = tracer::cli::Args::parse();
    match &args.command {
        Some(tracer::cli::Command::GoOffsets { binaries }) => return go_offsets(binaries),
        Some(tracer::cli::Command::VerifierReport { budget }) => return verifier_report(*budget),
        Some(tracer::cli::Command::Floor) => return floor(),
        None => {}
    }
    // One thread: the stages hand each other work all the time, and waking
    // a task on another thread cost a context switch per hand-off (a third
    // of the agent's CPU when measured).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tracer: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tracer::agent::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracer: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `tracer go-offsets BINARY...`: the offsets table on stdout.
fn go_offsets(binaries: &[std::path::PathBuf]) -> std::process::ExitCode {
    let binaries: Vec<&std::path::Path> = binaries.iter().map(|b| b.as_path()).collect();
    match tracer::golang::offsets_table(&binaries) {
        Ok(table) => {
            print!("{table}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tracer: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `tracer verifier-report`: the verifier's cost of every kernel program.
fn verifier_report(budget: Option<u32>) -> std::process::ExitCode {
    match tracer::probes::verifier::run(budget) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tracer: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `tracer floor`: empty programs on the agent's tracepoints.
fn floor() -> std::process::ExitCode {
    match tracer::probes::floor::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracer: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
