// A long-running process a lab started: its own process group (so stopping it
// stops its children too), its exit, and its output — kept in memory (the
// tail of stdout and stderr, for readiness checks and diagnostics) or written
// to a log file in the lab's dir (a kept lab outlives the process that made it).
import type { ChildProcess } from "node:child_process";

/** How much output a process keeps in memory: past `KEEP_MAX` characters, the last `KEEP_TAIL`. */
const KEEP_MAX = 1 << 20;
const KEEP_TAIL = 1 << 19;

export class LabProcess {
  /** The tails of stdout, stderr, and both interleaved as they came; empty when they go to `log` (or stdout to the caller). */
  stdout = "";
  stderr = "";
  output = "";
  /** The exit code; 128 when a signal ended it, -1 when it could not start. */
  exitCode: number | null = null;
  readonly exited: Promise<number | null>;

  /**
   * `argv`: what was started (with its `ip netns exec` wrapper); `label`: a
   * name for messages; `log`: the file its output goes to, if not to memory.
   */
  constructor(readonly argv: string[], readonly child: ChildProcess, readonly label: string, readonly log?: string) {
    child.stdout?.on("data", (d) => {
      this.stdout = keepTail(this.stdout + d);
      this.output = keepTail(this.output + d);
    });
    child.stderr?.on("data", (d) => {
      this.stderr = keepTail(this.stderr + d);
      this.output = keepTail(this.output + d);
    });
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => resolve((this.exitCode = code ?? (signal ? 128 : -1))));
      child.on("error", (e) => {
        this.stderr += `\n${e.message}`;
        this.output += `\n${e.message}`;
        resolve((this.exitCode = -1));
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitCode === null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * `signal` to the process group, SIGKILL after `graceMs`; resolves when it is
   * gone. SIGKILL first when the caller must stop the process without letting
   * it say goodbye (e.g. an IKE DELETE).
   */
  async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 3000): Promise<void> {
    if (!this.running) return;
    killGroup(this.pid, signal);
    const t = setTimeout(() => killGroup(this.pid, "SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

function keepTail(s: string): string {
  return s.length > KEEP_MAX ? s.slice(-KEEP_TAIL) : s;
}

/** `signal` to process group `pid` (a group leader we started), else to the process alone; quiet if it is gone. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** Whether process `pid` exists (EPERM: it does, someone else's). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
