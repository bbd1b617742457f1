// The agent's small durable state: what it last applied, so a restart never re-applies or goes back
// to an older revision. Written atomically (temp file + rename) so a crash leaves the old or the new
// file, never half of one.
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface AppliedState {
  revision: bigint;
  hash: string;
}

interface StateFile {
  site: string;
  host: string;
  appliedRevision: string;
  appliedHash: string;
}

export class StateStore {
  readonly path: string;
  private dirReady = false;

  constructor(
    dir: string,
    private readonly site: string,
    private readonly host: string,
  ) {
    this.path = join(dir, `agent-${site}.${host}.json`);
  }

  /** The last applied state, or revision 0 when there is no (readable) file. */
  async load(): Promise<AppliedState> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { revision: 0n, hash: "" };
      throw err;
    }
    const f = JSON.parse(text) as StateFile;
    // A state file of another host (copied config) must not suppress this host's applies.
    if (f.site !== this.site || f.host !== this.host) return { revision: 0n, hash: "" };
    return { revision: BigInt(f.appliedRevision), hash: f.appliedHash };
  }

  async save(s: AppliedState): Promise<void> {
    const f: StateFile = { site: this.site, host: this.host, appliedRevision: s.revision.toString(), appliedHash: s.hash };
    // The directory once per process (an apply per timeout change on 1 000 agents made mkdir a
    // visible cost in bench:fanout); a directory removed behind our back is made again.
    if (!this.dirReady) {
      await mkdir(join(this.path, ".."), { recursive: true });
      this.dirReady = true;
    }
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(f) + "\n", { mode: 0o644 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      this.dirReady = false;
      await mkdir(join(this.path, ".."), { recursive: true });
      this.dirReady = true;
      await writeFile(tmp, JSON.stringify(f) + "\n", { mode: 0o644 });
    }
    await rename(tmp, this.path);
  }
}
