"""The Dockerfile, .dockerignore, Kubernetes and KServe manifests, checked offline.

Kubernetes objects are validated against the API's own schemas (kubernetes-validate ships them);
kustomizations are rendered here (resources plus strategic-merge patches), so no kubectl is
needed. KServe's custom resources have no bundled schema: their required fields are checked by
hand, and their containers against the core Container schema.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
KUSTOMIZE_BASE = DEPLOY / "kubernetes" / "base"
KUSTOMIZE_GPU = DEPLOY / "kubernetes" / "overlays" / "gpu"
KSERVE = DEPLOY / "kserve"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

KUBERNETES_VERSION = "1.30.0"  # the oldest release still widely run; HPA v2 and PDB v1 are GA
PYPI = "https://pypi.org/simple"
LIVE, READY = "/v2/health/live", "/v2/health/ready"

Resource = dict[str, Any]


# ---- Dockerfile --------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str


def read_dockerfile() -> list[Instruction]:
    """Instructions in order: comments dropped, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip()))
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Each build stage's instructions, from its FROM on; the last one is the default target."""
    found: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def stage_name(stage: list[Instruction]) -> str:
    words = stage[0].arguments.split()
    return words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else ""


def stage_base(stage: list[Instruction]) -> str:
    return stage[0].arguments.split()[0]


def target(name: str) -> list[Instruction]:
    """What the image built with `--target name` runs: its stage after the stages it is built
    FROM, first to last."""
    by_name = {stage_name(stage): stage for stage in stages(DOCKERFILE)}
    stage = by_name[name]
    base = stage_base(stage)
    return (target(base) if base in by_name else []) + stage


def args_before_from(instructions: list[Instruction]) -> dict[str, str]:
    values = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.arguments.partition("=")
            values[name] = default
    return values


def stage_args(stage: list[Instruction]) -> dict[str, str]:
    return dict(
        instruction.arguments.partition("=")[::2]
        for instruction in stage
        if instruction.keyword == "ARG"
    )


def stage_env(stage: list[Instruction]) -> dict[str, str]:
    env = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(instruction.arguments))
    return env


def exec_form(instruction: Instruction) -> list[str]:
    assert instruction.arguments.startswith("["), f"{instruction.keyword} is not in exec form"
    return yaml.safe_load(instruction.arguments)  # a JSON array is YAML too


def last(stage: list[Instruction], keyword: str) -> Instruction:
    matches = [instruction for instruction in stage if instruction.keyword == keyword]
    assert matches, f"the image has no {keyword}"
    return matches[-1]


DOCKERFILE = read_dockerfile()
TARGETS = ("cpu", "gpu")
IMAGE_STAGE = target("cpu")  # what both images share is checked on the default one
IMAGE_ENV = stage_env(IMAGE_STAGE)


def test_python_version_is_a_build_arg_defaulting_to_3_11() -> None:
    assert args_before_from(DOCKERFILE).get("PYTHON_VERSION") == "3.11"


def test_every_stage_stands_on_the_slim_python_image() -> None:
    all_stages = stages(DOCKERFILE)
    names = {stage_name(stage) for stage in all_stages}
    for stage in all_stages:
        base = stage_base(stage)
        assert base == "python:${PYTHON_VERSION}-slim" or base in names


def test_the_default_target_is_the_cpu_image() -> None:
    assert stage_name(stages(DOCKERFILE)[-1]) == "cpu"


@pytest.mark.parametrize(("name", "builder"), [("cpu", "builder"), ("gpu", "gpu-builder")])
def test_each_image_copies_its_own_environment(name: str, builder: str) -> None:
    copies = [i.arguments for i in target(name) if i.keyword == "COPY"]
    assert [c for c in copies if "/opt/venv" in c] == [f"--from={builder} /opt/venv /opt/venv"]


def test_runs_as_a_non_root_user() -> None:
    user = last(IMAGE_STAGE, "USER").arguments.split(":")[0]
    assert user not in ("root", "0", "")


def test_exposes_the_service_ports() -> None:
    assert last(IMAGE_STAGE, "EXPOSE").arguments.split() == ["8000", "8001"]
    assert IMAGE_ENV["SERVE_PORT"] == "8000"
    assert IMAGE_ENV["SERVE_GRPC_PORT"] == "8001"


def test_command_serves_every_interface_on_8000() -> None:
    command = exec_form(last(IMAGE_STAGE, "CMD"))
    assert command[:3] == ["python", "-m", "service"] or command[0] == "mlp-serve"
    flags = dict(zip(command[1::2], command[2::2], strict=False))
    # A flag wins over SERVE_*; where the command passes none, the image's environment decides.
    assert flags.get("--host", IMAGE_ENV.get("SERVE_HOST")) == "0.0.0.0"
    assert flags.get("--port", IMAGE_ENV.get("SERVE_PORT")) == "8000"


