import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../../lib/cli/io.ts';
import { main } from '../../lib/cli/main.ts';
import { type Simulator, startSimulator } from '../../lib/sim/index.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const users = {
  alice: 'a11ce000000000000000000000000001',
  frank: 'f2a4c000000000000000000000000006',
} as const;

let sim: Simulator;
let dir: string;

beforeAll(async () => {
  sim = await startSimulator();
  dir = await mkdtemp(join(tmpdir(), 'swr-access-cli-'));
});

afterAll(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

/** The functions' environment for the simulator: password credentials, no table (memory store). */
const envFactory = (extra: Record<string, string> = {}): Record<string, string> => ({
  SWR_ENDPOINT: sim.swrUrl,
  IAM_ENDPOINT: sim.iamUrl,
  HUAWEICLOUD_IAM_DOMAIN: sim.seed.account.name,
  HUAWEICLOUD_IAM_USER: sim.seed.serviceAccount.name,
  HUAWEICLOUD_IAM_PASSWORD: sim.seed.serviceAccount.password,
  HUAWEICLOUD_PROJECT: sim.seed.project.name,
  POLICY_FILE: 'config/demo-policy.yaml',
  RETRY_BASE_DELAY_MS: '5',
  RETRY_MAX_DELAY_MS: '20',
  ...extra,
});

const run = async (argv: string[], options: { env?: Record<string, string>; stdin?: string } = {}) => {
  const out: string[] = [];
  const err: string[] = [];
  const io: Partial<CliIo> = {
    stdout: { write: (text: string) => out.push(text) },
    stderr: { write: (text: string) => err.push(text) },
    stdin: (async function* () {
      if (options.stdin !== undefined) yield options.stdin;
    })(),
    env: options.env ?? envFactory(),
  };
  const code = await main(argv, io);
  return { code, stdout: out.join(''), stderr: err.join('') };
};

/** An event; `minute` orders them in time. */
const eventFactory = (
  id: string,
  minute: number,
  fields: Record<string, unknown>,
): Record<string, unknown> => ({
  id,
  occurredAt: `2026-11-20T10:${String(minute).padStart(2, '0')}:00Z`,
  source: 'workday',
  ...fields,
});

const frankJoinsData = eventFactory('ev-frank-data', 1, {
  type: 'membership.added',
  user: { id: users.frank },
  team: 'data',
});

const writeEvents = async (name: string, events: unknown[], format: 'array' | 'ndjson'): Promise<string> => {
  const path = join(dir, name);
  const text =
    format === 'array'
      ? JSON.stringify(events, null, 2)
      : events.map((event) => (typeof event === 'string' ? event : JSON.stringify(event))).join('\n');
  await writeFile(path, text);
  return path;
};

/** Frank starts with nothing (as in the seed), whatever an earlier test applied. */
const resetFrank = (): void => {
  for (const repository of ['base/node', 'etl/jobs', 'warehouse/loader'])
    sim.setPermission(
      { kind: 'repo', namespace: repository === 'base/node' ? 'core' : 'data', repository },
      users.frank,
      undefined,
    );
};

const writes = (): number =>
  sim.requestLog().filter((entry) => entry.method !== 'GET' && entry.route.includes('/access')).length;

describe('swr-access plan', () => {
  beforeEach(() => {
    resetFrank();
    sim.resetCounts();
    sim.setFaults({ failTargets: [] });
  });

  it('prints the planned calls as JSON and writes nothing', async () => {
    // Prepare
    const path = await writeEvents('plan.json', [frankJoinsData], 'array');
    const before = sim.permissions();

    // Act
    const { code, stdout, stderr } = await run(['plan', '--events', path, '--json']);

    // Assess
    expect(code).toBe(0);
    expect(stderr).toContain('plan: store: IN MEMORY (TABLE_NAME is not set)');
    const report = JSON.parse(stdout);
    expect(report).toMatchObject({
      command: 'plan',
      dryRun: true,
      store: 'memory',
      events: { read: 1, invalid: 0, duplicates: 0, processed: 1 },
      applied: 1,
      failed: [],
    });
    const frank = { userId: users.frank, userName: 'frank', before: null };
    expect(report.calls).toEqual([
      { target: 'core/base/node', targetKind: 'repo', action: 'grant', users: [{ ...frank, after: 'read' }] },
      { target: 'data/etl/jobs', targetKind: 'repo', action: 'grant', users: [{ ...frank, after: 'write' }] },
      {
        target: 'data/warehouse/loader',
        targetKind: 'repo',
        action: 'grant',
        users: [{ ...frank, after: 'write' }],
      },
    ]);
    expect(sim.permissions()).toEqual(before);
    expect(writes()).toBe(0);
  });

  it('plans the net effect of a file, ignoring a stale event, in text', async () => {
    // Prepare: alice (write on core/api/server in the seed) leaves backend; an older join is stale.
    const events = [
      eventFactory('ev-a-left', 5, { type: 'membership.removed', user: { name: 'alice' }, team: 'backend' }),
      eventFactory('ev-a-old-join', 2, {
        type: 'membership.added',
        user: { name: 'alice' },
        team: 'backend',
      }),
    ];
    const path = await writeEvents('stale.ndjson', events, 'ndjson');

    // Act
    const { code, stdout } = await run(['plan', '--events', path]);

    // Assess
    expect(code).toBe(0);
    expect(stdout).toMatch(
      /^plan: 2 events read, 0 invalid, 0 duplicates dropped, 2 processed; 1 applied, 1 ignored, 0 failed/,
    );
    expect(stdout).toMatch(/core\/api\/server\s+revoke\s+alice \(was write\)/);
    expect(stdout).toMatch(/line 2 \(ev-a-old-join\): stale/);
    expect(writes()).toBe(0);
  });
});

describe('swr-access apply', () => {
  beforeEach(() => {
    resetFrank();
    sim.resetCounts();
    sim.setFaults({ failTargets: [] });
  });

  it('applies a file through the pipeline and reports what it made', async () => {
    // Prepare
    const path = await writeEvents('apply.ndjson', [frankJoinsData], 'ndjson');

    // Act
    const { code, stdout, stderr } = await run(['apply', '--events', path]);

    // Assess
    expect(code).toBe(0);
    expect(stderr).toContain('apply: store: IN MEMORY');
    expect(stderr).toContain('apply: batch 1/1: 1 events');
    expect(stdout).toMatch(/1 applied, 0 ignored, 0 failed; 3 SWR calls made/);
    const permissions = sim.permissions();
    expect(permissions.repos['data/etl/jobs']?.[users.frank]).toBe(3);
    expect(permissions.repos['core/base/node']?.[users.frank]).toBe(1);
  });

  it('reads stdin, lists every failure with why, and exits 1', async () => {
    // Prepare
    const lines = [
      JSON.stringify(
        eventFactory('ev-ok', 1, { type: 'membership.added', user: { name: 'erin' }, team: 'data' }),
      ),
      '{"id": "ev-broken", ',
      JSON.stringify(
        eventFactory('ev-ghost', 2, { type: 'membership.added', user: { name: 'nobody' }, team: 'data' }),
      ),
      JSON.stringify(eventFactory('ev-ok', 3, { type: 'user.offboarded', user: { name: 'erin' } })),
    ];

    // Act
    const { code, stdout } = await run(['apply', '--events', '-', '--json'], { stdin: lines.join('\n') });

    // Assess
    expect(code).toBe(1);
    const report = JSON.parse(stdout);
    expect(report.events).toEqual({ read: 4, invalid: 1, duplicates: 1, processed: 2 });
    expect(report.duplicates).toEqual([{ label: 'line 4', eventId: 'ev-ok', firstLabel: 'line 1' }]);
    expect(report.failed).toEqual(
      [
        {
          label: 'line 2',
          eventId: undefined,
          code: 'INVALID_JSON',
          reason: expect.stringMatching(/^not valid JSON/),
        },
        {
          label: 'line 3',
          eventId: 'ev-ghost',
          code: 'UNKNOWN_USER',
          reason: 'IAM knows no user named "nobody"',
        },
      ].map(({ eventId, ...rest }) => (eventId === undefined ? rest : { eventId, ...rest })),
    );
    expect(report.applied).toBe(1);
  });

  it('holds a user behind a retryable failure: later events are not applied out of order', async () => {
    // Prepare
    sim.setFaults({ failTargets: [{ target: 'data/etl/jobs', method: 'POST', status: 500 }] });
    const events = [
      frankJoinsData,
      eventFactory('ev-frank-left', 2, {
        type: 'membership.removed',
        user: { id: users.frank },
        team: 'data',
      }),
    ];
    const path = await writeEvents('held.json', events, 'array');

    // Act
    const { code, stdout } = await run(['apply', '--events', path, '--batch-size', '1', '--json'], {
      env: envFactory({ RETRY_MAX_ATTEMPTS: '1' }),
    });

    // Assess
    expect(code).toBe(1);
    const report = JSON.parse(stdout);
    expect(report.failed.map((entry: { label: string; code: string }) => [entry.label, entry.code])).toEqual([
      ['[0]', 'SVCSTG.SWR.5000090'],
      ['[1]', 'HELD'],
    ]);
    expect(report.failed[1].reason).toContain('an earlier event of the same user ([0]) failed');
  });
});

describe('bin/swr-access.mjs', () => {
  it.each([
    [['--help'], 0, /^usage: swr-access <command>/],
    [['validate-policy', 'test/fixtures/policies/many-problems.yaml'], 2, /^$/],
  ])('runs %j as a process (exit %i)', async (argv, exit, stdoutPattern) => {
    // Prepare
    const child = spawn(process.execPath, ['bin/swr-access.mjs', ...argv], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));

    // Act
    const [code] = (await once(child, 'exit')) as [number | null];

    // Assess
    expect(code).toBe(exit);
    expect(Buffer.concat(out).toString('utf8')).toMatch(stdoutPattern);
  });
});

