/**
 * No secret ever leaves the service: with every auth kind (static token, IAM password, password +
 * agency, AK/SK with a security token), at DEBUG level, through the real handler wiring of the
 * local stack, with good events, 401s (expired and refused credentials), permanent failures that
 * go to the DLQ and configuration errors, nothing written to stdout or stderr, no memory log line,
 * no thrown error (message, stack, JSON, cause chain, inspect), no DLQ attribute and no request
 * path carries the token, password, SK, security token, or a token IAM issued (X-Subject-Token).
 *
 * The intake is covered the same way: its SCIM token and Okta hook secret, right and wrong, on every
 * route, a password inside a SCIM user, failed enqueues, and its configuration errors.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main as cliMain } from '../../lib/cli/main.ts';
import { authFromSecret, readConfig } from '../../lib/config.ts';
import type { PeopleEvent, Target } from '../../lib/domain.ts';
import { intakeSecretsFromJson, readIntakeConfig } from '../../lib/intake/config.ts';
import { startLocalIntake } from '../../lib/local/intake.ts';
import { startLocalStack } from '../../lib/local/stack.ts';
import {
  createMemoryTelemetry,
  createPowertoolsLog,
  createPowertoolsMetrics,
  type Log,
} from '../../lib/observability.ts';
import { createQueueRuntime } from '../../lib/runtime.ts';
import { loadSeed, type SimulatorSeed, startSimulator } from '../../lib/sim/index.ts';
import { type AuthConfig, createSwrServices } from '../../lib/swr/index.ts';

/** Distinctive values: any of them, or the common prefix of a truncated one, is a leak. */
const secrets = {
  password: 'S3CR3T-PASSWORD-7f3a9c51e2',
  wrongPassword: 'S3CR3T-WRONG-PASSWORD-44d1',
  staticToken: 'S3CR3T-STATIC-TOKEN-5b8e2d41c0aa',
  wrongToken: 'S3CR3T-WRONG-TOKEN-0b1c2d3e4f55',
  sk: 'S3CR3T-SK-0c4f9a7e1b2d6e8f0a1b',
  wrongSk: 'S3CR3T-WRONG-SK-9a8b7c6d5e4f',
  securityToken: 'S3CR3T-SECURITY-TOKEN-9d1e77aa',
  scimToken: 'S3CR3T-SCIM-TOKEN-4f1a9b2c7d3e5f60a1b2c3',
  wrongScimToken: 'S3CR3T-WRONG-SCIM-TOKEN-8e7d6c5b4a39',
  oktaHookSecret: 'S3CR3T-OKTA-HOOK-SECRET-1a2b3c4d5e6f7',
  wrongHookSecret: 'S3CR3T-WRONG-HOOK-SECRET-9f8e7d6c5b4',
  userPassword: 'S3CR3T-USER-PASSWORD-from-okta-6c2d',
} as const;
const secretPrefix = 'S3CR3T';
/** Every token the simulator issues starts so (lib/sim/auth.ts). */
const issuedTokenPrefix = 'MIIsim';
const ak = 'AKSECRETSTEST0000001';

const alice = { id: 'a11ce000000000000000000000000001', name: 'alice' };
const carol = { id: 'ca201000000000000000000000000003', name: 'carol' };
const frank = { id: 'f2a4c000000000000000000000000006', name: 'frank' };

const seedWithSecrets = (): SimulatorSeed => {
  const base = loadSeed();
  return {
    ...base,
    serviceAccount: { ...base.serviceAccount, password: secrets.password, staticToken: secrets.staticToken },
    credentials: [
      { ak, sk: secrets.sk, userId: base.serviceAccount.id, securityToken: secrets.securityToken },
    ],
  };
};

/** Everything the run produced, as text to search. */
const captured: string[] = [];
/** Exit codes of the CLI runs (a string when it threw instead). */
const cliRuns: Array<number | string> = [];
/** X-Subject-Token values IAM handed out during the run (read off the wire). */
const issuedTokens = new Set<string>();