def test_models_are_baked_in_and_the_device_is_chosen_at_run_time() -> None:
    copies = [i.arguments.split() for i in IMAGE_STAGE if i.keyword == "COPY"]
    assert ["models/", "/app/models/"] in copies
    assert IMAGE_ENV["SERVE_MODELS"] == "/app/models"
    assert IMAGE_ENV["SERVE_DEVICE"] == "auto"
    assert last(IMAGE_STAGE, "STOPSIGNAL").arguments == "SIGTERM"


def test_healthcheck_asks_the_server_with_python() -> None:
    healthcheck = last(IMAGE_STAGE, "HEALTHCHECK").arguments
    assert "curl" not in healthcheck
    assert "wget" not in healthcheck
    command = exec_form(Instruction("CMD", healthcheck.partition("CMD ")[2]))
    assert command[:2] == ["python", "-c"]
    assert READY in command[2]  # unhealthy while loading and draining, as the comment says
    assert LIVE not in command[2]
    compile(command[2], "<healthcheck>", "exec")  # a syntax error would mark it unhealthy forever


def pip_installs(instructions: list[Instruction]) -> list[str]:
    return [
        command.strip()
        for instruction in instructions
        if instruction.keyword == "RUN"
        for command in instruction.arguments.split("&&")
        if "pip install" in command
    ]


def test_the_cpu_image_installs_the_core_and_the_gpu_image_adds_torch() -> None:
    runs = " ".join(i.arguments for i in DOCKERFILE if i.keyword == "RUN")
    assert "project['dependencies']" in runs
    assert "project['optional-dependencies']['torch']" in runs
    for extra in PYPROJECT["project"]["optional-dependencies"]:
        assert f"[{extra}]" not in runs  # never the train or dev extras
    assert PYPROJECT["project"]["optional-dependencies"]["torch"] == ["torch>=2.14.1"]
    assert not any(d.startswith("torch") for d in PYPROJECT["project"]["dependencies"])
    builder = target("builder")
    gpu_builder = target("gpu-builder")
    assert not any("torch.txt" in command for command in pip_installs(builder))
    added = pip_installs(gpu_builder)[len(pip_installs(builder)) :]
    assert added == ['pip install --index-url "$TORCH_INDEX_URL" -r /tmp/torch.txt']


@pytest.mark.parametrize("name", ["builder", "gpu-builder"])
def test_package_indexes_are_build_args_defaulting_to_pypi(name: str) -> None:
    stage = stages(DOCKERFILE)[[stage_name(s) for s in stages(DOCKERFILE)].index(name)]
    args = stage_args(stage)
    for command in pip_installs(stage):
        index = re.search(r'--index-url "?\$\{?(\w+)', command)
        assert index, f"pip install without an overridable --index-url: {command}"
        assert args[index.group(1)] == PYPI


# ---- .dockerignore -----------------------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, pattern) pairs, globbed the way Docker does: `*` stays inside one segment."""
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.removeprefix("!").strip("/")
        expression = re.escape(glob).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        patterns.append((negated, re.compile(expression.replace(r"\?", "[^/]") + "$")))
    return patterns


def ignored(path: str) -> bool:
    """Last matching pattern wins; a pattern that matches a parent directory matches too."""
    parents = ["/".join(path.split("/")[: i + 1]) for i in range(path.count("/") + 1)]
    verdict = False
    for negated, pattern in dockerignore_patterns():
        if any(pattern.match(candidate) for candidate in parents):
            verdict = not negated
    return verdict


def test_the_build_context_holds_what_the_package_build_needs() -> None:
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = ["pyproject.toml", PYPROJECT["project"]["readme"], "models/iris/1/model.pt"]
    needed += [f"{package.rstrip('*')}/__init__.py" for package in packages]
    needed += ["training/datasets/iris.csv", "models/iris/config.pbtxt"]
    assert [path for path in needed if ignored(path)] == []


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "tests/fixtures/mnist/MNIST/raw/t10k-images-idx3-ubyte",
        "bench/results/serve_uploads.json",
        "service/__pycache__/app.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        "mlp_serve.egg-info/PKG-INFO",
        "models/iris/.staging-abc/model.pt",
        "Dockerfile",
    ],
)
def test_the_build_context_leaves_out(path: str) -> None:
    assert ignored(path)


# ---- Kubernetes --------------------------------------------------------------------------------


