import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { zipEntries } from '../../bench/bundles.ts';
import { parsePolicyText } from '../../lib/core/policy.ts';
import { parsePolicy } from '../../lib/core/policy-yaml.ts';
import { functionEnvironment } from '../../lib/local/function-environment.ts';
import { MetricNames, type MetricsSink } from '../../lib/observability.ts';
import { createReconcileRuntime } from '../../lib/reconcile/runtime.ts';
import { createQueueRuntime } from '../../lib/runtime.ts';

/*
 * Packages the service with osls + serverless-esbuild exactly as a deploy would (offline: no AWS
 * account, no network) and asserts the CloudFormation template and the function zips.
 *
 * osls 4 has no telemetry, update check or dashboard, so `serverless package` needs no network
 * and no credentials (verified under `unshare -n` with an empty environment). The environment
 * below only keeps its schema cache out of $HOME (SLS_SCHEMA_CACHE_BASE_DIR) and rules out any
 * prompt (CI=1); the dummy AWS variables guard against a plugin that would look for credentials.
 * The same from a shell:
 *   SLS_SCHEMA_CACHE_BASE_DIR=/tmp/sls CI=1 \
 *   AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=eu-west-1 \
 *   npx serverless package --stage test --package /tmp/swr-access-sync-package
 */

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const serverlessBin = join(root, 'node_modules', 'osls', 'bin', 'serverless.js');
const execFileAsync = promisify(execFile);

interface QueueSettings {
  name: string;
  fifo: boolean;
  function: string;
  batchSize: number;
  maximumBatchingWindowSeconds: number;
  maximumConcurrency: number;
  maxReceiveCount: number;
}
interface QueuesConfig {
  functionTimeoutSeconds: number;
  visibilityTimeoutSeconds: number;
  messageRetentionSeconds: number;
  queues: Record<'accessChanges' | 'offboarding' | 'offboardingSweeps', QueueSettings>;
}

type Props = Record<string, unknown>;
interface CfnResource {
  Type: string;
  Properties: Props;
  Condition?: string;
  DependsOn?: string[];
}
interface CfnTemplate {
  Resources: Record<string, CfnResource>;
  Conditions?: Record<string, unknown>;
  Outputs?: Record<string, unknown>;
}

const functionNames = ['sync', 'offboard', 'reconcile', 'intake'] as const;
const requiredEnvironment = [
  'TABLE_NAME',
  'ACCESS_CHANGES_DLQ_URL',
  'OFFBOARDING_DLQ_URL',
  'OFFBOARDING_SWEEPS_QUEUE_URL',
  'OFFBOARDING_SWEEPS_DLQ_URL',
  'SWR_ENDPOINT',
  'IAM_ENDPOINT',
  'SWR_CREDENTIALS_SECRET_ARN',
  'POLICY_FILE',
  'DRY_RUN',
  'SWR_MAX_CONCURRENCY',
  'RETRY_MAX_ATTEMPTS',
  'POWERTOOLS_SERVICE_NAME',
  'POWERTOOLS_METRICS_NAMESPACE',
  'POWERTOOLS_LOG_LEVEL',
];

/** Names of the entries of a zip file, from its central directory (no unzip binary needed). */
const zipEntryNames = (zip: Buffer): string[] => {
  const endSignature = 0x06054b50;
  let end = -1;
  // The end record is 22 bytes plus a comment of at most 65535 bytes.
  for (let offset = zip.length - 22; offset >= Math.max(0, zip.length - 22 - 0xffff); offset -= 1) {
    if (zip.readUInt32LE(offset) === endSignature) {
      end = offset;
      break;
    }
  }
  if (end < 0) throw new Error('not a zip file: no end of central directory');
  const count = zip.readUInt16LE(end + 10);
  let offset = zip.readUInt32LE(end + 16);
  const names: string[] = [];
  for (let index = 0; index < count; index += 1) {
    if (zip.readUInt32LE(offset) !== 0x02014b50) throw new Error(`bad central directory entry ${index}`);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    names.push(zip.toString('utf8', offset + 46, offset + 46 + nameLength));
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return names;
};

/** Every IAM-style statement (an object with Effect and Action/NotAction) anywhere in a value. */
const statementsIn = (value: unknown, found: Props[] = []): Props[] => {
  if (Array.isArray(value)) {
    for (const item of value) statementsIn(item, found);
  } else if (typeof value === 'object' && value !== null) {
    const object = value as Props;
    if ('Effect' in object && ('Action' in object || 'NotAction' in object)) found.push(object);
    for (const child of Object.values(object)) statementsIn(child, found);
  }
  return found;
};

const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : [value]);
const getAttTarget = (value: unknown): string | undefined =>
  (value as { 'Fn::GetAtt'?: [string, string] } | undefined)?.['Fn::GetAtt']?.[0];

/** Enough environment for a handler module to load from its unpacked zip (nothing is called). */
const functionLoadEnv = {
  AWS_REGION: 'eu-west-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  TABLE_NAME: 'package-test',
  ACCESS_CHANGES_DLQ_URL: 'http://127.0.0.1:9/000000000000/access-changes-dlq.fifo',
  OFFBOARDING_DLQ_URL: 'http://127.0.0.1:9/000000000000/offboarding-dlq.fifo',
  ACCESS_CHANGES_QUEUE_URL: 'http://127.0.0.1:9/000000000000/access-changes.fifo',
  OFFBOARDING_QUEUE_URL: 'http://127.0.0.1:9/000000000000/offboarding.fifo',
  OFFBOARDING_SWEEPS_QUEUE_URL: 'http://127.0.0.1:9/000000000000/offboarding-sweeps',
  OFFBOARDING_SWEEPS_DLQ_URL: 'http://127.0.0.1:9/000000000000/offboarding-sweeps-dlq',
  SWR_ENDPOINT: 'http://127.0.0.1:9',
  IAM_ENDPOINT: 'http://127.0.0.1:9',
  SWR_AUTH_TOKEN: 'package-test-load-only',
  POLICY_FILE: '.policy/test.json',
  POWERTOOLS_LOG_LEVEL: 'ERROR',
};
/** A work folder of our own: no clash with a concurrent package, no stale bundle of invoke local. */
const esbuildWorkFolder = `.esbuild-package-test-${process.pid}`;
/** What a real stage must be given (the package guard refuses the demo policy and no secret). */
const deployParams = {
  policyFile: 'test/fixtures/policies/deployable.yaml',
  swrCredentialsSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:swr-access-sync-AbCdEf',
  alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:swr-access-sync-alarms',
  policyS3Uri: 's3://acme-policies/swr/policy.yaml',
};
const packageEnv = (cacheDir: string) => ({
  ...process.env,
  SLS_SCHEMA_CACHE_BASE_DIR: cacheDir,
  CI: '1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  AWS_REGION: 'eu-west-1',
});
let outDir: string;
let template: CfnTemplate;
let queuesConfig: QueuesConfig;
const zips = new Map<string, { size: number; entries: string[] }>();

