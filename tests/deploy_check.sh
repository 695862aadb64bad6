#!/usr/bin/env bash
# Checks the deployment files: the compose file and Prometheus config are what
# deploy/generate.sh writes and pass docker-compose's and promtool's own
# validation (for 2 and 4 GPUs); the Kubernetes manifests and the Grafana
# provisioning and dashboards parse and say what the docs promise.
set -euo pipefail
src=${1:?usage: deploy_check.sh SOURCE_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$src/deploy/generate.sh" 2 "$tmp/2" >/dev/null
diff -u "$src/deploy/docker-compose.yml" "$tmp/2/docker-compose.yml"
diff -u "$src/deploy/prometheus/prometheus.yml" "$tmp/2/prometheus/prometheus.yml"
docker-compose -f "$src/deploy/docker-compose.yml" config -q
promtool check config "$src/deploy/prometheus/prometheus.yml"

"$src/deploy/generate.sh" 4 "$tmp/4" >/dev/null
docker-compose -f "$tmp/4/docker-compose.yml" config -q
promtool check config "$tmp/4/prometheus/prometheus.yml"
test "$(grep -c 'device_ids' "$tmp/4/docker-compose.yml")" -eq 4
test "$(grep -c 'server-[0-9]:9400' "$tmp/4/prometheus/prometheus.yml")" -eq 4

/usr/bin/python3 - "$src" <<'PY'
import json, pathlib, sys, yaml
src = pathlib.Path(sys.argv[1])
docs = {}
for path in sorted((src / "deploy/k8s").glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        docs[doc["kind"]] = doc
sts = docs["StatefulSet"]["spec"]
pod = sts["template"]
container = pod["spec"]["containers"][0]
assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
# The orchestrator waits longer than the server drains (drain_deadline_s).
drain = yaml.safe_load((src / "configs/server.yaml").read_text())["drain_deadline_s"]
assert pod["spec"]["terminationGracePeriodSeconds"] > drain + 5
svc = docs["Service"]["spec"]
assert svc["clusterIP"] == "None", "the Service must be headless"
assert docs["Service"]["metadata"]["name"] == sts["serviceName"]
assert "ServiceMonitor" in docs
compose = yaml.safe_load((src / "deploy/docker-compose.yml").read_text())
for name, service in compose["services"].items():
    if name.startswith("server-"):
        assert service["stop_grace_period"] == "60s" and 60 > drain + 5
        assert service["healthcheck"]["test"][1] == "coldcompress"
ds = yaml.safe_load((src / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text())
uid = ds["datasources"][0]["uid"]
for path in sorted((src / "deploy/grafana/dashboards").glob("*.json")):
    board = json.loads(path.read_text())
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == uid, (path.name, panel["title"])
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["instance", "policy"], names
print("deployment files OK")
PY
