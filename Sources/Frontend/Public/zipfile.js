// Reads one small text file out of a zip the researcher chose, in the browser, before anything is
// uploaded: the central directory from the end of the file, then the one entry (stored, or deflated
// through the browser's own DecompressionStream). Used to find the parameters a project declares.
"use strict";
const zipfile = {
  /** The entries' names and where their data lies; [] when the file is not a zip this can read. */
  async entries(file) {
    const tailSize = Math.min(file.size, 65557);
    const tail = new DataView(await file.slice(file.size - tailSize).arrayBuffer());
    let end = -1;
    for (let i = tail.byteLength - 22; i >= 0; i--) if (tail.getUint32(i, true) === 0x06054b50) { end = i; break; }
    if (end < 0) return [];
    const count = tail.getUint16(end + 10, true), size = tail.getUint32(end + 12, true), offset = tail.getUint32(end + 16, true);
    if (offset === 0xffffffff || size > 8 << 20) return [];
    const directory = new DataView(await file.slice(offset, offset + size).arrayBuffer());
    const entries = [], decoder = new TextDecoder();
    for (let at = 0, n = 0; n < count && at + 46 <= directory.byteLength; n++) {
      if (directory.getUint32(at, true) !== 0x02014b50) break;
      const method = directory.getUint16(at + 10, true), compressed = directory.getUint32(at + 20, true), length = directory.getUint32(at + 24, true);
      const nameLength = directory.getUint16(at + 28, true), extra = directory.getUint16(at + 30, true), comment = directory.getUint16(at + 32, true);
      const local = directory.getUint32(at + 42, true);
      const name = decoder.decode(new Uint8Array(directory.buffer, at + 46, nameLength));
      entries.push({ name, method, compressed, length, local });
      at += 46 + nameLength + extra + comment;
    }
    return entries;
  },

  /** The text of `entry` (at most `limit` bytes), or null. */
  async text(file, entry, limit = 65536) {
    if (entry.length > limit || entry.compressed > limit * 2) return null;
    const header = new DataView(await file.slice(entry.local, entry.local + 30).arrayBuffer());
    if (header.getUint32(0, true) !== 0x04034b50) return null;
    const start = entry.local + 30 + header.getUint16(26, true) + header.getUint16(28, true);
    const data = file.slice(start, start + entry.compressed);
    if (entry.method === 0) return await data.text();
    if (entry.method !== 8 || typeof DecompressionStream === "undefined") return null;
    return await new Response(data.stream().pipeThrough(new DecompressionStream("deflate-raw"))).text();
  },

  /** `name` beside the project's code.py (`project/name`, or `name` for a zip of the folder's contents). */
  async besideCode(file, name) {
    const entries = (await zipfile.entries(file)).filter((e) => !e.name.startsWith("__MACOSX/"));
    const code = entries.find((e) => /^([^/]+\/)?code\.py$/.test(e.name));
    if (!code) return null;
    const wanted = entries.find((e) => e.name === code.name.slice(0, -"code.py".length) + name);
    return wanted ? await zipfile.text(file, wanted) : null;
  },
};
