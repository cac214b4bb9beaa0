/**
 * A small kustomize renderer for the tests (no kustomize or kubectl binary here). It does only what
 * k8s/ uses: resources (files and folders), namespace, labels, images and patches (strategic merge
 * by file, JSON 6902 inline with a kind/name target). Any other kustomization field is an error, so
 * the tests never pass on something this renderer silently skipped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments, parse } from 'yaml';

export type Obj = Record<string, unknown>;

export interface K8sObject extends Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> } & Obj;
}

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  resources?: string[];
  labels?: { pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }[];
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
  patches?: { path?: string; patch?: string; target?: { kind?: string; name?: string } }[];
}

const SUPPORTED = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'labels', 'images', 'patches']);
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'StorageClass',
  'PriorityClass',
]);
const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

/** Strategic-merge keys of the lists k8s/ patches; other lists are replaced, as for atomic lists. */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
};
/** Lists that merge by key in Kubernetes but that this renderer does not merge: patch them with JSON 6902. */
const UNSUPPORTED_LISTS = new Set(['ports', 'imagePullSecrets', 'envFrom', 'tolerations']);

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export function readYamlDocuments(file: string): K8sObject[] {
  return parseAllDocuments(fs.readFileSync(file, 'utf8'))
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0].message}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

export function strategicMerge(base: unknown, patch: unknown, field = ''): unknown {
  if (isObj(base) && isObj(patch)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = k in base ? strategicMerge(base[k], v, k) : v;
    }
    return out;
  }
  if (Array.isArray(base) && Array.isArray(patch)) {
    if (UNSUPPORTED_LISTS.has(field)) throw new Error(`strategic merge of "${field}" lists is not supported`);
    const key = MERGE_KEYS[field];
    if (!key) return patch;
    const out = base.map((item) => ({ ...(item as Obj) }));
    for (const item of patch as Obj[]) {
      const i = out.findIndex((b) => b[key] === item[key]);
      if (i >= 0) out[i] = strategicMerge(out[i], item) as Obj;
      else out.push(item);
    }
    return out;
  }
  return patch;
}

function pointer(p: string): string[] {
  if (!p.startsWith('/')) throw new Error(`bad JSON pointer ${p}`);
  return p
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

export function applyJson6902(doc: K8sObject, ops: { op: string; path: string; value?: unknown }[]): void {
  for (const op of ops) {
    const parts = pointer(op.path);
    const last = parts.pop() as string;
    let parent: unknown = doc;
    for (const part of parts) {
      parent = Array.isArray(parent) ? parent[Number(part)] : (parent as Obj | undefined)?.[part];
      if (parent === undefined) throw new Error(`JSON patch path ${op.path} not found`);
    }
    const exists = Array.isArray(parent) ? Number(last) < parent.length : isObj(parent) && last in parent;
    switch (op.op) {
      case 'add':
        if (Array.isArray(parent)) {
          if (last === '-') parent.push(op.value);
          else parent.splice(Number(last), 0, op.value);
        } else (parent as Obj)[last] = op.value;
        break;
      case 'replace':
        if (!exists) throw new Error(`JSON patch replace: ${op.path} does not exist`);
        if (Array.isArray(parent)) parent[Number(last)] = op.value;
        else (parent as Obj)[last] = op.value;
        break;
      case 'remove':
        if (!exists) throw new Error(`JSON patch remove: ${op.path} does not exist`);
        if (Array.isArray(parent)) parent.splice(Number(last), 1);
        else delete (parent as Obj)[last];
        break;
      default:
        throw new Error(`JSON patch op ${op.op} is not supported`);
    }
  }
}

function containersOf(o: K8sObject): Obj[] {
  const spec = (((o.spec as Obj | undefined)?.template as Obj | undefined)?.spec ?? {}) as Obj;
  return [...((spec.containers as Obj[]) ?? []), ...((spec.initContainers as Obj[]) ?? [])];
}

function setImages(objects: K8sObject[], images: NonNullable<Kustomization['images']>): void {
  for (const o of objects)
    for (const c of containersOf(o)) {
      const m = /^([^@:]+(?::\d+\/[^@:]+)?)(?::([^@]+))?(?:@(.+))?$/.exec(String(c.image));
      const rule = m && images.find((i) => i.name === m[1]);
      if (!m || !rule) continue;
      const name = rule.newName ?? m[1];
      const tag = rule.newTag ?? m[2];
      c.image = rule.digest ? `${name}@${rule.digest}` : tag ? `${name}:${tag}` : name;
    }
}

function addLabels(objects: K8sObject[], rules: NonNullable<Kustomization['labels']>): void {
  for (const rule of rules) {
    if (rule.includeSelectors) throw new Error('labels.includeSelectors is not supported');
    for (const o of objects) {
      o.metadata.labels = { ...o.metadata.labels, ...rule.pairs };
      if (rule.includeTemplates && WORKLOADS.has(o.kind)) {
        const template = (o.spec as Obj).template as { metadata?: { labels?: Record<string, string> } };
        template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, ...rule.pairs } };
      }
    }
  }
}

/** Renders the kustomization in `dir` (a folder with kustomization.yaml) to a list of objects. */
export function render(dir: string): K8sObject[] {
  const k = parse(fs.readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization;
  for (const field of Object.keys(k))
    if (!SUPPORTED.has(field)) throw new Error(`${dir}: kustomization field "${field}" is not supported`);
  let objects: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const p = path.join(dir, r);
    objects.push(...(fs.statSync(p).isDirectory() ? render(p) : readYamlDocuments(p)));
  }
  for (const patch of k.patches ?? []) {
    if (patch.path) {
      for (const doc of readYamlDocuments(path.join(dir, patch.path))) {
        const i = objects.findIndex((o) => o.kind === doc.kind && o.metadata.name === doc.metadata.name);
        if (i < 0) throw new Error(`${patch.path}: no ${doc.kind} ${doc.metadata.name} to patch`);
        objects[i] = strategicMerge(objects[i], doc) as K8sObject;
      }
    } else {
      const t = patch.target ?? {};
      const targets = objects.filter(
        (o) => (!t.kind || o.kind === t.kind) && (!t.name || o.metadata.name === t.name),
      );
      if (targets.length === 0) throw new Error(`patch target ${JSON.stringify(t)} matches nothing`);
      const ops = parse(patch.patch ?? '[]') as { op: string; path: string; value?: unknown }[];
      for (const o of targets) applyJson6902(o, ops);
    }
  }
  if (k.namespace)
    objects = objects.map((o) =>
      CLUSTER_SCOPED.has(o.kind) ? o : { ...o, metadata: { ...o.metadata, namespace: k.namespace } },
    );
  addLabels(objects, k.labels ?? []);
  setImages(objects, k.images ?? []);
  return objects;
}
