"""The deploy files are checked, not promised: every Kubernetes manifest validates against the Kubernetes
schemas (kubernetes-validate, strict: an unknown field fails), the compose file against the Compose
Specification's JSON schema, and each sets every variable production needs from secrets, never literally.

No container engine or cluster runs here: what is proven is the files' shape and content, not a rollout.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet

from backoffice.platform.settings import Settings

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30"
COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"

# What a production process needs (Settings refuses to start without the secrets; the rest decides where
# links point, which proxies are believed, and that demo tools are off).
SECRET_VARIABLES = {
    "BACKOFFICE_DATABASE_URL", "BACKOFFICE_SYSTEM_DATABASE_URL", "BACKOFFICE_MIGRATION_DATABASE_URL",
    "BACKOFFICE_BROKER_URL", "BACKOFFICE_REDIS_URL", "BACKOFFICE_SECRET_KEY", "BACKOFFICE_SECRETS_KEYS",
}
PLAIN_VARIABLES = {"BACKOFFICE_ENVIRONMENT", "BACKOFFICE_BASE_URL", "BACKOFFICE_TRUSTED_PROXIES"}
REQUIRED = SECRET_VARIABLES | PLAIN_VARIABLES
PROCESSES = {"migrate", "web", "worker", "scheduler"}


def _k8s_documents() -> list[dict]:
    return [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def _core(kind: str) -> list[dict]:
    return [doc for doc in _k8s_documents() if doc["kind"] == kind]


def _pod_templates() -> list[tuple[str, dict]]:
    return [(doc["metadata"]["name"], doc["spec"]["template"]) for doc in _k8s_documents()
            if doc["kind"] in ("Deployment", "Job")]


def test_the_required_variables_are_settings_the_platform_reads():
    fields = {f"BACKOFFICE_{name.upper()}" for name in Settings.model_fields}
    assert REQUIRED <= fields


@pytest.mark.parametrize("version", [K8S_VERSION, kubernetes_validate.latest_version()])
def test_every_kubernetes_manifest_validates_against_the_kubernetes_schemas(version):
    checked = []
    for doc in _k8s_documents():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: not in the Kubernetes schemas (see the ScaledObject test)
        kubernetes_validate.validate(doc, version, strict=True)
        checked.append(doc["kind"])
    assert {"Deployment", "Job", "Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy"} <= set(checked)


def test_the_validation_rejects_a_misspelt_or_mistyped_manifest():
    [web] = [doc for doc in _core("Deployment") if doc["metadata"]["name"] == "backoffice-web"]
    misspelt = json.loads(json.dumps(web))
    misspelt["spec"]["template"]["spec"]["containers"][0]["resource"] = {"limits": {"memory": "1Gi"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, K8S_VERSION, strict=True)
    mistyped = json.loads(json.dumps(web))
    mistyped["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(mistyped, K8S_VERSION, strict=True)


def test_every_container_has_requests_limits_and_every_production_variable_with_secrets_by_reference():
    [config] = _core("ConfigMap")
    plain = config["data"]
    assert plain["BACKOFFICE_ENVIRONMENT"] == "production"
    assert plain["BACKOFFICE_BASE_URL"].startswith("https://") and plain["BACKOFFICE_TRUSTED_PROXIES"]
    assert not SECRET_VARIABLES & set(plain), "a secret in the ConfigMap"
    commands = set()
    for name, template in _pod_templates():
        for container in template["spec"]["containers"]:
            commands.add(container["command"][1])
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"]), name
            assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}], name
            env = {item["name"]: item for item in container["env"]}
            assert set(env) | set(plain) >= REQUIRED, f"{name} misses {sorted(REQUIRED - set(env) - set(plain))}"
            for variable in SECRET_VARIABLES:
                assert "value" not in env[variable] and env[variable]["valueFrom"]["secretKeyRef"]["name"], variable
            assert not container["image"].endswith(":latest") and ":" in container["image"], name
    assert commands == PROCESSES


def test_each_deployment_has_a_disruption_budget_and_the_network_policy_covers_every_pod():
    deployments = {doc["metadata"]["name"]: doc for doc in _core("Deployment")}
    budgets = {doc["metadata"]["name"]: doc for doc in _core("PodDisruptionBudget")}
    assert set(budgets) == set(deployments)
    for name, budget in budgets.items():
        assert budget["spec"]["selector"]["matchLabels"] == deployments[name]["spec"]["selector"]["matchLabels"]
    assert budgets["backoffice-scheduler"]["spec"]["minAvailable"] == 1  # a drain never removes the last scheduler
    [policy] = _core("NetworkPolicy")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for name, template in _pod_templates():
        assert selector.items() <= template["metadata"]["labels"].items(), f"{name} is outside the NetworkPolicy"
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert {53, 5432, 6379, 443} <= egress_ports


def test_the_worker_autoscaler_names_the_worker_deployment_and_the_outbox_backlog_metric():
    """KEDA's CRD schema is not shipped by a package this project can install (the Python models need
    Python 3.14; the npm one is compiled code), so the fields the CRD requires are checked here by name."""
    [scaled] = [doc for doc in _k8s_documents() if doc["kind"] == "ScaledObject"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1" and scaled["metadata"]["name"]
    spec = scaled["spec"]
    assert set(spec) <= {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval",
                         "cooldownPeriod", "idleReplicaCount", "fallback", "advanced", "triggers", "initialCooldownPeriod"}
    deployments = {doc["metadata"]["name"] for doc in _core("Deployment")}
    assert spec["scaleTargetRef"]["name"] == "backoffice-worker" and "backoffice-worker" in deployments
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus"
    metadata = trigger["metadata"]
    assert all(isinstance(value, str) for value in metadata.values())  # KEDA's trigger metadata is map[string]string
    assert metadata["serverAddress"].startswith("http") and float(metadata["threshold"]) > 0
    metric = re.search(r"\b(backoffice_[a-z_]+)\b", metadata["query"]).group(1)
    assert metric == "backoffice_outbox_backlog"
    assert f'"{metric}"' in (ROOT / "platform" / "metrics.py").read_text(), "the metric is not exported"


# --- compose --------------------------------------------------------------------------------------

def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_the_compose_file_validates_against_the_compose_specification():
    errors = [f"{list(error.path)}: {error.message}" for error in _validator().iter_errors(_compose())]
    assert errors == []


def test_the_compose_validation_rejects_an_unknown_or_mistyped_key():
    bad = _compose()
    bad["services"]["web"]["restart_policy"] = "always"
    assert list(_validator().iter_errors(bad))
    bad = _compose()
    bad["services"]["web"]["ports"] = 8000
    assert list(_validator().iter_errors(bad))


INTERPOLATION = re.compile(r"\$\{([A-Z_]+):\?[^}]+\}")


def test_compose_sets_every_production_variable_from_the_env_file_and_no_secret_literally():
    services = _compose()["services"]
    platform = {name: service for name, service in services.items() if name in PROCESSES}
    assert {service["command"][1] for service in platform.values()} == PROCESSES
    example = {line.split("=", 1)[0] for line in (DEPLOY / "env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    for name, service in platform.items():
        env = service["environment"]
        assert REQUIRED <= set(env), f"{name} misses {sorted(REQUIRED - set(env))}"
        assert env["BACKOFFICE_ENVIRONMENT"] == "production"
        for variable in ("BACKOFFICE_SECRET_KEY", "BACKOFFICE_SECRETS_KEYS"):
            assert INTERPOLATION.fullmatch(env[variable]), f"{name}: {variable} is not from .env"
        for variable in ("BACKOFFICE_DATABASE_URL", "BACKOFFICE_SYSTEM_DATABASE_URL", "BACKOFFICE_MIGRATION_DATABASE_URL"):
            password = re.search(r"://[^:]+:([^@]+)@", env[variable]).group(1)
            assert INTERPOLATION.fullmatch(password), f"{name}: {variable} has a literal password"
        assert not service["image"].endswith(":latest")
        for value in env.values():
            assert set(INTERPOLATION.findall(str(value))) <= example, "a variable env.example does not list"
    for name in ("postgres", "redis"):
        assert re.fullmatch(r"[a-z]+:\d+\.\d+(\.\d+)?-[a-z]+", services[name]["image"]), "pin the image's release"
    assert services["scheduler"]["deploy"]["replicas"] == 2


def test_the_compose_environment_is_one_the_platform_starts_with(monkeypatch):
    """Fill .env's variables with sample values: Settings accepts what compose would pass, as production."""
    samples = {"APP_DB_PASSWORD": "a", "SYSTEM_DB_PASSWORD": "s", "POSTGRES_PASSWORD": "o",
               "BACKOFFICE_SECRET_KEY": "k" * 48, "BACKOFFICE_SECRETS_KEYS": Fernet.generate_key().decode(),
               "BACKOFFICE_BASE_URL": "https://backoffice.provider.example", "BACKOFFICE_TRUSTED_PROXIES": "172.16.0.0/12"}
    for key in list(__import__("os").environ):
        if key.startswith("BACKOFFICE_"):
            monkeypatch.delenv(key)
    for variable, value in _compose()["services"]["web"]["environment"].items():
        monkeypatch.setenv(variable, INTERPOLATION.sub(lambda match: samples[match.group(1)], str(value)))
    settings = Settings()
    assert settings.environment == "production" and not settings.embedded
    assert settings.base_url == "https://backoffice.provider.example"


# --- image ----------------------------------------------------------------------------------------

def test_the_image_builds_from_a_pinned_base_with_a_workdir_and_no_root():
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases and all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base) for base in bases)
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")):]
    assert any(line.startswith("WORKDIR /") for line in final)
    user = [line.split()[1] for line in final if line.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert final[-1].startswith("CMD [\"backoffice\"")
