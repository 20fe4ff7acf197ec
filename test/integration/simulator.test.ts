import { createHash, createHmac } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { AuthLevel, Target } from '../../lib/domain.ts';
import {
  loadSeed,
  parseSeed,
  type Simulator,
  SimulatorConfigError,
  type SimulatorOptions,
  type SimulatorSeed,
  startSimulator,
} from '../../lib/sim/index.ts';

// One dispatcher for the file, closed at the end, so no socket outlives the suite.
const dispatcher = new Agent({ keepAliveTimeout: 1000 });
const seed = loadSeed();
const started: Simulator[] = [];
let clock = Date.UTC(2025, 0, 15, 12, 0, 0);

afterEach(async () => {
  await Promise.all(started.splice(0).map((sim) => sim.close()));
  clock = Date.UTC(2025, 0, 15, 12, 0, 0);
});

afterAll(async () => {
  await Promise.all(started.splice(0).map((sim) => sim.close()));
  await dispatcher.close();
});

// --- factories -------------------------------------------------------------------------------

const start = async (options: SimulatorOptions = {}): Promise<Simulator> => {
  const sim = await startSimulator({ seed, now: () => clock, ...options });
  started.push(sim);
  return sim;
};

const userId = (name: string): string => {
  const user = seed.users.find((u) => u.name === name);
  if (user === undefined) throw new Error(`no seeded user ${name}`);
  return user.id;
};

const sa = seed.serviceAccount;
const credential = seed.credentials?.[0] ?? { ak: '', sk: '', userId: '' };

const userAuth = (name: string, auth: AuthLevel) => ({ user_id: userId(name), user_name: name, auth });

const repoUrl = (sim: Simulator, namespace: string, repository: string) =>
  `${sim.swrUrl}/v2/manage/namespaces/${namespace}/repos/${repository.replaceAll('/', '$')}/access`;

const namespaceUrl = (sim: Simulator, namespace: string) =>
  `${sim.swrUrl}/v2/manage/namespaces/${namespace}/access`;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
}

const call = async (
  url: string,
  init: {
    method?: string;
    headers?: Record<string, string>;
    body?: unknown;
    rawBody?: string;
    signal?: AbortSignal;
  } = {},
): Promise<Answer> => {
  const body = init.rawBody ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
  const res = await request(url, {
    dispatcher,
    method: (init.method ?? 'GET') as 'GET',
    headers: {
      ...(body === undefined || init.rawBody !== undefined ? {} : { 'content-type': 'application/json' }),
      ...init.headers,
    },
    body,
    signal: init.signal,
  });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    json: text === '' ? undefined : JSON.parse(text),
  };
};

const passwordBody = (password = sa.password, user = sa.name) => ({
  auth: {
    identity: {
      methods: ['password'],
      password: { user: { domain: { name: seed.account.name }, name: user, password } },
    },
    scope: { project: { name: seed.project.name } },
  },
});

const agencyBody = (field: 'agency_name' | 'xrole_name', agency: string) => ({
  auth: {
    identity: { methods: ['assume_role'], assume_role: { domain_name: seed.account.name, [field]: agency } },
    scope: { project: { name: seed.project.name } },
  },
});

const issueToken = async (sim: Simulator): Promise<string> => {
  const answer = await call(`${sim.iamUrl}/v3/auth/tokens?nocatalog=true`, {
    method: 'POST',
    body: passwordBody(),
  });
  const token = answer.headers['x-subject-token'];
  if (answer.status !== 201 || typeof token !== 'string') throw new Error(`no token: ${answer.status}`);
  return token;
};

type UserAuthBody = { user_id: string; user_name: string; auth: number };

/** Every error code in any of the three documented shapes. */
const errorCode = (json: unknown): string | undefined => {
  if (Array.isArray(json)) return (json[0] as { errorCode?: string } | undefined)?.errorCode;
  const body = json as { errors?: Array<{ errorCode: string }>; error_code?: string } | undefined;
  return body?.errors?.[0]?.errorCode ?? body?.error_code;
};

const shapeOf = (json: unknown): 1 | 2 | 3 | undefined => {
  if (Array.isArray(json)) return 3;
  if (typeof json !== 'object' || json === null) return undefined;
  return 'errors' in json ? 1 : 'error_code' in json ? 2 : undefined;
};

// --- AK/SK signing by hand, from swr-api.md (independent of both the client and the simulator) ---

const sha256Hex = (data: string) => createHash('sha256').update(data).digest('hex');
const rfc3986 = (value: string) =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const sdkDate = (ms: number) =>
  new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');

