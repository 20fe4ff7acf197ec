/**
 * The undici SWR/IAM client against the simulator over real HTTP on 127.0.0.1: every auth kind,
 * the inferred answers of swr-api.md (409 exists, revoke of nothing), permanent and transient
 * failures, token expiry, paging, and token sharing between concurrent callers.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { AuthLevel, Target, UserAuth } from '../../lib/domain.ts';
import { ErrorCodes, InvalidNameError, SyncError } from '../../lib/errors.ts';
import {
  defaultFaults,
  type FaultConfig,
  loadSeed,
  type Simulator,
  type SimulatorOptions,
  startSimulator,
} from '../../lib/sim/index.ts';
import { SwrApiError } from '../../lib/swr/api-errors.ts';
import {
  type AuthConfig,
  createSwrServices,
  type SwrServices,
  type SwrServicesConfig,
} from '../../lib/swr/index.ts';
import type { RetryEvent } from '../../lib/swr/retry.ts';
import { caught } from '../support/caught.ts';

const seed = loadSeed();
const sa = seed.serviceAccount;
const sims: Simulator[] = [];
const services: SwrServices[] = [];

const closeAll = async (): Promise<void> => {
  await Promise.all(services.splice(0).map((s) => s.close()));
  await Promise.all(sims.splice(0).map((sim) => sim.close()));
};

afterEach(closeAll);
afterAll(closeAll);

// --- factories -------------------------------------------------------------------------------

const idOf = (name: string): string => {
  const user = seed.users.find((u) => u.name === name);
  if (user === undefined) throw new Error(`no seeded user ${name}`);
  return user.id;
};

const userAuth = (name: string, auth: AuthLevel): UserAuth => ({
  user_id: idOf(name),
  user_name: name,
  auth,
});

const repo = (namespace: string, repository: string): Target => ({ kind: 'repo', namespace, repository });
const ns = (namespace: string): Target => ({ kind: 'namespace', namespace });

const credential = seed.credentials?.[0];
const agency = seed.agencies?.[0];
if (sa.staticToken === undefined || credential === undefined || agency === undefined)
  throw new Error('the demo seed must carry a static token, AK/SK credentials and an agency');

const authKinds: Array<{ name: string; auth: AuthConfig; tokensPerFetch: number }> = [
  { name: 'static token', auth: { kind: 'token', token: sa.staticToken }, tokensPerFetch: 0 },
  {
    name: 'IAM password',
    auth: {
      kind: 'password',
      domain: seed.account.name,
      user: sa.name,
      password: sa.password,
      project: seed.project.name,
    },
    tokensPerFetch: 1,
  },
  {
    name: 'password + agency',
    auth: {
      kind: 'password',
      domain: seed.account.name,
      user: sa.name,
      password: sa.password,
      project: seed.project.name,
      agencyDomain: agency.domain,
      agency: agency.name,
    },
    tokensPerFetch: 2,
  },
  {
    name: 'AK/SK',
    auth: {
      kind: 'aksk',
      ak: credential.ak,
      sk: credential.sk,
      projectId: seed.project.id,
      domainId: seed.account.id,
    },
    tokensPerFetch: 0,
  },
];

const [tokenAuth, passwordAuth, agencyAuth] = authKinds.map((kind) => kind.auth) as [
  AuthConfig,
  AuthConfig,
  AuthConfig,
];

const start = async (options: SimulatorOptions = {}): Promise<Simulator> => {
  const sim = await startSimulator({ seed, ...options });
  sims.push(sim);
  return sim;
};

interface Harness {
  sim: Simulator;
  swr: SwrServices['swr'];
  users: SwrServices['users'];
  retries: RetryEvent[];
  sleeps: number[];
}

/**
 * A client on `sim`. Retry waits are recorded and then shortened to at most 5 ms, so a
 * `Retry-After: 1` is checked without spending a second on it.
 */
