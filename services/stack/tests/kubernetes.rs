//! The Kubernetes manifests, checked offline: both overlays render with `kubectl kustomize`
//! and validate against the Kubernetes schemas and the Prometheus Operator's CRDs
//! (`deploy/kubernetes/validate.sh`); and the project's own rules hold on the rendered objects:
//! every container probed, sized and (the stack's own) locked down; every Service selecting a
//! pod template on the port its process listens on; every variable one the process reads (asked
//! of the configuration code itself); the images and binaries the Dockerfile's; production
//! replicated, autoscaled, budgeted, spread and scraped, with its credentials in Secrets, out of
//! development mode and distrusting what clients say of their address and trace; its Ingress
//! routing what clients use and nothing for operators; and the NetworkPolicies allowing exactly
//! the flows the processes use, no more, admitting other namespaces only by name.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use service_kit::Service;
use settings::SettingsError;

mod common;
use common::{repository, run};

const KUBECTL: &str =
    "kubectl (https://kubernetes.io/docs/tasks/tools/; it has kustomize built in)";
const OVERLAYS: [&str; 2] = ["dev", "production"];

/// The stack's processes: each one's Deployment, binary and `app.kubernetes.io/name`.
const PROCESSES: [&str; 5] = ["gateway", "user", "user-queue", "slack", "slack-queue"];

/// Variables set only for the `$(VAR)` expansion of `OTEL_RESOURCE_ATTRIBUTES`.
const DOWNWARD: [&str; 3] = ["POD_NAME", "POD_NAMESPACE", "NODE_NAME"];

/// The credentials production takes from Secrets, never from the manifests.
const SECRETS: [&str; 7] = [
    "DATABASE_URL",
    "AMQP_URL",
    "REDIS_URL",
    "JWT_SECRET",
    "JWT_PUBLIC_KEY",
    "SLACK_WEBHOOK_URL",
    "INTERNAL_TOKEN",
];

/// A real key, which the gateway's settings check.
const RS256_PUBLIC_KEY: &str = include_str!("../../gateway/tests/fixtures/rs256-test-public.pem");

