/**
 * Fresh `node` processes that import a bundled handler, as Lambda's init does, and report one thing
 * each: the milliseconds of the `import()`, the files it loaded (a module hook, so only what the
 * import really reads counts), a V8 CPU profile of it, or the time to a first invocation.
 * The process start itself is never counted.
 */
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

type ProbeEnv = NodeJS.ProcessEnv;

/**
 * Enough configuration for a handler module to load (nothing is called: no network), with
 * `NODE_OPTIONS` as given. The policy is the bundle's own when it ships one, else the demo policy.
 *
 * @example const env = handlerLoadEnv({ policyFile, nodeOptions: '--enable-source-maps' });
 */
const handlerLoadEnv = (settings: { policyFile: string; nodeOptions?: string | undefined }): ProbeEnv => ({
  PATH: process.env.PATH,
  AWS_REGION: 'eu-west-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  TABLE_NAME: 'bench',
  ACCESS_CHANGES_DLQ_URL: 'http://127.0.0.1:9/000000000000/access-changes-dlq.fifo',
  OFFBOARDING_DLQ_URL: 'http://127.0.0.1:9/000000000000/offboarding-dlq.fifo',
  // The intake's source queues (it reads them at load, as the queue handlers read their DLQs).
  ACCESS_CHANGES_QUEUE_URL: 'http://127.0.0.1:9/000000000000/access-changes.fifo',
  OFFBOARDING_QUEUE_URL: 'http://127.0.0.1:9/000000000000/offboarding.fifo',
  SWR_ENDPOINT: 'http://127.0.0.1:9',
  IAM_ENDPOINT: 'http://127.0.0.1:9',
  SWR_AUTH_TOKEN: 'bench-load-only',
  POLICY_FILE: settings.policyFile,
  POWERTOOLS_LOG_LEVEL: 'ERROR',
  ...(settings.nodeOptions === undefined || settings.nodeOptions === ''
    ? {}
    : { NODE_OPTIONS: settings.nodeOptions }),
});

/** Runs a module-type script in a fresh node with `args`; returns its stdout. */
const runProbe = async (script: string, args: readonly string[], env: ProbeEnv): Promise<string> => {
  const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script, ...args], {
    env,
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
};

const timeScript = `
const t0 = performance.now();
const m = await import(process.argv[1]);
if (typeof m.handler !== 'function') throw new Error('no handler export');
process.stdout.write(String(performance.now() - t0));`;

/**
 * Milliseconds to import the module in a fresh `node` with `env` (NODE_OPTIONS included).
 *
 * @example const ms = await timeImport(bundle.file, env);
 */
const timeImport = async (file: string, env: ProbeEnv): Promise<number> =>
  Number(await runProbe(timeScript, [pathToFileURL(file).href], env));

/** The hook runs in Node's loader thread: each loaded file: URL is appended to the log file. */
const loadLogHooks = `
import { appendFileSync } from 'node:fs';
let log;
export async function initialize(data) { log = data.log; }
export async function load(url, context, next) {
  if (url.startsWith('file:')) appendFileSync(log, url + '\\n');
  return next(url, context);
}`;

const loadedScript = `
import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(loadLogHooks)}), 'data:', { data: { log: process.argv[2] } });
const m = await import(process.argv[1]);
if (typeof m.handler !== 'function') throw new Error('no handler export');`;

interface LoadedFile {
  path: string;
  bytes: number;
}

/**
 * The JavaScript files one import of the module reads (the handler and the chunks it imports
 * statically), each with its size.
 *
 * @example const files = await filesLoadedByImport(bundle.file, env, '/tmp/x.log');
 */
const filesLoadedByImport = async (file: string, env: ProbeEnv, logFile: string): Promise<LoadedFile[]> => {
  rmSync(logFile, { force: true });
  await runProbe(loadedScript, [pathToFileURL(file).href, logFile], env);
  const urls = [...new Set(readFileSync(logFile, 'utf8').split('\n').filter(Boolean))];
  rmSync(logFile, { force: true });
  return urls
    .map((url) => fileURLToPath(url))
    .filter((path) => /\.[cm]?js$/.test(path))
    .map((path) => ({ path, bytes: statSync(path).size }));
};

const profileScript = `
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: Number(process.argv[3]) });
await session.post('Profiler.start');
const t0 = performance.now();
const m = await import(process.argv[1]);
const ms = performance.now() - t0;
const { profile } = await session.post('Profiler.stop');
if (typeof m.handler !== 'function') throw new Error('no handler export');
writeFileSync(process.argv[2], JSON.stringify({ ms, profile }));`;

/** The subset of a V8 CPU profile (`Profiler.stop`) that attribution reads. */
interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/**
 * A CPU profile of one import in a fresh process (sampled every `intervalUs`), and its duration.
 *
 * @example const { ms, profile } = await profileImport(bundle.file, env, '/tmp/p.json', 100);
 */
const profileImport = async (
  file: string,
  env: ProbeEnv,
  outFile: string,
  intervalUs: number,
): Promise<{ ms: number; profile: CpuProfile }> => {
  await runProbe(profileScript, [pathToFileURL(file).href, outFile, String(intervalUs)], env);
  const result = JSON.parse(readFileSync(outFile, 'utf8')) as { ms: number; profile: CpuProfile };
  rmSync(outFile, { force: true });
  return result;
};

export type { CpuProfile, LoadedFile, ProbeEnv };
export { filesLoadedByImport, handlerLoadEnv, profileImport, runProbe, timeImport };
