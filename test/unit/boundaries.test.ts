import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/*
 * Which folder may import which (README "Layout"), held two ways:
 * - Biome's noRestrictedImports (biome.json overrides) stops a direct import in `npm run lint`;
 *   the first block proves the configuration fires, on probe files laid out like the repository;
 * - the import graph of the real sources, followed transitively, proves that what each Lambda
 *   bundles never reaches the simulator, the local stack or the CLI, and that core reaches
 *   nothing but itself and the shared words (domain, errors, pool).
 */

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const biomeBin = join(root, 'node_modules', '@biomejs', 'biome', 'bin', 'biome');
const execFileAsync = promisify(execFile);

interface BiomeDiagnostic {
  category?: string;
  location?: { path?: string | { file?: string } };
}

describe('Biome noRestrictedImports (biome.json)', () => {
  let probeRoot: string;
  let diagnostics: Array<{ file: string; category: string }> = [];

  const probes: Array<[file: string, specifier: string, refused: boolean]> = [
    ['lib/core/probe-swr.ts', '../swr/names.ts', true],
    ['lib/core/probe-store.ts', '../store/index.ts', true],
    ['lib/core/probe-sdk.ts', '@aws-sdk/client-sqs', true],
    ['lib/core/probe-sim.ts', '../sim/index.ts', true],
    ['lib/core/probe-ok.ts', './names.ts', false],
    ['lib/core/probe-domain.ts', '../domain.ts', false],
    ['functions/probe-sim.ts', '../lib/sim/server.ts', true],
    ['functions/probe-local.ts', '../lib/local/stack.ts', true],
    ['functions/probe-ok.ts', '../lib/runtime.ts', false],
    ['lib/probe-local.ts', './local/stack.ts', true],
    ['lib/probe-cli.ts', './cli/main.ts', true],
    ['lib/reconcile/probe-sim.ts', '../sim/index.ts', true],
    ['lib/reconcile/probe-swr.ts', '../swr/index.ts', false],
    ['lib/cli/probe-sim.ts', '../sim/cli.ts', true],
    ['lib/cli/probe-local.ts', '../local/stack.ts', true],
    ['lib/cli/simulate-command.ts', '../sim/cli.ts', false],
    ['lib/local/probe-sim.ts', '../sim/index.ts', false],
  ];

  beforeAll(async () => {
    probeRoot = await mkdtemp(join(tmpdir(), 'swr-access-biome-'));
    const config = JSON.parse(await readFile(join(root, 'biome.json'), 'utf8')) as Record<string, unknown>;
    delete config.$schema;
    await writeFile(join(probeRoot, 'biome.json'), JSON.stringify(config));
    for (const [file, specifier] of probes) {
      await mkdir(dirname(join(probeRoot, file)), { recursive: true });
      await writeFile(
        join(probeRoot, file),
        `import { probe } from '${specifier}';\n\nexport const value = probe;\n`,
      );
    }
    // Biome exits 1 when it reports errors: the report is what matters here.
    const answer = await execFileAsync(biomeBin, ['lint', '--reporter=json', '--max-diagnostics=none', '.'], {
      cwd: probeRoot,
      timeout: 60_000,
    }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
    const report = JSON.parse(answer.stdout) as { diagnostics?: BiomeDiagnostic[] };
    diagnostics = (report.diagnostics ?? []).map((diagnostic) => {
      const path = diagnostic.location?.path;
      return {
        file: (typeof path === 'string' ? path : (path?.file ?? '')).replace(/^\.\//, ''),
        category: diagnostic.category ?? '',
      };
    });
  }, 90_000);

  afterAll(async () => {
    if (probeRoot !== undefined) await rm(probeRoot, { recursive: true, force: true });
  });

  it.each(probes)('%s importing %s: refused = %s', (file, _specifier, refused) => {
    // Act
    const fired = diagnostics.some(
      (diagnostic) => diagnostic.file === file && diagnostic.category === 'lint/style/noRestrictedImports',
    );

    // Assess
    expect(fired).toBe(refused);
  });
});

/** Relative imports (static, `export … from`, dynamic) of one source file, resolved to paths. */
const importsOf = (file: string): string[] => {
  const text = readFileSync(file, 'utf8');
  const specifiers = [
    ...text.matchAll(/(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/g),
    ...text.matchAll(/import\s*\(\s*['"]([^'"]+)['"]\s*\)/g),
    ...text.matchAll(/^import\s+['"]([^'"]+)['"]/gm),
  ].map((match) => match[1] ?? '');
  return specifiers
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => resolve(dirname(file), specifier))
    .filter((path) => /\.(ts|mjs|js)$/.test(path) && existsSync(path));
};

/** Every source file reachable from `entries` through relative imports. */
const reachable = (entries: readonly string[]): Set<string> => {
  const seen = new Set<string>();
  const queue = [...entries];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    queue.push(...importsOf(file));
  }
  return seen;
};

const tsFilesIn = (folder: string): string[] =>
  readdirSync(join(root, folder))
    .filter((name) => name.endsWith('.ts'))
    .map((name) => join(root, folder, name));

const repoPath = (path: string): string => relative(root, path).split('\\').join('/');

describe('the import graph of the sources', () => {
  it.each(['sync', 'offboard', 'reconcile'])(
    'functions/%s.ts never reaches lib/sim, lib/local or lib/cli',
    (name) => {
      // Prepare
      const entry = join(root, 'functions', `${name}.ts`);

      // Act
      const files = [...reachable([entry])].map(repoPath);

      // Assess
      expect(files.length).toBeGreaterThan(10);
      expect(files.filter((file) => /^lib\/(sim|local|cli)\//.test(file))).toEqual([]);
    },
  );

  it('core reaches nothing but core, the domain words, errors, the pool and zod', () => {
    // Act
    const files = [...reachable(tsFilesIn('lib/core'))].map(repoPath);

    // Assess
    // lib/zod.ts is zod/mini with its English messages: a library, not a part of the service.
    expect(files.filter((file) => !/^lib\/(core\/[\w-]+|domain|errors|pool|zod)\.ts$/.test(file))).toEqual(
      [],
    );
  });

  it('the CLI loads the simulator only from the simulate command', () => {
    // Act
    const importers = [...reachable([join(root, 'lib', 'cli', 'main.ts')])]
      .filter((file) => file.includes(`${join('lib', 'cli')}`))
      .filter((file) => importsOf(file).some((path) => repoPath(path).startsWith('lib/sim/')))
      .map(repoPath);

    // Assess
    expect(importers).toEqual(['lib/cli/simulate-command.ts']);
  });
});
