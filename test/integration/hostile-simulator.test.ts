/**
 * The client against the simulator's hostile modes, over real HTTP on 127.0.0.1: malformed
 * successful answers, gateway errors on SWR and IAM, users deleted, renamed or sharing a name in
 * IAM, writes that lie, the account's request quota, servers that echo credentials, and AK/SK
 * signing of names with spaces. Every promise is checked at the public interface of the client
 * (SwrPermissionsPort, UserDirectoryPort) and against the simulator's own state.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Target, UserAuth } from '../../lib/domain.ts';
import { InvalidNameError } from '../../lib/errors.ts';
import {
  type GatewayVariant,
  loadSeed,
  type MalformedVariant,
  type Simulator,
  type SimulatorOptions,
  startSimulator,
} from '../../lib/sim/index.ts';
import { AmbiguousUserError, AuthError, GatewayError, SwrApiError } from '../../lib/swr/api-errors.ts';
import {
  type AuthConfig,
  createSwrServices,
  type SwrServices,
  type SwrServicesConfig,
  type SwrServicesHooks,
} from '../../lib/swr/index.ts';
import { caught } from '../support/caught.ts';

const seed = loadSeed();
const sa = seed.serviceAccount;
const credential = seed.credentials?.[0];
if (sa.staticToken === undefined || credential === undefined)
  throw new Error('the demo seed needs a static token and AK/SK');

const sims: Simulator[] = [];
const services: SwrServices[] = [];
const closeAll = async (): Promise<void> => {
  await Promise.all(services.splice(0).map((s) => s.close()));
  await Promise.all(sims.splice(0).map((sim) => sim.close()));
};
afterEach(closeAll);
afterAll(closeAll);

const idOf = (name: string): string => {
  const user = seed.users.find((u) => u.name === name);
  if (user === undefined) throw new Error(`no seeded user ${name}`);
  return user.id;
};

const server: Target = { kind: 'repo', namespace: 'core', repository: 'api/server' };
const node: Target = { kind: 'repo', namespace: 'core', repository: 'base/node' };
const frank: UserAuth = { user_id: idOf('frank'), user_name: 'frank', auth: 1 };

const tokenAuth: AuthConfig = { kind: 'token', token: sa.staticToken };
const passwordAuth: AuthConfig = {
  kind: 'password',
  domain: seed.account.name,
  user: sa.name,
  password: sa.password,
  project: seed.project.name,
};
const akskAuth = (domainId: string | undefined = seed.account.id): AuthConfig => ({
  kind: 'aksk',
  ak: credential.ak,
  sk: credential.sk,
  projectId: seed.project.id,
  domainId,
});

const start = async (options: SimulatorOptions = {}): Promise<Simulator> => {
  const sim = await startSimulator({ seed, ...options });
  sims.push(sim);
  return sim;
};

/** A client on `sim` whose retry waits last at most 2 ms. */
const connect = (
  sim: Simulator,
  auth: AuthConfig = tokenAuth,
  config: Partial<SwrServicesConfig> = {},
  hooks: SwrServicesHooks = {},
): SwrServices => {
  const built = createSwrServices(
    {
      swrEndpoint: sim.swrUrl,
      iamEndpoint: sim.iamUrl,
      auth,
      retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
      ...config,
    },
    { sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.min(ms, 2))), ...hooks },
  );
  services.push(built);
  return built;
};

const statusesOf = (sim: Simulator, part: string): number[] =>
  sim
    .requestLog()
    .filter((entry) => entry.path.includes(part))
    .map((entry) => entry.status);

