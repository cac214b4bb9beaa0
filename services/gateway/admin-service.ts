/**
 * BankAdmin RPCs: thin adapters over BankBuilder and the registry. Builds stream progress back;
 * the last message carries the bank.
 */
import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { BankMeta, ImageScoreMethod } from '../../lib/bank/bank-meta';
import { BankVersionRecord, checkBankName } from '../../lib/cluster/types';
import { ClusterRegistry } from '../../lib/cluster/cluster-registry';
import { DEFAULT_CORESET, CoresetMethod } from '../../lib/coreset/coreset';
import { readCategory, fileSources } from '../../lib/data/mvtec';
import { DEFAULT_FIT, ImageSource } from '../../lib/patchcore/fit';
import { DEFAULT_KNN, resolveKnn } from '../../lib/knn/index';
import { DEFAULT_MODEL } from '../../lib/patchcore/engine';
import { MemoryBudget, defaultMaxMemory, describeFitMemory } from '../../lib/patchcore/memory-budget';
import { SpiError, invalid } from '../../lib/errors';
import { categoryOfSource } from '../../lib/bank/bank-meta';
import { ReferenceMethod } from '../../lib/score/reference';
import { Logger } from '../../lib/util/log';
import { incoming } from '../../lib/rpc/streams';
import { toServiceError, wrapUnary } from '../../lib/rpc/status';
import { BankBuilder, BuildRequest } from './bank-builder';
import { DEFAULT_BUILD_DIR, UploadSpool, removeStaleUploads } from './upload-spool';
import { fusedMetaOf } from './fused-version';
import { autoModels } from '../../lib/autoconfig/plan';
import { DEFAULT_AUTO_SEED, DEFAULT_BUDGET_MS, MIN_AUTO_IMAGES } from '../../lib/autoconfig/select';
import { DEFAULT_HEAD_FIT, HEAD_KINDS, HeadRequest } from '../../lib/head/head-bank';
import { checkHeadStages, parseHeadStages } from '../../lib/head/head-embedding';
import { BankInfoMsg, BuildProgressMsg, BuildRequestMsg, BuildSpecMsg } from '../../lib/rpc/messages';

export interface AdminDefaults {
  model: string;
  resize: number;
  replicas: number;
  /**
   * The memory budget of every fit this gateway runs (`--fit-max-memory`): beyond it the candidate
   * patches spill to disk (lib/patchcore/bounded-fit.ts), so a bank of thousands of images cannot
   * take the node's memory from the inspections it serves.
   */
  fitMemory: MemoryBudget;
  /**
   * Where a build's uploaded images wait on disk (upload-spool.ts) and its candidate patches spill
   * beyond `fitMemory` (`--build-dir`): one volume sized for the largest build, not the pod's /tmp.
   */
  buildDir: string;
}

export const DEFAULT_ADMIN: AdminDefaults = {
  model: DEFAULT_MODEL,
  resize: 224,
  replicas: 2,
  fitMemory: fitMemoryBudget(),
  buildDir: DEFAULT_BUILD_DIR,
};

/** The gateway's fit budget: `maxBytes` or the machine's default (half its RAM or its container limit). */
export function fitMemoryBudget(maxBytes = defaultMaxMemory()): MemoryBudget {
  return { maxBytes, setting: "the gateway's --fit-max-memory" };
}

