// The benchmarks' labs: every benchmark that builds network namespaces
// (`bench tunnel`, bench/workers, bench/io) builds them with host/lab/, the
// lab the demo and the tests use, under one prefix. Names carry the owner's
// pid (`wbench-<pid>-<n>-<label>`, `ownerTag`), the lab is torn down on
// success, failure, Ctrl-C and SIGTERM (host/lab/lab.ts's hooks), and a run
// first removes what runs killed with SIGKILL left behind (`sweepStale`:
// names of dead pids only, so concurrent runs never touch each other's).
import { Lab } from "../host/lab/lab.ts";
import { ownerTag, sweepStale } from "../host/lab/leftovers.ts";

/** Namespace name prefix; WESP_NS_PREFIX gives each of several concurrent runners its own. */
export const NS_PREFIX = process.env.WESP_NS_PREFIX ?? "wbench-";

/** Removes what dead runs of `prefix` left (host/lab/leftovers.ts); `say` hears each name removed. */
export function sweepDeadRuns(say: (line: string) => void, prefix = NS_PREFIX): void {
  for (const n of sweepStale(prefix)) say(`removed a stale namespace or dir of a dead run: ${n}`);
}

/** A lab of its own for this run (after sweeping dead runs' leftovers), named `<prefix><pid>-<n>-`. */
export function benchLab(say: (line: string) => void, prefix = NS_PREFIX): Lab {
  sweepDeadRuns(say, prefix);
  return new Lab(ownerTag(prefix));
}
