/**
 * The manifests against the code: flags the CLI accepts, ports it listens on, environment variables
 * it reads, probe paths it serves; the workloads against each other: Services, PDBs, the HPA and the
 * network policies select the pods they mean, shards advertise a name their headless Service gives
 * them, etcd's initial cluster names its own members; and the pod security settings.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { GATEWAY_FLAGS } from '../../../services/gateway/main';
import { SHARD_FLAGS } from '../../../services/shard/main';
import {
  DEFAULT_GATEWAY_METRICS_PORT,
  DEFAULT_SHARD_METRICS_PORT,
  LIVENESS_PATH,
  READINESS_PATH,
} from '../../../services/common/http';
import {
  Container,
  TREES,
  Tree,
  containerPort,
  find,
  flagValue,
  ofKind,
  podLabels,
  podSpec,
  rendered,
  roleOf,
  selects,
  workloads,
} from './manifests';
import { K8sObject, Obj } from './render';
import { splitList } from '../../../services/common/auth';
import { GATEWAY_MEMORY_ENV, SHARD_MEMORY_ENV } from '../../../services/local/processes';

/** Flags and settings that name a file (certificates, keys, tokens, passwords). */
const FILE_FLAGS = [
  'tls-cert',
  'tls-key',
  'tls-ca',
  'shard-tls-ca',
  'shard-tls-cert',
  'shard-tls-key',
  'admin-token-file',
  'etcd-ca',
  'etcd-cert',
  'etcd-key',
  'etcd-password-file',
];
const FILE_ENV = [
  'SPI_TLS_CERT',
  'SPI_TLS_KEY',
  'SPI_TLS_CA',
  'SPI_SHARD_TLS_CA',
  'SPI_SHARD_TLS_CERT',
  'SPI_SHARD_TLS_KEY',
  'SPI_ADMIN_TOKEN_FILE',
  'SPI_ETCD_CA',
  'SPI_ETCD_CERT',
  'SPI_ETCD_KEY',
  'SPI_ETCD_PASSWORD_FILE',
];

const ROOT = path.resolve(__dirname, '../../..');
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');

const ROLES = {
  serve: {
    flags: GATEWAY_FLAGS,
    grpcDefault: 50051,
    metricsDefault: DEFAULT_GATEWAY_METRICS_PORT,
    // Where `spi serve` reads its environment (main, logging, the model registry, the engine).
    sources: [
      'services/gateway/main.ts',
      'lib/util/log.ts',
      'models/registry.ts',
      'lib/patchcore/engine.ts',
      'lib/backbone/backbone.ts',
      'lib/knn/omp-policy.ts',
      'lib/rpc/tls.ts',
      'services/common/auth.ts',
      'services/common/etcd-flags.ts',
    ],
  },
  shard: {
    flags: SHARD_FLAGS,
    grpcDefault: 0,
    metricsDefault: DEFAULT_SHARD_METRICS_PORT,
    sources: [
      'services/shard/main.ts',
      'lib/util/log.ts',
      'lib/knn/omp-policy.ts',
      'lib/rpc/tls.ts',
      'services/common/auth.ts',
      'services/common/etcd-flags.ts',
    ],
  },
} as const;

/** SPI_* variables a role's code reads. */
function envReadBy(role: keyof typeof ROLES): Set<string> {
  const names = ROLES[role].sources.flatMap((f) =>
    [...read(f).matchAll(/\benv\.(SPI_[A-Z0-9_]+)/g)].map((m) => m[1]),
  );
  return new Set(names);
}

/** glibc's malloc settings a service runs with locally (services/local/processes.ts): the manifest's must match. */
function readByGlibc(role: string, e: { name: string; value?: string }): boolean {
  const local: Record<string, string> = role === 'shard' ? SHARD_MEMORY_ENV : GATEWAY_MEMORY_ENV;
  return e.name.startsWith('MALLOC_') && local[e.name] === e.value;
}

