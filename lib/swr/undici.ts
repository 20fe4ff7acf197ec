/**
 * undici's connection pool and its `request`, imported from their own files instead of the package
 * entry. The entry (CommonJS, which esbuild cannot tree-shake) loads every dispatcher, the mocks,
 * the cache stores, fetch and its cookies module, which reads `globalThis.Headers` and so makes Node
 * load its own internal copy of undici too: about 540 KB and 25 ms of every cold start, for two
 * things we use. The paths are those of the undici version pinned in package.json;
 * test/unit/undici-lean.test.ts fails if an upgrade moves or changes them.
 */
import type { Dispatcher, Pool as UndiciPool } from 'undici';
import requestOf from 'undici/lib/api/api-request.js';
import PoolClass from 'undici/lib/dispatcher/pool.js';

/** undici's `Pool`: one origin, a bounded set of keep-alive connections. */
const Pool = PoolClass;
type Pool = UndiciPool;

/**
 * `dispatcher.request(options)`, for any dispatcher (a `Pool`, or `MockAgent` in tests): the
 * package entry is what installs `request` on `Dispatcher.prototype`, and it is not loaded here.
 *
 * @example const response = await requestOn(pool, { origin, path: '/v3/users', method: 'GET' });
 */
const requestOn = (
  dispatcher: Dispatcher,
  options: Dispatcher.RequestOptions,
): Promise<Dispatcher.ResponseData> => requestOf.call(dispatcher, options);

export { Pool, requestOn };
