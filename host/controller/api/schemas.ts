// JSON Schemas (draft 2020-12) of the operator API's request bodies, checked
// with ajv before anything reaches the controller; docs/controller-openapi.yaml
// carries the same shapes. Strings and lists are bounded so that a hostile
// body costs little; deeper rules (address syntax, overlapping prefixes) are
// the store's (store/rules.ts).
import Ajv2020, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { CONTROLLER_MODES, CONTROLLER_SUITES, KEYINGS, NAT_TYPES } from "../store/model.ts";
import { MAX_PREFIXES, MAX_WAN_PORTS } from "../store/rules.ts";

const name = { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$" } as const;
const address = { type: "string", minLength: 2, maxLength: 45 } as const;
const port = { type: "integer", minimum: 1, maximum: 65535 } as const;

export const topologySchema = {
  oneOf: [
    { type: "object", properties: { kind: { const: "full-mesh" } }, required: ["kind"], additionalProperties: false },
    {
      type: "object",
      properties: { kind: { const: "hub-and-spoke" }, hub: name, backupHub: name, dpd: { type: "integer", minimum: 1, maximum: 3600 } },
      required: ["kind", "hub"],
      additionalProperties: false,
    },
  ],
} as const;

const seconds = { type: "integer", minimum: 2, maximum: 366 * 86400 } as const;
const count = { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER } as const;

/** RFC 4301 §4.4.2.1 lifetimes of a VPN's SAs (store/model.ts SaLifetime; soft below hard is rules.ts's check). */
export const saLifetimeSchema = {
  type: "object",
  properties: { seconds, bytes: count, packets: count, softSeconds: seconds, softBytes: count, softPackets: count },
  additionalProperties: false,
} as const;

export const newVpnSchema = {
  $defs: { saLifetime: saLifetimeSchema },
  type: "object",
  properties: {
    name,
    topology: topologySchema,
    suite: { enum: [...CONTROLLER_SUITES] },
    mode: { enum: [...CONTROLLER_MODES] },
    keying: { enum: [...KEYINGS] },
    saLifetime: { $ref: "#/$defs/saLifetime" },
  },
  required: ["name"],
  additionalProperties: false,
} as const;

export const wanPortSchema = {
  type: "object",
  properties: {
    name,
    privateAddress: address,
    privatePort: port,
    publicAddress: address,
    publicPort: port,
    natType: { enum: [...NAT_TYPES] },
    trusted: { type: "boolean" },
  },
  required: ["name", "privateAddress"],
  additionalProperties: false,
} as const;

export const newSiteSchema = {
  type: "object",
  properties: {
    name,
    systemId: { type: "string", minLength: 1, maxLength: 128 },
    prefixes: { type: "array", minItems: 1, maxItems: MAX_PREFIXES, items: { type: "string", maxLength: 49 } },
    wan: { type: "array", minItems: 1, maxItems: MAX_WAN_PORTS, items: wanPortSchema },
  },
  required: ["name", "prefixes", "wan"],
  additionalProperties: false,
} as const;

export const portUpdateSchema = {
  type: "object",
  properties: {
    publicAddress: { oneOf: [address, { type: "null" }] },
    publicPort: { oneOf: [port, { type: "null" }] },
    natType: { enum: [...NAT_TYPES] },
  },
  additionalProperties: false,
} as const;

export const tokenRequestSchema = {
  type: "object",
  properties: { ttlSeconds: { type: "integer", minimum: 1, maximum: 30 * 86400 } },
  additionalProperties: false,
} as const;

const used = { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;

/**
 * POST /v1/ce/sadb-expire: the `sadb-expire` notification of RFC 9061 §5.3
 * (ietf-i2nsf-ikeless) as JSON. `ipsec-sa-name` is the SAD entry's name the
 * controller gave (ce_rekey.ts saName: SENDER/RECEIVER/0xSPI); lifetime-current
 * is what the SA had used (the `lifetime` grouping of ietf-i2nsf-ikec).
 */
export const sadbExpireSchema = {
  type: "object",
  properties: {
    "ipsec-sa-name": { type: "string", maxLength: 80, pattern: "^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}/[A-Za-z0-9][A-Za-z0-9_.-]{0,31}/0x[0-9a-f]{8}$" },
    "soft-lifetime-expire": { type: "boolean" },
    "lifetime-current": {
      type: "object",
      properties: { time: used, bytes: used, packets: used, idle: used },
      additionalProperties: false,
    },
  },
  required: ["ipsec-sa-name"],
  additionalProperties: false,
} as const;

/** POST /v1/ce/applied: the config version the CE runs now. */
export const appliedSchema = {
  type: "object",
  properties: { version: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER } },
  required: ["version"],
  additionalProperties: false,
} as const;

const ajv = new Ajv2020.default({ allErrors: false, strict: true, allowUnionTypes: true });

export const validators = {
  newVpn: ajv.compile(newVpnSchema),
  newSite: ajv.compile(newSiteSchema),
  topology: ajv.compile(topologySchema),
  portUpdate: ajv.compile(portUpdateSchema),
  tokenRequest: ajv.compile(tokenRequestSchema),
  sadbExpire: ajv.compile(sadbExpireSchema),
  applied: ajv.compile(appliedSchema),
} satisfies Record<string, ValidateFunction>;

/** "wan[0].privatePort: must be <= 65535" — a field path and ajv's reason, never the value. */
export function describeErrors(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).slice(0, 5).map((e) => {
    const path = e.instancePath.replace(/^\//, "").replace(/\/(\d+)/g, "[$1]").replace(/\//g, ".").slice(0, 80);
    const extra = e.keyword === "additionalProperties" ? ` (${String((e.params as { additionalProperty: string }).additionalProperty).slice(0, 40)})` : "";
    return `${path || "body"}: ${e.message ?? "is invalid"}${extra}`;
  });
}
