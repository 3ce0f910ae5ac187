"""deploy/ without a container engine: the files parse, name only settings the code reads,
run the commands the README documents, and point KEDA at the list Redis really holds.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import yaml

from tests.conftest import delete_prefix
from worker.celery import create_app, queue_names
from worker.jobs.model import Job, JobRequest, estimate_billing, new_job_id
from worker.jobs.tasks import enqueue
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SHOAL_NAME = re.compile(r"\bSHOAL_[A-Z0-9_]+")
#: Names outside SHOAL_* the code reads (pydantic alias of fish_api_key).
OTHER_SETTINGS = {"FISH_API_KEY"}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def k8s_docs() -> dict[str, list[dict[str, Any]]]:
    """Every manifest in deploy/k8s, by file name."""
    return {
        path.name: [d for d in yaml.safe_load_all(path.read_text()) if d]
        for path in sorted(K8S.glob("*.yaml"))
    }


def k8s_kind(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for docs in k8s_docs().values()
        for doc in docs
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def deploy_texts() -> dict[str, str]:
    paths = [*DEPLOY.glob("*"), *K8S.glob("*")]
    return {str(p.relative_to(ROOT)): p.read_text() for p in paths if p.is_file()}


def env_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


# -- they parse and hold what they should ------------------------------------------------


def test_compose_has_every_service_with_health_checks() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "minio", "minio-init", "api", "worker", "flower", "local-tts"}
    for name, service in services.items():
        if name != "minio-init":  # a one-shot job
            assert "healthcheck" in service, name
    assert services["local-tts"]["profiles"] == ["local-tts"]
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert "mc mb --ignore-existing" in " ".join(services["minio-init"]["command"])
    for name in ("api", "worker", "flower"):
        needs = services[name]["depends_on"]
        assert needs["minio-init"]["condition"] == "service_completed_successfully"
        assert needs["redis"]["condition"] == "service_healthy"
    assert set(compose()["volumes"]) == {"redis-data", "minio-data"}


def test_compose_presigns_for_the_address_minio_is_published_on() -> None:
    """Download links name MinIO as this machine reaches it, not ``minio``, which only
    containers resolve (deploy/README.md)."""
    services = compose()["services"]
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert urlsplit(env["SHOAL_S3_ENDPOINT_URL"]).hostname == "minio"
        public = env["SHOAL_S3_PUBLIC_ENDPOINT_URL"]
        # "${SHOAL_S3_PUBLIC_ENDPOINT_URL:-default}": deploy/.env may name another address.
        found = re.fullmatch(r"\$\{SHOAL_S3_PUBLIC_ENDPOINT_URL:-(.+)\}", public)
        assert found, public
        url = urlsplit(found.group(1))
        published = {port.split(":")[-2] for port in services["minio"]["ports"]}
        assert url.hostname == "localhost" and str(url.port) in published
    readme = (DEPLOY / "README.md").read_text()
    assert "SHOAL_S3_PUBLIC_ENDPOINT_URL" in readme and "/etc/hosts" not in readme


def test_kubernetes_manifests() -> None:
    docs = k8s_docs()
    kinds = sorted(d["kind"] for file in docs.values() for d in file)
    expected = ["ConfigMap", "Secret", "Deployment", "Service", "Deployment", "ScaledObject"]
    assert kinds == sorted([*expected, "Kustomization"])
    kustomized = set(docs["kustomization.yaml"][0]["resources"])
    assert kustomized == {"configmap.yaml", "api.yaml", "worker.yaml", "keda.yaml"}

    api = k8s_kind("Deployment", "shoal-api")["spec"]["template"]["spec"]
    (container,) = api["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = k8s_kind("Service", "shoal-api")
    assert (
        service["spec"]["selector"]
        == k8s_kind("Deployment", "shoal-api")["spec"]["selector"]["matchLabels"]
    )

    for name in ("shoal-api", "shoal-worker"):
        pod = k8s_kind("Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        refs = pod["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": "shoal-config"}} in refs
        assert {"secretRef": {"name": "shoal-secrets"}} in refs

    worker = k8s_kind("Deployment", "shoal-worker")["spec"]["template"]["spec"]
    defaults = Settings()
    # Long enough for a segment to finish: connect, first audio, a silence, and the upload.
    segment_bound = defaults.connect_timeout + defaults.first_audio_timeout
    segment_bound += defaults.silence_timeout
    assert worker["terminationGracePeriodSeconds"] >= 2 * segment_bound

    scaled = k8s_kind("ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "shoal-worker"
    assert scaled["spec"]["minReplicaCount"] >= 1


def test_dockerfile_is_slim_and_runs_as_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    froms = re.findall(r"(?m)^FROM (\S+)", text)
    assert froms and all(image.endswith("-slim") or image == "build" for image in froms)
    users = re.findall(r"(?m)^USER (\S+)", text)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    for package in ("api", "worker", "local_tts", "shoal_run"):
        assert f"COPY {package} ./{package}" in text


# -- only settings the code reads ----------------------------------------------------------


def test_every_setting_named_in_deploy_is_read_by_the_code() -> None:
    fields = {f"SHOAL_{name.upper()}" for name in Settings.model_fields}
    unknown = {
        f"{where}: {name}"
        for where, text in deploy_texts().items()
        for name in SHOAL_NAME.findall(text)
        if name not in fields
    }
    assert not unknown, f"not fields of worker.settings.Settings: {sorted(unknown)}"


def test_app_containers_get_only_settings() -> None:
    """Every variable compose, the ConfigMap and the Secret give shoal is a setting."""
    fields = {f"SHOAL_{name.upper()}" for name in Settings.model_fields} | OTHER_SETTINGS
    services = compose()["services"]
    for name in ("api", "worker", "flower", "local-tts"):
        assert set(services[name]["environment"]) <= fields, name
    assert set(k8s_kind("ConfigMap")["data"]) <= fields
    assert set(k8s_kind("Secret")["stringData"]) <= fields
    settings_in_env = {k for k in env_example() if k.startswith("SHOAL_")}
    assert settings_in_env <= fields


def test_example_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap with the Secret, and .env.example, give Settings it accepts."""
    for name in list(os.environ):
        if name.startswith("SHOAL_") or name in OTHER_SETTINGS:
            monkeypatch.delenv(name)
    values = {**k8s_kind("ConfigMap")["data"], **k8s_kind("Secret")["stringData"]}
    with monkeypatch.context() as env:
        for name, value in values.items():
            env.setenv(name, str(value))
        s = Settings()
        assert s.fish_api_key is not None and s.tenants and s.provider_slots == 15
    with monkeypatch.context() as env:
        for name, value in env_example().items():
            env.setenv(name, value)
        s = Settings()
        assert s.tenants[0].id == "acme"


