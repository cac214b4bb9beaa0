/** BuildSpec.head through the admin service's request builder (no cluster needed). */
import { strict as assert } from 'node:assert';
import { DEFAULT_ADMIN, toBuildRequest } from '../../../services/gateway/admin-service';
import { buildSpec } from '../../../lib/rpc/messages';
import { DEFAULT_HEAD_FIT } from '../../../lib/head/head-bank';
import { checkHeadStages } from '../../../lib/head/head-embedding';
import { SpiError } from '../../../lib/errors';

const images = Array.from({ length: 4 }, (_, i) => ({
  path: `${i}.png`,
  read: async () => new Uint8Array(),
}));

describe('BuildSpec.head (admin service)', () => {
  it('asks for the default head, with head_epochs as its epoch ceiling', () => {
    const plain = toBuildRequest('create', buildSpec({ bank: 'b' }), images, DEFAULT_ADMIN);
    assert.equal(plain.head, undefined);
    const req = toBuildRequest(
      'create',
      buildSpec({ bank: 'b', head: 'glass', headEpochs: 3 }),
      images,
      DEFAULT_ADMIN,
    );
    assert.equal(req.head?.mode, 'combined');
    assert.equal(req.head?.train.epochs, 3);
    assert.equal(req.head?.localImages, DEFAULT_HEAD_FIT.localImages);
    const dflt = toBuildRequest('create', buildSpec({ bank: 'b', head: 'glass' }), images, DEFAULT_ADMIN);
    assert.equal(dflt.head?.train.epochs, DEFAULT_HEAD_FIT.train.epochs);
    assert.equal(dflt.head?.stages, undefined, "head_stages unset: the bank's embedding");
    const own = buildSpec({
      bank: 'b',
      head: 'glass',
      headStages: ' block_6_expand_relu, block_10_expand_relu ',
    });
    assert.deepEqual(toBuildRequest('create', own, images, DEFAULT_ADMIN).head?.stages, [
      'block_6_expand_relu',
      'block_10_expand_relu',
    ]);
  });

  it('refuses head stages the backbone lacks before anything is fitted', () => {
    const spec = { bank: 'b', head: 'glass', auto: 'off', model: 'mobilenet_v2-imagenet' };
    assert.throws(
      () =>
        toBuildRequest('create', buildSpec({ ...spec, headStages: 'block_99_add' }), images, DEFAULT_ADMIN),
      (err: SpiError) =>
        err.kind === 'INVALID_ARGUMENT' &&
        /has no stage "block_99_add"; it has block_2_add, /.test(err.message),
    );
    const ok = toBuildRequest(
      'create',
      buildSpec({ ...spec, headStages: 'block_6_expand_relu' }),
      images,
      DEFAULT_ADMIN,
    );
    assert.deepEqual(ok.head?.stages, ['block_6_expand_relu']);
    // The automatic fit may take either backbone: stages of one are refused, naming the way out.
    assert.throws(
      () => checkHeadStages(['mobilenet_v2-imagenet', 'inception_v3-imagenet'], ['block_6_expand_relu']),
      /model inception_v3-imagenet has no stage "block_6_expand_relu".*name one, or turn auto off/,
    );
    assert.doesNotThrow(() => checkHeadStages(['inception_v3-imagenet'], ['mixed1', 'mixed5']));
    assert.doesNotThrow(() => checkHeadStages(['mobilenet_v2-imagenet', 'inception_v3-imagenet'], undefined));
  });

  it('refuses an unknown head, a unified bank and add_to_active', () => {
    const bad = (spec: Parameters<typeof buildSpec>[0], files = images) =>
      assert.throws(() => toBuildRequest('rotate', buildSpec(spec), files, DEFAULT_ADMIN), /head/);
    bad({ bank: 'b', head: 'simplenet' });
    bad(
      { bank: 'b', head: 'glass', categories: ['x', 'y'] },
      images.map((im, i) => ({ ...im, path: `${i % 2 ? 'x' : 'y'}/${im.path}` })),
    );
    bad({ bank: 'b', head: 'glass', addToActive: true });
  });
});
