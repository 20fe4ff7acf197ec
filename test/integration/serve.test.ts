/**
 * `npm start -- --serve` as a user runs it: a child process with the live stack and the intake.
 * An Entra-shaped and an Okta-shaped SCIM conversation against it end with the permissions the
 * policy gives, read back with `swr-access show` from the environment file it writes; a handler
 * configured only from that file (as `serverless invoke local` runs it) dead-letters through the
 * 127.0.0.1 queue URLs; Ctrl-C stops it and removes the file.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../lib/cli/io.ts';
import { main as cli } from '../../lib/cli/main.ts';
import { createLambdaContext } from '../../lib/local/lambda-context.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { createQueueRuntime } from '../../lib/runtime.ts';
import { createSqsHandler } from '../../lib/sqs-handler.ts';
import { intakePolicyPath, intakeSeed, sample, sampleUsers, scimClient } from '../support/intake.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;
let child: ChildProcess;
let env: Record<string, string>;
let output = '';

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swr-serve-'));
  const seedFile = join(dir, 'seed.json');
  const envFile = join(dir, 'stack.env');
  await writeFile(seedFile, JSON.stringify(intakeSeed()));
  child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'lib/local/start.ts',
      '--serve',
      '--env-out',
      envFile,
      '--seed',
      seedFile,
      '--policy',
      intakePolicyPath,
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  for (let waited = 0; !(await exists(envFile)); waited += 200) {
    if (waited > 60_000 || child.exitCode !== null) throw new Error(`the stack did not start:\n${output}`);
    await sleep(200);
  }
  // The file is written in one call; wait for its last line.
  for (let waited = 0; !(await readFile(envFile, 'utf8')).endsWith('\n') && waited < 5_000; waited += 50)
    await sleep(50);
  env = Object.fromEntries(
    (await readFile(envFile, 'utf8'))
      .trim()
      .split('\n')
      .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
  );
}, 90_000);

afterAll(async () => {
  if (child !== undefined && child.exitCode === null) {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** `swr-access show --user NAME --json` with the environment file, as an operator runs it. */
const shown = async (userName: string): Promise<Record<string, string>> => {
  const out: string[] = [];
  const io: Partial<CliIo> = {
    stdout: { write: (text: string) => out.push(text) },
    stderr: { write: () => undefined },
    stdin: (async function* () {})(),
    env,
  };
  expect(await cli(['show', '--user', userName, '--json'], io)).toBe(0);
  const result = JSON.parse(out.join('')) as { permissions: Array<{ target: string; permission: string }> };
  return Object.fromEntries(result.permissions.map((entry) => [entry.target, entry.permission]));
};

/** Polls `show` until it reports `expected` (the pollers work in the background), at most 30 s. */
const eventually = async (
  userName: string,
  expected: Record<string, string>,
): Promise<Record<string, string>> => {
  let last: Record<string, string> = {};
  for (let waited = 0; waited <= 30_000; waited += 250) {
    last = await shown(userName);
    if (JSON.stringify(Object.entries(last).sort()) === JSON.stringify(Object.entries(expected).sort()))
      return last;
    await sleep(250);
  }
  return last;
};

const frontendGrants = { 'core/web/frontend': 'write', 'core/base/node': 'read' };
const dataGrants = { 'data/etl/jobs': 'write', 'core/base/node': 'read' };

