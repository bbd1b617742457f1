// What every FleetService subcommand (hosts, rollout, stats, health, drain) does around its one call:
// parse its flags with the global ones, answer --help, turn a bad flag into a usage error (exit 2),
// and turn an RPC failure into the CLI's error text (exit 1).
import { parseArgs } from "node:util";
import { RpcError } from "../lib/grpc/status.js";
import { formatError } from "./format.js";

export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
  isTTY?: boolean;
}

type OptionSpec = Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>;

export interface ParsedCommand {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** Prints `message` with the usage text; returns exit code 2. */
  usageError(message: string): number;
}

/** Parses argv with `options` plus --addr, --json, --reason, --help; a number is the exit code to return. */
export function parseCommand(argv: readonly string[], io: CommandIo, usage: string, options: OptionSpec): ParsedCommand | number {
  const usageError = (m: string) => {
    io.stderr(`error: ${m}\n\n${usage}\n`);
    return 2;
  };
  let parsed: { values: ParsedCommand["values"]; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        ...options,
        addr: { type: "string" },
        json: { type: "boolean" },
        reason: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }) as typeof parsed;
  } catch (err) {
    return usageError((err as Error).message);
  }
  if (parsed.values.help) {
    io.stdout(usage + "\n");
    return 0;
  }
  return { ...parsed, usageError };
}

/** Writes an RPC failure the way every command does (UNAVAILABLE says what to check); returns exit code 1. */
export function reportCallError(err: unknown, addr: string, io: CommandIo): number {
  if (err instanceof RpcError) io.stderr(formatError(err.codeName === "UNAVAILABLE" ? { codeName: err.codeName, message: `cannot reach the control plane at ${addr}; is it running? (--addr, LVSFLEET_ADDR)` } : err));
  else io.stderr(formatError({ message: (err as Error)?.message ?? String(err) }));
  return 1;
}
