/**
 * gRPC server reflection (@grpc/reflection, v1 and v1alpha), so grpcurl and similar tools can list
 * and call a node's services without the .proto files. Each server exposes only what it serves.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { ServiceBinding } from '../../lib/rpc/grpc-server';
import { LOADER_OPTIONS, PROTO_FILE } from '../../lib/rpc/proto';

export const HEALTH_SERVICE = 'grpc.health.v1.Health';

/** Walks up to the repository's proto file, as proto.ts does (tsx and compiled dist/ alike). */
function spiProtoFile(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, PROTO_FILE);
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`cannot find ${PROTO_FILE} above ${__dirname}`);
  }
}

let definition: protoLoader.PackageDefinition | undefined;

/** Bindings for startGrpcServer that describe `services` (fully qualified, e.g. "spi.v1.BankShard"). */
export function reflectionBindings(services: string[]): ServiceBinding[] {
  definition ??= protoLoader.loadSync([spiProtoFile(), 'health/v1/health.proto'], {
    ...LOADER_OPTIONS,
    includeDirs: [path.resolve(healthProtoPath, '../../..')],
  });
  const bindings: ServiceBinding[] = [];
  new ReflectionService(definition, { services }).addToServer({
    addService: (def, implementation) => bindings.push({ definition: def, implementation }),
  });
  return bindings;
}