describe('npm start -- --serve', () => {
  it('writes every variable the CLI and invoke local need, with loopback queue URLs', () => {
    // Assess
    for (const name of [
      'INTAKE_URL',
      'INTAKE_SCIM_TOKEN',
      'OKTA_HOOK_SECRET',
      'SWR_ENDPOINT',
      'IAM_ENDPOINT',
      'SWR_AUTH_TOKEN',
      'TABLE_NAME',
      'POLICY_FILE',
      'AWS_ENDPOINT_URL_SQS',
      'AWS_ENDPOINT_URL_DYNAMODB',
      'AWS_REGION',
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
    ])
      expect(env[name], name).toBeTruthy();
    // access-changes and its DLQ are standard queues, offboarding and its DLQ FIFO.
    for (const name of ['ACCESS_CHANGES_QUEUE_URL', 'ACCESS_CHANGES_DLQ_URL'])
      expect(env[name]).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\d{12}\/access-changes(-dlq)?$/);
    for (const name of ['OFFBOARDING_QUEUE_URL', 'OFFBOARDING_DLQ_URL'])
      expect(env[name]).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\d{12}\/offboarding(-dlq)?\.fifo$/);
    // Secrets go to the file, never to the terminal.
    expect(output).not.toContain(env.INTAKE_SCIM_TOKEN);
    expect(output).not.toContain(env.OKTA_HOOK_SECRET);
  });

  it('ends an Entra-shaped conversation with the permissions the policy gives', async () => {
    // Prepare
    const scim = scimClient(env.INTAKE_URL as string, env.INTAKE_SCIM_TOKEN as string);

    // Act
    const user = await scim('POST', '/Users', sample('entra-create-user.json'));
    const group = await scim('POST', '/Groups', sample('entra-create-group.json'));
    const added = await scim(
      'PATCH',
      `/Groups/${group.body.id}`,
      sample('entra-patch-group-add-member.json', { f648f8d5ea4e4cd38e9c: String(user.body.id) }),
    );
    const granted = await eventually(sampleUsers.entra.name, frontendGrants);
    const disabled = await scim(
      'PATCH',
      `/Users/${user.body.id}`,
      sample('entra-patch-user-disable-string.json'),
    );
    const revoked = await eventually(sampleUsers.entra.name, {});

    // Assess
    expect([user.status, group.status, added.status, disabled.status]).toEqual([201, 201, 204, 200]);
    expect(granted).toEqual(frontendGrants);
    expect(revoked).toEqual({});
  });

  it('ends an Okta-shaped conversation with the permissions the policy gives', async () => {
    // Prepare
    const scim = scimClient(env.INTAKE_URL as string, env.INTAKE_SCIM_TOKEN as string);

    // Act
    const user = await scim('POST', '/Users', sample('okta-scim-create-user.json'));
    const group = await scim('POST', '/Groups', sample('okta-scim-create-group.json'));
    const ids = { '23a35c27-23d3-4c03-b4c5-6443c09e7173': String(user.body.id) };
    const members = await scim(
      'PATCH',
      `/Groups/${group.body.id}`,
      sample('okta-scim-patch-group-members.json', ids),
    );
    const granted = await eventually(sampleUsers.okta.name, dataGrants);
    const deactivated = await scim(
      'PATCH',
      `/Users/${user.body.id}`,
      sample('okta-scim-deactivate-user.json'),
    );
    const revoked = await eventually(sampleUsers.okta.name, {});

    // Assess
    expect([user.status, group.status, members.status, deactivated.status]).toEqual([201, 201, 204, 200]);
    expect(granted).toEqual(dataGrants);
    expect(revoked).toEqual({});
  });

  it('lets a handler configured from the file alone dead-letter (what invoke local does)', async () => {
    // Prepare: the SDK clients read the endpoints from the environment, as in invoke local.
    const saved = { ...process.env };
    Object.assign(process.env, env);
    const telemetry = createMemoryTelemetry();
    const event = JSON.parse(await readFile(join(root, 'events/sqs-malformed.json'), 'utf8')) as SQSEvent;
    try {
      const handler = createSqsHandler(
        createQueueRuntime({
          functionName: 'sync',
          queue: 'accessChanges',
          env,
          log: telemetry.log,
          metrics: telemetry.metrics,
        }),
      );

      // Act
      const answer = await handler(event, createLambdaContext('sync', 30_000) as Context);
      const sqs = new SQSClient({});
      const letters = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: env.ACCESS_CHANGES_DLQ_URL,
          MaxNumberOfMessages: 10,
          MessageAttributeNames: ['All'],
          WaitTimeSeconds: 1,
        }),
      );
      sqs.destroy();

      // Assess
      expect(answer).toEqual({ batchItemFailures: [] });
      expect((letters.Messages ?? []).length).toBeGreaterThan(0);
      expect(letters.Messages?.[0]?.MessageAttributes?.errorCode?.StringValue).toBeDefined();
    } finally {
      process.env = saved;
    }
  });

  it('stops on Ctrl-C and removes the environment file', async () => {
    // Act
    child.kill('SIGINT');
    const [code] = (await Promise.race([once(child, 'exit'), sleep(30_000).then(() => ['timeout'])])) as [
      unknown,
    ];

    // Assess
    expect(code).toBe(0);
    expect(await exists(join(dir, 'stack.env'))).toBe(false);
  });
});
