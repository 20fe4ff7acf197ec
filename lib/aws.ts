/**
 * Every AWS SDK call the service makes (DynamoDB, SQS, Secrets Manager) is bounded twice:
 * - per request, by the HTTP settings every client is built with (`awsClientConfig`): a
 *   connection that never opens, or an endpoint that accepts and never answers, fails after
 *   `REQUEST_TIMEOUT_MS` instead of hanging until Lambda kills the invocation;
 * - per operation, by the caller's deadline and abort signal (`callAws`): the SDK's own retries
 *   sleep without looking at the abort signal, so the operation settles at the deadline whatever
 *   the SDK is doing, and the request in flight is aborted.
 */
import type { CallOptions } from './domain.ts';
import { ErrorCodes, SyncError } from './errors.ts';

/** Opening a TCP/TLS connection to an AWS endpoint takes milliseconds; waiting longer only hides an outage. */
const maxConnectionTimeoutMs = 3_000;

/**
 * The configuration every AWS client of the service gets: the smithy `NodeHttpHandler` options
 * (passed as plain options, so no transitive package is imported). `throwOnRequestTimeout` is
 * needed: without it the SDK only logs a warning when `requestTimeout` passes and keeps waiting.
 *
 * @example const dynamo = new DynamoDBClient(awsClientConfig(config.requestTimeoutMs));
 */
const awsClientConfig = (requestTimeoutMs: number) => ({
  requestHandler: {
    connectionTimeout: Math.min(requestTimeoutMs, maxConnectionTimeoutMs),
    // Until the response headers arrive.
    requestTimeout: requestTimeoutMs,
    // Idle socket, which also bounds a body that stops arriving after the headers.
    socketTimeout: requestTimeoutMs,
    throwOnRequestTimeout: true,
  },
});

/** An AWS operation that did not finish before the caller's deadline (or was aborted by the caller). */
class AwsDeadlineError extends SyncError {
  /** What was being done, e.g. `DynamoDB GetItem`. */
  readonly operation: string;

  constructor(operation: string, why: string, options?: ErrorOptions) {
    super(`${operation} ${why}`, { ...options, code: ErrorCodes.deadline, retryable: true });
    this.name = 'AwsDeadlineError';
    this.operation = operation;
  }
}

/**
 * Runs one SDK call (`send` receives the abort signal to hand to `client.send(command, { abortSignal })`)
 * bounded by `options.deadline` (epoch ms) and `options.signal`. Past the deadline, or when the
 * caller aborts, it rejects with an `AwsDeadlineError` (retryable, code `DEADLINE_EXCEEDED`) and
 * aborts the request in flight. A deadline already passed rejects without calling.
 *
 * @example
 * const answer = await callAws('DynamoDB GetItem', { deadline }, (abortSignal) =>
 *   client.send(new GetCommand(input), { abortSignal }),
 * );
 */
const callAws = async <T>(
  operation: string,
  options: CallOptions | undefined,
  send: (abortSignal: AbortSignal | undefined) => Promise<T>,
): Promise<T> => {
  const deadline = options?.deadline;
  const signal = options?.signal;
  if (deadline === undefined && signal === undefined) return send(undefined);
  if (signal?.aborted) throw new AwsDeadlineError(operation, 'was aborted by the caller before it started');
  const remainingMs = deadline === undefined ? undefined : deadline - Date.now();
  if (remainingMs !== undefined && remainingMs <= 0)
    throw new AwsDeadlineError(operation, 'was not started: the deadline had passed');

  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onCallerAbort: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    const stop = (why: string): void => {
      if (controller.signal.aborted) return;
      const error = new AwsDeadlineError(operation, why);
      controller.abort(error);
      reject(error);
    };
    if (remainingMs !== undefined)
      timer = setTimeout(() => stop(`did not finish before the deadline (${remainingMs} ms)`), remainingMs);
    if (signal !== undefined) {
      onCallerAbort = () => stop('was aborted by the caller');
      signal.addEventListener('abort', onCallerAbort, { once: true });
    }
  });
  try {
    return await Promise.race([send(controller.signal), stopped]);
  } catch (error) {
    // The SDK's AbortError says less than why we aborted.
    if (controller.signal.aborted && controller.signal.reason instanceof AwsDeadlineError)
      throw controller.signal.reason;
    throw error;
  } finally {
    clearTimeout(timer);
    if (onCallerAbort !== undefined) signal?.removeEventListener('abort', onCallerAbort);
  }
};

/**
 * Options for one call that must end by `deadline`, keeping the caller's signal.
 *
 * @example await store.get(userId, withDeadline(options, Date.now() + 2_000));
 */
const withDeadline = (options: CallOptions | undefined, deadline: number): CallOptions => ({
  ...options,
  deadline: options?.deadline === undefined ? deadline : Math.min(options.deadline, deadline),
});

export { AwsDeadlineError, awsClientConfig, callAws, maxConnectionTimeoutMs, withDeadline };
