// From samples to the report: medians with min–max per contender and
// workload, ratios of wesp to each peer per endpoint CPU-second, and the
// Markdown tables printed at the end (and pasted into docs/performance.md).
import { WORKLOAD_LABEL, WORKLOADS, type Sample, type Workload } from "./workload.ts";

export interface Stat {
  median: number;
  min: number;
  max: number;
}

export interface Row {
  contender: string;
  label: string;
  workload: Workload;
  runs: number;
  mbps: Stat;
  kpps: Stat;
  lossPercent: Stat | null;
  retransmits: Stat | null;
  cpuA: Stat | null;
  cpuB: Stat | null;
  mbitPerCpuS: Stat | null;
  kppsPerCpuS: Stat | null;
}

export interface Ratio {
  workload: Workload;
  wesp: string;
  peer: string;
  /** wesp's median Mbit per endpoint CPU-second ÷ the peer's. */
  perCpuS: number;
  /** wesp's median Mbit/s ÷ the peer's. */
  throughput: number;
}

export function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { median: s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2, min: s[0], max: s[s.length - 1] };
}

const statOf = (xs: (number | null)[]): Stat | null => {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length ? stat(v) : null;
};

export function summarise(samples: Sample[], labels: Map<string, string>): Row[] {
  const rows: Row[] = [];
  for (const [id, label] of labels) {
    for (const w of WORKLOADS) {
      const ss = samples.filter((s) => s.contender === id && s.workload === w);
      if (!ss.length) continue;
      rows.push({
        contender: id,
        label,
        workload: w,
        runs: ss.length,
        mbps: stat(ss.map((s) => s.mbps)),
        kpps: stat(ss.map((s) => s.kpps)),
        lossPercent: statOf(ss.map((s) => s.lossPercent)),
        retransmits: statOf(ss.map((s) => s.retransmits)),
        cpuA: statOf(ss.map((s) => s.cpu[0] ?? null)),
        cpuB: statOf(ss.map((s) => s.cpu[1] ?? null)),
        mbitPerCpuS: statOf(ss.map((s) => s.mbitPerCpuS)),
        kppsPerCpuS: statOf(ss.map((s) => s.kppsPerCpuS)),
      });
    }
  }
  return rows;
}

export function ratios(rows: Row[], family: (id: string) => string): Ratio[] {
  const out: Ratio[] = [];
  for (const w of rows.filter((r) => family(r.contender) === "wesp")) {
    for (const p of rows.filter((r) => r.workload === w.workload && family(r.contender) !== "wesp")) {
      out.push({
        workload: w.workload,
        wesp: w.contender,
        peer: p.contender,
        perCpuS: w.mbitPerCpuS && p.mbitPerCpuS ? w.mbitPerCpuS.median / p.mbitPerCpuS.median : NaN,
        throughput: w.mbps.median / p.mbps.median,
      });
    }
  }
  return out;
}

const n0 = (x: number) => Math.round(x).toLocaleString("en-US");
const n1 = (x: number) => (x >= 100 ? n0(x) : x.toFixed(1));
const range = (s: Stat | null, f = n1) => (s ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : "—");

/** The results table: one block of rows per workload. */
export function resultsTable(rows: Row[]): string {
  const lines = [
    "| workload | contender | Mbit/s | kpps | loss % / TCP retr. | CPU-s A + B | **Mbit per endpoint CPU-s** | kpkt per CPU-s |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const w of WORKLOADS) {
    for (const r of rows.filter((x) => x.workload === w)) {
      const loss = r.lossPercent ? `${r.lossPercent.median.toFixed(1)} %` : r.retransmits ? n0(r.retransmits.median) : "—";
      const cpu = r.cpuA && r.cpuB ? `${r.cpuA.median.toFixed(2)} + ${r.cpuB.median.toFixed(2)}` : "no process";
      lines.push(`| ${WORKLOAD_LABEL[w]} | ${r.label} | ${range(r.mbps)} | ${range(r.kpps)} | ${loss} | ${cpu} | **${range(r.mbitPerCpuS)}** | ${range(r.kppsPerCpuS)} |`);
    }
  }
  return lines.join("\n");
}

/** wesp ÷ each peer per endpoint CPU-second (throughput ratio in brackets). */
export function ratioTable(rs: Ratio[], labels: Map<string, string>): string {
  const wesps = [...new Set(rs.map((r) => r.wesp))];
  const peers = [...new Set(rs.map((r) => r.peer))];
  if (!wesps.length || !peers.length) return "(no ratios: wesp and at least one peer must both have run)";
  const lines = [
    `| workload | peer | ${wesps.map((w) => `${labels.get(w)} ÷ peer`).join(" | ")} |`,
    `|---|---|${wesps.map(() => "---:").join("|")}|`,
  ];
  const f = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : "—");
  for (const w of WORKLOADS) {
    for (const p of peers) {
      const cells = wesps.map((id) => rs.find((r) => r.workload === w && r.peer === p && r.wesp === id));
      if (cells.every((c) => !c)) continue;
      lines.push(`| ${WORKLOAD_LABEL[w]} | ${labels.get(p)} | ${cells.map((c) => (c ? `**${f(c.perCpuS)}** (${f(c.throughput)})` : "—")).join(" | ")} |`);
    }
  }
  return lines.join("\n");
}
