//! What it takes to start nts: an explicit choice of how money is taken.

use std::time::Duration;

use nts_testkit::process::{command, NtsProcess};
use nts_testkit::{Client, TestDb, ADMIN_TOKEN};

#[test]
fn without_stripe_keys_or_an_explicit_choice_nts_refuses_to_start() {
    let db = TestDb::unborn();
    let mut cmd = command(&db.url, &[]);
    cmd.env_remove("NTS_PAYMENTS");
    let out = cmd.output().expect("nts runs");
    assert_eq!(out.status.code(), Some(2), "a configuration error");
    let said = String::from_utf8_lossy(&out.stderr);
    for option in ["NTS_PAYMENTS", "NTS_PAYMENTS=simulated", "--demo", "NTS_STRIPE_SECRET_KEY"] {
        assert!(said.contains(option), "the message names {option}: {said}");
    }
    assert!(!said.contains("nts is serving"));
}

#[test]
fn simulated_fault_knobs_are_refused_with_stripe() {
    let db = TestDb::unborn();
    let mut cmd = command(
        &db.url,
        &[
            ("NTS_STRIPE_SECRET_KEY", "sk_test_x"),
            ("NTS_STRIPE_PUBLISHABLE_KEY", "pk_test_x"),
            ("NTS_STRIPE_WEBHOOK_SECRET", "whsec_x"),
            ("NTS_SIM_DECLINE_RATE", "0.5"),
        ],
    );
    cmd.env_remove("NTS_PAYMENTS");
    let out = cmd.output().expect("nts runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NTS_SIM_DECLINE_RATE"));
}

#[tokio::test]
async fn the_demo_flag_serves_simulated_payments_and_the_demo_event() {
    let db = TestDb::unborn();
    let mut cmd = command(&db.url, &[]);
    cmd.env_remove("NTS_PAYMENTS").env_remove("NTS_DEMO").arg("--demo");
    let nts = NtsProcess::start_command(cmd);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let api = Client::new(http, nts.url(""), ADMIN_TOKEN);
    let config = api.config().await.unwrap();
    assert_eq!(config.gateway, "simulated");
    assert!(config.demo);
    let events = api.events().await.unwrap();
    assert_eq!(events[0].name, "The best ever show");
    assert!(nts.log().contains("SIMULATED PAYMENTS"), "the log says no real money moves");
}

#[test]
fn an_unknown_argument_is_a_usage_error() {
    let db = TestDb::unborn();
    let out = command(&db.url, &[]).arg("--demon").output().expect("nts runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: nts"));
}

#[test]
fn the_healthcheck_command_says_whether_this_host_serves() {
    let db = TestDb::unborn();
    let nts = NtsProcess::start(&db.url, &[]);
    let check = |port: u16| {
        let address = format!("0.0.0.0:{port}");
        command(&db.url, &[("NTS_ADDRESS", &address)]).arg("healthcheck").status().expect("nts runs").code()
    };
    assert_eq!(check(nts.port), Some(0));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    assert_eq!(check(closed), Some(1));
}
