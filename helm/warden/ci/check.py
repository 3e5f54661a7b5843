#!/usr/bin/env python3
"""Checks the warden chart offline, as `.ci/run` does.

1. `helm lint --strict` (Helm's own Go SDK, through helm-python-sdk) with the
   default values and with every values file in ci/.
2. The values against values.schema.json, and a few values it must refuse.
3. Renders each scenario below and validates every manifest against the
   Kubernetes OpenAPI schema (kubernetes-validate, strict: unknown fields are
   errors) for each Kubernetes version in KUBE_VERSIONS. The two CRD kinds the
   chart can emit (cert-manager Certificate, Prometheus Operator
   ServiceMonitor) are not in that schema; they are checked against the
   small schemas below, which hold the fields the chart uses.
4. Every value in values.yaml is documented in README.md and described in
   values.schema.json.

Run it with a Python that has helm-python-sdk, kubernetes-validate and PyYAML:
    python helm/warden/ci/check.py
"""

from __future__ import annotations

import pathlib
import sys

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

CHART = pathlib.Path(__file__).resolve().parent.parent
# 1.27: kubelet gRPC probes are GA (the chart's floor); 1.30 and the newest
# schema the package ships.
KUBE_VERSIONS = ["1.27", "1.30", kubernetes_validate.latest_version()]
RELEASE, NAMESPACE = "warden", "auth"

FAILURES: list[str] = []


def fail(message: str) -> None:
    FAILURES.append(message)
    print(f"FAIL {message}")


def load_yaml(path: pathlib.Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


ALL_ON = load_yaml(CHART / "ci" / "all-on.yaml")

# name -> (values, kinds the render must contain exactly)
SCENARIOS: dict[str, tuple[dict | None, list[str]]] = {
    "defaults": (None, ["Deployment", "PodDisruptionBudget", "Secret", "Service"]),
    "all-on": (
        ALL_ON,
        [
            "Certificate",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Ingress",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Secret",
            "Secret",
            "Service",
            "Service",
            "ServiceMonitor",
        ],
    ),
    # The admin API with a token Secret the operator manages.
    "admin-existing-secret": (
        {"admin": {"enabled": True, "existingSecret": "warden-admin-token"}},
        ["Deployment", "PodDisruptionBudget", "Secret", "Service", "Service"],
    ),
    # The one option all-on cannot hold at once with initContainer.
    "migration-job": (
        {"migrations": {"mode": "job"}, "existingSecret": "warden-secrets", "replicaCount": 1},
        ["Deployment", "Job", "Service"],
    ),
    # TLS from a Secret the operator manages, without cert-manager.
    "tls-secret": (
        {"tls": {"enabled": True, "secretName": "warden-tls-manual"}},
        ["Deployment", "PodDisruptionBudget", "Secret", "Service"],
    ),
}

# Values the chart must refuse (schema or template guard).
REFUSED: dict[str, dict] = {
    "misspelt key": {"tls": {"enabeld": True}},
    "unknown migration mode": {"migrations": {"mode": "sometimes"}},
    "WARDEN_LISTEN in config": {"config": {"WARDEN_LISTEN": "0.0.0.0:1"}},
    "WARDEN_TLS_CERT_FILE in config": {"config": {"WARDEN_TLS_CERT_FILE": "/x"}},
    "hash concurrency 0": {"hashing": {"concurrency": 0}},
    "no trusted devices per user": {"trustedDevices": {"maxPerUser": 0}},
    "WARDEN_TRUSTED_DEVICE_TTL_SECS in config": {"config": {"WARDEN_TRUSTED_DEVICE_TTL_SECS": "60"}},
    "cert-manager without issuer": {"tls": {"enabled": True, "certManager": {"enabled": True}}},
    "ingress without hosts": {"ingress": {"enabled": True}},
    "admin without a token": {"admin": {"enabled": True}},
    "WARDEN_ADMIN_TOKEN in config": {"config": {"WARDEN_ADMIN_TOKEN": "x"}},
}

CERTIFICATE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "cert-manager.io/v1"},
        "spec": {
            "type": "object",
            "required": ["secretName", "issuerRef", "dnsNames"],
            "additionalProperties": False,
            "properties": {
                "secretName": {"type": "string", "minLength": 1},
                "duration": {"type": "string"},
                "renewBefore": {"type": "string"},
                "dnsNames": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                "usages": {"type": "array", "items": {"enum": ["server auth", "client auth", "digital signature", "key encipherment"]}},
                "privateKey": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                        "size": {"type": "integer"},
                        "rotationPolicy": {"enum": ["Always", "Never"]},
                        "encoding": {"enum": ["PKCS1", "PKCS8"]},
                    },
                },
                "issuerRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string", "minLength": 1}, "kind": {"type": "string"}, "group": {"type": "string"}},
                },
            },
        },
    },
}

SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {"type": "object", "properties": {"matchLabels": {"type": "object"}}},
                "namespaceSelector": {"type": "object", "properties": {"matchNames": {"type": "array"}, "any": {"type": "boolean"}}},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string"},
                            "scrapeTimeout": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}

CRD_SCHEMAS = {"Certificate": CERTIFICATE_SCHEMA, "ServiceMonitor": SERVICE_MONITOR_SCHEMA}


def lint(label: str, values: dict | None) -> None:
    report = helm.lint(CHART, values, strict=True)
    for message in report.get("messages", []):
        severity, text = message.get("severity"), f"{message.get('path')}: {message.get('error')}"
        if severity is not None and severity >= 2:
            fail(f"lint ({label}): {text}")
        else:
            print(f"  lint ({label}) info: {text}")
    for error in report.get("errors") or []:
        fail(f"lint ({label}): {error}")
    print(f"ok   lint --strict ({label})")


def documents(rendered: dict[str, str]) -> list[tuple[str, dict]]:
    docs = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append((template, doc))
    return docs


def validate(label: str, template: str, doc: dict) -> None:
    kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
    where = f"{label}: {template}: {kind}/{name}"
    if kind in CRD_SCHEMAS:
        try:
            jsonschema.validate(doc, CRD_SCHEMAS[kind])
        except jsonschema.ValidationError as e:
            fail(f"{where}: {'.'.join(map(str, e.path))}: {e.message}")
        return
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            fail(f"{where} (Kubernetes {version}): {'.'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            fail(f"{where}: {e.message}")


def render(label: str, values: dict | None, kinds: list[str]) -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = documents(rendered)
    found = sorted(doc["kind"] for _, doc in docs)
    if found != sorted(kinds):
        fail(f"{label}: rendered kinds {found}, expected {sorted(kinds)}")
    for template, doc in docs:
        validate(label, template, doc)
    print(f"ok   render ({label}): {len(docs)} manifests valid for Kubernetes {', '.join(KUBE_VERSIONS)}")
    check_semantics(label, values or {}, docs)


def check_semantics(label: str, values: dict, docs: list[tuple[str, dict]]) -> None:
    """What the values promise, read back from the manifests."""
    by_kind = {doc["kind"]: doc for _, doc in docs}
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    server = next(c for c in pod["containers"] if c["name"] == "warden")
    env = {e["name"]: e.get("value") for e in server["env"]}
    names = [e["name"] for e in server["env"]]
    if len(names) != len(set(names)):
        fail(f"{label}: duplicate env names {names}")
    tls = values.get("tls", {}).get("enabled", False)
    health = tls or values.get("health", {}).get("enabled", False)
    probe_port = 8081 if health else 50051
    for probe in ("startupProbe", "readinessProbe"):
        if server[probe]["grpc"]["port"] != probe_port:
            fail(f"{label}: {probe} uses port {server[probe]['grpc']['port']}, expected {probe_port}")
    if tls:
        for var in ("WARDEN_TLS_CERT_FILE", "WARDEN_TLS_KEY_FILE", "WARDEN_HEALTH_LISTEN"):
            if var not in env:
                fail(f"{label}: TLS on but {var} missing")
        for mount in server.get("volumeMounts", []):
            if "subPath" in mount:
                fail(f"{label}: {mount['name']} uses subPath; renewed certificates would never arrive")
    elif any(k.startswith("WARDEN_TLS_") for k in env):
        fail(f"{label}: TLS off but WARDEN_TLS_* set")
    metrics = values.get("metrics", {}).get("enabled", False)
    if metrics != ("WARDEN_HTTP_LISTEN" in env):
        fail(f"{label}: metrics.enabled={metrics} but WARDEN_HTTP_LISTEN {'absent' if metrics else 'set'}")
    mode = values.get("migrations", {}).get("mode", "onStart")
    if env.get("WARDEN_MIGRATE_ON_START") != ("true" if mode == "onStart" else "false"):
        fail(f"{label}: mode {mode} but WARDEN_MIGRATE_ON_START={env.get('WARDEN_MIGRATE_ON_START')}")
    has_init = any(c["name"] == "migrate" for c in pod.get("initContainers", []))
    if has_init != (mode == "initContainer"):
        fail(f"{label}: mode {mode} but migrate init container {'present' if has_init else 'absent'}")
    resources = server["resources"]
    if not (resources.get("requests", {}).get("memory") and resources.get("limits", {}).get("memory")):
        fail(f"{label}: server memory request/limit missing")
    if values.get("autoscaling", {}).get("enabled") and "replicas" in by_kind["Deployment"]["spec"]:
        fail(f"{label}: autoscaling on but the Deployment pins replicas")


def refused(label: str, values: dict) -> None:
    with helm.Chart.load(CHART) as chart:
        try:
            chart.validate_schema(values)
            chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        except helm.HelmError as e:
            first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            print(f"ok   refused ({label}): {first[:140]}")
            return
    fail(f"values accepted that must be refused: {label}: {values}")


def leaf_paths(value, prefix=""):
    """Dotted paths of values.yaml: leaves, empty maps and lists. Maps that
    are Kubernetes objects or free-form (OPAQUE) count as one value."""
    if isinstance(value, dict) and value and prefix not in OPAQUE:
        for key, child in value.items():
            yield from leaf_paths(child, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


OPAQUE = {"config", "resources", "migrations.resources", "podSecurityContext", "securityContext"}


def schema_has(schema: dict, path: str) -> bool:
    node = schema
    for part in path.split("."):
        props = node.get("properties")
        if props is None:
            return node.get("type") == "object" or "additionalProperties" in node
        if part not in props:
            return False
        node = props[part]
    return "description" in node


def documented() -> None:
    values = load_yaml(CHART / "values.yaml")
    readme = (CHART / "README.md").read_text()
    with helm.Chart.load(CHART) as chart:
        schema = chart.schema or {}
    paths = list(leaf_paths(values))
    for path in paths:
        if f"`{path}`" not in readme:
            fail(f"README.md does not document `{path}`")
        if not schema_has(schema, path):
            fail(f"values.schema.json does not describe {path}")
    print(f"ok   {len(paths)} values documented in README.md and described in values.schema.json")


def canary() -> None:
    """The validator must refuse an unknown field, or strict means nothing."""
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": [{"port": 1, "bogus": 2}]}}
    try:
        kubernetes_validate.validate(bad, KUBE_VERSIONS[-1], strict=True)
    except kubernetes_validate.ValidationError:
        print("ok   kubernetes-validate refuses an unknown field (strict)")
        return
    fail("kubernetes-validate accepted an unknown field: strict mode is not in force")


def main() -> int:
    print(f"helm SDK {helm.helm_sdk_version()}, kubernetes-validate {kubernetes_validate.__version__}")
    canary()
    lint("defaults", None)
    for path in sorted((CHART / "ci").glob("*.yaml")):
        lint(path.name, load_yaml(path))
    for label, (values, kinds) in SCENARIOS.items():
        try:
            render(label, values, kinds)
        except helm.HelmError as e:
            fail(f"render ({label}): {e}")
    for label, values in REFUSED.items():
        refused(label, values)
    documented()
    if FAILURES:
        print(f"chart check: {len(FAILURES)} failure(s)")
        return 1
    print("chart check: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
