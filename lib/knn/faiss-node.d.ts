// Types for faiss-node 0.5.1 as built by scripts/build-faiss-node.sh (with our patch: typed arrays in and out, async and float16 search).
declare module 'faiss-node' {
  export interface BufferSearchResult {
    distances: Float32Array;
    labels: Float64Array;
  }
  export class Index {
    constructor(d: number);
    ntotal(): number;
    getDimension(): number;
    isTrained(): boolean;
    add(x: number[]): void;
    search(x: number[], k: number): { distances: number[]; labels: number[] };
    addBuffer(x: Float32Array): void;
    trainBuffer(x: Float32Array): void;
    searchBuffer(x: Float32Array, k: number): BufferSearchResult;
    /** On the libuv pool; `x` is read in place: leave it unchanged until the promise settles. */
    searchAsync(x: Float32Array, k: number): Promise<BufferSearchResult>;
    /** The same with the queries as float16 bit patterns, widened to float32 on the pool thread. */
    searchHalfAsync(x: Uint16Array, k: number): Promise<BufferSearchResult>;
    /** The rows of `x` (whole rows) numbered in `rows`, gathered natively and searched. */
    searchRows(x: Float32Array, rows: Int32Array, k: number): BufferSearchResult;
    setNprobe(n: number): void;
    /** faiss ParameterSpace.set_index_parameter: "nprobe", "efSearch", ... (throws if not settable). */
    setParameter(name: string, value: number): void;
    toBuffer(): Buffer;
    write(fname: string): void;
    static read(fname: string): Index;
    static fromBuffer(src: Buffer): Index;
    static fromFactory(dims: number, descriptor: string, metric?: number): Index;
  }
  export class IndexFlatL2 extends Index {}
  /** Squared L2 distance of every pair of rows of x (n x d), row-major n x n (faiss pairwise_L2sqr). */
  export function pairwiseL2(x: Float32Array, d: number): Float32Array;
  /** Row-major a (rows x aCols) times b (aCols x bCols) by BLAS sgemm. */
  export function matmul(a: Float32Array, aCols: number, b: Float32Array, bCols: number): Float32Array;
  /**
   * Whether exact searches of flat L2 indexes (20+ queries, k <= 16) take our blocked search (the
   * default) or faiss' own path: for the benchmark's comparison and the tests that both agree.
   */
  export function setBlockedFlatSearch(on: boolean): void;
  /** The CPU kernels OpenBLAS chose when it loaded ("Haswell", "SkylakeX", ...). */
  export function blasCore(): string;
  /**
   * The OpenMP threads faiss' loops use on the calling thread (our patch); with n, sets them and
   * returns the previous count.
   */
  export function ompThreads(n?: number): number;
  /**
   * Float32 values to IEEE halves (round to nearest even, as lib/util/float16.ts), natively (F16C
   * where the CPU has it); true when every half is finite.
   */
  export function toHalves(src: Float32Array, out: Uint16Array): boolean;
}