fn render(overlay: &str) -> Vec<Value> {
    let text = run(
        "kubectl",
        KUBECTL,
        &[
            "kustomize",
            &format!("deploy/kubernetes/overlays/{overlay}"),
        ],
    );
    text.split("\n---\n")
        .map(|document| serde_yaml::from_str(document).expect("kustomize renders YAML"))
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    objects.iter().filter(move |object| object["kind"] == kind)
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The workloads' pod templates, by workload name.
fn pod_templates(objects: &[Value]) -> BTreeMap<String, &Value> {
    objects
        .iter()
        .filter(|object| {
            ["Deployment", "StatefulSet", "DaemonSet"].contains(&object["kind"].as_str().unwrap())
        })
        .map(|object| (name(object).to_owned(), &object["spec"]["template"]))
        .collect()
}

fn containers(template: &Value) -> impl Iterator<Item = &Value> {
    list(&template["spec"]["containers"])
        .iter()
        .chain(list(&template["spec"]["initContainers"]))
}

fn labels(template: &Value) -> BTreeMap<String, String> {
    template["metadata"]["labels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .map(|(key, value)| (key.clone(), value.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a label `selector` (`matchLabels`, `matchExpressions`, or a Service's plain map)
/// selects `labels`; an empty selector selects everything.
fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector.as_object() else {
        return false;
    };
    let plain = !selector.contains_key("matchLabels") && !selector.contains_key("matchExpressions");
    let match_labels = if plain {
        selector.clone()
    } else {
        selector
            .get("matchLabels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let labelled = match_labels
        .iter()
        .all(|(key, value)| labels.get(key).map(String::as_str) == value.as_str());
    let expressions = selector
        .get("matchExpressions")
        .map(list)
        .unwrap_or_default();
    labelled
        && expressions.iter().all(|expression| {
            let key = expression["key"].as_str().unwrap();
            let values: Vec<&str> = list(&expression["values"])
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let value = labels.get(key).map(String::as_str);
            match expression["operator"].as_str().unwrap() {
                "In" => value.is_some_and(|value| values.contains(&value)),
                "NotIn" => !value.is_some_and(|value| values.contains(&value)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("unknown selector operator {other}"),
            }
        })
}

/// A container's ports: name -> number.
fn container_ports(container: &Value) -> BTreeMap<String, u64> {
    list(&container["ports"])
        .iter()
        .map(|port| {
            (
                port["name"].as_str().unwrap_or_default().to_owned(),
                port["containerPort"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// A port given by number or by the name of one of `ports`.
fn resolve_port(port: &Value, ports: &BTreeMap<String, u64>) -> Option<u64> {
    port.as_u64()
        .or_else(|| port.as_str().and_then(|name| ports.get(name).copied()))
}

/// The decoded data of the overlay's Secrets, by Secret name then key.
fn secrets(objects: &[Value]) -> BTreeMap<String, BTreeMap<String, String>> {
    use base64::Engine;
    of_kind(objects, "Secret")
        .map(|secret| {
            let data = secret["data"].as_object().cloned().unwrap_or_default();
            let decoded = data
                .iter()
                .map(|(key, value)| {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(value.as_str().unwrap())
                        .unwrap();
                    (key.clone(), String::from_utf8(bytes).unwrap())
                })
                .collect();
            (name(secret).to_owned(), decoded)
        })
        .collect()
}

/// A container's environment as the process sees it: values as written, Secrets' keys from the
/// overlay's Secrets or, where the overlay has none (production) or leaves an optional key out,
/// a stand-in of the right shape; the downward API's fields as a pod name.
fn environment(container: &Value, objects: &[Value]) -> BTreeMap<String, String> {
    let secrets = secrets(objects);
    let stand_in = |key: &str| match key {
        // Over TLS, the server's name and certificate checked, as docs/kubernetes.md asks.
        "DATABASE_URL" => "postgres://stack@postgres.example.com:5432/users?sslmode=verify-full",
        "AMQP_URL" => "amqps://stack:secret@rabbitmq.example.com:5671/%2f",
        "REDIS_URL" => "rediss://redis.example.com:6379",
        "SLACK_WEBHOOK_URL" => "https://hooks.slack.com/services/T/B/X",
        "JWT_SECRET" => "a-production-secret-of-32-bytes-or-more",
        "JWT_PUBLIC_KEY" => RS256_PUBLIC_KEY,
        "INTERNAL_TOKEN" => "a-production-internal-token-of-32-bytes",
        other => panic!("no stand-in for the secret key {other}"),
    };
    list(&container["env"])
        .iter()
        .map(|variable| {
            let name = variable["name"].as_str().unwrap().to_owned();
            let from = &variable["valueFrom"];
            let value = if let Some(value) = variable["value"].as_str() {
                value.to_owned()
            } else if let Some(key) = from["secretKeyRef"]["key"].as_str() {
                let secret = from["secretKeyRef"]["name"].as_str().unwrap();
                let generated = secrets
                    .iter()
                    .find(|(name, _)| name.starts_with(&format!("{secret}-")) || *name == secret);
                match generated {
                    Some((_, data)) => match data.get(key) {
                        Some(value) => value.clone(),
                        // Not in this overlay's Secret, but the process may be given it.
                        None if from["secretKeyRef"]["optional"] == true => {
                            stand_in(key).to_owned()
                        }
                        None => panic!("the Secret {secret} has no key {key}"),
                    },
                    None => stand_in(key).to_owned(),
                }
            } else if from["fieldRef"].is_object() {
                "pod-0".to_owned()
            } else {
                panic!("{name}: a source this test does not know: {from}");
            };
            (name, value)
        })
        .filter(|(_, value)| !value.is_empty())
        .collect()
}

/// The port `process` listens on, and whether it accepts its settings, given `environment`.
fn listens(process: &str, environment: &BTreeMap<String, String>) -> Result<u16, SettingsError> {
    let lookup = |name: &str| environment.get(name).cloned();
    Ok(match process {
        "gateway" => gateway::Settings::from_lookup(&lookup)?.listen().port(),
        "user" => user::Settings::from_lookup(&lookup)?.listen().port(),
        "user-queue" => user::QueueSettings::from_lookup(&lookup)?.listen().port(),
        "slack" => slack::Settings::from_lookup(&lookup)?.listen().port(),
        "slack-queue" => slack::QueueSettings::from_lookup(&lookup)?.listen().port(),
        other => panic!("{other} is not a process of the stack"),
    })
}

#[test]
fn both_overlays_render_and_validate_against_the_kubernetes_and_prometheus_operator_schemas() {
    let output = run(
        "deploy/kubernetes/validate.sh",
        "pip install kubernetes-validate cloudcoil-models-prometheus-operator (and kubectl)",
        &[],
    );
    for overlay in OVERLAYS {
        assert!(
            output.contains(&format!("{overlay}: ")) && output.contains("valid against Kubernetes"),
            "{output}"
        );
    }
    assert!(
        !output.contains("not checked"),
        "the Prometheus Operator objects went unchecked:\n{output}"
    );
}

#[test]
fn every_container_is_probed_and_sized_and_the_stacks_own_are_locked_down() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        for (workload, template) in pod_templates(&objects) {
            let spec = &template["spec"];
            for container in containers(template) {
                let at = format!("{overlay}: {workload}/{}", container["name"]);
                for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                    assert!(container[probe].is_object(), "{at} has no {probe}");
                }
                for (bound, resource) in [
                    ("requests", "cpu"),
                    ("requests", "memory"),
                    ("limits", "cpu"),
                    ("limits", "memory"),
                ] {
                    assert!(
                        container["resources"][bound][resource].is_string(),
                        "{at} has no {bound}.{resource}"
                    );
                }
                if !PROCESSES.contains(&workload.as_str()) {
                    continue;
                }
                for (probe, path) in [
                    ("startupProbe", "/health/live"),
                    ("readinessProbe", "/health/ready"),
                    ("livenessProbe", "/health/live"),
                ] {
                    assert_eq!(container[probe]["httpGet"]["path"], path, "{at} {probe}");
                    let port = resolve_port(
                        &container[probe]["httpGet"]["port"],
                        &container_ports(container),
                    );
                    assert_eq!(
                        port,
                        container_ports(container).get("http").copied(),
                        "{at} {probe} port"
                    );
                }
                let security = &container["securityContext"];
                assert_eq!(security["runAsNonRoot"], true, "{at}");
                assert_eq!(security["readOnlyRootFilesystem"], true, "{at}");
                assert_eq!(security["allowPrivilegeEscalation"], false, "{at}");
                assert_eq!(security["capabilities"]["drop"], json!(["ALL"]), "{at}");
                assert!(security["capabilities"]["add"].is_null(), "{at}");
                let seccomp = if security["seccompProfile"].is_object() {
                    &security["seccompProfile"]
                } else {
                    &spec["securityContext"]["seccompProfile"]
                };
                assert_eq!(seccomp["type"], "RuntimeDefault", "{at}");

                // The endpoints go during the preStop's sleep, then SIGTERM: readiness fails
                // and the process drains; the grace period covers both with a margin.
                let sleep: u64 = container["lifecycle"]["preStop"]["exec"]["command"]
                    .as_array()
                    .filter(|command| command[0] == "sleep")
                    .and_then(|command| command[1].as_str()?.parse().ok())
                    .unwrap_or_else(|| panic!("{at} has no preStop sleep"));
                let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
                assert!(
                    sleep >= 3,
                    "{at}: a {sleep} s preStop is shorter than endpoint propagation"
                );
                assert!(
                    grace >= sleep + 15,
                    "{at}: {grace} s of grace for {sleep} s of preStop and the drain"
                );
            }
        }
    }
}

#[test]
fn every_service_selects_a_pod_template_on_a_port_its_process_listens_on() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let templates = pod_templates(&objects);
        for service in of_kind(&objects, "Service") {
            let selected: Vec<(&String, &&Value)> = templates
                .iter()
                .filter(|(_, template)| selects(&service["spec"]["selector"], &labels(template)))
                .collect();
            assert!(
                !selected.is_empty(),
                "{overlay}: the Service {} selects no pod",
                name(service)
            );
            for port in list(&service["spec"]["ports"]) {
                for (workload, template) in &selected {
                    let served = containers(template).any(|container| {
                        resolve_port(&port["targetPort"], &container_ports(container)).is_some_and(
                            |target| {
                                container_ports(container)
                                    .values()
                                    .any(|&open| open == target)
                            },
                        )
                    });
                    assert!(
                        served,
                        "{overlay}: Service {} port {port} is not a port of {workload}",
                        name(service)
                    );
                }
            }
        }
        for process in PROCESSES {
            let container = &templates[process]["spec"]["containers"][0];
            let listening =
                listens(process, &environment(container, &objects)).unwrap_or_else(|error| {
                    panic!("{overlay}: {process} refuses its settings: {error}")
                });
            assert_eq!(
                container_ports(container).get("http").copied(),
                Some(u64::from(listening)),
                "{overlay}: {process}'s container port is not where it listens"
            );
        }
    }
}

#[test]
fn each_process_runs_its_dockerfile_binary_and_gets_only_variables_it_reads() {
    let dockerfile = std::fs::read_to_string(repository().join("Dockerfile")).unwrap();
    let (shared, own) = common::variables_read();
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let templates = pod_templates(&objects);
        for process in PROCESSES {
            let containers: Vec<&Value> = containers(templates[process]).collect();
            assert_eq!(
                containers.len(),
                1,
                "{overlay}: {process} runs one container"
            );
            let container = containers[0];
            let image = container["image"].as_str().unwrap();
            let repository = image.rsplit('/').next().unwrap().split(':').next().unwrap();
            assert_eq!(
                repository, "microservice-stack",
                "{overlay}: {process} runs {image}"
            );
            assert_eq!(
                container["command"],
                json!([process]),
                "{overlay}: {process}"
            );
            assert!(
                dockerfile.contains(&format!("target/release/{process} ")),
                "the image does not ship {process}"
            );

            let set: BTreeSet<String> = list(&container["env"])
                .iter()
                .map(|variable| variable["name"].as_str().unwrap().to_owned())
                .collect();
            for variable in &set {
                let downward = DOWNWARD.contains(&variable.as_str());
                assert!(
                    shared.contains(variable) || own[process].contains(variable) || downward,
                    "{overlay}: {process} is given {variable}, which it never reads"
                );
            }
            let attributes = list(&container["env"])
                .iter()
                .find(|variable| variable["name"] == "OTEL_RESOURCE_ATTRIBUTES")
                .and_then(|variable| variable["value"].as_str())
                .unwrap_or_else(|| panic!("{overlay}: {process} has no OTEL_RESOURCE_ATTRIBUTES"));
            assert!(
                attributes.contains("service.instance.id=$(POD_NAME)"),
                "{overlay}: {process}: {attributes}"
            );
            for variable in set
                .iter()
                .filter(|variable| DOWNWARD.contains(&variable.as_str()))
            {
                assert!(
                    attributes.contains(&format!("$({variable})")),
                    "{overlay}: {process} sets {variable} for nothing"
                );
            }
        }
    }
}

#[test]
fn production_is_replicated_autoscaled_budgeted_spread_scraped_and_keeps_credentials_in_secrets() {
    let objects = render("production");
    let templates = pod_templates(&objects);
    let workloads: BTreeSet<&str> = templates.keys().map(String::as_str).collect();
    let mut expected: BTreeSet<&str> = PROCESSES.into_iter().collect();
    expected.insert("otel-collector");
    assert_eq!(
        workloads, expected,
        "production runs the processes and the collector, no data store"
    );

    let autoscalers: BTreeMap<&str, &Value> = of_kind(&objects, "HorizontalPodAutoscaler")
        .map(|autoscaler| {
            assert_eq!(autoscaler["apiVersion"], "autoscaling/v2");
            (
                autoscaler["spec"]["scaleTargetRef"]["name"]
                    .as_str()
                    .unwrap(),
                autoscaler,
            )
        })
        .collect();
    for scaled in ["gateway", "user-queue", "slack-queue"] {
        assert!(
            autoscalers.contains_key(scaled),
            "no HorizontalPodAutoscaler for {scaled}"
        );
    }
    for deployment in of_kind(&objects, "Deployment") {
        let workload = name(deployment);
        let replicas = match autoscalers.get(workload) {
            Some(autoscaler) => {
                assert!(
                    deployment["spec"]["replicas"].is_null(),
                    "{workload}: the HPA owns the replicas"
                );
                autoscaler["spec"]["minReplicas"].as_u64().unwrap()
            }
            None => deployment["spec"]["replicas"].as_u64().unwrap_or(1),
        };
        assert!(replicas >= 2, "{workload} runs {replicas} replica(s)");
        let pods = labels(&deployment["spec"]["template"]);
        assert!(
            of_kind(&objects, "PodDisruptionBudget")
                .any(|budget| selects(&budget["spec"]["selector"], &pods)),
            "no PodDisruptionBudget for {workload}"
        );
        let spread = list(&deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]);
        assert!(
            spread.iter().any(
                |constraint| constraint["topologyKey"] == "kubernetes.io/hostname"
                    && selects(&constraint["labelSelector"], &pods)
            ),
            "{workload} is not spread across nodes"
        );
    }
    for process in PROCESSES {
        let template = templates[process];
        let pods = labels(template);
        let container = &template["spec"]["containers"][0];
        let annotations = &template["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{process}");
        assert_eq!(
            annotations["prometheus.io/port"]
                .as_str()
                .and_then(|port| port.parse().ok()),
            container_ports(container).get("http").copied(),
            "{process}"
        );
        let monitored = of_kind(&objects, "PodMonitor").any(|monitor| {
            selects(&monitor["spec"]["selector"], &pods)
                && list(&monitor["spec"]["podMetricsEndpoints"])
                    .iter()
                    .any(|endpoint| {
                        endpoint["path"] == "/metrics"
                            && resolve_port(&endpoint["port"], &container_ports(container))
                                .is_some()
                    })
        });
        assert!(monitored, "no PodMonitor scrapes {process}'s /metrics");
        let faults = list(&container["env"])
            .iter()
            .find(|variable| variable["name"] == "FAULTS_ENABLED");
        assert_eq!(
            faults.map(|variable| &variable["value"]),
            Some(&json!("false")),
            "production's {process} can have faults switched on"
        );
        for variable in list(&container["env"]) {
            if SECRETS.contains(&variable["name"].as_str().unwrap()) {
                assert!(
                    variable["valueFrom"]["secretKeyRef"].is_object(),
                    "{process}: {} is not taken from a Secret",
                    variable["name"]
                );
            }
        }
    }
    // Tokens are checked with one key, of the Secret's, never the public development secret:
    // the pod is not created without the key, and no manifest renders one blank.
    let gateway = &templates["gateway"]["spec"]["containers"][0];
    let keys: Vec<&Value> = list(&gateway["env"])
        .iter()
        .filter(|variable| {
            ["JWT_SECRET", "JWT_PUBLIC_KEY"].contains(&variable["name"].as_str().unwrap())
        })
        .collect();
    assert!(
        matches!(keys.as_slice(), [key] if key["valueFrom"]["secretKeyRef"].is_object()
            && key["valueFrom"]["secretKeyRef"]["optional"] != true),
        "production's gateway takes no required JWT key from its Secret: {keys:?}"
    );
    for (workload, template) in &templates {
        for container in containers(template) {
            for variable in list(&container["env"]) {
                assert_ne!(
                    variable["value"], "",
                    "production's {workload} is given a blank {}",
                    variable["name"]
                );
            }
        }
    }
    let collector_config = of_kind(&objects, "ConfigMap")
        .find(|map| name(map).starts_with("otel-collector-config"))
        .map(|map| map["data"]["config.yaml"].as_str().unwrap().to_owned())
        .unwrap();
    let collector: Value = serde_yaml::from_str(&collector_config).unwrap();
    for signal in ["traces", "logs"] {
        let processors = list(&collector["service"]["pipelines"][signal]["processors"]);
        assert!(
            processors.contains(&json!("k8sattributes")),
            "{signal}: {processors:?}"
        );
    }
}

/// One end of a flow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    /// A pod: its namespace and workload (an `app.kubernetes.io/name`, or a stand-in outside
    /// the overlay: the ingress controller, the cluster DNS, an operator's Prometheus).
    Pod(String, String),
    /// Anything outside the cluster (a managed database, a backend, the API server).
    External,
}

/// A pod's labels and its ports by name.
type Pod = (BTreeMap<String, String>, BTreeMap<String, u64>);

struct Cluster {
    namespace: String,
    pods: BTreeMap<Peer, Pod>,
    policies: Vec<Value>,
}

impl Cluster {
    fn new(objects: &[Value], namespace: &str) -> Self {
        let mut pods = BTreeMap::new();
        for (workload, template) in pod_templates(objects) {
            let ports = containers(template).flat_map(container_ports).collect();
            pods.insert(
                Peer::Pod(namespace.to_owned(), workload),
                (labels(template), ports),
            );
        }
        let outside = [
            (
                "ingress-nginx",
                "ingress-nginx",
                "app.kubernetes.io/name",
                443,
            ),
            ("kube-system", "kube-dns", "k8s-app", 53),
            ("monitoring", "prometheus", "app.kubernetes.io/name", 9090),
            // Pods anyone may run in a namespace of their own, labelled as those the policies
            // admit: only their namespace's name tells them apart.
            ("tenant", "prometheus", "app.kubernetes.io/name", 9090),
            ("tenant", "ingress-nginx", "app.kubernetes.io/name", 443),
        ];
        for (space, workload, key, port) in outside {
            let labels = BTreeMap::from([(key.to_owned(), workload.to_owned())]);
            pods.insert(
                Peer::Pod(space.to_owned(), workload.to_owned()),
                (labels, BTreeMap::from([(String::new(), port)])),
            );
        }
        Self {
            namespace: namespace.to_owned(),
            pods,
            policies: of_kind(objects, "NetworkPolicy").cloned().collect(),
        }
    }

    fn labels(&self, peer: &Peer) -> Option<&BTreeMap<String, String>> {
        self.pods.get(peer).map(|(labels, _)| labels)
    }

    /// Whether a `from`/`to` entry of a rule matches `peer`.
    fn matches(&self, entry: &Value, peer: &Peer) -> bool {
        if entry["ipBlock"].is_object() {
            return *peer == Peer::External;
        }
        let Peer::Pod(space, _) = peer else {
            return false;
        };
        let labels = self.labels(peer).unwrap();
        let in_namespace = match entry.get("namespaceSelector") {
            None => *space == self.namespace,
            Some(selector) => selects(
                selector,
                &BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), space.clone())]),
            ),
        };
        let selected = entry
            .get("podSelector")
            .is_none_or(|selector| selects(selector, labels));
        in_namespace && selected
    }

    fn port_matches(&self, ports: &Value, port: (&str, u64), destination: &Peer) -> bool {
        let named = self
            .pods
            .get(destination)
            .map(|(_, ports)| ports.clone())
            .unwrap_or_default();
        list(ports).is_empty()
            || list(ports).iter().any(|entry| {
                let protocol = entry["protocol"].as_str().unwrap_or("TCP") == port.0;
                let number = entry["port"].is_null()
                    || resolve_port(&entry["port"], &named).is_some_and(|first| {
                        let last = entry["endPort"].as_u64().unwrap_or(first);
                        (first..=last).contains(&port.1)
                    });
                protocol && number
            })
    }

    /// Whether the policies let `from` reach `to` on `port` (a protocol and a number): the
    /// source's egress and the destination's ingress must both allow it, where a policy isolates
    /// them.
    fn allows(&self, from: &Peer, to: &Peer, port: (&str, u64)) -> bool {
        let side = |direction: &str, isolated: &Peer, other: &Peer| {
            let Some(labels) = self
                .labels(isolated)
                .filter(|_| matches!(isolated, Peer::Pod(space, _) if *space == self.namespace))
            else {
                return true;
            };
            let (key, peers) = if direction == "Egress" {
                ("egress", "to")
            } else {
                ("ingress", "from")
            };
            let policies: Vec<&Value> = self
                .policies
                .iter()
                .filter(|policy| selects(&policy["spec"]["podSelector"], labels))
                .filter(|policy| list(&policy["spec"]["policyTypes"]).contains(&json!(direction)))
                .collect();
            policies.is_empty()
                || policies
                    .iter()
                    .flat_map(|policy| list(&policy["spec"][key]))
                    .any(|rule| {
                        (list(&rule[peers]).is_empty()
                            || list(&rule[peers])
                                .iter()
                                .any(|entry| self.matches(entry, other)))
                            && self.port_matches(&rule["ports"], port, to)
                    })
        };
        side("Egress", from, to) && side("Ingress", to, from)
    }
}

