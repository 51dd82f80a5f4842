#!/usr/bin/python3
"""tests/deploy/check_manifests.py — machine checks of docker-compose.yml, k8s/, the Dockerfiles and monitoring/

The old system's manifests did not match each other or the programs they ran. This module says what
the programs are (the CONTRACTS table: env vars, ports, health paths, from issues 4 and 7) and checks
every deployment file against it and against itself:

* yamllint with tests/deploy/yamllint.yaml;
* `kubectl kustomize` of every overlay (OVERLAYS), each rendered object validated against the
  Kubernetes API schemas with kubernetes-models (validate_schemas.mjs); CloudNativePG's Cluster,
  which no package models, gets a structural check here;
* consistency: every Service, PDB, HPA, ScaledObject, NetworkPolicy and ServiceMonitor selects or
  targets an object that exists; every ConfigMap/Secret key referenced exists (Secrets from
  k8s/secrets/*.example.yaml and those CloudNativePG creates); probes use paths and ports the
  binary serves; every env var set is one the binary reads (its `--help` when build/bin has it,
  else the CONTRACTS list, with a SKIP note); the sizes issue 8 asks for;
* the same for `docker-compose config`'s resolved output, plus health checks and start order;
* Dockerfiles: multi-stage, non-root, STOPSIGNAL SIGTERM, no build tools in the final stage.

Each check returns a list of problems (empty = pass). tests/deploy/test_deploy.py runs them under
pytest for `make check`; `python3 tests/deploy/check_manifests.py` prints a report and exits 1 on
any problem.
"""

import functools
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.join(TOP, "tests", "deploy")
BIN = os.environ.get("CHAINWATCH_BIN", os.path.join(TOP, "build", "bin"))

# the topic's partitions: no consumer group may be larger (an extra consumer owns nothing)
TOPIC_PARTITIONS = 12

# What each binary reads and serves (issues 4 and 7). `--help` supersedes `env` once it exists.
CONTRACTS = {
    "ingestor": {
        "binary": "chainwatch-ingestor",
        "env": {
            "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC", "KAFKA_GROUP_ID", "KAFKA_NUM_WORKER_THREADS",
            "KAFKA_MAX_QUEUE_SIZE", "KAFKA_SESSION_TIMEOUT_MS", "KAFKA_MAX_POLL_INTERVAL_MS",
            "DATABASE_URL", "BATCH_SIZE", "BATCH_FLUSH_MS", "METRICS_PORT", "LOG_LEVEL", "LOG_FORMAT",
            "SHUTDOWN_TIMEOUT_MS", "MAINTENANCE_INTERVAL_MS",
        },
        "env_patterns": [r"KAFKA_CONFIG_[A-Z0-9_]+"],
        "port_env": "METRICS_PORT",
        "default_port": 9090,
        "paths": {"/metrics", "/health/live", "/health/ready"},
    },
    "api": {
        "binary": "chainwatch-api",
        "env": {
            "API_PORT", "API_THREADS", "DATABASE_URL", "DB_POOL_SIZE", "REDIS_ENABLED", "REDIS_HOST",
            "REDIS_PORT", "REDIS_DB", "REDIS_PASSWORD", "REDIS_MAX_CONNECTIONS", "CACHE_TTL_PREDICTION",
            "CACHE_TTL_QUERY", "CACHE_TTL_MODEL", "RATE_LIMIT_RPS", "RATE_LIMIT_BURST", "MAX_BODY_BYTES",
            "REQUEST_TIMEOUT_MS", "CORS_ALLOWED_ORIGINS", "LOG_LEVEL", "LOG_FORMAT",
        },
        "env_patterns": [],
        "port_env": "API_PORT",
        "default_port": 8000,
        "paths": {"/health", "/health/live", "/health/ready", "/metrics"},
    },
    # chainwatch-postgres: the official image's variables, libpq's, and chainwatch-bootstrap's
    "postgres": {
        "binary": None,
        "env": {
            "POSTGRES_PASSWORD", "POSTGRES_USER", "POSTGRES_DB", "POSTGRES_INITDB_ARGS", "PGDATA",
            "DATABASE_URL", "INGESTOR_PASSWORD", "INGESTOR_DATABASE_URL", "API_PASSWORD", "API_DATABASE_URL",
            "MONITOR_PASSWORD", "CHAINWATCH_SQL_DIR",
        },
        "env_patterns": [r"PG(HOST|PORT|USER|PASSWORD|DATABASE|SSLMODE|SSLROOTCERT|SSLCERT|SSLKEY|CONNECT_TIMEOUT|APPNAME)"],
        "port_env": None,
        "default_port": 5432,
        "paths": set(),
    },
}

# the ingestor's drain budget when SHUTDOWN_TIMEOUT_MS is not set
DEFAULT_SHUTDOWN_TIMEOUT_MS = 30000

# kustomize directories rendered and checked; tests/deploy/kustomize/ holds variants only for checking
OVERLAYS = {
    "dev": "k8s/overlays/dev",
    "prod": "k8s/overlays/prod",
    "prod-keda": "tests/deploy/kustomize/prod-keda",
}

