"""docker/: the compose files as Compose itself resolves them (`config`, which needs no Docker
engine: none runs on these machines, so nothing is built or started), and the Dockerfile's
install steps against the Makefile's.

Compose is `docker compose` (v2 plugin) when present, else Debian's `docker-compose` (v1.29),
which .ci/run installs; both resolve the same files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.planner import plan
from engine.vllm_flags import launch_for_plan

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
WEIGHTS = "/srv/models/scout"
SERVED = "llama-4-scout"
# each vLLM variant and the `scoutlens plan` it must equal (weights mounted at /models/scout)
VARIANTS = {
    "compose.vllm-8xh100.yaml": dict(gpus="8xH100", weights="bf16", kv_dtype="bf16",
                                     context=1 << 20),
    "compose.vllm-1xh100-int4.yaml": dict(gpus="1xH100", weights="int4", kv_dtype="fp8",
                                          context=256 << 10, gpu_memory_utilization=0.95,
                                          overhead_gib_per_gpu=6),
}


def _compose() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=60).returncode == 0:
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no Compose to validate docker/ with: install Debian's docker-compose "
                "(apt-get install docker-compose; .ci/run does) or the compose plugin",
                pytrace=False)


def config(*files: str, **env: str) -> subprocess.CompletedProcess:
    """`compose -f ... config` with only the given variables (none from this shell)."""
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    args = [a for f in files for a in ("-f", str(DOCKER / f))]
    return subprocess.run([*_compose(), "-p", "scoutlens", *args, "config"], capture_output=True,
                          text=True, env=clean, timeout=120, cwd=ROOT)


def resolved(*files: str, **env: str) -> dict:
    proc = config(*files, **env)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _depends(service: dict) -> dict[str, str]:
    dep = service.get("depends_on") or {}
    return {k: (v or {}).get("condition", "") for k, v in dep.items()}


def _mounts(service: dict) -> list[tuple[str, str, bool]]:
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
        else:
            out.append((v["source"], v["target"], bool(v.get("read_only"))))
    return out


def _app_checks(cfg: dict) -> dict[str, str]:
    app, pg = cfg["services"]["app"], cfg["services"]["postgres"]
    env = _env(app)
    assert env["SCOUTLENS_DATABASE_URL"] == "postgresql://scoutlens:s3cret@postgres:5432/scoutlens"
    assert _env(pg)["POSTGRES_PASSWORD"] == "s3cret"
    assert env["SCOUTLENS_BACKEND"] == "openai" and env["SCOUTLENS_HOME"] == "/data"
    assert _depends(app)["postgres"] == "service_healthy"
    assert ("scoutlens-data", "/data", False) in _mounts(app)
    assert ("pgdata", "/var/lib/postgresql/data", False) in _mounts(pg)
    assert {"pgdata", "scoutlens-data"} <= set(cfg["volumes"])
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert "/_stcore/health" in " ".join(app["healthcheck"]["test"])
    assert app["build"]["dockerfile"] == "docker/Dockerfile"
    return env


def test_base_is_app_and_postgres():
    cfg = resolved("compose.yaml", POSTGRES_PASSWORD="s3cret")
    assert set(cfg["services"]) == {"app", "postgres"}
    env = _app_checks(cfg)
    assert env["SCOUTLENS_ENDPOINT"] == "http://vllm:8000/v1"  # the vLLM service's name
    # a team's UI signs people in: OIDC unless told otherwise, its settings passed through
    assert env["SCOUTLENS_AUTH"] == "oidc"
    assert {"SCOUTLENS_OIDC_ISSUER", "SCOUTLENS_OIDC_CLIENT_ID", "SCOUTLENS_OIDC_CLIENT_SECRET",
            "SCOUTLENS_OIDC_COOKIE_SECRET", "SCOUTLENS_OIDC_REDIRECT_URI"} <= set(env)
    signed = _app_checks(resolved("compose.yaml", POSTGRES_PASSWORD="s3cret",
                                  SCOUTLENS_OIDC_ISSUER="https://id.example.org/realms/t"))
    assert signed["SCOUTLENS_OIDC_ISSUER"] == "https://id.example.org/realms/t"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_vllm_variant_serves_the_plan(variant):
    cfg = resolved("compose.yaml", variant, POSTGRES_PASSWORD="s3cret",
                   SCOUTLENS_WEIGHTS=WEIGHTS)
    p = plan("scout", model="/models/scout", **VARIANTS[variant])
    launch = launch_for_plan(p, port=8000, host="0.0.0.0", served_name=SERVED)
    assert p.fits
    vllm = cfg["services"]["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    assert vllm["entrypoint"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    assert [str(a) for a in vllm["command"]] == launch.argv
    assert _env(vllm) == {**launch.env, "HF_HUB_OFFLINE": "1"}
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": p.gpus.count, "capabilities": ["gpu"]}]
    assert (WEIGHTS, "/models/scout", True) in _mounts(vllm)  # read-only
    assert "/health" in " ".join(vllm["healthcheck"]["test"])
    assert vllm["ipc"] == "host"
    env = _app_checks(cfg)
    assert _depends(cfg["services"]["app"])["vllm"] == "service_healthy"
    assert env["SCOUTLENS_ENDPOINT"] == "http://vllm:8000/v1"
    assert env["SCOUTLENS_MODEL"] == SERVED


def test_existing_endpoint_variant_starts_no_vllm():
    cfg = resolved("compose.yaml", "compose.endpoint.yaml", POSTGRES_PASSWORD="s3cret",
                   SCOUTLENS_ENDPOINT="http://gpu-box:8000/v1")
    assert set(cfg["services"]) == {"app", "postgres"}
    env = _app_checks(cfg)
    assert env["SCOUTLENS_ENDPOINT"] == "http://gpu-box:8000/v1"
    assert env["SCOUTLENS_MODEL"] == ""  # the server's first model


@pytest.mark.parametrize(("files", "env", "missing"), [
    (("compose.yaml",), {}, "POSTGRES_PASSWORD"),
    (("compose.yaml", "compose.vllm-8xh100.yaml"), {"POSTGRES_PASSWORD": "x"},
     "SCOUTLENS_WEIGHTS"),
    (("compose.yaml", "compose.endpoint.yaml"), {"POSTGRES_PASSWORD": "x"},
     "SCOUTLENS_ENDPOINT"),
])
def test_missing_settings_are_named(files, env, missing):
    proc = config(*files, **env)
    assert proc.returncode != 0 and f"set {missing}" in proc.stderr


def _makefile_recipe() -> list[str]:
    text = (ROOT / "Makefile").read_text()
    body = text.split("$(STAMP): pyproject.toml $(LOCK) $(MODEL_LOCK)\n", 1)[1]
    lines = []
    for line in body.splitlines():
        if not line.startswith("\t"):
            break
        cmd = line.strip()
        if cmd and not cmd.startswith("#"):
            lines.append(cmd)
    pip_version = re.search(r"^PIP_VERSION := (\S+)$", text, re.M).group(1)
    subs = {"$(BIN)": ".venv/bin", "$(VENV)": ".venv", "$(PYTHON)": "python3",
            "$(STAMP)": ".venv/.installed", "$(LOCK)": "requirements.lock",
            "$(MODEL_LOCK)": "requirements-model.lock", "$(PIP_VERSION)": pip_version}
    return [re.sub(r"\$\(\w+\)", lambda m: subs[m.group(0)], cmd) for cmd in lines]


def _dockerfile_recipe() -> list[str]:
    text = (DOCKER / "Dockerfile").read_text()
    body = text.split("# --- the Makefile's $(STAMP) recipe ---\n", 1)[1]
    body = body.split("# --- end of the recipe ---", 1)[0]
    return [line.removeprefix("RUN ").strip() for line in body.splitlines() if line.strip()]


def test_dockerfile_installs_exactly_what_the_makefile_does():
    make, docker = _makefile_recipe(), _dockerfile_recipe()
    pip = [c for c in make if " -m pip install " in c]
    assert len(pip) == 4 and pip == [c for c in docker if " -m pip install " in c]
    assert docker == make
    # every install is from a lock with hashes, or the project itself without dependencies
    assert all("--require-hashes" in c or c.endswith("--no-deps --no-build-isolation -e .")
               or re.search(r'"pip==[\d.]+"$', c) for c in pip), pip
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert '"ui", "--host", "0.0.0.0"' in text  # serve the UI beyond the container
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored  # the image makes its own venv


def test_the_image_command_exists():
    proc = subprocess.run([sys.executable, "-m", "app.cli", "ui", "--help"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0 and "--host" in proc.stdout and "--port" in proc.stdout


OIDC_ENV = dict(POSTGRES_PASSWORD="s3cret", OIDC_ISSUER_URL="https://id.example.org/realms/t",
                OIDC_CLIENT_ID="scoutlens", OIDC_CLIENT_SECRET="client-s",
                SCOUTLENS_AUTH_PROXY_SECRET="proxy-s",
                OAUTH2_PROXY_COOKIE_SECRET="0123456789abcdef0123456789abcdef",
                SCOUTLENS_PUBLIC_URL="https://scout.example.org")


def test_oidc_variant_puts_oauth2_proxy_in_front(tmp_path):
    """oauth2-proxy (pinned) signs people in and passes user, groups and the shared secret; the
    app serves a shared UI trusting only that secret. The proxy's config, written by the one-shot
    container's script, is run here as it would run there."""
    cfg = resolved("compose.yaml", "compose.oidc.yaml", **OIDC_ENV)
    assert set(cfg["services"]) == {"app", "postgres", "oauth2-proxy", "oauth2-proxy-config"}
    env = _app_checks(cfg)
    app = cfg["services"]["app"]
    assert app["command"][:3] == ["scoutlens", "ui", "--host"] and "--shared" in app["command"]
    assert env["SCOUTLENS_AUTH"] == "header" and env["SCOUTLENS_AUTH_PROXY_SECRET"] == "proxy-s"
    proxy, init = cfg["services"]["oauth2-proxy"], cfg["services"]["oauth2-proxy-config"]
    assert re.fullmatch(r"quay\.io/oauth2-proxy/oauth2-proxy:v\d+\.\d+\.\d+", proxy["image"])
    penv = _env(proxy)
    assert penv["SCOUTLENS_AUTH_PROXY_SECRET"] == "proxy-s"  # the same secret both sides
    assert penv["OAUTH2_PROXY_REDIRECT_URL"] == "https://scout.example.org/oauth2/callback"
    assert penv["OAUTH2_PROXY_COOKIE_SECURE"] == "true"
    assert _depends(proxy)["oauth2-proxy-config"] == "service_completed_successfully"
    assert ("oauth2-proxy-config", "/etc/oauth2-proxy", True) in _mounts(proxy)
    assert proxy["command"] == ["--alpha-config=/etc/oauth2-proxy/alpha.yaml"]
    assert init["image"] == app["image"] and init["entrypoint"] == ["python", "-c"]

    out = tmp_path / "alpha.yaml"
    ienv = {**_env(init), "ALPHA_CONFIG": str(out), "PATH": os.environ["PATH"]}
    subprocess.run([sys.executable, "-c", init["command"][0]], env=ienv, check=True,
                   capture_output=True, timeout=60)
    assert oct(out.stat().st_mode & 0o777) == "0o400"
    alpha = yaml.safe_load(out.read_text())
    assert alpha["upstreamConfig"]["upstreams"] == [
        {"id": "scoutlens", "path": "/", "uri": "http://app:8501"}]
    (provider,) = alpha["providers"]
    assert provider["clientID"] == "scoutlens" and provider["clientSecret"] == "client-s"
    assert provider["oidcConfig"]["issuerURL"] == "https://id.example.org/realms/t"
    assert provider["oidcConfig"]["groupsClaim"] == "groups"
    headers = {h["name"]: h["values"] for h in alpha["injectRequestHeaders"]}
    assert headers[env["SCOUTLENS_AUTH_USER_HEADER"]] == [{"claim": "email"}]
    assert headers[env["SCOUTLENS_AUTH_GROUPS_HEADER"]] == [{"claim": "groups"}]
    assert headers[env["SCOUTLENS_AUTH_SECRET_HEADER"]] == [
        {"fromEnv": "SCOUTLENS_AUTH_PROXY_SECRET"}]
    assert not any(h.get("preserveRequestValue") for h in alpha["injectRequestHeaders"])


@pytest.mark.parametrize("missing", ["OIDC_ISSUER_URL", "OIDC_CLIENT_SECRET",
                                     "SCOUTLENS_AUTH_PROXY_SECRET", "SCOUTLENS_PUBLIC_URL",
                                     "OAUTH2_PROXY_COOKIE_SECRET"])
def test_oidc_variant_names_missing_settings(missing):
    env = {k: v for k, v in OIDC_ENV.items() if k != missing}
    proc = config("compose.yaml", "compose.oidc.yaml", **env)
    assert proc.returncode != 0 and f"set {missing}" in proc.stderr