/// The flows the processes use, from what they are configured with: each URL a process is given
/// (its value, or its Secret's) names a Service, or something outside the cluster; plus the
/// cluster's DNS, the ingress controller to the gateway, Prometheus to each scrape annotation,
/// and the tools' own flows, as their configuration files say.
fn flows_used(overlay: &str, objects: &[Value], namespace: &str) -> BTreeSet<(Peer, Peer, u64)> {
    let pod = |workload: &str| Peer::Pod(namespace.to_owned(), workload.to_owned());
    let templates = pod_templates(objects);
    let services: BTreeMap<&str, &Value> = of_kind(objects, "Service")
        .map(|service| (name(service), service))
        .collect();
    // The workload a Service's `port` reaches, and on which container port.
    let through = |service: &Value, port: u64| -> Vec<(String, u64)> {
        let spec_port = list(&service["spec"]["ports"])
            .iter()
            .find(|candidate| candidate["port"] == port);
        let Some(spec_port) = spec_port else {
            return Vec::new();
        };
        templates
            .iter()
            .filter(|(_, template)| selects(&service["spec"]["selector"], &labels(template)))
            .filter_map(|(workload, template)| {
                let ports = containers(template).flat_map(container_ports).collect();
                Some((
                    workload.clone(),
                    resolve_port(&spec_port["targetPort"], &ports)?,
                ))
            })
            .collect()
    };
    let mut flows = BTreeSet::new();
    for (workload, template) in &templates {
        flows.insert((
            pod(workload),
            Peer::Pod("kube-system".into(), "kube-dns".into()),
            53,
        ));
        let annotations = &template["metadata"]["annotations"];
        if annotations["prometheus.io/scrape"] == "true" {
            let port = annotations["prometheus.io/port"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            // The overlay's Prometheus if it has one, and an operator's in a namespace of its own,
            // which the processes' policies let in too.
            if templates.contains_key("prometheus") {
                flows.insert((pod("prometheus"), pod(workload), port));
            }
            if PROCESSES.contains(&workload.as_str()) {
                flows.insert((
                    Peer::Pod("monitoring".into(), "prometheus".into()),
                    pod(workload),
                    port,
                ));
            }
        }
        if !PROCESSES.contains(&workload.as_str()) {
            continue;
        }
        for container in containers(template) {
            for value in environment(container, objects).values() {
                let Ok(url) = reqwest::Url::parse(value) else {
                    continue;
                };
                let (Some(host), Some(port)) = (
                    url.host_str(),
                    url.port_or_known_default().or(match url.scheme() {
                        "postgres" => Some(5432),
                        "amqp" => Some(5672),
                        "amqps" => Some(5671),
                        "redis" => Some(6379),
                        _ => None,
                    }),
                ) else {
                    continue;
                };
                match services.get(host) {
                    Some(service) => {
                        let reached = through(service, u64::from(port));
                        assert!(
                            !reached.is_empty(),
                            "{overlay}: {workload} calls {value}, which no pod serves"
                        );
                        for (destination, target) in reached {
                            flows.insert((pod(workload), pod(&destination), target));
                        }
                    }
                    None if host.contains('.') => {
                        flows.insert((pod(workload), Peer::External, u64::from(port)));
                    }
                    None => panic!(
                        "{overlay}: {workload} calls {value}, and there is no Service {host}"
                    ),
                }
            }
        }
    }
    flows.insert((
        Peer::Pod("ingress-nginx".into(), "ingress-nginx".into()),
        pod("gateway"),
        8100,
    ));
    // The tools: otel-collector/'s exporters and grafana's data sources, prometheus/'s scrape of RabbitMQ,
    // and dev's gateway for a NodePort or a port-forward.
    let tools: &[(&str, &str, u64)] = match overlay {
        "dev" => &[
            ("otel-collector", "zipkin", 9411),
            ("otel-collector", "loki", 3100),
            ("grafana", "loki", 3100),
            ("grafana", "prometheus", 9090),
            ("grafana", "zipkin", 9411),
            ("prometheus", "rabbitmq", 15692),
        ],
        _ => &[],
    };
    for (from, to, port) in tools {
        flows.insert((pod(from), pod(to), *port));
    }
    if overlay == "dev" {
        // The gateway from outside the namespace (a NodePort, a port-forward, a pod of one's
        // own), and Prometheus's Kubernetes discovery through the API server.
        for outside in [
            Peer::External,
            Peer::Pod("kube-system".into(), "kube-dns".into()),
            Peer::Pod("monitoring".into(), "prometheus".into()),
            Peer::Pod("tenant".into(), "prometheus".into()),
            Peer::Pod("tenant".into(), "ingress-nginx".into()),
        ] {
            flows.insert((outside, pod("gateway"), 8100));
        }
        for port in [443, 6443] {
            flows.insert((pod("prometheus"), Peer::External, port));
        }
    } else {
        // The collector's OTLP backend, and the API server for k8sattributes.
        for port in [443, 4317, 4318, 6443] {
            flows.insert((pod("otel-collector"), Peer::External, port));
        }
    }
    flows
}

#[test]
fn the_network_policies_allow_exactly_the_flows_the_processes_use() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let namespace = of_kind(&objects, "Namespace")
            .next()
            .map(name)
            .unwrap()
            .to_owned();
        let cluster = Cluster::new(&objects, &namespace);
        let used = flows_used(overlay, &objects, &namespace);
        let mut missing = Vec::new();
        for (from, to, port) in &used {
            let protocol_ok = cluster.allows(from, to, ("TCP", *port))
                || (*port == 53 && cluster.allows(from, to, ("UDP", *port)));
            if !protocol_ok {
                missing.push(format!("{from:?} -> {to:?}:{port}"));
            }
        }
        assert!(
            missing.is_empty(),
            "{overlay}: flows the processes use are denied: {missing:#?}"
        );

        // Everything else is denied: between any two pods on any port one of them opens, and
        // from anywhere outside, on the ports the data stores and backends use.
        let peers: Vec<&Peer> = cluster.pods.keys().chain([&Peer::External]).collect();
        let mut extra = Vec::new();
        for from in &peers {
            for to in &peers {
                let ports: BTreeSet<u64> = match to {
                    Peer::External => {
                        [443, 4317, 4318, 5432, 5671, 5672, 6379, 6380, 6443, 9411].into()
                    }
                    pod => cluster.pods[pod].1.values().copied().collect(),
                };
                for port in ports {
                    let inside =
                        |peer: &Peer| matches!(peer, Peer::Pod(space, _) if *space == namespace);
                    let flow = ((*from).clone(), (*to).clone(), port);
                    // A flow to something outside the cluster, whose address the manifests
                    // cannot know, may reach any address outside the namespace on its port.
                    let outward =
                        !inside(to) && used.contains(&((*from).clone(), Peer::External, port));
                    if from != to
                        && (inside(from) || inside(to))
                        && !used.contains(&flow)
                        && !outward
                        && cluster.allows(from, to, ("TCP", port))
                    {
                        extra.push(format!("{from:?} -> {to:?}:{port}"));
                    }
                }
            }
        }
        assert!(
            extra.is_empty(),
            "{overlay}: flows no process uses are allowed: {extra:#?}"
        );
    }
}

