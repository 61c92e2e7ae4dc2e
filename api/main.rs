use std::process::ExitCode;

use nts::config::Config;
use nts::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        print!("{}", nts::openapi::yaml());
        return ExitCode::SUCCESS;
    }
    nts::telemetry::init();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nts: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if config.admin_token.generated {
        // Printed once, to the operator's terminal only; set NTS_ADMIN_TOKEN to choose it.
        eprintln!("nts: NTS_ADMIN_TOKEN is not set; this run's admin token is {}", config.admin_token.value);
    }
    let address = config.address.clone();
    let stripe = config.stripe.clone();
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("nts: cannot start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match stripe {
        Some(s) => tracing::info!(api_base = %s.api_base, "payments through Stripe"),
        None => tracing::warn!("SIMULATED PAYMENTS: no Stripe keys are set, no real money moves"),
    }
    tracing::info!(%address, port = app.port(), "nts is serving");
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nts: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