const connect = (
  sim: Simulator,
  auth: AuthConfig = tokenAuth,
  config: Partial<SwrServicesConfig> = {},
  onRetry?: (event: RetryEvent) => void,
): Harness => {
  const retries: RetryEvent[] = [];
  const sleeps: number[] = [];
  const built = createSwrServices(
    {
      swrEndpoint: sim.swrUrl,
      iamEndpoint: sim.iamUrl,
      auth,
      retry: { baseDelayMs: 5, maxDelayMs: 50 },
      ...config,
    },
    {
      onRetry: (event) => {
        retries.push(event);
        onRetry?.(event);
      },
      sleep: (ms) => {
        sleeps.push(ms);
        return new Promise((resolve) => setTimeout(resolve, Math.min(ms, 5)));
      },
    },
  );
  services.push(built);
  return { sim, swr: built.swr, users: built.users, retries, sleeps };
};

/** Requests the simulator saw for one target, as `METHOD status`. */
const exchanges = (sim: Simulator, pathPart: string): string[] =>
  sim
    .requestLog()
    .filter((entry) => entry.path.includes(pathPart))
    .map((entry) => `${entry.method} ${entry.status}`);

const levelsOf = (sim: Simulator, target: Target): Record<string, AuthLevel> | undefined => {
  const snapshot = sim.permissions();
  return target.kind === 'repo'
    ? snapshot.repos[`${target.namespace}/${target.repository}`]
    : snapshot.namespaces[target.namespace];
};

const noFaults: Partial<FaultConfig> = { ...defaultFaults(), seed: 1 };

const tokenRoute = 'POST /v3/auth/tokens';
const repoAccessRoute = 'GET /v2/manage/namespaces/{ns}/repos/{repo}/access';

// --- tests -----------------------------------------------------------------------------------

describe.each(authKinds)('with $name authentication', ({ auth }) => {
  it('reads, grants, changes and revokes on a repository with / in its name ($ in the path)', async () => {
    // Prepare
    const { sim, swr } = connect(await start(), auth);
    const target = repo('core', 'api/server');

    // Act
    const before = await swr.getAccess(target);
    await swr.grant(target, [userAuth('carol', 1)]);
    const granted = levelsOf(sim, target);
    await swr.change(target, [userAuth('carol', 7)]);
    const changed = levelsOf(sim, target);
    await swr.revoke(target, [idOf('carol')]);

    // Assess
    expect(before.selfUserId).toBe(sa.id);
    expect(before.users).toEqual([userAuth('alice', 3), userAuth('bob', 3)]);
    expect(granted?.[idOf('carol')]).toBe(1);
    expect(changed?.[idOf('carol')]).toBe(7);
    expect(levelsOf(sim, target)).toEqual({ [idOf('alice')]: 3, [idOf('bob')]: 3 });
    const paths = sim
      .requestLog()
      .filter((entry) => entry.route.includes('/repos/{repo}/access'))
      .map((entry) => entry.path);
    expect(paths).toHaveLength(4);
    for (const path of paths) expect(path).toBe('/v2/manage/namespaces/core/repos/api$server/access');
  });

  it('reads, grants, changes and revokes on a namespace', async () => {
    // Prepare
    const { sim, swr } = connect(await start(), auth);
    const target = ns('data');

    // Act
    const before = await swr.getAccess(target);
    await swr.grant(target, [userAuth('frank', 3), userAuth('erin', 1)]);
    const granted = levelsOf(sim, target);
    await swr.change(target, [userAuth('frank', 1)]);
    const changed = levelsOf(sim, target);
    await swr.revoke(target, [idOf('frank'), idOf('erin')]);

    // Assess
    expect(before).toEqual({ selfUserId: sa.id, users: [] });
    expect(granted).toEqual({ [idOf('erin')]: 1, [idOf('frank')]: 3 });
    expect(changed).toEqual({ [idOf('erin')]: 1, [idOf('frank')]: 1 });
    expect(levelsOf(sim, target)).toEqual({});
  });

  it('looks IAM users up by id and by name, and answers undefined for unknown ones', async () => {
    // Prepare
    const { users } = connect(await start(), auth);

    // Act
    const byId = await users.findById(idOf('alice'));
    const byName = await users.findByName('bob');
    const unknownId = await users.findById('0123456789abcdef0123456789abcdef');
    const unknownName = await users.findByName('nobody');

    // Assess
    expect(byId).toEqual({ id: idOf('alice'), name: 'alice' });
    expect(byName).toEqual({ id: idOf('bob'), name: 'bob' });
    expect(unknownId).toBeUndefined();
    expect(unknownName).toBeUndefined();
  });
});

