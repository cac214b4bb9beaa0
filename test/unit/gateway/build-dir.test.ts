import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_ADMIN, toBuildRequest } from '../../../services/gateway/admin-service';
import { UploadSpool, removeStaleUploads } from '../../../services/gateway/upload-spool';
import { spawnSync } from 'node:child_process';
import { buildSpec } from '../../../lib/rpc/messages';

describe("gateway: a build's folder (--build-dir)", () => {
  let root: string;
  beforeEach(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), 'spi-build-dir-'))));
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('keeps uploads as numbered files of their own folder, read back as sent, all gone on remove', async () => {
    const spool = new UploadSpool(path.join(root, 'builds'));
    const a = await spool.add('sheet a.png', Buffer.from('first'));
    const b = await spool.add('../b.png', Buffer.from('second'));
    assert.deepEqual([a.path, b.path], ['sheet a.png', '../b.png']);
    assert.equal(path.dirname(a.file!), path.dirname(b.file!));
    assert.deepEqual(fs.readdirSync(path.dirname(a.file!)).sort(), ['000000.img', '000001.img']);
    assert.equal(Buffer.from(await b.read()).toString(), 'second');
    assert.deepEqual(spool.received, { images: 2, bytes: 11 });
    await spool.remove();
    await spool.remove();
    assert.deepEqual(fs.readdirSync(path.join(root, 'builds')), []);
  });

  it('refuses to store an upload where it cannot, saying where and that nothing was built', async () => {
    const blocker = path.join(root, 'a-file');
    fs.writeFileSync(blocker, '');
    const spool = new UploadSpool(blocker);
    await assert.rejects(spool.add('x.png', Buffer.from('x')), (err: Error & { kind?: string }) => {
      assert.equal(err.kind, 'INTERNAL');
      assert.match(
        err.message,
        /cannot store an uploaded image in the gateway's build folder .*a-file after 0 images .*nothing was built/,
      );
      return true;
    });
  });

  it('at start, removes the uploads and spills of gateways that died mid-build, not those of one still running', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const alive = process.ppid;
    const names = [
      `uploads-${dead}-a`,
      `uploads-${process.pid}-b`,
      `uploads-${alive}-c`,
      `spi-fit-${dead}-d`,
      'spi-fit-x',
      'notes',
    ];
    for (const name of names) fs.mkdirSync(path.join(root, name));
    fs.writeFileSync(path.join(root, names[0], '000000.img'), 'x');
    const removed = await removeStaleUploads(root);
    assert.deepEqual(
      removed.sort(),
      [`uploads-${dead}-a`, `uploads-${process.pid}-b`, `spi-fit-${dead}-d`].sort(),
    );
    assert.deepEqual(fs.readdirSync(root).sort(), [`uploads-${alive}-c`, 'notes', 'spi-fit-x'].sort());
    assert.deepEqual(await removeStaleUploads(path.join(root, 'none')), []);
  });

  it("a build's patches spill into the same folder, not the system's temporary one", () => {
    const defaults = { ...DEFAULT_ADMIN, buildDir: path.join(root, 'builds') };
    const req = toBuildRequest('create', buildSpec({ bank: 'b', auto: 'off' }), [], defaults);
    assert.equal(req.settings.memory?.spillDir, defaults.buildDir);
    assert.equal(req.settings.memory?.maxBytes, DEFAULT_ADMIN.fitMemory.maxBytes);
  });
});
