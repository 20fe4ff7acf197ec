import type { Metafile } from 'esbuild';
import { describe, expect, it } from 'vitest';
import {
  attributeProfile,
  bytesByPackage,
  Categories,
  groupOfPackage,
  packageOfSource,
  type SourceMapLookup,
} from '../../bench/attribution.ts';
import type { CpuProfile } from '../../bench/import-probe.ts';

describe('packageOfSource', () => {
  it.each([
    ['../../node_modules/undici/lib/dispatcher/pool.js', 'undici'],
    ['../../node_modules/@aws-sdk/client-sqs/dist-es/index.js', '@aws-sdk/client-sqs'],
    ['node_modules/a/node_modules/@smithy/core/x.js', '@smithy/core'],
    ['../../lib/swr/http.ts', Categories.ours],
    ['functions/sync.ts', Categories.ours],
    ['<runtime>', Categories.other],
  ])('%s is %s', (source, expected) => {
    // Act
    const name = packageOfSource(source);

    // Assess
    expect(name).toBe(expected);
  });

  it.each([
    ['@smithy/core', 'AWS SDK v3 (@aws-sdk/*, @smithy/*, @aws/*)'],
    ['mnemonist', 'AWS SDK v3 (@aws-sdk/*, @smithy/*, @aws/*)'],
    ['@aws-lambda-powertools/logger', 'Powertools (logger, metrics, commons)'],
    ['zod', 'zod'],
  ])('reports %s under %s', (name, expected) => {
    // Act
    const group = groupOfPackage(name);

    // Assess
    expect(group).toBe(expected);
  });
});

describe('bytesByPackage', () => {
  it('adds the bytes of each package over the outputs asked for, and only those', () => {
    // Prepare
    const metafile = {
      inputs: {},
      outputs: {
        'out/sync.js': {
          bytes: 0,
          imports: [],
          exports: [],
          inputs: {
            'node_modules/zod/v4/core/core.js': { bytesInOutput: 100 },
            'lib/config.ts': { bytesInOutput: 40 },
          },
        },
        'out/sync.chunks/chunk-A.js': {
          bytes: 0,
          imports: [],
          exports: [],
          inputs: { 'node_modules/zod/v4/mini/schemas.js': { bytesInOutput: 60 } },
        },
        'out/sync.chunks/lazy-B.js': {
          bytes: 0,
          imports: [],
          exports: [],
          inputs: { 'node_modules/undici/index.js': { bytesInOutput: 999 } },
        },
      },
    } as unknown as Metafile;

    // Act
    const bytes = bytesByPackage(metafile, ['out/sync.js', 'out/sync.chunks/chunk-A.js']);

    // Assess
    expect(Object.fromEntries(bytes)).toEqual({ zod: 160, [Categories.ours]: 40 });
  });
});

describe('attributeProfile', () => {
  it('gives each sample its time, by the package of its frame or of the nearest caller with a script', () => {
    // Prepare
    const frame = (functionName: string, url: string, lineNumber = 0, columnNumber = 0) => ({
      functionName,
      url,
      lineNumber,
      columnNumber,
    });
    const profile = {
      nodes: [
        { id: 1, callFrame: frame('(root)', ''), children: [2, 3, 4, 6] },
        { id: 2, callFrame: frame('(program)', '') },
        { id: 3, callFrame: frame('(garbage collector)', '') },
        { id: 4, callFrame: frame('parse', 'file:///b/sync.js', 5, 10), children: [5] },
        { id: 5, callFrame: frame('JSONParse', '') },
        { id: 6, callFrame: frame('compileSourceTextModule', 'node:internal/modules/esm/utils') },
      ],
      startTime: 0,
      endTime: 6_000,
      samples: [2, 3, 4, 5, 6],
      timeDeltas: [0, 1_000, 1_000, 1_000, 1_000],
    } as CpuProfile;
    const map: SourceMapLookup = {
      findEntry: (line) => (line === 5 ? { originalSource: '../node_modules/zod/v4/mini/schemas.js' } : {}),
    };

    // Act
    const ms = attributeProfile(profile, (url) => (url === 'file:///b/sync.js' ? map : undefined));

    // Assess
    expect(Object.fromEntries(ms)).toEqual({
      [Categories.program]: 1,
      [Categories.gc]: 1,
      zod: 2,
      [Categories.compile]: 2,
    });
  });
});