const onHeaders = (message: unknown): void => {
  const headers = (message as { response?: { headers?: Array<Buffer | string> } }).response?.headers ?? [];
  for (let index = 0; index + 1 < headers.length; index += 2)
    if (String(headers[index]).toLowerCase() === 'x-subject-token')
      issuedTokens.add(String(headers[index + 1]));
};

const describeError = (error: unknown): string => {
  const parts: string[] = [inspect(error, { depth: 10, showHidden: true })];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 10; depth += 1) {
    if (current instanceof Error) parts.push(current.name, current.message, current.stack ?? '');
    parts.push(JSON.stringify(current, Object.getOwnPropertyNames(current ?? {})) ?? '');
    parts.push(String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join('\n');
};

const thrown = async (action: () => unknown): Promise<unknown> => {
  try {
    await action();
  } catch (error) {
    return error;
  }
  throw new Error('expected the action to throw');
};

/** Powertools (stdout, JSON) and memory at once: both must stay clean. */
const teeLog = (a: Log, b: Log): Log => {
  const both =
    (level: keyof Log) =>
    (message: string, attributes?: Record<string, unknown>): void => {
      a[level](message, attributes);
      b[level](message, attributes);
    };
  return { debug: both('debug'), info: both('info'), warn: both('warn'), error: both('error') };
};

let counter = 0;
const eventFactory = (user: typeof alice, overrides: Partial<PeopleEvent> = {}): PeopleEvent =>
  ({
    id: `secrets-${++counter}`,
    type: 'membership.added',
    occurredAt: new Date(Date.parse('2026-03-01T00:00:00Z') + counter * 60_000).toISOString(),
    user,
    team: 'backend',
    ...overrides,
  }) as PeopleEvent;

/** Environment of one auth kind; the stack's default password variables are blanked when unused. */
const authKinds = (seed: SimulatorSeed) => {
  const none = { HUAWEICLOUD_IAM_USER: '', HUAWEICLOUD_IAM_PASSWORD: '' };
  const password = {
    HUAWEICLOUD_IAM_DOMAIN: seed.account.name,
    HUAWEICLOUD_IAM_USER: seed.serviceAccount.name,
    HUAWEICLOUD_PROJECT: seed.project.name,
  };
  const agency = seed.agencies?.[0];
  return [
    {
      kind: 'token',
      good: { ...none, SWR_AUTH_TOKEN: secrets.staticToken },
      bad: { ...none, SWR_AUTH_TOKEN: secrets.wrongToken },
    },
    {
      kind: 'password',
      good: { ...password, HUAWEICLOUD_IAM_PASSWORD: secrets.password },
      bad: { ...password, HUAWEICLOUD_IAM_PASSWORD: secrets.wrongPassword },
    },
    {
      kind: 'password + agency',
      good: {
        ...password,
        HUAWEICLOUD_IAM_PASSWORD: secrets.password,
        HUAWEICLOUD_IAM_AGENCY_DOMAIN: agency?.domain ?? '',
        HUAWEICLOUD_IAM_AGENCY: agency?.name ?? '',
      },
      bad: {
        ...password,
        HUAWEICLOUD_IAM_PASSWORD: secrets.wrongPassword,
        HUAWEICLOUD_IAM_AGENCY_DOMAIN: agency?.domain ?? '',
        HUAWEICLOUD_IAM_AGENCY: agency?.name ?? '',
      },
    },
    {
      kind: 'aksk',
      good: {
        ...none,
        HUAWEICLOUD_SDK_AK: ak,
        HUAWEICLOUD_SDK_SK: secrets.sk,
        HUAWEICLOUD_PROJECT_ID: seed.project.id,
        HUAWEICLOUD_DOMAIN_ID: seed.account.id,
        HUAWEICLOUD_SECURITY_TOKEN: secrets.securityToken,
      },
      bad: {
        ...none,
        HUAWEICLOUD_SDK_AK: ak,
        HUAWEICLOUD_SDK_SK: secrets.wrongSk,
        HUAWEICLOUD_PROJECT_ID: seed.project.id,
        HUAWEICLOUD_DOMAIN_ID: seed.account.id,
        HUAWEICLOUD_SECURITY_TOKEN: secrets.securityToken,
      },
    },
  ] as const;
};

const serverTarget: Target = { kind: 'repo', namespace: 'core', repository: 'api/server' };
const previousLevel = process.env.POWERTOOLS_LOG_LEVEL;
const telemetry = createMemoryTelemetry();
const levels: string[] = [];
const outcomes: Array<{ kind: string; deadLetters: number; applied: boolean }> = [];
const intakeStatuses: number[] = [];

beforeAll(async () => {
  process.env.POWERTOOLS_LOG_LEVEL = 'DEBUG';
  diagnosticsChannel.subscribe('undici:request:headers', onHeaders);
  const keep = (chunk: unknown): boolean => {
    captured.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    return true;
  };
  vi.spyOn(process.stdout, 'write').mockImplementation(keep);
  vi.spyOn(process.stderr, 'write').mockImplementation(keep);
  const seed = seedWithSecrets();
  try {
    for (const { kind, good, bad } of authKinds(seed)) {
      const powertools = createPowertoolsLog(`secrets-${kind}`);
      levels.push(powertools.logger.getLevelName());
      const log = teeLog(powertools, telemetry.log);
      // Good credentials: events applied, tokens expired under the handler (401 → fresh token),
      // and a permanent 403 on one repository that sends its message to the DLQ.
      const stack = await startLocalStack({
        seed,
        env: { ...good, RETRY_MAX_ATTEMPTS: '2' },
        log,
        metrics: createPowertoolsMetrics(`secrets-${kind}`),
      });
      try {
        await stack.send([eventFactory(alice)]);
        await stack.drain({ timeoutMs: 30_000 });
        stack.sim.expireTokens();
        stack.sim.setFaults({ failTargets: [{ target: 'core/web/frontend', method: 'POST', status: 403 }] });
        await stack.send([
          eventFactory(alice, { type: 'membership.removed' }),
          eventFactory(frank, { team: 'security' }),
        ]);
        await stack.drain({ timeoutMs: 30_000 });
        const letters = await stack.deadLetters({ remove: true });
        captured.push(JSON.stringify(letters));
        captured.push(JSON.stringify(stack.sim.requestLog()));
        outcomes.push({
          kind,
          deadLetters: letters.length,
          applied: stack.sim.permissions().repos['core/api/server']?.[alice.id] === undefined,
        });
      } finally {
        await stack.stop();
      }
      // Refused credentials: every message fails authentication and is dead-lettered with its reason.
      const refused = await startLocalStack({ seed, env: bad, log, metrics: createPowertoolsMetrics(kind) });
      try {
        await refused.send([eventFactory(carol, { team: 'data' })]);
        await refused.drain({ timeoutMs: 30_000 });
        const letters = await refused.deadLetters({ remove: true });
        captured.push(JSON.stringify(letters));
        outcomes.push({ kind: `${kind} (refused)`, deadLetters: letters.length, applied: false });
      } finally {
        await refused.stop();
      }
    }

    // The intake: its SCIM token and Okta hook secret presented right and wrong on every route, a
    // password in a SCIM user (Okta sends one), failures to enqueue, at DEBUG through the real wiring.
    const intakeStack = await startLocalStack({
      seed: { ...seed, users: [...seed.users, { id: 'e1a0000000000000000000000000e001', name: 'ann' }] },
      env: authKinds(seed)[0].good,
      log: teeLog(createPowertoolsLog('secrets-intake'), telemetry.log),
      metrics: createPowertoolsMetrics('secrets-intake'),
    });
    try {
      const intake = await startLocalIntake(intakeStack, {
        scimToken: secrets.scimToken,
        oktaHookSecret: secrets.oktaHookSecret,
        log: teeLog(createPowertoolsLog('secrets-intake'), telemetry.log),
        metrics: createPowertoolsMetrics('secrets-intake'),
      });
      try {
        const call = async (path: string, init: RequestInit): Promise<string> => {
          const response = await fetch(`${intake.url}${path}`, init);
          const text = await response.text();
          captured.push(`${response.status} ${JSON.stringify([...response.headers])} ${text}`);
          intakeStatuses.push(response.status);
          return text;
        };
        const scimHeaders = (token: string) => ({
          authorization: `Bearer ${token}`,
          'content-type': 'application/scim+json',
        });
        // The demo policy maps users by userName: this one is the IAM user ann.
        const user = {
          schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
          userName: 'ann',
          emails: [{ value: 'ann@corp.example', primary: true }],
          password: secrets.userPassword,
        };
        const created = await call('/scim/v2/Users', {
          method: 'POST',
          headers: scimHeaders(secrets.scimToken),
          body: JSON.stringify(user),
        });
        const annId = String((JSON.parse(created) as { id: string }).id);
        await call('/scim/v2/Users', { method: 'GET', headers: scimHeaders(secrets.scimToken) });
        await call('/scim/v2/Users', { method: 'GET', headers: scimHeaders(secrets.wrongScimToken) });
        await call('/scim/v2/Users', { method: 'GET', headers: { authorization: secrets.scimToken } });
        await call(`/scim/v2/Users?filter=${encodeURIComponent(`userName eq "${secrets.wrongScimToken}"`)}`, {
          headers: scimHeaders(secrets.wrongScimToken),
        });
        await call('/scim/v2/Users', {
          method: 'POST',
          headers: scimHeaders(secrets.scimToken),
          body: '{"password": "',
        });
        await call('/hooks/okta', {
          headers: { authorization: secrets.oktaHookSecret, 'x-okta-verification-challenge': 'challenge-1' },
        });
        await call('/hooks/okta', {
          headers: { authorization: secrets.wrongHookSecret, 'x-okta-verification-challenge': 'challenge-2' },
        });
        const delivery = {
          data: {
            events: [
              {
                uuid: 'secrets-hook-1',
                published: new Date().toISOString(),
                eventType: 'user.lifecycle.deactivate',
                target: [{ id: '00u1', type: 'User', alternateId: 'ann' }],
              },
            ],
          },
        };
        await call('/hooks/okta', {
          method: 'POST',
          headers: { authorization: secrets.oktaHookSecret },
          body: JSON.stringify(delivery),
        });
        await call('/hooks/okta', {
          method: 'POST',
          headers: { authorization: secrets.wrongHookSecret },
          body: '{}',
        });
        await call('/events', {
          method: 'POST',
          headers: { authorization: `Bearer ${secrets.scimToken}` },
          body: '[]',
        });
        // SQS refuses everything for a while: the intake answers 5xx and logs why, without secrets.
        await intakeStack.sqs.stop();
        await call('/scim/v2/Groups', {
          method: 'POST',
          headers: scimHeaders(secrets.scimToken),
          body: JSON.stringify({
            schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
            displayName: 'data',
            members: [{ value: annId }],
          }),
        });
        await call('/hooks/okta', {
          method: 'POST',
          headers: { authorization: secrets.oktaHookSecret },
          body: JSON.stringify({
            data: { events: [{ ...delivery.data.events[0], uuid: 'secrets-hook-2' }] },
          }),
        });
      } finally {
        await intake.close();
      }
      captured.push(JSON.stringify(intakeStack.sim.requestLog()));
    } finally {
      await intakeStack.stop();
    }
    for (const configError of [
      () =>
        readIntakeConfig({
          ACCESS_CHANGES_QUEUE_URL: 'q',
          OFFBOARDING_QUEUE_URL: 'q',
          INTAKE_SCIM_TOKEN: 'S3CR3T-short',
        }),
      () =>
        readIntakeConfig({
          ACCESS_CHANGES_QUEUE_URL: 'q',
          INTAKE_SECRET_ARN: secrets.scimToken,
          OKTA_HOOK_SECRET: secrets.oktaHookSecret,
        }),
      () => intakeSecretsFromJson(`{"scimToken": "${secrets.scimToken}", `),
      () =>
        intakeSecretsFromJson(
          JSON.stringify({ scimToken: 'S3CR3T-short', oktaHookSecret: secrets.oktaHookSecret }),
        ),
    ])
      captured.push(describeError(await thrown(configError)));

    // The client on its own, right and wrong credentials of every kind: every thrown error.
    const sim = await startSimulator({ seed });
    try {
      const auths: AuthConfig[] = [
        { kind: 'token', token: secrets.wrongToken },
        {
          kind: 'password',
          domain: seed.account.name,
          user: seed.serviceAccount.name,
          password: secrets.wrongPassword,
          project: seed.project.name,
        },
        {
          kind: 'password',
          domain: seed.account.name,
          user: seed.serviceAccount.name,
          password: secrets.password,
          project: seed.project.name,
          agencyDomain: seed.account.name,
          agency: 'no-such-agency',
        },
        {
          kind: 'aksk',
          ak,
          sk: secrets.wrongSk,
          projectId: seed.project.id,
          domainId: seed.account.id,
          securityToken: secrets.securityToken,
        },
        { kind: 'aksk', ak, sk: secrets.sk, projectId: seed.project.id, domainId: seed.account.id },
        { kind: 'token', token: secrets.staticToken },
      ];
      sim.setFaults({ failTargets: [{ target: 'core/api/server', method: 'DELETE', status: 500 }] });
      for (const auth of auths) {
        const services = createSwrServices(
          {
            swrEndpoint: sim.swrUrl,
            iamEndpoint: sim.iamUrl,
            auth,
            retry: { maxAttempts: 2, baseDelayMs: 5 },
          },
          {},
        );
        try {
          const failures = await Promise.all([
            thrown(() => services.swr.revoke(serverTarget, [alice.id])),
            thrown(() =>
              services.users.findByName('alice').then(() => services.swr.revoke(serverTarget, [alice.id])),
            ),
          ]);
          for (const failure of failures) captured.push(describeError(failure));
        } finally {
          await services.close();
        }
      }
    } finally {
      await sim.close();
    }

    // Configuration errors with bad values next to real secrets.
    const base = {
      SWR_ENDPOINT: 'https://swr-api.eu-west-101.myhuaweicloud.eu',
      IAM_ENDPOINT: 'https://iam.myhuaweicloud.com',
      TABLE_NAME: 'table',
      ACCESS_CHANGES_DLQ_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/dlq.fifo',
    };
    const configErrors = [
      () =>
        readConfig({
          ...base,
          SWR_AUTH_TOKEN: secrets.staticToken,
          HUAWEICLOUD_IAM_PASSWORD: secrets.password,
        }),
      () =>
        readConfig({
          ...base,
          HUAWEICLOUD_SDK_SK: secrets.sk,
          HUAWEICLOUD_SECURITY_TOKEN: secrets.securityToken,
        }),
      () => readConfig({ ...base, HUAWEICLOUD_IAM_PASSWORD: secrets.password, REQUEST_TIMEOUT_MS: 'soon' }),
      () =>
        readConfig({
          ...base,
          SWR_ENDPOINT: `http://swr-sync:${secrets.password}@swr.example.com`,
          SWR_AUTH_TOKEN: secrets.staticToken,
        }),
      () => authFromSecret(`{"HUAWEICLOUD_SDK_SK": "${secrets.sk}", `),
      () => authFromSecret(JSON.stringify({ HUAWEICLOUD_SDK_SK: secrets.sk })),
      () => authFromSecret(JSON.stringify([secrets.password])),
      () =>
        createQueueRuntime({
          functionName: 'sync',
          queue: 'offboarding',
          env: { ...base, SWR_AUTH_TOKEN: secrets.staticToken },
          log: telemetry.log,
          metrics: telemetry.metrics,
        }),
    ];
    for (const configError of configErrors) captured.push(describeError(await thrown(configError)));

    // The operator CLI with each kind of credentials: IAM and SWR unreachable (a closed loopback
    // port), a refused config, and --json output. Everything it prints is scanned.
    const unreachable = { SWR_ENDPOINT: 'http://127.0.0.1:9', IAM_ENDPOINT: 'http://127.0.0.1:9' };
    const cliEnvs: Array<Record<string, string>> = [
      { ...unreachable, SWR_AUTH_TOKEN: secrets.staticToken },
      {
        ...unreachable,
        HUAWEICLOUD_IAM_DOMAIN: 'demo-corp',
        HUAWEICLOUD_IAM_USER: 'swr-sync',
        HUAWEICLOUD_IAM_PASSWORD: secrets.password,
        HUAWEICLOUD_PROJECT: 'eu-west-101',
      },
      {
        ...unreachable,
        HUAWEICLOUD_SDK_AK: ak,
        HUAWEICLOUD_SDK_SK: secrets.sk,
        HUAWEICLOUD_PROJECT_ID: '0123',
        HUAWEICLOUD_DOMAIN_ID: 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0',
        HUAWEICLOUD_SECURITY_TOKEN: secrets.securityToken,
      },
      { ...unreachable, SWR_AUTH_TOKEN: secrets.staticToken, HUAWEICLOUD_SDK_SK: secrets.sk },
    ];
    const policyArgs = ['--policy', 'config/demo-policy.yaml', '--events', 'events/demo.ndjson'];
    for (const env of cliEnvs)
      for (const argv of [
        ['plan', ...policyArgs, '--json'],
        ['apply', ...policyArgs],
        ['reconcile', '--dry-run'],
      ]) {
        const out: string[] = [];
        const sink = { write: (text: string) => out.push(text) };
        const code = await cliMain(argv, {
          stdout: sink,
          stderr: sink,
          stdin: (async function* () {})(),
          env: { ...env, RETRY_MAX_ATTEMPTS: '1', REQUEST_TIMEOUT_MS: '500' },
        }).catch((error: unknown) => describeError(error));
        cliRuns.push(code);
        captured.push(out.join(''));
      }
  } finally {
    vi.restoreAllMocks();
    diagnosticsChannel.unsubscribe('undici:request:headers', onHeaders);
    if (previousLevel === undefined) delete process.env.POWERTOOLS_LOG_LEVEL;
    else process.env.POWERTOOLS_LOG_LEVEL = previousLevel;
  }
  captured.push(JSON.stringify(telemetry.lines));
}, 240_000);

afterAll(() => {
  vi.restoreAllMocks();
});

describe('secrets never leave the service', () => {
  it('really ran every auth kind at DEBUG, with DLQ letters, 401s and fresh tokens', () => {
    // Assess
    expect(outcomes.map((outcome) => outcome.kind)).toEqual([
      'token',
      'token (refused)',
      'password',
      'password (refused)',
      'password + agency',
      'password + agency (refused)',
      'aksk',
      'aksk (refused)',
    ]);
    for (const outcome of outcomes) expect(outcome.deadLetters, outcome.kind).toBeGreaterThan(0);
    for (const outcome of outcomes.filter((o) => !o.kind.includes('refused')))
      expect(outcome.applied).toBe(true);
    // Password and agency runs fetched tokens again after they were expired.
    expect(issuedTokens.size).toBeGreaterThanOrEqual(4);
    const output = captured.join('\n');
    expect(levels).toEqual(['DEBUG', 'DEBUG', 'DEBUG', 'DEBUG']);
    expect(output).toContain('"message":"message dead-lettered"');
    expect(output).toMatch(/answered 401/);
  });

  it.each(Object.entries(secrets))('never shows %s', (_, value) => {
    // Assess
    const output = captured.join('\n');
    expect(output.includes(value)).toBe(false);
    expect(output.includes(value.slice(0, 16))).toBe(false);
  });

  it('really exercised the intake: accepted, refused, and failed to enqueue', () => {
    // Assess
    expect(intakeStatuses).toEqual([201, 200, 401, 200, 401, 400, 200, 401, 204, 401, 403, 503, 503]);
  });

  it('ran the CLI with every kind of credentials, and it failed cleanly (exit 1 or 2)', () => {
    // Assess
    expect(cliRuns).toHaveLength(12);
    for (const code of cliRuns) expect([1, 2]).toContain(code);
  });

  it('never shows any part that looks like one of the test secrets', () => {
    // Assess
    const leaks = captured.filter((text) => text.includes(secretPrefix)).map((text) => text.slice(0, 300));
    expect(leaks).toEqual([]);
  });

  it('never shows a token IAM issued (X-Subject-Token)', () => {
    // Assess
    const output = captured.join('\n');
    for (const token of issuedTokens) {
      expect(token.startsWith(issuedTokenPrefix)).toBe(true);
      expect(output.includes(token.slice(0, 24))).toBe(false);
    }
    expect(output.includes(issuedTokenPrefix)).toBe(false);
  });
});
