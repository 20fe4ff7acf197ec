import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditByUser, createDynamoAuditStore } from '../../lib/audit/index.ts';
import type { CliIo } from '../../lib/cli/io.ts';
import { main } from '../../lib/cli/main.ts';
import type { IamUser, UserDirectoryPort } from '../../lib/domain.ts';
import { type LocalDynamo, startLocalDynamo } from '../../lib/local/dynamo.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { type PipelineDeps, type PipelineRecord, processRecords } from '../../lib/pipeline.ts';
import { createQueueRuntime } from '../../lib/runtime.ts';
import { type Simulator, startSimulator } from '../../lib/sim/index.ts';
import { createDynamoStore, ensureTable } from '../../lib/store/index.ts';
import { policyFactory, userId } from '../support/factories.ts';
import { FakeSwr } from '../support/fake-swr.ts';

let dynamo: LocalDynamo;
let sim: Simulator;

beforeAll(async () => {
  dynamo = await startLocalDynamo();
  sim = await startSimulator();
});

afterAll(async () => {
  await sim.close();
  await dynamo.stop();
});

let tables = 0;
const freshTable = async (): Promise<string> => {
  tables += 1;
  const name = `audit-${tables}`;
  await ensureTable(dynamo.client, name);
  return name;
};

const directoryOf = (...people: IamUser[]): UserDirectoryPort => ({
  findById: async (id) => people.find((person) => person.id === id),
  findByName: async (name) => people.find((person) => person.name === name),
});

/** One queue message carrying one event of user `n`. */
const recordFactory = (
  n: number,
  id: string,
  minute: number,
  fields: Record<string, unknown>,
): PipelineRecord => ({
  messageId: `m-${id}`,
  groupId: userId(n),
  receiveCount: 1,
  body: JSON.stringify({
    id,
    occurredAt: `2026-11-20T10:${String(minute).padStart(2, '0')}:00Z`,
    source: 'workday',
    user: { id: userId(n) },
    ...fields,
  }),
});

