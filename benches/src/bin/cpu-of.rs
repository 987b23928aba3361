//! `cpu-of`: runs a command and says how much CPU it and the watched processes spent while it
//! ran, the way `load` measures the stack: for pgbench, the reference of `benches/run-load.sh`.
//!
//! ```text
//! cpu-of --json FILE --cpu postgres=PID -- pgbench -n -c 16 -T 20 -f insert-user.sql loadtest
//! ```
//!
//! The command's own output passes through; FILE gets `{"cpu_seconds": {"postgres": …,
//! "client": …}}`, `client` being the command.

use std::process::ExitCode;

use benchmarks::cpu::Watched;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut watched, mut json) = (Watched::default(), None);
    let usage = "usage: cpu-of [--json FILE] [--cpu NAME=PID]... -- COMMAND [ARGS...]";
    loop {
        match args.next().as_deref() {
            Some("--") => break,
            Some("--json") => json = args.next(),
            Some("--cpu") => {
                if let Err(error) = watched.add(&args.next().unwrap_or_default()) {
                    eprintln!("cpu-of: {error}\n{usage}");
                    return ExitCode::from(2);
                }
            }
            _ => {
                eprintln!("{usage}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(program) = args.next() else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let before = watched.sample();
    let status = match std::process::Command::new(&program).args(args).status() {
        Ok(status) => status,
        Err(error) => {
            eprintln!("cpu-of: cannot run {program}: {error}");
            return ExitCode::from(2);
        }
    };
    let spent = watched.sample().since(&before);
    for (name, cpu) in &spent {
        eprintln!("cpu-of: {name:<10} {:.3} s", cpu.as_secs_f64());
    }
    if let Some(path) = json {
        let seconds: serde_json::Map<String, serde_json::Value> = spent
            .iter()
            .map(|(name, cpu)| (name.clone(), cpu.as_secs_f64().into()))
            .collect();
        let line = serde_json::json!({ "cpu_seconds": seconds });
        if let Err(error) = std::fs::write(&path, format!("{line}\n")) {
            eprintln!("cpu-of: {path}: {error}");
            return ExitCode::from(2);
        }
    }
    if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
