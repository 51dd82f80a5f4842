# tests/suites/50-deploy.sh — sourced by tests/run-all.sh: Dockerfiles, docker-compose.yml, k8s/ and monitoring/
#
# Offline (no Docker engine, no cluster): yamllint, docker-compose config, kubectl kustomize, schema
# validation with npm kubernetes-models (installed into tests/deploy/node_modules by `npm ci` on
# the first run), and tests/deploy/check_manifests.py's consistency checks. About 15 s.
pytest_suite deploy tests/deploy/test_deploy.py
