/**
 * AWS endpoints that accept a connection and never answer (a stuck proxy, a black-holed VPC
 * endpoint): every AWS operation of the service must end by its deadline, with a retryable
 * DEADLINE_EXCEEDED naming the operation, instead of holding the invocation until Lambda kills it.
 * Servers on 127.0.0.1, ports the OS picks; every wait is bounded by the test timeout.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDynamoAuditStore } from '../../lib/audit/index.ts';
import { AwsDeadlineError, awsClientConfig } from '../../lib/aws.ts';
import { readConfig } from '../../lib/config.ts';
import { createDeadLetterSender } from '../../lib/dlq.ts';
import type { ResolvedEvent } from '../../lib/domain.ts';
import { ErrorCodes, StoreError, SyncError } from '../../lib/errors.ts';
import { resolveAuth } from '../../lib/runtime.ts';
import { createDynamoStore } from '../../lib/store/index.ts';
import { userId } from '../support/factories.ts';

/** Bounds every test: a hang shows as a failure, never as a stuck run. */
const testTimeoutMs = 8_000;
const region = 'eu-west-1';
const credentials = { accessKeyId: 'fake', secretAccessKey: 'fake' };
const user = { id: userId(21), name: 'user21' };
const join: ResolvedEvent = {
  id: 'join',
  type: 'membership.added',
  occurredAt: '2026-11-20T10:00:00Z',
  user,
  team: 'platform',
};

const listen = async <T extends Server | HttpServer>(server: T): Promise<string> => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

// Accepts, reads whatever comes, never answers.
const sockets = new Set<Socket>();
const silent = createServer((socket) => {
  sockets.add(socket);
  socket.on('error', () => undefined);
  socket.on('close', () => sockets.delete(socket));
});
// Answers DynamoDB GetItem (no item), then never answers the PutItem that follows.
const halfSilent = createHttpServer((request, response) => {
  request.resume();
  if (String(request.headers['x-amz-target']).endsWith('.GetItem')) {
    response.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
    response.end('{}');
  }
});
let silentUrl: string;
let halfSilentUrl: string;

beforeAll(async () => {
  silentUrl = await listen(silent);
  halfSilentUrl = await listen(halfSilent);
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  halfSilent.closeAllConnections();
  await Promise.all([
    new Promise((resolve) => silent.close(resolve)),
    new Promise((resolve) => halfSilent.close(resolve)),
  ]);
});

/** Clients whose request timeout is far beyond the test: only the deadline can end a call. */
const patient = awsClientConfig(600_000);
const dynamoAt = (endpoint: string, config = patient) =>
  new DynamoDBClient({ endpoint, region, credentials, ...config });

const failureOf = (running: Promise<unknown>): Promise<unknown> =>
  running.then(
    () => undefined,
    (error: unknown) => error,
  );

const soon = (): number => Date.now() + 300;

