//! The deployment files set the settings the distributed binaries need, under the names
//! the binaries read: `docker-compose.yml` and the Terraform task definitions
//! (`terraform/modules/chatx/ecs_gateway.tf`, `ecs_worker.tf`). Plain text matching, no
//! YAML/HCL parser: each service or container is cut out of its file by indentation.

use std::collections::BTreeSet;

use infra::config::Settings;

/// Required in distributed mode by the gateway and the worker.
const REQUIRED: [&str; 4] = ["DATABASE_URL", "REDIS_URL", "NATS_URL", "JWT_SECRET"];
/// Required of the gateways only (they listen behind a load balancer, logs as JSON).
const GATEWAY_REQUIRED: [&str; 3] = ["BIND_ADDR", "CHATX_TRUST_FORWARDED_FOR", "CHATX_LOG_FORMAT"];

fn repo_file(rel: &str) -> String {
    let path = format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every variable name the binaries accept: `Settings::env_name` of each field, plus
/// `CHATX_CONFIG` (the optional settings file).
fn known_names() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = Settings::field_names()
        .iter()
        .map(|f| Settings::env_name(f))
        .collect();
    names.insert("CHATX_CONFIG".into());
    names
}

/// `CHATX_*` names used anywhere in `text` that no setting has.
fn unknown_chatx_names(text: &str) -> Vec<String> {
    let known = known_names();
    let re = regex::Regex::new(r"\bCHATX_[A-Z0-9_]+\b").expect("regex");
    let used: BTreeSet<String> = re.find_iter(text).map(|m| m.as_str().to_string()).collect();
    used.into_iter().filter(|n| !known.contains(n)).collect()
}

/// The services of a compose file: (name, text of its block), cut at two-space indent.
fn compose_services(text: &str) -> Vec<(String, String)> {
    let mut services: Vec<(String, String)> = Vec::new();
    let mut in_services = false;
    for line in text.lines() {
        let top_level = !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#');
        if top_level {
            in_services = line.trim_end() == "services:";
            continue;
        }
        if !in_services {
            continue;
        }
        let is_service_key = line.starts_with("  ")
            && !line.starts_with("   ")
            && !line.trim_start().starts_with('#')
            && line.trim_end().ends_with(':');
        if is_service_key {
            let name = line.trim().trim_end_matches(':').to_string();
            services.push((name, String::new()));
        } else if let Some((_, body)) = services.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    services
}

/// The value a compose service block gives `var` (map or list form), if any.
fn compose_value<'a>(block: &'a str, var: &str) -> Option<&'a str> {
    block.lines().find_map(|line| {
        let t = line.trim();
        t.strip_prefix(&format!("{var}:"))
            .or_else(|| t.strip_prefix(&format!("- {var}=")))
            .map(|v| v.trim().trim_matches('"'))
            .filter(|v| !v.is_empty())
    })
}

/// The containers of an ECS task definition file: (name, text), one per line that holds
/// only `name = "..."` (environment entries are `{ name = ..., value = ... }` on one line).
fn task_containers(text: &str) -> Vec<(String, String)> {
    let header = regex::Regex::new(r#"^\s*name\s*=\s*"([A-Za-z0-9_-]+)"\s*$"#).expect("regex");
    let mut containers: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(c) = header.captures(line) {
            containers.push((c[1].to_string(), String::new()));
        } else if line.starts_with("resource ") {
            // The next resource (e.g. the ECS service) ends the last container.
            containers.push((String::new(), String::new()));
        } else if let Some((_, body)) = containers.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    containers.retain(|(name, _)| !name.is_empty());
    containers
}

/// Whether a container definition sets `var` as an environment entry or a secret.
fn container_sets(body: &str, var: &str) -> bool {
    let re = regex::Regex::new(&format!(
        r#"\{{\s*name\s*=\s*"{var}"\s*,\s*(value|valueFrom)\s*="#
    ))
    .expect("regex");
    re.is_match(body)
}

fn missing_in_compose(text: &str, service: &str, vars: &[&str]) -> Vec<String> {
    let services = compose_services(text);
    let Some((_, block)) = services.iter().find(|(name, _)| name == service) else {
        return vec![format!("no service `{service}`")];
    };
    vars.iter()
        .filter(|v| compose_value(block, v).is_none())
        .map(|v| format!("{service}: {v}"))
        .collect()
}

fn missing_in_task(text: &str, container: &str, vars: &[&str]) -> Vec<String> {
    let containers = task_containers(text);
    let Some((_, body)) = containers.iter().find(|(name, _)| name == container) else {
        return vec![format!("no container `{container}`")];
    };
    vars.iter()
        .filter(|v| !container_sets(body, v))
        .map(|v| format!("{container}: {v}"))
        .collect()
}

#[test]
fn compose_sets_every_required_setting_for_the_gateways_and_the_worker() {
    let compose = repo_file("docker-compose.yml");
    let services = compose_services(&compose);
    let gateways: Vec<&str> = services
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| name.starts_with("gateway"))
        .collect();
    assert!(gateways.len() >= 2, "two gateways expected: {gateways:?}");

    let mut missing = missing_in_compose(&compose, "worker", &REQUIRED);
    for gateway in &gateways {
        let all: Vec<&str> = REQUIRED
            .iter()
            .chain(GATEWAY_REQUIRED.iter())
            .copied()
            .collect();
        missing.extend(missing_in_compose(&compose, gateway, &all));
    }
    missing.extend(missing_in_compose(&compose, "migration", &["DATABASE_URL"]));
    assert!(
        missing.is_empty(),
        "docker-compose.yml does not set: {missing:?}"
    );

    for (name, block) in services
        .iter()
        .filter(|(n, _)| n == "worker" || n.starts_with("gateway"))
    {
        let db = compose_value(block, "DATABASE_URL").unwrap_or_default();
        assert!(
            db.starts_with("postgres://"),
            "{name}: DATABASE_URL must be postgres://, is {db}"
        );
        let secret = compose_value(block, "JWT_SECRET").unwrap_or_default();
        let default = secret
            .rsplit(":-")
            .next()
            .unwrap_or(secret)
            .trim_end_matches('}');
        assert!(
            default.len() >= 32,
            "{name}: JWT_SECRET (default) must be 32+ bytes"
        );
    }
    for (name, block) in services.iter().filter(|(n, _)| n.starts_with("gateway")) {
        assert_eq!(
            compose_value(block, "CHATX_TRUST_FORWARDED_FOR"),
            Some("true"),
            "{name}"
        );
        assert_eq!(
            compose_value(block, "CHATX_LOG_FORMAT"),
            Some("json"),
            "{name}"
        );
    }

    let unknown = unknown_chatx_names(&compose);
    assert!(
        unknown.is_empty(),
        "docker-compose.yml uses unknown settings: {unknown:?}"
    );
}

