#!/usr/bin/env node
// `npx lvsfleet …` from a checkout, no build step: register tsx's ESM loader, then run the
// TypeScript CLI (cli/main.ts).
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