const resourcesOf = (type: string): [string, CfnResource][] =>
  Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);
const resource = (logicalId: string): CfnResource => {
  const found = template.Resources[logicalId];
  if (found === undefined) throw new Error(`template has no resource ${logicalId}`);
  return found;
};
const functionResource = (name: string): [string, CfnResource] => {
  const found = resourcesOf('AWS::Lambda::Function').find(([, fn]) =>
    String(fn.Properties.Handler).startsWith(`functions/${name}.`),
  );
  if (found === undefined) throw new Error(`template has no function with handler functions/${name}.*`);
  return found;
};
/** Source queues are the ones with a RedrivePolicy; their DLQs are what it points at. */
const sourceQueues = (): [string, CfnResource][] =>
  resourcesOf('AWS::SQS::Queue').filter(([, queue]) => queue.Properties.RedrivePolicy !== undefined);
const queueByName = (configName: string): [string, CfnResource] => {
  const found = sourceQueues().find(([, queue]) =>
    new RegExp(`-${configName}(\\.fifo)?$`).test(String(queue.Properties.QueueName)),
  );
  if (found === undefined) throw new Error(`no source queue named *-${configName}`);
  return found;
};
const redriveOf = (queue: CfnResource) =>
  queue.Properties.RedrivePolicy as { deadLetterTargetArn: unknown; maxReceiveCount: number };

beforeAll(async () => {
  queuesConfig = JSON.parse(await readFile(join(root, 'config', 'queues.json'), 'utf8')) as QueuesConfig;
  outDir = await mkdtemp(join(tmpdir(), 'swr-access-sync-package-'));
  await execFileAsync(
    process.execPath,
    [
      serverlessBin,
      'package',
      '--stage',
      'test',
      '--package',
      outDir,
      `--param=esbuildWorkFolder=${esbuildWorkFolder}`,
      ...Object.entries(deployParams).map(([name, value]) => `--param=${name}=${value}`),
    ],
    {
      cwd: root,
      timeout: 240_000,
      maxBuffer: 16 * 1024 * 1024,
      env: packageEnv(outDir),
    },
  );
  template = JSON.parse(
    await readFile(join(outDir, 'cloudformation-template-update-stack.json'), 'utf8'),
  ) as CfnTemplate;
  for (const name of functionNames) {
    const path = join(outDir, `${name}.zip`);
    zips.set(name, { size: (await stat(path)).size, entries: zipEntryNames(await readFile(path)) });
  }
}, 300_000);

afterAll(async () => {
  if (outDir !== undefined) await rm(outDir, { recursive: true, force: true });
  await rm(join(root, esbuildWorkFolder), { recursive: true, force: true });
  await rm(join(root, '.policy', 'test.json'), { force: true });
});

describe('queues', () => {
  it('declares access-changes, offboarding-sweeps and their DLQs standard, offboarding and its DLQ FIFO, as config/queues.json says', () => {
    // Act
    const queues = resourcesOf('AWS::SQS::Queue');
    const fifoOf = (name: string) =>
      queues.filter(([, queue]) => String(queue.Properties.QueueName).includes(`-${name}`));

    // Assess
    expect(queues).toHaveLength(6);
    expect(queuesConfig.queues.accessChanges.fifo).toBe(false);
    expect(queuesConfig.queues.offboarding.fifo).toBe(true);
    expect(queuesConfig.queues.offboardingSweeps.fifo).toBe(false);
    for (const [, queue] of [...fifoOf('access-changes'), ...fifoOf('offboarding-sweeps')]) {
      expect(queue.Properties.FifoQueue).toBeUndefined();
      expect(String(queue.Properties.QueueName)).not.toMatch(/\.fifo$/);
    }
    for (const [, queue] of fifoOf('offboarding').filter(
      ([, queue]) => !String(queue.Properties.QueueName).includes('-offboarding-sweeps'),
    )) {
      expect(queue.Properties).toMatchObject({
        FifoQueue: true,
        ContentBasedDeduplication: false,
        DeduplicationScope: 'messageGroup',
        FifoThroughputLimit: 'perMessageGroupId',
      });
      expect(String(queue.Properties.QueueName)).toMatch(/\.fifo$/);
    }
  });

  it.each(['accessChanges', 'offboarding', 'offboardingSweeps'] as const)(
    '%s redrives to its own DLQ of the same kind',
    (key) => {
      // Prepare
      const settings = queuesConfig.queues[key];
      const [logicalId, queue] = queueByName(settings.name);

      // Act
      const redrive = redriveOf(queue);
      const dlqId = getAttTarget(redrive.deadLetterTargetArn);
      const dlq = resource(dlqId ?? '');

      // Assess
      expect(redrive.maxReceiveCount).toBe(settings.maxReceiveCount);
      expect(redrive.maxReceiveCount).toBeGreaterThanOrEqual(5);
      expect(dlqId).not.toBe(logicalId);
      expect(dlq.Properties.FifoQueue).toBe(settings.fifo ? true : undefined);
      expect(dlq.Properties.RedrivePolicy).toBeUndefined();
      expect(String(dlq.Properties.QueueName)).toMatch(
        new RegExp(`-${settings.name}-dlq${settings.fifo ? '\\.fifo' : ''}$`),
      );
    },
  );

  it('gives each source queue a DLQ of its own', () => {
    // Act
    const dlqs = sourceQueues().map(([, queue]) => getAttTarget(redriveOf(queue).deadLetterTargetArn));

    // Assess
    expect(new Set(dlqs).size).toBe(3);
  });

  it.each([
    ['SqsManagedSseEnabled', true],
    ['MessageRetentionPeriod', 14 * 24 * 60 * 60],
  ])('sets %s to %s on every queue', (property, expected) => {
    // Act
    const values = resourcesOf('AWS::SQS::Queue').map(([, queue]) => queue.Properties[property]);

    // Assess
    expect(values).toEqual(Array.from({ length: 6 }, () => expected));
  });

  it('keeps a message invisible for at least 6 times the timeout of the function that consumes it', () => {
    // Prepare
    const mappings = resourcesOf('AWS::Lambda::EventSourceMapping');

    // Act
    const pairs = mappings.map(([, mapping]) => {
      const queue = resource(getAttTarget(mapping.Properties.EventSourceArn) ?? '');
      const fn = resource(getAttTarget(mapping.Properties.FunctionName) ?? '');
      return {
        visibility: Number(queue.Properties.VisibilityTimeout),
        timeout: Number(fn.Properties.Timeout),
      };
    });

    // Assess
    expect(pairs).toHaveLength(3);
    for (const { visibility, timeout } of pairs) {
      expect(timeout).toBe(queuesConfig.functionTimeoutSeconds);
      expect(visibility).toBe(queuesConfig.visibilityTimeoutSeconds);
      expect(visibility).toBeGreaterThanOrEqual(6 * timeout);
    }
  });

  it('lets only the configured producers send to the source queues', () => {
    // Prepare: the sweep queue is fed by the functions, not by producers (its policy is below)
    const sweepsId = queueByName(queuesConfig.queues.offboardingSweeps.name)[0];
    const sourceIds = sourceQueues()
      .map(([id]) => id)
      .filter((id) => id !== sweepsId);
    const policies = resourcesOf('AWS::SQS::QueuePolicy').filter(
      ([, policy]) =>
        !(policy.Properties.Queues as { Ref: string }[]).some((queue) => queue.Ref === sweepsId),
    );

    // Act
    const properties = policies[0]?.[1].Properties ?? {};
    const queues = ((properties.Queues ?? []) as { Ref: string }[]).map((queue) => queue.Ref);
    const statements = statementsIn(properties.PolicyDocument);
    const allow = statements.find((statement) => statement.Effect === 'Allow') ?? {};
    const deny = statements.find((statement) => statement.Effect === 'Deny') ?? {};
    const producers = asList((allow.Principal as { AWS?: unknown } | undefined)?.AWS);

    // Assess
    expect(policies).toHaveLength(1);
    expect(queues.sort()).toEqual(sourceIds.sort());
    expect(allow.Action).toBe('sqs:SendMessage');
    expect(producers).not.toContain('*');
    expect(producers.filter((arn) => typeof arn === 'string' && arn.startsWith('arn:aws:iam::'))).toEqual(
      producers,
    );
    expect(deny.Action).toBe('sqs:SendMessage');
    // The producers and the intake role, nobody else: the param list with the role appended.
    expect(deny.Condition).toEqual({
      ArnNotLike: {
        'aws:PrincipalArn': {
          'Fn::Split': [
            ',',
            {
              'Fn::Join': [',', [{ 'Fn::Join': [',', producers] }, { 'Fn::GetAtt': ['IntakeRole', 'Arn'] }]],
            },
          ],
        },
      },
    });
    const intake = statements.find((statement) => statement.Sid === 'AllowIntake') ?? {};
    expect(intake).toMatchObject({
      Effect: 'Allow',
      Principal: { AWS: { 'Fn::GetAtt': ['IntakeRole', 'Arn'] } },
      Action: 'sqs:SendMessage',
    });
  });
});