const signedHeaders = (
  method: string,
  url: string,
  body: string,
  options: { date?: number; ak?: string; sk?: string; extra?: Record<string, string> } = {},
): Record<string, string> => {
  const u = new URL(url);
  const headers: Record<string, string> = {
    ...options.extra,
    host: u.host,
    'x-sdk-date': sdkDate(options.date ?? clock),
    'x-project-id': seed.project.id,
    ...(body === '' ? {} : { 'content-type': 'application/json' }),
  };
  const names = Object.keys(headers).sort();
  const path = u.pathname
    .split('/')
    .map((segment) => rfc3986(decodeURIComponent(segment)))
    .join('/');
  const query = [...u.searchParams]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`)
    .join('&');
  const canonical = [
    method,
    path.endsWith('/') ? path : `${path}/`,
    query,
    names.map((n) => `${n}:${headers[n]}\n`).join(''),
    names.join(';'),
    sha256Hex(body),
  ].join('\n');
  const toSign = `SDK-HMAC-SHA256\n${headers['x-sdk-date']}\n${sha256Hex(canonical)}`;
  const signature = createHmac('sha256', options.sk ?? credential.sk)
    .update(toSign)
    .digest('hex');
  const { host: _host, ...sent } = headers;
  return {
    ...sent,
    authorization: `SDK-HMAC-SHA256 Access=${options.ak ?? credential.ak}, SignedHeaders=${names.join(';')}, Signature=${signature}`,
  };
};

const offByOneChar = (headers: Record<string, string>): Record<string, string> => {
  const auth = headers.authorization ?? '';
  const last = auth.at(-1) === '0' ? '1' : '0';
  return { ...headers, authorization: `${auth.slice(0, -1)}${last}` };
};

const waitFor = async (condition: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !condition(); i += 1) await new Promise((r) => setTimeout(r, 10));
  if (!condition()) throw new Error('condition not reached');
};

// --- tests -----------------------------------------------------------------------------------

describe('seed', () => {
  it('loads the demo seed with the demo namespaces, users and a robot', () => {
    // Assess
    expect(seed.namespaces.map((n) => n.name)).toEqual(['core', 'tools', 'data']);
    expect(seed.users.map((u) => u.name)).toEqual(
      expect.arrayContaining([
        'alice',
        'bob',
        'carol',
        'dave',
        'erin',
        'frank',
        'grace',
        'heidi',
        'ci-robot',
      ]),
    );
    expect(sa.name).toBe('swr-sync');
  });

  it.each([
    ['a grant to an unknown user', { userId: 'f'.repeat(32), auth: 3 }, 'unknown user'],
    ['a grant to the service account', { userId: sa.id, auth: 3 }, 'implicitly manager'],
    ['a level outside 1/3/7', { userId: userId('alice'), auth: 5 }, 'grants'],
  ])('rejects %s', (_case, grant, problem) => {
    // Prepare
    const broken = structuredClone(seed) as SimulatorSeed;
    broken.namespaces[0]?.repositories[0]?.grants?.push(grant as { userId: string; auth: AuthLevel });

    // Act
    const act = () => parseSeed(broken);

    // Assess
    expect(act).toThrow(SimulatorConfigError);
    expect(act).toThrow(problem);
  });

  it('rejects an invalid repository name with the broken rule', () => {
    // Prepare
    const broken = structuredClone(seed) as SimulatorSeed;
    broken.namespaces[0]?.repositories.push({ name: 'api//server' });

    // Act / Assess
    expect(() => parseSeed(broken)).toThrow(/may not put "\/" next to "\/"/);
  });
});

describe('IAM tokens', () => {
  it('issues a token for the password method in X-Subject-Token, valid on SWR', async () => {
    // Prepare
    const sim = await start({ tokenTtlSeconds: 3600 });

    // Act
    const answer = await call(`${sim.iamUrl}/v3/auth/tokens?nocatalog=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json;charset=utf8' },
      body: passwordBody(),
    });
    const token = String(answer.headers['x-subject-token']);
    const get = await call(repoUrl(sim, 'core', 'api/server'), { headers: { 'x-auth-token': token } });

    // Assess
    expect(answer.status).toBe(201);
    expect(answer.json).toMatchObject({
      token: { expires_at: new Date(clock + 3_600_000).toISOString(), user: { id: sa.id, name: sa.name } },
    });
    expect(answer.text).not.toContain(token);
    expect(get.status).toBe(200);
  });

  it.each([
    ['a wrong password', passwordBody('not-the-password')],
    ['a user without a password', passwordBody(sa.password, 'alice')],
  ])('answers 401 in the flat IAM shape for %s', async (_case, body) => {
    // Prepare
    const sim = await start();

    // Act
    const answer = await call(`${sim.iamUrl}/v3/auth/tokens`, { method: 'POST', body });

    // Assess
    expect(answer.status).toBe(401);
    expect(shapeOf(answer.json)).toBe(2);
    expect(answer.headers['x-subject-token']).toBeUndefined();
    expect(answer.text).not.toContain(sa.password);
  });

  it.each(['agency_name', 'xrole_name'] as const)('assumes the seeded agency with %s', async (field) => {
    // Prepare
    const sim = await start();
    const token = await issueToken(sim);
    const agency = seed.agencies?.[0]?.name ?? '';

    // Act
    const answer = await call(`${sim.iamUrl}/v3/auth/tokens`, {
      method: 'POST',
      headers: { 'x-auth-token': token },
      body: agencyBody(field, agency),
    });
    const get = await call(namespaceUrl(sim, 'core'), {
      headers: { 'x-auth-token': String(answer.headers['x-subject-token']) },
    });

    // Assess
    expect(answer.status).toBe(201);
    expect(answer.json).toMatchObject({ token: { methods: ['assume_role'] } });
    expect(get.status).toBe(200);
  });

  it.each([
    ['without a token', undefined, 'swr-sync-agency', 401],
    ['for an unknown agency', 'token', 'no-such-agency', 403],
  ])('refuses assume_role %s', async (_case, withToken, agency, status) => {
    // Prepare
    const sim = await start();
    const headers: Record<string, string> =
      withToken === undefined ? {} : { 'x-auth-token': await issueToken(sim) };

    // Act
    const answer = await call(`${sim.iamUrl}/v3/auth/tokens`, {
      method: 'POST',
      headers,
      body: agencyBody('agency_name', agency),
    });

    // Assess
    expect(answer.status).toBe(status);
    expect(shapeOf(answer.json)).toBe(2);
  });

  it('answers 401 SVCSTG.SWR.4010000 once the token has expired', async () => {
    // Prepare
    const sim = await start({ tokenTtlSeconds: 60 });
    const token = await issueToken(sim);
    clock += 61_000;

    // Act
    const answer = await call(repoUrl(sim, 'core', 'api/server'), { headers: { 'x-auth-token': token } });

    // Assess
    expect(answer.status).toBe(401);
    expect(errorCode(answer.json)).toBe('SVCSTG.SWR.4010000');
  });

  it('invalidates issued tokens early with expireTokens(), keeping the static token', async () => {
    // Prepare
    const sim = await start();
    const token = await issueToken(sim);

    // Act
    sim.expireTokens();
    const issued = await call(repoUrl(sim, 'core', 'api/server'), { headers: { 'x-auth-token': token } });
    const fixed = await call(repoUrl(sim, 'core', 'api/server'), {
      headers: { 'x-auth-token': sa.staticToken ?? '' },
    });

    // Assess
    expect(issued.status).toBe(401);
    expect(fixed.status).toBe(200);
  });

  it('expireTokens(minAgeMs) spares the tokens issued less than minAgeMs ago', async () => {
    // Prepare
    const sim = await start();
    const old = await issueToken(sim);
    clock += 2_000;
    const fresh = await issueToken(sim);
    clock += 500;

    // Act
    sim.expireTokens(2_000);
    const oldAnswer = await call(repoUrl(sim, 'core', 'api/server'), { headers: { 'x-auth-token': old } });
    const freshAnswer = await call(repoUrl(sim, 'core', 'api/server'), {
      headers: { 'x-auth-token': fresh },
    });

    // Assess
    expect(oldAnswer.status).toBe(401);
    expect(freshAnswer.status).toBe(200);
  });

  it.each([
    ['no token', {}],
    ['an unknown token', { 'x-auth-token': 'MIInot-a-token' }],
  ])('refuses SWR calls with %s', async (_case, headers) => {
    // Prepare
    const sim = await start();

    // Act
    const answer = await call(repoUrl(sim, 'core', 'api/server'), { headers });

    // Assess
    expect(answer.status).toBe(401);
    expect(errorCode(answer.json)).toBe('SVCSTG.SWR.4010000');
  });
});