# What issue 8 asks of the production overlay: (kind, name, dotted path, expected)
PROD_SPEC = [
    ("Deployment", "chainwatch-api", "spec.template.spec.containers.0.resources.requests.cpu", "250m"),
    ("Deployment", "chainwatch-api", "spec.template.spec.containers.0.resources.requests.memory", "512Mi"),
    ("Deployment", "chainwatch-api", "spec.template.spec.containers.0.resources.limits.cpu", "1"),
    ("Deployment", "chainwatch-api", "spec.template.spec.containers.0.resources.limits.memory", "2Gi"),
    ("Deployment", "chainwatch-ingestor", "spec.template.spec.containers.0.resources.requests.cpu", "500m"),
    ("Deployment", "chainwatch-ingestor", "spec.template.spec.containers.0.resources.requests.memory", "1Gi"),
    ("Deployment", "chainwatch-ingestor", "spec.template.spec.containers.0.resources.limits.cpu", "2"),
    ("Deployment", "chainwatch-ingestor", "spec.template.spec.containers.0.resources.limits.memory", "4Gi"),
    ("HorizontalPodAutoscaler", "chainwatch-api", "spec.minReplicas", 3),
    ("HorizontalPodAutoscaler", "chainwatch-api", "spec.maxReplicas", 10),
    ("HorizontalPodAutoscaler", "chainwatch-api", "spec.metrics.0.resource.target.averageUtilization", 70),
    ("HorizontalPodAutoscaler", "chainwatch-api", "spec.metrics.1.resource.target.averageUtilization", 80),
    ("HorizontalPodAutoscaler", "chainwatch-ingestor", "spec.minReplicas", 2),
    ("HorizontalPodAutoscaler", "chainwatch-ingestor", "spec.maxReplicas", 8),
    ("HorizontalPodAutoscaler", "chainwatch-ingestor", "spec.metrics.0.resource.target.averageUtilization", 75),
    ("HorizontalPodAutoscaler", "chainwatch-ingestor", "spec.metrics.1.resource.target.averageUtilization", 85),
    ("PodDisruptionBudget", "chainwatch-api", "spec.minAvailable", 2),
    ("PodDisruptionBudget", "chainwatch-ingestor", "spec.minAvailable", 1),
    ("Service", "chainwatch-api", "spec.sessionAffinity", "ClientIP"),
    ("Service", "chainwatch-api", "spec.sessionAffinityConfig.clientIP.timeoutSeconds", 10800),
    ("Ingress", "chainwatch-api", "metadata.annotations.nginx\\.ingress\\.kubernetes\\.io/load-balance", "ewma"),
    ("Ingress", "chainwatch-api", "metadata.annotations.nginx\\.ingress\\.kubernetes\\.io/limit-rps", "100"),
    ("Ingress", "chainwatch-api", "metadata.annotations.nginx\\.ingress\\.kubernetes\\.io/limit-connections", "50"),
    ("Ingress", "chainwatch-api", "metadata.annotations.nginx\\.ingress\\.kubernetes\\.io/proxy-read-timeout", "60"),
    ("Ingress", "chainwatch-api", "metadata.annotations.nginx\\.ingress\\.kubernetes\\.io/proxy-send-timeout", "60"),
    ("Ingress", "chainwatch-api", "metadata.annotations.nginx\\.ingress\\.kubernetes\\.io/proxy-connect-timeout", "60"),
]

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def run(cmd, **kw):
    """run: a command's CompletedProcess (text, both streams captured), cwd the repository."""
    return subprocess.run(cmd, cwd=kw.pop("cwd", TOP), capture_output=True, text=True, **kw)


def dig(obj, dotted, default=None):
    """dig: obj's value at a dotted path ("a.b.0.c"; "\\." is a literal dot in a key)."""
    cur = obj
    for part in re.split(r"(?<!\\)\.", dotted):
        part = part.replace("\\.", ".")
        if isinstance(cur, list):
            if not part.isdigit() or int(part) >= len(cur):
                return default
            cur = cur[int(part)]
        elif isinstance(cur, dict):
            if part not in cur:
                return default
            cur = cur[part]
        else:
            return default
    return cur


def label(obj):
    """label: "Kind/name" for messages."""
    return f"{obj.get('kind')}/{dig(obj, 'metadata.name')}"