describe('malformed successful answers are failed reads', () => {
  const accessVariants: MalformedVariant[] = [
    'others-missing',
    'others-null',
    'others-not-array',
    'auth-string',
    'auth-unknown',
    'user-id-number',
    'user-id-missing',
    'html',
    'truncated',
    'empty',
    'plain-text',
  ];

  it.each(accessVariants)(
    'GET access answered %s → INVALID_RESPONSE after every attempt',
    async (variant) => {
      // Prepare
      const sim = await start({
        faults: { failTargets: [{ target: 'core/api/server', malformed: variant }] },
      });
      const { swr } = connect(sim);

      // Act
      const error = await caught(swr.getAccess(server));

      // Assess
      expect(error).toBeInstanceOf(SwrApiError);
      expect(error).toMatchObject({ code: 'INVALID_RESPONSE', retryable: true, attempts: 3 });
      expect(statusesOf(sim, 'api$server')).toEqual([200, 200, 200]);
    },
  );

  it('reads the truth once the answer is right again (a rule spent after one time)', async () => {
    // Prepare
    const sim = await start({
      faults: { failTargets: [{ target: 'core/api/server', malformed: 'others-null', times: 1 }] },
    });
    const { swr } = connect(sim);

    // Act
    const access = await swr.getAccess(server);

    // Assess
    expect(access.users.map((u) => u.user_id).sort()).toEqual([idOf('alice'), idOf('bob')].sort());
  });

  it.each([
    'list-not-array',
    'list-name-missing',
    'list-name-number',
    'html',
    'truncated',
    'empty',
  ] as MalformedVariant[])(
    'a repository list answered %s → INVALID_RESPONSE, never "no repositories"',
    async (variant) => {
      // Prepare
      const sim = await start({ faults: { failTargets: [{ kind: 'list', malformed: variant }] } });
      const { swr } = connect(sim);

      // Act
      const error = await caught(swr.listRepositories('core'));

      // Assess
      expect(error).toMatchObject({ code: 'INVALID_RESPONSE', retryable: true });
    },
  );

  it('malformedRate breaks answers by seeded dice; every read either is right or fails', async () => {
    // Prepare
    const sim = await start({ faults: { malformedRate: 0.5, seed: 11 } });
    const { swr } = connect(sim, tokenAuth, { retry: { maxAttempts: 1 } });
    const truth = [idOf('alice'), idOf('bob')].sort();

    // Act
    const outcomes = await Promise.all(
      Array.from({ length: 30 }, () =>
        swr.getAccess(server).then(
          (access) => access.users.map((u) => u.user_id).sort(),
          (error: unknown) => (error as SwrApiError).code,
        ),
      ),
    );

    // Assess
    expect(outcomes.filter((o) => o === 'INVALID_RESPONSE').length).toBeGreaterThan(3);
    expect(outcomes.filter((o) => Array.isArray(o)).length).toBeGreaterThan(3);
    for (const outcome of outcomes) if (Array.isArray(outcome)) expect(outcome).toEqual(truth);
  });
});

describe('gateway errors', () => {
  it.each([
    ['not-published', GatewayError, true],
    ['throttled', SwrApiError, true],
    ['bad-gateway', SwrApiError, true],
    ['unavailable', SwrApiError, true],
    ['gateway-timeout', SwrApiError, true],
    ['unauthorized', AuthError, false],
  ] as Array<[GatewayVariant, typeof SwrApiError, boolean]>)(
    'SWR behind a gateway answering %s: %s, retryable %s',
    async (gateway, type, retryable) => {
      // Prepare
      const sim = await start({ faults: { failTargets: [{ target: 'core/api/server', gateway }] } });
      const { swr } = connect(sim);

      // Act
      const error = await caught(swr.revoke(server, [idOf('alice')]));

      // Assess: never "already revoked", and alice still holds her grant.
      expect(error).toBeInstanceOf(type);
      expect(error).toMatchObject({ retryable });
      expect(sim.permissions().repos['core/api/server']?.[idOf('alice')]).toBe(3);
    },
  );

  it('an IAM user look-up answered 404 APIGW.0101 is a gateway error naming IAM_ENDPOINT, never "no such user"', async () => {
    // Prepare
    const sim = await start({
      faults: { failTargets: [{ kind: 'iam', target: `users/${idOf('alice')}`, gateway: 'not-published' }] },
    });
    const { users } = connect(sim);

    // Act
    const error = await caught(users.findById(idOf('alice')));

    // Assess
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ retryable: true, code: 'APIGW.0101' });
    expect((error as Error).message).toContain('check IAM_ENDPOINT');
  });

  it('an IAM look-up answered by a proxy page (502) is retryable', async () => {
    // Prepare
    const sim = await start({
      faults: {
        failTargets: [{ kind: 'iam', target: 'users?name=alice', gateway: 'bad-gateway', times: 1 }],
      },
    });
    const { users } = connect(sim);

    // Act
    const alice = await users.findByName('alice');

    // Assess: the second attempt got through.
    expect(alice).toEqual({ id: idOf('alice'), name: 'alice' });
  });
});

