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

/**
 * words splits a command line as a shell would for simple cases: on
 * blanks, with '…' and "…" quoting (no escapes, no variables).
 */
export function words(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote = "";
  let any = false;
  for (const ch of s) {
    if (quote) {
      if (ch === quote) quote = "";
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      any = true;
    } else if (/\s/.test(ch)) {
      if (any || cur) out.push(cur);
      cur = "";
      any = false;
    } else {
      cur += ch;
    }
  }
  if (any || cur) out.push(cur);
  return out;
}

/** The parts of Docker's stats sample the window reads. */
export interface StatsSample {
  cpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; limit?: number };
}

/**
 * cpuPercent is a stats sample's CPU use since the previous sample, as
 * `docker stats` computes it (100% a CPU), or null for a sample with no
 * previous one.
 */
export function cpuPercent(s: StatsSample): number | null {
  const cur = s.cpu_stats?.cpu_usage?.total_usage ?? 0;
  const pre = s.precpu_stats?.cpu_usage?.total_usage ?? 0;
  const sys = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  if (!pre || !s.precpu_stats?.system_cpu_usage || sys <= 0 || cur < pre) return null;
  return ((cur - pre) / sys) * Math.max(1, s.cpu_stats?.online_cpus ?? 1) * 100;
}

/**
 * sparkPoints is an SVG polyline's points for values in a w×h box, the
 * newest at the right edge, from 0 at the bottom to max (at least floor)
 * at the top, one step of w/(slots-1) apart.
 */
export function sparkPoints(values: number[], w: number, h: number, slots: number, floor: number): string {
  const top = Math.max(floor, ...values);
  const step = w / Math.max(1, slots - 1);
  const x0 = w - step * (values.length - 1);
  return values.map((v, i) => `${(x0 + i * step).toFixed(1)},${(h - 1 - (v / top) * (h - 2)).toFixed(1)}`).join(" ");
}
