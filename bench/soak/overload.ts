/**
 * The soak's overloader, a process of its own (as another machine's traffic is): its CPU and event
 * loop must not delay the line controllers' measurements in the soak's process. Sends the bursts
 * (./load.ts `burst`) and writes every request's Sample to a JSON file.
 * Args: <gateway address> <CA file> <out file> <settings JSON> <bank> <image files...>
 */
import * as fs from 'node:fs';
import { InspectionClient } from '../../lib/client/inspection-client';
import { BurstSettings, Sample, burst } from './load';

async function main(): Promise<void> {
  const [address, ca, out, settings, bank, ...files] = process.argv.slice(2);
  const client = new InspectionClient(address, { tls: { ca }, retries: 0 });
  const samples: Sample[] = [];
  try {
    const probe = { bank, files, images: files.map((f) => fs.readFileSync(f)) };
    await burst(client, probe, JSON.parse(settings) as BurstSettings, (s) => samples.push(s));
  } finally {
    client.close();
  }
  fs.writeFileSync(out, JSON.stringify(samples));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