describe('grant of a permission that already exists', () => {
  it.each([
    {
      kind: 'repository',
      target: repo('core', 'api/server'),
      pathPart: '/repos/api$server/access',
      holder: 'alice',
      newcomer: 'dave',
      others: { bob: 3 },
      grantStatus: 201,
    },
    {
      kind: 'namespace',
      target: ns('core'),
      pathPart: '/namespaces/core/access',
      holder: 'ci-robot',
      newcomer: 'erin',
      others: {},
      grantStatus: 200,
    },
  ])('changes the holder and grants the newcomer on a $kind (409 → GET, PATCH, POST)', async (row) => {
    // Prepare
    const { sim, swr } = connect(await start());

    // Act
    await swr.grant(row.target, [userAuth(row.holder, 7), userAuth(row.newcomer, 1)]);

    // Assess
    const others = Object.fromEntries(Object.entries(row.others).map(([name, auth]) => [idOf(name), auth]));
    expect(levelsOf(sim, row.target)).toEqual({ ...others, [idOf(row.holder)]: 7, [idOf(row.newcomer)]: 1 });
    expect(exchanges(sim, row.pathPart)).toEqual([
      'POST 409',
      'GET 200',
      'PATCH 201',
      `POST ${row.grantStatus}`,
    ]);
  });
});

describe.each(['404', '204'] as const)(
  'revoke of a user who holds nothing (revokeMissing %s)',
  (revokeMissing) => {
    it('counts as done, alone or next to a user who holds a grant', async () => {
      // Prepare
      const { sim, swr } = connect(await start({ revokeMissing }));
      const target = repo('core', 'api/server');

      // Act
      await swr.revoke(target, [idOf('frank')]);
      await swr.revoke(target, [idOf('alice'), idOf('frank')]);

      // Assess
      expect(levelsOf(sim, target)).toEqual({ [idOf('bob')]: 3 });
      expect(exchanges(sim, '/repos/api$server/access')[0]).toBe(
        revokeMissing === '404' ? 'DELETE 404' : 'DELETE 204',
      );
    });
  },
);

describe('permanent failures', () => {
  it.each([
    {
      what: 'getAccess on an unknown repository',
      code: 'SVCSTG.SWR.4040010',
      call: (h: Harness) => h.swr.getAccess(repo('core', 'no/such')),
    },
    {
      what: 'grant on an unknown repository',
      code: 'SVCSTG.SWR.4040010',
      call: (h: Harness) => h.swr.grant(repo('core', 'no/such'), [userAuth('dave', 1)]),
    },
    {
      what: 'revoke on an unknown repository',
      code: 'SVCSTG.SWR.4040010',
      call: (h: Harness) => h.swr.revoke(repo('core', 'no/such'), [idOf('dave')]),
    },
    {
      what: 'getAccess on an unknown namespace',
      code: 'SVCSTG.SWR.4040058',
      call: (h: Harness) => h.swr.getAccess(ns('nowhere')),
    },
  ])('$what is a permanent SwrApiError $code, sent once', async ({ code, call }) => {
    // Prepare
    const harness = connect(await start());
    const { sim } = harness;

    // Act
    const error = await caught(call(harness));

    // Assess
    expect(error).toBeInstanceOf(SwrApiError);
    expect(error).toMatchObject({ status: 404, code, retryable: false, attempts: 1 });
    expect(sim.requestLog()).toHaveLength(1);
  });

  it.each([
    { field: 'repository', call: (h: Harness) => h.swr.getAccess(repo('core', 'API/Server')) },
    { field: 'repository', call: (h: Harness) => h.swr.getAccess(repo('core', 'api//server')) },
    { field: 'repository', call: (h: Harness) => h.swr.grant(repo('core', '../etc'), [userAuth('dave', 1)]) },
    { field: 'namespace', call: (h: Harness) => h.swr.revoke(ns('core%2f'), [idOf('dave')]) },
    { field: 'namespace', call: (h: Harness) => h.swr.listRepositories('1core') },
    { field: 'user_id', call: (h: Harness) => h.swr.revoke(repo('core', 'api/server'), ['ALICE']) },
    {
      field: 'auth',
      call: (h: Harness) =>
        h.swr.grant(repo('core', 'api/server'), [{ ...userAuth('dave', 1), auth: 5 as AuthLevel }]),
    },
    { field: 'user_id', call: (h: Harness) => h.users.findById('../users') },
  ])('an invalid $field never reaches the simulator (#%#)', async ({ field, call }) => {
    // Prepare
    const harness = connect(await start(), passwordAuth);

    // Act
    const error = await caught(call(harness));

    // Assess
    expect(error).toBeInstanceOf(InvalidNameError);
    expect(error).toMatchObject({ field, code: ErrorCodes.invalidName, retryable: false });
    expect(harness.sim.requestCounts()).toEqual({});
  });
});

