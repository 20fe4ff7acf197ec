/**
 * A tiny S3-compatible server on 127.0.0.1 for the policy loader's tests: path-style
 * `GET /<bucket>/<key>` with ETag and `x-amz-version-id` headers, `If-None-Match` answered with
 * 304, S3's XML errors for a missing object and a refused caller. Only what a GetObject needs;
 * written from the S3 API reference, not from the loader.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

interface StoredObject {
  body: string;
  etag: string;
  versionId: string;
}

interface FakeS3 {
  endpoint: string;
  /** Stores a new version of an object (a new ETag and version id). */
  put(bucket: string, key: string, body: string): StoredObject;
  /** Every later request is refused with 403 AccessDenied (or served again with `false`). */
  denyAll(deny: boolean): void;
  requests: Array<{ method: string; path: string; ifNoneMatch: string | undefined; status: number }>;
  close(): Promise<void>;
}

const errorXml = (code: string, message: string): string =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fake</RequestId></Error>`;

const startFakeS3 = async (): Promise<FakeS3> => {
  const objects = new Map<string, StoredObject>();
  let versions = 0;
  let deny = false;
  const requests: FakeS3['requests'] = [];
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/');
    const ifNoneMatch = req.headers['if-none-match'];
    const answer = (status: number, headers: Record<string, string>, body = '') => {
      requests.push({ method: req.method ?? '', path, ifNoneMatch, status });
      res.writeHead(status, { 'x-amz-request-id': 'fake', ...headers });
      res.end(body);
    };
    req.resume();
    if (deny)
      return answer(403, { 'content-type': 'application/xml' }, errorXml('AccessDenied', 'Access Denied'));
    const stored = objects.get(path.slice(1));
    if (req.method !== 'GET') return answer(405, {}, '');
    if (stored === undefined)
      return answer(
        404,
        { 'content-type': 'application/xml' },
        errorXml('NoSuchKey', 'The specified key does not exist.'),
      );
    if (ifNoneMatch !== undefined && ifNoneMatch === stored.etag)
      return answer(304, { etag: stored.etag, 'x-amz-version-id': stored.versionId });
    return answer(
      200,
      {
        etag: stored.etag,
        'x-amz-version-id': stored.versionId,
        'content-type': 'application/yaml',
        'content-length': String(Buffer.byteLength(stored.body)),
        'last-modified': new Date(0).toUTCString(),
      },
      stored.body,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    put(bucket, key, body) {
      versions += 1;
      const stored = {
        body,
        etag: `"${createHash('md5').update(body).digest('hex')}"`,
        versionId: `v${versions}`,
      };
      objects.set(`${bucket}/${key}`, stored);
      return stored;
    },
    denyAll(value) {
      deny = value;
    },
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
};

export type { FakeS3, StoredObject };
export { startFakeS3 };
