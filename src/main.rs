//! The `infersim` binary: a thin shell over the library.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match infersim::cli::run() {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (e.g. `| head`) is not an error worth reporting.
            let _ = stdout.write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            if let Some(report) = e.report() {
                let _ = std::io::stdout().lock().write_all(report.as_bytes());
            }
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
