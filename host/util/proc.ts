// Running external commands (ip, nft, tcpdump, …) from the demo and the
// tests: one implementation of "run to completion, never hang".
import { execFile } from "node:child_process";

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Bytes or text written to the command's stdin (it is closed either way). */
  input?: string | Uint8Array;
  env?: NodeJS.ProcessEnv;
  /** Kill the command after this long (default 30 s); a hang must not hang the caller. */
  timeoutMs?: number;
}

/** Runs argv to completion; never rejects on a non-zero exit (see `run`); exit 124 when killed. */
export function exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      argv[0],
      argv.slice(1),
      { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20, encoding: "utf8" },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: unknown; killed?: boolean }) | null;
        if (e && typeof e.code !== "number" && !e.killed) return reject(e);
        resolve({ code: e ? (typeof e.code === "number" ? e.code : 124) : 0, stdout, stderr });
      },
    );
    // a command that never reads its stdin may close it first: not an error
    child.stdin?.on("error", () => {});
    child.stdin?.end(opts.input ?? "");
  });
}

/** Runs argv and returns its stdout; rejects with the command and its output on failure. */
export async function run(argv: string[], opts: ExecOptions = {}): Promise<string> {
  const r = await exec(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} → exit ${r.code}\n${r.stderr}${r.stdout}`.trimEnd());
  return r.stdout;
}

/** Polls `check` until it returns something truthy; for readiness, never a measurement. */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs = 10_000, stepMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
