/**
 * An example line controller: watches a folder where the camera drops frames, streams them to the
 * gateway with InspectStream (backpressure: a slow cluster slows the reader, nothing piles up), and
 * prints a reject signal per defective sheet. Run:
 *   node --import tsx examples/line-controller.ts --gateway 127.0.0.1:50051 --bank job-42 --frames ./frames
 * Rejected sheets an operator found good go back as false alarms, queued for the bank's next
 * incremental version (RotateBank with addToActive and includeFeedback):
 *   node --import tsx examples/line-controller.ts --bank job-42 --good ./rejected-but-good
 * A unified bank (several products) judges each frame by its product's threshold and adds a sheet
 * sent back as good to its product's images: name the product the line runs with --category.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { InspectionClient, InspectRequest } from '../lib/client/inspection-client';

async function* framesFrom(dir: string, bank: string, category = ''): AsyncGenerator<InspectRequest> {
  for (const file of fs.readdirSync(dir).sort()) {
    if (!/\.(png|jpe?g|tiff?|bmp|webp)$/i.test(file)) continue;
    yield { bank, category, image: await fs.promises.readFile(path.join(dir, file)), requestId: file };
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      gateway: { type: 'string', default: '127.0.0.1:50051' },
      bank: { type: 'string' },
      frames: { type: 'string' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      good: { type: 'string' },
      category: { type: 'string' },
    },
  });
  if (!values.bank || !(values.frames || values.good))
    throw new Error('usage: --gateway host:port --bank <bank> (--frames <folder> | --good <folder>)');
  const tls = values.ca ? { ca: values.ca, cert: values.cert, key: values.key } : undefined;
  const client = new InspectionClient(values.gateway!, { deadlineMs: 2000, retries: 2, tls });
  try {
    if (values.good) {
      // Frames named as they were inspected (their request ids): "this sheet is good".
      for await (const frame of framesFrom(values.good, values.bank, values.category)) {
        const { queued } = await client.reportFalseAlarm({ ...frame, note: 'operator: good sheet' });
        console.log(`${frame.requestId}: sent back as good (${queued} queued for the next version)`);
      }
      return;
    }
    for await (const answer of client.inspectStream(
      framesFrom(values.frames!, values.bank, values.category),
    )) {
      if (answer.error)
        console.log(`${answer.requestId}: NOT INSPECTED (${answer.error}) -> divert for manual check`);
      else if (answer.isDefective) {
        const where = answer.regions.map((r) => `${r.width}x${r.height}@${r.x},${r.y}`).join(' ');
        console.log(
          `${answer.requestId}: REJECT score ${answer.score.toFixed(2)} > ${answer.threshold.toFixed(2)} at ${where}`,
        );
      } else console.log(`${answer.requestId}: pass (${answer.score.toFixed(2)}, bank v${answer.version})`);
    }
  } finally {
    client.close();
  }
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exitCode = 1;
});
