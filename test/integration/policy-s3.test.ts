import { readFile } from 'node:fs/promises';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadCliPolicy, readCliConfig } from '../../lib/cli/services.ts';
import { readConfig } from '../../lib/config.ts';
import { ConfigError } from '../../lib/errors.ts';
import { createMemoryTelemetry, MetricNames } from '../../lib/observability.ts';
import { createS3PolicyLoader } from '../../lib/policy-source/s3-loader.ts';
import { createReconcileRuntime } from '../../lib/reconcile/runtime.ts';
import { type FakeS3, startFakeS3 } from '../support/fake-s3.ts';

/*
 * The policy read from a versioned S3 object, against a tiny S3-compatible server on 127.0.0.1
 * and the real S3 client: conditional GETs, a new version taken when valid, a bad one refused and
 * alarmed with the last good one kept, an unreadable object likewise, a bad first version fatal.
 */

let s3: FakeS3;
let client: S3Client;

const bucket = 'acme-policies';
const key = 'swr/policy.yaml';
const object = { bucket, key, uri: `s3://${bucket}/${key}` };

const policyWith = (teams: Record<string, string>): string =>
  [
    'version: 1',
    'teams:',
    ...Object.entries(teams).flatMap(([team, repository]) => [
      `  ${team}:`,
      `    - { namespace: core, repository: ${repository}, permission: write }`,
    ]),
    '',
  ].join('\n');

beforeAll(async () => {
  s3 = await startFakeS3();
  client = new S3Client({
    endpoint: s3.endpoint,
    forcePathStyle: true,
    region: 'eu-west-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    maxAttempts: 1,
  });
});

afterAll(async () => {
  client.destroy();
  await s3.close();
});

/** A loader with a clock the test moves; the interval is 60 s. */
const loaderFactory = () => {
  const telemetry = createMemoryTelemetry();
  let clock = 1_000_000;
  const loader = createS3PolicyLoader({
    s3: client,
    object,
    reloadIntervalMs: 60_000,
    log: telemetry.log,
    metrics: telemetry.metrics,
    now: () => clock,
  });
  return {
    loader,
    telemetry,
    advance: (ms: number) => {
      clock += ms;
    },
  };
};

const requestsSince = (start: number) => s3.requests.slice(start);

describe('the S3 policy loader', () => {
  beforeEach(() => {
    s3.denyAll(false);
    s3.put(bucket, key, policyWith({ platform: 'api/server' }));
  });

  it('reads the object once per interval, and then only asks whether it changed', async () => {
    // Prepare
    const { loader, advance } = loaderFactory();
    const start = s3.requests.length;

    // Act
    const first = await loader.load();
    const cached = await loader.load();
    advance(60_000);
    const checked = await loader.load();

    // Assess
    expect(Object.keys(first.teams)).toEqual(['platform']);
    expect(first.sourcePath).toMatch(/^s3:\/\/acme-policies\/swr\/policy\.yaml\?versionId=v\d+$/);
    expect(cached).toBe(first);
    expect(checked).toBe(first);
    expect(requestsSince(start).map((request) => request.status)).toEqual([200, 304]);
    expect(requestsSince(start)[1]?.ifNoneMatch).toMatch(/^"[0-9a-f]{32}"$/);
  });

  it('takes a new valid version at the next check', async () => {
    // Prepare
    const { loader, advance, telemetry } = loaderFactory();
    await loader.load();
    const next = s3.put(bucket, key, policyWith({ platform: 'api/server', data: 'etl/jobs' }));

    // Act
    const beforeCheck = await loader.load();
    advance(61_000);
    const after = await loader.load();

    // Assess
    expect(Object.keys(beforeCheck.teams)).toEqual(['platform']);
    expect(Object.keys(after.teams).sort()).toEqual(['data', 'platform']);
    expect(after.sourcePath).toBe(`${object.uri}?versionId=${next.versionId}`);
    expect(telemetry.counters.get(MetricNames.policyReloaded)).toBe(1);
    expect(telemetry.lines).toContainEqual(
      expect.objectContaining({ level: 'INFO', message: 'access policy reloaded', teams: 2 }),
    );
  });

  it.each([
    [
      'a version that is not valid',
      () => s3.put(bucket, key, policyWith({ platform: 'Api/Server' })),
      /Api\/Server/,
    ],
    ['a version that is not YAML', () => s3.put(bucket, key, 'teams: [unclosed'), /YAML syntax/],
    ['an object that cannot be read', () => s3.denyAll(true), /AccessDenied/],
  ])('keeps the last good policy and alarms on %s, at every check', async (_case, breakIt, reason) => {
    // Prepare
    const { loader, advance, telemetry } = loaderFactory();
    const good = await loader.load();
    breakIt();

    // Act
    advance(60_000);
    const first = await loader.load();
    advance(60_000);
    const second = await loader.load();

    // Assess
    expect(first).toBe(good);
    expect(second).toBe(good);
    expect(telemetry.counters.get(MetricNames.policyReloadFailed)).toBe(2);
    const alarms = telemetry.lines.filter((line) => line.alarm === 'policy');
    expect(alarms).toHaveLength(2);
    expect(alarms[0]).toMatchObject({ level: 'ERROR', policySource: object.uri, inUse: good.sourcePath });
    expect(String(alarms[0]?.reason)).toMatch(reason);
  });

  it('fails the first load on a bad version, naming every problem, and alarms', async () => {
    // Prepare
    s3.put(bucket, key, policyWith({ platform: 'Api/Server', data: '-jobs' }));
    const { loader, telemetry } = loaderFactory();

    // Act
    const loaded = loader.load();

    // Assess
    await expect(loaded).rejects.toBeInstanceOf(ConfigError);
    await expect(loaded).rejects.toMatchObject({ code: 'POLICY' });
    const error = (await loaded.catch((caught: unknown) => caught)) as ConfigError;
    expect(error.problems).toHaveLength(2);
    expect(error.problems[0]).toMatch(/^s3:\/\/acme-policies\/swr\/policy\.yaml\?versionId=v\d+:\d+:\d+: /);
    expect(telemetry.counters.get(MetricNames.policyReloadFailed)).toBe(1);
  });

  it('fails the first load when the object does not exist, and tries again on the next load', async () => {
    // Prepare
    const { loader } = loaderFactory();
    const missing = createS3PolicyLoader({
      s3: client,
      object: { ...object, key: 'nothing-here.yaml', uri: `s3://${bucket}/nothing-here.yaml` },
      reloadIntervalMs: 60_000,
      ...createMemoryTelemetry(),
    });

    // Act / Assess
    await expect(missing.load()).rejects.toThrow(
      /cannot read access policy s3:\/\/acme-policies\/nothing-here\.yaml \(NoSuchKey\)/,
    );
    await expect(missing.load()).rejects.toThrow(/NoSuchKey/);
    await expect(loader.load()).resolves.toMatchObject({ version: 1 });
  });

  it('shares one request between concurrent loads', async () => {
    // Prepare
    const { loader } = loaderFactory();
    const start = s3.requests.length;

    // Act
    const [a, b, c] = await Promise.all([loader.load(), loader.load(), loader.load()]);

    // Assess
    expect(requestsSince(start)).toHaveLength(1);
    expect(b).toBe(a);
    expect(c).toBe(a);
  });
});

