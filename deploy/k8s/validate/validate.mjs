// validate.mjs: offline checks of the deployment files, run by
// scripts/validate-deploy.sh (and so by `make test`).
//
//   node validate.mjs ROOT             check everything, exit 1 on any error
//   node validate.mjs ROOT --write-edge
//                                      rewrite the nginx.conf ConfigMap in
//                                      deploy/k8s/edge.yaml from compose/nginx.conf
//
// 1. Schemas. Every document of deploy/k8s/*.yaml is validated against the
//    Kubernetes 1.27 OpenAPI schemas bundled in the npm package
//    kubernetes-models (pinned in package-lock.json; compiled ajv
//    validators, no network). Those validators accept unknown fields, so a
//    second pass rejects any field name that no Kubernetes schema has (a
//    typo such as "readinesProbe" would otherwise be silently ignored by the
//    API server's non-strict decoding), skipping free-form maps (labels,
//    annotations, ConfigMap data...).
// 2. Structure of the manifests: every folder of services/ (the broker
//    apart) has a Deployment that runs it, with the exec readiness probe,
//    an HPA and a PDB; the gateway's probes are /readyz and /healthz; the
//    broker is a single Recreate replica; Postgres is a StatefulSet with a
//    volume claim; every container has requests and limits for cpu and
//    memory; every configMapKeyRef/secretKeyRef names a key that exists;
//    kustomization.yaml lists every manifest except the Secret template;
//    the edge's nginx.conf is compose/nginx.conf with its two documented
//    changes (the resolver, and the gateway's name as a cluster FQDN).
// 3. Structure of compose/docker-compose.yml (the schema itself is checked
//    by `docker-compose config`): every service folder has a Compose
//    service running it with a healthcheck and a restart policy, nothing
//    but the edge publishes a port, no container_name (it would break
//    --scale), the broker is not replicated.
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

const root = path.resolve(process.argv[2] || "../../..");
const writeEdge = process.argv.includes("--write-edge");
const k8sDir = path.join(root, "deploy/k8s");
const here = path.dirname(new URL(import.meta.url).pathname);
const errors = [];
const fail = (where, message) => errors.push(`${where}: ${message}`);

// ---------------------------------------------------------------------------
// The service folders (the broker is infrastructure, not a worker service).

const serviceNames = fs
  .readdirSync(path.join(root, "services"), { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && entry.name !== "broker")
  .map((entry) => entry.name)
  .sort();

// ---------------------------------------------------------------------------
// The edge's nginx.conf: compose/nginx.conf with two lines changed: the
// resolver (Docker's embedded DNS -> the cluster DNS) and the upstream host
// (nginx's resolver does not use search domains, so the headless gateway
// Service is named by its FQDN).

const EDGE_HEADER_END = "  nginx.conf: |\n";

function edgeNginxConf() {
  const compose = fs.readFileSync(path.join(root, "compose/nginx.conf"), "utf8");
  const changes = {
    "    resolver 127.0.0.11 valid=10s ipv6=off;":
      "    resolver kube-dns.kube-system.svc.cluster.local valid=5s ipv6=off;",
    "        server gateway:8080 resolve max_fails=0;":
      "        server gateway.instaclone.svc.cluster.local:8080 resolve max_fails=0;",
  };
  const lines = compose.split("\n");
  for (const line of Object.keys(changes))
    if (!lines.includes(line)) fail("compose/nginx.conf", `expected the line "${line.trim()}"`);
  return lines.map((line) => changes[line] ?? line).join("\n");
}

function indentBlock(text) {
  return text
    .replace(/\n$/, "")
    .split("\n")
    .map((line) => (line.trim() === "" ? "" : `    ${line}`))
    .join("\n");
}

if (writeEdge) {
  const file = path.join(k8sDir, "edge.yaml");
  const text = fs.readFileSync(file, "utf8");
  const start = text.indexOf(EDGE_HEADER_END);
  const end = text.indexOf("\n---\n", start);
  if (start < 0 || end < 0) {
    console.error("edge.yaml: cannot find the nginx.conf block");
    process.exit(1);
  }
  const updated =
    text.slice(0, start + EDGE_HEADER_END.length) + indentBlock(edgeNginxConf()) + text.slice(end);
  fs.writeFileSync(file, updated);
  console.log("edge.yaml: nginx.conf rewritten from compose/nginx.conf");
  process.exit(0);
}

// ---------------------------------------------------------------------------
// Known field names, from the bundled compiled schemas.

function knownFieldNames() {
  const names = new Set();
  const dirs = [
    path.join(here, "node_modules/kubernetes-models/_schemas"),
    path.join(here, "node_modules/@kubernetes-models/apimachinery/_schemas"),
  ];
  for (const dir of dirs) {
    for (const file of fs.readdirSync(dir)) {
      if (!file.endsWith(".mjs")) continue;
      const source = fs.readFileSync(path.join(dir, file), "utf8");
      for (const m of source.matchAll(/data\.([A-Za-z_$][\w$]*)/g)) names.add(m[1]);
      for (const m of source.matchAll(/data\["([^"]+)"\]/g)) names.add(m[1]);
    }
  }
  return names;
}

// Maps whose keys are the user's, not the schema's.
const FREE_FORM_KEYS = new Set([
  "labels",
  "annotations",
  "matchLabels",
  "data",
  "stringData",
  "binaryData",
  "limits",
  "requests",
  "nodeSelector",
  "capacity",
]);

function checkFieldNames(where, kind, value, known, trail = []) {
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkFieldNames(where, kind, item, known, [...trail, i]));
    return;
  }
  if (!value || typeof value !== "object") return;
  for (const [key, child] of Object.entries(value)) {
    const here = [...trail, key];
    if (!known.has(key)) fail(where, `unknown field "${here.join(".")}"`);
    const serviceSelector = kind === "Service" && here.join(".") === "spec.selector";
    if (FREE_FORM_KEYS.has(key) || serviceSelector) continue;
    checkFieldNames(where, kind, child, known, here);
  }
}

