//! The `aha` binary: parse the command line, run one command, print the error chain.

use clap::Parser;

// glibc's malloc hands candle's large buffers back to the kernel after every op, which cost ~30%
// of step time and 2-3x step-time swings; mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod commands;

fn main() {
    let cli = commands::Cli::parse();
    if let Err(err) = commands::run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