describe('event source mappings', () => {
  it.each(['accessChanges', 'offboarding', 'offboardingSweeps'] as const)(
    '%s feeds its function with partial batch failures',
    (key) => {
      // Prepare
      const settings = queuesConfig.queues[key];
      const [queueId] = queueByName(settings.name);
      const [functionId] = functionResource(settings.function);

      // Act
      const mappings = resourcesOf('AWS::Lambda::EventSourceMapping').filter(
        ([, mapping]) => getAttTarget(mapping.Properties.EventSourceArn) === queueId,
      );

      // Assess
      expect(mappings).toHaveLength(1);
      const properties = mappings[0]?.[1].Properties;
      expect(getAttTarget(properties?.FunctionName)).toBe(functionId);
      expect(properties?.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
      expect(properties?.ScalingConfig).toEqual({ MaximumConcurrency: settings.maximumConcurrency });
      expect(properties?.BatchSize).toBe(settings.batchSize);
      // A batching window only where Lambda allows one (standard queues), and then at least 1 s
      // for a batch above 10.
      if (settings.fifo) expect(properties?.MaximumBatchingWindowInSeconds ?? 0).toBe(0);
      else {
        expect(properties?.MaximumBatchingWindowInSeconds).toBe(settings.maximumBatchingWindowSeconds);
        expect(settings.batchSize <= 10 || settings.maximumBatchingWindowSeconds >= 1).toBe(true);
      }
      expect(properties?.Enabled).toBe(true);
    },
  );
});

describe('functions', () => {
  it.each(functionNames)('%s runs on nodejs22.x arm64 with the whole environment', (name) => {
    // Act
    const [, fn] = functionResource(name);
    const variables = (fn.Properties.Environment as { Variables: Props }).Variables;

    // Assess
    expect(fn.Properties.Runtime).toBe('nodejs22.x');
    expect(fn.Properties.Architectures).toEqual(['arm64']);
    expect(Object.keys(variables)).toEqual(expect.arrayContaining(requiredEnvironment));
    expect(variables.DRY_RUN).toBe('false');
    expect(variables.TABLE_NAME).toBe(resourcesOf('AWS::DynamoDB::Table')[0]?.[1].Properties.TableName);
    expect([variables.ACCESS_CHANGES_DLQ_URL, variables.OFFBOARDING_DLQ_URL]).toEqual(
      (['accessChanges', 'offboarding'] as const).map((key) => ({
        Ref: getAttTarget(redriveOf(queueByName(queuesConfig.queues[key].name)[1]).deadLetterTargetArn),
      })),
    );
  });

  it('ships package.json so that the Lambda runtime imports the .js bundles as ES modules', async () => {
    // Act
    const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { type?: string };

    // Assess
    expect(manifest.type).toBe('module');
  });

  it('has exactly the four functions', () => {
    // Act
    const handlers = resourcesOf('AWS::Lambda::Function').map(([, fn]) => fn.Properties.Handler);

    // Assess
    expect(handlers.sort()).toEqual(functionNames.map((name) => `functions/${name}.handler`).sort());
  });

  it.each([
    ['sync', 512, 60],
    ['offboard', 512, 60],
    ['reconcile', 1024, 300],
    ['intake', 512, 20],
  ])('%s has %i MB and a %i s timeout', (name, memory, timeout) => {
    // Act
    const [, fn] = functionResource(name);

    // Assess
    expect([fn.Properties.MemorySize, fn.Properties.Timeout]).toEqual([memory, timeout]);
  });

  it('runs reconcile hourly, one sweep at a time', () => {
    // Prepare
    const [reconcileId, reconcile] = functionResource('reconcile');

    // Act
    const rules = resourcesOf('AWS::Events::Rule').filter(([, rule]) =>
      (rule.Properties.Targets as { Arn: unknown }[]).some(
        (target) => getAttTarget(target.Arn) === reconcileId,
      ),
    );

    // Assess
    expect(rules.map(([, rule]) => rule.Properties.ScheduleExpression)).toEqual(['rate(1 hour)']);
    // Enabled unless reconcileScheduleEnabled=false (while the store is bootstrapped, docs/go-live.md).
    expect(rules.map(([, rule]) => rule.Properties.State)).toEqual(['ENABLED']);
    expect(reconcile.Properties.ReservedConcurrentExecutions).toBe(1);
  });
});

/** Relative module specifiers a bundle file imports (`from"./x.js"`, `import"./x.js"`, `import("./x.js")`). */
const relativeImportsOf = (code: string): string[] =>
  [...code.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)].map((match) => match[1] ?? '');

