//! The rules that keep the workspace's layering (docs/architecture.md), read from the Cargo
//! manifests and the sources themselves, so a change that breaks one fails here:
//!
//! - `telemetry` and the libraries under `libs/` import no service;
//! - no service imports another: they talk over HTTP and AMQP only;
//! - only the launcher (`stack`), `bdd`, `benches` and `test-support` depend on several
//!   services, and `test-support` only ever as a dev-dependency;
//! - the contract crate knows no HTTP or AMQP framework, and the names it holds (exchanges,
//!   routing keys, queues, header names) are written nowhere else;
//! - no crate has an import cycle between its modules;
//! - a service's tasks are spawned in its telemetry pipeline (`telemetry::spawn`), never with
//!   `tokio::spawn` alone, which would leave them traced and counted as nobody's on a runtime
//!   that several services share.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SERVICES: [&str; 3] = ["user", "slack", "gateway"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every member: its package name, folder, and dependencies (normal, and dev).
struct Member {
    name: String,
    folder: PathBuf,
    dependencies: BTreeSet<String>,
    dev_dependencies: BTreeSet<String>,
}

fn members() -> Vec<Member> {
    let root: toml::Table = std::fs::read_to_string(workspace().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let names = |table: Option<&toml::Value>| -> BTreeSet<String> {
        table
            .and_then(toml::Value::as_table)
            .map(|table| table.keys().cloned().collect())
            .unwrap_or_default()
    };
    root["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| {
            let folder = workspace().join(member.as_str().unwrap());
            let manifest: toml::Table = std::fs::read_to_string(folder.join("Cargo.toml"))
                .unwrap()
                .parse()
                .unwrap();
            Member {
                name: manifest["package"]["name"].as_str().unwrap().to_owned(),
                folder,
                dependencies: names(manifest.get("dependencies")),
                dev_dependencies: names(manifest.get("dev-dependencies")),
            }
        })
        .collect()
}

fn member<'a>(members: &'a [Member], name: &str) -> &'a Member {
    members
        .iter()
        .find(|member| member.name == name)
        .unwrap_or_else(|| panic!("no member {name}"))
}

#[test]
fn telemetry_and_the_libraries_import_no_service_and_services_import_no_other() {
    let members = members();
    assert!(members.len() >= 12, "the workspace lost members");
    for library in [
        "telemetry",
        "settings",
        "contract",
        "service-kit",
        "messaging",
    ] {
        let library = member(&members, library);
        let services: Vec<&String> = library
            .dependencies
            .iter()
            .chain(&library.dev_dependencies)
            .filter(|dependency| SERVICES.contains(&dependency.as_str()))
            .collect();
        assert!(services.is_empty(), "{} imports {services:?}", library.name);
    }
    let telemetry = member(&members, "telemetry");
    for layer in ["contract", "service-kit", "messaging"] {
        assert!(
            !telemetry.dependencies.contains(layer),
            "telemetry imports {layer}, a layer above it"
        );
    }
    for service in SERVICES {
        let service = member(&members, service);
        for other in SERVICES.iter().filter(|other| **other != service.name) {
            assert!(
                !service.dependencies.contains(*other)
                    && !service.dev_dependencies.contains(*other),
                "{} imports {other}: services talk over HTTP and AMQP only",
                service.name
            );
        }
    }
}

#[test]
fn only_the_launcher_the_bdd_suite_the_benchmarks_and_test_support_span_services() {
    for member in members() {
        let spanned: Vec<&str> = SERVICES
            .into_iter()
            .filter(|service| {
                member.dependencies.contains(*service) || member.dev_dependencies.contains(*service)
            })
            .collect();
        if spanned.len() > 1 {
            assert!(
                ["stack", "bdd", "benchmarks", "test-support"].contains(&member.name.as_str()),
                "{} depends on {spanned:?}",
                member.name
            );
        }
        assert!(
            !member.dependencies.contains("test-support"),
            "{} ships test-support: it is a dev-dependency only",
            member.name
        );
    }
}

