use super::payments::SIMULATED_FAULTS;
use super::*;
use std::collections::HashMap;

/// `vars` on top of simulated payments, the one choice that needs no secrets.
fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut all = vec![("NTS_PAYMENTS", "simulated")];
    all.extend_from_slice(vars);
    exactly(&all)
}

/// `vars` alone, but for a ticket key (which real payments need) unless they set
/// `NTS_TICKET_KEY` (to "" for none).
fn exactly(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut map: HashMap<String, String> = HashMap::from([("NTS_TICKET_KEY".into(), TICKET_KEY.into())]);
    map.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn defaults_need_nothing_but_the_payment_mode() {
    let c = config(&[]).unwrap();
    assert_eq!(c.address, "0.0.0.0:9000");
    assert_eq!(c.hold_duration, Duration::from_secs(300));
    assert!(c.demo);
    assert!(c.admin_token.generated);
    assert!(c.admin_token.value.len() >= MIN_ADMIN_TOKEN_LEN);
    assert!(c.hold_caps.per_address > 0 && c.hold_caps.per_ipv6_48 > 0, "hoarding caps are on by default");
    assert!(c.hold_caps.per_ipv6_48 >= 10 * c.hold_caps.per_address, "the /48 cap is generous");
    assert_eq!(c.hold_caps.per_ipv4_24, 0, "no /24 cap unless asked for: carrier-grade NAT");
}

#[test]
fn without_stripe_keys_or_an_explicit_choice_nothing_starts() {
    let err = exactly(&[]).err().unwrap();
    assert_eq!(err.variable, "NTS_PAYMENTS");
    for option in ["NTS_STRIPE_SECRET_KEY", "NTS_PAYMENTS=simulated", "--demo"] {
        assert!(err.problem.contains(option), "the message names {option}: {err}");
    }
    assert_eq!(exactly(&[("NTS_PAYMENTS", "stripe")]).err().unwrap().variable, "NTS_STRIPE_SECRET_KEY");
    assert_eq!(exactly(&[("NTS_PAYMENTS", "free")]).err().unwrap().variable, "NTS_PAYMENTS");
}

#[test]
fn a_transaction_pooler_needs_a_direct_url_for_migrations_and_metrics_a_long_token() {
    let c = config(&[]).unwrap();
    assert!(!c.db_transaction_pooling && c.migration_database_url.is_none() && c.metrics_token.is_none());
    let err = config(&[("NTS_DB_TRANSACTION_POOLING", "true")]).err().unwrap();
    assert_eq!(err.variable, "NTS_MIGRATION_DATABASE_URL");
    let c = config(&[
        ("NTS_DB_TRANSACTION_POOLING", "true"),
        ("NTS_MIGRATION_DATABASE_URL", "postgres://db:5432/nts"),
        ("NTS_METRICS_TOKEN", "0123456789abcdef"),
    ])
    .unwrap();
    assert!(c.db_settings().transaction_pooling);
    assert_eq!(c.db_settings().migration_url.as_deref(), Some("postgres://db:5432/nts"));
    assert_eq!(c.metrics_token.unwrap().0, "0123456789abcdef");
    assert_eq!(config(&[("NTS_METRICS_TOKEN", "short")]).err().unwrap().variable, "NTS_METRICS_TOKEN");
    assert_eq!(
        config(&[("NTS_DB_TRANSACTION_POOLING", "maybe")]).err().unwrap().variable,
        "NTS_DB_TRANSACTION_POOLING"
    );
}

#[test]
fn simulated_payments_and_stripe_keys_do_not_mix() {
    let mut vars = STRIPE.to_vec();
    vars.push(("NTS_PAYMENTS", "simulated"));
    assert_eq!(exactly(&vars).err().unwrap().variable, "NTS_PAYMENTS");
}

#[test]
fn the_demo_and_the_fault_knobs_exist_only_with_simulated_payments() {
    let c = exactly(&[&STRIPE[..], &[PUBLIC_URL]].concat()).unwrap();
    assert!(!c.demo && c.simulated().is_none() && c.stripe().is_some());
    let mut vars = STRIPE.to_vec();
    vars.push(("NTS_DEMO", "true"));
    assert_eq!(exactly(&vars).err().unwrap().variable, "NTS_DEMO");
    for variable in SIMULATED_FAULTS {
        let mut vars = STRIPE.to_vec();
        vars.push((variable, "0"));
        assert_eq!(exactly(&vars).err().unwrap().variable, variable);
    }
    let c = config(&[("NTS_SIM_DECLINE_RATE", "0.5"), ("NTS_DEMO", "false")]).unwrap();
    assert_eq!(c.simulated().unwrap().decline_rate, 0.5);
    assert!(!c.demo);
}

#[test]
fn malformed_settings_name_their_variable() {
    let err = config(&[("NTS_HOLD_SECONDS", "soon")]).err().unwrap();
    assert_eq!(err.variable, "NTS_HOLD_SECONDS");
    let err = config(&[("NTS_DEMO", "maybe")]).err().unwrap();
    assert_eq!(err.variable, "NTS_DEMO");
    let err = config(&[("NTS_SIM_DECLINE_RATE", "2")]).err().unwrap();
    assert_eq!(err.variable, "NTS_SIM_DECLINE_RATE");
    let err = config(&[("NTS_MAX_UNPAID_PER_IPV6_48", "-1")]).err().unwrap();
    assert_eq!(err.variable, "NTS_MAX_UNPAID_PER_IPV6_48");
}

#[test]
fn the_removed_cap_per_email_is_refused_with_the_reason() {
    for value in ["4", "1", "many"] {
        let err = config(&[("NTS_MAX_UNPAID_PER_EMAIL", value)]).err().unwrap();
        assert_eq!(err.variable, "NTS_MAX_UNPAID_PER_EMAIL");
        for words in ["removed", "lock", "NTS_MAX_UNPAID_PER_IPV6_48"] {
            assert!(err.problem.contains(words), "{err}");
        }
    }
    // Off is what nts does now: nothing to refuse.
    assert!(config(&[("NTS_MAX_UNPAID_PER_EMAIL", "0")]).is_ok());
}

#[test]
fn edge_settings_are_parsed_and_checked() {
    let c = config(&[]).unwrap();
    assert!(c.edge.rate_limit_per_minute > 0, "rate limiting is on by default");
    assert!(c.edge.read_rate_limit_per_minute > c.edge.rate_limit_per_minute, "reads too, more generously");
    assert!(c.edge.rate_limit_ipv6_48_times > 1, "a /48 has room for many clients");
    assert!(c.edge.trusted_proxies.is_empty() && c.edge.cors_origins.is_empty());
    let c = config(&[
        ("NTS_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1"),
        ("NTS_CORS_ORIGINS", "https://shop.example.com,http://localhost:3000"),
        ("NTS_RATE_LIMIT_PER_MINUTE", "0"),
    ])
    .unwrap();
    assert_eq!(c.edge.trusted_proxies.len(), 3);
    assert_eq!(c.edge.cors_origins, ["https://shop.example.com", "http://localhost:3000"]);
    assert_eq!(c.edge.rate_limit_per_minute, 0);
    for (variable, value) in [
        ("NTS_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("NTS_TRUSTED_PROXIES", "proxy.local"),
        ("NTS_CORS_ORIGINS", "*"),
        ("NTS_CORS_ORIGINS", "https://example.com/path"),
        ("NTS_CORS_ORIGINS", "ftp://example.com"),
        ("NTS_RATE_LIMIT_BURST", "0"),
        ("NTS_READ_RATE_LIMIT_BURST", "0"),
        ("NTS_READ_RATE_LIMIT_PER_MINUTE", "lots"),
    ] {
        assert_eq!(config(&[(variable, value)]).err().map(|e| e.variable), Some(variable), "{variable}={value}");
    }
}

#[test]
fn short_admin_token_is_refused() {
    let err = config(&[("NTS_ADMIN_TOKEN", "short")]).err().unwrap();
    assert_eq!(err.variable, "NTS_ADMIN_TOKEN");
    // Characters, not bytes: eleven three-byte characters are not a long token.
    assert!(config(&[("NTS_ADMIN_TOKEN", &"€".repeat(11))]).is_err());
    assert!(config(&[("NTS_ADMIN_TOKEN", &"x".repeat(31))]).is_err());
    assert!(config(&[("NTS_ADMIN_TOKEN", &"x".repeat(32))]).is_ok());
    assert!(!format!("{:?}", config(&[("NTS_ADMIN_TOKEN", &"x".repeat(40))]).unwrap().admin_token).contains("xxx"));
}

const STRIPE: [(&str, &str); 3] = [
    ("NTS_STRIPE_SECRET_KEY", "sk_test_secret"),
    ("NTS_STRIPE_PUBLISHABLE_KEY", "pk_test_public"),
    ("NTS_STRIPE_WEBHOOK_SECRET", "whsec_hook"),
];
const PUBLIC_URL: (&str, &str) = ("NTS_PUBLIC_URL", "https://tickets.example.com/");

#[test]
fn stripe_is_off_without_its_settings() {
    assert!(config(&[]).unwrap().stripe().is_none());
}

#[test]
fn stripe_with_its_keys_uses_stripe_defaults() {
    let c = exactly(&[&STRIPE[..], &[PUBLIC_URL]].concat()).unwrap();
    assert_eq!(c.public_url.as_deref(), Some("https://tickets.example.com"));
    let s = c.stripe().unwrap().clone();
    assert_eq!(s.api_base, DEFAULT_STRIPE_API_BASE);
    assert_eq!(s.js_url, DEFAULT_STRIPE_JS_URL);
    assert_eq!(s.timeout, Duration::from_secs(20));
    assert_eq!(s.look_for, Duration::from_secs(48 * 3600));
    let shown = format!("{s:?}");
    assert!(!shown.contains("sk_test_secret") && !shown.contains("whsec_hook"), "{shown}");
}

#[test]
fn giving_up_on_a_payment_intent_before_48_hours_needs_a_stand_in_for_stripe() {
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut vars = STRIPE.to_vec();
        vars.push(PUBLIC_URL);
        vars.extend_from_slice(extra);
        exactly(&vars)
    };
    let err = with(&[("NTS_STRIPE_LOOK_FOR_SECS", "3600")]).err().unwrap();
    assert_eq!(err.variable, "NTS_STRIPE_LOOK_FOR_SECS");
    assert!(err.problem.contains("stand-in"), "{}", err.problem);
    let longer = with(&[("NTS_STRIPE_LOOK_FOR_SECS", "259200")]).unwrap();
    assert_eq!(longer.stripe().unwrap().look_for, Duration::from_secs(259_200));
    let stand_in =
        with(&[("NTS_STRIPE_LOOK_FOR_SECS", "300"), ("NTS_STRIPE_API_BASE", "http://127.0.0.1:12111")]).unwrap();
    assert_eq!(stand_in.stripe().unwrap().look_for, Duration::from_secs(300));
    let err =
        with(&[("NTS_STRIPE_LOOK_FOR_SECS", "60"), ("NTS_STRIPE_API_BASE", "http://127.0.0.1:12111")]).err().unwrap();
    assert_eq!(err.variable, "NTS_STRIPE_LOOK_FOR_SECS");
}

#[test]
fn the_api_base_gets_its_trailing_slash() {
    for base in ["http://127.0.0.1:12111", "http://127.0.0.1:12111/"] {
        let mut vars = STRIPE.to_vec();
        vars.extend([("NTS_STRIPE_API_BASE", base), PUBLIC_URL]);
        assert_eq!(exactly(&vars).unwrap().stripe().unwrap().api_base, "http://127.0.0.1:12111/");
    }
}

#[test]
fn half_configured_stripe_names_what_is_missing() {
    for (i, (missing, _)) in STRIPE.iter().enumerate() {
        let mut vars = STRIPE.to_vec();
        vars.remove(i);
        assert_eq!(exactly(&vars).err().unwrap().variable, *missing);
    }
    let err = exactly(&[("NTS_STRIPE_API_BASE", "http://127.0.0.1:1")]).err().unwrap();
    assert_eq!(err.variable, "NTS_STRIPE_SECRET_KEY");
}

#[test]
fn malformed_stripe_settings_name_their_variable() {
    let cases = [
        ("NTS_STRIPE_SECRET_KEY", "pk_test_swapped"),
        ("NTS_STRIPE_PUBLISHABLE_KEY", "sk_test_swapped"),
        ("NTS_STRIPE_API_BASE", "api.stripe.com"),
        ("NTS_STRIPE_JS_URL", "js.stripe.com/v3"),
        ("NTS_STRIPE_TIMEOUT_MS", "soon"),
    ];
    for (variable, value) in cases {
        let mut vars: Vec<(&str, &str)> = STRIPE.iter().filter(|(k, _)| *k != variable).copied().collect();
        vars.push(("NTS_PUBLIC_URL", "https://tickets.example.com"));
        vars.push((variable, value));
        assert_eq!(exactly(&vars).err().unwrap().variable, variable, "{variable}={value}");
    }
}

#[test]
fn stripe_needs_the_public_url_the_simulated_gateway_does_not() {
    let err = exactly(&STRIPE).err().unwrap();
    assert_eq!(err.variable, "NTS_PUBLIC_URL");
    assert!(err.problem.contains("3-D Secure"), "{err}");
    let err = exactly(&[&STRIPE[..], &[("NTS_PUBLIC_URL", "tickets.example.com")]].concat()).err().unwrap();
    assert_eq!(err.variable, "NTS_PUBLIC_URL");
    assert!(config(&[]).unwrap().public_url.is_none());
}

#[test]
fn secrets_lose_surrounding_whitespace_and_refuse_inner_or_only_whitespace() {
    let token = "x".repeat(40);
    // A secret file's trailing newline must not lock the admin out.
    let c =
        config(&[("NTS_ADMIN_TOKEN", &format!("{token}\n")), ("NTS_METRICS_TOKEN", " 0123456789abcdef\r\n")]).unwrap();
    assert_eq!(c.admin_token.value, token);
    assert!(!c.admin_token.generated);
    assert_eq!(c.metrics_token.unwrap().0, "0123456789abcdef");
    for variable in ["NTS_ADMIN_TOKEN", "NTS_METRICS_TOKEN", "NTS_MAIL_KEY", "NTS_TICKET_KEY"] {
        for value in ["\n", "   ", &format!("{token} {token}"), &format!("{token}\t{token}\n")] {
            let err = config(&[(variable, value)]).err().unwrap();
            assert_eq!(err.variable, variable, "{variable}={value:?}");
        }
    }
    // Unset stays unset (compose passes `${X:-}` as an empty string).
    assert!(config(&[("NTS_ADMIN_TOKEN", ""), ("NTS_METRICS_TOKEN", "")]).unwrap().admin_token.generated);
}

#[test]
fn stripe_keys_are_trimmed_and_refuse_inner_whitespace() {
    let vars: Vec<(&str, String)> = STRIPE.iter().map(|(k, v)| (*k, format!("{v}\n"))).collect();
    let mut vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.push(("NTS_PUBLIC_URL", "https://tickets.example.com"));
    let s = exactly(&vars).unwrap().stripe().unwrap().clone();
    assert_eq!((s.secret_key.as_str(), s.webhook_secret.as_str()), ("sk_test_secret", "whsec_hook"));
    for (variable, value) in [
        ("NTS_STRIPE_SECRET_KEY", "sk_test secret"),
        ("NTS_STRIPE_PUBLISHABLE_KEY", "pk_test\tpublic"),
        ("NTS_STRIPE_WEBHOOK_SECRET", "whsec_ hook"),
    ] {
        let mut vars: Vec<(&str, &str)> = STRIPE.iter().filter(|(k, _)| *k != variable).copied().collect();
        vars.push(("NTS_PUBLIC_URL", "https://tickets.example.com"));
        vars.push((variable, value));
        assert_eq!(exactly(&vars).err().unwrap().variable, variable, "{variable}={value}");
    }
}

const SMTP: [(&str, &str); 3] = [
    ("NTS_SMTP_URL", "smtp://127.0.0.1:2525?tls=none"),
    ("NTS_MAIL_FROM", "Tickets <tickets@example.com>"),
    ("NTS_PUBLIC_URL", "https://tickets.example.com"),
];

#[test]
fn smtp_needs_its_own_mail_key_not_the_admin_token() {
    let mut vars = SMTP.to_vec();
    let token = "y".repeat(40);
    vars.push(("NTS_ADMIN_TOKEN", &token));
    let err = config(&vars).err().unwrap();
    assert_eq!(err.variable, "NTS_MAIL_KEY", "{err}");
    // Without SMTP nothing is sent, so no key is needed, and none is made up from the admin token.
    let c = config(&[("NTS_ADMIN_TOKEN", &token)]).unwrap();
    assert!(c.mail.link_key.is_none());
    let key = "k".repeat(32);
    vars.push(("NTS_MAIL_KEY", &key));
    assert!(config(&vars).unwrap().mail.link_key.is_some());
}

#[test]
fn the_mail_key_rotates_newest_first() {
    const OLD: &str = "an-old-mail-key-of-32-characters-or-more";
    const NEW: &str = "a-new-mail-key-of-32-characters-or-more";
    let key = |list: &str| config(&[("NTS_MAIL_KEY", list)]).unwrap().mail.link_key.unwrap();
    let order = uuid::Uuid::new_v4();
    let sealed = key(OLD).seal(order, "secret");
    let rotated = key(&format!(" {NEW} , {OLD}\n"));
    assert_eq!(rotated.open(order, &sealed).as_deref(), Some("secret"), "a link sealed under the old key opens");
    assert_eq!(key(OLD).open(order, &rotated.seal(order, "new")), None, "the newest key seals");
    assert_eq!(key(NEW).open(order, &sealed), None, "a key no longer listed opens nothing");
    for list in [&format!("{NEW},"), &format!("{NEW},short"), &format!("{NEW},,{OLD}")] {
        assert_eq!(config(&[("NTS_MAIL_KEY", list)]).err().unwrap().variable, "NTS_MAIL_KEY", "{list}");
    }
}

const TICKET_KEY: &str = "a-ticket-key-of-32-characters-or-more";

#[test]
fn real_payments_need_a_ticket_key_and_the_demo_says_it_uses_the_development_key() {
    let stripe = [&STRIPE[..], &[PUBLIC_URL]].concat();
    assert!(!exactly(&stripe).unwrap().ticket_keys.is_dev());
    let err = exactly(&[&stripe[..], &[("NTS_TICKET_KEY", "")]].concat()).err().unwrap();
    assert_eq!(err.variable, "NTS_TICKET_KEY", "{err}");
    assert!(err.problem.contains("missing") && err.problem.contains("openssl rand"), "{err}");
    // Simulated payments (the demo, tests): the well-known development key.
    assert!(config(&[("NTS_TICKET_KEY", "")]).unwrap().ticket_keys.is_dev());
    assert!(!config(&[]).unwrap().ticket_keys.is_dev());
}

#[test]
fn the_ticket_key_rotates_newest_first() {
    use crate::checkin::ticket_keys::StoredCode;
    const OLD: &str = "an-old-ticket-key-of-32-characters-or-more";
    const NEW: &str = "a-new-ticket-key-of-32-characters-or-more";
    let keys = |list: &str| config(&[("NTS_TICKET_KEY", list)]).unwrap().ticket_keys;
    let (event_id, ticket_id) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let (code, old_id) = keys(OLD).new_code(event_id, ticket_id);
    let rotated = keys(&format!(" {NEW} , {OLD}\n"));
    let stored = StoredCode { event_id, ticket_id, key_id: Some(&old_id), sealed_code: None, legacy_code: None };
    assert_eq!(rotated.code_of(&stored), Some(code), "a code made with the old key is the same");
    assert_eq!(rotated.newest_id(), keys(NEW).newest_id(), "the first key makes new codes");
    assert_eq!(keys(NEW).code_of(&stored), None, "a key no longer listed derives nothing");
    for list in [&format!("{NEW},"), &format!("{NEW},short"), &format!("{NEW},,{OLD}")] {
        assert_eq!(config(&[("NTS_TICKET_KEY", list)]).err().unwrap().variable, "NTS_TICKET_KEY", "{list}");
    }
}
