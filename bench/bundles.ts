/**
 * Function bundles for the cold-start figures and the import profile: built with esbuild and the
 * options serverless.yml gives serverless-esbuild (custom.esbuild, its plugins file included), or
 * taken out of the zips `serverless package` writes. Either way a bundle is a folder holding
 * `functions/<name>.js`, its chunks and a `"type": "module"` package.json, ready to import.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';
import { type BuildOptions, build, type Metafile, type Plugin } from 'esbuild';
import { parse } from 'yaml';

const root = fileURLToPath(new URL('..', import.meta.url));

interface ZipEntry {
  name: string;
  data: Buffer;
}

/** Every file entry of a zip, inflated (stored or deflated only, as serverless writes them). */
const zipEntries = (zip: Buffer): ZipEntry[] => {
  let end = -1;
  for (let offset = zip.length - 22; offset >= Math.max(0, zip.length - 22 - 0xffff); offset -= 1)
    if (zip.readUInt32LE(offset) === 0x06054b50) {
      end = offset;
      break;
    }
  if (end < 0) throw new Error('not a zip file');
  const entries: ZipEntry[] = [];
  let offset = zip.readUInt32LE(end + 16);
  for (let index = 0; index < zip.readUInt16LE(end + 10); index += 1) {
    const method = zip.readUInt16LE(offset + 10);
    const compressed = zip.readUInt32LE(offset + 20);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const local = zip.readUInt32LE(offset + 42);
    const name = zip.toString('utf8', offset + 46, offset + 46 + nameLength);
    if (!name.endsWith('/')) {
      const dataStart = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const raw = zip.subarray(dataStart, dataStart + compressed);
      entries.push({ name, data: method === 0 ? Buffer.from(raw) : inflateRawSync(raw) });
    }
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
};

/** One entry of a zip, inflated. */
const zipEntry = (zip: Buffer, wanted: (name: string) => boolean): ZipEntry | undefined =>
  zipEntries(zip).find((entry) => wanted(entry.name));

type EsbuildSettings = Record<string, unknown>;

interface ServerlessYml {
  custom?: { esbuild?: EsbuildSettings };
  provider?: { environment?: Record<string, unknown>; memorySize?: unknown };
  functions?: Record<string, { memorySize?: unknown } | undefined>;
}

const serverlessYml = (serviceDir = root): ServerlessYml =>
  parse(readFileSync(join(serviceDir, 'serverless.yml'), 'utf8')) as ServerlessYml;

/** custom.esbuild of serverless.yml, as written. */
const serverlessEsbuildSettings = (serviceDir = root): EsbuildSettings =>
  serverlessYml(serviceDir).custom?.esbuild ?? {};

/** NODE_OPTIONS the functions run with (provider.environment of serverless.yml), '' for none. */
const deployedNodeOptions = (serviceDir = root): string => {
  const value = serverlessYml(serviceDir).provider?.environment?.NODE_OPTIONS;
  return typeof value === 'string' ? value : '';
};

/** The Serverless Framework's memorySize when neither the function nor the provider sets one. */
const frameworkDefaultMemorySizeMb = 1024;

/**
 * The memory (MB) a function is deployed with: its own memorySize, else the provider's, else the
 * framework's default. A value that is not a positive integer is an error naming the function.
 */
const deployedMemorySizeMb = (functionName: string, serviceDir = root): number => {
  const yml = serverlessYml(serviceDir);
  const value = yml.functions?.[functionName]?.memorySize ?? yml.provider?.memorySize;
  if (value === undefined) return frameworkDefaultMemorySizeMb;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0)
    throw new Error(
      `serverless.yml: memorySize of ${functionName} must be a positive integer, got ${String(value)}`,
    );
  return value;
};

