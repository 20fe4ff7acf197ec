import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { deployedMemorySizeMb } from '../../bench/bundles.ts';
import { lambdaHeapSizes, lambdaNodeArgs } from '../../bench/lambda-node.ts';

describe('lambdaNodeArgs', () => {
  it('gives a 512 MB function the heap the Lambda runtime gives it', () => {
    expect(lambdaNodeArgs(512)).toEqual([
      '--expose-gc',
      '--max-http-header-size=81920',
      '--max-semi-space-size=25',
      '--max-old-space-size=461',
    ]);
  });

  it('rounds down as the shell arithmetic of the bootstrap does', () => {
    expect(lambdaHeapSizes(128)).toEqual({ semiSpaceMb: 6, oldSpaceMb: 116 });
    expect(lambdaHeapSizes(1769)).toEqual({ semiSpaceMb: 88, oldSpaceMb: 1593 });
  });

  it('never sizes the heap beyond the function memory', () => {
    fc.assert(
      fc.property(fc.integer({ min: 128, max: 10_240 }), (memory) => {
        const { semiSpaceMb, oldSpaceMb } = lambdaHeapSizes(memory);
        expect(oldSpaceMb + 2 * semiSpaceMb).toBeLessThanOrEqual(memory);
        expect(oldSpaceMb).toBeGreaterThanOrEqual(Math.floor(memory * 0.9));
      }),
    );
  });

  it('refuses a memory size Lambda does not have', () => {
    expect(() => lambdaNodeArgs(64)).toThrow(/at least 128 MB/);
    expect(() => lambdaNodeArgs(512.5)).toThrow(/whole MB/);
  });
});

describe('deployedMemorySizeMb', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const service = (yml: string): string => {
    const dir = mkdtempSync(join(tmpdir(), 'memory-size-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'serverless.yml'), yml);
    return dir;
  };

  it('reads the function memory of our serverless.yml', () => {
    expect(deployedMemorySizeMb('sync')).toBe(512);
    expect(deployedMemorySizeMb('offboard')).toBe(512);
    expect(deployedMemorySizeMb('reconcile')).toBe(1024);
  });

  it("takes the function's own, else the provider's, else the framework default", () => {
    const dir = service(
      'provider:\n  memorySize: 256\nfunctions:\n  big:\n    memorySize: 2048\n  small:\n    handler: x\n',
    );
    expect(deployedMemorySizeMb('big', dir)).toBe(2048);
    expect(deployedMemorySizeMb('small', dir)).toBe(256);
    expect(deployedMemorySizeMb('small', service('functions:\n  small:\n    handler: x\n'))).toBe(1024);
  });

  it('names the function when its memorySize is not a positive integer', () => {
    const dir = service("functions:\n  sync:\n    memorySize: '512'\n");
    expect(() => deployedMemorySizeMb('sync', dir)).toThrow(/memorySize of sync/);
  });
});
