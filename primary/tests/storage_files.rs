//! The deployment files, checked against what pivitals really runs: `docker-compose config`
//! accepts docker-compose.yml with `.env.example` as `.env`, for every profile alone and all
//! together, and the `influxdb3` profile is wired as InfluxDB 3 Core's docs start it; every
//! JSON and YAML file in influx/ and deploy/ parses (YAML with Python's `yaml` module, Debian
//! `python3-yaml`); the systemd units are hardened and pass `systemd-analyze verify`; the
//! Ansible playbook and the Dockerfile install what the repository ships; README's "Schema"
//! section documents every measurement, tag and field of
//! `pivitals_common::line_protocol::SCHEMA` with its type.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use pivitals_common::line_protocol::{FieldType, SCHEMA};
use pivitals_testkit::harness::workspace_binary;
use pivitals_testkit::query_text::names::ident;
use pivitals_testkit::repo_files::{
    files_under, installed, read, read_json, repo_root, run, yaml_documents,
};
use serde_json::Value;

/// `docker-compose ARGS` with the repository's compose file and `env_file` as its `.env`.
fn docker_compose(env_file: &Path, args: &[&str]) -> Output {
    assert!(
        installed("docker-compose"),
        "docker-compose is not installed: apt-get install docker-compose (scripts/test.sh does)"
    );
    let compose = repo_root().join("docker-compose.yml");
    let mut command = Command::new("docker-compose");
    command
        .current_dir(repo_root())
        .arg("--env-file")
        .arg(env_file)
        .arg("-f")
        .arg(&compose)
        .args(args);
    for (key, _) in std::env::vars() {
        // Only the env file decides (a developer's shell may export INFLUXDB_TOKEN).
        if key.starts_with("INFLUXDB_")
            || key.starts_with("GRAFANA_")
            || key.starts_with("PIVITALS_")
        {
            command.env_remove(key);
        }
    }
    run(&mut command)
}

/// The value of `KEY=value` in an env file.
fn env_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

