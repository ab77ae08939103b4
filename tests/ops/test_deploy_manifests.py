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


@pytest.mark.parametrize("name", ["caseloop-web", "caseloop-sse"])
def test_it_restarts_servers_only_when_the_process_is_stuck(name):
    """Liveness touches no shared service (a database outage must not restart every pod);
    readiness takes a pod out of rotation while its database is unreachable or unmigrated."""
    server = by_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in server["ports"]}
    for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
        assert server[probe]["httpGet"]["path"] == path, (name, probe)
        assert server[probe]["httpGet"]["port"] in ports, (name, probe)
    assert server["readinessProbe"]["periodSeconds"] < server["livenessProbe"]["periodSeconds"]


def test_it_probes_only_paths_answered_before_host_validation():
    """Kubelet sends the pod IP as Host: only `config.probes` paths answer it (not a 400)."""
    from config.probes import PROBES

    probed = []
    for _, document in k8s_documents():
        spec = document.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                path = container.get(probe, {}).get("httpGet", {}).get("path")
                if path:
                    probed.append(path)
                    assert path in PROBES, path
    assert probed


def test_it_takes_config_from_secrets():
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


@pytest.mark.parametrize("name", ["caseloop-web", "caseloop-sse", "caseloop-qcluster"])
def test_it_scrapes_each_pod_from_one_metrics_directory(name):
    """Every process of a pod writes to one emptyDir; serve.sh empties it before starting them."""
    pod = by_kind("Deployment")[name]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    env = {variable["name"]: variable.get("value") for variable in container.get("env", [])}
    directory = env["PROMETHEUS_MULTIPROC_DIR"]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts[directory]]
    assert container["command"][0] == "scripts/serve.sh"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) in {port["containerPort"] for port in container["ports"]}


