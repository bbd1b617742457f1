/**
 * A lean gRPC load generator for bench/api.ts — the role ghz or h2load play elsewhere: raw
 * `node:http2` client sessions sending pre-encoded gRPC requests, with none of grpc-js's per-call
 * machinery (call objects, interceptors, metadata, filters, status objects) on the client side.
 *
 * One unary gRPC call over HTTP/2 (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
 *
 *   client → HEADERS  :method POST  :scheme http  :path /pkg.Service/Method
 *                     content-type application/grpc  te trailers
 *   client → DATA     +------+----------------+-----------------+  END_STREAM
 *                     | 0x00 | length (u32 BE) | protobuf bytes  |
 *                     +------+----------------+-----------------+
 *   server → HEADERS  :status 200  content-type application/grpc
 *   server → DATA     the same 5-byte prefix + the response message (may span several frames)
 *   server → HEADERS  grpc-status 0 (trailers, END_STREAM)
 *
 * An error may come as "trailers only": grpc-status in the only HEADERS frame. Every call here checks
 * :status 200 and grpc-status 0, and hands the response message bytes to the caller, which walks
 * their top level (bench/api.ts scanTop) instead of decoding them.
 */
import * as http2 from "node:http2";
import { once } from "node:events";

/** A gRPC message with its 5-byte length prefix (uncompressed), ready to write as one DATA frame. */
export function grpcFrame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** One HTTP/2 connection to the server: the lean twin of one grpc-js channel. */
export class H2GrpcSession {
  private constructor(
    private readonly session: http2.ClientHttp2Session,
    private readonly authority: string,
  ) {}

  static async connect(address: string): Promise<H2GrpcSession> {
    const session = http2.connect(`http://${address}`);
    await Promise.race([
      once(session, "connect"),
      once(session, "error").then(([err]) => {
        throw err;
      }),
    ]);
    // An error after connect fails the calls in flight (their streams error); keep it from crashing the process.
    session.on("error", () => undefined);
    return new H2GrpcSession(session, address);
  }

  /** A unary call: `body` is a grpcFrame(...); resolves with the response message (prefix removed). */
  unary(path: string, body: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const req = this.session.request({
        ":method": "POST",
        ":scheme": "http",
        ":path": path,
        ":authority": this.authority,
        "content-type": "application/grpc",
        te: "trailers",
      });
      const chunks: Buffer[] = [];
      let status: number | undefined;
      let grpcStatus: string | undefined;
      let grpcMessage: string | undefined;
      req.on("response", (h) => {
        status = h[":status"];
        // Trailers-only response: the status rides on the response headers.
        if (h["grpc-status"] !== undefined) {
          grpcStatus = String(h["grpc-status"]);
          grpcMessage = h["grpc-message"] as string | undefined;
        }
      });
      req.on("trailers", (t) => {
        grpcStatus = String(t["grpc-status"]);
        grpcMessage = t["grpc-message"] as string | undefined;
      });
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("error", reject);
      req.on("end", () => {
        if (status !== 200) return reject(new Error(`${path}: HTTP :status ${status}`));
        if (grpcStatus !== "0") return reject(new Error(`${path}: grpc-status ${grpcStatus} ${grpcMessage ? decodeURIComponent(grpcMessage) : ""}`));
        const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        if (buf.length < 5) return reject(new Error(`${path}: no response message`));
        if (buf[0] !== 0) return reject(new Error(`${path}: compressed response (flag ${buf[0]})`));
        const len = buf.readUInt32BE(1);
        if (buf.length !== 5 + len) return reject(new Error(`${path}: response of ${buf.length - 5} bytes, prefix says ${len}`));
        resolve(buf.subarray(5));
      });
      req.end(body);
    });
  }

  close(): void {
    this.session.close();
  }
}
