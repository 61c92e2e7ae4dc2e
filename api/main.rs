use std::io::IsTerminal;
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
        // Shown once, on the operator's terminal only: never into a log file or collector.
        if std::io::stderr().is_terminal() {
            eprintln!("nts: NTS_ADMIN_TOKEN is not set; this run's admin token is {}", config.admin_token.value);
        } else {
            tracing::warn!("NTS_ADMIN_TOKEN is not set: a random admin token was generated for this run and is not shown; set NTS_ADMIN_TOKEN to use the admin API");
        }
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
    if let Err(e) = stop_on_signals(app.handle()) {
        eprintln!("nts: cannot listen for signals: {e}");
        return ExitCode::FAILURE;
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

/// SIGTERM / SIGINT: stop accepting, let requests in flight finish, then exit.
fn stop_on_signals(server: actix_web::dev::ServerHandle) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing requests in flight, then stopping"),
            _ = int.recv() => tracing::info!("SIGINT: finishing requests in flight, then stopping"),
        }
        server.stop(true).await;
    });
    Ok(())
}
