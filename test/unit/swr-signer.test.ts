import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  canonicalQuery,
  canonicalRequest,
  canonicalUri,
  encodeQuery,
  formatSdkDate,
  parseAuthorization,
  parseSdkDate,
  signature,
  signRequest,
  stringToSign,
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
    ['?name=John%20Smith', 'name=John%20Smith'],
    // The gateway reads `+` as a plus sign (the SDKs never send it for a space).
    ['name=a+b', 'name=a%2Bb'],
    ['name=a%2Bb%20c', 'name=a%2Bb%20c'],
    ['name=%C3%A9%7E', 'name=%C3%A9~'],
  ])('query %j → %j', (query, expected) => {
    // Act & Assess
    expect(canonicalQuery(query)).toBe(expected);
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

describe('against the official SDK signer', () => {
  // Computed once with @huaweicloud/huaweicloud-sdk-core 3.1.211 `AKSKSigner.sign` (not a dependency
  // of this project): GET https://iam.myhuaweicloud.com/v3/users with these query parameters,
  // headers X-Sdk-Date 20240506T070809Z, content-type application/json, X-Domain-Id d0…d0, AK
  // AKEXAMPLE, SK SKEXAMPLE-not-a-real-secret. The SDK signs every header it sends.
  const officialSk = 'SKEXAMPLE-not-a-real-secret';
  const officialHeaders = {
    'Content-Type': 'application/json',
    'X-Domain-Id': 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0',
    'X-Sdk-Date': '20240506T070809Z',
  };

  it.each([
    [
      { name: 'John Smith' },
      'name=John%20Smith',
      '935fedbb098c33d189c70cf176b3ba5d2c328477467aa1b6e3b5dcfc18ba6d98',
    ],
    [
      { name: 'a+b c', domain_id: 'd0' },
      'name=a%2Bb%20c&domain_id=d0',
      'b39e27a4c011c85bde2d1a677149c35815c6487285384f76b1fa8c889ed11554',
    ],
    // Sorted as decoded: `~` (0x7e) before `é`, though `%C3%A9` would sort before `~` escaped.
    [
      [
        ['\u00e9k', '2'],
        ['~k', '1'],
        ['name', '\u00e9'],
        ['name', '~'],
      ] as Array<[string, string]>,
      '%C3%A9k=2&~k=1&name=%C3%A9&name=~',
      '84ee6b3b4028789c576cd3aac12a80629981be9923841159180bb67e7a007279',
    ],
  ])('signs %j as the SDK does, with the query on the wire as %s', (query, wire, expected) => {
    // Prepare
    const url = new URL(`https://iam.myhuaweicloud.com/v3/users?${encodeQuery(query)}`);

    // Act
    const canonical = canonicalRequest({ method: 'GET', url, headers: officialHeaders }, [
      'content-type',
      'host',
      'x-domain-id',
      'x-sdk-date',
    ]);

    // Assess
    expect(url.search).toBe(`?${wire}`);
    expect(signature(officialSk, stringToSign('20240506T070809Z', canonical))).toBe(expected);
  });

  it.each([
    [{ name: 'John Smith' }, 'name=John%20Smith'],
    [{ name: 'a+b' }, 'name=a%2Bb'],
    [{ q: "it's (ok)*!" }, 'q=it%27s%20%28ok%29%2A%21'],
    [{ name: 'Zoë~' }, 'name=Zo%C3%AB~'],
  ])('encodes %j for the wire as %s (never + for a space)', (query, expected) => {
    expect(encodeQuery(query)).toBe(expected);
  });

  it('signs IAM calls with X-Domain-Id', () => {
    // Act
    const added = signRequest(
      {
        method: 'GET',
        url: new URL('https://iam.myhuaweicloud.com/v3/users?name=John%20Smith'),
        headers: {},
      },
      { ak, sk },
      { date, domainId: 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0' },
    );

    // Assess
    expect(added['X-Domain-Id']).toBe('d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0');
    expect(added.Authorization).toContain('SignedHeaders=host;x-domain-id;x-sdk-date,');
  });
});
