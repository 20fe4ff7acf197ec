/**
 * Starts the SWR and IAM simulator: two node:http listeners on 127.0.0.1 (two origins, as in
 * production), sharing one world. Every request is counted by method and route template and
 * kept in a bounded log; faults apply to the SWR permission and list calls.
 */

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuthLevel, Target } from '../domain.ts';
import type { RevokeMissing } from './access.ts';
import { Authenticator, type Service } from './auth.ts';
import type { HandlerDeps, HandlerInput, SimRoute } from './context.ts';
import { type EchoFault, type FaultConfig, FaultInjector, type LyingWrite } from './faults.ts';
import { iamRoutes } from './iam.ts';
import { htmlPage, malformBody } from './malformed.ts';
import { ErrorShapes, type Failure, failure, failureReply, isFailure, type Reply } from './replies.ts';
import { matchRoute, parseQuery } from './router.ts';
import { loadSeed, type SimulatorSeed } from './seed.ts';
import { swrRoutes } from './swr.ts';
import { type PermissionsSnapshot, World } from './world.ts';

interface SimulatorOptions {
  host?: '127.0.0.1';
  /** 0 (default) picks a free port. */
  swrPort?: number;
  iamPort?: number;
  /** Default: the demo seed (`config/demo-seed.json`). */
  seed?: SimulatorSeed;
  faults?: Partial<FaultConfig>;
  /** Initial `faults.latencyMs` when `faults` does not set it. */
  latencyMs?: number;
  /** Lifetime of issued tokens; default 24 h. */
  tokenTtlSeconds?: number;
  /** DELETE of a user who holds nothing: 404 4040091 after revoking the others (default), or 204. */
  revokeMissing?: RevokeMissing;
  /**
   * POST/PATCH refuse (400 SVCSTG.SWR.4001066) a user_name that is not IAM's current name for the
   * user_id, as SWR checks names against IAM. Default true.
   */
  strictUserNames?: boolean;
  /** The simulator clock (token expiry, X-Sdk-Date skew, lockouts); default Date.now. */
  now?: () => number;
}

interface RequestLogEntry {
  method: string;
  /** Path and query as sent. */
  path: string;
  /** The count key, e.g. `POST /v2/manage/namespaces/{ns}/repos/{repo}/access`. */
  route: string;
  /** 0 when no answer was sent (hang, reset, client gone). */
  status: number;
  at: number;
}

interface Simulator {
  swrUrl: string;
  iamUrl: string;
  readonly seed: SimulatorSeed;
  setFaults(faults: Partial<FaultConfig>): void;
  /** Invalidates issued tokens at least `minAgeMs` old (default: all of them). */
  expireTokens(minAgeMs?: number): void;
  requestCounts(): Record<string, number>;
  requestLog(): RequestLogEntry[];
  resetCounts(): void;
  permissions(): PermissionsSnapshot;
  setPermission(target: Target, userId: string, auth: AuthLevel | undefined): void;
  addRepository(namespace: string, repository: string): void;
  /** A new IAM user (id generated unless given); its name may be another user's too. */
  addUser(user: { name: string; id?: string; enabled?: boolean }): { id: string; name: string };
  /** The user disappears from IAM; SWR grants it holds remain. */
  deleteUser(id: string): void;
  /** IAM's name for the user changes; grants keep the name they were made with. */
  renameUser(id: string, name: string): void;
  /** IAM users with this exact name (more than one when names are shared). */
  iamUsers(name?: string): Array<{ id: string; name: string }>;
  close(): Promise<void>;
}

const logCapacity = 10_000;
const maxBodyBytes = 1024 * 1024;

/** Keeps the last `capacity` entries without shifting arrays. */
class RingLog<T> {
  readonly #items: T[] = [];
  #start = 0;
  readonly #capacity: number;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  push(item: T): void {
    if (this.#items.length < this.#capacity) this.#items.push(item);
    else {
      this.#items[this.#start] = item;
      this.#start = (this.#start + 1) % this.#capacity;
    }
  }

  toArray(): T[] {
    return [...this.#items.slice(this.#start), ...this.#items.slice(0, this.#start)];
  }

  clear(): void {
    this.#items.length = 0;
    this.#start = 0;
  }
}

/** The whole body, or `undefined` when it exceeds the limit (the rest is drained). */
const readBody = (req: IncomingMessage): Promise<Buffer | undefined> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBodyBytes) chunks.push(chunk);
    });
    req.on('end', () => resolve(size <= maxBodyBytes ? Buffer.concat(chunks) : undefined));
    req.on('error', reject);
    // Resolving first makes this a no-op after a normal end; otherwise the client went away.
    req.on('close', () => reject(new Error('request aborted')));
  });

