/**
 * 4. Cold start, per function, from the zips `serverless package` writes (osls + serverless-esbuild,
 * offline, with the params a real stage needs, as test/integration/serverless-package.test.ts
 * packages), each unpacked as Lambda unpacks it:
 * - JavaScript bytes in the zip, and bytes the import loads (the handler and the chunks it imports
 *   statically: a module hook lists what is read);
 * - import time in a fresh `node` with the NODE_OPTIONS serverless.yml gives the functions, and
 *   with the other choice about `--enable-source-maps` (what source maps cost), median of
 *   `loadRuns` runs, every bundle interleaved;
 * - the first invocation of sync (import, then one SQS batch: a `user.teams` snapshot, so a
 *   DynamoDB read and write and a GET per target through the SWR pool, against the simulator and
 *   dynalite on 127.0.0.1), against the same function built from `coldstartBaseline` (the commit
 *   before the cold-start work: "today"), interleaved.
 * Baseline of the first two: bench/minimal-handler.ts bundled with the same esbuild options.
 * When `serverless package` fails, the functions are bundled with esbuild directly, the same
 * way, and the result says so.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { compilePolicyFile } from '../../lib/deploy/compile-policy.ts';
import { startLocalDynamo } from '../../lib/local/dynamo.ts';
import { startSimulator } from '../../lib/sim/index.ts';
import { ensureTable } from '../../lib/store/table.ts';
import type { BenchOptions } from '../args.ts';
import { type Bundle, bundleFromZip, bundleWithEsbuild, deployedNodeOptions, root } from '../bundles.ts';
import { filesLoadedByImport, handlerLoadEnv, runProbe, timeImport } from '../import-probe.ts';
import { median } from '../stats.ts';
import type { ResultRow } from '../table.ts';
import { progress, type ScenarioResult } from './common.ts';

const execFileAsync = promisify(execFile);
const serverlessBin = join(root, 'node_modules', 'osls', 'bin', 'serverless.js');
const functionNames = ['sync', 'offboard', 'reconcile', 'intake'] as const;

/** What a real stage must be given (the package guard refuses the demo policy and no secret). */
const packageParams = {
  policyFile: 'test/fixtures/policies/deployable.yaml',
  swrCredentialsSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:swr-access-sync-AbCdEf',
};

/** Runs `serverless package`; returns the functions' bundles, or the reason it could not. */
const packageWithServerless = async (outRoot: string): Promise<{ bundles: Bundle[] } | { error: string }> => {
  const outDir = join(outRoot, 'package');
  const workFolder = `.esbuild-bench-${process.pid}`;
  try {
    await execFileAsync(
      process.execPath,
      [
        serverlessBin,
        'package',
        '--stage',
        'bench',
        '--package',
        outDir,
        `--param=esbuildWorkFolder=${workFolder}`,
        ...Object.entries(packageParams).map(([name, value]) => `--param=${name}=${value}`),
      ],
      {
        cwd: root,
        timeout: 300_000,
        maxBuffer: 16 * 1024 * 1024,
        env: {
          ...process.env,
          SLS_SCHEMA_CACHE_BASE_DIR: outRoot,
          CI: '1',
          AWS_ACCESS_KEY_ID: 'test',
          AWS_SECRET_ACCESS_KEY: 'test',
          AWS_REGION: 'eu-west-1',
        },
      },
    );
  } catch (error) {
    const text = `${(error as { stderr?: string }).stderr ?? ''}\n${(error as { stdout?: string }).stdout ?? ''}`;
    const line = text.split('\n').find((l) => /error|refusing/i.test(l)) ?? (error as Error).message;
    return { error: line.trim().slice(0, 300) };
  } finally {
    rmSync(join(root, workFolder), { recursive: true, force: true });
    rmSync(join(root, '.policy', 'bench.json'), { force: true });
  }
  const bundles: Bundle[] = [];
  for (const zipName of readdirSync(outDir)
    .filter((file) => file.endsWith('.zip'))
    .sort()) {
    const bundle = bundleFromZip(join(outDir, zipName), zipName.replace(/\.zip$/, ''), join(outRoot, 'zips'));
    if (bundle !== undefined) bundles.push(bundle);
  }
  return { bundles };
};