describe('token expiry', () => {
  it.each([
    { name: 'IAM password', auth: passwordAuth, tokensPerFetch: 1 },
    { name: 'password + agency', auth: agencyAuth, tokensPerFetch: 2 },
  ])('fetches one new token after expireTokens() and the call succeeds ($name)', async (row) => {
    // Prepare
    const sim = await start();
    const { swr } = connect(sim, row.auth);
    const target = repo('core', 'api/worker');
    await swr.getAccess(target);

    // Act
    sim.expireTokens();
    const access = await swr.getAccess(target);
    await swr.grant(target, [userAuth('dave', 1)]);

    // Assess
    expect(access.users).toEqual([userAuth('alice', 3)]);
    expect(levelsOf(sim, target)?.[idOf('dave')]).toBe(1);
    expect(sim.requestCounts()[tokenRoute]).toBe(2 * row.tokensPerFetch);
    expect(exchanges(sim, '/repos/api$worker/access')).toEqual(['GET 200', 'GET 401', 'GET 200', 'POST 201']);
  });
});

describe('transient faults', () => {
  it('succeeds within retries when half of the calls answer 5xx (seeded PRNG)', async () => {
    // Prepare
    const sim = await start({ faults: { error5xxRate: 0.5, seed: 20261123 } });
    const { swr, retries } = connect(sim, tokenAuth, {
      retry: { maxAttempts: 10, baseDelayMs: 5, maxDelayMs: 50 },
    });
    const target = repo('tools', 'lint');
    const people = ['alice', 'bob', 'carol', 'dave', 'erin'];

    // Act
    for (const name of people) await swr.grant(target, [userAuth(name, 1)]);
    await swr.change(target, [userAuth('alice', 7), userAuth('bob', 3)]);
    await swr.revoke(target, [idOf('carol'), idOf('dave')]);
    const access = await swr.getAccess(target);

    // Assess
    const expected = { [idOf('alice')]: 7, [idOf('bob')]: 3, [idOf('erin')]: 1 };
    expect(levelsOf(sim, target)).toEqual(expected);
    expect(Object.fromEntries(access.users.map((u) => [u.user_id, u.auth]))).toEqual(expected);
    const failures = sim.requestLog().filter((entry) => entry.status === 500);
    expect(failures.length).toBeGreaterThan(0);
    expect(retries).toHaveLength(failures.length);
    for (const event of retries) expect(event.code).toBe('SVCSTG.SWR.5000090');
  });

  it.each([
    {
      name: '429 with Retry-After',
      faults: { throttle429Rate: 1, retryAfterSeconds: 1 },
      code: 'APIGW.0308',
      status: 429,
      delayMs: 1000,
    },
    {
      name: '409 system busy',
      faults: { busy409Rate: 1 },
      code: 'SVCSTG.SWR.4090023',
      status: 409,
      delayMs: undefined,
    },
    {
      name: '403 too many requests',
      faults: { tooMany403Rate: 1 },
      code: 'SVCSTG.SWR.4031032',
      status: 403,
      delayMs: undefined,
    },
    {
      name: 'connection reset',
      faults: { resetRate: 1 },
      code: ErrorCodes.network,
      status: 0,
      delayMs: undefined,
    },
    {
      name: 'hanging request (300 ms timeout)',
      faults: { hangRate: 1 },
      code: ErrorCodes.timeout,
      status: 0,
      delayMs: undefined,
    },
  ] satisfies Array<{
    name: string;
    faults: Partial<FaultConfig>;
    code: string;
    status: number;
    delayMs: number | undefined;
  }>)('retries after a $name and then succeeds', async (row) => {
    // Prepare: the fault hits the first attempt only, then the simulator is healthy again.
    const sim = await start({ faults: { ...row.faults, seed: 7 } });
    const { swr, retries, sleeps } = connect(sim, tokenAuth, { timeouts: { requestTimeoutMs: 300 } }, () =>
      sim.setFaults(noFaults),
    );
    const target = repo('core', 'base/node');

    // Act
    await swr.grant(target, [userAuth('erin', 3)]);

    // Assess
    expect(levelsOf(sim, target)).toEqual({ [idOf('erin')]: 3 });
    expect(retries.map((event) => event.code)).toEqual([row.code]);
    expect(exchanges(sim, '/repos/base$node/access')).toEqual([`POST ${row.status}`, 'POST 201']);
    // The first wait is the retry's (a 429 also cuts the adaptive rate, so a wait for the rate
    // limit may follow: these sleeps are shortened, the bucket has no time to refill).
    if (row.delayMs !== undefined) expect(sleeps[0]).toBe(row.delayMs);
    else expect(sleeps[0]).toBeLessThan(50);
  });

  it('gives up on a request that always hangs after its attempts, each bounded by the request timeout', async () => {
    // Prepare
    const sim = await start({ faults: { hangRate: 1, seed: 7 } });
    const { swr } = connect(sim, tokenAuth, {
      timeouts: { requestTimeoutMs: 300 },
      retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 50 },
    });

    // Act
    const error = await caught(swr.getAccess(repo('core', 'api/server')));

    // Assess
    expect(error).toBeInstanceOf(SyncError);
    expect(error).toMatchObject({ code: ErrorCodes.timeout, retryable: true, attempts: 2 });
    expect(sim.requestCounts()[repoAccessRoute]).toBe(2);
  }, 10_000);

  it('stops a hanging request at the deadline even with a long request timeout', async () => {
    // Prepare
    const sim = await start({ faults: { hangRate: 1, seed: 7 } });
    const { swr } = connect(sim, tokenAuth, { timeouts: { requestTimeoutMs: 60_000 } });

    // Act
    const error = await caught(swr.getAccess(repo('core', 'api/server'), { deadline: Date.now() + 400 }));

    // Assess: bounded by the test's own 10 s timeout, far below the 60 s request timeout.
    expect(error).toBeInstanceOf(SyncError);
    expect((error as SyncError).retryable).toBe(true);
    expect([ErrorCodes.timeout, ErrorCodes.deadline]).toContain((error as SyncError).code);
  }, 10_000);
});