describe('every AWS operation ends by its deadline', () => {
  it(
    'store.get: a retryable StoreError DEADLINE_EXCEEDED naming the operation',
    async () => {
      // Prepare
      const store = createDynamoStore({ client: dynamoAt(silentUrl), tableName: 'membership' });

      // Act
      const error = await failureOf(store.get(user.id, { deadline: soon() }));

      // Assess
      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({ code: ErrorCodes.deadline, retryable: true });
      expect((error as Error).message).toMatch(/DynamoDB GetItem did not finish before the deadline/);
    },
    testTimeoutMs,
  );

  it(
    'store.apply: the read, and the write after a read that answered',
    async () => {
      // Prepare
      const stuck = createDynamoStore({ client: dynamoAt(silentUrl), tableName: 'membership' });
      const stuckOnWrite = createDynamoStore({ client: dynamoAt(halfSilentUrl), tableName: 'membership' });

      // Act
      const onRead = await failureOf(stuck.apply(user, [join], new Date(), { deadline: soon() }));
      const onWrite = await failureOf(stuckOnWrite.apply(user, [join], new Date(), { deadline: soon() }));

      // Assess
      expect(onRead).toMatchObject({ code: ErrorCodes.deadline, retryable: true });
      expect(onWrite).toBeInstanceOf(StoreError);
      expect(onWrite).toMatchObject({ code: ErrorCodes.deadline, retryable: true });
      expect((onWrite as Error).message).toMatch(/DynamoDB PutItem did not finish before the deadline/);
    },
    testTimeoutMs,
  );

  it(
    'store.applyDue and store.list',
    async () => {
      // Prepare
      const store = createDynamoStore({ client: dynamoAt(silentUrl), tableName: 'membership' });

      // Act
      const due = await failureOf(store.applyDue(user.id, new Date(), { deadline: soon() }));
      const listing = await failureOf(
        (async () => {
          for await (const _record of store.list({ deadline: soon() })) return;
        })(),
      );

      // Assess
      expect(due).toMatchObject({ code: ErrorCodes.deadline, retryable: true });
      expect(listing).toMatchObject({ code: ErrorCodes.deadline, retryable: true });
      expect((listing as Error).message).toMatch(/DynamoDB Scan/);
    },
    testTimeoutMs,
  );

  it(
    'the audit store write',
    async () => {
      // Prepare
      const audit = createDynamoAuditStore({ client: dynamoAt(silentUrl), tableName: 'membership' });
      const record = {
        at: '2026-11-20T10:00:00.000Z',
        actor: 'sync',
        eventIds: ['join'],
        sources: [],
        userId: user.id,
        userName: user.name,
        target: { kind: 'namespace' as const, namespace: 'tools' },
        before: undefined,
        after: 1 as const,
        dryRun: false,
      };

      // Act
      const error = await failureOf(audit.write([record], { deadline: soon() }));

      // Assess
      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({ code: ErrorCodes.deadline, retryable: true });
    },
    testTimeoutMs,
  );

  it(
    'the DLQ send: every letter reported failed (retried by SQS), none lost',
    async () => {
      // Prepare
      const sqs = new SQSClient({ endpoint: silentUrl, region, credentials, ...patient });
      const sender = createDeadLetterSender({
        sqs,
        queueUrl: `${silentUrl}/123456789012/access-changes-dlq.fifo`,
      });
      const letters = Array.from({ length: 12 }, (_, n) => ({
        messageId: `m-${n}`,
        body: '{"id":"x"}',
        groupId: 'g',
        receiveCount: 1,
        error: new SyncError('schema', { code: 'SCHEMA', retryable: false }),
      }));

      // Act
      const result = await sender.send(letters, new Date(), { deadline: soon() });

      // Assess
      expect(result.sent).toEqual([]);
      expect(result.failed.map((entry) => entry.messageId)).toEqual(
        letters.map((letter) => letter.messageId),
      );
      for (const entry of result.failed)
        expect(entry.reason).toMatch(/SQS SendMessageBatch did not finish before the deadline/);
    },
    testTimeoutMs,
  );

  it(
    'the credentials secret read, with a deadline and, without one, within REQUEST_TIMEOUT_MS',
    async () => {
      // Prepare
      const config = readConfig({
        SWR_ENDPOINT: 'https://swr-api.ap-southeast-1.myhuaweicloud.com',
        IAM_ENDPOINT: 'https://iam.ap-southeast-1.myhuaweicloud.com',
        SWR_CREDENTIALS_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:swr',
        POLICY_FILE: 'config/policy.yaml',
        REQUEST_TIMEOUT_MS: '300',
      });
      const client = new SecretsManagerClient({ endpoint: silentUrl, region, credentials, ...patient });

      // Act
      const withDeadline = await failureOf(resolveAuth(config, { client, deadline: soon() }));
      const withoutDeadline = await failureOf(resolveAuth(config, { client }));

      // Assess
      for (const error of [withDeadline, withoutDeadline]) {
        expect(error).toBeInstanceOf(AwsDeadlineError);
        expect(error).toMatchObject({ code: ErrorCodes.deadline, retryable: true });
        expect((error as Error).message).toMatch(/Secrets Manager GetSecretValue/);
      }
    },
    testTimeoutMs,
  );
});

describe('the clients the runtimes build time out on their own', () => {
  it(
    'a request that gets no answer fails after REQUEST_TIMEOUT_MS, with no deadline given',
    async () => {
      // Prepare: the configuration the runtimes pass (awsClientConfig), with a short timeout
      const store = createDynamoStore({
        client: dynamoAt(silentUrl, awsClientConfig(200)),
        tableName: 'membership',
      });

      // Act
      const error = await failureOf(store.get(user.id));

      // Assess: the SDK's TimeoutError (after its own retries), as a retryable StoreError
      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({ code: ErrorCodes.store, retryable: true });
      expect(((error as Error).cause as Error | undefined)?.name).toBe('TimeoutError');
    },
    testTimeoutMs,
  );
});