#[test]
fn docker_compose_config_is_valid_with_the_example_env() {
    let root = repo_root();
    let example = read(&root.join(".env.example"));
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    std::fs::write(&env, &example).unwrap();
    // Every profile alone, then all of them together (the resolved file checked below).
    let names = compose_profiles();
    for must in ["grafana", "pivitals", "influxdb3"] {
        assert!(
            names.iter().any(|p| p == must),
            "no profile {must}: {names:?}"
        );
    }
    for name in &names {
        let alone = docker_compose(&env, &["--profile", name, "config", "-q"]);
        assert!(
            alone.status.success(),
            "docker-compose --profile {name} config -q: {}",
            String::from_utf8_lossy(&alone.stderr)
        );
    }
    let profiles: Vec<&str> = names
        .iter()
        .flat_map(|name| ["--profile", name.as_str()])
        .collect();

    let quiet = docker_compose(&env, &[&profiles[..], &["config", "-q"]].concat());
    assert!(
        quiet.status.success(),
        "docker-compose config -q: {}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let full = docker_compose(&env, &[&profiles[..], &["config"]].concat());
    assert!(full.status.success());
    let resolved = dir.path().join("resolved.yml");
    std::fs::write(&resolved, &full.stdout).unwrap();
    let config = yaml_documents(&[resolved])[0][0].clone();
    let services = &config["services"];
    let token = env_value(&example, "INFLUXDB_TOKEN").expect("INFLUXDB_TOKEN in .env.example");

    let influxdb = &services["influxdb"];
    assert_eq!(influxdb["image"], "influxdb:2");
    let init = &influxdb["environment"];
    assert_eq!(init["DOCKER_INFLUXDB_INIT_MODE"], "setup");
    assert_eq!(init["DOCKER_INFLUXDB_INIT_RETENTION"], "365d");
    assert_eq!(init["DOCKER_INFLUXDB_INIT_BUCKET"], "node_vitals");
    assert_eq!(init["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"], token.as_str());
    assert!(influxdb["healthcheck"]["test"].is_array(), "{influxdb}");

    let chronograf = &services["chronograf"]["environment"];
    assert_eq!(chronograf["INFLUXDB_URL"], "http://influxdb:8086");
    assert_eq!(chronograf["INFLUXDB_TYPE"], "influx-v2");
    assert_eq!(chronograf["INFLUXDB_ORG"], init["DOCKER_INFLUXDB_INIT_ORG"]);
    assert_eq!(chronograf["INFLUXDB_TOKEN"], token.as_str());

    assert_eq!(
        services["grafana"]["profiles"],
        serde_json::json!(["grafana"])
    );
    let primary = &services["primary"];
    assert_eq!(primary["profiles"], serde_json::json!(["pivitals"]));
    assert_eq!(
        primary["environment"]["PIVITALS_INFLUX__URL"],
        "http://influxdb:8086"
    );
    assert_eq!(
        primary["environment"]["PIVITALS_INFLUX__TOKEN"],
        token.as_str()
    );
    assert_eq!(
        primary["environment"]["PIVITALS_INFLUX__BUCKET"],
        "node_vitals"
    );

    check_influxdb3_profile(services);

    // Every bind-mounted host path exists (compose itself does not check).
    let mut binds = 0;
    for (name, service) in services.as_object().unwrap() {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = match volume {
                Value::String(short) => short.split(':').next().unwrap().to_owned(),
                long => long["source"].as_str().unwrap_or_default().to_owned(),
            };
            if source.starts_with('/') {
                binds += 1;
                assert!(
                    Path::new(&source).exists(),
                    "{name} mounts missing {source}"
                );
            }
        }
    }
    assert!(binds >= 5, "{binds} bind mounts");
    let init_script = root.join("influx/influxdb2/init/10-pivitals-dashboards.sh");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&init_script)
        .unwrap()
        .permissions()
        .mode();
    assert!(
        mode & 0o111 != 0,
        "the influxdb image runs only executable init scripts"
    );

    // Every ${VAR} of the compose file is documented in .env.example, and .env is ignored.
    let compose = read(&root.join("docker-compose.yml"));
    for (at, _) in compose.match_indices("${") {
        let name = ident(&compose[at + 2..]);
        assert!(
            env_value(&example, name).is_some(),
            ".env.example does not document {name}"
        );
    }
    assert!(
        read(&root.join(".gitignore"))
            .lines()
            .any(|l| l.trim() == ".env")
    );

    // Without the secrets the compose file refuses to start rather than use empty ones.
    let empty = dir.path().join("empty.env");
    std::fs::write(&empty, "").unwrap();
    let refused = docker_compose(&empty, &["config", "-q"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("INFLUXDB_"), "{stderr}");
}

