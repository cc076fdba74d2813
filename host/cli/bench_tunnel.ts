// `wesp bench tunnel [OPTIONS]`: the end-to-end benchmark (bench/tunnel/index.ts):
// iperf3 through wesp and its peers in network namespaces. docs/performance.md.
export async function main(args: string[]): Promise<number> {
  const bench = await import("../../bench/tunnel/index.ts");
  return bench.main(args);
}
