/**
 * Starts one function instance in a child process and gives the poller a handler that invokes it
 * over IPC, with the remaining time of the poller's context; reads the child's resident memory
 * (current, sampled peak, the kernel's maxRSS). The child runs instance-host.ts bundled by esbuild
 * with the options serverless.yml gives serverless-esbuild, under plain `node`: what Lambda loads,
 * without a TypeScript loader in memory.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SQSBatchResponse } from 'aws-lambda';
import { type BuildOptions, build } from 'esbuild';
import { parse } from 'yaml';
import type { SqsBatchHandler } from '../lib/local/poller.ts';
import type { LocalStack } from '../lib/local/stack.ts';
import type { QueueName } from '../lib/runtime.ts';

const hostScript = fileURLToPath(new URL('./instance-host.ts', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));

/** The esbuild options of serverless.yml's custom.esbuild that decide what the bundle holds. */
const bundleOptions = (): BuildOptions => {
  const yml = parse(readFileSync(join(root, 'serverless.yml'), 'utf8')) as {
    custom?: { esbuild?: Record<string, unknown> };
  };
  const custom = yml.custom?.esbuild ?? {};
  const keys = ['bundle', 'minify', 'target', 'platform', 'format', 'mainFields', 'banner', 'external'];
  return Object.fromEntries(keys.flatMap((key) => (custom[key] === undefined ? [] : [[key, custom[key]]])));
};

/**
 * Bundles the instance host into `dir` (with a package.json saying ESM) and returns the file.
 *
 * @example const script = await bundleInstanceHost(mkdtempSync(join(tmpdir(), 'instance-')));
 */
const bundleInstanceHost = async (dir: string): Promise<string> => {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
  const file = join(dir, 'instance-host.js');
  await build({
    ...bundleOptions(),
    entryPoints: [hostScript],
    outfile: file,
    logLevel: 'error',
    absWorkingDir: root,
  });
  return file;
};
/** A child that does not say it is ready by then failed to start. */
const startTimeoutMs = 60_000;

interface InstanceMemory {
  rss: number;
  /** Highest RSS sampled every 50 ms since the start or the last `resetPeak()`. */
  peakRss: number;
  /** The kernel's high-water mark for the child's whole life. */
  maxRss: number;
  /** V8's heap and the memory outside it when the peak was sampled. */
  atPeak: { heapUsed: number; heapTotal: number; external: number; arrayBuffers: number };
}

interface InstanceProcess {
  pid: number;
  handler: SqsBatchHandler;
  memory(): Promise<InstanceMemory>;
  resetPeak(): void;
  stop(): Promise<void>;
}

type Outgoing =
  | { kind: 'ready' }
  | { kind: 'answer'; id: number; answer?: SQSBatchResponse; error?: string }
  | ({ kind: 'memory' } & InstanceMemory);

/**
 * @example const instance = await startInstanceProcess(script, stack, 'accessChanges', { SWR_MAX_RPS: '20' });
 */
const startInstanceProcess = async (
  script: string,
  stack: LocalStack,
  queue: QueueName,
  env: Record<string, string> = {},
): Promise<InstanceProcess> => {
  const setup = {
    functionName: stack.sqs.queues[queue].functionName,
    queue,
    env: { ...stack.env, ...env },
    sqsEndpoint: stack.sqs.endpoint,
    dynamoEndpoint: stack.dynamo.endpoint,
  };
  const child: ChildProcess = fork(script, [JSON.stringify(setup)], {
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<
    number,
    { resolve: (answer: SQSBatchResponse) => void; reject: (e: Error) => void }
  >();
  const memoryWaiters: Array<(memory: InstanceMemory) => void> = [];
  let nextId = 0;
  let exited = false;
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('instance process did not start')), startTimeoutMs);
    child.on('message', (message: Outgoing) => {
      if (message.kind === 'ready') {
        clearTimeout(timer);
        resolve();
      } else if (message.kind === 'answer') {
        const waiter = pending.get(message.id);
        pending.delete(message.id);
        if (message.error !== undefined) waiter?.reject(new Error(`instance threw ${message.error}`));
        else waiter?.resolve(message.answer ?? { batchItemFailures: [] });
      } else
        memoryWaiters.shift()?.({
          rss: message.rss,
          peakRss: message.peakRss,
          maxRss: message.maxRss,
          atPeak: message.atPeak,
        });
    });
    child.once('exit', (code) => {
      exited = true;
      clearTimeout(timer);
      reject(new Error(`instance process exited with ${code}`));
      for (const waiter of pending.values()) waiter.reject(new Error('instance process exited'));
      pending.clear();
    });
  });
  await ready;
  return {
    pid: child.pid ?? -1,
    handler: (event, context) =>
      new Promise((resolve, reject) => {
        if (exited) {
          reject(new Error('instance process exited'));
          return;
        }
        nextId += 1;
        pending.set(nextId, { resolve, reject });
        child.send({ kind: 'invoke', id: nextId, event, remainingMs: context.getRemainingTimeInMillis() });
      }),
    memory: () =>
      new Promise((resolve) => {
        memoryWaiters.push(resolve);
        child.send({ kind: 'memory' });
      }),
    resetPeak: () => {
      child.send({ kind: 'reset-peak' });
    },
    stop: async () => {
      if (exited) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    },
  };
};

export type { InstanceMemory, InstanceProcess };
export { bundleInstanceHost, startInstanceProcess };
