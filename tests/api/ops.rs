use std::time::Duration;

use nts_testkit::wire::{HoldStatus, OrderStatus, SimulatedOutcome};
use nts_testkit::{spawn_app, Expect};
use reqwest::Method;

#[tokio::test]
async fn health_docs_and_config_answer() {
    let app = spawn_app().await;
    let api = app.api();
    assert_eq!(api.health().await.unwrap().database, "ok");
    assert_eq!(api.config().await.unwrap().gateway, "simulated");
    let docs = api.raw(Method::GET, "/docs/").send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
    // The OpenAPI document is a document, not an answer of the API: read as JSON.
    let spec = api.send_json(Method::GET, "/api/openapi.json", None, None).await;
    assert!(spec.expect(200)["paths"]["/api/v1/events/{event_id}/holds"]["post"].is_object());
    let page = api.raw(Method::GET, "/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
}

#[tokio::test]
async fn openapi_yaml_is_the_generated_document() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml")).expect("openapi.yaml");
    assert!(
        committed == nts::http::openapi::yaml(),
        "openapi.yaml is stale: run `cargo run --bin nts -- openapi > openapi.yaml`"
    );
}

/// OpenAPI: "The list MUST NOT include duplicated parameters" (generators skip such operations).
#[test]
fn no_operation_declares_a_parameter_twice() {
    let spec = nts::http::openapi::json();
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let mut seen = std::collections::HashSet::new();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let key = (p["in"].as_str().unwrap().to_owned(), p["name"].as_str().unwrap().to_ascii_lowercase());
                assert!(seen.insert(key.clone()), "{method} {path} declares {key:?} twice");
            }
        }
    }
    assert!(operations > 20);
}

#[test]
fn docker_compose_runs_postgres_and_nts_with_the_settings_passed_through() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docker-compose.yml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let services = &doc["services"];
    assert!(services["postgres"]["image"].as_str().unwrap().starts_with("postgres"));
    let nts = &services["nts"];
    assert!(nts["build"].is_mapping() || nts["build"].is_string());
    let env = serde_yaml::to_string(&nts["environment"]).unwrap();
    for var in
        ["NTS_PAYMENTS", "NTS_STRIPE_PUBLISHABLE_KEY", "NTS_STRIPE_SECRET_KEY", "NTS_ADMIN_TOKEN", "DATABASE_URL"]
    {
        assert!(env.contains(var), "{var} is passed to nts");
    }
    let ports = serde_yaml::to_string(&nts["ports"]).unwrap();
    assert!(ports.contains("9000"));
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Dockerfile")).unwrap();
    // Cargo reads every workspace member's manifest and needs the patched crates' sources; it builds the service alone.
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml")).unwrap();
    let members = manifest.lines().find_map(|l| l.strip_prefix("members = ")).expect("a members list");
    for member in members.trim_matches(['[', ']']).split(',').map(|m| m.trim().trim_matches('"')) {
        let copy = if member == "api" {
            format!("COPY {member} {member}")
        } else {
            format!("COPY {member}/Cargo.toml {member}/")
        };
        assert!(dockerfile.contains(&copy), "the Dockerfile copies {member}'s manifest");
    }
    let patches = &manifest[manifest.find("[patch.crates-io]").expect("a patch section")..];
    for line in patches.lines().filter_map(|l| l.split_once("path = \"").map(|(_, rest)| rest)) {
        let folder = line.split('/').next().unwrap();
        assert!(dockerfile.contains(&format!("COPY {folder} {folder}")), "the Dockerfile copies {folder}/");
    }
    assert!(dockerfile.contains("cargo build --release --locked -p nts "), "the image builds only the service");
    // The image never runs as root and tells Docker whether nts is healthy.
    let user = dockerfile.lines().filter_map(|l| l.strip_prefix("USER ")).last().expect("a USER line");
    assert!(!user.starts_with("root") && !user.starts_with('0'), "runs as {user}");
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("\"healthcheck\""));
}