/// A container's variable given as a plain value.
fn value_of<'a>(container: &'a Value, variable: &str) -> Option<&'a str> {
    list(&container["env"])
        .iter()
        .find(|candidate| candidate["name"] == variable)
        .and_then(|candidate| candidate["value"].as_str())
}

/// Whether `text` is an address block, `192.0.2.0/24` or `2001:db8::/32`.
fn is_cidr(text: &str) -> bool {
    let Some((address, length)) = text.split_once('/') else {
        return false;
    };
    let bits = match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => 32,
        Ok(std::net::IpAddr::V6(_)) => 128,
        Err(_) => return false,
    };
    length.parse::<u8>().is_ok_and(|length| length <= bits)
}

#[test]
fn production_leaves_development_mode_and_trusts_no_client_for_its_address_or_trace() {
    for (overlay, development) in [("dev", "true"), ("production", "false")] {
        let objects = render(overlay);
        let gateway = &pod_templates(&objects)["gateway"]["spec"]["containers"][0];
        assert_eq!(
            value_of(gateway, "DEV_MODE"),
            Some(development),
            "{overlay}: the gateway's DEV_MODE"
        );
    }
    let objects = render("production");
    let gateway = &pod_templates(&objects)["gateway"]["spec"]["containers"][0];
    // Clients of the internet choose no trace ids and force no sampling.
    assert_eq!(
        value_of(gateway, "OTEL_TRUST_INBOUND_CONTEXT"),
        Some("false")
    );
    // Behind the ingress every client would share the controller's few addresses.
    let proxies = value_of(gateway, "TRUSTED_PROXIES").unwrap_or_default();
    assert!(
        !proxies.is_empty() && proxies.split(',').all(|block| is_cidr(block.trim())),
        "production's gateway trusts no proxy (TRUSTED_PROXIES {proxies:?}): every client is \
         keyed on the ingress controller's address"
    );
}

