/** Side effect only: see faiss.ts. */
process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