describe('durable audit through the pipeline (dynalite)', () => {
  it('keeps every applied change and lists a user newest first, by id and by name', async () => {
    // Prepare
    const tableName = await freshTable();
    const audit = createDynamoAuditStore({ client: dynamo.client, tableName });
    const store = createDynamoStore({ client: dynamo.client, tableName });
    const telemetry = createMemoryTelemetry();
    let clock = new Date('2026-11-20T11:00:00.000Z');
    const deps: PipelineDeps = {
      swr: new FakeSwr(),
      directory: directoryOf({ id: userId(1), name: 'user1' }, { id: userId(2), name: 'user2' }),
      store,
      policy: policyFactory({
        teams: { platform: { 'core/api/server': 'write', tools: 'read' }, sre: { tools: 'manage' } },
      }),
      deadLetters: undefined,
      log: telemetry.log,
      metrics: telemetry.metrics,
      audit: (records) => audit.write(records),
      now: () => clock,
    };
    const settings = { actor: 'sync', concurrency: 4, dryRun: false };

    // Act
    await processRecords(
      [
        recordFactory(1, 'e1', 1, { type: 'membership.added', team: 'platform' }),
        recordFactory(2, 'e2', 1, { type: 'membership.added', team: 'sre' }),
      ],
      deps,
      settings,
      Date.now() + 60_000,
    );
    clock = new Date('2026-11-20T11:05:00.000Z');
    await processRecords(
      [recordFactory(1, 'e3', 2, { type: 'membership.added', team: 'sre' })],
      deps,
      settings,
      Date.now() + 60_000,
    );
    clock = new Date('2026-11-20T11:10:00.000Z');
    await processRecords(
      [recordFactory(1, 'e4', 3, { type: 'user.offboarded' })],
      deps,
      settings,
      Date.now() + 60_000,
    );
    const byId = await auditByUser(audit, userId(1));
    const byName = await auditByUser(audit, 'user1', { limit: 2 });

    // Assess
    const summary = byId.records.map((record) => [
      record.at.slice(11, 16),
      `${record.target.kind}:${record.target.namespace}`,
      record.before,
      record.after,
      record.eventIds.join(','),
    ]);
    // Newest first; changes of one instant come in key order, so compare each instant as a set.
    const byTime = (time: string) =>
      summary
        .filter((row) => row[0] === time)
        .map((row) => JSON.stringify(row))
        .sort();
    expect(summary.map((row) => row[0])).toEqual(['11:10', '11:10', '11:05', '11:00', '11:00']);
    expect(byTime('11:10')).toEqual(
      [
        ['11:10', 'namespace:tools', 7, undefined, 'e4'],
        ['11:10', 'repo:core', 3, undefined, 'e4'],
      ]
        .map((row) => JSON.stringify(row))
        .sort(),
    );
    expect(summary[2]).toEqual(['11:05', 'namespace:tools', 1, 7, 'e3']);
    expect(byTime('11:00')).toEqual(
      [
        ['11:00', 'namespace:tools', undefined, 1, 'e1'],
        ['11:00', 'repo:core', undefined, 3, 'e1'],
      ]
        .map((row) => JSON.stringify(row))
        .sort(),
    );
    expect(byId.records.every((record) => record.actor === 'sync' && record.sources[0] === 'workday')).toBe(
      true,
    );
    expect(byName.userIds).toEqual([userId(1)]);
    expect(byName.records.map((record) => record.at)).toEqual([
      '2026-11-20T11:10:00.000Z',
      '2026-11-20T11:10:00.000Z',
    ]);
    // Audit items share the table but are not users.
    const listed: string[] = [];
    for await (const record of store.list()) listed.push(record.userId);
    expect(listed.sort()).toEqual([userId(1), userId(2)]);
  });

  it('writes more than one BatchWriteItem worth of records', async () => {
    // Prepare
    const tableName = await freshTable();
    const audit = createDynamoAuditStore({ client: dynamo.client, tableName });
    const records = Array.from({ length: 60 }, (_, index) => ({
      at: new Date(Date.UTC(2026, 10, 20, 10, 0, index)).toISOString(),
      actor: 'reconcile',
      eventIds: [],
      sources: [],
      userId: userId(index % 2),
      userName: `user${index % 2}`,
      target: { kind: 'namespace' as const, namespace: `ns${index}` },
      before: undefined,
      after: 1 as const,
      dryRun: false,
    }));

    // Act
    await audit.write(records);
    const zero = await audit.listByUserId(userId(0));
    const one = await audit.listByUserId(userId(1), { limit: 5 });

    // Assess
    expect(zero).toHaveLength(30);
    expect(zero[0]?.target).toEqual({ kind: 'namespace', namespace: 'ns58' });
    expect(one.map((record) => record.at.slice(17, 19))).toEqual(['59', '57', '55', '53', '51']);
  });

  it('is wired into the queue runtime', async () => {
    // Prepare
    const tableName = await freshTable();
    const runtime = createQueueRuntime({
      functionName: 'sync',
      queue: 'accessChanges',
      env: {
        SWR_ENDPOINT: sim.swrUrl,
        IAM_ENDPOINT: sim.iamUrl,
        SWR_AUTH_TOKEN: sim.seed.serviceAccount.staticToken ?? '',
        TABLE_NAME: tableName,
        ACCESS_CHANGES_DLQ_URL: 'http://127.0.0.1:1/queue/dlq.fifo',
        POLICY_FILE: 'config/demo-policy.yaml',
      },
      log: createMemoryTelemetry().log,
      metrics: createMemoryTelemetry().metrics,
      clients: { dynamo: dynamo.client },
    });
    const { deps } = await runtime.ready();
    const record = {
      at: '2026-11-20T10:00:00.000Z',
      actor: 'sync',
      eventIds: ['e1'],
      sources: [],
      userId: userId(5),
      userName: 'user5',
      target: { kind: 'repo' as const, namespace: 'core', repository: 'api/server' },
      before: undefined,
      after: 3 as const,
      dryRun: false,
    };

    // Act
    await deps.audit?.([record]);

    // Assess
    const reader = createDynamoAuditStore({ client: dynamo.client, tableName });
    expect(await reader.listByUserId(userId(5))).toEqual([record]);
  });
});

