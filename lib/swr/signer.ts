/**
 * Huawei Cloud AK/SK request signing (SDK-HMAC-SHA256), as the official SDKs do it (checked
 * against huaweicloud-sdk-go-v3 `core/auth/signer` and huaweicloud-sdk-nodejs-v3 `AKSKSigner`).
 * Pure functions. The simulator verifies with its own implementation (lib/sim/aksk.ts), written
 * apart, so each checks the other.
 *
 * Query strings: the SDKs escape every byte but `A-Z a-z 0-9 - _ . ~` as `%XX` (upper-case hex),
 * both in the canonical query and on the wire (the Go SDK rewrites `+` from url.Values to `%20`).
 * So a space is `%20`, never `+`, and a literal `+` is `%2B`; the gateway reads `+` as a plus.
 * `encodeQuery` builds the wire query that way, and `canonicalQuery` reads a raw query the way the
 * gateway does, so what is signed is what is sent.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

const algorithm = 'SDK-HMAC-SHA256';

/** Headers signed when present, besides `host` and `x-sdk-date` which always are. */
const optionalSignedHeaders = ['x-domain-id', 'x-project-id', 'x-security-token'] as const;

interface SignableRequest {
  method: string;
  url: URL;
  /** Header names in any case; values as sent. */
  headers: Record<string, string>;
  /** The exact body bytes sent; `undefined` or '' for none. */
  body?: string | undefined;
}

interface Credentials {
  ak: string;
  sk: string;
}

const sha256Hex = (data: string): string => createHash('sha256').update(data, 'utf8').digest('hex');

/**
 * The SDKs' escaping: only `A-Z a-z 0-9 - _ . ~` stay as they are, every other UTF-8 byte is `%XX`
 * (encodeURIComponent leaves `!'()*` alone, so those are escaped here).
 *
 * @example rfc3986('John Smith+1') // 'John%20Smith%2B1'
 */
const rfc3986 = (value: string): string =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

const decodeSegment = (segment: string): string => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
};

/**
 * The path encoded segment by segment, always ending in `/`.
 *
 * @example canonicalUri('/v2/manage/namespaces/core/repos/team$api/access')
 * // '/v2/manage/namespaces/core/repos/team%24api/access/'
 */
const canonicalUri = (path: string): string => {
  const encoded = path
    .split('/')
    .map((segment) => rfc3986(decodeSegment(segment)))
    .join('/');
  return encoded.endsWith('/') ? encoded : `${encoded}/`;
};

/**
 * A raw query (`a=b&c=d`, with or without `?`) as the gateway reads it: split on `&`, each side
 * percent-decoded, `+` left a plus sign.
 */
const queryPairs = (rawQuery: string): Array<[string, string]> =>
  rawQuery
    .replace(/^\?/, '')
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq < 0
        ? [decodeSegment(pair), '']
        : [decodeSegment(pair.slice(0, eq)), decodeSegment(pair.slice(eq + 1))];
    });

/**
 * The query for the wire, escaped as the SDKs do (a space is `%20`, a `+` is `%2B`), in the order given.
 *
 * @example encodeQuery({ name: 'John Smith' }) // 'name=John%20Smith'
 */
const encodeQuery = (params: Record<string, string> | ReadonlyArray<readonly [string, string]>): string =>
  (Array.isArray(params) ? params : Object.entries(params))
    .map(([key, value]) => `${rfc3986(key)}=${rfc3986(value)}`)
    .join('&');

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Query parameters sorted by name, then by value, as decoded (the SDKs sort before escaping, so
 * `~` and `é` keep their order), then each side escaped.
 *
 * @example canonicalQuery('?name=John%20Smith&limit=2') // 'limit=2&name=John%20Smith'
 */
const canonicalQuery = (rawQuery: string): string =>
  queryPairs(rawQuery)
    .sort(([ka, va], [kb, vb]) => byText(ka, kb) || byText(va, vb))
    .map(([key, value]) => `${rfc3986(key)}=${rfc3986(value)}`)
    .join('&');

const lowerCaseHeaders = (headers: Record<string, string>): Map<string, string> =>
  new Map(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));

/** The header names that get signed for these headers, lowercase and sorted. */
const signedHeaderNames = (headers: Record<string, string>): string[] => {
  const present = lowerCaseHeaders(headers);
  return ['host', 'x-sdk-date', ...optionalSignedHeaders.filter((name) => present.has(name))].sort();
};

/**
 * `METHOD\nURI\nQUERY\nHEADERS\nSIGNED_HEADERS\nhex(sha256(body))`, each header line being
 * `name:trimmed-value\n`. `host` is taken from the headers when given, else from the URL.
 */
const canonicalRequest = (request: SignableRequest, signedHeaders: readonly string[]): string => {
  const headers = lowerCaseHeaders(request.headers);
  const lines = signedHeaders
    .map((name) => `${name}:${(headers.get(name) ?? (name === 'host' ? request.url.host : '')).trim()}\n`)
    .join('');
  return [
    request.method.toUpperCase(),
    canonicalUri(request.url.pathname),
    canonicalQuery(request.url.search),
    lines,
    signedHeaders.join(';'),
    sha256Hex(request.body ?? ''),
  ].join('\n');
};