/** The repository at `ref` (a commit), unpacked with this checkout's node_modules. */
const checkoutOf = async (ref: string, dir: string): Promise<string> => {
  mkdirSync(dir, { recursive: true });
  await execFileAsync('sh', ['-c', `git archive "$1" | tar -x -C "$2"`, 'sh', ref, dir], {
    cwd: root,
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return dir;
};

/** Imports the handler, then hands it one SQS event; writes both times (ms) to a file. */
const firstInvocationScript = `
import { writeFileSync } from 'node:fs';
const [url, eventJson, outFile] = process.argv.slice(1);
const t0 = performance.now();
const { handler } = await import(url);
const imported = performance.now();
const context = {
  functionName: 'sync', functionVersion: '$LATEST', awsRequestId: 'bench-first-invocation',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:sync', memoryLimitInMB: '512',
  logGroupName: '/aws/lambda/sync', logStreamName: 'bench', callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 60000, done() {}, fail() {}, succeed() {},
};
const answer = await handler(JSON.parse(eventJson), context);
const done = performance.now();
writeFileSync(outFile, JSON.stringify({ importMs: imported - t0, totalMs: done - t0, answer }));
process.exit(0);`;

/** An SQS event holding one `user.teams` snapshot: the same work every time, a new event each time. */
const snapshotEvent = (run: number): unknown => {
  const id = `bench-first-invocation-${process.pid}-${run}`;
  const body = {
    id,
    type: 'user.teams',
    occurredAt: new Date(Date.now() - 1_000).toISOString(),
    source: 'bench',
    user: { id: 'a11ce000000000000000000000000001', name: 'alice' },
    teams: ['backend'],
  };
  return {
    Records: [
      {
        messageId: id,
        receiptHandle: id,
        body: JSON.stringify(body),
        attributes: {
          ApproximateReceiveCount: '1',
          SentTimestamp: String(Date.now()),
          SenderId: 'bench',
          ApproximateFirstReceiveTimestamp: String(Date.now()),
          MessageGroupId: body.user.id,
          MessageDeduplicationId: id,
        },
        messageAttributes: {},
        md5OfBody: '',
        eventSource: 'aws:sqs',
        eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:access-changes.fifo',
        awsRegion: 'eu-west-1',
      },
    ],
  };
};

interface FirstInvocation {
  importMs: number;
  totalMs: number;
}

/**
 * First invocations of two sync bundles (ours, the baseline's), interleaved, against one simulator
 * and one dynalite; each bundle reads its own policy file (same policy).
 */
const measureFirstInvocations = async (
  variants: readonly { name: string; bundle: Bundle; policyFile: string; nodeOptions: string }[],
  runs: number,
  outRoot: string,
): Promise<Map<string, FirstInvocation[]>> => {
  const sim = await startSimulator();
  const dynamo = await startLocalDynamo();
  try {
    const tableName = 'swr-access-sync-bench';
    await ensureTable(dynamo.client, tableName);
    const envOf = (variant: (typeof variants)[number]): NodeJS.ProcessEnv => ({
      ...handlerLoadEnv({ policyFile: variant.policyFile, nodeOptions: variant.nodeOptions }),
      SWR_ENDPOINT: sim.swrUrl,
      IAM_ENDPOINT: sim.iamUrl,
      SWR_AUTH_TOKEN: sim.seed.serviceAccount.staticToken ?? '',
      TABLE_NAME: tableName,
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    });
    const invoke = async (variant: (typeof variants)[number], run: number): Promise<FirstInvocation> => {
      const outFile = join(outRoot, `first-${variant.name}-${run}.json`);
      await runProbe(
        firstInvocationScript,
        [pathToFileURL(variant.bundle.file).href, JSON.stringify(snapshotEvent(run)), outFile],
        envOf(variant),
      );
      const result = JSON.parse(readFileSync(outFile, 'utf8')) as FirstInvocation & {
        answer: { batchItemFailures: unknown[] };
      };
      if (result.answer.batchItemFailures.length > 0)
        throw new Error(`${variant.name}: the first invocation failed its message`);
      return { importMs: result.importMs, totalMs: result.totalMs };
    };
    // Not counted: the first run of all grants and writes what later runs only read.
    let run = 0;
    for (const variant of variants) await invoke(variant, run++);
    const results = new Map<string, FirstInvocation[]>(variants.map((variant) => [variant.name, []]));
    for (let index = 0; index < runs; index += 1)
      for (const variant of variants) results.get(variant.name)?.push(await invoke(variant, run++));
    return results;
  } finally {
    await dynamo.stop();
    await sim.close();
  }
};

const sourceMapsFlag = '--enable-source-maps';

/** The other side of the source-map decision: NODE_OPTIONS with the flag if deployed without, else without. */
const otherSourceMapChoice = (nodeOptions: string): { nodeOptions: string; label: string } => {
  const options = nodeOptions.split(/\s+/).filter((option) => option !== '');
  return options.includes(sourceMapsFlag)
    ? {
        nodeOptions: options.filter((option) => option !== sourceMapsFlag).join(' '),
        label: `without ${sourceMapsFlag}`,
      }
    : { nodeOptions: [...options, sourceMapsFlag].join(' '), label: `with ${sourceMapsFlag}` };
};

/**
 * @example const { rows } = await runColdStartScenario(options);
 */
const runColdStartScenario = async (options: BenchOptions): Promise<ScenarioResult> => {
  const outRoot = mkdtempSync(join(tmpdir(), 'swr-bench-coldstart-'));
  try {
    progress('coldstart: serverless package (offline)');
    const packaged = await packageWithServerless(outRoot);
    let bundles: Bundle[];
    let source: string;
    if ('bundles' in packaged && packaged.bundles.length > 0) {
      bundles = packaged.bundles;
      source = 'serverless package (osls + serverless-esbuild)';
    } else {
      const reason = 'error' in packaged ? packaged.error : 'no function zip found';
      progress(`coldstart: serverless package unavailable (${reason}); bundling with esbuild directly`);
      bundles = [];
      for (const name of functionNames)
        bundles.push(
          await bundleWithEsbuild(join(root, 'functions', `${name}.ts`), name, join(outRoot, 'esbuild')),
        );
      source = `esbuild directly with serverless.yml's options (serverless package failed: ${reason})`;
    }
    const minimal = await bundleWithEsbuild(
      join(root, 'bench', 'minimal-handler.ts'),
      'minimal',
      join(outRoot, 'minimal'),
    );
    // The functions read the packaged policy (compiled JSON) from their zip; the same policy as JSON
    // beside the esbuild bundles when serverless package was not available.
    const policyFile = join(outRoot, 'demo-policy.json');
    await compilePolicyFile({ serviceDir: root, source: 'config/demo-policy.yaml', target: policyFile });

    const nodeOptions = deployedNodeOptions();
    const { nodeOptions: bare, label: bareLabel } = otherSourceMapChoice(nodeOptions);
    const runs = options.sizes.loadRuns;
    progress(
      `coldstart: ${runs} fresh-process imports per bundle, NODE_OPTIONS ${JSON.stringify(nodeOptions)} and ${JSON.stringify(bare)}`,
    );
    const all = [...bundles, minimal];
    const times = new Map<string, number[]>();
    const record = (key: string, ms: number) => times.set(key, [...(times.get(key) ?? []), ms]);
    // Interleaved, so that a noisy moment of the shared machine hits every bundle alike.
    for (let run = 0; run < runs; run += 1)
      for (const bundle of all) {
        record(`${bundle.name}`, await timeImport(bundle.file, handlerLoadEnv({ policyFile, nodeOptions })));
        record(
          `${bundle.name}/bare`,
          await timeImport(bundle.file, handlerLoadEnv({ policyFile, nodeOptions: bare })),
        );
      }
    const loaded = new Map<string, number>();
    for (const bundle of all) {
      const files = await filesLoadedByImport(
        bundle.file,
        handlerLoadEnv({ policyFile, nodeOptions: bare }),
        join(outRoot, `${bundle.name}.log`),
      );
      loaded.set(
        bundle.name,
        files.reduce((sum, file) => sum + file.bytes, 0),
      );
    }

    progress(
      `coldstart: first invocation of sync, ours and ${options.coldstartBaseline} interleaved (${runs} each)`,
    );
    const baselineTree = await checkoutOf(options.coldstartBaseline, join(outRoot, 'baseline-tree'));
    const todaySync = await bundleWithEsbuild(
      join(baselineTree, 'functions', 'sync.ts'),
      'sync',
      join(outRoot, 'baseline'),
      baselineTree,
    );
    const oursSync = bundles.find((bundle) => bundle.name === 'sync');
    if (oursSync === undefined) throw new Error('no sync bundle');
    const first = await measureFirstInvocations(
      [
        { name: 'ours', bundle: oursSync, policyFile, nodeOptions },
        { name: 'ours-other-source-maps', bundle: oursSync, policyFile, nodeOptions: bare },
        {
          name: 'today',
          bundle: todaySync,
          policyFile: join(baselineTree, 'config', 'demo-policy.yaml'),
          nodeOptions: deployedNodeOptions(baselineTree),
        },
      ],
      runs,
      outRoot,
    );

    const minimalMedian = median(times.get('minimal') ?? []);
    const minimalBare = median(times.get('minimal/bare') ?? []);
    const label = 'minimal middy SQS handler, same esbuild options';
    const rows: ResultRow[] = bundles.flatMap((bundle): ResultRow[] => [
      {
        section: 'coldstart',
        metric: `${bundle.name} bundle size, every chunk`,
        unit: 'bytes',
        ours: bundle.totalBytes,
        baseline: minimal.totalBytes,
        baselineLabel: label,
        note: `handler file ${bundle.bundleBytes.toLocaleString('en-US')} bytes${
          bundle.zipBytes === undefined ? '' : `, zip ${bundle.zipBytes.toLocaleString('en-US')} bytes`
        }`,
      },
      {
        section: 'coldstart',
        metric: `${bundle.name} bytes loaded at import`,
        unit: 'bytes',
        ours: loaded.get(bundle.name) ?? Number.NaN,
        baseline: loaded.get('minimal') ?? Number.NaN,
        baselineLabel: label,
        note: 'the handler and the chunks it imports statically; goal ≤ 500,000',
      },
      {
        section: 'coldstart',
        metric: `${bundle.name} import time, median of ${runs}`,
        unit: 'ms',
        ours: median(times.get(bundle.name) ?? []),
        baseline: minimalMedian,
        baselineLabel: label,
        note: `NODE_OPTIONS=${nodeOptions === '' ? '(none)' : nodeOptions}, as deployed; goal ≤ 5×`,
      },
      {
        section: 'coldstart',
        metric: `${bundle.name} import time ${bareLabel}, median of ${runs}`,
        unit: 'ms',
        ours: median(times.get(`${bundle.name}/bare`) ?? []),
        baseline: minimalBare,
        baselineLabel: label,
        note: 'the other side of the source-map decision (not deployed)',
      },
    ]);
    const firstOurs = first.get('ours') ?? [];
    const firstToday = first.get('today') ?? [];
    rows.push(
      {
        section: 'coldstart',
        metric: `sync first invocation (import + one batch through DynamoDB and the SWR pool), median of ${runs}`,
        unit: 'ms',
        ours: median(firstOurs.map((result) => result.totalMs)),
        baseline: median(firstToday.map((result) => result.totalMs)),
        baselineLabel: `sync of ${options.coldstartBaseline} ("today"), same event, simulator and dynalite`,
        note: 'a user.teams snapshot: one DynamoDB read and write, a GET per target; static token (no Secrets Manager)',
      },
      {
        section: 'coldstart',
        metric: `sync first invocation ${bareLabel}, median of ${runs}`,
        unit: 'ms',
        ours: median((first.get('ours-other-source-maps') ?? []).map((result) => result.totalMs)),
        baseline: median(firstOurs.map((result) => result.totalMs)),
        baselineLabel: `ours as deployed (NODE_OPTIONS=${nodeOptions === '' ? '(none)' : nodeOptions})`,
        note: 'the other side of the source-map decision (not deployed)',
      },
      {
        section: 'coldstart',
        metric: `sync import within that first invocation, median of ${runs}`,
        unit: 'ms',
        ours: median(firstOurs.map((result) => result.importMs)),
        baseline: median(firstToday.map((result) => result.importMs)),
        baselineLabel: `sync of ${options.coldstartBaseline} ("today")`,
      },
    );
    return {
      rows,
      details: {
        source,
        nodeOptions,
        bundles: bundles.map((bundle) => ({
          name: bundle.name,
          bundleBytes: bundle.bundleBytes,
          totalBytes: bundle.totalBytes,
          zipBytes: bundle.zipBytes,
          loadedBytes: loaded.get(bundle.name),
          importMs: times.get(bundle.name),
          importMsOtherSourceMapChoice: times.get(`${bundle.name}/bare`),
        })),
        minimal: {
          bundleBytes: minimal.bundleBytes,
          importMs: times.get('minimal'),
          importMsOtherSourceMapChoice: times.get('minimal/bare'),
        },
        firstInvocation: {
          baselineRef: options.coldstartBaseline,
          ours: firstOurs,
          oursOtherSourceMapChoice: { nodeOptions: bare, runs: first.get('ours-other-source-maps') },
          today: firstToday,
        },
      },
    };
  } finally {
    rmSync(outRoot, { recursive: true, force: true });
  }
};

export { runColdStartScenario };