describe('IAM users', () => {
  it('finds a user by id and by name, and answers 404 for an unknown id', async () => {
    // Prepare
    const sim = await start();
    const headers = { 'x-auth-token': await issueToken(sim) };

    // Act
    const byId = await call(`${sim.iamUrl}/v3/users/${userId('alice')}`, { headers });
    const byName = await call(`${sim.iamUrl}/v3/users?name=bob`, { headers });
    const unknown = await call(`${sim.iamUrl}/v3/users/${'0'.repeat(32)}`, { headers });
    const anonymous = await call(`${sim.iamUrl}/v3/users/${userId('alice')}`);

    // Assess
    expect(byId.json).toMatchObject({
      user: { id: userId('alice'), name: 'alice', enabled: true, domain_id: seed.account.id },
    });
    expect(byName.json).toMatchObject({ users: [{ id: userId('bob'), name: 'bob' }] });
    expect((byName.json as { users: unknown[] }).users).toHaveLength(1);
    expect(unknown.status).toBe(404);
    expect(anonymous.status).toBe(401);
  });
});

describe('AK/SK signatures', () => {
  it.each([
    ['GET with a $ path', 'GET', (sim: Simulator) => repoUrl(sim, 'core', 'api/server'), undefined, 200],
    [
      'GET with a query',
      'GET',
      (sim: Simulator) => `${sim.swrUrl}/v2/manage/repos?namespace=core&limit=2`,
      undefined,
      200,
    ],
    [
      'POST with a body',
      'POST',
      (sim: Simulator) => repoUrl(sim, 'core', 'base/node'),
      [userAuth('frank', 1)],
      201,
    ],
  ])('accepts a correctly signed %s', async (_case, method, url, body, status) => {
    // Prepare
    const sim = await start();
    const text = body === undefined ? '' : JSON.stringify(body);

    // Act
    const answer = await call(url(sim), {
      method,
      headers: signedHeaders(method, url(sim), text),
      ...(body === undefined ? {} : { rawBody: text }),
    });

    // Assess
    expect(answer.status).toBe(status);
  });

  it.each([
    ['the signature is off by one character', (h: Record<string, string>) => offByOneChar(h), 0],
    ['X-Sdk-Date is 16 minutes behind', (h: Record<string, string>) => h, -16 * 60_000],
    ['X-Sdk-Date is 16 minutes ahead', (h: Record<string, string>) => h, 16 * 60_000],
    ['the secret key is wrong', (h: Record<string, string>) => h, 0, 'wrong-secret'],
  ])('answers 401 APIGW.0301 when %s', async (_case, tamper, skew, sk?: string) => {
    // Prepare
    const sim = await start();
    const url = repoUrl(sim, 'core', 'api/server');
    const headers = tamper(signedHeaders('GET', url, '', { date: clock + skew, ...(sk ? { sk } : {}) }));

    // Act
    const answer = await call(url, { headers });

    // Assess
    expect(answer.status).toBe(401);
    expect(errorCode(answer.json)).toBe('APIGW.0301');
  });

  it('accepts a date 14 minutes off', async () => {
    // Prepare
    const sim = await start();
    const url = repoUrl(sim, 'core', 'api/server');

    // Act
    const answer = await call(url, { headers: signedHeaders('GET', url, '', { date: clock - 14 * 60_000 }) });

    // Assess
    expect(answer.status).toBe(200);
  });

  it('locks the key for 5 minutes after more than 5 bad signatures in a row', async () => {
    // Prepare
    const sim = await start();
    const url = repoUrl(sim, 'core', 'api/server');
    for (let i = 0; i < 6; i += 1) await call(url, { headers: offByOneChar(signedHeaders('GET', url, '')) });

    // Act
    const locked = await call(url, { headers: signedHeaders('GET', url, '') });
    clock += 5 * 60_000 + 1000;
    const unlocked = await call(url, { headers: signedHeaders('GET', url, '') });

    // Assess
    expect(locked.status).toBe(401);
    expect(errorCode(locked.json)).toBe('APIGW.0301');
    expect((locked.json as { error_msg: string }).error_msg).toContain('locked');
    expect(unlocked.status).toBe(200);
  });

  it('does not lock after 5 bad signatures followed by a good one', async () => {
    // Prepare
    const sim = await start();
    const url = repoUrl(sim, 'core', 'api/server');
    for (let i = 0; i < 5; i += 1) await call(url, { headers: offByOneChar(signedHeaders('GET', url, '')) });
    await call(url, { headers: signedHeaders('GET', url, '') });
    await call(url, { headers: offByOneChar(signedHeaders('GET', url, '')) });

    // Act
    const answer = await call(url, { headers: signedHeaders('GET', url, '') });

    // Assess
    expect(answer.status).toBe(200);
  });
});