/// The profiles the compose file's services name, sorted.
fn compose_profiles() -> Vec<String> {
    let compose = yaml_documents(&[repo_root().join("docker-compose.yml")])[0][0].clone();
    let mut names: Vec<String> = compose["services"]
        .as_object()
        .expect("services")
        .values()
        .flat_map(|service| service["profiles"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The `influxdb3` profile: InfluxDB 3 Core as its docs start it, a primary writing to it with
/// the v3 API, and Grafana with an InfluxQL data source on it and the InfluxQL dashboard.
fn check_influxdb3_profile(services: &Value) {
    let influxdb3 = &services["influxdb3"];
    assert_eq!(influxdb3["image"], "influxdb:3-core");
    assert_eq!(influxdb3["profiles"], serde_json::json!(["influxdb3"]));
    let command: Vec<&str> = influxdb3["command"]
        .as_array()
        .expect("command as a list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command[..2], ["influxdb3", "serve"], "{command:?}");
    for flag in [
        "--node-id=",
        "--object-store=file",
        "--data-dir=/var/lib/influxdb3/data",
        "--without-auth",
    ] {
        assert!(
            command.iter().any(|c| c.starts_with(flag)),
            "{flag} missing: {command:?}"
        );
    }
    let data_volume = influxdb3["volumes"].as_array().unwrap().iter().any(|v| {
        v.as_str()
            .is_some_and(|s| s.contains(":/var/lib/influxdb3/data"))
            || v["target"] == "/var/lib/influxdb3/data"
    });
    assert!(data_volume, "the data dir is not a volume: {influxdb3}");
    let published = influxdb3["ports"].to_string();
    assert!(
        published.contains("127.0.0.1") && published.contains("8181"),
        "without auth the port stays on loopback: {published}"
    );

    let primary = &services["primary-influxdb3"];
    assert_eq!(primary["profiles"], serde_json::json!(["influxdb3"]));
    let env = &primary["environment"];
    assert_eq!(env["PIVITALS_INFLUX__API"], "v3");
    assert_eq!(env["PIVITALS_INFLUX__URL"], "http://influxdb3:8181");
    assert_eq!(env["PIVITALS_INFLUX__DATABASE"], "pivitals");
    assert!(env.get("PIVITALS_INFLUX__TOKEN").is_none(), "{env}");

    let grafana = &services["grafana-influxdb3"];
    assert_eq!(grafana["profiles"], serde_json::json!(["influxdb3"]));
    let mounts = grafana["volumes"].to_string();
    for dir in [
        "influx/grafana/provisioning-influxdb3",
        "influx/grafana/dashboards-influxql",
    ] {
        assert!(mounts.contains(dir), "{dir} not mounted: {mounts}");
    }
    let home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .unwrap();
    assert!(
        home.ends_with("/pivitals-influxql/pivitals-influxql.json"),
        "{home}"
    );

    // The provisioned data source is the one the InfluxQL dashboard names, on InfluxDB 3.
    let root = repo_root();
    let provisioning = root.join("influx/grafana/provisioning-influxdb3");
    let sources = yaml_documents(&[provisioning.join("datasources/influxdb3-influxql.yaml")]);
    let source = &sources[0][0]["datasources"][0];
    assert_eq!(source["type"], "influxdb");
    assert_eq!(source["url"], "http://influxdb3:8181");
    assert_eq!(source["jsonData"]["version"], "InfluxQL");
    assert_eq!(
        source["jsonData"]["dbName"],
        env["PIVITALS_INFLUX__DATABASE"]
    );
    let providers = yaml_documents(&[provisioning.join("dashboards/pivitals-influxql.yaml")]);
    let path = providers[0][0]["providers"][0]["options"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(home.starts_with(&path), "{home} is not under {path}");
    let dashboard = root.join("influx/grafana/dashboards-influxql/pivitals-influxql.json");
    let text = read(&dashboard);
    assert!(
        text.contains(&format!("\"uid\": \"{}\"", source["uid"].as_str().unwrap()))
            || text.contains(&format!("\"uid\":\"{}\"", source["uid"].as_str().unwrap())),
        "the InfluxQL dashboard does not use the data source {}",
        source["uid"]
    );
}

#[test]
fn every_json_and_yaml_file_parses() {
    let root = repo_root();
    let mut files = files_under(&root.join("influx"));
    files.extend(files_under(&root.join("deploy")));
    let (mut json, mut yaml) = (0, Vec::new());
    for path in files {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json" | "dashboard") => {
                read_json(&path);
                json += 1;
            }
            Some("yml" | "yaml") => yaml.push(path),
            _ => {}
        }
    }
    yaml.push(root.join("docker-compose.yml"));
    let documents = yaml_documents(&yaml);
    for (path, docs) in yaml.iter().zip(&documents) {
        let docs = docs.as_array().unwrap();
        assert!(
            !docs.is_empty() && docs.iter().all(|d| !d.is_null()),
            "{} is empty",
            path.display()
        );
    }
    assert!(json >= 4, "{json} JSON files");
    assert!(yaml.len() >= 5, "{} YAML files", yaml.len());
}

/// The `Key=Value` settings of a unit file, in order, with their section.
fn unit_settings(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut settings = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            assert!(
                ["Unit", "Service", "Install"].contains(&name),
                "line {}: section [{name}]",
                number + 1
            );
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not Key=Value: {line}", number + 1));
        assert!(
            !section.is_empty()
                && !key.is_empty()
                && key.chars().all(|c| c.is_ascii_alphanumeric()),
            "line {}: {line}",
            number + 1
        );
        settings.push((section.clone(), key.to_owned(), value.to_owned()));
    }
    settings
}

#[test]
fn systemd_units_are_hardened_and_pass_systemd_analyze_verify() {
    let dir = repo_root().join("deploy/systemd");
    let verify = installed("systemd-analyze");
    let temp = tempfile::tempdir().unwrap();
    for (unit, binary, state) in [
        ("pivitals-agent.service", "pivitals-agent", "pivitals-agent"),
        ("pivitals-primary.service", "pivitals-primary", "pivitals"),
    ] {
        let text = read(&dir.join(unit));
        let settings = unit_settings(&text);
        let get = |key: &str| -> Vec<&str> {
            settings
                .iter()
                .filter(|(_, k, _)| k == key)
                .map(|(_, _, v)| v.as_str())
                .collect()
        };
        let env_file = if binary == "pivitals-agent" {
            "agent"
        } else {
            "primary"
        };
        // The agent's binary is in its state directory, where it may replace itself.
        let exec_start = if binary == "pivitals-agent" {
            "/var/lib/pivitals-agent/bin/pivitals-agent".to_owned()
        } else {
            format!("/usr/local/bin/{binary}")
        };
        for (key, value) in [
            ("ExecStart", exec_start.clone()),
            ("Restart", "on-failure".to_owned()),
            ("StateDirectory", state.to_owned()),
            ("EnvironmentFile", format!("/etc/pivitals/{env_file}.env")),
            ("DynamicUser", "yes".to_owned()),
            ("NoNewPrivileges", "yes".to_owned()),
            ("ProtectSystem", "strict".to_owned()),
            ("ProtectHome", "read-only".to_owned()),
            ("PrivateTmp", "yes".to_owned()),
            ("WantedBy", "multi-user.target".to_owned()),
        ] {
            assert_eq!(get(key), vec![value.as_str()], "{unit}: {key}");
        }
        // The agent must still see every process in /proc, the network and /sys.
        for forbidden in [
            "ProtectProc",
            "ProcSubset",
            "PrivateNetwork",
            "InaccessiblePaths",
        ] {
            assert!(
                get(forbidden).is_empty(),
                "{unit}: {forbidden} hides what it reads"
            );
        }
        assert!(dir.join(format!("{env_file}.env.example")).is_file());

        if verify {
            // verify checks that ExecStart is executable: point it at the built binary.
            let copy = temp.path().join(unit);
            let real = workspace_binary(binary);
            std::fs::write(
                &copy,
                text.replace(
                    &format!("ExecStart={exec_start}"),
                    &format!("ExecStart={}", real.display()),
                ),
            )
            .unwrap();
            let output = run(Command::new("systemd-analyze").arg("verify").arg(&copy));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                output.status.success() && stderr.trim().is_empty(),
                "systemd-analyze verify {unit}:\n{stderr}"
            );
        }
    }
    if !verify {
        eprintln!(
            "systemd-analyze is not installed: the units' syntax and settings were checked by \
             this test only"
        );
    }
}

#[test]
fn ansible_playbook_installs_the_agent_the_repository_ships() {
    let dir = repo_root().join("deploy/ansible");
    let docs = yaml_documents(&[dir.join("playbook.yml"), dir.join("inventory.example.yml")]);
    let play = &docs[0][0][0];
    assert_eq!(play["hosts"], "pivitals_agents");
    assert_eq!(play["become"], true);
    let tasks = play["tasks"].as_array().expect("tasks");
    let text = read(&dir.join("playbook.yml"));
    assert!(text.contains("deploy/systemd/pivitals-agent.service"));
    assert!(tasks.iter().any(
        |t| t["ansible.builtin.template"]["src"] == "templates/agent.env.j2"
            && t["ansible.builtin.template"]["mode"] == "0600"
    ));
    assert!(
        tasks
            .iter()
            .any(|t| t["ansible.builtin.systemd"]["name"] == "pivitals-agent")
    );
    let template = read(&dir.join("templates/agent.env.j2"));
    for key in [
        "PIVITALS_PRIMARY_URL",
        "PIVITALS_ENROLL_TOKEN",
        "PIVITALS_LABELS",
    ] {
        assert!(
            template.contains(&format!("{key}=")),
            "agent.env.j2 sets no {key}"
        );
    }
    for target in [
        "aarch64-unknown-linux-gnu",
        "armv7-unknown-linux-gnueabihf",
        "arm-unknown-linux-gnueabihf",
    ] {
        assert!(text.contains(target), "no binary for {target}");
    }
    let inventory = &docs[1][0]["pivitals_agents"];
    assert!(inventory["vars"]["pivitals_primary_url"].is_string());
    assert!(inventory["children"]["stack1"]["vars"]["pivitals_labels"]["stack"].is_string());
    if installed("ansible-playbook") {
        let output = run(Command::new("ansible-playbook")
            .arg("--syntax-check")
            .arg("-i")
            .arg(dir.join("inventory.example.yml"))
            .arg(dir.join("playbook.yml")));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn dockerfile_builds_the_primary_to_run_as_a_non_root_user() {
    let root = repo_root();
    let dockerfile = read(&root.join("Dockerfile"));
    for needle in [
        "cargo build --release --locked -p pivitals-primary",
        "FROM debian:bookworm-slim",
        "USER pivitals",
        "VOLUME [\"/data\"]",
        "EXPOSE 7070",
        "PIVITALS_DATA_DIR=/data",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle}");
    }
    let ignore = read(&root.join(".dockerignore"));
    assert!(ignore.lines().any(|l| l.trim() == "target/"));
}

/// README's "Schema" section: for each `### \`measurement\`` heading, its text and the
/// `| \`field\` | type | ...` rows of its table.
fn readme_schema() -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    let readme = read(&repo_root().join("README.md"));
    let start = readme
        .find("\n## Schema\n")
        .expect("README has a Schema section");
    let section = &readme[start + 1..];
    let section = &section[..section[1..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 1)];
    let mut measurements = BTreeMap::new();
    for part in section.split("\n### ").skip(1) {
        let heading = part.lines().next().unwrap_or_default().trim();
        let name = heading
            .strip_prefix('`')
            .and_then(|h| h.strip_suffix('`'))
            .unwrap_or_else(|| panic!("README schema heading {heading:?} is not `measurement`"));
        let mut fields = BTreeMap::new();
        for row in part.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let field = cells[1].trim_matches('`').to_owned();
            let repeated = fields.insert(field.clone(), cells[2].to_owned());
            assert!(repeated.is_none(), "README documents {name}.{field} twice");
        }
        let repeated = measurements.insert(name.to_owned(), (part.to_owned(), fields));
        assert!(repeated.is_none(), "README documents {name} twice");
    }
    measurements
}