# -- commands are the README's -----------------------------------------------------------


def readme_commands() -> set[str]:
    """Shell commands in the README's code blocks, without the .venv/bin/ prefix."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    commands = set()
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                commands.add(_normal(line.removeprefix(".venv/bin/")))
    return commands


def _normal(command: str) -> str:
    return " ".join(shlex.split(command))


def image_commands() -> dict[str, str]:
    """What the image runs: its CMD, compose's commands, the Deployments' commands."""
    cmd = re.search(r"(?m)^CMD (\[.*\])$", (DEPLOY / "Dockerfile").read_text())
    assert cmd, "Dockerfile has no exec-form CMD"
    found = {"Dockerfile CMD": " ".join(json.loads(cmd.group(1)))}
    for name, service in compose()["services"].items():
        if name in ("api", "worker", "flower", "local-tts"):
            found[f"compose {name}"] = " ".join(service["command"])
    for name in ("shoal-api", "shoal-worker"):
        (container,) = k8s_kind("Deployment", name)["spec"]["template"]["spec"]["containers"]
        found[f"k8s {name}"] = " ".join(container["command"] + container.get("args", []))
    return found


def test_the_image_runs_the_commands_the_readme_documents() -> None:
    documented = readme_commands()
    for where, command in image_commands().items():
        assert command in documented, f"{where}: {command!r} is not in the README"
    # ... and they are the local ones, but for the address they listen on.
    local = {c.replace("--host 127.0.0.1", "--host 0.0.0.0") for c in documented}
    assert "uvicorn --factory api.app:create_app --host 0.0.0.0 --port 8000" in local
    assert "celery -A worker worker --loglevel INFO" in documented


def test_the_documented_worker_command_consumes_every_queue() -> None:
    """``celery -A worker worker`` with no -Q: narration, bulk and callbacks queues."""
    settings = Settings(key_prefix="acme")
    app = create_app(settings)
    try:
        assert set(app.amqp.queues) == set(queue_names(settings).values())
    finally:
        app.close()


# -- KEDA watches the list Redis really holds ----------------------------------------------


def test_keda_watches_the_redis_lists_celery_fills(redis_url: str) -> None:
    """Enqueue a job and a batch job under a fresh prefix; the lists are where KEDA looks."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    settings = Settings(redis_url=redis_url, key_prefix=prefix)
    app = create_app(settings)
    client = redis.Redis.from_url(redis_url)
    try:
        for batch in (None, "batch_1"):
            text = "Hello."
            job = Job(
                id=new_job_id(),
                tenant="t",
                request=JobRequest(text=text),
                billing=estimate_billing(text, settings.price_per_million_bytes_usd),
                batch_id=batch,
            )
            enqueue(job, settings, app)
        lists = {k.decode() for k in client.scan_iter(f"{prefix}:*") if client.type(k) == b"list"}
        assert lists == {f"{prefix}:celery:{prefix}.jobs", f"{prefix}:celery:{prefix}.bulk"}
    finally:
        delete_prefix(client, prefix)
        client.close()
        app.close()

    # The manifests' names follow the same rule for the ConfigMap's prefix.
    deployed = k8s_kind("ConfigMap")["data"]["SHOAL_KEY_PREFIX"]
    queues = queue_names(Settings(key_prefix=deployed))
    watched = {t["metadata"]["listName"] for t in k8s_kind("ScaledObject")["spec"]["triggers"]}
    assert watched == {
        f"{deployed}:celery:{queues['jobs']}",
        f"{deployed}:celery:{queues['bulk']}",
    }