describe('SWR permissions', () => {
  const withToken = async (options: SimulatorOptions = {}) => {
    const sim = await start(options);
    return { sim, headers: { 'x-auth-token': await issueToken(sim) } };
  };

  it('GET answers self_auth for the caller and the others sorted by user id', async () => {
    // Prepare
    const { sim, headers } = await withToken();

    // Act
    const repo = await call(repoUrl(sim, 'core', 'api/server'), { headers });
    const ns = await call(namespaceUrl(sim, 'tools'), { headers });

    // Assess
    const others = [userAuth('alice', 3), userAuth('bob', 3)].sort((a, b) =>
      a.user_id < b.user_id ? -1 : 1,
    );
    expect(repo.status).toBe(200);
    expect(repo.json).toEqual({
      id: expect.any(Number),
      name: 'api/server',
      self_auth: { user_id: sa.id, user_name: sa.name, auth: 7 },
      others_auths: others,
    });
    expect(ns.json).toMatchObject({
      name: 'tools',
      creator_name: sa.name,
      others_auths: [userAuth('ci-robot', 3)],
    });
  });

  it.each([
    ['$', 'api$server'],
    ['%24', 'api%24server'],
  ])('decodes %s in the repository segment to /', async (_case, segment) => {
    // Prepare
    const { sim, headers } = await withToken();

    // Act
    const answer = await call(`${sim.swrUrl}/v2/manage/namespaces/core/repos/${segment}/access`, { headers });

    // Assess
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ name: 'api/server' });
  });

  it.each([
    ['%2F', 'api%2Fserver'],
    ['%2f', 'api%2fserver'],
    ['a literal /', 'api/server'],
  ])('does not match the route when the repository segment holds %s', async (_case, segment) => {
    // Prepare
    const { sim, headers } = await withToken();

    // Act
    const answer = await call(`${sim.swrUrl}/v2/manage/namespaces/core/repos/${segment}/access`, { headers });

    // Assess
    expect(answer.status).toBe(404);
    expect(errorCode(answer.json)).toBe('APIGW.0101');
  });

  it('POST grants on a repository: 201 with an empty body', async () => {
    // Prepare
    const { sim, headers } = await withToken();

    // Act
    const answer = await call(repoUrl(sim, 'core', 'api/server'), {
      method: 'POST',
      headers,
      body: [userAuth('carol', 1), userAuth('dave', 7)],
    });

    // Assess
    expect(answer.status).toBe(201);
    expect(answer.text).toBe('');
    expect(sim.permissions().repos['core/api/server']).toMatchObject({
      [userId('carol')]: 1,
      [userId('dave')]: 7,
    });
  });

  it('POST grants on a namespace: 200', async () => {
    // Prepare
    const { sim, headers } = await withToken();

    // Act
    const answer = await call(namespaceUrl(sim, 'data'), {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json;charset=utf-8' },
      body: [userAuth('frank', 3)],
    });

    // Assess
    expect(answer.status).toBe(200);
    expect(sim.permissions().namespaces.data).toEqual({ [userId('frank')]: 3 });
  });

  it.each([
    [
      'repository',
      (sim: Simulator) => repoUrl(sim, 'core', 'api/server'),
      'SVCSTG.SWR.4090089',
      'core/api/server',
    ],
    ['namespace', (sim: Simulator) => namespaceUrl(sim, 'tools'), 'SVCSTG.SWR.4090076', 'tools'],
  ])('POST of an existing %s permission answers 409 and grants nobody', async (kind, url, code, key) => {
    // Prepare
    const { sim, headers } = await withToken();
    const existing = kind === 'repository' ? userAuth('alice', 7) : userAuth('ci-robot', 7);
    const before = sim.permissions();

    // Act
    const answer = await call(url(sim), { method: 'POST', headers, body: [userAuth('frank', 1), existing] });

    // Assess
    expect(answer.status).toBe(409);
    expect(errorCode(answer.json)).toBe(code);
    expect(shapeOf(answer.json)).toBe(1);
    const snapshot = sim.permissions();
    expect(kind === 'repository' ? snapshot.repos[key] : snapshot.namespaces[key]).toEqual(
      kind === 'repository' ? before.repos[key] : before.namespaces[key],
    );
  });

  it('PATCH changes levels: 201', async () => {
    // Prepare
    const { sim, headers } = await withToken();

    // Act
    const answer = await call(repoUrl(sim, 'core', 'api/server'), {
      method: 'PATCH',
      headers,
      body: [userAuth('alice', 7), userAuth('bob', 1)],
    });

    // Assess
    expect(answer.status).toBe(201);
    expect(sim.permissions().repos['core/api/server']).toEqual({ [userId('alice')]: 7, [userId('bob')]: 1 });
  });

  it.each([
    [
      'repository',
      (sim: Simulator) => repoUrl(sim, 'core', 'api/server'),
      'SVCSTG.SWR.4040091',
      userAuth('alice', 7),
    ],
    [
      'namespace',
      (sim: Simulator) => namespaceUrl(sim, 'tools'),
      'SVCSTG.SWR.4040078',
      userAuth('ci-robot', 7),
    ],
  ])(
    'PATCH of a %s user without a permission answers 404 and changes nobody',
    async (_k, url, code, held) => {
      // Prepare
      const { sim, headers } = await withToken();
      const before = sim.permissions();

      // Act
      const answer = await call(url(sim), { method: 'PATCH', headers, body: [held, userAuth('frank', 1)] });

      // Assess
      expect(answer.status).toBe(404);
      expect(errorCode(answer.json)).toBe(code);
      expect(sim.permissions()).toEqual(before);
    },
  );

  it('DELETE revokes: 204', async () => {
    // Prepare
    const { sim, headers } = await withToken();

    // Act
    const answer = await call(repoUrl(sim, 'data', 'warehouse/loader'), {
      method: 'DELETE',
      headers,
      body: [userId('heidi')],
    });

    // Assess
    expect(answer.status).toBe(204);
    expect(sim.permissions().repos['data/warehouse/loader']).toEqual({ [userId('erin')]: 1 });
  });

  it.each([
    ['404', 404, 'SVCSTG.SWR.4040091'],
    ['204', 204, undefined],
  ] as const)(
    'DELETE of a user holding nothing with revokeMissing %s still revokes the others',
    async (mode, status, code) => {
      // Prepare
      const { sim, headers } = await withToken({ revokeMissing: mode });

      // Act
      const answer = await call(repoUrl(sim, 'core', 'api/server'), {
        method: 'DELETE',
        headers,
        body: [userId('alice'), userId('frank')],
      });

      // Assess
      expect(answer.status).toBe(status);
      expect(errorCode(answer.json)).toBe(code);
      expect(sim.permissions().repos['core/api/server']).toEqual({ [userId('bob')]: 3 });
    },
  );

  it.each([
    ['POST', [{ user_id: sa.id, user_name: sa.name, auth: 1 }]],
    ['PATCH', [{ user_id: sa.id, user_name: sa.name, auth: 1 }]],
    ['DELETE', [sa.id]],
  ])('refuses %s on the caller itself with 403 SVCSTG.SWR.4030170', async (method, body) => {
    // Prepare
    const { sim, headers } = await withToken();
    const before = sim.permissions();

    // Act
    const answer = await call(repoUrl(sim, 'core', 'base/node'), { method, headers, body });

    // Assess
    expect(answer.status).toBe(403);
    expect(errorCode(answer.json)).toBe('SVCSTG.SWR.4030170');
    expect(sim.permissions()).toEqual(before);
  });

  it.each([
    ['an unknown repository', 'GET', 'core', 'no/such', undefined, {}, 404, 'SVCSTG.SWR.4040010'],
    [
      'an unknown namespace',
      'POST',
      'nope',
      'api/server',
      [userAuth('frank', 1)],
      {},
      404,
      'SVCSTG.SWR.4040058',
    ],
    ['an invalid namespace', 'GET', 'Core', 'api/server', undefined, {}, 400, 'SVCSTG.SWR.4001091'],
    ['an invalid repository', 'GET', 'core', 'api..server', undefined, {}, 400, 'SVCSTG.SWR.4001091'],
    [
      'an unknown IAM user',
      'POST',
      'core',
      'base/node',
      [{ user_id: 'a'.repeat(32), user_name: 'x', auth: 1 }],
      {},
      400,
      'SVCSTG.SWR.4001067',
    ],
    [
      'a malformed user id',
      'POST',
      'core',
      'base/node',
      [{ user_id: 'ALICE', user_name: 'alice', auth: 1 }],
      {},
      400,
      'SVCSTG.SWR.4001067',
    ],
    [
      'a missing user_name',
      'POST',
      'core',
      'base/node',
      [{ user_id: userId('frank'), auth: 1 }],
      {},
      400,
      'SVCSTG.SWR.4001066',
    ],
    [
      'auth 5',
      'POST',
      'core',
      'base/node',
      [{ ...userAuth('frank', 1), auth: 5 }],
      {},
      400,
      'SVCSTG.SWR.4001065',
    ],
    ['an object body', 'POST', 'core', 'base/node', userAuth('frank', 1), {}, 400, 'SVCSTG.SWR.4000014'],
    ['an empty array', 'PATCH', 'core', 'base/node', [], {}, 400, 'SVCSTG.SWR.4000014'],
    [
      'a DELETE of objects',
      'DELETE',
      'core',
      'api/server',
      [userAuth('alice', 3)],
      {},
      400,
      'SVCSTG.SWR.4001067',
    ],
    [
      'text/plain',
      'POST',
      'core',
      'base/node',
      [userAuth('frank', 1)],
      { 'content-type': 'text/plain' },
      400,
      'SVCSTG.SWR.4000014',
    ],
  ])('refuses %s (%s)', async (_case, method, ns, repo, body, extra, status, code) => {
    // Prepare
    const { sim, headers } = await withToken();
    const before = sim.permissions();
    const url = `${sim.swrUrl}/v2/manage/namespaces/${ns}/repos/${repo.replaceAll('/', '$')}/access`;

    // Act
    const answer = await call(url, { method, headers: { ...headers, ...extra }, body });

    // Assess
    expect(answer.status).toBe(status);
    expect(errorCode(answer.json)).toBe(code);
    expect(shapeOf(answer.json)).toBe(1);
    expect(sim.permissions()).toEqual(before);
  });

  it('shows drift set by hand and repositories added at run time', async () => {
    // Prepare
    const { sim, headers } = await withToken();
    const ghost = 'd'.repeat(32);
    const target: Target = { kind: 'repo', namespace: 'tools', repository: 'lint' };

    // Act
    sim.setPermission(target, ghost, 7);
    sim.addRepository('tools', 'release/notes');
    const lint = await call(repoUrl(sim, 'tools', 'lint'), { headers });
    const added = await call(repoUrl(sim, 'tools', 'release/notes'), { headers });
    const revoked = await call(repoUrl(sim, 'tools', 'lint'), { method: 'DELETE', headers, body: [ghost] });

    // Assess
    expect(lint.json).toMatchObject({ others_auths: [{ user_id: ghost, user_name: ghost, auth: 7 }] });
    expect(added.status).toBe(200);
    expect(revoked.status).toBe(204);
    expect(sim.permissions().repos['tools/lint']).toEqual({});
  });

  it('refuses writes from a caller without manage rights (AK of another user)', async () => {
    // Prepare
    const other = { ak: 'ALICEAK0000000000001', sk: 'alice-secret', userId: userId('alice') };
    const sim = await start({ seed: { ...seed, credentials: [...(seed.credentials ?? []), other] } });
    const url = repoUrl(sim, 'core', 'api/server');
    const text = JSON.stringify([userAuth('frank', 1)]);

    // Act
    const get = await call(url, { headers: signedHeaders('GET', url, '', other) });
    const post = await call(url, {
      method: 'POST',
      headers: signedHeaders('POST', url, text, other),
      rawBody: text,
    });

    // Assess
    expect(get.json).toMatchObject({ self_auth: { user_id: userId('alice'), auth: 3 } });
    expect(
      (get.json as { others_auths: Array<{ user_id: string }> }).others_auths.map((u) => u.user_id),
    ).toEqual([userId('bob')]);
    expect(post.status).toBe(403);
  });
});

