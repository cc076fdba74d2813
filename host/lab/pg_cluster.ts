// A throwaway PostgreSQL server for the controller's store tests and
// bench/controller (kept out of test/ so benchmarks do not depend on it): its own
// cluster in a temp dir (initdb), listening on a Unix socket only (no TCP),
// trust authentication, stopped and deleted afterwards. Root cannot run
// postgres, so as root the server runs as the `postgres` user the Debian
// package makes (runuser); otherwise as ourselves.
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

/** The directory holding initdb and pg_ctl: Debian's versioned one (newest), else PATH's. */
export function pgBinDir(): string | null {
  const base = "/usr/lib/postgresql";
  if (existsSync(base)) {
    const versions = readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (existsSync(join(base, v, "bin", "initdb"))) return join(base, v, "bin");
  }
  const r = spawnSync("sh", ["-c", "command -v initdb"], { encoding: "utf8" });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p.replace(/\/initdb$/, "") : null;
}

const isRoot = () => process.getuid?.() === 0;

function postgresUser(): { uid: number; gid: number } | null {
  const r = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
  const g = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
  return r.status === 0 && g.status === 0 ? { uid: Number(r.stdout), gid: Number(g.stdout) } : null;
}

/** What test/helpers/require.ts's requireTools checks before any PostgreSQL test runs (a `Need`). */
export const POSTGRES_NEED = {
  name: "PostgreSQL server (initdb, pg_ctl" + (isRoot() ? ", the postgres user" : "") + ")",
  present: () => pgBinDir() !== null && (!isRoot() || postgresUser() !== null),
  install: "apt-get install -y postgresql",
  pkg: "postgresql",
};

export class PgCluster {
  private constructor(readonly dir: string, private readonly bin: string, private readonly asPostgres: boolean) {}

  get socketDir(): string {
    return join(this.dir, "sock");
  }

  /** A connection URL for database `db` over the cluster's Unix socket. */
  url(db = "postgres"): string {
    return `postgresql://wesp@${encodeURIComponent(this.socketDir)}/${db}`;
  }

  private cmd(tool: string, args: string[]): void {
    const exe = join(this.bin, tool);
    const [file, argv] = this.asPostgres ? ["runuser", ["-u", "postgres", "--", exe, ...args]] : [exe, args];
    execFileSync(file, argv, { stdio: ["ignore", "pipe", "pipe"], timeout: 120_000 });
  }

  static async start(): Promise<PgCluster> {
    const bin = pgBinDir();
    if (!bin) throw new Error("PostgreSQL is not installed (apt-get install -y postgresql)");
    const dir = mkdtempSync(join(tmpdir(), "wesp-pg-"));
    const asPostgres = isRoot();
    const c = new PgCluster(dir, bin, asPostgres);
    try {
      execFileSync("mkdir", [join(dir, "sock")]);
      if (asPostgres) {
        const u = postgresUser()!;
        chownSync(dir, u.uid, u.gid);
        chownSync(join(dir, "sock"), u.uid, u.gid);
      }
      c.cmd("initdb", ["-D", join(dir, "data"), "-U", "wesp", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"]);
      c.cmd("pg_ctl", ["-D", join(dir, "data"), "-l", join(dir, "log"), "-w", "-t", "60", "-o",
        `-c listen_addresses='' -k ${join(dir, "sock")} -F -c max_connections=200`, "start"]);
    } catch (e) {
      const err = e as { stderr?: Buffer };
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`could not start PostgreSQL: ${(e as Error).message}\n${err.stderr?.toString() ?? ""}`);
    }
    return c;
  }

  private next = 0;

  /** A new empty database; resolves to its connection URL. */
  async createDatabase(): Promise<string> {
    const name = `t${process.pid}_${++this.next}`;
    const client = new pg.Client({ connectionString: this.url() });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name}`);
    } finally {
      await client.end();
    }
    return this.url(name);
  }

  stop(): void {
    try {
      this.cmd("pg_ctl", ["-D", join(this.dir, "data"), "-m", "immediate", "-w", "stop"]);
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
