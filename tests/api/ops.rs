use std::time::Duration;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_docs_and_config_answer() {
    let app = spawn_app().await;
    let health = app.get("/healthz", None).await;
    assert_eq!(health.expect(200)["database"], "ok");
    let config = app.get("/api/v1/config", None).await;
    assert_eq!(config.expect(200)["gateway"], "simulated");
    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
    let spec = app.get("/api/openapi.json", None).await;
    assert!(spec.expect(200)["paths"]["/api/v1/events/{event_id}/holds"]["post"].is_object());
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
}

#[tokio::test]
async fn openapi_yaml_is_the_generated_document() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).expect("openapi.yaml");
    assert!(
        committed == nts::openapi::yaml(),
        "openapi.yaml is stale: run `cargo run --bin nts -- openapi > openapi.yaml`"
    );
}

#[test]
fn docker_compose_runs_postgres_and_nts_with_the_settings_passed_through() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml")).unwrap();
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
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    // Cargo refuses a manifest whose targets' files are missing, so the image needs every one's folder.
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    for line in manifest.lines().filter_map(|l| l.strip_prefix("path = \"")) {
        let folder = line.split('/').next().unwrap();
        assert!(dockerfile.contains(&format!("COPY {folder} {folder}")), "the Dockerfile copies {folder}/");
    }
    // The image never runs as root and tells Docker whether nts is healthy.
    let user = dockerfile.lines().filter_map(|l| l.strip_prefix("USER ")).last().expect("a USER line");
    assert!(!user.starts_with("root") && !user.starts_with('0'), "runs as {user}");
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("\"healthcheck\""));
}

#[tokio::test]
async fn a_restart_loses_nothing_acknowledged() {
    let mut app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let paid = app.checkout(&event, &tt, 2).await;
    let paid_secret = paid["order"]["secret"].as_str().unwrap().to_owned();
    app.confirm(paid["payment"]["id"].as_str().unwrap(), &paid_secret, "succeeded").await.expect(200);
    let hold = app.hold(&event, &tt, 3).await.expect(201).clone();

    app.stop_instance(0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.start_instance().await;

    let order = app.get(&format!("/api/v1/orders/{}", paid["order"]["id"].as_str().unwrap()), Some(&paid_secret)).await;
    assert_eq!(order.expect(200)["status"], "paid");
    assert_eq!(order.body["tickets"].as_array().unwrap().len(), 2);
    let seen = app.get(&format!("/api/v1/holds/{}", hold["id"].as_str().unwrap()), hold["secret"].as_str()).await;
    assert_eq!(seen.expect(200)["status"], "active");
    assert_eq!(app.available(&event).await, 5);
    assert_eq!(app.counters(&tt).await, (2, 3));
}

#[tokio::test]
async fn unknown_pages_get_the_friendly_page_and_unknown_api_paths_json() {
    let app = spawn_app().await;
    let page = app.client.get(app.url("/no-such-page")).send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    app.get("/api/v1/no-such-thing", None).await.expect_error(404, "not_found");
}
