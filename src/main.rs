//! The `infersim` binary: a thin shell over the library.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match infersim::cli::run() {
        Ok(out) => print_stdout(&out).unwrap_or(ExitCode::SUCCESS),
        Err(e) => {
            let failed_write = e.report().and_then(print_stdout);
            eprintln!("error: {e}");
            failed_write.unwrap_or(ExitCode::from(e.exit_code() as u8))
        }
    }
}

/// Write `text` to standard output and flush it. A closed pipe (e.g. `| head`) is not worth
/// reporting; any other failure (a full disk, `> /dev/full`) is a runtime failure: returns the
/// exit code 1 after saying so on standard error.
fn print_stdout(text: &str) -> Option<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => None,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => None,
        Err(e) => {
            eprintln!("error: cannot write standard output: {e}");
            Some(ExitCode::from(1))
        }
    }
}