/// The `scaled` profile is the setup tests/haproxy_pgbouncer.sh runs: HAProxy
/// (deploy/haproxy) in front of three nts replicas, PgBouncer in transaction
/// mode (deploy/pgbouncer) in front of PostgreSQL, migrations straight to it.
#[test]
fn docker_compose_scaled_profile_matches_the_tested_setup() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let text = std::fs::read_to_string(format!("{root}/docker-compose.yml")).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc.apply_merge().unwrap();
    let services = doc["services"].as_mapping().unwrap();
    let scaled = |name: &str| {
        let service = &services[name];
        assert!(
            service["profiles"].as_sequence().is_some_and(|p| p.iter().any(|p| p == "scaled")),
            "{name} is in the scaled profile"
        );
        service
    };
    // The single-instance setup stays the default.
    assert!(services["nts"]["profiles"].is_null() && services["postgres"]["profiles"].is_null());

    let haproxy = scaled("haproxy");
    assert!(haproxy["image"].as_str().unwrap().starts_with("haproxy:2."));
    let mounted = serde_yaml::to_string(&haproxy["volumes"]).unwrap();
    assert!(mounted.contains("./deploy/haproxy/haproxy.cfg:"), "{mounted}");
    let lb_env = &haproxy["environment"];
    let mut replicas = Vec::new();
    for (i, name) in ["nts1", "nts2", "nts3"].into_iter().enumerate() {
        assert_eq!(lb_env[format!("NTS{}_ADDR", i + 1).as_str()].as_str(), Some(format!("{name}:9000").as_str()));
        let nts = scaled(name);
        assert!(nts["build"].is_mapping() || nts["build"].is_string());
        let env = &nts["environment"];
        let var = |k: &str| env[k].as_str().unwrap_or_default().to_owned();
        assert!(var("DATABASE_URL").contains("@pgbouncer:6432/"), "{name} reaches PostgreSQL through PgBouncer");
        assert_eq!(var("NTS_DB_TRANSACTION_POOLING"), "true");
        assert!(var("NTS_MIGRATION_DATABASE_URL").contains("@postgres:5432/"), "{name} migrates directly");
        assert!(!var("NTS_TRUSTED_PROXIES").is_empty(), "{name} believes HAProxy's X-Forwarded-For");
        assert_eq!(var("NTS_LOG_FORMAT"), "json");
        for secret in ["NTS_ADMIN_TOKEN", "NTS_METRICS_TOKEN", "NTS_PAYMENTS", "NTS_STRIPE_SECRET_KEY"] {
            assert!(env[secret].as_str().is_some_and(|v| v.starts_with("${")), "{name} passes {secret} through");
        }
        replicas.push(nts);
    }
    assert!(replicas.windows(2).all(|w| w[0] == w[1]), "the replicas are configured alike");
    let pgbouncer = scaled("pgbouncer");
    assert_eq!(pgbouncer["build"].as_str(), Some("deploy/pgbouncer"));

    // The configuration files the test runs with.
    let haproxy_cfg = std::fs::read_to_string(format!("{root}/deploy/haproxy/haproxy.cfg")).unwrap();
    for line in ["option httpchk", "uri /healthz", "option forwardfor", "server nts1", "server nts2", "server nts3"] {
        assert!(haproxy_cfg.contains(line), "haproxy.cfg: {line}");
    }
    let ini = std::fs::read_to_string(format!("{root}/deploy/pgbouncer/pgbouncer.ini")).unwrap();
    for line in ["pool_mode = transaction", "ignore_startup_parameters = extra_float_digits", "nts = host=postgres"] {
        assert!(ini.lines().any(|l| l.starts_with(line)), "pgbouncer.ini: {line}");
    }
    let dockerfile = std::fs::read_to_string(format!("{root}/deploy/pgbouncer/Dockerfile")).unwrap();
    assert!(dockerfile.contains("FROM debian:bookworm") && dockerfile.contains("USER postgres"));
    let script = std::fs::read_to_string(format!("{root}/tests/haproxy_pgbouncer.sh")).unwrap();
    assert!(script.contains("deploy/haproxy/haproxy.cfg") && script.contains("deploy/pgbouncer/pgbouncer.ini"));
}

#[tokio::test]
async fn a_restart_loses_nothing_acknowledged() {
    let mut app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let paid = app.checkout(event, tt, 2).await;
    let paid_secret = paid.order.secret.clone().unwrap();
    app.confirm(paid.payment.as_ref().unwrap().id, &paid_secret, SimulatedOutcome::Succeeded).await.expect_status(200);
    let hold = app.hold(event, tt, 3).await.unwrap();

    app.stop_instance(0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.start_instance().await;

    let api = app.api();
    let order = api.order(paid.order.id, &paid_secret).await.unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.tickets.len(), 2);
    let seen = api.hold(hold.id, hold.secret.as_deref().unwrap()).await.unwrap();
    assert_eq!(seen.status, HoldStatus::Active);
    assert_eq!(app.available(event).await, 5);
    assert_eq!(app.sold_and_held(tt).await, (2, 3));
}

#[tokio::test]
async fn unknown_pages_get_the_friendly_page_and_unknown_api_paths_json() {
    let app = spawn_app().await;
    let api = app.api();
    let page = api.raw(Method::GET, "/no-such-page").send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    api.send_json(Method::GET, "/api/v1/no-such-thing", None, None).await.expect_error(404, "not_found");
}
