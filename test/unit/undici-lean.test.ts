import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterEach, describe, expect, it } from 'vitest';
import { NetworkError, TimeoutError } from '../../lib/swr/api-errors.ts';
import { createPool, sendRaw } from '../../lib/swr/http.ts';
import { Pool, requestOn } from '../../lib/swr/undici.ts';

/*
 * lib/swr/undici.ts imports undici's Pool and request from their own files (the package entry
 * costs ~540 KB and loads Node's internal undici). These tests pin that choice to the installed
 * version: the files are the ones the entry exports, they work on their own against a real
 * server, and a bundle of the transport carries nothing else of undici's entry.
 */

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const execFileAsync = promisify(execFile);

const servers: Server[] = [];
const pools: Pool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

/** A server on 127.0.0.1 (port chosen by the OS) answering with `answer`. */
const serverFactory = async (
  answer: (request: IncomingMessage, body: string, response: ServerResponse) => void,
): Promise<string> => {
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => {
      body += chunk;
    });
    request.on('end', () => answer(request, body, response));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

describe('undici files imported directly', () => {
  it('are the Pool and request the package entry exports (same pinned version)', async () => {
    // Prepare
    const script = `
      const undici = require('undici');
      const out = {
        pool: undici.Pool === require('undici/lib/dispatcher/pool.js'),
        request: undici.Dispatcher.prototype.request === require('undici/lib/api/api-request.js'),
      };
      process.stdout.write(JSON.stringify(out));`;

    // Act
    const { stdout } = await execFileAsync(process.execPath, ['-e', script], { cwd: root, timeout: 30_000 });

    // Assess
    expect(JSON.parse(stdout)).toEqual({ pool: true, request: true });
  });

  it('send a request and read the answer through a Pool, without the package entry', async () => {
    // Prepare
    const origin = await serverFactory((request, body, response) => {
      response.writeHead(201, { 'content-type': 'application/json', 'x-seen-method': request.method ?? '' });
      response.end(JSON.stringify({ path: request.url, body: JSON.parse(body) }));
    });
    const pool = new Pool(origin, { connections: 1 });
    pools.push(pool);

    // Act
    const response = await requestOn(pool, {
      origin,
      path: '/v2/manage/namespaces/core/repos/api$server/access?x=1',
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ user_id: 'u1', auth: 1 }]),
    });
    const text = await response.body.text();

    // Assess
    expect(response.statusCode).toBe(201);
    expect(response.headers['x-seen-method']).toBe('POST');
    expect(JSON.parse(text)).toEqual({
      path: '/v2/manage/namespaces/core/repos/api$server/access?x=1',
      body: [{ user_id: 'u1', auth: 1 }],
    });
  });

  it('keep the transport typing of failures: a server that never answers is a TimeoutError', async () => {
    // Prepare
    const origin = await serverFactory(() => {
      // Never answers: the request must end by its own timeout.
    });
    const pool = createPool(origin, { requestTimeoutMs: 200, connections: 1 });
    pools.push(pool);

    // Act
    const sending = sendRaw(pool, {
      service: 'SWR',
      method: 'GET',
      url: new URL('/v2/manage/namespaces', origin),
      headers: {},
      timeoutMs: 200,
    });

    // Assess
    await expect(sending).rejects.toBeInstanceOf(TimeoutError);
  });

  it('keep the transport typing of failures: a refused connection is a NetworkError', async () => {
    // Prepare
    const origin = await serverFactory(() => undefined);
    const closing = servers.pop();
    await new Promise<void>((resolve) => closing?.close(() => resolve()));
    const pool = createPool(origin, { requestTimeoutMs: 2_000, connections: 1 });
    pools.push(pool);

    // Act
    const sending = sendRaw(pool, {
      service: 'IAM',
      method: 'GET',
      url: new URL('/v3/users', origin),
      headers: {},
      timeoutMs: 2_000,
    });

    // Assess
    await expect(sending).rejects.toBeInstanceOf(NetworkError);
  });

  it("leave undici's fetch, cookies and mocks out of a bundle of the SWR transport, and Node's own undici unloaded", async () => {
    // Prepare
    const dir = await mkdtemp(join(tmpdir(), 'swr-undici-lean-'));
    const outfile = join(dir, 'http.mjs');

    // Act
    const result = await build({
      entryPoints: [join(root, 'lib', 'swr', 'http.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile,
      metafile: true,
      logLevel: 'silent',
      banner: {
        js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
      },
    });
    const { stdout } = await execFileAsync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "await import(process.argv[1]); process.stdout.write(JSON.stringify(process.moduleLoadList.filter((name) => name.includes('undici'))));",
        pathToFileURL(outfile).href,
      ],
      { timeout: 30_000 },
    );
    await rm(dir, { recursive: true, force: true });
    const undiciFiles = Object.keys(result.metafile.inputs)
      .filter((input) => input.includes('node_modules/undici/'))
      .map((input) => input.slice(input.indexOf('node_modules/undici/') + 'node_modules/undici/'.length));

    // Assess
    expect(undiciFiles).toContain('lib/dispatcher/pool.js');
    expect(undiciFiles).toContain('lib/api/api-request.js');
    expect(undiciFiles).not.toContain('index.js');
    // The HTTP/1 client needs fetch's body helpers; fetch itself, cookies, mocks and caches stay out.
    expect(
      undiciFiles.filter((file) =>
        /^lib\/(web\/cookies|web\/fetch\/index|mock|cache|interceptor)/.test(file),
      ),
    ).toEqual([]);
    // The cookies module reads globalThis.Headers, which makes Node load its internal undici.
    expect(JSON.parse(stdout)).toEqual([]);
  });
});