describe('POLICY_S3_URI', () => {
  const base = {
    SWR_ENDPOINT: 'http://127.0.0.1:9',
    IAM_ENDPOINT: 'http://127.0.0.1:9',
    SWR_AUTH_TOKEN: 'test-token-not-a-secret',
  };

  it.each([
    ['s3://acme-policies/swr/policy.yaml', undefined],
    ['https://acme-policies.s3.amazonaws.com/policy.yaml', 'must be s3://<bucket>/<key>'],
    ['s3://Acme/policy.yaml', 'is not an S3 bucket name'],
    ['s3://acme-policies/swr/', 'names a folder'],
  ])('%s', (uri, problem) => {
    // Act
    const read = () => readConfig({ ...base, POLICY_S3_URI: uri, POLICY_FILE: 'config/policy.yaml' });

    // Assess
    if (problem === undefined) expect(read().policyS3).toEqual({ bucket, key, uri });
    else expect(read).toThrow(problem);
  });

  it('makes the reconcile runtime run with the newest valid version', async () => {
    // Prepare
    s3.denyAll(false);
    s3.put(bucket, 'runtime.yaml', policyWith({ platform: 'api/server' }));
    const runtime = createReconcileRuntime({
      functionName: 'reconcile',
      env: {
        ...base,
        TABLE_NAME: 'memberships',
        POLICY_S3_URI: `s3://${bucket}/runtime.yaml`,
        POLICY_RELOAD_SECONDS: '1',
      },
      ...createMemoryTelemetry(),
      clients: { s3: client },
    });

    // Act
    const first = await runtime.ready();
    s3.put(bucket, 'runtime.yaml', policyWith({ platform: 'api/server', sre: 'api/worker' }));
    // A bounded wait past the 1 s check interval (the runtime's clock is the real one).
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const second = await runtime.ready();

    // Assess
    expect(Object.keys(first.deps.policy.teams)).toEqual(['platform']);
    expect(Object.keys(second.deps.policy.teams).sort()).toEqual(['platform', 'sre']);
    expect(second.settings).toBe(first.settings);
  });

  it('is what the CLI reads too, unless --policy names a file', async () => {
    // Prepare
    s3.denyAll(false);
    s3.put(bucket, 'cli.yaml', policyWith({ payments: 'payments/api' }));
    const env = { ...base, POLICY_S3_URI: `s3://${bucket}/cli.yaml` };

    // Act
    const fromS3 = await loadCliPolicy(readCliConfig(env), { aws: { s3: client } });
    const fromFile = await loadCliPolicy(readCliConfig(env, { policyFile: 'config/demo-policy.yaml' }), {
      aws: { s3: client },
    });

    // Assess
    expect(Object.keys(fromS3.teams)).toEqual(['payments']);
    expect(fromS3.sourcePath).toMatch(/^s3:\/\/acme-policies\/cli\.yaml\?versionId=/);
    expect(fromFile.sourcePath).toBe('config/demo-policy.yaml');
  });

  it('ships config/policy.yaml readable by the same parser the S3 loader uses', async () => {
    // Prepare: the packaged policy uploaded as it is
    s3.put(bucket, 'copied.yaml', await readFile('config/policy.yaml', 'utf8'));
    const loader = createS3PolicyLoader({
      s3: client,
      object: { bucket, key: 'copied.yaml', uri: `s3://${bucket}/copied.yaml` },
      reloadIntervalMs: 60_000,
      ...createMemoryTelemetry(),
    });

    // Act
    const policy = await loader.load();

    // Assess
    expect(Object.keys(policy.teams).length).toBeGreaterThan(1);
  });
});