describe('swr-access apply and audit with a table', () => {
  const frank = 'f2a4c000000000000000000000000006';

  const run = async (argv: string[], env: Record<string, string>, stdin = '') => {
    const out: string[] = [];
    const err: string[] = [];
    const io: Partial<CliIo> = {
      stdout: { write: (text: string) => out.push(text) },
      stderr: { write: (text: string) => err.push(text) },
      stdin: (async function* () {
        yield stdin;
      })(),
      env,
      aws: { dynamo: dynamo.client },
    };
    return { code: await main(argv, io), stdout: out.join(''), stderr: err.join('') };
  };

  it('records what apply changed, and audit lists it newest first', async () => {
    // Prepare
    const tableName = await freshTable();
    const env = {
      SWR_ENDPOINT: sim.swrUrl,
      IAM_ENDPOINT: sim.iamUrl,
      SWR_AUTH_TOKEN: sim.seed.serviceAccount.staticToken ?? '',
      POLICY_FILE: 'config/demo-policy.yaml',
      TABLE_NAME: tableName,
    };
    const joins = JSON.stringify({
      id: 'ev-frank-data',
      type: 'membership.added',
      occurredAt: '2026-11-20T10:00:00Z',
      user: { name: 'frank' },
      team: 'data',
    });
    const leaves = JSON.stringify({
      id: 'ev-frank-left',
      type: 'user.offboarded',
      occurredAt: '2026-11-20T10:30:00Z',
      user: { name: 'frank' },
    });

    // Act
    const applied = await run(['apply', '--events', '-'], env, joins);
    const offboarded = await run(['apply', '--events', '-'], env, leaves);
    const listed = await run(['audit', '--user', 'frank', '--json'], env);
    const text = await run(['audit', '--user', frank, '--limit', '1'], env);

    // Assess
    expect(applied.code).toBe(0);
    expect(applied.stderr).toContain(`apply: store: DynamoDB table ${tableName}`);
    expect(offboarded.code).toBe(0);
    expect(listed.code).toBe(0);
    const answer = JSON.parse(listed.stdout);
    expect(answer.userIds).toEqual([frank]);
    // Newest first; changes of one instant come in key order, so compare each instant as a set.
    const rows = answer.records.map(
      (record: { target: string; before: string | null; after: string | null; eventIds: string[] }) =>
        `${record.eventIds[0]} ${record.target} ${record.before}→${record.after}`,
    );
    expect(rows.slice(0, 3).sort()).toEqual([
      'ev-frank-left core/base/node read→null',
      'ev-frank-left data/etl/jobs write→null',
      'ev-frank-left data/warehouse/loader write→null',
    ]);
    expect(rows.slice(3).sort()).toEqual([
      'ev-frank-data core/base/node null→read',
      'ev-frank-data data/etl/jobs null→write',
      'ev-frank-data data/warehouse/loader null→write',
    ]);
    expect(answer.records.every((record: { actor: string }) => record.actor === 'swr-access apply')).toBe(
      true,
    );
    expect(text.stdout).toMatch(/^audit: 1 records for f2a4c0+6 \(f2a4c0+6\), newest first/);
    expect(text.stdout).toMatch(/swr-access apply\s+frank\s+\S+\s+\w+ → none\s+ev-frank-left/);
  });

  const envFor = (tableName: string, extra: Record<string, string> = {}) => ({
    SWR_ENDPOINT: sim.swrUrl,
    IAM_ENDPOINT: sim.iamUrl,
    SWR_AUTH_TOKEN: sim.seed.serviceAccount.staticToken ?? '',
    POLICY_FILE: 'config/demo-policy.yaml',
    TABLE_NAME: tableName,
    ...extra,
  });

  it('lists the history of one target across users, with --user narrowing it', async () => {
    // Prepare
    const tableName = await freshTable();
    const env = envFor(tableName);
    const events = [
      {
        id: 'ev-grace-data',
        type: 'membership.added',
        occurredAt: '2026-11-20T10:00:00Z',
        user: { name: 'grace' },
        team: 'data',
      },
      {
        id: 'ev-heidi-data',
        type: 'membership.added',
        occurredAt: '2026-11-20T10:01:00Z',
        user: { name: 'heidi' },
        team: 'data',
      },
      {
        id: 'ev-grace-gone',
        type: 'membership.removed',
        occurredAt: '2026-11-20T10:02:00Z',
        user: { name: 'grace' },
        team: 'data',
      },
    ];

    // Act
    const applied = await run(['apply', '--events', '-', '--batch-size', '1'], env, JSON.stringify(events));
    const whole = await run(['audit', '--target', 'data/etl/jobs', '--json'], env);
    const narrowed = await run(['audit', '--target', 'data/etl/jobs', '--user', 'grace'], env);
    const wholeText = await run(['audit', '--target', 'data/etl/jobs'], env);
    const badTarget = await run(['audit', '--target', 'Data/x'], env);

    // Assess
    expect(applied.code).toBe(0);
    const answer = JSON.parse(whole.stdout);
    expect(answer.target).toBe('data/etl/jobs');
    const rows = answer.records.map(
      (record: { userName: string; before: string | null; after: string | null }) =>
        `${record.userName} ${record.before}→${record.after}`,
    );
    expect(rows).toEqual(['grace write→null', 'heidi null→write', 'grace null→write']);
    expect(answer.records.every((record: { reason: unknown }) => 'reason' in record)).toBe(true);
    expect(narrowed.stdout).toMatch(/^audit: 2 records for grace on data\/etl\/jobs/);
    expect(wholeText.stdout).toMatch(/^audit: 3 records on data\/etl\/jobs, newest first/);
    expect(narrowed.stdout).toMatch(/TIME\s+ACTOR\s+USER\s+TARGET\s+CHANGE\s+EVENTS\s+WHY/);
    expect(narrowed.stdout).not.toContain('heidi');
    expect(badTarget.code).toBe(2);
    expect(badTarget.stderr).toMatch(/--target: namespace "Data"/);
  });

  it('keeps no audit record of a dry run', async () => {
    // Prepare
    const tableName = await freshTable();
    const env = envFor(tableName, { DRY_RUN: 'true' });
    const join = JSON.stringify({
      id: 'ev-erin-dry',
      type: 'membership.added',
      occurredAt: '2026-11-20T10:00:00Z',
      user: { name: 'erin' },
      team: 'platform',
    });

    // Act
    const applied = await run(['apply', '--events', '-'], env, join);
    const listed = await run(['audit', '--user', 'erin', '--json'], env);

    // Assess
    expect(applied.code).toBe(0);
    expect(applied.stdout).toContain('planned (DRY_RUN: no SWR write)');
    expect(JSON.parse(listed.stdout).records).toEqual([]);
  });

  it('show-user tells the stored teams, pending facts, tombstone and next change', async () => {
    // Prepare
    const tableName = await freshTable();
    const env = envFor(tableName);
    // Relative to the real clock: the CLI's deadlines are.
    const hour = 3_600_000;
    const at = (offset: number) => new Date(Math.floor(Date.now() / hour) * hour + offset).toISOString();
    const joined = at(-2 * hour);
    const leavesBackend = at(7 * 24 * hour);
    const contractEnds = at(40 * 24 * hour);
    const events = [
      {
        id: 'ev-bob-contract',
        type: 'membership.added',
        occurredAt: joined,
        user: { name: 'bob' },
        team: 'frontend',
        expiresAt: contractEnds,
      },
      {
        id: 'ev-bob-leaves-backend',
        type: 'membership.removed',
        occurredAt: at(-hour),
        effectiveAt: leavesBackend,
        user: { name: 'bob' },
        team: 'backend',
      },
    ];

    // Act
    const applied = await run(['apply', '--events', '-'], env, JSON.stringify(events));
    const json = await run(['show-user', 'bob', '--json'], env);
    const text = await run(['show-user', 'b0b00000000000000000000000000002'], env);
    const stranger = await run(['show-user', 'mallory'], env);

    // Assess
    expect(applied.code).toBe(0);
    const [view] = JSON.parse(json.stdout).users;
    expect(view).toMatchObject({
      userId: 'b0b00000000000000000000000000002',
      userName: 'bob',
      currentTeams: ['frontend'],
      offboardedAt: null,
      teams: [
        {
          team: 'frontend',
          state: 'member',
          at: joined,
          eventId: 'ev-bob-contract',
          expiresAt: contractEnds,
        },
      ],
      pending: [
        {
          eventId: 'ev-bob-leaves-backend',
          type: 'membership.removed',
          teams: ['backend'],
          effectiveAt: leavesBackend,
        },
      ],
      nextChange: {
        at: leavesBackend,
        what: 'pending membership.removed ev-bob-leaves-backend (backend) takes effect',
      },
    });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('current teams: frontend');
    expect(text.stdout).toContain('tombstone: none');
    expect(text.stdout).toMatch(
      new RegExp(`frontend\\s+member\\s+${joined}\\s+ev-bob-contract\\s+${contractEnds}`),
    );
    expect(text.stdout).toContain(`next change: ${leavesBackend}: pending membership.removed`);
    expect(stranger.code).toBe(1);
    expect(stranger.stdout).toContain('the store knows no user mallory');
  });

  it('show-user tells an offboarding proven: when, and how many targets were read back empty', async () => {
    // Prepare
    const tableName = await freshTable();
    const env = envFor(tableName);
    const offboarding = JSON.stringify({
      id: 'ev-dave-leaves',
      type: 'user.offboarded',
      occurredAt: new Date(Date.now() - 60_000).toISOString(),
      user: { id: 'da7e0000000000000000000000000004' },
    });

    // Act
    const applied = await run(['apply', '--events', '-'], env, offboarding);
    const json = await run(['show-user', 'da7e0000000000000000000000000004', '--json'], env);
    const text = await run(['show-user', 'da7e0000000000000000000000000004'], env);

    // Assess
    expect(applied.code).toBe(0);
    const [view] = JSON.parse(json.stdout).users;
    expect(view.offboarding).toMatchObject({
      policyTargets: 'done',
      namespaces: { core: 'done', tools: 'done', data: 'done' },
    });
    expect(view.offboarding.provenAt).toEqual(expect.any(String));
    expect(view.offboarding.targetsChecked).toBeGreaterThan(10);
    expect(text.stdout).toMatch(
      /offboarding proven at \S+: \d+ targets read back without a grant of the user/,
    );
  });
});
