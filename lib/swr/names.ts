/**
 * The SWR naming rules, checked before any URL is built so that nothing invalid (or crafted:
 * `..`, `%2f`, `$`) ever reaches the API. Each failure names the rule. The rules themselves are
 * pure and live in core (`lib/core/names.ts`, which core may import and this adapter re-exports);
 * the `assert*` helpers that throw `InvalidNameError` stay here, with the adapter.
 */
import {
  brokenRule,
  type NameRules,
  namespaceRule,
  namespaceRules,
  repositoryRule,
  repositoryRules,
  userIdRule,
  userNameRule,
} from '../core/names.ts';
import { type AuthLevel, AuthLevels } from '../domain.ts';
import { InvalidNameError } from '../errors.ts';

const check = (value: unknown, rules: NameRules): string => {
  const rule = brokenRule(value, rules);
  if (rule !== undefined) throw new InvalidNameError(rules.field, `${JSON.stringify(value)} ${rule}`);
  return value as string;
};

/** @example assertNamespace('core') // 'core' */
const assertNamespace = (value: unknown): string => check(value, namespaceRules);

/** @example assertRepository('api/server') // 'api/server' */
const assertRepository = (value: unknown): string => check(value, repositoryRules);

/** @example assertUserId('fb3f175c1fd146ab8cdae3272be6107b') */
const assertUserId = (value: unknown): string => {
  const rule = userIdRule(value);
  if (rule !== undefined) throw new InvalidNameError('user_id', `${JSON.stringify(value)} ${rule}`);
  return value as string;
};

/** @example assertUserName('user01') // 'user01' */
const assertUserName = (value: unknown): string => {
  const rule = userNameRule(value);
  if (rule !== undefined) throw new InvalidNameError('user_name', `${JSON.stringify(value)} ${rule}`);
  return value as string;
};

const validLevels: readonly number[] = Object.values(AuthLevels);

const assertAuthLevel = (value: unknown): AuthLevel => {
  if (typeof value !== 'number' || !validLevels.includes(value))
    throw new InvalidNameError('auth', `${JSON.stringify(value)} must be 7 (manage), 3 (write) or 1 (read)`);
  return value as AuthLevel;
};

/** The repository as it goes into a URL path: every `/` sent as `$` (seed 000/002). */
const encodeRepository = (repository: string): string => assertRepository(repository).replaceAll('/', '$');

export {
  assertAuthLevel,
  assertNamespace,
  assertRepository,
  assertUserId,
  assertUserName,
  encodeRepository,
  namespaceRule,
  repositoryRule,
  userIdRule,
  userNameRule,
};
