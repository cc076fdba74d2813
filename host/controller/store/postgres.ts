// The PostgreSQL database of controllers that outgrow one machine: several
// controller replicas share it, and every change is fanned out to all of them
// with NOTIFY on the channel `wesp_vpn_change` (sent inside the changing
// transaction, so delivered only if it commits) and LISTEN on one dedicated
// connection per replica, so a CE attached to any replica hears of a change
// made through another. A lost listening connection is re-opened with backoff;
// CEs also pull on a timer, so a notification missed meanwhile is not fatal.
import pg from "pg";
import { EventEmitter } from "node:events";
import { TX_RETRIES, UniqueViolation, type Db, type Param, type Sql } from "./db.ts";
import type { Change } from "./model.ts";

export const CHANNEL = "wesp_vpn_change";

const INT8_OID = 20;
/** BIGINT columns (versions, SPIs, times) as numbers: every value we store is below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID && format !== "binary" ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

/** `?` placeholders numbered as PostgreSQL wants them ($1, $2, ...). */
export function numberPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

function translate(e: unknown): unknown {
  const err = e as { code?: string; constraint?: string };
  if (err?.code === "23505") return new UniqueViolation(err.constraint ?? "unique");
  // A deadlock or serialisation failure: the transaction is safe to run again, as after a unique-key race.
  if (err?.code === "40P01" || err?.code === "40001") return new UniqueViolation(`retry (${err.code})`);
  return e;
}

function bind(params: Param[]): unknown[] {
  return params.map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p.buffer, p.byteOffset, p.byteLength) : p));
}

function sqlOn(c: pg.Pool | pg.PoolClient): Sql {
  const query = async (sql: string, params: Param[] = []) => {
    try {
      return await c.query(numberPlaceholders(sql), bind(params));
    } catch (e) {
      throw translate(e);
    }
  };
  return {
    all: async <T>(sql: string, params?: Param[]) => (await query(sql, params)).rows as T[],
    get: async <T>(sql: string, params?: Param[]) => (await query(sql, params)).rows[0] as T | undefined,
    run: async (sql: string, params?: Param[]) => {
      const r = await query(sql, params);
      return r.command === "SELECT" ? r.rows.length : r.rowCount ?? 0;
    },
  };
}

export interface PostgresOptions {
  /** A libpq connection string (postgres://user@host/db, or host=/run/postgresql dbname=...). */
  connectionString: string;
  /** Pool size (default 10). */
  max?: number;
  log?: (line: string) => void;
}

export class PostgresDb implements Db {
  readonly dialect = "postgres" as const;
  private readonly pool: pg.Pool;
  private readonly q: Sql;
  private readonly events = new EventEmitter<{ change: [Change] }>();
  private listener: pg.Client | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;

  private constructor(private readonly opts: PostgresOptions) {
    this.pool = new pg.Pool({ connectionString: opts.connectionString, max: opts.max ?? 10, types });
    this.pool.on("error", (e) => opts.log?.(`postgres pool: ${e.message}`));
    this.q = sqlOn(this.pool);
  }

  /** Connects the pool and the LISTEN connection; rejects when the server cannot be reached. */
  static async open(opts: PostgresOptions): Promise<PostgresDb> {
    const db = new PostgresDb(opts);
    try {
      await db.listen();
    } catch (e) {
      await db.pool.end();
      throw e;
    }
    return db;
  }

  private async listen(): Promise<void> {
    const c = new pg.Client({ connectionString: this.opts.connectionString, types });
    c.on("notification", (m) => {
      if (m.channel !== CHANNEL || !m.payload) return;
      try {
        const p = JSON.parse(m.payload) as Change;
        if (typeof p.vpn === "string" && typeof p.version === "number" && (p.online === undefined || typeof p.online === "string")) this.events.emit("change", p);
      } catch {
        this.opts.log?.("postgres: unreadable change notification ignored");
      }
    });
    c.on("error", (e) => {
      this.opts.log?.(`postgres listener: ${e.message}; reconnecting`);
      this.relisten(c, 100);
    });
    c.on("end", () => this.relisten(c, 100));
    await c.connect();
    await c.query(`LISTEN ${CHANNEL}`);
    this.listener = c;
  }

  /** Drops the listening connection `old` (undefined: none is held) and opens another after `delayMs`, backing off to 10 s. */
  private relisten(old: pg.Client | undefined, delayMs: number): void {
    if (this.closed || (old && this.listener !== old)) return;
    this.listener = undefined;
    old?.end().catch(() => {});
    this.retry = setTimeout(() => {
      this.listen().catch((e) => {
        this.opts.log?.(`postgres listener: ${(e as Error).message}; retrying`);
        this.relisten(undefined, Math.min(delayMs * 2, 10_000));
      });
    }, delayMs);
  }

  all<T = Record<string, unknown>>(sql: string, params?: Param[]): Promise<T[]> {
    return this.q.all<T>(sql, params);
  }
  get<T = Record<string, unknown>>(sql: string, params?: Param[]): Promise<T | undefined> {
    return this.q.get<T>(sql, params);
  }
  run(sql: string, params?: Param[]): Promise<number> {
    return this.q.run(sql, params);
  }

  async tx<T>(fn: (q: Sql) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const c = await this.pool.connect();
      try {
        await c.query("BEGIN");
        const r = await fn(sqlOn(c));
        await c.query("COMMIT");
        return r;
      } catch (e) {
        await c.query("ROLLBACK").catch(() => {});
        if (!(e instanceof UniqueViolation) || attempt + 1 >= TX_RETRIES) throw e;
      } finally {
        c.release();
      }
    }
  }

  async notify(q: Sql, change: Change): Promise<void> {
    await q.get("SELECT pg_notify(?, ?)", [CHANNEL, JSON.stringify(change)]);
  }

  subscribe(listener: (c: Change) => void): () => void {
    this.events.on("change", listener);
    return () => void this.events.off("change", listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    this.events.removeAllListeners();
    const l = this.listener;
    this.listener = undefined;
    await l?.end().catch(() => {});
    await this.pool.end();
  }
}
