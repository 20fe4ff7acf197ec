/**
 * Where an import's bytes and milliseconds go, by package: esbuild's metafile for the bytes, a V8
 * CPU profile mapped back through the bundle's source maps for the time. Pure (the source maps
 * are handed in), so it is tested with plain data.
 */
import type { Metafile } from 'esbuild';
import type { CpuProfile } from './import-probe.ts';

/** What attribution needs of a source map: Node's `SourceMap#findEntry` (0-based line and column). */
interface SourceMapLookup {
  findEntry(line: number, column: number): { originalSource?: string } | Record<string, never>;
}

const Categories = {
  ours: 'our code (lib/, functions/)',
  compile: 'V8: parse and compile the files loaded (compileSourceTextModule)',
  program: 'V8: outside any JavaScript frame',
  gc: 'V8: garbage collection',
  wrappers: "bundle: esbuild's module wrappers (the first call compiles the wrapped module)",
  nodeUndici: "node: Node's internal undici (fetch globals)",
  sourceMaps: 'node: source maps (--enable-source-maps)',
  nodeInternals: 'node: module loader and other internals',
  other: 'other',
} as const;

/**
 * The npm package a source file belongs to (the last `node_modules/` in its path, scoped names
 * kept whole), `our code` for the repository's own files.
 *
 * @example packageOfSource('../../node_modules/@aws-sdk/client-sqs/dist-es/index.js') // '@aws-sdk/client-sqs'
 */
const packageOfSource = (source: string): string => {
  const path = source.replaceAll('\\', '/');
  const at = path.lastIndexOf('node_modules/');
  if (at >= 0) {
    const [first = '', second = ''] = path.slice(at + 'node_modules/'.length).split('/');
    return first.startsWith('@') ? `${first}/${second}` : first;
  }
  if (/(^|\/)(lib|functions|bench|config)\//.test(path)) return Categories.ours;
  return Categories.other;
};

const packageGroups: readonly [RegExp, string][] = [
  [/^@(aws-sdk|smithy|aws|aws-crypto)\//, 'AWS SDK v3 (@aws-sdk/*, @smithy/*, @aws/*)'],
  // Dependencies of @aws-sdk/endpoint-cache (SQS endpoint discovery).
  [
    /^(mnemonist|obliterator|fast-xml-parser|strnum|tslib|bowser)$/,
    'AWS SDK v3 (@aws-sdk/*, @smithy/*, @aws/*)',
  ],
  [/^@aws-lambda-powertools\//, 'Powertools (logger, metrics, commons)'],
];

/**
 * The row a package is reported in: the AWS SDK's many packages as one, Powertools as one,
 * every other package by its name.
 *
 * @example groupOfPackage('@smithy/core') // 'AWS SDK v3 (@aws-sdk/*, @smithy/*, @aws/*)'
 */
const groupOfPackage = (name: string): string =>
  packageGroups.find(([pattern]) => pattern.test(name))?.[1] ?? name;

/**
 * Bytes of each package in the given outputs of a build (`bytesInOutput`, after minification).
 *
 * @example bytesByPackage(metafile, ['.esbuild/functions/sync.js']) // Map { 'undici' => 120345, … }
 */
const bytesByPackage = (metafile: Metafile, outputs: Iterable<string>): Map<string, number> => {
  const bytes = new Map<string, number>();
  for (const output of outputs) {
    const inputs = metafile.outputs[output]?.inputs ?? {};
    for (const [input, { bytesInOutput }] of Object.entries(inputs)) {
      const name = groupOfPackage(packageOfSource(input));
      bytes.set(name, (bytes.get(name) ?? 0) + bytesInOutput);
    }
  }
  return bytes;
};

/**
 * Self time of each category in a CPU profile, in ms. A frame of a bundle is mapped through that
 * file's source map to its package; a frame the map does not cover is one of esbuild's runtime
 * helpers (`__commonJS`, `__esm`), whose self time is mostly V8 compiling the module body it calls
 * for the first time; a native frame without a script (a builtin) counts for the nearest caller
 * that has one. Parsing and compiling a whole file shows as Node's `compileSourceTextModule`.
 *
 * @example attributeProfile(profile, (url) => maps.get(url)) // Map { 'undici' => 31.2, … }
 */
const attributeProfile = (
  profile: CpuProfile,
  mapFor: (url: string) => SourceMapLookup | undefined,
): Map<string, number> => {
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes as (CpuProfile['nodes'][number] & { children?: number[] })[])
    for (const child of node.children ?? []) parentOf.set(child, node.id);
  const nodeById = new Map(profile.nodes.map((node) => [node.id, node]));
  const categoryOfNode = new Map<number, string | undefined>();

  const categoryOfFrame = (frame: CpuProfile['nodes'][number]['callFrame']): string | undefined => {
    if (frame.functionName === '(garbage collector)') return Categories.gc;
    if (frame.functionName === '(program)' || frame.functionName === '(root)') return Categories.program;
    if (frame.functionName === '(idle)') return undefined;
    if (frame.url === '') return undefined;
    if (frame.functionName === 'compileSourceTextModule') return Categories.compile;
    if (frame.url.includes('internal/deps/undici')) return Categories.nodeUndici;
    if (frame.url.includes('source_map')) return Categories.sourceMaps;
    if (frame.url.startsWith('node:')) return Categories.nodeInternals;
    const map = mapFor(frame.url);
    if (map === undefined) return Categories.other;
    const entry = map.findEntry(frame.lineNumber, frame.columnNumber);
    return 'originalSource' in entry && typeof entry.originalSource === 'string'
      ? groupOfPackage(packageOfSource(entry.originalSource))
      : Categories.wrappers;
  };

  const categoryOf = (id: number): string | undefined => {
    if (categoryOfNode.has(id)) return categoryOfNode.get(id);
    const node = nodeById.get(id);
    let category: string | undefined;
    if (node !== undefined) {
      category = categoryOfFrame(node.callFrame);
      const isIdle = node.callFrame.functionName === '(idle)';
      if (category === undefined && !isIdle) {
        const parent = parentOf.get(id);
        category = parent === undefined ? Categories.program : categoryOf(parent);
      }
    }
    categoryOfNode.set(id, category);
    return category;
  };

  const ms = new Map<string, number>();
  let at = profile.startTime;
  const stamps = profile.timeDeltas.map((delta) => {
    at += delta;
    return at;
  });
  profile.samples.forEach((id, index) => {
    const start = stamps[index] ?? profile.startTime;
    const end = stamps[index + 1] ?? profile.endTime;
    const category = categoryOf(id);
    if (category === undefined) return;
    ms.set(category, (ms.get(category) ?? 0) + Math.max(0, end - start) / 1000);
  });
  return ms;
};

export type { SourceMapLookup };
export { attributeProfile, bytesByPackage, Categories, groupOfPackage, packageOfSource };