// ---------------------------------------------------------------------------
// Schema validation with kubernetes-models.

function modelPath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

async function validateSchema(where, doc) {
  if (typeof doc.apiVersion !== "string" || typeof doc.kind !== "string") {
    fail(where, "apiVersion and kind are required");
    return;
  }
  let module;
  try {
    module = await import(modelPath(doc.apiVersion, doc.kind));
  } catch {
    fail(where, `no schema for ${doc.apiVersion} ${doc.kind}`);
    return;
  }
  const Model = module[doc.kind] || module.default;
  try {
    new Model(doc).validate();
  } catch (err) {
    fail(where, `schema: ${String(err.message || err).split("\n").slice(0, 5).join("; ")}`);
  }
}

// ---------------------------------------------------------------------------
// Load the manifests.

const manifestFiles = fs
  .readdirSync(k8sDir)
  .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
  .sort();
const docs = []; // {file, doc}
for (const file of manifestFiles) {
  const text = fs.readFileSync(path.join(k8sDir, file), "utf8");
  for (const parsed of YAML.parseAllDocuments(text)) {
    if (parsed.errors.length) {
      fail(file, `YAML: ${parsed.errors.map((e) => e.message).join("; ")}`);
      continue;
    }
    const doc = parsed.toJS();
    if (doc == null) continue;
    docs.push({ file, doc });
  }
}

const known = knownFieldNames();
for (const { file, doc } of docs) {
  const where = `${file} ${doc.kind || "?"}/${doc.metadata?.name || "?"}`;
  await validateSchema(where, doc);
  checkFieldNames(where, doc.kind, doc, known);
  if (doc.kind !== "Namespace" && doc.metadata?.namespace !== "instaclone")
    fail(where, "metadata.namespace must be instaclone");
}

// ---------------------------------------------------------------------------
// Structure of the manifests.

const byKind = (kind) => docs.filter(({ doc }) => doc.kind === kind);
const find = (kind, name) => byKind(kind).find(({ doc }) => doc.metadata?.name === name);
const podSpec = (doc) =>
  doc.kind === "CronJob" ? doc.spec?.jobTemplate?.spec?.template?.spec : doc.spec?.template?.spec;
const workloads = docs.filter(({ doc }) =>
  ["Deployment", "StatefulSet", "CronJob", "DaemonSet", "Job"].includes(doc.kind),
);

// Every container: requests and limits for cpu and memory.
for (const { file, doc } of workloads) {
  for (const c of podSpec(doc)?.containers || []) {
    for (const section of ["requests", "limits"])
      for (const resource of ["cpu", "memory"])
        if (!c.resources?.[section]?.[resource])
          fail(`${file} ${doc.kind}/${doc.metadata.name}`, `container ${c.name}: no resources.${section}.${resource}`);
  }
}