def test_qcluster_serves_its_metrics_and_survives_a_database_outage():
    qcluster = by_kind("Deployment")["caseloop-qcluster"]["spec"]["template"]["spec"]["containers"][0]
    assert qcluster["command"] == ["scripts/serve.sh", "qcluster"]
    ports = {port["name"]: port["containerPort"] for port in qcluster["ports"]}
    assert ports["metrics"] == 9100
    # Liveness must not depend on the database (`manage.py check --database` restarted every
    # worker during an outage): it asks the exporter that lives and dies with the cluster.
    assert "exec" not in qcluster["livenessProbe"]
    assert qcluster["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    serve = (ROOT / "scripts" / "serve.sh").read_text()
    assert re.search(r"^  qcluster\) metrics_dir qcluster; prepare_embeddings; qcluster ;;$", serve, re.MULTILINE)


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


def test_it_checks_each_compose_service_on_the_port_it_serves():
    """The image's HEALTHCHECK probes the web port; the other roles must not inherit it."""
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    checks = {name: " ".join(services[name]["healthcheck"].get("test", [])) for name in ("web", "sse", "qcluster")}
    assert "127.0.0.1:8000/health" in checks["web"]
    assert "127.0.0.1:8001/health/live" in checks["sse"]
    assert "127.0.0.1:9100/metrics" in checks["qcluster"]
    assert services["qcluster"]["command"] == ["scripts/serve.sh", "qcluster"]
    assert services["migrate"]["healthcheck"] == {"disable": True}


def test_compose_migrates_like_the_kubernetes_job():
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    job = by_kind("Job")["caseloop-migrate"]["spec"]["template"]["spec"]["containers"][0]
    assert " ".join(services["migrate"]["command"]) == " ".join(job["command"])
    steps = job["command"][-1].split(" && ")
    assert steps == ["python manage.py check --deploy --fail-level ERROR", "python manage.py migrate --noinput",
                     "python manage.py setup_roles", "python manage.py setup_schedules"]


def _ignored(patterns: list[str], path: str) -> bool:
    """Docker's .dockerignore matching, enough for these patterns: `**/` is any directory
    depth, a pattern naming a directory ignores everything below it, `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = re.escape(pattern.lstrip("!")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
        if re.fullmatch(f"{regex}(?:/.*)?", path):
            ignored = not negate
    return ignored


def test_it_keeps_local_and_secret_files_out_of_the_build_context():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".venv/bin/python", ".git/HEAD", "var/caseloop.sqlite3", "var/q_stats/x", "deploy/.env",
                 "db.sqlite3", "tests/data/x.sqlite3", "casebank/__pycache__/models.cpython-311.pyc",
                 "staticfiles/admin/x.css"):
        assert _ignored(patterns, path), path
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    # What the image needs is still sent: the COPY sources and everything serve.sh runs.
    needed = re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+) ", dockerfile, re.MULTILINE)
    for path in [*needed, "manage.py", "scripts/serve.sh", "config/settings.py", "config/gunicorn.py",
                 "templates/admin/reflection/suggestion_decision.html", "deploy/env.example",
                 "agents/demo/docs/refund-policy.md"]:
        assert not _ignored(patterns, path), path


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
    healthcheck = re.search(r"^HEALTHCHECK .*?CMD (.+?)$", dockerfile, re.MULTILINE | re.DOTALL).group(1)
    assert "http://127.0.0.1:8000/health/live" in healthcheck
    cmd = json.loads(re.search(r"^CMD (.+)$", dockerfile, re.MULTILINE).group(1))
    assert cmd == ["scripts/serve.sh", "web"]
    assert (ROOT / "scripts" / "serve.sh").stat().st_mode & 0o111
    # Every file the image copies in must exist in the build context.
    for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+) ", dockerfile, re.MULTILINE):
        assert (ROOT / source).exists(), source
    assert not re.search(r"(SECRET_KEY|PASSWORD|API_KEY)=(?!collectstatic-only)", dockerfile)
    # The embedding model's ONNX graph is exported into the image: no container exports it at start.
    assert re.search(r"&& python manage.py prepare_embeddings \\$", dockerfile, re.MULTILINE)


def test_it_runs_sessions_in_their_own_autoscaled_process_type():
    runner = by_kind("Deployment")["caseloop-runner"]["spec"]["template"]["spec"]
    container = runner["containers"][0]
    assert container["command"] == ["scripts/serve.sh", "runner"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    hpa = by_kind("HorizontalPodAutoscaler")["caseloop-runner"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "caseloop-runner" and hpa["minReplicas"] >= 2
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert compose["runner"]["command"] == ["scripts/serve.sh", "runner"]
    serve = (ROOT / "scripts" / "serve.sh").read_text()
    assert re.search(r"^  runner\) metrics_dir runner; prepare_embeddings; runner ;;$", serve, re.MULTILINE)
    assert "run_sessions" in (ROOT / "scripts" / "serve_dev.sh").read_text()


def test_every_deployment_sends_streams_to_the_asgi_server_only():
    """The API (WSGI) refuses streams and names SSE_PUBLIC_URL; every deployment sets it and
    sends sessions to runners."""
    config = by_kind("ConfigMap")["caseloop-config"]["data"]
    assert config["AGENTS_RUNNER"] == "1" and config["SSE_PUBLIC_URL"].startswith("https://")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert "SSE_PUBLIC_URL" in compose["x-app"]["environment"]
    assert compose["x-app"]["environment"]["AGENTS_RUNNER"] == "1"
    dev = (ROOT / "scripts" / "serve_dev.sh").read_text()
    assert "uvicorn config.asgi:application" in dev and "SSE_PUBLIC_URL" in dev
    ingress = by_kind("Ingress")["caseloop"]["spec"]["rules"][0]["http"]["paths"]
    assert ingress[0]["path"] == "/api/sessions/" and ingress[0]["backend"]["service"]["name"] == "caseloop-sse"


def test_the_ingress_sends_the_stream_and_mcp_to_the_asgi_service():
    """Both live only in the ASGI app (`config.asgi`); the web service answers them with a 421."""
    paths = {
        path["path"]: path["backend"]["service"]["name"]
        for rule in by_kind("Ingress")["caseloop"]["spec"]["rules"] for path in rule["http"]["paths"]
    }
    assert paths["/api/sessions/"] == "caseloop-sse" and paths["/mcp"] == "caseloop-sse"
    assert paths["/"] == "caseloop-web"
