import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../lib/cli/io.ts';
import { main } from '../../lib/cli/main.ts';
import { type LocalDynamo, startLocalDynamo } from '../../lib/local/dynamo.ts';
import { type Simulator, startSimulator } from '../../lib/sim/index.ts';
import { ensureTable } from '../../lib/store/index.ts';

const alice = 'a11ce000000000000000000000000001';
const apiServer = { kind: 'repo', namespace: 'core', repository: 'api/server' } as const;
const tableName = 'cli-reconcile';

let sim: Simulator;
let dynamo: LocalDynamo;

beforeAll(async () => {
  sim = await startSimulator();
  dynamo = await startLocalDynamo();
  await ensureTable(dynamo.client, tableName);
});

afterAll(async () => {
  await dynamo.stop();
  await sim.close();
});

const envFactory = (extra: Record<string, string> = {}): Record<string, string> => ({
  SWR_ENDPOINT: sim.swrUrl,
  IAM_ENDPOINT: sim.iamUrl,
  SWR_AUTH_TOKEN: sim.seed.serviceAccount.staticToken ?? '',
  POLICY_FILE: 'config/demo-policy.yaml',
  TABLE_NAME: tableName,
  ...extra,
});

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

describe('swr-access reconcile', () => {
  it('needs the membership table (exit 2)', async () => {
    // Prepare
    const { TABLE_NAME: _dropped, ...env } = envFactory();

    // Act
    const { code, stderr } = await run(['reconcile'], env);

    // Assess
    expect(code).toBe(2);
    expect(stderr).toContain('TABLE_NAME is required');
  });

  it('exits 1 when the mass-revoke guard blocks, and fixes the drift with --allow-mass-revoke', async () => {
    // Prepare: the store knows alice left backend; a hand-made grant brings her write back.
    const left = JSON.stringify({
      id: 'ev-alice-left',
      type: 'membership.removed',
      occurredAt: '2026-11-20T10:00:00Z',
      user: { id: alice },
      team: 'backend',
    });
    const applied = await run(['apply', '--events', '-'], envFactory(), left);
    sim.setPermission(apiServer, alice, 3);
    const strict = envFactory({ MASS_REVOKE_MAX_COUNT: '0' });

    // Act
    const blocked = await run(['reconcile', '--json'], strict);
    const blockedText = await run(['reconcile'], strict);
    const afterBlocked = sim.permissions().repos['core/api/server']?.[alice];
    const allowed = await run(['reconcile', '--allow-mass-revoke'], strict);

    // Assess
    expect(applied.code).toBe(0);
    expect(blocked.code).toBe(1);
    expect(JSON.parse(blocked.stdout)).toMatchObject({ guard: { status: 'blocked' } });
    expect(blocked.stderr).toContain('the mass-revoke guard stopped the run');
    // The blocked run lists who it would have touched, and why; nothing was applied.
    expect(blockedText.stdout).toMatch(
      /users affected: 1; what would change for each:\n.*\n.*alice \(a11ce0+1\)\s+core\/api\/server\s+revoke\s+write → none/,
    );
    expect(afterBlocked).toBe(3);
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toContain('core/api/server');
    expect(allowed.stdout).toMatch(
      /users affected: 1; what changed for each:\n.*\n.*alice \(a11ce0+1\)\s+core\/api\/server\s+revoke\s+write → none/,
    );
    expect(sim.permissions().repos['core/api/server']?.[alice]).toBeUndefined();
  });
});

describe('swr-access reconcile --dry-run --policy NEW: the preview of a policy change', () => {
  it('lists each user affected and what would change for them, and changes nothing', async () => {
    // Prepare: the store knows bob (backend) and carol (frontend)
    const previewTable = 'cli-reconcile-preview';
    await ensureTable(dynamo.client, previewTable);
    const env = envFactory({ TABLE_NAME: previewTable });
    const snapshots = [
      {
        id: 'ev-bob-teams',
        type: 'user.teams',
        occurredAt: '2026-11-20T10:00:00Z',
        user: { name: 'bob' },
        teams: ['backend'],
      },
      {
        id: 'ev-carol-teams',
        type: 'user.teams',
        occurredAt: '2026-11-20T10:00:00Z',
        user: { name: 'carol' },
        teams: ['frontend'],
      },
    ];
    const applied = await run(['apply', '--events', '-'], env, JSON.stringify(snapshots));
    const before = sim.permissions();

    // Act
    const text = await run(
      ['reconcile', '--dry-run', '--policy', 'test/fixtures/policies/preview-new.yaml'],
      env,
    );
    const json = await run(
      ['reconcile', '--dry-run', '--policy', 'test/fixtures/policies/preview-new.yaml', '--json'],
      env,
    );

    // Assess
    expect(applied.code).toBe(0);
    expect(text.code).toBe(0);
    expect(sim.permissions()).toEqual(before);
    expect(text.stdout).toContain('users affected: 2; what would change for each:');
    expect(text.stdout).toMatch(/bob \(b0b0+2\)\s+core\/api\/server\s+revoke\s+write → none/);
    expect(text.stdout).toMatch(/carol \(ca2010+3\)\s+core\/web\/frontend\s+change\s+write → manage/);
    const affected = JSON.parse(json.stdout).usersAffected;
    expect(
      affected.map((user: { userName: string; changes: Array<{ target: string; action: string }> }) => [
        user.userName,
        user.changes.map((change) => `${change.target} ${change.action}`),
      ]),
    ).toEqual([
      ['bob', ['core/api/server revoke']],
      ['carol', ['core/web/frontend change']],
    ]);
  });
});
