/**
 * `swr-access show` against the simulator: what SWR reports for a target and for a user, and a
 * target that cannot be read is an error (exit 1), never "nobody".
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../../lib/cli/io.ts';
import { main } from '../../lib/cli/main.ts';
import { type Simulator, startSimulator } from '../../lib/sim/index.ts';

let sim: Simulator;

beforeAll(async () => {
  sim = await startSimulator();
});

afterAll(async () => {
  await sim.close();
});

beforeEach(() => {
  sim.setFaults({ error5xxRate: 0, failTargets: [] });
});

const envFactory = (extra: Record<string, string> = {}): Record<string, string> => ({
  SWR_ENDPOINT: sim.swrUrl,
  IAM_ENDPOINT: sim.iamUrl,
  SWR_AUTH_TOKEN: sim.seed.serviceAccount.staticToken ?? '',
  POLICY_FILE: 'config/demo-policy.yaml',
  RETRY_MAX_ATTEMPTS: '1',
  ...extra,
});

const run = async (argv: string[], env = envFactory()) => {
  const out: string[] = [];
  const err: string[] = [];
  const io: Partial<CliIo> = {
    stdout: { write: (text: string) => out.push(text) },
    stderr: { write: (text: string) => err.push(text) },
    stdin: (async function* () {})(),
    env,
  };
  const code = await main(argv, io);
  return { code, stdout: out.join(''), stderr: err.join('') };
};

describe('swr-access show --target', () => {
  it('lists every user SWR reports on a repository, with the level', async () => {
    // Act
    const result = await run(['show', '--target', 'core/api/server', '--json']);

    // Assess
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      target: 'core/api/server',
      kind: 'repo',
      serviceAccount: sim.seed.serviceAccount.id,
      users: [
        { userId: 'a11ce000000000000000000000000001', userName: 'alice', permission: 'write' },
        { userId: 'b0b00000000000000000000000000002', userName: 'bob', permission: 'write' },
      ],
    });
  });

  it('shows a namespace as a table', async () => {
    // Act
    const result = await run(['show', '--target', 'tools']);

    // Assess
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('namespace tools: 1 user(s) with access');
    expect(result.stdout).toMatch(/ci-robot\s+c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1\s+write/);
  });

  it('shows nobody on a repository nobody holds', async () => {
    // Act
    const result = await run(['show', '--target', 'core/base/node', '--json']);

    // Assess
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).users).toEqual([]);
  });

  it.each([
    [
      'a failing read (500)',
      'core/api/server',
      () => sim.setFaults({ failTargets: [{ target: 'core/api/server', method: 'GET', status: 500 }] }),
    ],
    ['a repository that does not exist', 'core/no/such', () => undefined],
  ])('is an error, not "nobody", on %s', async (_name, target, arrange) => {
    // Prepare
    arrange();

    // Act
    const result = await run(['show', '--target', target, '--json']);

    // Assess
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`cannot read repository ${target}`);
  });

  it.each([
    [['show'], 'give exactly one of --target and --user'],
    [['show', '--target', 'core', '--user', 'alice'], 'give exactly one of --target and --user'],
    [['show', '--target', 'Core/api'], 'namespace "Core"'],
    [['show', '--target', 'core/api//x'], 'repository "api//x"'],
  ])('refuses %j (exit 2)', async (argv, message) => {
    // Act
    const result = await run(argv);

    // Assess
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });
});

describe('swr-access show --user', () => {
  it("lists a user's permissions across the policy targets and the managed namespaces, by name or id", async () => {
    // Act
    const byName = await run(['show', '--user', 'heidi', '--json']);
    const byId = await run(['show', '--user', '4e1d1000000000000000000000000008', '--json']);

    // Assess
    expect(byName.code).toBe(0);
    const shown = JSON.parse(byName.stdout);
    expect(shown.user).toEqual({ id: '4e1d1000000000000000000000000008', name: 'heidi' });
    // The hand-made manage grant no policy gives is found too: managed namespaces are listed.
    expect(shown.permissions).toEqual([
      { target: 'data/warehouse/loader', kind: 'repo', permission: 'manage' },
    ]);
    expect(shown.unreadable).toEqual([]);
    expect(JSON.parse(byId.stdout).permissions).toEqual(shown.permissions);
  });

  it('answers 1 for a user IAM does not know', async () => {
    // Act
    const result = await run(['show', '--user', 'nobody-here']);

    // Assess
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('IAM knows no user "nobody-here"');
  });

  it('names the targets it could not read and exits 1, showing what it could read', async () => {
    // Prepare
    sim.setFaults({ failTargets: [{ target: 'core/api/worker', method: 'GET', status: 500 }] });

    // Act
    const result = await run(['show', '--user', 'alice']);

    // Assess
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/core\/api\/server\s+repository\s+write/);
    expect(result.stderr).toContain('cannot read core/api/worker');
  });
});