#[test]
fn readme_schema_section_documents_every_measurement_tag_and_field_with_its_type() {
    let documented = readme_schema();
    let names: BTreeSet<&str> = SCHEMA.iter().map(|m| m.name).collect();
    assert_eq!(
        documented
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        names,
        "README's schema measurements differ from SCHEMA"
    );
    for measurement in SCHEMA {
        let (text, fields) = &documented[measurement.name];
        let expected: BTreeMap<String, String> = measurement
            .fields
            .iter()
            .map(|(field, kind)| {
                let kind = match kind {
                    FieldType::Float => "float",
                    FieldType::Integer => "integer",
                    FieldType::String => "string",
                };
                ((*field).to_owned(), kind.to_owned())
            })
            .collect();
        assert_eq!(
            fields, &expected,
            "README's fields of {} (name and type) differ from SCHEMA",
            measurement.name
        );
        let prose = &text[..text.find("\n|").unwrap_or(text.len())];
        if measurement.tags.is_empty() {
            assert!(
                prose.contains("No extra tags"),
                "{}: {prose}",
                measurement.name
            );
        }
        for tag in measurement.tags {
            assert!(
                prose.contains(&format!("`{tag}`")),
                "README does not document the tag {tag} of {}",
                measurement.name
            );
        }
    }
    // The changed meaning of disk used_percent is spelled out.
    let (disk, _) = &documented["disk"];
    assert!(disk.contains("as `df` shows it"), "{disk}");
}
