// The little the store needs from a SQL database, so that one implementation
// of the Store (sql_store.ts) runs on SQLite (sqlite.ts) and PostgreSQL
// (postgres.ts) alike. Queries are written once with `?` placeholders
// (postgres.ts numbers them); both dialects take `INSERT ... RETURNING`,
// `ON CONFLICT DO NOTHING` and the schema of schema.ts.
import type { Change } from "./model.ts";

export type Param = string | number | null | Uint8Array;

/** Queries on one connection (inside a transaction, or not). */
export interface Sql {
  all<T = Record<string, unknown>>(sql: string, params?: Param[]): Promise<T[]>;
  get<T = Record<string, unknown>>(sql: string, params?: Param[]): Promise<T | undefined>;
  /** Runs a statement; resolves to the number of rows it changed. */
  run(sql: string, params?: Param[]): Promise<number>;
}

export interface Db extends Sql {
  readonly dialect: "sqlite" | "postgres";
  /**
   * Runs `fn` in one transaction: committed when it resolves, rolled back when
   * it throws. A unique-constraint race with another writer (or, on
   * PostgreSQL, a deadlock or serialisation failure) is retried a few times
   * (a fresh `fn` call), then thrown as UniqueViolation.
   */
  tx<T>(fn: (q: Sql) => Promise<T>): Promise<T>;
  /** Announces `change` to every subscriber (every replica on PostgreSQL) once the transaction of `q` commits. */
  notify(q: Sql, change: Change): Promise<void>;
  /** Hears every change; returns the unsubscribe function. */
  subscribe(listener: (c: Change) => void): () => void;
  close(): Promise<void>;
}

/** A unique or primary-key constraint refused a row; `constraint` names it when the driver says. */
export class UniqueViolation extends Error {
  constructor(readonly constraint: string) {
    super(`unique constraint ${constraint}`);
    this.name = "UniqueViolation";
  }
}

/** How many times a transaction that lost a unique-constraint race is run again. */
export const TX_RETRIES = 5;