#[test]
fn the_gateway_user_and_slack_share_an_internal_token_from_a_secret() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let templates = pod_templates(&objects);
        for process in PROCESSES {
            let container = &templates[process]["spec"]["containers"][0];
            let token = list(&container["env"])
                .iter()
                .find(|variable| variable["name"] == "INTERNAL_TOKEN");
            // The consumers take no request from the gateway that names a user.
            if ["user-queue", "slack-queue"].contains(&process) {
                assert!(
                    token.is_none(),
                    "{overlay}: {process} is given INTERNAL_TOKEN"
                );
                continue;
            }
            let reference = token
                .map(|token| &token["valueFrom"]["secretKeyRef"])
                .unwrap_or_else(|| panic!("{overlay}: {process} has no INTERNAL_TOKEN"));
            let secret = reference["name"].as_str().unwrap_or_default();
            assert!(
                (secret == "stack-secrets" || secret.starts_with("stack-secrets-"))
                    && reference["key"] == "INTERNAL_TOKEN",
                "{overlay}: {process} takes INTERNAL_TOKEN from {reference}"
            );
            assert_ne!(
                reference["optional"], true,
                "{overlay}: {process} may start without INTERNAL_TOKEN"
            );
        }
        if overlay == "dev" {
            let token = &environment(&templates["gateway"]["spec"]["containers"][0], &objects)["INTERNAL_TOKEN"];
            assert!(token.len() >= 32, "dev's INTERNAL_TOKEN {token:?} is short");
        }
    }
}

