"""No container engine runs here, so the deployment files are checked by schema instead:
Kubernetes manifests against the Kubernetes OpenAPI schemas shipped by `kubernetes-validate`,
the compose file against the Compose specification shipped by `check-jsonschema`, and the
Dockerfile and wiring by focused structural checks.
"""
from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.33"


def k8s_documents() -> list[tuple[str, dict]]:
    documents = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((f"{path.name}:{document['kind']}/{document['metadata']['name']}", document))
    return documents


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == kind}


@pytest.mark.parametrize("name,document", k8s_documents(), ids=[name for name, _ in k8s_documents()])
def test_it_validates_each_kubernetes_manifest_against_the_schema(name, document):
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_it_rejects_an_invalid_manifest_so_the_check_means_something():
    deployment = dict(by_kind("Deployment")["caseloop-web"])
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_it_probes_web_on_health_and_takes_config_from_secrets():
    web = by_kind("Deployment")["caseloop-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/health"
    assert web["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    for name, document in k8s_documents():
        spec = document.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            sources = {next(iter(source)): next(iter(source.values()))["name"] for source in container["envFrom"]}
            assert sources.get("secretRef") == "caseloop-secrets", name
            # Secrets never sit in a manifest: no literal env values named like one.
            for variable in container.get("env", []):
                assert not re.search("SECRET|PASSWORD|KEY|DATABASE_URL", variable["name"]), name
    config = by_kind("ConfigMap")["caseloop-config"]["data"]
    assert not any(re.search("SECRET_KEY|PASSWORD|DATABASE_URL|API_KEY", key) for key in config)


def test_it_has_workers_and_a_migration_job():
    deployments = by_kind("Deployment")
    assert {"caseloop-web", "caseloop-sse", "caseloop-qcluster"} <= set(deployments)
    qcluster = deployments["caseloop-qcluster"]["spec"]["template"]["spec"]["containers"][0]
    assert qcluster["command"][-1] == "qcluster"
    job = by_kind("Job")["caseloop-migrate"]["spec"]["template"]["spec"]
    assert "migrate --noinput" in " ".join(job["containers"][0]["command"])
    # Without the schedules no sweeper hands out the work of tasks the Redis broker lost.
    assert "setup_schedules" in " ".join(job["containers"][0]["command"])
    assert job["restartPolicy"] == "Never"


def _compose_schema() -> dict:
    path = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(path.read_text())


def test_it_validates_the_compose_file_against_the_compose_specification():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    jsonschema.validate(compose, _compose_schema())
    assert {"db", "redis", "migrate", "web", "sse", "qcluster"} <= set(compose["services"])
    assert "pgvector" in compose["services"]["db"]["image"]
    web = compose["services"]["web"]
    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "setup_schedules" in " ".join(compose["services"]["migrate"]["command"])
    assert "/health" in " ".join(web["healthcheck"]["test"])


def test_it_rejects_an_invalid_compose_file_so_the_check_means_something():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    compose["services"]["web"]["ports"] = {"not": "a list"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(compose, _compose_schema())


def test_it_builds_a_non_root_image_that_serves_through_serve_sh():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    instructions = [line.split()[0] for line in dockerfile.splitlines() if line and not line.startswith(("#", " "))]
    assert instructions[0] == "FROM"
    assert set(instructions) <= {"FROM", "ENV", "WORKDIR", "COPY", "RUN", "USER", "EXPOSE", "HEALTHCHECK", "CMD", "ARG"}
    assert re.search(r"^USER caseloop$", dockerfile, re.MULTILINE)
    assert "/health" in dockerfile
    cmd = json.loads(re.search(r"^CMD (.+)$", dockerfile, re.MULTILINE).group(1))
    assert cmd == ["scripts/serve.sh", "web"]
    assert (ROOT / "scripts" / "serve.sh").stat().st_mode & 0o111
    # Every file the image copies in must exist in the build context.
    for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+) ", dockerfile, re.MULTILINE):
        assert (ROOT / source).exists(), source
    assert not re.search(r"(SECRET_KEY|PASSWORD|API_KEY)=(?!collectstatic-only)", dockerfile)