def selector_matches(selector, labels):
    """selector_matches: whether a LabelSelector (matchLabels/matchExpressions) or a plain map selects labels."""
    if selector is None:
        return False
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        match_labels, exprs = selector, []
    else:
        match_labels, exprs = selector.get("matchLabels") or {}, selector.get("matchExpressions") or []
    if not match_labels and not exprs:
        return True
    for k, v in match_labels.items():
        if labels.get(k) != v:
            return False
    for e in exprs:
        op, key, values = e["operator"], e["key"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def binary_for_image(image):
    """binary_for_image: the CONTRACTS key of one of our images, or None for a third-party image."""
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    return {"chainwatch-ingestor": "ingestor", "chainwatch-api": "api", "chainwatch-postgres": "postgres"}.get(name)


@functools.lru_cache(maxsize=None)
def help_env(key):
    """help_env: env var names in `<binary> --help` (uppercase words), or None when the binary is not built."""
    binary = CONTRACTS[key]["binary"]
    if binary is None:
        return None
    path = os.path.join(BIN, binary)
    if not os.access(path, os.X_OK):
        return None
    out = run([path, "--help"], timeout=10)
    text = out.stdout + out.stderr
    return {w for w in re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", text)}


def env_allowed(key, name):
    """env_allowed: whether binary `key` reads env var `name` (by --help when built, else by CONTRACTS)."""
    c = CONTRACTS[key]
    if any(re.fullmatch(p, name) for p in c["env_patterns"]):
        return True
    names = help_env(key)
    if names is not None:
        return name in names
    return name in c["env"]


def help_skips():
    """help_skips: one SKIP line per binary whose --help comparison could not run."""
    out = []
    for key, c in CONTRACTS.items():
        if c["binary"] and help_env(key) is None:
            out.append(f"SKIP: {os.path.join(BIN, c['binary'])} not built; env vars compared with the "
                       f"list in check_manifests.CONTRACTS['{key}'] instead of its --help")
    return out


def help_contract_problems():
    """help_contract_problems: env vars of CONTRACTS missing from a built binary's --help (the list is stale)."""
    problems = []
    for key, c in CONTRACTS.items():
        names = help_env(key)
        if names is None:
            continue
        for name in sorted(c["env"] - names):
            problems.append(f"{c['binary']} --help does not list {name}, which CONTRACTS['{key}'] names")
    return problems


# ---------------------------------------------------------------------------------------------
# yamllint, rendering, schemas
# ---------------------------------------------------------------------------------------------

YAML_PATHS = ["docker-compose.yml", "k8s", "monitoring", "deploy", "tests/deploy/kustomize"]


def check_yamllint():
    """check_yamllint: yamllint problems of every YAML file we ship."""
    out = run(["yamllint", "-f", "parsable", "-c", os.path.join(HERE, "yamllint.yaml")] + YAML_PATHS)
    if out.returncode == 0:
        return []
    return (out.stdout + out.stderr).strip().splitlines() or [f"yamllint exited {out.returncode}"]


@functools.lru_cache(maxsize=None)
def render(overlay):
    """render: the objects `kubectl kustomize` makes of one OVERLAYS entry (raises on failure)."""
    out = run(["kubectl", "kustomize", OVERLAYS[overlay]], timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {OVERLAYS[overlay]} failed:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@functools.lru_cache(maxsize=None)
def secret_templates():
    """secret_templates: the Secrets of k8s/secrets/*.example.yaml (the ones operators create)."""
    docs = []
    d = os.path.join(TOP, "k8s", "secrets")
    for f in sorted(os.listdir(d)):
        if f.endswith(".example.yaml"):
            with open(os.path.join(d, f)) as fh:
                docs += [x for x in yaml.safe_load_all(fh) if x]
    return docs


def ensure_node_modules():
    """ensure_node_modules: install tests/deploy's npm packages once (npm ci from package-lock.json)."""
    if os.path.isdir(os.path.join(HERE, "node_modules", "kubernetes-models")):
        return
    out = run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"npm ci in tests/deploy failed:\n{out.stdout}{out.stderr}")


def check_cnpg_cluster(obj):
    """check_cnpg_cluster: structural check of a postgresql.cnpg.io/v1 Cluster (no schema package exists)."""
    p, spec = [], obj.get("spec") or {}
    known = {"instances", "imageName", "postgresUID", "postgresGID", "enableSuperuserAccess", "primaryUpdateStrategy",
             "postgresql", "bootstrap", "storage", "walStorage", "resources", "affinity", "monitoring", "backup",
             "superuserSecret", "managed", "description", "imagePullSecrets", "primaryUpdateMethod",
             "startDelay", "stopDelay", "switchoverDelay", "minSyncReplicas", "maxSyncReplicas", "env"}
    for k in spec:
        if k not in known:
            p.append(f"{label(obj)}: unknown spec field {k!r}")
    if not isinstance(spec.get("instances"), int) or spec["instances"] < 1:
        p.append(f"{label(obj)}: spec.instances must be an integer >= 1")
    if not isinstance(spec.get("imageName"), str):
        p.append(f"{label(obj)}: spec.imageName must name the chainwatch-postgres image")
    elif binary_for_image(spec["imageName"]) != "postgres":
        p.append(f"{label(obj)}: spec.imageName {spec['imageName']} is not chainwatch-postgres")
    if "chainwatch" not in (dig(spec, "postgresql.shared_preload_libraries") or []):
        p.append(f"{label(obj)}: postgresql.shared_preload_libraries must include chainwatch (maintenance worker)")
    for k, v in (dig(spec, "postgresql.parameters") or {}).items():
        if not isinstance(v, str):
            p.append(f"{label(obj)}: postgresql.parameters.{k} must be a string")
    if not dig(spec, "storage.size"):
        p.append(f"{label(obj)}: spec.storage.size is required")
    if dig(spec, "bootstrap.initdb.database") != "chainwatch":
        p.append(f"{label(obj)}: bootstrap.initdb.database must be chainwatch (chainwatch.database)")
    return p


def check_schemas(overlay):
    """check_schemas: kubernetes-models validation of every rendered object and every Secret template."""
    ensure_node_modules()
    objs = render(overlay) + list(secret_templates())
    out = run(["node", os.path.join(HERE, "validate_schemas.mjs")], input=json.dumps(objs), timeout=120)
    if out.returncode != 0:
        return [f"validate_schemas.mjs failed: {out.stderr.strip()}"]
    problems = []
    for obj, res in zip(objs, json.loads(out.stdout)):
        if res["status"] == "invalid":
            problems += [f"{res['kind']}/{res['name']}: {e}" for e in res["errors"]]
        elif res["status"] == "unsupported":
            if obj.get("apiVersion") == "postgresql.cnpg.io/v1" and obj.get("kind") == "Cluster":
                problems += check_cnpg_cluster(obj)
            else:
                problems.append(f"{label(obj)}: no schema for {obj.get('apiVersion')} and no structural check")
    return problems


# ---------------------------------------------------------------------------------------------
# Kubernetes consistency
# ---------------------------------------------------------------------------------------------

def pod_sources(objs):
    """pod_sources: (owner object, pod labels, pod spec) for each thing that makes pods, CNPG Clusters included."""
    out = []
    for o in objs:
        if o.get("kind") in WORKLOAD_KINDS:
            out.append((o, dig(o, "spec.template.metadata.labels") or {}, dig(o, "spec.template.spec") or {}))
        elif o.get("kind") == "Cluster" and o.get("apiVersion", "").startswith("postgresql.cnpg.io/"):
            name = dig(o, "metadata.name")
            spec = {"containers": [{"name": "postgres", "image": dig(o, "spec.imageName"),
                                    "ports": [{"name": "postgresql", "containerPort": 5432},
                                              {"name": "metrics", "containerPort": 9187},
                                              {"name": "status", "containerPort": 8000}]}]}
            out.append((o, {"cnpg.io/cluster": name, "cnpg.io/podRole": "instance"}, spec))
    return out


def generated_secrets(objs):
    """generated_secrets: {name: keys} of Secrets operators create at run time (CloudNativePG)."""
    out = {}
    for o in objs:
        if o.get("kind") == "Cluster" and o.get("apiVersion", "").startswith("postgresql.cnpg.io/"):
            n = dig(o, "metadata.name")
            out[f"{n}-ca"] = {"ca.crt", "ca.key"}
            out[f"{n}-server"] = {"tls.crt", "tls.key"}
            out[f"{n}-app"] = {"username", "password", "host", "port", "dbname", "uri", "pgpass"}
            if dig(o, "spec.enableSuperuserAccess"):
                out[f"{n}-superuser"] = {"username", "password", "host", "port", "dbname", "uri", "pgpass"}
    return out


def config_keys(objs):
    """config_keys: ({ConfigMap name: {key: value}}, {Secret name: keys}) that exist for an overlay."""
    cms, secrets = {}, {}
    for o in objs:
        if o.get("kind") == "ConfigMap":
            cms[dig(o, "metadata.name")] = {**(o.get("data") or {}), **(o.get("binaryData") or {})}
    for o in list(objs) + list(secret_templates()):
        if o.get("kind") == "Secret":
            secrets[dig(o, "metadata.name")] = set(o.get("data") or {}) | set(o.get("stringData") or {})
    for name, keys in generated_secrets(objs).items():
        secrets.setdefault(name, keys)
    return cms, secrets


def container_env(container, cms, secrets):
    """container_env: ({env name: value or None}, problems) of a container, envFrom expanded."""
    env, p = {}, []
    for ef in container.get("envFrom") or []:
        prefix = ef.get("prefix", "")
        if "configMapRef" in ef:
            ref = ef["configMapRef"]["name"]
            if ref not in cms:
                if not ef["configMapRef"].get("optional"):
                    p.append(f"envFrom ConfigMap {ref} does not exist")
                continue
            env.update({prefix + k: v for k, v in cms[ref].items()})
        if "secretRef" in ef:
            ref = ef["secretRef"]["name"]
            if ref not in secrets:
                if not ef["secretRef"].get("optional"):
                    p.append(f"envFrom Secret {ref} does not exist")
                continue
            env.update({prefix + k: None for k in secrets[ref]})
    for e in container.get("env") or []:
        vf = e.get("valueFrom") or {}
        if "configMapKeyRef" in vf:
            r = vf["configMapKeyRef"]
            if r["key"] not in cms.get(r["name"], {}) and not r.get("optional"):
                p.append(f"env {e['name']}: ConfigMap {r['name']} has no key {r['key']}")
            env[e["name"]] = cms.get(r["name"], {}).get(r["key"])
        elif "secretKeyRef" in vf:
            r = vf["secretKeyRef"]
            if r["key"] not in secrets.get(r["name"], set()) and not r.get("optional"):
                p.append(f"env {e['name']}: Secret {r['name']} has no key {r['key']}")
            env[e["name"]] = None
        else:
            env[e["name"]] = e.get("value")
    return env, p


def resolve_port(container, port):
    """resolve_port: a probe's or Service's port (number or name) as a number on this container, or None."""
    if isinstance(port, int):
        return port
    for cp in container.get("ports") or []:
        if cp.get("name") == port:
            return cp.get("containerPort")
    return None


def check_pod_spec(owner, spec, cms, secrets):
    """check_pod_spec: refs, env, probes, ports and hardening of every container in one pod spec."""
    p = []
    where = label(owner)
    claims = {dig(t, "metadata.name") for t in dig(owner, "spec.volumeClaimTemplates") or []}
    for v in spec.get("volumes") or []:
        if "configMap" in v:
            ref = v["configMap"]["name"]
            if ref not in cms and not v["configMap"].get("optional"):
                p.append(f"{where}: volume {v['name']}: ConfigMap {ref} does not exist")
            for it in v["configMap"].get("items") or []:
                if it["key"] not in cms.get(ref, {}):
                    p.append(f"{where}: volume {v['name']}: ConfigMap {ref} has no key {it['key']}")
        if "secret" in v:
            ref = v["secret"]["secretName"]
            if ref not in secrets and not v["secret"].get("optional"):
                p.append(f"{where}: volume {v['name']}: Secret {ref} does not exist")
            for it in v["secret"].get("items") or []:
                if it["key"] not in secrets.get(ref, set()):
                    p.append(f"{where}: volume {v['name']}: Secret {ref} has no key {it['key']}")
    volume_names = {v["name"] for v in spec.get("volumes") or []} | claims
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        cw = f"{where} container {c['name']}"
        env, ep = container_env(c, cms, secrets)
        p += [f"{cw}: {x}" for x in ep]
        for m in c.get("volumeMounts") or []:
            if m["name"] not in volume_names:
                p.append(f"{cw}: volumeMount {m['name']} has no volume")
        image = c.get("image") or ""
        if image.endswith(":latest") or (":" not in image.rsplit("/", 1)[-1] and binary_for_image(image) is None):
            p.append(f"{cw}: image {image} has no pinned tag")
        key = binary_for_image(image)
        if key is None:
            continue
        cmd = (c.get("command") or [""])[0]
        if key == "ingestor" and cmd.endswith("chainwatch-txgen"):
            continue
        for name in sorted(env):
            if not env_allowed(key, name):
                p.append(f"{cw}: env {name} is not read by {CONTRACTS[key]['binary'] or 'chainwatch-postgres'}")
        sc = c.get("securityContext") or {}
        psc = spec.get("securityContext") or {}
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            p.append(f"{cw}: runAsNonRoot is not set")
        if sc.get("readOnlyRootFilesystem") is not True:
            p.append(f"{cw}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            p.append(f"{cw}: allowPrivilegeEscalation is not false")
        if "ALL" not in (dig(sc, "capabilities.drop") or []):
            p.append(f"{cw}: capabilities are not dropped (drop: [ALL])")
        if not dig(c, "resources.requests") or not dig(c, "resources.limits"):
            p.append(f"{cw}: resources need requests and limits")
        c_contract = CONTRACTS[key]
        if not c_contract["paths"]:
            continue
        port = int(env.get(c_contract["port_env"]) or c_contract["default_port"])
        if port not in [cp.get("containerPort") for cp in c.get("ports") or []]:
            p.append(f"{cw}: no containerPort {port} ({c_contract['port_env']})")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            pr = c.get(probe)
            if pr is None:
                p.append(f"{cw}: no {probe}")
                continue
            hg = pr.get("httpGet")
            if not hg:
                p.append(f"{cw}: {probe} is not an httpGet on the binary's own endpoint")
                continue
            if hg.get("path") not in c_contract["paths"]:
                p.append(f"{cw}: {probe} path {hg.get('path')} is not served (serves {sorted(c_contract['paths'])})")
            if resolve_port(c, hg.get("port")) != port:
                p.append(f"{cw}: {probe} port {hg.get('port')} is not {c_contract['port_env']}={port}")
        if dig(c, "livenessProbe.httpGet.path") not in (None, "/health/live"):
            p.append(f"{cw}: livenessProbe must be /health/live (a dependency outage must not restart it)")
        if dig(c, "readinessProbe.httpGet.path") not in (None, "/health/ready"):
            p.append(f"{cw}: readinessProbe must be /health/ready")
        if key == "ingestor":
            timeout_ms = int(env.get("SHUTDOWN_TIMEOUT_MS") or DEFAULT_SHUTDOWN_TIMEOUT_MS)
            grace = spec.get("terminationGracePeriodSeconds", 30)
            if grace * 1000 <= timeout_ms:
                p.append(f"{cw}: terminationGracePeriodSeconds {grace} s is not above SHUTDOWN_TIMEOUT_MS {timeout_ms}")
    return p


def check_k8s(overlay):
    """check_k8s: the consistency of one rendered overlay (see the module docstring)."""
    objs = render(overlay)
    p = []
    cms, secrets = config_keys(objs)
    pods = pod_sources(objs)
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[dig(o, "metadata.name")] = o

    namespaces = {dig(o, "metadata.namespace") for o in objs if o["kind"] != "Namespace"}
    if namespaces != {"chainwatch"} or "chainwatch" not in by_kind.get("Namespace", {}):
        p.append(f"objects must all be in the namespace chainwatch, which must be declared (found {namespaces})")
    for o in objs:
        if o["kind"] == "Secret":
            p.append(f"{label(o)}: Secrets must not be in the manifests (k8s/secrets/ has templates)")

    def selected(selector):
        return [(o, lbl, spec) for o, lbl, spec in pods if selector_matches(selector, lbl)]

    for o, _, spec in pods:
        if o["kind"] in WORKLOAD_KINDS:
            p += check_pod_spec(o, spec, cms, secrets)
            sel = dig(o, "spec.selector")
            if sel is not None and not selector_matches(sel, dig(o, "spec.template.metadata.labels") or {}):
                p.append(f"{label(o)}: spec.selector does not match its own pod template")

    for svc in by_kind.get("Service", {}).values():
        sel = dig(svc, "spec.selector")
        targets = selected(sel) if sel else []
        if not targets:
            p.append(f"{label(svc)}: selector {sel} selects no pods")
        for sp in dig(svc, "spec.ports") or []:
            tp = sp.get("targetPort", sp.get("port"))
            if targets and not any(resolve_port(c, tp) for _, _, spec in targets for c in spec.get("containers", [])):
                p.append(f"{label(svc)}: targetPort {tp} is on no selected container")

    for pdb in by_kind.get("PodDisruptionBudget", {}).values():
        targets = selected(dig(pdb, "spec.selector"))
        if not targets:
            p.append(f"{label(pdb)}: selects no pods")
        min_avail = dig(pdb, "spec.minAvailable")
        for o, _, _ in targets:
            floor = min_replicas(o, by_kind)
            if isinstance(min_avail, int) and floor is not None and min_avail >= floor:
                p.append(f"{label(pdb)}: minAvailable {min_avail} >= {label(o)}'s {floor} replicas: no voluntary eviction possible")

    scalers = list(by_kind.get("HorizontalPodAutoscaler", {}).values()) + list(by_kind.get("ScaledObject", {}).values())
    scaled = {}
    for h in scalers:
        ref = dig(h, "spec.scaleTargetRef") or {}
        tkind = ref.get("kind", "Deployment")
        target = by_kind.get(tkind, {}).get(ref.get("name"))
        if target is None:
            p.append(f"{label(h)}: scaleTargetRef {tkind}/{ref.get('name')} does not exist")
            continue
        key = f"{tkind}/{ref.get('name')}"
        if key in scaled:
            p.append(f"{label(h)}: {key} is already scaled by {scaled[key]}")
        scaled[key] = label(h)
        mx = dig(h, "spec.maxReplicas", dig(h, "spec.maxReplicaCount"))
        mn = dig(h, "spec.minReplicas", dig(h, "spec.minReplicaCount"))
        if isinstance(mx, int) and isinstance(mn, int) and mn > mx:
            p.append(f"{label(h)}: minReplicas {mn} > maxReplicas {mx}")
        containers = dig(target, "spec.template.spec.containers") or []
        if any(binary_for_image(c.get("image", "")) == "ingestor" for c in containers):
            if isinstance(mx, int) and mx > TOPIC_PARTITIONS:
                p.append(f"{label(h)}: {mx} ingestors > {TOPIC_PARTITIONS} partitions: the extra consumers idle")
        for m in dig(h, "spec.metrics") or []:
            if m.get("type") == "Resource":
                res = dig(m, "resource.name")
                if not all(dig(c, f"resources.requests.{res}") for c in containers):
                    p.append(f"{label(h)}: scales on {res} but {label(target)} has no {res} request")

    for np_ in by_kind.get("NetworkPolicy", {}).values():
        sel = dig(np_, "spec.podSelector")
        if sel and not selected(sel) and not any(
                k.startswith("acme.cert-manager.io/") for k in (sel.get("matchLabels") or {})):
            p.append(f"{label(np_)}: podSelector {sel} selects no pods")
        for direction, peer_key in (("ingress", "from"), ("egress", "to")):
            for rule in dig(np_, f"spec.{direction}") or []:
                for peer in rule.get(peer_key) or []:
                    if "podSelector" in peer and "namespaceSelector" not in peer and not selected(peer["podSelector"]):
                        p.append(f"{label(np_)}: {direction} peer {peer['podSelector']} selects no pods here")
    if "default-deny-all" not in by_kind.get("NetworkPolicy", {}):
        p.append("no default-deny-all NetworkPolicy")

    services = list(by_kind.get("Service", {}).values())
    for sm in by_kind.get("ServiceMonitor", {}).values():
        chosen = [s for s in services if selector_matches(dig(sm, "spec.selector"), dig(s, "metadata.labels") or {})]
        if not chosen:
            p.append(f"{label(sm)}: selects no Service")
        ports = {sp.get("name") for s in chosen for sp in dig(s, "spec.ports") or []}
        for ep in dig(sm, "spec.endpoints") or []:
            if ep.get("port") not in ports:
                p.append(f"{label(sm)}: endpoint port {ep.get('port')} is on no selected Service")
        for s in chosen:
            if not {sp.get("name") for sp in dig(s, "spec.ports") or []} & {ep.get("port") for ep in dig(sm, "spec.endpoints") or []}:
                p.append(f"{label(sm)}: selects {label(s)} but scrapes none of its ports")
            for ep in dig(sm, "spec.endpoints") or []:
                p += check_scrape_path(s, ep, pods)

    issuers = set(by_kind.get("Issuer", {}))
    for ing in by_kind.get("Ingress", {}).values():
        ann = dig(ing, "metadata.annotations") or {}
        if any(k.endswith("/rewrite-target") for k in ann):
            p.append(f"{label(ing)}: rewrite-target breaks /api/v1")
        iss = ann.get("cert-manager.io/issuer")
        if iss and iss not in issuers:
            p.append(f"{label(ing)}: cert-manager issuer {iss} does not exist")
        if not dig(ing, "spec.tls"):
            p.append(f"{label(ing)}: no TLS")
        for rule in dig(ing, "spec.rules") or []:
            for path in dig(rule, "http.paths") or []:
                be = dig(path, "backend.service") or {}
                svc = by_kind.get("Service", {}).get(be.get("name"))
                if svc is None:
                    p.append(f"{label(ing)}: backend Service {be.get('name')} does not exist")
                    continue
                pname, pnum = dig(be, "port.name"), dig(be, "port.number")
                if not any(sp.get("name") == pname or sp.get("port") == pnum for sp in dig(svc, "spec.ports") or []):
                    p.append(f"{label(ing)}: backend port {pname or pnum} is not on {label(svc)}")
                if not "/api/v1/anomalies".startswith(path.get("path", "/").rstrip("/") or "/"):
                    p.append(f"{label(ing)}: path {path.get('path')} does not route /api/v1")

    if overlay == "prod":
        for kind, name, path, want in PROD_SPEC:
            o = by_kind.get(kind, {}).get(name)
            got = dig(o, path) if o else None
            if got != want:
                p.append(f"prod {kind}/{name} {path.replace(chr(92), '')} = {got!r}, issue 8 asks {want!r}")
    return p


def check_scrape_path(svc, ep, pods):
    """check_scrape_path: a ServiceMonitor endpoint on one of our Services scrapes a path the binary serves."""
    for sp in dig(svc, "spec.ports") or []:
        if sp.get("name") != ep.get("port"):
            continue
        for o, lbl, spec in pods:
            if not selector_matches(dig(svc, "spec.selector"), lbl):
                continue
            for c in spec.get("containers") or []:
                key = binary_for_image(c.get("image", ""))
                if key in ("ingestor", "api") and resolve_port(c, sp.get("targetPort", sp.get("port"))):
                    if ep.get("path", "/metrics") not in CONTRACTS[key]["paths"]:
                        return [f"ServiceMonitor scrapes {ep.get('path')} on {label(svc)}, not served"]
    return []


def min_replicas(workload, by_kind):
    """min_replicas: the fewest pods a workload runs (its autoscaler's minimum, else spec.replicas)."""
    for h in list(by_kind.get("HorizontalPodAutoscaler", {}).values()) + list(by_kind.get("ScaledObject", {}).values()):
        if dig(h, "spec.scaleTargetRef.name") == dig(workload, "metadata.name"):
            return dig(h, "spec.minReplicas", dig(h, "spec.minReplicaCount"))
    return dig(workload, "spec.replicas", 1)


def check_secret_templates():
    """check_secret_templates: k8s/secrets/ holds placeholders only, never a real value."""
    p = []
    for s in secret_templates():
        if s.get("data"):
            p.append(f"{label(s)}: templates use stringData with REPLACE-ME, not data")
        for k, v in (s.get("stringData") or {}).items():
            if "REPLACE-ME" not in str(v):
                p.append(f"{label(s)}: {k} is not a REPLACE-ME placeholder")
    return p


# ---------------------------------------------------------------------------------------------
# docker-compose
# ---------------------------------------------------------------------------------------------

def compose_env():
    """compose_env: the environment for `docker-compose config`: deploy/compose.env.example's variables."""
    env = dict(os.environ)
    with open(os.path.join(TOP, "deploy", "compose.env.example")) as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env.setdefault(k, v)
    return env


@functools.lru_cache(maxsize=None)
def compose_config():
    """compose_config: docker-compose.yml as `docker-compose config` resolves it (raises on failure)."""
    exe = shutil.which("docker-compose") or "docker-compose"
    out = run([exe, "-f", "docker-compose.yml", "config"], env=compose_env(), timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"docker-compose config failed:\n{out.stderr}")
    return yaml.safe_load(out.stdout)


def compose_env_map(svc):
    """compose_env_map: a service's environment as a dict (config may give a list)."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return env


def txgen_options():
    """txgen_options: the --options chainwatch-txgen --help lists, or None when it is not built."""
    path = os.path.join(BIN, "chainwatch-txgen")
    if not os.access(path, os.X_OK):
        return None
    out = run([path, "--help"], timeout=10)
    return set(re.findall(r"(--[a-z][a-z0-9-]+)", out.stdout + out.stderr))


def check_compose():
    """check_compose: consistency of the resolved docker-compose.yml (see the module docstring)."""
    cfg = compose_config()
    services = cfg.get("services") or {}
    p = []

    def has_healthcheck(name):
        hc = services.get(name, {}).get("healthcheck")
        return bool(hc) and not hc.get("disable")

    ingestors = []
    for name, svc in services.items():
        image = svc.get("image", "")
        for dep, spec in (svc.get("depends_on") or {}).items():
            if dep not in services:
                p.append(f"{name}: depends_on {dep}, which is not a service")
                continue
            cond = spec.get("condition") if isinstance(spec, dict) else None
            if cond == "service_healthy" and not has_healthcheck(dep):
                p.append(f"{name}: waits for {dep} to be healthy but {dep} has no healthcheck")
            elif cond == "service_completed_successfully" and services[dep].get("restart", "no") != "no":
                p.append(f"{name}: waits for {dep} to complete but {dep} restarts")
            elif cond not in ("service_healthy", "service_completed_successfully"):
                p.append(f"{name}: depends_on {dep} without a health or completion condition")
            if set(services[dep].get("profiles") or []) - set(svc.get("profiles") or []):
                p.append(f"{name}: depends on {dep}, which only runs under profiles {services[dep]['profiles']}")
        key = binary_for_image(image)
        if key is None:
            continue
        env = compose_env_map(svc)
        entry = svc.get("entrypoint") or []
        if key == "ingestor" and entry and entry[0].endswith("chainwatch-txgen"):
            opts = txgen_options()
            for arg in svc.get("command") or []:
                if isinstance(arg, str) and arg.startswith("--") and opts is not None and arg not in opts:
                    p.append(f"{name}: chainwatch-txgen has no option {arg}")
            if "demo" not in (svc.get("profiles") or []):
                p.append(f"{name}: txgen must run under the demo profile")
            continue
        for var in sorted(env):
            if not env_allowed(key, var):
                p.append(f"{name}: env {var} is not read by {CONTRACTS[key]['binary'] or 'chainwatch-postgres'}")
        if key == "postgres":
            cmd = " ".join(svc.get("command") or [])
            if "shared_preload_libraries=chainwatch" not in cmd:
                p.append(f"{name}: postgres must run with shared_preload_libraries=chainwatch")
            targets = [v.get("target") if isinstance(v, dict) else str(v).split(":")[1] for v in svc.get("volumes") or []]
            if "/var/lib/postgresql/data" not in targets:
                p.append(f"{name}: no volume for /var/lib/postgresql/data")
            if not has_healthcheck(name):
                p.append(f"{name}: no healthcheck")
            continue
        contract = CONTRACTS[key]
        port = int(env.get(contract["port_env"]) or contract["default_port"])
        test = (svc.get("healthcheck") or {}).get("test") or []
        if not (len(test) >= 4 and test[1] == "chainwatch-probe"):
            p.append(f"{name}: healthcheck must be chainwatch-probe PORT PATH")
        else:
            if int(test[2]) != port:
                p.append(f"{name}: healthcheck port {test[2]} is not {contract['port_env']}={port}")
            if test[3] not in contract["paths"]:
                p.append(f"{name}: healthcheck path {test[3]} is not served")
        if key == "ingestor":
            ingestors.append(name)
            timeout_ms = int(env.get("SHUTDOWN_TIMEOUT_MS") or DEFAULT_SHUTDOWN_TIMEOUT_MS)
            grace = parse_duration(svc.get("stop_grace_period", "10s"))
            if grace * 1000 <= timeout_ms:
                p.append(f"{name}: stop_grace_period {grace} s is not above SHUTDOWN_TIMEOUT_MS {timeout_ms}")
            if not str(env.get("DATABASE_URL", "")).startswith("postgresql://chainwatch_ingestor:"):
                p.append(f"{name}: DATABASE_URL must connect as chainwatch_ingestor (sql/roles.sql)")
        if key == "api" and not str(env.get("DATABASE_URL", "")).startswith("postgresql://chainwatch_api:"):
            p.append(f"{name}: DATABASE_URL must connect as chainwatch_api (sql/roles.sql)")

    if not 2 <= len(ingestors) <= TOPIC_PARTITIONS:
        p.append(f"{len(ingestors)} ingestors; issue 8 asks for 2, and never more than {TOPIC_PARTITIONS} partitions")
    kafka = services.get("kafka") or {}
    kenv = compose_env_map(kafka)
    if not kafka.get("image", "").startswith("apache/kafka:"):
        p.append("kafka: must be the official apache/kafka image")
    if "controller" not in str(kenv.get("KAFKA_PROCESS_ROLES", "")) or any("zookeeper" in s for s in services):
        p.append("kafka: must run in KRaft mode (KAFKA_PROCESS_ROLES with controller, no ZooKeeper)")
    init = " ".join(str(x) for x in (services.get("kafka-init") or {}).get("command") or [])
    if f"--partitions {TOPIC_PARTITIONS}" not in init or "--topic blockchain-transactions" not in init:
        p.append(f"kafka-init must create blockchain-transactions with {TOPIC_PARTITIONS} partitions")
    redis_cmd = " ".join(str(x) for x in (services.get("redis") or {}).get("command") or [])
    if "--requirepass" not in redis_cmd or "--appendonly yes" not in redis_cmd:
        p.append("redis: needs --requirepass and --appendonly yes")
    for name, profile in (("prometheus", "monitoring"), ("grafana", "monitoring"), ("txgen", "demo")):
        if profile not in (services.get(name) or {}).get("profiles", []):
            p.append(f"{name}: must exist under the {profile} profile")
    p += check_prometheus_targets(services)
    return p


def parse_duration(s):
    """parse_duration: seconds in a compose duration ("1m30s", "40s", or a number)."""
    if isinstance(s, (int, float)):
        return s
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)(h|ms|m|s|us)", str(s)):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}[unit]
    return total


def check_prometheus_targets(services):
    """check_prometheus_targets: monitoring/prometheus.yml scrapes compose services on their binaries' ports."""
    p = []
    with open(os.path.join(TOP, "monitoring", "prometheus.yml")) as fh:
        prom = yaml.safe_load(fh)
    scraped = set()
    for job in prom.get("scrape_configs") or []:
        path = job.get("metrics_path", "/metrics")
        for sc in job.get("static_configs") or []:
            for target in sc.get("targets") or []:
                host, _, port = target.partition(":")
                svc = services.get(host)
                if svc is None:
                    p.append(f"prometheus.yml: target {target} is not a compose service")
                    continue
                key = binary_for_image(svc.get("image", ""))
                if key not in ("ingestor", "api"):
                    continue
                scraped.add(host)
                want = int(compose_env_map(svc).get(CONTRACTS[key]["port_env"]) or CONTRACTS[key]["default_port"])
                if int(port) != want:
                    p.append(f"prometheus.yml: {target} is not {host}'s {CONTRACTS[key]['port_env']}={want}")
                if path not in CONTRACTS[key]["paths"]:
                    p.append(f"prometheus.yml: {job['job_name']} scrapes {path}, not served")
    for name, svc in services.items():
        key = binary_for_image(svc.get("image", ""))
        if key in ("ingestor", "api") and not (svc.get("entrypoint") or [""])[0].endswith("txgen") and name not in scraped:
            p.append(f"prometheus.yml: {name} is not scraped")
    return p


# ---------------------------------------------------------------------------------------------
# Dockerfiles
# ---------------------------------------------------------------------------------------------

DOCKERFILES = {
    "deploy/docker/ingestor/Dockerfile": {"healthcheck": True},
    "deploy/docker/api/Dockerfile": {"healthcheck": True},
    "deploy/docker/postgres/Dockerfile": {"healthcheck": True},
}
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|make|pkg-config|[a-z0-9.+-]+-dev|build-essential)\b")


def dockerfile_stages(text):
    """dockerfile_stages: the instructions (continuations joined, comments dropped) of each stage."""
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        cur += " " + s.rstrip("\\").strip() if cur else s.rstrip("\\").strip()
        if not s.endswith("\\"):
            lines.append(cur)
            cur = ""
    stages = []
    for ln in lines:
        if ln.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(ln)
    return stages


def check_dockerfiles():
    """check_dockerfiles: multi-stage, non-root, STOPSIGNAL SIGTERM, no build tools in the final stage."""
    p, notes = [], []
    for rel, want in DOCKERFILES.items():
        with open(os.path.join(TOP, rel)) as fh:
            stages = dockerfile_stages(fh.read())
        if len(stages) < 2:
            p.append(f"{rel}: not multi-stage")
            continue
        final = stages[-1]
        users = [ln.split(None, 1)[1] for ln in final if ln.upper().startswith("USER ")]
        if not users or users[-1].split(":")[0] in ("root", "0"):
            p.append(f"{rel}: the final stage must end as a non-root USER")
        if not any(re.fullmatch(r"STOPSIGNAL\s+SIGTERM", ln, re.I) for ln in final):
            p.append(f"{rel}: no STOPSIGNAL SIGTERM in the final stage")
        if want["healthcheck"] and not any(ln.upper().startswith("HEALTHCHECK ") for ln in final):
            p.append(f"{rel}: no HEALTHCHECK")
        for ln in final:
            if ln.upper().startswith("RUN ") and "install" in ln:
                pkgs = ln.split("install", 1)[1]
                bad = [m for m in BUILD_TOOLS.findall(pkgs) if m]
                if bad:
                    p.append(f"{rel}: the final stage installs build tools {bad}")
        for st in stages:
            for ln in st:
                parts = ln.split()
                if parts[0].upper() == "COPY" and not any(a.startswith("--from") for a in parts[1:-1]):
                    for src in [a for a in parts[1:-1] if not a.startswith("--")]:
                        if not os.path.exists(os.path.join(TOP, src)):
                            if src.rstrip("/") in ("ingestor", "apiserver"):
                                notes.append(f"NOTE: {rel} copies {src}, which does not exist yet (being written)")
                            else:
                                p.append(f"{rel}: COPY source {src} does not exist")
    return p, notes


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------

def all_checks():
    """all_checks: (name, function) of every check, in report order."""
    checks = [("yamllint", check_yamllint), ("compose", check_compose), ("secret-templates", check_secret_templates),
              ("dockerfiles", lambda: check_dockerfiles()[0]), ("help-contracts", help_contract_problems)]
    for o in OVERLAYS:
        checks.append((f"schemas-{o}", functools.partial(check_schemas, o)))
        checks.append((f"k8s-{o}", functools.partial(check_k8s, o)))
    return checks


def main():
    failed = 0
    for line in help_skips() + check_dockerfiles()[1]:
        print(line)
    for name, fn in all_checks():
        try:
            problems = fn()
        except Exception as e:  # a check that cannot run is a failure with its reason
            problems = [f"{type(e).__name__}: {e}"]
        print(f"{'ok  ' if not problems else 'FAIL'} {name}")
        for x in problems:
            print(f"     {x}")
        failed += bool(problems)
    print(f"{len(all_checks()) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
