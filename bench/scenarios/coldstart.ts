/**
 * 4. Cold start: bundle size per function from `serverless package` (osls + serverless-esbuild,
 * offline, the environment of test/integration/serverless-package.test.ts) and the time to import
 * the bundled handler in a fresh Node process (median of `loadRuns`), against bench/minimal-handler.ts
 * bundled by esbuild with the options serverless.yml gives serverless-esbuild. When `serverless
 * package` fails, the functions are bundled with esbuild directly, the same way, and the result says so.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import { type BuildOptions, build } from 'esbuild';
import { parse } from 'yaml';
import type { BenchOptions } from '../args.ts';
import { median } from '../stats.ts';
import type { ResultRow } from '../table.ts';
import { progress, type ScenarioResult } from './common.ts';

const execFileAsync = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const serverlessBin = join(root, 'node_modules', 'osls', 'bin', 'serverless.js');

/** One entry of a zip file, inflated (stored or deflated only, as serverless writes them). */
const zipEntry = (
  zip: Buffer,
  wanted: (name: string) => boolean,
): { name: string; data: Buffer } | undefined => {
  let end = -1;
  for (let offset = zip.length - 22; offset >= Math.max(0, zip.length - 22 - 0xffff); offset -= 1)
    if (zip.readUInt32LE(offset) === 0x06054b50) {
      end = offset;
      break;
    }
  if (end < 0) throw new Error('not a zip file');
  let offset = zip.readUInt32LE(end + 16);
  for (let index = 0; index < zip.readUInt16LE(end + 10); index += 1) {
    const method = zip.readUInt16LE(offset + 10);
    const compressed = zip.readUInt32LE(offset + 20);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const local = zip.readUInt32LE(offset + 42);
    const name = zip.toString('utf8', offset + 46, offset + 46 + nameLength);
    if (wanted(name)) {
      const dataStart = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const raw = zip.subarray(dataStart, dataStart + compressed);
      return { name, data: method === 0 ? Buffer.from(raw) : inflateRawSync(raw) };
    }
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return undefined;
};

/** The esbuild options serverless.yml hands serverless-esbuild (custom.esbuild), as esbuild takes them. */
const esbuildOptionsOfServerlessYml = (): { options: BuildOptions; extension: string } => {
  const yml = parse(readFileSync(join(root, 'serverless.yml'), 'utf8')) as {
    custom?: { esbuild?: Record<string, unknown> };
  };
  const custom = yml.custom?.esbuild ?? {};
  const keys = [
    'bundle',
    'minify',
    'sourcemap',
    'sourcesContent',
    'target',
    'platform',
    'format',
    'mainFields',
    'banner',
    'external',
  ] as const;
  const options: Record<string, unknown> = {};
  for (const key of keys) if (custom[key] !== undefined) options[key] = custom[key];
  const extension = typeof custom.outputFileExtension === 'string' ? custom.outputFileExtension : '.js';
  return { options: options as BuildOptions, extension };
};

interface Bundle {
  name: string;
  /** The bundled handler module, ready to import (its folder holds a `"type": "module"` package.json). */
  file: string;
  bundleBytes: number;
  zipBytes: number | undefined;
}

const bundleWithEsbuild = async (entry: string, name: string, outRoot: string): Promise<Bundle> => {
  const { options, extension } = esbuildOptionsOfServerlessYml();
  const dir = join(outRoot, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
  const file = join(dir, `${name}${extension}`);
  await build({ ...options, entryPoints: [entry], outfile: file, logLevel: 'error', absWorkingDir: root });
  return { name, file, bundleBytes: statSync(file).size, zipBytes: undefined };
};

/** Runs `serverless package`; returns the functions' bundles, or the reason it could not. */
const packageWithServerless = async (outRoot: string): Promise<{ bundles: Bundle[] } | { error: string }> => {
  const outDir = join(outRoot, 'package');
  try {
    await execFileAsync(
      process.execPath,
      [serverlessBin, 'package', '--stage', 'bench', '--package', outDir],
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
    const line = text.split('\n').find((l) => /error/i.test(l)) ?? (error as Error).message;
    return { error: line.trim().slice(0, 300) };
  }
  const bundles: Bundle[] = [];
  for (const zipName of readdirSync(outDir)
    .filter((file) => file.endsWith('.zip'))
    .sort()) {
    const name = zipName.replace(/\.zip$/, '');
    const zip = readFileSync(join(outDir, zipName));
    const entry = zipEntry(zip, (path) => new RegExp(`^functions/${name}\\.m?js$`).test(path));
    if (entry === undefined) continue;
    const dir = join(outRoot, 'extracted', name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
    const file = join(dir, entry.name.replace(/^functions\//, ''));
    writeFileSync(file, entry.data);
    bundles.push({ name, file, bundleBytes: entry.data.length, zipBytes: zip.length });
  }
  return { bundles };
};

/** Enough configuration for a handler module to load (nothing is called: no network). */
const loadEnv = (): NodeJS.ProcessEnv => ({
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
  POLICY_FILE: join(root, 'config', 'demo-policy.yaml'),
  POWERTOOLS_LOG_LEVEL: 'ERROR',
});

const importProbe =
  "const t0 = performance.now(); const m = await import(process.argv[1]); if (typeof m.handler !== 'function') throw new Error('no handler export'); process.stdout.write(String(performance.now() - t0));";

/** Milliseconds to import the module in a fresh `node` (the process start itself is not counted). */
const timeImport = async (file: string): Promise<number> => {
  const { stdout } = await execFileAsync(
    process.execPath,
    ['--input-type=module', '-e', importProbe, pathToFileURL(file).href],
    { env: loadEnv(), timeout: 60_000 },
  );
  return Number(stdout);
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
      const functions = readdirSync(join(root, 'functions')).filter((file) => file.endsWith('.ts'));
      bundles = [];
      for (const file of functions.sort())
        bundles.push(
          await bundleWithEsbuild(
            join(root, 'functions', file),
            file.replace(/\.ts$/, ''),
            join(outRoot, 'esbuild'),
          ),
        );
      source = `esbuild directly with serverless.yml's options (serverless package failed: ${reason})`;
    }
    const minimal = await bundleWithEsbuild(
      join(root, 'bench', 'minimal-handler.ts'),
      'minimal',
      join(outRoot, 'minimal'),
    );

    progress(`coldstart: ${options.sizes.loadRuns} fresh-process imports per bundle`);
    const times = new Map<string, number[]>([...bundles, minimal].map((bundle) => [bundle.name, []]));
    // Interleaved, so that a noisy moment of the shared machine hits every bundle alike.
    for (let run = 0; run < options.sizes.loadRuns; run += 1)
      for (const bundle of [...bundles, minimal]) times.get(bundle.name)?.push(await timeImport(bundle.file));
    const minimalMedian = median(times.get('minimal') ?? []);
    const label = 'minimal middy SQS handler, same esbuild options';
    const rows: ResultRow[] = bundles.flatMap((bundle) => [
      {
        section: 'coldstart',
        metric: `${bundle.name} bundle size`,
        unit: 'bytes',
        ours: bundle.bundleBytes,
        baseline: minimal.bundleBytes,
        baselineLabel: label,
        ...(bundle.zipBytes === undefined
          ? {}
          : { note: `zip ${bundle.zipBytes.toLocaleString('en-US')} bytes` }),
      },
      {
        section: 'coldstart',
        metric: `${bundle.name} import time, median of ${options.sizes.loadRuns}`,
        unit: 'ms',
        ours: median(times.get(bundle.name) ?? []),
        baseline: minimalMedian,
        baselineLabel: label,
      },
    ]);
    return {
      rows,
      details: {
        source,
        bundles: bundles.map((bundle) => ({ ...bundle, file: undefined, importMs: times.get(bundle.name) })),
        minimal: { bundleBytes: minimal.bundleBytes, importMs: times.get('minimal') },
      },
    };
  } finally {
    rmSync(outRoot, { recursive: true, force: true });
  }
};

export { runColdStartScenario, zipEntry };
