// tests/deploy/validate_schemas.mjs — validate Kubernetes objects against the API schemas, offline
//
// Reads a JSON array of objects on stdin (check_manifests.py renders the overlays), validates each
// with the kubernetes-models class for its apiVersion/kind (core API, cert-manager, prometheus-operator,
// KEDA), and prints a JSON array: {kind, name, status: "ok" | "invalid" | "unsupported", errors}.
// "unsupported" (e.g. CloudNativePG's Cluster) is checked structurally by check_manifests.py.

const PACKAGES = {
  "cert-manager.io": "@kubernetes-models/cert-manager",
  "acme.cert-manager.io": "@kubernetes-models/cert-manager",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "keda.sh": "@kubernetes-models/keda",
};

// modulePath — the kubernetes-models module exporting the classes of one apiVersion, or null
function modulePath(apiVersion) {
  const slash = apiVersion.indexOf("/");
  if (slash < 0) return `kubernetes-models/${apiVersion}`;
  const group = apiVersion.slice(0, slash);
  if (PACKAGES[group]) return `${PACKAGES[group]}/${apiVersion}`;
  if (!group.includes(".") || group.endsWith(".k8s.io")) return `kubernetes-models/${apiVersion}`;
  return null;
}

const input = await new Promise((resolve) => {
  let buf = "";
  process.stdin.on("data", (d) => (buf += d));
  process.stdin.on("end", () => resolve(buf));
});
const results = [];
for (const obj of JSON.parse(input)) {
  const name = obj?.metadata?.name ?? "?";
  const kind = obj?.kind ?? "?";
  const path = modulePath(obj?.apiVersion ?? "");
  let Model = null;
  if (path) {
    try {
      Model = (await import(path))[kind] ?? null;
    } catch {
      Model = null;
    }
  }
  if (!Model) {
    results.push({ kind, name, apiVersion: obj.apiVersion, status: "unsupported", errors: [] });
    continue;
  }
  try {
    new Model(obj).validate();
    results.push({ kind, name, apiVersion: obj.apiVersion, status: "ok", errors: [] });
  } catch (e) {
    const errors = (e.errors ?? [{ message: e.message }]).map(
      (x) => `${x.instancePath ?? ""} ${x.message ?? ""} ${x.params ? JSON.stringify(x.params) : ""}`.trim(),
    );
    results.push({ kind, name, apiVersion: obj.apiVersion, status: "invalid", errors });
  }
}
process.stdout.write(JSON.stringify(results));
