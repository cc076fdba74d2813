// The one IP address module (host/config/addr.ts): the config's parse and
// canonical text, and the core's 16-byte form, agree with each other and with
// node:net on every address (property tests), and refuse what is not one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { isIP, isIPv4 } from "node:net";
import fc from "fast-check";
import { canonicalAddress, coreAddr, corePrefix, formatAddress, formatCoreAddr, formatEndpoint, hostText, ipv4Into, ipv4PrefixInto, parseAddress, unmapV4 } from "../../host/config/addr.ts";

const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 });
// runs of zero groups, so that "::" compression is exercised often
const v6z = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
  .map((g) => Uint8Array.from(g.flatMap((x) => [x >> 8, x & 0xff])));

test("IPv6: canonical text parses back to the same bytes, in both forms", () => {
  fc.assert(fc.property(fc.oneof(v6, v6z), (b) => {
    const text = formatAddress(b);
    assert.equal(isIP(text), 6, text);
    const p = parseAddress(text);
    assert.ok(p.ok);
    assert.deepEqual(p.value.bytes, b);
    assert.equal(p.value.text, text);
    const c = coreAddr(text);
    assert.equal(c.family, 6);
    assert.deepEqual(c.bytes, b);
    assert.equal(formatCoreAddr(6, c.bytes), text);
  }), { numRuns: 2000 });
});

test("IPv4: text, core bytes (4 then zeros) and back", () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (b) => {
    const text = Array.from(b).join(".");
    const c = coreAddr(text);
    assert.equal(c.family, 4);
    assert.deepEqual(c.bytes.subarray(0, 4), b);
    assert.ok(c.bytes.subarray(4).every((x) => x === 0));
    assert.equal(formatCoreAddr(4, c.bytes), text);
    assert.deepEqual(coreAddr(b).bytes, c.bytes);
  }), { numRuns: 1000 });
});

test("RFC 5952: the longest zero run is compressed, the first if tied; a single zero group is not", () => {
  assert.equal(formatCoreAddr(6, coreAddr("2001:db8:0:0:1:0:0:1").bytes), "2001:db8::1:0:0:1");
  assert.equal(formatCoreAddr(6, coreAddr("2001:0db8:0:1:1:1:1:1").bytes), "2001:db8:0:1:1:1:1:1");
  assert.equal(formatCoreAddr(6, coreAddr("::ffff:192.0.2.1").bytes), "::ffff:c000:201");
  assert.equal(formatCoreAddr(6, coreAddr("fe80::1%eth0").bytes), "fe80::1");
});

test("prefixes in the core's form: bare address is a host prefix; bad lengths refused", () => {
  assert.deepEqual({ ...corePrefix("10.1.0.0/16"), bytes: undefined }, { family: 4, len: 16, bytes: undefined });
  assert.equal(corePrefix("2001:db8::1").len, 128);
  assert.equal(corePrefix("192.0.2.7").len, 32);
  for (const bad of ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/1e1", "x/8", ""]) {
    assert.throws(() => corePrefix(bad), RangeError, bad);
  }
});

test("what is not an address is refused, never half-parsed", () => {
  for (const bad of ["", "1.2.3", "1.2.3.256", "::g", "1:2:3:4:5:6:7:8:9", " 1.2.3.4", "01.2.3.4x"]) {
    assert.throws(() => coreAddr(bad), RangeError, bad);
    assert.equal(parseAddress(bad).ok, false, bad);
  }
  assert.throws(() => coreAddr(new Uint8Array(5)), RangeError);
});

