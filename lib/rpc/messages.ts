/** Inspector and BankAdmin messages as @grpc/proto-loader delivers them (see lib/rpc/proto.ts). */
export interface InspectRequestMsg {
  bank: string;
  image: Buffer;
  version: number;
  threshold?: number | null;
  returnMap: boolean;
  requestId: string;
  category?: string;
}

export interface DefectRegionMsg {
  x: number;
  y: number;
  width: number;
  height: number;
  area: number;
  peakScore: number;
}

export interface InspectResponseMsg {
  requestId: string;
  bank: string;
  version: number;
  score: number;
  threshold: number;
  isDefective: boolean;
  regions: DefectRegionMsg[];
  anomalyMap: Buffer;
  mapWidth: number;
  mapHeight: number;
  imageWidth: number;
  imageHeight: number;
  timings: {
    decodeMs: number;
    embedMs: number;
    searchMs: number;
    scoreMs: number;
    totalMs: number;
    queueMs: number;
    uploadMs: number;
  } | null;
  errorCode: number;
  error: string;
}

export interface BuildSpecMsg {
  bank: string;
  serverFolder: string;
  model: string;
  coresetRatio: number;
  coresetSize: number;
  coresetMethod: string;
  index: string;
  nprobe: number;
  partitions: number;
  replicas: number;
  threshold?: number | null;
  activate?: boolean | null;
  resize: number;
  tile: number;
  tileOverlap: number;
  holdoutFraction: number;
  categories: string[];
  pad: number;
  reference: string;
  auto: string;
  budgetMs: number;
  /** RotateBank: the next version is the active one plus these images (incremental). */
  addToActive?: boolean;
  /** With addToActive: also add the false alarms queued for the bank (ReportFalseAlarm). */
  includeFeedback?: boolean;
  /** A discriminator head beside the bank: "glass", or "" (lib/head/). */
  head?: string;
  /** With head: the most training epochs (0 = the default). */
  headEpochs?: number;
  /** With head: the backbone stages it scores, comma separated ("" = the bank's embedding). */
  headStages?: string;
  /** "map-max" (default), "patch-max" or "reweighted". */
  imageScore?: string;
  /** A fused bank by hand: the second member's stages, comma separated ("" = a single bank). */
  fuse?: string;
}

export interface FalseAlarmRequestMsg {
  bank: string;
  version: number;
  requestId: string;
  image: Buffer;
  note: string;
  /** The product the sheet shows, in a unified bank (required there). */
  category: string;
}

export interface FalseAlarmResponseMsg {
  id: string;
  queued: number;
}

export type BuildRequestMsg =
  | { part: 'spec'; spec: BuildSpecMsg }
  | { part: 'image'; image: { name: string; data: Buffer } }
  | { part?: undefined };

export interface BankVersionInfoMsg {
  version: number;
  state: string;
  model: string;
  patches: number;
  dim: number;
  threshold: number;
  thresholdMethod: string;
  index: string;
  partitions: number;
  replicas: number;
  createdAt: string;
  sourceImages: number;
  configuredBy: string;
  /** A fused version: each member's stages, patches and dim; empty for a single bank. */
  members: string[];
  /** The fit's memory budget and whether it spilled; empty for versions built before it was recorded. */
  fitMemory: string;
}

export interface BankInfoMsg {
  name: string;
  activeVersion: number;
  versions: BankVersionInfoMsg[];
}

export interface BuildProgressMsg {
  stage: string;
  done: number;
  total: number;
  bank?: BankInfoMsg | null;
}

/** A BuildSpec as the server sees it when the client set only some fields (proto3 defaults). */
export function buildSpec(partial: Partial<BuildSpecMsg> & { bank: string }): BuildSpecMsg {
  return {
    serverFolder: '',
    model: '',
    coresetRatio: 0,
    coresetSize: 0,
    coresetMethod: '',
    index: '',
    nprobe: 0,
    partitions: 0,
    replicas: 0,
    resize: 0,
    tile: 0,
    tileOverlap: 0,
    holdoutFraction: 0,
    categories: [],
    pad: 0,
    reference: '',
    auto: '',
    budgetMs: 0,
    ...partial,
  };
}
