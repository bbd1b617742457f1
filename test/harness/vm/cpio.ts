// Minimal writer for the "newc" cpio format the kernel unpacks as initramfs
// (https://docs.kernel.org/driver-api/early-userspace/buffer-format.html). Uncompressed on purpose:
// the archive is ~5 MB and decompressing it under TCG costs more than reading it.

export interface CpioEntry {
  path: string; // relative, no leading slash
  mode: number; // full st_mode, e.g. 0o100755 file, 0o040755 dir, 0o120777 symlink, 0o020600 char dev
  data?: Buffer; // file content, or the symlink target
  rdevMajor?: number;
  rdevMinor?: number;
}

const hex8 = (n: number) => n.toString(16).padStart(8, "0");
const pad4 = (n: number) => (4 - (n % 4)) % 4;

export function writeNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const push = (e: CpioEntry) => {
    const name = Buffer.from(e.path + "\0");
    const data = e.data ?? Buffer.alloc(0);
    const header =
      "070701" +
      [ino++, e.mode, 0, 0, (e.mode & 0o170000) === 0o040000 ? 2 : 1, 0, data.length, 0, 0, e.rdevMajor ?? 0, e.rdevMinor ?? 0, name.length, 0]
        .map(hex8)
        .join("");
    parts.push(Buffer.from(header, "ascii"), name, Buffer.alloc(pad4(110 + name.length)), data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) push(e);
  push({ path: "TRAILER!!!", mode: 0 });
  return Buffer.concat(parts);
}