// Keys referenced from ConfigMaps and Secrets exist.
const mapKeys = (kind, name) => {
  const found = find(kind, name);
  if (!found) return null;
  return new Set(Object.keys({ ...(found.doc.data || {}), ...(found.doc.stringData || {}) }));
};
for (const { file, doc } of workloads) {
  for (const c of podSpec(doc)?.containers || []) {
    for (const env of c.env || []) {
      const cm = env.valueFrom?.configMapKeyRef;
      const sec = env.valueFrom?.secretKeyRef;
      const ref = cm ? ["ConfigMap", cm] : sec ? ["Secret", sec] : null;
      if (!ref) continue;
      const keys = mapKeys(ref[0], ref[1].name);
      if (!keys) fail(`${file} ${doc.metadata.name}`, `${ref[0]} ${ref[1].name} not defined`);
      else if (!keys.has(ref[1].key))
        fail(`${file} ${doc.metadata.name}`, `${ref[0]} ${ref[1].name} has no key ${ref[1].key}`);
    }
    for (const from of c.envFrom || []) {
      if (from.configMapRef && !find("ConfigMap", from.configMapRef.name))
        fail(`${file} ${doc.metadata.name}`, `ConfigMap ${from.configMapRef.name} not defined`);
    }
  }
}
if (!find("ConfigMap", "app-config")) fail("deploy/k8s", "no ConfigMap app-config");
if (!find("Secret", "app-secrets")) fail("deploy/k8s", "no Secret app-secrets (template)");

function containerRunning(doc, program) {
  return (podSpec(doc)?.containers || []).find(
    (c) => JSON.stringify(c.args || c.command || []) === JSON.stringify([program]),
  );
}
const hpaFor = (name) =>
  byKind("HorizontalPodAutoscaler").find(({ doc }) => doc.spec?.scaleTargetRef?.name === name);
const pdbFor = (name) =>
  byKind("PodDisruptionBudget").find(
    ({ doc }) => doc.spec?.selector?.matchLabels?.["app.kubernetes.io/name"] === name,
  );

for (const name of serviceNames) {
  const found = find("Deployment", name);
  if (!found) {
    fail("deploy/k8s", `service ${name} (services/${name}/) has no Deployment`);
    continue;
  }
  const where = `${found.file} Deployment/${name}`;
  const c = containerRunning(found.doc, name);
  if (!c) fail(where, `no container with args ["${name}"]`);
  else {
    const probe = JSON.stringify(c.readinessProbe?.exec?.command || []);
    if (probe !== JSON.stringify(["probe", "service", name]))
      fail(where, `readinessProbe must exec ["probe","service","${name}"]`);
    const envNames = new Set((c.env || []).map((e) => e.name));
    for (const need of ["DATABASE_URL", "CURSOR_SECRET", "POD_IP"])
      if (!envNames.has(need)) fail(where, `env ${need} missing`);
  }
  if (found.doc.spec?.strategy?.rollingUpdate?.maxUnavailable !== 0)
    fail(where, "rolling updates must keep every replica (maxUnavailable: 0)");
  if (!hpaFor(name)) fail(where, "no HorizontalPodAutoscaler");
  if (!pdbFor(name)) fail(where, "no PodDisruptionBudget");
}

{
  const found = find("Deployment", "gateway");
  if (!found) fail("deploy/k8s", "no gateway Deployment");
  else {
    const where = `${found.file} Deployment/gateway`;
    const c = containerRunning(found.doc, "gateway");
    if (c?.readinessProbe?.httpGet?.path !== "/readyz") fail(where, "readinessProbe must GET /readyz");
    if (c?.livenessProbe?.httpGet?.path !== "/healthz") fail(where, "livenessProbe must GET /healthz");
    if (!c?.lifecycle?.preStop) fail(where, "needs a preStop pause (endpoint removal before SIGTERM)");
    if (!hpaFor("gateway")) fail(where, "no HorizontalPodAutoscaler");
    const svc = find("Service", "gateway");
    if (!svc) fail(where, "no gateway Service");
    else if ((svc.doc.spec?.type || "ClusterIP") !== "ClusterIP")
      fail(`${svc.file} Service/gateway`, "the gateway must not be exposed (ClusterIP only: CVE-2025-55763)");
  }
  const broker = find("Deployment", "broker");
  if (!broker) fail("deploy/k8s", "no broker Deployment");
  else {
    const where = `${broker.file} Deployment/broker`;
    if (broker.doc.spec?.replicas !== 1) fail(where, "the broker must have exactly 1 replica");
    if (broker.doc.spec?.strategy?.type !== "Recreate") fail(where, "the broker must update with Recreate");
    if (hpaFor("broker")) fail(where, "the broker must not be autoscaled");
    if (!find("Service", "broker")) fail(where, "no broker Service");
  }
  const pg = find("StatefulSet", "postgres");
  if (!pg) fail("deploy/k8s", "no postgres StatefulSet");
  else if (!(pg.doc.spec?.volumeClaimTemplates || []).length)
    fail(`${pg.file} StatefulSet/postgres`, "needs a volumeClaimTemplate (PVC)");
  for (const { file, doc } of byKind("Service")) {
    if (["LoadBalancer", "NodePort"].includes(doc.spec?.type) && doc.metadata.name !== "edge")
      fail(`${file} Service/${doc.metadata.name}`, "only the edge may be exposed outside the cluster");
  }
}