export function adminHandlers(
  builder: BankBuilder,
  registry: ClusterRegistry,
  defaults: AdminDefaults,
  log: Logger,
): grpc.UntypedServiceImplementation {
  // Every build's first upload waits for this, so no live folder can be taken for a stale one.
  const cleared = removeStaleUploads(defaults.buildDir).then(
    (stale) => {
      if (stale.length > 0) log.info('removed uploads of builds that died with their gateway', { stale });
    },
    (err) => log.warn('could not clear the build folder of dead builds', { err }),
  );
  const build =
    (mode: 'create' | 'rotate') => (call: grpc.ServerDuplexStream<BuildRequestMsg, BuildProgressMsg>) => {
      void (async () => {
        // The build's uploads are removed before the caller hears how it ended.
        const spool = new UploadSpool(defaults.buildDir, cleared);
        const removeUploads = () =>
          spool.remove().catch((err) => log.warn("could not remove a build's uploads", { err }));
        try {
          const { spec, images } = await receiveBuild(call, spool);
          const req = toBuildRequest(mode, spec, images, defaults);
          const record = await builder.build(
            req,
            throttled((p) => call.write(p)),
          );
          await removeUploads();
          call.write({ stage: 'done', done: 1, total: 1, bank: await bankInfo(registry, record.bank) });
          call.end();
        } catch (err) {
          await removeUploads();
          log.warn(`${mode} bank failed`, { err });
          call.emit('error', toServiceError(err, log));
        }
      })();
    };

  return {
    createBank: build('create'),
    rotateBank: build('rotate'),
    listBanks: wrapUnary(async () => ({
      banks: await Promise.all((await registry.listBanks()).map((b) => bankInfo(registry, b))),
    })),
    getBank: wrapUnary(async (call: grpc.ServerUnaryCall<{ bank: string }, BankInfoMsg>) => {
      const info = await bankInfo(registry, checkBankName(call.request.bank));
      if (info.versions.length === 0)
        throw new SpiError('NOT_FOUND', `bank "${call.request.bank}" does not exist`);
      return info;
    }),
    activateVersion: wrapUnary(
      async (call: grpc.ServerUnaryCall<{ bank: string; version: number }, BankInfoMsg>) => {
        await builder.activate(checkBankName(call.request.bank), call.request.version);
        return bankInfo(registry, call.request.bank);
      },
    ),
    deleteBank: wrapUnary(async (call: grpc.ServerUnaryCall<{ bank: string; version: number }, unknown>) => ({
      bank: call.request.bank,
      deletedVersions: await builder.delete(call.request.bank, call.request.version),
    })),
  };
}

async function receiveBuild(
  call: Readable,
  spool: UploadSpool,
): Promise<{ spec: BuildSpecMsg; images: ImageSource[] }> {
  let spec: BuildSpecMsg | undefined;
  const images: ImageSource[] = [];
  for await (const msg of incoming<BuildRequestMsg>(call)) {
    if (msg.part === 'spec') {
      if (spec) throw invalid('BuildRequest.spec sent twice');
      spec = msg.spec;
    } else if (msg.part === 'image') {
      if (!spec) throw invalid('the first BuildRequest must carry the spec');
      const { name, data } = msg.image;
      if (!data || data.length === 0) throw invalid(`uploaded image "${name}" is empty`);
      images.push(await spool.add(name || `upload-${images.length}`, data));
    }
  }
  if (!spec) throw invalid('the build stream carried no spec');
  if (spec.serverFolder) {
    if (images.length > 0) throw invalid('send images or set server_folder, not both');
    if (!fs.existsSync(spec.serverFolder))
      throw invalid(`server folder ${spec.serverFolder} does not exist on the gateway`);
    const category = readCategory(spec.serverFolder);
    images.push(...fileSources(category.train, category.root));
  }
  return { spec, images };
}

/** Progress at most about every 2% per stage, and always the first and last step. */
function throttled(send: (p: BuildProgressMsg) => void) {
  const last = new Map<string, number>();
  return (stage: string, done: number, total: number) => {
    const prev = last.get(stage);
    if (prev !== undefined && done < total && done - prev < total / 50) return;
    last.set(stage, done);
    send({ stage, done, total });
  };
}

