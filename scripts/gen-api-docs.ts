/**
 * Writes docs/API.md from the comments in proto/spi/v1/inspection.proto, so the API reference can
 * never drift from the contract. `make docs`; a unit test checks the file is up to date.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

export const PROTO = path.join(__dirname, '..', 'proto', 'spi', 'v1', 'inspection.proto');
export const API_DOC = path.join(__dirname, '..', 'docs', 'API.md');

export function renderApiDocs(source: string = fs.readFileSync(PROTO, 'utf8')): string {
  const { root } = protobuf.parse(source, { keepCase: true, alternateCommentMode: true });
  const pkg = root.lookup('spi.v1') as protobuf.Namespace;
  const services = pkg.nestedArray.filter((n): n is protobuf.Service => n instanceof protobuf.Service);
  const messages = pkg.nestedArray.filter((n): n is protobuf.Type => n instanceof protobuf.Type);
  const text = (c: string | null | undefined) => (c ?? '').replace(/\s*\n\s*/g, ' ').trim();
  const lines = [
    '# SparsePrintInspector API reference (spi.v1)',
    '',
    '_Generated from `proto/spi/v1/inspection.proto` by `scripts/gen-api-docs.ts`; do not edit by hand._',
    '',
  ];
  for (const service of services) {
    lines.push(`## service ${service.name}`, '');
    if (service.comment) lines.push(text(service.comment), '');
    lines.push('| RPC | request | response | what it does |', '|---|---|---|---|');
    for (const m of service.methodsArray) {
      const req = `${m.requestStream ? 'stream ' : ''}${m.requestType}`;
      const res = `${m.responseStream ? 'stream ' : ''}${m.responseType}`;
      lines.push(`| ${m.name} | ${req} | ${res} | ${text(m.comment)} |`);
    }
    lines.push('');
  }
  lines.push('## Messages', '');
  for (const type of messages) {
    lines.push(`### ${type.name}`, '');
    if (type.comment) lines.push(text(type.comment), '');
    if (type.fieldsArray.length === 0) {
      lines.push('(no fields)', '');
      continue;
    }
    lines.push('| field | type | meaning |', '|---|---|---|');
    for (const f of type.fieldsArray) {
      const kind = `${f.repeated ? 'repeated ' : ''}${f.options?.proto3_optional ? 'optional ' : ''}${f.type}`;
      const oneof = f.partOf && !f.partOf.name.startsWith('_') ? ` (oneof ${f.partOf.name})` : '';
      lines.push(`| ${f.name} | ${kind}${oneof} | ${text(f.comment)} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

if (require.main === module) {
  fs.mkdirSync(path.dirname(API_DOC), { recursive: true });
  fs.writeFileSync(API_DOC, renderApiDocs());
  console.log(`wrote ${API_DOC}`);
}