describe('repository lists', () => {
  it('pages v2 by offset and limit, sorted by name, names with /', async () => {
    // Prepare
    const sim = await start();
    const headers = { 'x-auth-token': await issueToken(sim) };
    const list = (query: string) => call(`${sim.swrUrl}/v2/manage/repos?${query}`, { headers });

    // Act
    const first = await list('namespace=core&limit=3&offset=0');
    const second = await list('namespace=core&limit=3&offset=3');
    const all = await list('namespace=core');
    const packed = await list(`filter=${encodeURIComponent('namespace::data|offset::1|limit::5')}`);
    const bad = await list('namespace=core&limit=abc');

    // Assess
    const names = (a: Answer) => (a.json as Array<{ name: string }>).map((r) => r.name);
    expect(names(first)).toEqual(['api/server', 'api/worker', 'base/node']);
    expect(names(second)).toEqual(['web/frontend']);
    expect(first.json).toMatchObject([{ namespace: 'core', category: 'app_server' }, {}, {}]);
    expect(first.headers['content-range']).toBe('0-2/4');
    expect(names(all)).toHaveLength(4);
    expect(names(packed)).toEqual(['warehouse/loader']);
    expect(bad.status).toBe(400);
  });

  it('pages v3 by marker', async () => {
    // Prepare
    const sim = await start();
    const headers = { 'x-auth-token': await issueToken(sim) };

    // Act
    const first = await call(`${sim.swrUrl}/v3/manage/repos?namespace=tools&limit=1`, { headers });
    const second = await call(`${sim.swrUrl}/v3/manage/repos?namespace=tools&limit=1&marker=1`, { headers });

    // Assess
    expect(first.json).toMatchObject({ nextMarker: 1, repos: [{ name: 'ci/runner' }] });
    expect(second.json).toEqual({ repos: [expect.objectContaining({ name: 'lint' })] });
  });
});