/** Every SPI container in a tree, with its workload. */
function spiContainers(
  objects: K8sObject[],
): { workload: K8sObject; c: Container; role: 'serve' | 'shard' }[] {
  return workloads(objects).flatMap((workload) =>
    podSpec(workload).containers.flatMap((c) => {
      const role = roleOf(c);
      return role ? [{ workload, c, role }] : [];
    }),
  );
}

function configMapKeys(objects: K8sObject[], c: Container): string[] {
  return (c.envFrom ?? []).flatMap((from) => {
    assert.ok(from.configMapRef, `${c.name}: only ConfigMaps are used in envFrom`);
    return Object.keys((find(objects, 'ConfigMap', from.configMapRef.name).data as Obj) ?? {});
  });
}

const trees = Object.keys(TREES) as Tree[];

describe('k8s manifests: wiring against the code and each other', () => {
  for (const tree of trees) {
    describe(tree, () => {
      const objects = () => rendered(tree);

      it('runs one gateway Deployment and one shard StatefulSet from the same image', () => {
        const spi = spiContainers(objects());
        assert.deepEqual(spi.map((s) => `${s.workload.kind}:${s.role}`).sort(), [
          'Deployment:serve',
          'StatefulSet:shard',
        ]);
        assert.equal(new Set(spi.map((s) => s.c.image)).size, 1);
        const cli = read('services/cli/spi.ts');
        for (const { role } of spi) assert.match(cli, new RegExp(`^\\s+${role}: \\{`, 'm'), `spi ${role}`);
      });

      it('passes only flags the CLI defines, with ports that match the container ports', () => {
        for (const { c, role } of spiContainers(objects())) {
          const { flags, grpcDefault, metricsDefault } = ROLES[role];
          const args = (c.args ?? []).slice(1);
          assert.doesNotThrow(
            () => parseArgs({ args, options: flags, strict: true }),
            `${role} ${args.join(' ')}`,
          );
          const grpc = Number(flagValue(args, 'port') ?? grpcDefault);
          const metrics = Number(flagValue(args, 'metrics-port') ?? metricsDefault);
          assert.ok(grpc > 0, `${role}: a fixed gRPC port`);
          assert.equal(containerPort(c, 'grpc'), grpc, `${role} grpc port`);
          assert.equal(containerPort(c, 'metrics'), metrics, `${role} metrics port`);
          assert.equal(flagValue(args, 'host'), '0.0.0.0', `${role} listens on the pod network`);
        }
      });

      it('probes the paths the ops HTTP server serves, on its metrics port', () => {
        for (const { c, role } of spiContainers(objects())) {
          const metrics = containerPort(c, 'metrics');
          const check = (probe: Container['readinessProbe'], want: string, what: string) => {
            assert.ok(probe?.httpGet, `${role}: ${what} probe`);
            assert.equal(probe.httpGet.path, want, `${role} ${what} path`);
            assert.equal(containerPort(c, probe.httpGet.port), metrics, `${role} ${what} port`);
          };
          check(c.readinessProbe, READINESS_PATH, 'readiness');
          check(c.livenessProbe, LIVENESS_PATH, 'liveness');
          check(c.startupProbe, LIVENESS_PATH, 'startup');
        }
      });

      it('sets only environment variables the code reads (or that args expand)', () => {
        const spi = spiContainers(objects());
        // A shared ConfigMap is fine as long as some role reading it uses each key.
        const keysUsed = new Map<string, boolean>();
        for (const { c, role } of spi) {
          const known = envReadBy(role);
          const args = [...(c.command ?? []), ...(c.args ?? [])].join(' ');
          for (const e of c.env ?? [])
            assert.ok(
              known.has(e.name) || args.includes(`$(${e.name})`) || readByGlibc(role, e),
              `${role}: env ${e.name} is not used`,
            );
          for (const key of configMapKeys(objects(), c))
            keysUsed.set(key, (keysUsed.get(key) ?? false) || known.has(key));
          assert.ok(configMapKeys(objects(), c).includes('SPI_ETCD'), `${role} gets SPI_ETCD`);
        }
        for (const [key, used] of keysUsed) assert.ok(used, `ConfigMap key ${key} is read by no role`);
      });

      it('sizes onnxruntime and faiss threads to the container CPU limit (they would count the node)', () => {
        const cores = (q: string) => (q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q));
        for (const { c, role } of spiContainers(objects())) {
          const limit = cores(String(c.resources?.limits?.cpu ?? '0'));
          assert.ok(limit > 0, `${role}: a CPU limit`);
          const env = new Map((c.env ?? []).map((e) => [e.name, e.value]));
          const names =
            role === 'serve' ? ['SPI_INTRA_OP_THREADS', 'SPI_SEARCH_THREADS'] : ['SPI_SEARCH_THREADS'];
          for (const name of names) {
            const threads = Number(env.get(name));
            assert.ok(
              threads >= 1 && threads <= limit,
              `${role}: ${name}=${env.get(name)} within 1..${limit}`,
            );
          }
        }
      });

      it('gives SIGTERM room: termination grace above the shutdown delay plus drain grace', () => {
        for (const { workload, c, role } of spiContainers(objects())) {
          const { flags } = ROLES[role];
          const args = c.args ?? [];
          const delay = Number(
            flagValue(args, 'shutdown-delay-ms') ??
              ('shutdown-delay-ms' in flags ? flags['shutdown-delay-ms'].default : 0),
          );
          const grace = Number(flagValue(args, 'shutdown-grace-ms') ?? 10_000);
          const period = (podSpec(workload).terminationGracePeriodSeconds ?? 30) * 1000;
          assert.ok(period >= delay + grace + 5000, `${role}: ${period} ms < ${delay} + ${grace} ms + 5 s`);
        }
      });

      it('shards: pod name as id, advertised on their headless Service, data on their own volume', () => {
        const sts = find(objects(), 'StatefulSet', 'spi-shard');
        const spec = sts.spec as Obj & {
          serviceName: string;
          volumeClaimTemplates: { metadata: { name: string } }[];
        };
        const c = podSpec(sts).containers[0];
        const args = c.args ?? [];
        const env = new Map((c.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));
        assert.equal(env.get('POD_NAME'), 'metadata.name');
        assert.equal(env.get('POD_NAMESPACE'), 'metadata.namespace');
        assert.equal(flagValue(args, 'id'), '$(POD_NAME)');
        assert.equal(
          flagValue(args, 'advertise'),
          `$(POD_NAME).${spec.serviceName}.$(POD_NAMESPACE).svc:${containerPort(c, 'grpc')}`,
        );
        const svc = find(objects(), 'Service', spec.serviceName).spec as Obj;
        assert.equal(svc.clusterIP, 'None');
        assert.equal(svc.publishNotReadyAddresses, true, 'gateways dial shards before they are Ready');
        assert.ok(selects(svc.selector as Record<string, string>, podLabels(sts)));
        const dataDir = flagValue(args, 'data-dir') ?? '';
        const mount = (c.volumeMounts ?? []).find(
          (m) => dataDir.startsWith(`${m.mountPath}/`) || dataDir === m.mountPath,
        );
        assert.ok(mount, `--data-dir ${dataDir} is on a volume`);
        assert.ok(
          spec.volumeClaimTemplates.some((t) => t.metadata.name === mount.name),
          'the data volume is a per-shard claim',
        );
      });

      it('etcd: three members whose initial cluster names exactly those pods on the headless Service', () => {
        const sts = find(objects(), 'StatefulSet', 'etcd');
        const spec = sts.spec as Obj & { serviceName: string; replicas: number; podManagementPolicy: string };
        assert.equal(spec.replicas, 3);
        assert.equal(spec.podManagementPolicy, 'Parallel', 'members must start together to form a quorum');
        const c = podSpec(sts).containers[0];
        const cmd = c.command ?? [];
        const peer = containerPort(c, 'peer');
        const client = containerPort(c, 'client');
        const host = (pod: string) => `${pod}.${spec.serviceName}.$(POD_NAMESPACE).svc`;
        assert.equal(flagValue(cmd, 'name'), '$(POD_NAME)');
        assert.equal(flagValue(cmd, 'initial-advertise-peer-urls'), `https://${host('$(POD_NAME)')}:${peer}`);
        assert.equal(flagValue(cmd, 'advertise-client-urls'), `https://${host('$(POD_NAME)')}:${client}`);
        const members = Array.from(
          { length: spec.replicas },
          (_, i) => `etcd-${i}=https://${host(`etcd-${i}`)}:${peer}`,
        );
        assert.equal(flagValue(cmd, 'initial-cluster'), members.join(','));
        const svc = find(objects(), 'Service', spec.serviceName).spec as Obj;
        assert.equal(svc.clusterIP, 'None');
        assert.equal(svc.publishNotReadyAddresses, true);
        // SPI_ETCD lists every member, at its client port.
        const endpoints = String((find(objects(), 'ConfigMap', 'spi-config').data as Obj).SPI_ETCD).split(
          ',',
        );
        assert.deepEqual(
          endpoints,
          Array.from({ length: spec.replicas }, (_, i) => `etcd-${i}.${spec.serviceName}:${client}`),
        );
        const dataDir = flagValue(cmd, 'data-dir') ?? '';
        assert.ok(
          (c.volumeMounts ?? []).some((m) => m.name === 'data' && dataDir.startsWith(`${m.mountPath}/`)),
        );
      });

      it('Services, PodDisruptionBudgets and the HPA select existing pods and ports', () => {
        const all = objects();
        const loads = workloads(all);
        for (const svc of ofKind(all, 'Service')) {
          const spec = svc.spec as {
            selector: Record<string, string>;
            ports: { targetPort: string | number }[];
          };
          const targets = loads.filter((w) => selects(spec.selector, podLabels(w)));
          assert.equal(targets.length, 1, `Service ${svc.metadata.name} selects ${targets.length} workloads`);
          for (const p of spec.ports) {
            const ok = podSpec(targets[0]).containers.some(
              (c) => containerPort(c, p.targetPort) !== undefined,
            );
            assert.ok(ok, `Service ${svc.metadata.name} port ${p.targetPort}`);
          }
        }
        for (const pdb of ofKind(all, 'PodDisruptionBudget')) {
          const sel = (pdb.spec as { selector: { matchLabels: Record<string, string> } }).selector
            .matchLabels;
          assert.equal(loads.filter((w) => selects(sel, podLabels(w))).length, 1, `PDB ${pdb.metadata.name}`);
        }
        for (const w of loads) {
          const sel = (w.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
          assert.ok(selects(sel, podLabels(w)), `${w.metadata.name} selects its own pods`);
        }
        const [hpa] = ofKind(all, 'HorizontalPodAutoscaler');
        const ref = (hpa.spec as { scaleTargetRef: { kind: string; name: string } }).scaleTargetRef;
        assert.equal(find(all, ref.kind, ref.name).kind, 'Deployment');
      });

      it('network policies: only gateways reach shards; only shards, gateways (and members) reach etcd', () => {
        const all = objects();
        const labels = (name: string) =>
          podLabels(
            find(
              all,
              name === 'etcd' ? 'StatefulSet' : name === 'spi-shard' ? 'StatefulSet' : 'Deployment',
              name,
            ),
          );
        const gateway = labels('spi-gateway');
        const shard = labels('spi-shard');
        const etcd = labels('etcd');
        type Peer = {
          podSelector?: { matchLabels?: Record<string, string> };
          namespaceSelector?: Obj;
          ipBlock?: Obj;
        };
        type Rule = { from?: Peer[]; ports?: { port: string | number }[] };
        /** Pods (by labels) allowed to reach `target` pods on `port` by some policy; '*' = anything else. */
        const allowed = (target: Record<string, string>, port: string): string[] =>
          ofKind(all, 'NetworkPolicy')
            .filter((np) =>
              selects(
                (np.spec as { podSelector: { matchLabels: Record<string, string> } }).podSelector.matchLabels,
                target,
              ),
            )
            .flatMap((np) => (np.spec as { ingress?: Rule[] }).ingress ?? [])
            .filter((r) => !r.ports || r.ports.some((p) => p.port === port))
            .flatMap((r) =>
              (r.from ?? [{}]).map((peer) => {
                if (peer.ipBlock || peer.namespaceSelector || !peer.podSelector) return '*';
                const m = peer.podSelector.matchLabels;
                if (selects(m, gateway) && !selects(m, shard) && !selects(m, etcd)) return 'gateway';
                if (selects(m, shard) && !selects(m, gateway) && !selects(m, etcd)) return 'shard';
                if (selects(m, etcd) && !selects(m, gateway) && !selects(m, shard)) return 'etcd';
                return '*';
              }),
            );
        for (const [target, name] of [
          [shard, 'shard'],
          [etcd, 'etcd'],
          [gateway, 'gateway'],
        ] as const) {
          const policies = ofKind(all, 'NetworkPolicy').filter((np) =>
            selects(
              (np.spec as { podSelector: { matchLabels: Record<string, string> } }).podSelector.matchLabels,
              target,
            ),
          );
          assert.ok(policies.length > 0, `${name} pods are under a policy (default deny for them)`);
        }
        assert.deepEqual([...new Set(allowed(shard, 'grpc'))], ['gateway']);
        assert.deepEqual([...new Set(allowed(etcd, 'client'))].sort(), ['etcd', 'gateway', 'shard']);
        assert.deepEqual([...new Set(allowed(etcd, 'peer'))], ['etcd']);
        // Line controllers reach the gateways' gRPC port (from other namespaces or the plant network).
        assert.ok(allowed(gateway, 'grpc').length > 0);
      });

      it('mounts every certificate, key and token file a flag or setting names from a Secret, read-only', () => {
        const all = objects();
        for (const { workload, c, role } of spiContainers(all)) {
          const config = new Map(
            (c.envFrom ?? []).flatMap((from) =>
              Object.entries((find(all, 'ConfigMap', from.configMapRef!.name).data as Obj) ?? {}),
            ),
          );
          const files = [
            ...FILE_FLAGS.flatMap((f) => {
              const v = flagValue(c.args ?? [], f);
              return v ? [[`--${f}`, v]] : [];
            }),
            ...FILE_ENV.flatMap((k) => (config.has(k) ? [[k, String(config.get(k))]] : [])),
          ];
          for (const [what, file] of files) {
            const mount = (c.volumeMounts ?? []).find((m) => file.startsWith(`${m.mountPath}/`));
            assert.ok(mount, `${role}: ${what} ${file} is on no volume`);
            assert.equal(
              (mount as { readOnly?: boolean }).readOnly,
              true,
              `${role}: ${mount.name} read-only`,
            );
            const volume = podSpec(workload).volumes?.find((v) => v.name === mount.name) as
              | { secret?: { secretName: string; items?: { key: string; path: string }[] } }
              | undefined;
            assert.ok(volume?.secret?.secretName, `${role}: ${what} comes from a Secret`);
            const name = file.slice(mount.mountPath.length + 1);
            const keys = volume.secret.items?.map((i) => i.path) ?? ['tls.crt', 'tls.key', 'ca.crt'];
            assert.ok(
              keys.includes(name),
              `${role}: ${what} ${name} is not a key of ${volume.secret.secretName}`,
            );
          }
        }
      });

      it('TLS on every hop: mutual TLS to gateways and shards, gateway certificate to shards, guarded admin', () => {
        const spi = spiContainers(objects());
        const args = (role: 'serve' | 'shard') => spi.find((s) => s.role === role)?.c.args ?? [];
        for (const role of ['serve', 'shard'] as const) {
          for (const f of ['tls-cert', 'tls-key', 'tls-ca'])
            assert.ok(flagValue(args(role), f), `${role} --${f}`);
          assert.equal(
            flagValue(args(role), 'tls-client-auth'),
            'require',
            `${role} requires client certificates`,
          );
        }
        const gateway = args('serve');
        for (const f of ['shard-tls-ca', 'shard-tls-cert', 'shard-tls-key'])
          assert.ok(flagValue(gateway, f), `the gateway dials shards with --${f}`);
        assert.ok(splitList(flagValue(args('shard'), 'peer-identities')).includes('spi-gateway'));
        // The gateway listens beyond loopback: without these the code refuses to start.
        assert.ok(
          flagValue(gateway, 'admin-token-file') || flagValue(gateway, 'admin-identities'),
          'admin credentials',
        );
        assert.ok(!gateway.includes('--insecure-admin'));
      });

      it('etcd serves clients over TLS with client certificates when the SPI pods are given them', () => {
        const all = objects();
        const config = (find(all, 'ConfigMap', 'spi-config').data as Obj) ?? {};
        const cmd = podSpec(find(all, 'StatefulSet', 'etcd')).containers[0].command ?? [];
        assert.ok(config.SPI_ETCD_CA, 'SPI_ETCD_CA');
        assert.match(flagValue(cmd, 'listen-client-urls') ?? '', /^https:\/\//);
        for (const f of ['cert-file', 'key-file', 'trusted-ca-file'])
          assert.ok(flagValue(cmd, f), `etcd --${f}`);
        if (config.SPI_ETCD_CERT) assert.ok(cmd.includes('--client-cert-auth'));
      });

      it('runs every container as non-root, read-only, without capabilities, with a writable /tmp', () => {
        for (const w of workloads(objects())) {
          const pod = podSpec(w);
          assert.equal(pod.automountServiceAccountToken, false, `${w.metadata.name}: no API token`);
          for (const c of pod.containers) {
            const who = `${w.metadata.name}/${c.name}`;
            const sc = c.securityContext ?? {};
            assert.equal(sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot, true, `${who} runAsNonRoot`);
            assert.equal(sc.readOnlyRootFilesystem, true, `${who} readOnlyRootFilesystem`);
            assert.equal(sc.allowPrivilegeEscalation, false, `${who} allowPrivilegeEscalation`);
            assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${who} drops ALL`);
            const tmp = (c.volumeMounts ?? []).find((m) => m.mountPath === '/tmp');
            assert.ok(
              tmp && pod.volumes?.find((v) => v.name === tmp.name)?.emptyDir,
              `${who}: /tmp emptyDir`,
            );
            assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory, `${who} requests`);
            assert.ok(c.resources?.limits?.memory, `${who} memory limit`);
          }
        }
      });
    });
  }

  it('the Dockerfile runs `spi` as the user the pods run as, exposing the default ports', () => {
    const dockerfile = read('Dockerfile');
    const user = /^USER (\d+):(\d+)$/m.exec(dockerfile);
    assert.ok(user, 'numeric USER (runAsNonRoot can only verify a number)');
    for (const w of workloads(rendered('base')).filter((w) => spiContainers([w]).length > 0))
      assert.equal(podSpec(w).securityContext?.runAsUser, Number(user[1]), w.metadata.name);
    const exposed = (/^EXPOSE (.+)$/m.exec(dockerfile)?.[1] ?? '').split(/\s+/).map(Number);
    assert.deepEqual(
      exposed.sort(),
      [ROLES.serve.grpcDefault, DEFAULT_GATEWAY_METRICS_PORT, DEFAULT_SHARD_METRICS_PORT].sort(),
    );
    assert.match(dockerfile, /^ENTRYPOINT \["node", "bin\/spi"\]$/m);
  });
});