// kustomization.yaml lists every manifest but the Secret template.
{
  const kust = YAML.parse(fs.readFileSync(path.join(k8sDir, "kustomization.yaml"), "utf8"));
  const listed = new Set(kust.resources || []);
  for (const file of manifestFiles) {
    if (file === "secret.example.yaml") {
      if (listed.has(file)) fail("kustomization.yaml", "must not list the Secret template");
    } else if (!listed.has(file)) fail("kustomization.yaml", `does not list ${file}`);
  }
  for (const file of listed)
    if (!manifestFiles.includes(file)) fail("kustomization.yaml", `lists missing file ${file}`);
}

// The edge's nginx.conf matches compose/nginx.conf.
{
  const edge = find("ConfigMap", "edge-nginx");
  if (!edge) fail("deploy/k8s", "no ConfigMap edge-nginx");
  else {
    const want = edgeNginxConf().replace(/\n+$/, "");
    const have = String(edge.doc.data?.["nginx.conf"] || "").replace(/\n+$/, "");
    if (want !== have)
      fail(
        `${edge.file} ConfigMap/edge-nginx`,
        "nginx.conf differs from compose/nginx.conf (regenerate: node deploy/k8s/validate/validate.mjs . --write-edge)",
      );
  }
}

// ---------------------------------------------------------------------------
// Structure of compose/docker-compose.yml.

{
  const file = "compose/docker-compose.yml";
  const compose = YAML.parse(fs.readFileSync(path.join(root, file), "utf8"), { merge: true });
  const services = compose.services || {};
  const runs = (svc, program) => JSON.stringify(svc.command || []) === JSON.stringify([program]);
  const findProgram = (program) => Object.entries(services).find(([, svc]) => runs(svc, program));
  for (const program of [...serviceNames, "broker", "gateway"]) {
    const found = findProgram(program);
    if (!found) {
      fail(file, `no service runs ${program}`);
      continue;
    }
    const [name, svc] = found;
    if (!svc.healthcheck?.test) fail(file, `${name}: no healthcheck`);
    if (!svc.restart) fail(file, `${name}: no restart policy`);
    if (svc.ports) fail(file, `${name}: must not publish ports (only the edge does)`);
    if (serviceNames.includes(program)) {
      const env = svc.environment || {};
      for (const need of ["BROKER_URL", "DATABASE_URL", "CURSOR_SECRET"])
        if (!(need in env)) fail(file, `${name}: environment lacks ${need}`);
    }
  }
  for (const [name, svc] of Object.entries(services)) {
    if (svc.container_name) fail(file, `${name}: container_name breaks --scale`);
    if (svc.ports && name !== "edge") fail(file, `${name}: only the edge publishes ports`);
  }
  const broker = findProgram("broker");
  if (broker && (broker[1].deploy?.replicas ?? 1) !== 1) fail(file, "the broker must not be replicated");
  if (!services.edge || !/nginx/.test(services.edge.image || "")) fail(file, "no nginx edge service");
  if (!services.postgres?.healthcheck) fail(file, "postgres: no healthcheck");
  if (!(services.postgres?.volumes || []).some((v) => String(v).startsWith("pgdata:")))
    fail(file, "postgres: data must live on the named volume pgdata");
}

// ---------------------------------------------------------------------------

const kinds = {};
for (const { doc } of docs) kinds[doc.kind] = (kinds[doc.kind] || 0) + 1;
if (errors.length) {
  for (const e of errors) console.error(`error: ${e}`);
  console.error(`k8s/compose validation: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(
  `k8s: ${docs.length} documents in ${manifestFiles.length} files valid against the Kubernetes 1.27 schemas ` +
    `(${Object.entries(kinds)
      .map(([k, n]) => `${n} ${k}`)
      .join(", ")}); services covered: ${serviceNames.join(", ")}; compose structure ok`,
);
