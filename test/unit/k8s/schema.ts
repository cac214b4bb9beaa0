/**
 * Checks rendered objects against the Kubernetes API types of kubernetes-models: its validators
 * (required fields, types, enums, formats), and its TypeScript interfaces for what those validators
 * let through, unknown fields (a misspelt `readinesProbe` is silently dropped by the API server).
 */
import * as path from 'node:path';
import * as ts from 'typescript';
import { K8sObject } from './render';

/** The kubernetes-models module of an apiVersion/kind: "apps/v1" + "StatefulSet" -> "apps/v1/StatefulSet". */
export function modelPath(o: K8sObject): string {
  return `kubernetes-models/${o.apiVersion}/${o.kind}`;
}

/** Runtime validation; returns the error message, or null when valid. */
export function validateModel(o: K8sObject): string | null {
  let Model: new (data: unknown) => { validate(): void };
  try {
    Model = (require(modelPath(o)) as Record<string, typeof Model>)[o.kind];
  } catch {
    return `no Kubernetes model for ${o.apiVersion} ${o.kind}`;
  }
  try {
    new Model(o).validate();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Type-checks every object as an object literal of its kubernetes-models interface, so excess
 * property checks report unknown fields at any depth. Returns one message per problem.
 */
export function unknownFieldErrors(objects: { label: string; object: K8sObject }[]): string[] {
  const file = path.join(__dirname, '__manifests__.ts');
  const lines = objects.map(({ object }, i) => {
    const iface = `I${object.kind}`;
    return `import type { ${iface} as T${i} } from '${modelPath(object)}';\nexport const o${i}: T${i} = ${JSON.stringify(object)};`;
  });
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    // ES5 lib only: the model types need no more, and it keeps the check near a second.
    lib: ['lib.es5.d.ts'],
    types: [],
    target: ts.ScriptTarget.ES5,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile;
  const fileExists = host.fileExists;
  host.getSourceFile = (name, lang, ...rest) =>
    path.resolve(name) === file
      ? ts.createSourceFile(name, source, lang)
      : getSourceFile(name, lang, ...rest);
  host.fileExists = (name) => path.resolve(name) === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    const which = objects[Math.floor(line / 2)]?.label ?? 'manifests';
    return `${which}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}
