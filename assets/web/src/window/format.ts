// Formatting and stream decoding for the Berth window.

/** ago is a Unix time as "3 minutes ago". */
export function ago(unix: number, now = Date.now() / 1000): string {
  const s = Math.max(0, Math.round(now - unix));
  const units: [number, string][] = [
    [86400 * 365, "year"],
    [86400 * 30, "month"],
    [86400 * 7, "week"],
    [86400, "day"],
    [3600, "hour"],
    [60, "minute"],
  ];
  for (const [n, u] of units) {
    if (s >= n) {
      const k = Math.floor(s / n);
      return `${k} ${u}${k === 1 ? "" : "s"} ago`;
    }
  }
  return "Just now";
}

/** bytes is a size as Docker prints it: "4.26MB" (powers of 1000). */
export function bytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)}${units[i]}`;
}

/**
 * demux takes Docker's multiplexed log stream (frames of an 8-byte
 * header, [stream, 0, 0, 0, size(4, big-endian)], then size bytes): it
 * returns the payload of the whole frames in pending+chunk and the rest.
 */
export function demux(pending: Uint8Array, chunk: Uint8Array): { data: Uint8Array; rest: Uint8Array } {
  const buf = new Uint8Array(pending.length + chunk.length);
  buf.set(pending);
  buf.set(chunk, pending.length);
  const parts: Uint8Array[] = [];
  let off = 0;
  while (buf.length - off >= 8) {
    const size = new DataView(buf.buffer, buf.byteOffset + off + 4, 4).getUint32(0);
    if (buf.length - off - 8 < size) break;
    parts.push(buf.subarray(off + 8, off + 8 + size));
    off += 8 + size;
  }
  const total = parts.reduce((n, p) => n + p.length, 0);
  const data = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
  }
  return { data, rest: buf.slice(off) };
}
