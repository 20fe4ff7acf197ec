/**
 * `npm run bench:profile [-- --runs 15] [-- --only sync,intake] [-- --interval-us 100] [-- --out FILE]`:
 * where each function's cold start goes, by package. Bundles every function with serverless.yml's
 * esbuild options, then per function: the bytes the import loads (the handler and the chunks it
 * imports statically, esbuild's metafile split by package) and a V8 CPU profile of `--runs` imports
 * in fresh processes (functions interleaved, NODE_OPTIONS as deployed), mapped through the source
 * maps to packages; the median ms of each. bench/minimal-handler.ts (the cold-start baseline) is
 * profiled beside them. Prints Markdown tables (bench/README.md keeps one run).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { attributeProfile, bytesByPackage, Categories, type SourceMapLookup } from './attribution.ts';
import { type Bundle, bundleWithEsbuild, deployedNodeOptions, root } from './bundles.ts';
import { filesLoadedByImport, handlerLoadEnv, profileImport } from './import-probe.ts';
import { describeMachine, machineInfo } from './machine.ts';
import { median } from './stats.ts';
import { formatNumber } from './table.ts';

const functionNames = ['sync', 'offboard', 'reconcile', 'intake'] as const;

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '15' },
    only: { type: 'string' },
    'interval-us': { type: 'string', default: '100' },
    out: { type: 'string' },
  },
  strict: true,
});
const runs = Number(values.runs);
const intervalUs = Number(values['interval-us']);
const chosen = values.only === undefined ? [...functionNames] : values.only.split(',').map((n) => n.trim());
if (!Number.isInteger(runs) || runs < 1 || !Number.isFinite(intervalUs) || intervalUs < 10)
  throw new Error('--runs takes an integer ≥ 1, --interval-us a number ≥ 10');
for (const name of chosen)
  if (!(functionNames as readonly string[]).includes(name))
    throw new Error(`--only takes ${functionNames.join(', ')}; got ${name}`);

/** Source maps of the bundle files, read once each (`undefined` for a file without one). */
const sourceMaps = new Map<string, SourceMapLookup | undefined>();
const mapFor = (url: string): SourceMapLookup | undefined => {
  if (!url.startsWith('file:')) return undefined;
  if (!sourceMaps.has(url)) {
    let map: SourceMapLookup | undefined;
    try {
      map = new SourceMap(JSON.parse(readFileSync(`${fileURLToPath(url)}.map`, 'utf8')));
    } catch {
      map = undefined;
    }
    sourceMaps.set(url, map);
  }
  return sourceMaps.get(url);
};

interface FunctionProfile {
  bundle: Bundle;
  loadedBytes: Map<string, number>;
  lazyBytes: number;
  importMs: number[];
  msByCategory: Map<string, number[]>;
}

const out = mkdtempSync(join(tmpdir(), 'swr-bench-profile-'));
const nodeOptions = deployedNodeOptions();
const machine = machineInfo();
const lines: string[] = [];
const say = (line = '') => {
  lines.push(line);
  process.stdout.write(`${line}\n`);
};
try {
  const env = handlerLoadEnv({ policyFile: join(root, 'config', 'demo-policy.yaml'), nodeOptions });
  const profiles: FunctionProfile[] = [];
  // The baseline of the cold-start rows, profiled the same way: what any handler pays.
  for (const name of [...chosen, 'minimal']) {
    const entry =
      name === 'minimal' ? join(root, 'bench', 'minimal-handler.ts') : join(root, 'functions', `${name}.ts`);
    const bundle = await bundleWithEsbuild(entry, name, join(out, 'bundles'));
    const loaded = await filesLoadedByImport(bundle.file, env, join(out, `${name}.log`));
    const metafile = bundle.metafile;
    if (metafile === undefined) throw new Error('esbuild gave no metafile');
    const loadedOutputs = loaded.map((file) => relative(root, file.path));
    const loadedBytes = bytesByPackage(metafile, loadedOutputs);
    const loadedTotal = loaded.reduce((sum, file) => sum + file.bytes, 0);
    profiles.push({
      bundle,
      loadedBytes,
      lazyBytes: bundle.totalBytes - loadedTotal,
      importMs: [],
      msByCategory: new Map(),
    });
  }
  // Interleaved, so a noisy moment of the shared machine hits every function alike.
  for (let run = 0; run < runs; run += 1)
    for (const profile of profiles) {
      const { ms, profile: cpu } = await profileImport(
        profile.bundle.file,
        env,
        join(out, `${profile.bundle.name}-${run}.json`),
        intervalUs,
      );
      profile.importMs.push(ms);
      for (const [category, categoryMs] of attributeProfile(cpu, mapFor)) {
        const list = profile.msByCategory.get(category) ?? [];
        list.push(categoryMs);
        profile.msByCategory.set(category, list);
      }
    }

  say(`# Import profile (${new Date().toISOString().slice(0, 10)})`);
  say();
  say(
    `${describeMachine(machine)}; ${runs} profiled imports per function, interleaved, sampled every ${intervalUs} µs; NODE_OPTIONS=${JSON.stringify(nodeOptions)}.`,
  );
  say(
    'ms: median over the runs of the self time in the profile (a run that never sampled a package counts 0); bytes: minified, in the files the import loads.',
  );
  for (const profile of profiles) {
    const totalMs = median(profile.importMs);
    const categories = new Set([...profile.loadedBytes.keys(), ...profile.msByCategory.keys()]);
    const rows = [...categories].map((category) => {
      const samples = profile.msByCategory.get(category) ?? [];
      const padded = [...samples, ...Array(Math.max(0, runs - samples.length)).fill(0)];
      return { category, bytes: profile.loadedBytes.get(category) ?? 0, ms: median(padded) };
    });
    rows.sort((a, b) => b.ms - a.ms || b.bytes - a.bytes);
    const loadedTotal = [...profile.loadedBytes.values()].reduce((sum, bytes) => sum + bytes, 0);
    say();
    say(
      `## ${profile.bundle.name}: import ${formatNumber(totalMs)} ms (median, profiled), ${formatNumber(loadedTotal)} bytes loaded, ${formatNumber(profile.lazyBytes)} bytes in lazy chunks`,
    );
    say();
    say('| package | bytes loaded at import | ms (median) | share of the import |');
    say('|---|---:|---:|---:|');
    for (const row of rows.filter((r) => r.ms >= 0.05 || r.bytes > 0))
      say(
        `| ${row.category} | ${formatNumber(row.bytes)} | ${formatNumber(row.ms)} | ${totalMs > 0 ? `${Math.round((100 * row.ms) / totalMs)} %` : 'n/a'} |`,
      );
  }
  say();
  say(
    `Parsing is "${Categories.compile}" plus most of "${Categories.wrappers}" (V8 compiles a function when it is first called): both grow with the bytes loaded.`,
  );
  if (values.out !== undefined) writeFileSync(values.out, `${lines.join('\n')}\n`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
