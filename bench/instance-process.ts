/**
 * Starts one function instance in a child process and gives the poller a handler that invokes it
 * over IPC, with the remaining time of the poller's context; reads the child's resident memory
 * (current, sampled peak, the kernel's maxRSS). The child runs instance-host.ts bundled by esbuild
 * with the options serverless.yml gives serverless-esbuild: what Lambda loads, without a
 * TypeScript loader in memory. By default `node` gets the flags the Lambda runtime gives it for the
 * function's memorySize (lambda-node.ts: V8 sized as on Lambda) and NODE_OPTIONS as deployed; a
 * benchmark may instead run it as a plain process of this machine, and lower its CPU priority.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SQSBatchResponse } from 'aws-lambda';
import { type BuildOptions, build } from 'esbuild';
import type { SqsBatchHandler } from '../lib/local/poller.ts';
import type { LocalStack } from '../lib/local/stack.ts';
import type { QueueName } from '../lib/runtime.ts';
import { deployedMemorySizeMb, deployedNodeOptions, root, serverlessEsbuildSettings } from './bundles.ts';
import { lambdaNodeArgs } from './lambda-node.ts';

const hostScript = fileURLToPath(new URL('./instance-host.ts', import.meta.url));

/** The esbuild options of serverless.yml's custom.esbuild that decide what the bundle holds. */
const bundleOptions = (): BuildOptions => {
  const custom = serverlessEsbuildSettings();
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

interface InstanceProcessOptions {
  /** Added to the stack's environment for this instance (e.g. `SWR_MAX_RPS`). */
  env?: Record<string, string>;
  /**
   * `lambda` (default): node with the Lambda runtime's flags for the function's memorySize and
   * NODE_OPTIONS as deployed. `plain`: node as this machine would run it (V8 sized for its memory).
   */
  runtime?: 'lambda' | 'plain';
  /** A nice value for the process (e.g. `constants.priority.PRIORITY_LOW`); default: the parent's. */
  cpuPriority?: number;
}

/**
 * @example const instance = await startInstanceProcess(script, stack, 'accessChanges', { env: { SWR_MAX_RPS: '20' } });
 */
const startInstanceProcess = async (
  script: string,
  stack: LocalStack,
  queue: QueueName,
  options: InstanceProcessOptions = {},
): Promise<InstanceProcess> => {
  const functionName = stack.sqs.queues[queue].functionName;
  const setup = {
    functionName,
    queue,
    env: { ...stack.env, ...options.env },
    sqsEndpoint: stack.sqs.endpoint,
    dynamoEndpoint: stack.dynamo.endpoint,
  };
  const asLambda = (options.runtime ?? 'lambda') === 'lambda';
  const memorySizeMb = deployedMemorySizeMb(functionName);
  const child: ChildProcess = fork(script, [JSON.stringify(setup)], {
    execArgv: asLambda ? lambdaNodeArgs(memorySizeMb) : [],
    env: asLambda
      ? {
          ...process.env,
          NODE_OPTIONS: deployedNodeOptions(),
          AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(memorySizeMb),
        }
      : { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  // Before the child does any work, so that a priority that cannot be set fails the start.
  if (options.cpuPriority !== undefined && child.pid !== undefined) {
    try {
      setPriority(child.pid, options.cpuPriority);
    } catch (error) {
      child.kill('SIGKILL');
      throw new Error(`cannot set the CPU priority of the ${functionName} instance process`, {
        cause: error,
      });
    }
  }
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

export type { InstanceMemory, InstanceProcess, InstanceProcessOptions };
export { bundleInstanceHost, startInstanceProcess };