/// The namespaces a selector names by `kubernetes.io/metadata.name`, which the API server sets
/// and no namespace's owner can change; nothing when it selects by anything else (another
/// label, which an owner can set) or by nothing (`{}`, every namespace).
fn named_namespaces(selector: &Value) -> Vec<&str> {
    const NAME: &str = "kubernetes.io/metadata.name";
    match (
        selector["matchLabels"].as_object(),
        list(&selector["matchExpressions"]),
    ) {
        (Some(labels), []) if labels.keys().all(|key| key == NAME) => {
            labels.values().filter_map(Value::as_str).collect()
        }
        (None, [expression]) if expression["key"] == NAME && expression["operator"] == "In" => {
            list(&expression["values"])
                .iter()
                .filter_map(Value::as_str)
                .collect()
        }
        _ => Vec::new(),
    }
}

#[test]
fn every_network_policy_names_the_namespaces_it_admits_and_prometheus_is_monitorings() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        for policy in of_kind(&objects, "NetworkPolicy") {
            let ingress = list(&policy["spec"]["ingress"])
                .iter()
                .flat_map(|rule| list(&rule["from"]));
            let egress = list(&policy["spec"]["egress"])
                .iter()
                .flat_map(|rule| list(&rule["to"]));
            for peer in ingress.chain(egress) {
                let Some(selector) = peer.get("namespaceSelector") else {
                    continue;
                };
                let named = named_namespaces(selector);
                assert!(
                    !named.is_empty(),
                    "{overlay}: the NetworkPolicy {} admits the namespaces {selector} selects, \
                     not namespaces it names",
                    name(policy)
                );
                if peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "prometheus" {
                    assert_eq!(
                        named,
                        ["monitoring"],
                        "{overlay}: {}'s Prometheus",
                        name(policy)
                    );
                }
            }
        }
    }
}

