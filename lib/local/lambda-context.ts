/**
 * The Lambda `Context` the local poller hands to handlers: the same fields as the nodejs22.x
 * runtime, and a `getRemainingTimeInMillis()` that counts down from the invocation start, so
 * deadline logic (middy's timeoutEarly, per-call deadlines) behaves as in AWS.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';

interface LambdaContextOptions {
  region?: string;
  accountId?: string;
  memoryLimitInMB?: number;
  /** Clock in epoch ms; tests pass a fake one. */
  now?: () => number;
}

const unsupported = (name: string) => (): never => {
  throw new Error(
    `context.${name}() is not supported by the local runtime: return or throw from the handler`,
  );
};

const logStreamName = (startedAt: number): string => {
  const day = new Date(startedAt).toISOString().slice(0, 10).replaceAll('-', '/');
  return `${day}/[$LATEST]${randomBytes(16).toString('hex')}`;
};

/**
 * A fresh context for one invocation that must finish within `timeoutMs`.
 *
 * @example
 * const context = createLambdaContext('swr-access-sync-local-sync', 60_000);
 * context.getRemainingTimeInMillis(); // ≈ 60000, decreasing, never below 0
 */
const createLambdaContext = (
  functionName: string,
  timeoutMs: number,
  options: LambdaContextOptions = {},
): Context => {
  const now = options.now ?? Date.now;
  const region = options.region ?? 'us-east-1';
  const accountId = options.accountId ?? '000000000000';
  const startedAt = now();
  const deadline = startedAt + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${region}:${accountId}:function:${functionName}`,
    memoryLimitInMB: String(options.memoryLimitInMB ?? 1024),
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: logStreamName(startedAt),
    getRemainingTimeInMillis: () => Math.max(0, deadline - now()),
    done: unsupported('done'),
    fail: unsupported('fail'),
    succeed: unsupported('succeed'),
  };
};

export type { LambdaContextOptions };
export { createLambdaContext };