describe('faults', () => {
  it.each([
    ['error5xxRate', { error5xxRate: 1 }, 500, 'SVCSTG.SWR.5000090', 1],
    ['throttle429Rate', { throttle429Rate: 1 }, 429, 'APIGW.0308', 2],
    ['busy409Rate', { busy409Rate: 1 }, 409, 'SVCSTG.SWR.4090023', 3],
    ['tooMany403Rate', { tooMany403Rate: 1 }, 403, 'SVCSTG.SWR.4031032', 2],
  ])('%s at 1 fails every SWR call, not IAM', async (_case, faults, status, code, shape) => {
    // Prepare
    const sim = await start({ faults });
    const headers = { 'x-auth-token': await issueToken(sim) };

    // Act
    const access = await call(repoUrl(sim, 'core', 'api/server'), { headers });
    const list = await call(`${sim.swrUrl}/v2/manage/repos?namespace=core`, { headers });
    const iam = await call(`${sim.iamUrl}/v3/users?name=alice`, { headers });

    // Assess
    expect([access.status, list.status]).toEqual([status, status]);
    expect(errorCode(access.json)).toBe(code);
    expect(shapeOf(access.json)).toBe(shape);
    expect(iam.status).toBe(200);
  });

  it('sends Retry-After: 1 on every other 429, or a fixed value when configured', async () => {
    // Prepare
    const sim = await start({ faults: { throttle429Rate: 1 } });
    const url = repoUrl(sim, 'core', 'api/server');

    // Act
    const alternating = [await call(url), await call(url), await call(url)];
    sim.setFaults({ retryAfterSeconds: 3 });
    const fixed = await call(url);

    // Assess
    expect(alternating.map((a) => a.headers['retry-after'])).toEqual(['1', undefined, '1']);
    expect(fixed.headers['retry-after']).toBe('3');
  });

  it('applies faults to IAM only with iamFaults', async () => {
    // Prepare
    const sim = await start({ faults: { error5xxRate: 1, iamFaults: true } });

    // Act
    const answer = await call(`${sim.iamUrl}/v3/auth/tokens`, { method: 'POST', body: passwordBody() });

    // Assess
    expect(answer.status).toBe(500);
  });

  it('resetRate destroys the socket without an answer', async () => {
    // Prepare
    const sim = await start({ faults: { resetRate: 1 } });

    // Act
    const act = call(repoUrl(sim, 'core', 'api/server'));

    // Assess
    await expect(act).rejects.toThrow();
    expect(sim.requestLog().at(-1)?.status).toBe(0);
  });

  it.each([
    ['hangRate', { hangRate: 1 }],
    ['latencyMs', { latencyMs: 60_000 }],
  ])('%s leaves the request unanswered', async (_case, faults) => {
    // Prepare
    const sim = await start({ faults });

    // Act
    const act = call(repoUrl(sim, 'core', 'api/server'), { signal: AbortSignal.timeout(300) });

    // Assess
    await expect(act).rejects.toThrow();
  });

  it('failTargets fail only the matching target and method, always', async () => {
    // Prepare
    const sim = await start({
      faults: {
        failTargets: [{ target: 'core/api/server', method: 'POST', status: 404, code: 'SVCSTG.SWR.4040113' }],
      },
    });
    const headers = { 'x-auth-token': await issueToken(sim) };
    const body = [userAuth('frank', 1)];

    // Act
    const failed = [
      await call(repoUrl(sim, 'core', 'api/server'), { method: 'POST', headers, body }),
      await call(repoUrl(sim, 'core', 'api/server'), { method: 'POST', headers, body }),
    ];
    const read = await call(repoUrl(sim, 'core', 'api/server'), { headers });
    const other = await call(repoUrl(sim, 'core', 'api/worker'), { method: 'POST', headers, body });

    // Assess
    expect(failed.map((a) => [a.status, errorCode(a.json)])).toEqual([
      [404, 'SVCSTG.SWR.4040113'],
      [404, 'SVCSTG.SWR.4040113'],
    ]);
    expect(read.status).toBe(200);
    expect(other.status).toBe(201);
  });

  it('replays the same fault sequence for the same PRNG seed', async () => {
    // Prepare
    const statuses = async () => {
      const sim = await start({ faults: { error5xxRate: 0.5, seed: 42 } });
      const headers = { 'x-auth-token': sa.staticToken ?? '' };
      const out: number[] = [];
      for (let i = 0; i < 20; i += 1)
        out.push((await call(repoUrl(sim, 'tools', 'lint'), { headers })).status);
      return out;
    };

    // Act
    const first = await statuses();
    const second = await statuses();

    // Assess
    expect(first).toEqual(second);
    expect(new Set(first)).toEqual(new Set([200, 500]));
  });
});

describe('counts, log and close', () => {
  it('counts requests by method and route template, and resets', async () => {
    // Prepare
    const sim = await start();
    const headers = { 'x-auth-token': await issueToken(sim) };
    sim.resetCounts();

    // Act
    await call(repoUrl(sim, 'core', 'api/server'), { headers });
    await call(repoUrl(sim, 'core', 'api/worker'), { headers });
    await call(repoUrl(sim, 'core', 'base/node'), { method: 'POST', headers, body: [userAuth('frank', 1)] });
    await call(namespaceUrl(sim, 'core'), { headers });
    await call(`${sim.swrUrl}/nowhere`, { headers });
    const counts = sim.requestCounts();
    const log = sim.requestLog();
    sim.resetCounts();

    // Assess
    expect(counts).toEqual({
      'GET /v2/manage/namespaces/{ns}/repos/{repo}/access': 2,
      'POST /v2/manage/namespaces/{ns}/repos/{repo}/access': 1,
      'GET /v2/manage/namespaces/{ns}/access': 1,
      'GET (unmatched)': 1,
    });
    expect(log.map((e) => e.status)).toEqual([200, 200, 201, 200, 404]);
    expect(log[2]).toMatchObject({
      method: 'POST',
      path: '/v2/manage/namespaces/core/repos/base$node/access',
    });
    expect(sim.requestCounts()).toEqual({});
    expect(sim.requestLog()).toEqual([]);
  });

  it('close() resolves while a request hangs, and that request fails', async () => {
    // Prepare
    const sim = await start({ faults: { hangRate: 1 } });
    const pending = call(repoUrl(sim, 'core', 'api/server'));
    pending.catch(() => undefined);
    await waitFor(() => sim.requestLog().length === 1);

    // Act
    await sim.close();

    // Assess
    await expect(pending).rejects.toThrow();
  });
});

