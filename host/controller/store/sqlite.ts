// The SQLite database of a controller on one machine (the default): one
// better-sqlite3 connection in WAL mode with foreign keys on. better-sqlite3
// is synchronous, so the async Db interface is served through a queue: one
// operation — a statement, or a whole transaction with its awaits — at a time,
// and nothing else sees a transaction's rows before it commits. Changes are
// announced in this process only (one SQLite file has one controller).
import Database from "better-sqlite3";
import { EventEmitter } from "node:events";
import { closeSync, openSync } from "node:fs";
import { TX_RETRIES, UniqueViolation, type Db, type Param, type Sql } from "./db.ts";
import type { Change } from "./model.ts";

type Row = Record<string, unknown>;

function bind(params: Param[]): unknown[] {
  return params.map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p.buffer, p.byteOffset, p.byteLength) : p));
}

function translate(e: unknown): unknown {
  const err = e as { code?: string; message?: string };
  if (err?.code === "SQLITE_CONSTRAINT_UNIQUE" || err?.code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
    // "UNIQUE constraint failed: sas.dst_site, sas.spi"
    return new UniqueViolation(String(err.message ?? "").replace(/^.*failed: /, ""));
  }
  return e;
}

export class SqliteDb implements Db {
  readonly dialect = "sqlite" as const;
  private readonly db: Database.Database;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly events = new EventEmitter<{ change: [Change] }>();
  private pending: Change[] | undefined;

  /** Opens (creating when missing, mode 0600) the database file `path`; ":memory:" for a private one. */
  constructor(path: string) {
    // The file holds sealed keys and token hashes: private from the start (SQLite gives its -wal the same mode).
    if (path !== ":memory:" && path !== "") closeSync(openSync(path, "a", 0o600));
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("foreign_keys = ON");
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("synchronous = FULL");
  }

  private exec<T>(op: () => T | Promise<T>): Promise<T> {
    const next = this.queue.then(op, op);
    this.queue = next.catch(() => {});
    return next;
  }

  private readonly direct: Sql = {
    all: async <T>(sql: string, params: Param[] = []) => {
      try {
        return this.db.prepare(sql).all(...bind(params)) as T[];
      } catch (e) {
        throw translate(e);
      }
    },
    get: async <T>(sql: string, params: Param[] = []) => {
      try {
        const st = this.db.prepare(sql);
        return (st.reader ? st.get(...bind(params)) : (st.run(...bind(params)), undefined)) as T | undefined;
      } catch (e) {
        throw translate(e);
      }
    },
    run: async (sql: string, params: Param[] = []) => {
      try {
        const st = this.db.prepare(sql);
        if (st.reader) return st.all(...bind(params)).length;
        return st.run(...bind(params)).changes;
      } catch (e) {
        throw translate(e);
      }
    },
  };

  all<T = Row>(sql: string, params?: Param[]): Promise<T[]> {
    return this.exec(() => this.direct.all<T>(sql, params));
  }
  get<T = Row>(sql: string, params?: Param[]): Promise<T | undefined> {
    return this.exec(() => this.direct.get<T>(sql, params));
  }
  run(sql: string, params?: Param[]): Promise<number> {
    return this.exec(() => this.direct.run(sql, params));
  }

  tx<T>(fn: (q: Sql) => Promise<T>): Promise<T> {
    return this.exec(async () => {
      for (let attempt = 0; ; attempt++) {
        this.pending = [];
        this.db.exec("BEGIN IMMEDIATE");
        try {
          const r = await fn(this.direct);
          this.db.exec("COMMIT");
          const done = this.pending;
          this.pending = undefined;
          for (const c of done) this.events.emit("change", c);
          return r;
        } catch (e) {
          this.pending = undefined;
          if (this.db.inTransaction) this.db.exec("ROLLBACK");
          if (!(e instanceof UniqueViolation) || attempt + 1 >= TX_RETRIES) throw e;
        }
      }
    });
  }

  async notify(_q: Sql, change: Change): Promise<void> {
    if (this.pending) this.pending.push(change);
    else this.events.emit("change", change);
  }

  subscribe(listener: (c: Change) => void): () => void {
    this.events.on("change", listener);
    return () => void this.events.off("change", listener);
  }

  close(): Promise<void> {
    return this.exec(() => {
      this.events.removeAllListeners();
      this.db.close();
    });
  }
}
