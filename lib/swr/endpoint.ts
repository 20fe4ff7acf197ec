/**
 * Endpoint checks done once at start-up: tokens and signatures must never travel in clear text,
 * so only `https:` is accepted, except on the loopback interface used by the local stack.
 */
import { ConfigError } from '../errors.ts';

/**
 * 127.0.0.0/8 written as node:net's isIPv4 accepts it (four decimal numbers, no leading zero);
 * WHATWG URL writes every IPv4 host so (127.1 and 0x7f.0.0.1 become 127.0.0.1). A pattern, not
 * node:net: the configuration is checked at cold start, and node:net costs a few ms to load.
 */
const loopbackIPv4 = /^127(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

const isLoopback = (hostname: string): boolean => {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host === '::1') return true;
  return loopbackIPv4.test(host);
};

/**
 * The endpoint's origin (`scheme://host[:port]`), or a ConfigError naming `name` when it is not
 * an absolute `https:` URL (or `http:` on loopback) without credentials, query or fragment.
 *
 * @example assertEndpoint('https://swr-api.ap-southeast-1.myhuaweicloud.com', 'SWR_ENDPOINT')
 * // 'https://swr-api.ap-southeast-1.myhuaweicloud.com'
 * @example assertEndpoint('http://127.0.0.1:4010', 'SWR_ENDPOINT') // 'http://127.0.0.1:4010'
 */
const assertEndpoint = (url: string, name: string): string => {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new ConfigError(`${name} is not a valid URL`, [], undefined, { cause: error });
  }
  const problems: string[] = [];
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')
    problems.push(`scheme must be https: (got ${parsed.protocol})`);
  if (parsed.protocol === 'http:' && !isLoopback(parsed.hostname))
    problems.push('must use https: unless the host is loopback (127.0.0.0/8, localhost, ::1)');
  if (parsed.username !== '' || parsed.password !== '') problems.push('must not contain credentials');
  if (parsed.search !== '' || parsed.hash !== '') problems.push('must not contain a query or fragment');
  if (parsed.pathname !== '/' && parsed.pathname !== '') problems.push('must not contain a path');
  if (problems.length > 0) throw new ConfigError(`${name} is not a usable endpoint`, problems);
  return parsed.origin;
};

export { assertEndpoint, isLoopback };
