import { createHash } from 'crypto';
import * as fs from 'fs';

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function sha256File(file: string): string {
  return sha256Hex(fs.readFileSync(file));
}
