// Just enough of strongSwan's VICI protocol (src/libcharon/plugins/vici/README.md)
// to ask charon to initiate CHILD_SAs without a swanctl process per tunnel:
//
//   transport:  u32 length (big endian) ‖ packet
//   packet:     u8 type ‖ (for CMD_REQUEST) u8 name length ‖ name ‖ message
//   message:    elements; KEY_VALUE = 3 ‖ u8 key length ‖ key ‖ u16 value length ‖ value
//
// One request at a time per connection: charon answers `initiate` (with the
// default timeout 0) once the CHILD_SA is established or has failed.
import { connect, type Socket } from "node:net";

const CMD_REQUEST = 0;
const CMD_RESPONSE = 1;
const KEY_VALUE = 3;

function request(name: string, kv: Record<string, string>): Buffer {
  const parts: Buffer[] = [Buffer.from([CMD_REQUEST, name.length]), Buffer.from(name)];
  for (const [k, v] of Object.entries(kv)) {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(Buffer.byteLength(v));
    parts.push(Buffer.from([KEY_VALUE, k.length]), Buffer.from(k), len, Buffer.from(v));
  }
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** The top-level key/values of a response message (sections and lists skipped over by their markers). */
function keyValues(msg: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  for (let o = 0; o < msg.length; ) {
    const t = msg[o++];
    if (t === KEY_VALUE) {
      const k = msg.subarray(o + 1, o + 1 + msg[o]).toString();
      o += 1 + msg[o];
      const n = msg.readUInt16BE(o);
      out.set(k, msg.subarray(o + 2, o + 2 + n).toString());
      o += 2 + n;
    } else if (t === 1 || t === 4) o += 1 + msg[o]; // SECTION_START, LIST_START: a name
    else if (t === 5) o += 2 + msg.readUInt16BE(o); // LIST_ITEM
    // 2 SECTION_END, 6 LIST_END: nothing more
  }
  return out;
}

export class Vici {
  private buf = Buffer.alloc(0);
  private waiting?: (m: Buffer) => void;
  private constructor(private readonly sock: Socket) {
    sock.on("data", (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readUInt32BE(0)) {
        const pkt = this.buf.subarray(4, 4 + this.buf.readUInt32BE(0));
        this.buf = this.buf.subarray(4 + pkt.length);
        if (pkt[0] === CMD_RESPONSE) this.waiting?.(pkt.subarray(1));
      }
    });
  }

  /** Connects, retrying while charon's short listen backlog (3, vici_socket.c) is full. */
  static async open(path: string): Promise<Vici> {
    for (let tries = 0; ; tries++) {
      try {
        return await new Promise((resolve, reject) => {
          const s = connect(path, () => resolve(new Vici(s)));
          s.once("error", reject);
        });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EAGAIN" || tries >= 100) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** `initiate` of one CHILD_SA (and its IKE SA); resolves true once charon reports it established. */
  async initiate(child: string): Promise<boolean> {
    const answer = new Promise<Buffer>((resolve) => (this.waiting = resolve));
    // loglevel -1: no "control-log" for this request; at the default (1) charon formats every
    // level-1 message of every thread for each waiting request, a cost of the driver, not of IKE
    this.sock.write(request("initiate", { child, loglevel: "-1" }));
    return keyValues(await answer).get("success") === "yes";
  }

  close(): void {
    this.sock.destroy();
  }
}