/// The source files of a member (its `src/`), with their text.
fn sources(folder: &Path) -> Vec<(PathBuf, String)> {
    fn walk(folder: &Path, found: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                found.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut found = Vec::new();
    walk(&folder.join("src"), &mut found);
    found
}

#[test]
fn the_contract_knows_no_framework_and_its_names_are_written_nowhere_else() {
    let members = members();
    let contract = member(&members, "contract");
    let allowed = [
        "chrono",
        "jsonwebtoken",
        "serde",
        "serde_json",
        "utoipa",
        "uuid",
    ];
    for dependency in &contract.dependencies {
        assert!(
            allowed.contains(&dependency.as_str()),
            "the contract depends on {dependency}"
        );
    }
    // The quoted names of contract::broker and contract::headers.
    let mut names = Vec::new();
    for file in ["broker.rs", "headers.rs"] {
        let text = std::fs::read_to_string(contract.folder.join("src").join(file)).unwrap();
        for line in text.lines().filter(|line| line.starts_with("pub const")) {
            let name = line.split('"').nth(1).expect("a quoted name");
            names.push(name.to_owned());
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    // A plain word ("users", the exchange) is also a table's and an API tag's name.
    names.retain(|name| name.contains(['.', '-', '_']));
    let mut again = Vec::new();
    for member in members.iter().filter(|member| member.name != "contract") {
        for (path, text) in sources(&member.folder) {
            // Tests may spell a message out; OpenAPI attributes take literals only.
            let text = without_unit_tests(&text);
            let text = without_openapi_paths(text);
            for name in &names {
                if text.contains(&format!("\"{name}\"")) {
                    again.push(format!("{} writes {name:?}", path.display()));
                }
            }
        }
    }
    assert!(
        again.is_empty(),
        "use contract's constants:\n{}",
        again.join("\n")
    );
}

#[test]
fn tasks_are_spawned_in_their_services_telemetry_pipeline() {
    let mut offending = Vec::new();
    for member in members() {
        if ["telemetry", "test-support", "benchmarks", "bdd"].contains(&member.name.as_str()) {
            continue;
        }
        for (path, text) in sources(&member.folder) {
            if without_unit_tests(&text).contains("tokio::spawn(") {
                offending.push(path.display().to_string());
            }
        }
    }
    assert!(
        offending.is_empty(),
        "tokio::spawn outside telemetry (use telemetry::spawn): {offending:?}"
    );
}

fn without_unit_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(tests) => &text[..tests],
        None => text,
    }
}

/// `text` without its `#[utoipa::path(...)]` attributes.
fn without_openapi_paths(text: &str) -> String {
    let mut kept = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("#[utoipa::path(") {
        kept.push_str(&rest[..start]);
        rest = rest[start..]
            .find("\n)]")
            .map_or("", |end| &rest[start + end + 3..]);
    }
    kept.push_str(rest);
    kept
}

/// The top-level modules of a crate that each module refers to, `crate::other` or (from a file
/// at the top of `src/`) `super::other`. Unit tests may use anything, and are left out.
fn module_references(folder: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let src = folder.join("src");
    let mut modules: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
    for (path, text) in sources(folder) {
        let relative = path.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if ["lib", "main", "bin"].contains(&top.as_str()) {
            continue;
        }
        let text = without_unit_tests(&text).to_owned();
        modules.entry(top).or_default().push((path, text));
    }
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(module, files)| {
            let mut referred = BTreeSet::new();
            for (path, text) in files {
                let at_top = path.parent() == Some(src.as_path());
                let prefixes: &[&str] = if at_top {
                    &["crate::", "super::"]
                } else {
                    &["crate::"]
                };
                for prefix in prefixes {
                    for (at, _) in text.match_indices(prefix) {
                        let before = text[..at].chars().next_back();
                        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                            continue;
                        }
                        let name: String = text[at + prefix.len()..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if known.contains(&name) && &name != module {
                            referred.insert(name);
                        }
                    }
                }
            }
            (module.clone(), referred)
        })
        .collect()
}

/// The modules of a cycle, if `graph` has one.
fn a_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == node) {
            return Some(path[start..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let mut found = Vec::new();
    for member in members() {
        if let Some(cycle) = a_cycle(&module_references(&member.folder)) {
            found.push(format!("{}: {}", member.name, cycle.join(" -> ")));
        }
    }
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("app", vec!["docs"]),
        ("docs", vec!["health"]),
        ("health", vec!["app"]),
        ("state", vec![]),
    ]
    .into_iter()
    .map(|(module, refers)| {
        (
            module.to_owned(),
            refers.into_iter().map(str::to_owned).collect(),
        )
    })
    .collect();
    assert_eq!(
        a_cycle(&graph),
        Some(vec![
            "app".to_owned(),
            "docs".to_owned(),
            "health".to_owned()
        ])
    );
    let acyclic: BTreeMap<String, BTreeSet<String>> = graph
        .into_iter()
        .filter(|(module, _)| module != "health")
        .collect();
    assert_eq!(a_cycle(&acyclic), None);
}
