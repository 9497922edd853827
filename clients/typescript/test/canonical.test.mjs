// Canonical JSON and the action digest are the portal's byte for byte (expected values
// written by Python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)).
import assert from "node:assert/strict";
import { test } from "node:test";
import { actionSha256, canonicalJson } from "../dist/index.js";

test("it writes canonical JSON as the portal does", () => {
  const value = {
    b: 1,
    a: [1.5, 0.1, 1e-7, 1e-5, 1.5e16, 123.456, -0.0001, 1e21, 2.5e-300],
    "é": 'x\u2028"\\\n\x01\x7f',
    "\u{1F600}": 1,
    "\uffff": 2,
    z: null,
    t: true,
  };
  assert.equal(
    canonicalJson(value),
    '{"a":[1.5,0.1,1e-07,1e-05,1.5e+16,123.456,-0.0001,1e+21,2.5e-300],"b":1,"t":true,"z":null,' +
      '"é":"x\u2028\\"\\\\\\n\\u0001\x7f","\uffff":2,"\u{1F600}":1}',
  );
});

test("it drops undefined members and refuses what is not JSON", () => {
  assert.equal(canonicalJson({ a: undefined, b: [undefined] }), '{"b":[null]}');
  // As JSON.stringify sends it: the digest is of what the portal receives.
  assert.equal(canonicalJson({ n: NaN }), '{"n":null}');
  assert.throws(() => canonicalJson({ n: 1n }), TypeError);
});

test("it fingerprints an action as the receipt's action_sha256", async () => {
  const digest = await actionSha256("delete_files", { paths: ["/var/log/a.log"], n: 2 });
  assert.equal(digest, "d82d085b0704a10f2c996e4cb882a0facb8d9da325ffbbd37d221f575f41ce5e");
});