test("addresses as sockets and users give them: IPv4-mapped as IPv4 (RFC 4291 §2.5.5.2), RFC 5952 text, the rest unchanged", () => {
  assert.equal(unmapV4("::ffff:192.0.2.1"), "192.0.2.1");
  assert.equal(unmapV4("::FFFF:192.0.2.1"), "192.0.2.1");
  for (const keep of ["::ffff:c000:201", "::ffff:1.2.3", "::ffff:1.2.3.4.5", "::1", "192.0.2.1", "x"]) assert.equal(unmapV4(keep), keep);
  assert.equal(canonicalAddress("2001:DB8:0::1"), "2001:db8::1");
  assert.equal(canonicalAddress("::ffff:198.51.100.7"), "198.51.100.7");
  assert.equal(canonicalAddress("not an address"), "not an address");
  fc.assert(fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (b) => {
    const text = formatAddress(b);
    assert.equal(canonicalAddress(`::ffff:${text}`), text);
  }), { numRuns: 500 });
});

test("endpoints: IPv6 in brackets (RFC 5952 §6), IPv4 and names bare", () => {
  assert.equal(formatEndpoint("2001:db8::1", 4500), "[2001:db8::1]:4500");
  assert.equal(formatEndpoint("192.0.2.1", 4500), "192.0.2.1:4500");
  assert.equal(hostText("::"), "[::]");
  assert.equal(hostText("ce.example"), "ce.example");
});

// Text near a dotted quad: parts of 0–4 characters from digits and dots, and now and then a stray character.
const quadish = fc.array(fc.oneof(
  fc.integer({ min: 0, max: 300 }).map(String),
  fc.stringMatching(/^[0-9]{1,4}$/),
  fc.constantFrom("", "00", "01", "-1", " 1", "1 ", "0x1", "1e2", "\u0661", "+1"),
), { minLength: 1, maxLength: 6 }).map((ps) => ps.join("."));

test("ipv4Into (the install's parser) accepts exactly what net.isIPv4 accepts, with the same bytes, and writes nothing otherwise", () => {
  fc.assert(fc.property(fc.oneof(quadish, fc.string({ maxLength: 16 })), fc.integer({ min: 0, max: 12 }), (text, at) => {
    const out = new Uint8Array(16).fill(0xee);
    const ok = ipv4Into(text, out, at);
    assert.equal(ok, isIPv4(text), JSON.stringify(text));
    if (ok) {
      assert.deepEqual(out.subarray(at, at + 4), Uint8Array.from(text.split(".").map(Number)));
      assert.deepEqual(out.subarray(at, at + 4), coreAddr(text).bytes.subarray(0, 4));
    } else assert.ok(out.every((x) => x === 0xee), JSON.stringify(text));
  }), { numRuns: 20_000 });
  for (const bad of ["01.2.3.4", "1.2.3.04", "1.2.3.4.", ".1.2.3.4", "1..2.3", "256.1.1.1", "1.2.3.4\n", "1.2.3", "1.2.3.4.5", "00.0.0.0"]) {
    assert.equal(ipv4Into(bad, new Uint8Array(4), 0), false, bad);
  }
});

test("ipv4PrefixInto agrees with corePrefix on IPv4 prefixes and leaves the rest (IPv6, bad text) to it", () => {
  const lens = fc.oneof(fc.integer({ min: 0, max: 40 }).map(String), fc.constantFrom("", "032", "1e1", "-1", "08", "0", "1000", " 8"));
  fc.assert(fc.property(fc.oneof(quadish, fc.constantFrom("::", "2001:db8::", "::ffff:1.2.3.4")), fc.option(lens), (addr, len) => {
    const text = len === null ? addr : `${addr}/${len}`;
    const out = new Uint8Array(16);
    const got = ipv4PrefixInto(text, out, 0);
    let want: ReturnType<typeof corePrefix> | null = null;
    try {
      want = corePrefix(text);
    } catch {
      /* refused: the fast path must refuse too */
    }
    if (want?.family === 4) {
      assert.equal(got, want.len, text);
      assert.deepEqual(out, want.bytes, text);
    } else {
      assert.equal(got, -1, text);
      assert.ok(out.every((x) => x === 0), text);
    }
  }), { numRuns: 20_000 });
});
