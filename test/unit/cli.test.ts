import { describe, expect, it } from 'vitest';
import type { CliIo } from '../../lib/cli/io.ts';
import { main } from '../../lib/cli/main.ts';

/** Captured stdout/stderr and an environment with nothing but what the test gives. */
const ioFactory = (env: Record<string, string> = {}, stdin: string[] = []) => {
  const out: string[] = [];
  const err: string[] = [];
  const io: Partial<CliIo> = {
    stdout: { write: (text: string) => out.push(text) },
    stderr: { write: (text: string) => err.push(text) },
    stdin: (async function* () {
      yield* stdin;
    })(),
    env,
  };
  return { io, stdout: () => out.join(''), stderr: () => err.join('') };
};

const commands = [
  'plan',
  'apply',
  'reconcile',
  'redrive',
  'audit',
  'show-user',
  'simulate',
  'validate-policy',
];

describe('swr-access main', () => {
  it('lists every command on --help and exits 0', async () => {
    // Prepare
    const { io, stdout } = ioFactory();

    // Act
    const code = await main(['--help'], io);

    // Assess
    expect(code).toBe(0);
    for (const command of commands) expect(stdout()).toContain(`  ${command}`);
  });

  it.each([
    [[], 'usage: swr-access <command>'],
    [['frobnicate'], 'unknown command "frobnicate"'],
  ])('exits 2 for %j', async (argv, message) => {
    // Prepare
    const { io, stderr, stdout } = ioFactory();

    // Act
    const code = await main(argv, io);

    // Assess
    expect(code).toBe(2);
    expect(stderr()).toContain(message);
    expect(stdout()).toBe('');
  });

  it.each(commands)('%s --help prints its usage and exits 0', async (command) => {
    // Prepare
    const { io, stdout } = ioFactory();

    // Act
    const code = await main([command, '--help'], io);

    // Assess
    expect(code).toBe(0);
    expect(stdout()).toMatch(new RegExp(`^usage: swr-access ${command}`));
  });

  it.each([
    [['plan', '--events', 'x.json', '--bogus'], /Unknown option '--bogus'/],
    [['plan'], /--events is required/],
    [
      ['apply', '--events', 'x.json', '--batch-size', '0'],
      /--batch-size needs a whole number from 1 to 1000/,
    ],
    [
      ['redrive', '--queue', 'elsewhere'],
      /--queue must be access-changes, offboarding or offboarding-sweeps/,
    ],
    [['redrive', '--queue', 'offboarding', '--max', 'lots'], /--max needs a whole number/],
    [['audit'], /--user or --target is required/],
    [['validate-policy'], /the policy FILE is required/],
    [['validate-policy', 'a.yaml', 'b.yaml'], /unexpected argument b\.yaml/],
    [['simulate', '--port', 'abc'], /--port needs an integer/],
  ])('%j is a usage error: exit 2, one clear line on stderr', async (argv, message) => {
    // Prepare
    const { io, stderr, stdout } = ioFactory();

    // Act
    const code = await main(argv, io);

    // Assess
    expect(code).toBe(2);
    expect(stderr().split('\n')[0]).toMatch(message);
    expect(stdout()).toBe('');
  });
});

describe('configuration errors', () => {
  it('lists every configuration problem, exits 2, and never prints a secret', async () => {
    // Prepare
    const { io, stderr } = ioFactory({
      HUAWEICLOUD_IAM_PASSWORD: 'pa55-w0rd-never-shown',
      SWR_ENDPOINT: 'http://swr.example.com',
    });

    // Act
    const code = await main(['plan', '--events', '-'], io);

    // Assess
    expect(code).toBe(2);
    expect(stderr()).toContain('ConfigError: invalid configuration');
    expect(stderr()).toContain('SWR_ENDPOINT must use https:');
    expect(stderr()).toContain('IAM_ENDPOINT is required');
    expect(stderr()).toContain('HUAWEICLOUD_IAM_USER is required');
    expect(stderr()).toContain('POLICY_FILE is required');
    expect(stderr()).not.toContain('pa55-w0rd-never-shown');
  });

  it.each([
    [
      ['redrive', '--queue', 'offboarding'],
      ['OFFBOARDING_QUEUE_URL is required', 'OFFBOARDING_DLQ_URL is required'],
    ],
    [['audit', '--user', 'alice'], ['TABLE_NAME is required']],
  ])('%j needs its variables (exit 2)', async (argv, problems) => {
    // Prepare
    const { io, stderr } = ioFactory();

    // Act
    const code = await main(argv, io);

    // Assess
    expect(code).toBe(2);
    for (const problem of problems) expect(stderr()).toContain(problem);
  });
});

describe('validate-policy', () => {
  it('summarises a valid policy in one line (exit 0)', async () => {
    // Prepare
    const { io, stdout } = ioFactory();

    // Act
    const code = await main(['validate-policy', 'config/demo-policy.yaml'], io);

    // Assess
    expect(code).toBe(0);
    expect(stdout()).toBe(
      'config/demo-policy.yaml: valid: 6 teams, 9 targets, 1 protected users, 3 managed namespaces\n',
    );
  });

  it('lists every problem of a bad policy on stderr (exit 2)', async () => {
    // Prepare
    const { io, stderr } = ioFactory();

    // Act
    const code = await main(['validate-policy', 'test/fixtures/policies/many-problems.yaml'], io);

    // Assess
    expect(code).toBe(2);
    const problems = stderr()
      .split('\n')
      .filter((entry) => entry.startsWith('  - '));
    expect(problems).toHaveLength(6);
    expect(problems[0]).toMatch(/many-problems\.yaml:3:18: protectedUsers\[0\]/);
  });

  it.each([
    ['config/demo-policy.yaml', 0, { ok: true, teams: 6, targets: 9 }],
    [
      'test/fixtures/policies/many-problems.yaml',
      2,
      {
        ok: false,
        problems: expect.arrayContaining([expect.stringContaining('duplicate target core/api/server')]),
      },
    ],
  ])('answers --json for %s (exit %i)', async (path, exit, expected) => {
    // Prepare
    const { io, stdout } = ioFactory();

    // Act
    const code = await main(['validate-policy', path, '--json'], io);

    // Assess
    expect(code).toBe(exit);
    expect(JSON.parse(stdout())).toMatchObject(expected);
  });

  it('says which file cannot be read (exit 2)', async () => {
    // Prepare
    const { io, stderr } = ioFactory();

    // Act
    const code = await main(['validate-policy', 'no/such/policy.yaml'], io);

    // Assess
    expect(code).toBe(2);
    expect(stderr()).toContain('cannot read access policy no/such/policy.yaml (ENOENT)');
  });
});