def load_documents(path: Path) -> list[Resource]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def strategic_merge(base: Any, patch: Any) -> Any:
    """kubectl's strategic merge for what our patches use: maps merge, named lists merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = strategic_merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and patch and all(isinstance(x, dict) and "name" in x for x in patch):
        patches = {item["name"]: item for item in patch}
        merged_list = [strategic_merge(item, patches.get(item["name"], {})) for item in base]
        names = {item["name"] for item in base}
        return merged_list + [item for item in patch if item["name"] not in names]
    return patch


def render_kustomization(directory: Path) -> list[Resource]:
    """What `kubectl kustomize DIRECTORY` prints, for resources and strategic-merge patches."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        resources += render_kustomization(path) if path.is_dir() else load_documents(path)
    for entry in kustomization.get("patches", []):
        for patch in load_documents(directory / entry["path"]):
            targets = [
                index
                for index, resource in enumerate(resources)
                if (resource["kind"], resource["metadata"]["name"])
                == (patch["kind"], patch["metadata"]["name"])
            ]
            assert len(targets) == 1, f"patch {entry['path']} matches {len(targets)} resources"
            resources[targets[0]] = strategic_merge(resources[targets[0]], patch)
    return resources


def find(resources: list[Resource], kind: str) -> Resource:
    matches = [resource for resource in resources if resource["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def env_of(container: Resource) -> dict[str, str]:
    return {var["name"]: var.get("value") for var in container.get("env", [])}


def probe_port(container: Resource, probe: Resource) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)


RENDERINGS = {"base": KUSTOMIZE_BASE, "gpu": KUSTOMIZE_GPU}


@pytest.fixture(params=sorted(RENDERINGS), scope="module")
def rendered(request: pytest.FixtureRequest) -> list[Resource]:
    return render_kustomization(RENDERINGS[request.param])


def test_every_kubernetes_manifest_matches_the_api_schema(rendered: list[Resource]) -> None:
    assert {resource["kind"] for resource in rendered} == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for resource in rendered:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_rejects_a_mistake() -> None:
    deployment = find(render_kustomization(KUSTOMIZE_BASE), "Deployment")
    broken = strategic_merge(deployment, {"spec": {"template": {"spec": {"restartPolicy": 3}}}})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_probes_ask_the_service_health_endpoints(rendered: list[Resource]) -> None:
    container = find(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    port = int(env_of(container)["SERVE_PORT"])
    assert port == 8000
    expected = {"startupProbe": LIVE, "livenessProbe": LIVE, "readinessProbe": READY}
    for name, path in expected.items():
        assert container[name]["httpGet"]["path"] == path
        assert probe_port(container, container[name]) == port


def test_drain_finishes_inside_the_grace_period(rendered: list[Resource]) -> None:
    pod = find(rendered, "Deployment")["spec"]["template"]["spec"]
    env = env_of(pod["containers"][0])
    drain = float(env["SERVE_DRAIN_DELAY_S"]) + float(env["SERVE_DRAIN_TIMEOUT_S"])
    assert pod["terminationGracePeriodSeconds"] > drain
    assert "lifecycle" not in pod["containers"][0]  # the server drains itself; no preStop


def test_pods_run_unprivileged_on_a_read_only_root(rendered: list[Resource]) -> None:
    pod = find(rendered, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume


def test_requests_and_limits_are_set(rendered: list[Resource]) -> None:
    resources = find(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0][
        "resources"
    ]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert {"cpu", "memory"} <= resources["limits"].keys()


def test_prometheus_scrapes_the_metrics_endpoint(rendered: list[Resource]) -> None:
    template = find(rendered, "Deployment")["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert (
        annotations["prometheus.io/port"] == env_of(template["spec"]["containers"][0])["SERVE_PORT"]
    )


def test_service_autoscaler_and_budget_select_the_pods(rendered: list[Resource]) -> None:
    deployment = find(rendered, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    service = find(rendered, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    target = service["spec"]["ports"][0]["targetPort"]
    assert probe_port(container, {"httpGet": {"port": target}}) == 8000
    grpc = {port["name"]: port for port in service["spec"]["ports"]}["grpc"]
    assert probe_port(container, {"httpGet": {"port": grpc["targetPort"]}}) == int(
        env_of(container)["SERVE_GRPC_PORT"]
    )

    budget = find(rendered, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    autoscaler = find(rendered, "HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert autoscaler["spec"]["minReplicas"] >= 2  # a disruption budget of one leaves one serving
    [metric] = autoscaler["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count


def test_the_gpu_overlay_asks_for_one_gpu_and_keeps_the_rest() -> None:
    base = find(render_kustomization(KUSTOMIZE_BASE), "Deployment")
    gpu = find(render_kustomization(KUSTOMIZE_GPU), "Deployment")
    base_container = base["spec"]["template"]["spec"]["containers"][0]
    gpu_container = gpu["spec"]["template"]["spec"]["containers"][0]
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in base_container["resources"]["limits"]
    assert env_of(gpu_container)["SERVE_DEVICE"] == "cuda"
    assert env_of(base_container)["SERVE_DEVICE"] == "cpu"
    assert env_of(gpu_container).keys() == env_of(base_container).keys()
    assert base_container["image"] == f"mlp-serve:{PYPROJECT['project']['version']}-cpu"
    assert gpu_container["image"] == f"mlp-serve:{PYPROJECT['project']['version']}-gpu"
    assert gpu_container["readinessProbe"] == base_container["readinessProbe"]


def test_manifests_deploy_this_version() -> None:
    version = PYPROJECT["project"]["version"]
    container = find(render_kustomization(KUSTOMIZE_BASE), "Deployment")["spec"]["template"][
        "spec"
    ]["containers"][0]
    assert container["image"] == f"mlp-serve:{version}-cpu"
    assert kserve_container()["image"] == f"mlp-serve:{version}-cpu"
    [grpc_runtime] = load_documents(KSERVE / "servingruntime-grpc.yaml")
    assert grpc_runtime["spec"]["containers"][0]["image"] == f"mlp-serve:{version}-cpu"


# ---- KServe ------------------------------------------------------------------------------------


def serving_runtime() -> Resource:
    [runtime] = load_documents(KSERVE / "servingruntime.yaml")
    return runtime


def inference_service() -> Resource:
    [service] = load_documents(KSERVE / "inferenceservice.yaml")
    return service


def kserve_container() -> Resource:
    return serving_runtime()["spec"]["containers"][0]


def test_serving_runtime_declares_format_protocol_and_container() -> None:
    runtime = serving_runtime()
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert runtime["kind"] == "ServingRuntime"
    assert runtime["metadata"]["name"]
    formats = runtime["spec"]["supportedModelFormats"]
    assert formats
    assert all(f["name"] and f["autoSelect"] is True for f in formats)
    assert "v2" in runtime["spec"]["protocolVersions"]
    container = kserve_container()
    assert container["name"] == "kserve-container"
    assert container["image"]


def test_serving_runtime_serves_what_kserve_mounts_on_its_port() -> None:
    container = kserve_container()
    env = env_of(container)
    assert env["SERVE_MODELS"] == "/mnt/models"  # where the storage initializer puts storageUri
    assert env["SERVE_HOST"] == "0.0.0.0"
    port = int(env["SERVE_PORT"])
    assert container["ports"][0]["containerPort"] == port
    assert container["readinessProbe"]["httpGet"] == {"path": READY, "port": port}
    assert container["livenessProbe"]["httpGet"] == {"path": LIVE, "port": port}
    annotations = serving_runtime()["spec"]["annotations"]
    assert annotations["prometheus.kserve.io/port"] == str(port)


def test_serving_runtime_container_matches_the_container_schema() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kserve-container-check"},
        "spec": {"containers": [kserve_container()]},
    }
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_inference_service_uses_the_runtime() -> None:
    service = inference_service()
    runtime = serving_runtime()
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["kind"] == "InferenceService"
    predictor = service["spec"]["predictor"]
    model = predictor["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    supported = {(f["name"], f.get("version")) for f in runtime["spec"]["supportedModelFormats"]}
    assert (model["modelFormat"]["name"], model["modelFormat"].get("version")) in supported
    assert model["protocolVersion"] == "v2"
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert re.match(r"^(s3|gs|pvc|https?|hdfs|webhdfs|oci)://\S+$", model["storageUri"])
    env = env_of(kserve_container())
    drain = float(env["SERVE_DRAIN_DELAY_S"]) + float(env["SERVE_DRAIN_TIMEOUT_S"])
    assert predictor["terminationGracePeriodSeconds"] > drain


def test_every_serve_variable_is_a_setting() -> None:
    """A misspelt SERVE_* variable is ignored by the server without a word; catch it here."""
    deployment = find(render_kustomization(KUSTOMIZE_GPU), "Deployment")
    containers = [deployment["spec"]["template"]["spec"]["containers"][0], kserve_container()]
    names = {name for container in containers for name in env_of(container)}
    settings = {f"SERVE_{field.upper()}" for field in Settings.model_fields}
    assert sorted(n for n in names if n.startswith("SERVE_") and n not in settings) == []
    assert {"SERVE_DRAIN_DELAY_S", "SERVE_DRAIN_TIMEOUT_S", "SERVE_API_KEY"} <= names
    assert {key for key in IMAGE_ENV if key.startswith("SERVE_")} <= settings


def test_the_grpc_serving_runtime_names_its_one_port_h2c() -> None:
    """Knative routes HTTP/2 only to a port named h2c, and one port per container."""
    [runtime] = load_documents(KSERVE / "servingruntime-grpc.yaml")
    assert runtime["spec"]["protocolVersions"] == ["grpc-v2"]
    container = runtime["spec"]["containers"][0]
    [port] = container["ports"]
    assert port["name"] == "h2c"
    assert port["containerPort"] == int(env_of(container)["SERVE_GRPC_PORT"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": port["containerPort"]}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kserve-grpc-container-check"},
        "spec": {"containers": [container]},
    }
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
