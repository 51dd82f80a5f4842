# tests/deploy/test_deploy.py — `make check`: the deployment files are valid and agree with the binaries
#
# Thin pytest wrapper over check_manifests.py and metrics_named.py (each check returns its
# problems; an empty list passes). The mutation tests at the end feed the checker broken copies of
# the rendered objects, so a checker that silently stopped checking would fail here too.
import copy
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import check_manifests as cm  # noqa: E402
import metrics_named  # noqa: E402

OVERLAYS = sorted(cm.OVERLAYS)


def assert_none(problems):
    assert not problems, "\n".join(problems)


def test_help_comparison_status():
    """Reports (as a skip) which binaries' --help could not be compared yet."""
    assert_none(cm.help_contract_problems())
    skips = cm.help_skips()
    if skips:
        pytest.skip("; ".join(skips))


def test_yamllint():
    assert_none(cm.check_yamllint())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_renders(overlay):
    assert cm.render(overlay), f"{overlay} renders no objects"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_schemas(overlay):
    assert_none(cm.check_schemas(overlay))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_consistency(overlay):
    assert_none(cm.check_k8s(overlay))


def test_secret_templates_are_placeholders():
    assert_none(cm.check_secret_templates())


def test_compose_config_and_consistency():
    assert_none(cm.check_compose())


def test_dockerfiles():
    problems, _notes = cm.check_dockerfiles()
    assert_none(problems)


def test_shell_scripts_parse():
    for rel in ("deploy/postgres/chainwatch-bootstrap.sh", "deploy/postgres/initdb/50-chainwatch.sh",
                "deploy/docker/chainwatch-probe"):
        out = subprocess.run(["bash", "-n", os.path.join(cm.TOP, rel)], capture_output=True, text=True)
        assert out.returncode == 0, f"{rel}: {out.stderr}"


def test_monitoring_names_only_exported_metrics():
    assert metrics_named.named_metrics(), "no metric found in monitoring/: the extractor is broken"
    assert_none(metrics_named.problems())


def test_metrics_named_against_a_scrape():
    text = "# TYPE chainwatch_ingest_batch_duration_seconds histogram\nchainwatch_ingest_batch_duration_seconds_bucket{le=\"1\"} 3\n"
    exported = metrics_named.scraped_names([text])
    assert metrics_named.resolve("chainwatch_ingest_batch_duration_seconds_bucket", exported)
    assert any("chainwatch_db_up" in p for p in metrics_named.problems(exported))


# ---- the checker bites ---------------------------------------------------------------------


def mutated(overlay, kind, name, fn):
    """mutated: check_k8s problems of `overlay` after fn(obj) changed one rendered object."""
    objs = copy.deepcopy(cm.render(overlay))
    target = next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)
    fn(target)
    real = cm.render
    cm.render = lambda _o: objs
    try:
        return cm.check_k8s(overlay)
    finally:
        cm.render = real


def container(obj):
    return obj["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("case, kind, name, fn, expect", [
    ("probe path", "Deployment", "chainwatch-api",
     lambda o: container(o)["readinessProbe"]["httpGet"].update(path="/healthz"), "is not served"),
    ("probe port", "Deployment", "chainwatch-ingestor",
     lambda o: container(o)["livenessProbe"]["httpGet"].update(port=8080), "port 8080"),
    ("unknown env", "Deployment", "chainwatch-api",
     lambda o: container(o)["env"].append({"name": "REDIS_URL", "value": "x"}), "REDIS_URL is not read"),
    ("secret key", "Deployment", "chainwatch-ingestor",
     lambda o: container(o)["env"][0]["valueFrom"]["secretKeyRef"].update(key="url"), "has no key url"),
    ("service selector", "Service", "chainwatch-api",
     lambda o: o["spec"].update(selector={"app": "chainwatch-api"}), "selects no pods"),
    ("pdb selector", "PodDisruptionBudget", "chainwatch-ingestor",
     lambda o: o["spec"]["selector"].update(matchLabels={"app": "ingestor"}), "selects no pods"),
    ("hpa target", "HorizontalPodAutoscaler", "chainwatch-api",
     lambda o: o["spec"]["scaleTargetRef"].update(name="api"), "does not exist"),
    ("too many ingestors", "HorizontalPodAutoscaler", "chainwatch-ingestor",
     lambda o: o["spec"].update(maxReplicas=20), "partitions"),
    ("grace period", "Deployment", "chainwatch-ingestor",
     lambda o: o["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=30), "SHUTDOWN_TIMEOUT_MS"),
    ("rewrite", "Ingress", "chainwatch-api",
     lambda o: o["metadata"]["annotations"].update({"nginx.ingress.kubernetes.io/rewrite-target": "/"}), "rewrite"),
    ("servicemonitor port", "ServiceMonitor", "chainwatch",
     lambda o: o["spec"]["endpoints"][0].update(port="web"), "endpoint port web"),
    ("netpol peer", "NetworkPolicy", "chainwatch-redis",
     lambda o: o["spec"]["ingress"][0]["from"][0]["podSelector"].update(matchLabels={"app": "api"}), "selects no pods"),
    ("root filesystem", "Deployment", "chainwatch-api",
     lambda o: container(o)["securityContext"].update(readOnlyRootFilesystem=False), "readOnlyRootFilesystem"),
])
def test_checker_catches(case, kind, name, fn, expect):
    problems = mutated("prod", kind, name, fn)
    assert any(expect in p for p in problems), f"{case}: not caught; problems: {problems}"
