/**
 * A hostile network between the client and the simulator: an HTTP proxy on 127.0.0.1 that
 * forwards each request and, by seeded dice, garbles the answer the way real gateways, proxies
 * and half-broken services do. It shares no code with the client or the simulator (it does not
 * know what a valid answer is beyond the HTTP it sees), so the client's assumptions cannot leak
 * into it.
 *
 * Mutations of a successful GET (the read the client decides from):
 *   `others_auths` missing / null / a string, an entry with `auth` as a string or 2, an HTML page,
 *   a truncated body, an empty body, plain text.
 * Mutations of a write (POST/PATCH/DELETE):
 *   a 2xx that changed nothing (the request is not forwarded), a 2xx HTML page (forwarded or not).
 * Either:
 *   a gateway error (404 APIGW.0101, 429 APIGW.0308, 502/503 HTML), a reset connection.
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

type Mutation =
  | 'none'
  | 'others-missing'
  | 'others-null'
  | 'others-string'
  | 'auth-string'
  | 'auth-two'
  | 'html-200'
  | 'truncated'
  | 'empty-200'
  | 'plain-text'
  | 'ghost-write'
  | 'html-write-applied'
  | 'html-write-not-applied'
  | 'gateway-404'
  | 'gateway-429'
  | 'proxy-502'
  | 'reset';

interface GarblingProxy {
  url: string;
  /** Mutation rate in [0, 1]; 0 forwards everything untouched. */
  setRate(rate: number): void;
  /** Every mutation applied, by kind. */
  applied(): Record<string, number>;
  close(): Promise<void>;
}

const readMutations: Mutation[] = [
  'others-missing',
  'others-null',
  'others-string',
  'auth-string',
  'auth-two',
  'html-200',
  'truncated',
  'empty-200',
  'plain-text',
];
const writeMutations: Mutation[] = ['ghost-write', 'html-write-applied', 'html-write-not-applied'];
const anyMutations: Mutation[] = ['gateway-404', 'gateway-429', 'proxy-502', 'reset'];

/** A small seeded PRNG (mulberry32), written here so the proxy depends on nothing of ours. */
const dice = (seed: number) => {
  let state = seed >>> 0;
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};

const htmlPage = '<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>';

const readBody = (req: IncomingMessage): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });

interface Upstream {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

const forward = (target: URL, req: IncomingMessage, body: Buffer): Promise<Upstream> =>
  new Promise((resolve, reject) => {
    const headers = { ...req.headers, host: target.host };
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const out: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers))
            if (typeof value === 'string') out[name] = value;
          resolve({ status: res.statusCode ?? 502, headers: out, body: Buffer.concat(chunks) });
        });
        res.on('error', reject);
      },
    );
    upstream.on('error', reject);
    upstream.end(body);
  });

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

/** The GET answer with its documented shape broken in one way. */
const garbleRead = (mutation: Mutation, body: Buffer): { status: number; body: Buffer; type: string } => {
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    // Not JSON already: garble what is there.
  }
  const others = Array.isArray(parsed.others_auths)
    ? (parsed.others_auths as Array<Record<string, unknown>>)
    : [];
  switch (mutation) {
    case 'others-missing': {
      const { others_auths: _gone, ...rest } = parsed;
      return { status: 200, body: json(rest), type: 'application/json' };
    }
    case 'others-null':
      return { status: 200, body: json({ ...parsed, others_auths: null }), type: 'application/json' };
    case 'others-string':
      return { status: 200, body: json({ ...parsed, others_auths: 'none' }), type: 'application/json' };
    case 'auth-string':
    case 'auth-two': {
      if (others.length === 0) return { status: 200, body: json({}), type: 'application/json' };
      const broken = others.map((entry, index) =>
        index === 0 ? { ...entry, auth: mutation === 'auth-two' ? 2 : String(entry.auth) } : entry,
      );
      return { status: 200, body: json({ ...parsed, others_auths: broken }), type: 'application/json' };
    }
    case 'html-200':
      return { status: 200, body: Buffer.from(htmlPage), type: 'text/html' };
    case 'truncated':
      return {
        status: 200,
        body: body.subarray(0, Math.max(1, Math.floor(body.length / 2))),
        type: 'application/json',
      };
    case 'empty-200':
      return { status: 200, body: Buffer.alloc(0), type: 'application/json' };
    default:
      return { status: 200, body: Buffer.from('OK'), type: 'text/plain' };
  }
};

const send = (
  res: ServerResponse,
  status: number,
  body: Buffer,
  type: string,
  extra: Record<string, string> = {},
) => {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(body.length), ...extra });
  res.end(body);
};

/**
 * @example
 * const proxy = await startGarblingProxy(sim.swrUrl, { seed: 7, rate: 0.2 });
 * createSwrServices({ swrEndpoint: proxy.url, … });
 */
const startGarblingProxy = async (
  upstreamUrl: string,
  options: { seed: number; rate: number; paths?: RegExp },
): Promise<GarblingProxy> => {
  const target = new URL(upstreamUrl);
  const random = dice(options.seed);
  let rate = options.rate;
  const counts = new Map<string, number>();
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

  const choose = (method: string, path: string): Mutation => {
    if (options.paths !== undefined && !options.paths.test(path)) return 'none';
    if (random() >= rate) return 'none';
    const isAccess = /\/access$/.test(path.split('?')[0] ?? '');
    const pool =
      method === 'GET'
        ? isAccess
          ? [...readMutations, ...anyMutations]
          : anyMutations
        : [...writeMutations, ...anyMutations];
    return pick(pool);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = req.url ?? '/';
    const body = await readBody(req);
    const mutation = choose(method, path);
    counts.set(mutation, (counts.get(mutation) ?? 0) + 1);
    switch (mutation) {
      case 'reset':
        req.socket.destroy();
        return;
      case 'gateway-404':
        return send(
          res,
          404,
          json({ error_code: 'APIGW.0101', error_msg: 'The API does not exist or has not been published' }),
          'application/json',
        );
      case 'gateway-429':
        return send(
          res,
          429,
          json({ error_code: 'APIGW.0308', error_msg: 'The throttling threshold has been reached' }),
          'application/json',
        );
      case 'proxy-502':
        return send(res, 502, Buffer.from(htmlPage), 'text/html');
      case 'ghost-write':
        return send(res, method === 'DELETE' ? 204 : 201, Buffer.alloc(0), 'application/json');
      case 'html-write-not-applied':
        return send(res, 200, Buffer.from(htmlPage), 'text/html');
      default:
        break;
    }
    const upstream = await forward(target, req, body);
    if (mutation === 'html-write-applied' && upstream.status < 300)
      return send(res, 200, Buffer.from(htmlPage), 'text/html');
    if (mutation !== 'none' && method === 'GET' && upstream.status === 200) {
      const garbled = garbleRead(mutation, upstream.body);
      return send(res, garbled.status, garbled.body, garbled.type);
    }
    const headers: Record<string, string> = {};
    for (const name of ['x-subject-token', 'retry-after', 'x-request-id'])
      if (upstream.headers[name] !== undefined) headers[name] = upstream.headers[name] as string;
    send(
      res,
      upstream.status,
      upstream.body,
      upstream.headers['content-type'] ?? 'application/json',
      headers,
    );
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => send(res, 502, Buffer.from(htmlPage), 'text/html'));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    setRate: (value) => {
      rate = value;
    },
    applied: () => Object.fromEntries([...counts].filter(([kind]) => kind !== 'none')),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
};

export type { GarblingProxy, Mutation };
export { startGarblingProxy };
