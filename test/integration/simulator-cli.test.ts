import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSimulateArgs, runSimulateCommand } from '../../lib/sim/cli.ts';
import { demoSeedPath, loadSeed, SimulatorConfigError } from '../../lib/sim/index.ts';

const seed = loadSeed();
const children: ChildProcess[] = [];
const root = fileURLToPath(new URL('../..', import.meta.url));

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
});

const waitFor = async (condition: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !condition(); i += 1) await new Promise((r) => setTimeout(r, 20));
  if (!condition()) throw new Error('condition not reached');
};

const getNamespace = async (swrUrl: string): Promise<number> => {
  const res = await request(`${swrUrl}/v2/manage/namespaces/core/access`, {
    headers: { 'x-auth-token': seed.serviceAccount.staticToken ?? '' },
    reset: true,
  });
  await res.body.dump();
  return res.statusCode;
};

describe('parseSimulateArgs', () => {
  it.each([
    [[], { port: 0, seedPath: demoSeedPath, latencyMs: 0 }],
    [['--port', '9000', '--latency', '25'], { port: 9000, seedPath: demoSeedPath, latencyMs: 25 }],
    [['--port=9100', '--seed=/tmp/seed.json'], { port: 9100, seedPath: '/tmp/seed.json', latencyMs: 0 }],
    [
      ['--faults', '{"malformedRate":0.25,"failTargets":[{"kind":"iam","gateway":"not-published"}]}'],
      { faults: { malformedRate: 0.25, failTargets: [{ kind: 'iam', gateway: 'not-published' }] } },
    ],
    [['--quota', '5:10'], { faults: { quota: { ratePerSecond: 5, burst: 10 } } }],
    [['--quota=20'], { faults: { quota: { ratePerSecond: 20, burst: 20 } } }],
    [['--lenient-user-names', '--revoke-missing', '204'], { strictUserNames: false, revokeMissing: '204' }],
  ])('reads %j', (argv, expected) => {
    // Act
    const args = parseSimulateArgs(argv);

    // Assess
    expect(args).toEqual({
      port: 0,
      seedPath: demoSeedPath,
      latencyMs: 0,
      faults: {},
      strictUserNames: true,
      revokeMissing: '404',
      ...expected,
    });
  });

  it.each([
    [['--port', 'abc']],
    [['--port', '70000']],
    [['--latency']],
    [['--verbose']],
    [['--seed', '']],
    [['--faults', '{"malformedRate":2}']],
    [['--faults', '{"failTargets":[{"malformed":"sideways"}]}']],
    [['--faults', '{"bogus":1}']],
    [['--faults', '/nonexistent/faults.json']],
    [['--quota', '0']],
    [['--quota', 'fast']],
    [['--revoke-missing', '500']],
  ])('refuses %j with a SimulatorConfigError', (argv) => {
    // Act / Assess
    expect(() => parseSimulateArgs(argv)).toThrow(SimulatorConfigError);
  });
});

describe('runSimulateCommand', () => {
  it('prints one JSON line with both URLs, serves, and closes when stopped', async () => {
    // Prepare
    const lines: string[] = [];
    const stop = new AbortController();

    // Act
    const running = runSimulateCommand([], {
      stdout: { write: (line) => lines.push(line) },
      signal: stop.signal,
    });
    await waitFor(() => lines.length > 0);
    const urls = JSON.parse(lines[0] ?? '{}') as { swr: string; iam: string };
    const status = await getNamespace(urls.swr);
    stop.abort();
    await running;

    // Assess
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\{"swr":"http:\/\/127\.0\.0\.1:\d+","iam":"http:\/\/127\.0\.0\.1:\d+"\}\n$/);
    expect(status).toBe(200);
    await expect(getNamespace(urls.swr)).rejects.toThrow();
  });

  it('serves with the faults and quota given on the command line', async () => {
    // Prepare
    const lines: string[] = [];
    const stop = new AbortController();
    const faults = JSON.stringify({
      failTargets: [{ kind: 'namespace', gateway: 'not-published', times: 1 }],
    });

    // Act
    const running = runSimulateCommand(['--faults', faults, '--quota', '1:1'], {
      stdout: { write: (line) => lines.push(line) },
      signal: stop.signal,
    });
    await waitFor(() => lines.length > 0);
    const urls = JSON.parse(lines[0] ?? '{}') as { swr: string };
    const statuses: number[] = [];
    for (let i = 0; i < 5; i += 1) statuses.push(await getNamespace(urls.swr));
    stop.abort();
    await running;

    // Assess: the rule answers once (a gateway 404, which spends the one-request burst); the quota
    // of one request per second then refuses the next ones (429).
    expect(statuses[0]).toBe(404);
    expect(statuses).toContain(429);
    expect(statuses.every((status) => status === 404 || status === 429 || status === 200)).toBe(true);
  });

  it('prints on stderr, as a local tool, the credentials it accepts, and they work', async () => {
    // Prepare
    const out: string[] = [];
    const err: string[] = [];
    const stop = new AbortController();

    // Act
    const running = runSimulateCommand([], {
      stdout: { write: (text) => out.push(text) },
      stderr: { write: (text) => err.push(text) },
      signal: stop.signal,
    });
    await waitFor(() => err.length > 0);
    const notice = err.join('');
    const token = /SWR_AUTH_TOKEN=(\S+)/.exec(notice)?.[1] ?? '';
    const urls = JSON.parse(out[0] ?? '{}') as { swr: string };
    const res = await request(`${urls.swr}/v2/manage/namespaces/core/access`, {
      headers: { 'x-auth-token': token },
      reset: true,
    });
    await res.body.dump();
    stop.abort();
    await running;

    // Assess
    expect(notice).toMatch(/a LOCAL simulator of SWR \+ IAM for development and tests, not Huawei Cloud/);
    expect(notice).toContain(`HUAWEICLOUD_IAM_USER=${seed.serviceAccount.name}`);
    expect(notice).toContain(`HUAWEICLOUD_IAM_PASSWORD=${seed.serviceAccount.password}`);
    expect(notice).toContain(`HUAWEICLOUD_SDK_AK=${seed.credentials?.[0]?.ak}`);
    expect(notice).toContain(`SWR_ENDPOINT=${urls.swr}`);
    expect(res.statusCode).toBe(200);
    expect(out).toHaveLength(1);
  });

  it('rejects a seed file that does not exist', async () => {
    // Act / Assess
    await expect(runSimulateCommand(['--seed', '/nonexistent/seed.json'])).rejects.toThrow(
      SimulatorConfigError,
    );
  });

  it('runs as a process and exits cleanly on SIGTERM', async () => {
    // Prepare
    const child = spawn(process.execPath, ['--import', 'tsx', 'lib/sim/cli.ts', '--latency', '1'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const exited = once(child, 'exit');

    // Act
    await waitFor(() => stdout.includes('\n'));
    const urls = JSON.parse(stdout.split('\n')[0] ?? '{}') as { swr: string };
    const status = await getNamespace(urls.swr);
    child.kill('SIGTERM');
    const [code] = await exited;

    // Assess
    expect(status).toBe(200);
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);
  });
});
