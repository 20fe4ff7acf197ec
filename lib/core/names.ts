/**
 * The SWR naming rules from the seed pages, as pure functions: each returns the first rule a value
 * breaks, or `undefined` for a valid name. Core (event and policy schemas) checks names with
 * them; the SWR adapter (`lib/swr/names.ts`) re-exports them beside its `assert*` helpers, which
 * run before any URL is built so that nothing invalid (or crafted: `..`, `%2f`, `$`) reaches the API.
 */

interface NameRules {
  field: string;
  maxLength: number;
  first: RegExp;
  firstRule: string;
  allowed: RegExp;
  allowedRule: string;
  separators: RegExp;
}

const namespaceRules: NameRules = {
  field: 'namespace',
  maxLength: 64,
  first: /^[a-z]/,
  firstRule: 'must start with a lowercase letter',
  allowed: /^[a-z0-9._-]+$/,
  allowedRule: 'only lowercase letters, digits, periods (.), underscores (_) and hyphens (-) are allowed',
  separators: /[._-]+/g,
};

const repositoryRules: NameRules = {
  field: 'repository',
  maxLength: 128,
  first: /^[a-z0-9]/,
  firstRule: 'must start with a lowercase letter or digit',
  allowed: /^[a-z0-9./_-]+$/,
  allowedRule:
    'only lowercase letters, digits, periods (.), slashes (/), underscores (_) and hyphens (-) are allowed',
  separators: /[./_-]+/g,
};

/** Returns the first rule `value` breaks, or `undefined` when it is a valid name. */
const brokenRule = (value: unknown, rules: NameRules): string | undefined => {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length < 1 || value.length > rules.maxLength)
    return `must be 1 to ${rules.maxLength} characters (got ${value.length})`;
  if (!rules.allowed.test(value)) return rules.allowedRule;
  if (!rules.first.test(value)) return rules.firstRule;
  if (!/[a-z0-9]$/.test(value)) return 'must end with a lowercase letter or digit';
  for (const run of value.match(rules.separators) ?? []) {
    if (run.length === 1 || run === '__') continue;
    return /^_+$/.test(run)
      ? 'at most two underscores may stand together'
      : `separators may not stand next to each other (found "${run}")`;
  }
  return undefined;
};

/** @example namespaceRule('Core') // 'only lowercase letters, …' */
const namespaceRule = (value: unknown): string | undefined => brokenRule(value, namespaceRules);
/** @example repositoryRule('api/server') // undefined */
const repositoryRule = (value: unknown): string | undefined => brokenRule(value, repositoryRules);

const userIdPattern = /^[0-9a-f]{32}$/;

/** @example userIdRule('fb3f175c1fd146ab8cdae3272be6107b') // undefined */
const userIdRule = (value: unknown): string | undefined =>
  typeof value === 'string' && userIdPattern.test(value)
    ? undefined
    : 'must be an IAM user ID: 32 lowercase hexadecimal characters';

/** IAM user names are short printable strings; the bound keeps a crafted body small. */
const userNameMaxLength = 64;

/** @example userNameRule(' bob') // 'must not start or end with whitespace' */
const userNameRule = (value: unknown): string | undefined => {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length < 1 || value.length > userNameMaxLength)
    return `must be 1 to ${userNameMaxLength} characters (got ${value.length})`;
  if (value.trim() !== value) return 'must not start or end with whitespace';
  // All of Unicode's Cc: C0, DEL and C1 (U+0085 NEL is no whitespace to trim(), so only this catches it).
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) return 'must not contain control characters';
  return undefined;
};

export type { NameRules };
export {
  brokenRule,
  namespaceRule,
  namespaceRules,
  repositoryRule,
  repositoryRules,
  userIdRule,
  userNameRule,
};