const listen = (server: Server, port: number, host: string): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });

const closeServer = (server: Server): Promise<void> =>
  new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });

/**
 * Starts both listeners and resolves once they accept connections.
 *
 * @example
 * const sim = await startSimulator({ seed: loadSeed('config/demo-seed.json') });
 * // … point the client at sim.swrUrl and sim.iamUrl …
 * await sim.close();
 */
const startSimulator = async (options: SimulatorOptions = {}): Promise<Simulator> => {
  const host = options.host ?? '127.0.0.1';
  const now = options.now ?? Date.now;
  const seed = options.seed ?? loadSeed();
  const world = new World(seed, now);
  const auth = new Authenticator(world, now, options.tokenTtlSeconds ?? 24 * 60 * 60);
  const faults = new FaultInjector({ latencyMs: options.latencyMs ?? 0, ...options.faults }, now);
  const deps: HandlerDeps = {
    world,
    auth,
    revokeMissing: options.revokeMissing ?? '404',
    strictUserNames: options.strictUserNames ?? true,
    now,
  };
  const counts = new Map<string, number>();
  const log = new RingLog<RequestLogEntry>(logCapacity);
  const timers = new Set<NodeJS.Timeout>();
  let closing = false;

  const delay = (ms: number) =>
    new Promise<void>((resolve) => {
      // Cleared on close: the promise then never settles and the abandoned request is dropped.
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  const send = (res: ServerResponse, reply: Reply, requestId: string): void => {
    if (res.headersSent || res.destroyed) return;
    const payload =
      reply.raw !== undefined
        ? Buffer.from(reply.raw.text)
        : reply.body === undefined
          ? undefined
          : Buffer.from(JSON.stringify(reply.body));
    res.statusCode = reply.status;
    res.setHeader('X-Request-Id', requestId);
    for (const [name, value] of Object.entries(reply.headers ?? {})) res.setHeader(name, value);
    if (reply.raw !== undefined) res.setHeader('Content-Type', reply.raw.contentType);
    else if (payload !== undefined) res.setHeader('Content-Type', 'application/json;charset=utf-8');
    if (reply.status !== 204) res.setHeader('Content-Length', payload?.length ?? 0);
    res.end(payload);
  };

  /** A failure whose message quotes what the request carried, as some gateways and IAM do. */
  const echoFailure = (fault: EchoFault, input: HandlerInput): Failure => {
    const header = (name: string) => {
      const value = input.headers[name];
      return Array.isArray(value) ? value.join(',') : (value ?? '');
    };
    const quoted = [
      `X-Auth-Token: ${header('x-auth-token')}`,
      `Authorization: ${header('authorization')}`,
      `X-Security-Token: ${header('x-security-token')}`,
      `body: ${input.body.toString('utf8').slice(0, 2000)}`,
    ].join('; ');
    return failure(fault.status, fault.code, `request refused (${quoted})`, ErrorShapes.flat);
  };

  /** The success answer as a lying write sends it: the page instead of the (empty) body. */
  const lyingReply = (reply: Reply, lie: LyingWrite): Reply =>
    lie === 'ghost'
      ? reply
      : {
          ...reply,
          status: reply.status === 204 ? 200 : reply.status,
          raw: { text: htmlPage(), contentType: 'text/html;charset=utf-8' },
        };

  const serve = async (
    service: Service,
    routes: readonly SimRoute[],
    origin: () => string,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> => {
    const at = now();
    const method = (req.method ?? 'GET').toUpperCase();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    const rawQuery = q < 0 ? '' : url.slice(q + 1);
    const match = matchRoute(routes, method, rawPath);
    const route = match === undefined ? `${method} (unmatched)` : `${method} ${match.route.template}`;
    counts.set(route, (counts.get(route) ?? 0) + 1);
    const requestId = randomUUID().replaceAll('-', '');
    const record = (status: number) => log.push({ method, path: url, route, status, at });
    const answer = (reply: Reply | Failure) => {
      const r = isFailure(reply) ? failureReply(reply, requestId) : reply;
      record(r.status);
      send(res, r, requestId);
    };

    const body = await readBody(req);
    if (closing) return record(0);
    if (match === undefined)
      return answer(
        failure(404, 'APIGW.0101', 'The API does not exist or has not been published', ErrorShapes.flat),
      );
    if (body === undefined) return answer(failure(400, 'SVCSTG.SWR.4000014', 'request body too large'));

    const query = parseQuery(rawQuery);
    const call = match.route.call?.(match.params, query);
    const faultable = call !== undefined && faults.applies(call);
    if (faultable) {
      if (faults.latencyMs > 0) await delay(faults.latencyMs);
      const early = faults.early(call);
      if (early?.kind === 'hang') return record(0);
      if (early?.kind === 'reset') {
        record(0);
        req.socket.destroy();
        return;
      }
      if (early?.kind === 'fail') return answer(early.failure);
      if (early?.kind === 'page')
        return answer({ status: early.status, raw: { text: early.html, contentType: 'text/html' } });
    }

    const input: HandlerInput = {
      method,
      rawPath,
      rawQuery,
      headers: req.headers,
      body,
      params: match.params,
      query,
      caller: '',
      origin: origin(),
    };
    if (match.route.authenticate) {
      const caller = auth.authenticate(input, service);
      if (isFailure(caller)) return answer(caller);
      input.caller = caller;
    }
    if (!faultable) return answer(match.route.handle(input, deps));

    const injected = faults.late(call);
    if (injected !== undefined) return answer('kind' in injected ? echoFailure(injected, input) : injected);
    const lie = faults.lie(call);
    const restore = lie === 'ghost' || lie === 'html-not-applied' ? world.backup() : undefined;
    const reply = match.route.handle(input, deps);
    if (isFailure(reply) || reply.status < 200 || reply.status >= 300) return answer(reply);
    if (lie !== undefined) {
      restore?.();
      return answer(lyingReply(reply, lie));
    }
    const variant = faults.malformed(call);
    answer(
      variant === undefined ? reply : { ...reply, body: undefined, raw: malformBody(reply.body, variant) },
    );
  };

  const listener =
    (service: Service, routes: readonly SimRoute[], origin: () => string) =>
    (req: IncomingMessage, res: ServerResponse) => {
      serve(service, routes, origin, req, res).catch((error: unknown) => {
        // A bug in the simulator must show as a 5xx, never as a hung test.
        const message = error instanceof Error ? error.message : String(error);
        send(res, failureReply(failure(500, 'SVCSTG.SWR.5000092', `simulator error: ${message}`), ''), '');
      });
    };

  let swrUrl = '';
  let iamUrl = '';
  const swrServer = createServer(listener('swr', swrRoutes, () => swrUrl));
  const iamServer = createServer(listener('iam', iamRoutes, () => iamUrl));
  try {
    swrUrl = `http://${host}:${await listen(swrServer, options.swrPort ?? 0, host)}`;
    iamUrl = `http://${host}:${await listen(iamServer, options.iamPort ?? 0, host)}`;
  } catch (error) {
    await Promise.all([closeServer(swrServer), closeServer(iamServer)]);
    throw error;
  }

  let closed: Promise<void> | undefined;
  return {
    swrUrl,
    iamUrl,
    seed,
    setFaults: (f) => faults.set(f),
    expireTokens: (minAgeMs) => auth.expireAll(minAgeMs),
    requestCounts: () => Object.fromEntries(counts),
    requestLog: () => log.toArray(),
    resetCounts: () => {
      counts.clear();
      log.clear();
    },
    permissions: () => world.snapshot(),
    setPermission: (target, userId, level) => world.setPermission(target, userId, level),
    addRepository: (namespace, repository) => world.addRepository(namespace, repository),
    addUser: (user) => {
      const created = world.addUser(user);
      return { id: created.id, name: created.name };
    },
    deleteUser: (id) => world.deleteUser(id),
    renameUser: (id, name) => world.renameUser(id, name),
    iamUsers: (name) =>
      (name === undefined ? [...world.users.values()] : world.usersByName(name)).map((u) => ({
        id: u.id,
        name: u.name,
      })),
    close: () => {
      closing = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      closed ??= Promise.all([closeServer(swrServer), closeServer(iamServer)]).then(() => undefined);
      return closed;
    },
  };
};

export type { RequestLogEntry, Simulator, SimulatorOptions };
export { startSimulator };