describe('validate-policy --online', () => {
  it('reads every target in SWR and passes when all exist', async () => {
    // Act
    const { code, stdout } = await run(['validate-policy', 'config/demo-policy.yaml', '--online']);

    // Assess
    expect(code).toBe(0);
    expect(stdout).toMatch(/^config\/demo-policy\.yaml: valid: 6 teams, 9 targets/);
    expect(stdout).toMatch(/core\/api\/server\s+repo\s+ok \(\d+ users hold a permission\)/);
    expect(stdout).toContain('online: all 9 targets exist in SWR');
  });

  it('names each target that cannot be read, with the reason, and exits 1', async () => {
    // Act
    const text = await run(['validate-policy', 'test/fixtures/policies/typo-target.yaml', '--online']);
    const json = await run([
      'validate-policy',
      'test/fixtures/policies/typo-target.yaml',
      '--online',
      '--json',
    ]);

    // Assess
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/core\/api\/sever\s+repo\s+CANNOT BE READ: \S+ /);
    expect(text.stdout).toMatch(/toolz\s+namespace\s+CANNOT BE READ: \S+ /);
    expect(text.stdout).toContain('online: 2 of 4 targets cannot be read');
    expect(json.code).toBe(1);
    const answer = JSON.parse(json.stdout);
    expect(answer.ok).toBe(false);
    expect(
      answer.online.map((check: { target: string; ok: boolean }) => `${check.target} ${check.ok}`).sort(),
    ).toEqual(['core/api/server true', 'core/api/sever false', 'tools/ci/runner true', 'toolz false']);
    expect(
      answer.online.find((check: { target: string }) => check.target === 'core/api/sever'),
    ).toMatchObject({
      code: expect.stringMatching(/^SVCSTG\.SWR\./),
      reason: expect.any(String),
    });
  });

  it('needs the SWR configuration only when online', async () => {
    // Act
    const offline = await run(['validate-policy', 'test/fixtures/policies/typo-target.yaml'], { env: {} });
    const online = await run(['validate-policy', 'test/fixtures/policies/typo-target.yaml', '--online'], {
      env: {},
    });

    // Assess
    expect(offline.code).toBe(0);
    expect(online.code).toBe(2);
    expect(online.stderr).toContain('SWR_ENDPOINT is required');
  });
});
