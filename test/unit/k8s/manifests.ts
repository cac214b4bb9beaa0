/**
 * The rendered k8s/ trees and small accessors the manifest tests share.
 */
import * as path from 'node:path';
import { K8sObject, Obj, render } from './render';

export const K8S_DIR = path.resolve(__dirname, '../../../k8s');
export const TREES = {
  base: path.join(K8S_DIR, 'base'),
  'plant-example': path.join(K8S_DIR, 'overlays/plant-example'),
} as const;

export type Tree = keyof typeof TREES;

const cache = new Map<Tree, K8sObject[]>();

/** Rendered once per test run; tests must not modify the objects. */
export function rendered(tree: Tree): K8sObject[] {
  if (!cache.has(tree)) cache.set(tree, render(TREES[tree]));
  return cache.get(tree) as K8sObject[];
}

export function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name}`);
  return o;
}

export function ofKind(objects: K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

export interface Container extends Obj {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Obj & { capabilities?: { drop?: string[] } };
}

export interface Probe {
  httpGet?: { path: string; port: number | string };
}

export interface PodSpec extends Obj {
  containers: Container[];
  volumes?: (Obj & { name: string; emptyDir?: Obj })[];
  securityContext?: Obj;
  terminationGracePeriodSeconds?: number;
}

export const WORKLOAD_KINDS = ['Deployment', 'StatefulSet'];

export function workloads(objects: K8sObject[]): K8sObject[] {
  return objects.filter((o) => WORKLOAD_KINDS.includes(o.kind));
}

export function podSpec(workload: K8sObject): PodSpec {
  return ((workload.spec as Obj).template as Obj).spec as PodSpec;
}

export function podLabels(workload: K8sObject): Record<string, string> {
  return (((workload.spec as Obj).template as Obj).metadata as { labels: Record<string, string> }).labels;
}

/** True when every matchLabels pair is among `labels` (an empty selector selects everything). */
export function selects(
  matchLabels: Record<string, string> | undefined,
  labels: Record<string, string>,
): boolean {
  return Object.entries(matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}

/** The value of `--name` in args (as --name=value or --name value), or undefined. */
export function flagValue(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return args[i + 1];
    if (args[i].startsWith(`--${name}=`)) return args[i].slice(name.length + 3);
  }
  return undefined;
}

/** A container port by name or number. */
export function containerPort(c: Container, port: number | string): number | undefined {
  return typeof port === 'number' ? port : c.ports?.find((p) => p.name === port)?.containerPort;
}

/** The SPI role of a container: its first argument names the `spi` command. */
export function roleOf(c: Container): 'serve' | 'shard' | null {
  const first = c.args?.[0];
  return first === 'serve' || first === 'shard' ? first : null;
}
