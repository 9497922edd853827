/** Canonical JSON exactly as the portal writes it (`core/canonical.py`: Python's
 * `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`), so that
 * digests computed here match the portal's: the action a receipt binds, above all. */

/** Python's repr() of a float, from JavaScript's shortest round-trip digits: the same digits,
 * but fixed notation for exponents -4..15 (JavaScript: -6..20), "1.0" for integral values and
 * at least two exponent digits ("1e-07"). */
function pythonFloat(value: number): string {
  const [mantissa, exp] = value.toExponential().split("e");
  const exponent = Number(exp);
  const negative = mantissa.startsWith("-");
  const digits = mantissa.replace("-", "").replace(".", "");
  let text: string;
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      text = `0.${"0".repeat(-exponent - 1)}${digits}`;
    } else if (digits.length > exponent + 1) {
      text = `${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
    } else {
      text = `${digits}${"0".repeat(exponent + 1 - digits.length)}.0`;
    }
  } else {
    const rest = digits.slice(1);
    const sign = exponent < 0 ? "-" : "+";
    const magnitude = String(Math.abs(exponent)).padStart(2, "0");
    text = `${digits[0]}${rest ? `.${rest}` : ""}e${sign}${magnitude}`;
  }
  return negative ? `-${text}` : text;
}

function number(value: number): string {
  if (!Number.isFinite(value)) {
    throw new TypeError(`${value} is not a JSON number`);
  }
  // JSON gives no way to tell 1 from 1.0: an integral value is written as an integer (what
  // the portal stores for one), up to 2**53; beyond that as Python writes a float.
  if (Number.isSafeInteger(value)) {
    return String(value);
  }
  return pythonFloat(value);
}

/** Python sorts keys by code point; JavaScript's default sort compares UTF-16 units. */
function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function write(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      return number(value);
    case "string":
      // JSON.stringify escapes what Python's ensure_ascii=False escapes (", \, control
      // characters) and nothing else.
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) {
        return `[${value.map(write).join(",")}]`;
      }
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort(byCodePoint);
      return `{${keys.map((k) => `${JSON.stringify(k)}:${write(record[k])}`).join(",")}}`;
    }
    default:
      throw new TypeError(`${typeof value} is not JSON`);
  }
}

/** One text for one JSON value (what the portal hashes). */
export function canonicalJson(value: unknown): string {
  // Through JSON first: toJSON(), dropped undefined members, Dates as strings, as sent.
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError("not a JSON value");
  return write(JSON.parse(text));
}

export function hex(bytes: ArrayBuffer | Uint8Array): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(text: string): Promise<string> {
  return hex(await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** The fingerprint a receipt binds (its claim `action_sha256`): canonical JSON of
 * `{tool, args}`, the tool and its arguments only. */
export async function actionSha256(tool: string | null | undefined, args: unknown): Promise<string> {
  return sha256Hex(canonicalJson({ tool: tool ?? null, args: args ?? {} }));
}