export function toBuildRequest(
  mode: 'create' | 'rotate',
  spec: BuildSpecMsg,
  images: ImageSource[],
  d: AdminDefaults,
): BuildRequest {
  const method = (spec.coresetMethod || DEFAULT_CORESET.method) as CoresetMethod;
  if (!['greedy', 'random', 'none'].includes(method))
    throw invalid(`coreset_method must be greedy, random or none`);
  const categories = categoriesOf(spec);
  const reference = (spec.reference || 'none') as ReferenceMethod;
  if (!['none', 'mean'].includes(reference))
    throw invalid(`reference must be "none" or "mean", got "${spec.reference}"`);
  if (reference !== 'none' && categories.length > 1)
    throw invalid(
      'reference "mean" needs one product: the categories of a unified bank are framed differently',
    );
  if (categories.length > 1) {
    const stray = images.find((im) => !categoryOfSource(im.path, categories));
    if (stray)
      throw invalid(
        `image "${stray.path}" is not under a category folder (${categories.join(', ')}/...): name each image <category>/<file>`,
      );
  }
  const fuse = spec.addToActive ? undefined : fuseOf(spec, categories);
  const auto = spec.addToActive || fuse ? undefined : autoOf(spec, categories, images.length);
  const head = spec.head ? headRequestOf(spec, categories) : undefined;
  checkHeadStages(auto ? auto.models : [spec.model || d.model], head?.stages);
  return {
    bank: checkBankName(spec.bank),
    mode,
    // Adding to the active version keeps its configuration: nothing to choose.
    auto,
    ...(fuse ? { fuse } : {}),
    ...(spec.addToActive ? { addToActive: true } : {}),
    ...(spec.includeFeedback ? { includeFeedback: true } : {}),
    ...(head ? { head } : {}),
    model: spec.model || d.model,
    images,
    partitions: spec.partitions,
    replicas: spec.replicas || d.replicas,
    activate: spec.activate ?? true,
    settings: {
      ...DEFAULT_FIT,
      categories,
      // Tiles with no resize: tiles at the image's own scale (high-resolution print).
      view: {
        resize: spec.resize || (spec.tile > 0 ? 0 : d.resize),
        crop: 0,
        scale: 1,
        tile: spec.tile,
        overlap: spec.tileOverlap || 32,
        pad: spec.pad ?? 0,
      },
      coreset: {
        ...DEFAULT_CORESET,
        method,
        ratio: spec.coresetRatio || DEFAULT_CORESET.ratio,
        size: spec.coresetSize,
      },
      knn: resolveKnn({ factory: spec.index || DEFAULT_KNN.factory, nprobe: spec.nprobe || 8 }),
      threshold: typeof spec.threshold === 'number' ? spec.threshold : undefined,
      holdoutFraction: spec.holdoutFraction || DEFAULT_FIT.holdoutFraction,
      score: { ...DEFAULT_FIT.score, reference, imageScore: imageScoreOf(spec, reference) },
      memory: { ...d.fitMemory, spillDir: d.buildDir },
    },
  };
}

/**
 * The memory line of the build that made this version: an addition's own record (its chunks of new
 * patches) for a version an addition made, not the first fit's that its metadata carries along.
 */
function fitMemoryOf(meta: Partial<BankMeta>, version: number): string {
  const last = meta.additions?.at(-1);
  const memory = last && last.version === version ? last.memory : meta.memory;
  return memory ? describeFitMemory(memory) : '';
}

export async function bankInfo(registry: ClusterRegistry, bank: string): Promise<BankInfoMsg> {
  const [versions, active] = await Promise.all([registry.listVersions(bank), registry.getActive(bank)]);
  return { name: bank, activeVersion: active ?? 0, versions: versions.map((r) => versionInfo(r, active)) };
}

function versionInfo(r: BankVersionRecord, active: number | null) {
  const fused = fusedMetaOf(r);
  // A fused version: model and dim are its first member's, patches all its members'.
  const meta = (fused ? fused.memberBanks[0].meta : r.meta) as unknown as Partial<BankMeta>;
  // With a head, the verdict's threshold is its mode's (lib/head/): report that one.
  const head = fused ? fused.head : meta.head;
  const verdictThreshold =
    head && head.mode !== 'bank' ? head.thresholds[head.mode] : fused ? fused.threshold : meta.threshold;
  const autoConfig = fused ? fused.autoConfig : meta.autoConfig;
  return {
    version: r.version,
    state: r.version === active ? 'active' : r.state,
    model: meta.model?.id ?? '',
    patches: fused
      ? fused.memberBanks.reduce((n, m) => n + m.meta.vectors.rows, 0)
      : (meta.vectors?.rows ?? 0),
    dim: meta.vectors?.dim ?? 0,
    threshold: verdictThreshold?.value ?? 0,
    thresholdMethod:
      (verdictThreshold?.method ?? '') +
      (head ? ` (${head.mode}, ${head.kind} head)` : '') +
      (fused ? ' (fused)' : ''),
    index: r.index,
    partitions: r.partitions.length,
    replicas: r.partitions[0]?.shards.length ?? 0,
    createdAt: r.createdAt,
    sourceImages: meta.sources?.length ?? 0,
    configuredBy: autoConfig ? `auto: ${autoConfig.chosen} (${autoConfig.reason})` : 'manual',
    fitMemory: fitMemoryOf(meta, r.version),
    members: (fused?.memberBanks ?? []).map(
      (m) => `${m.meta.model.stages.join('+')}: ${m.meta.vectors.rows} patches x ${m.meta.vectors.dim}`,
    ),
  };
}

