/**
 * What a CLI command gets from its process, handed in so that tests run `main(argv, io)`
 * in-process with captured output, a given environment and emulator clients.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { SyncError } from '../errors.ts';

interface TextSink {
  write(text: string): unknown;
}

interface CliIo {
  stdout: TextSink;
  /** Progress, notices and errors: never mixed into output a script reads. */
  stderr: TextSink;
  /** Read for `--events -`. */
  stdin: AsyncIterable<string | Uint8Array>;
  env: Record<string, string | undefined>;
  /** AWS clients (tests, the local stack); by default built from the environment. Left open. */
  aws?: { sqs?: SQSClient; dynamo?: DynamoDBClient; s3?: Pick<S3Client, 'send'> };
  /** Stops long-running commands (`simulate`) like a signal would. */
  signal?: AbortSignal;
  now?: () => Date;
}

/** Exit codes: scripts rely on them. */
const ExitCodes = { ok: 0, failed: 1, usage: 2 } as const;

type ExitCode = (typeof ExitCodes)[keyof typeof ExitCodes];

/** A command line that cannot be run as given; the usage text goes with it. */
class UsageError extends SyncError {
  readonly usage: string | undefined;

  constructor(message: string, usage?: string, options?: ErrorOptions) {
    super(message, { ...options, code: 'USAGE', retryable: false });
    this.name = 'UsageError';
    this.usage = usage;
  }
}

const line = (sink: TextSink, text = ''): void => {
  sink.write(`${text}\n`);
};

/** Pretty JSON for `--json`: one document, ending in a newline. */
const writeJson = (sink: TextSink, value: unknown): void => {
  sink.write(`${JSON.stringify(value, null, 2)}\n`);
};

/** Pads columns so a table reads; the last column is never padded. */
const table = (rows: readonly string[][]): string[] => {
  const widths: number[] = [];
  for (const row of rows)
    row.forEach((cell, index) => {
      widths[index] = Math.max(widths[index] ?? 0, cell.length);
    });
  return rows.map((row) =>
    row
      .map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
};

export type { CliIo, ExitCode, TextSink };
export { ExitCodes, line, table, UsageError, writeJson };