/** The options serverless.yml hands serverless-esbuild, as esbuild takes them (its plugins loaded). */
const esbuildOptionsOfServerlessYml = (serviceDir = root): { options: BuildOptions; extension: string } => {
  const custom = serverlessEsbuildSettings(serviceDir);
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
    'splitting',
    'chunkNames',
    'treeShaking',
    'legalComments',
  ] as const;
  const options: Record<string, unknown> = {};
  for (const key of keys) if (custom[key] !== undefined) options[key] = custom[key];
  // serverless-esbuild takes `plugins` as a file (relative to serverless.yml) exporting the list.
  if (typeof custom.plugins === 'string')
    options.plugins = createRequire(join(serviceDir, 'serverless.yml'))(
      join(serviceDir, custom.plugins),
    ) as Plugin[];
  const extension = typeof custom.outputFileExtension === 'string' ? custom.outputFileExtension : '.js';
  return { options: options as BuildOptions, extension };
};

interface Bundle {
  name: string;
  /** The folder holding functions/, as the zip unpacks in /var/task. */
  dir: string;
  /** The bundled handler module, ready to import. */
  file: string;
  /** Bytes of the handler module alone. */
  bundleBytes: number;
  /** Bytes of every JavaScript file of the bundle (the handler and all its chunks). */
  totalBytes: number;
  zipBytes: number | undefined;
  /** esbuild's metafile, when built here. */
  metafile?: Metafile;
}

const javascriptBytesUnder = (dir: string): number =>
  (readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((entry) => entry.isFile() && /\.m?js$/.test(entry.name))
    .reduce((sum, entry) => sum + statSync(join(entry.parentPath, entry.name)).size, 0);

/**
 * Bundles one entry as serverless-esbuild does (outdir `functions/`, so chunks land where the
 * plugins file puts them), with a metafile. `serviceDir`: another checkout (the cold-start
 * baseline of an older commit), built with its own serverless.yml.
 *
 * @example const bundle = await bundleWithEsbuild(join(root, 'functions', 'sync.ts'), 'sync', outRoot);
 */
const bundleWithEsbuild = async (
  entry: string,
  name: string,
  outRoot: string,
  serviceDir = root,
): Promise<Bundle> => {
  const { options, extension } = esbuildOptionsOfServerlessYml(serviceDir);
  const dir = join(outRoot, name);
  const outdir = join(dir, 'functions');
  mkdirSync(outdir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
  const result = await build({
    ...options,
    entryPoints: [relative(serviceDir, entry)],
    outdir,
    ...(extension === '.js' ? {} : { outExtension: { '.js': extension } }),
    metafile: true,
    logLevel: 'error',
    absWorkingDir: serviceDir,
  });
  const base = entry
    .split('/')
    .at(-1)
    ?.replace(/\.[cm]?tsx?$/, '');
  const file = join(outdir, `${base}${extension}`);
  return {
    name,
    dir,
    file,
    bundleBytes: statSync(file).size,
    totalBytes: javascriptBytesUnder(outdir),
    zipBytes: undefined,
    metafile: result.metafile,
  };
};

/** Unpacks a function zip written by `serverless package`; `undefined` when it holds no handler. */
const bundleFromZip = (zipFile: string, name: string, outRoot: string): Bundle | undefined => {
  const zip = readFileSync(zipFile);
  const entries = zipEntries(zip);
  const handler = entries.find((entry) => new RegExp(`^functions/${name}\\.m?js$`).test(entry.name));
  if (handler === undefined) return undefined;
  const dir = join(outRoot, name);
  for (const entry of entries) {
    const path = join(dir, entry.name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, entry.data);
  }
  // The zip's own package.json says "type": "module"; the policy file and the rest come along.
  return {
    name,
    dir,
    file: join(dir, handler.name),
    bundleBytes: handler.data.length,
    totalBytes: javascriptBytesUnder(join(dir, 'functions')),
    zipBytes: zip.length,
  };
};

export type { Bundle, ZipEntry };
export {
  bundleFromZip,
  bundleWithEsbuild,
  deployedMemorySizeMb,
  deployedNodeOptions,
  esbuildOptionsOfServerlessYml,
  root,
  serverlessEsbuildSettings,
  zipEntries,
  zipEntry,
};
