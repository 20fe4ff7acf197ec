/**
 * The defects an adversarial test run found (issue 9), each replayed at a public interface: the
 * pipeline (`processRecords`, as the SQS handlers run it) with the real undici client against the
 * simulator, or the CLI. Every test here failed before its fix.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../../lib/cli/io.ts';
import { main } from '../../lib/cli/main.ts';
import { loadPolicyFile } from '../../lib/core/policy.ts';
import type { Policy, UserDirectoryPort } from '../../lib/domain.ts';
import { simulatorServices } from '../../lib/local/sim-services.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { createMemorySweepProgress } from '../../lib/offboarding/progress.ts';
import {
  type PipelineDeps,
  type PipelineRecord,
  type PipelineSettings,
  processRecords,
} from '../../lib/pipeline.ts';
import { loadSeed, type Simulator, type SimulatorSeed, startSimulator } from '../../lib/sim/index.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import type { SwrServices } from '../../lib/swr/index.ts';
import { memoryDlq } from '../support/memory-dlq.ts';

const users = {
  alice: 'a11ce000000000000000000000000001',
  bob: 'b0b00000000000000000000000000002',
  frank: 'f2a4c000000000000000000000000006',
  ghost: 'deadbeef00000000000000000000dead',
} as const;

const policyFile = 'config/demo-policy.yaml';
let policy: Policy;

beforeAll(async () => {
  policy = await loadPolicyFile(policyFile);
});

interface Harness {
  sim: Simulator;
  services: SwrServices;
  deps: PipelineDeps;
  dlq: ReturnType<typeof memoryDlq>;
  telemetry: ReturnType<typeof createMemoryTelemetry>;
}

const harnesses: Harness[] = [];

const harnessFactory = async (
  options: { seed?: SimulatorSeed; latencyMs?: number; directory?: UserDirectoryPort } = {},
): Promise<Harness> => {
  const sim = await startSimulator({
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.latencyMs === undefined ? {} : { latencyMs: options.latencyMs }),
  });
  const services = simulatorServices(sim, {
    retry: { baseDelayMs: 5, maxDelayMs: 20 },
    // The per-instance quota is another test's subject; here it would only make the sweep slow.
    rateLimit: { ratePerSecond: 5_000, burst: 5_000 },
  });
  const telemetry = createMemoryTelemetry();
  const dlq = memoryDlq();
  const deps: PipelineDeps = {
    swr: services.swr,
    directory: options.directory ?? services.users,
    store: createMemoryStore(),
    policy,
    deadLetters: dlq,
    log: telemetry.log,
    metrics: telemetry.metrics,
    sweepProgress: createMemorySweepProgress(),
    now: () => new Date(),
  };
  const harness = { sim, services, deps, dlq, telemetry };
  harnesses.push(harness);
  return harness;
};

afterEach(async () => {
  for (const harness of harnesses.splice(0)) {
    await harness.services.close();
    await harness.sim.close();
  }
});

const settings: PipelineSettings = { actor: 'sync', concurrency: 4, dryRun: false, maxReceiveCount: 5 };

let counter = 0;
const recordOf = (event: Record<string, unknown>, receiveCount = 1): PipelineRecord => {
  counter += 1;
  return {
    messageId: `m-${counter}`,
    groupId: String(
      (event.user as { id?: string; name?: string }).id ?? (event.user as { name: string }).name,
    ),
    receiveCount,
    body: JSON.stringify(event),
  };
};

const minutesAgo = (minutes: number): string => new Date(Date.now() - minutes * 60_000).toISOString();

const join = (user: Record<string, string>, team: string) => ({
  id: `join-${JSON.stringify(user)}-${team}`,
  type: 'membership.added',
  occurredAt: minutesAgo(5),
  user,
  team,
});

const offboarding = (user: Record<string, string>, extra: Record<string, unknown> = {}) => ({
  id: `off-${JSON.stringify(user)}`,
  type: 'user.offboarded',
  occurredAt: minutesAgo(1),
  user,
  ...extra,
});

const holdings = (sim: Simulator, userId: string): Record<string, number> => {
  const snapshot = sim.permissions();
  const held: Record<string, number> = {};
  for (const [key, grants] of [...Object.entries(snapshot.repos), ...Object.entries(snapshot.namespaces)])
    if (grants[userId] !== undefined) held[key] = grants[userId];
  return held;
};

describe('1. a future-dated offboarding changes nothing until it takes effect', () => {
  it('leaves every grant of a user the store does not know, and keeps the offboarding pending', async () => {
    // Prepare: bob holds write on core/api/server (seed); nobody told the store about him yet.
    const { sim, deps } = await harnessFactory();
    const before = holdings(sim, users.bob);
    const leaveDay = new Date(Date.now() + 15 * 24 * 60 * 60 * 1000).toISOString();

    // Act
    const report = await processRecords(
      [recordOf(offboarding({ id: users.bob }, { effectiveAt: leaveDay }))],
      deps,
      settings,
      Date.now() + 60_000,
    );

    // Assess
    expect(report.applied).toHaveLength(1);
    expect(report.changes).toEqual([]);
    expect(holdings(sim, users.bob)).toEqual(before);
    expect(Object.keys(before).length).toBeGreaterThan(0);
    expect((await deps.store.get(users.bob))?.pending?.map((event) => event.type)).toEqual([
      'user.offboarded',
    ]);
  });
});

describe('2. one bad user never fails another user coalesced into the same call', () => {
  it('refuses a user name with a trailing space at parse, with the rule, and grants the good join', async () => {
    // Prepare
    const { sim, deps, dlq } = await harnessFactory();
    const good = recordOf(join({ id: users.frank }, 'data'));
    const bad = recordOf(join({ id: users.alice, name: 'alice ' }, 'data'));

    // Act
    const report = await processRecords([good, bad], deps, settings, Date.now() + 60_000);

    // Assess
    expect(report.applied).toEqual([good.messageId]);
    expect(holdings(sim, users.frank)['data/etl/jobs']).toBe(3);
    expect(dlq.letters.map((letter) => [letter.messageId, letter.error.code])).toEqual([
      [bad.messageId, 'SCHEMA'],
    ]);
    expect(dlq.letters[0]?.error.message).toMatch(/whitespace/);
    expect(dlq.letters[0]?.error.message).toContain('user.name');
  });

  it('splits a POST that SWR refuses for one unknown user id: the other user is granted, the bad one fails alone', async () => {
    // Prepare: the directory vouches for a user that SWR's IAM does not know (400 on POST).
    const directory: UserDirectoryPort = {
      findById: async (id) => ({ id, name: id === users.ghost ? 'ghost' : 'frank' }),
      findByName: async () => undefined,
    };
    const { sim, deps, dlq } = await harnessFactory({ directory });
    const good = recordOf(join({ id: users.frank }, 'data'));
    const bad = recordOf(join({ id: users.ghost }, 'data'));

    // Act
    const report = await processRecords([good, bad], deps, settings, Date.now() + 60_000);

    // Assess
    expect(report.applied).toEqual([good.messageId]);
    expect(holdings(sim, users.frank)).toMatchObject({ 'data/etl/jobs': 3, 'data/warehouse/loader': 3 });
    expect(dlq.letters.map((letter) => letter.messageId)).toEqual([bad.messageId]);
    expect(dlq.letters[0]?.error.code).toMatch(/^SVCSTG\.SWR\.400/);
  });
});

describe('3. a read that is not the documented shape is a failed read, never "nobody"', () => {
  it.each([
    'others-missing',
    'others-null',
    'others-not-array',
    'auth-string',
    'user-id-missing',
    'html',
    'truncated',
    'empty',
    'plain-text',
  ] as const)(
    'an offboarding whose read comes back %s is retried, and the user keeps nothing once it is applied',
    async (malformed) => {
      // Prepare: bob holds write on core/api/server; every read of it is garbled in the first delivery.
      const { sim, deps } = await harnessFactory();
      sim.setFaults({ failTargets: [{ target: 'core/api/server', method: 'GET', malformed }] });
      const message = offboarding({ id: users.bob });

      // Act
      const first = await processRecords([recordOf(message, 1)], deps, settings, Date.now() + 60_000);
      sim.setFaults({ failTargets: [] });
      const second = await processRecords([recordOf(message, 2)], deps, settings, Date.now() + 60_000);

      // Assess: never "applied" while bob still held write there.
      expect(first.applied).toEqual([]);
      expect(first.retried[0]?.error).toMatchObject({ retryable: true });
      expect(second.applied).toHaveLength(1);
      expect(holdings(sim, users.bob)).toEqual({});
    },
  );
});

describe('verified writes: a 2xx is not proof', () => {
  it.each(['ghost', 'html-not-applied'] as const)(
    'a write that says 2xx but did nothing (%s) is written again, and the join is applied only when SWR shows it',
    async (lie) => {
      // Prepare
      const { sim, deps } = await harnessFactory();
      sim.setFaults({ failTargets: [{ target: 'data/etl/jobs', method: 'POST', lie, times: 1 }] });

      // Act
      const report = await processRecords(
        [recordOf(join({ id: users.frank }, 'data'))],
        deps,
        settings,
        Date.now() + 60_000,
      );

      // Assess
      expect(report.applied).toHaveLength(1);
      expect(holdings(sim, users.frank)['data/etl/jobs']).toBe(3);
    },
  );

  it('a write that never shows is retried by SQS with the reason, never reported applied', async () => {
    // Prepare
    const { sim, deps } = await harnessFactory();
    sim.setFaults({ failTargets: [{ target: 'data/etl/jobs', method: 'POST', lie: 'ghost' }] });

    // Act
    const report = await processRecords(
      [recordOf(join({ id: users.frank }, 'data'))],
      deps,
      settings,
      Date.now() + 60_000,
    );

    // Assess
    expect(report.applied).toEqual([]);
    expect(report.retried[0]?.error).toMatchObject({
      code: 'WRITE_NOT_EFFECTIVE',
      retryable: true,
      target: 'data/etl/jobs',
    });
    expect(holdings(sim, users.frank)['data/etl/jobs']).toBeUndefined();
  });
});

describe('an offboarding is proven in the trail', () => {
  it('logs the proof: when, and how many targets were read back empty', async () => {
    // Prepare
    const { deps, telemetry } = await harnessFactory();

    // Act
    await processRecords([recordOf(offboarding({ id: users.bob }))], deps, settings, Date.now() + 60_000);

    // Assess
    const proof = telemetry.lines.find((line) => line.message === 'offboarding proven');
    expect(proof).toMatchObject({ userId: users.bob, proof: true });
    expect(proof?.checked).toBeGreaterThan(10);
  });
});

describe('5 and 6. IAM answers that are not "no such user"', () => {
  it('a gateway 404 on an IAM look-up is retried with a reason that points at IAM_ENDPOINT, not dead-lettered as UNKNOWN_USER', async () => {
    // Prepare
    const { sim, deps, dlq } = await harnessFactory();
    sim.setFaults({ failTargets: [{ kind: 'iam', method: 'GET', gateway: 'not-published' }] });

    // Act
    const report = await processRecords(
      [recordOf(join({ id: users.frank }, 'data'))],
      deps,
      settings,
      Date.now() + 60_000,
    );

    // Assess
    expect(dlq.letters).toEqual([]);
    expect(report.retried[0]?.error).toMatchObject({ retryable: true });
    expect(report.retried[0]?.error.code).not.toBe('UNKNOWN_USER');
    expect(report.retried[0]?.error.message).toContain('IAM_ENDPOINT');
  });

  it('a join by a name two IAM users share is dead-lettered as ambiguous; nobody is granted', async () => {
    // Prepare
    const { sim, deps, dlq } = await harnessFactory();
    sim.addUser({ name: 'frank' });
    const before = sim.permissions();

    // Act
    const report = await processRecords(
      [recordOf(join({ name: 'frank' }, 'security'))],
      deps,
      settings,
      Date.now() + 60_000,
    );

    // Assess
    expect(report.applied).toEqual([]);
    expect(dlq.letters[0]?.error).toMatchObject({ code: 'AMBIGUOUS_USER', retryable: false });
    expect(sim.permissions()).toEqual(before);
  });

  it('a join refused because IAM renamed the user after we cached the name is retried, and then granted', async () => {
    // Prepare: frank's name is cached by a first join; then IAM renames him.
    const { sim, deps } = await harnessFactory();
    await processRecords(
      [recordOf(join({ id: users.frank }, 'security'))],
      deps,
      settings,
      Date.now() + 60_000,
    );
    sim.renameUser(users.frank, 'frank-new');
    const message = join({ id: users.frank }, 'data');

    // Act
    const first = await processRecords([recordOf(message, 1)], deps, settings, Date.now() + 60_000);
    const second = await processRecords([recordOf(message, 2)], deps, settings, Date.now() + 60_000);

    // Assess
    expect(first.retried[0]?.error).toMatchObject({ code: 'SVCSTG.SWR.4001066', retryable: true });
    expect(first.deadLettered).toEqual([]);
    expect(second.applied).toHaveLength(1);
    expect(holdings(sim, users.frank)['data/etl/jobs']).toBe(3);
  });

  it('a join for a user IAM renamed grants under the name IAM has now', async () => {
    // Prepare: the event still carries the old name; SWR only accepts IAM's current one.
    const { sim, deps } = await harnessFactory();
    sim.renameUser(users.frank, 'frank-renamed');

    // Act
    const report = await processRecords(
      [recordOf(join({ id: users.frank, name: 'frank' }, 'data'))],
      deps,
      settings,
      Date.now() + 60_000,
    );

    // Assess
    expect(report.applied).toHaveLength(1);
    expect(holdings(sim, users.frank)['data/etl/jobs']).toBe(3);
  });
});

describe('4. an offboarding never needs IAM', () => {
  it('revokes every grant of a user IAM already deleted, by id alone', async () => {
    // Prepare: a user IAM does not know (deleted) still holds grants, in the policy and by hand.
    const { sim, deps } = await harnessFactory();
    sim.setPermission({ kind: 'repo', namespace: 'core', repository: 'api/server' }, users.ghost, 3);
    sim.setPermission({ kind: 'repo', namespace: 'tools', repository: 'lint' }, users.ghost, 1);

    // Act
    const report = await processRecords(
      [recordOf(offboarding({ id: users.ghost }))],
      deps,
      settings,
      Date.now() + 60_000,
    );

    // Assess
    expect(report.applied).toHaveLength(1);
    expect(holdings(sim, users.ghost)).toEqual({});
    expect(report.proofs.map((proof) => proof.userId)).toEqual([users.ghost]);
  });
});

describe('12. a large managed namespace never makes an offboarding impossible', () => {
  it('revokes the known grants in the first delivery and finishes the sweep over later ones', async () => {
    // Prepare: 1,500 repositories in core; bob holds a hand-made grant on the last one; every
    // request takes 10 ms and a delivery has 3 s (1 s of it kept back to save the progress), too
    // short to read 1,500 repositories at 8 in flight.
    const seed = loadSeed();
    const core = seed.namespaces.find((ns) => ns.name === 'core');
    for (let i = 0; i < 1500; i += 1)
      core?.repositories.push({ name: `bulk/r${String(i).padStart(4, '0')}` });
    const { sim, deps } = await harnessFactory({ seed, latencyMs: 10 });
    sim.setPermission({ kind: 'repo', namespace: 'core', repository: 'bulk/r1499' }, users.bob, 1);
    await deps.store.apply({ id: users.bob, name: 'bob' }, [
      {
        id: 'bob-backend',
        type: 'membership.added',
        occurredAt: minutesAgo(60),
        user: { id: users.bob, name: 'bob' },
        team: 'backend',
      },
    ]);
    const message = offboarding({ id: users.bob });

    // Act
    const deliveries: string[] = [];
    let first: Record<string, number> | undefined;
    // Receives are not limited here: this is about progress; the queue's limit is another test's.
    for (let receive = 1; receive <= 20; receive += 1) {
      const report = await processRecords(
        [recordOf(message, receive)],
        deps,
        { ...settings, maxReceiveCount: 100, sweepConcurrency: 8 },
        Date.now() + 3_000,
      );
      first ??= holdings(sim, users.bob);
      deliveries.push(
        report.applied.length === 1 ? 'applied' : (report.retried[0]?.error.code ?? 'dead-lettered'),
      );
      if (report.applied.length === 1) break;
    }

    // Assess
    expect(first?.['core/api/server']).toBeUndefined();
    expect(first?.['data/etl/jobs']).toBeUndefined();
    expect(deliveries.at(-1)).toBe('applied');
    expect(deliveries.length).toBeGreaterThan(1);
    expect(deliveries).toContain('SWEEP_IN_PROGRESS');
    expect(holdings(sim, users.bob)).toEqual({});
    // Each delivery went on from the last: the repositories were read about once, not once per delivery.
    const repoReads = sim.requestCounts()['GET /v2/manage/namespaces/{ns}/repos/{repo}/access'] ?? 0;
    expect(repoReads).toBeLessThan(1500 * 1.5);
  });
});

describe('9 and 10. the CLI', () => {
  let sim: Simulator;
  let dir: string;

  beforeEach(async () => {
    sim = await startSimulator();
    dir = await mkdtemp(joinPath(tmpdir(), 'swr-access-trust-'));
  });

  afterEach(async () => {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  });

  const env = (extra: Record<string, string> = {}): Record<string, string> => ({
    SWR_ENDPOINT: sim.swrUrl,
    IAM_ENDPOINT: sim.iamUrl,
    SWR_AUTH_TOKEN: sim.seed.serviceAccount.staticToken ?? '',
    POLICY_FILE: policyFile,
    RETRY_MAX_ATTEMPTS: '1',
    ...extra,
  });

  const run = async (argv: string[], environment: Record<string, string>) => {
    const out: string[] = [];
    const err: string[] = [];
    const io: Partial<CliIo> = {
      stdout: { write: (text: string) => out.push(text) },
      stderr: { write: (text: string) => err.push(text) },
      env: environment,
    };
    const code = await main(argv, io);
    return { code, stdout: out.join(''), stderr: err.join('') };
  };

  it('9. plan with a token SWR refuses reports failures and exits 1, never "applied"', async () => {
    // Prepare
    const path = joinPath(dir, 'events.ndjson');
    await writeFile(path, `${JSON.stringify(join({ id: users.frank, name: 'frank' }, 'data'))}\n`);

    // Act
    const result = await run(
      ['plan', '--events', path, '--json'],
      env({ SWR_AUTH_TOKEN: 'not-the-token-0000' }),
    );

    // Assess
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as { applied: number; failed: Array<{ code: string }> };
    expect(report.applied).toBe(0);
    expect(report.failed.length).toBe(1);
  });

  it('9. plan against a dead endpoint exits 1', async () => {
    // Prepare
    const path = joinPath(dir, 'events.ndjson');
    await writeFile(path, `${JSON.stringify(join({ id: users.frank, name: 'frank' }, 'data'))}\n`);

    // Act
    const result = await run(
      ['plan', '--events', path, '--json'],
      env({ SWR_ENDPOINT: 'http://127.0.0.1:9', REQUEST_TIMEOUT_MS: '500' }),
    );

    // Assess
    expect(result.code).toBe(1);
    expect((JSON.parse(result.stdout) as { applied: number }).applied).toBe(0);
  });

  it('10. one deeply nested item fails alone; the good events of the file are planned', async () => {
    // Prepare
    const good = join({ id: users.frank, name: 'frank' }, 'data');
    const deep = `{"id":"deep","type":"membership.added","user":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const path = joinPath(dir, 'events.json');
    await writeFile(path, `[${JSON.stringify(good)},${deep}]`);

    // Act
    const result = await run(['plan', '--events', path, '--json'], env());

    // Assess
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as {
      applied: number;
      failed: Array<{ label: string; reason: string }>;
      calls: unknown[];
    };
    expect(report.applied).toBe(1);
    expect(report.failed.map((failure) => failure.label)).toEqual(['[1]']);
    expect(report.calls.length).toBeGreaterThan(0);
  });
});