describe('IAM identity changes', () => {
  it('a deleted user is "no such user" (the documented IAM.0004 answer) while its grants stay in SWR', async () => {
    // Prepare
    const sim = await start();
    const { users, swr } = connect(sim);
    sim.deleteUser(idOf('alice'));

    // Act
    const found = await users.findById(idOf('alice'));
    const access = await swr.getAccess(server);
    await swr.revoke(server, [idOf('alice')]);

    // Assess
    expect(found).toBeUndefined();
    expect(access.users.map((u) => u.user_id)).toContain(idOf('alice'));
    expect(sim.permissions().repos['core/api/server']?.[idOf('alice')]).toBeUndefined();
  });

  it('a renamed user: a grant with the old name is refused (4001066), the new name works', async () => {
    // Prepare
    const sim = await start();
    const { users, swr } = connect(sim);
    sim.renameUser(idOf('frank'), 'frank.new');

    // Act
    const stale = await caught(swr.grant(node, [frank]));
    const current = await users.findById(idOf('frank'));
    await swr.grant(node, [{ ...frank, user_name: current?.name ?? '' }]);

    // Assess
    expect(stale).toMatchObject({ code: 'SVCSTG.SWR.4001066', retryable: false, status: 400 });
    expect(current).toEqual({ id: idOf('frank'), name: 'frank.new' });
    expect(sim.permissions().repos['core/base/node']).toEqual({ [idOf('frank')]: 1 });
  });

  it('strictUserNames off: SWR takes the name it is given', async () => {
    // Prepare
    const sim = await start({ strictUserNames: false });
    const { swr } = connect(sim);
    sim.renameUser(idOf('frank'), 'frank.new');

    // Act
    await swr.grant(node, [frank]);

    // Assess
    expect(sim.permissions().repos['core/base/node']).toEqual({ [idOf('frank')]: 1 });
  });

  it('a grant to a user IAM does not know fails as a whole (4001067), nobody is granted', async () => {
    // Prepare
    const sim = await start();
    const { swr } = connect(sim);
    const stranger: UserAuth = { user_id: 'e'.repeat(32), user_name: 'stranger', auth: 1 };

    // Act
    const error = await caught(swr.grant(node, [frank, stranger]));

    // Assess
    expect(error).toMatchObject({ code: 'SVCSTG.SWR.4001067', retryable: false });
    expect(sim.permissions().repos['core/base/node']).toEqual({});
  });

  it('two IAM users with one name: findByName refuses with AmbiguousUserError, by id both resolve', async () => {
    // Prepare
    const sim = await start();
    const { users } = connect(sim);
    const twin = sim.addUser({ name: 'alice' });

    // Act
    const error = await caught(users.findByName('alice'));
    const again = await caught(users.findByName('alice'));
    const [first, second] = await Promise.all([users.findById(idOf('alice')), users.findById(twin.id)]);

    // Assess
    expect(error).toBeInstanceOf(AmbiguousUserError);
    expect(error).toMatchObject({ code: 'AMBIGUOUS_USER', retryable: false, matches: 2 });
    expect(again).toBeInstanceOf(AmbiguousUserError);
    expect([first?.name, second?.name]).toEqual(['alice', 'alice']);
    expect(sim.iamUsers('alice')).toHaveLength(2);
  });

  it('a seed may hold two users with one name', async () => {
    // Prepare
    const twins = structuredClone(seed);
    twins.users.push({ id: 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0', name: 'bob' });
    const sim = await startSimulator({ seed: twins });
    sims.push(sim);
    const { users } = connect(sim);

    // Act
    const error = await caught(users.findByName('bob'));

    // Assess
    expect(error).toBeInstanceOf(AmbiguousUserError);
  });
});

describe('writes that lie', () => {
  it('a ghost write: 2xx, nothing changed — only a read-back shows it', async () => {
    // Prepare
    const sim = await start({
      faults: { failTargets: [{ target: 'core/base/node', method: 'POST', lie: 'ghost' }] },
    });
    const { swr } = connect(sim);

    // Act
    await swr.grant(node, [frank]);
    const after = await swr.getAccess(node);

    // Assess
    expect(sim.permissions().repos['core/base/node']).toEqual({});
    expect(after.users).toEqual([]);
  });

  it.each([
    ['html-not-applied', {}],
    ['html-applied', { [idOf('frank')]: 1 }],
  ] as const)(
    'a write answered 2xx with an HTML page (%s) is INVALID_RESPONSE, retryable',
    async (lie, state) => {
      // Prepare
      const sim = await start({
        faults: { failTargets: [{ target: 'core/base/node', method: 'POST', lie }] },
      });
      const { swr } = connect(sim, tokenAuth, { retry: { maxAttempts: 1 } });

      // Act
      const error = await caught(swr.grant(node, [frank]));

      // Assess
      expect(error).toMatchObject({ code: 'INVALID_RESPONSE', retryable: true, method: 'POST' });
      expect(sim.permissions().repos['core/base/node']).toEqual(state);
    },
  );

  it('ghostWriteRate lies by seeded dice, on writes only', async () => {
    // Prepare
    const sim = await start({ faults: { ghostWriteRate: 1, seed: 3 } });
    const { swr } = connect(sim);

    // Act
    await swr.revoke(server, [idOf('alice')]);
    const access = await swr.getAccess(server);

    // Assess
    expect(access.users.map((u) => u.user_id)).toContain(idOf('alice'));
  });
});

describe('request quota', () => {
  /** One clock for simulator and client: waits move it, nothing waits for real. */
  const sharedClock = () => {
    const clock = { now: Date.UTC(2026, 0, 1) };
    return {
      clock,
      hooks: {
        now: () => clock.now,
        sleep: async (ms: number) => {
          clock.now += ms;
        },
      },
    };
  };

  it('past the quota the gateway answers 429 APIGW.0308', async () => {
    // Prepare
    const { clock, hooks } = sharedClock();
    const sim = await start({
      now: () => clock.now,
      faults: { quota: { ratePerSecond: 2, burst: 3, retryAfterSeconds: 1 } },
    });
    const { swr } = connect(
      sim,
      tokenAuth,
      { retry: { maxAttempts: 1 }, rateLimit: { ratePerSecond: 1000, burst: 1000 } },
      hooks,
    );

    // Act
    const outcomes = await Promise.allSettled(Array.from({ length: 6 }, () => swr.getAccess(server)));

    // Assess
    const refused = outcomes
      .filter((o) => o.status === 'rejected')
      .map((o) => (o as PromiseRejectedResult).reason);
    expect(refused).toHaveLength(3);
    for (const error of refused)
      expect(error).toMatchObject({ code: 'APIGW.0308', status: 429, retryable: true, retryAfterMs: 1000 });
  });

  it('the client rate limit keeps a busy instance inside the same quota: no 429', async () => {
    // Prepare
    const { clock, hooks } = sharedClock();
    const waits: number[] = [];
    const sim = await start({ now: () => clock.now, faults: { quota: { ratePerSecond: 5, burst: 2 } } });
    const { swr } = connect(
      sim,
      tokenAuth,
      { retry: { maxAttempts: 1 }, rateLimit: { ratePerSecond: 5, burst: 2 } },
      { ...hooks, onRateLimitWait: (wait) => waits.push(wait.waitMs) },
    );

    // Act
    for (let i = 0; i < 12; i += 1) await swr.getAccess(server);

    // Assess
    expect(statusesOf(sim, 'api$server').every((status) => status === 200)).toBe(true);
    expect(waits).toHaveLength(10);
  });

  it.each([
    [true, 1, 20],
    [false, 150, 400],
  ])(
    'an instance allowed 20 req/s under a 5 req/s quota (adaptive: %s) answers 429 between %i and %i times',
    async (adaptive, least, most) => {
      // Prepare: 80 reads one after another, each with 4 attempts; the clock moves only with waits.
      const { clock, hooks } = sharedClock();
      const cuts: number[] = [];
      const sim = await start({ now: () => clock.now, faults: { quota: { ratePerSecond: 5, burst: 5 } } });
      const { swr } = connect(
        sim,
        tokenAuth,
        {
          retry: { maxAttempts: 4, baseDelayMs: 50, maxDelayMs: 400 },
          rateLimit: { ratePerSecond: 20, burst: 10, adaptive },
        },
        { ...hooks, random: () => 0.5, onRateCut: (cut) => cuts.push(cut.toPerSecond) },
      );

      // Act
      const outcomes = [];
      for (let i = 0; i < 80; i += 1)
        outcomes.push(
          await swr.getAccess(server).then(
            () => 'ok',
            (error) => error,
          ),
        );

      // Assess: the gateway's own count of 429s; the adaptive instance settles near the quota.
      const throttled = statusesOf(sim, 'api$server').filter((status) => status === 429).length;
      expect(throttled).toBeGreaterThanOrEqual(least);
      expect(throttled).toBeLessThanOrEqual(most);
      if (adaptive) {
        expect(outcomes.every((outcome) => outcome === 'ok')).toBe(true);
        expect(Math.min(...cuts)).toBeLessThanOrEqual(5);
      } else expect(cuts).toEqual([]);
    },
  );

  it('setFaults turns the quota on at run time', async () => {
    // Prepare
    const { clock, hooks } = sharedClock();
    const sim = await start({ now: () => clock.now });
    const { swr } = connect(sim, tokenAuth, { retry: { maxAttempts: 1 } }, hooks);
    await swr.getAccess(server);

    // Act
    sim.setFaults({ quota: { ratePerSecond: 1, burst: 1 } });
    await swr.getAccess(server);
    const error = await caught(swr.getAccess(server));

    // Assess
    expect(error).toMatchObject({ code: 'APIGW.0308' });
  });
});

describe('servers that echo credentials', () => {
  it.each([
    ['a static token', tokenAuth, [sa.staticToken]],
    ['an IAM token', passwordAuth, []],
    ['AK/SK', akskAuth(), [credential.sk]],
  ] as Array<[string, AuthConfig, string[]]>)(
    'an SWR error quoting the request (%s) carries no secret',
    async (_kind, auth, secrets) => {
      // Prepare
      const sim = await start({
        faults: { failTargets: [{ target: 'core/api/server', echo: true, status: 400 }] },
      });
      const { swr } = connect(sim, auth);

      // Act
      const error = (await caught(swr.getAccess(server))) as Error;

      // Assess
      expect(error.message).toContain('request refused');
      expect(error.message).not.toMatch(/MIIsim/);
      expect(error.message).not.toMatch(/Signature=[0-9a-f]{16}/);
      for (const secret of secrets) expect(error.message).not.toContain(secret);
    },
  );

  it('IAM quoting the password body of a token request: the password never reaches the error', async () => {
    // Prepare
    const sim = await start({
      faults: { failTargets: [{ kind: 'iam', target: 'tokens', echo: true, status: 401, code: 'IAM.0001' }] },
    });
    const { swr } = connect(sim, passwordAuth);

    // Act
    const error = (await caught(swr.getAccess(server))) as Error;

    // Assess
    expect(error).toBeInstanceOf(AuthError);
    expect(error.message).toContain('request refused');
    expect(error.message).not.toContain(sa.password);
  });
});

describe('AK/SK against the simulator', () => {
  it('looks up "John Smith" by name: a space in the query signs and verifies', async () => {
    // Prepare
    const sim = await start();
    const john = sim.addUser({ name: 'John Smith' });
    const plus = sim.addUser({ name: 'a+b' });
    const { users } = connect(sim, akskAuth());

    // Act
    const found = await users.findByName('John Smith');
    const foundPlus = await users.findByName('a+b');
    const again = await users.findByName('bob');

    // Assess: three signed look-ups, none refused (so the key was never locked).
    expect(found).toEqual(john);
    expect(foundPlus).toEqual(plus);
    expect(again).toEqual({ id: idOf('bob'), name: 'bob' });
    expect(statusesOf(sim, '/v3/users')).toEqual([200, 200, 200]);
  });

  it('IAM refuses a call naming another account in X-Domain-Id (401 APIGW.0301)', async () => {
    // Prepare
    const sim = await start();
    const { users } = connect(sim, akskAuth('f'.repeat(32)));

    // Act
    const error = await caught(users.findById(idOf('alice')));

    // Assess
    expect(error).toBeInstanceOf(AuthError);
    expect(error).toMatchObject({ code: 'APIGW.0301', status: 401 });
  });

  it('SWR calls under AK/SK need no X-Domain-Id', async () => {
    // Prepare
    const sim = await start();
    const { swr } = connect(sim, akskAuth());

    // Act
    const access = await swr.getAccess(server);

    // Assess
    expect(access.selfUserId).toBe(sa.id);
  });
});

describe('names the client refuses before SWR could', () => {
  it.each([' frank', 'frank ', 'fr\u0085ank', 'fr\u0000ank'])(
    'user_name %j never leaves the process',
    async (name) => {
      // Prepare
      const sim = await start();
      const { swr } = connect(sim);

      // Act
      const error = await caught(swr.grant(node, [{ ...frank, user_name: name }]));

      // Assess
      expect(error).toBeInstanceOf(InvalidNameError);
      expect(statusesOf(sim, 'base$node')).toEqual([]);
    },
  );
});
