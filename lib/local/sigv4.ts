/**
 * AWS Signature Version 4 for the local intake server's `/events` route: what API Gateway's IAM
 * authorizer does in AWS (a request is accepted only when it is signed with the local stack's
 * credentials), and the client side for tests and scripts. Both over `@smithy/signature-v4`, the
 * signer the AWS SDK itself uses; the check re-signs the request as received and compares.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** The request as the signer sees it (the shape of @smithy/types' HttpRequest). */
interface SignableRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body?: string;
}

const service = 'execute-api';
/** As AWS: a signature older or newer than this is refused. */
const maxSkewMs = 15 * 60 * 1000;

/** `applyChecksum`: the client adds x-amz-content-sha256; the check signs the headers it got, no more. */
const signerFor = (credentials: Credentials, region: string, applyChecksum = true) =>
  new SignatureV4({ credentials, region, service, sha256: Hash.bind(null, 'sha256'), applyChecksum });

const requestOf = (url: URL, method: string, headers: Record<string, string>, body: string | undefined) => ({
  method,
  protocol: url.protocol,
  hostname: url.hostname,
  ...(url.port === '' ? {} : { port: Number(url.port) }),
  path: url.pathname,
  query: Object.fromEntries(url.searchParams),
  headers,
  ...(body === undefined ? {} : { body }),
});

/**
 * Signs a request as an AWS SDK client would for API Gateway (`execute-api`).
 *
 * @example
 * const headers = await signRequest(new URL(`${intakeUrl}/events`), 'POST', body, credentials, 'us-east-1');
 * await fetch(`${intakeUrl}/events`, { method: 'POST', headers, body });
 */
const signRequest = async (
  url: URL,
  method: string,
  body: string,
  credentials: Credentials,
  region: string,
  extraHeaders: Record<string, string> = {},
): Promise<Record<string, string>> => {
  const request = requestOf(
    url,
    method,
    { host: url.host, 'content-type': 'application/json', ...extraHeaders },
    body,
  );
  const signed = (await signerFor(credentials, region).sign(request as never)) as unknown as SignableRequest;
  return signed.headers;
};

const authorizationPattern =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

/** `20261130T101500Z` → epoch ms. */
const amzDate = (value: string | undefined): number | undefined => {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value ?? '');
  if (match === null) return undefined;
  const [, y, mo, d, h, mi, s] = match.map(Number) as number[];
  return Date.UTC(y as number, (mo as number) - 1, d as number, h as number, mi as number, s as number);
};

/**
 * Whether a request carries a valid signature by `credentials` for `region` and `execute-api`,
 * made within 15 minutes of `now`. Headers are expected lower-cased (as node:http gives them).
 *
 * @example if (!(await verifySigV4(url, req.method, req.headers, body, credentials, 'us-east-1'))) return 403;
 */
const verifySigV4 = async (
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: string,
  credentials: Credentials,
  region: string,
  now: () => number = Date.now,
): Promise<boolean> => {
  const match = authorizationPattern.exec(headers.authorization ?? '');
  if (match === null) return false;
  const [, accessKeyId, , scopeRegion, scopeService, signedHeaders, signature] = match;
  if (accessKeyId !== credentials.accessKeyId || scopeRegion !== region || scopeService !== service)
    return false;
  const signedAt = amzDate(headers['x-amz-date']);
  if (signedAt === undefined || Math.abs(now() - signedAt) > maxSkewMs) return false;
  const names = (signedHeaders ?? '').split(';');
  if (!names.includes('host')) return false;
  // The signer trusts a payload hash it is given; API Gateway hashes the body it received.
  const payloadHash = headers['x-amz-content-sha256'];
  if (payloadHash !== undefined && payloadHash !== createHash('sha256').update(body, 'utf8').digest('hex'))
    return false;
  const kept = Object.fromEntries(names.map((name) => [name, headers[name] ?? '']));
  const resigned = (await signerFor(credentials, region, false).sign(
    requestOf(url, method, kept, body) as never,
    {
      signingDate: new Date(signedAt),
      signableHeaders: new Set(names),
    },
  )) as unknown as SignableRequest;
  const expected = /Signature=([0-9a-f]{64})/.exec(resigned.headers.authorization ?? '')?.[1];
  // Both are 64 hex characters (the pattern above and the signer): equal lengths.
  return expected !== undefined && timingSafeEqual(Buffer.from(expected), Buffer.from(signature ?? ''));
};

export type { Credentials };
export { signRequest, verifySigV4 };
