import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  canonicalQuery,
  canonicalUri,
  formatSdkDate,
  parseAuthorization,
  parseSdkDate,
  signRequest,
  verifySignature,
} from '../../lib/swr/signer.ts';

const ak = 'AKTESTEXAMPLE0000001';
const sk = 'skTestExampleSecretKey0123456789';
const date = new Date('2024-05-06T07:08:09.500Z');
const body = '[{"user_id":"fb3f175c1fd146ab8cdae3272be6107b","user_name":"user01","auth":1}]';

const requestFactory = (
  overrides: { url?: string; body?: string; headers?: Record<string, string> } = {},
) => ({
  method: 'POST',
  url: new URL(
    overrides.url ?? 'https://swr-api.example.com/v2/manage/namespaces/core/repos/team$api/access?b=2&a=1',
  ),
  headers: overrides.headers ?? {},
  body: overrides.body ?? body,
});

/** Headers as the server would see them: the signed ones plus host. */
const receivedHeaders = (request: ReturnType<typeof requestFactory>, added: Record<string, string>) => ({
  host: request.url.host,
  'content-type': 'application/json',
  ...Object.fromEntries(Object.entries(added).map(([k, v]) => [k.toLowerCase(), v])),
});

describe('SDK-HMAC-SHA256 against an independently computed vector', () => {
  it('signs a POST with $ in the path, an unsorted query and a project id', () => {
    // Prepare: the canonical request written out by hand from swr-api.md.
    const bodyHash = createHash('sha256').update(body).digest('hex');
    const canonical = [
      'POST',
      '/v2/manage/namespaces/core/repos/team%24api/access/',
      'a=1&b=2',
      'host:swr-api.example.com\nx-project-id:proj123\nx-sdk-date:20240506T070809Z\n',
      'host;x-project-id;x-sdk-date',
      bodyHash,
    ].join('\n');
    const toSign = `SDK-HMAC-SHA256\n20240506T070809Z\n${createHash('sha256').update(canonical).digest('hex')}`;
    const expected = createHmac('sha256', sk).update(toSign).digest('hex');

    // Act
    const added = signRequest(requestFactory(), { ak, sk }, { date, projectId: 'proj123' });

    // Assess
    expect(added).toEqual({
      'X-Sdk-Date': '20240506T070809Z',
      'X-Project-Id': 'proj123',
      Authorization: `SDK-HMAC-SHA256 Access=${ak}, SignedHeaders=host;x-project-id;x-sdk-date, Signature=${expected}`,
    });
  });

  it('signs a bodiless GET on a non-default port with a security token', () => {
    // Prepare
    const canonical = [
      'GET',
      '/v2/manage/repos/',
      'limit=100&namespace=core&offset=0',
      'host:127.0.0.1:8443\nx-project-id:p\nx-sdk-date:20240506T070809Z\nx-security-token:tmp-token\n',
      'host;x-project-id;x-sdk-date;x-security-token',
      createHash('sha256').update('').digest('hex'),
    ].join('\n');
    const toSign = `SDK-HMAC-SHA256\n20240506T070809Z\n${createHash('sha256').update(canonical).digest('hex')}`;
    const expected = createHmac('sha256', sk).update(toSign).digest('hex');
    const request = {
      method: 'GET',
      url: new URL('https://127.0.0.1:8443/v2/manage/repos?namespace=core&limit=100&offset=0'),
      headers: {},
    };

    // Act
    const added = signRequest(request, { ak, sk }, { date, projectId: 'p', securityToken: 'tmp-token' });

    // Assess
    expect(added['X-Security-Token']).toBe('tmp-token');
    expect(added.Authorization).toBe(
      `SDK-HMAC-SHA256 Access=${ak}, SignedHeaders=host;x-project-id;x-sdk-date;x-security-token, Signature=${expected}`,
    );
  });
});

describe('canonicalisation', () => {
  it.each([
    ['/v2/manage/namespaces/core/access', '/v2/manage/namespaces/core/access/'],
    [
      '/v2/manage/namespaces/core/repos/team$api/access',
      '/v2/manage/namespaces/core/repos/team%24api/access/',
    ],
    [
      '/v2/manage/namespaces/core/repos/team%24api/access',
      '/v2/manage/namespaces/core/repos/team%24api/access/',
    ],
    ['/', '/'],
    ['/a b/c*d/', '/a%20b/c%2Ad/'],
  ])('URI %j → %j', (path, expected) => {
    // Act & Assess
    expect(canonicalUri(path)).toBe(expected);
  });

  it.each([
    ['b=2&a=1', 'a=1&b=2'],
    ['name=a b&x=*', 'name=a%20b&x=%2A'],
    ['k=2&k=1', 'k=1&k=2'],
    ['', ''],
  ])('query %j → %j', (query, expected) => {
    // Act & Assess
    expect(canonicalQuery(new URLSearchParams(query))).toBe(expected);
  });

  it('formats and parses X-Sdk-Date', () => {
    // Act
    const formatted = formatSdkDate(date);

    // Assess
    expect(formatted).toBe('20240506T070809Z');
    expect(parseSdkDate(formatted)).toBe(Date.UTC(2024, 4, 6, 7, 8, 9));
    expect(parseSdkDate('2024-05-06')).toBeUndefined();
  });

  it('parses the Authorization header', () => {
    // Prepare
    const added = signRequest(requestFactory(), { ak, sk }, { date });

    // Act
    const parsed = parseAuthorization(added.Authorization as string);

    // Assess
    expect(parsed).toMatchObject({ access: ak, signedHeaders: ['host', 'x-sdk-date'] });
    expect(parseAuthorization('Bearer abc')).toBeUndefined();
  });
});

describe('verifySignature', () => {
  const secretOf = (key: string) => (key === ak ? sk : undefined);
  const now = date.getTime();

  it('accepts what signRequest produced', () => {
    // Prepare
    const request = requestFactory();
    const added = signRequest(request, { ak, sk }, { date, projectId: 'proj123' });

    // Act
    const result = verifySignature({ ...request, headers: receivedHeaders(request, added) }, secretOf, {
      now,
    });

    // Assess
    expect(result).toEqual({ ok: true, ak, date: Date.UTC(2024, 4, 6, 7, 8, 9) });
  });

  it.each([
    ['a changed body', { body: '[]' }, {}, 'signature mismatch'],
    [
      'a changed path',
      { url: 'https://swr-api.example.com/v2/manage/namespaces/other/access' },
      {},
      'signature mismatch',
    ],
    ['an unknown key', {}, { ak: 'OTHER' }, 'unknown access key'],
    ['a stale date', {}, { now: now + 16 * 60_000 }, 'X-Sdk-Date too far from server time'],
  ])('refuses %s', (_what, changed, options: { ak?: string; now?: number }, reason) => {
    // Prepare
    const signed = requestFactory();
    const added = signRequest(signed, { ak: options.ak ?? ak, sk }, { date });
    const received = requestFactory(changed);

    // Act
    const result = verifySignature({ ...received, headers: receivedHeaders(received, added) }, secretOf, {
      now: options.now ?? now,
    });

    // Assess
    expect(result).toEqual({ ok: false, reason });
  });
});
