/**
 * k8s/: the base and the example overlay render, and every object they render is a valid
 * Kubernetes object of its kind (kubernetes-models), with no unknown fields.
 */
import { strict as assert } from 'node:assert';
import { TREES, Tree, ofKind, rendered } from './manifests';
import { applyJson6902, render, strategicMerge } from './render';
import { unknownFieldErrors, validateModel } from './schema';

const trees = Object.keys(TREES) as Tree[];

describe('k8s manifests: rendering and Kubernetes schemas', function () {
  this.timeout(30_000);

  it('the renderer merges containers and env by name, replaces other lists, applies JSON patches', () => {
    const base = {
      spec: { containers: [{ name: 'a', args: ['x'], env: [{ name: 'A', value: '1' }] }, { name: 'b' }] },
    };
    const merged = strategicMerge(base, {
      spec: { containers: [{ name: 'a', args: ['y'], env: [{ name: 'B', value: '2' }] }] },
    });
    assert.deepEqual(merged, {
      spec: {
        containers: [
          {
            name: 'a',
            args: ['y'],
            env: [
              { name: 'A', value: '1' },
              { name: 'B', value: '2' },
            ],
          },
          { name: 'b' },
        ],
      },
    });
    assert.throws(() => strategicMerge({ ports: [{ port: 1 }] }, { ports: [{ port: 2 }] }), /not supported/);
    const doc = { apiVersion: 'v1', kind: 'X', metadata: { name: 'x' }, spec: { list: [1, 2], n: 1 } };
    applyJson6902(doc, [
      { op: 'add', path: '/spec/list/-', value: 3 },
      { op: 'replace', path: '/spec/n', value: 2 },
      { op: 'remove', path: '/spec/list/0' },
    ]);
    assert.deepEqual(doc.spec, { list: [2, 3], n: 2 });
  });

  for (const tree of trees) {
    it(`${tree}: every object is valid for its apiVersion and kind`, () => {
      const objects = rendered(tree);
      assert.ok(objects.length >= 10, `${tree} rendered ${objects.length} objects`);
      const errors = objects
        .map((o) => [`${o.kind}/${o.metadata.name}`, validateModel(o)])
        .filter(([, err]) => err !== null);
      assert.deepEqual(errors, []);
    });

    it(`${tree}: names are unique per kind and every object is in one namespace`, () => {
      const objects = rendered(tree);
      const keys = objects.map((o) => `${o.kind}/${o.metadata.name}`);
      assert.equal(new Set(keys).size, keys.length, `duplicates in ${keys.join(', ')}`);
      const namespaces = new Set(
        objects.filter((o) => o.kind !== 'Namespace').map((o) => o.metadata.namespace),
      );
      assert.equal(namespaces.size, 1, `namespaces ${[...namespaces].join(', ')}`);
      for (const ns of ofKind(objects, 'Namespace')) assert.ok(namespaces.has(ns.metadata.name));
    });
  }

  it('no object has a field its Kubernetes type does not define (and a misspelt one is caught)', () => {
    const all = trees.flatMap((tree) =>
      rendered(tree).map((object) => ({ label: `${tree} ${object.kind}/${object.metadata.name}`, object })),
    );
    // One program for all (about a second): a known-bad copy proves the check sees nested fields.
    const [sts] = ofKind(render(TREES.base), 'StatefulSet');
    const spec = (sts.spec as { template: { spec: { containers: Record<string, unknown>[] } } }).template
      .spec;
    spec.containers[0].readinesProbe = spec.containers[0].readinessProbe;
    const errors = unknownFieldErrors([...all, { label: 'misspelt', object: sts }]);
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0], /^misspelt: .*readinesProbe/);
  });

  it('the overlay sets the namespace, the plant label and a pinned image everywhere', () => {
    const objects = rendered('plant-example');
    for (const o of objects) {
      if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'spi-plant-example', o.metadata.name);
      assert.equal(o.metadata.labels?.['spi.inspector/plant'], 'example', `${o.kind}/${o.metadata.name}`);
    }
    const images = objects.flatMap((o) =>
      (
        (o.spec as { template?: { spec: { containers: { image: string }[] } } })?.template?.spec.containers ??
        []
      ).map((c) => c.image),
    );
    assert.ok(images.includes('registry.plant.example/spi:0.1.0'));
    for (const image of images) assert.match(image, /^[^:]+\/[^:]+:(?!latest$)[\w.-]+$/, image);
  });
});