const stringToSign = (sdkDate: string, canonical: string): string =>
  `${algorithm}\n${sdkDate}\n${sha256Hex(canonical)}`;

const signature = (sk: string, toSign: string): string =>
  createHmac('sha256', sk).update(toSign, 'utf8').digest('hex');

/** @example formatSdkDate(new Date('2024-05-06T07:08:09.123Z')) // '20240506T070809Z' */
const formatSdkDate = (date: Date): string => `${date.toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;

/** `YYYYMMDDTHHMMSSZ` back to epoch ms; `undefined` when malformed. */
const parseSdkDate = (value: string): number | undefined => {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (m === null) return undefined;
  const at = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  return Number.isNaN(at) ? undefined : at;
};

interface SignOptions {
  date: Date;
  projectId?: string | undefined;
  /** Account id for global services (IAM): sent and signed as `X-Domain-Id`. */
  domainId?: string | undefined;
  securityToken?: string | undefined;
}

/**
 * The headers to add to a request to sign it: `X-Sdk-Date`; `X-Domain-Id`, `X-Project-Id` and
 * `X-Security-Token` when given; and `Authorization`.
 *
 * @example
 * const added = signRequest(
 *   { method: 'GET', url: new URL('https://swr-api.example.com/v2/manage/repos?namespace=core'), headers: {} },
 *   { ak: 'AK', sk: 'SK' },
 *   { date: new Date(), projectId: 'p1' },
 * );
 * // { 'X-Sdk-Date': '…', 'X-Project-Id': 'p1', Authorization: 'SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-project-id;x-sdk-date, Signature=…' }
 */
const signRequest = (
  request: SignableRequest,
  credentials: Credentials,
  options: SignOptions,
): Record<string, string> => {
  const added: Record<string, string> = { 'X-Sdk-Date': formatSdkDate(options.date) };
  if (options.domainId !== undefined) added['X-Domain-Id'] = options.domainId;
  if (options.projectId !== undefined) added['X-Project-Id'] = options.projectId;
  if (options.securityToken !== undefined) added['X-Security-Token'] = options.securityToken;
  const headers = { ...request.headers, ...added };
  const signed = signedHeaderNames(headers);
  const toSign = stringToSign(
    added['X-Sdk-Date'] as string,
    canonicalRequest({ ...request, headers }, signed),
  );
  added.Authorization = `${algorithm} Access=${credentials.ak}, SignedHeaders=${signed.join(';')}, Signature=${signature(credentials.sk, toSign)}`;
  return added;
};

interface ParsedAuthorization {
  access: string;
  signedHeaders: string[];
  signature: string;
}

/** Reads an `Authorization: SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…` value. */
const parseAuthorization = (value: string): ParsedAuthorization | undefined => {
  const m =
    /^SDK-HMAC-SHA256\s+Access=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(
      value.trim(),
    );
  if (m === null) return undefined;
  return { access: m[1] as string, signedHeaders: (m[2] as string).split(';'), signature: m[3] as string };
};

type VerifyResult = { ok: true; ak: string; date: number } | { ok: false; reason: string };

/**
 * Checks a signed request the way the API gateway does (for the simulator): known AK, the
 * mandatory headers signed, the date within `maxSkewMs` of `now`, the signature right.
 */
const verifySignature = (
  request: SignableRequest,
  secretOf: (ak: string) => string | undefined,
  options: { now: number; maxSkewMs?: number },
): VerifyResult => {
  const headers = lowerCaseHeaders(request.headers);
  const parsed = parseAuthorization(headers.get('authorization') ?? '');
  if (parsed === undefined) return { ok: false, reason: 'malformed Authorization header' };
  const sk = secretOf(parsed.access);
  if (sk === undefined) return { ok: false, reason: 'unknown access key' };
  if (!parsed.signedHeaders.includes('host') || !parsed.signedHeaders.includes('x-sdk-date'))
    return { ok: false, reason: 'host and x-sdk-date must be signed' };
  const sdkDate = headers.get('x-sdk-date') ?? '';
  const date = parseSdkDate(sdkDate);
  if (date === undefined) return { ok: false, reason: 'malformed X-Sdk-Date' };
  if (Math.abs(options.now - date) > (options.maxSkewMs ?? 15 * 60_000))
    return { ok: false, reason: 'X-Sdk-Date too far from server time' };
  const expected = signature(sk, stringToSign(sdkDate, canonicalRequest(request, parsed.signedHeaders)));
  const same = timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(parsed.signature, 'hex'));
  return same ? { ok: true, ak: parsed.access, date } : { ok: false, reason: 'signature mismatch' };
};

export type { Credentials, ParsedAuthorization, SignableRequest, SignOptions, VerifyResult };
export {
  algorithm,
  canonicalQuery,
  canonicalRequest,
  canonicalUri,
  encodeQuery,
  formatSdkDate,
  parseAuthorization,
  parseSdkDate,
  signature,
  signedHeaderNames,
  signRequest,
  stringToSign,
  verifySignature,
};
