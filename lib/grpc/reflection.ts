/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha,
 * https://github.com/grpc/grpc/blob/master/doc/server-reflection.md) served from the protobuf-es
 * descriptors compiled into gen/, so grpcurl, Postman and other generic clients can discover the API.
 */
import { create, toBinary, type DescEnum, type DescFile, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type { ServiceImpl } from "./server.js";

/** Index of every file, and every fully-qualified symbol to the file that defines it. */
class DescriptorIndex {
  readonly files = new Map<string, DescFile>();
  readonly symbols = new Map<string, DescFile>();

  constructor(readonly services: DescService[]) {
    for (const s of services) this.addFile(s.file);
  }

  private addFile(f: DescFile): void {
    if (this.files.has(f.name + ".proto")) return;
    this.files.set(f.name + ".proto", f);
    for (const dep of f.dependencies) this.addFile(dep);
    for (const s of f.services) {
      this.symbols.set(s.typeName, f);
      for (const m of s.methods) this.symbols.set(`${s.typeName}.${m.name}`, f);
    }
    const addMessage = (m: DescMessage) => {
      this.symbols.set(m.typeName, f);
      for (const n of m.nestedMessages) addMessage(n);
      for (const e of m.nestedEnums) this.symbols.set(e.typeName, f);
    };
    for (const m of f.messages) addMessage(m);
    for (const e of f.enums as DescEnum[]) this.symbols.set(e.typeName, f);
  }

  /** The file and its transitive dependencies, serialised, the file first. */
  closure(f: DescFile): Uint8Array[] {
    const out: Uint8Array[] = [];
    const seen = new Set<string>();
    const visit = (x: DescFile) => {
      if (seen.has(x.name)) return;
      seen.add(x.name);
      out.push(toBinary(FileDescriptorProtoSchema, x.proto));
      for (const d of x.dependencies) visit(d);
    };
    visit(f);
    return out;
  }
}

type Api = typeof v1 | typeof v1alpha;

function reflectionImpl(api: Api, index: DescriptorIndex, serviceNames: string[]) {
  // Both versions share one wire format; the generated types differ only in their package.
  const a = api as typeof v1;
  return {
    serverReflectionInfo: async function* (reqs: AsyncIterable<v1.ServerReflectionRequest>) {
      for await (const req of reqs) {
        const base = { validHost: req.host, originalRequest: req };
        const notFound = (what: string) =>
          create(a.ServerReflectionResponseSchema, {
            ...base,
            messageResponse: { case: "errorResponse", value: create(a.ErrorResponseSchema, { errorCode: 5, errorMessage: `${what} not found` }) },
          });
        const files = (f: DescFile) =>
          create(a.ServerReflectionResponseSchema, {
            ...base,
            messageResponse: { case: "fileDescriptorResponse", value: create(a.FileDescriptorResponseSchema, { fileDescriptorProto: index.closure(f) }) },
          });
        const r = req.messageRequest;
        switch (r.case) {
          case "listServices":
            yield create(a.ServerReflectionResponseSchema, {
              ...base,
              messageResponse: {
                case: "listServicesResponse",
                value: create(a.ListServiceResponseSchema, { service: serviceNames.map((name) => create(a.ServiceResponseSchema, { name })) }),
              },
            });
            break;
          case "fileByFilename": {
            const f = index.files.get(r.value);
            yield f ? files(f) : notFound(`file ${r.value}`);
            break;
          }
          case "fileContainingSymbol": {
            const f = index.symbols.get(r.value.replace(/^\./, ""));
            yield f ? files(f) : notFound(`symbol ${r.value}`);
            break;
          }
          case "allExtensionNumbersOfType":
            // lvsfleet defines no extensions.
            yield create(a.ServerReflectionResponseSchema, {
              ...base,
              messageResponse: { case: "allExtensionNumbersResponse", value: create(a.ExtensionNumberResponseSchema, { baseTypeName: r.value }) },
            });
            break;
          default:
            yield notFound("extension");
        }
      }
    },
  };
}

/** Reflection handlers for v1 and v1alpha describing `services` (and the reflection/health services themselves). */
export function reflectionServices(services: DescService[]): {
  v1: ServiceImpl<typeof v1.ServerReflection>;
  v1alpha: ServiceImpl<typeof v1alpha.ServerReflection>;
} {
  const all = [...services, v1.ServerReflection, v1alpha.ServerReflection];
  const index = new DescriptorIndex(all);
  const names = all.map((s) => s.typeName);
  return {
    v1: reflectionImpl(v1, index, names) as unknown as ServiceImpl<typeof v1.ServerReflection>,
    v1alpha: reflectionImpl(v1alpha, index, names) as unknown as ServiceImpl<typeof v1alpha.ServerReflection>,
  };
}
