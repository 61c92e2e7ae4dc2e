use std::io::IsTerminal;
use std::process::ExitCode;

use nts::config::Config;
use nts::startup::Application;

const USAGE: &str = "usage: nts [--demo]      serve (--demo: simulated payments and the demo event; no money moves)
       nts openapi           print the OpenAPI document (YAML)
       nts healthcheck       exit 0 if the nts at NTS_ADDRESS answers /healthz (for container health checks)";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let demo = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => false,
        ["--demo"] => true,
        ["openapi"] => {
            print!("{}", nts::http::openapi::yaml());
            return ExitCode::SUCCESS;
        }
        ["healthcheck"] => return healthcheck().await,
        ["--help" | "-h"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match nts::telemetry::LogFormat::from_env() {
        Ok(format) => nts::telemetry::init(format),
        Err(e) => {
            eprintln!("nts: configuration error: {e}");
            return ExitCode::from(2);
        }
    }
    let config = match Config::from_env(demo) {
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
    if config.ticket_keys.is_dev() {
        tracing::warn!(
            "NTS_TICKET_KEY is not set: ticket codes are made with the well-known development key, which is allowed \
             with simulated payments only; set NTS_TICKET_KEY before selling real tickets"
        );
    }
    let address = config.address.clone();
    let stripe = config.stripe().cloned();
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("nts: cannot start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match stripe {
        Some(s) => tracing::info!(api_base = %s.api_base, "payments through Stripe"),
        None => tracing::warn!("SIMULATED PAYMENTS (asked for): no real money moves"),
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

/// Asks this host's nts for `/healthz`, with nothing but the standard library
/// (the container image has no curl).
async fn healthcheck() -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = std::env::var("NTS_ADDRESS").unwrap_or_else(|_| "0.0.0.0:9000".into());
    let port = address.rsplit_once(':').map_or("9000", |(_, p)| p);
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200"))
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), ask).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