describe('repository listing', () => {
  it('pages through a namespace with a small page size', async () => {
    // Prepare
    const sim = await start();
    sim.addRepository('core', 'zz/extra');
    const { swr } = connect(sim, tokenAuth, { pageSize: 2 });

    // Act
    const names = await swr.listRepositories('core');

    // Assess
    expect(names).toEqual(['api/server', 'api/worker', 'base/node', 'web/frontend', 'zz/extra']);
    const pages = sim.requestLog().filter((entry) => entry.route === 'GET /v2/manage/repos');
    expect(pages.map((entry) => new URL(entry.path, 'http://x').searchParams.get('offset'))).toEqual([
      '0',
      '2',
      '4',
    ]);
  });

  it('stops after a full last page once an empty page comes back', async () => {
    // Prepare
    const sim = await start();
    const { swr } = connect(sim, tokenAuth, { pageSize: 2 });

    // Act
    const names = await swr.listRepositories('tools');

    // Assess
    expect(names).toEqual(['ci/runner', 'lint']);
    expect(sim.requestCounts()['GET /v2/manage/repos']).toBe(2);
  });
});

describe('concurrent callers', () => {
  it('share one token: 20 parallel reads with password auth make one token request', async () => {
    // Prepare
    const sim = await start();
    const { swr } = connect(sim, passwordAuth);
    const target = repo('data', 'etl/jobs');

    // Act
    const answers = await Promise.all(Array.from({ length: 20 }, () => swr.getAccess(target)));

    // Assess
    expect(sim.requestCounts()[tokenRoute]).toBe(1);
    expect(sim.requestCounts()[repoAccessRoute]).toBe(20);
    for (const access of answers) expect(access.users).toEqual([userAuth('erin', 3)]);
  });
});
