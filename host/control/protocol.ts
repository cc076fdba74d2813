// The control socket's protocol apart from the status (server.ts has the wire
// format, status.ts what "status" answers): the commands a client sends and
// what "reload" answers. The SA lifecycle (host/sa/lifecycle.ts) produces that
// answer as its ApplyReport, which is this type.

/** The commands of the control socket. */
export type ControlCommand = "status" | "reload";

/** What a reload did: the peers by outcome (host/sa/lifecycle.ts). */
export interface ReloadResult {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}
