/**
 * The simulator must be able to find bugs in the client's rules, so it may not share them: its
 * modules import only each other, node built-ins, `lib/random.ts`, types from `lib/domain.ts`,
 * and zod (a parsing library, no rule of ours). Every import statement of lib/sim is checked.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const simDir = join(root, 'lib/sim');

const sourceFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  );

interface ImportStatement {
  file: string;
  specifier: string;
  typeOnly: boolean;
}

/** Static imports, re-exports and dynamic imports, with whether the whole statement is type-only. */
const importsOf = (file: string): ImportStatement[] => {
  const text = readFileSync(file, 'utf8');
  const found: ImportStatement[] = [];
  const statement = /^\s*(import|export)\s+(type\s+)?[^;]*?\sfrom\s+['"]([^'"]+)['"]/gms;
  for (const m of text.matchAll(statement))
    found.push({ file, specifier: m[3] as string, typeOnly: m[2] !== undefined });
  for (const m of text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm))
    found.push({ file, specifier: m[1] as string, typeOnly: false });
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g))
    found.push({ file, specifier: m[1] as string, typeOnly: false });
  return found;
};

const allowedPackages = new Set(['zod']);

/** Why an import is not allowed, or `undefined`. */
const violation = (entry: ImportStatement): string | undefined => {
  const { specifier, typeOnly } = entry;
  if (specifier.startsWith('node:')) return undefined;
  if (!specifier.startsWith('.')) return allowedPackages.has(specifier) ? undefined : 'a package';
  const target = resolve(dirname(entry.file), specifier);
  if (target.startsWith(`${simDir}/`)) return undefined;
  const fromRoot = relative(root, target);
  if (fromRoot === 'lib/random.ts') return undefined;
  if (fromRoot === 'lib/domain.ts') return typeOnly ? undefined : 'lib/domain.ts without `import type`';
  return fromRoot;
};

describe('simulator independence', () => {
  const files = sourceFiles(simDir);
  const imports = files.flatMap(importsOf);

  it('reads every module of lib/sim', () => {
    // Assess: the scan sees the modules and their imports (a broken scan would pass anything).
    expect(files.length).toBeGreaterThan(10);
    expect(imports.some((entry) => entry.specifier === './faults.ts')).toBe(true);
    expect(imports.some((entry) => entry.specifier === '../domain.ts' && entry.typeOnly)).toBe(true);
  });

  it('imports nothing of the production code but types from lib/domain.ts and lib/random.ts', () => {
    // Act
    const bad = imports
      .map((entry) => ({ entry, why: violation(entry) }))
      .filter(({ why }) => why !== undefined)
      .map(({ entry, why }) => `${relative(root, entry.file)}: ${entry.specifier} (${why})`);

    // Assess
    expect(bad).toEqual([]);
  });

  it.each([
    [{ file: join(simDir, 'world.ts'), specifier: '../swr/names.ts', typeOnly: false }, 'lib/swr/names.ts'],
    [{ file: join(simDir, 'errors.ts'), specifier: '../errors.ts', typeOnly: false }, 'lib/errors.ts'],
    [
      { file: join(simDir, 'swr.ts'), specifier: '../domain.ts', typeOnly: false },
      'lib/domain.ts without `import type`',
    ],
    [{ file: join(simDir, 'server.ts'), specifier: 'undici', typeOnly: false }, 'a package'],
  ])('would refuse %j', (entry, why) => {
    // Assess: the rule itself catches what it is for.
    expect(violation(entry)).toBe(why);
  });
});
