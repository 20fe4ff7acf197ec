/**
 * Server-side check of the `SDK-HMAC-SHA256` AK/SK signature, written from swr-api.md alone
 * (not from the client's signer) so that the two implementations check each other.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

const Algorithm = 'SDK-HMAC-SHA256';

interface SignedRequest {
  method: string;
  /** The path as it arrived, still percent-encoded. */
  rawPath: string;
  /** The query string as it arrived, without `?`. */
  rawQuery: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

interface AuthorizationParts {
  access: string;
  signedHeaders: string[];
  signature: string;
}

/** `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex` → its parts; `undefined` when malformed. */
const parseAuthorization = (header: string): AuthorizationParts | undefined => {
  if (!header.startsWith(`${Algorithm} `)) return undefined;
  const fields = new Map<string, string>();
  for (const part of header.slice(Algorithm.length + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const access = fields.get('Access');
  const signed = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!access || !signed || !signature || !/^[0-9a-f]{64}$/.test(signature)) return undefined;
  return { access, signedHeaders: signed.split(';'), signature };
};

/** RFC 3986 encoding: encodeURIComponent leaves `!'()*` alone, the signers encode them. */
const uriEncode = (value: string): string =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

const decodeLenient = (value: string): string => {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
};

/** Each segment decoded then encoded, so `$` and `%24` sign the same; always ends in `/`. */
const canonicalUri = (rawPath: string): string => {
  const uri = rawPath
    .split('/')
    .map((segment) => uriEncode(decodeLenient(segment)))
    .join('/');
  return uri.endsWith('/') ? uri : `${uri}/`;
};

/**
 * The query as the gateway signs it: pairs percent-decoded (a `+` stays a plus sign: the SDKs send
 * a space as `%20`), sorted by decoded name then value (the SDKs sort before escaping), escaped.
 */
const canonicalQuery = (rawQuery: string): string =>
  rawQuery
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const key = decodeLenient(eq < 0 ? pair : pair.slice(0, eq));
      const value = eq < 0 ? '' : decodeLenient(pair.slice(eq + 1));
      return { key, value };
    })
    .sort((a, b) =>
      a.key === b.key ? (a.value < b.value ? -1 : a.value > b.value ? 1 : 0) : a.key < b.key ? -1 : 1,
    )
    .map(({ key, value }) => `${uriEncode(key)}=${uriEncode(value)}`)
    .join('&');

const headerValue = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
};

/** `undefined` when a header named in SignedHeaders was not sent. */
const canonicalRequest = (request: SignedRequest, signedHeaders: string[]): string | undefined => {
  const names = signedHeaders.map((name) => name.toLowerCase());
  let headers = '';
  for (const name of names) {
    const value = headerValue(request.headers, name);
    if (value === undefined) return undefined;
    headers += `${name}:${value.trim()}\n`;
  }
  const payloadHash =
    headerValue(request.headers, 'x-sdk-content-sha256') ??
    createHash('sha256').update(request.body).digest('hex');
  return [
    request.method.toUpperCase(),
    canonicalUri(request.rawPath),
    canonicalQuery(request.rawQuery),
    headers,
    names.join(';'),
    payloadHash,
  ].join('\n');
};

/** `YYYYMMDDTHHMMSSZ` → epoch ms; `undefined` when malformed. */
const parseSdkDate = (value: string): number | undefined => {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  return Number.isNaN(ms) ? undefined : ms;
};

/** True when `signature` is the hex HMAC-SHA256 of the string to sign under `sk`. */
const signatureMatches = (
  request: SignedRequest,
  parts: AuthorizationParts,
  sdkDate: string,
  sk: string,
): boolean => {
  const canonical = canonicalRequest(request, parts.signedHeaders);
  if (canonical === undefined) return false;
  const stringToSign = `${Algorithm}\n${sdkDate}\n${createHash('sha256').update(canonical).digest('hex')}`;
  const expected = createHmac('sha256', sk).update(stringToSign).digest();
  return timingSafeEqual(expected, Buffer.from(parts.signature, 'hex'));
};

export type { AuthorizationParts, SignedRequest };
export { canonicalRequest, parseAuthorization, parseSdkDate, signatureMatches };
