// The chart, written by hand (no dependency): one panel per workload and
// measure, horizontal bars per contender with the median as the bar and the
// min–max range as a whisker. Left column: Mbit per endpoint CPU-second (the
// efficiency the goals are stated in); right column: Mbit/s through
// the tunnel. wesp's bars are dark, peers' light, the bare veth grey.
import type { Row, Stat } from "./report.ts";
import { WORKLOAD_LABEL, WORKLOADS } from "./workload.ts";

const BAR = 16, GAP = 6, LABEL_W = 190, PLOT_W = 300, PANEL_PAD = 34, COL_GAP = 40;

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const fmt = (x: number) => (x >= 100 ? Math.round(x).toLocaleString("en-US") : x.toFixed(1));

function colour(family: string): string {
  return family === "wesp" ? "#1f4e8c" : family === "veth" ? "#9a9a9a" : "#9cc3e6";
}

function panel(x: number, y: number, title: string, bars: { label: string; family: string; s: Stat | null }[]): string {
  const max = Math.max(1e-9, ...bars.map((b) => b.s?.max ?? 0));
  const out = [`<text x="${x}" y="${y + 14}" font-weight="bold">${esc(title)}</text>`];
  bars.forEach((b, i) => {
    const by = y + PANEL_PAD + i * (BAR + GAP);
    out.push(`<text x="${x + LABEL_W - 6}" y="${by + BAR - 4}" text-anchor="end">${esc(b.label)}</text>`);
    if (!b.s) {
      out.push(`<text x="${x + LABEL_W + 4}" y="${by + BAR - 4}" fill="#777">no endpoint process</text>`);
      return;
    }
    const sx = (v: number) => x + LABEL_W + (v / max) * PLOT_W;
    out.push(`<rect x="${x + LABEL_W}" y="${by}" width="${(sx(b.s.median) - x - LABEL_W).toFixed(1)}" height="${BAR}" fill="${colour(b.family)}"/>`);
    const wy = by + BAR / 2;
    out.push(`<line x1="${sx(b.s.min).toFixed(1)}" x2="${sx(b.s.max).toFixed(1)}" y1="${wy}" y2="${wy}" stroke="#000" stroke-width="1"/>`);
    for (const v of [b.s.min, b.s.max]) out.push(`<line x1="${sx(v).toFixed(1)}" x2="${sx(v).toFixed(1)}" y1="${wy - 4}" y2="${wy + 4}" stroke="#000"/>`);
    out.push(`<text x="${(sx(b.s.max) + 5).toFixed(1)}" y="${by + BAR - 4}">${fmt(b.s.median)}</text>`);
  });
  return out.join("\n");
}

export function chart(rows: Row[], family: (id: string) => string, subtitle: string): string {
  const ids = [...new Set(rows.map((r) => r.contender))];
  const panelH = PANEL_PAD + ids.length * (BAR + GAP) + 18;
  const colW = LABEL_W + PLOT_W + 60;
  const width = 2 * colW + COL_GAP + 20;
  const top = 56;
  const height = top + WORKLOADS.length * panelH + 10;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">wesp bench tunnel: iperf3 through two endpoints, medians, whiskers min–max</text>`,
    `<text x="10" y="42" fill="#444">${esc(subtitle)}</text>`,
  ];
  WORKLOADS.forEach((w, i) => {
    const y = top + i * panelH;
    const of = (pick: (r: Row) => Stat | null) => ids.map((id) => {
      const r = rows.find((x) => x.contender === id && x.workload === w);
      return { label: r?.label ?? id, family: family(id), s: r ? pick(r) : null };
    });
    parts.push(panel(10, y, `${WORKLOAD_LABEL[w]}: Mbit per endpoint CPU-second (A+B)`, of((r) => r.mbitPerCpuS)));
    parts.push(panel(10 + colW + COL_GAP, y, `${WORKLOAD_LABEL[w]}: Mbit/s`, of((r) => r.mbps)));
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