describe('SWR user validation', () => {
  const withToken = async (options: SimulatorOptions = {}) => {
    const sim = await start(options);
    return { sim, headers: { 'x-auth-token': await issueToken(sim) } };
  };

  it.each([
    ['a leading space', ' frank', 'SVCSTG.SWR.4001066'],
    ['a trailing tab', 'frank\t', 'SVCSTG.SWR.4001066'],
    ['a NUL inside', 'fr\u0000ank', 'SVCSTG.SWR.4001066'],
    ['a C1 control (NEL)', 'fr\u0085ank', 'SVCSTG.SWR.4001066'],
    ['an empty name', '', 'SVCSTG.SWR.4001066'],
    ["a name that is not IAM's", 'frankie', 'SVCSTG.SWR.4001066'],
  ])('POST with user_name of %s → 400 %s, nobody granted', async (_case, name, code) => {
    // Prepare
    const { sim, headers } = await withToken();

    // Act
    const answer = await call(repoUrl(sim, 'core', 'base/node'), {
      method: 'POST',
      headers,
      body: [userAuth('erin', 1), { user_id: userId('frank'), user_name: name, auth: 1 }],
    });

    // Assess
    expect(answer.status).toBe(400);
    expect(errorCode(answer.json)).toBe(code);
    expect(sim.permissions().repos['core/base/node']).toEqual({});
  });

  it.each([
    ['POST', 'base/node', {}],
    ['PATCH', 'api/server', { [userId('alice')]: 3, [userId('bob')]: 3 }],
  ])(
    '%s with one user IAM does not know fails as a whole (400 SVCSTG.SWR.4001067)',
    async (method, repository, state) => {
      // Prepare
      const { sim, headers } = await withToken();
      const body =
        method === 'POST'
          ? [userAuth('frank', 1), { user_id: 'e'.repeat(32), user_name: 'ghost', auth: 1 }]
          : [userAuth('alice', 7), { user_id: 'e'.repeat(32), user_name: 'ghost', auth: 1 }];

      // Act
      const answer = await call(repoUrl(sim, 'core', repository), { method, headers, body });

      // Assess
      expect(answer.status).toBe(400);
      expect(errorCode(answer.json)).toBe('SVCSTG.SWR.4001067');
      expect(sim.permissions().repos[`core/${repository}`]).toEqual(state);
    },
  );

  it('takes the name as sent with strictUserNames off', async () => {
    // Prepare
    const { sim, headers } = await withToken({ strictUserNames: false });

    // Act
    const answer = await call(repoUrl(sim, 'core', 'base/node'), {
      method: 'POST',
      headers,
      body: [{ user_id: userId('frank'), user_name: 'frankie', auth: 1 }],
    });
    const read = await call(repoUrl(sim, 'core', 'base/node'), { headers });

    // Assess
    expect(answer.status).toBe(201);
    expect((read.json as { others_auths: UserAuthBody[] }).others_auths).toEqual([
      { user_id: userId('frank'), user_name: 'frankie', auth: 1 },
    ]);
  });

  it('revokes the grant of a user IAM deleted; GET still shows it until then', async () => {
    // Prepare
    const { sim, headers } = await withToken();
    sim.deleteUser(userId('alice'));

    // Act
    const before = await call(repoUrl(sim, 'core', 'api/server'), { headers });
    const revoked = await call(repoUrl(sim, 'core', 'api/server'), {
      method: 'DELETE',
      headers,
      body: [userId('alice')],
    });
    const iam = await call(`${sim.iamUrl}/v3/users/${userId('alice')}`, { headers });

    // Assess
    expect((before.json as { others_auths: UserAuthBody[] }).others_auths.map((u) => u.user_id)).toContain(
      userId('alice'),
    );
    expect(revoked.status).toBe(204);
    expect(iam.status).toBe(404);
    expect(iam.json).toEqual({
      error_code: 'IAM.0004',
      error_msg: `Could not find user: ${userId('alice')}.`,
    });
  });

  it('lists every IAM user of a shared name', async () => {
    // Prepare
    const { sim, headers } = await withToken();
    const twin = sim.addUser({ name: 'bob' });

    // Act
    const answer = await call(`${sim.iamUrl}/v3/users?name=bob`, { headers });

    // Assess
    expect((answer.json as { users: Array<{ id: string }> }).users.map((u) => u.id).sort()).toEqual(
      [userId('bob'), twin.id].sort(),
    );
  });

  it('renames a user in IAM; existing grants keep the name they were made with', async () => {
    // Prepare
    const { sim, headers } = await withToken();
    sim.renameUser(userId('alice'), 'alice.w');

    // Act
    const iam = await call(`${sim.iamUrl}/v3/users/${userId('alice')}`, { headers });
    const access = await call(repoUrl(sim, 'core', 'api/server'), { headers });

    // Assess
    expect(iam.json).toMatchObject({ user: { name: 'alice.w' } });
    expect((access.json as { others_auths: UserAuthBody[] }).others_auths).toContainEqual({
      user_id: userId('alice'),
      user_name: 'alice',
      auth: 3,
    });
  });
});

describe('IAM under AK/SK', () => {
  it.each([
    ['with the account in X-Domain-Id', { 'x-domain-id': seed.account.id }, 200],
    ['without X-Domain-Id', {}, 401],
    ['with another account', { 'x-domain-id': 'f'.repeat(32) }, 401],
  ])('answers a signed user look-up %s: %i', async (_case, extra, status) => {
    // Prepare
    const sim = await start();
    const url = `${sim.iamUrl}/v3/users/${userId('alice')}`;

    // Act
    const answer = await call(url, { headers: signedHeaders('GET', url, '', { extra }) });

    // Assess
    expect(answer.status).toBe(status);
    if (status === 401) expect(errorCode(answer.json)).toBe('APIGW.0301');
  });

  it('reads a space as %20 and a plus as a plus when verifying the query', async () => {
    // Prepare
    const sim = await start();
    const john = sim.addUser({ name: 'John Smith' });
    const url = `${sim.iamUrl}/v3/users?name=John%20Smith`;
    const extra = { 'x-domain-id': seed.account.id };

    // Act
    const answer = await call(url, { headers: signedHeaders('GET', url, '', { extra }) });
    const plus = await call(`${sim.iamUrl}/v3/users?name=John+Smith`, {
      headers: signedHeaders('GET', url, '', { extra }),
    });

    // Assess: the same signature does not cover `+` (a plus sign to the gateway, not a space).
    expect(answer.status).toBe(200);
    expect((answer.json as { users: Array<{ id: string }> }).users.map((u) => u.id)).toEqual([john.id]);
    expect(plus.status).toBe(401);
  });
});

