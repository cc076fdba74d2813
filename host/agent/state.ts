// What a CE agent keeps in its state directory (mode 0700), so that a restart
// needs no token and forwards even while the controller is down:
//
//   enrolment.json   controller URL, VPN, site, identity (not secret)
//   ca.pem           the controller's CA, as pinned at enrolment
//   ce.pem           this CE's certificate
//   ce.key           its private key (0600; made here, never sent anywhere)
//   config.json      the last config applied, as the controller sent it —
//                    it holds SA keys: 0600, written to a temporary file and
//                    renamed, overwritten with zeros before it is removed
//   seq/             node.state_dir: durable sequence reservations (docs/config.md "Restarts")
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { readPrivateFile, writePrivateFile } from "../util/pki.ts";

/**
 * Files of the directory an IKE-keyed config names (host/controller/render_ike.ts):
 * relative paths, resolved against the directory (the config's base).
 */
export const CE_FILES = { cert: "ce.pem", key: "ce.key", ca: "ca.pem" } as const;

export interface Enrolment {
  url: string;
  vpn: string;
  site: string;
  identity: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** The last config applied, with the VPN version it came at. */
export interface SavedConfig {
  version: number;
  config: Record<string, unknown>;
}

export class AgentState {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    mkdirSync(this.seqDir, { recursive: true, mode: 0o700 });
  }

  get seqDir(): string {
    return join(this.dir, "seq");
  }
  private path(f: string): string {
    return join(this.dir, f);
  }

  /** The stored enrolment, or undefined before the first one. */
  loadEnrolment(): Enrolment | undefined {
    if (!existsSync(this.path("ce.key")) || !existsSync(this.path("enrolment.json"))) return undefined;
    const e = JSON.parse(readFileSync(this.path("enrolment.json"), "utf8")) as Omit<Enrolment, "caPem" | "certPem" | "keyPem">;
    return {
      ...e,
      caPem: readFileSync(this.path("ca.pem"), "utf8"),
      certPem: readFileSync(this.path("ce.pem"), "utf8"),
      keyPem: readPrivateFile(this.path("ce.key")),
    };
  }

  saveEnrolment(e: Enrolment): void {
    // Key first, each file replaced whole by a rename: a crash leaves the old pair or the new one.
    this.replace("ce.key", e.keyPem, true);
    this.replace("ce.pem", e.certPem, false);
    this.replace("ca.pem", e.caPem, false);
    this.replace("enrolment.json", JSON.stringify({ url: e.url, vpn: e.vpn, site: e.site, identity: e.identity }, null, 2) + "\n", false);
  }

  loadConfig(): SavedConfig | undefined {
    if (!existsSync(this.path("config.json"))) return undefined;
    return JSON.parse(readPrivateFile(this.path("config.json"))) as SavedConfig;
  }

  saveConfig(c: SavedConfig): void {
    this.replace("config.json", JSON.stringify(c) + "\n", true);
  }

  /** The site was removed (§3.6): its keys, certificate and config go; the directory stays. */
  dropVpnState(): void {
    for (const f of ["config.json", "ce.key"]) this.shred(f);
    for (const f of ["ce.pem", "enrolment.json"]) rmSync(this.path(f), { force: true });
  }

  private replace(name: string, text: string, secret: boolean): void {
    const tmp = this.path(`.${name}.tmp`);
    rmSync(tmp, { force: true });
    if (secret) writePrivateFile(tmp, text);
    else writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, this.path(name));
  }

  /** Overwrites a file with zeros (its whole length) before removing it. */
  private shred(name: string): void {
    const p = this.path(name);
    if (!existsSync(p)) return;
    const fd = openSync(p, "r+");
    try {
      writeSync(fd, Buffer.alloc(fstatSync(fd).size), 0, undefined, 0);
    } finally {
      closeSync(fd);
    }
    rmSync(p, { force: true });
  }
}
