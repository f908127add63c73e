//! `mesh-route-check`: check a route configuration against Envoy `router_check_tool` tests.
//!
//! ```text
//! mesh-route-check --config routes.yaml --tests routes.golden.proto.json
//! mesh-route-check -c routes.yaml -t tests.yaml --details --coverage
//! ```
//!
//! Exit status: 0 when every test passes, 1 when a test fails, 2 when an input file cannot be
//! used (the message names the file and the field at fault). See
//! `mesh_examples::route_check` for the test-file format and what is checked.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mesh_examples::route_check::{self, RenderOptions};

#[derive(Debug, Parser)]
#[command(
    name = "mesh-route-check",
    version,
    about = "Check a route configuration against Envoy router_check_tool tests"
)]
struct Cli {
    /// Route configuration: a bare Envoy v3 RouteConfiguration (YAML or JSON).
    #[arg(short, long, value_name = "ROUTES")]
    config: PathBuf,
    /// Tests in Envoy's router_check_tool format (JSON or YAML).
    #[arg(short, long, value_name = "TESTS")]
    tests: PathBuf,
    /// Print every test's result (and, with --coverage, the untested routes).
    #[arg(short, long)]
    details: bool,
    /// Print the percentage of routes the tests exercise.
    #[arg(long)]
    coverage: bool,
}

/// Bad input: a file that cannot be read or used.
const BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let routes = match route_check::load_routes(&cli.config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}", route_check::error_chain(&e));
            return ExitCode::from(BAD_INPUT);
        }
    };
    for w in &routes.warnings {
        eprintln!("warning: {}: {w}", cli.config.display());
    }
    let tests = match route_check::load_tests(&cli.tests) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}", route_check::error_chain(&e));
            return ExitCode::from(BAD_INPUT);
        }
    };
    let report = route_check::check_routes(&routes, &tests);
    for w in &report.warnings {
        eprintln!("warning: {}: {w}", cli.tests.display());
    }
    print!(
        "{}",
        report.render(RenderOptions {
            details: cli.details,
            coverage: cli.coverage,
        })
    );
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
