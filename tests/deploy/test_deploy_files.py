"""The deployment files (Dockerfile, docker-compose, Helm chart) can't run here; these checks keep
them linted and in step with the code: every setting they name exists, every value a template reads
is defined, every replica sits behind the proxy, and the probes they call answer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from bastion.config import Settings
from tests.harness import Running

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent
CHART = DEPLOY / "helm" / "bastion"
LINT = YamlLintConfig("extends: default\nrules: {line-length: {max: 130}, document-start: disable, truthy: disable}")
SETTING = re.compile(r"\bBASTION_[A-Z_]+\b")
KNOWN = {f"BASTION_{name.upper()}" for name in Settings.model_fields}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def _bastion_services() -> dict[str, Any]:
    return {name: svc for name, svc in _compose()["services"].items() if name.startswith("bastion")}


@pytest.mark.parametrize("path", [DEPLOY / "docker-compose.yml", CHART / "Chart.yaml", CHART / "values.yaml"])
def test_yaml_files_pass_yamllint(path: Path) -> None:
    problems = [f"{p.line}:{p.column} {p.desc}" for p in linter.run(path.read_text(), LINT)]
    assert problems == []


@pytest.mark.parametrize(
    "path",
    [
        ROOT / "Dockerfile",
        DEPLOY / "docker-compose.yml",
        DEPLOY / "example.env",
        CHART / "values.yaml",
        CHART / "templates" / "configmap.yaml",
    ],
)
def test_every_setting_a_deployment_file_names_exists(path: Path) -> None:
    named = set(SETTING.findall(path.read_text()))
    assert named, f"{path.name} names no setting"
    assert named - KNOWN == set()


def test_compose_runs_identical_replicas_behind_a_round_robin_proxy() -> None:
    replicas = _bastion_services()
    assert len(replicas) >= 2
    environments = [svc["environment"] for svc in replicas.values()]
    assert all(env == environments[0] for env in environments)
    assert environments[0]["BASTION_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert environments[0]["BASTION_REDIS_URL"].startswith("redis://")
    nginx = re.sub(r"#.*", "", (DEPLOY / "nginx.conf").read_text())
    assert {f"{name}:4444" for name in replicas} <= set(re.findall(r"server\s+(\S+)", nginx))
    assert not re.search(r"\b(ip_hash|sticky|hash)\b", nginx), "no session affinity: any replica serves any client"


def _value_paths(values: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        paths.add(path)
        if isinstance(value, dict):
            paths |= _value_paths(value, path)
    return paths


def test_helm_templates_read_only_defined_values() -> None:
    defined = _value_paths(yaml.safe_load((CHART / "values.yaml").read_text()))
    read = set()
    for template in (CHART / "templates").iterdir():
        read |= set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", template.read_text()))
    assert read, "templates read no values"
    assert read - defined == set()


def test_helm_chart_keeps_a_pod_long_enough_to_finish_its_calls() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert "add .Values.shutdownGraceSeconds" in deployment  # terminationGracePeriodSeconds > the grace
    assert values["autoscaling"]["minReplicas"] >= values["podDisruptionBudget"]["minAvailable"]


def _probe_paths() -> set[str]:
    paths = set(re.findall(r"path: (/\S+)", (CHART / "templates" / "deployment.yaml").read_text()))
    compose_checks = " ".join(str(svc["healthcheck"]["test"]) for svc in _bastion_services().values())
    paths |= set(re.findall(r"4444(/[a-z]+)", compose_checks + (ROOT / "Dockerfile").read_text()))
    return paths


@pytest.mark.anyio
async def test_the_probes_deployment_files_call_answer_without_a_token(gateway: Running) -> None:
    paths = _probe_paths()
    assert paths == {"/healthz", "/readyz"}
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        for path in sorted(paths):
            response = await http.get(path)
            assert response.status_code == 200, (path, response.text)