describe('hostile faults, on the wire', () => {
  it.each([
    ['not-published', 404, 'APIGW.0101'],
    ['unauthorized', 401, 'APIGW.0301'],
    ['throttled', 429, 'APIGW.0308'],
  ] as const)('gateway %s answers %i %s in the flat gateway shape', async (gateway, status, code) => {
    // Prepare
    const sim = await start({ faults: { failTargets: [{ gateway }] } });

    // Act
    const answer = await call(repoUrl(sim, 'core', 'api/server'));

    // Assess
    expect(answer.status).toBe(status);
    expect(shapeOf(answer.json)).toBe(2);
    expect(errorCode(answer.json)).toBe(code);
  });

  it.each([
    ['bad-gateway', 502],
    ['unavailable', 503],
    ['gateway-timeout', 504],
  ] as const)('gateway %s answers %i with an HTML page', async (gateway, status) => {
    // Prepare
    const sim = await start({ faults: { failTargets: [{ gateway }] } });

    // Act
    const res = await request(repoUrl(sim, 'core', 'api/server'), { dispatcher });
    const text = await res.body.text();

    // Assess
    expect(res.statusCode).toBe(status);
    expect(String(res.headers['content-type'])).toContain('text/html');
    expect(text).toContain(`<title>${status}`);
  });

  it('an echo fault quotes the request credentials in its body (what the client must redact)', async () => {
    // Prepare
    const sim = await start({ faults: { failTargets: [{ echo: true }] } });
    const token = sa.staticToken ?? '';

    // Act
    const answer = await call(repoUrl(sim, 'core', 'api/server'), { headers: { 'x-auth-token': token } });

    // Assess
    expect(answer.status).toBe(400);
    expect(answer.text).toContain(token);
  });

  it('the quota answers 429 APIGW.0308 with Retry-After past the burst, and refills with time', async () => {
    // Prepare
    const sim = await start({ faults: { quota: { ratePerSecond: 1, burst: 2, retryAfterSeconds: 2 } } });
    const headers = { 'x-auth-token': sa.staticToken ?? '' };
    const url = repoUrl(sim, 'core', 'api/server');

    // Act
    const statuses = [];
    for (let i = 0; i < 3; i += 1) statuses.push(await call(url, { headers }));
    clock += 1000;
    const later = await call(url, { headers });

    // Assess
    expect(statuses.map((a) => a.status)).toEqual([200, 200, 429]);
    expect(errorCode(statuses[2]?.json)).toBe('APIGW.0308');
    expect(statuses[2]?.headers['retry-after']).toBe('2');
    expect(later.status).toBe(200);
  });

  it('a ghost write answers like SWR and changes nothing', async () => {
    // Prepare
    const sim = await start({ faults: { ghostWriteRate: 1 } });
    const headers = { 'x-auth-token': sa.staticToken ?? '' };

    // Act
    const answer = await call(repoUrl(sim, 'core', 'base/node'), {
      method: 'POST',
      headers,
      body: [userAuth('frank', 1)],
    });

    // Assess
    expect(answer.status).toBe(201);
    expect(answer.text).toBe('');
    expect(sim.permissions().repos['core/base/node']).toEqual({});
  });

  it.each([
    ['others-null', (j: Record<string, unknown>) => j.others_auths === null],
    [
      'auth-string',
      (j: Record<string, unknown>) => (j.others_auths as Array<{ auth: unknown }>)[0]?.auth === '3',
    ],
    [
      'user-id-missing',
      (j: Record<string, unknown>) => !('user_id' in ((j.others_auths as object[])[0] ?? {})),
    ],
  ] as const)('malformed %s changes the documented shape of a GET', async (malformed, holds) => {
    // Prepare
    const sim = await start({ faults: { failTargets: [{ malformed }] } });

    // Act
    const answer = await call(repoUrl(sim, 'core', 'api/server'), {
      headers: { 'x-auth-token': sa.staticToken ?? '' },
    });

    // Assess
    expect(answer.status).toBe(200);
    expect(holds(answer.json as Record<string, unknown>)).toBe(true);
  });
});

describe('AK/SK signatures computed by the official SDK', () => {
  it.each([
    ['name=John%20Smith', '935fedbb098c33d189c70cf176b3ba5d2c328477467aa1b6e3b5dcfc18ba6d98', 200],
    ['name=a%2Bb%20c&domain_id=d0', 'b39e27a4c011c85bde2d1a677149c35815c6487285384f76b1fa8c889ed11554', 200],
    // The same signature over `+` instead of `%20`: to the gateway that is another query.
    ['name=John+Smith', '935fedbb098c33d189c70cf176b3ba5d2c328477467aa1b6e3b5dcfc18ba6d98', 401],
  ])('verifies GET /v3/users?%s', async (query, signature, status) => {
    // Prepare: the request @huaweicloud/huaweicloud-sdk-core 3.1.211 signed (see test/unit/swr-signer.test.ts).
    const account = 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0';
    const official = structuredClone(seed);
    official.account.id = account;
    official.credentials = [{ ak: 'AKEXAMPLE', sk: 'SKEXAMPLE-not-a-real-secret', userId: sa.id }];
    clock = Date.UTC(2024, 4, 6, 7, 8, 9);
    const sim = await start({ seed: official });

    // Act
    const answer = await call(`${sim.iamUrl}/v3/users?${query}`, {
      headers: {
        host: 'iam.myhuaweicloud.com',
        'content-type': 'application/json',
        'x-domain-id': account,
        'x-sdk-date': '20240506T070809Z',
        authorization: `SDK-HMAC-SHA256 Access=AKEXAMPLE, SignedHeaders=content-type;host;x-domain-id;x-sdk-date, Signature=${signature}`,
      },
    });

    // Assess
    expect(answer.status).toBe(status);
  });
});
