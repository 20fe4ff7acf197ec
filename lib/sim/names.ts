/**
 * The simulator's own reading of the SWR naming rules, written from the seed pages (000 revoke,
 * 002 grant) and shared/docs/swr-api.md, never from the client's rules: when the two disagree a
 * differential test shows it, and the seed text decides which one is wrong.
 *
 * Seed text, namespace: "Enter 1 to 64 characters, starting with a lowercase letter and ending
 * with a lowercase letter or digit. Only lowercase letters, digits, periods (.), underscores (_),
 * and hyphens (-) are allowed. Periods, underscores, and hyphens cannot be placed next to each
 * other. A maximum of two consecutive underscores are allowed."
 *
 * Seed text, repository: "Enter 1 to 128 characters. It must start and end with a lowercase
 * letter or digit. Only lowercase letters, digits, periods (.), slashes (/), underscores (_), and
 * hyphens (-) are allowed. Periods, slashes, underscores, and hyphens cannot be placed next to each
 * other. A maximum of two consecutive underscores are allowed."
 */

interface Alphabet {
  what: string;
  longest: number;
  separators: string;
  /** May the first character be a digit? */
  digitFirst: boolean;
}

const namespaceAlphabet: Alphabet = { what: 'namespace', longest: 64, separators: '._-', digitFirst: false };
const repositoryAlphabet: Alphabet = {
  what: 'repository',
  longest: 128,
  separators: './_-',
  digitFirst: true,
};

const isLower = (c: string): boolean => c >= 'a' && c <= 'z';
const isDigit = (c: string): boolean => c >= '0' && c <= '9';

/** Walks the name once, character by character; the first broken rule is the answer. */
const scan = (name: unknown, alphabet: Alphabet): string | undefined => {
  if (typeof name !== 'string') return `${alphabet.what} is not a string`;
  const chars = [...name];
  if (chars.length === 0 || chars.length > alphabet.longest)
    return `${alphabet.what} must have 1 to ${alphabet.longest} characters`;
  const first = chars[0] as string;
  const last = chars[chars.length - 1] as string;
  if (!(isLower(first) || (alphabet.digitFirst && isDigit(first))))
    return `${alphabet.what} must start with a lowercase letter${alphabet.digitFirst ? ' or digit' : ''}`;
  if (!(isLower(last) || isDigit(last))) return `${alphabet.what} must end with a lowercase letter or digit`;
  let previous = '';
  let underscores = 0;
  for (const c of chars) {
    const separator = alphabet.separators.includes(c);
    if (!separator && !isLower(c) && !isDigit(c))
      return `${alphabet.what} may not contain ${JSON.stringify(c)}`;
    underscores = c === '_' ? underscores + 1 : 0;
    if (underscores > 2) return `${alphabet.what} may hold at most two underscores in a row`;
    const bothSeparators = separator && alphabet.separators.includes(previous);
    // The one pair the seed allows: two underscores.
    if (bothSeparators && !(c === '_' && previous === '_'))
      return `${alphabet.what} may not put ${JSON.stringify(previous)} next to ${JSON.stringify(c)}`;
    previous = c;
  }
  return undefined;
};

/** @example namespaceProblem('core') // undefined */
const namespaceProblem = (name: unknown): string | undefined => scan(name, namespaceAlphabet);

/** @example repositoryProblem('team/api') // undefined; the path form uses `$` for `/` */
const repositoryProblem = (name: unknown): string | undefined => scan(name, repositoryAlphabet);

/** IAM user ids in every example of the seeds: 32 lowercase hexadecimal characters. */
const userIdProblem = (id: unknown): string | undefined =>
  typeof id === 'string' && id.length === 32 && [...id].every((c) => isDigit(c) || (c >= 'a' && c <= 'f'))
    ? undefined
    : 'user_id must be an IAM user id (32 lowercase hexadecimal characters)';

/**
 * What SWR says about a user_name as sent, before asking IAM (400 SVCSTG.SWR.4001066): missing,
 * empty, padded with whitespace, or holding a control character (Unicode Cc: C0, DEL and C1).
 */
const userNameProblem = (name: unknown): string | undefined => {
  if (typeof name !== 'string' || name === '') return 'user_name is required';
  if (name.trim() !== name) return 'user_name may not start or end with whitespace';
  for (const c of name) {
    const code = c.codePointAt(0) ?? 0;
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return 'user_name may not contain control characters';
  }
  return undefined;
};

export { namespaceProblem, repositoryProblem, userIdProblem, userNameProblem };
