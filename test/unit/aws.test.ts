import { describe, expect, it } from 'vitest';
import { AwsDeadlineError, awsClientConfig, callAws, withDeadline } from '../../lib/aws.ts';
import { ErrorCodes } from '../../lib/errors.ts';

/** A call that never settles and ignores its abort signal (the SDK between two retries). */
const deaf = (): Promise<never> => new Promise<never>(() => undefined);

const failureOf = (running: Promise<unknown>): Promise<unknown> =>
  running.then(
    () => undefined,
    (error: unknown) => error,
  );

describe('callAws', () => {
  it('settles at the deadline even when the call ignores its abort signal', async () => {
    // Prepare
    let signal: AbortSignal | undefined;

    // Act
    const error = await failureOf(
      callAws('DynamoDB GetItem', { deadline: Date.now() + 50 }, (abortSignal) => {
        signal = abortSignal;
        return deaf();
      }),
    );

    // Assess
    expect(error).toBeInstanceOf(AwsDeadlineError);
    expect(error).toMatchObject({
      code: ErrorCodes.deadline,
      retryable: true,
      operation: 'DynamoDB GetItem',
    });
    expect(signal?.aborted).toBe(true);
  });

  it('does not start a call whose deadline has passed', async () => {
    // Prepare
    let called = false;

    // Act
    const error = await failureOf(
      callAws('SQS SendMessageBatch', { deadline: Date.now() - 1 }, async () => {
        called = true;
      }),
    );

    // Assess
    expect(called).toBe(false);
    expect(error).toMatchObject({ code: ErrorCodes.deadline, message: expect.stringMatching(/not started/) });
  });

  it.each([
    ['before the call', true],
    ['during the call', false],
  ])('stops when the caller aborts %s', async (_when, early) => {
    // Prepare
    const controller = new AbortController();
    if (early) controller.abort();

    // Act
    const running = failureOf(callAws('DynamoDB Scan', { signal: controller.signal }, deaf));
    controller.abort();
    const error = await running;

    // Assess
    expect(error).toBeInstanceOf(AwsDeadlineError);
    expect((error as Error).message).toMatch(/DynamoDB Scan was aborted by the caller/);
  });

  it("passes the call's own answer and failure through unchanged", async () => {
    // Prepare
    const failure = Object.assign(new Error('throttled'), { name: 'ThrottlingException' });

    // Act
    const answer = await callAws('op', { deadline: Date.now() + 10_000 }, async () => 42);
    const error = await failureOf(
      callAws('op', { deadline: Date.now() + 10_000 }, async () => {
        throw failure;
      }),
    );
    const direct = await callAws('op', undefined, async (signal) => signal);

    // Assess
    expect(answer).toBe(42);
    expect(error).toBe(failure);
    expect(direct).toBeUndefined();
  });

  it('keeps the earlier of two deadlines', () => {
    expect(withDeadline({ deadline: 1_000 }, 2_000).deadline).toBe(1_000);
    expect(withDeadline({ deadline: 3_000 }, 2_000).deadline).toBe(2_000);
    expect(withDeadline(undefined, 2_000).deadline).toBe(2_000);
  });
});

describe('awsClientConfig', () => {
  it('bounds connection and request, and makes the SDK throw at the request timeout', () => {
    expect(awsClientConfig(10_000).requestHandler).toEqual({
      connectionTimeout: 3_000,
      requestTimeout: 10_000,
      socketTimeout: 10_000,
      throwOnRequestTimeout: true,
    });
    expect(awsClientConfig(500).requestHandler.connectionTimeout).toBe(500);
  });
});