describe('packages', () => {
  it.each(functionNames)(
    '%s.zip holds the bundle, its own chunks, their source maps, package.json and the compiled policy',
    (name) => {
      // Prepare
      const [, fn] = functionResource(name);
      const policyFile = String((fn.Properties.Environment as { Variables: Props }).Variables.POLICY_FILE);
      const zip = zips.get(name);
      const chunks = (zip?.entries ?? []).filter((entry) => entry.startsWith(`functions/${name}.chunks/`));

      // Assess
      expect(policyFile).toBe('.policy/test.json');
      // Nothing else: no node_modules (the AWS SDK is bundled), no other function's bundle or chunks.
      expect(zip?.entries.slice().sort()).toEqual(
        [policyFile, 'package.json', `functions/${name}.js`, `functions/${name}.js.map`, ...chunks].sort(),
      );
      expect(chunks.length).toBeGreaterThan(0);
      for (const chunk of chunks)
        expect(chunk).toMatch(/^functions\/[a-z]+\.chunks\/[\w-]+-[A-Z0-9]{8}\.js(\.map)?$/);
      // Bundled and minified, the AWS SDK clients included: a few MB at most (Lambda allows 50).
      expect(zip?.size).toBeGreaterThan(1024);
      expect(zip?.size).toBeLessThan(10 * 1024 * 1024);
    },
  );

  it('packages the policy compiled to JSON: the same policy, which the functions read without YAML', async () => {
    // Prepare
    const source = await readFile(join(root, deployParams.policyFile), 'utf8');
    const packaged = zipEntries(await readFile(join(outDir, 'sync.zip'))).find(
      (entry) => entry.name === '.policy/test.json',
    );

    // Act
    const json = packaged?.data.toString('utf8') ?? '';
    const compiled = await parsePolicyText(json, 'packaged');

    // Assess
    expect(() => JSON.parse(json)).not.toThrow();
    expect(compiled).toEqual({ ...parsePolicy(source, 'packaged') });
  });

  it.each(functionNames)('%s.zip holds every file its bundle and chunks import', async (name) => {
    // Prepare
    const entries = zipEntries(await readFile(join(outDir, `${name}.zip`)));
    const files = new Map(entries.map((entry) => [entry.name, entry.data.toString('utf8')]));

    // Act
    const missing = [...files]
      .filter(([path]) => path.endsWith('.js'))
      .flatMap(([path, code]) =>
        relativeImportsOf(code)
          .map((specifier) => posix.join(posix.dirname(path), specifier))
          .filter((target) => !files.has(target))
          .map((target) => `${path} -> ${target}`),
      );

    // Assess
    expect(missing).toEqual([]);
  });

  it.each(functionNames)(
    '%s, unpacked as in /var/task, loads its handler and every lazy chunk',
    async (name) => {
      // Prepare
      const dir = await mkdtemp(join(tmpdir(), `swr-access-sync-${name}-zip-`));
      try {
        for (const entry of zipEntries(await readFile(join(outDir, `${name}.zip`)))) {
          await mkdir(dirname(join(dir, entry.name)), { recursive: true });
          await writeFile(join(dir, entry.name), entry.data);
        }
        const chunks = (await readdir(join(dir, 'functions', `${name}.chunks`))).filter((file) =>
          file.endsWith('.js'),
        );
        const script = `
          const handler = await import('./functions/${name}.js');
          if (typeof handler.handler !== 'function') throw new Error('no handler');
          for (const chunk of ${JSON.stringify(chunks)}) await import('./functions/${name}.chunks/' + chunk);
          process.stdout.write('loaded ' + ${chunks.length});`;

        // Act
        const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script], {
          cwd: dir,
          timeout: 60_000,
          env: { PATH: process.env.PATH, ...functionLoadEnv },
        });

        // Assess
        expect(stdout).toBe(`loaded ${chunks.length}`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    90_000,
  );
});

describe('IAM', () => {
  it('never grants or denies on Resource "*", anywhere in the template', () => {
    // Act
    const statements = statementsIn(template);

    // Assess
    expect(statements.length).toBeGreaterThan(5);
    for (const statement of statements) {
      // Identity policies name their resources; only trust policies (with a Principal) have none.
      if (statement.Principal === undefined) expect(statement.Resource).toBeDefined();
      expect(asList(statement.Resource)).not.toContain('*');
      expect(asList(statement.NotResource)).not.toContain('*');
    }
  });

  it.each([
    [
      'sqs:ChangeMessageVisibility',
      ['AccessChangesQueue', 'OffboardingQueue', 'OffboardingSweepsQueue'].map((id) => ({
        'Fn::GetAtt': [id, 'Arn'],
      })),
    ],
    [
      'sqs:SendMessage',
      ['AccessChangesDlq', 'OffboardingDlq', 'OffboardingSweepsDlq', 'OffboardingSweepsQueue'].map((id) => ({
        'Fn::GetAtt': [id, 'Arn'],
      })),
    ],
    ['dynamodb:UpdateItem', [{ 'Fn::GetAtt': ['MembershipTable', 'Arn'] }]],
  ])('the function role allows %s only on %j', (action, resources) => {
    // Act
    const statements = statementsIn(resource('IamRoleLambdaExecution').Properties.Policies).filter(
      (statement) => asList(statement.Action).includes(action),
    );

    // Assess
    expect(statements.length).toBeGreaterThanOrEqual(1);
    expect(statements.flatMap((statement) => asList(statement.Resource))).toEqual(resources);
  });

  it('grants no secretsmanager, cloudwatch or s3 action in the role itself', () => {
    // Act
    const actions = statementsIn(resource('IamRoleLambdaExecution').Properties.Policies).flatMap(
      (statement) => asList(statement.Action).map(String),
    );

    // Assess
    expect(actions.filter((action) => /^(secretsmanager|cloudwatch|s3):/.test(action))).toEqual([]);
  });

  it('reads the credentials secret only through a policy that exists when the secret is configured', () => {
    // Prepare: the intake reads its own secret (a resource of the stack) besides.
    const grants = Object.entries(template.Resources).filter(([, candidate]) =>
      statementsIn(candidate).some(
        (statement) =>
          asList(statement.Action).includes('secretsmanager:GetSecretValue') &&
          JSON.stringify(statement.Resource) !== JSON.stringify([{ Ref: 'IntakeSecret' }]),
      ),
    );

    // Act
    const [[, policy] = ['', undefined]] = grants;
    const condition = template.Conditions?.[policy?.Condition ?? ''];

    // Assess
    expect(grants).toHaveLength(1);
    expect(policy?.Type).toBe('AWS::IAM::Policy');
    expect(asList(statementsIn(policy)[0]?.Resource)).toEqual([deployParams.swrCredentialsSecretArn]);
    expect(condition).toEqual({ 'Fn::Not': [{ 'Fn::Equals': ['', deployParams.swrCredentialsSecretArn] }] });
    // The intake looks users up in IAM with the same credentials: same policy, both roles.
    expect(policy?.Properties.Roles).toEqual([{ Ref: 'IamRoleLambdaExecution' }, { Ref: 'IntakeRole' }]);
  });

  it('reads the policy object, and only it, through a policy that exists when an object is configured', () => {
    // Prepare
    const grants = Object.entries(template.Resources).filter(([, candidate]) =>
      statementsIn(candidate).some((statement) =>
        asList(statement.Action).some((action) => /^s3:Get/.test(String(action))),
      ),
    );

    // Act
    const [[logicalId, policy] = ['', undefined]] = grants;
    const statements = statementsIn(policy);
    const resourceJoin = statements[0]?.Resource as { 'Fn::Join': [string, unknown[]] };
    const [, parts] = resourceJoin['Fn::Join'];
    const select = parts[3] as { 'Fn::Select': [number, { 'Fn::Split': [string, { 'Fn::If': unknown[] }] }] };

    // Assess
    expect(grants.map(([id]) => id)).toEqual(['PolicyObjectReadPolicy']);
    expect(logicalId).toBe('PolicyObjectReadPolicy');
    expect(policy?.Condition).toBe('HasPolicyS3Object');
    expect(template.Conditions?.HasPolicyS3Object).toEqual({
      'Fn::Not': [{ 'Fn::Equals': ['', deployParams.policyS3Uri] }],
    });
    expect(statements).toHaveLength(1);
    expect(statements[0]?.Action).toEqual(['s3:GetObject', 's3:GetObjectVersion']);
    expect(parts.slice(0, 3)).toEqual(['arn:', { Ref: 'AWS::Partition' }, ':s3:::']);
    // What the expression gives for the configured URI: the object's bucket/key, nothing wider.
    const [index, split] = select['Fn::Select'];
    const [separator, chosen] = split['Fn::Split'];
    expect(chosen['Fn::If']?.[1]).toBe(deployParams.policyS3Uri);
    expect(String(chosen['Fn::If']?.[1]).split(separator)[index]).toBe('acme-policies/swr/policy.yaml');
  });

  it.each(functionNames)(
    '%s gets the environment config/queues.json gives it, as the local stack does',
    (name) => {
      // Prepare: what the local stack and the benchmarks add for this function
      const own = functionEnvironment(name);

      // Act
      const variables = (functionResource(name)[1].Properties.Environment as { Variables: Props }).Variables;

      // Assess
      expect(variables).toMatchObject(own);
      if (name === 'offboard') expect(Number(own.SWR_MAX_RPS)).toBeGreaterThan(20);
      else expect(variables.SWR_MAX_RPS).toBeUndefined();
    },
  );

  it('gives the functions POLICY_S3_URI and POLICY_RELOAD_SECONDS', () => {
    // Act
    const variables = functionNames.map(
      (name) => (functionResource(name)[1].Properties.Environment as { Variables: Props }).Variables,
    );

    // Assess
    for (const variable of variables)
      expect(variable).toMatchObject({
        POLICY_S3_URI: deployParams.policyS3Uri,
        POLICY_RELOAD_SECONDS: '60',
      });
  });
});

describe('intake', () => {
  const routes = () =>
    resourcesOf('AWS::ApiGatewayV2::Route').map(([, route]) => ({
      key: route.Properties.RouteKey,
      authorization: route.Properties.AuthorizationType ?? 'NONE',
      target: route.Properties.Target,
    }));

  it('serves SCIM, Okta hooks and our own events on one HTTP API, /events behind IAM only', () => {
    // Act
    const apis = resourcesOf('AWS::ApiGatewayV2::Api');
    const found = routes();

    // Assess
    expect(apis).toHaveLength(1);
    expect(apis[0]?.[1].Properties.ProtocolType).toBe('HTTP');
    expect(found.map(({ key, authorization }) => [key, authorization]).sort()).toEqual([
      ['ANY /scim/v2/{proxy+}', 'NONE'],
      ['GET /hooks/okta', 'NONE'],
      ['POST /events', 'AWS_IAM'],
      ['POST /hooks/okta', 'NONE'],
    ]);
    const integrations = resourcesOf('AWS::ApiGatewayV2::Integration');
    expect(integrations).toHaveLength(1);
    const [integrationId, integration] = integrations[0] ?? ['', { Properties: {} as Props }];
    expect(integration.Properties.PayloadFormatVersion).toBe('2.0');
    expect(getAttTarget(integration.Properties.IntegrationUri)).toBe(functionResource('intake')[0]);
    for (const route of found)
      expect(route.target).toEqual({ 'Fn::Join': ['/', ['integrations', { Ref: integrationId }]] });
  });

  it('gives the intake the two source queues, its secret and its settings', () => {
    // Act
    const [, fn] = functionResource('intake');
    const variables = (fn.Properties.Environment as { Variables: Props }).Variables;

    // Assess
    expect(variables).toMatchObject({
      ACCESS_CHANGES_QUEUE_URL: { Ref: 'AccessChangesQueue' },
      OFFBOARDING_QUEUE_URL: { Ref: 'OffboardingQueue' },
      INTAKE_SECRET_ARN: { Ref: 'IntakeSecret' },
      OKTA_SUSPEND_ACTION: 'offboard',
    });
    expect(resource('IntakeSecret').Properties.GenerateSecretString).toMatchObject({
      GenerateStringKey: 'scimToken',
      ExcludePunctuation: true,
    });
    expect(
      Number((resource('IntakeSecret').Properties.GenerateSecretString as Props).PasswordLength),
    ).toBeGreaterThanOrEqual(32);
  });

  it('runs the intake under a role of its own with exactly its needs', () => {
    // Prepare
    const [, fn] = functionResource('intake');
    const role = resource('IntakeRole');

    // Act
    const statements = statementsIn(role.Properties.Policies);
    const bySid = Object.fromEntries(statements.map((statement) => [statement.Sid, statement]));

    // Assess
    expect(fn.Properties.Role).toEqual({ 'Fn::GetAtt': ['IntakeRole', 'Arn'] });
    expect(Object.keys(bySid).sort()).toEqual([
      'OwnTableItems',
      'ReadIntakeSecret',
      'SendToSourceQueues',
      'WriteOwnLogs',
    ]);
    expect(bySid.SendToSourceQueues).toMatchObject({
      Action: ['sqs:SendMessage'],
      Resource: ['AccessChangesQueue', 'OffboardingQueue'].map((id) => ({ 'Fn::GetAtt': [id, 'Arn'] })),
    });
    expect(bySid.OwnTableItems?.Resource).toEqual([{ 'Fn::GetAtt': ['MembershipTable', 'Arn'] }]);
    expect(bySid.OwnTableItems?.Condition).toEqual({
      'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['SCIM#*'] },
    });
    expect(asList(bySid.OwnTableItems?.Action)).not.toContain('dynamodb:Scan');
    expect(bySid.ReadIntakeSecret).toMatchObject({
      Action: ['secretsmanager:GetSecretValue'],
      Resource: [{ Ref: 'IntakeSecret' }],
    });
    expect(bySid.WriteOwnLogs?.Resource).toEqual([{ 'Fn::GetAtt': ['IntakeLogGroup', 'Arn'] }]);
    const actions = statements.flatMap((statement) => asList(statement.Action).map(String));
    expect(actions.filter((action) => action.startsWith('sqs:') && action !== 'sqs:SendMessage')).toEqual([]);
  });

  it('alarms on any 5xx of the HTTP API', () => {
    // Act
    const alarm = resourcesOf('AWS::CloudWatch::Alarm').find(
      ([, candidate]) => candidate.Properties.Namespace === 'AWS/ApiGateway',
    )?.[1];

    // Assess
    expect(alarm?.Properties).toMatchObject({
      MetricName: '5xx',
      Dimensions: [{ Name: 'ApiId', Value: { Ref: 'HttpApi' } }],
      Statistic: 'Sum',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
  });

  it('outputs the intake URL and its secret', () => {
    // Assess
    expect(Object.keys(template.Outputs ?? {})).toEqual(
      expect.arrayContaining(['IntakeUrl', 'IntakeSecretArn']),
    );
  });
});

describe('alarms and table', () => {
  const alarmOn = (metric: string, queueId: string) =>
    resourcesOf('AWS::CloudWatch::Alarm').find(
      ([, alarm]) =>
        alarm.Properties.MetricName === metric &&
        (alarm.Properties.Dimensions as { Name: string; Value: unknown }[]).some(
          (dimension) => dimension.Name === 'QueueName' && getAttTarget(dimension.Value) === queueId,
        ),
    )?.[1];

  it.each(['accessChanges', 'offboarding', 'offboardingSweeps'] as const)(
    'alarms on any visible message in the %s DLQ',
    (key) => {
      // Prepare
      const [, queue] = queueByName(queuesConfig.queues[key].name);
      const dlqId = getAttTarget(redriveOf(queue).deadLetterTargetArn) ?? '';

      // Act
      const alarm = alarmOn('ApproximateNumberOfMessagesVisible', dlqId);

      // Assess
      expect(alarm?.Properties).toMatchObject({
        Namespace: 'AWS/SQS',
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
      });
    },
  );

  it('alarms when an offboarding waits more than 300 s', () => {
    // Prepare
    const [queueId] = queueByName(queuesConfig.queues.offboarding.name);

    // Act
    const alarm = alarmOn('ApproximateAgeOfOldestMessage', queueId);

    // Assess
    expect(alarm?.Properties).toMatchObject({
      Namespace: 'AWS/SQS',
      Threshold: 300,
      ComparisonOperator: 'GreaterThanThreshold',
    });
  });

  it('alarms when a sweep request waits longer than offboardingSweepsMaxAgeSeconds', () => {
    // Prepare
    const [queueId] = queueByName(queuesConfig.queues.offboardingSweeps.name);

    // Act
    const alarm = alarmOn('ApproximateAgeOfOldestMessage', queueId);

    // Assess
    expect(alarm?.Properties).toMatchObject({
      Namespace: 'AWS/SQS',
      Threshold: 900,
      ComparisonOperator: 'GreaterThanThreshold',
    });
  });

  it('lets only the functions (and the producers, who may redrive) send sweep requests', () => {
    // Prepare
    const [queueId] = queueByName(queuesConfig.queues.offboardingSweeps.name);
    const [, policy] =
      resourcesOf('AWS::SQS::QueuePolicy').find(([, candidate]) =>
        (candidate.Properties.Queues as { Ref: string }[]).some((queue) => queue.Ref === queueId),
      ) ?? [];

    // Act
    const statements = statementsIn(policy?.Properties.PolicyDocument);

    // Assess
    expect(policy?.Properties.Queues).toHaveLength(1);
    expect(statements.find((statement) => statement.Effect === 'Allow')?.Principal).toEqual({
      AWS: { 'Fn::GetAtt': ['IamRoleLambdaExecution', 'Arn'] },
    });
    expect(statements.find((statement) => statement.Effect === 'Deny')).toMatchObject({
      Principal: { AWS: '*' },
      Action: 'sqs:SendMessage',
    });
  });

  it('stores memberships in one on-demand table keyed by pk and sk, with PITR, SSE and audit TTL', () => {
    // Act
    const tables = resourcesOf('AWS::DynamoDB::Table');

    // Assess
    expect(tables).toHaveLength(1);
    expect(tables[0]?.[1].Properties).toMatchObject({
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      TimeToLiveSpecification: { AttributeName: 'expiresAtEpoch', Enabled: true },
    });
  });

  it('outputs the queue URLs, DLQ URLs and table name', () => {
    // Assess
    expect(Object.keys(template.Outputs ?? {})).toEqual(
      expect.arrayContaining([
        'AccessChangesQueueUrl',
        'AccessChangesDlqUrl',
        'OffboardingQueueUrl',
        'OffboardingDlqUrl',
        'OffboardingSweepsQueueUrl',
        'OffboardingSweepsDlqUrl',
        'MembershipTableName',
      ]),
    );
  });
});

/** A function's deployed name, from its resource (what `Ref` of it gives in CloudFormation). */
const deployedName = (logicalId: string): string => String(resource(logicalId).Properties.FunctionName);

/** `{ Ref: X }` → X. */
const refOf = (value: unknown): string | undefined => (value as { Ref?: string } | undefined)?.Ref;

/**
 * The EMF one of our functions writes for `metric`, built the way the function builds its metrics
 * (its runtime, with the environment Lambda gives it), captured from stdout.
 */
const emfOf = (handler: string, functionName: string, metric: string): Record<string, unknown> => {
  const env = {
    AWS_LAMBDA_FUNCTION_NAME: functionName,
    SWR_ENDPOINT: 'http://127.0.0.1:9',
    IAM_ENDPOINT: 'http://127.0.0.1:9',
    SWR_AUTH_TOKEN: 'test-token-not-a-secret',
    TABLE_NAME: 'memberships',
    ACCESS_CHANGES_DLQ_URL: 'http://127.0.0.1:9/q/dlq.fifo',
    OFFBOARDING_DLQ_URL: 'http://127.0.0.1:9/q/dlq.fifo',
  };
  const metrics: MetricsSink =
    handler === 'functions/sync.handler'
      ? createQueueRuntime({ functionName: 'sync', queue: 'accessChanges', env }).metrics
      : handler === 'functions/offboard.handler'
        ? createQueueRuntime({ functionName: 'offboard', queue: 'offboarding', env }).metrics
        : createReconcileRuntime({ functionName: 'reconcile', env }).metrics;
  const written: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  try {
    metrics.count(metric as never);
    metrics.flush();
  } finally {
    spy.mockRestore();
  }
  const line = written
    .join('')
    .split('\n')
    .find((text) => text.includes('"_aws"'));
  if (line === undefined) throw new Error(`no EMF written for ${metric}`);
  return JSON.parse(line) as Record<string, unknown>;
};

interface MetricSpec {
  Namespace: string;
  MetricName: string;
  Dimensions: Array<{ Name: string; Value: unknown }>;
}

/** Every metric an alarm watches: its own, or each MetricStat of its metric math. */
const metricsOfAlarm = (alarm: CfnResource): MetricSpec[] => {
  const properties = alarm.Properties as Props & { Metrics?: Array<{ MetricStat?: { Metric: MetricSpec } }> };
  if (properties.Metrics !== undefined)
    return properties.Metrics.flatMap((entry) =>
      entry.MetricStat === undefined ? [] : [entry.MetricStat.Metric],
    );
  return [properties as unknown as MetricSpec];
};

describe('alarms', () => {
  const alarms = () => resourcesOf('AWS::CloudWatch::Alarm');

  it('has one alarm for each failure that matters, by name', () => {
    // Act
    const names = alarms().map(([, alarm]) =>
      String(alarm.Properties.AlarmName).replace('swr-access-sync-test-', ''),
    );

    // Assess
    expect(names.sort()).toEqual(
      [
        'access-changes-dlq-not-empty',
        'access-changes-oldest-message-age',
        'intake-5xx',
        'intake-lambda-errors',
        'intake-lambda-throttles',
        'mass-revoke-blocked',
        'offboard-lambda-errors',
        'offboard-lambda-throttles',
        'offboarding-dlq-not-empty',
        'offboarding-oldest-message-age',
        'offboarding-sweeps-dlq-not-empty',
        'offboarding-sweeps-oldest-message-age',
        'policy-reload-failed',
        'reconcile-errors',
        'reconcile-lambda-errors',
        'reconcile-lambda-throttles',
        'reconcile-skipped-targets',
        'sync-lambda-errors',
        'sync-lambda-throttles',
      ].sort(),
    );
  });

  it('watches our own metrics with exactly the dimensions, and values, that the functions write', () => {
    // Prepare
    const watched = alarms().flatMap(([, alarm]) =>
      metricsOfAlarm(alarm).filter((metric) => metric.Namespace === 'SwrAccessSync'),
    );

    // Act / Assess: each against the EMF the watched function really writes for that metric
    expect(watched.length).toBeGreaterThanOrEqual(6);
    for (const metric of watched) {
      expect(Object.values(MetricNames)).toContain(metric.MetricName);
      const fnId = refOf(metric.Dimensions.find((dimension) => dimension.Name === 'function')?.Value) ?? '';
      const emf = emfOf(String(resource(fnId).Properties.Handler), deployedName(fnId), metric.MetricName);
      const cloudWatch = (
        emf._aws as { CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][] }> }
      ).CloudWatchMetrics[0];
      expect(cloudWatch?.Namespace).toBe(metric.Namespace);
      expect(cloudWatch?.Dimensions).toHaveLength(1);
      expect(metric.Dimensions.map((dimension) => dimension.Name).sort()).toEqual(
        [...(cloudWatch?.Dimensions[0] ?? [])].sort(),
      );
      for (const dimension of metric.Dimensions) {
        const value = refOf(dimension.Value) === undefined ? dimension.Value : deployedName(fnId);
        expect(emf[dimension.Name]).toBe(value);
      }
    }
  });

  it.each([
    ['MassRevokeBlocked', 'reconcile'],
    ['ReconcileErrors', 'reconcile'],
    ['ReconcileSkippedTargets', 'reconcile'],
    ['PolicyReloadFailed', 'sync'],
    ['PolicyReloadFailed', 'offboard'],
    ['PolicyReloadFailed', 'reconcile'],
  ])('alarms on %s of %s above 0', (metricName, fn) => {
    // Prepare
    const [fnId] = functionResource(fn);

    // Act
    const found = alarms().filter(([, alarm]) =>
      metricsOfAlarm(alarm).some(
        (metric) =>
          metric.MetricName === metricName &&
          metric.Dimensions.some(
            (dimension) => dimension.Name === 'function' && refOf(dimension.Value) === fnId,
          ),
      ),
    );

    // Assess
    expect(found).toHaveLength(1);
    expect(found[0]?.[1].Properties).toMatchObject({
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
  });

  it.each(['Errors', 'Throttles'])('alarms on Lambda %s of every function', (metricName) => {
    // Act
    const watched = alarms()
      .filter(
        ([, alarm]) =>
          alarm.Properties.Namespace === 'AWS/Lambda' && alarm.Properties.MetricName === metricName,
      )
      .map(([, alarm]) =>
        refOf((alarm.Properties.Dimensions as Array<{ Name: string; Value: unknown }>)[0]?.Value),
      );

    // Assess
    expect(watched.sort()).toEqual(
      resourcesOf('AWS::Lambda::Function')
        .map(([id]) => id)
        .sort(),
    );
  });

  it('alarms when a join or leave waits more than 900 s on access-changes', () => {
    // Prepare
    const [queueId] = queueByName(queuesConfig.queues.accessChanges.name);

    // Act
    const found = alarms().filter(
      ([, alarm]) =>
        alarm.Properties.MetricName === 'ApproximateAgeOfOldestMessage' &&
        getAttTarget((alarm.Properties.Dimensions as Array<{ Value: unknown }>)[0]?.Value) === queueId,
    );

    // Assess
    expect(found).toHaveLength(1);
    expect(found[0]?.[1].Properties).toMatchObject({ Namespace: 'AWS/SQS', Threshold: 900 });
  });

  it('notifies the alarm topic on every alarm, when one is configured', () => {
    // Act
    const actions = alarms().map(([, alarm]) => [alarm.Properties.AlarmActions, alarm.Properties.OKActions]);

    // Assess
    const notify = { 'Fn::If': ['HasAlarmTopic', [deployParams.alarmTopicArn], { Ref: 'AWS::NoValue' }] };
    for (const pair of actions) expect(pair).toEqual([notify, notify]);
  });
});

/** The dashboard body with every `${…}` of Fn::Sub replaced, and the names it referred to. */
const dashboard = () => {
  const body = (resource('OperationsDashboard').Properties.DashboardBody as { 'Fn::Sub': string })['Fn::Sub'];
  const references = [...body.matchAll(/\$\{([^}]+)\}/g)].map((match) => match[1] ?? '');
  const parsed = JSON.parse(body.replace(/\$\{([^}]+)\}/g, (_all, name: string) => `SUB(${name})`)) as {
    widgets: Array<{ type: string; properties: Props }>;
  };
  return { parsed, references };
};

describe('dashboard and saved queries', () => {
  it('has the widgets an operator needs, by title', () => {
    // Act
    const titles = dashboard().parsed.widgets.map((widget) => String(widget.properties.title));

    // Assess
    expect(titles).toEqual([
      'Alarms',
      'Events: in, applied, retried, dead-lettered',
      'SWR changes: grants, changes, revokes',
      'Queues: oldest message age (s)',
      'Dead-letter queues: messages waiting',
      'Lambda errors and throttles',
      'Lambda duration p99 and max (slowest batches)',
      'Offboarding latency, event to last revoke (ms)',
      'Reconcile: errors, skipped targets, mass revoke blocked',
      'Policy reloads (S3)',
      'Store and API: stale events, deferred, unknown teams, SWR calls and retries',
      'Dead letters by reason',
      'Mass revoke blocked (log records)',
      'Slowest invocations',
      'Recent access changes, with why',
    ]);
  });

  it('refers only to resources and pseudo parameters that exist', () => {
    // Act
    const { references } = dashboard();

    // Assess
    for (const reference of references) {
      const [logicalId] = reference.split('.');
      if (reference.startsWith('AWS::')) continue;
      expect(Object.keys(template.Resources)).toContain(logicalId);
    }
  });

  it('graphs our metrics with the dimensions they carry, and shows every alarm', () => {
    // Prepare
    const { parsed } = dashboard();
    const metricRows = parsed.widgets
      .filter((widget) => widget.type === 'metric')
      .flatMap((widget) => widget.properties.metrics as unknown[][]);
    const alarmArns = parsed.widgets.find((widget) => widget.type === 'alarm')?.properties.alarms as string[];

    // Act
    const ours = metricRows.filter((row) => row[0] === 'SwrAccessSync');

    // Assess
    expect(ours.length).toBeGreaterThan(20);
    for (const row of ours) {
      expect(Object.values(MetricNames)).toContain(row[1]);
      expect(row.slice(2, 6)).toEqual([
        'service',
        'swr-access-sync',
        'function',
        expect.stringMatching(/^SUB\(\w+LambdaFunction\)$/),
      ]);
    }
    const names = resourcesOf('AWS::CloudWatch::Alarm').map(([, alarm]) =>
      String(alarm.Properties.AlarmName),
    );
    expect(alarmArns.map((arn) => arn.split(':alarm:')[1]).sort()).toEqual(names.sort());
  });

  it('saves the Logs Insights queries for the common questions, on the log groups that answer them', () => {
    // Act
    const queries = resourcesOf('AWS::Logs::QueryDefinition').map(([, query]) => ({
      name: String(query.Properties.Name),
      groups: (query.Properties.LogGroupNames as Array<{ Ref: string }>).map((group) => group.Ref),
      text: String(query.Properties.QueryString),
    }));

    // Assess
    expect(queries.map((query) => query.name.replace('swr-access-sync-test/', '')).sort()).toEqual([
      'dead-letters-by-reason',
      'mass-revoke-blocked',
      'policy-rejected',
      'slowest-batches',
      'why-access-changed',
    ]);
    for (const query of queries) {
      for (const group of query.groups) expect(resource(group).Type).toBe('AWS::Logs::LogGroup');
      expect(query.text).toMatch(/\| (sort|stats)/);
    }
  });

  it('matches log records the code writes: every message and alarm a query filters on', async () => {
    // Prepare: the sources, where each message and alarm name is written (the pipeline is a file of
    // stages, one module each)
    const stages = (await readdir(join(root, 'lib/pipeline'))).map((file) => `lib/pipeline/${file}`);
    const sources = (
      await Promise.all(
        ['lib/pipeline.ts', ...stages, 'lib/reconcile/reconcile.ts', 'lib/policy-source/s3-loader.ts'].map(
          (path) => readFile(join(root, path), 'utf8'),
        ),
      )
    ).join('\n');
    const texts = [
      ...resourcesOf('AWS::Logs::QueryDefinition').map(([, query]) => String(query.Properties.QueryString)),
      ...dashboard()
        .parsed.widgets.filter((widget) => widget.type === 'log')
        .map((widget) => String(widget.properties.query)),
    ];

    // Act
    const messages = texts.flatMap((text) =>
      [...text.matchAll(/message = '([^']+)'/g)].map((match) => match[1] ?? ''),
    );
    const alarmNames = texts.flatMap((text) =>
      [...text.matchAll(/alarm = '([^']+)'/g)].map((match) => match[1] ?? ''),
    );

    // Assess
    expect(messages.length).toBeGreaterThan(3);
    for (const message of messages) expect(sources).toContain(`'${message}'`);
    for (const name of alarmNames) expect(sources).toContain(`alarm: '${name}'`);
  });
});

/*
 * The guard's rules are tested on their own (test/unit/package-guard.test.ts); these runs prove
 * that `serverless package` runs it and fails with its reasons.
 */
describe('the package guard (any stage but local)', () => {
  const refusal = async (params: Record<string, string>) => {
    const cacheDir = await mkdtemp(join(tmpdir(), 'swr-access-sync-refused-'));
    try {
      await execFileAsync(
        process.execPath,
        [
          serverlessBin,
          'package',
          '--stage',
          'prod',
          '--package',
          join(cacheDir, 'out'),
          `--param=esbuildWorkFolder=${esbuildWorkFolder}-refused`,
          ...Object.entries(params).map(([name, value]) => `--param=${name}=${value}`),
        ],
        { cwd: root, timeout: 120_000, maxBuffer: 16 * 1024 * 1024, env: packageEnv(cacheDir) },
      );
      return { refused: false, output: '' };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      return { refused: failed.code !== 0, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
    } finally {
      await rm(cacheDir, { recursive: true, force: true });
      await rm(join(root, `${esbuildWorkFolder}-refused`), { recursive: true, force: true });
    }
  };

  it.each([
    {
      name: 'the defaults: the demo-equal config/policy.yaml and no credentials secret',
      params: {} as Record<string, string>,
      reasons: [/the policy config\/policy\.yaml is the demo policy/, /swrCredentialsSecretArn is empty/],
    },
    {
      name: 'a file that says what the demo policy says, in another order',
      params: {
        policyFile: 'test/fixtures/policies/demo-reordered.yaml',
        swrCredentialsSecretArn: deployParams.swrCredentialsSecretArn,
      },
      reasons: [/the policy test\/fixtures\/policies\/demo-reordered\.yaml is the demo policy/],
    },
  ])(
    'refuses $name',
    async ({ params, reasons }) => {
      // Act
      const { refused, output } = await refusal(params as Record<string, string>);

      // Assess
      expect(refused).toBe(true);
      expect(output).toMatch(/refusing to package stage "prod"/);
      for (const reason of reasons) expect(output).toMatch(reason);
    },
    150_000,
  );
});