#[test]
fn terraform_task_definitions_set_every_required_setting() {
    let gateway = repo_file("terraform/modules/chatx/ecs_gateway.tf");
    let worker = repo_file("terraform/modules/chatx/ecs_worker.tf");

    let mut missing = missing_in_task(
        &gateway,
        "gateway",
        &REQUIRED
            .iter()
            .chain(GATEWAY_REQUIRED.iter())
            .copied()
            .collect::<Vec<_>>(),
    );
    missing.extend(missing_in_task(&worker, "worker", &REQUIRED));
    missing.extend(missing_in_task(&worker, "migration", &["DATABASE_URL"]));
    assert!(
        missing.is_empty(),
        "task definitions do not set: {missing:?}"
    );

    // The worker waits for the one-shot migration container to succeed.
    let containers = task_containers(&worker);
    let (_, worker_body) = containers
        .iter()
        .find(|(n, _)| n == "worker")
        .expect("worker");
    let depends =
        regex::Regex::new(r#"containerName\s*=\s*"migration"\s*,\s*condition\s*=\s*"SUCCESS""#)
            .expect("regex");
    assert!(
        depends.is_match(worker_body),
        "worker must depend on migration (SUCCESS)"
    );

    for (file, text) in [("ecs_gateway.tf", &gateway), ("ecs_worker.tf", &worker)] {
        let unknown = unknown_chatx_names(text);
        assert!(
            unknown.is_empty(),
            "{file} uses unknown settings: {unknown:?}"
        );
    }
    // The rest of the module (variables, locals) names only real settings too.
    for file in ["variables.tf", "locals.tf"] {
        let text = repo_file(&format!("terraform/modules/chatx/{file}"));
        let unknown = unknown_chatx_names(&text);
        assert!(
            unknown.is_empty(),
            "{file} names unknown settings: {unknown:?}"
        );
    }
}

#[test]
fn the_checks_notice_a_missing_or_unknown_setting() {
    let compose = "services:\n  worker:\n    environment:\n      DATABASE_URL: postgres://x\n      NATS_URL: nats://n:4222\n      JWT_SECRET: 0123456789abcdef0123456789abcdef\n  gateway1:\n    environment:\n      - REDIS_URL=redis://r\n";
    assert_eq!(
        missing_in_compose(compose, "worker", &REQUIRED),
        vec!["worker: REDIS_URL"]
    );
    assert!(missing_in_compose(compose, "gateway1", &["REDIS_URL"]).is_empty());
    assert_eq!(
        missing_in_compose(compose, "gateway2", &["REDIS_URL"]).len(),
        1
    );

    let task = "container_definitions = jsonencode([\n  {\n    name = \"worker\"\n    environment = [\n      { name = \"NATS_URL\", value = local.nats_url },\n    ]\n    secrets = [\n      { name = \"REDIS_URL\", valueFrom = \"arn:url::\" },\n    ]\n  }\n])\nresource \"aws_ecs_service\" \"worker\" {\n  name = \"x\"\n}\n";
    assert_eq!(
        missing_in_task(task, "worker", &["NATS_URL", "REDIS_URL", "JWT_SECRET"]),
        vec!["worker: JWT_SECRET"]
    );

    assert_eq!(
        unknown_chatx_names("CHATX_DRAIN_SECS CHATX_DRAIN_SECONDS"),
        vec!["CHATX_DRAIN_SECONDS"]
    );
}