/// Whether an Ingress routes `path`: an `Exact` path equal to it, or a `Prefix` path that is
/// it or one of its leading path elements (`/user` routes `/user/1`, never `/users`).
fn routes(ingress: &Value, path: &str) -> bool {
    list(&ingress["spec"]["rules"])
        .iter()
        .flat_map(|rule| list(&rule["http"]["paths"]))
        .any(|route| {
            let routed = route["path"].as_str().unwrap();
            match route["pathType"].as_str().unwrap() {
                "Exact" => path == routed,
                "Prefix" => {
                    let prefix = routed.trim_end_matches('/');
                    prefix.is_empty() || path == prefix || path.starts_with(&format!("{prefix}/"))
                }
                other => panic!(
                    "{}: pathType {other} means what the controller says",
                    name(ingress)
                ),
            }
        })
}

#[test]
fn the_production_ingress_routes_the_api_the_page_and_the_feed_and_nothing_for_operators() {
    let objects = render("production");
    let ingresses: Vec<&Value> = of_kind(&objects, "Ingress").collect();
    assert!(!ingresses.is_empty());
    for ingress in ingresses {
        // Unmatched paths would go to it.
        assert!(
            ingress["spec"]["defaultBackend"].is_null(),
            "{}",
            name(ingress)
        );
        for path in [
            "/",
            "/assets/app.js",
            "/ui/config",
            "/user",
            "/user/1",
            "/users",
            "/users/availability",
            "/messages",
            "/ws/events",
            "/otlp/v1/traces",
            "/ping",
        ] {
            assert!(
                routes(ingress, path),
                "{} does not route {path}",
                name(ingress)
            );
        }
        // The operators' endpoints (metrics, every process's health, the API's documents) are
        // for the cluster, and development mode's and the faults' routes do not exist here.
        for path in [
            "/metrics",
            "/health",
            "/health/ready",
            "/docs",
            "/docs/index.html",
            "/openapi.json",
            "/dev/token",
            "/admin/faults",
        ] {
            assert!(!routes(ingress, path), "{} routes {path}", name(ingress));
        }
    }
}