/**
 * The automatic choice's settings, or undefined for a manual configuration: "off", any view or
 * reference field set, a unified bank, or too few images to validate on (then the defaults).
 */
function imageScoreOf(spec: BuildSpecMsg, reference: ReferenceMethod): ImageScoreMethod {
  const method = (spec.imageScore || DEFAULT_FIT.score.imageScore) as ImageScoreMethod;
  if (!['map-max', 'patch-max', 'reweighted'].includes(method))
    throw invalid(`image_score must be "map-max", "patch-max" or "reweighted", got "${spec.imageScore}"`);
  if (method === 'reweighted' && reference !== 'none')
    throw invalid('image_score "reweighted" does not go with reference "mean"');
  return method;
}

function autoOf(spec: BuildSpecMsg, categories: string[], images: number): BuildRequest['auto'] {
  const mode = spec.auto || 'on';
  if (!['on', 'off'].includes(mode)) throw invalid(`auto must be "on" or "off", got "${spec.auto}"`);
  const manual = spec.resize > 0 || spec.tile > 0 || spec.pad > 0 || !['', 'none'].includes(spec.reference);
  if (mode === 'off' || manual || categories.length > 1 || images < MIN_AUTO_IMAGES) return undefined;
  return {
    models: autoModels(spec.model || undefined),
    budgetMs: spec.budgetMs || DEFAULT_BUDGET_MS,
    seed: DEFAULT_AUTO_SEED,
    // Fused banks are candidates, as for `spi fit` (with a head too: on the first member's embeddings).
    fusion: true,
  };
}

/** BuildSpec.fuse: a fused bank by hand, the second member's stages; undefined for a single bank. */
function fuseOf(spec: BuildSpecMsg, categories: string[]): BuildRequest['fuse'] {
  const stages = (spec.fuse ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (stages.length === 0) return undefined;
  if (categories.length > 1) throw invalid('fuse: a fused bank covers one product, not several categories');
  return { stages };
}

/** A unified bank's categories (checked like bank names), or the bank's own name for one product. */
function categoriesOf(spec: BuildSpecMsg): string[] {
  const categories = spec.categories ?? [];
  if (categories.length === 0) return [spec.bank];
  if (categories.length === 1)
    throw invalid('BuildSpec.categories: a unified bank needs at least 2 (none = one product)');
  for (const c of categories) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(c))
      throw invalid(`BuildSpec.categories: "${c}" must be 1-64 letters, digits, '-', '_' or '.'`);
  }
  if (new Set(categories).size !== categories.length) throw invalid('BuildSpec.categories has duplicates');
  return categories;
}

/** BuildSpec.head: the head's training settings (the defaults), or why it cannot have one. */
function headRequestOf(spec: BuildSpecMsg, categories: string[]): HeadRequest {
  if (!(HEAD_KINDS as readonly string[]).includes(spec.head ?? ''))
    throw invalid(`head must be one of ${HEAD_KINDS.join(', ')} or empty, got "${spec.head}"`);
  if (categories.length > 1) throw invalid('a head covers one product: not for a bank of several categories');
  if (spec.addToActive)
    throw invalid(
      "head is not available with add_to_active (an incremental version keeps the active version's head, recalibrated, and trains none)",
    );
  const { train, localImages, validationGoods, seed, precision } = DEFAULT_HEAD_FIT;
  const epochs = spec.headEpochs || train.epochs;
  return {
    train: { ...train, epochs },
    localImages,
    validationGoods,
    seed,
    precision,
    mode: 'combined',
    ...parseHeadStages(spec.headStages),
  };
}
